//! RFC 3339 timestamps to nanoseconds since the epoch, to order an image's creation
//! against a clean receipt. Docker writes `2026-11-25T18:00:00.123456789Z`; receipts write
//! RFC 3339 in UTC. A date library for one comparison would be a heavier dependency.

/// Nanoseconds since 1970-01-01T00:00:00Z, or `None` when `s` is not RFC 3339.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    // The offset starts at the first Z, + or - after the seconds.
    let off_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, offset) = rest.split_at(off_at);
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (clock, ""),
    };
    let mut t = hms.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let min: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || min > 59
        || sec > 60
        || frac.len() > 9
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let offset_secs: i64 = match offset {
        "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (h, m) = o.get(1..)?.split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_a_known_instant() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-25T18:00:00Z"),
            Some(1_795_629_600 * 1_000_000_000)
        );
    }

    #[test]
    fn docker_nanoseconds_order_within_one_second() {
        let a = parse_rfc3339("2026-11-25T18:00:00.000000001Z");
        let b = parse_rfc3339("2026-11-25T18:00:00.5Z");
        assert!(a < b, "{a:?} {b:?}");
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(
            parse_rfc3339("2026-11-25T19:00:00+01:00"),
            parse_rfc3339("2026-11-25T18:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2026-11-25T17:30:00-00:30"),
            parse_rfc3339("2026-11-25T18:00:00Z")
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-25T18:00:00"), None);
    }
}
