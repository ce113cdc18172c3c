-- FaceReko schema, version 15 (MySQL / MariaDB): groups of people ("Staff", "Cleaners") and the
-- doors a group may use. A group whose doors are not set (restricted = FALSE) keeps nobody to
-- anything. Once they are set (restricted = TRUE, even to no door), each member is kept to doors:
-- they may use the doors of each such group of theirs, and their own door_rights if they are kept
-- themselves. The table is not called `groups`: MySQL 8 reserves that word.

CREATE TABLE IF NOT EXISTS person_groups (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(100) NOT NULL,
    name_key   VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
    restricted BOOLEAN      NOT NULL DEFAULT FALSE,
    created_ms BIGINT       NOT NULL,
    UNIQUE KEY person_groups_name_key (name_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS group_members (
    group_id  BIGINT NOT NULL,
    person_id BIGINT NOT NULL,
    PRIMARY KEY (group_id, person_id),
    KEY group_members_person (person_id),
    CONSTRAINT group_members_group_fk FOREIGN KEY (group_id) REFERENCES person_groups (id) ON DELETE CASCADE,
    CONSTRAINT group_members_person_fk FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- As door_rights: a door may be named before its daemon first registers it.
CREATE TABLE IF NOT EXISTS group_door_rights (
    group_id    BIGINT      NOT NULL,
    door_id     VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
    schedule_id BIGINT      NULL,
    PRIMARY KEY (group_id, door_id),
    CONSTRAINT group_door_rights_group_fk FOREIGN KEY (group_id) REFERENCES person_groups (id) ON DELETE CASCADE,
    CONSTRAINT group_door_rights_schedule_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE RESTRICT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
