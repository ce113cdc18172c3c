//! The Rekognition-compatible API driven by the real `aws-sdk-rekognition` client over loopback,
//! with real face photos: collections, indexing, search, compare, detect, and the typed errors.

use std::net::SocketAddr;
use std::path::PathBuf;

use aws_sdk_rekognition::Client;
use aws_sdk_rekognition::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_rekognition::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::Image;
use facereko::api::{self, AccessKey, ApiConfig, ApiState};
use facereko::checks::Secret;

use crate::common;

const KEY_ID: &str = "FACEREKOTESTKEY00001";
const SECRET: &str = "test-secret-that-is-long-enough";

/// The API on a loopback port, with its collections in a temporary folder.
struct Api {
    address: SocketAddr,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn api_config() -> ApiConfig {
    ApiConfig {
        access_keys: vec![AccessKey { access_key_id: KEY_ID.into(), secret_access_key: Secret::new(SECRET) }],
        ..ApiConfig::default()
    }
}

fn api_state(dir: &std::path::Path) -> ApiState {
    let engine = facereko::engine::EngineConfig { models_dir: common::models_dir(), ..Default::default() }
        .on_device()
        .expect("the on-device engine loads");
    ApiState::open(&api_config(), engine, dir).expect("the collections database opens")
}

async fn start_api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let state = api_state(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, state, api_config().connections, async {
        let _ = stopped.await;
    }));
    Api { address, _dir: dir, _stop: stop }
}

fn client(api: &Api, key_id: &str, secret: &str) -> Client {
    let config = aws_sdk_rekognition::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", api.address))
        .credentials_provider(Credentials::new(key_id, secret, None, None, "test"))
        .build();
    Client::from_conf(config)
}

fn lfw(person: &str, number: u32) -> PathBuf {
    common::face(&format!("lfw10/{person}/{person}_{number:04}.jpg"))
}

fn image(path: &std::path::Path) -> Image {
    Image::builder().bytes(Blob::new(std::fs::read(path).unwrap())).build()
}

fn image_bytes(bytes: Vec<u8>) -> Image {
    Image::builder().bytes(Blob::new(bytes)).build()
}

/// The error code the service sent, for errors the SDK models as `Unhandled` (auth).
fn code<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(error: &SdkError<E, R>) -> String {
    error.code().unwrap_or_else(|| panic!("no error code in {error:?}")).to_owned()
}

