-- FaceReko schema, version 9 (SQLite): visitors the owner let in, kept for next time with
-- descriptors of their faces, so that the door can name them when they ring again (and send a
-- passcode at once to those marked auto-pass). A face's kind names the model that described it:
-- descriptors of another model are never compared. Visitors are deleted, with their faces and
-- their visits, a retention period after their last visit.

CREATE TABLE known_visitors (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    email         TEXT,
    mobile        TEXT,
    auto_pass     INTEGER NOT NULL DEFAULT 0,
    last_visit_ms INTEGER NOT NULL
);
CREATE INDEX known_visitors_last_visit ON known_visitors(last_visit_ms);

CREATE TABLE visitor_faces (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor_id INTEGER NOT NULL REFERENCES known_visitors(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    descriptor BLOB    NOT NULL,
    added_ms   INTEGER NOT NULL
);
CREATE INDEX visitor_faces_kind ON visitor_faces(kind);
CREATE INDEX visitor_faces_visitor ON visitor_faces(visitor_id);

-- Whose visit it was, once the visitor was recognised or approved.
ALTER TABLE visits ADD COLUMN visitor_id INTEGER REFERENCES known_visitors(id) ON DELETE SET NULL;
CREATE INDEX visits_visitor ON visits(visitor_id);
