//! The one time module: UTC timestamps, RFC 3339 format and parse, the compact stamps in
//! build ids and image tags, and durations as the tools print them. Built on the `time`
//! crate; no tool formats or parses a date any other way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use ::time::OffsetDateTime;
use ::time::format_description::well_known::Rfc3339;
use ::time::macros::format_description;

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an RFC 3339 timestamp: {input:?}")]
pub struct ParseError {
    /// What was read.
    pub input: String,
}

/// Now in UTC, truncated to whole seconds (what receipts, journals and locks record).
pub fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Now, RFC 3339 in UTC with whole seconds: `2026-11-25T18:00:00Z`.
pub fn now_rfc3339() -> String {
    rfc3339(now_utc())
}

/// `t` as RFC 3339 in UTC (`2026-11-25T18:00:00Z`, fractions only when `t` has them).
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting only fails for years outside 0-9999, which no clock of ours reaches.
    t.to_offset(::time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Unix seconds as RFC 3339 in UTC (`2026-11-25T18:00:00Z`).
pub fn unix_rfc3339(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).map_or_else(|_| format!("unix {secs}"), rfc3339)
}

/// Parses RFC 3339 with any offset and up to nanosecond fractions (Docker's `Created`).
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, ParseError> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| ParseError {
        input: s.to_string(),
    })
}

/// Nanoseconds since the Unix epoch of an RFC 3339 timestamp, to order two instants.
pub fn unix_nanos(s: &str) -> Result<i128, ParseError> {
    parse_rfc3339(s).map(OffsetDateTime::unix_timestamp_nanos)
}

/// Unix seconds now, with fractions.
pub fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// A sortable stamp valid in image tags and file names: `20261125T184501`.
pub fn compact(t: OffsetDateTime) -> String {
    let f = format_description!("[year][month][day]T[hour][minute][second]");
    t.to_offset(::time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// The UTC calendar day of `t` as `YYYYMMDD`, and the Unix time of its midnight.
pub fn utc_day(t: OffsetDateTime) -> (String, u64) {
    let t = t.to_offset(::time::UtcOffset::UTC);
    let f = format_description!("[year][month][day]");
    let midnight = t.replace_time(::time::Time::MIDNIGHT).unix_timestamp();
    (
        t.format(&f).unwrap_or_default(),
        u64::try_from(midnight).unwrap_or(0),
    )
}

/// `t` to the minute, for report headers: `2026-11-25 18:45`.
pub fn utc_minute(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.to_offset(::time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

/// `t` from a `SystemTime` (a file's mtime, a test's clock).
pub fn from_system(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// Whole milliseconds of `d`, saturating (figures in journals and reports).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Seconds with one decimal, the way progress lines and tables print a duration: `12.3`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).expect("valid instant")
    }

    #[test]
    fn known_instants_format() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_629_600)), "2026-11-25T18:00:00Z");
        assert_eq!(unix_rfc3339(1_795_629_600), "2026-11-25T18:00:00Z");
    }

    #[test]
    fn now_has_whole_seconds_and_round_trips() {
        let s = now_rfc3339();
        assert!(s.ends_with('Z') && !s.contains('.'), "{s}");
        assert_eq!(parse_rfc3339(&s).map(rfc3339), Ok(s));
    }

    #[test]
    fn parse_round_trips_fractions() {
        let s = "2026-11-25T18:00:00.123456789Z";
        assert_eq!(parse_rfc3339(s).map(rfc3339).as_deref(), Ok(s));
    }

    #[test]
    fn unix_nanos_of_known_values() {
        assert_eq!(unix_nanos("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            unix_nanos("2026-11-25T18:00:00Z"),
            Ok(1_795_629_600 * 1_000_000_000)
        );
    }

    #[test]
    fn docker_nanoseconds_order_within_one_second() {
        let a = unix_nanos("2026-11-25T18:00:00.000000001Z").ok();
        let b = unix_nanos("2026-11-25T18:00:00.5Z").ok();
        assert!(a < b, "{a:?} {b:?}");
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(
            unix_nanos("2026-11-25T19:00:00+01:00"),
            unix_nanos("2026-11-25T18:00:00Z")
        );
        assert_eq!(
            unix_nanos("2026-11-25T17:30:00-00:30"),
            unix_nanos("2026-11-25T18:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T19:00:00+01:00").map(rfc3339),
            Ok("2026-11-25T18:00:00Z".to_string())
        );
    }

    #[test]
    fn garbage_is_rejected() {
        for s in ["yesterday", "2026-13-01T00:00:00Z", "2026-11-25T18:00:00"] {
            assert_eq!(
                parse_rfc3339(s),
                Err(ParseError {
                    input: s.to_string()
                })
            );
        }
    }

    #[test]
    fn compact_stamp_sorts_and_fits_a_tag() {
        assert_eq!(compact(at(1_795_629_601)), "20261125T180001");
        assert!(compact(at(1_795_629_601)) < compact(at(1_795_629_602)));
    }

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(
            utc_day(at(1_795_600_000)),
            ("20261125".to_string(), 1_795_564_800)
        );
        assert_eq!(utc_day(at(0)), ("19700101".to_string(), 0));
        // 2024-02-29 (a leap day) is day 19,782.
        assert_eq!(utc_day(at(19_782 * 86_400 + 5)).0, "20240229");
    }

    #[test]
    fn minutes_for_headers() {
        assert_eq!(utc_minute(at(1_795_629_659)), "2026-11-25 18:00");
    }

    #[test]
    fn durations_print_as_the_tools_print_them() {
        assert_eq!(secs(Duration::from_millis(12_345)), "12.3");
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