const ENROLLED: [&str; 3] = ["Tony_Blair", "Colin_Powell", "Hugo_Chavez"];
const STRANGERS: [&str; 3] = ["Vladimir_Putin", "Jacques_Chirac", "Gerhard_Schroeder"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_manages_collections_and_finds_the_right_people() {
    let api = start_api().await;
    let rekognition = client(&api, KEY_ID, SECRET);

    let created = rekognition.create_collection().collection_id("door").send().await.expect("collection created");
    assert_eq!(created.status_code(), Some(200));
    assert!(created.collection_arn().unwrap_or_default().ends_with(":collection/door"));
    // An identical change within the same second would carry the same signature, which is refused
    // as a replay (a_captured_request_sent_again_is_refused): the second try comes a second later.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = rekognition.create_collection().collection_id("door").send().await.unwrap_err();
    assert!(again.as_service_error().is_some_and(|e| e.is_resource_already_exists_exception()), "{again:?}");

    for person in ENROLLED {
        for number in [1, 2] {
            let indexed = rekognition
                .index_faces()
                .collection_id("door")
                .external_image_id(person)
                .max_faces(1)
                .image(image(&lfw(person, number)))
                .send()
                .await
                .expect("faces indexed");
            let records = indexed.face_records();
            assert_eq!(records.len(), 1, "{person} {number}: {indexed:?}");
            let face = records[0].face().unwrap();
            assert_eq!(face.external_image_id(), Some(person));
            let bounds = face.bounding_box().unwrap();
            for ratio in [bounds.left(), bounds.top(), bounds.width(), bounds.height()] {
                assert!(ratio.is_some_and(|r| (0.0..=1.0).contains(&r)), "boxes are ratios: {bounds:?}");
            }
            assert!(face.confidence().is_some_and(|c| c > 50.0 && c <= 100.0), "a percentage: {face:?}");
        }
    }
    let listed = rekognition.list_faces().collection_id("door").max_results(4).send().await.unwrap();
    assert_eq!(listed.faces().len(), 4);
    let rest = rekognition
        .list_faces()
        .collection_id("door")
        .next_token(listed.next_token().expect("a second page"))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.faces().len(), 2);
    assert!(rest.next_token().is_none());

    for person in ENROLLED {
        let found = rekognition
            .search_faces_by_image()
            .collection_id("door")
            .image(image(&lfw(person, 3)))
            .max_faces(1)
            .face_match_threshold(85.0)
            .send()
            .await
            .expect("search answered");
        let best = found.face_matches().first().unwrap_or_else(|| panic!("{person} is not recognised: {found:?}"));
        assert_eq!(best.face().and_then(|f| f.external_image_id()), Some(person));
        assert!(best.similarity().unwrap() >= 85.0);
        assert!(found.searched_face_confidence().is_some_and(|c| c > 50.0), "{found:?}");
    }
    for stranger in STRANGERS {
        let found = rekognition
            .search_faces_by_image()
            .collection_id("door")
            .image(image(&lfw(stranger, 1)))
            .send()
            .await
            .expect("search answered");
        assert!(found.face_matches().is_empty(), "stranger {stranger} matched: {found:?}");
    }

    let same = rekognition
        .compare_faces()
        .source_image(image(&lfw("Tony_Blair", 3)))
        .target_image(image(&lfw("Tony_Blair", 6)))
        .send()
        .await
        .unwrap();
    assert_eq!(same.face_matches().len(), 1, "{same:?}");
    assert!(same.face_matches()[0].similarity().unwrap() > 80.0);
    let different = rekognition
        .compare_faces()
        .source_image(image(&lfw("Tony_Blair", 3)))
        .target_image(image(&lfw("Vladimir_Putin", 2)))
        .send()
        .await
        .unwrap();
    assert!(different.face_matches().is_empty(), "{different:?}");
    assert_eq!(different.unmatched_faces().len(), 1);

    let two_faces = common::side_by_side(&common::sample("obama.jpg"), 400, &common::sample("biden.jpg"), 300);
    let detected = rekognition.detect_faces().image(image_bytes(two_faces)).send().await.unwrap();
    assert_eq!(detected.face_details().len(), 2, "{detected:?}");

    let blair: Vec<String> = rekognition
        .list_faces()
        .collection_id("door")
        .send()
        .await
        .unwrap()
        .faces()
        .iter()
        .filter(|f| f.external_image_id() == Some("Tony_Blair"))
        .filter_map(|f| f.face_id().map(str::to_owned))
        .collect();
    let deleted =
        rekognition.delete_faces().collection_id("door").set_face_ids(Some(blair.clone())).send().await.unwrap();
    assert_eq!(deleted.deleted_faces(), blair.as_slice());
    let after = rekognition
        .search_faces_by_image()
        .collection_id("door")
        .image(image(&lfw("Tony_Blair", 3)))
        .send()
        .await
        .unwrap();
    assert!(after.face_matches().is_empty(), "deleted faces are not found: {after:?}");

    rekognition.create_collection().collection_id("lobby").send().await.unwrap();
    let collections = rekognition.list_collections().send().await.unwrap();
    assert_eq!(collections.collection_ids(), ["door", "lobby"]);
    rekognition.delete_collection().collection_id("door").send().await.unwrap();
    let collections = rekognition.list_collections().send().await.unwrap();
    assert_eq!(collections.collection_ids(), ["lobby"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_come_back_as_the_sdks_typed_errors() {
    let api = start_api().await;
    let rekognition = client(&api, KEY_ID, SECRET);
    rekognition.create_collection().collection_id("door").send().await.unwrap();

    let unknown = rekognition
        .search_faces_by_image()
        .collection_id("nowhere")
        .image(image(&lfw("Tony_Blair", 1)))
        .send()
        .await
        .unwrap_err();
    assert!(unknown.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()), "{unknown:?}");
    let unknown = rekognition.delete_collection().collection_id("nowhere").send().await.unwrap_err();
    assert!(unknown.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()), "{unknown:?}");

    let no_face = rekognition
        .search_faces_by_image()
        .collection_id("door")
        .image(image_bytes(common::grey_png()))
        .send()
        .await
        .unwrap_err();
    assert!(no_face.as_service_error().is_some_and(|e| e.is_invalid_parameter_exception()), "{no_face:?}");
    assert!(no_face.message().unwrap_or_default().contains("no faces"), "{no_face:?}");

    let mut oversized = std::fs::read(lfw("Tony_Blair", 1)).unwrap();
    oversized.resize(api::DEFAULT_MAX_IMAGE_BYTES + 1, 0);
    let too_large = rekognition.detect_faces().image(image_bytes(oversized)).send().await.unwrap_err();
    assert!(too_large.as_service_error().is_some_and(|e| e.is_image_too_large_exception()), "{too_large:?}");

    let not_a_picture = rekognition.detect_faces().image(image_bytes(b"GIF89a not ours".to_vec())).send().await;
    let not_a_picture = not_a_picture.unwrap_err();
    assert!(
        not_a_picture.as_service_error().is_some_and(|e| e.is_invalid_image_format_exception()),
        "{not_a_picture:?}"
    );

    let forged = client(&api, KEY_ID, "not-the-right-secret-at-all").list_collections().send().await.unwrap_err();
    assert_eq!(code(&forged), "InvalidSignatureException");
    let stranger = client(&api, "AKIDNOTKNOWNHERE0000", SECRET).list_collections().send().await.unwrap_err();
    assert_eq!(code(&stranger), "UnrecognizedClientException");
}

#[tokio::test]
async fn the_router_refuses_unsigned_requests_without_a_socket() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let request = axum::http::Request::post("/")
        .header("x-amz-target", "RekognitionService.ListCollections")
        .header("content-type", "application/x-amz-json-1.1")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = api::router(api_state(dir.path())).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 403);
    let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
}

