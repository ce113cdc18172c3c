//! Known visitors, with real faces on the on-device engine behind a real door on simulated
//! hardware: a visitor the owner let in is kept with the face from the visit's photo, named in the
//! owner's mail when they ring again, sent a passcode at once when marked auto-pass, and forgotten
//! from the Visitors page at once or by the retention period later.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use facereko::accounts::Role;
use facereko::engine;
use facereko::store::{KnownVisitor, Visit, VisitQuery, VisitStatus, VisitorId};
use time::OffsetDateTime;

use super::visitors::{MOBILE, WAIT, approve_path, texted_code, with_visitors};
use super::{ADMIN, App, flash};
use crate::common;
use crate::common::smtp::{Security, SmtpServer};
use crate::common::webhook::Receiver;

/// Three photos of one man: the second and third are 94.5 and 93.7 alike to the first on the
/// default embedder's scale, above the default threshold of 90 (`facereko compare`).
const TONY: [&str; 3] = [
    "lfw10/Tony_Blair/Tony_Blair_0001.jpg",
    "lfw10/Tony_Blair/Tony_Blair_0009.jpg",
    "lfw10/Tony_Blair/Tony_Blair_0007.jpg",
];
/// Another man: 49 alike to the first of [`TONY`].
const COLIN: &str = "lfw10/Colin_Powell/Colin_Powell_0001.jpg";
const COLINS_MOBILE: &str = "+4915100000022";

/// Puts a face from the shared data set in front of the door camera for the rings that follow
/// (a copy in the test's own folder).
fn at_the_door(app: &App, relative: &str) {
    let scene = app.config.hardware.simulated.camera.as_ref().unwrap().join("default");
    std::fs::remove_dir_all(&scene).unwrap();
    std::fs::create_dir_all(&scene).unwrap();
    std::fs::copy(common::face(relative), scene.join("visitor.jpg")).unwrap();
}

/// Rings on the visitor page from a phone at `address` (each ring from its own, as the ring
/// limit is per address).
async fn ring(app: &App, address: [u8; 4], name: &str, mobile: &str) {
    let mut phone = app.browser(address);
    phone.get("/visit").await;
    let rang = phone.post("/visit", &[("name", name), ("mobile", mobile), ("email", ""), ("message", "")]).await;
    assert_eq!(rang.status, StatusCode::OK, "{}", rang.text);
}

/// The text of the owner's `count`th mail.
async fn mail(smtp: &SmtpServer, count: usize) -> String {
    let mail = smtp.wait_for_async(count, WAIT).await.remove(count - 1);
    mail["text"].as_str().unwrap().to_owned()
}

/// Decides the visit of the owner's `count`th mail through its link.
async fn decide(app: &App, smtp: &SmtpServer, count: usize, action: &str) -> String {
    let path = approve_path(smtp, count).await;
    let mut owner = app.browser([198, 51, 100, 30]);
    assert_eq!(owner.get(&path).await.status, StatusCode::OK);
    owner.post(&path, &[("action", action)]).await.text
}

async fn known(app: &App) -> Vec<KnownVisitor> {
    app.store.known_visitors().list_known_visitors().await.unwrap()
}

async fn visits(app: &App) -> Vec<Visit> {
    app.store.visits().list_visits(&VisitQuery::default()).await.unwrap()
}

/// Where the photos of `visitor`'s visits are kept.
async fn photos_of(app: &App, visitor: VisitorId) -> Vec<PathBuf> {
    let theirs = visits(app).await.into_iter().filter(|visit| visit.visitor == Some(visitor));
    theirs.filter_map(|visit| visit.photo).map(|name| app.config.photos_dir().join(name)).collect()
}

async fn faces_of(app: &App, visitor: VisitorId) -> usize {
    let kind = app.engine.template_kind();
    let faces = app.store.known_visitors().visitor_faces(kind).await.unwrap();
    faces.iter().filter(|face| face.visitor == visitor).count()
}

