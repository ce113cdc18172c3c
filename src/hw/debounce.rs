//! Debouncing a push button: its contacts bounce for a few milliseconds when pressed and when
//! released, so a level counts only once it has held for the settle time. Pure: levels go in with
//! the time they were seen, presses come out; no clock, no pin.

use std::time::Duration;

/// One button's debouncing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    settle: Duration,
    /// The level accepted last (true: pressed).
    stable: bool,
    /// A level other than `stable`, and when it was first seen without a bounce back since.
    changing: Option<(bool, Duration)>,
}

impl Debounce {
    /// A button whose level must hold for `settle` to count, seen first as `pressed` (a button
    /// held down at start is not a press).
    pub fn new(settle: Duration, pressed: bool) -> Self {
        Self { settle, stable: pressed, changing: None }
    }

    /// The level seen at `at` (time since any fixed start, never going back): an edge or a
    /// sample. True when this completes a press: the button has been down for the settle time
    /// after having been up for it. A release completes nothing.
    pub fn feed(&mut self, at: Duration, pressed: bool) -> bool {
        if pressed == self.stable {
            // A bounce back: whatever was changing did not hold.
            self.changing = None;
            return false;
        }
        let since = match self.changing {
            Some((level, since)) if level == pressed => since,
            _ => {
                self.changing = Some((pressed, at));
                at
            }
        };
        if at.saturating_sub(since) < self.settle {
            return false;
        }
        self.stable = pressed;
        self.changing = None;
        pressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `(milliseconds, pressed)` in order; the times at which presses completed.
    fn presses(levels: &[(u64, bool)]) -> Vec<u64> {
        let mut button = Debounce::new(SETTLE, false);
        levels.iter().filter(|(at, pressed)| button.feed(ms(*at), *pressed)).map(|(at, _)| *at).collect()
    }

    #[test]
    fn a_bouncing_press_counts_once_when_it_has_held() {
        // Bounces for 4 ms, then held; sampled every 10 ms.
        let levels = [(0, true), (1, false), (2, true), (4, false), (5, true), (15, true), (25, true), (55, true)];
        assert_eq!(presses(&levels), [55], "50 ms after the last bounce");
        let held = [(0, true), (10, true), (50, true), (60, true), (500, true)];
        assert_eq!(presses(&held), [50], "held down: one press, not one per sample");
    }

    #[test]
    fn glitches_shorter_than_the_settle_time_are_not_presses() {
        let levels = [(0, true), (20, false), (100, true), (149, true), (150, false), (400, false)];
        assert!(presses(&levels).is_empty());
    }

    #[test]
    fn a_new_press_needs_a_settled_release_first() {
        let levels = [
            (0, true),
            (50, true),
            // Released with bounces that reach down again: not a second press.
            (200, false),
            (201, true),
            (230, true),
            (260, false),
            (300, false),
            (310, false),
            // Released for 50 ms by now: the next press counts.
            (400, true),
            (460, true),
        ];
        assert_eq!(presses(&levels), [50, 460]);
    }

    #[test]
    fn a_button_held_at_start_rings_only_after_a_release() {
        let mut button = Debounce::new(SETTLE, true);
        assert!(!button.feed(ms(0), true));
        assert!(!button.feed(ms(100), true));
        assert!(!button.feed(ms(200), false));
        assert!(!button.feed(ms(260), false));
        assert!(!button.feed(ms(300), true));
        assert!(button.feed(ms(350), true));
    }

    #[test]
    fn without_a_settle_time_the_first_edge_counts() {
        let mut button = Debounce::new(Duration::ZERO, false);
        assert!(button.feed(ms(7), true));
        assert!(!button.feed(ms(8), true));
        assert!(!button.feed(ms(9), false));
        assert!(button.feed(ms(10), true));
    }
}
