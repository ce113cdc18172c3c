-- A face's engine column says what made its template; on-device descriptors also name their
-- embedder, since descriptors of different models cannot be compared. Faces enrolled so far were
-- described by dlib.
UPDATE faces SET engine = 'local/dlib' WHERE engine = 'local';
UPDATE faces SET engine = 'hybrid/dlib' WHERE engine = 'hybrid';
-- The enrolment photo under the photos folder, kept so that `facereko faces reindex` can describe
-- the face again with another embedder. NULL for faces enrolled before photos were kept.
ALTER TABLE faces ADD COLUMN photo VARCHAR(255) NULL;
