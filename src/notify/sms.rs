//! Text messages, through an HTTP webhook or Amazon SNS (`sns.rs`). The webhook reaches an SMS
//! API (Twilio and the like) or an SMS gateway app on a phone in the house, which still sends
//! through its own SIM when the internet is down. Its request is made from a template; a 2xx
//! answer is delivered, a 4xx one is refused for good (a bad number or request), anything else
//! is tried again later.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use super::delivery::{Courier, Outcome, Story};
use super::sns::{self, SnsConfig};
use crate::checks::{Checks, Secret};
use crate::errors::error_chain;
use crate::store::Channel;

/// The placeholders a body template may use.
const PLACEHOLDERS: [&str; 3] = ["to", "text", "event_id"];
/// The most of the answer kept as the reason of a failure.
const ANSWER_SHOWN: usize = 300;
/// The most of the answer read; a longer one is not kept at all (its status still counts).
const ANSWER_READ: usize = 64 * 1024;

/// How text messages leave the door.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsService {
    /// An HTTP request made from `sms.body` to `sms.url`.
    #[default]
    Webhook,
    /// Amazon SNS `Publish`, with `[sms.sns]`.
    Sns,
}

/// The `[sms]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmsConfig {
    pub service: SmsService,
    /// The webhook's URL (`https://`, or `http://` for a gateway on the local network); empty
    /// turns text messages off.
    pub url: String,
    /// `POST` or `PUT`.
    pub method: String,
    /// Extra request headers, e.g. `Authorization`; values are secrets, best given as
    /// `FACEREKO_SMS__HEADERS__AUTHORIZATION_FILE`.
    pub headers: BTreeMap<String, Secret>,
    pub content_type: String,
    /// The request body with `{to}`, `{text}` and `{event_id}`, each encoded for `content_type`
    /// (JSON string content, or form encoding).
    pub body: String,
    /// Phone numbers (and with SNS, topic ARNs) the rules send to unless a rule names its own.
    pub to: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub sns: SnsConfig,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            service: SmsService::default(),
            url: String::new(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            content_type: "application/json".into(),
            body: r#"{"to": "{to}", "text": "{text}"}"#.into(),
            to: Vec::new(),
            timeout: Duration::from_secs(20),
            sns: SnsConfig::default(),
        }
    }
}

impl SmsConfig {
    pub fn enabled(&self) -> bool {
        match self.service {
            SmsService::Webhook => !self.url.trim().is_empty(),
            SmsService::Sns => true,
        }
    }

    pub fn check(&self, checks: &mut Checks) {
        if !self.enabled() {
            return;
        }
        match self.service {
            SmsService::Webhook => self.check_webhook(checks),
            SmsService::Sns => self.sns.check(checks),
        }
        for to in &self.to {
            self.check_recipient(checks, "sms.to", to);
        }
        checks.duration("sms.timeout", self.timeout, Duration::from_secs(1), Duration::from_secs(300));
    }

    /// Notes a problem unless `to` is a phone number in international form or, with SNS, a topic.
    pub fn check_recipient(&self, checks: &mut Checks, key: &str, to: &str) {
        if self.service == SmsService::Sns && sns::is_topic(to) {
            sns::check_topic(checks, key, to);
        } else {
            check_number(checks, key, to);
        }
    }

    fn check_webhook(&self, checks: &mut Checks) {
        let uri = self.url.trim().parse::<hyper::Uri>();
        checks.check(
            uri.as_ref().is_ok_and(|uri| matches!(uri.scheme_str(), Some("https" | "http")) && uri.host().is_some()),
            "sms.url",
            format!("{:?} is not an http(s) URL; use e.g. \"https://sms.example.com/send\"", self.url),
        );
        checks.check(
            ["POST", "PUT"].contains(&self.method.as_str()),
            "sms.method",
            format!("{:?} is not POST or PUT", self.method),
        );
        for (name, value) in &self.headers {
            checks.check(
                hyper::header::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                "sms.headers",
                format!("{name:?} is not a header name"),
            );
            // The value is a secret: the message names the header only.
            checks.check(
                hyper::header::HeaderValue::from_str(value.expose()).is_ok(),
                "sms.headers",
                format!("the value of {name:?} cannot be sent in a header (a line break or another control character)"),
            );
        }
        checks.check(
            self.content_type.parse::<hyper::header::HeaderValue>().is_ok(),
            "sms.content_type",
            format!("{:?} is not a content type", self.content_type),
        );
        if let Err(unknown) = placeholders(&self.body) {
            checks.check(
                false,
                "sms.body",
                format!("{{{unknown}}} is not a placeholder; use {{to}}, {{text}} and {{event_id}}"),
            );
        }
    }

    /// The request body for one message.
    pub fn body_for(&self, to: &str, text: &str, event_id: &str) -> String {
        let encode: fn(&str) -> String = if self.content_type.starts_with("application/json") {
            |value| {
                let quoted = serde_json::to_string(value).expect("strings serialise");
                quoted[1..quoted.len() - 1].to_owned()
            }
        } else if self.content_type.starts_with("application/x-www-form-urlencoded") {
            |value| serde_urlencoded::to_string([("", value)]).expect("strings encode")[1..].to_owned()
        } else {
            str::to_owned
        };
        let mut body = String::with_capacity(self.body.len() + text.len());
        let mut rest = self.body.as_str();
        while let Some(start) = rest.find('{') {
            body.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let value = after.find('}').and_then(|end| {
                let value = match &after[..end] {
                    "to" => to,
                    "text" => text,
                    "event_id" => event_id,
                    _ => return None,
                };
                Some((value, end))
            });
            match value {
                Some((value, end)) => {
                    body.push_str(&encode(value));
                    rest = &after[end + 1..];
                }
                None => {
                    // Not a placeholder (a JSON brace): kept as it is.
                    body.push('{');
                    rest = after;
                }
            }
        }
        body.push_str(rest);
        body
    }
}

