//! AWS Signature Version 4 verification for requests to the Rekognition-compatible API.
//!
//! We rebuild the canonical request and the string to sign from what arrived, derive the signing
//! key from the caller's secret, and compare the signatures in constant time
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{self, HeaderMap};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::checks::Secret;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name clients sign Rekognition requests for.
pub const SERVICE: &str = "rekognition";
/// How far a request's `X-Amz-Date` may be from our clock, either way (as AWS allows).
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(15);

/// Headers that must be covered by the signature, with their usual spelling: the operation
/// (`X-Amz-Target`) and the time as well as the host; the payload hash when the client sends one.
const MUST_BE_SIGNED: [(&str, &str); 4] = [
    ("host", "Host"),
    ("x-amz-date", "X-Amz-Date"),
    ("x-amz-target", "X-Amz-Target"),
    ("x-amz-content-sha256", "X-Amz-Content-Sha256"),
];

/// Most signatures remembered at once: about 10 MB, or 110 requests a second for 15 minutes.
const MAX_REMEMBERED_SIGNATURES: usize = 100_000;
/// How long after its first arrival a signature may come again. The AWS SDKs sign identical calls
/// made within one second identically (their invocation id is sent unsigned), so those must pass,
/// with a second more for the network; a captured request replayed any later is refused.
const REPEAT_GRACE: time::Duration = time::Duration::seconds(2);

/// When a signature first arrived, and when it can be forgotten.
struct Seen {
    first: OffsetDateTime,
    forget_at: OffsetDateTime,
}

/// Signatures already accepted, each until its request's date leaves the clock-skew window (after
/// which the date check refuses it anyway): a captured request sent again is refused rather than
/// done twice.
#[derive(Default)]
pub struct SeenSignatures(Mutex<HashMap<String, Seen>>);

/// Whether a request may come again with the same signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Never: it changes something (indexes or deletes faces, makes or removes a collection).
    Never,
    /// Within [`REPEAT_GRACE`] of its first arrival: it only reads. The SDKs sign identical calls
    /// made within one second identically (their invocation id goes unsigned), and a repeated
    /// read answers only what the first one did.
    Briefly,
}

impl SeenSignatures {
    /// Accepts `signature` once, or as `repeat` allows, and never again until `signed_at` is more
    /// than [`MAX_CLOCK_SKEW`] before `now`.
    fn accept(
        &self,
        signature: &str,
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
        repeat: Repeat,
    ) -> Result<(), AuthError> {
        let mut seen = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(earlier) = seen.get(signature) {
            return match repeat {
                Repeat::Briefly if now - earlier.first <= REPEAT_GRACE => Ok(()),
                Repeat::Briefly => Err(AuthError::BadSignature(
                    "This signed request was already received; a request that only reads is accepted again only \
                     within 2 seconds of its first arrival. Sign the request again to repeat it."
                        .into(),
                )),
                Repeat::Never => Err(AuthError::BadSignature(
                    "This signed request was already received, and a request that changes data is done only once. \
                     Sign the request again to repeat it."
                        .into(),
                )),
            };
        }
        if seen.len() >= MAX_REMEMBERED_SIGNATURES {
            seen.retain(|_, earlier| earlier.forget_at > now);
        }
        if seen.len() >= MAX_REMEMBERED_SIGNATURES {
            // Forgetting one early would let its replay through; refusing new requests is safe.
            return Err(AuthError::BadSignature(format!(
                "More than {MAX_REMEMBERED_SIGNATURES} signed requests in 15 minutes; try again later."
            )));
        }
        seen.insert(signature.to_owned(), Seen { first: now, forget_at: signed_at + MAX_CLOCK_SKEW });
        Ok(())
    }
}

/// One key pair that may call the API.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

/// Why a request was refused; each maps to the error type AWS uses for it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No or malformed `Authorization` header (AWS: `MissingAuthenticationTokenException`, which
    /// the SDK treats as an access problem).
    #[error("{0}")]
    Missing(String),
    /// The access key id is not one of ours.
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    #[error("{0}")]
    BadSignature(String),
}

/// The parts of a request that its signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The `Authorization` header's fields.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let malformed = || {
        AuthError::Missing(format!(
            "Authorization header requires {ALGORITHM} with Credential, SignedHeaders and Signature."
        ))
    };
    let rest = value.strip_prefix(ALGORITHM).ok_or_else(malformed)?.trim_start();
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in rest.split(',') {
        match field.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(malformed()),
        }
    }
    let (credential, signed_headers, signature) =
        (credential.ok_or_else(malformed)?, signed_headers.ok_or_else(malformed)?, signature.ok_or_else(malformed)?);
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = parts[..] else {
        return Err(AuthError::BadSignature(format!(
            "Credential should be scoped to a valid region and service: {credential}"
        )));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed_headers.split(';').collect(),
        signature,
    })
}

