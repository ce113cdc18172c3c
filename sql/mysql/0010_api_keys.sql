-- FaceReko schema, version 10 (MySQL / MariaDB): keys of the face-comparison API, kept only as hashes.

CREATE TABLE IF NOT EXISTS api_keys (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name         VARCHAR(255) NOT NULL,
    key_hash     CHAR(64)     COLLATE utf8mb4_bin NOT NULL,
    created_ms   BIGINT       NOT NULL,
    last_used_ms BIGINT       NULL,
    UNIQUE KEY api_keys_key_hash (key_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
