//! The Rekognition operations, with Rekognition's request and response shapes, answered by the
//! on-device engine.

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiState;
use super::collections::{IndexedFace, RatioBox, SearchableFace};
use super::error::ApiError;
use crate::engine::local::{FacesInPicture, embedder};
use crate::engine::{DetectedFace, EngineError};
use crate::frame::Frame;

/// Reported as `FaceModelVersion`: names our engine, so nobody mistakes it for Amazon's.
pub const FACE_MODEL_VERSION: &str = "facereko-dlib-resnet-1";
/// Rekognition's defaults for `FaceMatchThreshold` and `SimilarityThreshold`.
const DEFAULT_THRESHOLD: f32 = 80.0;
/// The most results one page or one search gives, as Rekognition allows.
const MAX_RESULTS: usize = 4096;
/// Rekognition's default page size for ListFaces and ListCollections.
const DEFAULT_PAGE: usize = 1000;
/// Rekognition compares or indexes at most the 100 largest faces of a picture.
const MAX_FACES_PER_PICTURE: usize = 100;

/// Our similarity (0–100, calibrated per embedder so that 90 is where no stranger of the shared
/// test sets was accepted) on Rekognition's scale, where its default threshold 80 is meant to keep
/// strangers out. A logistic curve puts Rekognition's 80 on our 90, 95 on about 91.8 and 99 on
/// about 93.2; strangers (most below 80 on our scale) come out near 0.
pub fn rekognition_similarity(similarity: f32) -> f32 {
    const SPREAD: f32 = 1.0;
    // ln 4 spreads below 90: the curve is at 80 % there.
    const CENTRE: f32 = embedder::CALIBRATED_THRESHOLD - 1.386_294_4 * SPREAD;
    100.0 / (1.0 + (-(similarity - CENTRE) / SPREAD).exp())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    bytes: Option<String>,
    #[serde(rename = "S3Object")]
    s3_object: Option<Value>,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BoundingBox {
    width: f32,
    height: f32,
    left: f32,
    top: f32,
}

impl From<RatioBox> for BoundingBox {
    fn from(b: RatioBox) -> Self {
        Self { width: b.width, height: b.height, left: b.left, top: b.top }
    }
}

fn ratio_box(face: &DetectedFace, width: u32, height: u32) -> RatioBox {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    RatioBox {
        left: face.x as f32 / w,
        top: face.y as f32 / h,
        width: face.width as f32 / w,
        height: face.height as f32 / h,
    }
}

/// `Face` as Rekognition gives it for a stored face.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct FaceJson {
    face_id: String,
    bounding_box: BoundingBox,
    image_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_image_id: Option<String>,
    confidence: f32,
}

impl From<&IndexedFace> for FaceJson {
    fn from(face: &IndexedFace) -> Self {
        Self {
            face_id: face.face_id.clone(),
            bounding_box: face.bounding_box.into(),
            image_id: face.image_id.clone(),
            external_image_id: face.external_image_id.clone(),
            confidence: face.confidence,
        }
    }
}

/// `FaceDetail` / `ComparedFace`: where a face is and how sure the detector is.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct FaceBox {
    bounding_box: BoundingBox,
    confidence: f32,
}

fn face_box(face: &DetectedFace, width: u32, height: u32) -> FaceBox {
    FaceBox { bounding_box: ratio_box(face, width, height).into(), confidence: face.confidence }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidParameter(format!("Request body is not valid: {e}")))
}

fn check_id(what: &str, id: &str, extra: &[char]) -> Result<(), ApiError> {
    let ok = (1..=255).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidParameter(format!(
            "{what} {id:?} must be 1-255 letters, digits, '_', '.' or '-'{}",
            if extra.is_empty() { "" } else { " or ':'" }
        )))
    }
}

fn check_range(what: &str, value: Option<i64>, min: i64, max: i64, default: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(usize::try_from(v).unwrap_or(default)),
        Some(v) => Err(ApiError::InvalidParameter(format!("{what} {v} is out of range; use {min} to {max}"))),
    }
}

fn check_threshold(what: &str, value: Option<f32>) -> Result<f32, ApiError> {
    match value {
        None => Ok(DEFAULT_THRESHOLD),
        Some(v) if (0.0..=100.0).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::InvalidParameter(format!("{what} {v} is out of range; use 0 to 100"))),
    }
}