/// Percent-encodes everything but the unreserved characters (and `/` when `keep_slash`), as
/// SigV4 prescribes.
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(&percent_decode(key), false), uri_encode(&percent_decode(value), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&")
}

/// A header's values as signed: trimmed, inner runs of spaces collapsed, several values joined by
/// commas.
fn canonical_header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn hmac(key: &[u8], data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let date_key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes()).finalize().into_bytes();
    let region_key = hmac(&date_key, region.as_bytes()).finalize().into_bytes();
    let service_key = hmac(&region_key, service.as_bytes()).finalize().into_bytes();
    hmac(&service_key, b"aws4_request").finalize().into_bytes().to_vec()
}

fn parse_amz_date(value: &str) -> Option<OffsetDateTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, format).ok().map(|t| t.assume_utc())
}

/// A request whose credentials are ours and current, its signature not yet checked: what can be
/// known before its body is read.
pub struct Claim<'r, 'k> {
    auth: Authorization<'r>,
    key: &'k AccessKey,
    amz_date: String,
    signed_at: OffsetDateTime,
    now: OffsetDateTime,
}

/// Checks the `Authorization` and date headers against `keys` for `region`; `now` is our clock.
/// Done before the body is read, so that a stranger cannot make us read one.
pub fn check_credentials<'r, 'k>(
    headers: &'r HeaderMap,
    keys: &'k [AccessKey],
    region: &str,
    now: OffsetDateTime,
) -> Result<Claim<'r, 'k>, AuthError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| AuthError::Missing("Missing Authentication Token".into()))?;
    let header = header.to_str().map_err(|_| AuthError::Missing("The Authorization header is not text.".into()))?;
    let auth = parse_authorization(header)?;
    let key = keys.iter().find(|key| key.access_key_id == auth.access_key_id).ok_or(AuthError::UnknownAccessKey)?;

    if auth.service != SERVICE || auth.region != region {
        return Err(AuthError::BadSignature(format!(
            "Credential should be scoped to a valid region and service: expected {region}/{SERVICE}, got {}/{}",
            auth.region, auth.service
        )));
    }
    let amz_date = canonical_header_value(headers, "x-amz-date")
        .ok_or_else(|| AuthError::BadSignature("The request must contain the X-Amz-Date header.".into()))?;
    let signed_at = parse_amz_date(&amz_date).ok_or_else(|| {
        AuthError::BadSignature(format!("X-Amz-Date {amz_date:?} is not of the form 20261122T073000Z."))
    })?;
    if !amz_date.starts_with(auth.date) {
        return Err(AuthError::BadSignature("The credential date does not match X-Amz-Date.".into()));
    }
    if (now - signed_at).abs() > MAX_CLOCK_SKEW {
        return Err(AuthError::BadSignature(format!(
            "Signature expired: {amz_date} is more than 15 minutes away from the server's time; check the client's clock."
        )));
    }
    // Whoever could change an unsigned one of these could turn a captured request into another
    // (a signed ListFaces into a DeleteCollection) or move it in time.
    let sent_content_hash = headers.contains_key("x-amz-content-sha256");
    for (name, shown) in MUST_BE_SIGNED {
        let required = name != "x-amz-content-sha256" || sent_content_hash;
        if required && !auth.signed_headers.contains(&name) {
            return Err(AuthError::BadSignature(format!("The {shown} header must be signed.")));
        }
    }
    Ok(Claim { auth, key, amz_date, signed_at, now })
}

