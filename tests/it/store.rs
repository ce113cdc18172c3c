//! One conformance suite for every storage backend: each test runs against SQLite (a temporary
//! file), MariaDB (a throw-away server, or `FACEREKO_TEST_MYSQL_URL`) and MariaDB behind the
//! local copy and spool that keep a door working while the server is away.

use std::sync::Arc;

use facereko::access::PersonId;
use facereko::access::{AccessEvent, Decision, Reason, StageTimings};
use facereko::card::CardUid;
use facereko::checks::Secret;
use facereko::engine::FaceTemplate;
use facereko::schedule::{DoorRight, Holiday, Limits, Window};
use facereko::store::DatabaseConfig;
use facereko::store::{
    self, Channel, FaceLink, KnownVisitor, LogQuery, NewPass, NewPasskey, NewVisit, Notices, PassKind, Recipient,
    SignInAttempt, SignInEntry, SignInMethod, SignInOutcome, SignInQuery, SiteDoor, Store, StoreError, StoredPass,
    Visit, VisitId, VisitQuery, VisitStatus, VisitorDetails, VisitorId,
};
use time::OffsetDateTime;

use crate::common;
use crate::common::mariadb::MariaDb;

/// A store under test and what keeps its database alive.
struct Backend {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    _server: Option<MariaDb>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&DatabaseConfig::default(), dir.path()).await.unwrap();
    Backend { store, _dir: dir, _server: None }
}

/// MariaDB with the password given as `database.password`, as a service would.
fn mariadb_config(server: &MariaDb) -> DatabaseConfig {
    let database = server.database();
    DatabaseConfig { url: database.url_without_password, password: Some(Secret::new(database.password)) }
}

async fn mariadb() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let server = MariaDb::start();
    let store = store::connect(&mariadb_config(&server), dir.path()).await.unwrap();
    store.schema().migrate().await.unwrap();
    Backend { store, _dir: dir, _server: Some(server) }
}

async fn mariadb_with_local_copy() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let server = MariaDb::start();
    let store = store::open(&mariadb_config(&server), dir.path()).await.unwrap();
    Backend { store, _dir: dir, _server: Some(server) }
}

fn card(uid: &str) -> CardUid {
    uid.parse().unwrap()
}

fn event(n: u32, decision: Decision, reason: Reason) -> AccessEvent {
    AccessEvent {
        at: OffsetDateTime::from_unix_timestamp(1_800_000_000 + i64::from(n)).unwrap()
            + time::Duration::milliseconds(123),
        card_uid: Some(card("04A1B2C3")),
        person_name: Some(format!("Person {n}")),
        decision,
        reason,
        similarity: Some(97.25),
        confidence: Some(0.875),
        photo: Some(format!("2027/01/15/{n}.jpg")),
        timings: StageTimings { read_ms: 3, capture_ms: Some(120), match_ms: Some(60), actuate_ms: 1, total_ms: 190 },
        ..common::access_event(format!("event-{n}"))
    }
}

fn message(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(e @ (StoreError::NotFound(_) | StoreError::Conflict(_))) => e.to_string(),
        other => panic!("expected NotFound or Conflict, got {other:?}"),
    }
}

async fn migrating_again_applies_nothing(store: &dyn Store) {
    assert_eq!(store.schema().migrate().await.unwrap(), Vec::<u32>::new());
}

async fn people_are_unique_regardless_of_ascii_case(store: &dyn Store) {
    let alice = store.people().add_person("  Alice ").await.unwrap();
    assert_eq!(alice.name, "Alice", "names are trimmed");
    let duplicate = store.people().add_person("ALICE").await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
    assert_eq!(message(duplicate), "a person named \"ALICE\" already exists");
    assert_eq!(store.people().person_by_name("aLiCe").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.people().person_by_name("Bob").await.unwrap(), None);
    // Only ASCII letters fold, as in SQLite's NOCASE: these are two people.
    store.people().add_person("Émile").await.unwrap();
    store.people().add_person("émile").await.unwrap();
    store.people().add_person("bob").await.unwrap();
    let names: Vec<String> = store.people().list_people().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["Alice", "bob", "Émile", "émile"], "listed by name, ASCII case ignored");
}

async fn removing_a_person_removes_their_cards_and_faces(store: &dyn Store) {
    let alice = store.people().add_person("Alice").await.unwrap();
    let bob = store.people().add_person("Bob").await.unwrap();
    store.people().add_card(&card("04A1B2C3"), alice.id).await.unwrap();
    store.people().add_card(&card("04112233445566"), alice.id).await.unwrap();
    store.people().add_card(&card("DEADBEEF"), bob.id).await.unwrap();
    let face = store.people().add_face(alice.id, "simulated", &FaceTemplate::Descriptor(vec![0.5; 128])).await.unwrap();
    store.people().add_face(bob.id, "simulated", &FaceTemplate::Remote("bob-1".into())).await.unwrap();
    let summary: Vec<(String, u32, u32)> =
        store.people().list_people().await.unwrap().into_iter().map(|p| (p.name, p.cards, p.faces)).collect();
    assert_eq!(summary, [("Alice".to_owned(), 2, 1), ("Bob".to_owned(), 1, 1)]);

    let version = store.door().faces_version().await.unwrap();
    let removed = store.removals().remove_person(alice.id).await.unwrap();
    assert_eq!(removed.iter().map(|f| f.id).collect::<Vec<_>>(), [face]);
    assert_eq!(store.door().faces_version().await.unwrap(), version + 1, "removing faces changes the version");
    assert_eq!(store.door().card_holder(&card("04A1B2C3")).await.unwrap(), None);
    let cards: Vec<String> =
        store.people().list_cards().await.unwrap().into_iter().map(|c| c.uid.to_string()).collect();
    assert_eq!(cards, ["DEADBEEF"]);
    assert_eq!(store.door().faces("simulated").await.unwrap().1.len(), 1);

    let faceless = store.people().add_person("Carol").await.unwrap();
    let version = store.door().faces_version().await.unwrap();
    store.removals().remove_person(faceless.id).await.unwrap();
    assert_eq!(store.door().faces_version().await.unwrap(), version, "no faces removed, no new version");
    let missing = store.removals().remove_person(PersonId(999_999)).await;
    assert_eq!(message(missing), "no person with id 999999");
}

async fn cards_belong_to_one_person(store: &dyn Store) {
    let bob = store.people().add_person("Bob").await.unwrap();
    let alice = store.people().add_person("Alice").await.unwrap();
    store.people().add_card(&card("DEADBEEF"), bob.id).await.unwrap();
    store.people().add_card(&card("04A1B2C3"), bob.id).await.unwrap();
    store.people().add_card(&card("A1B2C3D4"), alice.id).await.unwrap();
    assert_eq!(store.door().card_holder(&card("de:ad:be:ef")).await.unwrap(), Some(bob.clone()));
    assert_eq!(store.door().card_holder(&card("01020304")).await.unwrap(), None);

    let taken = store.people().add_card(&card("DEADBEEF"), alice.id).await;
    assert_eq!(
        message(taken),
        "card DEADBEEF already belongs to Bob; remove it first with `facereko card remove DEADBEEF`"
    );
    let nobody = store.people().add_card(&card("01020304"), PersonId(999_999)).await;
    assert!(nobody.is_err(), "a card needs an existing person");

    let listed: Vec<(String, String)> =
        store.people().list_cards().await.unwrap().into_iter().map(|c| (c.uid.to_string(), c.person.name)).collect();
    let expected = [("A1B2C3D4", "Alice"), ("04A1B2C3", "Bob"), ("DEADBEEF", "Bob")];
    assert_eq!(listed, expected.map(|(u, n)| (u.to_owned(), n.to_owned())), "by holder, then UID");

    store.removals().remove_card(&card("DEADBEEF")).await.unwrap();
    assert_eq!(store.door().card_holder(&card("DEADBEEF")).await.unwrap(), None);
    assert_eq!(message(store.removals().remove_card(&card("DEADBEEF")).await), "card DEADBEEF is not enrolled");
}

async fn faces_are_kept_per_engine_with_a_version(store: &dyn Store) {
    assert_eq!(store.door().faces("simulated").await.unwrap(), (0, Vec::new()), "nothing enrolled: version 0");
    let alice = store.people().add_person("Alice").await.unwrap();
    let descriptor: Vec<f32> = (0..128).map(|i| (i as f32 - 64.0) / 37.0).collect();
    let first =
        store.people().add_face(alice.id, "local", &FaceTemplate::Descriptor(descriptor.clone())).await.unwrap();
    let second = store.people().add_face(alice.id, "remote", &FaceTemplate::Remote("aws-face-1".into())).await.unwrap();
    let third = store.people().add_face(alice.id, "local", &FaceTemplate::Descriptor(vec![1.0; 128])).await.unwrap();
    assert!(first < second && second < third, "ids grow");

    let (version, local) = store.door().faces("local").await.unwrap();
    assert_eq!(version, 3, "each face added is a new version");
    assert_eq!(store.door().faces_version().await.unwrap(), version);
    assert_eq!(local.iter().map(|f| f.id).collect::<Vec<_>>(), [first, third], "one engine's faces, by id");
    assert_eq!(local[0].person, alice.id);
    assert_eq!(local[0].template, FaceTemplate::Descriptor(descriptor), "descriptors come back bit for bit");
    let remote = store.door().faces("remote").await.unwrap().1;
    assert_eq!(remote[0].template, FaceTemplate::Remote("aws-face-1".into()));

    let not_numbers = store.people().add_face(alice.id, "local", &FaceTemplate::Descriptor(vec![f32::NAN; 128])).await;
    assert_eq!(message(not_numbers), "the face descriptor has values that are not numbers");
    assert_eq!(store.door().faces_version().await.unwrap(), 3, "a refused face changes nothing");
}

async fn the_door_starts_armed_and_remembers(store: &dyn Store) {
    assert!(store.door().armed().await.unwrap(), "a new installation is armed");
    store.door().set_armed(false).await.unwrap();
    assert!(!store.door().armed().await.unwrap());
    store.door().set_armed(true).await.unwrap();
    assert!(store.door().armed().await.unwrap());
}

async fn attempts_are_logged_once_and_read_back_newest_first(store: &dyn Store) {
    let alice = store.people().add_person("Alice").await.unwrap();
    let mut granted = event(1, Decision::Granted, Reason::CardAndFace);
    granted.person_id = Some(alice.id);
    granted.detail = Some("all good".into());
    let mut unknown = event(2, Decision::Denied, Reason::UnknownCard);
    unknown.card_uid = Some(card("04112233445566"));
    unknown.similarity = None;
    unknown.confidence = None;
    unknown.photo = None;
    unknown.timings.capture_ms = None;
    unknown.timings.match_ms = None;
    let disarmed = event(3, Decision::Disarmed, Reason::Disarmed);
    for e in [&granted, &unknown, &disarmed] {
        store.door().record_attempt(e, &Notices::NONE).await.unwrap();
    }

    let all = store.log().access_log(&LogQuery { limit: 10, ..LogQuery::default() }).await.unwrap();
    let events: Vec<&AccessEvent> = all.iter().map(|entry| &entry.event).collect();
    assert_eq!(events, [&disarmed, &unknown, &granted], "every field comes back, newest first");
    assert_eq!(store.log().access_log(&LogQuery { limit: 2, ..LogQuery::default() }).await.unwrap().len(), 2);
    let denied = LogQuery { limit: 10, decision: Some(Decision::Denied), ..LogQuery::default() };
    assert_eq!(store.log().access_log(&denied).await.unwrap()[0].event, unknown);
    let by_reason = LogQuery { limit: 10, reason: Some(Reason::CardAndFace), ..LogQuery::default() };
    assert_eq!(store.log().access_log(&by_reason).await.unwrap()[0].event, granted);
    let none = LogQuery {
        limit: 10,
        decision: Some(Decision::Granted),
        reason: Some(Reason::UnknownCard),
        ..LogQuery::default()
    };
    assert!(store.log().access_log(&none).await.unwrap().is_empty());

    // Recording the same event again (a replay after an outage) adds nothing.
    let id = all[2].id;
    assert_eq!(store.door().record_attempt(&granted, &Notices::MQTT).await.unwrap(), id);
    assert_eq!(store.log().access_log(&LogQuery { limit: 10, ..LogQuery::default() }).await.unwrap().len(), 3);
    assert_eq!(store.door().outbox_backlog().await.unwrap(), 0, "nor a notification");

    // The log keeps the name of a person who is removed later.
    store.removals().remove_person(alice.id).await.unwrap();
    let kept = &store.log().access_log(&by_reason).await.unwrap()[0].event;
    assert_eq!((kept.person_id, kept.person_name.as_deref()), (None, Some("Person 1")));
}

