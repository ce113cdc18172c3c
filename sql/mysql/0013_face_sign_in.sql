-- FaceReko schema, version 13 (MySQL / MariaDB): face sign-in to the web app. An account linked
-- to an enrolled person may sign in with that person's face; the sign-in log keeps each face
-- attempt's similarity and a small picture of the face.

CREATE TABLE IF NOT EXISTS face_sign_in (
    user_id   BIGINT      NOT NULL PRIMARY KEY,
    person_id BIGINT      NOT NULL,
    -- Turned on by the account itself on its settings page.
    enabled   TINYINT(1)  NOT NULL DEFAULT 0,
    -- The most a face sign-in gives, whatever the account's own role ('viewer' unless an admin
    -- allowed more).
    max_role  VARCHAR(32) NOT NULL DEFAULT 'viewer',
    CONSTRAINT face_sign_in_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT face_sign_in_person_fk FOREIGN KEY (person_id) REFERENCES people (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

ALTER TABLE sign_ins ADD COLUMN similarity DOUBLE NULL, ADD COLUMN thumbnail MEDIUMBLOB NULL;
