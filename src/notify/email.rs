//! E-mail over SMTP with lettre and rustls: each message says what happened at the door, shows
//! the attempt's photo inline and links to the web app when it has a public address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::delivery::{Courier, Outcome, Story};
use crate::checks::{Checks, Problem, Secret};
use crate::store::Channel;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain at first, then TLS before anything else is said (port 587); refused if the server cannot.
    Starttls,
    /// No encryption at all: only for a relay on this machine.
    Plain,
}

impl Security {
    fn default_port(self) -> u16 {
        match self {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::Plain => 25,
        }
    }
}

/// The `[email]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    /// The SMTP server's host name; empty turns e-mail off.
    pub server: String,
    /// Empty: 465 for `tls`, 587 for `starttls`, 25 for `plain`.
    pub port: Option<u16>,
    pub security: Security,
    pub username: Option<String>,
    /// Best given as `FACEREKO_EMAIL__PASSWORD_FILE`.
    pub password: Option<Secret>,
    /// The sender, e.g. `FaceReko <door@example.com>`.
    pub from: String,
    /// Who the rules send to unless a rule names its own recipients.
    pub to: Vec<String>,
    /// The server certificate's CA when it is not one the system trusts.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for each step of a delivery.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            server: String::new(),
            port: None,
            security: Security::Starttls,
            username: None,
            password: None,
            from: String::new(),
            to: Vec::new(),
            ca_file: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Whether `host` names this machine, the only place plain SMTP may go.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl EmailConfig {
    pub fn enabled(&self) -> bool {
        !self.server.trim().is_empty()
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.security.default_port())
    }

    pub fn check(&self, checks: &mut Checks) {
        if !self.enabled() {
            return;
        }
        checks.check(
            !self.server.contains(['/', ':', ' ', '@']),
            "email.server",
            format!("{:?} is not a host name; give the port in email.port (e.g. \"smtp.example.com\")", self.server),
        );
        checks.check(
            self.security != Security::Plain || is_loopback(&self.server),
            "email.security",
            "\"plain\" sends passwords and mail unencrypted, so it is only for a relay on this machine \
             (server \"localhost\"); use \"starttls\" (port 587) or \"tls\" (port 465)",
        );
        checks.check(self.port != Some(0), "email.port", "0 is not a port; use 465, 587 or 25");
        checks.check(
            self.from.parse::<Mailbox>().is_ok(),
            "email.from",
            format!("{:?} is not an address; use e.g. \"FaceReko <door@example.com>\"", self.from),
        );
        for to in &self.to {
            check_address(checks, "email.to", to);
        }
        checks.check(
            self.password.is_none() || self.username.is_some(),
            "email.username",
            "a password is set without a user name; set email.username too",
        );
        checks.duration("email.timeout", self.timeout, Duration::from_secs(1), Duration::from_secs(300));
    }

    /// What only connecting needs: the CA file, read as the mailer will.
    pub fn check_connection(&self, checks: &mut Checks) {
        if self.enabled()
            && let Err(e) = Mailer::new(self, "door")
        {
            checks.push(Problem::new("email.ca_file", e.to_string()));
        }
    }
}

/// Notes a problem unless `to` is one e-mail address.
pub fn check_address(checks: &mut Checks, key: &str, to: &str) {
    checks.check(to.parse::<Mailbox>().is_ok(), key, format!("{to:?} is not an e-mail address"));
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("email.ca_file ({path}): {detail}")]
    CaFile { path: PathBuf, detail: String },
    #[error("cannot set up TLS for {server}: {detail}")]
    Tls { server: String, detail: String },
    #[error("cannot write the e-mail: {0}")]
    Compose(String),
}

/// Sends e-mail through the configured server, keeping connections open between messages.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
    /// The right-hand side of Message-IDs: `<door>.facereko`.
    id_domain: String,
}

/// The widest photo a mail carries, in pixels either way.
const PHOTO_SIZE: u32 = 640;

impl Mailer {
    /// A mailer for the door `door`.
    pub fn new(config: &EmailConfig, door: &str) -> Result<Self, EmailError> {
        let server = config.server.trim().to_owned();
        let tls_error =
            |e: lettre::transport::smtp::Error| EmailError::Tls { server: server.clone(), detail: e.to_string() };
        let mut parameters = TlsParameters::builder(server.clone());
        if let Some(path) = &config.ca_file {
            let ca_error = |detail: String| EmailError::CaFile { path: path.clone(), detail };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            parameters =
                parameters.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?);
        }
        let tls = match config.security {
            Security::Tls => Tls::Wrapper(parameters.build_rustls().map_err(tls_error)?),
            Security::Starttls => Tls::Required(parameters.build_rustls().map_err(tls_error)?),
            Security::Plain => Tls::None,
        };
        crate::tls::ensure_crypto_provider();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.clone())
            .port(config.port())
            .tls(tls)
            .timeout(Some(config.timeout));
        if let Some(user) = &config.username {
            let password = config.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        // Checked by `EmailConfig::check`; a bad one only shows up here when that was skipped.
        let from = config.from.parse().map_err(|e| EmailError::Compose(format!("email.from: {e}")))?;
        Ok(Self { transport: builder.build(), from, server, id_domain: format!("{}.facereko", super::slug(door)) })
    }

    /// Sends `mail` to `to` and returns the server's answer.
    pub async fn send_mail(&self, to: &str, mail: &Mail) -> Outcome {
        let message = match self.compose(to, mail) {
            Ok(message) => message,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        match self.transport.send(message).await {
            Ok(response) => Outcome::Delivered(answer(response.code().to_string(), response.message())),
            Err(e) if e.is_permanent() => Outcome::Failed(format!("{} refused it: {e}", self.server)),
            Err(e) => Outcome::Retry(format!("{}: {e}", self.server)),
        }
    }

    fn compose(&self, to: &str, mail: &Mail) -> Result<Message, EmailError> {
        let compose_error = |e: &dyn std::fmt::Display| EmailError::Compose(e.to_string());
        let to: Mailbox = to.parse().map_err(|e| EmailError::Compose(format!("{to:?} is not an address: {e}")))?;
        let html = SinglePart::html(mail.html());
        let body = match &mail.photo {
            Some(jpeg) => MultiPart::alternative().singlepart(SinglePart::plain(mail.text())).multipart(
                MultiPart::related().singlepart(html).singlepart(
                    Attachment::new_inline(PHOTO_ID.to_owned())
                        .body(jpeg.clone(), ContentType::parse("image/jpeg").map_err(|e| compose_error(&e))?),
                ),
            ),
            None => MultiPart::alternative().singlepart(SinglePart::plain(mail.text())).singlepart(html),
        };
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.story.subject)
            .message_id(Some(mail.message_id.clone()))
            .multipart(body)
            .map_err(|e| compose_error(&e))
    }
}