/// The `n` of each `event-n` that `query` finds, newest first, checked against what it counts.
async fn found(store: &dyn Store, query: LogQuery) -> Vec<u32> {
    let entries = store.log().access_log(&LogQuery { limit: 100, ..query.clone() }).await.unwrap();
    let numbers: Vec<u32> = entries.iter().map(|e| e.event.event_id["event-".len()..].parse().unwrap()).collect();
    // The query's own limit (0) and offset do not matter to the count.
    assert_eq!(store.log().count_access_log(&query).await.unwrap(), numbers.len() as u64, "the count of {query:?}");
    numbers
}

async fn the_access_log_is_filtered_and_paged(store: &dyn Store) {
    let logged: [(Decision, Reason, Option<&str>, Option<&str>); 8] = [
        (Decision::Granted, Reason::CardAndFace, Some("Alice"), Some("04A1B2C3")),
        (Decision::Denied, Reason::UnknownCard, None, Some("DEADBEEF")),
        (Decision::Granted, Reason::CardOnly, Some("Alice"), Some("04A1B2C3")),
        (Decision::Denied, Reason::WrongPerson, Some("Bob"), Some("04A1B2C3")),
        (Decision::Granted, Reason::CardAndFace, Some("Bob"), Some("A1B2C3D4")),
        (Decision::Disarmed, Reason::Disarmed, Some("Alice"), Some("04A1B2C3")),
        (Decision::Granted, Reason::CardAndFace, Some("Émile"), None),
        (Decision::Granted, Reason::CardAndFace, Some("émile"), Some("01020304")),
    ];
    let mut times = Vec::new();
    for (n, (decision, reason, person, uid)) in (1..).zip(logged) {
        let mut e = event(n, decision, reason);
        e.person_name = person.map(str::to_owned);
        e.card_uid = uid.map(card);
        // Two doors of a site: the even attempts at the garage.
        if n % 2 == 0 {
            e.door = "garage".into();
        }
        store.door().record_attempt(&e, &Notices::NONE).await.unwrap();
        times.push(e.at);
    }
    let at = |n: usize| Some(times[n - 1]);
    let query = LogQuery::default;

    assert_eq!(found(store, query()).await, [8, 7, 6, 5, 4, 3, 2, 1], "everything, newest first");
    assert_eq!(found(store, LogQuery { decision: Some(Decision::Granted), ..query() }).await, [8, 7, 5, 3, 1]);
    assert_eq!(found(store, LogQuery { reason: Some(Reason::CardAndFace), ..query() }).await, [8, 7, 5, 1]);
    assert_eq!(found(store, LogQuery { card: Some(card("04:a1:b2:c3")), ..query() }).await, [6, 4, 3, 1]);
    assert_eq!(found(store, LogQuery { since: at(5), ..query() }).await, [8, 7, 6, 5], "since is inclusive");
    assert_eq!(found(store, LogQuery { until: at(3), ..query() }).await, [2, 1], "until is exclusive");
    assert_eq!(
        found(store, LogQuery { event_id: Some("event-4".into()), ..query() }).await,
        [4],
        "one attempt by its id"
    );
    assert_eq!(found(store, LogQuery { door: Some("garage".into()), ..query() }).await, [8, 6, 4, 2], "one door");

    let person = |name: &str| LogQuery { person: Some(name.to_owned()), ..query() };
    assert_eq!(found(store, person("aLICE")).await, [6, 3, 1], "ASCII case is ignored");
    assert_eq!(found(store, person("ÉMILE")).await, [7], "other letters keep their case, as in people's names");
    assert_eq!(found(store, person("émile")).await, [8]);
    for other in ["Ali", "Alice ", "Al%", "Nobody"] {
        assert_eq!(found(store, person(other)).await, Vec::<u32>::new(), "{other:?} matches exactly");
    }

    let combined = LogQuery {
        decision: Some(Decision::Granted),
        person: Some("alice".into()),
        card: Some(card("04A1B2C3")),
        since: at(2),
        until: at(6),
        ..query()
    };
    assert_eq!(found(store, combined.clone()).await, [3], "every filter applies");
    assert_eq!(found(store, LogQuery { reason: Some(Reason::CardAndFace), ..combined }).await, Vec::<u32>::new());
    let both_ends = LogQuery { since: at(4), until: at(7), reason: Some(Reason::CardAndFace), ..query() };
    assert_eq!(found(store, both_ends).await, [5]);

    // Pages of three: they do not overlap, and together they are the whole log.
    let mut pages = Vec::new();
    for offset in [0, 3, 6, 9] {
        let page = store.log().access_log(&LogQuery { limit: 3, offset, ..query() }).await.unwrap();
        pages.push(page.iter().map(|e| e.event.event_id.clone()).collect::<Vec<_>>());
    }
    let expected: [&[&str]; 4] =
        [&["event-8", "event-7", "event-6"], &["event-5", "event-4", "event-3"], &["event-2", "event-1"], &[]];
    assert_eq!(pages, expected);
    let granted = LogQuery { limit: 2, offset: 2, decision: Some(Decision::Granted), ..query() };
    let page: Vec<String> =
        store.log().access_log(&granted).await.unwrap().into_iter().map(|e| e.event.event_id).collect();
    assert_eq!(page, ["event-5", "event-3"], "paging applies after filtering");
    assert_eq!(store.log().count_access_log(&granted).await.unwrap(), 5, "the count ignores limit and offset");
}

async fn log_entries_are_read_by_id(store: &dyn Store) {
    let id =
        store.door().record_attempt(&event(1, Decision::Granted, Reason::CardAndFace), &Notices::NONE).await.unwrap();
    store.door().record_attempt(&event(2, Decision::Denied, Reason::UnknownCard), &Notices::NONE).await.unwrap();
    let listed = store.log().access_log(&LogQuery { limit: 10, ..LogQuery::default() }).await.unwrap();
    let entry = store.log().log_entry(id).await.unwrap().expect("the row just written");
    assert_eq!(Some(&entry), listed.iter().find(|e| e.id == id));
    assert_eq!(entry.event, event(1, Decision::Granted, Reason::CardAndFace));
    assert_eq!(store.log().log_entry(987_654).await.unwrap(), None);
}

async fn a_person_is_shown_with_their_cards_and_faces(store: &dyn Store) {
    let alice = store.people().add_person("Alice").await.unwrap();
    let bob = store.people().add_person("Bob").await.unwrap();
    assert_eq!(store.people().person(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(store.people().person(PersonId(999_999)).await.unwrap(), None);

    for uid in ["DEADBEEF", "04A1B2C3", "A1B2C3D4"] {
        store.people().add_card(&card(uid), alice.id).await.unwrap();
    }
    store.people().add_card(&card("01020304"), bob.id).await.unwrap();
    let cards: Vec<String> =
        store.people().person_cards(alice.id).await.unwrap().iter().map(ToString::to_string).collect();
    assert_eq!(cards, ["04A1B2C3", "A1B2C3D4", "DEADBEEF"], "in UID order, only theirs");
    assert!(store.people().person_cards(PersonId(999_999)).await.unwrap().is_empty());

    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let local = store.people().add_face(alice.id, "local", &FaceTemplate::Descriptor(vec![0.5; 128])).await.unwrap();
    store.people().add_face(bob.id, "local", &FaceTemplate::Descriptor(vec![0.25; 128])).await.unwrap();
    let remote =
        store.people().add_face(alice.id, "rekognition", &FaceTemplate::Remote("aws-face-1".into())).await.unwrap();
    let after = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let faces = store.people().person_faces(alice.id).await.unwrap();
    let listed: Vec<(i64, &str)> = faces.iter().map(|f| (f.id, f.engine.as_str())).collect();
    assert_eq!(listed, [(local, "local"), (remote, "rekognition")], "every engine, oldest first");
    assert!(faces.iter().all(|f| (before..after).contains(&f.created)), "{faces:?}");
    assert!(store.people().person_faces(PersonId(999_999)).await.unwrap().is_empty());
}

async fn removing_a_face_changes_the_faces_version(store: &dyn Store) {
    let alice = store.people().add_person("Alice").await.unwrap();
    let template = FaceTemplate::Descriptor((0..128).map(|i| i as f32 / 128.0).collect());
    let removed = store.people().add_face(alice.id, "local", &template).await.unwrap();
    let kept = store.people().add_face(alice.id, "local", &FaceTemplate::Descriptor(vec![0.5; 128])).await.unwrap();
    let version = store.door().faces_version().await.unwrap();

    let face = store.removals().remove_face(removed).await.unwrap();
    assert_eq!((face.id, face.person, &face.template), (removed, alice.id, &template), "returned for the engine");
    let (new_version, faces) = store.door().faces("local").await.unwrap();
    assert_eq!(new_version, version + 1, "running daemons see the change");
    assert_eq!(faces.iter().map(|f| f.id).collect::<Vec<_>>(), [kept]);
    assert_eq!(store.people().person_faces(alice.id).await.unwrap().iter().map(|f| f.id).collect::<Vec<_>>(), [kept]);

    assert_eq!(message(store.removals().remove_face(removed).await), format!("no face with id {removed}"));
    assert_eq!(store.door().faces_version().await.unwrap(), version + 1, "removing nothing changes nothing");
}

async fn faces_keep_their_photo_and_are_reindexed_in_place(store: &dyn Store) {
    let alice = store.people().add_person("Alice").await.unwrap();
    let old = store.people().add_face(alice.id, "local/dlib", &FaceTemplate::Descriptor(vec![0.5; 128])).await.unwrap();
    let other = store.people().add_face(alice.id, "rekognition", &FaceTemplate::Remote("f-1".into())).await.unwrap();
    store.people().set_face_photo(old, "faces/a.jpg").await.unwrap();
    assert_eq!(store.people().face_photo(old).await.unwrap().as_deref(), Some("faces/a.jpg"));
    assert_eq!(store.people().face_photo(other).await.unwrap(), None);
    assert_eq!(message(store.people().set_face_photo(999, "x.jpg").await), "no face with id 999");
    let listed = store.people().person_faces(alice.id).await.unwrap();
    assert_eq!(listed.iter().map(|f| f.photo.as_deref()).collect::<Vec<_>>(), [Some("faces/a.jpg"), None]);

    let local = store.people().faces_of_engine("local").await.unwrap();
    assert_eq!(local.len(), 1, "only the local engine's faces, whatever their embedder");
    assert_eq!(
        (local[0].face.id, local[0].kind.as_str(), local[0].photo.as_deref()),
        (old, "local/dlib", Some("faces/a.jpg"))
    );

    let version = store.door().faces_version().await.unwrap();
    let new = FaceTemplate::Descriptor(vec![0.25; 192]);
    store.people().replace_template(old, "local/mobilefacenet", &new).await.unwrap();
    assert_eq!(store.door().faces_version().await.unwrap(), version + 1, "running daemons reload");
    let (_, faces) = store.door().faces("local/mobilefacenet").await.unwrap();
    assert_eq!(faces.iter().map(|f| (f.id, &f.template)).collect::<Vec<_>>(), [(old, &new)]);
    assert!(store.door().faces("local/dlib").await.unwrap().1.is_empty());
    assert_eq!(store.people().face_photo(old).await.unwrap().as_deref(), Some("faces/a.jpg"), "the photo stays");
    assert_eq!(message(store.people().replace_template(999, "local/x", &new).await), "no face with id 999");
}

async fn leftover_faces_are_kept_until_deleted(store: &dyn Store) {
    let leftovers = store.leftovers();
    assert!(leftovers.leftovers().await.unwrap().is_empty());
    leftovers.add_leftover("b7c1e3a0-0000-4000-8000-000000000002").await.unwrap();
    leftovers.add_leftover("a0f2d9c4-0000-4000-8000-000000000001").await.unwrap();
    leftovers.add_leftover("b7c1e3a0-0000-4000-8000-000000000002").await.unwrap();
    assert_eq!(
        leftovers.leftovers().await.unwrap(),
        ["a0f2d9c4-0000-4000-8000-000000000001", "b7c1e3a0-0000-4000-8000-000000000002"],
        "noted once each"
    );
    leftovers.remove_leftover("a0f2d9c4-0000-4000-8000-000000000001").await.unwrap();
    leftovers.remove_leftover("never-noted").await.unwrap();
    assert_eq!(leftovers.leftovers().await.unwrap(), ["b7c1e3a0-0000-4000-8000-000000000002"]);
    leftovers.add_leftover("B7C1E3A0-0000-4000-8000-000000000002").await.unwrap();
    assert_eq!(leftovers.leftovers().await.unwrap().len(), 2, "FaceIds are compared exactly");
}

async fn users_are_listed_changed_and_removed(store: &dyn Store) {
    for name in ["bob", "Admin", "carol"] {
        store.accounts().add_user(name, &format!("hash-of-{name}"), "admin").await.unwrap();
    }
    let users = store.accounts().list_users().await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["Admin", "bob", "carol"], "by username, ASCII case ignored");
    assert_eq!(users[0].password_hash, "hash-of-Admin");

    store.accounts().set_password_hash("ADMIN", "new-hash").await.unwrap();
    assert_eq!(store.accounts().user_by_name("admin").await.unwrap().unwrap().password_hash, "new-hash");
    store.accounts().set_password_hash("admin", "new-hash").await.unwrap();
    assert_eq!(message(store.accounts().set_password_hash("nobody", "x").await), "no user named \"nobody\"");

    store.accounts().remove_user("BOB").await.unwrap();
    assert_eq!(store.accounts().user_by_name("bob").await.unwrap(), None);
    let names: Vec<String> = store.accounts().list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["Admin", "carol"]);
    assert_eq!(message(store.accounts().remove_user("bob").await), "no user named \"bob\"");
}

