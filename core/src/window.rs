//! Time windows of a behavioral envelope: when, by the wall clock of a named
//! IANA time zone, an agent may act.
//!
//! ```text
//!  TimeWindow (spec, strings) ──compile──▶ CompiledWindow (bitmask, seconds, TimeZone)
//!        once per envelope:  validate + zone lookup       per request: within_any(now)
//! ```
//!
//! # Semantics
//!
//! A window `{days, start, end, timeZone}` is the local wall-clock interval
//! `[start, end)` on each listed day, where local means what a clock in
//! `timeZone` shows. `start` and `end` are `HH:MM` (00:00–23:59).
//!
//! - `start < end`: the window lies within each listed day.
//! - `end < start`: the window crosses midnight and belongs to the day it
//!   starts on: `fri 22:00–02:00` covers Friday 22:00 to Saturday 02:00.
//!   Write `end: "00:00"` for "until midnight".
//! - `start == end`: the window lasts a full day from `start`, by the same
//!   rule; `00:00–00:00` is the whole of each listed day.
//!
//! An instant `now` is converted to the zone's civil date and time (the
//! conversion of an instant is never ambiguous), and only the weekday and
//! time of day are compared, so the check follows the wall clock on DST days:
//!
//! - **Skipped hour** (spring forward, e.g. Europe/Berlin 2025-03-30
//!   02:00 → 03:00): local times in the gap never occur. A window
//!   `01:00–03:00` that day is open one real hour (01:00–02:00 CET); one that
//!   starts in the gap (`02:30–05:00`) opens at 03:00 CEST; one wholly inside
//!   it (`02:00–02:30`) does not open that day.
//! - **Repeated hour** (fall back, e.g. Europe/Berlin 2025-10-26
//!   03:00 → 02:00): both occurrences of 02:30 are inside a `02:00–03:00`
//!   window, which is then open two real hours; a window ending inside the
//!   repeated hour (`01:00–02:30`) closes at the first 02:30 and is open
//!   again from the second 02:00 to the second 02:30.
//!
//! That is deliberate: the person who wrote "09:00–18:00 Europe/Berlin"
//! reads a wall clock, and the verifier must agree with that clock.
//!
//! Instants are unix milliseconds (`i64`) or a [`jiff::Timestamp`]; an
//! instant outside jiff's range (years −9999 to 9999) is outside every window.
//! [`CompiledWindows`] resolves each zone once, so the allowing path of
//! [`CompiledWindows::within_any`] does not allocate (a refusal builds its
//! message).

use std::fmt;

use jiff::civil::{self, Date};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

/// The most windows one envelope may list; more is a mistake, not a policy.
pub const MAX_WINDOWS: usize = 32;
/// IANA names are at most about 30 bytes; longer input is refused unread
/// (also the schema's `maxLength` of `timeZone`).
const MAX_ZONE_NAME: usize = 64;

/// A day of the week, written `mon` … `sun`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Monday to Sunday.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// The wire form, e.g. `"mon"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Weekday::Mon => "mon",
            Weekday::Tue => "tue",
            Weekday::Wed => "wed",
            Weekday::Thu => "thu",
            Weekday::Fri => "fri",
            Weekday::Sat => "sat",
            Weekday::Sun => "sun",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The bit, in a set of days, of the day `days_before` days before `w`
    /// (the day before Monday is Sunday).
    fn bit_of(w: civil::Weekday, days_before: i8) -> u8 {
        // to_monday_zero_offset is 0..=6; rem_euclid keeps the shift in 0..=6.
        let index = (w.to_monday_zero_offset() - days_before).rem_euclid(7);
        1 << index
    }
}

// By hand: derived, the variant docs would make a `oneOf` of `const`s, which
// a CRD schema (OpenAPI v3.0, no `const`) cannot express; a string `enum` it can.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Weekday {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Weekday".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        })
    }
}

/// The schema pattern of `HH:MM`, the same rule as [`parse_hhmm`].
#[cfg(feature = "schema")]
const HHMM_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// One permitted time window: `[start, end)` local time on each listed day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TimeWindow {
    /// The days on which the window starts, e.g. `[mon, tue, wed, thu, fri]`.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 7)))]
    pub days: Vec<Weekday>,
    /// Local opening time, `HH:MM` (24-hour clock, 00:00–23:59).
    #[cfg_attr(feature = "schema", schemars(pattern(HHMM_PATTERN)))]
    pub start: String,
    /// Local closing time, `HH:MM`, excluded. Earlier than `start`: the window
    /// ends the next day; equal to `start`: it lasts 24 hours.
    #[cfg_attr(feature = "schema", schemars(pattern(HHMM_PATTERN)))]
    pub end: String,
    /// The IANA time zone of the wall clock, e.g. `Europe/Berlin`.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 64)))]
    pub time_zone: String,
}

impl TimeWindow {
    /// Checks the window: a known IANA zone (else `time_zone_unknown`),
    /// `HH:MM` times and a non-empty list of distinct days (else
    /// `envelope_invalid`).
    pub fn validate(&self) -> Result<()> {
        self.compile().map(|_| ())
    }

