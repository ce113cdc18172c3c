//! The visitor's journey through the web app, against a real door on simulated hardware: a ring
//! on `/visit` mails the owner a signed link through a real SMTP server, the owner sends a passcode
//! that reaches a loopback SMS webhook, and the passcode opens the relay once on `/door`.

use std::time::Duration;

use axum::http::StatusCode;
use facereko::access::Reason;
use facereko::config::Config;
use facereko::hw::simulated::Output;
use facereko::store::{VisitQuery, VisitStatus};

use super::{ADMIN, App, Browser, flash, said};
use crate::common::smtp::{Security, SmtpServer};
use crate::common::webhook::Receiver;

const OWNER: &str = "owner@example.com";
pub(super) const MOBILE: &str = "+4915100000009";
pub(super) const WAIT: Duration = Duration::from_secs(20);

/// Visitors on, the owner told by e-mail through `smtp`, passcodes texted through `sms`.
pub(super) fn with_visitors(config: &mut Config, smtp: &SmtpServer, sms: &Receiver) {
    config.visitors.enabled = true;
    config.visitors.tell = vec![format!("email:{OWNER}")];
    config.web.listen = "127.0.0.1:0".into();
    config.web.public_url = Some("https://door.example.com".into());
    config.email.server = "localhost".into();
    config.email.port = Some(smtp.port);
    config.email.security = facereko::notify::email::Security::Plain;
    config.email.from = "FaceReko <door@example.com>".into();
    config.sms.url = sms.url("/send");
    config.sms.body = r#"{"to": "{to}", "text": "{text}"}"#.into();
}

/// The path of the approve link in the owner's latest mail.
pub(super) async fn approve_path(smtp: &SmtpServer, count: usize) -> String {
    let mail = smtp.wait_for_async(count, WAIT).await.remove(count - 1);
    assert_eq!(mail["rcpt_tos"], serde_json::json!([OWNER]));
    let text = mail["text"].as_str().unwrap().to_owned();
    let start = text.find("https://door.example.com/visits/").unwrap_or_else(|| panic!("no link in {text}"));
    let link = text[start..].split_whitespace().next().unwrap();
    link.trim_start_matches("https://door.example.com").to_owned()
}

/// The passcode in the latest text message.
pub(super) fn texted_code(sms: &Receiver, count: usize) -> String {
    let request = sms.wait_for(count, WAIT).remove(count - 1);
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["to"], MOBILE);
    let text = body["text"].as_str().unwrap();
    let digits: String = text.split("is ").nth(1).unwrap().chars().take(6).collect();
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{text}");
    digits
}

async fn ring(visitor: &mut Browser<'_>, name: &str) -> super::Answer {
    assert_eq!(visitor.get("/visit").await.status, StatusCode::OK);
    visitor.post("/visit", &[("name", name), ("mobile", MOBILE), ("email", ""), ("message", "Parcel for you")]).await
}

async fn wait_for_reason(app: &App, count: usize) -> Vec<Reason> {
    app.wait_for_rows(count).await.iter().map(|row| row.event.reason).collect()
}

#[tokio::test]
async fn a_visitor_rings_the_owner_sends_a_passcode_and_it_opens_once() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(facereko::engine::simulated::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    app.add_user(ADMIN, facereko::accounts::Role::Admin).await;

    let mut visitor = app.browser([192, 0, 2, 10]);
    let rang = ring(&mut visitor, "Bob").await;
    assert_eq!(rang.status, StatusCode::OK, "{}", rang.text);
    assert!(rang.text.contains("The owner has been told"), "{}", rang.text);
    assert_eq!(said(&app, 1).await, ["The owner has been told"], "the door says so too");

    // The owner opens the link from the mail in a browser that never signed in.
    let path = approve_path(&smtp, 1).await;
    let mut owner = app.browser([198, 51, 100, 7]);
    let page = owner.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("Bob") && page.text.contains("Parcel for you"), "{}", page.text);
    let photo = owner.get(&path.replacen("?", "/photo?", 1)).await;
    assert_eq!(photo.status, StatusCode::OK, "the door camera's photo, through the same link");
    // GET never acts; the button's POST does.
    assert_eq!(app.store.visits().list_visits(&VisitQuery::default()).await.unwrap()[0].status, VisitStatus::Pending);
    let sent = owner.post(&path, &[("action", "passcode")]).await;
    assert!(sent.text.contains("A passcode went to +4915100000009 by sms"), "{}", sent.text);
    let code = texted_code(&sms, 1);
    let again = owner.post(&path, &[("action", "open")]).await;
    assert!(again.text.contains("already decided"), "a second click does nothing: {}", again.text);

    // The visitor types it on the virtual door: the relay opens, once.
    visitor.get("/door").await;
    let opened = visitor.post("/door", &[("code", &format!("{} {}", &code[..3], &code[3..]))]).await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.text);
    assert!(opened.text.contains("Welcome, Bob. The door is open."), "{}", opened.text);
    assert!(app.recorder.changes().iter().any(|change| change.output == Output::Relay && change.on));
    let rows = app.wait_for_rows(1).await;
    assert_eq!((rows[0].event.reason, rows[0].event.person_name.as_deref()), (Reason::PasscodeOk, Some("Bob")));
    assert_eq!(rows[0].event.card_uid, None);
    let reused = visitor.post("/door", &[("code", &code)]).await;
    assert_eq!(reused.status, StatusCode::FORBIDDEN);
    assert!(reused.text.contains("already used"), "{}", reused.text);
    assert_eq!(wait_for_reason(&app, 2).await[0], Reason::PassUsed);
    // What the door said, in order: the ring, the welcome, the refusal.
    let phrases = said(&app, 3).await;
    assert_eq!(phrases[..2], ["The owner has been told", "Welcome, Bob"]);
    assert!(phrases[2].starts_with("Access denied"), "{phrases:?}");

    // The admin sees the visit as used, and may forget it.
    let mut admin = app.signed_in(ADMIN).await;
    let list = admin.get("/visitors").await;
    assert!(list.text.contains("Bob") && list.text.contains("used"), "{}", list.text);
    let history = admin.get("/history").await;
    assert!(history.text.contains("passcode_ok"), "the history shows the visitor's entry");
    let id = app.store.visits().list_visits(&VisitQuery::default()).await.unwrap()[0].id;
    let forgot = admin.post(&format!("/visitors/{id}/forget"), &[]).await;
    assert_eq!(forgot.location(), "/visitors");
    assert!(flash(&admin.get("/visitors").await.text).contains("deleted"));
    assert!(app.store.visits().visit(id).await.unwrap().is_none());
}

