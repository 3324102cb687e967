//! Time: the only place that reads the wall clock. Tests use [`TestClock`] and move it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub trait Clock: Send + Sync {
    fn now_ms(&self) -> Millis;
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests), or follows the system clock plus an offset.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    /// A clock that runs with real time, shifted by whatever `advance` adds.
    pub fn new() -> Self {
        Self::default()
    }
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn advance_secs(&self, secs: i64) {
        self.advance_ms(secs * 1000);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> Millis {
        SystemClock.now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
}

/// `2026-11-23T10:30:00.000Z` for a time in milliseconds since the epoch.
pub fn rfc3339(ms: Millis) -> String {
    Rfc3339(ms).to_string()
}

/// [`rfc3339`] as a `Display`, written where it goes (an answer's JSON) without a `String`.
pub struct Rfc3339(pub Millis);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        let secs = ms.div_euclid(1000);
        let milli = ms.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// IMF-fixdate (RFC 9110 §5.6.7, the HTTP `Date` format), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`,
/// for a time in milliseconds since the epoch.
pub(crate) fn http_date(ms: Millis) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Parses an RFC 3339 timestamp (`Z` or `±hh:mm` offset, optional fraction) to milliseconds.
/// Refuses dates that do not exist (`2027-02-30`, `2026-04-31`, February 29 outside leap
/// years) and offsets beyond ±23:59.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60
    {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_secs = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if *c == b'+' { 1 } else { -1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(secs * 1000 + frac_ms)
}

fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days in month `m` (1..=12) of year `y`, in the proleptic Gregorian calendar.
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms (public domain).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        let t = 1_795_429_800_123; // 2026-11-23T10:30:00.123Z
        assert_eq!(rfc3339(t), "2026-11-23T10:30:00.123Z");
        assert_eq!(parse_rfc3339("2026-11-23T10:30:00.123Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-23T11:30:00.123+01:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-23T10:30:00Z"), Some(t - 123));
        assert_eq!(parse_rfc3339("2026-13-23T10:30:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn http_date_formats_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(784_111_777_999), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT"); // leap day
        assert_eq!(
            http_date(1_795_429_800_123),
            "Mon, 23 Nov 2026 10:30:00 GMT"
        );
        assert_eq!(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
    }

    #[test]
    fn refuses_dates_that_do_not_exist() {
        for s in [
            "2027-02-29T00:00:00Z",
            "2027-02-30T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-06-31T00:00:00Z",
            "2026-09-31T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-00-10T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s} accepted");
        }
        // The last day of each month, and February 29 in leap years, are fine.
        for s in [
            "2028-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2027-02-28T23:59:59Z",
            "2026-04-30T00:00:00Z",
            "2026-12-31T23:59:59.999Z",
            "2026-01-31T00:00:00Z",
        ] {
            assert!(parse_rfc3339(s).is_some(), "{s} refused");
        }
        assert_eq!(
            parse_rfc3339("2028-02-29T00:00:00Z"),
            parse_rfc3339("2028-02-28T00:00:00Z").map(|t| t + 86_400_000)
        );
        assert_eq!(
            parse_rfc3339("2028-03-01T00:00:00Z"),
            parse_rfc3339("2028-02-29T00:00:00Z").map(|t| t + 86_400_000)
        );
    }

    #[test]
    fn refuses_offsets_beyond_a_day() {
        for s in [
            "2026-11-23T10:30:00+25:00",
            "2026-11-23T10:30:00+24:00",
            "2026-11-23T10:30:00-24:00",
            "2026-11-23T10:30:00+01:60",
            "2026-11-23T10:30:00+99:99",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s} accepted");
        }
        let t = parse_rfc3339("2026-11-23T10:30:00Z").unwrap();
        // The widest offsets there are: ±23:59.
        assert_eq!(parse_rfc3339("2026-11-24T10:29:00+23:59"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-22T10:31:00-23:59"), Some(t));
        assert_eq!(parse_rfc3339("2026-11-23T10:30:00-00:00"), Some(t));
    }

    #[test]
    fn test_clock_moves() {
        let c = TestClock::new();
        let a = c.now_ms();
        c.advance_secs(3600);
        assert!(c.now_ms() - a >= 3_600_000);
    }
}
