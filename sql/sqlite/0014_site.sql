-- FaceReko schema, version 14 (SQLite): the doors of a site and who may use which. Each daemon
-- registers its door (its door.id) and notes when it was last seen. People are kept to some doors
-- only once they are listed in door_restrictions; until then they may use every door, as on a
-- single door. A listed person may use only the doors of their door_rights rows (none: no door).

CREATE TABLE doors (
    id           TEXT    PRIMARY KEY,
    name         TEXT    NOT NULL,
    web_address  TEXT,
    version      TEXT    NOT NULL,
    last_seen_ms INTEGER NOT NULL
);

CREATE TABLE door_restrictions (
    person_id INTEGER PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE
);

-- A door may be named before its daemon first registers it, so door_id is not a reference.
CREATE TABLE door_rights (
    person_id   INTEGER NOT NULL REFERENCES door_restrictions(person_id) ON DELETE CASCADE,
    door_id     TEXT    NOT NULL,
    schedule_id INTEGER REFERENCES schedules(id) ON DELETE RESTRICT,
    PRIMARY KEY (person_id, door_id)
);
