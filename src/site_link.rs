//! The site over MQTT, on a second connection of the daemon (its own client id, no last will),
//! or the only one of a console (`facereko serve-web`, which takes no commands):
//! the door takes the commands published on its command topic through the same path as the
//! control socket and the web app, and acknowledges each; the site view hears every door's
//! retained state and sends commands, waiting a few seconds for their answer.
//!
//! One task owns the connection's event loop and keeps polling it (which is also how it
//! reconnects); the web app holds a [`SiteLink`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::access::Decision;
use crate::driver::{Answer, Command, ControlHandle};
use crate::notify::mqtt::{self, NotifyError};
use crate::notify::{DoorState, MqttConfig, OFFLINE, door_topic, slug};
use crate::site::{Ack, Action, Order, Outcome, SeenCommands};

/// How long the site view waits for a door's acknowledgement before it says there was no answer.
pub const ACK_WAIT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Requests queued for the broker: subscriptions, commands and acknowledgements are few.
const REQUEST_QUEUE: usize = 32;

/// What a door last said of itself on its state topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    Online {
        state: DoorState,
        backlog: Option<u64>,
    },
    /// Its last will: the broker lost it (or it stopped).
    Offline,
}

#[derive(Deserialize)]
struct OnlinePayload {
    #[serde(flatten)]
    state: DoorState,
    backlog: Option<u64>,
}

impl Reported {
    fn parse(payload: &[u8]) -> Option<Self> {
        if payload == OFFLINE.as_bytes() {
            return Some(Self::Offline);
        }
        let online: OnlinePayload = serde_json::from_slice(payload).ok()?;
        Some(Self::Online { state: online.state, backlog: online.backlog })
    }
}

/// How a command sent from the site view ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Done,
    Refused(String),
    /// No acknowledgement within [`ACK_WAIT`]: the door may or may not have done it.
    NoAnswer,
    /// The door is offline, or never said it is there: nothing was sent (commands are not queued).
    Offline,
}

/// The site as this daemon hears it, and the way to send its doors commands; cheap to clone.
#[derive(Clone)]
pub struct SiteLink {
    shared: Arc<Shared>,
}

struct Shared {
    client: AsyncClient,
    prefix: String,
    /// Each door's last state, by the door's topic name ([`slug`]).
    states: Mutex<BTreeMap<String, Reported>>,
    /// Acknowledgements as they come, with the topic name of the door that sent them.
    acks: broadcast::Sender<(String, Ack)>,
}

impl std::fmt::Debug for SiteLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let states = self.shared.states.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("SiteLink").field("prefix", &self.shared.prefix).field("doors_heard", &states.len()).finish()
    }
}

impl SiteLink {
    /// What the door `door` (its id) last said of itself, if anything.
    pub fn reported(&self, door: &str) -> Option<Reported> {
        self.shared.states.lock().unwrap_or_else(PoisonError::into_inner).get(&slug(door)).cloned()
    }

