//! Text messages through Amazon SNS from the real `facereko run`, against moto's SNS server: a
//! grant published to a topic, whose HTTP subscriber (a loopback receiver) gets it, and to a
//! phone number; a topic that does not exist is refused for good.

use std::time::Duration;

use aws_sdk_sns::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use crate::common::moto::MotoServer;
use crate::common::webhook::Receiver;
use crate::common::{TestDoor, face};

const ALICE_CARD: &str = "04A1B2C3";
const PHONE: &str = "+4915100000001";
const WAIT: Duration = Duration::from_secs(30);

/// An SDK client of the test's own, to set up the topic as the owner would in the AWS console.
fn client(sns: &MotoServer) -> aws_sdk_sns::Client {
    let config = aws_sdk_sns::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(&sns.url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_sns::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_is_published_to_a_topic_and_a_phone_and_a_missing_topic_is_refused() {
    let sns = MotoServer::start();
    let subscriber = Receiver::start(&[]);
    let owner = client(&sns);
    let topic = owner.create_topic().name("front-door").send().await.unwrap().topic_arn.unwrap();
    owner.subscribe().topic_arn(&topic).protocol("http").endpoint(subscriber.url("/sns")).send().await.unwrap();

    let endpoint = format!("{:?}", sns.url);
    let to = format!("[{topic:?}, {PHONE:?}]");
    let mut door = TestDoor::new(&[
        ("sms.service", "\"sns\""),
        ("sms.sns.region", "\"eu-west-1\""),
        ("sms.sns.endpoint_url", endpoint.as_str()),
        ("sms.sns.sender_id", "\"FrontDoor\""),
        ("sms.to", to.as_str()),
        ("notify.rules", r#"[{ channel = "sms", on = ["granted"] }]"#),
    ]);
    for (name, value) in
        [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_EC2_METADATA_DISABLED", "true")]
    {
        door.set_env(name, value);
    }
    let checked = door.ok(&["config", "check"]);
    assert!(!checked.contains("error"), "{checked}");
    let alice = face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    door.ok(&["enroll", "--person", "Alice", "--card", ALICE_CARD, alice.to_str().unwrap()]);
    door.show_for_card(ALICE_CARD, &alice);
    door.start();
    door.tap_and_wait(ALICE_CARD);

    let notification = subscriber.wait_for(1, WAIT).remove(0);
    let body: Value = serde_json::from_str(&notification.body).unwrap();
    assert_eq!(body["Type"], "Notification");
    assert_eq!(body["TopicArn"], topic.as_str());
    assert!(body["Message"].as_str().unwrap().starts_with("Access granted to Alice at door front"), "{body}");
    door.wait_for("both messages to be delivered", || {
        let status: Value = serde_json::from_str(&door.ok(&["status", "--json"])).unwrap();
        status["messages"]["sms"]["delivered"] == 2
    });
    door.stop();

    let nowhere = "arn:aws:sns:eu-west-1:123456789012:nowhere";
    let refused = door.run(&["notify", "test", "--channel", "sms", "--to", nowhere]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("SNS refused it: NotFound"), "{said}");
}
