//! The FastF1 SignalR recording (`saved_data.txt`).
//!
//! In: one message per line written as a Python literal,
//! `['Topic', {delta}, 'receive-timestamp-UTC']` (single or double quoted strings,
//! `True`/`False`/`None`). [`py_literal_to_json`] converts a literal with a real
//! tokenizer (escaped quotes and apostrophes inside strings, nesting, numbers), not
//! a quote swap.
//!
//! Out ([`read_recording`]): the same deltas as the live-timing archive fed to the
//! shared event logic of [`crate::livetiming`] — broadcast events (flags, SC/VSC,
//! pit in/out, tyre changes, lap count) and lap records — plus a typed gap/interval
//! series from `TimingData` ([`GapSample`]) and a count of messages per topic.
//!
//! Event time of a message: its third element (the receive time, UTC); when that is
//! missing, the delta's own `Utc`. A line without either is malformed.

use std::collections::BTreeMap;
use std::path::Path;

use pitwall_engine::EventTime;
use pitwall_engine::broadcast::BroadcastEvent;
use serde_json::{Map, Number, Value};

use crate::error::RaceDataError;
use crate::livetiming::{EVENT_TOPICS, LapRecord, RaceState};
use crate::time::parse_utc_ms;

// ---------------------------------------------------------------------------
// Python literal → JSON
// ---------------------------------------------------------------------------

/// Deepest nesting accepted (garbage must not overflow the stack).
const MAX_DEPTH: usize = 128;

/// Converts one Python literal (`dict`, `list`, `tuple`, `str`, `int`, `float`,
/// `True`, `False`, `None`) into JSON. Dict keys that are not strings become their
/// text; `inf`/`nan` become `null`. Returns the reason when it is not a literal.
pub fn py_literal_to_json(s: &str) -> Result<Value, String> {
    let mut p = PyParser {
        src: s,
        b: s.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!(
            "unexpected text after the literal at column {}",
            p.i + 1
        ));
    }
    Ok(v)
}

struct PyParser<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

