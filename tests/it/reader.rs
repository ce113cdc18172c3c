//! The MFRC522 reader (`facereko::hw::mfrc522`) driving the real `mfrc522` crate against an SPI
//! model of the chip: start-up and version, reading 4, 7 and 10 byte UIDs, halted cards woken
//! again, no card, collisions, CRC errors, a chip that stops answering, and a tap through the
//! real door. Real time with short poll intervals; waits are bounded polling loops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use embedded_hal::spi::{Operation, SpiDevice};

use facereko::access::{Decision, Reason};
use facereko::card::CardUid;
use facereko::config::Config;
use facereko::door::Mode;
use facereko::engine::simulated::SimulatedEngine;
use facereko::hw::Hardware;
use facereko::hw::mfrc522::{Mfrc522Reader, Mfrc522Settings};
use facereko::hw::simulated::{Output, OutputRecorder};
use facereko::hw::{CardReader, HwError};
use facereko::store::sqlite::SqliteStore;
use facereko::store::{LogQuery, Store};

use crate::common::mfrc522_model::{BusFault, FastDelay, Fault, Mfrc522Model};

const SETTINGS: Mfrc522Settings = Mfrc522Settings {
    poll_interval: Duration::from_millis(2),
    health_interval: Duration::from_millis(20),
    ..Mfrc522Settings::DEFAULT
};
/// Longest wait for anything the reader should do; tests pass far sooner.
const PATIENCE: Duration = Duration::from_secs(10);

const SINGLE: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];
const DOUBLE: [u8; 7] = [0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66];
const TRIPLE: [u8; 10] = [0x04, 0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0, 0x01];

fn open(model: &Mfrc522Model) -> Result<Mfrc522Reader, HwError> {
    open_with(model, FastDelay::default())
}

fn open_with(model: &Mfrc522Model, delay: FastDelay) -> Result<Mfrc522Reader, HwError> {
    Mfrc522Reader::new(model.clone(), model.reset_pin(), delay, SETTINGS)
}

async fn next(reader: &mut Mfrc522Reader) -> CardUid {
    tokio::time::timeout(PATIENCE, reader.next_uid())
        .await
        .expect("a card was read in time")
        .expect("the reader keeps running")
}