    /// Validates the window and resolves its time zone.
    pub fn compile(&self) -> Result<CompiledWindow> {
        let invalid = |m: String| Error::new(ErrorCode::EnvelopeInvalid, m);
        if self.days.is_empty() {
            return Err(invalid("a time window must list at least one day".into()));
        }
        let mut days = 0u8;
        for day in &self.days {
            if days & day.bit() != 0 {
                return Err(invalid(format!("time window lists {} twice", day.as_str())));
            }
            days |= day.bit();
        }
        let start = parse_hhmm(&self.start)?;
        let end = parse_hhmm(&self.end)?;
        let tz = resolve_zone(&self.time_zone)?;
        Ok(CompiledWindow {
            days,
            start: u32::from(start) * 60,
            end: u32::from(end) * 60,
            tz,
        })
    }
}

/// Parses `HH:MM` (exactly five characters, 00:00–23:59) into minutes after
/// midnight; anything else is refused with `envelope_invalid`.
pub fn parse_hhmm(s: &str) -> Result<u16> {
    hhmm_minutes(s.as_bytes()).ok_or_else(|| {
        let shown: String = s.chars().take(16).collect();
        Error::new(
            ErrorCode::EnvelopeInvalid,
            format!("time {shown:?} is not HH:MM between 00:00 and 23:59"),
        )
    })
}

fn hhmm_minutes(s: &[u8]) -> Option<u16> {
    let digit = |b: u8| b.is_ascii_digit().then(|| u16::from(b - b'0'));
    let [h1, h2, b':', m1, m2] = *s else {
        return None;
    };
    let hour = digit(h1)? * 10 + digit(h2)?;
    let minute = digit(m1)? * 10 + digit(m2)?;
    (hour < 24 && minute < 60).then_some(hour * 60 + minute)
}

fn resolve_zone(name: &str) -> Result<TimeZone> {
    let unknown = || {
        let shown: String = name.chars().take(MAX_ZONE_NAME).collect();
        Error::new(
            ErrorCode::TimeZoneUnknown,
            format!("time zone {shown:?} is not a known IANA time zone"),
        )
    };
    if name.is_empty() || name.len() > MAX_ZONE_NAME {
        return Err(unknown());
    }
    // jiff maps "Etc/Unknown" to its placeholder zone, which behaves as UTC: refuse it.
    match TimeZone::get(name) {
        Ok(tz) if !tz.is_unknown() => Ok(tz),
        _ => Err(unknown()),
    }
}

/// A validated [`TimeWindow`] with its time zone resolved.
#[derive(Clone, Debug)]
pub struct CompiledWindow {
    /// Bit `i` set: the window starts on day `i` (Monday = 0).
    days: u8,
    /// Seconds after local midnight.
    start: u32,
    end: u32,
    tz: TimeZone,
}

impl CompiledWindow {
    /// Whether the instant `now` falls inside the window.
    pub fn contains(&self, now: Timestamp) -> bool {
        let local = self.tz.to_datetime(now);
        let secs = u32::from(local.hour().unsigned_abs()) * 3600
            + u32::from(local.minute().unsigned_abs()) * 60
            + u32::from(local.second().unsigned_abs());
        let today = self.days & Weekday::bit_of(local.weekday(), 0) != 0;
        if self.start < self.end {
            today && self.start <= secs && secs < self.end
        } else {
            // Crossing midnight: today's window from `start`, or the tail of
            // yesterday's window before `end`.
            let yesterday = self.days & Weekday::bit_of(local.weekday(), 1) != 0;
            (today && secs >= self.start) || (yesterday && secs < self.end)
        }
    }

    /// The earliest instant after `now` at which the window opens, if within
    /// the next eight days (a listed day recurs within seven). A window opens
    /// when the wall clock passes `start` on a listed day, or when a
    /// transition makes the clock jump into it (the end of a skipped hour, the
    /// repeat of a fallen-back hour), so both are candidates.
    pub fn next_opening(&self, now: Timestamp) -> Option<Timestamp> {
        let passing = self.next_start(now);
        let horizon = passing.or_else(|| now.checked_add(SignedDuration::from_hours(9 * 24)).ok());
        let jump = self
            .tz
            .following(now)
            .map(|t| t.timestamp())
            .take_while(|&t| horizon.is_some_and(|h| t < h))
            .find(|&t| self.contains(t));
        jump.or(passing)
    }

