//! The MQTT publisher: one task owns the rumqttc event loop and keeps polling it (which is also
//! how it reconnects), sends the outbox oldest first and marks rows delivered on PUBACK.
//!
//! Sessions are clean: after a reconnect rumqttc forgets what it had in flight, and the publisher
//! sends again every row the broker has not acknowledged, straight from the outbox. A row whose
//! PUBACK was lost is sent twice; subscribers recognise it by `event_id`.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport,
};
use tokio::sync::{broadcast, watch};

use super::home_assistant::HomeAssistant;
use super::{DoorState, MqttConfig, Notification, OFFLINE, VISITOR_TOPIC, VisitorNotice, kind_of, test_event};
use crate::access::AccessEvent;
use crate::hw::Lock;
use crate::store::{OutboxItem, Store};

/// The CA bundle used when `mqtt.ca_file` is not set (Debian's and Raspberry Pi OS's).
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Outbox rows handed to the broker and not yet acknowledged, at most.
const WINDOW: usize = 16;
/// The client's request queue: room for the window plus the messages that go with it.
const REQUEST_QUEUE: usize = 4 * WINDOW;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the outbox is looked at without being woken (rows written by other processes).
const SWEEP: Duration = Duration::from_secs(30);
/// Deliveries between two prunings of the outbox.
const PRUNE_EVERY: u32 = 100;
/// Rings kept while the broker is away, and how long one stays worth publishing: the owner's
/// e-mail and text messages carry the same link, which is good for minutes only.
const WAITING_RINGS: usize = 16;
const RING_FRESH_FOR: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("mqtt.url {url:?}: {fix}")]
    Url { url: String, fix: String },
    #[error("{key} ({path}): {detail}")]
    File { key: &'static str, path: PathBuf, detail: String },
    #[error("{0}")]
    Config(String),
    #[error("cannot reach the MQTT broker: {0}")]
    Connect(String),
    #[error("the broker did not acknowledge within {0:?}")]
    NoAck(Duration),
    #[error("database error: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl NotifyError {
    /// The config key to fix, for `config check`.
    pub fn config_key(&self) -> &'static str {
        match self {
            Self::Url { .. } | Self::Connect(_) | Self::NoAck(_) | Self::Store(_) => "mqtt.url",
            Self::File { key, .. } => key,
            Self::Config(_) => "mqtt",
        }
    }
}

/// Where the broker is, from `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) =
            url.split_once("://").ok_or("use mqtts://host:8883 (TLS) or mqtt://host:1883 (plain, local only)")?;
        let (tls, default_port) = match scheme {
            "mqtts" | "ssl" => (true, 8883),
            "mqtt" | "tcp" => (false, 1883),
            other => return Err(format!("the scheme {other:?} is not mqtts or mqtt")),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                (host, port.parse().map_err(|_| format!("the port {port:?} is not a number from 1 to 65535"))?)
            }
            None => (rest, default_port),
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(format!("{host:?} is not a host name; credentials go in mqtt.username and mqtt.password"));
        }
        Ok(Self { host: host.to_owned(), port, tls })
    }
}

/// Reads a file named by a config key, saying which key when it cannot.
fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, NotifyError> {
    std::fs::read(path).map_err(|e| NotifyError::File { key, path: path.to_owned(), detail: e.to_string() })
}

