//! Text messages through Amazon SNS `Publish`: straight to a phone number, or to a topic whose
//! subscribers (phones, e-mail addresses, HTTPS endpoints) each get it. The SDK's credential
//! chain and `endpoint_url` work as for the Rekognition engine.

use std::path::Path;
use std::time::Duration;

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::delivery::{Courier, Outcome, Story};
use crate::aws::Reach;
use crate::checks::Checks;
use crate::errors::error_chain;
use crate::store::Channel;

/// SNS refuses a subject longer than this (topics only; text messages have none).
const SUBJECT_MAX: usize = 100;
/// Error codes that pass: throttling and trouble on AWS's side. Every other refusal of a
/// request (a bad number, a missing topic, an opted-out phone) stays refused.
const PASSING: [&str; 6] =
    ["Throttling", "ThrottledException", "InternalError", "InternalFailure", "ServiceUnavailable", "KMSThrottling"];
/// Credentials that are wrong or expired are fixed by the owner, after which the messages that
/// waited go out.
const CREDENTIALS: [&str; 5] =
    ["InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException", "AuthFailure"];

/// The `[sms.sns]` section, used when `sms.service = "sns"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnsConfig {
    /// Empty: the SDK's default (AWS_REGION, the profile).
    pub region: String,
    /// Empty: AWS; otherwise a server that speaks SNS's protocol.
    pub endpoint_url: String,
    /// `Transactional` (delivered first, for alerts) or `Promotional` (cheaper).
    pub sms_type: String,
    /// The sender name shown on phones in countries that allow one (1-11 letters and digits).
    pub sender_id: String,
}

impl Default for SnsConfig {
    fn default() -> Self {
        Self {
            region: String::new(),
            endpoint_url: String::new(),
            sms_type: "Transactional".into(),
            sender_id: String::new(),
        }
    }
}

impl SnsConfig {
    pub fn check(&self, checks: &mut Checks) {
        crate::aws::check_endpoint_url(checks, "sms.sns.endpoint_url", &self.endpoint_url);
        checks.check(
            ["Transactional", "Promotional"].contains(&self.sms_type.as_str()),
            "sms.sns.sms_type",
            format!("{:?} is not \"Transactional\" or \"Promotional\"", self.sms_type),
        );
        let sender_ok = (1..=11).contains(&self.sender_id.len())
            && self.sender_id.bytes().all(|b| b.is_ascii_alphanumeric())
            && self.sender_id.bytes().any(|b| b.is_ascii_alphabetic());
        checks.check(
            self.sender_id.is_empty() || sender_ok,
            "sms.sns.sender_id",
            format!("{:?} must be 1-11 letters and digits, at least one a letter", self.sender_id),
        );
    }
}

/// Whether `to` names an SNS topic rather than a phone number.
pub fn is_topic(to: &str) -> bool {
    to.starts_with("arn:")
}

/// Notes a problem unless `to` looks like a topic's ARN: `arn:<partition>:sns:<region>:<account>:<name>`.
pub fn check_topic(checks: &mut Checks, key: &str, to: &str) {
    let parts: Vec<&str> = to.split(':').collect();
    let name_ok = |name: &str| {
        let name = name.strip_suffix(".fifo").unwrap_or(name);
        (1..=256).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    };
    checks.check(
        parts.len() == 6
            && parts[2] == "sns"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && name_ok(parts[5]),
        key,
        format!("{to:?} is not an SNS topic ARN, e.g. \"arn:aws:sns:eu-west-1:123456789012:door\""),
    );
}

/// Publishes text messages through SNS.
pub struct SnsTexter {
    config: SnsConfig,
    timeout: Duration,
    /// Built on first use: the credential chain and region lookup are asynchronous.
    client: OnceCell<Client>,
}

