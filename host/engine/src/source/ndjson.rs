//! NDJSON telemetry: one flat JSON object per line, keys named as the schema's columns.
//!
//! **In:** blocks of whole lines (from [`super::file`]). **Out:** rows pushed into a
//! `BlockWriter` in file order; malformed lines rejected with a reason naming the
//! column, the value and what was expected.
//!
//! Values: the time column must be a JSON integer; the key a JSON string or
//! integer (with schema key type `int`, a string must hold an integer, and keys are
//! canonicalised: `"07"` is car `7`); channels are JSON numbers (`true`/`false`
//! also for bool channels). An absent key or `null` is a missing value — `NaN` for
//! an optional channel, an error otherwise. Unknown keys are ignored whatever their
//! value; a key given twice counts once, the last one winning (as `serde_json`).
//!
//! Two paths, because replay files repeat one shape millions of times:
//! * the **fast path** scans a line once: plain keys (no escapes), scalar values,
//!   any JSON whitespace. Keys usually come in the same order on every line, so
//!   the parser predicts each key from the previous line's order and compares
//!   bytes instead of hashing;
//! * every other line — escapes, nested values, duplicate keys, and every
//!   malformed line — goes through **`serde_json`**, so any valid JSON object is
//!   accepted and errors are explained. The fast path accepts only what the slow
//!   path accepts, with the same values (numbers are correctly rounded on both).

use std::collections::HashMap;

use memchr::memchr;
use serde_json::{Map, Value};

use super::file::{
    BlockParse, BlockWriter, POW10, POW10_U64, RowSpec, digit_run, digits8, load8, show,
};
use crate::schema::ChannelType;

/// What a JSON key feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Time,
    Key,
    Channel(usize),
    Ignore,
}

impl Target {
    /// Index in the per-row "seen" table: time, key, then channels.
    #[inline(always)]
    fn slot(self) -> usize {
        match self {
            Target::Time => 0,
            Target::Key => 1,
            Target::Channel(c) => 2 + c,
            Target::Ignore => usize::MAX,
        }
    }
}

/// An NDJSON block parser for one schema.
#[derive(Debug)]
pub(crate) struct NdjsonParser {
    spec: RowSpec,
    names: HashMap<Box<[u8]>, Target>,
}

/// A key as seen on the previous line, with its first 8 bytes (closing quote
/// included) as a word, so that the usual case — the same key at the same place —
/// is one load, one mask and one compare.
struct Predicted {
    /// The key's text followed by its closing quote.
    quoted: Box<[u8]>,
    word: u64,
    mask: u64,
    target: Target,
}

impl Predicted {
    fn new(key: &[u8], target: Target) -> Predicted {
        let mut quoted = key.to_vec();
        quoted.push(b'"');
        let n = quoted.len().min(8);
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&quoted[..n]);
        Predicted {
            word: u64::from_le_bytes(b),
            mask: if n == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * n)) - 1
            },
            quoted: quoted.into(),
            target,
        }
    }

    /// The key text (with its quote) starts at `ks` in `d`.
    #[inline(always)]
    fn matches(&self, d: &[u8], ks: usize) -> bool {
        load8(d, ks) & self.mask == self.word
            && (self.quoted.len() <= 8
                || d.get(ks + 8..ks + self.quoted.len())
                    .is_some_and(|rest| same_bytes(rest, &self.quoted[8..])))
    }
}

/// Per-block state of the fast path.
struct Scan {
    /// The keys of the previous line, in order: the prediction for this line.
    order: Vec<Predicted>,
    /// `seen[slot] == row` when the slot got a value in the current row.
    seen: Vec<u64>,
    row: u64,
}

impl NdjsonParser {
    pub(crate) fn new(spec: RowSpec) -> NdjsonParser {
        let mut names = HashMap::new();
        names.insert(spec.schema.time.name.as_bytes().into(), Target::Time);
        names.insert(spec.schema.key.name.as_bytes().into(), Target::Key);
        for (c, ch) in spec.schema.channels.iter().enumerate() {
            names.insert(ch.name.as_bytes().into(), Target::Channel(c));
        }
        NdjsonParser { spec, names }
    }

