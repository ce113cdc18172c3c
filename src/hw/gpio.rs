//! LEDs, buzzer and lock relay on GPIO lines, written against embedded-hal's `OutputPin`, and the
//! doorbell button against its `InputPin`, so the logic runs off the Pi; the Raspberry Pi
//! constructors (rppal) are behind the `pi` feature.
//!
//! Every output starts at its safe level (set before the line becomes an output, so that an
//! active-low relay is never energised for a moment) and is driven there again when it is
//! dropped, which also happens while a panic unwinds: relay de-energised, buzzer silent,
//! red on, green off.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use embedded_hal::digital::{InputPin, OutputPin};
use tokio::sync::mpsc;

use super::debounce::Debounce;
use super::{Bell, Buzzer, HwError, Indicators, Lights, Lock, LockRelay};
use crate::checks::Checks;

pub const NAME: &str = "gpio";

/// BCM numbers and active levels of the outputs, and the doorbell button's pin. The defaults are
/// the original FaceReko wiring (red 21, green 20, buzzer 26) plus a relay on 16 and a bell
/// button on 17.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct GpioPins {
    pub red_led: u8,
    pub green_led: u8,
    pub buzzer: u8,
    pub relay: u8,
    /// Most relay boards for the Pi switch on a low input; set false for those.
    pub relay_active_high: bool,
    /// The doorbell button, wired between this pin and ground (the pin's pull-up holds it high).
    pub bell: u8,
    /// How long the button's level must hold to count: its contacts bounce when pressed.
    #[serde(with = "humantime_serde")]
    pub bell_debounce: Duration,
}

impl Default for GpioPins {
    fn default() -> Self {
        Self {
            red_led: 21,
            green_led: 20,
            buzzer: 26,
            relay: 16,
            relay_active_high: true,
            bell: 17,
            bell_debounce: Duration::from_millis(50),
        }
    }
}

impl GpioPins {
    /// What `config check` says of the LED pins.
    pub fn check_leds(&self, checks: &mut Checks, pins: &mut PinClaims) {
        pins.claim("hardware.gpio.red_led", self.red_led, checks);
        pins.claim("hardware.gpio.green_led", self.green_led, checks);
    }

    pub fn check_buzzer(&self, checks: &mut Checks, pins: &mut PinClaims) {
        pins.claim("hardware.gpio.buzzer", self.buzzer, checks);
    }

    pub fn check_relay(&self, checks: &mut Checks, pins: &mut PinClaims) {
        pins.claim("hardware.gpio.relay", self.relay, checks);
    }

    pub fn check_bell(&self, checks: &mut Checks, pins: &mut PinClaims) {
        pins.claim("hardware.gpio.bell", self.bell, checks);
        checks.duration("hardware.gpio.bell_debounce", self.bell_debounce, BELL_POLL, Duration::from_secs(1));
    }
}

/// How often the bell button's level is read: well inside any debounce time, and a few hundred
/// reads a second cost a Pi nothing worth measuring.
pub const BELL_POLL: Duration = Duration::from_millis(5);

