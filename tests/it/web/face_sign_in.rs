//! Face sign-in through the router, with the on-device engine and real faces of the shared `lfw10`
//! set: an admin links an account to an enrolled person, the account turns it on, a burst of the
//! owner's face signs in as a viewer (or with the account's own role when an admin allowed it),
//! a stranger's face and a burst without a face are refused, and every attempt is in the sign-in
//! log with its similarity and a picture that only admins see.

use axum::http::StatusCode;
use facereko::accounts::Role;
use facereko::engine;
use facereko::liveness;
use facereko::store::{FaceLink, SignInMethod, SignInOutcome, SignInQuery};

use super::{ADMIN, App, Browser, VIEWER, flash};
use crate::common;

const OWNER: &str = "George W Bush";
/// The owner's enrolment photos, and other photos of him that the burst shows.
const ENROLLED: [&str; 2] =
    ["lfw10/George_W_Bush/George_W_Bush_0001.jpg", "lfw10/George_W_Bush/George_W_Bush_0003.jpg"];
const OWNER_BURST: [&str; 3] = [
    "lfw10/George_W_Bush/George_W_Bush_0002.jpg",
    "lfw10/George_W_Bush/George_W_Bush_0004.jpg",
    "lfw10/George_W_Bush/George_W_Bush_0005.jpg",
];
const STRANGER_BURST: [&str; 3] = [
    "lfw10/Colin_Powell/Colin_Powell_0001.jpg",
    "lfw10/Colin_Powell/Colin_Powell_0002.jpg",
    "lfw10/Colin_Powell/Colin_Powell_0003.jpg",
];

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(common::face(relative)).unwrap()
}

/// Posts a burst as the sign-in page's script does: the form's token, the user name, the frames.
async fn face_sign_in(browser: &mut Browser<'_>, username: &str, frames: &[Vec<u8>]) -> super::Answer {
    let boundary = "facereko-face-boundary";
    let text = |name: &str, value: &str| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").into_bytes()
    };
    let mut body = text("csrf", &browser.csrf.clone());
    body.extend(text("username", username));
    for (i, frame) in frames.iter().enumerate() {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"frame\"; filename=\"frame-{i}.jpg\"\r\n\
                 Content-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(frame);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    let content_type = Some(format!("multipart/form-data; boundary={boundary}"));
    browser.send(axum::http::Method::POST, "/login/face", content_type, body).await
}

async fn face_attempts(app: &App) -> Vec<facereko::store::SignInEntry> {
    let query = SignInQuery { method: Some(SignInMethod::Face), limit: 100, ..SignInQuery::default() };
    app.store.sign_ins().sign_ins(&query).await.unwrap()
}

