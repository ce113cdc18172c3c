//! Visitors: people without a card whom the owner lets in. A visit is rung at the door, the owner
//! decides through a signed link, and a visitor comes in with a one-time passcode on the virtual
//! door page or with a QR pass shown to the door camera.
//!
//! Secrets never reach the database or the log: passcodes and QR passes are stored as an HMAC keyed
//! with a key of this site's, and approve links and QR passes carry an HMAC of what they allow and
//! until when. The key is made on first use and kept in the settings table, so every door of a
//! site shares it.
//!
//! Visitors the owner let in are kept for next time, with descriptors of their faces, until the
//! retention period after their last visit: a ring names a known visitor to the owner, and sends
//! a passcode at once to one the owner marked auto-pass.

mod desk;
mod faces;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::access::{Credential, PassCheck, PassOutcome};
use crate::checks::{Checks, Secret};
use crate::engine::EngineError;
use crate::store::{NewPass, PassKind, Store, StoreError, StoredPass, Visit, VisitId, VisitStatus};

pub use desk::{Desk, Recognised, Ring, RingKind, Sent, Tidied, edited_details, has_contact};
pub use faces::KnownFaces;

type HmacSha256 = Hmac<Sha256>;

/// The settings key the site's visitor key is kept under.
const KEY_SETTING: &str = "visitors.key";
/// Digits in a passcode: a million codes against a handful of tries.
const PASSCODE_DIGITS: usize = 6;
/// Bytes of HMAC kept in a link's or a QR pass's signature: 128 bits cannot be guessed.
const SIGNATURE_BYTES: usize = 16;
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
    /// How long a QR pass works once sent.
    #[serde(with = "humantime_serde")]
    pub qr_lifetime: Duration,
    /// How many times a QR pass opens the door.
    pub qr_uses: u32,
    /// How long the link in the owner's message can decide the visit.
    #[serde(with = "humantime_serde")]
    pub approve_link_lifetime: Duration,
    /// Visits, their photos and contacts are deleted this long after the visit; known visitors,
    /// with their faces and all their visits, this long after their last visit.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Who is told of a ring: "email:owner@example.com" or "sms:+4915112345678".
    pub tell: Vec<String>,
    /// After a ring, presses of the doorbell and unknown cards ring again only this much later.
    #[serde(with = "humantime_serde")]
    pub ring_hold_off: Duration,
    /// An unknown card tapped while the door camera sees a face rings like the doorbell.
    pub unknown_card_rings: bool,
}

impl Default for VisitorsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            passcode_lifetime: Duration::from_secs(5 * 60),
            passcode_tries: 5,
            qr_lifetime: Duration::from_secs(24 * 3600),
            qr_uses: 1,
            approve_link_lifetime: Duration::from_secs(10 * 60),
            retention: Duration::from_secs(30 * 86400),
            tell: Vec::new(),
            ring_hold_off: Duration::from_secs(30),
            unknown_card_rings: true,
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
        checks.duration("visitors.qr_lifetime", self.qr_lifetime, minutes(60), days(30));
        checks.check(
            (1..=20).contains(&self.qr_uses),
            "visitors.qr_uses",
            format!("{} is out of range; use 1 to 20 (default 1)", self.qr_uses),
        );
        checks.duration("visitors.approve_link_lifetime", self.approve_link_lifetime, minutes(1), days(1));
        checks.duration("visitors.retention", self.retention, days(1), days(366));
        checks.duration("visitors.ring_hold_off", self.ring_hold_off, Duration::from_secs(1), minutes(10));
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
    #[error("cannot draw the QR pass: {0}")]
    QrImage(String),
    #[error("cannot describe the visitor's face: {0}")]
    Engine(#[from] EngineError),
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

    /// The stored form of a pass's secret (a passcode, a QR pass's token) at a door: a secret is
    /// only good at the door it was made for.
    pub fn pass_hash(&self, kind: PassKind, door: &str, secret: &str) -> String {
        hex::encode(self.mac(&[kind.as_str(), door, secret]).finalize().into_bytes())
    }

    /// 32 hex digits: the first half of the HMAC of `parts`.
    fn signature(&self, parts: &[&str]) -> String {
        hex::encode(&self.mac(parts).finalize().into_bytes()[..SIGNATURE_BYTES])
    }

    /// Whether `signature` is [`Self::signature`] of `parts`, compared in constant time.
    fn signed(&self, parts: &[&str], signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else { return false };
        given.len() == SIGNATURE_BYTES && self.mac(parts).verify_truncated_left(&given).is_ok()
    }

    /// A signature for a link that allows `action` on `visit` until `until` (unix seconds).
    pub fn sign_link(&self, visit: VisitId, action: &str, until: i64) -> String {
        self.signature(&["link", action, &visit.to_string(), &until.to_string()])
    }

    /// Whether `signature` was made by [`Self::sign_link`] for these values and `until` is not past.
    pub fn link_holds(&self, visit: VisitId, action: &str, until: i64, signature: &str, now: OffsetDateTime) -> bool {
        self.signed(&["link", action, &visit.to_string(), &until.to_string()], signature)
            && now.unix_timestamp() < until
    }

    /// The signature in a QR pass for `visit` at `door` until `until` (unix seconds).
    pub fn sign_qr(&self, door: &str, visit: VisitId, until: i64) -> String {
        self.signature(&["qr", door, &visit.to_string(), &until.to_string()])
    }

    /// Whether `signature` was made by [`Self::sign_qr`] for these values (whether `until` is past
    /// is the stored pass's business, so that a late visitor hears "expired", not "forged").
    pub fn qr_holds(&self, door: &str, visit: VisitId, until: i64, signature: &str) -> bool {
        self.signed(&["qr", door, &visit.to_string(), &until.to_string()], signature)
    }
}

