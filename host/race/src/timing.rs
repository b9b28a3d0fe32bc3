//! OpenF1 timing tables — `laps`, `intervals`, `position` — as typed records, from
//! the API's CSV or JSON-array form, plus the reshaped 2024 Bahrain copies
//! (`f1/2024_bahrain_race_timing/`).
//!
//! In: CSV (columns matched by header name, any order) or a JSON array of objects
//! with the OpenF1 field names. A missing, empty or `null` field is `None`; integers
//! may be written as floats (`3.0`); a gap may be a number or text such as `+1 LAP`.
//! Out: `Vec`s sorted by event time (ties: driver number, then input order), event
//! time in ms since the Unix epoch (UTC).
//!
//! Errors are [`RaceDataError::Malformed`] with the 1-based line for CSV (header =
//! line 1) and, for JSON, the 1-based *record* number in the array (a JSON syntax
//! error reports serde's line).

use std::path::Path;

use pitwall_engine::EventTime;
use serde_json::{Map, Value};

use crate::error::RaceDataError;
use crate::openf1::{is_null_text, parse_bool_text, parse_csv, parse_int_text, read_text};
use crate::time::parse_utc_ms;

/// A time gap as OpenF1 writes `gap_to_leader` / `interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gap {
    /// Seconds behind.
    Seconds(f64),
    /// Whole laps behind (`+1 LAP`, `+2 LAPS`).
    Laps(u32),
    /// No value (the leader's interval, or not measured).
    None,
}

impl Gap {
    /// Parses `1.906`, `+1.906`, `+1 LAP`, `+3 LAPS`; null text (`""`, `None`,
    /// `null`, `nan`) is [`Gap::None`]. `None` (the `Option`) if it is none of these.
    pub fn parse(s: &str) -> Option<Gap> {
        let s = s.trim();
        if is_null_text(s) {
            return Some(Gap::None);
        }
        let body = s.strip_prefix('+').unwrap_or(s).trim();
        let upper = body.to_ascii_uppercase();
        if let Some(n) = upper
            .strip_suffix("LAPS")
            .or_else(|| upper.strip_suffix("LAP"))
        {
            return n.trim().parse::<u32>().ok().map(Gap::Laps);
        }
        match body.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(Gap::Seconds(v)),
            _ => None,
        }
    }

    /// From a JSON value: number, gap text, or `null`.
    pub fn from_json(v: &Value) -> Option<Gap> {
        match v {
            Value::Null => Some(Gap::None),
            Value::Number(n) => n.as_f64().filter(|f| f.is_finite()).map(Gap::Seconds),
            Value::String(s) => Gap::parse(s),
            _ => None,
        }
    }

    /// Seconds, if this gap is a time.
    pub fn seconds(self) -> Option<f64> {
        match self {
            Gap::Seconds(s) => Some(s),
            _ => None,
        }
    }
}

/// One OpenF1 `/laps` record. `date_start` is the lap's start; sector and lap
/// times are seconds; `segments_sector_*` are OpenF1's mini-sector colour codes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lap {
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    pub driver_number: u32,
    pub lap_number: u32,
    pub date_start: Option<EventTime>,
    pub duration_sector_1: Option<f64>,
    pub duration_sector_2: Option<f64>,
    pub duration_sector_3: Option<f64>,
    pub i1_speed: Option<f64>,
    pub i2_speed: Option<f64>,
    pub is_pit_out_lap: Option<bool>,
    pub lap_duration: Option<f64>,
    pub segments_sector_1: Option<Vec<Option<i64>>>,
    pub segments_sector_2: Option<Vec<Option<i64>>>,
    pub segments_sector_3: Option<Vec<Option<i64>>>,
    pub st_speed: Option<f64>,
}

/// One OpenF1 `/intervals` record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub ts: EventTime,
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    pub driver_number: u32,
    pub gap_to_leader: Gap,
    /// Gap to the car ahead.
    pub interval: Gap,
}

/// One OpenF1 `/position` record: the car's race position from `ts` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    pub ts: EventTime,
    pub meeting_key: Option<i64>,
    pub session_key: Option<i64>,
    pub driver_number: u32,
    pub position: u32,
}

/// Parses a segments list as written in CSV (`[2049, 2051, None]`) into codes.
fn parse_segments(s: &str) -> Option<Vec<Option<i64>>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|c| {
            let c = c.trim();
            if is_null_text(c) {
                Some(None)
            } else {
                parse_int_text(c).map(Some)
            }
        })
        .collect()
}

