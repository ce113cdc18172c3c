-- FaceReko schema, version 14 (MySQL / MariaDB): the doors of a site and who may use which. Each
-- daemon registers its door (its door.id) and notes when it was last seen. People are kept to
-- some doors only once they are listed in door_restrictions; until then they may use every door,
-- as on a single door. A listed person may use only the doors of their door_rights rows (none: no door).

CREATE TABLE IF NOT EXISTS doors (
    id           VARCHAR(32)  COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    name         VARCHAR(100) NOT NULL,
    web_address  VARCHAR(255) NULL,
    version      VARCHAR(32)  NOT NULL,
    last_seen_ms BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS door_restrictions (
    person_id BIGINT NOT NULL PRIMARY KEY,
    CONSTRAINT door_restrictions_person_fk FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A door may be named before its daemon first registers it, so door_id is not a reference.
CREATE TABLE IF NOT EXISTS door_rights (
    person_id   BIGINT      NOT NULL,
    door_id     VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
    schedule_id BIGINT      NULL,
    PRIMARY KEY (person_id, door_id),
    CONSTRAINT door_rights_person_fk FOREIGN KEY (person_id) REFERENCES door_restrictions (person_id) ON DELETE CASCADE,
    CONSTRAINT door_rights_schedule_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE RESTRICT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