    /// The target of the `i`-th key of a line, whose text starts at `ks`, and
    /// the position of the key's closing quote.
    #[inline(always)]
    fn target(&self, scan: &mut Scan, i: usize, d: &[u8], ks: usize) -> Option<(Target, usize)> {
        if let Some(k) = scan.order.get(i)
            && k.matches(d, ks)
        {
            return Some((k.target, ks + k.quoted.len() - 1));
        }
        let ke = plain_string_end(d, ks)?;
        Some((self.learn(scan, i, &d[ks..ke]), ke))
    }

    #[cold]
    fn learn(&self, scan: &mut Scan, i: usize, key: &[u8]) -> Target {
        let t = self.names.get(key).copied().unwrap_or(Target::Ignore);
        if i < scan.order.len() {
            scan.order[i] = Predicted::new(key, t);
        } else if i == scan.order.len() {
            scan.order.push(Predicted::new(key, t));
        }
        t
    }

    /// Parses the line at `p` on the fast path; returns the start of the next line,
    /// or `None` to hand the line to `serde_json` (values pushed are rolled back).
    #[inline(always)]
    fn fast_row(
        &self,
        d: &[u8],
        p: usize,
        w: &mut BlockWriter<'_>,
        scan: &mut Scan,
    ) -> Option<usize> {
        let mut p = skip_ws(d, p);
        if d.get(p) != Some(&b'{') {
            return None;
        }
        p = skip_ws(d, p + 1);
        scan.row += 1;
        let row = scan.row;
        if d.get(p) == Some(&b'}') {
            p += 1;
        } else {
            let mut i = 0;
            loop {
                if d.get(p) != Some(&b'"') {
                    return None;
                }
                let (t, ke) = self.target(scan, i, d, p + 1)?;
                p = skip_ws(d, ke + 1);
                if d.get(p) != Some(&b':') {
                    return None;
                }
                p = skip_ws(d, p + 1);
                i += 1;
                if t != Target::Ignore {
                    let s = scan.seen.get_mut(t.slot())?;
                    if *s == row {
                        return None; // duplicate key: serde_json's rule (last wins) applies
                    }
                    *s = row;
                }
                p = self.fast_value(t, d, p, w)?;
                p = skip_ws(d, p);
                match d.get(p) {
                    Some(b',') => p = skip_ws(d, p + 1),
                    Some(b'}') => {
                        p += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        p = skip_ws(d, p);
        let next = match d.get(p) {
            None => p,
            Some(b'\n') => p + 1,
            Some(_) => return None,
        };
        if scan.seen[0] != row || scan.seen[1] != row {
            return None;
        }
        for (c, plan) in self.spec.channels.iter().enumerate() {
            if scan.seen[2 + c] != row {
                if !plan.optional {
                    return None;
                }
                if plan.projected {
                    w.chunk.columns[c].push(f64::NAN);
                }
            }
        }
        Some(next)
    }

    /// Parses one value at `p` for target `t` and returns the position after it.
    #[inline(always)]
    fn fast_value(&self, t: Target, d: &[u8], p: usize, w: &mut BlockWriter<'_>) -> Option<usize> {
        match t {
            Target::Time => {
                let (v, q) = json_int(d, p)?;
                w.chunk.ts.push(v);
                Some(q)
            }
            Target::Key => {
                let id;
                let q;
                if d.get(p) == Some(&b'"') {
                    let e = plain_string_end(d, p + 1)?;
                    let text = &d[p + 1..e];
                    id = if self.spec.key_int {
                        let (v, end) = super::file::fast_int(text, 0)?;
                        if end != text.len() {
                            return None;
                        }
                        w.int_key(v)
                    } else {
                        if text.is_empty() {
                            return None;
                        }
                        w.str_key(text).ok()?
                    };
                    q = e + 1;
                } else {
                    let (v, e) = json_int(d, p)?;
                    id = if self.spec.key_int {
                        w.int_key(v)
                    } else {
                        w.str_key(&d[p..e]).ok()?
                    };
                    q = e;
                }
                w.chunk.keys.push(id);
                Some(q)
            }
            Target::Channel(c) => {
                let plan = &self.spec.channels[c];
                if !plan.projected {
                    // Not parsed; a required channel must still be there.
                    if !plan.optional && d[p..].starts_with(b"null") {
                        return None;
                    }
                    return skip_scalar(d, p);
                }
                let (v, q) = match d.get(p)? {
                    b'-' | b'0'..=b'9' => json_number(d, p)?,
                    b't' if plan.ty == ChannelType::Bool && d[p..].starts_with(b"true") => {
                        (1.0, p + 4)
                    }
                    b'f' if plan.ty == ChannelType::Bool && d[p..].starts_with(b"false") => {
                        (0.0, p + 5)
                    }
                    b'n' if d[p..].starts_with(b"null") => {
                        if !plan.optional {
                            return None;
                        }
                        (f64::NAN, p + 4)
                    }
                    _ => return None,
                };
                if !v.is_nan()
                    && (!self.spec.accepts(c, v)
                        || (plan.ty == ChannelType::Bool && v != 0.0 && v != 1.0))
                {
                    return None;
                }
                w.chunk.columns[c].push(v);
                Some(q)
            }
            Target::Ignore => skip_scalar(d, p),
        }
    }

    /// Parses one line (without its `\n`) with `serde_json`. `Ok(false)` for a
    /// blank line.
    fn slow_row(&self, line: &[u8], w: &mut BlockWriter<'_>) -> Result<bool, String> {
        if line.trim_ascii().is_empty() {
            return Ok(false);
        }
        let map: Map<String, Value> =
            serde_json::from_slice(line).map_err(|e| format!("not a valid JSON object ({e})"))?;
        let spec = &self.spec;
        let time_name = &spec.schema.time.name;
        let ts = match map.get(time_name) {
            None | Some(Value::Null) => {
                return Err(format!("column {time_name:?}: the timestamp is missing"));
            }
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            Some(v) => {
                return Err(format!(
                    "column {time_name:?}: expected an integer timestamp (in {}), found {}",
                    spec.schema.time.unit.suffix(),
                    describe(v)
                ));
            }
        };
        let mut values = vec![f64::NAN; spec.channels.len()];
        for (c, ch) in spec.schema.channels.iter().enumerate() {
            let plan = spec.channels[c];
            let v = match map.get(&ch.name) {
                None | Some(Value::Null) => spec.missing(c)?,
                Some(_) if !plan.projected => continue,
                Some(Value::Number(n)) => match n.as_f64() {
                    Some(v) if v.is_finite() => spec.channel_number(c, v)?,
                    _ => {
                        return Err(format!("column {:?}: {n} is not a finite number", ch.name));
                    }
                },
                Some(Value::Bool(b)) if plan.ty == ChannelType::Bool => f64::from(u8::from(*b)),
                Some(v) => {
                    return Err(format!(
                        "column {:?}: expected a number, found {}",
                        ch.name,
                        describe(v)
                    ));
                }
            };
            values[c] = v;
        }
        let key_name = &spec.schema.key.name;
        // The key last: a rejected row must not intern its key.
        let key = match map.get(key_name) {
            None | Some(Value::Null) => {
                return Err(format!("column {key_name:?}: the key is missing"));
            }
            Some(Value::String(s)) => w.key_text(s.as_bytes())?,
            Some(Value::Number(n)) if n.as_i64().is_some() => {
                let v = n.as_i64().unwrap_or_default();
                if spec.key_int {
                    w.int_key(v)
                } else {
                    w.str_key(itoa::Buffer::new().format(v).as_bytes())?
                }
            }
            Some(v) => {
                return Err(format!(
                    "column {key_name:?}: expected a string or integer key, found {}",
                    describe(v)
                ));
            }
        };
        w.chunk.ts.push(ts);
        w.chunk.keys.push(key);
        for (c, v) in values.into_iter().enumerate() {
            if spec.channels[c].projected {
                w.chunk.columns[c].push(v);
            }
        }
        Ok(true)
    }
}

impl BlockParse for NdjsonParser {
    fn spec(&self) -> &RowSpec {
        &self.spec
    }

    fn parse_block(&self, d: &[u8], w: &mut BlockWriter<'_>) {
        let mut scan = Scan {
            order: Vec::new(),
            seen: vec![0; 2 + self.spec.channels.len()],
            row: 0,
        };
        let mut p = 0;
        while p < d.len() {
            let mark = w.mark();
            if let Some(next) = self.fast_row(d, p, w, &mut scan) {
                w.end_row();
                w.line += 1;
                p = next;
                continue;
            }
            w.rollback(mark);
            let nl = memchr(b'\n', &d[p..]).map_or(d.len(), |i| p + i);
            match self.slow_row(&d[p..nl], w) {
                Ok(true) => w.end_row(),
                Ok(false) => {}
                Err(reason) => {
                    w.rollback(mark);
                    if !w.reject(p, reason) {
                        return;
                    }
                }
            }
            w.line += 1;
            p = (nl + 1).min(d.len());
        }
    }
}

/// Byte equality for short keys, inlined (a `memcmp` call costs more than the compare).
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// A JSON value for an error message.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the string {}", show(s.as_bytes())),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Skips JSON whitespace other than the line's `\n`.
#[inline(always)]
fn skip_ws(d: &[u8], mut p: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\r') = d.get(p) {
        p += 1;
    }
    p
}

/// The closing quote of a string whose text starts at `p`, if it has no escapes
/// and stays on the line.
#[inline(always)]
fn plain_string_end(d: &[u8], mut p: usize) -> Option<usize> {
    while let Some(&b) = d.get(p) {
        match b {
            b'"' => return Some(p),
            b'\\' | b'\n' => return None,
            _ => p += 1,
        }
    }
    None
}

/// Skips a scalar value (of an unknown key); `None` for nested values and escapes.
#[inline(always)]
fn skip_scalar(d: &[u8], p: usize) -> Option<usize> {
    match d.get(p)? {
        b'"' => plain_string_end(d, p + 1).map(|e| e + 1),
        b'-' | b'0'..=b'9' => json_number(d, p).map(|(_, e)| e),
        b't' if d[p..].starts_with(b"true") => Some(p + 4),
        b'f' if d[p..].starts_with(b"false") => Some(p + 5),
        b'n' if d[p..].starts_with(b"null") => Some(p + 4),
        _ => None,
    }
}

/// A JSON integer (`-?(0|[1-9][0-9]*)`, at most 18 digits) at `p`, followed by
/// something that cannot continue a number.
#[inline(always)]
fn json_int(d: &[u8], p0: usize) -> Option<(i64, usize)> {
    let mut p = p0;
    let neg = d.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let ds = p;
    let (v, n, p) = digit_run(d, p);
    if n == 0 || n > 18 || (n > 1 && d[ds] == b'0') {
        return None;
    }
    if let Some(b'.' | b'e' | b'E') = d.get(p) {
        return None;
    }
    let v = v as i64;
    Some((if neg { -v } else { v }, p))
}

/// A JSON number at `p`, validated against the JSON grammar, and the position
/// after it: plain decimals with integer and fraction parts of up to 7 digits
/// each, read 8 bytes at a time; anything else by [`json_number_general`].
#[inline(always)]
fn json_number(d: &[u8], p0: usize) -> Option<(f64, usize)> {
    let mut p = p0;
    let neg = d.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let ds = p;
    let (a, ni) = digits8(load8(d, p));
    if ni == 0 || ni == 8 || (ni > 1 && d[ds] == b'0') {
        return json_number_general(d, p0);
    }
    p += ni;
    let (m, nf) = if d.get(p) == Some(&b'.') {
        let (f, nf) = digits8(load8(d, p + 1));
        if nf == 0 || nf == 8 {
            return json_number_general(d, p0);
        }
        p += 1 + nf;
        (a * POW10_U64[nf] + f, nf)
    } else {
        (a, 0)
    };
    if let Some(b'e' | b'E') = d.get(p) {
        return json_number_general(d, p0);
    }
    // At most 14 digits: m < 2^53, exact; `m / 10^k` is correctly rounded.
    let v = if nf == 0 {
        m as i64 as f64
    } else {
        m as i64 as f64 / POW10[nf]
    };
    Some((if neg { -v } else { v }, p))
}

/// A JSON number at `p`, validated against the JSON grammar, and the position
/// after it, a byte at a time. Plain decimals of up to 19 digits with a mantissa
/// up to 2^53 are computed here exactly (see [`super::file::fast_decimal`]); the
/// rest by `fast_float2`.
#[cold]
fn json_number_general(d: &[u8], p0: usize) -> Option<(f64, usize)> {
    let mut p = p0;
    let neg = d.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let ds = p;
    let mut m: u64 = 0;
    while let Some(&b) = d.get(p) {
        let x = b.wrapping_sub(b'0');
        if x > 9 {
            break;
        }
        m = m.wrapping_mul(10).wrapping_add(u64::from(x));
        p += 1;
    }
    let nint = p - ds;
    if nint == 0 || (nint > 1 && d[ds] == b'0') {
        return None;
    }
    let mut nfrac = 0;
    if d.get(p) == Some(&b'.') {
        p += 1;
        let fs = p;
        while let Some(&b) = d.get(p) {
            let x = b.wrapping_sub(b'0');
            if x > 9 {
                break;
            }
            m = m.wrapping_mul(10).wrapping_add(u64::from(x));
            p += 1;
        }
        nfrac = p - fs;
        if nfrac == 0 {
            return None;
        }
    }
    let mut exp = false;
    if let Some(b'e' | b'E') = d.get(p) {
        exp = true;
        p += 1;
        if let Some(b'+' | b'-') = d.get(p) {
            p += 1;
        }
        let es = p;
        while let Some(b'0'..=b'9') = d.get(p) {
            p += 1;
        }
        if p == es {
            return None;
        }
    }
    let nd = nint + nfrac;
    let v = if !exp && nd <= 19 && m <= (1u64 << 53) {
        let v = if nfrac == 0 {
            m as i64 as f64
        } else {
            m as i64 as f64 / POW10[nfrac]
        };
        if neg { -v } else { v }
    } else {
        fast_float2::parse::<f64, _>(&d[p0..p]).ok()?
    };
    // serde_json refuses numbers out of f64's range; so does the fast path.
    v.is_finite().then_some((v, p))
}

#[cfg(test)]
mod tests {
    use super::super::file::tests::{Drained, opts, run, temp_file};
    use super::super::file::{FileFormat, FileSource};
    use super::*;
    use crate::error::SourceError;
    use crate::schema::{ChannelSpec, KeySpec, KeyType, Schema, TimeSpec};
    use crate::source::{OnError, Source};
    use crate::time::TimeUnit;
    use proptest::prelude::*;

    const GOOD: &str = r#"{"ts_ms":123456,"car":14,"speed":287.31,"rpm":11234.5,"throttle":98.2,"brake":0,"gear":7,"drs":12}"#;

    fn f1() -> Schema {
        Schema::f1_bench()
    }

    fn small() -> Schema {
        let ch = |name: &str, ty, optional| ChannelSpec {
            name: name.into(),
            ty,
            unit: None,
            min: None,
            max: None,
            optional,
            sampling: None,
        };
        Schema {
            time: TimeSpec {
                name: "t".into(),
                unit: TimeUnit::Us,
            },
            key: KeySpec {
                name: "id".into(),
                ty: KeyType::String,
            },
            channels: vec![
                ch("v", ChannelType::Float, false),
                ch("opt", ChannelType::Float, true),
                ch("on", ChannelType::Bool, false),
            ],
        }
    }

    fn nd(text: &str, schema: &Schema, on_error: OnError) -> Drained {
        run(text.as_bytes(), "ndjson", schema, on_error, 2, 2)
    }

    #[test]
    fn flat_lines() {
        let text = format!(
            "{GOOD}\n{}\n",
            r#"{"drs":0,"gear":1,"brake":100,"throttle":0,"rpm":9000,"speed":80,"car":"07","ts_ms":-5,"x":1}"#
        );
        let d = nd(&text, &f1(), OnError::Fail);
        assert_eq!(d.error, None);
        assert_eq!(d.ts, vec![123456, -5]);
        assert_eq!(d.keys, vec!["14", "7"]);
        assert_eq!(d.columns[0], vec![287.31, 80.0]);
        assert_eq!(d.columns[1], vec![11234.5, 9000.0]);
        assert_eq!(d.columns[5], vec![12.0, 0.0]);
        assert_eq!(d.lines, vec![1, 2]);
    }

    #[test]
    fn fallback_path_accepts_any_valid_object() {
        let lines = [
            // escapes in keys and values, nested unknown values
            r#"{"t":1,"id":"a\"b","v":1.5,"on":true,"meta":{"x":[1,2,{"y":null}]},"n\u0061me":"\n"}"#,
            // unusual whitespace and exponent
            "  {  \"t\" :2 ,\t\"id\": \"b\" , \"v\" : 2E2 , \"on\" : false , \"opt\" : -0.5 }  \r",
            // key given twice: last wins
            r#"{"t":3,"id":"c","v":1,"v":4,"on":1}"#,
            // escaped key of a schema column
            r#"{"t":4,"\u0069d":"d","v":5,"on":0,"opt":null}"#,
            // integer key for a string-keyed schema
            r#"{"t":5,"id":42,"v":6,"on":1,"list":[]}"#,
        ];
        let text = lines.join("\n");
        let d = nd(&text, &small(), OnError::Fail);
        assert_eq!(d.error, None);
        assert_eq!(d.ts, vec![1, 2, 3, 4, 5]);
        assert_eq!(d.keys, vec!["a\"b", "b", "c", "d", "42"]);
        assert_eq!(d.columns[0], vec![1.5, 200.0, 4.0, 5.0, 6.0]);
        assert_eq!(d.columns[1][1], -0.5);
        assert!(d.columns[1][0].is_nan() && d.columns[1][3].is_nan());
        assert_eq!(d.columns[2], vec![1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn blank_lines_and_crlf() {
        let text = format!("{GOOD}\r\n\r\n\n   \n{GOOD}\r\n{GOOD}");
        let d = nd(&text, &f1(), OnError::Fail);
        assert_eq!(d.error, None);
        assert_eq!(d.lines, vec![1, 5, 6]);
    }

    #[test]
    fn malformed_lines() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"ts_ms":12.5,"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["ts_ms", "integer timestamp", "12.5"],
            ),
            (
                r#"{"ts_ms":"12","car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["ts_ms", "the string \"12\""],
            ),
            (
                r#"{"ts_ms":1e3,"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["ts_ms", "integer timestamp"],
            ),
            (
                r#"{"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["ts_ms", "missing"],
            ),
            (
                r#"{"ts_ms":1,"car":"x","speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["car", "integer key", "\"x\""],
            ),
            (
                r#"{"ts_ms":1,"car":1.5,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["car", "string or integer key"],
            ),
            (
                r#"{"ts_ms":1,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["car", "missing"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":"fast","rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["speed", "expected a number", "\"fast\""],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":null,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["speed", "missing", "required"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["speed", "missing"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7.5,"drs":12}"#,
                &["gear", "whole number"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":401,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["speed", "above the maximum"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":true}"#,
                &["drs", "expected a number", "true"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":[1]}"#,
                &["drs", "an array"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":1e999,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["not a valid JSON"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":01,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#,
                &["not a valid JSON"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12"#,
                &["not a valid JSON"],
            ),
            (
                r#"{"ts_ms":1,"car":14,"speed":1,"rpm":1,"throttle":1,"brake":0,"gear":7,"drs":12}x"#,
                &["not a valid JSON"],
            ),
            (r#"[1,2,3]"#, &["not a valid JSON object"]),
            (
                r#"{"ts_ms":1,"car":14,"speed":1,"rpm""#,
                &["not a valid JSON"],
            ),
        ];
        for (bad, words) in cases {
            let text = format!("{GOOD}\n\n{bad}\n{GOOD}\n");
            let d = nd(&text, &f1(), OnError::Fail);
            let e = d.error.unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.location.line, 3, "{bad}");
            for w in *words {
                assert!(e.reason.contains(w), "{bad}: {:?} lacks {w:?}", e.reason);
            }
            assert_eq!(d.ts.len(), 1);
            let d = nd(&text, &f1(), OnError::Skip);
            assert_eq!(d.error, None);
            assert_eq!(d.skipped, 1, "{bad}");
            assert_eq!(d.lines, vec![1, 4], "{bad}");
        }
    }

    #[test]
    fn truncated_last_line() {
        let text = format!("{GOOD}\n{}", &GOOD[..40]);
        let d = nd(&text, &f1(), OnError::Fail);
        assert_eq!(d.error.unwrap().location.line, 2);
        assert_eq!(d.ts.len(), 1);
    }

    #[test]
    fn projection() {
        let s = f1();
        let mut o = opts(&s, OnError::Fail, 100);
        o.projection = vec![true, false, false, false, false, false];
        let text = format!(
            "{}\n{}\n",
            r#"{"ts_ms":1,"car":14,"speed":1,"rpm":"junk","throttle":1,"brake":0,"gear":7,"drs":12}"#,
            r#"{"ts_ms":2,"car":14,"speed":1,"throttle":1,"brake":0,"gear":7,"drs":12}"#
        );
        let f = temp_file(text.as_bytes(), "json");
        let mut src = FileSource::open(f.path(), s.clone(), o, None).unwrap();
        assert_eq!(src.format(), FileFormat::Ndjson);
        let c = src.next_chunk().unwrap().unwrap();
        assert_eq!(c.ts, vec![1]);
        assert!(c.columns[1].is_empty());
        let Err(SourceError::Malformed(e)) = src.next_chunk() else {
            panic!("absent required channel must fail even when unused")
        };
        assert_eq!(e.location.line, 2);
        assert!(e.reason.contains("rpm"), "{}", e.reason);
    }

    #[test]
    fn fast_and_slow_paths_agree() {
        // The same rows written to force the slow path (a space before the colon
        // is fine for the fast path, an escaped slash in an unknown key is not).
        let mut fast = String::new();
        let mut slow = String::new();
        for i in 0..200 {
            let row = format!(
                r#""ts_ms":{},"car":{},"speed":{}.{},"rpm":{}.25,"throttle":{},"brake":0.{},"gear":{},"drs":{}"#,
                i,
                i % 20,
                i % 300,
                i % 97,
                9000 + i * 7,
                i % 101,
                i % 10,
                i % 9,
                i % 15
            );
            fast.push_str(&format!("{{{row}}}\n"));
            slow.push_str(&format!("{{\"x\\/\":1,{row}}}\n"));
        }
        let a = nd(&fast, &f1(), OnError::Fail);
        let b = nd(&slow, &f1(), OnError::Fail);
        assert_eq!(a.error, None);
        assert_eq!(b.error, None);
        assert!(a.ts == b.ts && a.keys == b.keys && a.lines == b.lines);
        assert!(
            a.column_bits() == b.column_bits(),
            "values differ between the paths"
        );
    }

    #[test]
    fn json_number_grammar() {
        assert_eq!(json_number(b"287.31,", 0), Some((287.31, 6)));
        assert_eq!(json_number(b"-0.5}", 0), Some((-0.5, 4)));
        assert_eq!(json_number(b"1e3", 0), Some((1000.0, 3)));
        assert_eq!(json_number(b"1.5E-2", 0), Some((0.015, 6)));
        for bad in [&b"01"[..], b"-", b"1.", b".5", b"1e", b"-a"] {
            assert_eq!(json_number(bad, 0), None, "{bad:?}");
        }
        assert_eq!(json_int(b"0,", 0), Some((0, 1)));
        assert_eq!(json_int(b"12.0", 0), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn json_number_matches_serde(s in "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?") {
            let want: Option<f64> = serde_json::from_str::<f64>(&s).ok();
            let got = json_number(s.as_bytes(), 0);
            if let Some(want) = want.filter(|v| v.is_finite()) {
                let (v, end) = got.expect("valid number");
                prop_assert_eq!(end, s.len());
                prop_assert_eq!(v.to_bits(), want.to_bits(), "{}", s);
            }
        }

        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            for on_error in [OnError::Fail, OnError::Skip] {
                let d = run(&body, "ndjson", &f1(), on_error, 3, 2);
                prop_assert!(d.lines.windows(2).all(|w| w[0] < w[1]));
            }
        }

        #[test]
        fn mutated_lines_never_panic(pos in 0usize..110, byte in any::<u8>(), cut in 0usize..110, keyed in any::<bool>()) {
            let (schema, mut line) = if keyed {
                (small(), br#"{"t":1,"id":"a\"b","v":2.5,"opt":null,"on":true,"x":{"y":[1]}}"#.to_vec())
            } else {
                (f1(), GOOD.as_bytes().to_vec())
            };
            let p = pos.min(line.len() - 1);
            line[p] = byte;
            line.truncate(line.len() - cut.min(line.len()));
            line.push(b'\n');
            let mut text = GOOD.as_bytes().to_vec();
            text.push(b'\n');
            text.extend_from_slice(&line);
            for on_error in [OnError::Fail, OnError::Skip] {
                run(&text, "ndjson", &schema, on_error, 1, 2);
            }
        }
    }
}