#[tokio::test]
async fn the_owner_signs_in_with_their_face_as_a_viewer_and_a_stranger_is_refused_and_logged() {
    let app = App::start(engine::local::NAME, |_| {}).await;
    app.add_user(ADMIN, Role::Admin).await;
    app.add_user(VIEWER, Role::Viewer).await;
    let person = app.enrol(OWNER, "04A1B2C3", &read(ENROLLED[0])).await;
    let photos = common::photos(&app.config);
    let owner = app.store.people().person(facereko::access::PersonId(person)).await.unwrap().unwrap();
    let second = facereko::frame::Frame::from_bytes(read(ENROLLED[1]), "test picture").unwrap();
    facereko::enrolment::enrol_face(app.store.as_ref(), app.engine.as_ref(), &photos, &owner, &second).await.unwrap();
    let owner_burst: Vec<Vec<u8>> = OWNER_BURST.iter().map(|path| read(path)).collect();

    // Not linked yet: refused without saying whether the account exists, and logged.
    let mut browser = app.browser([10, 0, 0, 9]);
    browser.get("/login").await;
    let off = face_sign_in(&mut browser, ADMIN, &owner_burst).await;
    assert_eq!(off.status, StatusCode::UNAUTHORIZED, "{}", off.text);
    assert!(off.text.contains("not recognised"), "{}", off.text);
    assert!(!browser.cookies.contains_key("facereko_session"));

    // A viewer cannot link accounts; an admin links theirs to the person, at most viewer.
    let mut viewer = app.signed_in(VIEWER).await;
    viewer.get("/settings").await;
    let person_field = person.to_string();
    let link = [("person", person_field.as_str()), ("max_role", "viewer")];
    assert_eq!(viewer.post(&format!("/accounts/{ADMIN}/face"), &link).await.status, StatusCode::FORBIDDEN);
    let mut admin = app.signed_in(ADMIN).await;
    admin.get("/settings").await;
    let linked = admin.post(&format!("/accounts/{ADMIN}/face"), &link).await;
    assert_eq!((linked.status, linked.location()), (StatusCode::SEE_OTHER, "/settings#accounts"), "{}", linked.text);
    let settings = admin.get("/settings").await;
    assert!(flash(&settings.text).contains("linked for face sign-in"), "{}", flash(&settings.text));
    assert!(settings.text.contains("Turn face sign-in on"), "the owner turns it on themselves");
    let still_off = face_sign_in(&mut browser, ADMIN, &owner_burst).await;
    assert_eq!(still_off.status, StatusCode::UNAUTHORIZED, "linked but not turned on");
    let turned_on = admin.post("/account/face-sign-in", &[("enabled", "true")]).await;
    assert_eq!(turned_on.status, StatusCode::SEE_OTHER, "{}", turned_on.text);
    assert!(admin.get("/settings").await.text.contains("Turn face sign-in off"));

    // The form's token is required, as for the password.
    let mut forger = app.browser([10, 0, 0, 10]);
    forger.get("/login").await;
    forger.csrf = "forged".into();
    assert_eq!(face_sign_in(&mut forger, ADMIN, &owner_burst).await.status, StatusCode::FORBIDDEN);

    // The owner's face: signed in, as a viewer although the account is an admin.
    let signed = face_sign_in(&mut browser, ADMIN, &owner_burst).await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
    assert!(signed.text.contains("\"redirect\":\"/\""), "{}", signed.text);
    assert!(browser.cookies.contains_key("facereko_session"));
    assert_eq!(browser.get("/").await.status, StatusCode::OK);
    browser.get("/settings").await;
    let add = [("username", "mallory"), ("role", "admin"), ("password", "x"), ("confirm", "x")];
    assert_eq!(browser.post("/accounts", &add).await.status, StatusCode::FORBIDDEN, "a face gives a viewer");

    // A stranger's face, and a burst without a face: refused, logged.
    let mut stranger = app.browser([10, 0, 0, 11]);
    stranger.get("/login").await;
    let strangers: Vec<Vec<u8>> = STRANGER_BURST.iter().map(|path| read(path)).collect();
    let refused = face_sign_in(&mut stranger, ADMIN, &strangers).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert!(!stranger.cookies.contains_key("facereko_session"));
    let blank = face_sign_in(&mut stranger, ADMIN, &[common::grey_png()]).await;
    assert_eq!(blank.status, StatusCode::UNAUTHORIZED);
    assert!(blank.text.contains("No face was seen"), "{}", blank.text);

    let attempts = face_attempts(&app).await;
    let outcomes: Vec<SignInOutcome> = attempts.iter().map(|e| e.attempt.outcome).collect();
    assert_eq!(
        outcomes,
        [
            SignInOutcome::NoFace,
            SignInOutcome::FaceNotMatched,
            SignInOutcome::Succeeded,
            SignInOutcome::FaceSignInOff,
            SignInOutcome::FaceSignInOff,
        ]
    );
    let threshold = app.config.web.face_sign_in_threshold;
    let (matched, stranger_attempt) = (&attempts[2], &attempts[1]);
    let owner_similarity = matched.attempt.similarity.unwrap();
    let stranger_similarity = stranger_attempt.attempt.similarity.unwrap();
    assert!(owner_similarity >= threshold, "{owner_similarity} against {threshold}");
    assert!(stranger_similarity < threshold, "{stranger_similarity} against {threshold}");
    assert!(matched.has_thumbnail && stranger_attempt.has_thumbnail, "faces keep a picture");
    assert!(!attempts[0].has_thumbnail && attempts[0].attempt.similarity.is_none(), "no face, no picture");
    assert_eq!(attempts[1].attempt.user_agent.as_deref(), Some(super::TEST_AGENT));

    // Admins see the log with the faces; viewers see neither.
    let log = admin.get("/sign-ins?method=face").await;
    assert_eq!(log.status, StatusCode::OK);
    let picture = format!("/sign-ins/{}/face", stranger_attempt.id);
    assert!(log.text.contains(&picture) && log.text.contains("face_not_matched"), "{}", log.text);
    assert!(log.text.contains(&format!("{stranger_similarity:.1}")), "the similarity is shown");
    let thumbnail = admin.get(&picture).await;
    assert_eq!(thumbnail.status, StatusCode::OK);
    let shown = image::load_from_memory(&thumbnail.bytes).unwrap();
    assert_eq!((shown.width(), shown.height()), (96, 96));
    assert_eq!(browser.get(&picture).await.status, StatusCode::FORBIDDEN, "a viewer sees no faces");
    assert_eq!(admin.get(&format!("/sign-ins/{}/face", attempts[0].id)).await.status, StatusCode::NOT_FOUND);

    // An admin may let the face give the account its own role.
    let allow = [("person", person_field.as_str()), ("max_role", "admin")];
    assert_eq!(admin.post(&format!("/accounts/{ADMIN}/face"), &allow).await.status, StatusCode::SEE_OTHER);
    let mut again = app.browser([10, 0, 0, 12]);
    again.get("/login").await;
    assert_eq!(face_sign_in(&mut again, ADMIN, &owner_burst).await.status, StatusCode::OK);
    again.get("/settings").await;
    let add = [("username", "maria"), ("role", "viewer"), ("password", super::PASSWORD), ("confirm", super::PASSWORD)];
    let added = again.post("/accounts", &add).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "the account's own role: {}", added.text);
}

