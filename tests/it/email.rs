//! E-mail from the real `facereko run` to a real SMTP server on loopback (aiosmtpd): what a mail
//! holds, STARTTLS and implicit TLS with AUTH, refused addresses, and nothing lost or sent twice
//! while the server is away and the daemon is killed.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::common::smtp::{Security, SmtpServer};
use crate::common::{TestDoor, face};

const ALICE_CARD: &str = "04A1B2C3";
const STRANGER_CARD: &str = "DEADBEEF";
const OWNER: &str = "owner@example.com";
/// Longest wait for mail: the deliverer's first retry comes 5 s after a failure, the second 10 s later.
const MAIL_WAIT: Duration = Duration::from_secs(60);

/// A door on simulated hardware that knows Alice and mails through `server`; `extra` settings
/// come last (TOML values).
fn door_for(server: &SmtpServer, security: &str, extra: &[(&str, &str)]) -> TestDoor {
    let port = server.port.to_string();
    let ca = format!("{:?}", server.ca_pem_path().display().to_string());
    let mut settings = vec![
        ("door.debounce", "\"0s\""),
        ("email.server", "\"localhost\""),
        ("email.port", port.as_str()),
        ("email.security", security),
        ("email.ca_file", ca.as_str()),
        ("email.from", "\"FaceReko <door@example.com>\""),
        ("email.to", "[\"owner@example.com\"]"),
        ("web.public_url", "\"https://door.example.com\""),
    ];
    settings.extend_from_slice(extra);
    let door = TestDoor::new(&settings);
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door
}

/// A door whose mail goes through a STARTTLS server that wants the user `door` with a password
/// given in a file, as a service would.
fn door_with_password(server: &SmtpServer, extra: &[(&str, &str)]) -> TestDoor {
    let mut settings = vec![("email.username", "\"door\"")];
    settings.extend_from_slice(extra);
    let mut door = door_for(server, "\"starttls\"", &settings);
    let file = door.path("smtp-password");
    std::fs::write(&file, "s3cret-pass\n").unwrap();
    door.set_env("FACEREKO_EMAIL__PASSWORD_FILE", &file.display().to_string());
    door
}

fn status(door: &TestDoor) -> Value {
    serde_json::from_str(&door.ok(&["status", "--json"])).unwrap()
}

#[test]
fn a_grant_is_mailed_with_its_photo_inline_and_a_link_to_it() {
    let server = SmtpServer::start_with(Security::StartTls, Some(("door", "s3cret-pass")), &[]);
    let mut door = door_with_password(&server, &[]);
    door.start();
    // By default only grants are mailed, as the original FaceReko's SNS e-mail.
    door.tap_and_wait(STRANGER_CARD);
    let granted = door.tap_and_wait(ALICE_CARD);
    let mail = server.wait_for(1, MAIL_WAIT).remove(0);
    let event_id = granted["event_id"].as_str().unwrap();

    assert_eq!(mail["tls"], true, "STARTTLS before anything else");
    assert_eq!(mail["authenticated_as"], "door");
    assert_eq!(mail["rcpt_tos"], serde_json::json!([OWNER]));
    assert_eq!(mail["from"], "FaceReko <door@example.com>");
    assert_eq!(mail["subject"], "FaceReko: Alice came in at front");
    assert_eq!(mail["message_id"], format!("<{event_id}@front.facereko>"), "known again if sent again");
    let link = format!("https://door.example.com/history?event={event_id}");
    let text = mail["text"].as_str().unwrap();
    assert!(text.starts_with("Access granted to Alice at door front"), "{text}");
    assert!(text.contains(&link), "{text}");
    let html = mail["html"].as_str().unwrap();
    assert!(html.contains("src=\"cid:photo\"") && html.contains(&link), "{html}");

    let parts = mail["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(
        (parts[0]["content_type"].as_str(), parts[0]["content_id"].as_str()),
        (Some("image/jpeg"), Some("photo"))
    );
    let jpeg = base64::engine::general_purpose::STANDARD.decode(parts[0]["data_base64"].as_str().unwrap()).unwrap();
    assert_eq!(image::guess_format(&jpeg).unwrap(), image::ImageFormat::Jpeg);
    let photo = image::load_from_memory(&jpeg).unwrap();
    let taken = image::open(door.path(&format!("photos/{}", granted["photo"].as_str().unwrap()))).unwrap();
    assert!(photo.width() <= 640 && photo.height() <= 640, "{}x{}", photo.width(), photo.height());
    let scale = f64::from(photo.width()) / f64::from(taken.width());
    assert!(
        (f64::from(photo.height()) - f64::from(taken.height()) * scale).abs() <= 1.0,
        "the attempt's photo, in its proportions"
    );

    let email = &status(&door)["messages"]["email"];
    assert_eq!((email["waiting"].as_u64(), email["delivered"].as_u64()), (Some(0), Some(1)), "{email}");
    door.stop();
    assert_eq!(server.received().len(), 1, "the denial was not mailed");
}