fn sort_by_time<T>(v: &mut [T], key: impl Fn(&T) -> (Option<EventTime>, u32)) {
    v.sort_by_key(|r| key(r));
}

/// Parses OpenF1 `laps` CSV (`driver_number`, `lap_number` required).
pub fn laps_from_csv_str(path: &Path, text: &str) -> Result<Vec<Lap>, RaceDataError> {
    const OPT: [&str; 14] = [
        "meeting_key",
        "session_key",
        "date_start",
        "duration_sector_1",
        "duration_sector_2",
        "duration_sector_3",
        "i1_speed",
        "i2_speed",
        "is_pit_out_lap",
        "lap_duration",
        "segments_sector_1",
        "segments_sector_2",
        "segments_sector_3",
        "st_speed",
    ];
    let mut v = parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("driver_number")?,
                h.req("lap_number")?,
                OPT.map(|n| h.opt(n)),
            ))
        },
        |(d, l, c), r| {
            let seg = |i: usize, name: &str| match r.cell(c[i]) {
                None => Ok(None),
                Some(s) => parse_segments(s)
                    .map(Some)
                    .ok_or_else(|| r.err(format!("{name}: {s:?} is not a list of codes"))),
            };
            Ok(Lap {
                driver_number: r.u32(*d, "driver_number")?,
                lap_number: r.u32(*l, "lap_number")?,
                meeting_key: r.opt_int(c[0], OPT[0])?,
                session_key: r.opt_int(c[1], OPT[1])?,
                date_start: r.opt_ts(c[2], OPT[2])?,
                duration_sector_1: r.opt_f64(c[3], OPT[3])?,
                duration_sector_2: r.opt_f64(c[4], OPT[4])?,
                duration_sector_3: r.opt_f64(c[5], OPT[5])?,
                i1_speed: r.opt_f64(c[6], OPT[6])?,
                i2_speed: r.opt_f64(c[7], OPT[7])?,
                is_pit_out_lap: r.opt_bool(c[8], OPT[8])?,
                lap_duration: r.opt_f64(c[9], OPT[9])?,
                segments_sector_1: seg(10, OPT[10])?,
                segments_sector_2: seg(11, OPT[11])?,
                segments_sector_3: seg(12, OPT[12])?,
                st_speed: r.opt_f64(c[13], OPT[13])?,
            })
        },
    )?;
    sort_by_time(&mut v, |l| (l.date_start, l.driver_number));
    Ok(v)
}

/// Parses OpenF1 `intervals` CSV (`date`, `driver_number` required).
pub fn intervals_from_csv_str(path: &Path, text: &str) -> Result<Vec<Interval>, RaceDataError> {
    let mut v = parse_csv(
        path,
        text,
        |h| {
            Ok((
                h.req("date")?,
                h.req("driver_number")?,
                [
                    h.opt("meeting_key"),
                    h.opt("session_key"),
                    h.opt("gap_to_leader"),
                    h.opt("interval"),
                ],
            ))
        },
        |(d, n, c), r| {
            Ok(Interval {
                ts: r.ts(*d, "date")?,
                driver_number: r.u32(*n, "driver_number")?,
                meeting_key: r.opt_int(c[0], "meeting_key")?,
                session_key: r.opt_int(c[1], "session_key")?,
                gap_to_leader: r.gap(c[2], "gap_to_leader")?,
                interval: r.gap(c[3], "interval")?,
            })
        },
    )?;
    sort_by_time(&mut v, |i| (Some(i.ts), i.driver_number));
    Ok(v)
}

/// Parses OpenF1 `position` CSV (`date`, `driver_number`, `position` required).
pub fn positions_from_csv_str(path: &Path, text: &str) -> Result<Vec<Position>, RaceDataError> {
    let mut v = parse_csv(
        path,
        text,
        |h| {
            Ok((
                [h.req("date")?, h.req("driver_number")?, h.req("position")?],
                [h.opt("meeting_key"), h.opt("session_key")],
            ))
        },
        |(q, c), r| {
            Ok(Position {
                ts: r.ts(q[0], "date")?,
                driver_number: r.u32(q[1], "driver_number")?,
                position: r.u32(q[2], "position")?,
                meeting_key: r.opt_int(c[0], "meeting_key")?,
                session_key: r.opt_int(c[1], "session_key")?,
            })
        },
    )?;
    sort_by_time(&mut v, |p| (Some(p.ts), p.driver_number));
    Ok(v)
}

