-- FaceReko schema, version 3 (MySQL / MariaDB): faces removed here whose copy in the Rekognition
-- collection could not be deleted yet (the cloud was away). Searches ignore them; they are
-- deleted again at start and by `facereko collection sync`.

CREATE TABLE IF NOT EXISTS leftover_faces (
    face_id    VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    created_ms BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
