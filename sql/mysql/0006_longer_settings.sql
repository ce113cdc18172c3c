-- FaceReko schema, version 6 (MySQL / MariaDB): settings saved from the web app, such as the
-- notification rules, can be longer than 255 characters.

ALTER TABLE settings MODIFY value TEXT NOT NULL;