// ---- JSON ----

fn parse_json(path: &Path, text: &str) -> Result<Value, RaceDataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str(text).map_err(|e| {
        RaceDataError::malformed(path, e.line().max(1) as u64, format!("invalid JSON: {e}"))
    })
}

fn json_array<'v>(path: &Path, v: &'v Value) -> Result<&'v Vec<Value>, RaceDataError> {
    v.as_array()
        .ok_or_else(|| RaceDataError::malformed(path, 1, "expected a JSON array of records"))
}

/// One JSON record with typed field accessors; errors name the record number.
struct Rec<'a> {
    path: &'a Path,
    rec: u64,
    obj: &'a Map<String, Value>,
}

impl<'a> Rec<'a> {
    fn new(path: &'a Path, rec: u64, v: &'a Value) -> Result<Self, RaceDataError> {
        let obj = v.as_object().ok_or_else(|| {
            RaceDataError::malformed(path, rec, format!("record {rec}: not an object"))
        })?;
        Ok(Rec { path, rec, obj })
    }

    fn err(&self, reason: String) -> RaceDataError {
        RaceDataError::malformed(
            self.path,
            self.rec,
            format!("record {}: {reason}", self.rec),
        )
    }

    /// The field, `None` when absent, `null` or null text.
    fn get(&self, name: &str) -> Option<&'a Value> {
        match self.obj.get(name)? {
            Value::Null => None,
            Value::String(s) if is_null_text(s.trim()) => None,
            v => Some(v),
        }
    }

    fn opt_f64(&self, name: &str) -> Result<Option<f64>, RaceDataError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => json_f64(v)
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {v} is not a number"))),
        }
    }

    fn opt_int(&self, name: &str) -> Result<Option<i64>, RaceDataError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => json_int(v)
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {v} is not a whole number"))),
        }
    }

    fn u32(&self, name: &str) -> Result<u32, RaceDataError> {
        let v = self
            .opt_int(name)?
            .ok_or_else(|| self.err(format!("{name}: missing")))?;
        u32::try_from(v).map_err(|_| self.err(format!("{name}: {v} is out of range")))
    }

    fn opt_ts(&self, name: &str) -> Result<Option<EventTime>, RaceDataError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(parse_utc_ms)
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {v} is not an ISO-8601 timestamp"))),
        }
    }

    fn ts(&self, name: &str) -> Result<EventTime, RaceDataError> {
        self.opt_ts(name)?
            .ok_or_else(|| self.err(format!("{name}: missing")))
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, RaceDataError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => v
                .as_str()
                .and_then(parse_bool_text)
                .or_else(|| json_int(v).and_then(|i| [false, true].get(i as usize).copied()))
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {v} is not a boolean"))),
        }
    }

    fn gap(&self, name: &str) -> Result<Gap, RaceDataError> {
        match self.obj.get(name) {
            None => Ok(Gap::None),
            Some(v) => {
                Gap::from_json(v).ok_or_else(|| self.err(format!("{name}: {v} is not a gap")))
            }
        }
    }

    fn segments(&self, name: &str) -> Result<Option<Vec<Option<i64>>>, RaceDataError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::Null => Some(None),
                    x => json_int(x).map(Some),
                })
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: not a list of codes"))),
            Some(Value::String(s)) => parse_segments(s)
                .map(Some)
                .ok_or_else(|| self.err(format!("{name}: {s:?} is not a list of codes"))),
            Some(v) => Err(self.err(format!("{name}: {v} is not a list of codes"))),
        }
    }
}

fn json_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

fn json_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => parse_int_text(s.trim()),
        _ => None,
    }
}

