-- FaceReko schema, version 7 (SQLite): when people and cards may open the door. Named weekly
-- schedules of windows, holidays on which schedules are closed, and the limits of a person or a
-- card (valid from, valid until, a schedule). People and cards without a limits row have none.

CREATE TABLE schedules (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    open_on_holidays INTEGER NOT NULL DEFAULT 0,
    created_ms       INTEGER NOT NULL
);

-- days: a bit per weekday, Monday the lowest; start and end in minutes after midnight (an end not
-- after the start runs past midnight).
CREATE TABLE schedule_windows (
    schedule_id  INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    days         INTEGER NOT NULL CHECK (days BETWEEN 1 AND 127),
    start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute   INTEGER NOT NULL CHECK (end_minute BETWEEN 0 AND 1440),
    PRIMARY KEY (schedule_id, position)
);

-- Days as YYYY-MM-DD, the last one included; yearly ones recur on the same month-days.
CREATE TABLE holidays (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT    NOT NULL,
    first_day TEXT    NOT NULL,
    last_day  TEXT    NOT NULL,
    yearly    INTEGER NOT NULL DEFAULT 0
);

-- A schedule in use cannot be removed: dropping it would lift the limit.
CREATE TABLE person_limits (
    person_id      INTEGER PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE,
    valid_from_ms  INTEGER,
    valid_until_ms INTEGER,
    schedule_id    INTEGER REFERENCES schedules(id) ON DELETE RESTRICT
);

CREATE TABLE card_limits (
    uid            TEXT    PRIMARY KEY REFERENCES cards(uid) ON DELETE CASCADE,
    valid_from_ms  INTEGER,
    valid_until_ms INTEGER,
    schedule_id    INTEGER REFERENCES schedules(id) ON DELETE RESTRICT
);
