//! A throw-away Mosquitto with mutual TLS on a loopback port, with certificates made at test time,
//! and a subscriber that collects what the door publishes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::Value;

use super::certs::Certificates;

/// Where Debian puts the broker; PATH is searched first.
const MOSQUITTO_PATHS: [&str; 2] = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"];

fn mosquitto_binary() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("mosquitto"));
    in_path.chain(MOSQUITTO_PATHS.iter().map(PathBuf::from)).find(|path| path.is_file()).unwrap_or_else(|| {
        panic!(
            "the MQTT tests need the Mosquitto broker, which is not installed: \
                 run `sudo apt-get install mosquitto` (tests/run.sh does it)"
        )
    })
}

pub struct Mosquitto {
    dir: tempfile::TempDir,
    pub port: u16,
    pub certs: Certificates,
    broker: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker that only takes clients with a certificate from the test CA.
    pub fn start() -> Self {
        Self::launch(|_, certs| {
            format!(
                "cafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\nuse_identity_as_username true\n",
                ca = certs.path("ca.pem").display(),
                cert = certs.path("server.pem").display(),
                key = certs.path("server.key").display(),
            )
        })
    }

    /// Starts a broker like [`Mosquitto::start`] with a certificate for each of `clients` (its name is
    /// the client's user name) that lets each do only what `acl` (Mosquitto's `acl_file`) allows.
    pub fn start_with_acl(clients: &[&str], acl: &str) -> Self {
        Self::launch_for(clients, |dir, certs| {
            let file = dir.join("acl");
            std::fs::write(&file, acl).unwrap();
            format!(
                "cafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\nuse_identity_as_username true\n\
                 acl_file {acl}\n",
                ca = certs.path("ca.pem").display(),
                cert = certs.path("server.pem").display(),
                key = certs.path("server.key").display(),
                acl = file.display(),
            )
        })
    }

    /// Starts a broker on plain TCP that takes only `user` with `password`, as a home broker might.
    pub fn start_with_password(user: &str, password: &str) -> Self {
        Self::launch(|dir, _| {
            let file = dir.join("passwd");
            let made = Command::new("mosquitto_passwd")
                .arg("-c")
                .arg("-b")
                .arg(&file)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd runs (it comes with the mosquitto package)");
            assert!(made.success());
            format!("password_file {}\n", file.display())
        })
    }

    /// Writes the config with `listener_settings` for the one listener, and starts the broker.
    fn launch(listener_settings: impl FnOnce(&Path, &Certificates) -> String) -> Self {
        Self::launch_for(&["door", "subscriber"], listener_settings)
    }

    /// [`Mosquitto::launch`] with client certificates for `clients`.
    fn launch_for(clients: &[&str], listener_settings: impl FnOnce(&Path, &Certificates) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certificates::generate(dir.path(), clients);
        let port = super::free_port();
        let config = format!(
            "user root\n\
             persistence true\n\
             persistence_location {dir}/\n\
             log_dest file {dir}/mosquitto.log\n\
             log_type all\n\
             allow_anonymous false\n\
             listener {port} 127.0.0.1\n\
             {listener}",
            dir = dir.path().display(),
            listener = listener_settings(dir.path(), &certs),
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        let mut broker = Self { dir, port, certs, broker: None };
        broker.resume();
        broker
    }

    /// Starts the broker (again) on the same port, with the sessions it saved.
    pub fn resume(&mut self) {
        assert!(self.broker.is_none(), "the broker is already running");
        // Its output goes to its log file: a pipe nobody reads would stall it.
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.broker = Some(child);
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "mosquitto did not listen; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the broker the way systemd would (it saves its sessions).
    pub fn stop(&mut self) {
        let mut child = self.broker.take().expect("the broker is running");
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.port)
    }

    /// Config overrides (TOML values) that point a door at this broker with its own certificate.
    pub fn door_config(&self) -> Vec<(String, String)> {
        self.door_config_as("door")
    }

    /// [`Mosquitto::door_config`] with the certificate made for `client`.
    pub fn door_config_as(&self, client: &str) -> Vec<(String, String)> {
        let quoted = |path: PathBuf| format!("{:?}", path.display().to_string());
        vec![
            ("mqtt.url".into(), format!("{:?}", self.url())),
            ("mqtt.ca_file".into(), quoted(self.certs.path("ca.pem"))),
            ("mqtt.cert_file".into(), quoted(self.certs.path(&format!("{client}.pem")))),
            ("mqtt.key_file".into(), quoted(self.certs.path(&format!("{client}.key")))),
        ]
    }

    /// Client options with the test CA, and with `identity`'s certificate when given.
    pub fn client_options(&self, client_id: &str, identity: Option<&str>) -> MqttOptions {
        facereko::tls::ensure_crypto_provider();
        let read = |file: String| std::fs::read(self.certs.path(&file)).unwrap();
        let client_auth = identity.map(|name| (read(format!("{name}.pem")), read(format!("{name}.key"))));
        let mut options = MqttOptions::new(client_id, "127.0.0.1", self.port);
        options.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca: read("ca.pem".into()),
            alpn: None,
            client_auth,
        }));
        options.set_keep_alive(Duration::from_secs(5));
        options
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.broker.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub topic: String,
    pub payload: Vec<u8>,
    pub retained: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// A subscriber with a persistent session, so that it misses nothing while the broker restarts.
pub struct Subscriber {
    received: Arc<Mutex<Vec<Received>>>,
    subscribed: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn connect(broker: &Mosquitto, filters: &[&str]) -> Self {
        let mut options = broker.client_options("test-subscriber", Some("subscriber"));
        options.set_clean_session(false);
        let (client, mut events) = AsyncClient::new(options, 16);
        let received = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(false));
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        let task = tokio::spawn({
            let (received, subscribed) = (Arc::clone(&received), Arc::clone(&subscribed));
            async move {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                            for filter in &filters {
                                client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => *subscribed.lock().unwrap() = true,
                        Ok(Event::Incoming(Packet::Publish(publish))) => received.lock().unwrap().push(Received {
                            at: Instant::now(),
                            topic: publish.topic.clone(),
                            payload: publish.payload.to_vec(),
                            retained: publish.retain,
                        }),
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        });
        let subscriber = Self { received, subscribed, task };
        subscriber.wait_until("the subscription", String::new, |_| *subscriber.subscribed.lock().unwrap()).await;
        subscriber
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Notifications received on `topic_prefix/success|failure`, by event id, with how often each came.
    pub fn events(&self) -> BTreeMap<String, (Value, usize)> {
        let mut events = BTreeMap::new();
        for message in self.messages() {
            if message.topic.ends_with("/success") || message.topic.ends_with("/failure") {
                let json = message.json();
                let id = json["event_id"].as_str().unwrap_or_default().to_owned();
                events.entry(id).or_insert((json, 0)).1 += 1;
            }
        }
        events
    }

    /// Waits up to 30 s (the door's reconnect back-off included) for `done`; `context` is
    /// shown if it does not happen (the daemon's log, say).
    pub async fn wait_until(&self, what: &str, context: impl Fn() -> String, done: impl Fn(&[Received]) -> bool) {
        let started = Instant::now();
        while !done(&self.messages()) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}; received: {:?}\n{}",
                self.messages().iter().map(|m| &m.topic).collect::<Vec<_>>(),
                context()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}
