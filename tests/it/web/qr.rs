//! QR passes through the door camera. The owner's "qr" action mails the visitor the code through a
//! real SMTP server; that picture, drawn on a phone held a little askew before the simulated
//! camera, blurred and JPEG-compressed as a camera would deliver it, opens the door once through
//! the scanner. The same code after the repeat window is used up, a code with one changed
//! character is forged, an expired pass is expired and a signed token without its pass is forged.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use facereko::access::{Credential, Reason};
use facereko::checks::Secret;
use facereko::driver::{Answer, Command};
use facereko::frame::Frame;
use facereko::hw::simulated::Output;
use facereko::qr_scan::{self, Pace};
use facereko::store::{NewVisit, PassKind, Visit, VisitId, VisitStatus};
use facereko::visitor::{Passes, QrToken, qr_png};
use image::GrayImage;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use super::App;
use super::visitors::{WAIT, approve_path, with_visitors};
use crate::common::smtp::{Security, SmtpServer};
use crate::common::webhook::Receiver;

const VISITOR: &str = "bob@example.net";
/// Pixels a module in the pictures `qr_png` draws.
const DRAWN_MODULE: f32 = 8.0;
/// Pixels a module in the camera frames of the door tests: a phone a little way off.
const FRAME_MODULE: f32 = 4.0;
/// The smallest module, in pixels of a 640×480 frame, that still reads after blur and JPEG (the
/// README gives this number).
const SMALLEST_MODULE: f32 = 3.0;
/// The scanner's repeat window in these tests: short, and long beside its frame interval.
const REPEAT_AFTER: Duration = Duration::from_millis(1500);

/// `code` (a drawn QR code with its white margin) on a phone's bright screen inside a dark case,
/// turned `degrees` and moved `shift` pixels right of the centre of a 640×480 frame, `module`
/// pixels a module; blurred a little and saved as a JPEG of middling quality, as a camera would.
fn camera_frame(code: &GrayImage, module: f32, degrees: f32, shift: f32) -> Vec<u8> {
    let scale = module / DRAWN_MODULE;
    let half_code = code.width() as f32 * scale / 2.0;
    let (half_screen_x, half_screen_y) = (half_code + 10.0, half_code * 1.6);
    let bezel = 8.0;
    let (sin, cos) = degrees.to_radians().sin_cos();
    let frame = GrayImage::from_fn(640, 480, |x, y| {
        // Into the phone's own frame of reference: centred on the code, upright.
        let (dx, dy) = (x as f32 - 320.0 - shift, y as f32 - 240.0);
        let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
        let value = if u.abs() < half_code && v.abs() < half_code {
            sample(code, (u + half_code) / scale, (v + half_code) / scale)
        } else if u.abs() < half_screen_x && v.abs() < half_screen_y {
            235.0
        } else if u.abs() < half_screen_x + bezel && v.abs() < half_screen_y + bezel {
            25.0
        } else {
            // A wall lit from one side.
            90.0 + x as f32 / 640.0 * 80.0
        };
        image::Luma([value as u8])
    });
    let blurred = image::imageops::blur(&frame, 0.8);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 70)
        .encode_image(&image::DynamicImage::ImageLuma8(blurred))
        .unwrap();
    jpeg
}