/// Nothing is reported while the chip is polled at least `polls` more times.
async fn assert_silent(reader: &mut Mfrc522Reader, model: &Mfrc522Model, polls: usize) {
    let before = model.heard().wupa;
    wait_until("the reader polls", || model.heard().wupa >= before + polls).await;
    let read = tokio::time::timeout(Duration::from_millis(20), reader.next_uid()).await;
    assert!(read.is_err(), "nothing should be read, got {read:?}");
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn hex(uid: &[u8]) -> String {
    uid.iter().map(|b| format!("{b:02X}")).collect()
}

mod start_up {
    use super::*;

    #[tokio::test]
    async fn resets_the_chip_and_reads_its_version() {
        for version in [0x91, 0x92, 0x88] {
            let model = Mfrc522Model::new();
            model.set_version(version);
            let reader = open(&model).expect("the chip answers");
            assert_eq!(reader.health().version(), version);
            assert_eq!(model.hard_resets(), 1, "one hard reset before initialising");
            assert_eq!(reader.health().resets(), 0, "the start-up reset is not a recovery");
        }
    }

    /// What the reader says is wrong right after it was opened.
    fn trouble_at_start(model: &Mfrc522Model) -> String {
        let reader = open(model).expect("a chip that does not answer does not stop the start");
        reader.trouble().now().expect("the reader says why it does not work")
    }

    #[tokio::test]
    async fn a_chip_with_an_unknown_version_is_reported_and_reset_until_it_answers() {
        let model = Mfrc522Model::new();
        model.set_version(0x37);
        let mut reader = open(&model).expect("the door starts all the same");
        let trouble = reader.trouble();
        let said = trouble.now().expect("0x37 is no MFRC522");
        assert!(said.contains("version register reads 0x37"), "{said}");
        assert!(said.contains("check its wiring"), "{said}");
        wait_until("the chip is reset again", || model.hard_resets() >= 3).await;

        model.set_version(0x92);
        model.place(&SINGLE);
        assert_eq!(next(&mut reader).await.as_str(), hex(&SINGLE), "cards are read once it answers");
        assert_eq!(trouble.now(), None);
    }

    #[tokio::test]
    async fn a_silent_chip_at_start_is_reported_with_the_reason() {
        let model = Mfrc522Model::new();
        model.fail(Fault::Answers(0x00), usize::MAX);
        let said = trouble_at_start(&model);
        assert!(said.starts_with("does not work: its version register reads 0x00"), "{said}");

        // All ones: the soft reset never seems to finish; the reader gives up instead of hanging.
        let model = Mfrc522Model::new();
        model.fail(Fault::Answers(0xFF), usize::MAX);
        let said = trouble_at_start(&model);
        assert!(said.contains("did not finish within"), "{said}");

        let model = Mfrc522Model::new();
        model.fail(Fault::BusError, usize::MAX);
        let said = trouble_at_start(&model);
        assert!(said.contains("SPI error"), "{said}");
    }
}

mod reading {
    use super::*;

    #[tokio::test]
    async fn reads_single_double_and_triple_size_uids_as_upper_case_hex() {
        for uid in [&SINGLE[..], &DOUBLE[..], &TRIPLE[..]] {
            let model = Mfrc522Model::new();
            let mut reader = open(&model).unwrap();
            model.place(uid);
            let read = next(&mut reader).await;
            assert_eq!(read.as_str(), hex(uid));
        }
        assert_eq!(hex(&TRIPLE), "04123456789ABCDEF001");
    }

    #[tokio::test]
    async fn a_resting_card_is_halted_and_woken_again_at_each_poll() {
        let model = Mfrc522Model::new();
        let mut reader = open(&model).unwrap();
        model.place(&DOUBLE);
        for _ in 0..3 {
            assert_eq!(next(&mut reader).await.as_str(), "04112233445566");
        }
        let heard = model.heard();
        assert!(heard.hlta >= 2, "the card is halted after each read: {heard:?}");
        assert_eq!(heard.reqa, 0, "REQA would leave a halted card asleep: {heard:?}");

        model.clear();
        while tokio::time::timeout(Duration::from_millis(20), reader.next_uid()).await.is_ok() {}
        assert_silent(&mut reader, &model, 5).await;
    }

    #[tokio::test]
    async fn an_empty_field_reports_nothing() {
        let model = Mfrc522Model::new();
        let mut reader = open(&model).unwrap();
        assert_silent(&mut reader, &model, 10).await;
        assert_eq!(model.heard().select, 0);
    }

    #[tokio::test]
    async fn two_cards_of_the_same_size_are_told_apart_by_anticollision() {
        let model = Mfrc522Model::new();
        let mut reader = open(&model).unwrap();
        // The UIDs first differ in bit 0; the driver follows the branch where that bit is 1.
        model.place(&[0x10, 0x22, 0x33, 0x44]);
        model.place(&[0x11, 0x22, 0x33, 0x44]);
        for _ in 0..3 {
            assert_eq!(next(&mut reader).await.as_str(), "11223344");
        }
    }

    #[tokio::test]
    async fn cards_whose_answers_collide_are_skipped_without_harm() {
        let model = Mfrc522Model::new();
        let mut reader = open(&model).unwrap();
        // Different UID sizes answer WUPA with different ATQAs: the chip sees a collision.
        model.place(&SINGLE);
        model.place(&DOUBLE);
        assert_silent(&mut reader, &model, 10).await;
        assert_eq!(model.heard().select, 0, "each poll ends at the colliding WUPA answers");
        model.clear();
        model.place(&SINGLE);
        assert_eq!(next(&mut reader).await.as_str(), "DEADBEEF", "the reader carries on");
        assert_eq!(reader.health().resets(), 0, "collisions are not a reason to reset");
    }

    #[tokio::test]
    async fn a_select_answer_with_a_bad_crc_is_skipped() {
        let model = Mfrc522Model::new();
        let mut reader = open(&model).unwrap();
        model.corrupt_select_crc(true);
        model.place(&SINGLE);
        assert_silent(&mut reader, &model, 10).await;
        assert!(model.heard().select >= 3, "the card was selected: {:?}", model.heard());
        model.corrupt_select_crc(false);
        assert_eq!(next(&mut reader).await.as_str(), "DEADBEEF");
        assert_eq!(reader.health().resets(), 0);
    }
}

mod health {
    use super::*;

    /// The chip fails; the reader notices, resets it, and cards are read again.
    async fn recovers_from(fault: Fault) {
        let model = Mfrc522Model::new();
        let mut reader = open(&model).unwrap();
        let health = reader.health();
        model.place(&SINGLE);
        assert_eq!(next(&mut reader).await.as_str(), "DEADBEEF");
        model.clear();
        while tokio::time::timeout(Duration::from_millis(20), reader.next_uid()).await.is_ok() {}

        model.fail(fault, 1);
        wait_until("the reader resets the chip", || health.resets() >= 1 && model.hard_resets() >= 2).await;
        model.place(&SINGLE);
        assert_eq!(next(&mut reader).await.as_str(), "DEADBEEF", "{fault:?}: reads work again");
        assert_eq!(model.hard_resets(), 2, "{fault:?}: one reset at start, one to recover");
        assert_eq!(health.resets(), 1, "{fault:?}: one reset was enough");
        assert_eq!(health.version(), 0x92);
    }

    #[tokio::test]
    async fn a_chip_reading_all_zeros_is_reset() {
        // Polls overrun (the driver waits for an interrupt that never comes) and the version is 0x00.
        recovers_from(Fault::Answers(0x00)).await;
    }

    #[tokio::test]
    async fn a_chip_reading_all_ones_is_reset() {
        // Polls just fail with protocol errors; only the version check gives it away.
        recovers_from(Fault::Answers(0xFF)).await;
    }

    #[tokio::test]
    async fn spi_failing_in_a_row_resets_the_chip() {
        recovers_from(Fault::BusError).await;
    }

    #[tokio::test]
    async fn a_chip_that_stays_dead_is_retried_with_growing_pauses() {
        let model = Mfrc522Model::new();
        let delay = FastDelay::default();
        let mut reader = open_with(&model, delay.clone()).unwrap();
        let health = reader.health();
        let trouble = health.trouble();
        model.fail(Fault::Answers(0x00), 4);
        wait_until("a reset that does not bring it back", || trouble.now().is_some()).await;
        let said = trouble.now().unwrap();
        assert!(said.starts_with("does not work: "), "{said}");
        wait_until("the fourth reset brings the chip back", || model.hard_resets() == 5).await;
        model.place(&TRIPLE);
        assert_eq!(next(&mut reader).await.as_str(), hex(&TRIPLE));
        assert_eq!(health.resets(), 4);
        assert_eq!(trouble.now(), None, "the trouble is over once the chip answers");
        let pauses: Vec<u64> =
            delay.asked().iter().filter(|d| **d >= Duration::from_secs(1)).map(|d| d.as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4], "a pause after each failed reset, doubling");
    }

    /// The model behind a switch that makes the next SPI transaction panic, as a driver bug would.
    struct Crashing(Mfrc522Model, Arc<AtomicBool>);

    impl embedded_hal::spi::ErrorType for Crashing {
        type Error = BusFault;
    }

    impl SpiDevice for Crashing {
        fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), BusFault> {
            assert!(!self.1.load(Ordering::Relaxed), "the SPI driver crashed");
            self.0.transaction(operations)
        }
    }

    #[tokio::test]
    async fn a_crashed_poller_is_reported_with_the_reason() {
        let model = Mfrc522Model::new();
        let crash = Arc::new(AtomicBool::new(false));
        let spi = Crashing(model.clone(), Arc::clone(&crash));
        let mut reader = Mfrc522Reader::new(spi, model.reset_pin(), FastDelay::default(), SETTINGS).unwrap();
        crash.store(true, Ordering::Relaxed);
        let err = tokio::time::timeout(PATIENCE, reader.next_uid()).await.expect("the crash is reported").unwrap_err();
        let err = err.to_string();
        assert!(err.contains("the MFRC522 poller stopped: it crashed: the SPI driver crashed"), "{err}");
    }

    #[tokio::test]
    async fn a_dropped_reader_stops_polling() {
        let model = Mfrc522Model::new();
        let reader = open(&model).unwrap();
        wait_until("the reader polls", || model.heard().wupa >= 2).await;
        drop(reader);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after_stop = model.heard().wupa;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(model.heard().wupa, after_stop, "the poller thread has ended");
    }
}

