//! Encoded camera frames and uploaded pictures, kept as the bytes we received.

use std::path::Path;
use std::sync::Arc;

/// Image containers we accept. Cameras deliver JPEG; PNG is common for uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    Jpeg,
    Png,
}

impl FrameFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{what} is empty")]
    Empty { what: String },
    #[error("{what} is not a JPEG or PNG image")]
    UnknownFormat { what: String },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

/// One still image: cheap to clone, so it can travel from the camera through matching to the log.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Arc<[u8]>,
    format: FrameFormat,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({:?}, {} bytes)", self.format, self.bytes.len())
    }
}

impl Frame {
    /// Checks the container by its magic bytes; `what` names the source in errors.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>, what: &str) -> Result<Self, FrameError> {
        let bytes = bytes.into();
        let format = match bytes.as_ref() {
            [] => return Err(FrameError::Empty { what: what.to_owned() }),
            [0xFF, 0xD8, 0xFF, ..] => FrameFormat::Jpeg,
            [0x89, b'P', b'N', b'G', ..] => FrameFormat::Png,
            _ => return Err(FrameError::UnknownFormat { what: what.to_owned() }),
        };
        Ok(Self { bytes, format })
    }

    pub fn read(path: &Path) -> Result<Self, FrameError> {
        let bytes =
            std::fs::read(path).map_err(|source| FrameError::Read { path: path.display().to_string(), source })?;
        Self::from_bytes(bytes, &path.display().to_string())
    }

    /// The very same frame (not merely equal bytes): cheap, for caches keyed by frame.
    pub fn is_same(&self, other: &Frame) -> bool {
        Arc::ptr_eq(&self.bytes, &other.bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn format(&self) -> FrameFormat {
        self.format
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats_and_refuses_others() {
        assert_eq!(Frame::from_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0], "a").unwrap().format(), FrameFormat::Jpeg);
        assert_eq!(Frame::from_bytes(b"\x89PNG\r\n".to_vec(), "b").unwrap().format(), FrameFormat::Png);
        let err = Frame::from_bytes(b"GIF89a".to_vec(), "upload.gif").unwrap_err();
        assert_eq!(err.to_string(), "upload.gif is not a JPEG or PNG image");
        assert!(matches!(Frame::from_bytes(Vec::new(), "x"), Err(FrameError::Empty { .. })));
    }
}
