//! When people may come in: validity windows, named weekly schedules and holidays, and the pure
//! rule that says whether a card opens at a given moment.
//!
//! Everything is judged in the configured time zone's wall-clock time, so a window "02:00–03:00"
//! does not happen on the day clocks spring past it and happens twice on the day they fall back
//! through it (Europe/Berlin; in America/New_York the repeated hour is 01:00–02:00). A window
//! whose end is not after its start runs past midnight and belongs to the day it starts on, also
//! for holidays. A person's limits and their card's limits both apply, so a card can only narrow.
//!
//! On a site of several doors a person may also be kept to some doors ([`DoorRight`]), each with
//! its own schedule that narrows further; people never restricted may use every door. Groups of
//! people ([`Group`]) are kept to doors the same way, and a member of a group kept to doors is
//! kept too: they may use their own doors and their groups' ([`AccessRules::allowed_doors`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::access::{PersonId, Reason};
use crate::card::CardUid;
use crate::checks::Checks;

/// `[schedule]`: the time zone schedules are read in and which clock is trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleConfig {
    /// IANA name such as "Europe/Berlin"; the database of zones is built in.
    pub time_zone: String,
    pub clock: ClockSource,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self { time_zone: "UTC".into(), clock: ClockSource::System }
    }
}

crate::names::named_enum! {
    /// How the daemon learns that the system clock can be trusted.
    pub enum ClockSource {
        /// systemd-timesyncd's flag file, else the kernel's NTP status (adjtimex).
        System = "system",
        /// Always trusted: a real-time clock module keeps the time across power cuts.
        Trusted = "trusted",
    }
}

impl ScheduleConfig {
    /// The configured zone; [`ScheduleConfig::check`] has said why when it is unknown.
    pub fn zone(&self) -> Result<TimeZone, ScheduleError> {
        TimeZone::get(&self.time_zone).map_err(|_| ScheduleError::UnknownZone(self.time_zone.clone()))
    }

    pub fn check(&self, checks: &mut Checks) {
        checks.check(
            self.zone().is_ok(),
            "schedule.time_zone",
            format!("{:?} is not a time zone; use an IANA name such as \"Europe/Berlin\" or \"UTC\"", self.time_zone),
        );
    }

    /// What the door asks when a card has been looked up. An unknown zone never gets this far
    /// (the config check refuses it), so it falls back to UTC rather than failing here.
    pub fn clock(&self) -> ScheduleClock {
        let sync: Arc<dyn ClockSync> = match self.clock {
            ClockSource::System => Arc::new(SystemClockSync::default()),
            ClockSource::Trusted => Arc::new(TrustedClock),
        };
        ScheduleClock { zone: self.zone().unwrap_or(TimeZone::UTC), sync }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule.time_zone {0:?} is not a known time zone")]
    UnknownZone(String),
}

/// Whether the system clock has been set from a time source since boot. A Pi has no battery
/// clock: until then it may think it is any day.
pub trait ClockSync: Send + Sync + fmt::Debug {
    fn is_synchronised(&self) -> bool;
}

/// systemd-timesyncd touches a flag file once it has the time; other NTP clients clear the
/// kernel's "unsynchronised" status bit.
#[derive(Debug)]
pub struct SystemClockSync {
    flag_file: PathBuf,
}

impl Default for SystemClockSync {
    fn default() -> Self {
        Self { flag_file: PathBuf::from("/run/systemd/timesync/synchronized") }
    }
}

impl ClockSync for SystemClockSync {
    fn is_synchronised(&self) -> bool {
        self.flag_file.exists() || kernel_clock_synchronised()
    }
}

/// The kernel's NTP status, read without changing anything (`modes = 0`).
fn kernel_clock_synchronised() -> bool {
    // SAFETY: a zeroed timex is valid, and adjtimex with modes 0 only fills it in.
    let (state, status) = unsafe {
        let mut status: libc::timex = std::mem::zeroed();
        (libc::adjtimex(&mut status), status)
    };
    state != -1 && state != libc::TIME_ERROR && status.status & libc::STA_UNSYNC == 0
}

#[derive(Debug)]
pub struct TrustedClock;

impl ClockSync for TrustedClock {
    fn is_synchronised(&self) -> bool {
        true
    }
}

/// The zone and clock state the door judges cards by.
#[derive(Debug, Clone)]
pub struct ScheduleClock {
    pub zone: TimeZone,
    pub sync: Arc<dyn ClockSync>,
}

impl ScheduleClock {
    /// Whether `card` of `person` opens `door` now, by the system clock.
    pub fn admit(&self, rules: &AccessRules, door: &str, person: PersonId, card: &CardUid) -> Admission {
        let clock = if self.sync.is_synchronised() { ClockState::Synchronised } else { ClockState::Unsynchronised };
        rules.admit(door, person, card, Timestamp::now(), &self.zone, clock)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockState {
    Synchronised,
    Unsynchronised,
}

/// What the door rights and time limits say about a card at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    Open,
    /// Refused with `not_allowed_here`, `outside_schedule`, `not_yet_valid`, `expired` or
    /// `clock_not_synced`.
    Closed(Reason),
}

/// Days of the week as a set, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Weekdays(u8);

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Weekdays {
    pub const ALL: Weekdays = Weekdays(0b111_1111);

    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set from stored bits; bits beyond Sunday are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }

