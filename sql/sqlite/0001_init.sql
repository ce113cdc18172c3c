-- FaceReko schema, version 1 (SQLite). Times are milliseconds since the Unix epoch, UTC.

CREATE TABLE people (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    created_ms INTEGER NOT NULL
);

CREATE TABLE cards (
    uid        TEXT    PRIMARY KEY,
    person_id  INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL
);
CREATE INDEX cards_person ON cards(person_id);

-- One row per enrolled face: a descriptor we computed, or the id of a face the engine keeps.
CREATE TABLE faces (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id  INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    engine     TEXT    NOT NULL,
    descriptor BLOB,
    remote_id  TEXT,
    created_ms INTEGER NOT NULL,
    CHECK ((descriptor IS NULL) <> (remote_id IS NULL))
);
CREATE INDEX faces_engine ON faces(engine);

CREATE TABLE access_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL UNIQUE,
    at_ms       INTEGER NOT NULL,
    door        TEXT    NOT NULL,
    card_uid    TEXT,
    person_id   INTEGER REFERENCES people(id) ON DELETE SET NULL,
    person_name TEXT,
    decision    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    similarity  REAL,
    confidence  REAL,
    engine      TEXT,
    photo       TEXT,
    read_ms     INTEGER NOT NULL,
    capture_ms  INTEGER,
    match_ms    INTEGER,
    actuate_ms  INTEGER NOT NULL,
    total_ms    INTEGER NOT NULL,
    detail      TEXT
);
CREATE INDEX access_log_at ON access_log(at_ms);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Notifications wait here, written in the same transaction as their log row, until delivered.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE REFERENCES access_log(event_id),
    kind         TEXT    NOT NULL CHECK (kind IN ('success', 'failure')),
    payload      TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    delivered_ms INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_pending ON outbox(delivered_ms, id);