/// What a QR pass's code says: `FR1-<visit>-<until>-<signature>`, at most 80 characters so that
/// the code stays small enough for a door camera to read from a phone. The visit rather than the
/// pass names it, because the pass's row stores the hash of the whole token, made before the row
/// (and its id) exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrToken {
    pub visit: VisitId,
    /// Unix seconds.
    pub until: i64,
    signature: String,
}

impl QrToken {
    /// What every FaceReko QR pass starts with; the scanner ignores other codes.
    pub const PREFIX: &str = "FR1-";
    pub const MAX_LEN: usize = 80;

    pub fn new(key: &VisitorKey, door: &str, visit: VisitId, until: i64) -> Self {
        Self { visit, until, signature: key.sign_qr(door, visit, until) }
    }

    /// The token in `text`, if it has the token's shape; its signature is not checked yet.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > Self::MAX_LEN {
            return None;
        }
        let mut fields = text.strip_prefix(Self::PREFIX)?.split('-');
        let number = |field: &str| field.bytes().all(|b| b.is_ascii_digit()).then(|| field.parse().ok()).flatten();
        let visit = VisitId(number(fields.next()?)?);
        let until = number(fields.next()?)?;
        let signature = fields.next()?;
        let hex = signature.len() == 2 * SIGNATURE_BYTES && signature.bytes().all(|b| b.is_ascii_hexdigit());
        (hex && fields.next().is_none()).then(|| Self { visit, until, signature: signature.to_ascii_lowercase() })
    }

    /// Whether the site's key made this token for `door`.
    pub fn holds(&self, key: &VisitorKey, door: &str) -> bool {
        key.qr_holds(door, self.visit, self.until, &self.signature)
    }
}

impl std::fmt::Display for QrToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}-{}-{}", Self::PREFIX, self.visit, self.until, self.signature)
    }
}