impl ApiState {
    /// The picture of an `Image` parameter, with Rekognition's limits.
    fn frame(&self, image: &Image, what: &str) -> Result<Frame, ApiError> {
        if image.s3_object.is_some() {
            return Err(ApiError::InvalidS3Object("FaceReko's API has no S3; send the picture in Image.Bytes".into()));
        }
        let encoded =
            image.bytes.as_deref().ok_or_else(|| ApiError::InvalidParameter(format!("{what} needs Bytes")))?;
        // Base64 is 4/3 of the bytes: refuse before decoding what cannot fit.
        if encoded.len() / 4 * 3 > self.max_image_bytes + 3 {
            return Err(self.too_large());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| ApiError::InvalidParameter(format!("{what}.Bytes is not valid base64: {e}")))?;
        if bytes.len() > self.max_image_bytes {
            return Err(self.too_large());
        }
        Frame::from_bytes(bytes, what)
            .map_err(|_| ApiError::InvalidImageFormat("Request has invalid image format".into()))
    }

    pub(super) fn too_large(&self) -> ApiError {
        ApiError::ImageTooLarge(format!(
            "Request has an image that is too large; the limit is {} bytes",
            self.max_image_bytes
        ))
    }

    async fn analyse(&self, frame: Frame, what: &str, describe: usize) -> Result<FacesInPicture, ApiError> {
        let (engine, what) = (self.engine.clone(), what.to_owned());
        let analysed = tokio::task::spawn_blocking(move || engine.analyse_faces_blocking(&frame, &what, describe))
            .await
            .map_err(|e| ApiError::Internal(format!("face analysis failed: {e}")))?;
        analysed.map_err(|e| match e {
            EngineError::BadImage { .. } => ApiError::InvalidImageFormat("Request has invalid image format".into()),
            other => ApiError::Internal(other.to_string()),
        })
    }

    async fn require_collection(&self, id: &str) -> Result<(), ApiError> {
        if self.collections.exists(id).await? { Ok(()) } else { Err(ApiError::collection_not_found(id)) }
    }

    fn collection_arn(&self, id: &str) -> String {
        format!("aws:rekognition:{}:000000000000:collection/{id}", self.region)
    }

    /// Whether the operation named `name` only reads: doing it twice changes nothing.
    pub fn only_reads(name: &str) -> bool {
        ["ListCollections", "ListFaces", "SearchFacesByImage", "CompareFaces", "DetectFaces"].contains(&name)
    }

