-- FaceReko schema, version 11 (SQLite): every attempt to sign in to the web app, for admins to review.

CREATE TABLE sign_ins (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    account    TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    address    TEXT,
    user_agent TEXT
);
CREATE INDEX sign_ins_at ON sign_ins(at_ms);
