//! Card identifiers as the MFRC522 reports them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// UID lengths defined by ISO/IEC 14443-3: single, double and triple size.
const VALID_LENGTHS: [usize; 3] = [4, 7, 10];

/// A card UID, stored and shown as upper-case hex without separators.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardUid(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardUidError {
    #[error("card UID {0:?} has characters other than hex digits (0-9, A-F) and the separators ':', '-' or ' '")]
    NotHex(String),
    #[error(
        "card UID {input:?} is {bytes} bytes long; cards have 4, 7 or 10 byte UIDs (8, 14 or 20 hex digits, e.g. 04A1B2C3)"
    )]
    BadLength { input: String, bytes: usize },
}

impl CardUid {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CardUidError> {
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        if VALID_LENGTHS.contains(&bytes.len()) {
            Ok(Self(hex))
        } else {
            Err(CardUidError::BadLength { input: hex, bytes: bytes.len() })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Only the last four hex digits, as messages that leave the door show a card: enough for
    /// the owner to tell cards apart, not enough to clone one.
    pub fn masked(&self) -> String {
        format!("****{}", &self.0[self.0.len().saturating_sub(4)..])
    }
}

impl FromStr for CardUid {
    type Err = CardUidError;

    /// Accepts the forms people copy from other tools: `04a1b2c3`, `04:A1:B2:C3`, `04-a1-b2-c3`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let digits: String = trimmed.chars().filter(|c| !matches!(c, ':' | '-' | ' ')).collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CardUidError::NotHex(trimmed.to_owned()));
        }
        if !digits.len().is_multiple_of(2) || !VALID_LENGTHS.contains(&(digits.len() / 2)) {
            return Err(CardUidError::BadLength { input: trimmed.to_owned(), bytes: digits.len().div_ceil(2) });
        }
        Ok(Self(digits.to_ascii_uppercase()))
    }
}

impl TryFrom<String> for CardUid {
    type Error = CardUidError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<CardUid> for String {
    fn from(uid: CardUid) -> Self {
        uid.0
    }
}

impl fmt::Display for CardUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_separators() {
        let uid: CardUid = "04:a1:b2:c3".parse().unwrap();
        assert_eq!(uid.as_str(), "04A1B2C3");
        let seven: CardUid = "04-11-22-33-44-55-66".parse().unwrap();
        assert_eq!(seven.as_str(), "04112233445566");
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(matches!("hello!".parse::<CardUid>(), Err(CardUidError::NotHex(_))));
        assert!(matches!("".parse::<CardUid>(), Err(CardUidError::NotHex(_))));
        let err = "0102030405".parse::<CardUid>().unwrap_err();
        assert_eq!(err, CardUidError::BadLength { input: "0102030405".into(), bytes: 5 });
        assert!(err.to_string().contains("4, 7 or 10 byte"));
        assert!("123".parse::<CardUid>().is_err());
    }

    #[test]
    fn from_bytes_checks_length() {
        assert_eq!(CardUid::from_bytes(&[0xde, 0xad, 0xbe, 0xef]).unwrap().as_str(), "DEADBEEF");
        assert!(CardUid::from_bytes(&[1, 2]).is_err());
    }
}