    /// Answers one operation named by `X-Amz-Target`.
    pub async fn operation(&self, name: &str, body: &[u8]) -> Result<Value, ApiError> {
        match name {
            "CreateCollection" => self.create_collection(parse(body)?).await,
            "DeleteCollection" => self.delete_collection(parse(body)?).await,
            "ListCollections" => self.list_collections(parse(body)?).await,
            "IndexFaces" => self.index_faces(parse(body)?).await,
            "ListFaces" => self.list_faces(parse(body)?).await,
            "DeleteFaces" => self.delete_faces(parse(body)?).await,
            "SearchFacesByImage" => self.search_faces_by_image(parse(body)?).await,
            "CompareFaces" => self.compare_faces(parse(body)?).await,
            "DetectFaces" => self.detect_faces(parse(body)?).await,
            other => Err(ApiError::UnknownOperation(format!(
                "RekognitionService.{other} is not one of the operations FaceReko serves"
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CollectionRequest {
    collection_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PageRequest {
    collection_id: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexFacesRequest {
    collection_id: String,
    image: Image,
    external_image_id: Option<String>,
    max_faces: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteFacesRequest {
    collection_id: String,
    face_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SearchRequest {
    collection_id: String,
    image: Image,
    max_faces: Option<i64>,
    face_match_threshold: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompareRequest {
    source_image: Image,
    target_image: Image,
    similarity_threshold: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DetectRequest {
    image: Image,
}

impl ApiState {
    async fn create_collection(&self, request: CollectionRequest) -> Result<Value, ApiError> {
        let id = request.collection_id;
        check_id("CollectionId", &id, &[])?;
        if !self.collections.create(&id).await? {
            return Err(ApiError::ResourceAlreadyExists(format!("The collection id: {id} already exists")));
        }
        tracing::info!(collection = %id, "collection created");
        Ok(json!({
            "StatusCode": 200,
            "CollectionArn": self.collection_arn(&id),
            "FaceModelVersion": FACE_MODEL_VERSION,
        }))
    }

    async fn delete_collection(&self, request: CollectionRequest) -> Result<Value, ApiError> {
        if !self.collections.delete(&request.collection_id).await? {
            return Err(ApiError::collection_not_found(&request.collection_id));
        }
        tracing::info!(collection = %request.collection_id, "collection deleted");
        Ok(json!({ "StatusCode": 200 }))
    }

    async fn list_collections(&self, request: PageRequest) -> Result<Value, ApiError> {
        let limit = check_range("MaxResults", request.max_results, 0, MAX_RESULTS as i64, DEFAULT_PAGE)?;
        let mut ids = self.collections.list(request.next_token, limit + 1).await?;
        let next = (ids.len() > limit).then(|| {
            ids.truncate(limit);
            ids.last().cloned()
        });
        let versions = vec![FACE_MODEL_VERSION; ids.len()];
        let mut answer = json!({ "CollectionIds": ids, "FaceModelVersions": versions });
        if let Some(Some(token)) = next {
            answer["NextToken"] = json!(token);
        }
        Ok(answer)
    }

    async fn index_faces(&self, request: IndexFacesRequest) -> Result<Value, ApiError> {
        check_id("CollectionId", &request.collection_id, &[])?;
        if let Some(external) = &request.external_image_id {
            check_id("ExternalImageId", external, &[':'])?;
        }
        let max_faces =
            check_range("MaxFaces", request.max_faces, 1, MAX_FACES_PER_PICTURE as i64, MAX_FACES_PER_PICTURE)?;
        let frame = self.frame(&request.image, "Image")?;
        self.require_collection(&request.collection_id).await?;
        let picture = self.analyse(frame, "Image", max_faces).await?;

        let image_id = uuid::Uuid::new_v4().to_string();
        let faces: Vec<SearchableFace> = picture
            .described
            .iter()
            .map(|described| SearchableFace {
                face: IndexedFace {
                    face_id: uuid::Uuid::new_v4().to_string(),
                    image_id: image_id.clone(),
                    external_image_id: request.external_image_id.clone(),
                    confidence: described.face.confidence,
                    bounding_box: ratio_box(&described.face, picture.width, picture.height),
                },
                embedder: self.engine.embedder().name,
                descriptor: described.descriptor.clone(),
            })
            .collect();
        self.collections.add_faces(&request.collection_id, faces.clone()).await?;
        tracing::info!(collection = %request.collection_id, faces = faces.len(), "faces indexed");

        let records: Vec<Value> = faces
            .iter()
            .zip(&picture.described)
            .map(|(stored, described)| {
                json!({
                    "Face": FaceJson::from(&stored.face),
                    "FaceDetail": face_box(&described.face, picture.width, picture.height),
                })
            })
            .collect();
        let unindexed: Vec<Value> = picture
            .others
            .iter()
            .map(|face| json!({ "Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": face_box(face, picture.width, picture.height) }))
            .collect();
        Ok(json!({ "FaceRecords": records, "UnindexedFaces": unindexed, "FaceModelVersion": FACE_MODEL_VERSION }))
    }

    async fn list_faces(&self, request: PageRequest) -> Result<Value, ApiError> {
        let collection =
            request.collection_id.ok_or_else(|| ApiError::InvalidParameter("ListFaces needs CollectionId".into()))?;
        let limit = check_range("MaxResults", request.max_results, 0, MAX_RESULTS as i64, DEFAULT_PAGE)?;
        self.require_collection(&collection).await?;
        let mut faces = self.collections.faces(&collection, request.next_token, limit + 1).await?;
        let more = faces.len() > limit;
        faces.truncate(limit);
        let listed: Vec<FaceJson> = faces.iter().map(FaceJson::from).collect();
        let mut answer = json!({ "Faces": listed, "FaceModelVersion": FACE_MODEL_VERSION });
        if more && let Some(last) = faces.last() {
            answer["NextToken"] = json!(last.face_id);
        }
        Ok(answer)
    }

    async fn delete_faces(&self, request: DeleteFacesRequest) -> Result<Value, ApiError> {
        if request.face_ids.is_empty() || request.face_ids.len() > MAX_RESULTS {
            return Err(ApiError::InvalidParameter(format!("FaceIds must list 1 to {MAX_RESULTS} face ids")));
        }
        self.require_collection(&request.collection_id).await?;
        let deleted = self.collections.delete_faces(&request.collection_id, request.face_ids).await?;
        tracing::info!(collection = %request.collection_id, faces = deleted.len(), "faces deleted");
        Ok(json!({ "DeletedFaces": deleted }))
    }

    async fn search_faces_by_image(&self, request: SearchRequest) -> Result<Value, ApiError> {
        let max_faces = check_range("MaxFaces", request.max_faces, 1, MAX_RESULTS as i64, MAX_RESULTS)?;
        let threshold = check_threshold("FaceMatchThreshold", request.face_match_threshold)?;
        let frame = self.frame(&request.image, "Image")?;
        self.require_collection(&request.collection_id).await?;
        let picture = self.analyse(frame, "Image", 1).await?;
        let searched = picture.described.first().ok_or_else(ApiError::no_face)?;

        let mut matches: Vec<(f32, IndexedFace)> = self
            .collections
            .searchable(&request.collection_id, self.engine.embedder().name)
            .await?
            .into_iter()
            .map(|stored| {
                (rekognition_similarity(self.engine.similarity(&searched.descriptor, &stored.descriptor)), stored.face)
            })
            .filter(|(score, _)| *score >= threshold)
            .collect();
        matches.sort_by(|a, b| b.0.total_cmp(&a.0));
        matches.truncate(max_faces);
        let matches: Vec<Value> =
            matches.iter().map(|(score, face)| json!({ "Similarity": score, "Face": FaceJson::from(face) })).collect();
        Ok(json!({
            "SearchedFaceBoundingBox": BoundingBox::from(ratio_box(&searched.face, picture.width, picture.height)),
            "SearchedFaceConfidence": searched.face.confidence,
            "FaceMatches": matches,
            "FaceModelVersion": FACE_MODEL_VERSION,
        }))
    }

    async fn compare_faces(&self, request: CompareRequest) -> Result<Value, ApiError> {
        let threshold = check_threshold("SimilarityThreshold", request.similarity_threshold)?;
        let source = self.frame(&request.source_image, "SourceImage")?;
        let target = self.frame(&request.target_image, "TargetImage")?;
        let source = self.analyse(source, "SourceImage", 1).await?;
        let source_face = source.described.first().ok_or_else(ApiError::no_face)?;
        let target = self.analyse(target, "TargetImage", MAX_FACES_PER_PICTURE).await?;
        if target.described.is_empty() {
            return Err(ApiError::no_face());
        }
        let (mut matched, mut unmatched) = (Vec::new(), Vec::new());
        for face in &target.described {
            let score = rekognition_similarity(self.engine.similarity(&source_face.descriptor, &face.descriptor));
            let compared = face_box(&face.face, target.width, target.height);
            if score >= threshold {
                matched.push((score, compared));
            } else {
                unmatched.push(compared);
            }
        }
        matched.sort_by(|a, b| b.0.total_cmp(&a.0));
        let matched: Vec<Value> =
            matched.iter().map(|(score, face)| json!({ "Similarity": score, "Face": face })).collect();
        Ok(json!({
            "SourceImageFace": face_box(&source_face.face, source.width, source.height),
            "FaceMatches": matched,
            "UnmatchedFaces": unmatched,
        }))
    }

    async fn detect_faces(&self, request: DetectRequest) -> Result<Value, ApiError> {
        let frame = self.frame(&request.image, "Image")?;
        let picture = self.analyse(frame, "Image", 0).await?;
        let details: Vec<FaceBox> =
            picture.others.iter().map(|face| face_box(face, picture.width, picture.height)).collect();
        Ok(json!({ "FaceDetails": details }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_scale_keeps_strangers_below_rekognition_defaults() {
        assert!(rekognition_similarity(80.0) < 1.0, "a typical stranger");
        assert!(rekognition_similarity(90.01) > 80.0 && rekognition_similarity(89.99) < 80.0, "default threshold");
        assert!(rekognition_similarity(95.0) > 99.0, "a typical genuine pair");
        let values: Vec<f32> = (0..=100).map(|c| rekognition_similarity(c as f32)).collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "monotonic");
        assert!(values.iter().all(|v| (0.0..=100.0).contains(v)));
    }

    #[test]
    fn boxes_are_fractions_of_the_picture() {
        let face = DetectedFace { x: 100, y: 50, width: 200, height: 100, confidence: 99.0, landmarks: None };
        assert_eq!(ratio_box(&face, 400, 200), RatioBox { left: 0.25, top: 0.25, width: 0.5, height: 0.5 });
    }
}
