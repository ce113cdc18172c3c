//! Photos of attempts and enrolment photos, saved under `<data_dir>/photos` with names we generate.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::frame::Frame;

#[derive(Debug, thiserror::Error)]
#[error("cannot save or remove the photo {path}: {source}")]
pub struct PhotoError {
    path: String,
    source: std::io::Error,
}

#[derive(Debug, Clone)]
pub struct Photos {
    root: PathBuf,
}

impl Photos {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Writes the frame as `YYYY/MM/DD/<random>.<ext>` and returns that relative path. The file
    /// is synced before the log row that names it is written.
    pub fn save(&self, frame: &Frame, at: OffsetDateTime) -> Result<String, PhotoError> {
        let relative = format!(
            "{:04}/{:02}/{:02}/{}.{}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            uuid::Uuid::new_v4().simple(),
            frame.format().extension()
        );
        self.write(frame, relative)
    }

    /// Writes an enrolment photo as `faces/<random>.<ext>`, synced, and returns that name: kept
    /// so that the face can be described again by another embedder (`facereko faces reindex`).
    pub fn save_face(&self, frame: &Frame) -> Result<String, PhotoError> {
        self.write(frame, format!("faces/{}.{}", uuid::Uuid::new_v4().simple(), frame.format().extension()))
    }

    /// Deletes a photo we saved; one already gone is not an error.
    pub fn remove(&self, relative: &str) -> Result<(), PhotoError> {
        let Some(path) = self.path_of(relative) else { return Ok(()) };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(PhotoError { path: path.display().to_string(), source: e })
            }
            _ => Ok(()),
        }
    }

    fn write(&self, frame: &Frame, relative: String) -> Result<String, PhotoError> {
        let path = self.root.join(&relative);
        let failed = |source| PhotoError { path: path.display().to_string(), source };
        std::fs::create_dir_all(path.parent().unwrap_or(&self.root)).map_err(failed)?;
        let mut file = std::fs::File::create_new(&path).map_err(failed)?;
        file.write_all(frame.bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        Ok(relative)
    }

    /// The file behind a relative name we generated; `None` for anything that could leave the folder.
    pub fn path_of(&self, relative: &str) -> Option<PathBuf> {
        let safe = Path::new(relative).components().all(|c| matches!(c, std::path::Component::Normal(_)));
        safe.then(|| self.root.join(relative))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_under_a_dated_generated_name() {
        let dir = tempfile::tempdir().unwrap();
        let photos = Photos::new(dir.path().join("photos"));
        let frame = Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2], "t").unwrap();
        let at = time::macros::datetime!(2026-11-22 03:04:05 UTC);
        let name = photos.save(&frame, at).unwrap();
        assert!(name.starts_with("2026/11/22/") && name.ends_with(".jpg"), "{name}");
        let path = photos.path_of(&name).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), frame.bytes());
        assert_ne!(photos.save(&frame, at).unwrap(), name);
    }

    #[test]
    fn enrolment_photos_are_kept_apart_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let photos = Photos::new(dir.path().join("photos"));
        let frame = Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2], "t").unwrap();
        let name = photos.save_face(&frame).unwrap();
        assert!(name.starts_with("faces/") && name.ends_with(".jpg"), "{name}");
        let path = photos.path_of(&name).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), frame.bytes());
        photos.remove(&name).unwrap();
        assert!(!path.exists());
        photos.remove(&name).expect("removing a photo twice is fine");
        photos.remove("../outside").expect("a name that leaves the folder is ignored");
    }

    #[test]
    fn refuses_paths_that_leave_the_folder() {
        let photos = Photos::new(PathBuf::from("/data/photos"));
        assert!(photos.path_of("../etc/passwd").is_none());
        assert!(photos.path_of("/etc/passwd").is_none());
        assert!(photos.path_of("2026/../../x").is_none());
        assert!(photos.path_of("2026/11/22/a.jpg").is_some());
    }
}
