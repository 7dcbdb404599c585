//! Time windows against the wall clock (`core/src/window.rs`): the calendar
//! assistant's office hours, DST transitions in Europe/Berlin and
//! America/New_York, windows crossing midnight, odd offsets, unknown zones.
//! Every instant is written in UTC, with the local time it stands for.

#![allow(clippy::unwrap_used)]

use agentauth_core::ErrorCode;
use agentauth_core::window::{
    CompiledWindows, MAX_WINDOWS, TimeWindow, Weekday, parse_hhmm, within_any,
};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;

use Weekday::*;

const WEEKDAYS: &[Weekday] = &[Mon, Tue, Wed, Thu, Fri];

fn window(days: &[Weekday], start: &str, end: &str, zone: &str) -> TimeWindow {
    TimeWindow {
        days: days.to_vec(),
        start: start.into(),
        end: end.into(),
        time_zone: zone.into(),
    }
}

/// Unix ms of an RFC 3339 instant in UTC.
fn utc(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

/// Asserts, for each `(utc instant, inside?)`, the decision of both the
/// one-shot and the compiled check, and the refusal code.
fn check(windows: &[TimeWindow], cases: &[(&str, bool)]) {
    let compiled = CompiledWindows::compile(windows).unwrap();
    for &(at, inside) in cases {
        for result in [within_any(windows, utc(at)), compiled.within_any(utc(at))] {
            match result {
                Ok(()) => assert!(inside, "{at} should be outside"),
                Err(e) => {
                    assert!(!inside, "{at} should be inside: {}", e.message);
                    assert_eq!(e.code, ErrorCode::OutsideTimeWindow);
                }
            }
        }
    }
}

#[test]
fn calendar_assistant_office_hours_in_berlin() {
    let office = [window(WEEKDAYS, "09:00", "18:00", "Europe/Berlin")];
    check(
        &office,
        &[
            ("2025-06-02T06:59:59Z", false),    // Mon 08:59:59 CEST
            ("2025-06-02T07:00:00Z", true),     // Mon 09:00 CEST
            ("2025-06-02T15:59:59Z", true),     // Mon 17:59:59 CEST
            ("2025-06-02T16:00:00Z", false),    // Mon 18:00 CEST
            ("2025-06-06T15:59:59.999Z", true), // Fri 17:59:59.999 CEST
            ("2025-06-07T10:00:00Z", false),    // Sat 12:00 CEST
            ("2025-06-08T10:00:00Z", false),    // Sun 12:00 CEST
            ("2025-01-06T07:59:59Z", false),    // Mon 08:59:59 CET (winter: +01:00)
            ("2025-01-06T08:00:00Z", true),     // Mon 09:00 CET
            ("2025-01-06T17:00:00Z", false),    // Mon 18:00 CET
        ],
    );
    let err = within_any(&office, utc("2025-06-07T10:00:00Z")).unwrap_err();
    assert!(
        err.message.contains("timeWindows[0] (mon,tue,wed,thu,fri 09:00-18:00 Europe/Berlin) at 2025-06-09T09:00:00+02:00[Europe/Berlin] (in 45h 00m)"),
        "{}",
        err.message
    );
}

#[test]
fn berlin_spring_forward_skips_an_hour_of_wall_clock() {
    // 2025-03-30 (Sun) 01:00Z: 02:00 CET becomes 03:00 CEST.
    check(
        &[window(&[Sun], "01:00", "03:00", "Europe/Berlin")],
        &[
            ("2025-03-29T23:59:59Z", false), // 00:59:59 CET
            ("2025-03-30T00:00:00Z", true),  // 01:00 CET
            ("2025-03-30T00:30:00Z", true),  // 01:30 CET
            ("2025-03-30T00:59:59Z", true),  // 01:59:59 CET
            ("2025-03-30T01:00:00Z", false), // 03:00 CEST: one real hour open
            ("2025-03-30T01:30:00Z", false), // 03:30 CEST
        ],
    );
    // A window starting in the gap opens when the clock lands after it.
    check(
        &[window(&[Sun], "02:30", "05:00", "Europe/Berlin")],
        &[
            ("2025-03-30T00:59:59Z", false),
            ("2025-03-30T01:00:00Z", true),
            ("2025-03-30T02:59:59Z", true),
            ("2025-03-30T03:00:00Z", false),
        ],
    );
    // A window wholly inside the gap never opens that day ...
    let gap = [window(&[Sun], "02:00", "02:30", "Europe/Berlin")];
    let compiled = CompiledWindows::compile(&gap).unwrap();
    let from = utc("2025-03-29T22:00:00Z");
    assert!((0..6 * 3600).all(|s| compiled.within_any(from + s * 1000).is_err()));
    // ... but does the next Sunday, at 02:00 CEST.
    check(
        &gap,
        &[
            ("2025-04-06T00:00:00Z", true),
            ("2025-04-06T00:30:00Z", false),
        ],
    );
}

#[test]
fn berlin_fall_back_repeats_an_hour_of_wall_clock() {
    // 2025-10-26 (Sun) 01:00Z: 03:00 CEST becomes 02:00 CET; 02:xx happens twice.
    let repeated = [window(&[Sun], "02:00", "03:00", "Europe/Berlin")];
    check(
        &repeated,
        &[
            ("2025-10-25T23:59:59Z", false), // 01:59:59 CEST
            ("2025-10-26T00:00:00Z", true),  // 02:00 CEST (first)
            ("2025-10-26T00:30:00Z", true),  // 02:30 CEST (first)
            ("2025-10-26T01:30:00Z", true),  // 02:30 CET (second)
            ("2025-10-26T01:59:59Z", true),  // 02:59:59 CET
            ("2025-10-26T02:00:00Z", false), // 03:00 CET
        ],
    );
    // Open two real hours that day.
    let compiled = CompiledWindows::compile(&repeated).unwrap();
    let from = utc("2025-10-25T20:00:00Z");
    assert_eq!(
        (0..8 * 60)
            .filter(|m| compiled.within_any(from + m * 60_000).is_ok())
            .count(),
        120
    );
    // A window ending inside the repeated hour closes, then opens again.
    check(
        &[window(&[Sun], "01:00", "02:30", "Europe/Berlin")],
        &[
            ("2025-10-25T23:00:00Z", true),  // 01:00 CEST
            ("2025-10-26T00:29:59Z", true),  // 02:29:59 CEST
            ("2025-10-26T00:30:00Z", false), // 02:30 CEST
            ("2025-10-26T01:00:00Z", true),  // 02:00 CET
            ("2025-10-26T01:30:00Z", false), // 02:30 CET
        ],
    );
}

#[test]
fn new_york_transitions() {
    // 2025-03-09 (Sun) 07:00Z: 02:00 EST becomes 03:00 EDT.
    check(
        &[window(&[Sun], "01:00", "03:00", "America/New_York")],
        &[
            ("2025-03-09T05:59:59Z", false),
            ("2025-03-09T06:00:00Z", true),
            ("2025-03-09T06:59:59Z", true),
            ("2025-03-09T07:00:00Z", false),
        ],
    );
    // Office hours move with the clock: 09:00 is 14:00Z on Friday (EST), 13:00Z on Monday (EDT).
    check(
        &[window(WEEKDAYS, "09:00", "17:00", "America/New_York")],
        &[
            ("2025-03-07T13:59:59Z", false),
            ("2025-03-07T14:00:00Z", true),
            ("2025-03-10T12:59:59Z", false),
            ("2025-03-10T13:00:00Z", true),
            ("2025-03-10T20:59:59Z", true),
            ("2025-03-10T21:00:00Z", false),
        ],
    );
    // 2025-11-02 (Sun) 06:00Z: 02:00 EDT becomes 01:00 EST; 01:xx happens twice.
    check(
        &[window(&[Sun], "01:00", "02:00", "America/New_York")],
        &[
            ("2025-11-02T04:59:59Z", false), // 00:59:59 EDT
            ("2025-11-02T05:00:00Z", true),  // 01:00 EDT
            ("2025-11-02T05:59:59Z", true),  // 01:59:59 EDT
            ("2025-11-02T06:30:00Z", true),  // 01:30 EST
            ("2025-11-02T07:00:00Z", false), // 02:00 EST
        ],
    );
}

#[test]
fn windows_crossing_midnight_belong_to_their_start_day() {
    // Fri 22:00–02:00 in Berlin (CEST, +02:00); 2025-06-06 is a Friday.
    check(
        &[window(&[Fri], "22:00", "02:00", "Europe/Berlin")],
        &[
            ("2025-06-05T21:00:00Z", false), // Thu 23:00
            ("2025-06-06T00:30:00Z", false), // Fri 02:30: Thursday is not listed
            ("2025-06-06T19:59:59Z", false), // Fri 21:59:59
            ("2025-06-06T20:00:00Z", true),  // Fri 22:00
            ("2025-06-06T23:59:00Z", true),  // Sat 01:59
            ("2025-06-07T00:00:00Z", false), // Sat 02:00
            ("2025-06-07T21:00:00Z", false), // Sat 23:00
        ],
    );
    // Sat 22:00–02:00 ending at the spring-forward gap (2025-03-29/30).
    check(
        &[window(&[Sat], "22:00", "02:00", "Europe/Berlin")],
        &[
            ("2025-03-29T21:00:00Z", true),
            ("2025-03-30T00:59:59Z", true),
            ("2025-03-30T01:00:00Z", false),
        ],
    );
    // Sun 23:00–01:00 wraps from Sunday into Monday.
    check(
        &[window(&[Sun], "23:00", "01:00", "UTC")],
        &[
            ("2025-06-08T23:00:00Z", true),
            ("2025-06-09T00:59:59Z", true),
            ("2025-06-09T01:00:00Z", false),
            ("2025-06-02T00:30:00Z", true),
        ],
    );
}

#[test]
fn half_and_three_quarter_hour_offsets() {
    // Asia/Kolkata is +05:30 all year.
    check(
        &[window(WEEKDAYS, "09:30", "18:00", "Asia/Kolkata")],
        &[
            ("2025-06-02T03:59:59Z", false),
            ("2025-06-02T04:00:00Z", true),
            ("2025-06-02T12:29:59Z", true),
            ("2025-06-02T12:30:00Z", false),
        ],
    );
    // Pacific/Chatham is +12:45 in June and +13:45 in January: Monday
    // 09:00 there is still Sunday in UTC.
    check(
        &[window(&[Mon], "09:00", "10:00", "Pacific/Chatham")],
        &[
            ("2025-06-01T20:14:59Z", false),
            ("2025-06-01T20:15:00Z", true),
            ("2025-06-01T21:15:00Z", false),
            ("2025-01-05T19:14:59Z", false),
            ("2025-01-05T19:15:00Z", true),
        ],
    );
}

#[test]
fn windows_read_the_crd_shape() {
    let json = r#"{"days":["mon","fri"],"start":"09:00","end":"18:00","timeZone":"Europe/Berlin"}"#;
    let w: TimeWindow = serde_json::from_str(json).unwrap();
    assert_eq!(w, window(&[Mon, Fri], "09:00", "18:00", "Europe/Berlin"));
    assert_eq!(serde_json::to_string(&w).unwrap(), json);
    assert_eq!(
        w.compile().unwrap().to_string(),
        "mon,fri 09:00-18:00 Europe/Berlin"
    );
    let long_day = r#"{"days":["monday"],"start":"09:00","end":"18:00","timeZone":"UTC"}"#;
    assert!(serde_json::from_str::<TimeWindow>(long_day).is_err());
}

#[test]
fn hhmm_is_strict() {
    for (text, minutes) in [("00:00", 0), ("09:30", 570), ("23:59", 1439)] {
        assert_eq!(parse_hhmm(text).unwrap(), minutes);
    }
    let bad = [
        "24:00", "9:00", "09:60", "0900", "09:00:00", "", "ab:cd", "+9:00", "09 00",
    ];
    for text in bad
        .into_iter()
        .chain(["\u{661}\u{669}:00", "-1:00", "09:5"])
    {
        assert_eq!(
            parse_hhmm(text).unwrap_err().code,
            ErrorCode::EnvelopeInvalid,
            "{text:?}"
        );
    }
}

#[test]
fn unknown_zones_and_bad_windows_are_refused() {
    let now = utc("2025-06-02T10:00:00Z");
    let ok = window(WEEKDAYS, "09:00", "18:00", "UTC");
    let atlantis = window(WEEKDAYS, "09:00", "18:00", "Europe/Atlantis");
    let err = within_any(&[ok.clone(), atlantis], now).unwrap_err();
    assert_eq!(err.code, ErrorCode::TimeZoneUnknown);
    assert!(
        err.message.starts_with("timeWindows[1]: "),
        "{}",
        err.message
    );
    let long = "A/".repeat(40);
    for zone in ["Mars/Olympus", "", "Etc/Unknown", "+05:30", "CET+1", &long] {
        let err = window(WEEKDAYS, "09:00", "18:00", zone)
            .validate()
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::TimeZoneUnknown, "{zone:?}");
    }
    let invalid = [
        window(&[], "09:00", "18:00", "UTC"),
        window(&[Mon, Mon], "09:00", "18:00", "UTC"),
        window(WEEKDAYS, "9:00", "18:00", "UTC"),
        window(WEEKDAYS, "09:00", "24:00", "UTC"),
    ];
    for w in invalid {
        assert_eq!(
            within_any(&[w], now).unwrap_err().code,
            ErrorCode::EnvelopeInvalid
        );
    }
    let many = vec![ok.clone(); MAX_WINDOWS + 1];
    assert_eq!(
        CompiledWindows::compile(&many).unwrap_err().code,
        ErrorCode::EnvelopeInvalid
    );
    assert!(within_any(&[], now).is_ok());
    assert!(within_any(&[ok], now).is_ok());
}

