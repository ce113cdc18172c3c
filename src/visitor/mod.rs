//! Visitors: people without a card whom the owner lets in. A visit is rung at the door, the owner
//! decides through a signed link, and a visitor comes in with a one-time passcode on the virtual
//! door page.
//!
//! Secrets never reach the database or the log: a passcode is stored as an HMAC keyed with a key
//! of this site's, and approve links carry an HMAC of what they allow and until when. The key is
//! made on first use and kept in the settings table, so every door of a site shares it.

mod desk;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::access::{Credential, PassCheck, PassOutcome};
use crate::checks::{Checks, Secret};
use crate::store::{NewPass, PassKind, Store, StoreError, Visit, VisitId, VisitStatus};

pub use desk::{Desk, Ring, Sent};

type HmacSha256 = Hmac<Sha256>;

/// The settings key the site's visitor key is kept under.
const KEY_SETTING: &str = "visitors.key";
/// Digits in a passcode: a million codes against a handful of tries.
const PASSCODE_DIGITS: usize = 6;
/// How long after its end a pass is still recognised, so a late visitor hears "expired", not "wrong".
const RECOGNISED_AFTER_END: Duration = Duration::from_secs(24 * 3600);

/// `[visitors]`: visits, the owner's approval and visitors' passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitorsConfig {
    /// Serve the visitor page `/visit` and the virtual door `/door` (without sign-in).
    pub enabled: bool,
    /// How long a passcode works once sent.
    #[serde(with = "humantime_serde")]
    pub passcode_lifetime: Duration,
    /// Wrong passcodes typed at the door before its live passcodes lock.
    pub passcode_tries: u32,
    /// How long the link in the owner's message can decide the visit.
    #[serde(with = "humantime_serde")]
    pub approve_link_lifetime: Duration,
    /// Visits, their photos and contacts are deleted this long after the visit.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Who is told of a ring: "email:owner@example.com" or "sms:+4915112345678".
    pub tell: Vec<String>,
}

impl Default for VisitorsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            passcode_lifetime: Duration::from_secs(5 * 60),
            passcode_tries: 5,
            approve_link_lifetime: Duration::from_secs(10 * 60),
            retention: Duration::from_secs(30 * 86400),
            tell: Vec::new(),
        }
    }
}

impl VisitorsConfig {
    pub fn check(&self, checks: &mut Checks) {
        let minutes = |n: u64| Duration::from_secs(n * 60);
        let days = |n: u64| Duration::from_secs(n * 86400);
        checks.duration("visitors.passcode_lifetime", self.passcode_lifetime, minutes(1), minutes(60));
        checks.check(
            (1..=10).contains(&self.passcode_tries),
            "visitors.passcode_tries",
            format!("{} is out of range; use 1 to 10 (default 5)", self.passcode_tries),
        );
        checks.duration("visitors.approve_link_lifetime", self.approve_link_lifetime, minutes(1), days(1));
        checks.duration("visitors.retention", self.retention, days(1), days(366));
        for (i, recipient) in self.tell.iter().enumerate() {
            checks.check(
                Contact::parse(recipient).is_some(),
                &format!("visitors.tell[{i}]"),
                format!("{recipient:?} is not \"email:<address>\" or \"sms:<+number>\""),
            );
        }
        checks.check(
            !self.enabled || !self.tell.is_empty(),
            "visitors.tell",
            "nobody would hear of a ring; add e.g. \"email:owner@example.com\"",
        );
    }

    /// The owner's contacts, as configured.
    pub fn owners(&self) -> Vec<Contact> {
        self.tell.iter().filter_map(|recipient| Contact::parse(recipient)).collect()
    }
}

/// How to reach someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    Email(String),
    Sms(String),
}

impl Contact {
    pub fn parse(text: &str) -> Option<Self> {
        match text.split_once(':')? {
            ("email", address) if valid_email(address) => Some(Contact::Email(address.to_owned())),
            ("sms", number) if valid_mobile(number) => Some(Contact::Sms(number.to_owned())),
            _ => None,
        }
    }
}

/// A plausible e-mail address: something, one `@`, a dotted domain, no spaces; at most 254 bytes.
pub fn valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    address.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !address.chars().any(|c| c.is_whitespace() || c.is_control() || "<>\",;".contains(c))
}

/// A mobile number in international form: `+` and 8 to 15 digits.
pub fn valid_mobile(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|digits| (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Debug, thiserror::Error)]
pub enum VisitorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the visitor key in the settings is damaged; remove the setting {KEY_SETTING:?} to make a new one")]
    DamagedKey,
}

/// The site's visitor key, kept in the settings table.
#[derive(Clone)]
pub struct VisitorKey([u8; 32]);

impl std::fmt::Debug for VisitorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorKey(<redacted>)")
    }
}

