-- FaceReko schema, version 12 (SQLite): the passkeys web accounts sign in with. `credential` is the
-- passkey as the web app serialises it (public key, signature counter); nothing here is secret.

CREATE TABLE passkeys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_handle   TEXT    NOT NULL,
    credential_id BLOB    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    credential    TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL,
    last_used_ms  INTEGER
);
CREATE INDEX passkeys_user ON passkeys(user_id);
