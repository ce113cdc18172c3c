//! Login accounts of the web app: roles, name and password rules, argon2id hashing.
//! Shared by `facereko user`, the web app's first-run page and the legacy import.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shorter passwords are refused: a door's web app is worth more than a guessable word.
pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_USERNAME_CHARS: usize = 64;

/// What an account may do in the web app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: arm and disarm, enrol, settings.
    Admin,
    /// Looks only: dashboard and history.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// This role, or `ceiling` when that allows less.
    pub fn at_most(self, ceiling: Role) -> Role {
        match (self, ceiling) {
            (Role::Admin, Role::Admin) => Role::Admin,
            _ => Role::Viewer,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AccountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(AccountError::Role(other.to_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a user name needs 1-{MAX_USERNAME_CHARS} letters, digits, '.', '-', '_' or '@'")]
    Username,
    #[error("the password is shorter than {MIN_PASSWORD_CHARS} characters; use a longer one (a passphrase)")]
    PasswordTooShort,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("{0:?} is not a role; use admin or viewer")]
    Role(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// A user name as we store it: trimmed; letters, digits and a few separators.
pub fn clean_username(name: &str) -> Result<&str, AccountError> {
    let name = name.trim();
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@');
    if name.is_empty() || name.chars().count() > MAX_USERNAME_CHARS || !name.chars().all(allowed) {
        return Err(AccountError::Username);
    }
    Ok(name)
}

/// Checks a new password against the length rules.
pub fn check_new_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(AccountError::PasswordTooShort)
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(AccountError::PasswordTooLong)
    } else {
        Ok(())
    }
}

/// An argon2id PHC string for `password`, with a fresh random salt. Slow on purpose (tens of
/// milliseconds): call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AccountError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash`. A malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash)
        .is_ok_and(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash of a password nobody knows, checked when a sign-in names an unknown account so that the
/// answer takes as long as for a real one and does not reveal which names exist.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token(24)).unwrap_or_default())
}

/// `bytes` random bytes from the operating system, as lower-case hex.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    // Without the OS random source nothing secret can be made; there is no safe fallback.
    getrandom::fill(&mut buffer).expect("the operating system's random source works");
    hex::encode(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery!"));
        assert!(!verify_password("not a hash", "anything"));
        assert_ne!(hash, hash_password("correct horse battery").unwrap(), "salts differ");
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert_eq!(clean_username("  ada@home ").unwrap(), "ada@home");
        assert!(clean_username("").is_err());
        assert!(clean_username("a b").is_err());
        assert!(clean_username("a/b").is_err());
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough passphrase").is_ok());
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!("root".parse::<Role>().is_err());
    }
}
