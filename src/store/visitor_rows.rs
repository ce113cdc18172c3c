//! What the SQL backends share for known visitors: the statements (in the `?` placeholders both
//! databases take), the row layout and how it becomes the store's type.

use std::sync::LazyLock;

use mysql_async::prelude::FromRow;

use super::StoreError;
use super::known_visitors::{KnownVisitor, VisitorId};
use super::rows::from_millis;

/// The columns of a known visitor, with how many visits and faces they have, from `known_visitors v`.
const KNOWN_VISITOR_COLUMNS: &str = "v.id, v.name, v.email, v.mobile, v.auto_pass, v.last_visit_ms, \
     (SELECT COUNT(*) FROM visits WHERE visits.visitor_id = v.id) AS visits, \
     (SELECT COUNT(*) FROM visitor_faces f WHERE f.visitor_id = v.id) AS faces";

/// Values: name, e-mail, mobile, last visit (ms).
pub const INSERT_KNOWN_VISITOR: &str =
    "INSERT INTO known_visitors(name, email, mobile, auto_pass, last_visit_ms) VALUES (?, ?, ?, 0, ?)";
/// The visitor with the id given as the one value.
pub static SELECT_KNOWN_VISITOR: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {KNOWN_VISITOR_COLUMNS} FROM known_visitors v WHERE v.id = ?"));
pub static LIST_KNOWN_VISITORS: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {KNOWN_VISITOR_COLUMNS} FROM known_visitors v ORDER BY v.last_visit_ms DESC, v.id DESC")
});
/// Values: name, e-mail, mobile, id.
pub const UPDATE_KNOWN_VISITOR: &str = "UPDATE known_visitors SET name = ?, email = ?, mobile = ? WHERE id = ?";
/// Values: auto-pass (0 or 1), id.
pub const SET_AUTO_PASS: &str = "UPDATE known_visitors SET auto_pass = ? WHERE id = ?";
/// Value: the id.
pub const COUNT_KNOWN_VISITOR: &str = "SELECT COUNT(*) FROM known_visitors WHERE id = ?";
/// Values: the visitor, the visit.
pub const LINK_VISIT: &str = "UPDATE visits SET visitor_id = ? WHERE id = ?";
/// Values: the visitor twice, the visit. A visit that left no contact (the bell, an unknown card)
/// takes the visitor's, so that a passcode can reach them; one that left its own keeps it.
pub const FILL_VISIT_CONTACT: &str = "UPDATE visits SET email = (SELECT email FROM known_visitors WHERE id = ?), \
     mobile = (SELECT mobile FROM known_visitors WHERE id = ?) WHERE id = ? AND email IS NULL AND mobile IS NULL";
/// Values: the visit's time (ms), the visitor, the visit's time again: a later visit already
/// known stays their last.
pub const TOUCH_KNOWN_VISITOR: &str = "UPDATE known_visitors SET last_visit_ms = ? WHERE id = ? AND last_visit_ms < ?";

/// Values: visitor, kind, descriptor (blob), when added (ms).
pub const INSERT_VISITOR_FACE: &str =
    "INSERT INTO visitor_faces(visitor_id, kind, descriptor, added_ms) VALUES (?, ?, ?, ?)";
/// The oldest of a visitor's faces to keep. Values: the visitor, how many to keep less one.
pub const OLDEST_FACE_KEPT: &str =
    "SELECT id FROM visitor_faces WHERE visitor_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?";
/// Values: the visitor, the oldest face kept.
pub const DELETE_OLDER_FACES: &str = "DELETE FROM visitor_faces WHERE visitor_id = ? AND id < ?";
/// Value: the kind.
pub const SELECT_VISITOR_FACES: &str =
    "SELECT id, visitor_id, descriptor FROM visitor_faces WHERE kind = ? ORDER BY id";

/// Which visitors to forget: the one with an id, or those last here before a time (ms); each
/// statement of [`ForgetVisitors`] takes that one value.
#[derive(Debug, Clone, Copy)]
pub enum Forgotten {
    One,
    LastHereBefore,
}

/// The statements that forget visitors, in the order to run them: their visits' photos are read,
/// then passes, visits, faces and the visitors are deleted (children first, rather than left to
/// cascades, which SQLite applies only while foreign keys are switched on).
pub struct ForgetVisitors {
    pub count: String,
    pub photos: String,
    pub deletes: [String; 4],
}

impl ForgetVisitors {
    pub fn new(which: Forgotten) -> Self {
        let chosen = match which {
            Forgotten::One => "id = ?",
            Forgotten::LastHereBefore => "last_visit_ms < ?",
        };
        let visitors = format!("SELECT id FROM known_visitors WHERE {chosen}");
        let visits = format!("SELECT id FROM visits WHERE visitor_id IN ({visitors})");
        Self {
            count: format!("SELECT COUNT(*) FROM known_visitors WHERE {chosen}"),
            photos: format!(
                "SELECT photo FROM visits WHERE photo IS NOT NULL AND visitor_id IN ({visitors}) ORDER BY id"
            ),
            deletes: [
                format!("DELETE FROM passes WHERE visit_id IN ({visits})"),
                format!("DELETE FROM visits WHERE visitor_id IN ({visitors})"),
                format!("DELETE FROM visitor_faces WHERE visitor_id IN ({visitors})"),
                format!("DELETE FROM known_visitors WHERE {chosen}"),
            ],
        }
    }
}

pub static FORGET_ONE: LazyLock<ForgetVisitors> = LazyLock::new(|| ForgetVisitors::new(Forgotten::One));
pub static FORGET_OLD: LazyLock<ForgetVisitors> = LazyLock::new(|| ForgetVisitors::new(Forgotten::LastHereBefore));

/// A known visitor as both backends read it.
#[derive(Debug, FromRow)]
pub struct KnownVisitorRow {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub auto_pass: bool,
    pub last_visit_ms: i64,
    pub visits: u32,
    pub faces: u32,
}

impl KnownVisitorRow {
    pub fn into_known_visitor(self) -> KnownVisitor {
        KnownVisitor {
            id: VisitorId(self.id),
            name: self.name,
            email: self.email,
            mobile: self.mobile,
            auto_pass: self.auto_pass,
            last_visit: from_millis(self.last_visit_ms),
            visits: self.visits,
            faces: self.faces,
        }
    }
}

/// The error for a visitor that is not there.
pub fn no_visitor(id: VisitorId) -> StoreError {
    StoreError::NotFound(format!("no known visitor with id {id}"))
}

/// The error for a visit that is not there.
pub fn no_visit(id: super::VisitId) -> StoreError {
    StoreError::NotFound(format!("no visit with id {id}"))
}