async fn settings_are_kept_apart_from_the_daemons_own(store: &dyn Store) {
    assert_eq!(store.settings().setting("door.unlock_seconds").await.unwrap(), None);
    store.settings().set_setting("door.unlock_seconds", "5").await.unwrap();
    store.settings().set_setting("door.name", "Tür vorne").await.unwrap();
    store.settings().set_setting("door.unlock_seconds", "7").await.unwrap();
    assert_eq!(store.settings().setting("door.unlock_seconds").await.unwrap().as_deref(), Some("7"), "overwritten");
    assert_eq!(store.settings().setting("door.name").await.unwrap().as_deref(), Some("Tür vorne"));

    // Keys named like the daemon's own settings are other settings: neither disturbs the other.
    store.door().set_armed(false).await.unwrap();
    store.settings().set_setting("armed", "yes").await.unwrap();
    store.settings().set_setting("faces_version", "41").await.unwrap();
    assert!(!store.door().armed().await.unwrap(), "set_setting neither arms the door nor spoils its armed state");
    assert_eq!(store.door().faces_version().await.unwrap(), 0);
    store.door().set_armed(true).await.unwrap();
    assert!(store.door().armed().await.unwrap());
    assert_eq!(store.settings().setting("armed").await.unwrap().as_deref(), Some("yes"), "set_armed leaves it alone");
    assert_eq!(store.settings().setting("faces_version").await.unwrap().as_deref(), Some("41"));

    // What the smallest backend cannot keep whole is refused, not cut short. Four-byte
    // characters are the most a MySQL TEXT column in utf8mb4 must hold.
    let longest = "😀".repeat(16_383);
    store.settings().set_setting("long", &longest).await.unwrap();
    assert_eq!(store.settings().setting("long").await.unwrap(), Some(longest));
    let too_long = store.settings().set_setting("long", &"x".repeat(16_384)).await;
    assert_eq!(message(too_long), "the value of setting \"long\" is longer than 16383 characters");
    let long_key = "k".repeat(61);
    assert!(matches!(store.settings().set_setting(&long_key, "1").await, Err(StoreError::Conflict(_))));
    store.settings().set_setting(&"k".repeat(60), "1").await.unwrap();

    // Removing forgets one setting and leaves the daemon's own alone; a second time is no error.
    store.settings().remove_setting("armed").await.unwrap();
    assert_eq!(store.settings().setting("armed").await.unwrap(), None);
    assert!(store.door().armed().await.unwrap(), "the daemon's armed state stays");
    store.settings().remove_setting("armed").await.unwrap();
    assert_eq!(store.settings().setting("door.name").await.unwrap().as_deref(), Some("Tür vorne"));
}

async fn the_outbox_delivers_oldest_first_and_prunes_delivered_rows(store: &dyn Store) {
    for n in 1..=4 {
        let decision = if n % 2 == 0 { Decision::Denied } else { Decision::Granted };
        store.door().record_attempt(&event(n, decision, Reason::CardAndFace), &Notices::MQTT).await.unwrap();
    }
    store.door().record_attempt(&event(5, Decision::Disarmed, Reason::Disarmed), &Notices::NONE).await.unwrap();
    assert_eq!(store.door().outbox_backlog().await.unwrap(), 4, "only notified attempts wait in the outbox");

    let first = store.outbox().take_pending(0, 2).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|item| item.event.event_id.as_str()).collect();
    assert_eq!(ids, ["event-1", "event-2"], "oldest first, at most the limit");
    assert!(first.iter().all(|item| item.attempts == 1));
    assert_eq!(first[1].event, event(2, Decision::Denied, Reason::CardAndFace), "the whole event is in the outbox");
    let again = store.outbox().take_pending(0, 10).await.unwrap();
    assert_eq!(again.iter().map(|item| item.attempts).collect::<Vec<_>>(), [2, 2, 1, 1], "each take is an attempt");
    let later = store.outbox().take_pending(first[1].id, 10).await.unwrap();
    let ids: Vec<&str> = later.iter().map(|item| item.event.event_id.as_str()).collect();
    assert_eq!(ids, ["event-3", "event-4"], "only rows after the one given");

    store.outbox().mark_delivered(first[0].id).await.unwrap();
    store.outbox().mark_delivered(first[0].id).await.unwrap();
    store.outbox().mark_delivered(987_654).await.unwrap();
    assert_eq!(store.door().outbox_backlog().await.unwrap(), 3, "marking twice or an unknown id changes nothing more");
    let pending = store.outbox().take_pending(0, 10).await.unwrap();
    assert_eq!(
        pending.iter().map(|item| item.event.event_id.as_str()).collect::<Vec<_>>(),
        ["event-2", "event-3", "event-4"]
    );
    store.outbox().mark_delivered(pending[1].id).await.unwrap();

    // Two delivered (event-1, event-3), two waiting: keeping 3 removes the oldest delivered one only.
    let pruned = store.outbox().prune_outbox(3).await.unwrap();
    assert_eq!((pruned.removed, pruned.undelivered), (1, 2));
    // Keeping none removes every delivered row but never a waiting one.
    let pruned = store.outbox().prune_outbox(0).await.unwrap();
    assert_eq!((pruned.removed, pruned.undelivered), (1, 2));
    let pruned = store.outbox().prune_outbox(0).await.unwrap();
    assert_eq!((pruned.removed, pruned.undelivered), (0, 2));
    assert_eq!(store.door().outbox_backlog().await.unwrap(), 2);
    let left: Vec<String> =
        store.outbox().take_pending(0, 10).await.unwrap().into_iter().map(|item| item.event.event_id).collect();
    assert_eq!(left, ["event-2", "event-4"]);
}

fn to(channel: Channel, to: &str) -> Recipient {
    Recipient { channel, to: to.into() }
}

async fn messages_wait_per_channel_until_delivered_deferred_or_failed(store: &dyn Store) {
    let messages = store.messages();
    let both = Notices {
        mqtt: false,
        messages: vec![
            to(Channel::Email, "owner@example.com"),
            to(Channel::Sms, "+4915100000"),
            to(Channel::Email, "b@example.com"),
        ],
    };
    store.door().record_attempt(&event(1, Decision::Granted, Reason::CardAndFace), &both).await.unwrap();
    // A replayed row adds no second message.
    store.door().record_attempt(&event(1, Decision::Granted, Reason::CardAndFace), &both).await.unwrap();
    let one = Notices { mqtt: true, messages: vec![to(Channel::Email, "owner@example.com")] };
    store.door().record_attempt(&event(2, Decision::Denied, Reason::WrongPerson), &one).await.unwrap();
    assert_eq!(store.door().outbox_backlog().await.unwrap(), 1, "MQTT only where asked");

    let now = 1_900_000_000_000;
    let email = messages.due_messages(Channel::Email, now, 10).await.unwrap();
    let seen: Vec<(&str, &str)> = email.iter().map(|m| (m.event.event_id.as_str(), m.to.as_str())).collect();
    assert_eq!(
        seen,
        [("event-1", "owner@example.com"), ("event-1", "b@example.com"), ("event-2", "owner@example.com")]
    );
    assert_eq!(email[2].event, event(2, Decision::Denied, Reason::WrongPerson), "the whole event is kept");
    assert!(email.iter().all(|m| m.attempts == 0));
    let sms = messages.due_messages(Channel::Sms, now, 10).await.unwrap();
    assert_eq!(sms.len(), 1);
    assert_eq!(messages.due_messages(Channel::Email, now, 1).await.unwrap().len(), 1, "at most the limit");

    messages.message_delivered(email[0].id).await.unwrap();
    messages.message_failed(email[1].id, "550 no such user").await.unwrap();
    messages.message_deferred(email[2].id, now + 60_000, "connection refused").await.unwrap();
    // Once delivered or failed, a message stays so.
    messages.message_deferred(email[0].id, now + 60_000, "late").await.unwrap();
    messages.message_delivered(email[1].id).await.unwrap();
    assert!(
        messages.due_messages(Channel::Email, now, 10).await.unwrap().is_empty(),
        "the deferred one is not due yet"
    );
    assert_eq!(messages.next_due_ms(Channel::Email).await.unwrap(), Some(now + 60_000));
    let later = messages.due_messages(Channel::Email, now + 60_000, 10).await.unwrap();
    assert_eq!((later.len(), later[0].attempts), (1, 1), "due again, with its try counted");
    let counts = messages.message_counts(Channel::Email).await.unwrap();
    assert_eq!((counts.waiting, counts.failed, counts.delivered), (1, 1, 1));
    assert_eq!(counts.last_problem.as_deref(), Some("connection refused"));

    messages.deferred_due_now(Channel::Email, now + 5).await.unwrap();
    assert_eq!(messages.next_due_ms(Channel::Email).await.unwrap(), Some(now + 5), "the server answers again");
    messages.message_delivered(later[0].id).await.unwrap();
    assert_eq!(messages.next_due_ms(Channel::Email).await.unwrap(), None);
    assert_eq!(messages.message_counts(Channel::Sms).await.unwrap().waiting, 1, "channels are apart");

    // Pruning removes the oldest finished messages, never a waiting one.
    assert_eq!(messages.prune_messages(3).await.unwrap(), 1);
    assert_eq!(messages.prune_messages(0).await.unwrap(), 2);
    assert_eq!(messages.message_counts(Channel::Sms).await.unwrap().waiting, 1);
}

