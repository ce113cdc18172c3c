-- FaceReko schema, version 1 (MySQL 8 / MariaDB 10.5+). Times are milliseconds since the Unix epoch, UTC.
-- MySQL commits each CREATE on its own, so they are written to be re-run after a migration cut short.
-- Names are unique regardless of ASCII case through name_key, which facereko fills with the
-- lower-cased name: the same rule as SQLite's COLLATE NOCASE, whatever the server's collations.

CREATE TABLE IF NOT EXISTS people (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(255) NOT NULL,
    name_key   VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    created_ms BIGINT       NOT NULL,
    UNIQUE KEY people_name_key (name_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS cards (
    uid        VARCHAR(32) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    person_id  BIGINT      NOT NULL,
    created_ms BIGINT      NOT NULL,
    KEY cards_person (person_id),
    CONSTRAINT cards_person_fk FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per enrolled face: a descriptor we computed, or the id of a face the engine keeps.
CREATE TABLE IF NOT EXISTS faces (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    person_id  BIGINT       NOT NULL,
    engine     VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    descriptor BLOB,
    remote_id  VARCHAR(255) COLLATE utf8mb4_bin,
    created_ms BIGINT       NOT NULL,
    KEY faces_engine (engine),
    CONSTRAINT faces_person_fk FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE CASCADE,
    CONSTRAINT faces_one_template CHECK ((descriptor IS NULL) <> (remote_id IS NULL))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS access_log (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id    VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
    at_ms       BIGINT       NOT NULL,
    door        VARCHAR(64)  NOT NULL,
    card_uid    VARCHAR(32),
    person_id   BIGINT,
    person_name VARCHAR(255),
    decision    VARCHAR(16)  NOT NULL,
    reason      VARCHAR(32)  NOT NULL,
    similarity  DOUBLE,
    confidence  DOUBLE,
    engine      VARCHAR(64),
    photo       VARCHAR(255),
    read_ms     BIGINT       NOT NULL,
    capture_ms  BIGINT,
    match_ms    BIGINT,
    actuate_ms  BIGINT       NOT NULL,
    total_ms    BIGINT       NOT NULL,
    detail      TEXT,
    UNIQUE KEY access_log_event (event_id),
    KEY access_log_at (at_ms),
    CONSTRAINT access_log_person_fk FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS settings (
    name  VARCHAR(64)  COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    value VARCHAR(255) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Notifications wait here, written in the same transaction as their log row, until delivered.
CREATE TABLE IF NOT EXISTS outbox (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id     VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
    kind         VARCHAR(16)  NOT NULL,
    payload      MEDIUMTEXT   NOT NULL,
    created_ms   BIGINT       NOT NULL,
    delivered_ms BIGINT,
    attempts     INT          NOT NULL DEFAULT 0,
    UNIQUE KEY outbox_event (event_id),
    KEY outbox_pending (delivered_ms, id),
    CONSTRAINT outbox_event_fk FOREIGN KEY (event_id) REFERENCES access_log (event_id),
    CONSTRAINT outbox_kind CHECK (kind IN ('success', 'failure'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
