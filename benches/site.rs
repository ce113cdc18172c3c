//! Many doors on one MariaDB (issue 24): N doors in one process (N = 1, 10, 50), each a real
//! driver with the store a door has (its own connection pool to the one MariaDB, behind its own
//! local copy and spool), all tapping at once, each tapping again as soon as its last attempt is
//! in the log. It reports taps per second across the site and tap → log-row latency as N grows,
//! and how many connections the server held. The simulated engine and camera decide the taps, so
//! what is measured is the database's share of a tap (the card and its holder, the rules, the
//! faces' change counter and the log row with its outbox row), not face recognition: on a Pi the
//! on-device engine adds its own time at each door (`cargo bench --bench tap`), which does not
//! load the database. Run with `cargo bench --bench site`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use facereko::access::Reason;
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::driver::RunningDoor;
use facereko::engine::simulated::SimulatedEngine;
use facereko::frame::Frame;
use facereko::hw::Hardware;
use facereko::hw::simulated::{Output, OutputRecorder, SimTaps};
use facereko::store::Store;
use facereko::store::mysql::MysqlStore;
use facereko::store::resilient::{CACHE_FILE, Reachability, ResilientStore};

use common::bench::{load_average, machine, percentile, runs};
use common::mariadb::MariaDb;

const CARD: &str = "04A1B2C3";

/// One door of the simulated site.
struct Door {
    door: RunningDoor,
    taps: SimTaps,
    recorder: OutputRecorder,
    store: Arc<ResilientStore>,
    _data_dir: tempfile::TempDir,
}

impl Door {
    async fn start(n: usize, url: &str, picture: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        config.door.id = format!("door-{n:02}");
        config.door.unlock_time = Duration::from_millis(5);
        config.door.debounce = Duration::ZERO;
        // Wired as `store::open` wires it.
        let reachability = Arc::new(Reachability::default());
        let server = MysqlStore::connect(url, None).unwrap().reporting_to(Arc::clone(&reachability));
        let store = Arc::new(
            ResilientStore::start(Arc::new(server), reachability, &dir.path().join(CACHE_FILE)).await.unwrap(),
        );
        let recorder = OutputRecorder::default();
        let hardware = Hardware::simulated(&recorder, picture.to_owned());
        let door = facereko::app::start_door(
            &config,
            hardware,
            store.clone(),
            Arc::new(SimulatedEngine),
            common::journal(&config),
            true,
        );
        let taps = door.link.control.taps.clone().expect("simulated hardware has a tap handle");
        Self { door, taps, recorder, store, _data_dir: dir }
    }

    /// Taps `count` times, each once the last is logged and the door has locked again; returns
    /// each tap's time until its row was written.
    async fn tap(&self, count: usize) -> Vec<Duration> {
        let card: CardUid = CARD.parse().unwrap();
        let mut to_log = Vec::with_capacity(count);
        for _ in 0..count {
            let mut written = self.door.link.attempts.subscribe();
            let tapped = Instant::now();
            self.taps.tap(card.clone()).await.unwrap();
            let event = tokio::time::timeout(Duration::from_secs(30), written.recv())
                .await
                .expect("the attempt is logged within 30 s")
                .unwrap();
            to_log.push(tapped.elapsed());
            assert_eq!(event.reason, Reason::CardAndFace, "every tap opens");
            while self.recorder.is_on(Output::Relay) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        to_log
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The rows and the most connections the server has held since it started.
fn server_counts(server: &MariaDb, database: &str) -> (u64, u64) {
    let rows = server.sql(Some(database), "SELECT COUNT(*) FROM access_log");
    let connections = server.sql(None, "SHOW GLOBAL STATUS LIKE 'Max_used_connections'");
    let connections = connections.split('\t').nth(1).unwrap_or("0");
    (rows.trim().parse().unwrap(), connections.trim().parse().unwrap())
}

async fn run() {
    let server = MariaDb::start();
    let database = server.database();
    let picture = common::face("lfw10/Tony_Blair/Tony_Blair_0001.jpg");
    {
        let store = MysqlStore::connect(&database.url, None).unwrap();
        store.schema().migrate().await.unwrap();
        let alice = store.people().add_person("Alice").await.unwrap();
        store.people().add_card(&CARD.parse().unwrap(), alice.id).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let frame = Frame::read(&picture).unwrap();
        facereko::enrolment::enrol_face(&store, &SimulatedEngine, &common::photos(&config), &alice, &frame)
            .await
            .unwrap();
    }
    let sizes: &[usize] = if common::bench::measuring() { &[1, 10, 50] } else { &[1, 2] };
    let taps_per_door = runs(40, 2);
    println!("{taps_per_door} taps per door, each door tapping again as soon as its last attempt is logged");
    for &size in sizes {
        let mut doors = Vec::with_capacity(size);
        for n in 0..size {
            doors.push(Door::start(n, &database.url, &picture).await);
        }
        // One tap each first: the door loads the gallery and fills its pool.
        futures_util::future::join_all(doors.iter().map(|door| door.tap(1))).await;
        let (rows_before, _) = server_counts(&server, &database.name);
        let started = Instant::now();
        let timings = futures_util::future::join_all(doors.iter().map(|door| door.tap(taps_per_door))).await;
        let elapsed = started.elapsed();
        let mut to_log: Vec<Duration> = timings.into_iter().flatten().collect();
        to_log.sort();
        let mut spooled = 0;
        for door in &doors {
            spooled += door.store.spooled().await.unwrap();
        }
        let (rows_after, connections) = server_counts(&server, &database.name);
        println!(
            "{size:>3} door(s): {:>5} taps in {:>5.1} s = {:>6.1} taps/s; tap → row p50 {:>6.1} ms, p95 {:>6.1} ms, \
             max {:>6.1} ms; {} rows on the server, {spooled} spooled; most connections held {connections}; load {}",
            to_log.len(),
            elapsed.as_secs_f64(),
            to_log.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&to_log, 0.5)),
            ms(percentile(&to_log, 0.95)),
            ms(*to_log.last().unwrap()),
            rows_after - rows_before,
            load_average().unwrap_or_default(),
        );
        for door in doors {
            door.door.until(async {}).await.unwrap();
        }
    }
}

fn main() {
    println!("facereko site benchmark: {}", machine());
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}