/// Notes a problem unless `to` looks like a phone number in international form.
fn check_number(checks: &mut Checks, key: &str, to: &str) {
    let digits = to.strip_prefix('+').unwrap_or("");
    checks.check(
        (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        key,
        format!("{to:?} is not a phone number in international form, e.g. \"+4915123456789\""),
    );
}

/// The `{name}`s of `template` that look like placeholders: every `{word}` made of letters and `_`.
/// Fails with the first such word that is not one of ours.
fn placeholders(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        if let Some(end) = after.find('}') {
            let word = &after[..end];
            let looks_like_one = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if looks_like_one && !PLACEHOLDERS.contains(&word) {
                return Err(word.to_owned());
            }
        }
        rest = after;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("cannot load the system's certificate authorities: {0}")]
    Roots(String),
}

/// Sends text messages through the webhook.
pub struct Texter {
    config: SmsConfig,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Texter {
    pub fn new(config: &SmsConfig) -> Result<Self, SmsError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.timeout));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| SmsError::Roots(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self { config: config.clone(), client: Client::builder(TokioExecutor::new()).build(https) })
    }

    /// Sends `text` to `to` and says what became of it; `event_id` is the body's `{event_id}`.
    pub async fn send_text(&self, to: &str, text: &str, event_id: &str) -> Outcome {
        let config = &self.config;
        let body = config.body_for(to, text, event_id);
        let mut request = hyper::Request::builder()
            .method(config.method.as_str())
            .uri(config.url.trim())
            .header(hyper::header::CONTENT_TYPE, config.content_type.as_str());
        for (name, value) in &config.headers {
            request = request.header(name.as_str(), value.expose());
        }
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(request) => request,
            Err(e) => return Outcome::Failed(format!("cannot make the request: {e}")),
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| error_chain(&e))?;
            let status = response.status();
            // Only the start of the answer is kept; a webhook cannot make the door hold a large one.
            let answer = Limited::new(response.into_body(), ANSWER_READ)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, String::from_utf8_lossy(&answer[..answer.len().min(ANSWER_SHOWN)]).into_owned()))
        };
        match tokio::time::timeout(config.timeout, exchange).await {
            Err(_) => Outcome::Retry(format!("no answer within {}s", config.timeout.as_secs())),
            Ok(Err(e)) => Outcome::Retry(e),
            Ok(Ok((status, answer))) => {
                let said = format!("{status} {}", answer.trim()).trim().to_owned();
                if status.is_success() {
                    Outcome::Delivered(said)
                } else if status.is_client_error() && status != hyper::StatusCode::TOO_MANY_REQUESTS {
                    Outcome::Failed(format!("the webhook refused it: {said}"))
                } else {
                    Outcome::Retry(format!("the webhook answered {said}"))
                }
            }
        }
    }
}

/// The SMS channel for the deliverer: the story and its link, no photo.
#[async_trait::async_trait]
impl Courier for Texter {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    async fn send(&self, to: &str, story: &Story, _photo: Option<&Path>, id: &str) -> Outcome {
        self.send_text(to, &story.short_text(), id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_encoded_for_their_content_type() {
        let json = SmsConfig::default();
        assert_eq!(json.body_for("+4915100", "Say \"hi\"", "e1"), r#"{"to": "+4915100", "text": "Say \"hi\""}"#);
        let form = SmsConfig {
            content_type: "application/x-www-form-urlencoded".into(),
            body: "To={to}&Body={text}&Ref={event_id}".into(),
            ..SmsConfig::default()
        };
        assert_eq!(form.body_for("+4915100", "a b&c", "e1"), "To=%2B4915100&Body=a+b%26c&Ref=e1");
    }

    #[test]
    fn header_values_that_cannot_be_sent_are_refused_without_showing_them() {
        let config = SmsConfig {
            url: "https://sms.example.com/send".into(),
            headers: BTreeMap::from([("Authorization".to_owned(), Secret::new("Bearer s3cret\nX: y"))]),
            ..SmsConfig::default()
        };
        let mut checks = Checks::default();
        config.check(&mut checks);
        let problems = checks.into_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(!problems[0].message.contains("s3cret"), "{}", problems[0].message);
    }

    #[test]
    fn unknown_placeholders_and_bad_numbers_are_refused() {
        let config = SmsConfig {
            url: "https://sms.example.com/send".into(),
            body: "{\"to\": \"{to}\", \"msg\": \"{message}\"}".into(),
            to: vec!["+4915123456789".into(), "0151 234".into()],
            ..SmsConfig::default()
        };
        let mut checks = Checks::default();
        config.check(&mut checks);
        let keys: Vec<String> = checks.into_problems().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["sms.body", "sms.to"]);
    }
}
