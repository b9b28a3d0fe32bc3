//! Timestamps of real feeds, converted to engine event time (integer milliseconds
//! since the Unix epoch, UTC).
//!
//! OpenF1 writes ISO-8601 with microseconds (`2024-06-30T13:00:00.263000+00:00`);
//! pandas re-serialisations use a space and drop a zero fraction
//! (`2024-06-30 13:03:23+00:00`); the live-timing feed writes `Utc` values like
//! `2025-10-25T20:47:27.155Z` and stream offsets `HH:MM:SS.mmm`.

/// Parses an ISO-8601 / RFC 3339 timestamp (with `T` or a space, optional fraction
/// of any length, `Z` or an offset) into milliseconds since the epoch (truncating
/// sub-millisecond digits). `None` if it is not one.
pub fn parse_utc_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let normalized;
    let s = if s.len() > 10 && s.as_bytes()[10] == b' ' {
        normalized = format!("{}T{}", &s[..10], &s[11..]);
        normalized.as_str()
    } else {
        s
    };
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    // Live timing sometimes omits the zone: read it as UTC.
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc().timestamp_millis())
}

/// Parses a stream offset `HH:MM:SS.mmm` into milliseconds.
pub fn parse_offset_ms(s: &str) -> Option<i64> {
    let mut parts = s.trim().split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    if parts.next().is_some() || !(0..60).contains(&m) {
        return None;
    }
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let s: i64 = whole.parse().ok()?;
    if !(0..60).contains(&s) || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openf1_and_pandas_forms_agree() {
        let a = parse_utc_ms("2024-06-30T13:00:00.263000+00:00").unwrap();
        let b = parse_utc_ms("2024-06-30 13:00:00.263+00:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a % 1000, 263);
        assert_eq!(
            parse_utc_ms("2024-06-30 13:03:23+00:00").unwrap(),
            parse_utc_ms("2024-06-30T13:03:23.000Z").unwrap()
        );
        assert!(parse_utc_ms("yesterday").is_none());
    }

    #[test]
    fn stream_offsets() {
        assert_eq!(parse_offset_ms("00:00:01.5"), Some(1500));
        assert_eq!(parse_offset_ms("01:02:03.004"), Some(3_723_004));
        assert_eq!(parse_offset_ms("00:61:00.000"), None);
    }
}