/// Links `account` to a new person enrolled with `ENROLLED[0]`, as an admin does, and turns face
/// sign-in on, as the account does.
async fn linked_and_on(app: &App, account: &str) {
    let person = app.enrol(OWNER, "04A1B2C3", &read(ENROLLED[0])).await.to_string();
    let mut admin = app.signed_in(ADMIN).await;
    admin.get("/settings").await;
    let link = [("person", person.as_str()), ("max_role", "viewer")];
    assert_eq!(admin.post(&format!("/accounts/{account}/face"), &link).await.status, StatusCode::SEE_OTHER);
    let linked = app.store.face_links().face_link(account).await.unwrap().unwrap();
    app.store.face_links().set_face_link(account, &FaceLink { enabled: true, ..linked }).await.unwrap();
}

#[tokio::test]
async fn a_still_photo_of_the_owner_is_refused_when_liveness_enforces_a_head_turn() {
    let app = App::start(engine::local::NAME, |config| {
        config.liveness.mode = liveness::Mode::Enforce;
        config.liveness.challenge = liveness::Challenge::Turn;
    })
    .await;
    app.add_user(ADMIN, Role::Admin).await;
    linked_and_on(&app, ADMIN).await;
    let mut browser = app.browser([10, 0, 0, 30]);
    let page = browser.get("/login").await;
    assert!(page.text.contains("turn your head a little when asked"), "the page asks for the turn the door asks for");
    assert!(page.text.contains("data-pace=\"250\""), "and spreads the frames as the door does");
    // The same photo five times: the owner's face, held still.
    let still = vec![read(OWNER_BURST[0]); 5];
    let refused = face_sign_in(&mut browser, ADMIN, &still).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert!(refused.text.contains("looked like a photo"), "{}", refused.text);
    let attempt = &face_attempts(&app).await[0];
    assert_eq!(attempt.attempt.outcome, SignInOutcome::SpoofSuspected);
    let similarity = attempt.attempt.similarity.unwrap();
    assert!(similarity >= app.config.web.face_sign_in_threshold, "the face itself matched: {similarity}");
}

#[tokio::test(start_paused = true)]
async fn face_sign_in_counts_against_the_address_like_password_guesses() {
    let app = App::simulated().await;
    app.add_user(VIEWER, Role::Viewer).await;
    let mut guesser = app.browser([10, 0, 0, 20]);
    guesser.get("/login").await;
    let mut through = 0;
    let refused = loop {
        let answer = face_sign_in(&mut guesser, &format!("user{through}"), &[common::grey_png()]).await;
        match answer.status {
            StatusCode::UNAUTHORIZED => through += 1,
            status => break (status, answer.text),
        }
    };
    assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS, "{}", refused.1);
    assert!(refused.1.contains("try again in"), "{}", refused.1);
    assert_eq!(through, 15, "the password's limits: ten free, then waits of 1, 2, 4, 8 and 16 s");
    assert_eq!(guesser.sign_in(VIEWER, super::PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS, "one count");
    let attempts = face_attempts(&app).await;
    assert_eq!(attempts[0].attempt.outcome, SignInOutcome::TooManyAttempts);
    assert!(attempts[1..].iter().all(|e| e.attempt.outcome == SignInOutcome::UnknownAccount));
}
