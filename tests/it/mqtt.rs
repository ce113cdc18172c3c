//! Notifications from the real `facereko run` to a real Mosquitto with mutual TLS: topics and
//! payloads, refused clients, and nothing lost while the broker is away or the daemon is killed.

use std::collections::BTreeSet;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet};

use crate::common::certs::set_mode;
use crate::common::mosquitto::{Mosquitto, Subscriber};
use crate::common::smtp::{Security, SmtpServer};
use crate::common::{TestDoor, face};

const ALICE_CARD: &str = "04A1B2C3";
const STRANGER_CARD: &str = "DEADBEEF";

/// A door on simulated hardware that knows Alice, pointed at `broker`.
fn door_for(broker: &Mosquitto, extra: &[(&str, &str)]) -> TestDoor {
    let mut config = broker.door_config();
    config.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
    let config: Vec<(&str, &str)> = config.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    let door = TestDoor::new(&config);
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door
}

/// Event ids in the access log.
fn logged_ids(door: &TestDoor) -> BTreeSet<String> {
    door.log_rows().iter().map(|row| row["event_id"].as_str().unwrap().to_owned()).collect()
}

fn backlog(door: &TestDoor) -> u64 {
    let status: serde_json::Value = serde_json::from_str(&door.ok(&["status", "--json"])).unwrap();
    status["outbox_backlog"].as_u64().unwrap()
}