    fn bit(day: Weekday) -> u8 {
        1 << (day.to_monday_zero_offset() as u8)
    }

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & Self::bit(day) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Written as "mon-fri", "sat,sun", "tue" or "daily".
impl fmt::Display for Weekdays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("daily");
        }
        let names: Vec<&str> = (0..7).filter(|i| self.0 & (1 << i) != 0).map(|i| DAY_NAMES[i]).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for Weekdays {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let day = |name: &str| {
            DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
                format!("{name:?} is not a weekday; write days as mon,tue,wed,thu,fri,sat,sun, a range such as mon-fri, or daily")
            })
        };
        if text.trim().eq_ignore_ascii_case("daily") {
            return Ok(Self::ALL);
        }
        let mut bits = 0u8;
        for part in text.split(',') {
            let (first, last) = match part.split_once('-') {
                Some((first, last)) => (day(first)?, day(last)?),
                None => (day(part)?, day(part)?),
            };
            // A range may wrap past Sunday: "fri-mon".
            let mut i = first;
            loop {
                bits |= 1 << i;
                if i == last {
                    break;
                }
                i = (i + 1) % 7;
            }
        }
        Ok(Self(bits))
    }
}

/// A time of day to the minute, 00:00 to 24:00 (24:00 only as a window's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DayMinute(u16);

impl DayMinute {
    pub const MIDNIGHT: DayMinute = DayMinute(0);
    pub const END_OF_DAY: DayMinute = DayMinute(24 * 60);

    /// Minutes after midnight; `None` past 24:00.
    pub fn new(minutes: u16) -> Option<Self> {
        (minutes <= Self::END_OF_DAY.0).then_some(Self(minutes))
    }

    pub fn minutes(self) -> u16 {
        self.0
    }

    fn of(time: DateTime) -> Self {
        Self(time.hour() as u16 * 60 + time.minute() as u16)
    }
}

impl fmt::Display for DayMinute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for DayMinute {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a time of day; write it as 09:00 (24:00 ends a day)");
        let (hours, minutes) = text.trim().split_once(':').ok_or_else(bad)?;
        let (hours, minutes): (u16, u16) = (hours.parse().map_err(|_| bad())?, minutes.parse().map_err(|_| bad())?);
        if minutes >= 60 {
            return Err(bad());
        }
        Self::new(hours * 60 + minutes).ok_or_else(bad)
    }
}

/// Open on `days` from `start` to `end`; an end not after the start runs past midnight into the
/// next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub days: Weekdays,
    pub start: DayMinute,
    pub end: DayMinute,
}

