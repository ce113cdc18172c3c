//! What the SQL backends share for the sign-in log: the statements (in the `?` placeholders both
//! databases take), the row layout and how it becomes a [`SignInEntry`].

use mysql_async::prelude::FromRow;

use super::StoreError;
use super::rows::{bad_column, from_millis, to_millis};
use super::sign_ins::{SignInAttempt, SignInEntry, SignInQuery};

/// How many attempts a query that sets no limit gets.
const DEFAULT_LIMIT: u32 = 50;
/// The longest user agent kept; longer ones are cut (browsers send about 150 characters).
pub const MAX_USER_AGENT_CHARS: usize = 255;

/// Writes an attempt: the values of [`insert_values`].
pub const INSERT_SIGN_IN: &str = "INSERT INTO sign_ins(at_ms, account, method, outcome, address, user_agent, \
                                  similarity, thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
/// Value: the row id.
pub const THUMBNAIL: &str = "SELECT thumbnail FROM sign_ins WHERE id = ?";
/// Value: the cutoff (ms).
pub const DELETE_BEFORE: &str = "DELETE FROM sign_ins WHERE at_ms < ?";
/// The newest row id; attempts are numbered in the order they were logged.
pub const NEWEST_ID: &str = "SELECT MAX(id) FROM sign_ins";
/// Value: the highest id to delete.
pub const DELETE_UP_TO: &str = "DELETE FROM sign_ins WHERE id <= ?";

/// The values of [`INSERT_SIGN_IN`], in its order; an overlong user agent is cut.
pub fn insert_values<V>(attempt: &SignInAttempt, thumbnail: Option<&[u8]>) -> [V; 8]
where
    V: From<String> + From<Option<String>> + From<i64> + From<Option<f64>> + From<Option<Vec<u8>>>,
{
    let user_agent: Option<String> =
        attempt.user_agent.as_ref().map(|agent| agent.chars().take(MAX_USER_AGENT_CHARS).collect());
    [
        to_millis(attempt.at).into(),
        attempt.account.clone().into(),
        attempt.method.as_str().to_owned().into(),
        attempt.outcome.as_str().to_owned().into(),
        attempt.address.map(|address| address.to_string()).into(),
        user_agent.into(),
        attempt.similarity.map(f64::from).into(),
        thumbnail.map(<[u8]>::to_vec).into(),
    ]
}

/// The `WHERE` clause of `query` and its values.
fn filter<V: From<String>>(query: &SignInQuery) -> (String, Vec<V>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(account) = &query.account {
        conditions.push("LOWER(account) = LOWER(?)");
        values.push(account.clone().into());
    }
    if let Some(method) = query.method {
        conditions.push("method = ?");
        values.push(method.as_str().to_owned().into());
    }
    if let Some(outcome) = query.outcome {
        conditions.push("outcome = ?");
        values.push(outcome.as_str().to_owned().into());
    }
    let clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    (clause, values)
}

/// A page of attempts, newest first, with its values.
pub fn page<V: From<String> + From<i64>>(query: &SignInQuery) -> (String, Vec<V>) {
    let (clause, mut values) = filter(query);
    let limit = if query.limit == 0 { DEFAULT_LIMIT } else { query.limit };
    values.extend([i64::from(limit).into(), i64::from(query.offset).into()]);
    let sql = format!(
        "SELECT id, at_ms, account, method, outcome, address, user_agent, similarity, \
         (thumbnail IS NOT NULL) AS has_thumbnail FROM sign_ins {clause} \
         ORDER BY at_ms DESC, id DESC LIMIT ? OFFSET ?"
    );
    (sql, values)
}

/// How many attempts match `query`, with its values.
pub fn count<V: From<String>>(query: &SignInQuery) -> (String, Vec<V>) {
    let (clause, values) = filter(query);
    (format!("SELECT COUNT(*) FROM sign_ins {clause}"), values)
}

/// A `sign_ins` row as both backends store it.
#[derive(Debug, FromRow)]
pub struct SignInRow {
    pub id: i64,
    pub at_ms: i64,
    pub account: String,
    pub method: String,
    pub outcome: String,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub similarity: Option<f64>,
    pub has_thumbnail: i64,
}

impl SignInRow {
    pub fn into_entry(self) -> Result<SignInEntry, StoreError> {
        let bad = |column: &str, problem: String| bad_column("sign_ins", self.id, column, problem);
        let method = self.method.parse().map_err(|e| bad("method", e))?;
        let outcome = self.outcome.parse().map_err(|e| bad("outcome", e))?;
        let address = self
            .address
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: std::net::AddrParseError| bad("address", e.to_string()))?;
        Ok(SignInEntry {
            id: self.id,
            attempt: SignInAttempt {
                at: from_millis(self.at_ms),
                account: self.account,
                method,
                outcome,
                address,
                user_agent: self.user_agent,
                similarity: self.similarity.map(|s| s as f32),
            },
            has_thumbnail: self.has_thumbnail != 0,
        })
    }
}
