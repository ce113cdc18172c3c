//! The face-comparison API on the web app's router: keys made, shown once and revoked on the
//! settings page; ID photo against selfie with real faces of the shared sets (`lfw10` and
//! `diverse`), an EXIF-rotated selfie, a small face on an ID card, the limits and errors, the
//! CompreFace shape and the OpenAPI description.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine as _;
use facereko::accounts::Role;
use facereko::engine;
use facereko::frame::Frame;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ADMIN, App, VIEWER, flash};
use crate::common;

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(common::face(relative)).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct Reply {
    status: StatusCode,
    json: Value,
}

/// Sends `body` to `path` with `headers`, as a program would (no cookies).
async fn call(app: &App, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let mut request = Request::builder().method(Method::POST).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::from(body)).unwrap();
    request.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from(([10, 0, 0, 7], 50000))));
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    Reply { status, json }
}

async fn compare_json(app: &App, key: &str, id_image: &[u8], selfie: &[u8]) -> Reply {
    let body = json!({ "id_image": b64(id_image), "selfie": b64(selfie) }).to_string().into_bytes();
    let bearer = format!("Bearer {key}");
    call(app, "/api/v1/compare", &[("authorization", &bearer), ("content-type", "application/json")], body).await
}

fn multipart(fields: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "facereko-api-boundary";
    let mut body = Vec::new();
    for (name, bytes) in fields {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.jpg\"\r\n\
                 Content-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Makes a key named `name` on the settings page as `ADMIN`; returns the key the page showed.
async fn make_key(app: &App, name: &str) -> String {
    let mut admin = app.signed_in(ADMIN).await;
    admin.get("/settings").await;
    let made = admin.post("/settings/api-keys", &[("name", name)]).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.text);
    assert_eq!(made.location(), "/settings#api-keys");
    let page = admin.get("/settings").await;
    let shown = flash(&page.text);
    let start = shown.find("frk_").unwrap_or_else(|| panic!("the key is shown once: {shown}"));
    let key = format!("frk_{}", &shown[start + 4..].chars().take_while(char::is_ascii_hexdigit).collect::<String>());
    assert_eq!(key.len(), 4 + 48, "{shown}");
    let again = admin.get("/settings").await;
    assert!(!again.text.contains(&key), "shown once only");
    assert!(again.text.contains(name) && again.text.contains("never used"), "listed by name");
    key
}

async fn local_app() -> App {
    let app = App::start(engine::local::NAME, |_| {}).await;
    app.add_user(ADMIN, Role::Admin).await;
    app
}

#[tokio::test]
async fn keys_are_made_shown_once_stored_hashed_and_revoked_on_the_settings_page() {
    let app = local_app().await;
    app.add_user(VIEWER, Role::Viewer).await;
    let key = make_key(&app, "Front desk kiosk").await;
    let stored = app.store.api_keys().list_api_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].key_hash, key, "only a hash is kept");
    assert!(!stored[0].key_hash.contains(&key[4..]));

    // A viewer sees the keys but can neither make nor revoke one; a form without the token fails.
    let mut viewer = app.signed_in(VIEWER).await;
    let page = viewer.get("/settings").await;
    assert!(page.text.contains("Front desk kiosk") && !page.text.contains("Make an API key"));
    assert_eq!(viewer.post("/settings/api-keys", &[("name", "mine")]).await.status, StatusCode::FORBIDDEN);
    let revoke = format!("/settings/api-keys/{}/revoke", stored[0].id);
    assert_eq!(viewer.post(&revoke, &[]).await.status, StatusCode::FORBIDDEN);
    let mut admin = app.signed_in(ADMIN).await;
    admin.get("/settings").await;
    assert_eq!(admin.post(&revoke, &[("csrf", "forged")]).await.status, StatusCode::FORBIDDEN);
    let unnamed = admin.post("/settings/api-keys", &[("name", "  ")]).await;
    assert_eq!(unnamed.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The key works (a picture without a face gets as far as the engine), then is revoked.
    let grey = common::grey_png();
    let used = compare_json(&app, &key, &grey, &grey).await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST, "{}", used.json);
    assert!(app.store.api_keys().list_api_keys().await.unwrap()[0].last_used.is_some(), "last use noted");
    assert!(admin.get("/settings").await.text.contains("last used"));
    let revoked = admin.post(&revoke, &[]).await;
    assert_eq!(revoked.location(), "/settings#api-keys");
    let after = compare_json(&app, &key, &grey, &grey).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "revoked: {}", after.json);
    assert_eq!(after.json["reason"], "invalid_api_key");
}

