//! `facereko db import-legacy` against a database with the original FaceReko's schema.

use argon2::{PasswordHash, PasswordVerifier};
use facereko::store::DatabaseConfig;
use facereko::store::{self, LogQuery};

use crate::common::TestDoor;
use crate::common::mariadb::MariaDb;

const ORIGINAL_SCHEMA: &str = "
    CREATE TABLE AccessLog (
        ID INT AUTO_INCREMENT PRIMARY KEY,
        Name VARCHAR(100),
        Time DATETIME,
        Similarity FLOAT,
        Confidence FLOAT,
        Image VARCHAR(255)
    );
    CREATE TABLE Login (Username VARCHAR(50), Password VARCHAR(50));
    INSERT INTO AccessLog (Name, Time, Similarity, Confidence, Image) VALUES
        ('Alice', '2019-05-04 08:15:30', 98.5, 99.75, 'alice_20190504.jpg'),
        ('Bob', '2019-05-04 09:00:00', 91.25, 99.5, '../../etc/passwd'),
        ('Carol', NULL, 95, 99, 'carol.jpg'),
        ('Dave', '2019-05-05 18:30:00', NULL, NULL, NULL);
    INSERT INTO Login VALUES ('admin', 'raspberry'), ('guard', 'door123');";

#[tokio::test]
async fn the_original_access_log_and_logins_are_imported_once() {
    let server = MariaDb::start();
    let legacy = server.database();
    server.sql(Some(&legacy.name), &format!("SET time_zone = '+00:00'; {ORIGINAL_SCHEMA}"));
    let door = TestDoor::new(&[("door.id", "\"back\"")]);
    let password_file = door.path("legacy-password");
    std::fs::write(&password_file, &legacy.password).unwrap();
    let import =
        ["db", "import-legacy", &legacy.url_without_password, "--password-file", password_file.to_str().unwrap()];

    let output = door.ok(&import);
    assert!(output.contains("imported 3 access-log row(s)"), "{output}");
    assert!(output.contains("left out 1 row(s) without a time"), "{output}");
    assert!(output.contains("imported 2 login account(s)"), "{output}");
    assert!(output.contains("plain text") && output.contains("change every"), "tells to rotate: {output}");
    let again = door.ok(&import);
    assert!(again.contains("2 account(s) already existed"), "{again}");

    let store = store::open(&DatabaseConfig::default(), door.dir.path()).await.unwrap();
    let rows = store.log().access_log(&LogQuery { limit: 100, ..LogQuery::default() }).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.event.event_id.as_str()).collect();
    assert_eq!(ids, ["legacy-4", "legacy-2", "legacy-1"], "each row once, however often it is imported");
    let alice = &rows[2].event;
    assert_eq!(alice.person_name.as_deref(), Some("Alice"));
    assert_eq!((alice.decision.as_str(), alice.reason.as_str()), ("granted", "card_and_face"));
    assert_eq!(alice.door, "back");
    assert_eq!((alice.similarity, alice.confidence), (Some(98.5), Some(99.75)));
    assert_eq!(alice.photo.as_deref(), Some("alice_20190504.jpg"));
    assert_eq!(alice.at.unix_timestamp(), 1_556_957_730, "2019-05-04 08:15:30 UTC");
    assert_eq!(rows[1].event.photo, None, "a path is never taken as a photo name");
    assert_eq!(rows[0].event.similarity, None);
    assert_eq!(store.door().outbox_backlog().await.unwrap(), 0, "old attempts send no notifications");

    let admin = store.accounts().user_by_name("admin").await.unwrap().expect("the account is imported");
    assert_eq!(admin.role, "admin");
    assert!(admin.password_hash.starts_with("$argon2id$"), "{}", admin.password_hash);
    let hash = PasswordHash::new(&admin.password_hash).unwrap();
    assert!(argon2::Argon2::default().verify_password(b"raspberry", &hash).is_ok());
    assert!(argon2::Argon2::default().verify_password(b"wrong", &hash).is_err());
}
