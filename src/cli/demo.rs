//! `facereko demo`: the whole door on simulated hardware with the on-device engine, in a
//! throw-away data directory, driven from the web app or the keyboard.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use facereko::accounts::{self, Role};
use facereko::card::CardUid;
use facereko::config::{self, Sources};
use facereko::control::{self, Request};
use facereko::engine::{self, FaceEngine};
use facereko::enrolment;
use facereko::frame::Frame;
use facereko::models;
use facereko::photos::Photos;
use facereko::store::{self, LogQuery};
use tokio::io::AsyncBufReadExt;

use super::DemoArgs;

/// A demo card: who holds it, what the camera sees when it is tapped, what should happen.
struct DemoCard {
    uid: &'static str,
    holder: Option<&'static str>,
    /// A sample picture, or `None` for a covered camera.
    camera: Option<&'static str>,
    story: &'static str,
}

const PEOPLE: &[(&str, &[&str])] = &[("Barack Obama", &["obama.jpg", "obama3.jpg"]), ("Joe Biden", &["biden.jpg"])];

const CARDS: &[DemoCard] = &[
    DemoCard {
        uid: "04A1B2C3",
        holder: Some("Barack Obama"),
        camera: Some("obama2.jpg"),
        story: "Obama's card, Obama at the door (a photo not used for enrolment)",
    },
    DemoCard {
        uid: "04B1D3E5",
        holder: Some("Joe Biden"),
        camera: Some("obama2.jpg"),
        story: "Biden's card, but Obama at the door",
    },
    DemoCard { uid: "04C0FFEE", holder: Some("Joe Biden"), camera: None, story: "Biden's second card, camera covered" },
    DemoCard { uid: "DEADBEEF", holder: None, camera: Some("biden.jpg"), story: "a card nobody enrolled" },
];

/// The demo's web account; its password is made up at each start.
const DEMO_USER: &str = "demo";

