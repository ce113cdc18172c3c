-- FaceReko schema, version 7 (MySQL / MariaDB): when people and cards may open the door. Named
-- weekly schedules of windows, holidays on which schedules are closed, and the limits of a person
-- or a card (valid from, valid until, a schedule). People and cards without a limits row have none.

CREATE TABLE IF NOT EXISTS schedules (
    id               BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name             VARCHAR(100) NOT NULL,
    name_key         VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
    open_on_holidays BOOLEAN      NOT NULL DEFAULT FALSE,
    created_ms       BIGINT       NOT NULL,
    UNIQUE KEY schedules_name_key (name_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- days: a bit per weekday, Monday the lowest; start and end in minutes after midnight (an end not
-- after the start runs past midnight).
CREATE TABLE IF NOT EXISTS schedule_windows (
    schedule_id  BIGINT   NOT NULL,
    position     INT      NOT NULL,
    days         SMALLINT NOT NULL,
    start_minute SMALLINT NOT NULL,
    end_minute   SMALLINT NOT NULL,
    PRIMARY KEY (schedule_id, position),
    CONSTRAINT schedule_windows_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE,
    CONSTRAINT schedule_windows_days CHECK (days BETWEEN 1 AND 127),
    CONSTRAINT schedule_windows_start CHECK (start_minute BETWEEN 0 AND 1439),
    CONSTRAINT schedule_windows_end CHECK (end_minute BETWEEN 0 AND 1440)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Days as YYYY-MM-DD, the last one included; yearly ones recur on the same month-days.
CREATE TABLE IF NOT EXISTS holidays (
    id        BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name      VARCHAR(100) NOT NULL,
    first_day CHAR(10)     NOT NULL,
    last_day  CHAR(10)     NOT NULL,
    yearly    BOOLEAN      NOT NULL DEFAULT FALSE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A schedule in use cannot be removed: dropping it would lift the limit.
CREATE TABLE IF NOT EXISTS person_limits (
    person_id      BIGINT NOT NULL PRIMARY KEY,
    valid_from_ms  BIGINT,
    valid_until_ms BIGINT,
    schedule_id    BIGINT,
    CONSTRAINT person_limits_person_fk FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE CASCADE,
    CONSTRAINT person_limits_schedule_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE RESTRICT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS card_limits (
    uid            VARCHAR(32) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    valid_from_ms  BIGINT,
    valid_until_ms BIGINT,
    schedule_id    BIGINT,
    CONSTRAINT card_limits_card_fk FOREIGN KEY (uid) REFERENCES cards (uid) ON DELETE CASCADE,
    CONSTRAINT card_limits_schedule_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE RESTRICT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
