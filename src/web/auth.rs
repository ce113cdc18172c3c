//! Who is signed in: sessions in memory behind an HttpOnly cookie, a CSRF token per session (and
//! a double-submit cookie for the sign-in and setup forms), sign-in throttling per account and
//! per address, the client's address (through trusted proxies), and the one-time setup code of
//! the first-run page.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};

use serde::de::DeserializeOwned;

use super::{WebConfig, WebError, WebState};
use crate::accounts::{Role, random_token};

pub const SESSION_COOKIE: &str = "facereko_session";
/// Holds the token that the sign-in and setup forms echo back (double-submit).
pub const FORM_COOKIE: &str = "facereko_form";

/// Failures are forgotten after this long without one (once their wait has passed).
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// The first wait; each failure after it doubles the next.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest a sign-in is held back; an address that must wait longer is refused instead.
/// An account's wait stops growing here, so guesses at it never lock its owner out.
const MAX_HOLD: Duration = Duration::from_secs(30);
const ADDRESS_MAX_DELAY: Duration = Duration::from_secs(3600);
/// Failures that cost nothing yet: typos happen.
const FREE_ACCOUNT_FAILURES: u32 = 3;
const FREE_ADDRESS_FAILURES: u32 = 10;
/// Bounds the memory an attacker can make us spend on sessions and failure records.
const MAX_ENTRIES: usize = 10_000;

/// A message shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub message: String,
}

impl Flash {
    pub fn ok(message: impl Into<String>) -> Self {
        Self { ok: true, message: message.into() }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self { ok: false, message: message.into() }
    }
}

#[derive(Debug, Clone)]
struct Session {
    username: String,
    role: Role,
    /// The account's password hash at sign-in: a changed password ends the session.
    password_hash: String,
    /// The most this session gives whatever the account's role (a face sign-in's), if anything.
    ceiling: Option<Role>,
    csrf: String,
    expires: Instant,
    /// When the user last proved who they are: signed in, or passed a step-up.
    checked: Instant,
    flash: Option<Flash>,
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct User {
    token: String,
    pub username: String,
    pub role: Role,
    pub csrf: String,
    /// When the user last proved who they are: signed in, or passed a step-up.
    checked: Instant,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        if same_secret(token, &self.csrf) { Ok(()) } else { Err(WebError::Csrf) }
    }

    /// Whether the user proved who they are less than `within` ago.
    pub fn checked_within(&self, within: Duration) -> bool {
        self.checked.elapsed() < within
    }
}

pub struct Auth {
    lifetime: Duration,
    secure: bool,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
    proxies: TrustedProxies,
    setup_code: Mutex<Option<String>>,
}

/// The failed attempts under one [`SignInKey`].
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: tokio::time::Instant,
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && !expected.is_empty()
        && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

impl Auth {
    pub fn new(config: &WebConfig) -> Self {
        Self {
            lifetime: config.session_lifetime,
            secure: config.secure(),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            proxies: TrustedProxies::new(&config.trusted_proxies),
            setup_code: Mutex::new(None),
        }
    }

    /// Makes the first-run setup code: 12 characters without look-alikes, grouped by four.
    pub fn make_setup_code(&self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
        let code = chars.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-");
        *self.setup_code.lock().expect("setup code lock") = Some(code.clone());
        code
    }

    pub fn setup_code(&self) -> Option<String> {
        self.setup_code.lock().expect("setup code lock").clone()
    }

    /// Whether `given` is the setup code (ignoring case and dashes), which then is spent.
    pub fn take_setup_code(&self, given: &str) -> bool {
        let normalise = |code: &str| code.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect::<String>();
        let mut code = self.setup_code.lock().expect("setup code lock");
        let matches =
            code.as_deref().is_some_and(|code| same_secret(&normalise(given).to_uppercase(), &normalise(code)));
        if matches {
            *code = None;
        }
        matches
    }

    /// Starts a session, with `flash` for its first page; returns the cookie that names it.
    pub fn sign_in(&self, account: &crate::store::User, role: Role, flash: Option<Flash>) -> String {
        self.start(account, role, None, flash)
    }