impl Window {
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// Why the window cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.days.is_empty() {
            return Some("a window needs at least one weekday".into());
        }
        if self.start == self.end {
            return Some(format!("the window {self} is empty; for a whole day write 00:00-24:00"));
        }
        (self.start == DayMinute::END_OF_DAY).then(|| "a window cannot start at 24:00; start it at 00:00".into())
    }
}

/// Written as "mon-fri 09:00-17:00".
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}-{}", self.days, self.start, self.end)
    }
}

impl FromStr for Window {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a window; write it as \"mon-fri 09:00-17:00\" or \"daily 22:00-02:00\"");
        let (days, times) = text.trim().split_once(' ').ok_or_else(bad)?;
        let (start, end) = times.trim().split_once('-').ok_or_else(bad)?;
        let window = Window { days: days.parse()?, start: start.parse()?, end: end.parse()? };
        match window.problem() {
            Some(problem) => Err(problem),
            None => Ok(window),
        }
    }
}

/// A named weekly schedule shared by the people and cards that use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: i64,
    pub name: String,
    pub windows: Vec<Window>,
    /// Whether its windows still open on holidays.
    pub open_on_holidays: bool,
}

/// A day or a run of days, once or every year, on which schedules are closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub id: i64,
    pub name: String,
    pub first: Date,
    /// The last day, inclusive; the first day for a one-day holiday.
    pub last: Date,
    /// On these month-days every year (the years of `first` and `last` are then ignored, and a
    /// run may go past New Year).
    pub yearly: bool,
}

impl Holiday {
    pub fn covers(&self, day: Date) -> bool {
        if !self.yearly {
            return self.first <= day && day <= self.last;
        }
        let month_day = |d: Date| (d.month(), d.day());
        let (first, last, day) = (month_day(self.first), month_day(self.last), month_day(day));
        if first <= last { first <= day && day <= last } else { day >= first || day <= last }
    }
}

/// The time limits of a person or of one card; nothing set means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// From this moment on (inclusive).
    pub valid_from: Option<Timestamp>,
    /// Up to this moment (exclusive): at `valid_until` itself it has expired.
    pub valid_until: Option<Timestamp>,
    /// The id of the schedule it follows.
    pub schedule: Option<i64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }
}

/// A door a restricted person may use (a `door.id`), with the schedule they follow there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DoorRight {
    pub door: String,
    pub schedule: Option<i64>,
}

/// A group of people ("Staff", "Cleaners") and the doors its members may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// In id order.
    pub members: Vec<PersonId>,
    /// `None` until an admin sets the group's doors: the group then keeps nobody to anything.
    /// Set (even to no door), it keeps every member to doors.
    pub doors: Option<Vec<DoorRight>>,
}

/// Everything the door needs to judge a card's time limits and the doors it may open, read from
/// the store in one piece.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRules {
    pub schedules: Vec<Schedule>,
    pub holidays: Vec<Holiday>,
    /// Only people and cards with some limit are listed.
    pub people: Vec<(PersonId, Limits)>,
    pub cards: Vec<(CardUid, Limits)>,
    /// Only people kept to some doors are listed, with those doors (none: no door at all).
    /// Defaulted so that a local copy saved before sites existed still reads.
    #[serde(default)]
    pub doors: Vec<(PersonId, Vec<DoorRight>)>,
    /// Every group, by name (ASCII case ignored). Defaulted as `doors` is.
    #[serde(default)]
    pub groups: Vec<Group>,
}

impl AccessRules {
    /// The doors a person is kept to; `None` when they may use every door.
    pub fn door_rights(&self, person: PersonId) -> Option<&[DoorRight]> {
        self.doors.iter().find(|(id, _)| *id == person).map(|(_, rights)| rights.as_slice())
    }

    /// The groups `person` belongs to, by name.
    pub fn groups_of(&self, person: PersonId) -> impl Iterator<Item = &Group> {
        self.groups.iter().filter(move |group| group.members.contains(&person))
    }

