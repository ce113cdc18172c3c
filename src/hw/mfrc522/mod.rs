//! The MFRC522 card reader over SPI, through the `mfrc522` crate and embedded-hal 1.0, so that
//! it runs off the Pi against a model of the chip. The Raspberry Pi constructor is in [`pi`].
//!
//! The chip has to be polled and SPI is blocking, so one thread owns the chip and polls it:
//! WUPA, then anticollision and SELECT for the UID (4, 7 or 10 bytes), then HLTA. WUPA also
//! wakes halted cards, so a card resting on the reader is reported once per poll (every
//! `poll_interval`); the door debounces repeated reads. With REQA it would be reported once and
//! then stay halted until it left the field.
//!
//! Readers that silently die after hours are the usual complaint about DIY card readers, so the
//! thread also checks the chip's version register every `health_interval`. A wrong answer, or
//! SPI failing several times in a row, gets a hard reset through the reset pin and a fresh
//! initialisation; if that keeps failing it retries with a growing pause (1 s doubling to 30 s),
//! with a warning each time, for as long as the reader is in use.

#[cfg(feature = "pi")]
mod pi;

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::mfrc522::comm::blocking::spi::{DummyDelay, SpiInterface};
use ::mfrc522::{Initialized, Mfrc522};
use async_trait::async_trait;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::gpio::PinClaims;
use super::{CardReader, HwError, Trouble};
use crate::card::CardUid;
use crate::checks::Checks;

pub const NAME: &str = "mfrc522";
const ROLE: &str = "reader";

/// What VersionReg reads on chips that work: NXP's MFRC522 version 1.0 (0x91) and 2.0 (0x92),
/// and the clones found on cheap boards (0x88, e.g. Fudan FM17522; 0xB2). Anything else,
/// typically 0x00 or 0xFF, means the chip is not answering.
const KNOWN_VERSIONS: [u8; 4] = [0x91, 0x92, 0x88, 0xB2];
/// Longest one chip operation (init, WUPA, select, halt, version) may take. The chip's own timer
/// ends a Transceive after 25 ms; the `mfrc522` crate waits in unbounded loops for it.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(200);
/// SPI failures in a row that count as the reader having stopped answering.
const SPI_FAILURES_BEFORE_RESET: u32 = 3;
const RESET_PULSE: Duration = Duration::from_millis(1);
/// Time for the oscillator to start after the reset pin goes high (the datasheet needs far less).
const STARTUP_TIME: Duration = Duration::from_millis(50);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// Reads waiting for the door; more are dropped (a resting card is read again at the next poll).
const QUEUE: usize = 16;

/// The reader's wiring and timing: `[hardware.mfrc522]` in the config, and what the driver runs
/// with. The defaults are the original wiring: SPI 0, CE0, reset on BCM 25, at 1 MHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mfrc522Settings {
    /// `/dev/spidev<spi_bus>.<chip_select>`.
    pub spi_bus: u8,
    pub chip_select: u8,
    /// BCM number of the line wired to the chip's NRSTPD (RST) pin.
    pub reset_pin: u8,
    /// SPI clock; 1 MHz is safe on jumper wires.
    pub clock_hz: u32,
    /// Pause between two polls for a card.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often the chip's version register is checked; a chip that stops answering is reset.
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
}

impl Mfrc522Settings {
    /// The defaults, usable in constants: `Mfrc522Settings { poll_interval, ..Mfrc522Settings::DEFAULT }`.
    pub const DEFAULT: Self = Self {
        spi_bus: 0,
        chip_select: 0,
        reset_pin: 25,
        clock_hz: 1_000_000,
        poll_interval: Duration::from_millis(50),
        health_interval: Duration::from_secs(10),
    };

    /// What `config check` says of these settings; the reset pin is claimed on the GPIO header.
    pub fn check(&self, checks: &mut Checks, pins: &mut PinClaims) {
        pins.claim("hardware.mfrc522.reset_pin", self.reset_pin, checks);
        checks.check(
            (100_000..=10_000_000).contains(&self.clock_hz),
            "hardware.mfrc522.clock_hz",
            format!("{} Hz is out of range; use 100000 to 10000000 (1000000 is safe on jumper wires)", self.clock_hz),
        );
        checks.duration(
            "hardware.mfrc522.poll_interval",
            self.poll_interval,
            Duration::from_millis(10),
            Duration::from_secs(1),
        );
        checks.duration(
            "hardware.mfrc522.health_interval",
            self.health_interval,
            Duration::from_secs(1),
            Duration::from_secs(600),
        );
    }
}

