//! The step-up before changing accounts, and the server's half of passkeys that needs no
//! authenticator: where they work, and answers that are refused and logged. The whole passkey
//! round trip runs in Chromium (tests/it/browser.rs).

use std::time::Duration;

use axum::http::StatusCode;
use facereko::accounts::Role;
use facereko::engine;
use facereko::store::{SignInMethod, SignInOutcome, SignInQuery};
use serde_json::json;

use super::visitors::{MOBILE, approve_path, with_visitors};
use super::{ADMIN, App, Browser, PASSWORD, VIEWER, flash};
use crate::common::smtp::{Security, SmtpServer};
use crate::common::webhook::Receiver;

/// The methods and outcomes logged so far, oldest first.
async fn logged(app: &App) -> Vec<(SignInMethod, SignInOutcome)> {
    let query = SignInQuery { limit: 50, ..SignInQuery::default() };
    let entries = app.store.sign_ins().sign_ins(&query).await.unwrap();
    entries.iter().rev().map(|e| (e.attempt.method, e.attempt.outcome)).collect()
}

async fn has_account(app: &App, name: &str) -> bool {
    app.store.accounts().user_by_name(name).await.unwrap().is_some()
}

#[tokio::test]
async fn changing_accounts_asks_for_the_password_again_once_the_sign_in_is_old() {
    let app = App::start(engine::simulated::NAME, |config| config.web.step_up_after = Duration::ZERO).await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let mut admin = app.signed_in(ADMIN).await;
    admin.get("/settings").await;
    let grace = [("username", "grace"), ("role", "viewer"), ("password", PASSWORD), ("confirm", PASSWORD)];

    let asked = admin.post("/accounts", &grace).await;
    assert_eq!(asked.status, StatusCode::FORBIDDEN, "{}", asked.text);
    assert!(asked.text.contains("Confirm it is you") && asked.text.contains("Use a passkey instead"), "{}", asked.text);
    assert!(asked.text.contains(r#"<form class="stack" id="step-up-form" method="post" action="/accounts">"#));
    assert!(asked.text.contains(r#"name="username" value="grace""#), "the form's fields come back: {}", asked.text);
    assert!(!has_account(&app, "grace").await, "nothing done yet");

    let wrong = admin.post("/accounts", &[&grace[..], &[("step_up_password", "not it")]].concat()).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    assert!(wrong.text.contains("did not prove it is you"), "{}", wrong.text);
    assert!(!wrong.text.contains("not it"), "the password is not sent back");
    assert!(!has_account(&app, "grace").await);

    let right = admin.post("/accounts", &[&grace[..], &[("step_up_password", PASSWORD)]].concat()).await;
    assert_eq!((right.status, right.location()), (StatusCode::SEE_OTHER, "/settings#accounts"), "{}", right.text);
    assert!(has_account(&app, "grace").await, "the action went on with the proof");
    assert!(flash(&admin.get("/settings").await.text).contains("Added the viewer account grace"));

    // A passkey answer that is no answer to anything is refused and logged as such.
    let forged = [("step_up_ceremony", "made-up"), ("step_up_passkey", "{\"id\":\"x\"}")];
    let refused = admin.post("/accounts/grace/remove", &forged).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert!(has_account(&app, "grace").await);

    // A viewer is refused before anything is checked.
    let mut viewer = app.signed_in(VIEWER).await;
    viewer.get("/settings").await;
    let as_viewer = viewer.post("/accounts/grace/remove", &[("step_up_password", PASSWORD)]).await;
    assert_eq!(as_viewer.status, StatusCode::FORBIDDEN);
    assert!(has_account(&app, "grace").await);

    let checks: Vec<_> =
        logged(&app).await.into_iter().filter(|(method, _)| *method != SignInMethod::Password).collect();
    assert_eq!(
        checks,
        [
            (SignInMethod::PasswordCheck, SignInOutcome::WrongPassword),
            (SignInMethod::PasswordCheck, SignInOutcome::Succeeded),
            (SignInMethod::PasskeyCheck, SignInOutcome::PasskeyRefused),
        ],
        "the viewer was refused before any check"
    );
}

async fn ring(visitor: &mut Browser<'_>, name: &str) {
    visitor.get("/visit").await;
    let answer = visitor.post("/visit", &[("name", name), ("mobile", MOBILE), ("email", ""), ("message", "Hi")]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn opening_for_a_visitor_from_an_old_sign_in_asks_first_and_the_owners_link_does_not() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(engine::simulated::NAME, |config| {
        with_visitors(config, &smtp, &sms);
        config.web.step_up_after = Duration::ZERO;
    })
    .await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut visitor = app.browser([192, 0, 2, 12]);
    ring(&mut visitor, "Dan").await;
    let link = approve_path(&smtp, 1).await;
    let mut admin = app.signed_in(ADMIN).await;
    let unsigned = link.split('?').next().unwrap().to_owned();
    admin.get(&unsigned).await;
    let asked = admin.post(&unsigned, &[("action", "open")]).await;
    assert_eq!(asked.status, StatusCode::FORBIDDEN, "{}", asked.text);
    assert!(asked.text.contains("Confirm it is you") && asked.text.contains(r#"name="action" value="open""#));
    assert!(app.log().await.is_empty(), "the door did not open");
    let opened = admin.post(&unsigned, &[("action", "open"), ("step_up_password", PASSWORD)]).await;
    assert!(opened.text.contains("The door is open for Dan"), "{}", opened.text);

    // The signed link from the owner's mail is its own proof.
    ring(&mut visitor, "Eve").await;
    let link = approve_path(&smtp, 2).await;
    let mut owner = app.browser([192, 0, 2, 30]);
    owner.get(&link).await;
    let turned_away = owner.post(&link, &[("action", "deny")]).await;
    assert!(turned_away.text.contains("Eve was turned away"), "{}", turned_away.text);
}

#[tokio::test]
async fn a_recent_sign_in_changes_accounts_without_asking() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    admin.get("/settings").await;
    let grace = [("username", "grace"), ("role", "viewer"), ("password", PASSWORD), ("confirm", PASSWORD)];
    assert_eq!(admin.post("/accounts", &grace).await.status, StatusCode::SEE_OTHER);
    assert!(has_account(&app, "grace").await);
}

#[tokio::test]
async fn passkeys_work_at_localhost_over_http_and_refused_answers_are_logged() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut by_address = app.browser([10, 0, 0, 5]);
    by_address.host = Some("192.168.1.20:8080");
    let page = by_address.get("/login").await;
    assert!(
        page.text.contains("Passkeys need HTTPS") && !page.text.contains("Sign in with a passkey"),
        "{}",
        page.text
    );
    let csrf = by_address.csrf.clone();
    let refused = by_address.post_json("/login/passkey/options", json!({ "csrf": csrf })).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);

    let mut local = app.browser([127, 0, 0, 1]);
    local.host = Some("localhost:8080");
    assert!(local.get("/login").await.text.contains("Sign in with a passkey"));
    let csrf = local.csrf.clone();
    let forged = local.post_json("/login/passkey/options", json!({ "csrf": "not the token" })).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "the form token guards the ceremony too");
    let started = local.post_json("/login/passkey/options", json!({ "csrf": csrf })).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.text);
    let started: serde_json::Value = serde_json::from_str(&started.text).unwrap();
    let options = &started["options"]["publicKey"];
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["userVerification"], "required");
    assert!(options["challenge"].as_str().is_some_and(|c| c.len() >= 43), "a fresh challenge: {options}");

    let credential = json!({
        "id": "AAEC", "rawId": "AAEC", "type": "public-key",
        "response": { "authenticatorData": "AA", "clientDataJSON": "AA", "signature": "AA", "userHandle": null },
    });
    let finish = json!({ "csrf": csrf, "ceremony": started["ceremony"], "credential": credential });
    let unknown = local.post_json("/login/passkey", finish.clone()).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "{}", unknown.text);
    assert!(unknown.text.contains("not one of this door"), "{}", unknown.text);
    let garbage = local.post_json("/login/passkey", json!({ "csrf": csrf, "ceremony": "x", "credential": 7 })).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST, "{}", garbage.text);
    assert!(!local.cookies.contains_key("facereko_session"), "never signed in");
    assert_eq!(
        logged(&app).await,
        [
            (SignInMethod::Passkey, SignInOutcome::UnknownPasskey),
            (SignInMethod::Passkey, SignInOutcome::PasskeyRefused),
        ]
    );

    // Adding one needs a session, and a name.
    let signed_out = local.post_json("/account/passkeys/options", json!({ "csrf": csrf, "name": "Phone" })).await;
    assert_eq!(signed_out.status, StatusCode::UNAUTHORIZED, "{}", signed_out.text);
    let mut admin = app.signed_in(ADMIN).await;
    admin.host = Some("localhost:8080");
    let page = admin.get("/settings").await;
    assert!(page.text.contains("Your passkeys") && page.text.contains("No passkeys yet."), "{}", page.text);
    let csrf = admin.csrf.clone();
    let unnamed = admin.post_json("/account/passkeys/options", json!({ "csrf": csrf, "name": " " })).await;
    assert_eq!(unnamed.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", unnamed.text);
    let named = admin.post_json("/account/passkeys/options", json!({ "csrf": csrf, "name": "Phone" })).await;
    assert_eq!(named.status, StatusCode::OK, "{}", named.text);
    let named: serde_json::Value = serde_json::from_str(&named.text).unwrap();
    assert_eq!(named["options"]["publicKey"]["user"]["name"], ADMIN);
    let stale = json!({ "csrf": csrf, "ceremony": "made-up", "credential": {} });
    assert_eq!(admin.post_json("/account/passkeys", stale).await.status, StatusCode::GONE);
}