#[test]
fn whole_day_windows_and_midnight_ends() {
    // start == end: 24 hours from start; 00:00-00:00 is the whole day (Sat 2025-06-07).
    check(
        &[window(&[Sat], "00:00", "00:00", "UTC")],
        &[
            ("2025-06-06T23:59:59Z", false),
            ("2025-06-07T00:00:00Z", true),
            ("2025-06-07T23:59:59.999Z", true),
            ("2025-06-08T00:00:00Z", false),
        ],
    );
    check(
        &[window(&[Sat], "09:00", "09:00", "UTC")],
        &[
            ("2025-06-07T08:59:59Z", false),
            ("2025-06-07T09:00:00Z", true),
            ("2025-06-08T08:59:59Z", true),
            ("2025-06-08T09:00:00Z", false),
        ],
    );
    // end 00:00: until midnight.
    check(
        &[window(&[Sat], "18:00", "00:00", "UTC")],
        &[
            ("2025-06-07T18:00:00Z", true),
            ("2025-06-07T23:59:59Z", true),
            ("2025-06-08T00:00:00Z", false),
        ],
    );
}

#[test]
fn refusal_names_the_window_that_opens_next() {
    let windows = [
        window(&[Sun], "10:00", "11:00", "UTC"),
        window(&[Mon], "09:00", "18:00", "Europe/Berlin"),
    ];
    // Saturday 12:00Z: Sunday 10:00 UTC opens before Monday 09:00 Berlin.
    let err = within_any(&windows, utc("2025-06-07T12:00:00Z")).unwrap_err();
    assert_eq!(err.code, ErrorCode::OutsideTimeWindow);
    let expected =
        "timeWindows[0] (sun 10:00-11:00 UTC) at 2025-06-08T10:00:00+00:00[UTC] (in 22h 00m)";
    assert!(err.message.contains(expected), "{}", err.message);
    // Sunday 11:00Z: now Monday 09:00 Berlin (07:00Z) is nearer than next Sunday.
    let err = within_any(&windows, utc("2025-06-08T11:00:00Z")).unwrap_err();
    assert!(err.message.contains("timeWindows[1]"), "{}", err.message);
    assert!(err.message.contains("(in 20h 00m)"), "{}", err.message);
    // The skipped hour: a window starting at 02:30 opens at 03:00 CEST.
    let gap = [window(&[Sun], "02:30", "05:00", "Europe/Berlin")];
    let err = within_any(&gap, utc("2025-03-30T00:30:00Z")).unwrap_err();
    assert!(
        err.message
            .contains("at 2025-03-30T03:00:00+02:00[Europe/Berlin] (in 0h 30m)"),
        "{}",
        err.message
    );
    // The repeated hour: closed at the first 02:30, open again at the second 02:00.
    let fold = [window(&[Sun], "02:00", "02:30", "Europe/Berlin")];
    let err = within_any(&fold, utc("2025-10-26T00:45:00Z")).unwrap_err();
    let expected = "at 2025-10-26T02:00:00+01:00[Europe/Berlin] (in 0h 15m)";
    assert!(err.message.contains(expected), "{}", err.message);
}

