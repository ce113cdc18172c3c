-- FaceReko schema, version 15 (SQLite): groups of people ("Staff", "Cleaners") and the doors a
-- group may use. A group whose doors are not set (restricted = 0) keeps nobody to anything. Once
-- they are set (restricted = 1, even to no door), each member is kept to doors: they may use the
-- doors of each such group of theirs, and their own door_rights if they are kept themselves.

CREATE TABLE person_groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    restricted INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES person_groups(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, person_id)
);

CREATE INDEX group_members_person ON group_members(person_id);

-- As door_rights: a door may be named before its daemon first registers it.
CREATE TABLE group_door_rights (
    group_id    INTEGER NOT NULL REFERENCES person_groups(id) ON DELETE CASCADE,
    door_id     TEXT    NOT NULL,
    schedule_id INTEGER REFERENCES schedules(id) ON DELETE RESTRICT,
    PRIMARY KEY (group_id, door_id)
);
