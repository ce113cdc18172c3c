//! Rings without words, against a real door on simulated hardware with a real SMTP server: the
//! simulated doorbell pressed from the dashboard, and an unknown card tapped while the door camera
//! sees a face. Each keeps a visit with the camera's photo and no contact, mails the owner, and
//! the door says the owner was told; the owner may then only open or turn away.

use std::time::Duration;

use axum::http::StatusCode;
use facereko::access::{Decision, Reason};
use facereko::store::{Visit, VisitQuery, VisitStatus};

use super::visitors::{approve_path, with_visitors};
use super::{ADMIN, App, pattern_png, said};
use crate::common::smtp::{Security, SmtpServer};
use crate::common::webhook::Receiver;

/// Long enough for a ring that was going to happen to have been kept and mailed.
const NO_RING_WITHIN: Duration = Duration::from_millis(1500);

async fn visits(app: &App) -> Vec<Visit> {
    app.store.visits().list_visits(&VisitQuery::default()).await.unwrap()
}

#[tokio::test]
async fn the_dashboards_bell_rings_once_within_the_hold_off_and_offers_only_open_or_turn_away() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(facereko::engine::simulated::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    app.add_user(ADMIN, facereko::accounts::Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    let dashboard = admin.get("/").await;
    assert!(dashboard.text.contains("Ring the bell"), "{}", dashboard.text);

    let pressed = admin.post("/ring", &[]).await;
    assert_eq!((pressed.status, pressed.location()), (StatusCode::SEE_OTHER, "/"), "{}", pressed.text);
    let path = approve_path(&smtp, 1).await;
    let mail = &smtp.received()[0];
    assert_eq!(mail["subject"], "FaceReko: someone rang the bell at front");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("to let them in or turn them away") && !text.contains("passcode"), "{text}");
    assert_eq!(said(&app, 1).await, ["The owner has been told"]);
    let rang = visits(&app).await;
    assert_eq!(rang.len(), 1);
    assert_eq!(
        (rang[0].name.as_str(), rang[0].email.as_deref(), rang[0].mobile.as_deref()),
        ("Someone at the door", None, None)
    );
    let photo = rang[0].photo.as_deref().expect("the door camera's photo is kept");
    assert!(app.config.photos_dir().join(photo).is_file());

    // Pressed again at once, through the handle `facereko ring` uses: held off.
    app.control().presses.as_ref().expect("the bell is simulated").press().await.unwrap();
    tokio::time::sleep(NO_RING_WITHIN).await;
    assert_eq!(visits(&app).await.len(), 1, "a second press within the hold-off does not ring");
    assert_eq!(smtp.received().len(), 1, "nor mail the owner again");
    assert_eq!(app.recorder.said().len(), 1);

    // No contact: the owner may open or turn away, and a passcode is refused.
    let mut owner = app.browser([198, 51, 100, 9]);
    let page = owner.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Open the door now") && page.text.contains("Turn away"), "{}", page.text);
    assert!(!page.text.contains("Send a passcode") && !page.text.contains("QR pass"), "{}", page.text);
    assert_eq!(owner.get(&path.replacen("?", "/photo?", 1)).await.status, StatusCode::OK);
    let refused = owner.post(&path, &[("action", "passcode")]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(visits(&app).await[0].status, VisitStatus::Pending, "the refusal decided nothing");
    let turned_away = owner.post(&path, &[("action", "deny")]).await;
    assert!(turned_away.text.contains("was turned away"), "{}", turned_away.text);
    assert_eq!(visits(&app).await[0].status, VisitStatus::Denied);
    assert!(sms.requests().is_empty(), "nothing went to anyone but the owner");
}

#[tokio::test]
async fn an_unknown_card_rings_after_its_denial_only_with_a_face_in_view() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(facereko::engine::simulated::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    app.show_for_card("DEADBEEF", "face.png", &pattern_png(1));
    let taps = app.control().taps.clone().expect("the reader is simulated");

    // The camera shows a blank wall for this card: denied as always, and no ring.
    taps.tap("CAFEBABE".parse().unwrap()).await.unwrap();
    let rows = app.wait_for_rows(1).await;
    assert_eq!((rows[0].event.decision, rows[0].event.reason), (Decision::Denied, Reason::UnknownCard));
    tokio::time::sleep(NO_RING_WITHIN).await;
    assert!(visits(&app).await.is_empty(), "no face, no ring");
    assert!(smtp.received().is_empty());

    // A face in view: the same denial, with no photo and no capture on the tap's path, then a ring.
    taps.tap("DEADBEEF".parse().unwrap()).await.unwrap();
    let rows = app.wait_for_rows(2).await;
    let denied = &rows[0].event;
    assert_eq!((denied.decision, denied.reason), (Decision::Denied, Reason::UnknownCard));
    assert_eq!((denied.photo.as_deref(), denied.timings.capture_ms), (None, None), "{denied:?}");
    let path = approve_path(&smtp, 1).await;
    let mail = &smtp.received()[0];
    assert_eq!(mail["subject"], "FaceReko: someone with an unknown card is at front");
    assert!(mail["text"].as_str().unwrap().contains("unknown card ****BEEF"), "{mail}");
    let rang = visits(&app).await;
    assert_eq!(rang.len(), 1);
    assert_eq!(rang[0].name, "Unknown card ****BEEF");
    assert_eq!((rang[0].email.as_deref(), rang[0].mobile.as_deref()), (None, None));
    assert!(rang[0].photo.is_some(), "the face the camera saw is the visit's photo");
    let phrases = said(&app, 3).await;
    assert!(phrases[0].starts_with("Access denied") && phrases[1].starts_with("Access denied"), "{phrases:?}");
    assert_eq!(phrases[2], "The owner has been told");
    let page = app.browser([198, 51, 100, 10]).get(&path).await;
    assert!(page.text.contains("Unknown card ****BEEF") && !page.text.contains("Send a passcode"), "{}", page.text);
    assert_eq!(app.log().await.len(), 2, "the ring logged no attempt of its own");
}

#[tokio::test]
async fn unknown_cards_do_not_ring_when_turned_off() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(facereko::engine::simulated::NAME, |config| {
        with_visitors(config, &smtp, &sms);
        config.visitors.unknown_card_rings = false;
    })
    .await;
    app.show_for_card("DEADBEEF", "face.png", &pattern_png(1));
    app.control().taps.clone().unwrap().tap("DEADBEEF".parse().unwrap()).await.unwrap();
    assert_eq!(app.wait_for_rows(1).await[0].event.reason, Reason::UnknownCard);
    tokio::time::sleep(NO_RING_WITHIN).await;
    assert!(visits(&app).await.is_empty());
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn without_visitors_the_dashboard_has_no_bell_and_a_press_says_why() {
    let app = App::simulated().await;
    app.add_user(ADMIN, facereko::accounts::Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    assert!(!admin.get("/").await.text.contains("Ring the bell"), "nothing would listen to it");
    let pressed = admin.post("/ring", &[]).await;
    assert_eq!(pressed.status, StatusCode::BAD_REQUEST);
    assert!(pressed.text.contains("rings need visitors.enabled = true"), "{}", pressed.text);
}