#[tokio::test]
async fn adding_a_passkey_to_an_old_sign_in_needs_the_password() {
    let app = App::start(engine::simulated::NAME, |config| config.web.step_up_after = Duration::ZERO).await;
    app.add_user(ADMIN, Role::Admin).await;
    let mut admin = app.signed_in(ADMIN).await;
    admin.host = Some("localhost:8080");
    assert!(admin.get("/settings").await.text.contains("Your password"));
    let csrf = admin.csrf.clone();
    let start = |password: &str| json!({ "csrf": csrf, "name": "Phone", "password": password });

    let bare = admin.post_json("/account/passkeys/options", start("")).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN, "{}", bare.text);
    assert!(bare.text.contains("needs your password"), "{}", bare.text);
    let wrong = admin.post_json("/account/passkeys/options", start("not it")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    let right = admin.post_json("/account/passkeys/options", start(PASSWORD)).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.text);
    assert!(right.text.contains("\"ceremony\""), "the ceremony starts: {}", right.text);
    let checks = logged(&app).await;
    assert!(
        checks.ends_with(&[
            (SignInMethod::PasswordCheck, SignInOutcome::WrongPassword),
            (SignInMethod::PasswordCheck, SignInOutcome::Succeeded),
        ]),
        "{checks:?}"
    );
}