/// Waits until the subscriber has every logged attempt, then checks none arrived that was not logged.
async fn all_logged_events_arrive(door: &TestDoor, subscriber: &Subscriber) {
    let logged = logged_ids(door);
    subscriber
        .wait_until(
            &format!("{} events", logged.len()),
            || door.daemon_log(),
            |_| subscriber.events().keys().cloned().collect::<BTreeSet<_>>() == logged,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempts_arrive_on_their_topics_with_a_readable_payload() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(&broker, &["FaceReko/#"]).await;
    let mut door = door_for(&broker, &[]);
    door.start();

    let granted = door.tap_and_wait(ALICE_CARD);
    let denied = door.tap_and_wait(STRANGER_CARD);
    all_logged_events_arrive(&door, &subscriber).await;

    let messages = subscriber.messages();
    let on = |topic: &str| messages.iter().find(|m| m.topic == topic).map(|m| m.json()).unwrap();
    let success = on("FaceReko/success");
    assert_eq!(success["event_id"], granted["event_id"]);
    assert_eq!(success["door"], "front");
    assert_eq!(success["decision"], "granted");
    assert_eq!(success["reason"], "card_and_face");
    assert_eq!(success["person"], "Alice");
    assert_eq!(success["card_uid"], "****B2C3", "the card is masked by default");
    assert_eq!(success["engine"], "simulated");
    assert_eq!(success["photo"], granted["photo"]);
    assert!(success["similarity"].as_f64().unwrap() >= 90.0);
    assert!(success["message"].as_str().unwrap().starts_with("Access granted to Alice at door front"), "{success}");
    let time = success["time"].as_str().unwrap();
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).expect("RFC 3339 time");

    let failure = on("FaceReko/failure");
    assert_eq!(failure["event_id"], denied["event_id"]);
    assert_eq!(failure["reason"], "unknown_card");
    assert!(failure["message"].as_str().unwrap().contains("the card is not enrolled"), "{failure}");
    assert!(messages.iter().all(|m| !m.retained), "attempts are not retained");
    door.wait_for("the outbox to drain", || backlog(&door) == 0);
    door.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_without_a_certificate_are_refused() {
    let broker = Mosquitto::start();
    let (_client, mut events) = AsyncClient::new(broker.client_options("no-certificate", None), 4);
    let outcome = tokio::time::timeout(Duration::from_secs(10), events.poll()).await.expect("the broker answers");
    assert!(
        !matches!(outcome, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "a client without a certificate was let in: {outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_private_key_readable_by_everyone_is_refused() {
    let broker = Mosquitto::start();
    let door = door_for(&broker, &[]);
    set_mode(&broker.certs.path("door.key"), 0o644);
    let check = door.run(&["config", "check"]);
    let said = String::from_utf8_lossy(&check.stderr).to_string() + &String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success());
    assert!(said.contains("mqtt.key_file") && said.contains("chmod 600"), "{said}");
    let run = door.run(&["run"]);
    assert!(!run.status.success(), "the daemon must not start with an exposed key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempts_during_a_broker_outage_arrive_once_it_is_back() {
    let mut broker = Mosquitto::start();
    let subscriber = Subscriber::connect(&broker, &["FaceReko/#"]).await;
    let mut door = door_for(&broker, &[]);
    door.start();
    door.tap_and_wait(ALICE_CARD);
    all_logged_events_arrive(&door, &subscriber).await;

    broker.stop();
    for card in [STRANGER_CARD, ALICE_CARD, "0102030405060708090A"] {
        door.tap_and_wait(card);
        // Past the debounce, so each tap is its own attempt.
        std::thread::sleep(Duration::from_millis(350));
    }
    assert_eq!(backlog(&door), 3, "the attempts wait in the outbox");
    broker.resume();

    all_logged_events_arrive(&door, &subscriber).await;
    let repeats: Vec<_> = subscriber.events().into_iter().filter(|(_, (_, count))| *count > 1).collect();
    // QoS 1 allows a repeat when an acknowledgement is lost; the id tells it apart.
    assert!(repeats.len() <= 1, "too many repeats: {repeats:?}");
    door.wait_for("the outbox to drain", || backlog(&door) == 0);
    assert!(door.daemon_log().contains("connected to the MQTT broker"));
    door.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_daemon_delivers_what_it_logged_after_a_restart() {
    let mut broker = Mosquitto::start();
    let subscriber = Subscriber::connect(&broker, &["FaceReko/#"]).await;
    let mut door = door_for(&broker, &[]);

    // Killed with the broker away: the attempts are only in the outbox.
    broker.stop();
    door.start();
    door.tap_and_wait(ALICE_CARD);
    door.tap_and_wait(STRANGER_CARD);
    door.kill();
    broker.resume();
    door.start();
    all_logged_events_arrive(&door, &subscriber).await;

    // Killed mid-publish: taps in quick succession (each once the last is logged, since a tap
    // that comes while an attempt is under way is not one), killed as soon as they are logged.
    for card in ["11111111", "22222222", "33333333", "44444444", "55555555"] {
        door.tap_and_wait(card);
    }
    door.kill();
    door.start();
    all_logged_events_arrive(&door, &subscriber).await;
    door.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_test_publishes_and_waits_for_the_acknowledgement() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(&broker, &["FaceReko/#"]).await;
    let door = door_for(&broker, &[]);
    let report: serde_json::Value = serde_json::from_str(&door.ok(&["notify", "test", "--json"])).unwrap();
    assert_eq!(report["topic"], "FaceReko/success");
    subscriber.wait_until("the test notification", String::new, |messages| !messages.is_empty()).await;
    let test = subscriber.messages()[0].json();
    assert_eq!(test["test"], true);
    assert_eq!(test["event_id"], report["event_id"]);
    assert!(test["message"].as_str().unwrap().contains("test notification"), "{test}");

    let unreachable = TestDoor::new(&[("mqtt.url", "\"mqtt://127.0.0.1:9\"")]);
    let failed = unreachable.run(&["notify", "test", "--timeout", "5s"]);
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(said.contains("is the broker running"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn home_assistant_sees_the_door_its_last_event_and_when_it_goes_away() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(&broker, &["homeassistant/#", "FaceReko/front/#"]).await;
    let mut door = door_for(&broker, &[("mqtt.home_assistant", "true")]);
    door.start();
    subscriber
        .wait_until(
            "discovery and availability",
            || door.daemon_log(),
            |messages| {
                messages.iter().any(|m| m.topic == "homeassistant/sensor/facereko_front/last_access/config")
                    && messages.iter().any(|m| m.topic == "homeassistant/binary_sensor/facereko_front/lock/config")
                    && messages.iter().any(|m| m.topic == "FaceReko/front/availability" && m.payload == b"online")
            },
        )
        .await;
    door.tap_and_wait(ALICE_CARD);
    subscriber
        .wait_until(
            "the last event and the lock opening",
            || door.daemon_log(),
            |messages| {
                messages.iter().any(|m| m.topic == "FaceReko/front/last_event" && m.json()["person"] == "Alice")
                    && messages.iter().any(|m| m.topic == "FaceReko/front/lock" && m.payload == b"unlocked")
            },
        )
        .await;
    door.kill();
    subscriber
        .wait_until(
            "the broker to announce the door offline",
            || broker.log(),
            |messages| messages.iter().any(|m| m.topic == "FaceReko/front/availability" && m.payload == b"offline"),
        )
        .await;
}

/// The newest message on `topic`, as JSON (`null` for a payload that is not, such as `offline`).
fn newest(messages: &[crate::common::mosquitto::Received], topic: &str) -> Option<serde_json::Value> {
    messages.iter().rev().find(|m| m.topic == topic).map(|m| m.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_door_keeps_its_state_retained_and_the_broker_says_offline_when_it_is_killed() {
    const STATE: &str = "FaceReko/front/state";
    let broker = Mosquitto::start();
    const SENSOR: &str = "homeassistant/sensor/facereko_front/last_access/config";
    let mut door = door_for(&broker, &[("mqtt.door_state", "true"), ("mqtt.home_assistant", "true")]);
    door.start();
    let subscriber = Subscriber::connect(&broker, &[STATE, SENSOR, "FaceReko/front/availability"]).await;
    subscriber
        .wait_until(
            "the door's state",
            || door.daemon_log(),
            |messages| {
                newest(messages, STATE).is_some_and(|state| state["state"] == "online" && state["armed"] == true)
            },
        )
        .await;
    let state = newest(&subscriber.messages(), STATE).unwrap();
    assert_eq!(state["lock"], "locked");
    assert_eq!(
        (state["reader"]["backend"].as_str(), state["camera"]["backend"].as_str()),
        (Some("simulated"), Some("simulated"))
    );
    assert_eq!((state["engine"].as_str(), state["backlog"].as_u64()), (Some("simulated"), Some(0)));
    // A dashboard that connects later gets the state at once: it is retained.
    let (late, mut events) = AsyncClient::new(broker.client_options("late-dashboard", Some("subscriber")), 4);
    late.subscribe(STATE, rumqttc::QoS::AtLeastOnce).await.unwrap();
    let retained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(publish))) => return publish,
                Ok(_) => {}
                Err(e) => panic!("the late dashboard lost the broker: {e}"),
            }
        }
    })
    .await
    .expect("the retained state arrives");
    assert!(retained.retain, "{retained:?}");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&retained.payload).unwrap()["state"], "online");

    door.ok(&["disarm"]);
    subscriber
        .wait_until(
            "the state to say disarmed",
            || door.daemon_log(),
            |messages| newest(messages, STATE).is_some_and(|state| state["armed"] == false),
        )
        .await;

    // Home Assistant follows the state topic, which carries the one last will.
    let sensor = newest(&subscriber.messages(), SENSOR).expect("the retained discovery message");
    assert_eq!(sensor["availability"][0]["topic"], STATE);
    assert!(!subscriber.messages().iter().any(|m| m.topic.ends_with("/availability")), "no second availability");

    door.kill();
    subscriber
        .wait_until(
            "the last will",
            || broker.log(),
            |messages| messages.iter().rev().find(|m| m.topic == STATE).is_some_and(|m| m.payload == b"offline"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_broker_takes_a_username_and_a_password_from_a_file() {
    let broker = Mosquitto::start_with_password("door", "correct horse");
    let url = format!("{:?}", format!("mqtt://127.0.0.1:{}", broker.port));
    let door = TestDoor::new(&[("mqtt.url", &url), ("mqtt.username", "\"door\"")]);
    let secret = door.path("mqtt-password");
    std::fs::write(&secret, "correct horse\n").unwrap();
    let mut command = door.command();
    command.env("FACEREKO_MQTT__PASSWORD_FILE", &secret).args(["notify", "test"]);
    let sent = command.output().unwrap();
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));

    std::fs::write(&secret, "hunter2-not-it\n").unwrap();
    let refused =
        door.command().env("FACEREKO_MQTT__PASSWORD_FILE", &secret).args(["notify", "test"]).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("check the credentials"), "{said}");
    assert!(!said.contains("hunter2"), "the password is never shown: {said}");
}