/// A private key that other users can read is refused: anyone on the Pi could act as the door.
pub fn check_key_permissions(path: &Path) -> Result<(), NotifyError> {
    let meta = std::fs::metadata(path).map_err(|e| NotifyError::File {
        key: "mqtt.key_file",
        path: path.into(),
        detail: e.to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(NotifyError::File {
            key: "mqtt.key_file",
            path: path.into(),
            detail: format!(
                "the private key is readable by every user (mode {mode:03o}); run `chmod 600 {0}` (or 640 with group facereko)",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Checks the PEM files named in the config parse, so mistakes show up in `config check`.
fn tls_material(config: &MqttConfig) -> Result<rumqttc::TlsConfiguration, NotifyError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let ca_path = config.ca_file.clone().unwrap_or_else(|| SYSTEM_CAS.into());
    let ca = read_file("mqtt.ca_file", &ca_path)?;
    let ca_count = CertificateDer::pem_slice_iter(&ca).filter(Result::is_ok).count();
    if ca_count == 0 {
        return Err(NotifyError::File {
            key: "mqtt.ca_file",
            path: ca_path,
            detail: "holds no PEM certificate (for AWS IoT Core use AmazonRootCA1.pem)".into(),
        });
    }
    let client_auth = match (&config.cert_file, &config.key_file) {
        (None, None) => None,
        (Some(cert_path), Some(key_path)) => {
            let cert = read_file("mqtt.cert_file", cert_path)?;
            if CertificateDer::pem_slice_iter(&cert).filter(Result::is_ok).count() == 0 {
                return Err(NotifyError::File {
                    key: "mqtt.cert_file",
                    path: cert_path.clone(),
                    detail: "holds no PEM certificate (AWS IoT Core names it certificate.pem.crt)".into(),
                });
            }
            check_key_permissions(key_path)?;
            let key = read_file("mqtt.key_file", key_path)?;
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| NotifyError::File {
                key: "mqtt.key_file",
                path: key_path.clone(),
                detail: format!("holds no PEM private key ({e})"),
            })?;
            Some((cert, key))
        }
        _ => {
            return Err(NotifyError::Config(
                "mqtt.cert_file and mqtt.key_file go together: set both for mutual TLS, or neither".into(),
            ));
        }
    };
    Ok(rumqttc::TlsConfiguration::Simple { ca, alpn: None, client_auth })
}

/// The connection options for `config`, with every file read and checked.
pub fn options(config: &MqttConfig, door: &str) -> Result<MqttOptions, NotifyError> {
    let mut options = connection_options(config, config.client_id_for(door))?;
    // The broker tells the site (or Home Assistant) that the door is gone, however it went.
    if let Some(topic) = config.offline_topic(door) {
        options.set_last_will(LastWill::new(topic, OFFLINE, QoS::AtLeastOnce, true));
    }
    Ok(options)
}

/// [`options`] for another connection of the door, as `client_id` and without the last will:
/// only the publisher's going away says the door is offline.
pub fn connection_options(config: &MqttConfig, client_id: String) -> Result<MqttOptions, NotifyError> {
    let endpoint =
        Endpoint::parse(config.url.trim()).map_err(|fix| NotifyError::Url { url: config.url.clone(), fix })?;
    let mut options = MqttOptions::new(client_id, endpoint.host, endpoint.port);
    options.set_keep_alive(config.keep_alive).set_clean_session(true);
    if endpoint.tls {
        crate::tls::ensure_crypto_provider();
        options.set_transport(Transport::Tls(tls_material(config)?));
    } else if config.cert_file.is_some() || config.key_file.is_some() {
        return Err(NotifyError::Config(
            "mqtt.cert_file and mqtt.key_file need TLS: use an mqtts:// URL (port 8883)".into(),
        ));
    }
    match (&config.username, &config.password) {
        (Some(user), password) => {
            options.set_credentials(user, password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default());
        }
        (None, Some(_)) => return Err(NotifyError::Config("mqtt.password is set without mqtt.username".into())),
        (None, None) => {}
    }
    Ok(options)
}

/// What a message handed to the client is, so its PUBACK can be matched to an outbox row.
enum Sent {
    Outbox(i64),
    Other,
}

/// Publishes the outbox to the broker, forever; spawn it as a task.
pub struct Publisher {
    config: MqttConfig,
    door: String,
    store: Arc<dyn Store>,
    home_assistant: Option<HomeAssistant>,
    client: AsyncClient,
    events: EventLoop,
    connected: bool,
    /// Messages given to the client whose packet id has not been seen yet, in order.
    sent: VecDeque<Sent>,
    /// Outbox rows on the wire, by packet id.
    unacked: HashMap<u16, i64>,
    /// The newest outbox row handed out in this connection.
    last_taken: i64,
    delivered_since_prune: u32,
    last_lock: Option<Lock>,
    /// The door's newest state, and the state topic's payload the broker has now (none after a
    /// reconnect, so it is published again).
    latest_state: Option<DoorState>,
    published_state: Option<Vec<u8>>,
    /// Rings that came while the broker was away, published once it is back if still fresh.
    waiting_rings: VecDeque<(Instant, VisitorNotice)>,
}

impl Publisher {
    pub fn new(config: MqttConfig, door: String, store: Arc<dyn Store>) -> Result<Self, NotifyError> {
        let options = options(&config, &door)?;
        let (client, events) = AsyncClient::new(options, REQUEST_QUEUE);
        let home_assistant = config.home_assistant.then(|| HomeAssistant::new(&config, &door));
        Ok(Self {
            config,
            door,
            store,
            home_assistant,
            client,
            events,
            connected: false,
            sent: VecDeque::new(),
            unacked: HashMap::new(),
            last_taken: 0,
            delivered_since_prune: 0,
            last_lock: None,
            latest_state: None,
            published_state: None,
            waiting_rings: VecDeque::new(),
        })
    }

    /// Runs until the task is dropped. `written` wakes it for each new log row; `state_of` reads
    /// what the door says of itself from each new `door` status: published retained on the door's
    /// state topic, with the lock for Home Assistant. `visitors` brings the notices of visitors'
    /// rings, published as they come.
    pub async fn run<S>(
        mut self,
        mut written: broadcast::Receiver<AccessEvent>,
        mut door: watch::Receiver<S>,
        state_of: fn(&S) -> DoorState,
        mut visitors: broadcast::Receiver<VisitorNotice>,
    ) {
        self.latest_state = Some(state_of(&door.borrow_and_update()));
        self.prune().await;
        let mut backoff = FIRST_BACKOFF;
        let mut sweep = tokio::time::interval(SWEEP);
        loop {
            tokio::select! {
                event = self.events.poll() => match event {
                    Ok(event) => {
                        if self.handle(event).await {
                            backoff = FIRST_BACKOFF;
                        }
                    }
                    Err(e) => {
                        self.disconnected(&e, backoff);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                },
                woken = written.recv() => {
                    if matches!(woken, Err(broadcast::error::RecvError::Closed)) {
                        return;
                    }
                    self.send_pending().await;
                }
                _ = sweep.tick() => {
                    self.send_pending().await;
                    // The backlog changes without the door's status changing.
                    self.publish_state().await;
                }
                changed = door.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let state = state_of(&door.borrow_and_update());
                    self.publish_lock(state.lock);
                    self.latest_state = Some(state);
                    self.publish_state().await;
                }
                Ok(notice) = visitors.recv() => self.publish_visitor(notice),
            }
        }
    }

    /// Handles one event from the loop; true when it was a (re)connection.
    async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                tracing::info!(broker = %self.config.url, "connected to the MQTT broker");
                self.connected = true;
                self.forget_in_flight();
                let announcements = self.home_assistant.as_ref().map(|ha| {
                    let mut messages = ha.discovery();
                    messages.extend(ha.online());
                    messages
                });
                for (topic, payload) in announcements.unwrap_or_default() {
                    self.enqueue(Sent::Other, topic, true, payload);
                }
                self.published_state = None;
                self.publish_state().await;
                if let Some(lock) = self.last_lock.take() {
                    self.publish_lock(lock);
                }
                for (rang, notice) in std::mem::take(&mut self.waiting_rings) {
                    if rang.elapsed() < RING_FRESH_FOR {
                        self.publish_visitor(notice);
                    }
                }
                self.send_pending().await;
                return true;
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(Sent::Outbox(id)) = self.sent.pop_front() {
                    self.unacked.insert(pkid, id);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(id) = self.unacked.remove(&ack.pkid) {
                    match self.store.outbox().mark_delivered(id).await {
                        Ok(()) => self.delivered_since_prune += 1,
                        // Sent again after the next reconnect; the subscriber sees the repeat by id.
                        Err(e) => tracing::warn!(error = %e, outbox_id = id, "cannot mark a notification delivered"),
                    }
                    if self.delivered_since_prune >= PRUNE_EVERY {
                        self.prune().await;
                    }
                    self.send_pending().await;
                }
            }
            _ => {}
        }
        false
    }

    fn disconnected(&mut self, error: &ConnectionError, retry_in: Duration) {
        let retry_in = humantime::format_duration(retry_in);
        if self.connected {
            tracing::warn!(error = %error, %retry_in, "lost the MQTT broker; notifications wait in the outbox");
        } else {
            tracing::warn!(error = %error, broker = %self.config.url, %retry_in, "cannot connect to the MQTT broker");
        }
        self.connected = false;
        self.forget_in_flight();
    }

    fn forget_in_flight(&mut self) {
        self.sent.clear();
        self.unacked.clear();
        self.last_taken = 0;
    }

    /// Hands the client the next outbox rows, keeping at most [`WINDOW`] unacknowledged.
    async fn send_pending(&mut self) {
        if !self.connected {
            return;
        }
        let in_flight = self.unacked.len() + self.sent.iter().filter(|s| matches!(s, Sent::Outbox(_))).count();
        let room = WINDOW.saturating_sub(in_flight);
        if room == 0 {
            return;
        }
        let items = match self.store.outbox().take_pending(self.last_taken, room as u32).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; trying again soon");
                return;
            }
        };
        for item in items {
            self.send_item(item);
        }
    }

    fn send_item(&mut self, item: OutboxItem) {
        let notification = Notification::new(&item.event, self.config.card_uid);
        let payload = notification.to_json();
        if item.attempts > 1 {
            tracing::debug!(event_id = %notification.event_id, attempts = item.attempts, "sending a notification again");
        }
        self.last_taken = item.id;
        if let Some(topic) = self.home_assistant.as_ref().map(HomeAssistant::last_event_topic) {
            self.enqueue(Sent::Other, topic, true, payload.clone());
        }
        self.enqueue(Sent::Outbox(item.id), self.config.topic(kind_of(item.event.decision)), false, payload);
    }

    fn publish_lock(&mut self, lock: Lock) {
        if self.last_lock == Some(lock) {
            return;
        }
        self.last_lock = Some(lock);
        if let Some((topic, payload)) = self.home_assistant.as_ref().map(|ha| ha.lock_state(lock))
            && self.connected
        {
            self.enqueue(Sent::Other, topic, true, payload);
        }
    }

    /// Publishes the door's state, retained, when it says something the broker does not have yet.
    async fn publish_state(&mut self) {
        let Some(state) = self.latest_state.as_ref().filter(|_| self.connected && self.config.door_state) else {
            return;
        };
        let backlog = match self.store.door().outbox_backlog().await {
            Ok(backlog) => Some(backlog),
            Err(e) => {
                tracing::debug!(error = %e, "cannot count the outbox for the door's state");
                None
            }
        };
        let payload = state.online_payload(backlog);
        if self.published_state.as_ref() != Some(&payload) {
            self.published_state = Some(payload.clone());
            self.enqueue(Sent::Other, self.config.door_topic(&self.door, "state"), true, payload);
        }
    }

    fn publish_visitor(&mut self, notice: VisitorNotice) {
        if !self.connected {
            tracing::info!(visit = notice.visit, "the visitor's ring waits for the MQTT broker");
            if self.waiting_rings.len() == WAITING_RINGS {
                self.waiting_rings.pop_front();
            }
            self.waiting_rings.push_back((Instant::now(), notice));
            return;
        }
        let payload = serde_json::to_vec(&notice).expect("visitor notices serialise");
        self.enqueue(Sent::Other, self.config.topic(VISITOR_TOPIC), false, payload);
        if let Some((topic, event)) = self.home_assistant.as_ref().map(|ha| ha.ring_event(&notice)) {
            self.enqueue(Sent::Other, topic, false, event);
        }
    }

    fn enqueue(&mut self, what: Sent, topic: String, retain: bool, payload: Vec<u8>) {
        match self.client.try_publish(&topic, QoS::AtLeastOnce, retain, payload) {
            Ok(()) => self.sent.push_back(what),
            // Only when the queue is full; outbox rows are taken again after the next reconnect.
            Err(e) => tracing::warn!(error = %e, %topic, "the MQTT client is busy; message not queued"),
        }
    }

    async fn prune(&mut self) {
        self.delivered_since_prune = 0;
        match self.store.outbox().prune_outbox(self.config.outbox_limit).await {
            Ok(pruned) if pruned.undelivered >= self.config.outbox_limit => tracing::error!(
                undelivered = pruned.undelivered,
                limit = self.config.outbox_limit,
                door = %self.door,
                "THE NOTIFICATION OUTBOX IS FULL: the broker has not taken notifications for a long time; \
                 they are all kept, but check the broker and the network (see `facereko notify test`)"
            ),
            Ok(pruned) if pruned.removed > 0 => {
                tracing::debug!(removed = pruned.removed, "pruned delivered notifications from the outbox");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune the outbox"),
        }
    }
}

/// What `facereko notify test` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestReport {
    pub topic: String,
    pub event_id: String,
    pub acknowledged_in_ms: u64,
}

