//! What the SQL backends share for visits and passes: the statements (in the `?` placeholders both
//! databases take), the row layouts and how they become the store's types.

use std::sync::LazyLock;

use mysql_async::prelude::FromRow;

use super::StoreError;
use super::known_visitors::VisitorId;
use super::rows::{bad_column, from_millis, to_millis};
use super::visits::{NewPass, NewVisit, PassKind, StoredPass, Visit, VisitId, VisitQuery, VisitStatus};

/// How many visits a query that sets no limit gets.
const DEFAULT_VISITS_LIMIT: u32 = 50;

const VISIT_COLUMNS: &str =
    "id, door, at_ms, name, email, mobile, message, photo, status, decided_by, decided_at_ms, visitor_id";
const PASS_COLUMNS: &str = "id, visit_id, door, kind, secret_hash, expires_at_ms, uses_left, wrong_tries, locked";

/// Writes a visit: the values of [`VisitRow::insert_values`].
pub const INSERT_VISIT: &str =
    "INSERT INTO visits(door, at_ms, name, email, mobile, message, photo, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
/// The visit with the id given as the one value.
pub static SELECT_VISIT: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {VISIT_COLUMNS} FROM visits WHERE id = ?"));
/// Values: the new status, who decided, when (ms), the id and the status it must still have.
pub const MOVE_VISIT: &str =
    "UPDATE visits SET status = ?, decided_by = ?, decided_at_ms = ? WHERE id = ? AND status = ?";

/// Writes a pass: the values of [`pass_values`].
pub const INSERT_PASS: &str =
    "INSERT INTO passes(visit_id, door, kind, secret_hash, expires_at_ms, uses_left) VALUES (?, ?, ?, ?, ?, ?)";
/// Values: door, kind, and the time (ms) they must expire after.
pub static SELECT_PASSES: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {PASS_COLUMNS} FROM passes WHERE door = ? AND kind = ? AND expires_at_ms > ? ORDER BY id")
});
/// One statement, so that of two racing uses of a last use only one changes the row. Values: the
/// pass id and now (ms).
pub const USE_PASS: &str = "UPDATE passes SET uses_left = uses_left - 1 \
                            WHERE id = ? AND uses_left > 0 AND locked = 0 AND expires_at_ms > ?";

/// The passcodes a wrong passcode at a door counts against: unlocked, unexpired and with a use
/// left. Values: the door and now (ms).
static LIVE_PASSCODES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "door = ? AND kind = '{}' AND locked = 0 AND uses_left > 0 AND expires_at_ms > ?",
        PassKind::Passcode.as_str()
    )
});
/// Values: as [`LIVE_PASSCODES`].
pub static COUNT_WRONG_PASSCODE: LazyLock<String> =
    LazyLock::new(|| format!("UPDATE passes SET wrong_tries = wrong_tries + 1 WHERE {}", *LIVE_PASSCODES));
/// The visits of live passcodes that have had their most wrong tries, read before
/// [`LOCK_PASSCODES`] so that only those locked now are found. Values: as [`LIVE_PASSCODES`],
/// then the most wrong tries.
pub static PASSCODES_TO_LOCK: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT DISTINCT visit_id FROM passes WHERE {} AND wrong_tries >= ? ORDER BY visit_id", *LIVE_PASSCODES)
});
/// Values: as [`PASSCODES_TO_LOCK`].
pub static LOCK_PASSCODES: LazyLock<String> =
    LazyLock::new(|| format!("UPDATE passes SET locked = 1 WHERE {} AND wrong_tries >= ?", *LIVE_PASSCODES));

/// Value: the time (ms) a visit must have rung before to expire undecided.
pub const EXPIRE_UNDECIDED: &str = "UPDATE visits SET status = 'expired' WHERE status = 'pending' AND at_ms < ?";
/// Value: now (ms).
pub const EXPIRE_SPENT: &str = "UPDATE visits SET status = 'expired' WHERE status = 'approved' AND NOT EXISTS \
                                (SELECT 1 FROM passes WHERE passes.visit_id = visits.id AND passes.locked = 0 \
                                AND passes.uses_left > 0 AND passes.expires_at_ms > ?)";