impl Default for Mfrc522Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the poller has seen of the chip; cheap to clone, readable from any thread.
#[derive(Debug, Clone, Default)]
pub struct ReaderHealth(Arc<HealthCounters>);

#[derive(Debug, Default)]
struct HealthCounters {
    resets: AtomicU64,
    version: AtomicU8,
    /// Set while resets do not bring the chip back.
    trouble: Trouble,
}

impl ReaderHealth {
    /// Hard resets made to bring the chip back (not counting the one at start-up).
    pub fn resets(&self) -> u64 {
        self.0.resets.load(Ordering::Relaxed)
    }

    /// The version register's last good answer.
    pub fn version(&self) -> u8 {
        self.0.version.load(Ordering::Relaxed)
    }

    /// Why the chip does not answer, while resets do not bring it back.
    pub fn trouble(&self) -> Trouble {
        self.0.trouble.clone()
    }
}

/// Waits by sleeping the thread: the delay used on the Pi.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleep;

impl DelayNs for ThreadSleep {
    fn delay_ns(&mut self, ns: u32) {
        std::thread::sleep(Duration::from_nanos(ns.into()));
    }
}

/// Card UIDs read by the poller thread.
pub struct Mfrc522Reader {
    uids: mpsc::Receiver<CardUid>,
    /// Why the poller thread ended, when it did.
    stopped: Arc<Mutex<Option<String>>>,
    health: ReaderHealth,
}

impl Mfrc522Reader {
    /// Starts the poller thread over `spi`, with `reset` wired to the chip's NRSTPD pin; of the
    /// settings it uses the intervals (the wiring is `spi` and `reset`). Returns once the chip
    /// has been reset, initialised and asked its version. A chip that does not answer a known
    /// version does not stop the door from starting: [`CardReader::trouble`] says why, and the
    /// poller resets the chip with growing pauses until it answers, as when it fails later.
    pub fn new<SPI, RST, D>(spi: SPI, reset: RST, delay: D, settings: Mfrc522Settings) -> Result<Self, HwError>
    where
        SPI: SpiDevice + Send + 'static,
        RST: OutputPin + Send + 'static,
        D: DelayNs + Send + 'static,
    {
        let (uids_tx, uids) = mpsc::channel(QUEUE);
        let (started_tx, started) = std::sync::mpsc::sync_channel(1);
        let stopped = Arc::new(Mutex::new(None));
        let health = ReaderHealth::default();
        let thread = {
            let (stopped, health) = (Arc::clone(&stopped), health.clone());
            move || {
                let mut poller = Poller::new(spi, reset, delay, settings, uids_tx.clone(), health.clone());
                let start = poller.start_chip();
                if let Err(why) = &start {
                    health.0.trouble.set(not_answering(why));
                }
                let _ = started_tx.send(start);
                if let Err(panic) = catch_unwind(AssertUnwindSafe(move || poller.run())) {
                    let why = panic_message(panic.as_ref());
                    tracing::error!(error = %why, "the MFRC522 poller crashed");
                    *stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("it crashed: {why}"));
                }
                // Only now may the reader see the channel close: the reason is in place.
                drop(uids_tx);
            }
        };
        std::thread::Builder::new()
            .name("mfrc522".into())
            .spawn(thread)
            .map_err(|e| unavailable(format!("cannot start the poller thread: {e}")))?;
        match started.recv() {
            Ok(Ok(version)) => tracing::info!(version = %hex(version), "the MFRC522 card reader is ready"),
            Ok(Err(why)) => tracing::error!(
                "the MFRC522 card reader {}; no card is read until it answers, and it is reset again with \
                 growing pauses",
                not_answering(&why)
            ),
            Err(_) => return Err(unavailable("the MFRC522 poller crashed while starting".to_owned())),
        }
        Ok(Self { uids, stopped, health })
    }

    pub fn health(&self) -> ReaderHealth {
        self.health.clone()
    }
}

#[async_trait]
impl CardReader for Mfrc522Reader {
    async fn next_uid(&mut self) -> Result<CardUid, HwError> {
        match self.uids.recv().await {
            Some(uid) => Ok(uid),
            None => {
                let why = self.stopped.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let why = why.unwrap_or_else(|| "its thread ended".to_owned());
                Err(HwError::Io { role: ROLE, detail: format!("the MFRC522 poller stopped: {why}") })
            }
        }
    }

    fn trouble(&self) -> Trouble {
        self.health.trouble()
    }
}

/// What is wrong when the chip does not come up, with what to look at.
fn not_answering(why: &str) -> String {
    format!("does not work: {why}; check its wiring and 3.3 V supply")
}

fn unavailable(detail: String) -> HwError {
    HwError::Unavailable { role: ROLE, backend: NAME.to_owned(), detail }
}