    /// Starts a session that never gives more than `role`, even if the account's role grows.
    pub fn sign_in_at_most(&self, account: &crate::store::User, role: Role) -> String {
        self.start(account, role, Some(role), None)
    }

    fn start(&self, account: &crate::store::User, role: Role, ceiling: Option<Role>, flash: Option<Flash>) -> String {
        let token = random_token(32);
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, session| session.expires > now);
        if sessions.len() >= MAX_ENTRIES
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(t, _)| t.clone())
        {
            sessions.remove(&oldest);
        }
        let session = Session {
            username: account.username.clone(),
            role,
            password_hash: account.password_hash.clone(),
            ceiling,
            csrf: random_token(32),
            expires: now + self.lifetime,
            checked: now,
            flash,
        };
        sessions.insert(token.clone(), session);
        self.cookie(SESSION_COOKIE, &token, self.lifetime)
    }

    /// Ends the session of `user`; returns the cookie that clears it in the browser.
    pub fn sign_out(&self, user: &User) -> String {
        self.sessions.lock().expect("sessions lock").remove(&user.token);
        self.cookie(SESSION_COOKIE, "", Duration::ZERO)
    }

    fn session(&self, token: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let session = sessions.get(token)?;
        if session.expires <= Instant::now() {
            sessions.remove(token);
            return None;
        }
        Some(session.clone())
    }

    /// The user of session `token`, checked against the account as stored now: a removed account
    /// or a changed password ends the session, a changed role applies at once. While the database
    /// is away the session stands as it was.
    pub(super) async fn user(&self, token: &str, store: &dyn crate::store::Store) -> Option<User> {
        let session = self.session(token)?;
        let role = match store.accounts().user_by_name(&session.username).await {
            Ok(Some(account)) if account.password_hash == session.password_hash => account
                .role
                .parse::<Role>()
                .ok()
                .map(|role| session.ceiling.map_or(role, |ceiling| role.at_most(ceiling))),
            Ok(_) => None,
            Err(_) => Some(session.role),
        };
        let Some(role) = role else {
            self.sessions.lock().expect("sessions lock").remove(token);
            return None;
        };
        Some(User {
            token: token.to_owned(),
            username: session.username,
            role,
            csrf: session.csrf,
            checked: session.checked,
        })
    }

    /// Notes that `user` has just proved who they are again (a step-up).
    pub fn checked_again(&self, user: &User) {
        if let Some(session) = self.sessions.lock().expect("sessions lock").get_mut(&user.token) {
            session.checked = Instant::now();
        }
    }

    /// Whether `user`'s session still stands, checked as for a new request.
    pub(super) async fn still_signed_in(&self, user: &User, store: &dyn crate::store::Store) -> bool {
        self.user(&user.token, store).await.is_some()
    }

    /// Keeps `flash` for the next page the user sees.
    pub fn set_flash(&self, user: &User, flash: Flash) {
        if let Some(session) = self.sessions.lock().expect("sessions lock").get_mut(&user.token) {
            session.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, user: &User) -> Option<Flash> {
        self.sessions.lock().expect("sessions lock").get_mut(&user.token).and_then(|s| s.flash.take())
    }

    /// A cookie for this app: HttpOnly, SameSite=Lax, Secure behind TLS.
    pub fn cookie(&self, name: &str, value: &str, max_age: Duration) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", max_age.as_secs())
    }

    /// Waits out the throttle of `keys` before a password (or setup code) is checked. The
    /// attempt counts as failed unless [`Attempt::succeeded`]: counted now, attempts sent side by
    /// side wait in turn. Refused, with the wait, when an address would have to wait longer than
    /// [`MAX_HOLD`]; an account's wait never grows that long.
    pub async fn attempt(&self, keys: Vec<SignInKey>) -> Result<Attempt<'_>, Duration> {
        let wait = {
            let now = tokio::time::Instant::now();
            let mut failures = self.failures.lock().expect("failures lock");
            if failures.len() >= MAX_ENTRIES {
                failures.retain(|key, failures| !failures.forgotten(key, now));
            }
            let wait = keys
                .iter()
                .filter_map(|key| {
                    let failures = failures.get(&key.text).filter(|failures| !failures.forgotten(&key.text, now))?;
                    let wait = (failures.last + key.delay(failures.count)).saturating_duration_since(now);
                    Some(wait.min(key.max_delay()))
                })
                .max()
                .unwrap_or_default();
            if wait > MAX_HOLD {
                return Err(wait);
            }
            for key in &keys {
                let entry = failures.entry(key.text.clone()).or_insert(Failures { count: 0, last: now });
                if entry.forgotten(&key.text, now) {
                    entry.count = 0;
                }
                entry.count += 1;
                // The next attempt waits from when this one is checked.
                entry.last = now + wait;
            }
            wait
        };
        if !wait.is_zero() {
            tracing::info!(wait = ?wait, "sign-in slowed down after failed attempts");
            tokio::time::sleep(wait).await;
        }
        Ok(Attempt { auth: self, keys })
    }
}