    /// Sends `action` to `door` on behalf of the account `by` and waits up to [`ACK_WAIT`] for the
    /// door's answer; a door not known to be online is refused at once.
    pub async fn send(&self, door: &str, action: Action, by: &str) -> Sent {
        if !matches!(self.reported(door), Some(Reported::Online { .. })) {
            return Sent::Offline;
        }
        let order = Order::new(action, by, OffsetDateTime::now_utc());
        let mut acks = self.shared.acks.subscribe();
        let topic = door_topic(&self.shared.prefix, door, "command");
        let payload = serde_json::to_vec(&order).expect("commands serialise");
        if let Err(e) = self.shared.client.publish(&topic, QoS::AtLeastOnce, false, payload).await {
            tracing::warn!(error = %e, %door, "cannot hand a command to the MQTT client");
            return Sent::NoAnswer;
        }
        tracing::info!(%door, command = action.as_str(), %by, id = %order.id, "sent a command to a door of the site");
        let from = slug(door);
        let answer = async {
            loop {
                match acks.recv().await {
                    Ok((sender, ack)) if sender == from && ack.id == order.id => return ack,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        };
        match tokio::time::timeout(ACK_WAIT, answer).await {
            Ok(Ack { result: Outcome::Ok, .. }) => Sent::Done,
            Ok(Ack { reason, .. }) => Sent::Refused(reason.unwrap_or_else(|| "no reason given".into())),
            Err(_) => Sent::NoAnswer,
        }
    }
}

/// Connects the site link of door `door` (its commands carried out through `control`, the ids
/// taken kept at `taken`), in a task of its own; abort the task to stop it.
pub fn start(
    config: &MqttConfig,
    door: &str,
    control: ControlHandle,
    taken: &Path,
) -> Result<(SiteLink, JoinHandle<()>), NotifyError> {
    let takes = Takes {
        command_topic: config.door_topic(door, "command"),
        ack_topic: config.door_topic(door, "ack"),
        control,
        seen: SeenCommands::open(taken),
    };
    connect(config, config.site_client_id_for(door), Some(takes))
}

/// Connects the site link of a console (`facereko serve-web`) as `client_id`: it hears the doors
/// and sends them commands, and takes none, having no door.
pub fn start_console(config: &MqttConfig, client_id: String) -> Result<(SiteLink, JoinHandle<()>), NotifyError> {
    connect(config, client_id, None)
}

fn connect(
    config: &MqttConfig,
    client_id: String,
    takes: Option<Takes>,
) -> Result<(SiteLink, JoinHandle<()>), NotifyError> {
    let options = mqtt::connection_options(config, client_id)?;
    let (client, events) = AsyncClient::new(options, REQUEST_QUEUE);
    let shared = Arc::new(Shared {
        client,
        prefix: config.topic_prefix.clone(),
        states: Mutex::new(BTreeMap::new()),
        acks: broadcast::channel(64).0,
    });
    let listener = Listener { shared: Arc::clone(&shared), takes };
    Ok((SiteLink { shared }, tokio::spawn(listener.run(events))))
}

/// The task's side: this door's commands (on a door), and what the doors say.
struct Listener {
    shared: Arc<Shared>,
    takes: Option<Takes>,
}

/// What a door needs to take the commands sent to it.
struct Takes {
    command_topic: String,
    ack_topic: String,
    control: ControlHandle,
    seen: SeenCommands,
}

impl Listener {
    async fn run(mut self, mut events: EventLoop) {
        let (mut backoff, mut connected) = (FIRST_BACKOFF, false);
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("connected to the site's MQTT broker for commands and door states");
                    (backoff, connected) = (FIRST_BACKOFF, true);
                    self.subscribe();
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => self.received(&publish),
                Ok(_) => {}
                Err(e) => {
                    if std::mem::take(&mut connected) {
                        tracing::warn!(error = %e, "lost the site's MQTT broker; commands cannot come or go meanwhile");
                    } else {
                        tracing::debug!(error = %e, "cannot connect to the site's MQTT broker yet");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn subscribe(&self) {
        let prefix = &self.shared.prefix;
        let commands = self.takes.as_ref().map(|takes| takes.command_topic.clone());
        let filters = commands.into_iter().chain([format!("{prefix}/+/state"), format!("{prefix}/+/ack")]);
        for filter in filters {
            if let Err(e) = self.shared.client.try_subscribe(&filter, QoS::AtLeastOnce) {
                tracing::warn!(error = %e, %filter, "cannot subscribe");
            }
        }
    }

    fn received(&mut self, publish: &Publish) {
        if let Some(takes) = &mut self.takes
            && publish.topic == takes.command_topic
        {
            takes.take_command(&self.shared.client, publish);
            return;
        }
        let Some(rest) = publish.topic.strip_prefix(&self.shared.prefix).and_then(|rest| rest.strip_prefix('/')) else {
            return;
        };
        match rest.split_once('/') {
            Some((door, "state")) => match Reported::parse(&publish.payload) {
                Some(reported) => {
                    self.shared.states.lock().unwrap_or_else(PoisonError::into_inner).insert(door.to_owned(), reported);
                }
                None => tracing::debug!(%door, "a door's state topic holds something unreadable"),
            },
            Some((door, "ack")) => match serde_json::from_slice::<Ack>(&publish.payload) {
                Ok(ack) => {
                    let _ = self.shared.acks.send((door.to_owned(), ack));
                }
                Err(e) => tracing::debug!(%door, error = %e, "an unreadable acknowledgement"),
            },
            _ => {}
        }
    }
}

impl Takes {
    /// Judges a command to this door; one that may be carried out is, in a task of its own so
    /// that the connection keeps being polled meanwhile.
    fn take_command(&mut self, client: &AsyncClient, publish: &Publish) {
        let order = match serde_json::from_slice::<Order>(&publish.payload) {
            Ok(order) => order,
            Err(e) => {
                tracing::warn!(error = %e, "refused a command that cannot be read");
                let id = serde_json::from_slice::<serde_json::Value>(&publish.payload)
                    .ok()
                    .and_then(|json| json["id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.answer(client, Ack { id, result: Outcome::Refused, reason: Some(format!("not a command: {e}")) });
                return;
            }
        };
        if let Err(refusal) = self.seen.admit(&order, publish.retain, OffsetDateTime::now_utc()) {
            tracing::warn!(id = %order.id, by = %order.by, command = order.command.as_str(), %refusal, "refused a command from the site");
            self.answer(client, Ack { id: order.id, result: Outcome::Refused, reason: Some(refusal.to_string()) });
            return;
        }
        let (control, client, ack_topic) = (self.control.clone(), client.clone(), self.ack_topic.clone());
        tokio::spawn(async move {
            let ack = carry_out(&control, &order).await;
            tracing::info!(
                id = %order.id, by = %order.by, command = order.command.as_str(), result = ?ack.result,
                reason = ack.reason.as_deref().unwrap_or(""), "took a command from the site"
            );
            publish_ack(&client, &ack_topic, &ack);
        });
    }

    fn answer(&self, client: &AsyncClient, ack: Ack) {
        publish_ack(client, &self.ack_topic, &ack);
    }
}

fn publish_ack(client: &AsyncClient, topic: &str, ack: &Ack) {
    let payload = serde_json::to_vec(ack).expect("acknowledgements serialise");
    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
        tracing::warn!(error = %e, id = %ack.id, "cannot acknowledge a command");
    }
}

/// Carries out `order` as the control socket and the web app would: arming through the same
/// command, opening as the door's normal timed unlock.
async fn carry_out(control: &ControlHandle, order: &Order) -> Ack {
    let done = match order.command {
        Action::Arm | Action::Disarm => {
            let armed = order.command == Action::Arm;
            control.command(|done| Command::SetArmed { armed, done }).await.map(Ok)
        }
        Action::Open => {
            let by = order.by.clone();
            control.ask(|reply| Command::OpenFromSite { by, reply }).await.map(|answer| match answer {
                Answer::Concluded { decision: Decision::Granted, .. } => Ok(()),
                Answer::Concluded { decision: Decision::Disarmed, .. } => {
                    Err("the door is disarmed: it opens for nobody".to_owned())
                }
                Answer::Concluded { reason, .. } => Err(format!("not opened: {reason}")),
                Answer::Busy => Err("an attempt is under way at the door; try again in a moment".to_owned()),
            })
        }
    };
    let (result, reason) = match done {
        Ok(Ok(())) => (Outcome::Ok, None),
        Ok(Err(reason)) => (Outcome::Refused, Some(reason)),
        Err(stopping) => (Outcome::Refused, Some(stopping.to_string())),
    };
    Ack { id: order.id.clone(), result, reason }
}
