-- FaceReko schema, version 5 (SQLite): e-mails and text messages about access attempts, written in
-- the same transaction as their log row, one row per recipient, until delivered or given up on.

CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL REFERENCES access_log(event_id),
    channel      TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient    TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_ms       INTEGER NOT NULL,
    delivered_ms INTEGER,
    failed_ms    INTEGER,
    problem      TEXT,
    UNIQUE (event_id, channel, recipient)
);
CREATE INDEX messages_waiting ON messages(channel, delivered_ms, failed_ms, due_ms);
