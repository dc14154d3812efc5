//! Time in one place, under everything: the wall clock in milliseconds
//! ([`now_ms`], for stored rows, windows and run ids) and date-time text.
//!
//! Date-time strings as instants: `2024-01-01T00:00:00+00:00` (Python's
//! isoformat) and `2024-01-01T00:00:00Z` (Go's time.Time) are the same moment.
//! A string that reads as a date-time becomes one canonical UTC form, so
//! equal instants compare equal whatever their offset, separator or precision.
//! The comparison uses only these pure functions, never the clock.
//!
//! Durations as people write them (`30s`, `15m`, `2h`, `14d`, `1w`), read
//! by [`parse_duration`] for settings, windows and gates alike.

/// A duration written as a whole number and a unit (s, m, h, d, w), above
/// zero: `15m`, `2h`, `14d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("expected a duration such as 30s, 15m, 2h or 14d; got {text:?}");
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(seconds)
        .filter(|&total| total > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Seconds since the epoch and nanoseconds of a date-time string.
fn parse(s: &str) -> Option<(i64, i64)> {
    let b = s.as_bytes();
    if b.len() < 16 || b.len() > 40 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let mut at = 16;
    let mut second = 0;
    if b.get(at) == Some(&b':') {
        second = num(at + 1, 2)?;
        at += 3;
    }
    let mut nanos: i64 = 0;
    if b.get(at) == Some(&b'.') || b.get(at) == Some(&b',') {
        let start = at + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = end - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start, digits)? * 10i64.pow(9 - digits as u32);
        at = end;
    }
    let offset_minutes = match b.get(at) {
        None => 0,
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[at + 1..];
            let (h, m) = match rest.len() {
                2 => (num(at + 1, 2)?, 0),
                4 => (num(at + 1, 2)?, num(at + 3, 2)?),
                5 if rest[2] == b':' => (num(at + 1, 2)?, num(at + 4, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    Some((seconds, nanos))
}

/// The canonical UTC form of a date-time string, or `None` if it is not one.
///
/// Accepts `YYYY-MM-DD`, then `T`, `t` or a space, then `HH:MM[:SS[.fraction]]`,
/// then `Z`, `±HH:MM`, `±HHMM`, `±HH`, or nothing (read as UTC, as Python's
/// naive datetimes usually are in APIs).
pub fn canonical_instant(s: &str) -> Option<String> {
    let (seconds, nanos) = parse(s)?;
    Some(format(seconds, nanos))
}

/// Milliseconds since the Unix epoch of a date-time string (RFC 3339 and the
/// forms [`canonical_instant`] accepts).
pub fn parse_millis(s: &str) -> Option<i64> {
    let (seconds, nanos) = parse(s)?;
    seconds.checked_mul(1_000)?.checked_add(nanos / 1_000_000)
}

/// RFC 3339 in UTC, with milliseconds when there are any.
pub fn format_millis(ms: i64) -> String {
    format(ms.div_euclid(1_000), ms.rem_euclid(1_000) * 1_000_000)
}

fn format(seconds: i64, nanos: i64) -> String {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_go_forms_meet() {
        let go = "2024-01-01T00:00:00Z";
        for python in [
            "2024-01-01T00:00:00+00:00",
            "2024-01-01 00:00:00+00:00",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.000000+00:00",
            "2024-01-01T01:00:00+01:00",
            "2023-12-31T19:00:00-05:00",
            "2024-01-01T00:00Z",
        ] {
            assert_eq!(canonical_instant(python).as_deref(), Some(go), "{python}");
        }
        assert_eq!(
            canonical_instant("2024-02-29T12:30:45.123400+00:00").as_deref(),
            Some("2024-02-29T12:30:45.1234Z")
        );
        assert_eq!(
            canonical_instant("2024-02-29T12:30:45.1234Z").as_deref(),
            canonical_instant("2024-02-29T12:30:45.123400+00:00").as_deref()
        );
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        for s in [
            "2024-03-10T02:30:00-07:00",
            "1969-12-31T23:59:59.5Z",
            "2000-02-29T00:00:00+14:00",
        ] {
            let once = canonical_instant(s).unwrap();
            assert_eq!(canonical_instant(&once).unwrap(), once);
        }
    }

    #[test]
    fn milliseconds_round_trip() {
        let ms = parse_millis("2026-11-25T01:02:03.456+01:00").unwrap();
        assert_eq!(format_millis(ms), "2026-11-25T00:02:03.456Z");
        assert_eq!(parse_millis(&format_millis(ms)), Some(ms));
        assert_eq!(format_millis(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn non_instants_are_left_alone() {
        for s in [
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+25:00",
            "2024-01-01T00:00:00.1234567890Z",
            "hello world, not a date",
            "2024-01-01T00:00:00Zjunk",
        ] {
            assert_eq!(canonical_instant(s), None, "{s}");
        }
    }
}
