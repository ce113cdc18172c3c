-- FaceReko schema, version 13 (SQLite): face sign-in to the web app. An account linked to an
-- enrolled person may sign in with that person's face; the sign-in log keeps each face attempt's
-- similarity and a small picture of the face.

CREATE TABLE face_sign_in (
    user_id   INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    -- Turned on by the account itself on its settings page.
    enabled   INTEGER NOT NULL DEFAULT 0,
    -- The most a face sign-in gives, whatever the account's own role ('viewer' unless an admin
    -- allowed more).
    max_role  TEXT    NOT NULL DEFAULT 'viewer'
);

ALTER TABLE sign_ins ADD COLUMN similarity REAL;
ALTER TABLE sign_ins ADD COLUMN thumbnail BLOB;