/// `picture` at (`x`, `y`), between its pixels by linear interpolation.
fn sample(picture: &GrayImage, x: f32, y: f32) -> f32 {
    let at = |x: f32, y: f32| {
        let x = (x.max(0.0) as u32).min(picture.width() - 1);
        let y = (y.max(0.0) as u32).min(picture.height() - 1);
        f32::from(picture.get_pixel(x, y).0[0])
    };
    let (fx, fy) = (x.fract(), y.fract());
    let top = at(x, y) * (1.0 - fx) + at(x + 1.0, y) * fx;
    let bottom = at(x, y + 1.0) * (1.0 - fx) + at(x + 1.0, y + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

fn drawn(token: &QrToken) -> GrayImage {
    image::load_from_memory(&qr_png(token).unwrap()).unwrap().to_luma8()
}

/// Puts three frames of `code`, at slightly different angles and places, before the camera.
fn show(app: &App, code: &GrayImage) {
    let folder = app.config.hardware.simulated.camera.as_ref().unwrap().join("default");
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::create_dir_all(&folder).unwrap();
    for (i, (degrees, shift)) in [(3.0, 0.0), (-4.0, 20.0), (5.0, -15.0)].into_iter().enumerate() {
        std::fs::write(folder.join(format!("{i}.jpg")), camera_frame(code, FRAME_MODULE, degrees, shift)).unwrap();
    }
}

fn passes(app: &App) -> Passes {
    app.link().passes.clone().expect("visitors are on")
}

/// The scanner on the test door, quick and with a short repeat window.
fn scanner(app: &App) -> JoinHandle<()> {
    let pace = Pace {
        frame_every: Duration::from_millis(50),
        ask_every: Duration::from_millis(50),
        repeat_after: REPEAT_AFTER,
    };
    let link = app.link();
    tokio::spawn(qr_scan::run(passes(app), link.camera.clone(), link.control.clone(), pace))
}

/// Shows `code` to a fresh scanner until the log has `rows` rows; returns the newest one's reason.
async fn scan_until(app: &App, code: &GrayImage, rows: usize) -> Reason {
    show(app, code);
    let scanning = scanner(app);
    let reason = app.wait_for_rows(rows).await[0].event.reason;
    scanning.abort();
    reason
}

async fn visit(app: &App, name: &str) -> Visit {
    let new = NewVisit {
        door: app.config.door.id.clone(),
        at: OffsetDateTime::now_utc(),
        name: name.into(),
        email: Some(format!("{}@example.net", name.to_lowercase())),
        mobile: None,
        message: None,
        photo: None,
    };
    let visit = app.store.visits().add_visit(&new).await.unwrap();
    let now = OffsetDateTime::now_utc();
    app.store.visits().move_visit(visit.id, VisitStatus::Pending, VisitStatus::Approved, "ada", now).await.unwrap();
    visit
}

/// The code in the owner's QR mail to the visitor, as the picture that came with it.
async fn mailed_code(smtp: &SmtpServer, count: usize) -> GrayImage {
    let mail = smtp.wait_for_async(count, WAIT).await.remove(count - 1);
    assert_eq!(mail["rcpt_tos"], serde_json::json!([VISITOR]));
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains("Show this QR code to the door camera") && text.contains("opens the door once"), "{text}");
    let parts = mail["parts"].as_array().unwrap();
    let picture = parts.iter().find(|part| part["content_type"].as_str().unwrap().starts_with("image/")).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(picture["data_base64"].as_str().unwrap()).unwrap();
    image::load_from_memory(&bytes).unwrap().to_luma8()
}

#[tokio::test]
async fn a_mailed_qr_pass_opens_once_and_changed_or_late_ones_do_not() {
    let smtp = SmtpServer::start(Security::Plain);
    let sms = Receiver::start(&[]);
    let app = App::start(facereko::engine::simulated::NAME, |config| with_visitors(config, &smtp, &sms)).await;
    let mut visitor = app.browser([192, 0, 2, 20]);
    visitor.get("/visit").await;
    let rang = visitor.post("/visit", &[("name", "Bob"), ("email", VISITOR), ("mobile", ""), ("message", "")]).await;
    assert_eq!(rang.status, StatusCode::OK, "{}", rang.text);

    // The owner sends a QR pass from the link in the mail.
    let path = approve_path(&smtp, 1).await;
    let mut owner = app.browser([198, 51, 100, 20]);
    let page = owner.get(&path).await;
    assert!(page.text.contains("Send a QR pass by e-mail"), "{}", page.text);
    let photos_before = walk(&app.config.photos_dir());
    let sent = owner.post(&path, &[("action", "qr")]).await;
    assert!(sent.text.contains(&format!("A QR pass went to {VISITOR}")), "{}", sent.text);
    let mailed = mailed_code(&smtp, 2).await;
    let token = qr_scan::read_codes(&Frame::from_bytes(qr_png_of(&mailed), "mailed code").unwrap());
    assert_eq!(token.len(), 1, "the mailed picture holds one code");
    assert!(token[0].starts_with(QrToken::PREFIX) && token[0].len() <= QrToken::MAX_LEN, "{token:?}");
    let door = app.config.door.id.clone();
    let stored = app.store.visits().passes(&door, PassKind::Qr, OffsetDateTime::now_utc()).await.unwrap();
    assert_eq!((stored.len(), stored[0].uses_left), (1, 1), "single use by default");
    let signature = token[0].rsplit('-').next().unwrap();
    assert!(!stored[0].secret_hash.contains(signature), "only a keyed hash of the token is stored");
    let photos_after = walk(&app.config.photos_dir());
    assert_eq!(photos_after, photos_before, "the picture's temporary file is deleted once sent");

    // Another visitor's pass keeps the scanner looking once Bob's is used up.
    let carol = visit(&app, "Carol").await;
    let carols = passes(&app).issue_qr(&carol, Duration::from_secs(3600), 1, OffsetDateTime::now_utc()).await.unwrap();

    // Held up for a while, the code opens the door once; shown again after the window, it is used.
    show(&app, &mailed);
    let scanning = scanner(&app);
    let first = app.wait_for_rows(1).await;
    let opened_at = tokio::time::Instant::now();
    assert_eq!((first[0].event.reason, first[0].event.person_name.as_deref()), (Reason::PassOk, Some("Bob")));
    let rows = app.wait_for_rows(2).await;
    scanning.abort();
    assert!(opened_at.elapsed() >= REPEAT_AFTER - Duration::from_millis(200), "not within the window");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].event.reason, Reason::PassUsed);
    let relay_on =
        || app.recorder.changes().iter().filter(|change| change.output == Output::Relay && change.on).count();
    assert_eq!(relay_on(), 1, "the door opened once");
    let bob = app.store.visits().visit(stored[0].visit).await.unwrap().unwrap();
    assert_eq!((bob.status, bob.decided_by.as_deref()), (VisitStatus::Used, Some("the owner's link")));

    // One changed character of Carol's live pass: the signature no longer holds.
    let text = carols.to_string();
    let last = text.len() - 1;
    let changed = format!("{}{}", &text[..last], if text.ends_with('0') { '1' } else { '0' });
    let changed = QrToken::parse(&changed).unwrap();
    assert_eq!(scan_until(&app, &drawn(&changed), 3).await, Reason::PassForged);

    // A pass that ran out an hour ago is recognised, and refused as expired.
    let dave = visit(&app, "Dave").await;
    let two_hours_ago = OffsetDateTime::now_utc() - Duration::from_secs(7200);
    let late = passes(&app).issue_qr(&dave, Duration::from_secs(3600), 1, two_hours_ago).await.unwrap();
    assert_eq!(scan_until(&app, &drawn(&late), 4).await, Reason::PassExpired);

    // Signed with the site's key but for no stored pass (forgotten, or the database made anew).
    let key = passes(&app).key().await.unwrap().clone();
    let until = (OffsetDateTime::now_utc() + Duration::from_secs(3600)).unix_timestamp();
    let orphan = Secret::new(QrToken::new(&key, &door, VisitId(9999), until).to_string());
    let answer = app
        .link()
        .control
        .ask(|reply| Command::PresentPass { credential: Credential::QrPass, secret: orphan, reply })
        .await
        .unwrap();
    assert!(matches!(answer, Answer::Concluded { reason: Reason::PassForged, .. }), "{answer:?}");
    assert_eq!(relay_on(), 1, "nothing else opened the door");
}

