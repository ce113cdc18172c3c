-- FaceReko schema, version 3 (SQLite): faces removed here whose copy in the Rekognition collection
-- could not be deleted yet (the cloud was away). Searches ignore them; they are deleted again at
-- start and by `facereko collection sync`.

CREATE TABLE leftover_faces (
    face_id    TEXT    PRIMARY KEY,
    created_ms INTEGER NOT NULL
);
