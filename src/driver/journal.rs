//! The attempt journal: an append-only file in the data directory holding, for each attempt, the
//! row the access log must get should the daemon die now. An attempt goes in when its card is
//! read (as `interrupted`), again with its verdict, synced to disk before any output moves, and
//! is marked done once its row is in the store. The next start writes whatever is not done, so a
//! kill, a full disk or a database away loses no row. Every store backend gets this the same way:
//! rows are idempotent by `event_id`, so writing one twice is harmless.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::access::{AccessEvent, Reason};
use crate::store::Notices;

/// Disk space held for the journal, so that attempts still reach it on a full disk.
const RESERVE: i64 = 1 << 20;
/// Once every attempt is done, a journal this long starts over empty.
const COMPACT_AT: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
#[error("attempt journal {path}: {source}")]
pub struct JournalError {
    path: String,
    source: std::io::Error,
}

/// An access-log row on its way to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub event: AccessEvent,
    /// What it is announced with, written with it.
    #[serde(flatten)]
    pub notices: Notices,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    /// What to log for the attempt if nothing later is heard of it.
    Open(Box<Row>),
    /// Its row is in the store.
    Done { event_id: String },
}

pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    len: u64,
    /// Attempts not yet done: the journal may start over only when there are none.
    open: HashSet<String>,
    /// Rows earlier runs left unwritten, until the recorder takes them.
    unwritten: Vec<Row>,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads the rows earlier runs left unwritten.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let error = |source| JournalError { path: path.display().to_string(), source };
        let file = OpenOptions::new().create(true).read(true).append(true).open(path).map_err(error)?;
        // A new file's name must survive a power cut as well as its content.
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            File::open(dir).and_then(|dir| dir.sync_all()).map_err(error)?;
        }
        let unwritten = replay(&file, path).map_err(error)?;
        let len = file.metadata().map_err(error)?.len();
        let open = unwritten.iter().map(|row| row.event.event_id.clone()).collect();
        let journal = Self { path: path.to_owned(), inner: Mutex::new(Inner { file, len, open, unwritten }) };
        let mut inner = journal.lock();
        if !inner.unwritten.is_empty() {
            tracing::warn!(
                rows = inner.unwritten.len(),
                interrupted = inner.unwritten.iter().filter(|row| row.event.reason == Reason::Interrupted).count(),
                "the attempt journal holds attempts the last run did not log; logging them now"
            );
        }
        if inner.unwritten.is_empty() {
            journal.start_over(&mut inner).map_err(error)?;
        }
        drop(inner);
        Ok(journal)
    }

    /// The rows earlier runs left unwritten, oldest first; they stay open until marked done.
    pub fn take_unwritten(&self) -> Vec<Row> {
        std::mem::take(&mut self.lock().unwritten)
    }

    /// Notes `row` as what to log for its attempt. The write survives a kill of the daemon; with
    /// `synced` it also survives a power cut, at the cost of one flush to disk.
    pub fn keep(&self, row: &Row, synced: bool) -> Result<(), JournalError> {
        let mut inner = self.lock();
        inner.open.insert(row.event.event_id.clone());
        self.append(&mut inner, &Entry::Open(Box::new(row.clone())), synced)
    }

    /// Notes that the attempt's row is in the store.
    pub fn done(&self, event_id: &str) -> Result<(), JournalError> {
        let mut inner = self.lock();
        inner.open.remove(event_id);
        self.append(&mut inner, &Entry::Done { event_id: event_id.to_owned() }, false)?;
        if inner.open.is_empty() && inner.len >= COMPACT_AT {
            self.start_over(&mut inner).map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The journal is only appended to: what a panicking writer left is still readable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, source: std::io::Error) -> JournalError {
        JournalError { path: self.path.display().to_string(), source }
    }

    fn append(&self, inner: &mut Inner, entry: &Entry, synced: bool) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialise");
        line.push(b'\n');
        // One write, so a kill leaves whole lines; a torn last line is skipped when read.
        inner.file.write_all(&line).map_err(|e| self.error(e))?;
        inner.len += line.len() as u64;
        if synced {
            inner.file.sync_data().map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Empties the journal, which only holds attempts that are done.
    fn start_over(&self, inner: &mut Inner) -> std::io::Result<()> {
        inner.file.set_len(0)?;
        inner.len = 0;
        reserve(&inner.file, &self.path);
        Ok(())
    }
}

/// The rows of the attempts in the journal that are not done, oldest first.
fn replay(file: &File, path: &Path) -> std::io::Result<Vec<Row>> {
    let mut order = Vec::new();
    let mut rows = HashMap::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        match serde_json::from_str::<Entry>(&line) {
            Ok(Entry::Open(row)) => {
                let id = row.event.event_id.clone();
                if rows.insert(id.clone(), *row).is_none() {
                    order.push(id);
                }
            }
            Ok(Entry::Done { event_id }) => {
                rows.remove(&event_id);
            }
            Err(e) => tracing::warn!(error = %e, path = %path.display(), "skipping a torn line of the attempt journal"),
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| rows.remove(&id))
        .map(|mut row| {
            if row.event.reason == Reason::Interrupted {
                row.event.detail.get_or_insert_with(|| "the daemon stopped; logged at its next start".into());
            }
            row
        })
        .collect())
}

