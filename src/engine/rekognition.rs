//! The AWS Rekognition engine: faces live in a Rekognition collection, one `SearchFacesByImage`
//! per tap. Works the same against FaceReko's own offline API (`endpoint_url`).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rekognition::Client;
use aws_sdk_rekognition::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::{BoundingBox, FaceMatch, Image};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::local::LocalEngine;
use super::{Comparison, DetectedFace, EngineError, FaceEngine, FaceTemplate, Gallery, SearchOutcome, decode_rgb};
use crate::access::PersonId;
use crate::checks::Checks;
use crate::errors::error_chain;
use crate::frame::{Frame, FrameFormat};

pub const NAME: &str = "rekognition";
/// Rekognition refuses pictures sent as bytes above this size.
const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
const UPLOAD_JPEG_QUALITY: u8 = 90;
/// Matches asked for per search: a few faces in the collection that are not in our gallery (a
/// removal whose delete failed and waits for a retry) must not hide the one that is.
const SEARCH_MATCHES: i32 = 20;

/// `[engine.rekognition]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RekognitionConfig {
    /// Empty: the SDK's default (AWS_REGION, the profile).
    pub region: String,
    /// Empty: AWS. FaceReko's own API: e.g. "http://127.0.0.1:8787".
    pub endpoint_url: String,
    pub collection_id: String,
    /// `FaceMatchThreshold` of each search (0–100); the door still applies `engine.match_threshold`.
    pub face_match_threshold: f32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for one attempt of a call (a retry gets its own).
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
    /// Attempts per call, the first included (retries are for throttling and network errors).
    pub max_attempts: u32,
    /// Frames larger than this (pixels, longest side) are scaled down and sent as JPEG.
    pub upload_max_side: u32,
    /// `hybrid` engine: how long the cloud may take before the on-device engine decides.
    #[serde(with = "humantime_serde")]
    pub fallback_after: Duration,
}

impl Default for RekognitionConfig {
    fn default() -> Self {
        Self {
            region: String::new(),
            endpoint_url: String::new(),
            collection_id: "facereko".into(),
            // The original FaceReko's threshold.
            face_match_threshold: 85.0,
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(3),
            max_attempts: 2,
            upload_max_side: 1024,
            fallback_after: Duration::from_secs(2),
        }
    }
}

impl RekognitionConfig {
    pub fn check(&self, checks: &mut Checks) {
        crate::aws::check_endpoint_url(checks, "engine.rekognition.endpoint_url", &self.endpoint_url);
        let mut check =
            |ok: bool, key: &str, message: String| checks.check(ok, &format!("engine.rekognition.{key}"), message);
        let id_ok = (1..=255).contains(&self.collection_id.len())
            && self.collection_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        check(
            id_ok,
            "collection_id",
            format!("{:?} must be 1-255 letters, digits, '_', '.' or '-'", self.collection_id),
        );
        check(
            (0.0..=100.0).contains(&self.face_match_threshold),
            "face_match_threshold",
            format!("{} must be 0 to 100 (Rekognition's similarity)", self.face_match_threshold),
        );
        check((1..=10).contains(&self.max_attempts), "max_attempts", format!("{} must be 1 to 10", self.max_attempts));
        check(
            (160..=4096).contains(&self.upload_max_side),
            "upload_max_side",
            format!("{} must be 160 to 4096 pixels", self.upload_max_side),
        );
        let timeouts = [
            ("connect_timeout", self.connect_timeout),
            ("attempt_timeout", self.attempt_timeout),
            ("fallback_after", self.fallback_after),
        ];
        for (key, value) in timeouts {
            check(
                value >= Duration::from_millis(100) && value <= Duration::from_secs(60),
                key,
                format!("{} is out of range; use 100ms to 60s", humantime::format_duration(value)),
            );
        }
    }
}

/// Searches and enrols through the Rekognition API with the SDK's default credential chain.
pub struct RekognitionEngine {
    config: RekognitionConfig,
    /// With the on-device models present, frames are checked for a face here, free, instead of
    /// paying a DetectFaces call for each frame of a tap's burst.
    face_check: Option<LocalEngine>,
    /// Built on first use: the credential chain and region lookup are asynchronous.
    client: OnceCell<Client>,
}

