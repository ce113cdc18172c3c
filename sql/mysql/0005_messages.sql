-- FaceReko schema, version 5 (MySQL / MariaDB): e-mails and text messages about access attempts,
-- written in the same transaction as their log row, one row per recipient, until delivered or
-- given up on.

CREATE TABLE IF NOT EXISTS messages (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id     VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
    channel      VARCHAR(16)  NOT NULL,
    recipient    VARCHAR(320) COLLATE utf8mb4_bin NOT NULL,
    payload      MEDIUMTEXT   NOT NULL,
    created_ms   BIGINT       NOT NULL,
    attempts     INT          NOT NULL DEFAULT 0,
    due_ms       BIGINT       NOT NULL,
    delivered_ms BIGINT,
    failed_ms    BIGINT,
    problem      TEXT,
    UNIQUE KEY messages_once (event_id, channel, recipient),
    KEY messages_waiting (channel, delivered_ms, failed_ms, due_ms),
    CONSTRAINT messages_event_fk FOREIGN KEY (event_id) REFERENCES access_log (event_id),
    CONSTRAINT messages_channel CHECK (channel IN ('email', 'sms'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