#[test]
fn implicit_tls_and_rules_for_denials_reach_their_own_recipients() {
    let server = SmtpServer::start(Security::ImplicitTls);
    let rules = r#"[{ channel = "email", on = ["denied"], reasons = ["unknown_card"], to = ["guard@example.com"] }]"#;
    let mut door = door_for(&server, "\"tls\"", &[("notify.rules", rules)]);
    door.start();
    door.tap_and_wait(ALICE_CARD);
    let denied = door.tap_and_wait(STRANGER_CARD);
    let mail = server.wait_for(1, MAIL_WAIT).remove(0);
    assert_eq!(mail["tls"], true);
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["guard@example.com"]));
    assert_eq!(mail["subject"], "FaceReko: access denied at front");
    assert_eq!(mail["message_id"], format!("<{}@front.facereko>", denied["event_id"].as_str().unwrap()));
    assert!(mail["text"].as_str().unwrap().contains("the card is not enrolled"), "{mail}");
    door.stop();
    assert_eq!(server.received().len(), 1, "the grant matched no rule");
}

#[test]
fn a_refused_address_is_given_up_on_and_shown_while_others_get_their_mail() {
    let server = SmtpServer::start_with(Security::StartTls, None, &["nobody@example.com"]);
    let mut door = door_for(&server, "\"starttls\"", &[("email.to", r#"["nobody@example.com", "owner@example.com"]"#)]);
    door.start();
    door.tap_and_wait(ALICE_CARD);
    door.tap_and_wait(ALICE_CARD);
    let mails = server.wait_for(2, MAIL_WAIT);
    assert!(mails.iter().all(|mail| mail["rcpt_tos"] == serde_json::json!([OWNER])), "{mails:?}");
    door.wait_for("both refusals to be noted", || status(&door)["messages"]["email"]["failed"] == 2);
    let email = &status(&door)["messages"]["email"];
    assert_eq!(email["waiting"], 0, "a permanent failure is not tried again: {email}");
    assert!(email["last_problem"].as_str().unwrap().contains("550"), "{email}");
    let text = door.ok(&["status"]);
    assert!(text.contains("email: 0 waiting, 2 failed, 2 delivered"), "{text}");
    door.stop();
    assert_eq!(door.daemon_log().matches("message refused; not sent again").count(), 2);
}

/// The issue's outage: the server away during 20 attempts, the daemon killed meanwhile; once the
/// server is back every attempt's mail arrives, once.
#[test]
fn mail_waits_out_a_server_outage_and_a_kill_and_arrives_once() {
    let mut server = SmtpServer::start(Security::StartTls);
    let rules = r#"[{ channel = "email", on = ["granted", "denied"] }]"#;
    let mut door = door_for(&server, "\"starttls\"", &[("notify.rules", rules)]);
    server.stop();
    door.start();
    for n in 0..20 {
        door.tap_and_wait(if n % 2 == 0 { ALICE_CARD } else { STRANGER_CARD });
        if n == 12 {
            door.kill();
            door.start();
        }
    }
    door.wait_for("every mail to wait", || status(&door)["messages"]["email"]["waiting"] == 20);
    assert!(server.received().is_empty());
    server.resume();
    let mails = server.wait_for(20, MAIL_WAIT);
    let logged: BTreeSet<String> =
        door.log_rows().iter().map(|row| format!("<{}@front.facereko>", row["event_id"].as_str().unwrap())).collect();
    let mailed: BTreeSet<String> = mails.iter().map(|mail| mail["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(logged.len(), 20);
    assert_eq!(mailed, logged, "one mail per attempt");
    door.wait_for("every mail to be marked delivered", || status(&door)["messages"]["email"]["delivered"] == 20);
    door.stop();
    assert_eq!(server.received().len(), 20, "none twice");
}

#[test]
fn notify_test_sends_a_mail_and_reports_the_servers_answer() {
    let server = SmtpServer::start_with(Security::StartTls, Some(("door", "s3cret-pass")), &[]);
    let door = door_with_password(&server, &[]);
    let out = door.ok(&["notify", "test", "--channel", "email", "--to", "someone@example.com"]);
    assert!(out.starts_with("sent a test email to someone@example.com; the server answered: 250"), "{out}");
    let mail = server.wait_for(1, MAIL_WAIT).remove(0);
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["someone@example.com"]));
    assert_eq!(mail["subject"], "FaceReko: a test message from front");

    let wrong = door_for(&server, "\"starttls\"", &[("email.username", "\"door\""), ("email.password", "\"wrong\"")]);
    let refused = wrong.run(&["notify", "test", "--channel", "email", "--json"]);
    assert!(!refused.status.success());
    let report: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!((report["to"].as_str(), report["delivered"].as_bool()), (Some(OWNER), Some(false)));
    assert!(report["answer"].as_str().unwrap().contains("535"), "the server's answer: {report}");
}

#[test]
fn config_check_refuses_bad_mail_settings_and_warns_of_an_unreachable_server() {
    let door = TestDoor::new(&[
        ("email.server", "\"smtp.example.com\""),
        ("email.security", "\"plain\""),
        ("email.from", "\"door\""),
        ("email.to", "[\"owner@\"]"),
        ("notify.rules", r#"[{ channel = "sms", on = ["granted"] }]"#),
    ]);
    let checked = door.run(&["config", "check"]);
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(!checked.status.success(), "{out}");
    for key in ["email.security", "email.from", "email.to", "notify.rules[0]"] {
        assert!(out.contains(&format!("error: {key}: ")), "{key} in:\n{out}");
    }

    let closed = crate::common::free_port().to_string();
    let door = TestDoor::new(&[
        ("email.server", "\"127.0.0.1\""),
        ("email.port", closed.as_str()),
        ("email.security", "\"plain\""),
        ("email.from", "\"door@example.com\""),
        ("email.to", "[\"owner@example.com\"]"),
    ]);
    let out = door.ok(&["config", "check"]);
    assert!(out.contains(&format!("warning: email.server: cannot reach 127.0.0.1:{closed} now")), "{out}");
}

/// Faults are mailed by default: the camera failing, once it has lasted `notify.fault_after`,
/// and again when it works.
#[test]
fn a_failing_camera_is_mailed_once_it_lasts_and_again_when_it_works() {
    let server = SmtpServer::start(Security::StartTls);
    let mut door = door_for(&server, "\"starttls\"", &[("notify.fault_after", "\"1s\"")]);
    let bob_card = "04B0B0B0";
    let bob = face("lfw10/Colin_Powell/Colin_Powell_0001.jpg");
    door.ok(&["enroll", "--person", "Bob", "--card", bob_card, bob.to_str().unwrap()]);
    // Bob's tap meets a camera whose frame does not decode.
    let broken = door.path("broken.jpg");
    std::fs::write(&broken, b"\xFF\xD8\xFF\xE0 not a picture at all").unwrap();
    door.show_for_card(bob_card, &broken);
    door.start();
    let failed = door.tap_and_wait(bob_card);
    assert_eq!(failed["reason"], "camera_error");
    let fault = server.wait_for(1, MAIL_WAIT).remove(0);
    assert_eq!(fault["subject"], "FaceReko: the camera at front is failing");
    assert!(fault["text"].as_str().unwrap().contains("the camera at front is failing since"), "{fault}");
    assert_eq!(fault["rcpt_tos"], serde_json::json!([OWNER]));

    door.tap_and_wait(ALICE_CARD);
    let mails = server.wait_for(3, MAIL_WAIT);
    let subjects: BTreeSet<&str> = mails.iter().map(|mail| mail["subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            "FaceReko: the camera at front is failing",
            "FaceReko: Alice came in at front",
            "FaceReko: the camera at front works again"
        ])
    );
    door.stop();
    assert_eq!(server.received().len(), 3, "each told once");
}