/// Connects, publishes a test notification and waits for the broker's PUBACK.
pub async fn send_test(config: &MqttConfig, door: &str, timeout: Duration) -> Result<TestReport, NotifyError> {
    let started = Instant::now();
    let (client, mut events) = AsyncClient::new(options(config, door)?, 4);
    let event = test_event(door);
    let mut notification = Notification::new(&event, config.card_uid);
    notification.test = true;
    notification.message = format!("This is a test notification from FaceReko at door {door}.");
    let topic = config.topic(kind_of(event.decision));
    client
        .try_publish(&topic, QoS::AtLeastOnce, false, notification.to_json())
        .map_err(|e| NotifyError::Connect(e.to_string()))?;
    let acknowledged = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(NotifyError::Connect(connect_advice(&e))),
            }
        }
    };
    tokio::time::timeout(timeout, acknowledged).await.map_err(|_| NotifyError::NoAck(timeout))??;
    let _ = client.try_disconnect();
    Ok(TestReport {
        topic,
        event_id: notification.event_id,
        acknowledged_in_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// The error with a hint at the usual cause.
fn connect_advice(error: &ConnectionError) -> String {
    let hint = match error {
        ConnectionError::Io(_) => "is the broker running, and mqtt.url right?",
        ConnectionError::Tls(_) => "check mqtt.ca_file, and for mutual TLS mqtt.cert_file and mqtt.key_file",
        ConnectionError::ConnectionRefused(_) => {
            "the broker refused the client: check the credentials, the client id and (IoT Core) the policy"
        }
        ConnectionError::NetworkTimeout => "no answer: check the host, the port and the firewall",
        _ => "see the broker's log",
    };
    format!("{error} ({hint})")
}
