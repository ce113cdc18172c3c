//! Who is signed in: sessions in memory behind an HttpOnly cookie, a CSRF token per session (and
//! a double-submit cookie for the sign-in and setup forms), sign-in rate limits per account and
//! per address, and the one-time setup code of the first-run page.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Failed sign-ins counted per account and per address within this window.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_FAILURES_PER_ACCOUNT: usize = 5;
const MAX_FAILURES_PER_ADDRESS: usize = 20;
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
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct User {
    token: String,
    pub username: String,
    pub role: Role,
    pub csrf: String,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses a form whose token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), WebError> {
        if same_secret(token, &self.csrf) { Ok(()) } else { Err(WebError::Csrf) }
    }
}

pub struct Auth {
    lifetime: Duration,
    secure: bool,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    setup_code: Mutex<Option<String>>,
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
            secure: config.secure_cookies,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
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
            csrf: random_token(32),
            expires: now + self.lifetime,
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
    async fn user(&self, token: &str, store: &dyn crate::store::Store) -> Option<User> {
        let session = self.session(token)?;
        let role = match store.accounts().user_by_name(&session.username).await {
            Ok(Some(account)) if account.password_hash == session.password_hash => account.role.parse().ok(),
            Ok(_) => None,
            Err(_) => Some(session.role),
        };
        let Some(role) = role else {
            self.sessions.lock().expect("sessions lock").remove(token);
            return None;
        };
        Some(User { token: token.to_owned(), username: session.username, role, csrf: session.csrf })
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

    /// How long until `keys` may try again, if any of them failed too often lately.
    pub fn blocked_for(&self, keys: &[SignInKey]) -> Option<Duration> {
        let now = Instant::now();
        let failures = self.failures.lock().expect("failures lock");
        keys.iter()
            .filter_map(|key| {
                let recent = failures.get(&key.text)?;
                let live: Vec<&Instant> =
                    recent.iter().filter(|at| now.duration_since(**at) < FAILURE_WINDOW).collect();
                (live.len() >= key.limit).then(|| FAILURE_WINDOW.saturating_sub(now.duration_since(*live[0])))
            })
            .max()
    }

    pub fn record_failure(&self, keys: &[SignInKey]) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, times| times.back().is_some_and(|at| now.duration_since(*at) < FAILURE_WINDOW));
        }
        for key in keys {
            let times = failures.entry(key.text.clone()).or_default();
            times.retain(|at| now.duration_since(*at) < FAILURE_WINDOW);
            times.push_back(now);
        }
    }

    /// A good sign-in clears the account's failures (not the address's: one known password must
    /// not reset the count of guesses at others).
    pub fn clear_failures(&self, account: &SignInKey) {
        self.failures.lock().expect("failures lock").remove(&account.text);
    }
}

/// A counter of failed sign-ins and its limit.
pub struct SignInKey {
    text: String,
    limit: usize,
}

impl SignInKey {
    pub fn account(username: &str) -> Self {
        Self { text: format!("account:{}", username.trim().to_lowercase()), limit: MAX_FAILURES_PER_ACCOUNT }
    }

    pub fn address(address: Option<IpAddr>) -> Self {
        let shown = address.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        Self { text: format!("address:{shown}"), limit: MAX_FAILURES_PER_ADDRESS }
    }
}

/// The client's address, when the server recorded it (requests sent straight to the router in
/// tests may have none).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())))
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

/// Reads a form posted by `user`, refusing it unless it carries the session's CSRF token; the
/// handlers behind [`SignedForm`] and [`AdminForm`] therefore cannot forget the check.
async fn checked_form<T: DeserializeOwned>(user: &User, request: Request, state: &WebState) -> Result<T, Response> {
    let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
    let bad = |e: serde_urlencoded::de::Error| WebError::BadRequest(format!("not a valid form: {e}")).into_response();
    let token: CsrfToken = serde_urlencoded::from_bytes(&body).map_err(bad)?;
    user.check_csrf(&token.csrf).map_err(IntoResponse::into_response)?;
    serde_urlencoded::from_bytes(&body).map_err(bad)
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

    #[test]
    fn failures_block_each_key_at_its_own_limit() {
        let auth = Auth::new(&WebConfig::default());
        let account = || SignInKey::account("Ada");
        let address = || SignInKey::address(Some([10, 0, 0, 1].into()));
        for _ in 0..MAX_FAILURES_PER_ACCOUNT - 1 {
            auth.record_failure(&[account(), address()]);
        }
        assert_eq!(auth.blocked_for(&[account(), address()]), None);
        auth.record_failure(&[SignInKey::account(" ADA "), address()]);
        let wait = auth.blocked_for(&[account()]).expect("the account is blocked");
        assert!(wait <= FAILURE_WINDOW && wait > FAILURE_WINDOW - Duration::from_secs(60), "{wait:?}");
        assert_eq!(auth.blocked_for(&[address()]), None, "the address has more room");
        auth.clear_failures(&account());
        assert_eq!(auth.blocked_for(&[account()]), None);
    }
}