fn hex(byte: u8) -> String {
    format!("0x{byte:02X}")
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (_, Some(text)) => text.clone(),
        _ => "unknown panic".to_owned(),
    }
}

/// The SPI device, shared by the poller and every `Mfrc522` built over it: a failed `init()`
/// consumes its driver, and the device must outlive it for the next attempt. It also ends
/// operations that overrun their deadline, as the `mfrc522` crate waits for the chip in
/// unbounded loops (the soft reset, Transceive) and a chip answering 0x00 or 0xFF to every read
/// would otherwise hold the poller forever.
struct SharedBus<SPI>(Rc<Bus<SPI>>);

struct Bus<SPI> {
    spi: RefCell<SPI>,
    deadline: Cell<Option<Instant>>,
}

impl<SPI> SharedBus<SPI> {
    fn new(spi: SPI) -> Self {
        Self(Rc::new(Bus { spi: RefCell::new(spi), deadline: Cell::new(None) }))
    }

    fn handle(&self) -> Self {
        Self(Rc::clone(&self.0))
    }

    /// Gives the next chip operation [`OPERATION_TIMEOUT`] to finish.
    fn arm(&self) {
        self.0.deadline.set(Some(Instant::now() + OPERATION_TIMEOUT));
    }
}

#[derive(Debug)]
enum BusError<E> {
    Spi(E),
    /// The operation overran its deadline: the chip kept answering "not done yet".
    Overran,
}

impl<E: embedded_hal::spi::Error> embedded_hal::spi::Error for BusError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            BusError::Spi(e) => e.kind(),
            BusError::Overran => ErrorKind::Other,
        }
    }
}

impl<SPI: SpiDevice> ErrorType for SharedBus<SPI> {
    type Error = BusError<SPI::Error>;
}

impl<SPI: SpiDevice> SpiDevice for SharedBus<SPI> {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        if self.0.deadline.get().is_some_and(|deadline| Instant::now() > deadline) {
            return Err(BusError::Overran);
        }
        self.0.spi.borrow_mut().transaction(operations).map_err(BusError::Spi)
    }
}

type Chip<SPI> = Mfrc522<SpiInterface<SharedBus<SPI>, DummyDelay>, Initialized>;
type ChipError<SPI> = ::mfrc522::Error<BusError<<SPI as ErrorType>::Error>>;

