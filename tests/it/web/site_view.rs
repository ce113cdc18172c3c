//! The site view through the router, with the door's site link on a real Mosquitto: every door
//! with its retained state, offline and cut-off doors, buttons for admins only, the step-up before
//! disarm and open, commands that reach the door through its command topic, and the history's
//! door filter. Two real daemons are in tests/it/site_view.rs.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use facereko::access::{Decision, Reason};
use facereko::accounts::Role;
use facereko::config::Config;
use facereko::engine;
use facereko::site_link::ACK_WAIT;
use facereko::store::{Notices, SiteDoor};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use time::OffsetDateTime;

use super::{ADMIN, App, Browser, PASSWORD, VIEWER, flash};
use crate::common::{self, mosquitto::Mosquitto};

/// An armed door's retained state, as a running door publishes it.
pub(super) const ARMED: &str = r#"{"state":"online","armed":true,"lock":"locked","reader":{"backend":"simulated","error":null},
"camera":{"backend":"simulated","error":null},"engine":"simulated","backlog":0}"#;

/// `config` as door `front` of a site on `broker`, taking commands.
pub(super) fn on_site(config: &mut Config, broker: &Mosquitto) {
    config.door.id = "front".into();
    config.mqtt.url = broker.url();
    config.mqtt.ca_file = Some(broker.certs.path("ca.pem"));
    config.mqtt.cert_file = Some(broker.certs.path("door.pem"));
    config.mqtt.key_file = Some(broker.certs.path("door.key"));
    config.mqtt.door_state = true;
    config.mqtt.commands = true;
}

/// Publishes `messages` (topic, payload) retained, as the doors would, and waits for the broker to take them.
pub(super) async fn retain(broker: &Mosquitto, messages: &[(&str, &str)]) {
    let (client, mut events) = AsyncClient::new(broker.client_options("fake-doors", Some("subscriber")), 16);
    for (topic, payload) in messages {
        client.publish(*topic, QoS::AtLeastOnce, true, payload.as_bytes().to_vec()).await.unwrap();
    }
    let mut acknowledged = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while acknowledged < messages.len() {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await.expect("the broker takes the states") {
                acknowledged += 1;
            }
        }
    })
    .await
    .expect("the broker acknowledges the states");
}

pub(super) async fn register(app: &App, id: &str, name: &str, last_seen: OffsetDateTime) {
    let door = SiteDoor {
        id: id.into(),
        name: name.into(),
        web_address: Some(format!("https://{id}.example.net")),
        version: "1.0.0".into(),
        last_seen,
    };
    app.store.doors().register_door(&door).await.unwrap();
}

/// The part of the site page about door `id`.
pub(super) fn card<'p>(page: &'p str, id: &str) -> &'p str {
    let start = page.find(&format!("id=\"door-{id}\"")).unwrap_or_else(|| panic!("no door {id} on:\n{page}"));
    let rest = &page[start..];
    &rest[..rest.find("</section>").unwrap()]
}

