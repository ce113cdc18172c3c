//! The API's collections and their faces, in their own SQLite file beside the door's database.
//!
//! Kept apart from the door's store: these are a service's data (any client may create
//! collections), not the door's people.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::local::Descriptor;

/// The file name under `data_dir`.
pub const FILE_NAME: &str = "rekognition-api.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS collections (
    id TEXT PRIMARY KEY NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    face_id TEXT PRIMARY KEY NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL,
    external_image_id TEXT,
    confidence REAL NOT NULL,
    box_left REAL NOT NULL,
    box_top REAL NOT NULL,
    box_width REAL NOT NULL,
    box_height REAL NOT NULL,
    descriptor BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_by_collection ON faces (collection_id, face_id);
";

/// Descriptors of different embedders mean nothing to each other: each face records its own.
/// Files from before the column existed hold dlib descriptors.
const ADD_EMBEDDER: &str = "ALTER TABLE faces ADD COLUMN embedder TEXT NOT NULL DEFAULT 'dlib'";

#[derive(Debug, thiserror::Error)]
pub enum CollectionsError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("the collections database failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("a stored descriptor has {0} bytes, not a whole number of values")]
    CorruptDescriptor(usize),
    #[error("the collections database task failed: {0}")]
    Task(String),
}

/// A face's box as fractions of its picture's width and height, as Rekognition gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

/// An indexed face as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedFace {
    pub face_id: String,
    pub image_id: String,
    pub external_image_id: Option<String>,
    pub confidence: f32,
    pub bounding_box: RatioBox,
}

/// An indexed face with its descriptor, for searching.
#[derive(Debug, Clone)]
pub struct SearchableFace {
    pub face: IndexedFace,
    /// The embedder that made `descriptor`.
    pub embedder: &'static str,
    pub descriptor: Descriptor,
}

/// The database, shared by the request handlers; every call runs off the async threads.
#[derive(Clone)]
pub struct Collections(Arc<Mutex<Connection>>);

fn descriptor_bytes(descriptor: &Descriptor) -> Vec<u8> {
    descriptor.iter().flat_map(|value| value.to_le_bytes()).collect()
}

fn descriptor_from(bytes: &[u8]) -> Result<Descriptor, CollectionsError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return Err(CollectionsError::CorruptDescriptor(bytes.len()));
    }
    Ok(bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect())
}

const FACE_COLUMNS: &str =
    "face_id, image_id, external_image_id, confidence, box_left, box_top, box_width, box_height, descriptor";

fn face_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(IndexedFace, Vec<u8>)> {
    Ok((
        IndexedFace {
            face_id: row.get(0)?,
            image_id: row.get(1)?,
            external_image_id: row.get(2)?,
            confidence: row.get(3)?,
            bounding_box: RatioBox { left: row.get(4)?, top: row.get(5)?, width: row.get(6)?, height: row.get(7)? },
        },
        row.get(8)?,
    ))
}