    /// The group named `name` (ASCII case ignored).
    pub fn group_named(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.name.eq_ignore_ascii_case(name.trim()))
    }

    /// The doors a person may use, from their own rights and those of their groups; `None` when
    /// they may use every door. Nobody is kept to doors until an admin keeps them or one of their
    /// groups: then the doors are the union of their own (if kept themselves) and those of each
    /// group of theirs that is kept. A door they get both any time and on a schedule is listed
    /// once, any time; on several schedules, once per schedule (any of them opens it).
    pub fn allowed_doors(&self, person: PersonId) -> Option<Vec<DoorRight>> {
        let own = self.door_rights(person);
        let groups: Vec<&[DoorRight]> = self.groups_of(person).filter_map(|group| group.doors.as_deref()).collect();
        if own.is_none() && groups.is_empty() {
            return None;
        }
        let mut rights: Vec<DoorRight> = own.into_iter().chain(groups).flatten().cloned().collect();
        let any_time: Vec<String> =
            rights.iter().filter(|right| right.schedule.is_none()).map(|right| right.door.clone()).collect();
        rights.retain(|right| right.schedule.is_none() || !any_time.contains(&right.door));
        rights.sort();
        rights.dedup();
        Some(rights)
    }

    pub fn person_limits(&self, person: PersonId) -> Limits {
        self.people.iter().find(|(id, _)| *id == person).map(|(_, limits)| *limits).unwrap_or_default()
    }

    pub fn card_limits(&self, card: &CardUid) -> Limits {
        self.cards.iter().find(|(uid, _)| uid == card).map(|(_, limits)| *limits).unwrap_or_default()
    }

    pub fn schedule(&self, id: i64) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.id == id)
    }

    fn is_holiday(&self, day: Date) -> bool {
        self.holidays.iter().any(|h| h.covers(day))
    }

    /// The person's limits, the card's (none without a card) and those of the door they use.
    fn limits_of(&self, person: PersonId, card: Option<&CardUid>, door: Limits) -> [Limits; 3] {
        [self.person_limits(person), card.map(|card| self.card_limits(card)).unwrap_or_default(), door]
    }

    /// Whether `card` of `person` opens `door` at `now`. A door the person may not use is closed
    /// whatever the time; without a trusted clock only cards and people with no limits open: any
    /// limit could be judged on a wrong date.
    pub fn admit(
        &self,
        door: &str,
        person: PersonId,
        card: &CardUid,
        now: Timestamp,
        zone: &TimeZone,
        clock: ClockState,
    ) -> Admission {
        let Some(rights) = self.allowed_doors(person) else {
            return self.admit_within(self.limits_of(person, Some(card), Limits::default()), now, zone, clock);
        };
        // Each right to this door is a way in: the first that opens does, else the first refusal says why.
        let mut refusal = Admission::Closed(Reason::NotAllowedHere);
        for (n, right) in rights.iter().filter(|right| right.door == door).enumerate() {
            let here = Limits { schedule: right.schedule, ..Limits::default() };
            match self.admit_within(self.limits_of(person, Some(card), here), now, zone, clock) {
                Admission::Open => return Admission::Open,
                closed if n == 0 => refusal = closed,
                _ => {}
            }
        }
        refusal
    }

    fn admit_within(&self, limits: [Limits; 3], now: Timestamp, zone: &TimeZone, clock: ClockState) -> Admission {
        if limits.iter().all(Limits::is_unlimited) {
            return Admission::Open;
        }
        if clock == ClockState::Unsynchronised {
            return Admission::Closed(Reason::ClockNotSynced);
        }
        if limits.iter().any(|l| l.valid_from.is_some_and(|from| now < from)) {
            return Admission::Closed(Reason::NotYetValid);
        }
        if limits.iter().any(|l| l.valid_until.is_some_and(|until| now >= until)) {
            return Admission::Closed(Reason::Expired);
        }
        let local = zone.to_datetime(now);
        let in_schedules = limits.iter().filter_map(|l| l.schedule).all(|id| self.schedule_open(id, local));
        if in_schedules { Admission::Open } else { Admission::Closed(Reason::OutsideSchedule) }
    }

    /// A schedule that has gone missing is closed: the limit was meant to hold.
    fn schedule_open(&self, id: i64, local: DateTime) -> bool {
        let Some(schedule) = self.schedule(id) else { return false };
        let (today, minute) = (local.date(), DayMinute::of(local));
        let Ok(yesterday) = today.yesterday() else { return false };
        let open_on = |day: Date| schedule.open_on_holidays || !self.is_holiday(day);
        schedule.windows.iter().any(|w| {
            let started_today = w.days.contains(today.weekday())
                && minute >= w.start
                && (w.crosses_midnight() || minute < w.end)
                && open_on(today);
            let started_yesterday =
                w.crosses_midnight() && w.days.contains(yesterday.weekday()) && minute < w.end && open_on(yesterday);
            started_today || started_yesterday
        })
    }

    /// The first moment from `now` on (within about a year) at which `card` of `person` opens, or
    /// the person by their own limits without a card, assuming a trusted clock; `None` if never.
    /// Schedules of single doors are left out: this is the person's time, whichever door.
    pub fn next_open(
        &self,
        person: PersonId,
        card: Option<&CardUid>,
        now: Timestamp,
        zone: &TimeZone,
    ) -> Option<Timestamp> {
        let limits = self.limits_of(person, card, Limits::default());
        let opens = |at: Timestamp| self.admit_within(limits, at, zone, ClockState::Synchronised) == Admission::Open;
        if opens(now) {
            return Some(now);
        }
        // Access can only begin at a validity start, at midnight or at a window's start.
        let starts: Vec<DayMinute> = limits
            .iter()
            .filter_map(|l| l.schedule.and_then(|id| self.schedule(id)))
            .flat_map(|s| s.windows.iter().map(|w| w.start))
            .chain([DayMinute::MIDNIGHT])
            .collect();
        let today = zone.to_datetime(now).date();
        let mut candidates: Vec<Timestamp> =
            limits.iter().filter_map(|l| l.valid_from).filter(|&at| at > now).collect();
        for offset in 0..=366 {
            let Ok(day) = today.checked_add(offset.days()) else { break };
            for start in &starts {
                let time = jiff::civil::Time::new((start.0 / 60) as i8, (start.0 % 60) as i8, 0, 0).ok()?;
                // A start in a spring-forward gap is taken as the moment after the gap.
                if let Ok(at) = zone.to_ambiguous_timestamp(day.to_datetime(time)).compatible()
                    && at > now
                {
                    candidates.push(at);
                }
            }
        }
        candidates.sort();
        candidates.into_iter().find(|&at| opens(at))
    }
}

/// A moment as people write it: RFC 3339 with its offset ("2026-06-14T18:00:00+02:00"), or a
/// date and time in `zone` ("2026-06-14 18:00", "2026-06-14T18:00:30"); a date alone is its
/// midnight. A local time that occurs twice is taken the first time, one skipped as after the gap.
pub fn parse_moment(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let civil = text
        .replacen(' ', "T", 1)
        .parse::<DateTime>()
        .or_else(|_| text.parse::<Date>().map(|day| day.to_datetime(jiff::civil::Time::midnight())))
        .map_err(|_| {
            format!("{text:?} is not a date and time; write it as \"2026-06-14 18:00\" (in the configured time zone) or \"2026-06-14T18:00:00+02:00\"")
        })?;
    zone.to_ambiguous_timestamp(civil).compatible().map_err(|e| format!("{text:?}: {e}"))
}

/// `at` as a local date and time in `zone`, to the second, for people to read.
pub fn local_time(at: Timestamp, zone: &TimeZone) -> String {
    zone.to_datetime(at).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests;
