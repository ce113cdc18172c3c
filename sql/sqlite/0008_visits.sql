-- FaceReko schema, version 8 (SQLite): visitors who rang, and the passes the owner sent them. A
-- pass keeps only a keyed hash of its secret; a wrong passcode typed at a door counts against
-- every live passcode there, and locks them after too many.

CREATE TABLE visits (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    door          TEXT    NOT NULL,
    at_ms         INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    email         TEXT,
    mobile        TEXT,
    message       TEXT,
    photo         TEXT,
    status        TEXT    NOT NULL,
    decided_by    TEXT,
    decided_at_ms INTEGER
);
CREATE INDEX visits_at ON visits(at_ms);

CREATE TABLE passes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    visit_id      INTEGER NOT NULL REFERENCES visits(id) ON DELETE CASCADE,
    door          TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind IN ('passcode', 'qr')),
    secret_hash   TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    uses_left     INTEGER NOT NULL,
    wrong_tries   INTEGER NOT NULL DEFAULT 0,
    locked        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX passes_live ON passes(door, kind, expires_at_ms);
CREATE INDEX passes_visit ON passes(visit_id);
