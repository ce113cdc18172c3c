//! The `hybrid` engine: Rekognition decides, and the on-device engine takes over when the cloud
//! is unreachable, slow or refusing. Frames are checked for a face on the device first, so a
//! frame without a face never costs a cloud call.
//!
//! Each enrolled face is kept in both places: indexed in the collection, and described here. Its
//! template is the cloud's FaceId and our descriptor in one [`FaceTemplate::Remote`] string
//! (`<FaceId>#<base64 descriptor>`), so the store needs nothing new.

use async_trait::async_trait;
use base64::Engine as _;

use super::local::{self, LocalEngine};
use super::rekognition::RekognitionEngine;
use super::{Comparison, DetectedFace, EngineError, FaceEngine, FaceTemplate, Gallery, SearchOutcome, StoredFace};
use crate::access::PersonId;
use crate::frame::Frame;

pub const NAME: &str = "hybrid";
const SEPARATOR: char = '#';

pub struct HybridEngine {
    cloud: RekognitionEngine,
    local: LocalEngine,
    /// `hybrid/<embedder>`: the descriptors in the templates are the on-device embedder's.
    template_kind: String,
    /// How long the cloud may take before the on-device engine decides.
    fallback_after: std::time::Duration,
    /// The last gallery searched and the on-device engine's view of it, made once per gallery:
    /// decoding every template's descriptor again at each search would cost more than the search.
    local_view: std::sync::Mutex<Option<(Gallery, Gallery)>>,
}