async fn users_are_unique_regardless_of_ascii_case(store: &dyn Store) {
    let admin =
        store.accounts().add_user("Admin", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "admin").await.unwrap();
    assert_eq!((admin.username.as_str(), admin.role.as_str()), ("Admin", "admin"));
    assert_eq!(store.accounts().user_by_name("admin").await.unwrap(), Some(admin));
    assert_eq!(store.accounts().user_by_name("nobody").await.unwrap(), None);
    assert_eq!(
        message(store.accounts().add_user("ADMIN", "x", "admin").await),
        "a user named \"ADMIN\" already exists"
    );
}

fn windows(texts: &[&str]) -> Vec<Window> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}

async fn schedules_and_holidays_are_saved_replaced_and_removed(store: &dyn Store) {
    let schedules = store.schedules();
    let cleaners = schedules.save_schedule(" Cleaners ", &windows(&["tue 09:00-12:00"]), false).await.unwrap();
    assert_eq!(cleaners.name, "Cleaners");
    let night = windows(&["mon-fri 22:00-02:00", "sat,sun 00:00-24:00"]);
    let replaced = schedules.save_schedule("CLEANERS", &night, true).await.unwrap();
    assert_eq!((replaced.id, replaced.name.as_str()), (cleaners.id, "Cleaners"), "the same schedule, ASCII case aside");
    let office = schedules.save_schedule("Office hours", &windows(&["mon-fri 08:00-18:00"]), false).await.unwrap();

    let christmas = Holiday {
        id: 0,
        name: "Christmas".into(),
        first: jiff::civil::date(2026, 12, 24),
        last: jiff::civil::date(2026, 12, 26),
        yearly: true,
    };
    let christmas = schedules.add_holiday(&christmas).await.unwrap();
    let closing = Holiday { name: "Closed".into(), yearly: false, ..christmas.clone() };
    let closing = schedules.add_holiday(&closing).await.unwrap();
    assert_ne!(christmas.id, closing.id);

    let rules = store.door().access_rules().await.unwrap();
    assert_eq!(rules.schedules, [replaced.clone(), office.clone()]);
    assert_eq!(rules.schedules[0].windows, night, "windows keep their order");
    assert_eq!(rules.holidays, [christmas.clone(), closing.clone()]);

    schedules.remove_holiday(closing.id).await.unwrap();
    assert!(message(schedules.remove_holiday(closing.id).await).contains("no holiday"));
    schedules.remove_schedule("office HOURS").await.unwrap();
    assert!(message(schedules.remove_schedule("Office hours").await).contains("no schedule named"));
    let rules = store.door().access_rules().await.unwrap();
    assert_eq!((rules.schedules, rules.holidays), (vec![replaced], vec![christmas]));

    assert!(message(schedules.save_schedule("  ", &night, false).await).contains("needs a name"));
    let backwards = Holiday {
        id: 0,
        name: "Backwards".into(),
        first: jiff::civil::date(2026, 5, 2),
        last: jiff::civil::date(2026, 5, 1),
        yearly: false,
    };
    assert!(message(schedules.add_holiday(&backwards).await).contains("ends"));
}

async fn limits_narrow_people_and_cards_and_keep_their_schedule(store: &dyn Store) {
    let alice = store.people().add_person("Alice").await.unwrap();
    let uid = card("04A1B2C3");
    store.people().add_card(&uid, alice.id).await.unwrap();
    let schedule = store.schedules().save_schedule("Cleaners", &windows(&["tue 09:00-12:00"]), false).await.unwrap();
    // Kept to the millisecond, as written.
    let from: jiff::Timestamp = "2026-06-01T08:00:00.250Z".parse().unwrap();
    let until: jiff::Timestamp = "2026-06-14T18:00:00Z".parse().unwrap();
    let person = Limits { valid_from: Some(from), valid_until: Some(until), schedule: Some(schedule.id) };
    let narrower = Limits { valid_until: Some(from + jiff::SignedDuration::from_hours(24)), ..Limits::default() };
    store.schedules().set_person_limits(alice.id, &person).await.unwrap();
    store.schedules().set_card_limits(&uid, &narrower).await.unwrap();

    let rules = store.door().access_rules().await.unwrap();
    assert_eq!(rules.people, [(alice.id, person)]);
    assert_eq!(rules.cards, [(uid.clone(), narrower)]);
    let in_use = message(store.schedules().remove_schedule("Cleaners").await);
    assert!(in_use.contains("is followed by 1"), "{in_use}");

    let missing = Limits { schedule: Some(schedule.id + 100), ..Limits::default() };
    assert!(message(store.schedules().set_person_limits(alice.id, &missing).await).contains("no schedule"));
    assert!(message(store.schedules().set_person_limits(PersonId(9999), &person).await).contains("no person"));
    assert!(message(store.schedules().set_card_limits(&card("04FFFFFF"), &narrower).await).contains("not enrolled"));
    let backwards = Limits { valid_from: Some(until), valid_until: Some(from), schedule: None };
    assert!(message(store.schedules().set_person_limits(alice.id, &backwards).await).contains("must come after"));
    assert_eq!(store.door().access_rules().await.unwrap().people, [(alice.id, person)], "refusals change nothing");

    // No limits lift them; then the schedule may go.
    store.schedules().set_person_limits(alice.id, &Limits::default()).await.unwrap();
    assert!(store.door().access_rules().await.unwrap().people.is_empty());
    store.schedules().remove_schedule("Cleaners").await.unwrap();
    // A card's limits go with the card.
    store.removals().remove_card(&uid).await.unwrap();
    assert!(store.door().access_rules().await.unwrap().cards.is_empty());
}

fn right(door: &str, schedule: Option<i64>) -> DoorRight {
    DoorRight { door: door.into(), schedule }
}

async fn door_rights_keep_people_to_listed_doors_until_lifted(store: &dyn Store) {
    let (alice, bob, carol) = (
        store.people().add_person("Alice").await.unwrap(),
        store.people().add_person("Bob").await.unwrap(),
        store.people().add_person("Carol").await.unwrap(),
    );
    let rules = store.door().access_rules().await.unwrap();
    assert_eq!(rules.door_rights(alice.id), None, "people start free to use every door");

    let hours =
        store.schedules().save_schedule("Garage hours", &windows(&["mon-fri 07:00-19:00"]), false).await.unwrap();
    let alices = [right("garage", Some(hours.id)), right("front", None)];
    store.schedules().set_door_rights(alice.id, Some(&alices)).await.unwrap();
    store.schedules().set_door_rights(bob.id, Some(&[])).await.unwrap();
    let rules = store.door().access_rules().await.unwrap();
    assert_eq!(rules.door_rights(alice.id), Some(&[right("front", None), right("garage", Some(hours.id))][..]));
    assert_eq!(rules.door_rights(bob.id), Some(&[][..]), "kept to no door at all");
    assert_eq!(rules.door_rights(carol.id), None);

    let in_use = message(store.schedules().remove_schedule("Garage hours").await);
    assert!(in_use.contains("is followed by 1"), "{in_use}");
    let missing = [right("front", Some(hours.id + 100))];
    assert!(message(store.schedules().set_door_rights(alice.id, Some(&missing)).await).contains("no schedule"));
    let twice = [right("front", None), right("front", Some(hours.id))];
    assert!(message(store.schedules().set_door_rights(alice.id, Some(&twice)).await).contains("listed twice"));
    assert!(message(store.schedules().set_door_rights(PersonId(9999), None).await).contains("no person"));
    assert_eq!(store.door().access_rules().await.unwrap(), rules, "refusals change nothing");

    // Lifting the restriction frees the schedule; a removed person's rights go with them.
    store.schedules().set_door_rights(alice.id, None).await.unwrap();
    store.removals().remove_person(bob.id).await.unwrap();
    assert!(store.door().access_rules().await.unwrap().doors.is_empty());
    store.schedules().remove_schedule("Garage hours").await.unwrap();
}

async fn groups_are_named_once_hold_members_and_keep_them_to_their_doors(store: &dyn Store) {
    let groups = store.groups();
    let (alice, bob) =
        (store.people().add_person("Alice").await.unwrap(), store.people().add_person("Bob").await.unwrap());
    let staff = groups.add_group("  Staff ").await.unwrap();
    assert_eq!((staff.name.as_str(), staff.members.len(), staff.doors.as_ref()), ("Staff", 0, None), "trimmed, empty");
    let cleaners = groups.add_group("cleaners").await.unwrap();
    assert_eq!(message(groups.add_group("STAFF").await), "a group named \"STAFF\" already exists");
    assert!(message(groups.add_group(" ").await).contains("1 to 100 characters"));
    assert_eq!(message(groups.rename_group(cleaners.id, "staff").await), "a group named \"staff\" already exists");
    groups.rename_group(cleaners.id, "Cleaners").await.unwrap();
    groups.rename_group(cleaners.id, "Cleaners").await.unwrap();
    assert_eq!(
        message(groups.rename_group(staff.id + 100, "Night").await),
        format!("no group with id {}", staff.id + 100)
    );

    // Members join once; a group's doors start unset and keep nobody to anything.
    groups.add_member(staff.id, alice.id).await.unwrap();
    groups.add_member(staff.id, alice.id).await.unwrap();
    groups.add_member(staff.id, bob.id).await.unwrap();
    groups.add_member(cleaners.id, bob.id).await.unwrap();
    assert!(message(groups.add_member(staff.id, PersonId(9999)).await).contains("no person"));
    assert!(message(groups.add_member(staff.id + 100, alice.id).await).contains("no group"));
    let rules = store.door().access_rules().await.unwrap();
    let names: Vec<&str> = rules.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["Cleaners", "Staff"], "by name");
    assert_eq!(rules.group_named("staff").unwrap().members, [alice.id, bob.id]);
    assert_eq!(rules.allowed_doors(bob.id), None);

    // Set, a group's doors keep its members to them, with each door's schedule.
    let hours = store.schedules().save_schedule("Evenings", &windows(&["mon-fri 18:00-22:00"]), false).await.unwrap();
    groups.set_group_doors(cleaners.id, Some(&[right("back", Some(hours.id))])).await.unwrap();
    groups.set_group_doors(staff.id, Some(&[right("garage", None), right("front", None)])).await.unwrap();
    let rules = store.door().access_rules().await.unwrap();
    assert_eq!(rules.group_named("Cleaners").unwrap().doors, Some(vec![right("back", Some(hours.id))]));
    assert_eq!(rules.allowed_doors(alice.id), Some(vec![right("front", None), right("garage", None)]));
    assert_eq!(
        rules.allowed_doors(bob.id),
        Some(vec![right("back", Some(hours.id)), right("front", None), right("garage", None)]),
        "the doors of both groups"
    );
    assert!(message(store.schedules().remove_schedule("Evenings").await).contains("is followed by 1"));
    assert!(
        message(groups.set_group_doors(staff.id, Some(&[right("front", None), right("front", None)])).await)
            .contains("listed twice")
    );
    assert!(
        message(groups.set_group_doors(staff.id, Some(&[right("front", Some(hours.id + 100))])).await)
            .contains("no schedule")
    );
    assert!(message(groups.set_group_doors(staff.id + 100, None).await).contains("no group"));
    assert_eq!(store.door().access_rules().await.unwrap(), rules, "refusals change nothing");

    // Kept to no door, unset again, members leaving, a person or a group removed.
    groups.set_group_doors(staff.id, Some(&[])).await.unwrap();
    assert_eq!(store.door().access_rules().await.unwrap().allowed_doors(alice.id), Some(Vec::new()));
    groups.set_group_doors(staff.id, None).await.unwrap();
    assert_eq!(store.door().access_rules().await.unwrap().allowed_doors(alice.id), None);
    groups.remove_member(staff.id, alice.id).await.unwrap();
    assert_eq!(
        message(groups.remove_member(staff.id, alice.id).await),
        format!("person {} is not in the group \"Staff\"", alice.id)
    );
    store.removals().remove_person(bob.id).await.unwrap();
    let rules = store.door().access_rules().await.unwrap();
    assert!(rules.groups.iter().all(|g| g.members.is_empty()), "{:?}", rules.groups);
    groups.remove_group(cleaners.id).await.unwrap();
    assert!(message(groups.remove_group(cleaners.id).await).contains("no group"));
    store.schedules().remove_schedule("Evenings").await.unwrap();
    let names: Vec<String> = store.door().access_rules().await.unwrap().groups.into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["Staff"]);
}