/// `picture` as a PNG, as a frame holds it.
fn qr_png_of(picture: &GrayImage) -> Vec<u8> {
    crate::common::encode(&image::DynamicImage::ImageLuma8(picture.clone()), image::ImageFormat::Png)
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|entry| if entry.path().is_dir() { walk(&entry.path()) } else { vec![entry.path()] })
        .collect()
}

#[test]
fn a_code_reads_down_to_the_smallest_module_the_readme_gives() {
    let token = QrToken::parse(&format!("FR1-123456-1800000000-{}", "ab".repeat(16))).unwrap();
    let code = drawn(&token);
    let reads = |module: f32, degrees: f32| {
        let frame = Frame::from_bytes(camera_frame(&code, module, degrees, 0.0), "composed frame").unwrap();
        qr_scan::read_codes(&frame) == [token.to_string()]
    };
    let tries = [1.5, 2.0, 2.5, 3.0, 3.5, 4.0];
    let smallest = tries.into_iter().find(|&module| [-4.0, 3.0].iter().all(|&degrees| reads(module, degrees)));
    println!("the smallest module that reads: {smallest:?} pixels");
    assert_eq!(smallest, Some(SMALLEST_MODULE), "update SMALLEST_MODULE and the README");
    assert!(reads(FRAME_MODULE, 5.0), "the door tests' frames read");
}