/// Rings on the visitor page at `port` as a phone's browser would: the form's page first, for
/// its double-submit cookie and token, then the form. Returns the answer's status code.
fn ring_over_http(port: u16, fields: &[(&str, &str)]) -> u16 {
    use std::io::{Read, Write};
    let exchange = |request: String| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let page = exchange("GET /visit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_owned());
    let between = |text: &str, start: &str, end: char| {
        let from = text.find(start).unwrap_or_else(|| panic!("no {start} in {text}")) + start.len();
        text[from..].split(end).next().unwrap().to_owned()
    };
    let cookie = between(&page, "facereko_form=", ';');
    let token = between(&page, "name=\"csrf\" value=\"", '"');
    let mut form = vec![("csrf", token.as_str())];
    form.extend_from_slice(fields);
    let body = serde_urlencoded::to_string(&form).unwrap();
    let answer = exchange(format!(
        "POST /visit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: facereko_form={cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// [`door_for`] with visitors on: the web app on `port`, the owner told by e-mail through `smtp`.
fn visitors_door(broker: &Mosquitto, smtp: &SmtpServer, port: u16, extra: &[(&str, &str)]) -> TestDoor {
    let (listen, smtp_port) = (format!("\"127.0.0.1:{port}\""), smtp.port.to_string());
    let mut settings = vec![
        ("web.listen", listen.as_str()),
        ("web.public_url", "\"https://door.example.com\""),
        ("visitors.enabled", "true"),
        ("visitors.tell", "[\"email:owner@example.com\"]"),
        ("email.server", "\"localhost\""),
        ("email.port", smtp_port.as_str()),
        ("email.security", "\"plain\""),
        ("email.from", "\"door@example.com\""),
        ("email.to", "[\"owner@example.com\"]"),
    ];
    settings.extend_from_slice(extra);
    door_for(broker, &settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visitors_ring_is_published_with_the_link_that_decides_it() {
    let broker = Mosquitto::start();
    let smtp = SmtpServer::start(Security::Plain);
    let subscriber = Subscriber::connect(&broker, &["FaceReko/visitor"]).await;
    let port = crate::common::free_port();
    let mut door = visitors_door(&broker, &smtp, port, &[]);
    door.start();
    door.wait_for("the web app", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let rang = ring_over_http(port, &[("name", "Bob"), ("email", "bob@example.com"), ("message", "Parcel")]);
    assert_eq!(rang, 200, "{}", door.daemon_log());

    subscriber.wait_until("the ring", || door.daemon_log(), |messages| !messages.is_empty()).await;
    let notice = subscriber.messages()[0].json();
    assert_eq!(notice["name"], "Bob");
    assert_eq!(notice["door"], "front");
    assert_eq!(notice["message"], "Parcel");
    assert_eq!(notice["visit"], 1);
    let link = notice["link"].as_str().unwrap();
    assert!(link.starts_with("https://door.example.com/visits/1?until="), "{notice}");
    // The same link as in the owner's mail.
    let mail = smtp.wait_for_async(1, Duration::from_secs(20)).await.remove(0);
    assert!(mail["text"].as_str().unwrap().contains(link), "{mail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_press_of_the_bell_is_a_home_assistant_doorbell_event() {
    let broker = Mosquitto::start();
    let smtp = SmtpServer::start(Security::Plain);
    let subscriber =
        Subscriber::connect(&broker, &["homeassistant/event/#", "FaceReko/front/doorbell", "FaceReko/visitor"]).await;
    let mut door = visitors_door(&broker, &smtp, crate::common::free_port(), &[("mqtt.home_assistant", "true")]);
    door.start();
    subscriber
        .wait_until(
            "the doorbell's discovery",
            || door.daemon_log(),
            |messages| messages.iter().any(|m| m.topic == "homeassistant/event/facereko_front/doorbell/config"),
        )
        .await;
    let discovery = subscriber.messages().into_iter().find(|m| m.topic.ends_with("/doorbell/config")).unwrap();
    let config = discovery.json();
    assert_eq!(
        (config["device_class"].as_str(), config["event_types"].clone()),
        (Some("doorbell"), serde_json::json!(["ring"]))
    );
    assert_eq!(config["state_topic"], "FaceReko/front/doorbell");

    // `facereko ring` presses the running daemon's simulated bell through the control socket.
    assert!(door.ok(&["ring"]).contains("rang the bell"));
    subscriber
        .wait_until(
            "the ring's event",
            || door.daemon_log(),
            |messages| messages.iter().any(|m| m.topic == "FaceReko/front/doorbell"),
        )
        .await;
    let messages = subscriber.messages();
    let event = messages.iter().find(|m| m.topic == "FaceReko/front/doorbell").unwrap().json();
    assert_eq!(event["event_type"], "ring");
    assert_eq!(event["name"], "Someone at the door");
    assert_eq!(event["kind"], "bell");
    let link = event["link"].as_str().unwrap();
    assert!(link.starts_with("https://door.example.com/visits/1?until="), "{event}");
    let notice = messages.iter().find(|m| m.topic == "FaceReko/visitor").map(|m| m.json()).unwrap();
    assert_eq!((notice["kind"].as_str(), notice["link"].as_str()), (Some("bell"), Some(link)));
    let mail = smtp.wait_for_async(1, Duration::from_secs(20)).await.remove(0);
    assert!(mail["text"].as_str().unwrap().contains(link), "the owner's mail has the same link: {mail}");
    door.wait_for("the door to say the owner was told", || {
        std::fs::read_to_string(door.path("outputs.jsonl")).unwrap_or_default().contains("The owner has been told")
    });
}