/// Loads the site page until `door`'s card says `what` (the link hears the retained states).
pub(super) async fn site_until(browser: &mut Browser<'_>, door: &str, what: &str) -> String {
    let started = Instant::now();
    loop {
        let page = browser.get("/site").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        if card(&page.text, door).contains(what) {
            return page.text;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{door} never showed {what:?}:\n{}", page.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_door_shows_its_state_offline_and_cut_off_doors_say_so_and_only_admins_get_buttons() {
    let broker = Mosquitto::start();
    let app = App::start(engine::simulated::NAME, |config| on_site(config, &broker)).await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let now = OffsetDateTime::now_utc();
    register(&app, "front", "Front door", now).await;
    register(&app, "back", "Back door", now).await;
    register(&app, "garage", "Garage", now - Duration::from_secs(600)).await;
    retain(&broker, &[("FaceReko/back/state", ARMED), ("FaceReko/garage/state", "offline")]).await;

    let mut admin = app.signed_in(ADMIN).await;
    site_until(&mut admin, "back", "online").await;
    let page = site_until(&mut admin, "garage", "offline").await;
    let back = card(&page, "back");
    assert!(back.contains("Back door") && back.contains("Armed") && back.contains("simulated · working"), "{back}");
    assert!(back.contains(r#"action="/site/back/disarm""#) && back.contains(r#"action="/site/back/open""#), "{back}");
    assert!(!back.contains(r#"action="/site/back/arm""#), "an armed door offers disarm, not arm: {back}");
    assert!(!back.contains("data-cut-off"), "seen just now: {back}");
    let garage = card(&page, "garage");
    assert!(garage.contains("data-cut-off") && garage.contains("Cut off from the database"), "{garage}");
    assert!(!garage.contains("action=\"/site/garage/"), "no command to an offline door: {garage}");
    let front = card(&page, "front");
    assert!(front.contains("state unknown") && !front.contains("action=\"/site/front/"), "{front}");
    assert!(front.contains(r#"href="/history?door=front""#), "{front}");

    let mut viewer = app.signed_in(VIEWER).await;
    let seen = site_until(&mut viewer, "back", "online").await;
    assert!(!card(&seen, "back").contains("action="), "viewers see, never command: {}", card(&seen, "back"));
    assert_eq!(viewer.post("/site/back/arm", &[]).await.status, StatusCode::FORBIDDEN);

    // Offline: refused at once, nothing sent.
    let started = Instant::now();
    let offline = admin.post("/site/garage/disarm", &[]).await;
    assert_eq!((offline.status, offline.location()), (StatusCode::SEE_OTHER, "/site#door-garage"));
    assert!(started.elapsed() < ACK_WAIT, "not waited for");
    assert!(flash(&admin.get("/site").await.text).contains("Garage is offline: nothing was sent"));

    // Online by its state, but nothing takes its commands: no answer after a few seconds.
    let started = Instant::now();
    admin.post("/site/back/disarm", &[]).await;
    assert!(started.elapsed() >= ACK_WAIT);
    let said = flash(&admin.get("/site").await.text);
    assert!(said.contains("No answer from Back door within 5 s"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disarm_and_open_ask_for_the_step_up_then_reach_the_door_through_its_command_topic() {
    let broker = Mosquitto::start();
    let app = App::start(engine::simulated::NAME, |config| {
        on_site(config, &broker);
        config.web.step_up_after = Duration::ZERO;
    })
    .await;
    app.add_user(ADMIN, Role::Admin).await;
    register(&app, "front", "Front door", OffsetDateTime::now_utc()).await;
    // The publisher does not run here: its retained state is written for it.
    retain(&broker, &[("FaceReko/front/state", ARMED)]).await;
    let mut admin = app.signed_in(ADMIN).await;
    site_until(&mut admin, "front", "online").await;

    let asked = admin.post("/site/front/disarm", &[]).await;
    assert_eq!(asked.status, StatusCode::FORBIDDEN, "{}", asked.text);
    assert!(asked.text.contains("Confirm it is you"), "{}", asked.text);
    assert!(app.armed().await, "nothing done before the proof");
    let proved = admin.post("/site/front/disarm", &[("step_up_password", PASSWORD)]).await;
    assert_eq!((proved.status, proved.location()), (StatusCode::SEE_OTHER, "/site#door-front"), "{}", proved.text);
    let said = flash(&admin.get("/site").await.text);
    assert!(said.contains("Front door: disarm done (the door acknowledged it)"), "{said}");
    assert!(!app.armed().await, "carried out through the door's command path");

    // Arming never opens anything: no step-up.
    admin.get("/site").await;
    admin.post("/site/front/arm", &[]).await;
    assert!(flash(&admin.get("/site").await.text).contains("arm done"));
    assert!(app.armed().await);

    assert_eq!(admin.post("/site/front/open", &[]).await.status, StatusCode::FORBIDDEN, "open asks too");
    admin.post("/site/front/open", &[("step_up_password", PASSWORD)]).await;
    assert!(flash(&admin.get("/site").await.text).contains("open done"));
    let opened = app.wait_for_rows(1).await.remove(0);
    assert_eq!((opened.event.decision, opened.event.reason), (Decision::Granted, Reason::RemoteOpened));
    assert_eq!(opened.event.detail.as_deref(), Some("opened by ada"));
}

#[tokio::test]
async fn the_history_shows_each_attempts_door_and_filters_by_door() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    register(&app, "garage", "Garage", OffsetDateTime::now_utc()).await;
    for (n, door) in [(1, "front"), (2, "garage"), (3, "front")] {
        let event = facereko::access::AccessEvent { door: door.into(), ..common::access_event(format!("door-{n}")) };
        app.store.door().record_attempt(&event, &Notices::NONE).await.unwrap();
    }
    let mut admin = app.signed_in(ADMIN).await;
    let all = admin.get("/history").await.text;
    assert!(all.contains("3 attempts") && all.contains(r#"<option value="garage">garage</option>"#), "{all}");
    let garage = admin.get("/history?door=garage").await.text;
    assert!(garage.contains("1 attempt"), "{garage}");
    assert!(garage.contains(r#"<td data-label="Door">garage</td>"#), "{garage}");
    assert!(!garage.contains(r#"<td data-label="Door">front</td>"#), "{garage}");
    let rows = admin.get("/history/rows?door=front").await;
    assert_eq!(rows.headers["x-total-count"], "2");
}