impl Collections {
    pub fn open(path: &Path) -> Result<Self, CollectionsError> {
        let open = || -> rusqlite::Result<Connection> {
            let connection = Connection::open(path)?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "foreign_keys", true)?;
            connection.busy_timeout(std::time::Duration::from_secs(5))?;
            connection.execute_batch(SCHEMA)?;
            let has_embedder: bool = connection.query_row(
                "SELECT count(*) FROM pragma_table_info('faces') WHERE name = 'embedder'",
                [],
                |row| row.get(0),
            )?;
            if !has_embedder {
                connection.execute_batch(ADD_EMBEDDER)?;
            }
            Ok(connection)
        };
        let connection =
            open().map_err(|source| CollectionsError::Open { path: path.display().to_string(), source })?;
        Ok(Self(Arc::new(Mutex::new(connection))))
    }

    /// Runs `work` on the connection in a blocking task.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, CollectionsError> + Send + 'static,
    ) -> Result<T, CollectionsError> {
        let shared = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| CollectionsError::Task(e.to_string()))?
    }

    /// Creates a collection; false if it already exists.
    pub async fn create(&self, id: &str) -> Result<bool, CollectionsError> {
        let id = id.to_owned();
        self.with(move |db| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            let now = i64::try_from(now).unwrap_or(i64::MAX);
            Ok(db.execute("INSERT OR IGNORE INTO collections (id, created_ms) VALUES (?1, ?2)", params![id, now])? == 1)
        })
        .await
    }

    /// Deletes a collection and its faces; false if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, CollectionsError> {
        let id = id.to_owned();
        self.with(move |db| Ok(db.execute("DELETE FROM collections WHERE id = ?1", params![id])? == 1)).await
    }

    pub async fn exists(&self, id: &str) -> Result<bool, CollectionsError> {
        let id = id.to_owned();
        self.with(move |db| {
            Ok(db.query_row("SELECT 1 FROM collections WHERE id = ?1", params![id], |_| Ok(())).optional()?.is_some())
        })
        .await
    }

    /// Collection ids in order, at most `limit` after `after`.
    pub async fn list(&self, after: Option<String>, limit: usize) -> Result<Vec<String>, CollectionsError> {
        self.with(move |db| {
            let mut statement = db.prepare("SELECT id FROM collections WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let rows = statement.query_map(params![after.unwrap_or_default(), limit as i64], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Stores faces of one picture in `collection` (which the caller checked exists).
    pub async fn add_faces(&self, collection: &str, faces: Vec<SearchableFace>) -> Result<(), CollectionsError> {
        let collection = collection.to_owned();
        self.with(move |db| {
            let transaction = db.transaction()?;
            for SearchableFace { face, embedder, descriptor } in &faces {
                let b = face.bounding_box;
                transaction.execute(
                    &format!(
                        "INSERT INTO faces (embedder, collection_id, {FACE_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                    ),
                    params![
                        embedder,
                        collection,
                        face.face_id,
                        face.image_id,
                        face.external_image_id,
                        face.confidence,
                        b.left,
                        b.top,
                        b.width,
                        b.height,
                        descriptor_bytes(descriptor)
                    ],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    /// Faces of `collection` in face id order, at most `limit` after `after`.
    pub async fn faces(
        &self,
        collection: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<IndexedFace>, CollectionsError> {
        let collection = collection.to_owned();
        self.with(move |db| {
            let mut statement = db.prepare(&format!(
                "SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ?1 AND face_id > ?2 ORDER BY face_id LIMIT ?3"
            ))?;
            let rows = statement
                .query_map(params![collection, after.unwrap_or_default(), limit as i64], face_from_row)?
                .map(|row| row.map(|(face, _)| face));
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Every face of `collection` that `embedder` described, with its descriptor.
    pub async fn searchable(
        &self,
        collection: &str,
        embedder: &'static str,
    ) -> Result<Vec<SearchableFace>, CollectionsError> {
        let collection = collection.to_owned();
        self.with(move |db| {
            let mut statement = db.prepare(&format!(
                "SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ?1 AND embedder = ?2 ORDER BY face_id"
            ))?;
            let rows = statement.query_map(params![collection, embedder], face_from_row)?;
            rows.map(|row| {
                let (face, bytes) = row?;
                Ok(SearchableFace { face, embedder, descriptor: descriptor_from(&bytes)? })
            })
            .collect()
        })
        .await
    }

    /// Deletes the listed faces of `collection`; returns the ids that existed.
    pub async fn delete_faces(&self, collection: &str, face_ids: Vec<String>) -> Result<Vec<String>, CollectionsError> {
        let collection = collection.to_owned();
        self.with(move |db| {
            let transaction = db.transaction()?;
            let mut deleted = Vec::new();
            for face_id in face_ids {
                let removed = transaction.execute(
                    "DELETE FROM faces WHERE collection_id = ?1 AND face_id = ?2",
                    params![collection, face_id],
                )?;
                if removed == 1 {
                    deleted.push(face_id);
                }
            }
            transaction.commit()?;
            Ok(deleted)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(id: &str) -> SearchableFace {
        let mut descriptor = vec![0.0; 192];
        descriptor[0] = 0.5;
        descriptor[191] = -1.25;
        SearchableFace {
            face: IndexedFace {
                face_id: id.into(),
                image_id: "image".into(),
                external_image_id: Some("ada".into()),
                confidence: 99.5,
                bounding_box: RatioBox { left: 0.1, top: 0.2, width: 0.3, height: 0.4 },
            },
            embedder: "mobilefacenet",
            descriptor,
        }
    }

    #[tokio::test]
    async fn collections_and_faces_survive_reopening_and_deleting_cascades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let db = Collections::open(&path).unwrap();
        assert!(db.create("door").await.unwrap());
        assert!(!db.create("door").await.unwrap(), "a second create reports the collection exists");
        db.add_faces("door", vec![face("a"), face("b")]).await.unwrap();
        drop(db);

        let db = Collections::open(&path).unwrap();
        assert!(db.searchable("door", "dlib").await.unwrap().is_empty(), "another embedder's faces are not searched");
        let stored = db.searchable("door", "mobilefacenet").await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].face, face("a").face);
        assert_eq!(stored[0].descriptor, face("a").descriptor);
        assert_eq!(db.faces("door", Some("a".into()), 10).await.unwrap().len(), 1, "paging after a face id");
        assert_eq!(db.delete_faces("door", vec!["a".into(), "zzz".into()]).await.unwrap(), ["a"]);
        assert!(db.delete("door").await.unwrap());
        assert!(db.searchable("door", "mobilefacenet").await.unwrap().is_empty(), "faces go with their collection");
        assert!(!db.delete("door").await.unwrap());
    }
}