/// `requested`, else 127.0.0.1:8080 when free, else any free port on loopback.
fn web_address(requested: Option<&str>) -> Result<String> {
    if let Some(address) = requested {
        return Ok(address.to_owned());
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:8080")
        .or_else(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .context("cannot find a free port on 127.0.0.1 for the web app")?;
    Ok(listener.local_addr()?.to_string())
}

/// Opens `url` in the desktop's browser when there is a desktop; quietly does nothing otherwise.
fn open_browser(url: &str) {
    let desktop = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if desktop {
        let _ = std::process::Command::new("xdg-open")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// Lays out the simulated camera: one folder per card with what it sees.
fn stage_camera(camera_dir: &Path, samples: &Path) -> Result<()> {
    for card in CARDS {
        let folder = camera_dir.join(card.uid);
        std::fs::create_dir_all(&folder)?;
        match card.camera {
            Some(sample) => {
                std::fs::copy(samples.join(sample), folder.join(sample))
                    .with_context(|| format!("cannot copy the sample picture {sample}"))?;
            }
            None => image::RgbImage::from_pixel(640, 480, image::Rgb([20, 20, 20]))
                .save(folder.join("covered.png"))
                .context("cannot write the covered-camera picture")?,
        }
    }
    Ok(())
}

async fn enrol_people(config: &config::Config, samples: &Path) -> Result<()> {
    let store = store::open(&config.database, &config.data_dir).await?;
    let engine = engine::build(&config.engine)?;
    let photos = Photos::new(config.photos_dir());
    for (name, pictures) in PEOPLE {
        let (person, _) = enrolment::person_named(store.as_ref(), name).await?;
        for picture in *pictures {
            let frame = Frame::read(&samples.join(picture))?;
            enrolment::enrol_face(store.as_ref(), engine.as_ref() as &dyn FaceEngine, &photos, &person, &frame)
                .await
                .with_context(|| format!("cannot enrol {picture}"))?;
        }
        for card in CARDS.iter().filter(|c| c.holder == Some(*name)) {
            store.people().add_card(&card.uid.parse::<CardUid>()?, person.id).await?;
        }
    }
    Ok(())
}

fn print_menu(config_path: &Path) {
    println!("\nTap a card: type its number and press Enter (q quits).");
    for (i, card) in CARDS.iter().enumerate() {
        println!("  {}  {}  {}", i + 1, card.uid, card.story);
    }
    println!("From another terminal: facereko --config {} tap|log|status|person list", config_path.display());
}

/// Prints the attempts logged since the last call.
async fn print_new_attempts(store: &dyn store::Store, seen: &mut usize) -> Result<()> {
    let rows = store.log().access_log(&LogQuery { limit: 1000, ..LogQuery::default() }).await?;
    for row in rows.iter().rev().skip(*seen) {
        let e = &row.event;
        let t = &e.timings;
        let stage = |name: &str, ms: Option<u32>| ms.map(|ms| format!(", {name} {ms}")).unwrap_or_default();
        println!(
            "→ {} ({}): {}{} — {} ms (read {}{}{}, actuate {})",
            e.decision.as_str().to_uppercase(),
            e.reason,
            e.person_name.as_deref().map_or_else(|| "unknown card".to_owned(), |name| format!("card of {name}")),
            e.similarity.map(|s| format!(", similarity {s:.1}")).unwrap_or_default(),
            t.total_ms,
            t.read_ms,
            stage("capture", t.capture_ms),
            stage("match", t.match_ms),
            t.actuate_ms
        );
    }
    *seen = rows.len();
    Ok(())
}

pub async fn demo(args: &DemoArgs) -> Result<ExitCode> {
    let models_dir = args.models_dir.clone().unwrap_or_else(models::user_cache_dir);
    if models::ModelPaths::check(&models_dir).is_err() || !models::samples_dir(&models_dir).is_dir() {
        println!("fetching the face models into {} (once)…", models_dir.display());
        // The fetch blocks (it runs a small runtime of its own for the downloads).
        let dir = models_dir.clone();
        tokio::task::spawn_blocking(move || models::fetch(&dir))
            .await
            .context("the fetch task panicked")?
            .context("cannot fetch the face models")?;
    }
    let samples = models::samples_dir(&models_dir);

    let scratch = tempfile::Builder::new().prefix("facereko-demo-").tempdir().context("cannot create a temp dir")?;
    let data_dir = scratch.path();
    let camera_dir = data_dir.join("camera");
    stage_camera(&camera_dir, &samples)?;
    let config_path = data_dir.join("config.toml");
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let listen = web_address(args.listen.as_deref())?;
    std::fs::write(
        &config_path,
        format!(
            "data_dir = {}\n[engine]\nkind = \"local\"\nmodels_dir = {}\n[door]\nunlock_time = \"5s\"\n\
             [hardware.simulated]\ncamera = {}\n[web]\nlisten = \"{listen}\"\n",
            quoted(data_dir),
            quoted(&models_dir),
            quoted(&camera_dir)
        ),
    )?;
    let sources = Sources { file: Some(config_path.clone()), ..Sources::default() };
    let config = config::load(&sources, config::Section::ALL)?.config;

    println!("enrolling the demo people with the on-device engine…");
    enrol_people(&config, &samples).await?;
    let store = store::open(&config.database, &config.data_dir).await?;
    let password = accounts::random_token(8);
    let hash = tokio::task::spawn_blocking({
        let password = password.clone();
        move || accounts::hash_password(&password)
    })
    .await??;
    store.accounts().add_user(DEMO_USER, &hash, Role::Admin.as_str()).await?;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(facereko::app::run(config.clone(), async {
        let _ = stopped.await;
    }));
    let socket = config.control_socket();
    let mut ready = false;
    for _ in 0..100 {
        if control::request(&socket, &Request::Status).await.is_ok() {
            ready = true;
            break;
        }
        if daemon.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !ready {
        let _ = stop.send(());
        daemon.await?.context("the demo door did not start")?;
        bail!("the demo door did not start");
    }
    println!("FaceReko demo: simulated door, on-device face engine, SQLite in {}", data_dir.display());
    println!("people: Barack Obama (card 04A1B2C3), Joe Biden (cards 04B1D3E5, 04C0FFEE)");
    let url = format!("http://{listen}/");
    println!(
        "\nweb app: {url}  (sign in as {DEMO_USER}, password {password}; this account lives only as long as the demo)"
    );
    println!("  the dashboard has a button to tap each demo card; the history shows each attempt with its photo");
    if !args.no_browser {
        open_browser(&url);
    }
    print_menu(&config_path);

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut seen = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let choice = line.trim();
                if matches!(choice, "q" | "quit" | "exit") {
                    break;
                }
                match choice.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| CARDS.get(i)) {
                    Some(card) => {
                        let request = Request::Tap { card: card.uid.parse()? };
                        if let Err(e) = control::request(&socket, &request).await {
                            println!("the tap did not reach the door: {e}");
                        }
                    }
                    None if choice.is_empty() => {}
                    None => print_menu(&config_path),
                }
            }
            _ = poll.tick() => print_new_attempts(store.as_ref(), &mut seen).await?,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Let an attempt under way finish before stopping.
    tokio::time::sleep(Duration::from_millis(300)).await;
    print_new_attempts(store.as_ref(), &mut seen).await?;
    let _ = stop.send(());
    daemon.await?.context("the demo door failed")?;
    println!("demo stopped; its data directory is removed");
    Ok(ExitCode::SUCCESS)
}