fn lap_from_rec(r: &Rec<'_>, driver: Option<u32>) -> Result<Lap, RaceDataError> {
    Ok(Lap {
        driver_number: match driver {
            Some(d) => d,
            None => r.u32("driver_number")?,
        },
        lap_number: r.u32("lap_number")?,
        meeting_key: r.opt_int("meeting_key")?,
        session_key: r.opt_int("session_key")?,
        // The reshaped Bahrain copy names `date_start` `date`.
        date_start: match r.opt_ts("date_start")? {
            Some(t) => Some(t),
            None => r.opt_ts("date")?,
        },
        duration_sector_1: r.opt_f64("duration_sector_1")?,
        duration_sector_2: r.opt_f64("duration_sector_2")?,
        duration_sector_3: r.opt_f64("duration_sector_3")?,
        i1_speed: r.opt_f64("i1_speed")?,
        i2_speed: r.opt_f64("i2_speed")?,
        is_pit_out_lap: r.opt_bool("is_pit_out_lap")?,
        lap_duration: r.opt_f64("lap_duration")?,
        segments_sector_1: r.segments("segments_sector_1")?,
        segments_sector_2: r.segments("segments_sector_2")?,
        segments_sector_3: r.segments("segments_sector_3")?,
        st_speed: r.opt_f64("st_speed")?,
    })
}

/// Parses a JSON array of records, each through `f` (records numbered from 1 for errors).
fn json_records<T>(
    path: &Path,
    text: &str,
    f: impl Fn(&Rec<'_>) -> Result<T, RaceDataError>,
) -> Result<Vec<T>, RaceDataError> {
    let v = parse_json(path, text)?;
    json_array(path, &v)?
        .iter()
        .enumerate()
        .map(|(i, x)| f(&Rec::new(path, i as u64 + 1, x)?))
        .collect()
}

/// Parses OpenF1 `/laps` as a JSON array.
pub fn laps_from_json_str(path: &Path, text: &str) -> Result<Vec<Lap>, RaceDataError> {
    let mut out = json_records(path, text, |r| lap_from_rec(r, None))?;
    sort_by_time(&mut out, |l| (l.date_start, l.driver_number));
    Ok(out)
}

/// Parses OpenF1 `/intervals` as a JSON array.
pub fn intervals_from_json_str(path: &Path, text: &str) -> Result<Vec<Interval>, RaceDataError> {
    let mut out = json_records(path, text, |r| {
        Ok(Interval {
            ts: r.ts("date")?,
            driver_number: r.u32("driver_number")?,
            meeting_key: r.opt_int("meeting_key")?,
            session_key: r.opt_int("session_key")?,
            gap_to_leader: r.gap("gap_to_leader")?,
            interval: r.gap("interval")?,
        })
    })?;
    sort_by_time(&mut out, |i| (Some(i.ts), i.driver_number));
    Ok(out)
}

/// Parses OpenF1 `/position` as a JSON array (also the Bahrain `intial_positions.json`).
pub fn positions_from_json_str(path: &Path, text: &str) -> Result<Vec<Position>, RaceDataError> {
    let mut out = json_records(path, text, |r| {
        Ok(Position {
            ts: r.ts("date")?,
            driver_number: r.u32("driver_number")?,
            position: r.u32("position")?,
            meeting_key: r.opt_int("meeting_key")?,
            session_key: r.opt_int("session_key")?,
        })
    })?;
    sort_by_time(&mut out, |p| (Some(p.ts), p.driver_number));
    Ok(out)
}

/// JSON if the text starts with `[` or `{` (after blanks and a BOM), CSV otherwise.
fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    t.starts_with('[') || t.starts_with('{')
}

/// Reads an OpenF1 `laps` file, CSV or JSON (decided by content).
pub fn read_laps(path: impl AsRef<Path>) -> Result<Vec<Lap>, RaceDataError> {
    let path = path.as_ref();
    let text = read_text(path)?;
    if looks_like_json(&text) {
        laps_from_json_str(path, &text)
    } else {
        laps_from_csv_str(path, &text)
    }
}

/// Reads an OpenF1 `intervals` file, CSV or JSON (decided by content).
pub fn read_intervals(path: impl AsRef<Path>) -> Result<Vec<Interval>, RaceDataError> {
    let path = path.as_ref();
    let text = read_text(path)?;
    if looks_like_json(&text) {
        intervals_from_json_str(path, &text)
    } else {
        intervals_from_csv_str(path, &text)
    }
}

/// Reads an OpenF1 `position` file, CSV or JSON (decided by content).
pub fn read_positions(path: impl AsRef<Path>) -> Result<Vec<Position>, RaceDataError> {
    let path = path.as_ref();
    let text = read_text(path)?;
    if looks_like_json(&text) {
        positions_from_json_str(path, &text)
    } else {
        positions_from_csv_str(path, &text)
    }
}

// ---- the reshaped Bahrain 2024 copies ----

