-- FaceReko schema, version 12 (MySQL / MariaDB): the passkeys web accounts sign in with. `credential`
-- is the passkey as the web app serialises it (public key, signature counter); nothing here is secret.
-- Credential IDs are at most 1023 bytes (WebAuthn), short enough for a unique key.

CREATE TABLE IF NOT EXISTS passkeys (
    id            BIGINT          NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id       BIGINT          NOT NULL,
    user_handle   VARCHAR(64)     COLLATE utf8mb4_bin NOT NULL,
    credential_id VARBINARY(1023) NOT NULL,
    name          VARCHAR(255)    NOT NULL,
    credential    TEXT            NOT NULL,
    created_ms    BIGINT          NOT NULL,
    last_used_ms  BIGINT          NULL,
    UNIQUE KEY passkeys_credential (credential_id),
    KEY passkeys_user (user_id),
    CONSTRAINT passkeys_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
