//! The door's certificate authority for phones and computers (`web.tls = "self"`): a page that
//! says how to trust it on each platform, and the certificate to download. Both are public: they
//! are needed before signing in, and a certificate is no secret.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::views::bare_page;
use super::{WebError, WebState};
use crate::tls::CaCertificate;

/// Where the certificate is downloaded; `.crt` is what every platform's installer recognises.
pub const DOWNLOAD_PATH: &str = "/certificate/facereko-ca.crt";

fn authority(state: &WebState) -> Result<&CaCertificate, WebError> {
    state.0.authority.as_ref().ok_or_else(|| {
        WebError::NotFound("this door serves no certificate of its own (web.tls is not \"self\")".into())
    })
}

/// The certificate as DER, the form Android and Windows install and iOS turns into a profile.
pub async fn download(State(state): State<WebState>) -> Result<Response, WebError> {
    let authority = authority(&state)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"facereko-ca.crt\""),
        ],
        authority.der.clone(),
    )
        .into_response())
}

pub async fn page(State(state): State<WebState>, headers: HeaderMap) -> Result<Markup, WebError> {
    let authority = authority(&state)?;
    // The address this browser used, to open once the certificate is trusted.
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("this-door.local");
    let address = format!("https://{host}/");
    Ok(bare_page(
        "Trust this door",
        html! {
            section.card {
                h1 { "Trust this door's certificate" }
                p {
                    "This door makes its own certificate for https. Install it once on each phone or computer "
                    "and the browser stops warning; renewed certificates need nothing more."
                }
                p { a.button.primary href=(DOWNLOAD_PATH) download="facereko-ca.crt" { "Download the certificate" } }
                p.hint {
                    "Before trusting it, compare its SHA-256 fingerprint with the one in the door's log ("
                    code { "journalctl -u facereko | grep fingerprint" } "):"
                }
                p { code.fingerprint { (authority.fingerprint) } }
                p.hint { "It is listed on your device as " strong { (authority.name) } "." }
            }
            section.card {
                h2 { "Install it" }
                details.platform {
                    summary { "iPhone and iPad" }
                    ol {
                        li { "Open this page in Safari and tap " em { "Download the certificate" } ", then " em { "Allow" } "." }
                        li { "Settings → " em { "Profile Downloaded" } " → " em { "Install" } " (enter your passcode)." }
                        li { "Settings → General → About → " em { "Certificate Trust Settings" } ": turn on the FaceReko door." }
                    }
                }
                details.platform {
                    summary { "Android" }
                    ol {
                        li { "Tap " em { "Download the certificate" } "." }
                        li {
                            "Settings → Security (and privacy) → More security settings → Encryption and credentials → "
                            em { "Install a certificate" } " → " em { "CA certificate" } " → " em { "Install anyway" }
                            ", then pick facereko-ca.crt. (The menu names differ a little by maker; search Settings for \"CA certificate\".)"
                        }
                    }
                }
                details.platform {
                    summary { "macOS" }
                    ol {
                        li { "Download it and double-click facereko-ca.crt: Keychain Access adds it." }
                        li { "Double-click the FaceReko door certificate → Trust → " em { "When using this certificate: Always Trust" } ", close and enter your password." }
                        li { "Safari, Chrome and Edge use it. Firefox: Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import." }
                    }
                }
                details.platform {
                    summary { "Windows" }
                    ol {
                        li { "Download it and double-click facereko-ca.crt → " em { "Install Certificate" } " → Current User." }
                        li { "Choose " em { "Place all certificates in the following store" } " → Browse → " em { "Trusted Root Certification Authorities" } " → Finish → Yes." }
                        li { "Edge and Chrome use it; Firefox as on macOS." }
                    }
                }
                details.platform {
                    summary { "Linux (Chromium, Chrome)" }
                    ol {
                        li { "Download it, then Settings → Privacy and security → Security → Manage certificates → Authorities → Import, and tick " em { "Trust this certificate for identifying websites" } "." }
                        li { "Or in a terminal: " code { "certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n FaceReko -i facereko-ca.crt" } " (package libnss3-tools)." }
                    }
                }
                p { "Then open " a href=(address) { (address) } " — the address bar shows a padlock and no warning." }
                p { a href="/login" { "Back to sign-in" } }
            }
        },
    ))
}