/// What went wrong with a call, in the terms a door log needs.
fn cloud_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    error: SdkError<E, R>,
    collection: &str,
) -> EngineError {
    let unavailable = |why: String| EngineError::Unavailable(format!("Rekognition: {why}"));
    match &error {
        SdkError::TimeoutError(_) => unavailable("no answer in time (network slow or down)".into()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            unavailable("no answer in time (network slow or down)".into())
        }
        SdkError::DispatchFailure(_) => unavailable(format!("unreachable (network down?): {}", error_chain(&error))),
        SdkError::ServiceError(service) => {
            let err = service.err();
            let message = err.message().unwrap_or_default();
            match err.code().unwrap_or_default() {
                "InvalidParameterException" => EngineError::NoFace { what: "the picture".into() },
                "ImageTooLargeException" | "InvalidImageFormatException" => {
                    EngineError::BadImage { what: "the picture".into(), detail: message.to_owned() }
                }
                "ThrottlingException" | "ProvisionedThroughputExceededException" | "LimitExceededException" => {
                    unavailable(format!("throttled, too many requests: {message}"))
                }
                code @ ("UnrecognizedClientException"
                | "InvalidSignatureException"
                | "AccessDeniedException"
                | "ExpiredTokenException"
                | "MissingAuthenticationTokenException") => unavailable(format!(
                    "the credentials were refused ({code}: {message}); check the access key and the IAM policy"
                )),
                "ResourceNotFoundException" => unavailable(format!(
                    "the collection {collection:?} does not exist; create it with `facereko collection create`"
                )),
                code => unavailable(format!("{code}: {message}")),
            }
        }
        _ => unavailable(error_chain(&error)),
    }
}

/// A box given as fractions of the picture, in the picture's pixels.
fn pixel_box(bounds: Option<&BoundingBox>, confidence: Option<f32>, width: u32, height: u32) -> DetectedFace {
    let ratio = |value: Option<f32>| value.unwrap_or(0.0).clamp(0.0, 1.0);
    let (w, h) = (width as f32, height as f32);
    DetectedFace {
        x: (ratio(bounds.and_then(BoundingBox::left)) * w).round() as u32,
        y: (ratio(bounds.and_then(BoundingBox::top)) * h).round() as u32,
        width: (ratio(bounds.and_then(BoundingBox::width)) * w).round() as u32,
        height: (ratio(bounds.and_then(BoundingBox::height)) * h).round() as u32,
        confidence: confidence.unwrap_or(0.0),
        landmarks: None,
    }
}

/// The picture to upload and its upright size: frames larger than `max_side` are scaled down and
/// re-encoded, which keeps uploads small and fast (Rekognition needs faces of only ~40 px).
pub fn prepare_upload(frame: &Frame, max_side: u32) -> Result<(Vec<u8>, u32, u32), EngineError> {
    let picture = decode_rgb(frame, "the picture")?;
    let (width, height) = picture.dimensions();
    let small_enough = width.max(height) <= max_side && frame.bytes().len() <= MAX_UPLOAD_BYTES;
    if small_enough && frame.format() == FrameFormat::Jpeg {
        return Ok((frame.bytes().to_vec(), width, height));
    }
    let scale = (max_side as f32 / width.max(height) as f32).min(1.0);
    let (new_width, new_height) =
        (((width as f32 * scale).round() as u32).max(1), ((height as f32 * scale).round() as u32).max(1));
    let resized = image::imageops::resize(&picture, new_width, new_height, image::imageops::FilterType::Triangle);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, UPLOAD_JPEG_QUALITY)
        .encode_image(&resized)
        .map_err(|e| EngineError::BadImage { what: "the picture".into(), detail: e.to_string() })?;
    Ok((jpeg, width, height))
}

/// Our person id as Rekognition's `ExternalImageId`: a label for whoever reads the collection;
/// searches go by our gallery instead.
fn external_id(person: PersonId) -> String {
    format!("person-{}", person.0)
}

/// The best of `matches` (best first, as Rekognition sorts them) whose FaceId is in our gallery,
/// with the person our gallery gives it. The collection's own `ExternalImageId` is not trusted: a
/// face removed here may still be in the collection, and anyone with write access to the
/// collection could label a face with any person.
fn best_in_gallery(matches: &[FaceMatch], gallery: &Gallery) -> Option<(PersonId, f32)> {
    matches.iter().find_map(|found| {
        let face_id = found.face()?.face_id()?;
        let person = gallery.iter().find_map(|stored| match &stored.template {
            FaceTemplate::Remote(ours) if ours == face_id => Some(stored.person),
            _ => None,
        })?;
        Some((person, found.similarity().unwrap_or(0.0)))
    })
}

impl RekognitionEngine {
    pub fn new(config: RekognitionConfig, face_check: Option<LocalEngine>) -> Self {
        Self { config, face_check, client: OnceCell::new() }
    }

    pub fn collection_id(&self) -> &str {
        &self.config.collection_id
    }

