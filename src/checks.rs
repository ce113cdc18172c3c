//! What every config section uses to say what is wrong with it: [`Problem`]s collected by
//! [`Checks`], and [`Secret`] for values that must never be shown. Each module validates its own
//! section with these; `config` only composes the sections.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Collects the problems of one or more sections, each naming its key and how to fix it.
#[derive(Debug, Default)]
pub struct Checks {
    problems: Vec<Problem>,
}

impl Checks {
    /// Notes `message` for `key` unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, message: impl Into<String>) {
        if !ok {
            self.problems.push(Problem::new(key, message));
        }
    }

    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// A duration between `min` and `max`, both included.
    pub fn duration(&mut self, key: &str, value: Duration, min: Duration, max: Duration) {
        self.check(
            value >= min && value <= max,
            key,
            format!(
                "{} is out of range; use a duration from {} to {} (e.g. \"10s\", \"500ms\")",
                humantime::format_duration(value),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        );
    }

    /// An address and port to listen on, when one is set (empty turns the listener off).
    pub fn listen_address(&mut self, key: &str, value: &str, advice: &str) {
        let value_trimmed = value.trim();
        if value_trimmed.is_empty() {
            return;
        }
        self.check(
            value_trimmed.parse::<SocketAddr>().is_ok(),
            key,
            format!("{value:?} is not an address and port; use e.g. {advice}"),
        );
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

/// A value that must never be shown: its `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_checked_only_when_set() {
        let mut checks = Checks::default();
        checks.listen_address("web.listen", "", "\"0.0.0.0:8080\"");
        checks.listen_address("web.listen", " 127.0.0.1:8080 ", "\"0.0.0.0:8080\"");
        checks.listen_address("api.listen", "localhost", "\"127.0.0.1:8787\"");
        let problems = checks.into_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "api.listen");
        assert!(problems[0].message.contains("\"127.0.0.1:8787\""), "{}", problems[0].message);
    }

    #[test]
    fn secrets_are_never_shown() {
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "<redacted>");
    }
}
