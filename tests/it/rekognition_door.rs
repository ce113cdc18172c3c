//! The door end to end with `engine.kind = "rekognition"`, pointed at FaceReko's own
//! Rekognition-compatible API run as `facereko serve-api` on loopback.

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
        let log = std::fs::File::create(dir.path().join("api.log")).unwrap();
        let child = Command::new(common::BIN)
            .env_clear()
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .arg("serve-api")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("serve-api starts");
        let api = Self { dir, url: format!("http://127.0.0.1:{port}"), child: Some(child) };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "serve-api did not listen; log:\n{}", api.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        api
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