/// The window semantics restated on civil date-times, as an oracle.
fn oracle(w: &TimeWindow, now: Timestamp) -> bool {
    let tz = TimeZone::get(&w.time_zone).unwrap();
    let local = tz.to_datetime(now);
    let at = |d: jiff::civil::Date, hhmm: &str| {
        let m = parse_hhmm(hhmm).unwrap();
        d.at((m / 60) as i8, (m % 60) as i8, 0, 0)
    };
    let (start, end) = (parse_hhmm(&w.start).unwrap(), parse_hhmm(&w.end).unwrap());
    [local.date(), local.date().yesterday().unwrap()]
        .into_iter()
        .any(|day| {
            let listed = w
                .days
                .contains(&Weekday::ALL[day.weekday().to_monday_zero_offset() as usize]);
            let close = if end > start {
                at(day, &w.end)
            } else {
                at(day.tomorrow().unwrap(), &w.end)
            };
            listed && at(day, &w.start) <= local && local < close
        })
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Niue",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
];

fn windows() -> impl Strategy<Value = TimeWindow> {
    let hhmm = (0u16..24, 0u16..60).prop_map(|(h, m)| format!("{h:02}:{m:02}"));
    (
        prop::sample::subsequence(Weekday::ALL.to_vec(), 1..=7),
        hhmm.clone(),
        hhmm,
        prop::sample::select(ZONES),
    )
        .prop_map(|(days, start, end, zone)| TimeWindow {
            days,
            start,
            end,
            time_zone: zone.into(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any i64 instant, extremes included, is decided without a panic: inside
    /// or `outside_time_window`.
    #[test]
    fn any_instant_is_decided_without_panic(
        ws in prop::collection::vec(windows(), 0..4),
        now in prop_oneof![
            any::<i64>(),
            Just(i64::MIN), Just(i64::MAX), Just(0i64),
            Just(Timestamp::MIN.as_millisecond()), Just(Timestamp::MAX.as_millisecond()),
            Just(Timestamp::MIN.as_millisecond() - 1), Just(Timestamp::MAX.as_millisecond() + 1),
            (Timestamp::MIN.as_millisecond()..Timestamp::MIN.as_millisecond() + 30 * 86_400_000),
            (Timestamp::MAX.as_millisecond() - 30 * 86_400_000..=Timestamp::MAX.as_millisecond()),
        ],
    ) {
        let compiled = CompiledWindows::compile(&ws).unwrap();
        if let Err(e) = compiled.within_any(now) {
            prop_assert_eq!(e.code, ErrorCode::OutsideTimeWindow);
            prop_assert!(!ws.is_empty());
        }
        prop_assert_eq!(within_any(&ws, now).is_ok(), compiled.within_any(now).is_ok());
    }

    /// The compiled check agrees with the civil date-time oracle.
    #[test]
    fn compiled_check_matches_the_oracle(w in windows(), ms in -2_208_988_800_000i64..4_102_444_800_000) {
        let now = Timestamp::from_millisecond(ms).unwrap();
        let compiled = CompiledWindows::compile(std::slice::from_ref(&w)).unwrap();
        prop_assert_eq!(compiled.within_any_at(now).is_ok(), oracle(&w, now), "{:?} at {}", w, now);
    }

    /// Arbitrary text for HH:MM is parsed (and then formats back to itself)
    /// or refused with `envelope_invalid`, never a panic.
    #[test]
    fn hhmm_is_parsed_or_refused(s in prop_oneof![".{0,8}", "[0-9]{2}:[0-9]{2}", "[0-9 :+-]{0,6}"]) {
        match parse_hhmm(&s) {
            Ok(m) => {
                prop_assert!(m < 1440);
                prop_assert_eq!(format!("{:02}:{:02}", m / 60, m % 60), s);
            }
            Err(e) => prop_assert_eq!(e.code, ErrorCode::EnvelopeInvalid),
        }
    }
}

proptest! {
    // Each case scans up to eight days minute by minute.
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A refusal names the true next opening: inside at that instant, and no
    /// window open at any minute mark (nor the second) before it.
    #[test]
    fn next_opening_is_the_first_instant_inside(
        ws in prop::collection::vec(windows(), 1..3),
        ms in -2_208_988_800_000i64..4_102_444_800_000,
        near_transition in any::<bool>(),
        before_transition in 0i64..36 * 3_600_000,
    ) {
        let compiled = CompiledWindows::compile(&ws).unwrap();
        let mut now = Timestamp::from_millisecond(ms).unwrap();
        if near_transition {
            // DST days are rare among random instants: aim just before one.
            let tz = TimeZone::get(&ws[0].time_zone).unwrap();
            if let Some(t) = tz.following(now).next() {
                now = Timestamp::from_millisecond(t.timestamp().as_millisecond() - before_transition).unwrap();
            }
        }
        if compiled.within_any_at(now).is_err() {
            let (i, at) = compiled.next_opening(now).unwrap();
            prop_assert!(at > now);
            prop_assert!(compiled.windows()[i].contains(at));
            let mut probe = Timestamp::from_second(now.as_second() + 1).unwrap();
            while probe < at {
                prop_assert!(compiled.within_any_at(probe).is_err(), "open at {} before {}", probe, at);
                probe = Timestamp::from_second(probe.as_second() / 60 * 60 + 60).unwrap();
            }
            let just_before = Timestamp::from_second(at.as_second() - 1).unwrap();
            prop_assert!(just_before <= now || compiled.within_any_at(just_before).is_err());
        }
    }
}