/// The header pins the chosen backends of all roles use, so that `config check` refuses two
/// parts (outputs, the bell button, the reader's reset line) on one pin whichever roles they play.
#[derive(Debug, Default)]
pub struct PinClaims(Vec<(&'static str, u8)>);

impl PinClaims {
    /// Notes that the setting `key` uses BCM `pin`: a problem if the 40-pin header has no such
    /// pin, or if an earlier claim has it already.
    pub fn claim(&mut self, key: &'static str, pin: u8, checks: &mut Checks) {
        checks.check(pin <= 27, key, format!("BCM {pin} is not on the 40-pin header; use 2 to 27"));
        if let Some((other, _)) = self.0.iter().find(|(_, claimed)| *claimed == pin) {
            checks.check(false, key, format!("BCM {pin} is already {other}; give each part its own pin"));
        }
        self.0.push((key, pin));
    }
}

/// Makes a line an output already at the given level (true: high), for [`Line::open`].
pub trait OpenOutput<P>: FnOnce(bool) -> Result<P, HwError> {}
impl<P, F: FnOnce(bool) -> Result<P, HwError>> OpenOutput<P> for F {}

/// One output line that knows which level means "on".
pub struct Line<P: OutputPin> {
    pin: P,
    active_high: bool,
    role: &'static str,
}

impl<P: OutputPin> Line<P> {
    /// Opens the line through `open` at the level that means `on`: it shows no other level first.
    pub fn open(open: impl OpenOutput<P>, active_high: bool, role: &'static str, on: bool) -> Result<Self, HwError> {
        Ok(Self { pin: open(on == active_high)?, active_high, role })
    }

    pub fn set(&mut self, on: bool) -> Result<(), HwError> {
        let result = if on == self.active_high { self.pin.set_high() } else { self.pin.set_low() };
        result.map_err(|e| HwError::Io { role: self.role, detail: format!("cannot switch the output: {e:?}") })
    }
}

pub struct GpioIndicators<P: OutputPin> {
    red: Line<P>,
    green: Line<P>,
}

impl<P: OutputPin> GpioIndicators<P> {
    pub fn open(red: impl OpenOutput<P>, green: impl OpenOutput<P>) -> Result<Self, HwError> {
        Ok(Self { red: Line::open(red, true, "red LED", true)?, green: Line::open(green, true, "green LED", false)? })
    }
}

impl<P: OutputPin + Send> Indicators for GpioIndicators<P> {
    fn set(&mut self, lights: Lights) -> Result<(), HwError> {
        self.red.set(lights.red)?;
        self.green.set(lights.green)
    }
}

impl<P: OutputPin> Drop for GpioIndicators<P> {
    fn drop(&mut self) {
        let _ = self.red.set(true);
        let _ = self.green.set(false);
    }
}

pub struct GpioBuzzer<P: OutputPin>(Line<P>);

impl<P: OutputPin> GpioBuzzer<P> {
    pub fn open(pin: impl OpenOutput<P>) -> Result<Self, HwError> {
        Ok(Self(Line::open(pin, true, "buzzer", false)?))
    }
}

impl<P: OutputPin + Send> Buzzer for GpioBuzzer<P> {
    fn set(&mut self, on: bool) -> Result<(), HwError> {
        self.0.set(on)
    }
}

impl<P: OutputPin> Drop for GpioBuzzer<P> {
    fn drop(&mut self) {
        let _ = self.0.set(false);
    }
}

pub struct GpioRelay<P: OutputPin>(Line<P>);

impl<P: OutputPin> GpioRelay<P> {
    pub fn open(pin: impl OpenOutput<P>, active_high: bool) -> Result<Self, HwError> {
        Ok(Self(Line::open(pin, active_high, "lock relay", false)?))
    }
}

impl<P: OutputPin + Send> LockRelay for GpioRelay<P> {
    fn set(&mut self, lock: Lock) -> Result<(), HwError> {
        self.0.set(lock == Lock::Unlocked)
    }
}

impl<P: OutputPin> Drop for GpioRelay<P> {
    fn drop(&mut self) {
        let _ = self.0.set(false);
    }
}

/// A doorbell button on an input line that reads low while pressed (wired to ground, with the
/// pull-up on). A thread of its own reads the line every [`BELL_POLL`] and debounces it; presses
/// reach [`Bell::next_press`] through a channel. The thread ends when the bell is dropped.
pub struct GpioBell {
    presses: mpsc::Receiver<Result<(), HwError>>,
}

impl GpioBell {
    pub fn start<P: InputPin + Send + 'static>(
        mut pin: P,
        debounce: Duration,
        poll: Duration,
    ) -> Result<Self, HwError> {
        let (tx, presses) = mpsc::channel(4);
        std::thread::Builder::new()
            .name("doorbell".into())
            .spawn(move || {
                let started = Instant::now();
                let mut button = None;
                while !tx.is_closed() {
                    let pressed = match pin.is_low() {
                        Ok(low) => low,
                        Err(e) => {
                            let detail = format!("cannot read the button's pin: {e:?}");
                            let _ = tx.blocking_send(Err(HwError::Io { role: "bell", detail }));
                            return;
                        }
                    };
                    let button = button.get_or_insert_with(|| Debounce::new(debounce, pressed));
                    if button.feed(started.elapsed(), pressed) {
                        // A full queue means rings are under way already: the press can go.
                        let _ = tx.try_send(Ok(()));
                    }
                    std::thread::sleep(poll);
                }
            })
            .map_err(|e| HwError::Io {
                role: "bell",
                detail: format!("cannot start the thread that reads the button: {e}"),
            })?;
        Ok(Self { presses })
    }
}

#[async_trait]
impl Bell for GpioBell {
    async fn next_press(&mut self) -> Result<(), HwError> {
        self.presses.recv().await.unwrap_or_else(|| Err(HwError::Io { role: "bell", detail: "stopped".into() }))
    }
}

/// Raspberry Pi pins through rppal, with messages that say how to fix the usual problems.
#[cfg(feature = "pi")]
pub mod pi {
    use rppal::gpio::{Gpio, OutputPin};

    use super::*;

    fn unavailable(role: &'static str, error: rppal::gpio::Error) -> HwError {
        let detail = match &error {
            rppal::gpio::Error::UnknownModel => "this is not a Raspberry Pi (rppal: unknown model)".to_owned(),
            rppal::gpio::Error::PermissionDenied(path) => format!(
                "permission denied on {path}: add the user to the gpio group (sudo usermod -aG gpio $USER, then log in again)"
            ),
            rppal::gpio::Error::PinUsed(pin) => {
                format!("BCM {pin} is already used by another output: give each its own pin")
            }
            other => other.to_string(),
        };
        HwError::Unavailable { role, backend: NAME.to_owned(), detail }
    }

    /// Opens the pin as an output: rppal sets the level first and then the mode, so the pin
    /// never drives another level. Our own `Drop` sets the safe level; rppal must then leave it
    /// there instead of turning it back into a floating input.
    fn output(role: &'static str, bcm: u8) -> impl OpenOutput<OutputPin> {
        move |high| {
            let pin = Gpio::new().and_then(|gpio| gpio.get(bcm)).map_err(|e| unavailable(role, e))?;
            let mut pin = if high { pin.into_output_high() } else { pin.into_output_low() };
            pin.set_reset_on_drop(false);
            Ok(pin)
        }
    }

    pub fn indicators(pins: &GpioPins) -> Result<GpioIndicators<OutputPin>, HwError> {
        GpioIndicators::open(output("leds", pins.red_led), output("leds", pins.green_led))
    }

    pub fn buzzer(pins: &GpioPins) -> Result<GpioBuzzer<OutputPin>, HwError> {
        GpioBuzzer::open(output("buzzer", pins.buzzer))
    }

    pub fn relay(pins: &GpioPins) -> Result<GpioRelay<OutputPin>, HwError> {
        GpioRelay::open(output("lock", pins.relay), pins.relay_active_high)
    }

    /// The bell button's pin as an input with the Pi's own pull-up: released reads high, pressed
    /// (shorted to ground) low, and a loose wire never rings.
    pub fn bell(pins: &GpioPins) -> Result<GpioBell, HwError> {
        let pin = Gpio::new().and_then(|gpio| gpio.get(pins.bell)).map_err(|e| unavailable("bell", e))?;
        GpioBell::start(pin.into_input_pullup(), pins.bell_debounce, BELL_POLL)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A pin that records its electrical level, from the level it became an output at.
    #[derive(Clone, Default)]
    struct Probe(Arc<Mutex<Vec<bool>>>);

    impl Probe {
        fn levels(&self) -> Vec<bool> {
            self.0.lock().unwrap().clone()
        }

        /// Opens the probe as an output at the level asked for.
        fn opener(&self) -> impl OpenOutput<Probe> {
            let probe = self.clone();
            move |high| {
                probe.0.lock().unwrap().push(high);
                Ok(probe)
            }
        }
    }

    impl embedded_hal::digital::ErrorType for Probe {
        type Error = Infallible;
    }

    impl OutputPin for Probe {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.lock().unwrap().push(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.lock().unwrap().push(true);
            Ok(())
        }
    }

    #[test]
    fn outputs_start_and_end_safe() {
        let (red, green, buzzer, relay) = (Probe::default(), Probe::default(), Probe::default(), Probe::default());
        {
            let mut leds = GpioIndicators::open(red.opener(), green.opener()).unwrap();
            let mut beeper = GpioBuzzer::open(buzzer.opener()).unwrap();
            let mut lock = GpioRelay::open(relay.opener(), true).unwrap();
            assert_eq!(
                (red.levels(), green.levels(), buzzer.levels(), relay.levels()),
                (vec![true], vec![false], vec![false], vec![false])
            );
            leds.set(Lights { red: false, green: true }).unwrap();
            beeper.set(true).unwrap();
            lock.set(Lock::Unlocked).unwrap();
            assert_eq!(relay.levels().last(), Some(&true));
        }
        assert_eq!(relay.levels().last(), Some(&false), "dropped: de-energised");
        assert_eq!(buzzer.levels().last(), Some(&false));
        assert_eq!((red.levels().last(), green.levels().last()), (Some(&true), Some(&false)));
    }

    /// Issue 15, item 10: the pin used to become an output at whatever level it held (low after
    /// boot), energising an active-low relay until the first `set`.
    #[test]
    fn an_active_low_relay_is_energised_by_a_low_level_and_never_at_start() {
        let relay = Probe::default();
        {
            let mut lock = GpioRelay::open(relay.opener(), false).unwrap();
            assert_eq!(relay.levels(), [true], "an output from the start at the de-energised level");
            lock.set(Lock::Unlocked).unwrap();
        }
        assert_eq!(relay.levels(), [true, false, true], "opened high, energised low, dropped high");
    }

    /// A button's line: low while `pressed` is set, as a button to ground with a pull-up reads.
    #[derive(Clone, Default)]
    struct Button(Arc<std::sync::atomic::AtomicBool>);

    impl Button {
        fn set(&self, pressed: bool) {
            self.0.store(pressed, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl embedded_hal::digital::ErrorType for Button {
        type Error = Infallible;
    }

    impl InputPin for Button {
        fn is_high(&mut self) -> Result<bool, Infallible> {
            Ok(!self.0.load(std::sync::atomic::Ordering::SeqCst))
        }
        fn is_low(&mut self) -> Result<bool, Infallible> {
            Ok(self.0.load(std::sync::atomic::Ordering::SeqCst))
        }
    }

    /// Whether the bell reports a press within 300 ms (real time: the bell reads on a thread).
    async fn next(bell: &mut GpioBell) -> bool {
        tokio::time::timeout(Duration::from_millis(300), bell.next_press()).await.is_ok()
    }

    #[tokio::test]
    async fn a_held_button_rings_once_and_again_after_a_release() {
        let button = Button::default();
        let mut bell = GpioBell::start(button.clone(), Duration::from_millis(20), Duration::from_millis(1)).unwrap();
        assert!(!next(&mut bell).await, "nothing pressed yet");
        button.set(true);
        assert!(next(&mut bell).await, "held past the debounce time: a press");
        assert!(!next(&mut bell).await, "still held: no second press");
        button.set(false);
        tokio::time::sleep(Duration::from_millis(60)).await;
        button.set(true);
        assert!(next(&mut bell).await, "released and pressed again");
    }

    #[test]
    fn a_panic_leaves_the_relay_de_energised() {
        let relay = Probe::default();
        let probe = relay.clone();
        let outcome = std::panic::catch_unwind(move || {
            let mut lock = GpioRelay::open(probe.opener(), true).unwrap();
            lock.set(Lock::Unlocked).unwrap();
            panic!("something went wrong while the door was open");
        });
        assert!(outcome.is_err());
        assert_eq!(relay.levels().last(), Some(&false));
    }
}