impl Failures {
    fn forgotten(&self, key: &str, now: tokio::time::Instant) -> bool {
        let delay = SignInKey::delay_for(key, self.count);
        now.saturating_duration_since(self.last) >= delay + FAILURE_MEMORY
    }
}

/// A sign-in attempt let through by [`Auth::attempt`]; dropped, it stays a failure.
pub struct Attempt<'a> {
    auth: &'a Auth,
    keys: Vec<SignInKey>,
}

impl Attempt<'_> {
    /// The right password ends the account's throttle; an address keeps its earlier failures
    /// (one known password must not reset the count of guesses at others), but not this one.
    pub fn succeeded(self) {
        let mut failures = self.auth.failures.lock().expect("failures lock");
        for key in &self.keys {
            if key.is_account() {
                failures.remove(&key.text);
            } else if let Some(entry) = failures.get_mut(&key.text) {
                entry.count = entry.count.saturating_sub(1);
            }
        }
    }
}

/// What failed sign-ins are counted under: an account or an address.
pub struct SignInKey {
    text: String,
}

const ACCOUNT_PREFIX: &str = "account:";

impl SignInKey {
    pub fn account(username: &str) -> Self {
        Self { text: format!("{ACCOUNT_PREFIX}{}", username.trim().to_lowercase()) }
    }

    pub fn address(address: Option<IpAddr>) -> Self {
        let shown = address.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        Self { text: format!("address:{shown}") }
    }

    /// Rings from an address: counted like failed sign-ins, since each costs a photo and messages.
    pub fn ring(address: Option<IpAddr>) -> Self {
        let shown = address.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        Self { text: format!("ring:{shown}") }
    }

    fn is_account(&self) -> bool {
        self.text.starts_with(ACCOUNT_PREFIX)
    }

    /// How long the next attempt waits after `failures` failures.
    fn delay(&self, failures: u32) -> Duration {
        Self::delay_for(&self.text, failures)
    }

    /// The longest wait: an account's is short enough never to be refused, even when attempts
    /// at it queue up.
    fn max_delay(&self) -> Duration {
        Self::max_delay_for(&self.text)
    }

    fn max_delay_for(key: &str) -> Duration {
        if key.starts_with(ACCOUNT_PREFIX) { MAX_HOLD } else { ADDRESS_MAX_DELAY }
    }

    fn delay_for(key: &str, failures: u32) -> Duration {
        let free = if key.starts_with(ACCOUNT_PREFIX) { FREE_ACCOUNT_FAILURES } else { FREE_ADDRESS_FAILURES };
        match failures.checked_sub(free) {
            None => Duration::ZERO,
            Some(doublings) => FIRST_DELAY.saturating_mul(1 << doublings.min(20)).min(Self::max_delay_for(key)),
        }
    }
}

/// `wait` in whole minutes, for people.
pub fn minutes(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
}