#[tokio::test]
async fn a_visitor_let_in_is_named_next_time_and_auto_pass_sends_a_passcode_at_once() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(engine::local::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    app.add_user(ADMIN, Role::Admin).await;

    // A stranger rings; the owner sends a passcode, and so keeps him for next time.
    at_the_door(&app, TONY[0]);
    ring(&app, [192, 0, 2, 20], "Tony", MOBILE).await;
    let first = mail(&smtp, 1).await;
    assert!(!first.contains("Known visitor"), "{first}");
    assert!(decide(&app, &smtp, 1, "passcode").await.contains("A passcode went to"));
    texted_code(&sms, 1);
    let kept = known(&app).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let tony = &kept[0];
    assert_eq!((tony.name.as_str(), tony.mobile.as_deref(), tony.auto_pass), ("Tony", Some(MOBILE), false));
    assert_eq!((tony.visits, tony.faces), (1, 1), "his visit and the face from its photo");

    // The same man in another photo: the owner's mail names him, and the owner still decides.
    at_the_door(&app, TONY[1]);
    ring(&app, [192, 0, 2, 21], "Tony", MOBILE).await;
    let second = mail(&smtp, 2).await;
    assert!(second.contains("Known visitor: Tony, last here just now. Tony rang at"), "{second}");
    assert!(second.contains("Open the link within"), "{second}");
    let latest = &visits(&app).await[0];
    assert_eq!((latest.visitor, latest.status), (Some(tony.id), VisitStatus::Pending));
    let mut admin = app.signed_in(ADMIN).await;
    let decision_page = admin.get(&format!("/visits/{}", latest.id)).await;
    assert!(decision_page.text.contains("Known visitor"), "{}", decision_page.text);

    // Someone else is not taken for him.
    at_the_door(&app, COLIN);
    ring(&app, [192, 0, 2, 22], "Colin", COLINS_MOBILE).await;
    let third = mail(&smtp, 3).await;
    assert!(!third.contains("Known visitor"), "{third}");
    assert_eq!(visits(&app).await[0].visitor, None);

    // Auto-pass on from the Visitors page: his next ring gets a passcode at once, at the number
    // kept for him rather than the one typed, and the owner is told it was sent.
    let list = admin.get("/visitors").await;
    assert!(list.text.contains("Known visitors") && list.text.contains("Tony"), "{}", list.text);
    let on = admin.post(&format!("/visitors/known/{}/auto-pass/on", tony.id), &[]).await;
    assert_eq!(on.location(), "/visitors");
    assert!(flash(&admin.get("/visitors").await.text).contains("Tony gets a passcode at once"));
    at_the_door(&app, TONY[2]);
    ring(&app, [192, 0, 2, 23], "Tony", "+4915100000077").await;
    let code = texted_code(&sms, 2);
    let fourth = mail(&smtp, 4).await;
    assert!(fourth.contains("Known visitor: Tony, last here"), "{fourth}");
    assert!(fourth.contains("a passcode was sent to +4915100000009 by sms"), "{fourth}");
    assert!(!fourth.contains("Open the link within"), "nothing to decide: {fourth}");
    let passed = &visits(&app).await[0];
    assert_eq!((passed.status, passed.decided_by.as_deref()), (VisitStatus::Approved, Some("auto-pass")));
    assert_eq!(passed.visitor, Some(tony.id));

    // The passcode opens the door like any other.
    let mut phone = app.browser([192, 0, 2, 23]);
    phone.get("/door").await;
    let opened = phone.post("/door", &[("code", &code)]).await;
    assert!(opened.text.contains("Welcome, Tony. The door is open."), "{}", opened.text);
    assert_eq!(known(&app).await[0].visits, 3);

    // Recognition follows the door's threshold as the settings page changes it: at 95, the photo
    // 94.5 alike to his kept face is a stranger's, so nothing is sent and the owner decides.
    let stricter = super::door_settings("95");
    admin.get("/settings").await;
    assert_eq!(admin.post("/settings", &stricter).await.location(), "/settings");
    at_the_door(&app, TONY[1]);
    ring(&app, [192, 0, 2, 24], "Tony", MOBILE).await;
    let fifth = mail(&smtp, 5).await;
    assert!(!fifth.contains("Known visitor") && fifth.contains("Open the link within"), "{fifth}");
    assert_eq!(sms.requests().len(), 2, "no passcode without recognition");
}

