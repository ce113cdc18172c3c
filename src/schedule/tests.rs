use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;

use super::*;

const PERSON: PersonId = PersonId(1);
const DOOR: &str = "front";

fn card() -> CardUid {
    "04A1B2C3".parse().unwrap()
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// A moment given as an RFC 3339 instant with its offset, which settles DST's repeated hour.
fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn schedule(id: i64, windows: &[&str]) -> Schedule {
    Schedule {
        id,
        name: format!("schedule {id}"),
        windows: windows.iter().map(|w| w.parse().unwrap()).collect(),
        open_on_holidays: false,
    }
}

/// Rules with the person following schedule 1.
fn person_on(schedules: Vec<Schedule>) -> AccessRules {
    AccessRules {
        schedules,
        people: vec![(PERSON, Limits { schedule: Some(1), ..Limits::default() })],
        ..AccessRules::default()
    }
}

fn admission(rules: &AccessRules, zone_name: &str, moment: &str) -> Admission {
    rules.admit(DOOR, PERSON, &card(), at(moment), &zone(zone_name), ClockState::Synchronised)
}

const OPEN: Admission = Admission::Open;
const OUTSIDE: Admission = Admission::Closed(Reason::OutsideSchedule);

/// Each row: the moment, and whether the door opens then.
fn check_table(rules: &AccessRules, zone_name: &str, table: &[(&str, Admission)]) {
    for (moment, expected) in table {
        assert_eq!(admission(rules, zone_name, moment), *expected, "at {moment} in {zone_name}");
    }
}

#[test]
fn windows_that_cross_midnight_belong_to_the_day_they_start() {
    // Fridays 22:00 to Saturday 02:00. 2026-03-06 is a Friday.
    let rules = person_on(vec![schedule(1, &["fri 22:00-02:00"])]);
    check_table(
        &rules,
        "UTC",
        &[
            ("2026-03-06T21:59:59Z", OUTSIDE),
            ("2026-03-06T22:00:00Z", OPEN),
            ("2026-03-06T23:59:59Z", OPEN),
            ("2026-03-07T00:00:00Z", OPEN),
            ("2026-03-07T01:59:59Z", OPEN),
            ("2026-03-07T02:00:00Z", OUTSIDE),
            // Thursday night into Friday is not in the window.
            ("2026-03-06T01:00:00Z", OUTSIDE),
            ("2026-03-07T22:30:00Z", OUTSIDE),
        ],
    );
}

#[test]
fn the_hour_clocks_spring_past_never_opens() {
    // 02:00-03:00 daily. Berlin skips 02:00-03:00 on 2026-03-29, New York on 2026-03-08.
    let rules = person_on(vec![schedule(1, &["daily 02:00-03:00"])]);
    check_table(
        &rules,
        "Europe/Berlin",
        &[
            ("2026-03-28T02:30:00+01:00", OPEN),
            ("2026-03-29T01:59:59+01:00", OUTSIDE),
            // One second later it is 03:00 summer time.
            ("2026-03-29T03:00:00+02:00", OUTSIDE),
            ("2026-03-29T03:30:00+02:00", OUTSIDE),
            ("2026-03-30T02:30:00+02:00", OPEN),
        ],
    );
    check_table(
        &rules,
        "America/New_York",
        &[
            ("2026-03-07T02:30:00-05:00", OPEN),
            ("2026-03-08T01:59:59-05:00", OUTSIDE),
            ("2026-03-08T03:00:00-04:00", OUTSIDE),
            ("2026-03-09T02:30:00-04:00", OPEN),
        ],
    );
}

#[test]
fn the_hour_clocks_fall_back_through_opens_each_time_it_happens() {
    let rules = person_on(vec![schedule(1, &["daily 02:00-03:00"])]);
    // Berlin repeats 02:00-03:00 on 2026-10-25: first in summer time, then in winter time.
    check_table(
        &rules,
        "Europe/Berlin",
        &[
            ("2026-10-25T01:59:59+02:00", OUTSIDE),
            ("2026-10-25T02:00:00+02:00", OPEN),
            ("2026-10-25T02:59:59+02:00", OPEN),
            ("2026-10-25T02:00:00+01:00", OPEN),
            ("2026-10-25T02:59:59+01:00", OPEN),
            ("2026-10-25T03:00:00+01:00", OUTSIDE),
        ],
    );
    // New York repeats 01:00-02:00 on 2026-11-01, so 02:00-03:00 happens once, in standard time.
    check_table(
        &rules,
        "America/New_York",
        &[
            ("2026-11-01T01:30:00-04:00", OUTSIDE),
            ("2026-11-01T01:30:00-05:00", OUTSIDE),
            ("2026-11-01T02:00:00-05:00", OPEN),
            ("2026-11-01T02:59:59-05:00", OPEN),
            ("2026-11-01T03:00:00-05:00", OUTSIDE),
        ],
    );
}

#[test]
fn a_holiday_closes_a_schedule_unless_it_opens_on_holidays() {
    let office = schedule(1, &["mon-fri 09:00-17:00"]);
    let christmas =
        Holiday { id: 1, name: "Christmas".into(), first: date(2020, 12, 24), last: date(2020, 12, 26), yearly: true };
    let closing_week =
        Holiday { id: 2, name: "Closed".into(), first: date(2026, 8, 3), last: date(2026, 8, 7), yearly: false };
    let mut rules = person_on(vec![office.clone()]);
    rules.holidays = vec![christmas, closing_week];
    check_table(
        &rules,
        "Europe/Berlin",
        &[
            ("2026-12-23T10:00:00+01:00", OPEN),
            ("2026-12-24T10:00:00+01:00", OUTSIDE),
            ("2026-12-25T10:00:00+01:00", OUTSIDE),
            ("2026-12-28T10:00:00+01:00", OPEN),
            ("2026-08-05T10:00:00+02:00", OUTSIDE),
            // Not yearly: the same week a year later is a working week.
            ("2027-08-04T10:00:00+02:00", OPEN),
        ],
    );
    rules.schedules = vec![Schedule { open_on_holidays: true, ..office }];
    check_table(&rules, "Europe/Berlin", &[("2026-12-24T10:00:00+01:00", OPEN)]);
}

#[test]
fn a_holiday_run_past_new_year_and_a_night_window_after_it() {
    let rules = AccessRules {
        holidays: vec![Holiday {
            id: 1,
            name: "Winter break".into(),
            first: date(2000, 12, 31),
            last: date(2000, 1, 1),
            yearly: true,
        }],
        ..person_on(vec![schedule(1, &["daily 22:00-02:00"])])
    };
    check_table(
        &rules,
        "UTC",
        &[
            ("2026-12-30T23:00:00Z", OPEN),
            // The window started on the 30th, before the holiday.
            ("2026-12-31T01:00:00Z", OPEN),
            ("2026-12-31T23:00:00Z", OUTSIDE),
            ("2027-01-01T23:00:00Z", OUTSIDE),
            // Started on New Year's Day, a holiday.
            ("2027-01-02T01:00:00Z", OUTSIDE),
            ("2027-01-02T23:00:00Z", OPEN),
        ],
    );
}

#[test]
fn validity_is_exact_to_the_second() {
    let limits = Limits {
        valid_from: Some(at("2026-06-01T08:00:00Z")),
        valid_until: Some(at("2026-06-14T18:00:00Z")),
        schedule: None,
    };
    let rules = AccessRules { people: vec![(PERSON, limits)], ..AccessRules::default() };
    check_table(
        &rules,
        "Europe/Berlin",
        &[
            ("2026-06-01T07:59:59Z", Admission::Closed(Reason::NotYetValid)),
            ("2026-06-01T08:00:00Z", OPEN),
            ("2026-06-14T17:59:59Z", OPEN),
            ("2026-06-14T18:00:00Z", Admission::Closed(Reason::Expired)),
        ],
    );
}

#[test]
fn a_card_narrows_its_holder_and_never_widens() {
    let person = Limits { valid_until: Some(at("2026-12-31T00:00:00Z")), schedule: Some(1), ..Limits::default() };
    let card_limits = Limits { valid_until: Some(at("2026-07-01T00:00:00Z")), schedule: Some(2), ..Limits::default() };
    let rules = AccessRules {
        schedules: vec![schedule(1, &["mon-fri 08:00-18:00"]), schedule(2, &["daily 12:00-20:00"])],
        people: vec![(PERSON, person)],
        cards: vec![(card(), card_limits)],
        ..AccessRules::default()
    };
    // 2026-06-03 is a Wednesday, 2026-06-06 a Saturday.
    check_table(
        &rules,
        "UTC",
        &[
            ("2026-06-03T13:00:00Z", OPEN),
            ("2026-06-03T10:00:00Z", OUTSIDE),
            ("2026-06-03T19:00:00Z", OUTSIDE),
            ("2026-06-06T13:00:00Z", OUTSIDE),
            ("2026-07-01T13:00:00Z", Admission::Closed(Reason::Expired)),
        ],
    );
    let other: CardUid = "04FFFFFF".parse().unwrap();
    let clock = ClockState::Synchronised;
    let utc = zone("UTC");
    assert_eq!(
        rules.admit(DOOR, PERSON, &other, at("2026-06-03T10:00:00Z"), &utc, clock),
        OPEN,
        "the person's own limits"
    );
}

#[test]
fn without_a_synchronised_clock_only_the_unlimited_get_in() {
    let rules = person_on(vec![schedule(1, &["daily 00:00-24:00"])]);
    let (now, utc) = (at("2026-06-03T13:00:00Z"), zone("UTC"));
    let stranger = PersonId(2);
    assert_eq!(
        rules.admit(DOOR, PERSON, &card(), now, &utc, ClockState::Unsynchronised),
        Admission::Closed(Reason::ClockNotSynced)
    );
    assert_eq!(rules.admit(DOOR, stranger, &card(), now, &utc, ClockState::Unsynchronised), OPEN);
    assert_eq!(rules.admit(DOOR, PERSON, &card(), now, &utc, ClockState::Synchronised), OPEN);
}

#[test]
fn a_schedule_that_is_gone_stays_closed() {
    let rules = person_on(Vec::new());
    assert_eq!(admission(&rules, "UTC", "2026-06-03T13:00:00Z"), OUTSIDE);
}

#[test]
fn next_open_finds_the_next_window_validity_start_or_now() {
    let mut rules = person_on(vec![schedule(1, &["tue 09:00-12:00"])]);
    let berlin = zone("Europe/Berlin");
    // Wednesday 2026-06-03: next Tuesday 09:00 local.
    let next = rules.next_open(PERSON, Some(&card()), at("2026-06-03T13:00:00+02:00"), &berlin);
    assert_eq!(next, Some(at("2026-06-09T09:00:00+02:00")));
    let inside = at("2026-06-09T10:00:00+02:00");
    assert_eq!(rules.next_open(PERSON, Some(&card()), inside, &berlin), Some(inside));
    rules.people[0].1.valid_from = Some(at("2026-06-09T10:30:00+02:00"));
    assert_eq!(rules.next_open(PERSON, Some(&card()), inside, &berlin), Some(at("2026-06-09T10:30:00+02:00")));
    rules.people[0].1.valid_until = Some(at("2026-06-09T10:00:00+02:00"));
    assert_eq!(rules.next_open(PERSON, Some(&card()), inside, &berlin), None, "expired for good");
}

#[test]
fn windows_and_days_are_read_and_written_alike() {
    for text in ["mon-fri 09:00-17:00", "sat,sun 22:00-02:00", "daily 00:00-24:00", "fri-mon 08:30-09:15"] {
        let window: Window = text.parse().unwrap();
        let again: Window = window.to_string().parse().unwrap();
        assert_eq!(again, window, "{text}");
    }
    assert_eq!("fri-mon".parse::<Weekdays>().unwrap().to_string(), "mon,fri,sat,sun");
    for (bad, says) in [
        ("mon 09:00-09:00", "is empty"),
        ("funday 09:00-10:00", "is not a weekday"),
        ("mon 25:00-26:00", "is not a time of day"),
        ("mon 9-10", "is not a time of day"),
        ("09:00-10:00", "is not a window"),
    ] {
        let error = bad.parse::<Window>().unwrap_err();
        assert!(error.contains(says), "{bad}: {error}");
    }
}

#[test]
fn the_time_zone_is_checked_by_name() {
    let mut checks = Checks::default();
    ScheduleConfig { time_zone: "Europe/Berlin".into(), ..ScheduleConfig::default() }.check(&mut checks);
    ScheduleConfig { time_zone: "Mars/Olympus".into(), ..ScheduleConfig::default() }.check(&mut checks);
    let problems = checks.into_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(format!("{problems:?}").contains("Mars/Olympus"));
}

#[test]
fn moments_are_read_with_an_offset_or_in_the_zone() {
    let berlin = zone("Europe/Berlin");
    for (text, expected) in [
        ("2026-06-14T18:00:00+02:00", "2026-06-14T16:00:00Z"),
        ("2026-06-14 18:00", "2026-06-14T16:00:00Z"),
        ("2026-06-14T18:00:30", "2026-06-14T16:00:30Z"),
        ("2026-12-24", "2026-12-23T23:00:00Z"),
        // Skipped by the spring change: taken as just after the gap.
        ("2026-03-29 02:30", "2026-03-29T01:30:00Z"),
    ] {
        assert_eq!(parse_moment(text, &berlin), Ok(at(expected)), "{text}");
    }
    let error = parse_moment("next tuesday", &berlin).unwrap_err();
    assert!(error.contains("is not a date and time"), "{error}");
    assert_eq!(local_time(at("2026-06-14T16:00:00Z"), &berlin), "2026-06-14 18:00:00");
}

#[test]
fn people_kept_to_some_doors_are_not_allowed_at_the_others() {
    let front_hours = |schedule| DoorRight { door: DOOR.into(), schedule };
    let mut rules = person_on(vec![schedule(1, &["daily 00:00-24:00"]), schedule(2, &["mon 09:00-17:00"])]);
    let (utc, clock) = (zone("UTC"), ClockState::Synchronised);
    // 2026-06-01 is a Monday.
    let (monday_noon, monday_night) = (at("2026-06-01T12:00:00Z"), at("2026-06-01T20:00:00Z"));
    assert_eq!(rules.admit("garage", PERSON, &card(), monday_noon, &utc, clock), OPEN, "not kept: every door");

    rules.doors = vec![(PERSON, vec![front_hours(None)])];
    assert_eq!(rules.admit(DOOR, PERSON, &card(), monday_noon, &utc, clock), OPEN);
    let not_here = Admission::Closed(Reason::NotAllowedHere);
    assert_eq!(rules.admit("garage", PERSON, &card(), monday_noon, &utc, clock), not_here);
    assert_eq!(
        rules.admit("garage", PERSON, &card(), monday_noon, &utc, ClockState::Unsynchronised),
        not_here,
        "a door right needs no clock"
    );
    assert_eq!(rules.admit("garage", PersonId(2), &card(), monday_noon, &utc, clock), OPEN, "others are not kept");

    rules.doors = vec![(PERSON, vec![front_hours(Some(2))])];
    assert_eq!(rules.admit(DOOR, PERSON, &card(), monday_noon, &utc, clock), OPEN);
    assert_eq!(rules.admit(DOOR, PERSON, &card(), monday_night, &utc, clock), OUTSIDE, "the door's schedule narrows");

    rules.doors = vec![(PERSON, Vec::new())];
    assert_eq!(rules.admit(DOOR, PERSON, &card(), monday_noon, &utc, clock), not_here, "kept to no door: none");
}

fn group(id: i64, members: &[PersonId], doors: Option<Vec<DoorRight>>) -> Group {
    Group { id, name: format!("group {id}"), members: members.to_vec(), doors }
}

#[test]
fn a_member_of_a_group_kept_to_doors_may_use_their_own_doors_and_the_groups() {
    let right = |door: &str, schedule| DoorRight { door: door.into(), schedule };
    let mut rules = person_on(vec![schedule(1, &["daily 00:00-24:00"]), schedule(2, &["mon 09:00-17:00"])]);
    let (utc, clock) = (zone("UTC"), ClockState::Synchronised);
    let (monday_noon, monday_night) = (at("2026-06-01T12:00:00Z"), at("2026-06-01T20:00:00Z"));
    let admit = |rules: &AccessRules, door: &str, moment| rules.admit(door, PERSON, &card(), moment, &utc, clock);
    let not_here = Admission::Closed(Reason::NotAllowedHere);

    // A group whose doors are not set keeps nobody to anything.
    rules.groups = vec![group(1, &[PERSON], None)];
    assert_eq!(rules.allowed_doors(PERSON), None);
    assert_eq!(admit(&rules, "garage", monday_noon), OPEN);

    // Set, it keeps its members (and only them) to its doors, even a member free of their own.
    rules.groups = vec![group(1, &[PERSON], Some(vec![right("back", Some(2))])), group(2, &[], Some(vec![]))];
    assert_eq!(rules.allowed_doors(PERSON), Some(vec![right("back", Some(2))]));
    assert_eq!(admit(&rules, "garage", monday_noon), not_here);
    assert_eq!(admit(&rules, "back", monday_noon), OPEN);
    assert_eq!(admit(&rules, "back", monday_night), OUTSIDE, "the group's schedule there");
    assert_eq!(rules.allowed_doors(PersonId(2)), None, "not a member");

    // Their own doors and each group's add up; any time beats a schedule at the same door.
    rules.doors = vec![(PERSON, vec![right(DOOR, None)])];
    rules.groups.push(group(3, &[PERSON], Some(vec![right("back", None), right("garage", Some(2))])));
    assert_eq!(
        rules.allowed_doors(PERSON),
        Some(vec![right("back", None), right(DOOR, None), right("garage", Some(2))])
    );
    assert_eq!(admit(&rules, "back", monday_night), OPEN, "any time through the second group");
    assert_eq!(admit(&rules, DOOR, monday_night), OPEN, "their own door");
    assert_eq!(admit(&rules, "garage", monday_night), OUTSIDE);

    // A person kept to no door still gets their groups' doors; a group kept to none adds none.
    rules.doors = vec![(PERSON, Vec::new())];
    rules.groups = vec![group(1, &[PERSON], Some(vec![]))];
    assert_eq!(rules.allowed_doors(PERSON), Some(Vec::new()));
    assert_eq!(admit(&rules, DOOR, monday_noon), not_here);
    rules.groups[0].doors = Some(vec![right(DOOR, Some(2)), right(DOOR, None)]);
    assert_eq!(rules.allowed_doors(PERSON), Some(vec![right(DOOR, None)]));
}

#[test]
fn of_several_schedules_at_one_door_any_opens_it() {
    let right = |schedule| DoorRight { door: DOOR.into(), schedule: Some(schedule) };
    let mut rules = person_on(vec![
        schedule(1, &["daily 00:00-24:00"]),
        schedule(2, &["mon 09:00-17:00"]),
        schedule(3, &["mon 18:00-22:00"]),
    ]);
    rules.doors = vec![(PERSON, vec![right(2)])];
    rules.groups = vec![group(1, &[PERSON], Some(vec![right(3)]))];
    let (utc, clock) = (zone("UTC"), ClockState::Synchronised);
    let admit = |moment| rules.admit(DOOR, PERSON, &card(), at(moment), &utc, clock);
    assert_eq!(admit("2026-06-01T12:00:00Z"), OPEN, "their own schedule");
    assert_eq!(admit("2026-06-01T20:00:00Z"), OPEN, "the group's");
    assert_eq!(admit("2026-06-01T17:30:00Z"), OUTSIDE, "neither");
}