impl PyParser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at column {}", self.i + 1))
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        let Some(&c) = self.b.get(self.i) else {
            return self.err("unexpected end of input");
        };
        match c {
            b'{' | b'[' | b'(' => {
                if self.depth >= MAX_DEPTH {
                    return self.err("nesting too deep");
                }
                self.depth += 1;
                let v = if c == b'{' {
                    self.dict()
                } else {
                    self.seq(if c == b'[' { b']' } else { b')' })
                };
                self.depth -= 1;
                v
            }
            b'\'' | b'"' => self.string().map(Value::String),
            b'-' | b'+' | b'.' | b'0'..=b'9' => self.number(),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.i < self.b.len()
                    && (self.b[self.i].is_ascii_alphanumeric() || self.b[self.i] == b'_')
                {
                    self.i += 1;
                }
                match &self.src[start..self.i] {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" | "inf" | "nan" => Ok(Value::Null),
                    // String prefixes: u'..', b'..' (read as text).
                    "u" | "b" | "U" | "B" if matches!(self.b.get(self.i), Some(b'\'' | b'"')) => {
                        self.string().map(Value::String)
                    }
                    other => {
                        self.i = start;
                        self.err(&format!("unknown name {other:?}"))
                    }
                }
            }
            _ => self.err(&format!(
                "unexpected character {:?}",
                self.src[self.i..].chars().next().unwrap_or('?')
            )),
        }
    }

    /// Items up to `close`, comma separated, trailing comma allowed.
    fn seq(&mut self, close: u8) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.b.get(self.i) == Some(&close) {
                self.i += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(&c) if c == close => {}
                _ => return self.err(&format!("expected ',' or '{}'", close as char)),
            }
        }
    }

    fn dict(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut map = Map::new();
        loop {
            self.ws();
            if self.b.get(self.i) == Some(&b'}') {
                self.i += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                Value::Bool(true) => "True".into(),
                Value::Bool(false) => "False".into(),
                Value::Null => "None".into(),
                Value::Number(n) => n.to_string(),
                _ => return self.err("a dict key must be a string, number or constant"),
            };
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return self.err("expected ':' after a dict key");
            }
            self.i += 1;
            let v = self.value()?;
            map.insert(key, v);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return self.err("expected ',' or '}'"),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.b[self.i];
        self.i += 1;
        let mut out = String::new();
        let mut run = self.i;
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            if c == q {
                out.push_str(&self.src[run..self.i]);
                self.i += 1;
                return Ok(out);
            }
            if c == b'\n' {
                return self.err("newline inside a string");
            }
            if c != b'\\' {
                self.i += 1;
                continue;
            }
            out.push_str(&self.src[run..self.i]);
            self.i += 1;
            let Some(&e) = self.b.get(self.i) else {
                return self.err("unterminated escape");
            };
            self.i += 1;
            match e {
                b'\\' => out.push('\\'),
                b'\'' => out.push('\''),
                b'"' => out.push('"'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'0' => out.push('\0'),
                b'\n' => {}
                b'x' | b'u' | b'U' => {
                    let n = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = self.src.get(self.i..self.i + n).unwrap_or("");
                    let ch = u32::from_str_radix(hex, 16)
                        .ok()
                        .filter(|_| hex.len() == n && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                        .and_then(char::from_u32);
                    match ch {
                        Some(ch) => out.push(ch),
                        None => return self.err("invalid \\x/\\u escape"),
                    }
                    self.i += n;
                }
                _ => {
                    // Unknown escapes keep the backslash, as in Python.
                    out.push('\\');
                    self.i -= 1;
                    run = self.i;
                    continue;
                }
            }
            run = self.i;
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        if matches!(self.b.get(self.i), Some(b'-' | b'+')) {
            self.i += 1;
        }
        if self.src[self.i..].starts_with("inf") || self.src[self.i..].starts_with("nan") {
            self.i += 3;
            return Ok(Value::Null);
        }
        let mut float = false;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'0'..=b'9' | b'_' => {}
                b'.' | b'e' | b'E' => float = true,
                b'-' | b'+' if matches!(self.b[self.i - 1], b'e' | b'E') => {}
                _ => break,
            }
            self.i += 1;
        }
        let text: String = self.src[start..self.i]
            .chars()
            .filter(|&c| c != '_')
            .collect();
        let text = text.strip_prefix('+').unwrap_or(&text);
        if !float && let Ok(n) = text.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        match text.parse::<f64>() {
            Ok(x) => Ok(Number::from_f64(x).map_or(Value::Null, Value::Number)),
            Err(_) => {
                self.i = start;
                self.err(&format!("invalid number {text:?}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Gaps
// ---------------------------------------------------------------------------

/// A gap as the timing feed shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Gap {
    /// `"+1.234"` (or a number): seconds.
    Seconds(f64),
    /// `"+1 LAP"`, `"+2 LAPS"`: whole laps behind.
    Laps(u32),
    /// `"LAP 12"`: shown for the leader — the lap it is on.
    LeaderOnLap(u32),
    /// `""` or absent: no gap (e.g. after a knock-out, before timing).
    Empty,
    /// Anything else, kept as text.
    Other(String),
}

/// Parses a `GapToLeader` / `IntervalToPositionAhead.Value` value.
pub fn parse_gap(v: &Value) -> Gap {
    let s = match v {
        Value::Number(n) => return n.as_f64().map_or(Gap::Empty, Gap::Seconds),
        Value::String(s) => s.trim(),
        _ => return Gap::Empty,
    };
    if s.is_empty() {
        return Gap::Empty;
    }
    if let Some(n) = s.strip_prefix("LAP ").and_then(|n| n.trim().parse().ok()) {
        return Gap::LeaderOnLap(n);
    }
    let body = s.strip_prefix('+').unwrap_or(s).trim();
    if let Some(n) = body
        .strip_suffix("LAPS")
        .or_else(|| body.strip_suffix("LAP"))
        .and_then(|n| n.trim().parse().ok())
    {
        return Gap::Laps(n);
    }
    match body.parse::<f64>() {
        Ok(x) if x.is_finite() => Gap::Seconds(x),
        _ => Gap::Other(s.to_string()),
    }
}

/// A driver's gap to the leader and interval to the car ahead after a
/// `TimingData` message that changed either (values from the merged state).
#[derive(Debug, Clone, PartialEq)]
pub struct GapSample {
    pub ts: EventTime,
    pub car: String,
    pub gap_to_leader: Gap,
    pub interval: Gap,
}

// ---------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------

/// What [`read_recording`] extracts from a `saved_data.txt`.
#[derive(Debug, Clone, PartialEq)]
pub struct FastF1Recording {
    /// Messages (non-blank lines) read.
    pub messages: u64,
    /// Messages per topic.
    pub topics: BTreeMap<String, u64>,
    /// Broadcast events sorted by (ts, arrival order).
    pub events: Vec<BroadcastEvent>,
    pub laps: Vec<LapRecord>,
    /// Gap/interval series, in arrival order.
    pub gaps: Vec<GapSample>,
}

/// Parses one recording line into `(topic, time, delta)`; `Ok(None)` if blank.
pub fn parse_message(line: &str) -> Result<Option<(String, EventTime, Value)>, String> {
    let line = line.strip_prefix('\u{feff}').unwrap_or(line).trim();
    if line.is_empty() {
        return Ok(None);
    }
    let Value::Array(mut parts) = py_literal_to_json(line)? else {
        return Err("expected a list ['Topic', {delta}, 'timestamp']".into());
    };
    if parts.len() < 2 {
        return Err("expected a list ['Topic', {delta}, 'timestamp']".into());
    }
    let ts = parts.get(2).and_then(Value::as_str).and_then(parse_utc_ms);
    let delta = parts.swap_remove(1);
    let Some(topic) = parts[0].as_str().map(str::to_string) else {
        return Err("the topic (first element) must be a string".into());
    };
    let ts = ts
        .or_else(|| {
            delta
                .get("Utc")
                .and_then(Value::as_str)
                .and_then(parse_utc_ms)
        })
        .ok_or("no receive timestamp (third element) and no Utc in the delta")?;
    Ok(Some((topic, ts, delta)))
}

/// Reads a FastF1 SignalR recording; a malformed line is an error naming file and line.
pub fn read_recording(path: &Path) -> Result<FastF1Recording, RaceDataError> {
    let text = std::fs::read_to_string(path).map_err(|source| RaceDataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rec = FastF1Recording {
        messages: 0,
        topics: BTreeMap::new(),
        events: Vec::new(),
        laps: Vec::new(),
        gaps: Vec::new(),
    };
    let mut state = RaceState::default();
    for (i, line) in text.lines().enumerate() {
        let Some((topic, ts, delta)) =
            parse_message(line).map_err(|r| RaceDataError::malformed(path, i as u64 + 1, r))?
        else {
            continue;
        };
        rec.messages += 1;
        *rec.topics.entry(topic.clone()).or_default() += 1;
        if EVENT_TOPICS.contains(&topic.as_str()) {
            state.apply(&topic, ts, &delta, &mut rec.events);
        }
        if topic == "TimingData" {
            collect_gaps(&state, ts, &delta, &mut rec.gaps);
        }
    }
    rec.events.sort_by_key(|e| e.ts); // stable: ties keep arrival order
    rec.laps = state.laps;
    Ok(rec)
}

/// Broadcast events of a recording, sorted by (ts, arrival order).
pub fn race_events(path: &Path) -> Result<Vec<BroadcastEvent>, RaceDataError> {
    Ok(read_recording(path)?.events)
}

fn collect_gaps(state: &RaceState, ts: EventTime, delta: &Value, out: &mut Vec<GapSample>) {
    let (Some(Value::Object(d)), Some(lines)) = (
        delta.get("Lines"),
        state.topics.get("TimingData").and_then(|s| s.get("Lines")),
    ) else {
        return;
    };
    let mut cars: Vec<&String> = d.keys().collect();
    cars.sort_by_key(|k| (k.parse::<u64>().unwrap_or(u64::MAX), (*k).clone()));
    for car in cars {
        let dl = &d[car];
        if dl.get("GapToLeader").is_none() && dl.get("IntervalToPositionAhead").is_none() {
            continue;
        }
        let Some(sl) = lines.get(car) else { continue };
        let interval = sl
            .get("IntervalToPositionAhead")
            .and_then(|v| v.get("Value"))
            .map_or(Gap::Empty, parse_gap);
        out.push(GapSample {
            ts,
            car: car.clone(),
            gap_to_leader: sl.get("GapToLeader").map_or(Gap::Empty, parse_gap),
            interval,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_dir;
    use pitwall_engine::broadcast::EventKind;
    use serde_json::json;

    #[test]
    fn python_literals() {
        let v = py_literal_to_json(
            r#"['Topic', {'a': 'it\'s', "b": "O'Neil \"x\"", 'n': -1.5e3, 'i': 42, 't': True, 'f': False, 'z': None, 'l': [1, (2, 3),], 1: 'k', 'u': '\u00e9\x41 é'}, '2025-11-08T14:20:19.2551498Z']"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!(["Topic", {"a": "it's", "b": "O'Neil \"x\"", "n": -1500.0, "i": 42, "t": true, "f": false, "z": null, "l": [1, [2, 3]], "1": "k", "u": "éA é"}, "2025-11-08T14:20:19.2551498Z"])
        );
        assert_eq!(py_literal_to_json(r"'a\\b'").unwrap(), json!("a\\b"));
        assert_eq!(py_literal_to_json(r"'a\qb'").unwrap(), json!("a\\qb"));
        for bad in [
            "{'a': }",
            "['x'",
            "'open",
            "{'a' 1}",
            "Truex",
            "[1 2]",
            "{'a': 1} x",
            "",
        ] {
            assert!(py_literal_to_json(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(10_000);
        assert!(py_literal_to_json(&deep).is_err());
    }

    #[test]
    fn gaps() {
        assert_eq!(parse_gap(&json!("+1.234")), Gap::Seconds(1.234));
        assert_eq!(parse_gap(&json!("+1 LAP")), Gap::Laps(1));
        assert_eq!(parse_gap(&json!("+2 LAPS")), Gap::Laps(2));
        assert_eq!(parse_gap(&json!("LAP 12")), Gap::LeaderOnLap(12));
        assert_eq!(parse_gap(&json!("")), Gap::Empty);
        assert_eq!(parse_gap(&json!(0.5)), Gap::Seconds(0.5));
        assert_eq!(parse_gap(&json!("DNF")), Gap::Other("DNF".into()));
    }

    #[test]
    fn recording_events_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("saved_data.txt");
        std::fs::write(
            &p,
            "['TimingData', {'Lines': {'4': {'InPit': True, 'GapToLeader': '+3.5', 'IntervalToPositionAhead': {'Value': '+1 LAP'}}}}, '2025-11-08T14:33:05.273Z']\n\
             \n\
             ['TimingData', {'Lines': {'4': {'InPit': False, 'PitOut': True}}}, '2025-11-08T14:33:25.000Z']\n\
             ['TrackStatus', {'Status': '6', 'Message': 'VSCDeployed', '_kf': True}]\n",
        )
        .unwrap();
        let e = read_recording(&p).unwrap_err().to_string();
        assert!(e.contains("saved_data.txt:4:"), "{e}");
        std::fs::write(
            &p,
            "['TimingData', {'Lines': {'4': {'InPit': True, 'GapToLeader': '+3.5', 'IntervalToPositionAhead': {'Value': '+1 LAP'}}}}, '2025-11-08T14:33:05.273Z']\n\
             ['TimingData', {'Lines': {'4': {'InPit': False, 'PitOut': True}}}, '2025-11-08T14:33:25.000Z']\n",
        )
        .unwrap();
        let r = read_recording(&p).unwrap();
        assert_eq!(r.messages, 2);
        let kinds: Vec<EventKind> = r.events.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(kinds, [EventKind::PitIn, EventKind::PitOut]);
        assert_eq!(r.events[0].car.as_deref(), Some("4"));
        assert_eq!(
            r.gaps,
            vec![GapSample {
                ts: parse_utc_ms("2025-11-08T14:33:05.273Z").unwrap(),
                car: "4".into(),
                gap_to_leader: Gap::Seconds(3.5),
                interval: Gap::Laps(1),
            }]
        );
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(s in "\\PC{0,80}") {
            let _ = py_literal_to_json(&s);
            let _ = parse_message(&s);
        }

        #[test]
        fn quoted_garbage_round_trips(s in "[ -~é]{0,40}") {
            // Python repr-style single-quoted string with escapes.
            let lit = format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
            proptest::prop_assert_eq!(py_literal_to_json(&lit).unwrap(), Value::String(s));
        }
    }

    #[test]
    fn real_sao_paulo_sprint() {
        let Some(data) = data_dir() else { return };
        let r =
            read_recording(&data.join("f1/2025_sao_paulo_sprint_partial/saved_data.txt")).unwrap();
        assert_eq!(r.messages, 15_757);
        assert_eq!(r.topics.values().sum::<u64>(), 15_757);
        assert_eq!(r.topics["TimingData"], 14_137);
        assert_eq!(r.topics["TopThree"], 784);
        let (lo, hi) = (
            parse_utc_ms("2025-11-08T14:20:00Z").unwrap(),
            parse_utc_ms("2025-11-08T15:10:00Z").unwrap(),
        );
        assert!(r.events.iter().all(|e| (lo..hi).contains(&e.ts)));
        let pit_in = r
            .events
            .iter()
            .filter(|e| e.kind == EventKind::PitIn)
            .count();
        let pit_out = r
            .events
            .iter()
            .filter(|e| e.kind == EventKind::PitOut)
            .count();
        assert!(pit_in >= 1 && pit_out >= 1, "{pit_in} {pit_out}");
        assert!(
            r.events
                .iter()
                .any(|e| e.kind == EventKind::Flag && e.value == "CHEQUERED")
        );
        assert!(r.events.iter().any(|e| e.value == "lap=24"));
        assert!(
            r.gaps
                .iter()
                .any(|g| matches!(g.gap_to_leader, Gap::LeaderOnLap(_)))
        );
        let secs = r
            .gaps
            .iter()
            .filter(|g| matches!(g.interval, Gap::Seconds(_)))
            .count();
        assert!(secs > 1000, "{secs}");
        assert!(!r.laps.is_empty());
        // Laps run 1:12–1:20; two laps span the red-flag suspension (24 min).
        assert!(
            r.laps
                .iter()
                .all(|l| (70_000..1_800_000).contains(&l.lap_time_ms))
        );
        let normal = r.laps.iter().filter(|l| l.lap_time_ms < 90_000).count();
        assert!(
            normal * 10 > r.laps.len() * 9,
            "{normal} of {}",
            r.laps.len()
        );
    }
}
