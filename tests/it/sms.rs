//! Text messages from the real `facereko run` through the SMS webhook to a loopback receiver:
//! the request made from the template with its secret header, a 5xx answer tried again, a 4xx
//! answer given up on.

use std::time::Duration;

use serde_json::Value;

use crate::common::webhook::Receiver;
use crate::common::{TestDoor, face};

const ALICE_CARD: &str = "04A1B2C3";
/// The deliverer's first retry comes 5 s after a failure.
const WAIT: Duration = Duration::from_secs(30);

fn door_for(receiver: &Receiver, extra: &[(&str, &str)]) -> TestDoor {
    let url = format!("{:?}", receiver.url("/send"));
    let mut settings = vec![
        ("sms.url", url.as_str()),
        ("sms.to", r#"["+4915100000001", "+4915100000002"]"#),
        ("sms.body", r#""{\"to\": \"{to}\", \"text\": \"{text}\", \"ref\": \"{event_id}\"}""#),
        ("notify.rules", r#"[{ channel = "sms", on = ["granted"] }]"#),
    ];
    settings.extend_from_slice(extra);
    let mut door = TestDoor::new(&settings);
    let token = door.path("sms-token");
    std::fs::write(&token, "Bearer t0ken\n").unwrap();
    door.set_env("FACEREKO_SMS__HEADERS__AUTHORIZATION_FILE", &token.display().to_string());
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door
}

#[test]
fn a_grant_is_texted_from_the_template_and_a_server_error_is_tried_again() {
    // The first number's request meets a server error, the second's a refusal.
    let receiver = Receiver::start(&[500, 400]);
    let mut door = door_for(&receiver, &[]);
    door.start();
    let granted = door.tap_and_wait(ALICE_CARD);
    let requests = receiver.wait_for(3, WAIT);
    let event_id = granted["event_id"].as_str().unwrap();

    let first = &requests[0];
    assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/send"));
    assert_eq!(first.headers["authorization"], "Bearer t0ken", "the secret header from its file");
    assert_eq!(first.headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["to"], "+4915100000001");
    assert_eq!(body["ref"], event_id);
    assert!(body["text"].as_str().unwrap().starts_with("Access granted to Alice at door front"), "{body}");

    let sent_to = |request: &crate::common::webhook::Request| {
        serde_json::from_str::<Value>(&request.body).unwrap()["to"].as_str().unwrap().to_owned()
    };
    let answered: Vec<(String, u16)> = requests.iter().map(|r| (sent_to(r), r.answered)).collect();
    assert_eq!(
        answered,
        [("+4915100000001".into(), 500), ("+4915100000002".into(), 400), ("+4915100000001".into(), 200)],
        "a 500 is tried again, a 400 is not"
    );
    door.wait_for("the outcomes to be noted", || {
        let status: Value = serde_json::from_str(&door.ok(&["status", "--json"])).unwrap();
        status["messages"]["sms"]["delivered"] == 1 && status["messages"]["sms"]["failed"] == 1
    });
    door.stop();
    assert_eq!(receiver.requests().len(), 3, "nothing more was sent");
    assert!(!door.daemon_log().contains("t0ken"), "the secret is never logged");
}

#[test]
fn form_encoded_bodies_and_notify_test_reach_the_webhook() {
    let receiver = Receiver::start(&[]);
    let door = door_for(
        &receiver,
        &[("sms.content_type", "\"application/x-www-form-urlencoded\""), ("sms.body", "\"To={to}&Body={text}\"")],
    );
    let out = door.ok(&["notify", "test", "--channel", "sms", "--to", "+4915100000003"]);
    assert!(out.starts_with("sent a test sms to +4915100000003; the server answered: 200"), "{out}");
    let request = receiver.wait_for(1, WAIT).remove(0);
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&request.body).unwrap();
    assert_eq!(form[0], ("To".to_owned(), "+4915100000003".to_owned()));
    assert!(form[1].1.starts_with("This is a test message from FaceReko at door front"), "{form:?}");
}

#[test]
fn config_check_refuses_unknown_placeholders_and_bad_numbers() {
    let door = TestDoor::new(&[
        ("sms.url", "\"https://sms.example.com/send\""),
        ("sms.body", "\"{\\\"to\\\": \\\"{number}\\\"}\""),
        ("sms.to", "[\"0151 234\"]"),
    ]);
    let checked = door.run(&["config", "check"]);
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(!checked.status.success(), "{out}");
    assert!(out.contains("error: sms.body: {number} is not a placeholder"), "{out}");
    assert!(out.contains("error: sms.to: \"0151 234\" is not a phone number"), "{out}");
}