#[tokio::test]
async fn wrong_or_missing_keys_are_refused_before_the_body_is_read() {
    let app = local_app().await;
    make_key(&app, "kiosk").await;
    let body = || json!({ "id_image": "x", "selfie": "y" }).to_string().into_bytes();
    let missing = call(&app, "/api/v1/compare", &[("content-type", "application/json")], body()).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json["reason"], "missing_api_key");
    let wrong = call(&app, "/api/v1/compare", &[("authorization", "Bearer frk_0123")], body()).await;
    assert_eq!((wrong.status, wrong.json["reason"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_api_key")));
    let compreface = call(&app, "/api/v1/verification/verify", &[("x-api-key", "nope")], body()).await;
    assert_eq!(compreface.status, StatusCode::UNAUTHORIZED);
    assert_eq!(compreface.json["code"], 401, "CompreFace's error shape: {}", compreface.json);
    // An oversized body from a stranger is refused for the key, not read.
    let huge = vec![b'a'; 13 * 1024 * 1024];
    let stranger = call(&app, "/api/v1/compare", &[("authorization", "Bearer frk_0123")], huge).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn limits_and_bad_pictures_are_answered_with_their_reason() {
    let app = local_app().await;
    let key = make_key(&app, "kiosk").await;
    let bearer = format!("Bearer {key}");
    let huge = vec![b'a'; 13 * 1024 * 1024];
    let oversized = call(&app, "/api/v1/compare", &[("authorization", &bearer)], huge).await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", oversized.json);
    assert_eq!(oversized.json["reason"], "body_too_large");

    let face = read("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    let no_face = compare_json(&app, &key, &face, &common::grey_png()).await;
    assert_eq!(no_face.status, StatusCode::BAD_REQUEST);
    assert_eq!((no_face.json["reason"].as_str(), no_face.json["image"].as_str()), (Some("no_face"), Some("selfie")));
    assert_eq!(no_face.json["error"], "no face found in selfie");

    let body = json!({ "id_image": "***", "selfie": b64(&face) }).to_string().into_bytes();
    let bad = call(&app, "/api/v1/compare", &[("authorization", &bearer)], body).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json["error"].as_str().unwrap().starts_with("id_image is not valid base64"), "{}", bad.json);
    let not_a_picture = compare_json(&app, &key, b"GIF89a not a picture", &face).await;
    assert_eq!(not_a_picture.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_a_picture.json["error"], "id_image is not a JPEG or PNG image");
    let body = json!({ "id_image": b64(&face) }).to_string().into_bytes();
    let half = call(&app, "/api/v1/compare", &[("authorization", &bearer)], body).await;
    assert_eq!((half.status, half.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("selfie is missing")));
}

#[tokio::test]
async fn an_engine_without_on_device_models_answers_503() {
    let app = App::simulated().await;
    app.add_user(ADMIN, Role::Admin).await;
    let key = make_key(&app, "kiosk").await;
    let grey = common::grey_png();
    let reply = compare_json(&app, &key, &grey, &grey).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json["reason"], "engine_unavailable");
    assert!(reply.json["error"].as_str().unwrap().contains("no on-device models"), "{}", reply.json);
}

/// Same person (lfw10 and every group of diverse) matches, different people of the same group do
/// not; multipart and JSON agree.
#[tokio::test]
async fn the_same_person_matches_and_different_people_do_not() {
    let app = local_app().await;
    let key = make_key(&app, "kiosk").await;
    let pairs = [
        ("lfw10/George_W_Bush/George_W_Bush_0001.jpg", "lfw10/George_W_Bush/George_W_Bush_0002.jpg", true),
        ("diverse/jackie_chan/1.jpg", "diverse/jackie_chan/2.jpg", true),
        ("diverse/halle_berry/1.jpg", "diverse/halle_berry/2.jpg", true),
        ("diverse/benazir_bhutto/1.jpg", "diverse/benazir_bhutto/2.jpg", true),
        ("lfw10/George_W_Bush/George_W_Bush_0001.jpg", "lfw10/Tony_Blair/Tony_Blair_0001.jpg", false),
        ("diverse/jackie_chan/1.jpg", "diverse/hu_jintao/1.jpg", false),
        ("diverse/halle_berry/1.jpg", "diverse/angela_bassett/1.jpg", false),
        ("diverse/salman_rushdie/1.jpg", "diverse/pervez_musharraf/1.jpg", false),
    ];
    for (id_image, selfie, same) in pairs {
        let reply = compare_json(&app, &key, &read(id_image), &read(selfie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        let json = &reply.json;
        eprintln!("{id_image} / {selfie}: {}", json["similarity"]);
        assert_eq!(json["match"], same, "{id_image} against {selfie}: {json}");
        assert_eq!(json["threshold"], 90.0, "the engine's own threshold");
        for face in ["id_face", "selfie_face"] {
            assert!(json[face]["box"]["width"].as_u64().unwrap() > 40, "{json}");
            assert!(json[face]["confidence"].as_f64().unwrap() > 50.0, "{json}");
        }
        assert!(json["warnings"].is_array());
    }
    let (content_type, body) =
        multipart(&[("id_image", &read("diverse/jackie_chan/1.jpg")), ("selfie", &read("diverse/jackie_chan/2.jpg"))]);
    let bearer = format!("Bearer {key}");
    let reply =
        call(&app, "/api/v1/compare", &[("authorization", &bearer), ("content-type", &content_type)], body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["match"], true);
}

/// A JPEG APP1 segment holding only an EXIF orientation.
fn exif_orientation(orientation: u8) -> Vec<u8> {
    let mut segment = vec![0xFF, 0xE1, 0x00, 34];
    segment.extend(b"Exif\0\0");
    segment.extend([b'M', b'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08]);
    segment.extend([0x00, 0x01, 0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, orientation, 0x00, 0x00]);
    segment.extend([0x00, 0x00, 0x00, 0x00]);
    segment
}

#[tokio::test]
async fn a_selfie_turned_by_its_exif_orientation_is_compared_upright() {
    let app = local_app().await;
    let key = make_key(&app, "kiosk").await;
    let (id_image, selfie) = (read("diverse/halle_berry/1.jpg"), read("diverse/halle_berry/2.jpg"));
    let upright = compare_json(&app, &key, &id_image, &selfie).await.json;
    // Stored lying on its side, as a phone held sideways saves it; orientation 6 says "turn 90°
    // clockwise to show".
    let sideways = image::load_from_memory(&selfie).unwrap().rotate270();
    let plain = common::encode(&sideways, image::ImageFormat::Jpeg);
    let mut tagged = plain[..2].to_vec();
    tagged.extend(exif_orientation(6));
    tagged.extend(&plain[2..]);
    let turned = compare_json(&app, &key, &id_image, &tagged).await;
    assert_eq!(turned.status, StatusCode::OK, "{}", turned.json);
    let (a, b) = (upright["similarity"].as_f64().unwrap(), turned.json["similarity"].as_f64().unwrap());
    assert_eq!(turned.json["match"], true, "{}", turned.json);
    assert!((a - b).abs() < 2.0, "upright {a}, from the EXIF-turned picture {b}");
    let box_of = |json: &Value| json["selfie_face"]["box"].clone();
    assert_eq!(box_of(&turned.json)["y"], box_of(&upright)["y"], "the box is in the upright picture");
    let untagged = compare_json(&app, &key, &id_image, &plain).await;
    let untagged_similarity = untagged.json["similarity"].as_f64().unwrap_or(0.0);
    assert!(
        untagged.status != StatusCode::OK || untagged_similarity < b,
        "the tag is what turned it: {}",
        untagged.json
    );
}

/// An "ID card": a light card with a small portrait in one corner, as a photographed card looks.
fn id_card(portrait: &[u8], side: u32) -> Vec<u8> {
    let mut card = image::RgbImage::from_pixel(2000, 1260, image::Rgb([214, 222, 230]));
    for y in 120..130 {
        for x in 0..2000 {
            card.put_pixel(x, y, image::Rgb([30, 60, 140]));
        }
    }
    let portrait = image::load_from_memory(portrait).unwrap().to_rgb8();
    let portrait = image::imageops::resize(&portrait, side, side, image::imageops::FilterType::Triangle);
    image::imageops::overlay(&mut card, &portrait, 120, 300);
    common::encode(&image::DynamicImage::ImageRgb8(card), image::ImageFormat::Jpeg)
}

#[tokio::test]
async fn a_small_face_on_an_id_card_is_found_by_looking_closer() {
    let app = local_app().await;
    let key = make_key(&app, "kiosk").await;
    let card = id_card(&read("lfw10/George_W_Bush/George_W_Bush_0001.jpg"), 150);
    let frame = Frame::from_bytes(card.clone(), "card").unwrap();
    assert!(app.engine.detect(&frame).await.unwrap().is_empty(), "too small for the whole picture's look");
    let reply = compare_json(&app, &key, &card, &read("lfw10/George_W_Bush/George_W_Bush_0002.jpg")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let json = &reply.json;
    eprintln!("ID card: {json}");
    assert_eq!(json["match"], true, "{json}");
    let x = json["id_face"]["box"]["x"].as_u64().unwrap();
    assert!((120..270).contains(&x), "the box is in the card's pixels: {json}");
    let warnings: Vec<&str> = json["warnings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(warnings.iter().any(|w| w.starts_with("small face on the ID")), "{warnings:?}");
}

#[tokio::test]
async fn several_faces_and_blur_are_warned_of() {
    let app = local_app().await;
    let key = make_key(&app, "kiosk").await;
    let two = common::side_by_side(
        &common::face("diverse/jackie_chan/2.jpg"),
        300,
        &common::face("diverse/hu_jintao/1.jpg"),
        200,
    );
    let id_image = read("diverse/jackie_chan/1.jpg");
    let reply = compare_json(&app, &key, &id_image, &two).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let warnings = reply.json["warnings"].to_string();
    assert!(warnings.contains("several faces on the selfie: 2; the largest was compared"), "{warnings}");
    assert_eq!(reply.json["selfie_face"]["faces"], 2);

    let sharp = image::load_from_memory(&read("diverse/jackie_chan/2.jpg")).unwrap();
    let blurred = common::encode(&sharp.blur(4.0), image::ImageFormat::Jpeg);
    let reply = compare_json(&app, &key, &id_image, &blurred).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert!(reply.json["warnings"].to_string().contains("blurry face on the selfie"), "{}", reply.json);
    let clean = compare_json(&app, &key, &id_image, &read("diverse/jackie_chan/2.jpg")).await;
    assert_eq!(clean.json["warnings"], json!([]), "{}", clean.json);
}

#[tokio::test]
async fn compreface_clients_get_compreface_answers() {
    let app = local_app().await;
    let key = make_key(&app, "double-take").await;
    let group = common::side_by_side(
        &common::face("diverse/halle_berry/2.jpg"),
        300,
        &common::face("diverse/angela_bassett/1.jpg"),
        260,
    );
    let (content_type, body) =
        multipart(&[("source_image", &read("diverse/halle_berry/1.jpg")), ("target_image", &group)]);
    let reply =
        call(&app, "/api/v1/verification/verify", &[("x-api-key", &key), ("content-type", &content_type)], body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let result = &reply.json["result"];
    assert_eq!(result.as_array().unwrap().len(), 1, "{}", reply.json);
    let source_box = &result[0]["source_image_face"]["box"];
    for field in ["probability", "x_max", "y_max", "x_min", "y_min"] {
        assert!(source_box[field].is_number(), "{field}: {source_box}");
    }
    assert!(source_box["x_max"].as_u64() > source_box["x_min"].as_u64());
    let matches = result[0]["face_matches"].as_array().unwrap();
    assert_eq!(matches.len(), 2, "every face of the target: {}", reply.json);
    let similarities: Vec<f64> = matches.iter().map(|m| m["similarity"].as_f64().unwrap()).collect();
    assert!(similarities.iter().all(|s| (0.0..=1.0).contains(s)), "{similarities:?}");
    assert!(similarities[0] >= 0.9 && similarities[1] < 0.9, "most similar first, the right one: {similarities:?}");
    assert!(matches[0]["box"]["x_min"].as_u64().unwrap() < 300, "Halle Berry is on the left: {}", reply.json);

    // JSON with base64, and `limit`; no face is CompreFace's code 28.
    let body = json!({ "source_image": b64(&read("diverse/halle_berry/1.jpg")), "target_image": b64(&group) });
    let limited = call(
        &app,
        "/api/v1/verification/verify?limit=1",
        &[("x-api-key", &key), ("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(limited.json["result"][0]["face_matches"].as_array().unwrap().len(), 1, "{}", limited.json);
    let body = json!({ "source_image": b64(&common::grey_png()), "target_image": b64(&group) });
    let no_face =
        call(&app, "/api/v1/verification/verify", &[("x-api-key", &key)], body.to_string().into_bytes()).await;
    assert_eq!(no_face.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_face.json, json!({ "message": "No face is found in the given image", "code": 28 }));
}

#[tokio::test]
async fn the_openapi_description_names_both_paths() {
    let app = App::simulated().await;
    let request = Request::builder().uri("/api/v1/openapi.json").body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let document: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/api/v1/compare", "/api/v1/verification/verify"] {
        assert!(document["paths"][path]["post"]["responses"]["200"].is_object(), "{path}");
    }
    let schemes = document["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("apiKey"));
}
