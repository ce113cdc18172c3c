//! A console (`facereko serve-web`) through its router: no door behind the app, the site's doors
//! from the store and the broker, people and faces managed from the store and the engine, and
//! every page of a door of its own answered with "this machine is not a door". The real binary
//! next to a real door is in tests/it/site_view.rs.

use std::time::Instant;

use axum::http::StatusCode;
use facereko::accounts::Role;
use facereko::site_link::ACK_WAIT;
use time::OffsetDateTime;

use super::site_view::{ARMED, card, on_site, register, retain, site_until};
use super::{ADMIN, App, flash, pattern_png};
use crate::common::mosquitto::Mosquitto;

/// The navigation bar of `page`.
fn nav(page: &str) -> &str {
    let start = page.find(r#"aria-label="Sections""#).unwrap_or_else(|| panic!("no navigation: {page}"));
    let end = start + page[start..].find("</nav>").expect("the navigation ends");
    &page[start..end]
}

/// Pages a door and a console both serve, each with the navigation bar.
const SHARED_PAGES: &[&str] = &["/site", "/history", "/people", "/groups", "/schedules", "/settings", "/sign-ins"];

#[tokio::test]
async fn a_consoles_navigation_leaves_out_a_doors_own_sections_and_its_name_leads_to_the_site() {
    let console = App::console(|_| {}).await;
    let door = App::simulated().await;
    for app in [&console, &door] {
        app.add_user(ADMIN, Role::Admin).await;
    }
    let (mut on_console, mut at_door) = (console.signed_in(ADMIN).await, door.signed_in(ADMIN).await);
    for path in SHARED_PAGES {
        let page = on_console.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        let links = nav(&page.text);
        for shown in ["Site", "History", "People", "Schedules", "Settings"] {
            assert!(links.contains(&format!(">{shown}</a>")), "{path} links to {shown}: {links}");
        }
        assert!(!links.contains("Dashboard") && !links.contains(r#"href="/visitors""#), "{path}: {links}");
        assert!(page.text.contains(r#"<a class="brand" href="/site">"#), "the name leads to the site view: {path}");

        let page = at_door.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        let links = nav(&page.text);
        assert!(links.contains(r#"<a href="/">Dashboard</a>"#), "{path}: {links}");
        assert!(links.contains(r#"<a href="/visitors">Visitors</a>"#), "{path}: {links}");
        assert!(page.text.contains(r#"<a class="brand" href="/">"#), "the name leads to the dashboard: {path}");
    }
}

/// What a console answers for a page only a door has.
fn says_not_a_door(status: StatusCode, text: &str) {
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("This machine is not a door") && text.contains(r#"href="/site""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_console_shows_the_sites_doors_manages_people_and_says_it_is_not_a_door() {
    let broker = Mosquitto::start();
    let app = App::console(|config| on_site(config, &broker)).await;
    app.add_user(ADMIN, Role::Admin).await;
    let now = OffsetDateTime::now_utc();
    register(&app, "back", "Back door", now).await;
    register(&app, "garage", "Garage", now).await;
    retain(&broker, &[("FaceReko/back/state", ARMED), ("FaceReko/garage/state", "offline")]).await;
    let mut admin = app.signed_in(ADMIN).await;

    // The site: every door from the store, with its state from the broker, and the buttons.
    assert_eq!(admin.get("/").await.location(), "/site", "a console's home is the site view");
    site_until(&mut admin, "back", "online").await;
    let page = site_until(&mut admin, "garage", "offline").await;
    assert!(card(&page, "back").contains(r#"action="/site/back/disarm""#), "{page}");
    assert!(!page.contains("id=\"door-front\""), "the console is no door of the site: {page}");
    let started = Instant::now();
    let refused = admin.post("/site/garage/disarm", &[]).await;
    assert_eq!((refused.status, refused.location()), (StatusCode::SEE_OTHER, "/site#door-garage"));
    assert!(started.elapsed() < ACK_WAIT);
    assert!(flash(&admin.get("/site").await.text).contains("Garage is offline: nothing was sent"));
    assert_eq!(app.store.doors().list_doors().await.unwrap().len(), 2, "it registered nothing");

    // People, faces and cards: the store and the engine are all they need.
    let added = admin.post("/people", &[("name", "Grace Hopper")]).await;
    let person = added.location().to_owned();
    assert!(person.starts_with("/people/"), "{}", added.text);
    let uploaded = admin.upload(&format!("{person}/faces"), &[("grace.png", &pattern_png(1))]).await;
    assert_eq!(uploaded.location(), person, "{}", flash(&uploaded.text));
    let page = admin.get(&person).await.text;
    assert!(flash(&page).contains("Face enrolled from grace.png"), "{page}");
    assert!(!page.contains("/faces/camera") && !page.contains("/cards/tap"), "no camera or reader here: {page}");
    assert_eq!(admin.post(&format!("{person}/cards"), &[("card", "04A1B2C3")]).await.location(), person);
    let grace = &app.store.people().list_people().await.unwrap()[0];
    assert_eq!(app.store.people().person_faces(grace.id).await.unwrap().len(), 1);
    assert_eq!(app.store.people().person_cards(grace.id).await.unwrap().len(), 1);
    let history = admin.get("/history").await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);

    // The settings page keeps the site's accounts and keys, without a door's settings.
    let settings = admin.get("/settings").await.text;
    assert!(settings.contains("console-settings") && settings.contains(ADMIN), "{settings}");
    assert!(!settings.contains(r#"action="/settings""#), "no door settings to save: {settings}");

    // A door's own pages: the dashboard's feed and buttons, its settings, camera, reader, visitors.
    admin.get(&person).await;
    for (path, fields) in [
        ("/arm", &[][..]),
        ("/tap", &[("card", "04A1B2C3")][..]),
        ("/settings", &[("unlock_time", "5s")][..]),
        ("/settings/voice/say", &[("phrase", "granted")][..]),
        (&format!("{person}/faces/camera"), &[][..]),
        (&format!("{person}/cards/tap"), &[][..]),
    ] {
        let answer = admin.post(path, fields).await;
        says_not_a_door(answer.status, &answer.text);
    }
    for path in ["/events", "/visitors", "/visit", "/door"] {
        let answer = admin.get(path).await;
        says_not_a_door(answer.status, &answer.text);
    }
    let saved = app.store.settings().setting(facereko::driver::DoorTuning::SETTING).await.unwrap();
    assert_eq!(saved, None, "nothing of a door was saved");
}
