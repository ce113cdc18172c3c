-- FaceReko schema, version 8 (MySQL / MariaDB): visitors who rang, and the passes the owner sent
-- them. A pass keeps only a keyed hash of its secret; a wrong passcode typed at a door counts
-- against every live passcode there, and locks them after too many.

CREATE TABLE IF NOT EXISTS visits (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    door          VARCHAR(64)  NOT NULL,
    at_ms         BIGINT       NOT NULL,
    name          VARCHAR(255) NOT NULL,
    email         VARCHAR(320),
    mobile        VARCHAR(64),
    message       TEXT,
    photo         VARCHAR(255),
    status        VARCHAR(16)  NOT NULL,
    decided_by    VARCHAR(255),
    decided_at_ms BIGINT,
    KEY visits_at (at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- door is compared as bytes, as SQLite compares it: a pass opens only the door it was made for.
CREATE TABLE IF NOT EXISTS passes (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    visit_id      BIGINT       NOT NULL,
    door          VARCHAR(64)  COLLATE utf8mb4_bin NOT NULL,
    kind          VARCHAR(16)  NOT NULL,
    secret_hash   VARCHAR(128) COLLATE utf8mb4_bin NOT NULL,
    expires_at_ms BIGINT       NOT NULL,
    uses_left     INT          NOT NULL,
    wrong_tries   INT          NOT NULL DEFAULT 0,
    locked        BOOLEAN      NOT NULL DEFAULT FALSE,
    KEY passes_live (door, kind, expires_at_ms),
    KEY passes_visit (visit_id),
    CONSTRAINT passes_visit_fk FOREIGN KEY (visit_id) REFERENCES visits (id) ON DELETE CASCADE,
    CONSTRAINT passes_kind CHECK (kind IN ('passcode', 'qr'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