fn site_door(id: &str, version: &str, seen: i64) -> SiteDoor {
    SiteDoor {
        id: id.into(),
        name: format!("The {id} door"),
        web_address: Some(format!("https://{id}.example:8443")),
        version: version.into(),
        last_seen: at(seen),
    }
}

async fn doors_register_themselves_and_stay_one_row_each(store: &dyn Store) {
    assert!(store.doors().list_doors().await.unwrap().is_empty());
    store.doors().register_door(&site_door("garage", "1.0.0", 0)).await.unwrap();
    store.doors().register_door(&site_door("front", "1.0.0", 0)).await.unwrap();
    let upgraded = SiteDoor { web_address: None, ..site_door("front", "1.1.0", 60) };
    store.doors().register_door(&upgraded).await.unwrap();
    assert_eq!(store.doors().list_doors().await.unwrap(), [upgraded, site_door("garage", "1.0.0", 0)]);
}

/// A moment `seconds` after a fixed start, whole milliseconds as the store keeps them.
fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap() + time::Duration::milliseconds(250)
}

fn ring(n: i64, photo: Option<&str>) -> NewVisit {
    NewVisit {
        door: "front".into(),
        at: at(n),
        name: format!("Visitor {n}"),
        email: Some(format!("visitor{n}@example.com")),
        mobile: Some("+447700900123".into()),
        message: Some("A parcel".into()),
        photo: photo.map(Into::into),
    }
}

async fn add_pass(
    store: &dyn Store,
    visit: VisitId,
    door: &str,
    kind: PassKind,
    expires_at: OffsetDateTime,
    uses: u32,
) -> i64 {
    let pass = NewPass {
        visit,
        door: door.into(),
        kind,
        secret_hash: format!("hash-{visit}-{door}-{kind}"),
        expires_at,
        uses,
    };
    store.visits().add_pass(&pass).await.unwrap()
}

async fn listed(store: &dyn Store, query: VisitQuery) -> Vec<VisitId> {
    store.visits().list_visits(&query).await.unwrap().into_iter().map(|v| v.id).collect()
}

async fn pass_ids(store: &dyn Store, door: &str, kind: PassKind, since: OffsetDateTime) -> Vec<i64> {
    store.visits().passes(door, kind, since).await.unwrap().into_iter().map(|p| p.id).collect()
}

/// The pass with `id` among the passcodes at the front door, unexpired or not.
async fn front_passcode(store: &dyn Store, id: i64) -> StoredPass {
    let passes = store.visits().passes("front", PassKind::Passcode, at(-1_000_000)).await.unwrap();
    passes.into_iter().find(|p| p.id == id).expect("a front passcode")
}

async fn visits_are_kept_and_listed_newest_first(store: &dyn Store) {
    let visits = store.visits();
    let first = visits.add_visit(&ring(1, Some("visitors/1.jpg"))).await.unwrap();
    let third = visits.add_visit(&ring(3, None)).await.unwrap();
    let second = visits.add_visit(&ring(2, None)).await.unwrap();
    let with_third = visits.add_visit(&ring(3, None)).await.unwrap();
    let expected = Visit {
        id: first.id,
        door: "front".into(),
        at: at(1),
        name: "Visitor 1".into(),
        email: Some("visitor1@example.com".into()),
        mobile: Some("+447700900123".into()),
        message: Some("A parcel".into()),
        photo: Some("visitors/1.jpg".into()),
        status: VisitStatus::Pending,
        decided_by: None,
        decided_at: None,
        visitor: None,
    };
    assert_eq!(first, expected);
    assert_eq!(visits.visit(first.id).await.unwrap(), Some(expected));
    assert_eq!(visits.visit(VisitId(999_999)).await.unwrap(), None);
    // Microseconds are not kept; what add_visit returns is what is read back.
    let fine =
        visits.add_visit(&NewVisit { at: at(0) + time::Duration::microseconds(7), ..ring(0, None) }).await.unwrap();
    assert_eq!(fine.at, at(0));
    assert_eq!(visits.visit(fine.id).await.unwrap(), Some(fine.clone()));

    let everyone = [with_third.id, third.id, second.id, first.id, fine.id];
    assert_eq!(listed(store, VisitQuery::default()).await, everyone, "newest first, then the later id");
    assert_eq!(listed(store, VisitQuery { limit: 2, offset: 1, status: None }).await, everyone[1..3]);
    assert!(visits.move_visit(second.id, VisitStatus::Pending, VisitStatus::Denied, "owner", at(9)).await.unwrap());
    let pending = VisitQuery { status: Some(VisitStatus::Pending), ..VisitQuery::default() };
    assert_eq!(listed(store, pending).await, [with_third.id, third.id, first.id, fine.id]);
    let denied = VisitQuery { status: Some(VisitStatus::Denied), ..VisitQuery::default() };
    assert_eq!(listed(store, denied).await, [second.id]);
    assert!(listed(store, VisitQuery { status: Some(VisitStatus::Used), ..VisitQuery::default() }).await.is_empty());
}

async fn a_visit_query_without_a_limit_gets_fifty(store: &dyn Store) {
    for n in 0..51 {
        store.visits().add_visit(&ring(n, None)).await.unwrap();
    }
    let page = store.visits().list_visits(&VisitQuery::default()).await.unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page.last().map(|v| v.name.as_str()), Some("Visitor 1"), "the oldest is left out");
}

async fn a_visit_moves_on_only_from_where_it_stands(store: &dyn Store) {
    let visits = store.visits();
    let visit = visits.add_visit(&ring(1, None)).await.unwrap();
    assert!(visits.move_visit(visit.id, VisitStatus::Pending, VisitStatus::Approved, "owner", at(10)).await.unwrap());
    let approved = visits.visit(visit.id).await.unwrap().unwrap();
    assert_eq!(
        (approved.status, approved.decided_by.as_deref(), approved.decided_at),
        (VisitStatus::Approved, Some("owner"), Some(at(10)))
    );
    assert!(
        !visits.move_visit(visit.id, VisitStatus::Pending, VisitStatus::Approved, "owner", at(11)).await.unwrap(),
        "a second click finds it approved already"
    );
    assert!(!visits.move_visit(visit.id, VisitStatus::Pending, VisitStatus::Denied, "other", at(12)).await.unwrap());
    assert_eq!(visits.visit(visit.id).await.unwrap(), Some(approved), "refused moves change nothing");
    assert!(visits.move_visit(visit.id, VisitStatus::Approved, VisitStatus::Used, "pass", at(13)).await.unwrap());
    assert_eq!(visits.visit(visit.id).await.unwrap().unwrap().status, VisitStatus::Used);
    assert!(
        !visits.move_visit(VisitId(999_999), VisitStatus::Pending, VisitStatus::Denied, "owner", at(14)).await.unwrap()
    );
}

async fn passes_are_found_by_door_kind_and_expiry(store: &dyn Store) {
    let visit = store.visits().add_visit(&ring(1, None)).await.unwrap().id;
    let passcode = add_pass(store, visit, "front", PassKind::Passcode, at(100), 2).await;
    let qr = add_pass(store, visit, "front", PassKind::Qr, at(100), 1).await;
    add_pass(store, visit, "back", PassKind::Passcode, at(100), 1).await;
    add_pass(store, visit, "front", PassKind::Passcode, at(50), 1).await;
    let later = add_pass(store, visit, "front", PassKind::Passcode, at(200), 1).await;

    assert_eq!(pass_ids(store, "front", PassKind::Passcode, at(60)).await, [passcode, later]);
    assert_eq!(pass_ids(store, "front", PassKind::Passcode, at(100)).await, [later], "expired at the moment itself");
    assert_eq!(pass_ids(store, "front", PassKind::Qr, at(0)).await, [qr]);
    assert!(pass_ids(store, "FRONT", PassKind::Passcode, at(0)).await.is_empty(), "door names are exact");
    let stored = StoredPass {
        id: passcode,
        visit,
        door: "front".into(),
        kind: PassKind::Passcode,
        secret_hash: format!("hash-{visit}-front-passcode"),
        expires_at: at(100),
        uses_left: 2,
        wrong_tries: 0,
        locked: false,
    };
    assert_eq!(front_passcode(store, passcode).await, stored);
}

async fn a_pass_opens_only_while_live_and_as_often_as_it_may(store: &dyn Store) {
    let visits = store.visits();
    let visit = visits.add_visit(&ring(1, None)).await.unwrap().id;
    let once = add_pass(store, visit, "front", PassKind::Qr, at(100), 1).await;
    assert!(visits.use_pass(once, at(10)).await.unwrap());
    assert!(!visits.use_pass(once, at(11)).await.unwrap(), "its one use is gone");

    let twice = add_pass(store, visit, "front", PassKind::Passcode, at(100), 2).await;
    assert!(visits.use_pass(twice, at(10)).await.unwrap());
    assert!(visits.use_pass(twice, at(11)).await.unwrap());
    assert!(!visits.use_pass(twice, at(12)).await.unwrap());
    assert_eq!(front_passcode(store, twice).await.uses_left, 0);

    let expiring = add_pass(store, visit, "front", PassKind::Passcode, at(100), 1).await;
    assert!(!visits.use_pass(expiring, at(100)).await.unwrap(), "not at its expiry");
    assert!(!visits.use_pass(expiring, at(101)).await.unwrap());
    assert!(visits.use_pass(expiring, at(99)).await.unwrap(), "the refusals did not use it");

    let locked = add_pass(store, visit, "back", PassKind::Passcode, at(100), 1).await;
    assert_eq!(visits.wrong_passcode("back", at(10), 1).await.unwrap(), [visit]);
    assert!(!visits.use_pass(locked, at(11)).await.unwrap(), "a locked pass does not open");
    assert!(!visits.use_pass(999_999, at(11)).await.unwrap());
}