    /// The earliest instant after `now` at which the wall clock shows
    /// `start` on a listed day and the window is open.
    fn next_start(&self, now: Timestamp) -> Option<Timestamp> {
        let hour = i8::try_from(self.start / 3600).ok()?;
        let minute = i8::try_from(self.start / 60 % 60).ok()?;
        let open = civil::Time::new(hour, minute, 0, 0).ok()?;
        let today = self.tz.to_datetime(now).date();
        let mut day: Date = today.yesterday().unwrap_or(today);
        for _ in 0..9 {
            if self.days & Weekday::bit_of(day.weekday(), 0) != 0 {
                let local = self.tz.to_ambiguous_timestamp(day.to_datetime(open));
                // A repeated `start` happens twice; a skipped one never (the
                // transition that skips it is a jump, found by the caller).
                let (first, second) = match local.offset() {
                    AmbiguousOffset::Unambiguous { .. } => (local.compatible().ok(), None),
                    AmbiguousOffset::Fold { .. } => (local.earlier().ok(), local.later().ok()),
                    AmbiguousOffset::Gap { .. } => (None, None),
                };
                let mut candidates = [first, second].into_iter().flatten();
                if let Some(at) = candidates.find(|&at| at > now && self.contains(at)) {
                    return Some(at);
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

impl fmt::Display for CompiledWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for day in Weekday::ALL.iter().filter(|d| self.days & d.bit() != 0) {
            write!(f, "{sep}{}", day.as_str())?;
            sep = ",";
        }
        let hm = |s: u32| (s / 3600, s / 60 % 60);
        let ((sh, sm), (eh, em)) = (hm(self.start), hm(self.end));
        let zone = self.tz.iana_name().unwrap_or("?");
        write!(f, " {sh:02}:{sm:02}-{eh:02}:{em:02} {zone}")
    }
}

/// The compiled time windows of one envelope, ready for the hot path.
#[derive(Clone, Debug, Default)]
pub struct CompiledWindows {
    windows: Vec<CompiledWindow>,
}

impl CompiledWindows {
    /// Validates and compiles every window (at most [`MAX_WINDOWS`]); the
    /// first invalid one is named by its index.
    pub fn compile(windows: &[TimeWindow]) -> Result<CompiledWindows> {
        if windows.len() > MAX_WINDOWS {
            return Err(Error::new(
                ErrorCode::EnvelopeInvalid,
                format!(
                    "an envelope may list at most {MAX_WINDOWS} time windows, not {}",
                    windows.len()
                ),
            ));
        }
        let windows = windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                w.compile()
                    .map_err(|e| Error::new(e.code, format!("timeWindows[{i}]: {}", e.message)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CompiledWindows { windows })
    }

    /// The compiled windows, in spec order.
    pub fn windows(&self) -> &[CompiledWindow] {
        &self.windows
    }

    /// Whether there are no windows (no time restriction).
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// `Ok` if there are no windows or `now_unix_ms` falls inside at least
    /// one; otherwise `outside_time_window`, naming the window that opens next.
    pub fn within_any(&self, now_unix_ms: i64) -> Result<()> {
        if self.windows.is_empty() {
            return Ok(());
        }
        match Timestamp::from_millisecond(now_unix_ms) {
            Ok(now) => self.within_any_at(now),
            Err(_) => Err(Error::new(
                ErrorCode::OutsideTimeWindow,
                format!("the instant {now_unix_ms} ms is outside the supported calendar range"),
            )),
        }
    }

    /// [`within_any`](Self::within_any) for a [`Timestamp`].
    pub fn within_any_at(&self, now: Timestamp) -> Result<()> {
        if self.windows.is_empty() || self.windows.iter().any(|w| w.contains(now)) {
            return Ok(());
        }
        Err(self.refusal(now))
    }

    /// The window that opens next after `now` (its index) and when, if one
    /// opens within eight days; useful for a `Retry-After`.
    pub fn next_opening(&self, now: Timestamp) -> Option<(usize, Timestamp)> {
        let openings = self.windows.iter().enumerate();
        let next = openings.filter_map(|(i, w)| w.next_opening(now).map(|at| (at, i)));
        next.min().map(|(at, i)| (i, at))
    }

    fn refusal(&self, now: Timestamp) -> Error {
        let next = self
            .next_opening(now)
            .and_then(|(i, at)| Some((at, i, self.windows.get(i)?)));
        let message = match next {
            Some((at, i, w)) => {
                let wait = at.as_second().saturating_sub(now.as_second()).max(0);
                let local = at.to_zoned(w.tz.clone());
                format!(
                    "outside every permitted time window; the next to open is timeWindows[{i}] ({w}) \
                     at {local} (in {}h {:02}m)",
                    wait / 3600,
                    wait / 60 % 60
                )
            }
            None => "outside every permitted time window".to_owned(),
        };
        Error::new(ErrorCode::OutsideTimeWindow, message)
    }
}

/// `Ok` if `windows` is empty or `now_unix_ms` falls inside at least one;
/// otherwise `outside_time_window`. Compiles the windows on every call (an
/// invalid window is refused with its validation error): the hot path keeps
/// a [`CompiledWindows`] instead.
pub fn within_any(windows: &[TimeWindow], now_unix_ms: i64) -> Result<()> {
    if windows.is_empty() {
        return Ok(());
    }
    CompiledWindows::compile(windows)?.within_any(now_unix_ms)
}