impl SnsTexter {
    /// One try per delivery, within `timeout`: the deliverer does the retrying, with back-off.
    pub fn new(config: &SnsConfig, timeout: Duration) -> Self {
        Self { config: config.clone(), timeout, client: OnceCell::new() }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let reach = Reach {
                    region: &self.config.region,
                    endpoint_url: &self.config.endpoint_url,
                    connect_timeout: self.timeout.min(Duration::from_secs(5)),
                    attempt_timeout: self.timeout,
                    max_attempts: 1,
                };
                Client::new(&reach.sdk_config().await)
            })
            .await
    }

    /// Publishes `story` to the phone number or topic `to`; `id` dedupes on a FIFO topic.
    pub async fn publish(&self, to: &str, story: &Story, id: &str) -> Outcome {
        let request = self.client().await.publish().message(story.short_text());
        let request = if is_topic(to) {
            let request = request.topic_arn(to).subject(subject_for(&story.subject));
            if to.ends_with(".fifo") {
                // A FIFO topic drops a second copy with the same id, so a message sent again
                // after a crash reaches its subscribers once.
                request.message_group_id("facereko").message_deduplication_id(dedup_id(id))
            } else {
                request
            }
        } else {
            let mut request = request
                .phone_number(to)
                .message_attributes("AWS.SNS.SMS.SMSType", string_attribute(&self.config.sms_type));
            if !self.config.sender_id.is_empty() {
                request = request.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(&self.config.sender_id));
            }
            request
        };
        match request.send().await {
            Ok(answer) => Outcome::Delivered(format!("message id {}", answer.message_id().unwrap_or("(none)"))),
            Err(error) => judge(error),
        }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data type is set")
}

/// SNS takes a subject of printable ASCII on one line, at most 100 characters.
fn subject_for(subject: &str) -> String {
    let printable: String = subject.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    printable.chars().take(SUBJECT_MAX).collect()
}

/// A deduplication id SNS accepts (at most 128 characters of letters, digits and punctuation).
fn dedup_id(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_graphic()).take(128).collect()
}

/// What an error from `Publish` means for the message.
fn judge<E, R>(error: SdkError<E, R>) -> Outcome
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match &error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown").to_owned();
            let message = service.err().message().unwrap_or_default();
            let said = format!("{code}: {message}");
            if CREDENTIALS.contains(&code.as_str()) {
                Outcome::Retry(format!("SNS refused the credentials ({said}); check the access key and IAM policy"))
            } else if PASSING.contains(&code.as_str()) {
                Outcome::Retry(format!("SNS is busy ({said})"))
            } else {
                Outcome::Failed(format!("SNS refused it: {said}"))
            }
        }
        SdkError::ConstructionFailure(_) => {
            Outcome::Failed(format!("cannot make the request: {}", error_chain(&error)))
        }
        _ => Outcome::Retry(format!("SNS cannot be reached: {}", error_chain(&error))),
    }
}

/// The SMS channel for the deliverer when it goes through SNS: the story and its link, no photo.
#[async_trait::async_trait]
impl Courier for SnsTexter {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    async fn send(&self, to: &str, story: &Story, _photo: Option<&Path>, id: &str) -> Outcome {
        self.publish(to, story, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns_are_told_from_bad_ones() {
        let problems = |to: &str| {
            let mut checks = Checks::default();
            check_topic(&mut checks, "sms.to", to);
            checks.into_problems().len()
        };
        assert_eq!(problems("arn:aws:sns:eu-west-1:123456789012:front-door"), 0);
        assert_eq!(problems("arn:aws:sns:eu-west-1:123456789012:alerts.fifo"), 0);
        assert_eq!(problems("arn:aws:sqs:eu-west-1:123456789012:door"), 1, "another service");
        assert_eq!(problems("arn:aws:sns:eu-west-1:1234:door"), 1, "the account has 12 digits");
        assert_eq!(problems("arn:aws:sns:eu-west-1:123456789012:my door"), 1);
    }

    #[test]
    fn subjects_are_cut_to_what_sns_takes() {
        assert_eq!(subject_for("FaceReko: Zoë came in\nat front"), "FaceReko: Zo? came in?at front");
        assert_eq!(subject_for(&"x".repeat(150)).len(), SUBJECT_MAX);
    }

    #[test]
    fn a_bad_sender_or_message_type_is_refused() {
        let config = SnsConfig {
            sms_type: "Urgent".into(),
            sender_id: "Front-Door-1".into(),
            endpoint_url: "localhost:4566".into(),
            ..SnsConfig::default()
        };
        let mut checks = Checks::default();
        config.check(&mut checks);
        let keys: Vec<String> = checks.into_problems().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["sms.sns.endpoint_url", "sms.sns.sms_type", "sms.sns.sender_id"]);
    }
}