// Forgetting a visit deletes its passes first rather than leaving them to the cascade, which
// SQLite applies only while foreign keys are switched on. The value of these three: the visit id.
pub const VISIT_PHOTO: &str = "SELECT photo FROM visits WHERE id = ?";
pub const DELETE_VISIT_PASSES: &str = "DELETE FROM passes WHERE visit_id = ?";
pub const DELETE_VISIT: &str = "DELETE FROM visits WHERE id = ?";
// The value of these three: the cutoff (ms).
pub const OLD_VISIT_PHOTOS: &str = "SELECT photo FROM visits WHERE at_ms < ? AND photo IS NOT NULL ORDER BY id";
pub const DELETE_OLD_PASSES: &str = "DELETE FROM passes WHERE visit_id IN (SELECT id FROM visits WHERE at_ms < ?)";
pub const DELETE_OLD_VISITS: &str = "DELETE FROM visits WHERE at_ms < ?";

/// A page of visits, newest first, with its values: the status looked for, if any, the limit and
/// the offset.
pub fn visits_page<V: From<String> + From<i64>>(query: &VisitQuery) -> (String, Vec<V>) {
    let mut values = Vec::new();
    let filter = match query.status {
        Some(status) => {
            values.push(status.as_str().to_owned().into());
            "WHERE status = ?"
        }
        None => "",
    };
    let limit = if query.limit == 0 { DEFAULT_VISITS_LIMIT } else { query.limit };
    values.extend([i64::from(limit).into(), i64::from(query.offset).into()]);
    let sql = format!("SELECT {VISIT_COLUMNS} FROM visits {filter} ORDER BY at_ms DESC, id DESC LIMIT ? OFFSET ?");
    (sql, values)
}

/// The values of [`INSERT_PASS`], in its order.
pub fn pass_values<V: From<String> + From<i64>>(pass: &NewPass) -> [V; 6] {
    [
        pass.visit.0.into(),
        pass.door.clone().into(),
        pass.kind.as_str().to_owned().into(),
        pass.secret_hash.clone().into(),
        to_millis(pass.expires_at).into(),
        i64::from(pass.uses).into(),
    ]
}

/// A `visits` row as both backends store it.
#[derive(Debug, FromRow)]
pub struct VisitRow {
    pub id: i64,
    pub door: String,
    pub at_ms: i64,
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub message: Option<String>,
    pub photo: Option<String>,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub visitor_id: Option<i64>,
}

impl VisitRow {
    /// The row of a new visit: pending, nobody has decided; the database numbers it.
    pub fn new(visit: &NewVisit) -> Self {
        Self {
            id: 0,
            door: visit.door.clone(),
            at_ms: to_millis(visit.at),
            name: visit.name.clone(),
            email: visit.email.clone(),
            mobile: visit.mobile.clone(),
            message: visit.message.clone(),
            photo: visit.photo.clone(),
            status: VisitStatus::Pending.as_str().to_owned(),
            decided_by: None,
            decided_at_ms: None,
            visitor_id: None,
        }
    }

    /// The values of [`INSERT_VISIT`], in its order.
    pub fn insert_values<V: From<String> + From<Option<String>> + From<i64>>(&self) -> [V; 8] {
        [
            self.door.clone().into(),
            self.at_ms.into(),
            self.name.clone().into(),
            self.email.clone().into(),
            self.mobile.clone().into(),
            self.message.clone().into(),
            self.photo.clone().into(),
            self.status.clone().into(),
        ]
    }

    /// The stored row as a visit, its times to the millisecond as stored.
    pub fn into_visit(self) -> Result<Visit, StoreError> {
        let status = self.status.parse().map_err(|e| bad_column("visits", self.id, "status", e))?;
        Ok(Visit {
            id: VisitId(self.id),
            door: self.door,
            at: from_millis(self.at_ms),
            name: self.name,
            email: self.email,
            mobile: self.mobile,
            message: self.message,
            photo: self.photo,
            status,
            decided_by: self.decided_by,
            decided_at: self.decided_at_ms.map(from_millis),
            visitor: self.visitor_id.map(VisitorId),
        })
    }
}

/// A `passes` row as both backends store it.
#[derive(Debug, FromRow)]
pub struct PassRow {
    pub id: i64,
    pub visit_id: i64,
    pub door: String,
    pub kind: String,
    pub secret_hash: String,
    pub expires_at_ms: i64,
    pub uses_left: u32,
    pub wrong_tries: u32,
    pub locked: bool,
}

impl PassRow {
    pub fn into_pass(self) -> Result<StoredPass, StoreError> {
        let kind = self.kind.parse().map_err(|e| bad_column("passes", self.id, "kind", e))?;
        Ok(StoredPass {
            id: self.id,
            visit: VisitId(self.visit_id),
            door: self.door,
            kind,
            secret_hash: self.secret_hash,
            expires_at: from_millis(self.expires_at_ms),
            uses_left: self.uses_left,
            wrong_tries: self.wrong_tries,
            locked: self.locked,
        })
    }
}