async fn of_two_racing_uses_of_a_last_use_one_wins(store: &dyn Store) {
    let visits = store.visits();
    let visit = visits.add_visit(&ring(1, None)).await.unwrap().id;
    for _ in 0..5 {
        let pass = add_pass(store, visit, "front", PassKind::Qr, at(100), 1).await;
        let (a, b) = tokio::join!(visits.use_pass(pass, at(10)), visits.use_pass(pass, at(10)));
        let winners = [a.unwrap(), b.unwrap()].into_iter().filter(|&used| used).count();
        assert_eq!(winners, 1, "pass {pass}");
    }
}

async fn wrong_passcodes_lock_the_live_passcodes_at_their_door(store: &dyn Store) {
    let visits = store.visits();
    let mut visit = Vec::new();
    for n in 0..6 {
        visit.push(visits.add_visit(&ring(n, None)).await.unwrap().id);
    }
    let first = add_pass(store, visit[0], "front", PassKind::Passcode, at(100), 1).await;
    let second = add_pass(store, visit[1], "front", PassKind::Passcode, at(100), 3).await;
    let qr = add_pass(store, visit[2], "front", PassKind::Qr, at(100), 1).await;
    let elsewhere = add_pass(store, visit[3], "back", PassKind::Passcode, at(100), 1).await;
    let expired = add_pass(store, visit[4], "front", PassKind::Passcode, at(5), 1).await;
    let used = add_pass(store, visit[5], "front", PassKind::Passcode, at(100), 1).await;
    assert!(visits.use_pass(used, at(1)).await.unwrap());

    assert!(visits.wrong_passcode("front", at(10), 3).await.unwrap().is_empty());
    assert!(visits.wrong_passcode("front", at(11), 3).await.unwrap().is_empty());
    assert_eq!(visits.wrong_passcode("front", at(12), 3).await.unwrap(), [visit[0], visit[1]], "the third locks");
    assert!(visits.wrong_passcode("front", at(13), 3).await.unwrap().is_empty(), "only the time they lock");

    for id in [first, second] {
        let pass = front_passcode(store, id).await;
        assert_eq!((pass.wrong_tries, pass.locked), (3, true), "{pass:?}");
    }
    for id in [expired, used] {
        let pass = front_passcode(store, id).await;
        assert_eq!((pass.wrong_tries, pass.locked), (0, false), "{pass:?}");
    }
    let qr = visits.passes("front", PassKind::Qr, at(0)).await.unwrap().into_iter().find(|p| p.id == qr).unwrap();
    assert_eq!((qr.wrong_tries, qr.locked), (0, false), "a QR pass is no passcode");
    let back = visits.passes("back", PassKind::Passcode, at(0)).await.unwrap();
    assert_eq!(
        back.iter().map(|p| (p.id, p.wrong_tries, p.locked)).collect::<Vec<_>>(),
        [(elsewhere, 0, false)],
        "another door's passcodes are not counted"
    );
    assert!(!visits.use_pass(second, at(14)).await.unwrap(), "locked with uses left");
}

async fn forgetting_visits_deletes_their_passes_and_hands_back_photos(store: &dyn Store) {
    let visits = store.visits();
    let mut kept = Vec::new();
    for (n, photo) in
        [(1, Some("visitors/1.jpg")), (2, None), (3, Some("visitors/3.jpg")), (10, Some("visitors/10.jpg"))]
    {
        let visit = visits.add_visit(&ring(n, photo)).await.unwrap().id;
        kept.push((visit, add_pass(store, visit, "front", PassKind::Passcode, at(1000), 1).await));
    }
    let [(one, _), (two, _), (three, _), (ten, ten_pass)] = kept[..] else { unreachable!() };
    let no_photo = visits.add_visit(&ring(20, None)).await.unwrap().id;

    assert_eq!(visits.forget_visit(one).await.unwrap().as_deref(), Some("visitors/1.jpg"));
    assert_eq!(visits.visit(one).await.unwrap(), None);
    assert_eq!(visits.forget_visit(one).await.unwrap(), None, "forgotten already");
    assert_eq!(visits.forget_visit(no_photo).await.unwrap(), None);
    assert_eq!(pass_ids(store, "front", PassKind::Passcode, at(0)).await.len(), 3, "its pass went with it");

    assert_eq!(visits.forget_visits_before(at(10)).await.unwrap(), ["visitors/3.jpg"], "photos only where taken");
    assert_eq!(visits.visit(two).await.unwrap(), None);
    assert_eq!(visits.visit(three).await.unwrap(), None);
    assert_eq!(listed(store, VisitQuery::default()).await, [ten], "the one made at the cutoff stays");
    assert_eq!(pass_ids(store, "front", PassKind::Passcode, at(0)).await, [ten_pass]);
    assert!(visits.forget_visits_before(at(10)).await.unwrap().is_empty());
}

async fn visits_expire_undecided_or_with_no_pass_left_to_open(store: &dyn Store) {
    let visits = store.visits();
    let approve = |id| visits.move_visit(id, VisitStatus::Pending, VisitStatus::Approved, "ada", at(5));
    let undecided_old = visits.add_visit(&ring(1, None)).await.unwrap().id;
    let undecided_new = visits.add_visit(&ring(100, None)).await.unwrap().id;
    let [live, spent, locked, ended] = [2, 3, 4, 6].map(|n| ring(n, None));
    let mut approved = Vec::new();
    for new in [live, spent, locked, ended] {
        let id = visits.add_visit(&new).await.unwrap().id;
        assert!(approve(id).await.unwrap());
        approved.push(id);
    }
    let [live, spent, locked, ended] = approved[..] else { unreachable!() };
    add_pass(store, live, "front", PassKind::Qr, at(1000), 1).await;
    let used = add_pass(store, spent, "front", PassKind::Passcode, at(1000), 1).await;
    assert!(visits.use_pass(used, at(60)).await.unwrap());
    add_pass(store, locked, "front", PassKind::Passcode, at(1000), 1).await;
    assert_eq!(visits.wrong_passcode("front", at(60), 1).await.unwrap(), [locked]);
    add_pass(store, ended, "front", PassKind::Passcode, at(90), 1).await;

    // Undecided before 50, and every approved visit but the live one by 100.
    assert_eq!(visits.expire_visits(at(50), at(100)).await.unwrap(), 4);
    let status = |id| async move { visits.visit(id).await.unwrap().unwrap().status };
    assert_eq!(status(undecided_old).await, VisitStatus::Expired);
    assert_eq!(status(undecided_new).await, VisitStatus::Pending);
    assert_eq!(status(live).await, VisitStatus::Approved);
    for id in [spent, locked, ended] {
        assert_eq!(status(id).await, VisitStatus::Expired, "visit {id}");
    }
    assert_eq!(visits.expire_visits(at(50), at(100)).await.unwrap(), 0, "nothing twice");
}

fn visitor(name: &str, mobile: Option<&str>) -> VisitorDetails {
    VisitorDetails {
        name: name.into(),
        email: Some(format!("{}@example.com", name.to_lowercase())),
        mobile: mobile.map(Into::into),
    }
}

async fn known(store: &dyn Store, id: VisitorId) -> KnownVisitor {
    store.known_visitors().known_visitor(id).await.unwrap().expect("a known visitor")
}

async fn known_visitors_are_kept_edited_and_listed_last_here_first(store: &dyn Store) {
    let visitors = store.known_visitors();
    let alice = visitors.add_known_visitor(&visitor("Alice", Some("+4915100000001")), at(10)).await.unwrap();
    let bob = visitors.add_known_visitor(&visitor("Bob", None), at(20)).await.unwrap();
    let expected = KnownVisitor {
        id: alice.id,
        name: "Alice".into(),
        email: Some("alice@example.com".into()),
        mobile: Some("+4915100000001".into()),
        auto_pass: false,
        last_visit: at(10),
        visits: 0,
        faces: 0,
    };
    assert_eq!(alice, expected);
    assert_eq!(known(store, alice.id).await, expected);
    assert_eq!(visitors.known_visitor(VisitorId(999_999)).await.unwrap(), None);
    let order = |list: Vec<KnownVisitor>| list.into_iter().map(|v| v.id).collect::<Vec<_>>();
    assert_eq!(order(visitors.list_known_visitors().await.unwrap()), [bob.id, alice.id], "last here first");

    let renamed = VisitorDetails { name: "Alice B".into(), email: None, mobile: Some("+4915100000009".into()) };
    visitors.update_known_visitor(alice.id, &renamed).await.unwrap();
    visitors.update_known_visitor(alice.id, &renamed).await.unwrap();
    visitors.set_auto_pass(alice.id, true).await.unwrap();
    let edited = known(store, alice.id).await;
    assert_eq!((edited.name.as_str(), edited.email, edited.mobile), ("Alice B", None, renamed.mobile.clone()));
    assert!(edited.auto_pass);
    visitors.set_auto_pass(alice.id, false).await.unwrap();
    assert!(!known(store, alice.id).await.auto_pass);
    assert_eq!(
        message(visitors.update_known_visitor(VisitorId(999_999), &renamed).await),
        "no known visitor with id 999999"
    );
    assert_eq!(message(visitors.set_auto_pass(VisitorId(999_999), true).await), "no known visitor with id 999999");

    // A visit becomes theirs; a later one moves their last visit, an earlier one does not.
    let later = store.visits().add_visit(&ring(30, Some("visitors/30.jpg"))).await.unwrap();
    let earlier = store.visits().add_visit(&ring(5, None)).await.unwrap();
    visitors.link_visit(later.id, alice.id, later.at).await.unwrap();
    visitors.link_visit(earlier.id, alice.id, earlier.at).await.unwrap();
    let linked = known(store, alice.id).await;
    assert_eq!((linked.last_visit, linked.visits), (at(30), 2));
    assert_eq!(store.visits().visit(later.id).await.unwrap().unwrap().visitor, Some(alice.id));
    assert_eq!(order(visitors.list_known_visitors().await.unwrap()), [alice.id, bob.id]);
    assert_eq!(
        message(visitors.link_visit(later.id, VisitorId(999_999), at(40)).await),
        "no known visitor with id 999999"
    );
    assert_eq!(message(visitors.link_visit(VisitId(999_999), bob.id, at(40)).await), "no visit with id 999999");
    assert_eq!(known(store, bob.id).await.last_visit, at(20), "a failed link changes nothing");

    // A ring without words (the bell) takes the visitor's contact; one with its own keeps it.
    let bell = NewVisit { email: None, mobile: None, ..ring(50, None) };
    let bell = store.visits().add_visit(&bell).await.unwrap();
    visitors.link_visit(bell.id, alice.id, bell.at).await.unwrap();
    let reachable = store.visits().visit(bell.id).await.unwrap().unwrap();
    assert_eq!((reachable.email, reachable.mobile), (None, renamed.mobile.clone()));
    let own = store.visits().visit(later.id).await.unwrap().unwrap();
    assert_eq!(own.mobile.as_deref(), Some("+447700900123"), "its own contact stays");
}