fn answer(code: String, lines: impl Iterator<Item = impl AsRef<str>>) -> String {
    let lines: Vec<String> = lines.map(|l| l.as_ref().to_owned()).collect();
    format!("{code} {}", lines.join(" ")).trim().to_owned()
}

/// The inline photo's Content-ID, which the HTML refers to.
const PHOTO_ID: &str = "photo";

/// One e-mail about one attempt, before it is addressed.
pub struct Mail {
    pub story: Story,
    /// The attempt's photo as a JPEG no larger than 640 pixels either way.
    pub photo: Option<Vec<u8>>,
    /// `<event id@door.facereko>`.
    pub message_id: String,
}

impl Mail {
    pub fn new(story: Story, photo: Option<&Path>, message_id: String) -> Self {
        let photo = photo.and_then(|path| match scaled_jpeg(path) {
            Ok(jpeg) => Some(jpeg),
            Err(e) => {
                // The words still go out; a photo that cannot be read is not worth losing them.
                tracing::warn!(error = %e, photo = %path.display(), "cannot attach the attempt's photo");
                None
            }
        });
        Self { story, photo, message_id }
    }

    fn text(&self) -> String {
        let mut text = format!("{}\n", self.story.sentence);
        if let Some(link) = &self.story.link {
            text.push_str(&format!("\nSee it in FaceReko: {link}\n"));
        }
        text
    }

    fn html(&self) -> String {
        let story = &self.story;
        maud::html! {
            p { (story.sentence) }
            @if self.photo.is_some() {
                p { img src={ "cid:" (PHOTO_ID) } alt="The photo taken at the door" style="max-width:100%"; }
            }
            @if let Some(link) = &story.link {
                p { a href=(link) { "See it in FaceReko" } }
            }
        }
        .into_string()
    }
}

/// The photo at `path`, scaled down to fit 640×640 and encoded as a JPEG.
fn scaled_jpeg(path: &Path) -> Result<Vec<u8>, image::ImageError> {
    let picture = image::open(path)?;
    let picture = if picture.width() > PHOTO_SIZE || picture.height() > PHOTO_SIZE {
        picture.resize(PHOTO_SIZE, PHOTO_SIZE, image::imageops::FilterType::Triangle)
    } else {
        picture
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode_image(&picture.to_rgb8())?;
    Ok(jpeg)
}

/// The e-mail channel for the deliverer.
#[async_trait::async_trait]
impl Courier for Mailer {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, to: &str, story: &Story, photo: Option<&Path>, id: &str) -> Outcome {
        // The same for every sending of one message, so that a mail sent again is recognisable.
        let message_id = format!("<{id}@{}>", self.id_domain);
        let (story, photo) = (story.clone(), photo.map(Path::to_owned));
        // Scaling the photo is CPU work: off the threads the door's own tasks run on.
        let mail = match tokio::task::spawn_blocking(move || Mail::new(story, photo.as_deref(), message_id)).await {
            Ok(mail) => mail,
            Err(e) => return Outcome::Retry(format!("cannot write the mail: {e}")),
        };
        self.send_mail(to, &mail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig {
            server: "smtp.example.com".into(),
            from: "FaceReko <door@example.com>".into(),
            to: vec!["owner@example.com".into()],
            ..EmailConfig::default()
        }
    }

    fn problems(config: &EmailConfig) -> Vec<String> {
        let mut checks = Checks::default();
        config.check(&mut checks);
        checks.into_problems().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_plain_server_elsewhere_and_bad_addresses_are_refused() {
        assert!(problems(&config()).is_empty());
        let plain = EmailConfig { security: Security::Plain, ..config() };
        assert_eq!(problems(&plain), ["email.security"]);
        let local = EmailConfig { server: "127.0.0.1".into(), ..plain };
        assert!(problems(&local).is_empty());
        let bad = EmailConfig { from: "door".into(), to: vec!["owner@".into()], ..config() };
        assert_eq!(problems(&bad), ["email.from", "email.to"]);
        let no_user = EmailConfig { password: Some(Secret::new("x")), ..config() };
        assert_eq!(problems(&no_user), ["email.username"]);
    }

    #[test]
    fn ports_follow_the_security_unless_set() {
        assert_eq!(config().port(), 587);
        assert_eq!(EmailConfig { security: Security::Tls, ..config() }.port(), 465);
        assert_eq!(EmailConfig { port: Some(2525), ..config() }.port(), 2525);
    }
}