/// A Python that can `import boto3`: the system's, else a venv in the user cache where boto3 is
/// installed once.
fn python_with_boto3() -> PathBuf {
    let system = PathBuf::from("python3");
    let imports_boto3 = std::process::Command::new(&system).args(["-c", "import boto3"]).output();
    if imports_boto3.is_ok_and(|output| output.status.success()) {
        return system;
    }
    crate::common::cached_venv("boto3-venv", "import boto3", "boto3").join("bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_searches_faces_against_facereko() {
    let api = start_api().await;
    let rekognition = client(&api, KEY_ID, SECRET);
    rekognition.create_collection().collection_id("door").send().await.unwrap();
    rekognition
        .index_faces()
        .collection_id("door")
        .external_image_id("Tony_Blair")
        .image(image(&lfw("Tony_Blair", 1)))
        .send()
        .await
        .unwrap();

    let url = format!("http://{}", api.address);
    let search = move |picture: PathBuf| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/search_faces.py");
            let output = std::process::Command::new(python_with_boto3())
                .arg(script)
                .args([url.as_str(), "door", picture.to_str().unwrap()])
                .env("AWS_ACCESS_KEY_ID", KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .expect("python runs");
            assert!(
                output.status.success(),
                "the boto3 script failed:\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("one JSON answer")
        })
    };
    let found = search(lfw("Tony_Blair", 3)).await.unwrap();
    assert_eq!(found["FaceMatches"][0]["Face"]["ExternalImageId"], "Tony_Blair", "{found}");
    assert!(found["FaceMatches"][0]["Similarity"].as_f64().unwrap() >= 85.0, "{found}");
    let stranger = search(lfw("Vladimir_Putin", 1)).await.unwrap();
    assert_eq!(stranger["FaceMatches"], serde_json::json!([]), "{stranger}");
}

/// The credentials are checked before the body is read: a stranger's request is refused while
/// its body has not even begun to arrive.
#[tokio::test]
async fn strangers_are_refused_before_their_body_is_read() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let endless = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let request = axum::http::Request::post("/")
        .header("x-amz-target", "RekognitionService.IndexFaces")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIDSTRANGER/20261122/us-east-1/rekognition/aws4_request, SignedHeaders=host, Signature=00")
        .body(axum::body::Body::from_stream(endless))
        .unwrap();
    let answered =
        tokio::time::timeout(std::time::Duration::from_secs(10), api::router(api_state(dir.path())).oneshot(request));
    let response = answered.await.expect("answered without waiting for the body").unwrap();
    assert_eq!(response.status(), 403);
    let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["__type"], "UnrecognizedClientException");
}

/// One request as the SDK sent it: its headers, signature included, and its body.
#[derive(Debug, Clone)]
struct SentRequest {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Keeps a copy of every request the SDK sends, as signed.
#[derive(Debug, Default, Clone)]
struct SentRequests(std::sync::Arc<std::sync::Mutex<Vec<SentRequest>>>);

impl aws_sdk_rekognition::config::Intercept for SentRequests {
    fn name(&self) -> &'static str {
        "SentRequests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_rekognition::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_rekognition::config::RuntimeComponents,
        _config: &mut aws_sdk_rekognition::config::ConfigBag,
    ) -> Result<(), aws_sdk_rekognition::error::BoxError> {
        let request = context.request();
        let headers = request.headers().iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        self.0.lock().unwrap().push(SentRequest { headers, body });
        Ok(())
    }
}

/// Issue 15, item 4: a captured request sent again is refused, while the SDK's own identical
/// calls within one second, which it signs identically, each go through.
#[tokio::test]
async fn a_captured_request_sent_again_is_refused() {
    let api = start_api().await;
    let sent = SentRequests::default();
    let config = aws_sdk_rekognition::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", api.address))
        .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "test"))
        .interceptor(sent.clone())
        .build();
    let client = Client::from_conf(config);
    for _ in 0..3 {
        client.list_collections().send().await.expect("each of the SDK's calls is accepted");
    }
    // A change is done once: sent again at once, the captured request is refused.
    client.create_collection().collection_id("once").send().await.expect("the SDK's call is accepted");
    let change = sent.0.lock().unwrap().last().cloned().unwrap();
    let answer = send_again(api.address, &change).await;
    assert!(answer.starts_with("HTTP/1.1 403") && answer.contains("done only once"), "{answer}");
    // Within a second the SDK signs identical reads identically; a replay of one comes later.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let read = sent.0.lock().unwrap()[0].clone();
    let answer = send_again(api.address, &read).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("InvalidSignatureException") && answer.contains("already received"), "{answer}");
}

/// Sends a request the SDK made again, byte for byte, as someone who captured it would; returns the answer.
async fn send_again(address: std::net::SocketAddr, sent: &SentRequest) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let SentRequest { headers, body } = sent;
    // hyper adds the Host header, which the SDK signed, after the interceptor saw the request.
    let mut request = format!("POST / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}