async fn visitors_keep_their_newest_faces_per_model(store: &dyn Store) {
    let visitors = store.known_visitors();
    let alice = visitors.add_known_visitor(&visitor("Alice", None), at(0)).await.unwrap().id;
    let bob = visitors.add_known_visitor(&visitor("Bob", None), at(0)).await.unwrap().id;
    let descriptor = |n: f32| vec![n, -0.5, 0.25, 1.0e-3];
    let mut added = Vec::new();
    for n in 1..=3 {
        added.push(
            visitors.add_visitor_face(alice, "local/mobilefacenet", &descriptor(n as f32), at(n), 2).await.unwrap(),
        );
    }
    let bobs = visitors.add_visitor_face(bob, "local/mobilefacenet", &descriptor(9.0), at(4), 2).await.unwrap();
    visitors.add_visitor_face(bob, "local/dlib", &descriptor(8.0), at(5), 2).await.unwrap();

    let faces = visitors.visitor_faces("local/mobilefacenet").await.unwrap();
    let found: Vec<(i64, VisitorId, Vec<f32>)> = faces.into_iter().map(|f| (f.id, f.visitor, f.descriptor)).collect();
    assert_eq!(
        found,
        [(added[1], alice, descriptor(2.0)), (added[2], alice, descriptor(3.0)), (bobs, bob, descriptor(9.0))],
        "the two newest of Alice's, oldest first, the values as given"
    );
    assert_eq!(visitors.visitor_faces("local/dlib").await.unwrap().len(), 1, "another model's faces apart");
    assert!(visitors.visitor_faces("local/MOBILEFACENET").await.unwrap().is_empty(), "kinds are exact");
    assert_eq!(known(store, alice).await.faces, 2);
    assert_eq!(known(store, bob).await.faces, 2, "faces of every model count");

    let nan = visitors.add_visitor_face(alice, "local/mobilefacenet", &[f32::NAN, 0.0], at(9), 2).await;
    assert!(matches!(nan, Err(StoreError::Conflict(_))), "{nan:?}");
    let nobody = visitors.add_visitor_face(VisitorId(999_999), "local/mobilefacenet", &descriptor(1.0), at(9), 2).await;
    assert_eq!(message(nobody), "no known visitor with id 999999");
    assert_eq!(visitors.visitor_faces("local/mobilefacenet").await.unwrap().len(), 3, "nothing added");
}

async fn forgetting_a_known_visitor_deletes_faces_visits_and_passes(store: &dyn Store) {
    let visitors = store.known_visitors();
    let alice = visitors.add_known_visitor(&visitor("Alice", None), at(0)).await.unwrap().id;
    let bob = visitors.add_known_visitor(&visitor("Bob", None), at(0)).await.unwrap().id;
    let mut visits = Vec::new();
    for (n, photo, whose) in [
        (1, Some("a/1.jpg"), Some(alice)),
        (2, None, Some(alice)),
        (3, Some("b/3.jpg"), Some(bob)),
        (4, Some("c/4.jpg"), None),
    ] {
        let visit = store.visits().add_visit(&ring(n, photo)).await.unwrap();
        add_pass(store, visit.id, "front", PassKind::Passcode, at(1000), 1).await;
        if let Some(whose) = whose {
            visitors.link_visit(visit.id, whose, visit.at).await.unwrap();
        }
        visits.push(visit.id);
    }
    for whose in [alice, bob] {
        visitors.add_visitor_face(whose, "local/mobilefacenet", &[0.5, 0.5], at(9), 5).await.unwrap();
    }

    assert_eq!(visitors.forget_known_visitor(alice).await.unwrap(), ["a/1.jpg"], "photos only where taken");
    assert_eq!(visitors.known_visitor(alice).await.unwrap(), None);
    assert_eq!(listed(store, VisitQuery::default()).await, [visits[3], visits[2]], "their visits went with them");
    let passes = store.visits().passes("front", PassKind::Passcode, at(0)).await.unwrap();
    let mut pass_visits: Vec<VisitId> = passes.into_iter().map(|p| p.visit).collect();
    pass_visits.sort();
    assert_eq!(pass_visits, [visits[2], visits[3]], "and their visits' passes");
    let faces = visitors.visitor_faces("local/mobilefacenet").await.unwrap();
    assert_eq!(faces.iter().map(|f| f.visitor).collect::<Vec<_>>(), [bob], "and their faces");
    assert!(visitors.forget_known_visitor(alice).await.unwrap().is_empty(), "forgotten already");
    assert_eq!(known(store, bob).await.visits, 1, "Bob keeps his");
}

async fn known_visitors_past_retention_are_forgotten_with_their_visits(store: &dyn Store) {
    let visitors = store.known_visitors();
    let old = visitors.add_known_visitor(&visitor("Olga", None), at(0)).await.unwrap().id;
    let recent = visitors.add_known_visitor(&visitor("Rita", None), at(0)).await.unwrap().id;
    let old_visit = store.visits().add_visit(&ring(50, Some("o/50.jpg"))).await.unwrap();
    visitors.link_visit(old_visit.id, old, old_visit.at).await.unwrap();
    // Rita's first visit is as old as Olga's, but she came again at the cutoff.
    let first = store.visits().add_visit(&ring(50, Some("r/50.jpg"))).await.unwrap();
    let again = store.visits().add_visit(&ring(100, Some("r/100.jpg"))).await.unwrap();
    visitors.link_visit(first.id, recent, first.at).await.unwrap();
    visitors.link_visit(again.id, recent, again.at).await.unwrap();
    visitors.add_visitor_face(old, "local/mobilefacenet", &[0.5, 0.5], at(50), 5).await.unwrap();

    let (forgotten, photos) = visitors.forget_visitors_before(at(100)).await.unwrap();
    assert_eq!((forgotten, photos), (1, vec!["o/50.jpg".to_owned()]));
    assert_eq!(visitors.known_visitor(old).await.unwrap(), None);
    assert!(visitors.visitor_faces("local/mobilefacenet").await.unwrap().is_empty());
    assert_eq!(store.visits().visit(old_visit.id).await.unwrap(), None);
    assert_eq!(known(store, recent).await.visits, 2, "the one here at the cutoff stays, with every visit");
    assert_eq!(visitors.forget_visitors_before(at(100)).await.unwrap(), (0, Vec::new()));
}

async fn api_keys_are_kept_as_hashes_used_and_revoked(store: &dyn Store) {
    let keys = store.api_keys();
    assert_eq!(keys.list_api_keys().await.unwrap(), Vec::new());
    let (hash_a, hash_b) = ("a".repeat(64), "b".repeat(64));
    let first = keys.add_api_key("Door kiosk", &hash_a).await.unwrap();
    let second = keys.add_api_key("Door kiosk", &hash_b).await.unwrap();
    assert_ne!(first.id, second.id, "names may repeat");
    assert_eq!((first.name.as_str(), first.key_hash.as_str(), first.last_used), ("Door kiosk", hash_a.as_str(), None));
    let again = keys.add_api_key("Copy", &hash_a).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{}", message(again));

    keys.api_key_used(second.id, at(42)).await.unwrap();
    let listed = keys.list_api_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], first, "oldest first, read back as made");
    assert_eq!(
        (listed[1].id, listed[1].key_hash.as_str(), listed[1].last_used),
        (second.id, hash_b.as_str(), Some(at(42)))
    );
    assert!((listed[0].created - OffsetDateTime::now_utc()).abs() < time::Duration::minutes(5));

    keys.revoke_api_key(first.id).await.unwrap();
    let left: Vec<i64> = keys.list_api_keys().await.unwrap().iter().map(|k| k.id).collect();
    assert_eq!(left, [second.id]);
    let gone = keys.revoke_api_key(first.id).await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{}", message(gone));
    keys.api_key_used(first.id, at(50)).await.expect("a key revoked meanwhile is no error");
}

fn attempt(n: i64, account: &str, method: SignInMethod, outcome: SignInOutcome) -> SignInAttempt {
    SignInAttempt {
        at: at(n),
        account: account.to_owned(),
        method,
        outcome,
        address: Some(if n % 2 == 0 { "192.0.2.7".parse().unwrap() } else { "2001:db8::1".parse().unwrap() }),
        user_agent: (n != 3).then(|| format!("Browser {n}")),
        similarity: None,
    }
}

/// When `entry` was logged, in seconds after [`at`]'s zero.
fn second(entry: &SignInEntry) -> i64 {
    (entry.attempt.at - at(0)).whole_seconds()
}

async fn sign_ins_are_logged_filtered_paged_and_pruned(store: &dyn Store) {
    let log = store.sign_ins();
    let everything = SignInQuery { limit: 100, ..SignInQuery::default() };
    assert_eq!(log.sign_ins(&everything).await.unwrap(), Vec::new());
    let made = [
        attempt(1, "alice", SignInMethod::Password, SignInOutcome::WrongPassword),
        attempt(2, "Alice", SignInMethod::Password, SignInOutcome::Succeeded),
        attempt(3, "mallory", SignInMethod::Password, SignInOutcome::UnknownAccount),
        attempt(4, "admin", SignInMethod::SetupCode, SignInOutcome::WrongSetupCode),
        attempt(5, "alice", SignInMethod::PasswordCheck, SignInOutcome::TooManyAttempts),
    ];
    let mut ids = Vec::new();
    for attempt in &made {
        ids.push(log.record_sign_in(attempt, None).await.unwrap());
    }
    let read = log.sign_ins(&everything).await.unwrap();
    let newest_first: Vec<SignInAttempt> = made.iter().rev().cloned().collect();
    assert_eq!(read.iter().map(|e| e.attempt.clone()).collect::<Vec<_>>(), newest_first, "read back as written");
    assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), ids.iter().rev().copied().collect::<Vec<_>>());

    let accounts = |query: SignInQuery| async move {
        let found = store.sign_ins().sign_ins(&SignInQuery { limit: 100, ..query.clone() }).await.unwrap();
        let count = store.sign_ins().count_sign_ins(&query).await.unwrap();
        assert_eq!(count, found.len() as u64, "the count agrees with the rows for {query:?}");
        found.into_iter().map(|e| (second(&e), e.attempt.account)).collect::<Vec<_>>()
    };
    let alice = SignInQuery { account: Some("ALICE".into()), ..SignInQuery::default() };
    assert_eq!(accounts(alice.clone()).await, [(5, "alice".into()), (2, "Alice".into()), (1, "alice".into())]);
    let by_password = SignInQuery { method: Some(SignInMethod::Password), ..alice };
    assert_eq!(accounts(by_password.clone()).await, [(2, "Alice".into()), (1, "alice".into())]);
    let failed = SignInQuery { outcome: Some(SignInOutcome::WrongPassword), ..by_password };
    assert_eq!(accounts(failed).await, [(1, "alice".into())]);
    let page = log.sign_ins(&SignInQuery { limit: 2, offset: 1, ..SignInQuery::default() }).await.unwrap();
    assert_eq!(page.iter().map(second).collect::<Vec<_>>(), [4, 3]);

    let long = SignInAttempt { user_agent: Some("x".repeat(1000)), ..made[0].clone() };
    let long_id = log.record_sign_in(&long, None).await.unwrap();
    let read = log.sign_ins(&everything).await.unwrap();
    let long = read.iter().find(|e| e.id == long_id).unwrap();
    assert_eq!(long.attempt.user_agent.as_ref().map(String::len), Some(255), "an overlong user agent is cut");

    assert_eq!(log.prune_sign_ins(at(3), 100).await.unwrap(), 3, "every attempt before the cutoff");
    let left: Vec<i64> = log.sign_ins(&everything).await.unwrap().iter().map(second).collect();
    assert_eq!(left, [5, 4, 3]);
    assert_eq!(log.prune_sign_ins(at(0), 1).await.unwrap(), 2, "only the newest one is kept");
    let left: Vec<i64> = log.sign_ins(&everything).await.unwrap().iter().map(second).collect();
    assert_eq!(left, [5]);
}