/// The reverse proxies whose `X-Forwarded-For` is believed (`web.trusted_proxies`).
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Skips entries that do not parse: `config check` reports them.
    pub fn new(entries: &[String]) -> Self {
        Self(entries.iter().filter_map(|entry| Self::parse(entry)).collect())
    }

    /// An address (one host) or a network such as "10.0.0.0/24".
    pub fn parse(entry: &str) -> Option<IpNet> {
        let entry = entry.trim();
        entry.parse::<IpNet>().ok().or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client behind `peer`: the nearest address in `X-Forwarded-For` that is not one of our
    /// proxies, read from the right (the left part is whatever the client chose to send). From
    /// a peer that is not a trusted proxy the header means nothing.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in forwarded.iter().rev() {
            let Ok(hop) = hop.trim().parse::<IpAddr>() else { break };
            client = hop.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// The client's address (through trusted proxies), when the server recorded the peer's
/// (requests sent straight to the router in tests may have none).
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<WebState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        Ok(Self(peer.map(|peer| state.auth().proxies.client(peer, &parts.headers))))
    }
}

/// The CSRF token every form of a signed-in user carries.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct CsrfToken {
    csrf: String,
}

/// A one-button form: nothing besides its CSRF token.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Button {}

/// The body of a form posted by `user`, refused unless it carries the session's CSRF token; the
/// handlers behind [`SignedForm`], [`AdminForm`] and the step-up's forms therefore cannot forget
/// the check.
pub(super) async fn signed_body(user: &User, request: Request, state: &WebState) -> Result<Bytes, Response> {
    let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
    let token: CsrfToken = serde_urlencoded::from_bytes(&body).map_err(bad_form)?;
    user.check_csrf(&token.csrf).map_err(IntoResponse::into_response)?;
    Ok(body)
}

pub(super) fn bad_form(e: serde_urlencoded::de::Error) -> Response {
    WebError::BadRequest(format!("not a valid form: {e}")).into_response()
}

async fn checked_form<T: DeserializeOwned>(user: &User, request: Request, state: &WebState) -> Result<T, Response> {
    let body = signed_body(user, request, state).await?;
    serde_urlencoded::from_bytes(&body).map_err(bad_form)
}

/// A form posted by any signed-in user, its CSRF token checked.
pub struct SignedForm<T>(pub User, pub T);

impl<T: DeserializeOwned> FromRequest<WebState> for SignedForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let Signed(user) = Signed::from_request_parts(&mut parts, state).await?;
        let form = checked_form(&user, Request::from_parts(parts, body), state).await?;
        Ok(Self(user, form))
    }
}

/// A form posted by an admin, its CSRF token checked; viewers are refused before it is read.
pub struct AdminForm<T>(pub User, pub T);

impl<T: DeserializeOwned> FromRequest<WebState> for AdminForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &WebState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let Admin(user) = Admin::from_request_parts(&mut parts, state).await?;
        let form = checked_form(&user, Request::from_parts(parts, body), state).await?;
        Ok(Self(user, form))
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Any signed-in user; others are sent to the sign-in page.
pub struct Signed(pub User);

impl FromRequestParts<WebState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let user = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) => state.auth().user(token, state.store()).await,
            None => None,
        };
        user.map(Signed).ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// A signed-in admin; viewers are refused.
pub struct Admin(pub User);