/// `token` as a black-on-white QR code in a PNG, 8 pixels a module with the standard quiet zone:
/// about 330 pixels across, sharp on any phone and small enough to go in a mail unscaled.
pub fn qr_png(token: &QrToken) -> Result<Vec<u8>, VisitorError> {
    let failed = |e: &dyn std::fmt::Display| VisitorError::QrImage(e.to_string());
    // Medium error correction: a quarter of the code may be lost to glare or a cracked screen.
    let code =
        qrcode::QrCode::with_error_correction_level(token.to_string(), qrcode::EcLevel::M).map_err(|e| failed(&e))?;
    let picture = code.render::<image::Luma<u8>>().module_dimensions(8, 8).quiet_zone(true).build();
    let mut png = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut png, image::ImageFormat::Png).map_err(|e| failed(&e))?;
    Ok(png.into_inner())
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
            secret_hash: self.key().await?.pass_hash(PassKind::Passcode, &self.door, &code),
            expires_at: now + self.config.passcode_lifetime,
            uses: 1,
        };
        self.store.visits().add_pass(&pass).await?;
        Ok(code)
    }

    /// A new QR pass for `visit`, good `uses` times within `lifetime` from `now`; returns the
    /// token its code carries.
    pub async fn issue_qr(
        &self,
        visit: &Visit,
        lifetime: Duration,
        uses: u32,
        now: OffsetDateTime,
    ) -> Result<QrToken, VisitorError> {
        let key = self.key().await?;
        let expires_at = now + lifetime;
        let token = QrToken::new(key, &self.door, visit.id, expires_at.unix_timestamp());
        let pass = NewPass {
            visit: visit.id,
            door: self.door.clone(),
            kind: PassKind::Qr,
            secret_hash: key.pass_hash(PassKind::Qr, &self.door, &token.to_string()),
            expires_at,
            uses,
        };
        self.store.visits().add_pass(&pass).await?;
        Ok(token)
    }

    /// Whether a QR pass at this door could open it now (unlocked, unexpired, a use left): the
    /// camera need look for codes only then.
    pub async fn qr_live(&self, now: OffsetDateTime) -> Result<bool, VisitorError> {
        let passes = self.store.visits().passes(&self.door, PassKind::Qr, now).await?;
        Ok(passes.iter().any(|pass| !pass.locked && pass.uses_left > 0))
    }

    /// Checks a pass shown at the door and uses it when it is good. A card or an opening from afar
    /// is no pass: it is refused as forged.
    pub async fn check(
        &self,
        credential: &Credential,
        secret: &Secret,
        now: OffsetDateTime,
    ) -> Result<PassCheck, VisitorError> {
        match credential {
            Credential::Passcode => self.check_passcode(secret.expose(), now).await,
            Credential::QrPass => self.check_qr(secret.expose(), now).await,
            Credential::Card(_) | Credential::Remote { .. } => Ok(FORGED),
        }
    }

    async fn check_qr(&self, shown: &str, now: OffsetDateTime) -> Result<PassCheck, VisitorError> {
        let key = self.key().await?;
        // Checked before the store is asked: made-up codes cost no query.
        let Some(token) = QrToken::parse(shown).filter(|token| token.holds(key, &self.door)) else {
            return Ok(FORGED);
        };
        let hash = key.pass_hash(PassKind::Qr, &self.door, &token.to_string());
        let passes = self.store.visits().passes(&self.door, PassKind::Qr, now - RECOGNISED_AFTER_END).await?;
        let of_visit: Vec<StoredPass> = passes.into_iter().filter(|pass| pass.visit == token.visit).collect();
        // A signed token without its pass: the pass was forgotten, or the database was made anew.
        match matching(&of_visit, Some(&hash)) {
            Some(pass) => self.conclude(pass, now).await,
            None => Ok(FORGED),
        }
    }

    async fn check_passcode(&self, typed: &str, now: OffsetDateTime) -> Result<PassCheck, VisitorError> {
        let visits = self.store.visits();
        let key = self.key().await?;
        let hash = tidy_passcode(typed).map(|code| key.pass_hash(PassKind::Passcode, &self.door, &code));
        let passes = visits.passes(&self.door, PassKind::Passcode, now - RECOGNISED_AFTER_END).await?;
        let Some(pass) = matching(&passes, hash.as_deref()) else {
            let locked = visits.wrong_passcode(&self.door, now, self.config.passcode_tries).await?;
            if let Some(visit) = locked.first() {
                let detail = format!("visit {visit}: passcode locked after {} wrong tries", self.config.passcode_tries);
                return Ok(PassCheck { outcome: PassOutcome::Locked, visitor: None, detail: Some(detail) });
            }
            return Ok(PassCheck { outcome: PassOutcome::Wrong, visitor: None, detail: None });
        };
        self.conclude(pass, now).await
    }

    /// The verdict on a pass whose secret matched: locked, expired, used up, or used now (the
    /// visit becomes used with its last use).
    async fn conclude(&self, pass: &StoredPass, now: OffsetDateTime) -> Result<PassCheck, VisitorError> {
        let visits = self.store.visits();
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

/// Keeps the visits up to date until the task is aborted: every minute, visits nobody decided in
/// time and approved ones whose passes can no longer open are marked expired; every hour, visits
/// and known visitors past their retention period are deleted.
pub async fn keep_tidy(desk: Desk) {
    let mut minutely = tokio::time::interval(Duration::from_secs(60));
    for minute in 0u64.. {
        minutely.tick().await;
        let now = OffsetDateTime::now_utc();
        match desk.expire(now).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "visits nobody decided in time, or whose passes ran out, expired"),
            Err(e) => tracing::warn!(error = %e, "cannot mark expired visits; trying again in a minute"),
        }
        if minute % 60 != 0 {
            continue;
        }
        match desk.forget_old(now).await {
            Ok(Tidied { visitors: 0, photos: 0 }) => {}
            Ok(Tidied { visitors, photos }) => {
                tracing::info!(visitors, photos, "visits and known visitors past their retention period were deleted")
            }
            Err(e) => tracing::warn!(error = %e, "cannot delete old visits; trying again in an hour"),
        }
    }
}

