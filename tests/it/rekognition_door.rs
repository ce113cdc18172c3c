//! The door end to end with `engine.kind = "rekognition"`, pointed at FaceReko's own
//! Rekognition-compatible API run as `facereko serve-api` on loopback.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_rekognition::Client;
use aws_sdk_rekognition::config::{BehaviorVersion, Credentials, Region};

use crate::common::{self, TestDoor, free_port};

const KEY_ID: &str = "FACEREKODOORKEY00001";
const SECRET: &str = "door-test-secret-long-enough";

/// The SDK client with the test key, for the API at `url`.
fn client(url: &str) -> Client {
    let config = aws_sdk_rekognition::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "test"))
        .build();
    Client::from_conf(config)
}

/// `facereko serve-api` as a child process with its own data folder.
struct ServedApi {
    dir: tempfile::TempDir,
    port: u16,
    url: String,
    child: Option<Child>,
}

impl ServedApi {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "data_dir = {:?}\n[engine]\nmodels_dir = {:?}\n[api]\nlisten = \"127.0.0.1:{port}\"\n\
             [[api.access_keys]]\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\n",
            dir.path().display().to_string(),
            common::models_dir().display().to_string(),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let mut api = Self { dir, port, url: format!("http://127.0.0.1:{port}"), child: None };
        api.resume();
        api
    }

    /// Starts the server (again) on its data folder and port, and waits until it listens.
    fn resume(&mut self) {
        assert!(self.child.is_none(), "serve-api is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("api.log")).unwrap();
        let child = Command::new(common::BIN)
            .env_clear()
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .arg("serve-api")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("serve-api starts");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "serve-api did not listen; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many faces the collection `door` holds.
    async fn faces_in_collection(&self) -> usize {
        self.client().list_faces().collection_id("door").send().await.unwrap().faces().len()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("api.log")).unwrap_or_default()
    }

    fn client(&self) -> Client {
        client(&self.url)
    }

    /// Stops the server with SIGTERM and waits for a clean exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("serve-api is running");
        assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
        let status = child.wait().unwrap();
        assert!(status.success(), "serve-api exited with {status}; log:\n{}", self.log());
    }
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lfw(person: &str, number: u32) -> PathBuf {
    common::face(&format!("lfw10/{person}/{person}_{number:04}.jpg"))
}