/// A card on the modelled reader opens the real door (card-only mode) and is logged.
#[tokio::test]
async fn a_card_on_the_reader_opens_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    config.door.mode = Mode::CardOnly;
    let store = Arc::new(SqliteStore::open(&dir.path().join("facereko.db")).await.unwrap());
    store.schema().migrate().await.unwrap();
    let alice = store.people().add_person("Alice").await.unwrap();
    let card: CardUid = hex(&DOUBLE).parse().unwrap();
    store.people().add_card(&card, alice.id).await.unwrap();

    let model = Mfrc522Model::new();
    let recorder = OutputRecorder::default();
    // The simulated outputs and camera, with the modelled reader instead of the simulated one.
    let hardware = Hardware {
        reader: Box::new(open(&model).unwrap()),
        taps: None,
        ..Hardware::simulated(&recorder, dir.path().join("no-camera"))
    };
    let door = facereko::app::start_door(
        &config,
        hardware,
        store.clone(),
        Arc::new(SimulatedEngine),
        crate::common::journal(&config),
        true,
    );

    model.place(&DOUBLE);
    wait_until("the relay is energised", || recorder.is_on(Output::Relay)).await;
    let mut rows = Vec::new();
    for _ in 0..1000 {
        rows = store.log().access_log(&LogQuery { limit: 10, ..LogQuery::default() }).await.unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(rows.len(), 1, "one attempt however often the resting card is read: {rows:?}");
    let event = &rows[0].event;
    assert_eq!((event.decision, event.reason), (Decision::Granted, Reason::CardOnly));
    assert_eq!(event.card_uid.as_ref().map(CardUid::as_str), Some("04112233445566"));
    assert_eq!(event.person_name.as_deref(), Some("Alice"));

    door.until(async {}).await.expect("the reader kept running until shutdown");
    assert!(!recorder.is_on(Output::Relay), "the door locks on shutdown");
}