async fn face_attempts_keep_their_similarity_and_thumbnail(store: &dyn Store) {
    let log = store.sign_ins();
    let face = SignInAttempt {
        similarity: Some(93.25),
        ..attempt(1, "alice", SignInMethod::Face, SignInOutcome::FaceNotMatched)
    };
    let thumbnail = [0xFF_u8, 0xD8, 0xFF, 0x00, 0x01, 0xFE];
    let with_picture = log.record_sign_in(&face, Some(&thumbnail)).await.unwrap();
    let without =
        log.record_sign_in(&attempt(2, "alice", SignInMethod::Face, SignInOutcome::NoFace), None).await.unwrap();
    let read = log.sign_ins(&SignInQuery { method: Some(SignInMethod::Face), ..SignInQuery::default() }).await.unwrap();
    let found: Vec<(i64, Option<f32>, bool)> =
        read.iter().map(|e| (e.id, e.attempt.similarity, e.has_thumbnail)).collect();
    assert_eq!(found, [(without, None, false), (with_picture, Some(93.25), true)]);
    assert_eq!(read[1].attempt, face, "read back as written");
    assert_eq!(log.sign_in_thumbnail(with_picture).await.unwrap().as_deref(), Some(&thumbnail[..]), "bytes intact");
    assert_eq!(log.sign_in_thumbnail(without).await.unwrap(), None);
    assert_eq!(log.sign_in_thumbnail(without + 100).await.unwrap(), None, "no such attempt");
}

async fn accounts_are_linked_to_people_for_face_sign_in(store: &dyn Store) {
    let links = store.face_links();
    let alice = store.people().add_person("Alice").await.unwrap();
    let bob = store.people().add_person("Bob").await.unwrap();
    store.accounts().add_user("alice", "hash", "admin").await.unwrap();
    store.accounts().add_user("bob", "hash", "viewer").await.unwrap();
    assert_eq!(links.face_link("alice").await.unwrap(), None, "no link until an admin makes one");
    assert_eq!(links.face_links().await.unwrap(), Vec::new());

    let linked = FaceLink { person: alice.id, enabled: false, max_role: "viewer".into() };
    links.set_face_link("ALICE", &linked).await.unwrap();
    assert_eq!(links.face_link("Alice").await.unwrap(), Some(linked.clone()), "names regardless of ASCII case");
    let turned_on = FaceLink { enabled: true, max_role: "admin".into(), ..linked };
    links.set_face_link("alice", &turned_on).await.unwrap();
    links.set_face_link("bob", &FaceLink { person: bob.id, enabled: true, max_role: "viewer".into() }).await.unwrap();
    let all = links.face_links().await.unwrap();
    assert_eq!(
        all.iter().map(|(name, link)| (name.as_str(), link.person)).collect::<Vec<_>>(),
        [("alice", alice.id), ("bob", bob.id)]
    );
    assert_eq!(all[0].1, turned_on, "replaced, not added");

    let nobody = links.set_face_link("carol", &turned_on).await;
    assert!(matches!(nobody, Err(StoreError::NotFound(_))), "{}", message(nobody));
    let no_person =
        links.set_face_link("alice", &FaceLink { person: PersonId(alice.id.0 + 100), ..turned_on.clone() }).await;
    assert!(matches!(no_person, Err(StoreError::NotFound(_))), "{}", message(no_person));
    assert_eq!(links.face_link("alice").await.unwrap(), Some(turned_on), "a refused change changes nothing");

    // Removing the person or the account removes the link.
    store.removals().remove_person(bob.id).await.unwrap();
    assert_eq!(links.face_link("bob").await.unwrap(), None);
    store.accounts().remove_user("alice").await.unwrap();
    assert_eq!(links.face_links().await.unwrap(), Vec::new());
    store.accounts().add_user("carol", "hash", "viewer").await.unwrap();
    links
        .set_face_link("carol", &FaceLink { person: alice.id, enabled: true, max_role: "viewer".into() })
        .await
        .unwrap();
    links.remove_face_link("CAROL").await.unwrap();
    links.remove_face_link("carol").await.expect("removing no link is no error");
    assert_eq!(links.face_link("carol").await.unwrap(), None);
}

fn passkey<'a>(username: &'a str, credential_id: &'a [u8], name: &'a str) -> NewPasskey<'a> {
    NewPasskey { username, user_handle: "5f0c5a6e-handle", credential_id, name, credential: "{\"counter\":0}" }
}

async fn passkeys_belong_to_an_account_are_found_by_credential_and_go_with_it(store: &dyn Store) {
    let accounts = store.accounts();
    accounts.add_user("Ada", "hash", "admin").await.unwrap();
    accounts.add_user("grace", "hash", "viewer").await.unwrap();
    let keys = store.passkeys();
    assert_eq!(keys.passkeys_of("ada").await.unwrap(), Vec::new());
    // Credential ids are bytes of any value, up to 1023 of them.
    let (phone_id, laptop_id, graces_id) = ([0u8, 255, 10, 13].to_vec(), vec![7u8; 1023], b"grace".to_vec());
    let phone = keys.add_passkey(&passkey("ada", &phone_id, "Phone")).await.unwrap();
    assert_eq!(
        (phone.username.as_str(), phone.name.as_str(), phone.credential_id.as_slice(), phone.last_used),
        ("Ada", "Phone", phone_id.as_slice(), None),
        "the account's name as stored"
    );
    assert_eq!((phone.user_handle.as_str(), phone.credential.as_str()), ("5f0c5a6e-handle", "{\"counter\":0}"));
    assert!((phone.created - OffsetDateTime::now_utc()).abs() < time::Duration::minutes(5));
    let laptop = keys.add_passkey(&passkey("ADA", &laptop_id, "Phone")).await.unwrap();
    keys.add_passkey(&passkey("grace", &graces_id, "Key")).await.unwrap();
    let again = keys.add_passkey(&passkey("grace", &phone_id, "Copy")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{}", message(again));
    let nobody = keys.add_passkey(&passkey("mallory", b"new", "Key")).await;
    assert!(matches!(nobody, Err(StoreError::NotFound(_))), "{}", message(nobody));

    let ids = |found: Vec<facereko::store::StoredPasskey>| found.iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(ids(keys.passkeys_of("ADA").await.unwrap()), [phone.id, laptop.id], "oldest first; names repeat");
    assert_eq!(keys.passkey_by_credential(&phone_id).await.unwrap(), Some(phone.clone()));
    assert_eq!(keys.passkey_by_credential(&laptop_id[..1022]).await.unwrap(), None, "the whole id must match");

    keys.passkey_used(phone.id, at(42), "{\"counter\":5}").await.unwrap();
    let used = keys.passkey_by_credential(&phone_id).await.unwrap().unwrap();
    assert_eq!((used.last_used, used.credential.as_str()), (Some(at(42)), "{\"counter\":5}"));

    let not_hers = keys.remove_passkey("grace", phone.id).await;
    assert!(matches!(not_hers, Err(StoreError::NotFound(_))), "{}", message(not_hers));
    keys.remove_passkey("ada", phone.id).await.unwrap();
    assert_eq!(ids(keys.passkeys_of("ada").await.unwrap()), [laptop.id]);
    keys.passkey_used(phone.id, at(50), "{}").await.expect("a passkey removed meanwhile is no error");
    accounts.remove_user("ada").await.unwrap();
    assert_eq!(keys.passkey_by_credential(&laptop_id).await.unwrap(), None, "gone with the account");
    assert_eq!(ids(keys.passkeys_of("grace").await.unwrap()).len(), 1, "others' stay");
}

/// Two daemons starting at once on a new database: one migrates, the other waits for its lock.
#[tokio::test]
async fn concurrent_migrations_on_mariadb_apply_each_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = MariaDb::start();
    let config = mariadb_config(&server);
    let first = store::connect(&config, dir.path()).await.unwrap();
    let second = store::connect(&config, dir.path()).await.unwrap();
    let (a, b) = tokio::join!(first.schema().migrate(), second.schema().migrate());
    let mut applied = [a.unwrap(), b.unwrap()];
    applied.sort();
    assert_eq!(
        applied,
        [vec![], vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]],
        "one of them applied everything, the other nothing"
    );
}

/// A module named after a backend, with one test per conformance test run on that backend.
macro_rules! suite {
    ($backend:ident: $($test:ident),*) => {
        mod $backend {
            $(#[tokio::test]
            async fn $test() {
                let backend = super::$backend().await;
                super::$test(backend.store.as_ref()).await;
            })*
        }
    };
}

/// Runs every conformance test against each backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        suite!(sqlite: $($test),*);
        suite!(mariadb: $($test),*);
        suite!(mariadb_with_local_copy: $($test),*);
    };
}

conformance!(
    migrating_again_applies_nothing,
    people_are_unique_regardless_of_ascii_case,
    removing_a_person_removes_their_cards_and_faces,
    cards_belong_to_one_person,
    faces_are_kept_per_engine_with_a_version,
    the_door_starts_armed_and_remembers,
    attempts_are_logged_once_and_read_back_newest_first,
    the_outbox_delivers_oldest_first_and_prunes_delivered_rows,
    messages_wait_per_channel_until_delivered_deferred_or_failed,
    users_are_unique_regardless_of_ascii_case,
    the_access_log_is_filtered_and_paged,
    log_entries_are_read_by_id,
    a_person_is_shown_with_their_cards_and_faces,
    removing_a_face_changes_the_faces_version,
    leftover_faces_are_kept_until_deleted,
    faces_keep_their_photo_and_are_reindexed_in_place,
    users_are_listed_changed_and_removed,
    settings_are_kept_apart_from_the_daemons_own,
    schedules_and_holidays_are_saved_replaced_and_removed,
    limits_narrow_people_and_cards_and_keep_their_schedule,
    door_rights_keep_people_to_listed_doors_until_lifted,
    groups_are_named_once_hold_members_and_keep_them_to_their_doors,
    doors_register_themselves_and_stay_one_row_each,
    visits_are_kept_and_listed_newest_first,
    a_visit_query_without_a_limit_gets_fifty,
    a_visit_moves_on_only_from_where_it_stands,
    passes_are_found_by_door_kind_and_expiry,
    a_pass_opens_only_while_live_and_as_often_as_it_may,
    of_two_racing_uses_of_a_last_use_one_wins,
    wrong_passcodes_lock_the_live_passcodes_at_their_door,
    forgetting_visits_deletes_their_passes_and_hands_back_photos,
    visits_expire_undecided_or_with_no_pass_left_to_open,
    known_visitors_are_kept_edited_and_listed_last_here_first,
    visitors_keep_their_newest_faces_per_model,
    forgetting_a_known_visitor_deletes_faces_visits_and_passes,
    known_visitors_past_retention_are_forgotten_with_their_visits,
    api_keys_are_kept_as_hashes_used_and_revoked,
    sign_ins_are_logged_filtered_paged_and_pruned,
    face_attempts_keep_their_similarity_and_thumbnail,
    accounts_are_linked_to_people_for_face_sign_in,
    passkeys_belong_to_an_account_are_found_by_credential_and_go_with_it,
);
