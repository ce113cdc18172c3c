//! The site view and the commands between doors with two real daemons (`facereko run`) on one
//! throw-away MariaDB and a real Mosquitto whose ACL lets each door publish only its own state and
//! acknowledgements and read only its own commands, and lets only the site's clients send
//! commands: disarm one door from the other's web app, a replayed and an expired command, a
//! client without the site's credentials refused by the broker, and a stopped door shown offline.
//! Then `facereko serve-web`, a console that is not a door, commanding a real door.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use facereko::site::{Action, Order};
use rumqttc::{AsyncClient, QoS};
use serde_json::Value;
use time::OffsetDateTime;

use crate::common::mariadb::MariaDb;
use crate::common::mosquitto::{Mosquitto, Received, Subscriber};
use crate::common::{TestDoor, free_port};

/// The README's ACL, for the two doors of this site and its admin machine.
const ACL: &str = "\
# Every door (user name = its certificate's name = its door.id): its own state and acknowledgements,
# its own commands, and the notifications.
pattern write FaceReko/%u/state
pattern write FaceReko/%u/ack
pattern read FaceReko/%u/command
pattern write FaceReko/success
pattern write FaceReko/failure

# The site's clients: the door whose web app shows the site, and an admin's machine.
user front
topic write FaceReko/+/command
topic read FaceReko/+/state
topic read FaceReko/+/ack

user site-admin
topic write FaceReko/+/command
topic read FaceReko/+/ack

# The office PC running `facereko serve-web`.
user office-pc
topic write FaceReko/+/command
topic read FaceReko/+/state
topic read FaceReko/+/ack

# A dashboard that only watches.
user subscriber
topic read FaceReko/#
";

const PASSWORD: &str = "a long enough passphrase";

/// `settings` as the `(key, value)` pairs [`TestDoor`] takes.
fn pairs(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect()
}

/// A door of the site on `database` and `broker`, with its own certificate.
fn door_on_site(database: &str, broker: &Mosquitto, id: &str, name: &str, web_port: Option<u16>) -> TestDoor {
    let mut settings = broker.door_config_as(id);
    settings.extend([
        ("door.id".to_owned(), format!("{id:?}")),
        ("door.name".to_owned(), format!("{name:?}")),
        ("mqtt.door_state".to_owned(), "true".to_owned()),
        ("mqtt.commands".to_owned(), "true".to_owned()),
    ]);
    if let Some(port) = web_port {
        settings.push(("web.listen".to_owned(), format!("\"127.0.0.1:{port}\"")));
    }
    TestDoor::on_database_with(database, None, &pairs(&settings))
}

/// A browser of one web app over real HTTP, keeping cookies and the last page's CSRF token.
struct Http {
    port: u16,
    cookies: BTreeMap<String, String>,
    csrf: String,
}

/// An answer: status, `Location`, body.
struct Page {
    status: u16,
    location: String,
    body: String,
}