fn encode_template(face_id: &str, descriptor: &[f32]) -> String {
    let bytes: Vec<u8> = descriptor.iter().flat_map(|value| value.to_le_bytes()).collect();
    format!("{face_id}{SEPARATOR}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The cloud FaceId of a hybrid template (the whole id for a plain Rekognition one).
pub fn cloud_face_id(template: &str) -> &str {
    template.split_once(SEPARATOR).map_or(template, |(face_id, _)| face_id)
}

fn template_descriptor(template: &str) -> Option<Vec<f32>> {
    let (_, encoded) = template.split_once(SEPARATOR)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    (!bytes.is_empty() && bytes.len().is_multiple_of(4)).then(|| {
        bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect()
    })
}

/// The hybrid faces of `gallery` with `part` of each template, as one of the two engines reads them.
fn gallery_part(gallery: &Gallery, part: impl Fn(&str) -> Option<FaceTemplate>) -> Gallery {
    gallery
        .iter()
        .filter_map(|stored| match &stored.template {
            FaceTemplate::Remote(template) => {
                Some(StoredFace { id: stored.id, person: stored.person, template: part(template)? })
            }
            FaceTemplate::Descriptor(_) => None,
        })
        .collect()
}

/// The gallery as the on-device engine reads it: our descriptors of the hybrid faces.
fn local_gallery(gallery: &Gallery) -> Gallery {
    gallery_part(gallery, |template| template_descriptor(template).map(FaceTemplate::Descriptor))
}

/// The gallery as Rekognition reads it: the FaceIds of the hybrid faces.
fn cloud_gallery(gallery: &Gallery) -> Gallery {
    gallery_part(gallery, |template| Some(FaceTemplate::Remote(cloud_face_id(template).to_owned())))
}

fn score(outcome: &SearchOutcome) -> Option<f32> {
    match outcome {
        SearchOutcome::Candidate { similarity, .. } => Some(*similarity),
        _ => None,
    }
}

impl HybridEngine {
    pub fn new(cloud: RekognitionEngine, local: LocalEngine, fallback_after: std::time::Duration) -> Self {
        let template_kind = super::on_device_kind(NAME, local.embedder().name);
        Self { cloud, local, template_kind, fallback_after, local_view: std::sync::Mutex::default() }
    }

    /// `gallery` as the on-device engine reads it, made again only when the gallery changed.
    fn local_view(&self, gallery: &Gallery) -> Gallery {
        let mut kept = self.local_view.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match kept.as_ref() {
            Some((source, view)) if source.is_same(gallery) => view.clone(),
            _ => {
                let view = local_gallery(gallery);
                *kept = Some((gallery.clone(), view.clone()));
                view
            }
        }
    }

    /// The cloud's answer, or why the on-device engine must decide.
    async fn ask_cloud<T>(&self, call: impl Future<Output = Result<T, EngineError>>) -> Result<T, String> {
        match tokio::time::timeout(self.fallback_after, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(EngineError::Unavailable(why))) => Err(why),
            Ok(Err(other)) => Err(other.to_string()),
            Err(_) => Err(format!("Rekognition: no answer within {:?}", self.fallback_after)),
        }
    }
}

#[async_trait]
impl FaceEngine for HybridEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn template_kind(&self) -> &str {
        &self.template_kind
    }

    fn on_device(&self) -> Option<LocalEngine> {
        Some(self.local.clone())
    }

    fn with_descriptor(&self, old: &FaceTemplate, descriptor: Vec<f32>) -> FaceTemplate {
        match old {
            // The cloud's FaceId stays; only our half of the template is described again.
            FaceTemplate::Remote(template) => {
                FaceTemplate::Remote(encode_template(cloud_face_id(template), &descriptor))
            }
            FaceTemplate::Descriptor(_) => FaceTemplate::Descriptor(descriptor),
        }
    }

    async fn detect(&self, image: &Frame) -> Result<Vec<DetectedFace>, EngineError> {
        self.local.detect(image).await
    }

    async fn detect_largest(&self, image: &Frame) -> Result<Option<DetectedFace>, EngineError> {
        self.local.detect_largest(image).await
    }

    async fn detect_following(&self, image: &Frame, previous: &DetectedFace) -> Result<Vec<DetectedFace>, EngineError> {
        self.local.detect_following(image, previous).await
    }

    async fn check_enrolment(&self, image: &Frame) -> Result<(), EngineError> {
        self.local.check_enrolment(image).await
    }

    async fn enroll(&self, person: PersonId, image: &Frame) -> Result<FaceTemplate, EngineError> {
        let FaceTemplate::Descriptor(descriptor) = self.local.enroll(person, image).await? else {
            return Err(EngineError::Unavailable("the on-device engine gave no descriptor".into()));
        };
        let FaceTemplate::Remote(face_id) = self.cloud.enroll(person, image).await? else {
            return Err(EngineError::Unavailable("Rekognition gave no FaceId".into()));
        };
        Ok(FaceTemplate::Remote(encode_template(&face_id, &descriptor)))
    }

    async fn forget(&self, template: &FaceTemplate) -> Result<(), EngineError> {
        match template {
            FaceTemplate::Remote(template) => {
                self.cloud.forget(&FaceTemplate::Remote(cloud_face_id(template).to_owned())).await
            }
            FaceTemplate::Descriptor(_) => Ok(()),
        }
    }

    async fn search(&self, image: &Frame, gallery: &Gallery) -> Result<SearchOutcome, EngineError> {
        // The on-device search also tells whether there is a face at all: no face, no cloud call.
        let on_device = self.local.search(image, &self.local_view(gallery)).await?;
        if on_device == SearchOutcome::NoFace {
            return Ok(on_device);
        }
        match self.ask_cloud(self.cloud.search(image, &cloud_gallery(gallery))).await {
            Ok(in_cloud) => {
                tracing::info!(
                    decided_by = super::rekognition::NAME,
                    rekognition_similarity = ?score(&in_cloud),
                    local_similarity = ?score(&on_device),
                    "hybrid search"
                );
                Ok(in_cloud)
            }
            Err(why) => {
                tracing::warn!(
                    decided_by = local::NAME,
                    local_similarity = ?score(&on_device),
                    cloud_error = %why,
                    "hybrid search: the cloud failed, the on-device engine decided"
                );
                Ok(on_device)
            }
        }
    }

    async fn compare(&self, first: &Frame, second: &Frame) -> Result<Comparison, EngineError> {
        match self.ask_cloud(self.cloud.compare(first, second)).await {
            Ok(comparison) => Ok(comparison),
            Err(why) => {
                tracing::warn!(cloud_error = %why, "hybrid compare: the cloud failed, the on-device engine compares");
                self.local.compare(first, second).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_carry_the_face_id_and_the_descriptor() {
        let mut descriptor = vec![0.0; 192];
        descriptor[3] = 0.25;
        let template = encode_template("7f1c-face", &descriptor);
        assert_eq!(cloud_face_id(&template), "7f1c-face");
        assert_eq!(template_descriptor(&template), Some(descriptor));
        assert_eq!(cloud_face_id("plain-rekognition-id"), "plain-rekognition-id");
        assert_eq!(template_descriptor("plain-rekognition-id"), None);

        let gallery: Gallery =
            vec![StoredFace { id: 4, person: PersonId(9), template: FaceTemplate::Remote(template) }].into();
        let cloud = cloud_gallery(&gallery);
        assert_eq!(cloud[0].template, FaceTemplate::Remote("7f1c-face".into()), "Rekognition sees its FaceIds");
        assert_eq!(cloud[0].person, PersonId(9));
    }
}
