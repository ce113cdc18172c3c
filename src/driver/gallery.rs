//! The enrolled faces the door searches, cached between taps.

use tokio::sync::Mutex;

use crate::engine::Gallery;
use crate::store::{DoorPath, StoreError};

/// Enrolled faces of the engine in use, reloaded when the store says they changed (also when
/// another process, such as `facereko enroll`, changed them).
pub struct GalleryCache {
    engine: String,
    cached: Mutex<(Option<u64>, Gallery)>,
}

impl GalleryCache {
    pub fn new(engine: &str) -> Self {
        Self { engine: engine.to_owned(), cached: Mutex::new((None, Vec::new().into())) }
    }

    /// The current gallery; if the store cannot be asked, the last one known.
    pub async fn current(&self, store: &dyn DoorPath) -> Gallery {
        let mut cached = self.cached.lock().await;
        let refreshed = async {
            let version = store.faces_version().await?;
            if cached.0 == Some(version) {
                return Ok::<_, StoreError>(None);
            }
            let (version, faces) = store.faces(&self.engine).await?;
            Ok(Some((version, faces)))
        }
        .await;
        match refreshed {
            Ok(Some((version, faces))) => {
                tracing::debug!(faces = faces.len(), version, "loaded the enrolled faces");
                *cached = (Some(version), faces.into());
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check the enrolled faces; using the ones loaded before"),
        }
        cached.1.clone()
    }
}