/// A door using engine `kind` (`rekognition` or `hybrid`) against `api`, with the API's
/// credentials. The models let it check frames for a face on the device, as recommended.
fn door_on(api: &ServedApi, kind: &str) -> TestDoor {
    let endpoint = format!("{:?}", api.url);
    let models = format!("{:?}", common::models_dir().display().to_string());
    let mut door = TestDoor::new(&[
        ("engine.kind", &format!("{kind:?}")),
        ("engine.models_dir", &models),
        ("engine.rekognition.endpoint_url", &endpoint),
        ("engine.rekognition.region", "\"us-east-1\""),
        ("engine.rekognition.collection_id", "\"door\""),
        ("engine.rekognition.max_attempts", "1"),
        ("engine.match_threshold", "85.0"),
    ]);
    door.set_env("AWS_ACCESS_KEY_ID", KEY_ID);
    door.set_env("AWS_SECRET_ACCESS_KEY", SECRET);
    // Nothing but the environment: no instance metadata lookups on a developer machine.
    door.set_env("AWS_EC2_METADATA_DISABLED", "true");
    door
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_decides_with_the_rekognition_engine_and_denies_when_it_is_unreachable() {
    let mut api = ServedApi::start();
    let mut door = door_on(&api, "rekognition");
    let created = door.ok(&["collection", "create"]);
    assert!(created.starts_with("created door"), "{created}");

    door.ok(&["enroll", "--person", "Tony", "--card", "04A1B2C3", lfw("Tony_Blair", 2).to_str().unwrap()]);
    door.ok(&["enroll", "--person", "Colin", "--card", "04D4E5F6", lfw("Colin_Powell", 2).to_str().unwrap()]);
    let listed = api.client().list_faces().collection_id("door").send().await.unwrap();
    let external: Vec<&str> = listed.faces().iter().filter_map(|f| f.external_image_id()).collect();
    assert_eq!(external.len(), 2, "one face per enrolment in the collection: {external:?}");

    // A face nobody enrolled here (left by a crash, or by hand) is removed by `collection sync`.
    let stray = std::fs::read(lfw("Hugo_Chavez", 2)).unwrap();
    let stray = aws_sdk_rekognition::types::Image::builder().bytes(stray.into()).build();
    api.client().index_faces().collection_id("door").max_faces(1).image(stray).send().await.unwrap();
    let synced = door.ok(&["collection", "sync"]);
    assert!(synced.contains("deleted 1 face(s) that no enrolled person owns"), "{synced}");
    assert!(synced.contains("every enrolled face is in the collection"), "{synced}");
    assert!(door.ok(&["collection", "list"]).lines().any(|line| line.starts_with("door")));

    door.show_for_card("04A1B2C3", &lfw("Tony_Blair", 3));
    door.show_for_card("04D4E5F6", &lfw("Vladimir_Putin", 1));
    door.start();
    let granted = door.tap_and_wait("04A1B2C3");
    assert_eq!(granted["decision"], "granted", "{granted}");
    assert_eq!(granted["engine"], "rekognition");
    assert!(granted["similarity"].as_f64().unwrap() >= 85.0, "{granted}");
    let stranger = door.tap_and_wait("04D4E5F6");
    assert_eq!(stranger["decision"], "denied", "{stranger}");
    assert_eq!(stranger["reason"], "face_not_recognised", "{stranger}");

    // Removing a person deletes their face from the collection (DeleteFaces).
    door.ok(&["person", "remove", "Colin"]);
    let listed = api.client().list_faces().collection_id("door").send().await.unwrap();
    assert_eq!(listed.faces().len(), 1);

    api.stop();
    std::thread::sleep(Duration::from_millis(300));
    let offline = door.tap_and_wait("04A1B2C3");
    assert_eq!(offline["decision"], "denied", "{offline}");
    assert_eq!(offline["reason"], "engine_error", "{offline}");
    let detail = offline["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("Rekognition: unreachable"), "the log row says why: {offline}");
    door.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_also_serves_the_api_when_api_listen_is_set() {
    let port = free_port();
    let models = format!("{:?}", common::models_dir().display().to_string());
    let listen = format!("\"127.0.0.1:{port}\"");
    let keys = format!("[{{ access_key_id = \"{KEY_ID}\", secret_access_key = \"{SECRET}\" }}]");
    let mut door = TestDoor::new(&[
        ("engine.kind", "\"local\""),
        ("engine.models_dir", &models),
        ("api.listen", &listen),
        ("api.access_keys", &keys),
    ]);
    door.start();
    let api = client(&format!("http://127.0.0.1:{port}"));
    api.create_collection().collection_id("lobby").send().await.expect("the API answers beside the door");
    let listed = api.list_collections().send().await.unwrap();
    assert_eq!(listed.collection_ids(), ["lobby"]);
    door.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the API stops with the door");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hybrid_engine_falls_back_to_the_device_while_the_api_is_stopped() {
    let mut api = ServedApi::start();
    let mut door = door_on(&api, "hybrid");
    door.ok(&["collection", "create"]);
    door.ok(&["enroll", "--person", "Tony", "--card", "04A1B2C3", lfw("Tony_Blair", 2).to_str().unwrap()]);
    door.show_for_card("04A1B2C3", &lfw("Tony_Blair", 3));
    door.start();

    let online = door.tap_and_wait("04A1B2C3");
    assert_eq!(online["decision"], "granted", "{online}");
    assert_eq!(online["engine"], "hybrid");
    let decided_in_cloud = |log: &str| log.lines().any(|l| l.contains("hybrid search") && l.contains("rekognition"));
    assert!(decided_in_cloud(&door.daemon_log()), "the log says the cloud decided:\n{}", door.daemon_log());

    api.stop();
    std::thread::sleep(Duration::from_millis(400));
    let offline = door.tap_and_wait("04A1B2C3");
    assert_eq!(offline["decision"], "granted", "the on-device engine decided: {offline}");
    door.stop();
    let log = door.daemon_log();
    assert!(log.contains("the cloud failed, the on-device engine decided"), "the log says so:\n{log}");
    assert!(log.contains("Rekognition: unreachable"), "and why:\n{log}");
}

/// One request to the daemon's web app over plain HTTP/1.1; the whole answer.
fn http(port: u16, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// `name=value` of the cookie `name` the answer sets.
fn cookie(answer: &str, name: &str) -> String {
    let start = answer.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} cookie in {answer}"));
    answer[start..].split(';').next().unwrap().to_owned()
}

/// The daemon's web app, signed in as an admin, as a browser would use it.
struct WebApp {
    port: u16,
    session: String,
}

impl WebApp {
    fn sign_in(door: &TestDoor, port: u16) -> Self {
        let password = door.path("password");
        std::fs::write(&password, "a long enough passphrase").unwrap();
        door.ok(&["user", "add", "ada", "--password-file", password.to_str().unwrap()]);
        let form =
            cookie(&http(port, "GET /login HTTP/1.1\r\nHost: door\r\nConnection: close\r\n\r\n"), "facereko_form");
        let token = form.split_once('=').unwrap().1.to_owned();
        let signed_in =
            Self { port, session: form }.post("/login", &token, "username=ada&password=a+long+enough+passphrase");
        assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
        Self { port, session: cookie(&signed_in, "facereko_session") }
    }

    fn get(&self, path: &str) -> String {
        http(
            self.port,
            &format!("GET {path} HTTP/1.1\r\nHost: door\r\nConnection: close\r\nCookie: {}\r\n\r\n", self.session),
        )
    }

    /// Posts `fields` with the CSRF token of the page at `page`, as its form would.
    fn submit(&self, page: &str, path: &str, fields: &str) -> String {
        let html = self.get(page);
        let start = html.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no form on {page}: {html}"));
        let token = html[start + 19..].split('"').next().unwrap().to_owned();
        self.post(path, &token, fields)
    }

    fn post(&self, path: &str, token: &str, fields: &str) -> String {
        let body = if fields.is_empty() { format!("csrf={token}") } else { format!("csrf={token}&{fields}") };
        http(
            self.port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: door\r\nConnection: close\r\nCookie: {}\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                self.session,
                body.len()
            ),
        )
    }
}

/// Issue 15, item 1: a face removed while the API is away stays in the collection, and must not
/// open the door when the API is back (only FaceIds in our gallery match). The page and the CLI
/// say that its copy could not be deleted yet; the daemon deletes it at its next start.
async fn a_face_removed_while_the_api_is_away_no_longer_opens_the_door(kind: &str) {
    let mut api = ServedApi::start();
    let mut door = door_on(&api, kind);
    let web_port = free_port();
    door.set_env("FACEREKO_WEB__LISTEN", &format!("127.0.0.1:{web_port}"));
    door.ok(&["collection", "create"]);
    // A fresh database: Tony is person 1 with face 1.
    door.ok(&["enroll", "--person", "Tony", "--card", "04A1B2C3", lfw("Tony_Blair", 2).to_str().unwrap()]);
    door.ok(&["enroll", "--person", "Colin", "--card", "04D4E5F6", lfw("Colin_Powell", 2).to_str().unwrap()]);
    door.show_for_card("04A1B2C3", &lfw("Tony_Blair", 3));
    door.start();
    let web = WebApp::sign_in(&door, web_port);
    let granted = door.tap_and_wait("04A1B2C3");
    assert_eq!(granted["decision"], "granted", "{granted}");

    api.stop();
    let removed = web.submit("/people/1", "/people/1/faces/1/remove", "");
    assert!(removed.starts_with("HTTP/1.1 303"), "{removed}");
    let page = web.get("/people/1");
    assert!(page.contains("Face removed, but the face engine could not delete its copy"), "an error: {page}");
    assert!(page.contains("the door no longer recognises them"), "{page}");
    let colin = door.run(&["person", "remove", "Colin"]);
    let said = String::from_utf8_lossy(&colin.stderr);
    assert!(!colin.status.success(), "the CLI fails the same way: {said}");
    assert!(said.contains("removed Colin with their cards, but the face engine could not delete"), "{said}");

    api.resume();
    assert_eq!(api.faces_in_collection().await, 2, "both copies are still in the collection");
    let denied = door.tap_and_wait("04A1B2C3");
    assert_eq!(denied["decision"], "denied", "a removed face opened the door: {denied}");

    // The next start deletes the copies the removals could not.
    door.stop();
    door.start();
    let start = Instant::now();
    // The log line follows the deletions, so wait for both.
    while api.faces_in_collection().await > 0
        || !door.daemon_log().contains("deleted the collection's copies of faces removed earlier")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "the copies were not deleted:\n{}", door.daemon_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    door.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_face_removed_while_the_api_is_away_no_longer_opens_the_door_with_rekognition() {
    a_face_removed_while_the_api_is_away_no_longer_opens_the_door("rekognition").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_face_removed_while_the_api_is_away_no_longer_opens_the_door_with_hybrid() {
    a_face_removed_while_the_api_is_away_no_longer_opens_the_door("hybrid").await;
}
