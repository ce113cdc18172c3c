-- FaceReko schema, version 9 (MySQL / MariaDB): visitors the owner let in, kept for next time
-- with descriptors of their faces, so that the door can name them when they ring again (and send
-- a passcode at once to those marked auto-pass). A face's kind names the model that described it:
-- descriptors of another model are never compared. Visitors are deleted, with their faces and
-- their visits, a retention period after their last visit.

CREATE TABLE IF NOT EXISTS known_visitors (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name          VARCHAR(255) NOT NULL,
    email         VARCHAR(320),
    mobile        VARCHAR(64),
    auto_pass     BOOLEAN      NOT NULL DEFAULT FALSE,
    last_visit_ms BIGINT       NOT NULL,
    KEY known_visitors_last_visit (last_visit_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- kind is compared as bytes, as SQLite compares it: `local/dlib` is not `local/DLIB`.
CREATE TABLE IF NOT EXISTS visitor_faces (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    visitor_id BIGINT       NOT NULL,
    kind       VARCHAR(64)  COLLATE utf8mb4_bin NOT NULL,
    descriptor BLOB         NOT NULL,
    added_ms   BIGINT       NOT NULL,
    KEY visitor_faces_kind (kind),
    KEY visitor_faces_visitor (visitor_id),
    CONSTRAINT visitor_faces_visitor_fk FOREIGN KEY (visitor_id) REFERENCES known_visitors (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Whose visit it was, once the visitor was recognised or approved.
ALTER TABLE visits
    ADD COLUMN visitor_id BIGINT NULL,
    ADD KEY visits_visitor (visitor_id),
    ADD CONSTRAINT visits_visitor_fk FOREIGN KEY (visitor_id) REFERENCES known_visitors (id) ON DELETE SET NULL;