#[tokio::test]
async fn a_forgotten_visitor_loses_faces_and_photos_at_once_and_the_rest_go_after_the_retention_period() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(engine::local::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    app.add_user(ADMIN, Role::Admin).await;

    // Tony is let in from afar, Colin with a passcode; Tony comes again and is recognised.
    at_the_door(&app, TONY[0]);
    ring(&app, [192, 0, 2, 40], "Tony", MOBILE).await;
    assert!(decide(&app, &smtp, 1, "open").await.contains("The door is open for Tony"));
    at_the_door(&app, COLIN);
    ring(&app, [192, 0, 2, 41], "Colin", COLINS_MOBILE).await;
    decide(&app, &smtp, 2, "passcode").await;
    at_the_door(&app, TONY[1]);
    ring(&app, [192, 0, 2, 42], "Tony", MOBILE).await;
    assert!(mail(&smtp, 3).await.contains("Known visitor: Tony"));
    let kept = known(&app).await;
    let [tony, colin] = [0, 1].map(|i| kept.iter().find(|v| v.name == ["Tony", "Colin"][i]).unwrap().id);
    let tonys_photos = photos_of(&app, tony).await;
    assert_eq!(tonys_photos.len(), 2);
    assert!(tonys_photos.iter().all(|path| path.is_file()), "{tonys_photos:?}");
    assert_eq!(faces_of(&app, tony).await, 1);

    // The owner edits Colin: a wrong number is refused with the reason, a right one kept.
    let mut admin = app.signed_in(ADMIN).await;
    let colins_page = format!("/visitors/known/{colin}");
    assert!(admin.get(&colins_page).await.text.contains("Forget Colin"));
    let refused = admin.post(&colins_page, &[("name", "Colin"), ("mobile", "0151"), ("email", "")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(flash(&refused.text).contains("country code"), "{}", refused.text);
    let fields =
        [("name", "Colin P"), ("mobile", "+49 151 0000 0033"), ("email", "colin@example.com"), ("auto_pass", "on")];
    assert_eq!(admin.post(&colins_page, &fields).await.location(), colins_page);
    let edited = app.store.known_visitors().known_visitor(colin).await.unwrap().unwrap();
    assert_eq!(
        (edited.name.as_str(), edited.mobile.as_deref(), edited.email.as_deref(), edited.auto_pass),
        ("Colin P", Some("+4915100000033"), Some("colin@example.com"), true)
    );

    // Forget: Tony's faces, visits and photos go at once; Colin's stay.
    let forgot = admin.post(&format!("/visitors/known/{tony}/forget"), &[]).await;
    assert_eq!(forgot.location(), "/visitors");
    assert!(flash(&admin.get("/visitors").await.text).contains("Tony is forgotten"));
    assert_eq!(app.store.known_visitors().known_visitor(tony).await.unwrap(), None);
    assert_eq!(faces_of(&app, tony).await, 0);
    assert!(tonys_photos.iter().all(|path| !path.exists()), "{tonys_photos:?}");
    assert!(visits(&app).await.iter().all(|visit| visit.name != "Tony"), "his visits are gone");
    assert_eq!(faces_of(&app, colin).await, 1);
    let again = admin.post(&format!("/visitors/known/{tony}/forget"), &[]).await;
    assert_eq!(again.location(), "/visitors", "forgetting twice does nothing");

    // His face is a stranger's now.
    at_the_door(&app, TONY[2]);
    ring(&app, [192, 0, 2, 43], "Tony", MOBILE).await;
    assert!(!mail(&smtp, 4).await.contains("Known visitor"));

    // Retention: Colin is kept 30 days after his last visit, then deleted with his photos.
    let colins_photos = photos_of(&app, colin).await;
    assert_eq!(colins_photos.len(), 1);
    let desk = app.desk.as_ref().unwrap();
    let day = Duration::from_secs(86_400);
    let now = OffsetDateTime::now_utc();
    assert_eq!(desk.forget_old(now + 29 * day).await.unwrap().visitors, 0);
    assert!(app.store.known_visitors().known_visitor(colin).await.unwrap().is_some());
    assert!(colins_photos[0].is_file());
    let tidied = desk.forget_old(now + 31 * day).await.unwrap();
    assert_eq!(tidied.visitors, 1);
    assert!(known(&app).await.is_empty());
    assert_eq!(faces_of(&app, colin).await, 0);
    assert!(!colins_photos[0].exists());
    assert!(visits(&app).await.is_empty(), "the stranger's visit went for its age");
}
