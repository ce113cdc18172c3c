//! Timed buzzer patterns, played by the driver loop without blocking it.

use std::time::Duration;

use tokio::time::Instant;

use super::{Buzzer, HwError};

/// `count` beeps of `on`, separated by `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeepPattern {
    pub count: u32,
    pub on: Duration,
    pub off: Duration,
}

/// Plays one pattern at a time on a buzzer; a new pattern replaces the old one.
pub struct Beeper {
    buzzer: Box<dyn Buzzer>,
    /// Remaining switch points: when to switch and to what.
    steps: Vec<(Instant, bool)>,
}

impl Beeper {
    pub fn new(buzzer: Box<dyn Buzzer>) -> Self {
        Self { buzzer, steps: Vec::new() }
    }

    pub fn play(&mut self, pattern: BeepPattern, now: Instant) -> Result<(), HwError> {
        if pattern.count == 0 || pattern.on.is_zero() {
            // Silence is a pattern too: it must end any beep still sounding.
            return self.stop();
        }
        self.steps.clear();
        let mut at = now;
        for i in 0..pattern.count {
            if i > 0 {
                at += pattern.off;
            }
            self.steps.push((at, true));
            at += pattern.on;
            self.steps.push((at, false));
        }
        // Kept in reverse so the next step is popped from the end.
        self.steps.reverse();
        self.advance(now)
    }

    pub fn stop(&mut self) -> Result<(), HwError> {
        self.steps.clear();
        self.buzzer.set(false)
    }

    /// When the buzzer must next switch, if a pattern is playing.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.steps.last().map(|(at, _)| *at)
    }

    /// Applies every switch that is due.
    pub fn advance(&mut self, now: Instant) -> Result<(), HwError> {
        while let Some(&(at, on)) = self.steps.last() {
            if at > now {
                break;
            }
            self.steps.pop();
            self.buzzer.set(on)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder(Arc<Mutex<Vec<bool>>>);
    impl Buzzer for Recorder {
        fn set(&mut self, on: bool) -> Result<(), HwError> {
            self.0.lock().unwrap().push(on);
            Ok(())
        }
    }

    #[test]
    fn plays_three_short_beeps_on_schedule() {
        let switches = Arc::new(Mutex::new(Vec::new()));
        let mut beeper = Beeper::new(Box::new(Recorder(switches.clone())));
        let start = Instant::now();
        let ms = Duration::from_millis;
        beeper.play(BeepPattern { count: 3, on: ms(100), off: ms(50) }, start).unwrap();
        assert_eq!(*switches.lock().unwrap(), [true]);
        assert_eq!(beeper.next_deadline(), Some(start + ms(100)));
        beeper.advance(start + ms(160)).unwrap();
        assert_eq!(*switches.lock().unwrap(), [true, false, true]);
        beeper.advance(start + ms(1000)).unwrap();
        assert_eq!(*switches.lock().unwrap(), [true, false, true, false, true, false]);
        assert_eq!(beeper.next_deadline(), None);
    }

    #[test]
    fn an_empty_pattern_silences_a_beep_under_way() {
        let switches = Arc::new(Mutex::new(Vec::new()));
        let mut beeper = Beeper::new(Box::new(Recorder(switches.clone())));
        let start = Instant::now();
        beeper.play(BeepPattern { count: 1, on: Duration::from_secs(2), off: Duration::ZERO }, start).unwrap();
        beeper.play(BeepPattern { count: 0, on: Duration::from_millis(150), off: Duration::ZERO }, start).unwrap();
        assert_eq!(*switches.lock().unwrap(), [true, false]);
        assert_eq!(beeper.next_deadline(), None);
    }

    #[test]
    fn a_new_pattern_replaces_the_one_playing() {
        let switches = Arc::new(Mutex::new(Vec::new()));
        let mut beeper = Beeper::new(Box::new(Recorder(switches.clone())));
        let start = Instant::now();
        let ms = Duration::from_millis;
        beeper.play(BeepPattern { count: 1, on: ms(2000), off: ms(0) }, start).unwrap();
        beeper.play(BeepPattern { count: 2, on: ms(100), off: ms(100) }, start + ms(500)).unwrap();
        beeper.advance(start + ms(10_000)).unwrap();
        assert_eq!(*switches.lock().unwrap(), [true, true, false, true, false], "ends off, on the new schedule");
    }

    #[test]
    fn stop_silences_at_once() {
        let switches = Arc::new(Mutex::new(Vec::new()));
        let mut beeper = Beeper::new(Box::new(Recorder(switches.clone())));
        let start = Instant::now();
        beeper.play(BeepPattern { count: 1, on: Duration::from_secs(2), off: Duration::ZERO }, start).unwrap();
        beeper.stop().unwrap();
        assert_eq!(*switches.lock().unwrap(), [true, false]);
        assert_eq!(beeper.next_deadline(), None);
    }
}