/// `t = 0` of the Bahrain `interval_data.json`: lap 1's `date_start`,
/// 2024-03-02T15:03:42Z, in ms since the epoch.
pub const BAHRAIN_2024_INTERVAL_EPOCH_MS: EventTime = 1_709_391_822_000;

/// Parses the reshaped laps (`rel_lap_data.json`): an object keyed by driver
/// number, each a list of `{date, lap_number, duration_sector_1..3, lap_duration}`
/// (`date` = `date_start`). Fields the reshape dropped are `None`. Records are
/// numbered in file order across drivers for errors.
pub fn rel_lap_data_from_json_str(path: &Path, text: &str) -> Result<Vec<Lap>, RaceDataError> {
    let v = parse_json(path, text)?;
    let obj = v.as_object().ok_or_else(|| {
        RaceDataError::malformed(path, 1, "expected an object keyed by driver number")
    })?;
    let mut out = Vec::new();
    let mut rec = 0u64;
    for (driver, laps) in obj {
        let d: u32 = driver.trim().parse().map_err(|_| {
            RaceDataError::malformed(
                path,
                rec + 1,
                format!("key {driver:?} is not a driver number"),
            )
        })?;
        let laps = laps.as_array().ok_or_else(|| {
            RaceDataError::malformed(
                path,
                rec + 1,
                format!("driver {driver}: expected a list of laps"),
            )
        })?;
        for l in laps {
            rec += 1;
            out.push(lap_from_rec(&Rec::new(path, rec, l)?, Some(d))?);
        }
    }
    sort_by_time(&mut out, |l| (l.date_start, l.driver_number));
    Ok(out)
}