impl Http {
    fn exchange(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let body = if method == "POST" {
            let mut fields = vec![("csrf", self.csrf.as_str())];
            fields.extend_from_slice(form);
            serde_urlencoded::to_string(&fields).unwrap()
        } else {
            String::new()
        };
        let cookies: Vec<String> = self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: {}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            cookies.join("; "),
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut page = Page { status, location: String::new(), body: String::new() };
        let mut chunked = false;
        for line in head.lines().skip(1) {
            let (name, value) = line.split_once(": ").unwrap();
            match name.to_ascii_lowercase().as_str() {
                "set-cookie" => {
                    let (name, value) = value.split(';').next().unwrap().split_once('=').unwrap();
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
                "location" => page.location = value.to_owned(),
                "transfer-encoding" => chunked = value.contains("chunked"),
                _ => {}
            }
        }
        page.body = if chunked { unchunked(rest) } else { rest.to_owned() };
        if let Some(start) = page.body.find("name=\"csrf\" value=\"") {
            let token = &page.body[start + "name=\"csrf\" value=\"".len()..];
            self.csrf = token.split('"').next().unwrap().to_owned();
        }
        page
    }

    fn signed_in(port: u16, username: &str) -> Self {
        let mut http = Self { port, cookies: BTreeMap::new(), csrf: String::new() };
        http.exchange("GET", "/login", &[]);
        let signed = http.exchange("POST", "/login", &[("username", username), ("password", PASSWORD)]);
        assert_eq!(signed.status, 303, "{}", signed.body);
        http
    }

    /// Loads the site page until door `id`'s card says `what`.
    fn site_until(&mut self, id: &str, what: &str) -> String {
        let started = Instant::now();
        loop {
            let page = self.exchange("GET", "/site", &[]).body;
            let card = page.find(&format!("id=\"door-{id}\"")).map(|start| {
                let rest = &page[start..];
                rest[..rest.find("</section>").unwrap()].to_owned()
            });
            if card.as_deref().is_some_and(|card| card.contains(what)) {
                return page;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "door {id} never showed {what:?}:\n{page}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn unchunked(body: &str) -> String {
    let (mut rest, mut out) = (body, String::new());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// The page's flash message.
fn flash(page: &str) -> &str {
    let start = page.find("class=\"flash").map_or(0, |at| at + page[at..].find('>').unwrap() + 1);
    &page[start..start + page[start..].find('<').unwrap_or(0)]
}

/// A client of the broker as `identity`, its event loop polled in the background.
fn client(broker: &Mosquitto, identity: &str) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let (client, mut events) = AsyncClient::new(broker.client_options(&format!("test-{identity}"), Some(identity)), 16);
    let task = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    (client, task)
}

async fn send(client: &AsyncClient, door: &str, payload: Vec<u8>) {
    client.publish(format!("FaceReko/{door}/command"), QoS::AtLeastOnce, false, payload).await.unwrap();
}

/// Acknowledgements of command `id` from `door`, oldest first.
fn acks(messages: &[Received], door: &str, id: &str) -> Vec<Value> {
    let topic = format!("FaceReko/{door}/ack");
    messages.iter().filter(|m| m.topic == topic).map(Received::json).filter(|ack| ack["id"] == id).collect()
}

fn armed(door: &TestDoor) -> bool {
    let status: Value = serde_json::from_str(&door.ok(&["status", "--json"])).unwrap();
    status["armed"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_door_is_disarmed_from_another_doors_web_app_and_stale_or_foreign_commands_do_nothing() {
    let server = MariaDb::start();
    let database = server.database();
    let broker = Mosquitto::start_with_acl(&["front", "back", "site-admin", "mallory", "subscriber"], ACL);
    let watcher = Subscriber::connect(&broker, &["FaceReko/#"]).await;
    let port = free_port();
    let mut front = door_on_site(&database.url, &broker, "front", "Front door", Some(port));
    let mut back = door_on_site(&database.url, &broker, "back", "Back door", None);
    let password = front.path("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    front.ok(&["user", "add", "ada", "--password-file", password.to_str().unwrap()]);
    front.start();
    back.start();
    let logs = || front.daemon_log() + &back.daemon_log() + &broker.log();

    // Disarm the back door from the front door's web app.
    let mut http = Http::signed_in(port, "ada");
    let page = http.site_until("back", "online");
    assert!(page.contains(r#"action="/site/back/disarm""#), "{page}");
    let started = Instant::now();
    let sent = http.exchange("POST", "/site/back/disarm", &[]);
    println!("disarm from another door's web app, acknowledged: {} ms", started.elapsed().as_millis());
    assert_eq!((sent.status, sent.location.as_str()), (303, "/site#door-back"), "{}", sent.body);
    let page = http.exchange("GET", "/site", &[]).body;
    assert!(flash(&page).contains("Back door: disarm done (the door acknowledged it)"), "{}\n{}", flash(&page), logs());
    assert!(!armed(&back), "carried out by the back door");
    let messages = watcher.messages();
    let command = messages.iter().find(|m| m.topic == "FaceReko/back/command").expect("the command went by the broker");
    let (captured, order) = (command.payload.clone(), command.json());
    assert_eq!((order["command"].as_str(), order["by"].as_str()), (Some("disarm"), Some("ada")));
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(acks(&messages, "back", &id)[0]["result"], "ok");
    watcher
        .wait_until("the back door's state to say disarmed", logs, |messages| {
            messages.iter().rev().find(|m| m.topic == "FaceReko/back/state").is_some_and(|m| m.json()["armed"] == false)
        })
        .await;

    // The site's admin machine arms it again; then a replay and an expired command do nothing.
    let (admin, _admin_loop) = client(&broker, "site-admin");
    let arm = Order::new(Action::Arm, "site-admin", OffsetDateTime::now_utc());
    send(&admin, "back", serde_json::to_vec(&arm).unwrap()).await;
    watcher.wait_until("the arm's acknowledgement", logs, |m| !acks(m, "back", &arm.id).is_empty()).await;
    assert!(armed(&back));
    send(&admin, "back", captured).await;
    watcher.wait_until("the replay's refusal", logs, |m| acks(m, "back", &id).len() == 2).await;
    let refusal = &acks(&watcher.messages(), "back", &id)[1];
    assert_eq!(refusal["result"], "refused");
    assert!(refusal["reason"].as_str().unwrap().contains("replay"), "{refusal}");
    let now = OffsetDateTime::now_utc();
    let late = Order {
        issued_at: now - Duration::from_secs(60),
        expires_at: now - Duration::from_secs(30),
        ..Order::new(Action::Disarm, "site-admin", now)
    };
    send(&admin, "back", serde_json::to_vec(&late).unwrap()).await;
    watcher.wait_until("the late command's refusal", logs, |m| !acks(m, "back", &late.id).is_empty()).await;
    assert!(acks(&watcher.messages(), "back", &late.id)[0]["reason"].as_str().unwrap().contains("expired"));
    assert!(armed(&back), "neither the replay nor the late command disarmed it");

    // A client with a certificate from the same CA but without the site's rights: the broker
    // drops its command, so the door never sees it.
    let (mallory, _mallory_loop) = client(&broker, "mallory");
    let forged = Order::new(Action::Disarm, "mallory", OffsetDateTime::now_utc());
    send(&mallory, "back", serde_json::to_vec(&forged).unwrap()).await;
    let denied = Instant::now();
    while !broker.log().contains("Denied PUBLISH from test-mallory") {
        assert!(denied.elapsed() < Duration::from_secs(10), "the broker did not deny it:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(acks(&watcher.messages(), "back", &forged.id).is_empty(), "the door never saw it");
    assert!(!back.daemon_log().contains(&forged.id));
    assert!(armed(&back));

    // A stopped door: the broker says offline (its last will), and a command is refused at once.
    let commands_before = watcher.messages().iter().filter(|m| m.topic == "FaceReko/back/command").count();
    back.kill();
    http.site_until("back", "offline");
    let started = Instant::now();
    http.exchange("POST", "/site/back/disarm", &[]);
    assert!(started.elapsed() < facereko::site_link::ACK_WAIT, "refused without waiting");
    let page = http.exchange("GET", "/site", &[]).body;
    assert!(flash(&page).contains("Back door is offline: nothing was sent"), "{}", flash(&page));
    let commands_after = watcher.messages().iter().filter(|m| m.topic == "FaceReko/back/command").count();
    assert_eq!(commands_before, commands_after, "nothing was published, nothing queued");
    front.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_console_that_is_not_a_door_lists_the_door_and_disarms_it_over_mqtt() {
    let server = MariaDb::start();
    let database = server.database();
    let broker = Mosquitto::start_with_acl(&["front", "office-pc"], ACL);
    let mut front = door_on_site(&database.url, &broker, "front", "Front door", None);
    front.start();
    let port = free_port();
    let mut settings = broker.door_config_as("office-pc");
    settings.push(("web.listen".to_owned(), format!("\"127.0.0.1:{port}\"")));
    let mut console = TestDoor::on_database_with(&database.url, None, &pairs(&settings));
    let password = console.path("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    console.ok(&["user", "add", "ada", "--password-file", password.to_str().unwrap()]);
    console.start_console(port);
    let logs = || front.daemon_log() + &console.daemon_log() + &broker.log();

    let mut http = Http::signed_in(port, "ada");
    let page = http.site_until("front", "online");
    assert_eq!(page.matches("class=\"card site-door\"").count(), 1, "the console is no door of the site: {page}");
    let started = Instant::now();
    let sent = http.exchange("POST", "/site/front/disarm", &[]);
    println!("disarm from a console, acknowledged: {} ms", started.elapsed().as_millis());
    assert_eq!((sent.status, sent.location.as_str()), (303, "/site#door-front"), "{}", sent.body);
    let page = http.exchange("GET", "/site", &[]).body;
    assert!(
        flash(&page).contains("Front door: disarm done (the door acknowledged it)"),
        "{}\n{}",
        flash(&page),
        logs()
    );
    assert!(!armed(&front), "carried out by the door");

    // Its home is the site view; a door's own page says this machine is not one.
    assert_eq!(http.exchange("GET", "/", &[]).location, "/site");
    let arm = http.exchange("POST", "/arm", &[]);
    assert_eq!(arm.status, 404, "{}", arm.body);
    assert!(arm.body.contains("This machine is not a door"), "{}", arm.body);
    assert!(!console.daemon_log().contains("registered this door"), "{}", console.daemon_log());
    console.stop();
    front.stop();
}
