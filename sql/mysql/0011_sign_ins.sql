-- FaceReko schema, version 11 (MySQL / MariaDB): every attempt to sign in to the web app, for admins to review.

CREATE TABLE IF NOT EXISTS sign_ins (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at_ms      BIGINT       NOT NULL,
    account    VARCHAR(255) NOT NULL,
    method     VARCHAR(32)  NOT NULL,
    outcome    VARCHAR(32)  NOT NULL,
    address    VARCHAR(64)  NULL,
    user_agent VARCHAR(255) NULL,
    KEY sign_ins_at (at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