/// Allocates [`RESERVE`] bytes past the end without growing the file, so that appends need no
/// new blocks while the disk is full. Where the file system cannot, the journal works without.
fn reserve(file: &File, path: &Path) {
    // SAFETY: fallocate only reads its integer arguments; the descriptor is open for writing.
    let result = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, RESERVE) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, path = %path.display(), "cannot reserve space for the attempt journal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Decision;

    fn row(id: &str, decision: Decision, reason: Reason) -> Row {
        let event = AccessEvent {
            event_id: id.into(),
            at: time::OffsetDateTime::UNIX_EPOCH,
            door: "front".into(),
            card_uid: Some("04A1B2C3".parse().unwrap()),
            person_id: None,
            person_name: None,
            decision,
            reason,
            similarity: None,
            confidence: None,
            engine: None,
            photo: None,
            timings: Default::default(),
            detail: None,
        };
        Row { event, notices: Notices::MQTT }
    }

    #[test]
    fn a_restart_gets_the_latest_row_of_every_attempt_not_done_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attempts.journal");
        let journal = Journal::open(&path).unwrap();
        assert!(journal.take_unwritten().is_empty());
        let granted = row("a", Decision::Granted, Reason::CardOnly);
        journal.keep(&row("a", Decision::Denied, Reason::Interrupted), false).unwrap();
        journal.keep(&granted, true).unwrap();
        journal.keep(&row("b", Decision::Denied, Reason::Interrupted), false).unwrap();
        journal.keep(&row("c", Decision::Denied, Reason::Interrupted), false).unwrap();
        journal.keep(&row("c", Decision::Denied, Reason::UnknownCard), true).unwrap();
        journal.done("c").unwrap();
        drop(journal);
        // A kill in the middle of a write leaves a torn line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"open":{"event":{"event_id":"d""#).unwrap();

        let journal = Journal::open(&path).unwrap();
        let unwritten = journal.take_unwritten();
        assert_eq!(unwritten.len(), 2, "{unwritten:?}");
        assert_eq!(unwritten[0], granted, "an actuated grant stays a grant");
        assert_eq!((unwritten[1].event.event_id.as_str(), unwritten[1].event.reason), ("b", Reason::Interrupted));
        assert!(unwritten[1].event.detail.as_deref().unwrap().contains("next start"));
        assert!(journal.take_unwritten().is_empty(), "taken once");
    }

    #[test]
    fn the_journal_starts_over_once_every_attempt_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attempts.journal");
        let journal = Journal::open(&path).unwrap();
        let mut n = 0;
        while std::fs::metadata(&path).unwrap().len() < COMPACT_AT {
            n += 1;
            journal.keep(&row(&n.to_string(), Decision::Denied, Reason::Interrupted), false).unwrap();
        }
        journal.done("1").unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() >= COMPACT_AT, "attempts are still open");
        for id in 2..=n {
            journal.done(&id.to_string()).unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        drop(journal);
        assert!(Journal::open(&path).unwrap().take_unwritten().is_empty());
    }
}