#[tokio::test]
async fn wrong_passcodes_lock_and_links_hold_only_as_signed() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(facereko::engine::simulated::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    let mut visitor = app.browser([192, 0, 2, 11]);
    ring(&mut visitor, "Carol").await;
    let path = approve_path(&smtp, 1).await;
    let mut owner = app.browser([198, 51, 100, 8]);

    // A changed signature or a moved deadline is refused, and decides nothing.
    let forged = path.replace("sig=", "sig=00");
    assert_eq!(owner.get(&forged).await.status, StatusCode::FORBIDDEN);
    let until: i64 = path.split("until=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    let later = path.replace(&format!("until={until}"), &format!("until={}", until + 3600));
    assert_eq!(owner.get(&later).await.status, StatusCode::FORBIDDEN);
    let unsigned = path.split('?').next().unwrap().to_owned();
    assert_eq!(owner.get(&unsigned).await.location(), "/login", "no link, no session: sign in first");
    owner.get(&path).await;
    assert_eq!(owner.post(&forged, &[("action", "passcode")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(owner.post(&path, &[("action", "passcode"), ("csrf", "forged")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(owner.post(&path, &[("action", "explode")]).await.status, StatusCode::BAD_REQUEST);
    assert!(sms.requests().is_empty(), "nothing was sent");

    owner.post(&path, &[("action", "passcode")]).await;
    let code = texted_code(&sms, 1);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    visitor.get("/door").await;
    for try_number in 1..=4 {
        let answer = visitor.post("/door", &[("code", wrong)]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "try {try_number}");
        assert!(answer.text.contains("Permission denied"), "{}", answer.text);
    }
    assert_eq!(said(&app, 5).await[1..5], ["That code is not right"; 4], "the door tells a wrong code apart");
    let fifth = visitor.post("/door", &[("code", wrong)]).await;
    assert!(fifth.text.contains("locked"), "the fifth wrong code locks: {}", fifth.text);
    let right = visitor.post("/door", &[("code", &code)]).await;
    assert!(right.text.contains("locked"), "the right code no longer opens: {}", right.text);
    let reasons = wait_for_reason(&app, 6).await;
    assert_eq!(reasons[..2], [Reason::PasscodeLocked, Reason::PasscodeLocked]);
    assert!(reasons[2..].iter().all(|reason| *reason == Reason::PasscodeWrong), "{reasons:?}");
    assert!(!app.recorder.changes().iter().any(|change| change.output == Output::Relay && change.on));

    // Garbage and oversized posts change nothing.
    let long = "9".repeat(20);
    assert_eq!(visitor.post("/door", &[("code", &long)]).await.status, StatusCode::BAD_REQUEST);
    let refused = visitor.post("/visit", &[("name", ""), ("mobile", "12")]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.store.visits().list_visits(&VisitQuery::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_owner_opens_from_afar_and_visitor_pages_are_off_by_default() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(facereko::engine::simulated::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    app.add_user(ADMIN, facereko::accounts::Role::Admin).await;
    let mut visitor = app.browser([192, 0, 2, 12]);
    ring(&mut visitor, "Dan").await;
    let path = approve_path(&smtp, 1).await;
    // A signed-in admin decides from the Visitors page, without the link.
    let mut admin = app.signed_in(ADMIN).await;
    let unsigned = path.split('?').next().unwrap().to_owned();
    assert_eq!(admin.get(&unsigned).await.status, StatusCode::OK);
    let opened = admin.post(&unsigned, &[("action", "open")]).await;
    assert!(opened.text.contains("The door is open for Dan"), "{}", opened.text);
    let rows = app.wait_for_rows(1).await;
    assert_eq!(rows[0].event.reason, Reason::VisitorOpened);
    assert_eq!(rows[0].event.detail.as_deref(), Some(format!("opened by {ADMIN}").as_str()));
    let visit = &app.store.visits().list_visits(&VisitQuery::default()).await.unwrap()[0];
    assert_eq!((visit.status, visit.decided_by.as_deref()), (VisitStatus::Opened, Some(ADMIN)));

    // A visit nobody decided in time expires, and its link then does nothing.
    ring(&mut visitor, "Eve").await;
    let late = approve_path(&smtp, 2).await;
    let now = time::OffsetDateTime::now_utc();
    app.store.visits().expire_visits(now + Duration::from_secs(3600), now).await.unwrap();
    let expired = admin.post(late.split('?').next().unwrap(), &[("action", "open")]).await;
    assert!(expired.text.contains("Nobody decided this visit in time"), "{}", expired.text);
    assert_eq!(app.wait_for_rows(1).await.len(), 1, "the door did not open again");

    let off = App::simulated().await;
    let mut stranger = off.browser([192, 0, 2, 13]);
    assert_eq!(stranger.get("/visit").await.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.get("/door").await.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.post("/door", &[("code", "123456")]).await.status, StatusCode::NOT_FOUND);
}