    /// The SDK client, with region, endpoint, timeouts and retries from the config.
    pub async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let config = &self.config;
                let reach = crate::aws::Reach {
                    region: &config.region,
                    endpoint_url: &config.endpoint_url,
                    connect_timeout: config.connect_timeout,
                    attempt_timeout: config.attempt_timeout,
                    max_attempts: config.max_attempts,
                };
                Client::new(&reach.sdk_config().await)
            })
            .await
    }

    async fn upload(&self, frame: &Frame) -> Result<(Image, u32, u32), EngineError> {
        let (frame, max_side) = (frame.clone(), self.config.upload_max_side);
        let (bytes, width, height) = tokio::task::spawn_blocking(move || prepare_upload(&frame, max_side))
            .await
            .map_err(|e| EngineError::Unavailable(format!("preparing the upload failed: {e}")))??;
        Ok((Image::builder().bytes(Blob::new(bytes)).build(), width, height))
    }
}

#[async_trait]
impl FaceEngine for RekognitionEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_device(&self) -> Option<LocalEngine> {
        self.face_check.clone()
    }

    async fn detect_largest(&self, image: &Frame) -> Result<Option<DetectedFace>, EngineError> {
        match &self.face_check {
            Some(local) => local.detect_largest(image).await,
            None => Ok(self.detect(image).await?.into_iter().next()),
        }
    }

    async fn detect_following(&self, image: &Frame, previous: &DetectedFace) -> Result<Vec<DetectedFace>, EngineError> {
        match &self.face_check {
            Some(local) => local.detect_following(image, previous).await,
            None => self.detect(image).await,
        }
    }

    async fn detect(&self, image: &Frame) -> Result<Vec<DetectedFace>, EngineError> {
        if let Some(local) = &self.face_check {
            return local.detect(image).await;
        }
        let (upload, width, height) = self.upload(image).await?;
        let answer = self
            .client()
            .await
            .detect_faces()
            .image(upload)
            .send()
            .await
            .map_err(|e| cloud_error(e, self.collection_id()))?;
        let mut faces: Vec<DetectedFace> = answer
            .face_details()
            .iter()
            .map(|face| pixel_box(face.bounding_box(), face.confidence(), width, height))
            .collect();
        faces.sort_by_key(|face| std::cmp::Reverse(face.area()));
        Ok(faces)
    }

    async fn enroll(&self, person: PersonId, image: &Frame) -> Result<FaceTemplate, EngineError> {
        let (upload, _, _) = self.upload(image).await?;
        let answer = self
            .client()
            .await
            .index_faces()
            .collection_id(self.collection_id())
            .external_image_id(external_id(person))
            .max_faces(1)
            .image(upload)
            .send()
            .await
            .map_err(|e| cloud_error(e, self.collection_id()))?;
        let face_id = answer
            .face_records()
            .first()
            .and_then(|record| record.face())
            .and_then(|face| face.face_id())
            .ok_or_else(|| EngineError::NoFace { what: "the picture".into() })?;
        if !answer.unindexed_faces().is_empty() {
            // Enrolment pictures must show one face; undo the one that was indexed.
            self.forget(&FaceTemplate::Remote(face_id.to_owned())).await?;
            return Err(EngineError::SeveralFaces {
                what: "the picture".into(),
                count: answer.face_records().len() + answer.unindexed_faces().len(),
            });
        }
        Ok(FaceTemplate::Remote(face_id.to_owned()))
    }

    async fn forget(&self, template: &FaceTemplate) -> Result<(), EngineError> {
        let FaceTemplate::Remote(face_id) = template else {
            return Ok(());
        };
        self.client()
            .await
            .delete_faces()
            .collection_id(self.collection_id())
            .face_ids(face_id)
            .send()
            .await
            .map_err(|e| cloud_error(e, self.collection_id()))?;
        Ok(())
    }

    /// Only faces in `gallery` (our database) can match, whatever else the collection holds.
    async fn search(&self, image: &Frame, gallery: &Gallery) -> Result<SearchOutcome, EngineError> {
        let (upload, _, _) = self.upload(image).await?;
        let answer = self
            .client()
            .await
            .search_faces_by_image()
            .collection_id(self.collection_id())
            .max_faces(SEARCH_MATCHES)
            .face_match_threshold(self.config.face_match_threshold)
            .image(upload)
            .send()
            .await;
        let answer = match answer.map_err(|e| cloud_error(e, self.collection_id())) {
            Err(EngineError::NoFace { .. }) => return Ok(SearchOutcome::NoFace),
            other => other?,
        };
        let face_confidence = answer.searched_face_confidence().unwrap_or(0.0);
        Ok(match best_in_gallery(answer.face_matches(), gallery) {
            Some((person, similarity)) => SearchOutcome::Candidate { person, similarity, face_confidence },
            None => SearchOutcome::NoCandidate { face_confidence },
        })
    }

    async fn compare(&self, first: &Frame, second: &Frame) -> Result<Comparison, EngineError> {
        let (source, source_width, source_height) = self.upload(first).await?;
        let (target, target_width, target_height) = self.upload(second).await?;
        let answer = self
            .client()
            .await
            .compare_faces()
            .source_image(source)
            .target_image(target)
            // Every target face comes back with its similarity, matched or not.
            .similarity_threshold(0.0)
            .send()
            .await
            .map_err(|e| cloud_error(e, self.collection_id()))?;
        let source_face =
            answer.source_image_face().ok_or_else(|| EngineError::NoFace { what: "the first picture".into() })?;
        let best = answer
            .face_matches()
            .iter()
            .max_by(|a, b| a.similarity().unwrap_or(0.0).total_cmp(&b.similarity().unwrap_or(0.0)))
            .ok_or_else(|| EngineError::NoFace { what: "the second picture".into() })?;
        let target_face = best.face();
        Ok(Comparison {
            similarity: best.similarity().unwrap_or(0.0),
            first: pixel_box(source_face.bounding_box(), source_face.confidence(), source_width, source_height),
            second: pixel_box(
                target_face.and_then(|f| f.bounding_box()),
                target_face.and_then(|f| f.confidence()),
                target_width,
                target_height,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_sdk_rekognition::config::http::HttpResponse;
    use aws_sdk_rekognition::error::ErrorMetadata;
    use aws_sdk_rekognition::operation::search_faces_by_image::SearchFacesByImageError;

    fn service_error(code: &str) -> EngineError {
        let metadata = ErrorMetadata::builder().code(code).message("told by the service").build();
        let response = HttpResponse::new(400.try_into().expect("a status code"), "".into());
        cloud_error(SdkError::service_error(SearchFacesByImageError::generic(metadata), response), "door")
    }

    #[test]
    fn cloud_errors_become_denial_details_that_say_what_to_do() {
        assert!(matches!(service_error("InvalidParameterException"), EngineError::NoFace { .. }));
        let throttled = service_error("ThrottlingException").to_string();
        assert!(throttled.contains("throttled"), "{throttled}");
        let refused = service_error("UnrecognizedClientException").to_string();
        assert!(refused.contains("credentials were refused") && refused.contains("IAM policy"), "{refused}");
        let missing = service_error("ResourceNotFoundException").to_string();
        assert!(missing.contains("facereko collection create"), "{missing}");
        let slow = SdkError::<SearchFacesByImageError, HttpResponse>::timeout_error("slow");
        let slow = cloud_error(slow, "door").to_string();
        assert!(slow.contains("no answer in time"), "{slow}");
    }

    fn found(face_id: &str, external: &str, similarity: f32) -> FaceMatch {
        let face = aws_sdk_rekognition::types::Face::builder().face_id(face_id).external_image_id(external).build();
        FaceMatch::builder().face(face).similarity(similarity).build()
    }

    #[test]
    fn only_faces_in_our_gallery_match_and_our_gallery_names_the_person() {
        let ours = |id: i64, person: i64, face_id: &str| crate::engine::StoredFace {
            id,
            person: PersonId(person),
            template: FaceTemplate::Remote(face_id.into()),
        };
        let gallery: Gallery = vec![ours(1, 7, "kept"), ours(2, 8, "other")].into();
        // A face removed here but still in the collection, labelled as person 7, comes first.
        let matches = [found("removed", &external_id(PersonId(7)), 99.5), found("kept", "person-8", 97.0)];
        assert_eq!(best_in_gallery(&matches, &gallery), Some((PersonId(7), 97.0)));
        assert_eq!(best_in_gallery(&matches[..1], &gallery), None, "a FaceId we do not know never matches");
        assert_eq!(best_in_gallery(&matches, &Gallery::from(vec![])), None);
    }

    #[test]
    fn large_frames_are_scaled_down_and_small_jpegs_sent_as_they_are() {
        let big = image::RgbImage::from_pixel(2000, 1000, image::Rgb([90, 120, 150]));
        let mut png = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(big).write_to(&mut png, image::ImageFormat::Png).unwrap();
        let frame = Frame::from_bytes(png.into_inner(), "big").unwrap();
        let (bytes, width, height) = prepare_upload(&frame, 1024).unwrap();
        assert_eq!((width, height), (2000, 1000), "the original size, for boxes");
        let sent = image::load_from_memory(&bytes).unwrap();
        assert_eq!((sent.width(), sent.height()), (1024, 512));

        let (again, ..) = prepare_upload(&Frame::from_bytes(bytes.clone(), "small").unwrap(), 1024).unwrap();
        assert_eq!(again, bytes);
    }
}