impl<'k> Claim<'_, 'k> {
    /// Checks the signature over the whole `request`, its body included, and that it was not
    /// `seen` before; returns the access key id that signed it.
    pub fn verify(
        self,
        request: &SignedRequest<'_>,
        seen: &SeenSignatures,
        repeat: Repeat,
    ) -> Result<&'k str, AuthError> {
        let Self { auth, key, amz_date, signed_at, now } = self;
        let mut canonical_headers = String::new();
        for name in &auth.signed_headers {
            let value = canonical_header_value(request.headers, name).ok_or_else(|| {
                AuthError::BadSignature(format!("The signed header {name} is missing from the request."))
            })?;
            canonical_headers.push_str(&format!("{name}:{value}\n"));
        }
        let canonical_request = [
            request.method,
            &uri_encode(request.path, true),
            &canonical_query(request.query),
            &canonical_headers,
            &auth.signed_headers.join(";"),
            &hex::encode(Sha256::digest(request.body)),
        ]
        .join("\n");
        let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
        let string_to_sign =
            format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));

        let mismatch = || {
            AuthError::BadSignature(
                "The request signature we calculated does not match the signature you provided. Check your AWS \
                 Secret Access Key and signing method."
                    .into(),
            )
        };
        let claimed = hex::decode(auth.signature).map_err(|_| mismatch())?;
        let key_bytes = signing_key(key.secret_access_key.expose(), auth.date, auth.region, auth.service);
        // verify_slice compares in constant time, so timing reveals nothing about the right signature.
        hmac(&key_bytes, string_to_sign.as_bytes()).verify_slice(&claimed).map_err(|_| mismatch())?;
        // Only now: a forged signature must not take a place among the seen ones.
        seen.accept(auth.signature, signed_at, now, repeat)?;
        Ok(&key.access_key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example: the signing key for `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`,
    /// 20120215, us-east-1, iam.
    #[test]
    fn signing_key_matches_the_aws_example() {
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    fn keys() -> Vec<AccessKey> {
        vec![AccessKey { access_key_id: "AKIDEXAMPLE".into(), secret_access_key: Secret::new("secret-key-example") }]
    }

    /// Signs like a client would, reusing the canonical form (checked against AWS's example above
    /// and against the real SDK in tests/it/rekognition_api.rs).
    fn signed_headers(secret: &str, amz_date: &str, body: &[u8]) -> HeaderMap {
        signed_for("ListCollections", &["host", "x-amz-date", "x-amz-target"], secret, amz_date, body)
    }

    /// A request for `operation` whose signature covers only the `signed` headers.
    fn signed_for(operation: &str, signed: &[&str], secret: &str, amz_date: &str, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:8787".parse().unwrap());
        headers.insert("x-amz-date", amz_date.parse().unwrap());
        headers.insert("x-amz-target", format!("RekognitionService.{operation}").parse().unwrap());
        let canonical_headers: String =
            signed.iter().map(|name| format!("{name}:{}\n", headers[*name].to_str().unwrap())).collect();
        let canonical_request =
            format!("POST\n/\n\n{canonical_headers}\n{}\n{}", signed.join(";"), hex::encode(Sha256::digest(body)));
        let date = &amz_date[..8];
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{date}/us-east-1/rekognition/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let key = signing_key(secret, date, "us-east-1", "rekognition");
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()).finalize().into_bytes());
        let authorization = format!(
            "{ALGORITHM} Credential=AKIDEXAMPLE/{date}/us-east-1/rekognition/aws4_request, \
             SignedHeaders={}, Signature={signature}",
            signed.join(";")
        );
        headers.insert("authorization", authorization.parse().unwrap());
        headers
    }

    /// Checks a request as a fresh server would: nothing seen before.
    fn check(headers: &HeaderMap, body: &[u8], now: OffsetDateTime) -> Result<String, AuthError> {
        check_seen(headers, body, now, &SeenSignatures::default(), Repeat::Never)
    }

    fn check_seen(
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
        seen: &SeenSignatures,
        repeat: Repeat,
    ) -> Result<String, AuthError> {
        let request = SignedRequest { method: "POST", path: "/", query: "", headers, body };
        let keys = keys();
        check_credentials(headers, &keys, "us-east-1", now)?.verify(&request, seen, repeat).map(str::to_owned)
    }

    fn at(text: &str) -> OffsetDateTime {
        parse_amz_date(text).unwrap()
    }

    #[test]
    fn a_correct_signature_passes_and_any_change_fails() {
        let headers = signed_headers("secret-key-example", "20261122T073000Z", b"{}");
        assert_eq!(check(&headers, b"{}", at("20261122T073500Z")).unwrap(), "AKIDEXAMPLE");
        assert!(matches!(check(&headers, b"{ }", at("20261122T073500Z")), Err(AuthError::BadSignature(_))));
        let wrong = signed_headers("another-secret", "20261122T073000Z", b"{}");
        assert!(matches!(check(&wrong, b"{}", at("20261122T073500Z")), Err(AuthError::BadSignature(_))));
    }

    #[test]
    fn old_or_future_requests_are_refused() {
        let headers = signed_headers("secret-key-example", "20261122T073000Z", b"{}");
        assert!(check(&headers, b"{}", at("20261122T074400Z")).is_ok(), "14 minutes is fine");
        let late = check(&headers, b"{}", at("20261122T074600Z")).unwrap_err();
        assert!(late.to_string().contains("Signature expired"), "{late}");
        assert!(check(&headers, b"{}", at("20261122T071400Z")).is_err(), "16 minutes early");
    }

    #[test]
    fn unknown_keys_and_missing_headers_are_told_apart() {
        let mut headers = signed_headers("secret-key-example", "20261122T073000Z", b"{}");
        let now = at("20261122T073000Z");
        let other = headers["authorization"].to_str().unwrap().replace("AKIDEXAMPLE", "AKIDOTHER");
        headers.insert("authorization", other.parse().unwrap());
        assert_eq!(check(&headers, b"{}", now), Err(AuthError::UnknownAccessKey));
        headers.remove("authorization");
        assert!(matches!(check(&headers, b"{}", now), Err(AuthError::Missing(_))));
    }

    #[test]
    fn the_operation_and_the_time_must_be_signed() {
        let now = at("20261122T073000Z");
        let sign = |signed: &[&str]| signed_for("ListFaces", signed, "secret-key-example", "20261122T073000Z", b"{}");
        // Signed without the target, the operation could be swapped for any other.
        let mut swapped = sign(&["host", "x-amz-date"]);
        swapped.insert("x-amz-target", "RekognitionService.DeleteCollection".parse().unwrap());
        let refused = check(&swapped, b"{}", now).unwrap_err();
        assert_eq!(refused.to_string(), "The X-Amz-Target header must be signed.");
        let refused = check(&sign(&["host", "x-amz-target"]), b"{}", now).unwrap_err();
        assert_eq!(refused.to_string(), "The X-Amz-Date header must be signed.");
        assert!(check(&sign(&["host", "x-amz-date", "x-amz-target"]), b"{}", now).is_ok());
        // A payload hash, when sent, is covered too.
        let mut hashed = sign(&["host", "x-amz-date", "x-amz-target"]);
        hashed.insert("x-amz-content-sha256", hex::encode(Sha256::digest(b"{}")).parse().unwrap());
        let refused = check(&hashed, b"{}", now).unwrap_err();
        assert_eq!(refused.to_string(), "The X-Amz-Content-Sha256 header must be signed.");
    }

    #[test]
    fn a_read_is_accepted_again_only_within_two_seconds() {
        let seen = SeenSignatures::default();
        let headers = signed_headers("secret-key-example", "20261122T073000Z", b"{}");
        let arrived = at("20261122T073000Z");
        let read = |now| check_seen(&headers, b"{}", now, &seen, Repeat::Briefly);
        assert!(read(arrived).is_ok());
        // The SDK's own identical call within the second.
        assert!(read(arrived + time::Duration::milliseconds(1900)).is_ok());
        let replayed = read(arrived + time::Duration::milliseconds(2100)).unwrap_err();
        assert!(replayed.to_string().contains("already received"), "{replayed}");
        assert!(read(at("20261122T074400Z")).is_err(), "14 minutes later too");
        // A forged copy is refused for its signature and takes no place among the seen ones.
        let forged = signed_headers("another-secret", "20261122T073001Z", b"{}");
        assert!(check_seen(&forged, b"{}", at("20261122T073001Z"), &seen, Repeat::Briefly).is_err());
        assert_eq!(seen.0.lock().unwrap().len(), 1);
        // Another request of the same second has its own signature.
        let other = signed_headers("secret-key-example", "20261122T073000Z", b"{\"MaxResults\":1}");
        assert!(check_seen(&other, b"{\"MaxResults\":1}", arrived, &seen, Repeat::Briefly).is_ok());
    }

    #[test]
    fn a_change_is_accepted_once_however_soon_it_comes_again() {
        let seen = SeenSignatures::default();
        let headers = signed_headers("secret-key-example", "20261122T073000Z", b"{}");
        let arrived = at("20261122T073000Z");
        assert!(check_seen(&headers, b"{}", arrived, &seen, Repeat::Never).is_ok());
        let replayed = check_seen(&headers, b"{}", arrived, &seen, Repeat::Never).unwrap_err();
        assert!(replayed.to_string().contains("done only once"), "{replayed}");
    }

    #[test]
    fn a_full_memory_of_signatures_forgets_only_expired_ones() {
        let seen = SeenSignatures::default();
        let now = at("20261122T073000Z");
        {
            let mut remembered = seen.0.lock().unwrap();
            for i in 0..MAX_REMEMBERED_SIGNATURES {
                // Half of them expired a minute ago.
                let forget_at = if i % 2 == 0 { now - time::Duration::minutes(1) } else { now + MAX_CLOCK_SKEW };
                remembered.insert(format!("{i:064x}"), Seen { first: now, forget_at });
            }
        }
        assert!(seen.accept("new", now, now, Repeat::Never).is_ok());
        assert_eq!(seen.0.lock().unwrap().len(), MAX_REMEMBERED_SIGNATURES / 2 + 1);
        {
            let mut remembered = seen.0.lock().unwrap();
            for i in 0..MAX_REMEMBERED_SIGNATURES {
                remembered.insert(format!("{i:064x}"), Seen { first: now, forget_at: now + MAX_CLOCK_SKEW });
            }
        }
        let full = seen.accept("newer", now, now, Repeat::Never).unwrap_err();
        assert!(full.to_string().contains("try again later"), "{full}");
    }

    #[test]
    fn query_strings_are_sorted_and_encoded() {
        assert_eq!(canonical_query("b=2&a=x%20y&a=1"), "a=1&a=x%20y&b=2");
        assert_eq!(uri_encode("/a b/c", true), "/a%20b/c");
    }
}