/// Parses the reshaped intervals (`interval_data.json`): `[{id: driver,
/// positions: [[t, interval], …]}, …]`, `t` in seconds after `epoch_ms` (for the
/// Bahrain file [`BAHRAIN_2024_INTERVAL_EPOCH_MS`]). `interval` may be `null`
/// ([`Gap::None`]) or a gap text; `gap_to_leader` was dropped by the reshape and is
/// [`Gap::None`]. Errors number the `[t, interval]` samples in file order.
pub fn interval_data_from_json_str(
    path: &Path,
    text: &str,
    epoch_ms: EventTime,
) -> Result<Vec<Interval>, RaceDataError> {
    let v = parse_json(path, text)?;
    let mut out = Vec::new();
    let mut rec = 0u64;
    for (i, entry) in json_array(path, &v)?.iter().enumerate() {
        let bad = |rec: u64, why: String| {
            RaceDataError::malformed(path, rec, format!("entry {}: {why}", i + 1))
        };
        let driver = entry
            .get("id")
            .and_then(json_int)
            .and_then(|d| u32::try_from(d).ok())
            .ok_or_else(|| bad(rec + 1, "no driver number in `id`".into()))?;
        let samples = entry
            .get("positions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(rec + 1, "no `positions` list".into()))?;
        for s in samples {
            rec += 1;
            let pair = s.as_array().filter(|a| a.len() == 2);
            let t = pair
                .and_then(|a| json_f64(&a[0]))
                .filter(|t| t.abs() < 1.0e9)
                .ok_or_else(|| bad(rec, format!("sample {s} is not [t, interval]")))?;
            let interval = pair
                .and_then(|a| Gap::from_json(&a[1]))
                .ok_or_else(|| bad(rec, format!("sample {s}: interval is not a gap")))?;
            out.push(Interval {
                ts: epoch_ms + (t * 1000.0).round() as i64,
                meeting_key: None,
                session_key: None,
                driver_number: driver,
                gap_to_leader: Gap::None,
                interval,
            });
        }
    }
    sort_by_time(&mut out, |i| (Some(i.ts), i.driver_number));
    Ok(out)
}

/// Reads `rel_lap_data.json` (see [`rel_lap_data_from_json_str`]).
pub fn read_rel_lap_data(path: impl AsRef<Path>) -> Result<Vec<Lap>, RaceDataError> {
    let path = path.as_ref();
    rel_lap_data_from_json_str(path, &read_text(path)?)
}

/// Reads `interval_data.json` (see [`interval_data_from_json_str`]).
pub fn read_interval_data(
    path: impl AsRef<Path>,
    epoch_ms: EventTime,
) -> Result<Vec<Interval>, RaceDataError> {
    let path = path.as_ref();
    interval_data_from_json_str(path, &read_text(path)?, epoch_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("t")
    }

    fn line_of(e: RaceDataError) -> u64 {
        match e {
            RaceDataError::Malformed { line, .. } => line,
            other => panic!("expected Malformed, got {other}"),
        }
    }

    #[test]
    fn gap_forms() {
        assert_eq!(Gap::parse("+1 LAP"), Some(Gap::Laps(1)));
        assert_eq!(Gap::parse("+12 LAPS"), Some(Gap::Laps(12)));
        assert_eq!(Gap::parse("1.906"), Some(Gap::Seconds(1.906)));
        assert_eq!(Gap::parse("+0.3"), Some(Gap::Seconds(0.3)));
        assert_eq!(Gap::parse(""), Some(Gap::None));
        assert_eq!(Gap::parse("None"), Some(Gap::None));
        assert_eq!(Gap::parse("fast"), None);
        assert_eq!(Gap::parse("+x LAP"), None);
        assert_eq!(Gap::from_json(&serde_json::json!(null)), Some(Gap::None));
        assert_eq!(
            Gap::from_json(&serde_json::json!(0.5)),
            Some(Gap::Seconds(0.5))
        );
        assert_eq!(
            Gap::from_json(&serde_json::json!("+2 LAPS")),
            Some(Gap::Laps(2))
        );
        assert_eq!(Gap::from_json(&serde_json::json!([1])), None);
        assert_eq!(Gap::Seconds(2.0).seconds(), Some(2.0));
        assert_eq!(Gap::Laps(2).seconds(), None);
        assert_eq!(
            parse_utc_ms("2024-03-02T15:03:42+00:00"),
            Some(BAHRAIN_2024_INTERVAL_EPOCH_MS)
        );
    }

    #[test]
    fn laps_csv() {
        let t = "meeting_key,session_key,driver_number,lap_number,date_start,duration_sector_1,duration_sector_2,duration_sector_3,i1_speed,i2_speed,is_pit_out_lap,lap_duration,segments_sector_1,segments_sector_2,segments_sector_3,st_speed\n\
1229,9472,1,2.0,2024-03-02T15:05:20.5+00:00,33.1,42.2,22.3,270,255.0,False,97.6,\"[2049, 2049, None]\",[],\"[2051]\",300\n\
1229,9472,1,1,2024-03-02T15:03:42+00:00,,42.0,22.0,,,True,,,,,\n";
        let v = laps_from_csv_str(p(), t).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].lap_number, 1, "sorted by date_start");
        assert_eq!(v[0].is_pit_out_lap, Some(true));
        assert_eq!(v[0].duration_sector_1, None);
        assert_eq!(v[0].segments_sector_1, None);
        assert_eq!(
            v[1].segments_sector_1,
            Some(vec![Some(2049), Some(2049), None])
        );
        assert_eq!(v[1].segments_sector_2, Some(vec![]));
        assert_eq!(v[1].lap_duration, Some(97.6));
        // Column order does not matter.
        let t2 = "lap_number,driver_number,lap_duration\n3,44,90.5\n";
        let v2 = laps_from_csv_str(p(), t2).unwrap();
        assert_eq!(
            (v2[0].driver_number, v2[0].lap_number, v2[0].date_start),
            (44, 3, None)
        );
        let bad = format!("{t2}4,44,90.5\n4.5,44,90\n");
        assert_eq!(line_of(laps_from_csv_str(p(), &bad).unwrap_err()), 4);
        let bad = "lap_number,driver_number,segments_sector_1\n3,44,\"[1, x]\"\n";
        assert_eq!(line_of(laps_from_csv_str(p(), bad).unwrap_err()), 2);
    }

    #[test]
    fn intervals_csv_with_lap_gaps() {
        // Pandas column order of the Chinese GP copy.
        let t = "date,session_key,interval,gap_to_leader,meeting_key,driver_number\n\
2025-03-23T07:10:00.1+00:00,9998,0.5,3.2,1255,44\n\
2025-03-23T07:10:00.1+00:00,9998,,,1255,1\n\
2025-03-23T07:09:59+00:00,9998,+1 LAP,+1 LAP,1255,2\n";
        let v = intervals_from_csv_str(p(), t).unwrap();
        assert_eq!(v[0].driver_number, 2);
        assert_eq!(
            (v[0].interval, v[0].gap_to_leader),
            (Gap::Laps(1), Gap::Laps(1))
        );
        assert_eq!((v[1].driver_number, v[1].interval), (1, Gap::None));
        assert_eq!(
            (v[2].interval, v[2].gap_to_leader),
            (Gap::Seconds(0.5), Gap::Seconds(3.2))
        );
        let bad = format!("{t}2025-03-23T07:10:01Z,9998,soon,1,1255,44\n");
        assert_eq!(line_of(intervals_from_csv_str(p(), &bad).unwrap_err()), 5);
        let bad = "date,interval\n2025-03-23T07:10:01Z,1\n";
        assert_eq!(line_of(intervals_from_csv_str(p(), bad).unwrap_err()), 1);
    }

    #[test]
    fn positions_csv_and_json() {
        let c = "date,session_key,meeting_key,driver_number,position,timestamp\n\
2024-06-30 13:03:23.220000+00:00,9550,1239,4,2.0,13:03:23\n\
2024-06-30 13:00:00+00:00,9550,1239,1,1,13:00:00\n";
        let v = positions_from_csv_str(p(), c).unwrap();
        assert_eq!((v[0].driver_number, v[0].position), (1, 1));
        assert_eq!((v[1].driver_number, v[1].position), (4, 2));
        let j = r#"[{"session_key": 9472, "meeting_key": 1229, "driver_number": 1, "date": "2024-03-02T14:03:47.739000+00:00", "position": 1},
                    {"driver_number": "2", "date": "2024-03-02T14:03:47.739000+00:00", "position": 18.0, "session_key": null}]"#;
        let v = positions_from_json_str(p(), j).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].driver_number, v[1].position, v[1].session_key),
            (2, 18, None)
        );
        assert_eq!(v[0].session_key, Some(9472));
        let bad = r#"[{"driver_number": 1, "date": "2024-03-02T14:03:47Z", "position": 1},
                      {"driver_number": 1, "date": "2024-03-02T14:03:47Z", "position": 1.5}]"#;
        assert_eq!(line_of(positions_from_json_str(p(), bad).unwrap_err()), 2);
        assert_eq!(
            line_of(positions_from_json_str(p(), "[\n{\"a\":\n").unwrap_err()),
            3
        );
        assert_eq!(line_of(positions_from_json_str(p(), "{}").unwrap_err()), 1);
    }

    #[test]
    fn laps_and_intervals_json() {
        let j = r#"[{"meeting_key":1229,"session_key":9472,"driver_number":1,"lap_number":1,"date_start":null,
                     "duration_sector_1":null,"duration_sector_2":40.1,"duration_sector_3":22.0,"i1_speed":null,
                     "i2_speed":250,"is_pit_out_lap":false,"lap_duration":null,"segments_sector_1":[null,2049],
                     "segments_sector_2":[2051],"segments_sector_3":[2049],"st_speed":290}]"#;
        let v = laps_from_json_str(p(), j).unwrap();
        assert_eq!(v[0].is_pit_out_lap, Some(false));
        assert_eq!(v[0].segments_sector_1, Some(vec![None, Some(2049)]));
        assert_eq!((v[0].lap_duration, v[0].i2_speed), (None, Some(250.0)));
        let j = r#"[{"date":"2024-03-02T15:05:00Z","session_key":9472,"driver_number":2,"meeting_key":1229,"gap_to_leader":"+1 LAP","interval":null},
                    {"date":"2024-03-02T15:04:00Z","driver_number":1,"gap_to_leader":0,"interval":0.0}]"#;
        let v = intervals_from_json_str(p(), j).unwrap();
        assert_eq!(v[0].driver_number, 1);
        assert_eq!(
            (v[1].gap_to_leader, v[1].interval),
            (Gap::Laps(1), Gap::None)
        );
        let bad = r#"[{"date":"2024-03-02T15:05:00Z","driver_number":2,"interval":{}}]"#;
        assert_eq!(line_of(intervals_from_json_str(p(), bad).unwrap_err()), 1);
    }

    #[test]
    fn bahrain_reshapes() {
        let laps = r#"{"81": [{"date": "2024-03-02T15:03:42+00:00", "lap_number": 1, "duration_sector_1": 35.586999999999996,
                         "duration_sector_2": 43.573, "duration_sector_3": 24.14, "lap_duration": 103.3}],
                       "1": [{"date": "2024-03-02T15:03:42+00:00", "lap_number": 1, "duration_sector_1": null,
                         "duration_sector_2": 43.0, "duration_sector_3": 24.0, "lap_duration": null}]}"#;
        let v = rel_lap_data_from_json_str(p(), laps).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].driver_number, 1);
        assert_eq!(v[1].lap_duration, Some(103.3));
        assert_eq!(v[1].date_start, Some(BAHRAIN_2024_INTERVAL_EPOCH_MS));
        assert!(rel_lap_data_from_json_str(p(), r#"{"x": []}"#).is_err());
        let ints = r#"[{"id": 81, "positions": [[2.432, 0.853], [16.944, null]]}, {"id": 1, "positions": [[3.0, "+1 LAP"]]}]"#;
        let v = interval_data_from_json_str(p(), ints, 1000).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!((v[0].ts, v[0].interval), (3432, Gap::Seconds(0.853)));
        assert_eq!((v[1].driver_number, v[1].interval), (1, Gap::Laps(1)));
        assert_eq!(v[2].interval, Gap::None);
        let bad = r#"[{"id": 81, "positions": [[2.4, 0.8], [3.0]]}]"#;
        assert_eq!(
            line_of(interval_data_from_json_str(p(), bad, 0).unwrap_err()),
            2
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn garbage_never_panics(junk in "[ -~\"]{0,60}") {
            let csv = format!("date,driver_number,position,interval,gap_to_leader,lap_number\n{junk}\n");
            for r in [
                positions_from_csv_str(p(), &csv).map(|_| ()),
                intervals_from_csv_str(p(), &csv).map(|_| ()),
                laps_from_csv_str(p(), &csv).map(|_| ()),
            ] {
                match r {
                    Ok(()) | Err(RaceDataError::Malformed { line: 2, .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e}"))),
                }
            }
            let _ = positions_from_json_str(p(), &junk);
            let _ = laps_from_json_str(p(), &junk);
            let _ = intervals_from_json_str(p(), &junk);
            let _ = rel_lap_data_from_json_str(p(), &junk);
            let _ = interval_data_from_json_str(p(), &junk, 0);
            let _ = Gap::parse(&junk);
        }
    }

    #[test]
    fn real_bahrain_timing() {
        let Some(d) = crate::data_dir() else { return };
        let dir = d.join("f1/2024_bahrain_race_timing");
        let laps = read_rel_lap_data(dir.join("rel_lap_data.json")).unwrap();
        assert_eq!(laps.len(), 1129);
        let drivers: std::collections::BTreeSet<u32> =
            laps.iter().map(|l| l.driver_number).collect();
        assert_eq!(drivers.len(), 20);
        assert!(laps.windows(2).all(|w| w[0].date_start <= w[1].date_start));
        let l1 = laps
            .iter()
            .find(|l| l.driver_number == 81 && l.lap_number == 1)
            .unwrap();
        assert_eq!(l1.lap_duration, Some(103.3));
        assert_eq!(l1.date_start, Some(BAHRAIN_2024_INTERVAL_EPOCH_MS));

        let ints = read_interval_data(
            dir.join("interval_data.json"),
            BAHRAIN_2024_INTERVAL_EPOCH_MS,
        )
        .unwrap();
        assert_eq!(ints.len(), 29_854);
        assert_eq!(ints.iter().filter(|i| i.interval == Gap::None).count(), 523);
        assert_eq!(ints.iter().filter(|i| i.driver_number == 1).count(), 57);
        assert!(ints.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert_eq!(ints[0].ts, BAHRAIN_2024_INTERVAL_EPOCH_MS + 2_432);
        let end = parse_utc_ms("2024-03-02T16:40:00Z").unwrap();
        assert!(ints.last().unwrap().ts < end);

        let pos = read_positions(dir.join("intial_positions.json")).unwrap();
        assert_eq!(pos.len(), 435);
        assert_eq!(
            pos.iter()
                .map(|p| p.driver_number)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            20
        );
        assert_eq!(pos[0].ts, parse_utc_ms("2024-03-02T14:03:47.739Z").unwrap());
        assert_eq!(
            pos.last().unwrap().ts,
            parse_utc_ms("2024-03-02T16:29:07.991Z").unwrap()
        );
    }

    #[test]
    fn real_austria_positions_csv() {
        let Some(d) = crate::data_dir() else { return };
        let pos = read_positions(d.join("f1/2024_austria_race/position.csv")).unwrap();
        assert_eq!(pos.len(), 481);
        assert!(pos.iter().all(|p| (1..=20).contains(&p.position)));
    }
}
