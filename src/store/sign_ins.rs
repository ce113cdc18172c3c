//! The sign-in log: every attempt to sign in to the web app or to prove who one is again, who it
//! claimed to be, how, from where and how it ended, for admins to review.

use std::net::IpAddr;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::names::named_enum;

named_enum! {
    /// How someone tried to prove who they are.
    pub enum SignInMethod {
        /// User name and password on the sign-in page.
        Password = "password",
        /// The one-time setup code from the log, creating the first admin.
        SetupCode = "setup_code",
        /// The password asked again: before it is changed, or as a step-up before a sensitive action.
        PasswordCheck = "password_check",
        /// A burst from the browser's camera compared with the linked person's enrolled faces.
        Face = "face",
        /// A passkey on the sign-in page.
        Passkey = "passkey",
        /// A passkey as a step-up before a sensitive action.
        PasskeyCheck = "passkey_check",
    }
}

named_enum! {
    /// How an attempt ended.
    pub enum SignInOutcome {
        Succeeded = "succeeded",
        WrongPassword = "wrong_password",
        /// No account has the name given (the page says only "wrong user name or password").
        UnknownAccount = "unknown_account",
        /// The account's stored role is not one this version knows.
        UnusableAccount = "unusable_account",
        WrongSetupCode = "wrong_setup_code",
        /// A passkey that no account here has (removed, or made for another site).
        UnknownPasskey = "unknown_passkey",
        /// The passkey's answer did not hold: a wrong signature, origin or challenge, or one that
        /// came too late or twice.
        PasskeyRefused = "passkey_refused",
        /// Refused before the password was looked at: too many failures from the address.
        TooManyAttempts = "too_many_attempts",
        /// The account has no face sign-in: not linked to a person, or not turned on.
        FaceSignInOff = "face_sign_in_off",
        /// No frame of the burst showed a face.
        NoFace = "no_face",
        /// The face is not the linked person's (below the face sign-in threshold).
        FaceNotMatched = "face_not_matched",
        /// The face matched but the liveness checks, enforced, took it for a picture.
        SpoofSuspected = "spoof_suspected",
    }
}

impl SignInOutcome {
    pub fn succeeded(self) -> bool {
        self == Self::Succeeded
    }
}

/// One attempt, as the web app saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInAttempt {
    pub at: OffsetDateTime,
    /// The account name as it was typed (trimmed), whether or not such an account exists.
    pub account: String,
    pub method: SignInMethod,
    pub outcome: SignInOutcome,
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// How alike the face was to the account's person (0–100), for face attempts that got as
    /// far as comparing.
    pub similarity: Option<f32>,
}

/// A logged attempt and its row id.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInEntry {
    pub id: i64,
    pub attempt: SignInAttempt,
    /// A small picture of the face was kept ([`SignIns::sign_in_thumbnail`]).
    pub has_thumbnail: bool,
}

/// Which attempts to read, newest first; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignInQuery {
    /// At most this many; 0 means the backends' default page.
    pub limit: u32,
    pub offset: u32,
    /// The account name as typed, ASCII case-insensitive.
    pub account: Option<String>,
    pub method: Option<SignInMethod>,
    pub outcome: Option<SignInOutcome>,
}

#[async_trait]
pub trait SignIns: Send + Sync {
    /// Logs `attempt`, with a small JPEG of the face for face attempts; the row id.
    async fn record_sign_in(&self, attempt: &SignInAttempt, thumbnail: Option<&[u8]>) -> Result<i64, StoreError>;
    /// The small picture of attempt `id`'s face, if it has one.
    async fn sign_in_thumbnail(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError>;
    async fn sign_ins(&self, query: &SignInQuery) -> Result<Vec<SignInEntry>, StoreError>;
    /// How many attempts `query` matches, whatever its limit and offset.
    async fn count_sign_ins(&self, query: &SignInQuery) -> Result<u64, StoreError>;
    /// Deletes the attempts before `cutoff` and all but the newest `keep` others; how many went.
    async fn prune_sign_ins(&self, cutoff: OffsetDateTime, keep: u64) -> Result<u64, StoreError>;
}