fn describe<E: std::fmt::Debug>(error: &::mfrc522::Error<BusError<E>>) -> String {
    use ::mfrc522::Error;
    match error {
        Error::Comm(BusError::Spi(e)) => format!("SPI error: {e:?}"),
        Error::Comm(BusError::Overran) => {
            format!("the chip did not finish within {OPERATION_TIMEOUT:?} (it keeps answering as if busy)")
        }
        Error::Timeout => "no card answered".to_owned(),
        Error::Collision => "several cards answered at once".to_owned(),
        Error::Crc => "the card's answer had a wrong CRC".to_owned(),
        Error::IncompleteFrame => "the card's answer was cut short".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The poller: owns the chip and its reset pin, and lives on its own thread.
struct Poller<SPI: SpiDevice, RST, D> {
    bus: SharedBus<SPI>,
    /// `None` while the chip needs a reset.
    chip: Option<Chip<SPI>>,
    reset: RST,
    delay: D,
    settings: Mfrc522Settings,
    uids: mpsc::Sender<CardUid>,
    health: ReaderHealth,
    spi_failures: u32,
}

impl<SPI, RST, D> Poller<SPI, RST, D>
where
    SPI: SpiDevice,
    RST: OutputPin,
    D: DelayNs,
{
    fn new(
        spi: SPI,
        reset: RST,
        delay: D,
        settings: Mfrc522Settings,
        uids: mpsc::Sender<CardUid>,
        health: ReaderHealth,
    ) -> Self {
        Self { bus: SharedBus::new(spi), chip: None, reset, delay, settings, uids, health, spi_failures: 0 }
    }

    fn sleep(&mut self, duration: Duration) {
        self.delay.delay_us(u32::try_from(duration.as_micros()).unwrap_or(u32::MAX));
    }

    /// Polls until the reader is dropped.
    fn run(mut self) {
        let mut next_check = Instant::now() + self.settings.health_interval;
        while !self.uids.is_closed() {
            if self.chip.is_none() {
                self.recover();
                next_check = Instant::now() + self.settings.health_interval;
                continue;
            }
            if Instant::now() >= next_check {
                next_check = Instant::now() + self.settings.health_interval;
                self.check_health();
            }
            self.poll();
            self.sleep(self.settings.poll_interval);
        }
        tracing::debug!("the card reader was dropped; the MFRC522 poller stops");
    }

    /// Hard reset, initialisation and a version check; the version on success.
    fn start_chip(&mut self) -> Result<u8, String> {
        self.chip = None;
        self.pulse_reset();
        self.bus.arm();
        let mut chip = Mfrc522::new(SpiInterface::new(self.bus.handle()))
            .init()
            .map_err(|e| format!("initialising it failed: {}", describe(&e)))?;
        self.bus.arm();
        let version = chip.version().map_err(|e| format!("reading its version failed: {}", describe(&e)))?;
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(format!("its version register reads {} (a working chip answers 0x91 or 0x92)", hex(version)));
        }
        self.health.0.version.store(version, Ordering::Relaxed);
        self.chip = Some(chip);
        self.spi_failures = 0;
        Ok(version)
    }

    fn pulse_reset(&mut self) {
        let low = self.reset.set_low();
        self.sleep(RESET_PULSE);
        let high = self.reset.set_high();
        if let Err(e) = low.and(high) {
            tracing::warn!(error = ?e, "cannot drive the MFRC522 reset pin; relying on its soft reset");
        }
        self.sleep(STARTUP_TIME);
    }

    /// Resets the chip until it answers again, pausing longer after each failure.
    fn recover(&mut self) {
        let mut pause = FIRST_RETRY;
        loop {
            let resets = self.health.0.resets.fetch_add(1, Ordering::Relaxed) + 1;
            match self.start_chip() {
                Ok(version) => {
                    tracing::info!(resets, version = %hex(version), "the MFRC522 reader was reset and answers again");
                    self.health.0.trouble.clear();
                    return;
                }
                Err(why) => {
                    tracing::warn!(resets, retry_in = ?pause, "resetting the MFRC522 did not bring it back: {why}");
                    self.health.0.trouble.set(not_answering(&why));
                }
            }
            self.sleep(pause);
            if self.uids.is_closed() {
                return;
            }
            pause = (pause * 2).min(LONGEST_RETRY);
        }
    }

    fn check_health(&mut self) {
        let Some(chip) = self.chip.as_mut() else { return };
        self.bus.arm();
        match chip.version() {
            Ok(version) if KNOWN_VERSIONS.contains(&version) => self.spi_failures = 0,
            Ok(version) => {
                tracing::warn!(version = %hex(version), "the MFRC522 answers nonsense from its version register; resetting it");
                self.chip = None;
            }
            Err(e) => self.spi_failed(&e),
        }
    }

    fn poll(&mut self) {
        match self.read_card() {
            Ok(uid) => {
                self.spi_failures = 0;
                if let Some(uid) = uid {
                    self.report(uid);
                }
            }
            Err(e @ ::mfrc522::Error::Comm(_)) => self.spi_failed(&e),
            Err(e) => {
                self.spi_failures = 0;
                tracing::debug!(error = %describe(&e), "no card read this time");
            }
        }
    }

    /// WUPA, select and halt: the UID of the card in the field, if there is one.
    fn read_card(&mut self) -> Result<Option<CardUid>, ChipError<SPI>> {
        let Some(chip) = self.chip.as_mut() else { return Ok(None) };
        self.bus.arm();
        let atqa = match chip.wupa() {
            Ok(atqa) => atqa,
            Err(::mfrc522::Error::Timeout) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.bus.arm();
        let uid = chip.select(&atqa)?;
        self.bus.arm();
        if let Err(e) = chip.hlta() {
            tracing::debug!(error = %describe(&e), "the card did not take the halt command");
        }
        match CardUid::from_bytes(uid.as_bytes()) {
            Ok(uid) => Ok(Some(uid)),
            Err(e) => {
                tracing::warn!(error = %e, "the MFRC522 returned an impossible UID");
                Ok(None)
            }
        }
    }

    fn report(&mut self, uid: CardUid) {
        tracing::debug!(card = %uid, "card read");
        if let Err(mpsc::error::TrySendError::Full(uid)) = self.uids.try_send(uid) {
            tracing::debug!(card = %uid, "the door has not taken the earlier reads; dropping this one");
        }
    }

    fn spi_failed(&mut self, error: &ChipError<SPI>) {
        self.spi_failures += 1;
        tracing::debug!(failures = self.spi_failures, error = %describe(error), "talking to the MFRC522 failed");
        if self.spi_failures >= SPI_FAILURES_BEFORE_RESET {
            tracing::warn!(
                failures = self.spi_failures,
                error = %describe(error),
                "the MFRC522 stopped answering over SPI; resetting it"
            );
            self.chip = None;
        }
    }
}