impl FromRequestParts<WebState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let Signed(user) = Signed::from_request_parts(parts, state).await?;
        if user.is_admin() { Ok(Admin(user)) } else { Err(WebError::Forbidden.into_response()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc123", "abc123"));
        assert!(!same_secret("abc124", "abc123"));
        assert!(!same_secret("abc12", "abc123"));
        assert!(!same_secret("", ""), "an empty secret matches nothing");
    }

    #[test]
    fn the_setup_code_reads_easily_and_works_once() {
        let auth = Auth::new(&WebConfig::default());
        assert!(!auth.take_setup_code("anything"), "no code made yet");
        let code = auth.make_setup_code();
        assert_eq!(code.len(), 14, "{code}");
        assert!(code.chars().all(|c| c == '-' || (c.is_ascii_alphanumeric() && !"01IO".contains(c))), "{code}");
        assert!(!auth.take_setup_code("WRNG-WRNG-WRNG"));
        let typed = format!(" {} ", code.replace('-', " ").to_lowercase());
        assert!(auth.take_setup_code(&typed), "case, spaces and dashes do not matter");
        assert!(!auth.take_setup_code(&code), "spent");
    }

    /// How long an attempt under `keys` waited before it was let through.
    async fn waited(auth: &Auth, keys: Vec<SignInKey>) -> Duration {
        let start = tokio::time::Instant::now();
        auth.attempt(keys).await.expect("let through");
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_passwords_slow_the_account_down_exponentially_but_never_lock_it() {
        let auth = Auth::new(&WebConfig::default());
        let ada = || vec![SignInKey::account("Ada")];
        let mut waits = Vec::new();
        for _ in 0..10 {
            waits.push(waited(&auth, ada()).await.as_secs());
        }
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
        let other = waited(&auth, vec![SignInKey::account("Grace")]).await;
        assert_eq!(other, Duration::ZERO, "the throttle is per account");
        // The owner, after the same wait, gets in; then the account starts over.
        let start = tokio::time::Instant::now();
        auth.attempt(vec![SignInKey::account(" ADA ")]).await.expect("slowed, not refused").succeeded();
        assert_eq!(start.elapsed(), MAX_HOLD);
        assert_eq!(waited(&auth, ada()).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_side_by_side_wait_in_turn_and_only_an_address_is_refused() {
        let auth = Auth::new(&WebConfig::default());
        let at_admin = (0..30).map(|_| auth.attempt(vec![SignInKey::account("admin")]));
        let results = futures_util::future::join_all(at_admin).await;
        assert!(results.iter().all(Result::is_ok), "an account is slowed down, never refused");
        let from_one_address = (0..30).map(|_| auth.attempt(vec![SignInKey::address(Some([203, 0, 113, 7].into()))]));
        let results = futures_util::future::join_all(from_one_address).await;
        // 10 free, then waits of 1, 1+2, 3+4 and 7+8 s; the next would be 15+16 s.
        assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 14);
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_that_keeps_guessing_is_refused_while_the_owner_is_only_slowed() {
        let auth = Auth::new(&WebConfig::default());
        let attacker = Some(IpAddr::from([203, 0, 113, 7]));
        let owner = Some(IpAddr::from([192, 168, 1, 20]));
        let refused = loop {
            match auth.attempt(vec![SignInKey::account("admin"), SignInKey::address(attacker)]).await {
                Ok(_failed) => {}
                Err(wait) => break wait,
            }
        };
        assert!(refused > MAX_HOLD, "{refused:?}");
        let start = tokio::time::Instant::now();
        auth.attempt(vec![SignInKey::account("admin"), SignInKey::address(owner)])
            .await
            .expect("the owner's address has no failures")
            .succeeded();
        assert!(start.elapsed() <= MAX_HOLD);
        // Long quiet forgets the address's failures.
        tokio::time::advance(ADDRESS_MAX_DELAY + FAILURE_MEMORY).await;
        assert_eq!(waited(&auth, vec![SignInKey::address(attacker)]).await, Duration::ZERO);
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(&["127.0.0.1".into(), "10.0.0.0/24".into()]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.1.1.1, 198.51.100.9, 10.0.0.5".parse().unwrap());
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(proxies.client(ip("127.0.0.1"), &headers), ip("198.51.100.9"), "the nearest untrusted hop");
        assert_eq!(proxies.client(ip("::ffff:127.0.0.1"), &headers), ip("198.51.100.9"));
        assert_eq!(proxies.client(ip("203.0.113.1"), &headers), ip("203.0.113.1"), "not a proxy: ignored");
        assert_eq!(proxies.client(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        headers.insert("x-forwarded-for", "garbage, 10.0.0.6".parse().unwrap());
        assert_eq!(proxies.client(ip("127.0.0.1"), &headers), ip("10.0.0.6"), "stops at what does not parse");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_none());
        assert!(TrustedProxies::parse("proxy.lan").is_none());
    }
}