impl VisitorKey {
    /// The key from the settings, made and saved on first use.
    pub async fn load_or_create(store: &dyn Store) -> Result<Self, VisitorError> {
        if let Some(text) = store.settings().setting(KEY_SETTING).await? {
            let bytes = hex::decode(text.trim()).map_err(|_| VisitorError::DamagedKey)?;
            return bytes.try_into().map(Self).map_err(|_| VisitorError::DamagedKey);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source works");
        store.settings().set_setting(KEY_SETTING, &hex::encode(key)).await?;
        Ok(Self(key))
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in parts {
            // Length-prefixed, so no two different part lists hash alike.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The stored form of a passcode at a door: a code is only good at the door it was made for.
    pub fn passcode_hash(&self, door: &str, code: &str) -> String {
        hex::encode(self.mac(&["passcode", door, code]).finalize().into_bytes())
    }

    /// A signature for a link that allows `action` on `visit` until `until` (unix seconds).
    pub fn sign_link(&self, visit: VisitId, action: &str, until: i64) -> String {
        let bytes = self.mac(&["link", action, &visit.to_string(), &until.to_string()]).finalize().into_bytes();
        hex::encode(&bytes[..16])
    }

    /// Whether `signature` was made by [`Self::sign_link`] for these values and `until` is not past.
    pub fn link_holds(&self, visit: VisitId, action: &str, until: i64, signature: &str, now: OffsetDateTime) -> bool {
        let Ok(given) = hex::decode(signature) else { return false };
        let mac = self.mac(&["link", action, &visit.to_string(), &until.to_string()]);
        // `verify_truncated_left` compares in constant time.
        given.len() == 16 && mac.verify_truncated_left(&given).is_ok() && now.unix_timestamp() < until
    }
}

/// Six random digits, every code equally likely.
pub fn new_passcode() -> String {
    let mut code = String::with_capacity(PASSCODE_DIGITS);
    while code.len() < PASSCODE_DIGITS {
        let mut byte = [0u8; 1];
        getrandom::fill(&mut byte).expect("the operating system's random source works");
        // 250 is the largest multiple of 10 a byte holds: above it, a digit would be biased.
        if byte[0] < 250 {
            code.push(char::from(b'0' + byte[0] % 10));
        }
    }
    code
}

/// A typed passcode, tidied: spaces and dashes people type between digit groups are dropped.
fn tidy_passcode(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (code.len() == PASSCODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Issues and checks visitors' passes at one door. Clones share the key, loaded on first use.
#[derive(Clone)]
pub struct Passes {
    key: Arc<OnceCell<VisitorKey>>,
    door: String,
    config: VisitorsConfig,
    store: Arc<dyn Store>,
}

impl Passes {
    pub fn new(door: String, config: VisitorsConfig, store: Arc<dyn Store>) -> Self {
        Self { key: Arc::default(), door, config, store }
    }

    pub async fn key(&self) -> Result<&VisitorKey, VisitorError> {
        self.key.get_or_try_init(|| VisitorKey::load_or_create(self.store.as_ref())).await
    }

    pub fn door(&self) -> &str {
        &self.door
    }

    pub fn config(&self) -> &VisitorsConfig {
        &self.config
    }

    /// A new passcode for `visit`, good once within the passcode lifetime; the visit becomes approved.
    pub async fn issue_passcode(&self, visit: &Visit, now: OffsetDateTime) -> Result<String, VisitorError> {
        let code = new_passcode();
        let pass = NewPass {
            visit: visit.id,
            door: self.door.clone(),
            kind: PassKind::Passcode,
            secret_hash: self.key().await?.passcode_hash(&self.door, &code),
            expires_at: now + self.config.passcode_lifetime,
            uses: 1,
        };
        self.store.visits().add_pass(&pass).await?;
        Ok(code)
    }

    /// Checks a pass shown at the door and uses it when it is good. Only the virtual door's
    /// passcodes are checked so far; any other credential is refused as forged.
    pub async fn check(
        &self,
        credential: &Credential,
        secret: &Secret,
        now: OffsetDateTime,
    ) -> Result<PassCheck, VisitorError> {
        match credential {
            Credential::Passcode => self.check_passcode(secret.expose(), now).await,
            _ => Ok(PassCheck { outcome: PassOutcome::Forged, visitor: None, detail: None }),
        }
    }

    async fn check_passcode(&self, typed: &str, now: OffsetDateTime) -> Result<PassCheck, VisitorError> {
        let visits = self.store.visits();
        let key = self.key().await?;
        let hash = tidy_passcode(typed).map(|code| key.passcode_hash(&self.door, &code));
        let passes = visits.passes(&self.door, PassKind::Passcode, now - RECOGNISED_AFTER_END).await?;
        // Every stored hash is compared, in constant time, so timing tells nothing about which matched.
        let mut matched = None;
        for pass in &passes {
            let same =
                hash.as_deref().is_some_and(|hash| constant_time_eq(hash.as_bytes(), pass.secret_hash.as_bytes()));
            if same {
                matched = Some(pass);
            }
        }
        let Some(pass) = matched else {
            let locked = visits.wrong_passcode(&self.door, now, self.config.passcode_tries).await?;
            if let Some(visit) = locked.first() {
                let detail = format!("visit {visit}: passcode locked after {} wrong tries", self.config.passcode_tries);
                return Ok(PassCheck { outcome: PassOutcome::Locked, visitor: None, detail: Some(detail) });
            }
            return Ok(PassCheck { outcome: PassOutcome::Wrong, visitor: None, detail: None });
        };
        let visit = visits.visit(pass.visit).await?;
        let visitor = visit.as_ref().map(|visit| visit.name.clone());
        let detail = Some(format!("visit {}", pass.visit));
        let outcome = if pass.locked {
            PassOutcome::Locked
        } else if pass.expires_at <= now {
            PassOutcome::Expired
        } else if pass.uses_left == 0 || !visits.use_pass(pass.id, now).await? {
            PassOutcome::Used
        } else {
            if let Some(visit) = visit.as_ref().filter(|_| pass.uses_left == 1) {
                // Who approved stays on record.
                let by = visit.decided_by.as_deref().unwrap_or_default();
                visits.move_visit(pass.visit, VisitStatus::Approved, VisitStatus::Used, by, now).await?;
            }
            PassOutcome::Valid
        };
        Ok(PassCheck { outcome, visitor, detail })
    }
}

/// Deletes visits past their retention period, hourly, until the task is aborted.
pub async fn keep_forgetting(desk: Desk) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match desk.forget_old(OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "visits past their retention period were deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete old visits; trying again in an hour"),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VisitorKey {
        VisitorKey([7; 32])
    }

    #[test]
    fn passcodes_are_six_digits_and_differ() {
        let codes: Vec<String> = (0..50).map(|_| new_passcode()).collect();
        assert!(codes.iter().all(|code| code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())));
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert!(distinct.len() > 45, "{codes:?}");
    }

    #[test]
    fn typed_passcodes_may_have_spaces_and_dashes() {
        assert_eq!(tidy_passcode("123 456").as_deref(), Some("123456"));
        assert_eq!(tidy_passcode("123-456").as_deref(), Some("123456"));
        assert_eq!(tidy_passcode("12345"), None);
        assert_eq!(tidy_passcode("12345x"), None);
        assert_eq!(tidy_passcode("１２３４５６"), None);
    }

    #[test]
    fn a_passcode_hash_belongs_to_its_door_and_key() {
        let hash = key().passcode_hash("front", "123456");
        assert_eq!(hash, key().passcode_hash("front", "123456"));
        assert_ne!(hash, key().passcode_hash("back", "123456"));
        assert_ne!(hash, VisitorKey([8; 32]).passcode_hash("front", "123456"));
        assert!(!hash.contains("123456"));
    }

    #[test]
    fn links_hold_until_their_end_for_what_they_were_signed() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let until = now.unix_timestamp() + 600;
        let signature = key().sign_link(VisitId(3), "decide", until);
        assert!(key().link_holds(VisitId(3), "decide", until, &signature, now));
        assert!(!key().link_holds(VisitId(3), "decide", until, &signature, now + Duration::from_secs(600)));
        assert!(!key().link_holds(VisitId(4), "decide", until, &signature, now));
        assert!(!key().link_holds(VisitId(3), "other", until, &signature, now));
        assert!(!key().link_holds(VisitId(3), "decide", until + 1, &signature, now));
        assert!(!key().link_holds(VisitId(3), "decide", until, "00", now));
        assert!(!key().link_holds(VisitId(3), "decide", until, "not hex", now));
    }

    #[test]
    fn contacts_are_email_or_international_numbers() {
        assert_eq!(Contact::parse("email:owner@example.com"), Some(Contact::Email("owner@example.com".into())));
        assert_eq!(Contact::parse("sms:+4915112345678"), Some(Contact::Sms("+4915112345678".into())));
        for bad in
            ["owner@example.com", "email:owner", "email:a@b@c.d", "email:a b@c.d", "sms:015112345678", "fax:+491"]
        {
            assert_eq!(Contact::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_defaults_pass_their_checks_once_someone_is_told() {
        let mut config = VisitorsConfig::default();
        let mut checks = Checks::default();
        config.check(&mut checks);
        assert!(checks.into_problems().is_empty());
        config.enabled = true;
        let mut checks = Checks::default();
        config.check(&mut checks);
        assert_eq!(checks.into_problems().len(), 1);
    }
}