/// What a pass no stored pass stands behind, or a credential that is no pass, is taken for.
const FORGED: PassCheck = PassCheck { outcome: PassOutcome::Forged, visitor: None, detail: None };

/// The pass whose stored hash is `hash`. Every stored hash is compared, in constant time, so
/// timing tells nothing about which matched.
fn matching<'a>(passes: &'a [StoredPass], hash: Option<&str>) -> Option<&'a StoredPass> {
    let mut matched = None;
    for pass in passes {
        if hash.is_some_and(|hash| constant_time_eq(hash.as_bytes(), pass.secret_hash.as_bytes())) {
            matched = Some(pass);
        }
    }
    matched
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
        let hash = key().pass_hash(PassKind::Passcode, "front", "123456");
        assert_eq!(hash, key().pass_hash(PassKind::Passcode, "front", "123456"));
        assert_ne!(hash, key().pass_hash(PassKind::Passcode, "back", "123456"));
        assert_ne!(hash, key().pass_hash(PassKind::Qr, "front", "123456"));
        assert_ne!(hash, VisitorKey([8; 32]).pass_hash(PassKind::Passcode, "front", "123456"));
        assert!(!hash.contains("123456"));
    }

    #[test]
    fn a_qr_token_goes_round_and_holds_only_unchanged_at_its_door() {
        let token = QrToken::new(&key(), "front", VisitId(i64::from(u32::MAX)), 4_102_444_800);
        let text = token.to_string();
        assert!(text.starts_with("FR1-4294967295-4102444800-"), "{text}");
        assert!(text.len() <= QrToken::MAX_LEN, "{} characters", text.len());
        let read = QrToken::parse(&text).unwrap();
        assert_eq!(read, token);
        assert!(read.holds(&key(), "front"));
        assert!(!read.holds(&key(), "back"), "another door's token");
        assert!(!read.holds(&VisitorKey([8; 32]), "front"), "another site's token");
        // Every single changed character either spoils the shape or the signature.
        for at in QrToken::PREFIX.len()..text.len() {
            let mut changed = text.clone().into_bytes();
            changed[at] = if changed[at] == b'1' { b'2' } else { b'1' };
            let changed = String::from_utf8(changed).unwrap();
            let holds = QrToken::parse(&changed).is_some_and(|token| token.holds(&key(), "front"));
            assert!(!holds, "{changed} still holds");
        }
        for bad in ["", "FR1-", "FR1-1-2", "FR2-1-2-00", &format!("{text}-1"), &text.replace("FR1-", "FR1--")] {
            assert_eq!(QrToken::parse(bad), None, "{bad}");
        }
        assert_eq!(QrToken::parse(&format!("{text}{}", "0".repeat(80))), None, "too long");
    }

    #[test]
    fn a_qr_pass_draws_as_a_code_that_reads_back() {
        let token = QrToken::new(&key(), "front", VisitId(12), 1_800_000_000);
        let png = qr_png(&token).unwrap();
        let picture = image::load_from_memory(&png).unwrap().to_luma8();
        assert!(picture.width() <= 400, "{} pixels across", picture.width());
        let (width, height) = (picture.width() as usize, picture.height() as usize);
        let mut prepared =
            rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| picture.as_raw()[y * width + x]);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        assert_eq!(grids[0].decode().unwrap().1, token.to_string());
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

    #[test]
    fn the_ring_hold_off_is_checked_with_its_key() {
        let mut checks = Checks::default();
        VisitorsConfig { ring_hold_off: Duration::ZERO, ..VisitorsConfig::default() }.check(&mut checks);
        let problems: Vec<String> = checks.into_problems().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            ["visitors.ring_hold_off: 0s is out of range; use a duration from 1s to 10m (e.g. \"10s\", \"500ms\")"]
        );
    }
}
