//! CSV telemetry: the header row resolved against the schema, and a block parser.
//!
//! **In:** the header line (once per file) and blocks of whole lines (from
//! [`super::file`]). **Out:** rows pushed into a `BlockWriter`: time, key and
//! every projected channel, in file order, with malformed lines rejected with a
//! reason naming the column, the value and what was expected.
//!
//! Columns are matched to the schema **by name**, so files may order them freely
//! and carry extra columns (ignored). A schema column missing from the header is an
//! error when the file is opened, unless it is an optional channel (then it is
//! missing — `NaN` — in every row).
//!
//! Two paths, because almost every line of a replay file looks the same:
//! * the **fast path** walks a line once, parsing each field in place as the
//!   header plan says (hand-written integer and decimal parsers, keys looked up
//!   without hashing), writing straight into the chunk's columns;
//! * anything it does not recognise (quotes, spaces, exponents it cannot finish,
//!   blank lines, and every malformed line) is re-read by the **slow path**, which
//!   splits the line RFC 4180-style and either accepts it or explains what is
//!   wrong. The fast path only ever accepts what the slow path would accept, with
//!   the same values, so the result does not depend on which path ran.
//!
//! Quoted fields may hold commas and doubled quotes (`""`), but not line breaks:
//! files are cut into blocks at newlines. Lines may end in `\n` or `\r\n`; the last
//! line may lack its newline.

use std::borrow::Cow;

use memchr::memchr;

use super::file::{
    BlockParse, BlockWriter, RowSpec, Stage, decimal_field, fast_int, is_whole, load8, show,
};
use crate::schema::ChannelType;

/// What to do with one header column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Time,
    /// The key, schema key type `int`.
    KeyInt,
    /// The key, schema key type `string`.
    KeyStr,
    /// A projected channel: parse and check.
    Channel(usize),
    /// A required channel the job does not use: only check the cell is not empty.
    Present(usize),
    /// A column the job does not need.
    Ignore,
}

/// A CSV block parser for one header.
#[derive(Debug)]
pub(crate) struct CsvParser {
    spec: RowSpec,
    /// One action per header column.
    plan: Vec<Action>,
    /// Projected optional channels absent from the header: `NaN` in every row.
    absent: Vec<usize>,
    /// What the fast path reads, in header order (ignored columns left out).
    ops: Vec<Op>,
}

/// One column the fast path reads.
#[derive(Debug, Clone, Copy)]
struct Op {
    /// Header column.
    field: usize,
    /// Columns skipped since the previous op (or the line start).
    skip: usize,
    /// The line's last column (its end may carry a `\r`).
    last: bool,
    kind: OpKind,
    /// The channel's range (for [`OpKind::Number`]).
    lo: f64,
    hi: f64,
    /// An `int` channel: values must be whole.
    int: bool,
    /// An optional channel: an empty cell is `NaN`.
    optional: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Time,
    KeyInt,
    KeyStr,
    /// A projected `float` or `int` channel.
    Number(usize),
    /// A projected `bool` channel.
    Bool(usize),
    /// A required channel the job does not use: the cell must not be empty.
    Present,
}

impl CsvParser {
    /// Resolves the header line (with or without its line end) against the schema.
    pub(crate) fn from_header(header: &[u8], spec: RowSpec) -> Result<CsvParser, String> {
        let line = strip_line_end(header);
        if line.trim_ascii().is_empty() {
            return Err(
                "the CSV file has no header row: line 1 must name the columns \
                 (time, key and channels)"
                    .into(),
            );
        }
        let fields = split_fields(line).map_err(|e| format!("CSV header: {e}"))?;
        let names: Vec<String> = fields
            .iter()
            .map(|f| String::from_utf8_lossy(f.trim_ascii()).into_owned())
            .collect();
        let mut plan = vec![Action::Ignore; names.len()];
        let listing = || names.join(", ");
        let find = |name: &str| -> Result<Option<usize>, String> {
            let mut hits = names.iter().enumerate().filter(|(_, n)| *n == name);
            let first = hits.next().map(|(i, _)| i);
            if let Some((second, _)) = hits.next() {
                return Err(format!(
                    "CSV header names column {name:?} twice (columns {} and {})",
                    first.unwrap_or(0) + 1,
                    second + 1
                ));
            }
            Ok(first)
        };
        let schema = &spec.schema;
        let time = find(&schema.time.name)?.ok_or_else(|| {
            format!(
                "CSV header has no column {:?} (the time column); header columns: {}",
                schema.time.name,
                listing()
            )
        })?;
        plan[time] = Action::Time;
        let key = find(&schema.key.name)?.ok_or_else(|| {
            format!(
                "CSV header has no column {:?} (the key column); header columns: {}",
                schema.key.name,
                listing()
            )
        })?;
        plan[key] = if spec.key_int {
            Action::KeyInt
        } else {
            Action::KeyStr
        };
        let mut absent = Vec::new();
        for (c, ch) in schema.channels.iter().enumerate() {
            let p = spec.channels[c];
            match find(&ch.name)? {
                Some(i) if p.projected => plan[i] = Action::Channel(c),
                Some(i) if !p.optional => plan[i] = Action::Present(c),
                Some(_) => {}
                None if p.optional => {
                    if p.projected {
                        absent.push(c);
                    }
                }
                None => {
                    return Err(format!(
                        "CSV header has no column {:?} (a required channel); header columns: {}",
                        ch.name,
                        listing()
                    ));
                }
            }
        }
        let ops = plan
            .iter()
            .enumerate()
            .filter_map(|(field, act)| {
                let (kind, c) = match *act {
                    Action::Time => (OpKind::Time, None),
                    Action::KeyInt => (OpKind::KeyInt, None),
                    Action::KeyStr => (OpKind::KeyStr, None),
                    Action::Channel(c) if spec.channels[c].ty == ChannelType::Bool => {
                        (OpKind::Bool(c), Some(c))
                    }
                    Action::Channel(c) => (OpKind::Number(c), Some(c)),
                    Action::Present(_) => (OpKind::Present, None),
                    Action::Ignore => return None,
                };
                let ch = c.map(|c| spec.channels[c]);
                Some(Op {
                    field,
                    skip: 0,
                    last: field + 1 == plan.len(),
                    kind,
                    lo: ch.map_or(f64::MIN, |p| p.lo),
                    hi: ch.map_or(f64::MAX, |p| p.hi),
                    int: ch.is_some_and(|p| p.ty == ChannelType::Int),
                    optional: ch.is_some_and(|p| p.optional),
                })
            })
            .collect::<Vec<Op>>();
        let mut ops = ops;
        let mut next = 0;
        for op in &mut ops {
            op.skip = op.field - next;
            next = op.field + 1;
        }
        Ok(CsvParser {
            spec,
            plan,
            absent,
            ops,
        })
    }

    /// Finds the field bounds of the line at `p`: `sep[0] = p - 1` (wrapping),
    /// `sep[k + 1]` = the end of field `k` (its `,`, or the line end without a
    /// `\r`). Returns the start of the next line, or `None` when the line has a
    /// quote or not exactly as many fields as the header (the slow path decides).
    ///
    /// The line is classified 64 bytes at a time from its own start, so a line
    /// shorter than that — almost every telemetry line — takes one pass with no
    /// data-dependent branch besides the loop over its commas.
    #[inline(always)]
    fn split(&self, d: &[u8], p: usize, sep: &mut [usize]) -> Option<usize> {
        let nf = sep.len() - 1;
        sep[0] = p.wrapping_sub(1);
        let mut k = 1;
        let mut base = p;
        loop {
            let (commas, stops) = line_window(d, base);
            let mut cm = if stops == 0 {
                commas
            } else {
                commas & ((stops & stops.wrapping_neg()) - 1)
            };
            while cm != 0 {
                if k == nf {
                    return None;
                }
                sep[k] = base + cm.trailing_zeros() as usize;
                k += 1;
                cm &= cm - 1;
            }
            if stops != 0 {
                let e = base + stops.trailing_zeros() as usize;
                if k != nf || d.get(e).is_some_and(|&b| b != b'\n') {
                    return None;
                }
                let last = sep[nf - 1].wrapping_add(1);
                sep[nf] = if e > last && d[e - 1] == b'\r' {
                    e - 1
                } else {
                    e
                };
                return Some((e + 1).min(d.len()));
            }
            base += 64;
        }
    }

    /// Parses the line at `p` on the fast path into the next row of `stage`;
    /// returns the start of the next line, or `None` to hand the line to the slow
    /// path (nothing is committed then, and no key is interned).
    #[inline(always)]
    fn fast_row(
        &self,
        d: &[u8],
        p: usize,
        w: &mut BlockWriter<'_>,
        stage: &mut Stage,
        sep: &mut [usize],
    ) -> Option<usize> {
        let r = stage.row();
        let mut key = (0i64, 0usize, 0usize);
        let (commas, stops) = line_window(d, p);
        let next = if stops != 0 {
            // The whole line is in the window: walk its commas directly.
            let mut cm = commas & ((stops & stops.wrapping_neg()) - 1);
            if cm.count_ones() as usize + 1 != self.plan.len() {
                return None;
            }
            let end = p + stops.trailing_zeros() as usize;
            if d.get(end).is_some_and(|&b| b != b'\n') {
                return None;
            }
            let mut prev = p.wrapping_sub(1);
            for op in &self.ops {
                for _ in 0..op.skip {
                    prev = p + cm.trailing_zeros() as usize;
                    cm &= cm - 1;
                }
                let s = prev.wrapping_add(1);
                let e = if op.last {
                    if end > s && d[end - 1] == b'\r' {
                        end - 1
                    } else {
                        end
                    }
                } else {
                    p + cm.trailing_zeros() as usize
                };
                cm &= cm.wrapping_sub(1);
                prev = e;
                self.apply(op, d, s, e, stage, r, &mut key)?;
            }
            (end + 1).min(d.len())
        } else {
            // A line longer than the window.
            let next = self.split(d, p, sep)?;
            for op in &self.ops {
                let s = sep[op.field].wrapping_add(1);
                let e = sep[op.field + 1];
                self.apply(op, d, s, e, stage, r, &mut key)?;
            }
            next
        };
        for &c in &self.absent {
            stage.cols[c][r] = f64::NAN;
        }
        // The key last: a line the slow path rejects must not intern its key.
        stage.keys[r] = if self.spec.key_int {
            w.int_key(key.0)
        } else {
            w.str_key(&d[key.1..key.2]).ok()?
        };
        stage.lines[r] = w.line;
        stage.commit(&mut w.chunk);
        Some(next)
    }

    /// Parses the field `d[s..e]` as `op` says into row `r` of `stage` (the key
    /// into `key`: its integer, or its bounds).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        op: &Op,
        d: &[u8],
        s: usize,
        e: usize,
        stage: &mut Stage,
        r: usize,
        key: &mut (i64, usize, usize),
    ) -> Option<()> {
        match op.kind {
            OpKind::Time => stage.ts[r] = int_field(d, s, e)?,
            OpKind::KeyInt => key.0 = int_field(d, s, e)?,
            OpKind::KeyStr => {
                if e == s {
                    return None;
                }
                key.1 = s;
                key.2 = e;
            }
            OpKind::Number(c) => stage.cols[c][r] = number_field(d, s, e, op)?,
            OpKind::Bool(c) => {
                stage.cols[c][r] = match &d[s..e] {
                    b"0" | b"false" => 0.0,
                    b"1" | b"true" => 1.0,
                    _ => return None,
                };
            }
            OpKind::Present => {
                // The slow path trims the cell: a blank one is empty too.
                if e == s || d[s].is_ascii_whitespace() {
                    return None;
                }
            }
        }
        Some(())
    }

    /// Parses one line (without its line end) on the slow path. `Ok(false)` for a
    /// blank line.
    fn slow_row(&self, line: &[u8], w: &mut BlockWriter<'_>) -> Result<bool, String> {
        if line.trim_ascii().is_empty() {
            return Ok(false);
        }
        let fields = split_fields(line)?;
        if fields.len() != self.plan.len() {
            return Err(format!(
                "expected {} fields as in the header, found {}",
                self.plan.len(),
                fields.len()
            ));
        }
        let spec = &self.spec;
        let mut ts = None;
        let mut key_field = None;
        let mut values = vec![f64::NAN; spec.channels.len()];
        for (field, act) in fields.iter().zip(&self.plan) {
            match *act {
                Action::Time => ts = Some(spec.time_text(field)?),
                Action::KeyInt | Action::KeyStr => key_field = Some(field),
                Action::Channel(c) => values[c] = spec.channel_text(c, field)?,
                Action::Present(c) => {
                    if field.trim_ascii().is_empty() {
                        spec.missing(c)?;
                    }
                }
                Action::Ignore => {}
            }
        }
        let (Some(ts), Some(key_field)) = (ts, key_field) else {
            return Err("internal: header plan lacks the time or key column".into());
        };
        // The key last: a rejected row must not intern its key.
        let key = w.key_text(key_field)?;
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

impl BlockParse for CsvParser {
    fn spec(&self) -> &RowSpec {
        &self.spec
    }

    fn parse_block(&self, d: &[u8], w: &mut BlockWriter<'_>) {
        let mut sep = vec![0usize; self.plan.len() + 1];
        let mut stage = Stage::new(&self.spec);
        let mut p = 0;
        while p < d.len() {
            if let Some(next) = self.fast_row(d, p, w, &mut stage, &mut sep) {
                w.line += 1;
                p = next;
                continue;
            }
            stage.flush(&mut w.chunk);
            let mark = w.mark();
            let nl = memchr(b'\n', &d[p..]).map_or(d.len(), |i| p + i);
            match self.slow_row(strip_line_end(&d[p..nl]), w) {
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
        stage.flush(&mut w.chunk);
    }
}

/// A channel value from the field `d[s..e]` on the fast path, checked against
/// `op`'s range (and for an `int` channel, that it is whole). `None` sends the
/// line to the slow path: it says what is wrong, or parses what this does not.
#[inline(always)]
fn number_field(d: &[u8], s: usize, e: usize, op: &Op) -> Option<f64> {
    let len = e.wrapping_sub(s);
    if len.wrapping_sub(1) < 8
        && let Some(m) = digits_exact(d, s, len)
    {
        // Up to 8 plain digits: exact as an integer (as fast_float2), and whole.
        let v = m as f64;
        return (v >= op.lo && v <= op.hi).then_some(v);
    }
    let v = other_number(d, s, e, op)?;
    (v >= op.lo && v <= op.hi && (!op.int || is_whole(v))).then_some(v)
}

/// An integer field `d[s..e]` (the time or an integer key): `-?[0-9]{1,18}`.
#[inline(always)]
fn int_field(d: &[u8], s: usize, e: usize) -> Option<i64> {
    let len = e.wrapping_sub(s);
    if len.wrapping_sub(1) < 8
        && let Some(m) = digits_exact(d, s, len)
    {
        return Some(m as i64);
    }
    match fast_int(d, s)? {
        (v, q) if q == e => Some(v),
        _ => None,
    }
}

/// The value of the `len` (1..=8) bytes at `s` when all are ASCII digits: one
/// load, the field moved to the top of the word (the bytes below read as leading
/// zeros), all bytes checked at once, then combined pairwise.
#[inline(always)]
fn digits_exact(d: &[u8], s: usize, len: usize) -> Option<u64> {
    const HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    let sh = 64 - 8 * len as u32;
    let x = load8(d, s) << sh;
    // A byte is a digit when its high nibble is 3 and adding 6 keeps it so (a
    // carry out of a non-digit byte only disturbs bytes after it); the zero bytes
    // shifted in are not digits, so they are shifted out of the check.
    let bad = ((x & HI) ^ THREES) | ((x.wrapping_add(0x0606_0606_0606_0606) & HI) ^ THREES);
    if bad >> sh != 0 {
        return None;
    }
    let mut v = x & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    v = v.wrapping_mul(10_000) + (v >> 32);
    Some(v & 0xFFFF_FFFF)
}

/// [`number_field`] for anything but a short run of digits: decimals, signs,
/// long numbers, exponents, an empty cell.
#[inline(always)]
fn other_number(d: &[u8], s: usize, e: usize, op: &Op) -> Option<f64> {
    match decimal_field(d, s, e) {
        Some(v) => Some(v),
        // NaN and infinities fail the range check and get their reason on the
        // slow path.
        None if e == s => op.optional.then_some(f64::NAN),
        None => fast_float2::parse::<f64, _>(&d[s..e]).ok(),
    }
}

/// The commas and stops of the 64 bytes at `base`. Past the end of `d` nothing is
/// a comma, and the end of the data stops a line like a newline.
#[inline(always)]
fn line_window(d: &[u8], base: usize) -> (u64, u64) {
    match d.get(base..base + 64) {
        Some(w) => {
            let mut b = [0u8; 64];
            b.copy_from_slice(w);
            line_masks64(&b)
        }
        None => {
            let rest = d.len() - base;
            let mut b = [0u8; 64];
            b[..rest].copy_from_slice(&d[base..]);
            let (c, s) = line_masks64(&b);
            (c, s | 1u64 << rest)
        }
    }
}

/// One bit per byte of `b`: the commas, and the "stops" (`\n` and `"`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn line_masks64(b: &[u8; 64]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline, so the intrinsics are
    // available on every x86-64 CPU; each load reads bytes 16k..16k+16 of the
    // 64-byte array (in bounds) and has no alignment requirement.
    unsafe {
        let comma = _mm_set1_epi8(b',' as i8);
        let nl = _mm_set1_epi8(b'\n' as i8);
        let quote = _mm_set1_epi8(b'"' as i8);
        let mut commas = 0u64;
        let mut stops = 0u64;
        for k in 0..4 {
            let v = _mm_loadu_si128(b.as_ptr().add(16 * k).cast::<__m128i>());
            let c = _mm_movemask_epi8(_mm_cmpeq_epi8(v, comma)) as u16;
            let s = _mm_movemask_epi8(_mm_or_si128(
                _mm_cmpeq_epi8(v, nl),
                _mm_cmpeq_epi8(v, quote),
            )) as u16;
            commas |= u64::from(c) << (16 * k);
            stops |= u64::from(s) << (16 * k);
        }
        (commas, stops)
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn line_masks64(b: &[u8; 64]) -> (u64, u64) {
    let mut commas = 0u64;
    let mut stops = 0u64;
    for (i, &c) in b.iter().enumerate() {
        commas |= u64::from(c == b',') << i;
        stops |= u64::from(c == b'\n' || c == b'"') << i;
    }
    (commas, stops)
}

/// A line without its trailing `\n` / `\r\n`.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits a line into fields, RFC 4180 style: a field that starts with `"` runs to
/// the closing quote, `""` inside it is one quote.
fn split_fields(line: &[u8]) -> Result<Vec<Cow<'_, [u8]>>, String> {
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        if line.get(p) == Some(&b'"') {
            let n = out.len() + 1;
            let mut buf = Vec::new();
            p += 1;
            loop {
                let Some(i) = memchr(b'"', &line[p..]) else {
                    return Err(format!(
                        "field {n}: quoted field is not closed on this line \
                         (line breaks inside quoted fields are not supported)"
                    ));
                };
                buf.extend_from_slice(&line[p..p + i]);
                p += i + 1;
                if line.get(p) == Some(&b'"') {
                    buf.push(b'"');
                    p += 1;
                } else {
                    break;
                }
            }
            out.push(Cow::Owned(buf));
            match line.get(p) {
                None => return Ok(out),
                Some(b',') => p += 1,
                Some(_) => {
                    return Err(format!(
                        "field {n}: unexpected text {} after the closing quote",
                        show(&line[p..])
                    ));
                }
            }
        } else {
            let e = memchr(b',', &line[p..]).map_or(line.len(), |i| p + i);
            out.push(Cow::Borrowed(&line[p..e]));
            if e == line.len() {
                return Ok(out);
            }
            p = e + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::tests::{opts, run, temp_file};
    use super::super::file::{FileFormat, FileSource};
    use super::*;
    use crate::error::SourceError;
    use crate::schema::{ChannelSpec, KeySpec, KeyType, Schema, TimeSpec};
    use crate::source::{OnError, Source, SourceOptions};
    use crate::time::TimeUnit;
    use proptest::prelude::*;

    const HEADER: &str = "ts_ms,car,speed,rpm,throttle,brake,gear,drs\n";

    fn f1() -> Schema {
        Schema::f1_bench()
    }

    /// A small schema with an optional channel and a bool channel, string keys.
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
                unit: TimeUnit::Ms,
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

    #[test]
    fn reordered_and_extra_columns() {
        let text = "extra,drs,gear,brake,throttle,rpm,speed,car,ts_ms,more\n\
                    x,12,7,0,98.2,11234.5,287.31,14,123456,y\n\
                    z,0,1,50,0,9000,80.5,07,123457,w";
        let d = run(text.as_bytes(), "csv", &f1(), OnError::Fail, 100, 1);
        assert_eq!(d.error, None);
        assert_eq!(d.ts, vec![123456, 123457]);
        assert_eq!(d.keys, vec!["14", "7"], "int keys are canonical");
        assert_eq!(d.columns[0], vec![287.31, 80.5]);
        assert_eq!(d.columns[1], vec![11234.5, 9000.0]);
        assert_eq!(d.columns[5], vec![12.0, 0.0]);
        assert_eq!(d.lines, vec![2, 3]);
    }

    #[test]
    fn missing_column_is_an_error_at_open() {
        let f = temp_file(
            b"ts_ms,car,speed,throttle,brake,gear,drs\n1,1,1,1,1,1,1\n",
            "csv",
        );
        let s = f1();
        let e = FileSource::open(f.path(), s.clone(), SourceOptions::all(&s), None).unwrap_err();
        let SourceError::Malformed(e) = e else {
            panic!("{e}")
        };
        assert_eq!(e.location.line, 1);
        assert!(e.reason.contains("\"rpm\""), "{}", e.reason);
        assert!(
            e.reason.contains("header columns: ts_ms, car"),
            "{}",
            e.reason
        );

        let f = temp_file(b"ts_ms,car,car,speed\n", "csv");
        let e = FileSource::open(f.path(), s.clone(), SourceOptions::all(&s), None).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn optional_channel_absent_from_header_is_nan() {
        let d = run(
            b"id,t,v,on\na,1,2.5,true\nb,2,3,0\n",
            "csv",
            &small(),
            OnError::Fail,
            10,
            1,
        );
        assert_eq!(d.error, None);
        assert_eq!(d.keys, vec!["a", "b"]);
        assert_eq!(d.columns[0], vec![2.5, 3.0]);
        assert!(d.columns[1].iter().all(|v| v.is_nan()) && d.columns[1].len() == 2);
        assert_eq!(d.columns[2], vec![1.0, 0.0]);
    }

    #[test]
    fn quoted_fields_crlf_blank_lines() {
        let text = "t,\"id\",v,opt,on\r\n\
                    1,\"car, \"\"one\"\"\",\"2.5\",,1\r\n\
                    \r\n\
                    \n\
                    2,b,3,4,FALSE\r\n\
                    3,c,5,,true";
        let d = run(text.as_bytes(), "csv", &small(), OnError::Fail, 10, 2);
        assert_eq!(d.error, None);
        assert_eq!(d.keys, vec!["car, \"one\"", "b", "c"]);
        assert_eq!(d.ts, vec![1, 2, 3]);
        assert_eq!(d.lines, vec![2, 5, 6]);
        assert_eq!(d.columns[0], vec![2.5, 3.0, 5.0]);
        assert!(d.columns[1][0].is_nan() && d.columns[1][1] == 4.0 && d.columns[1][2].is_nan());
        assert_eq!(d.columns[2], vec![1.0, 0.0, 1.0]);
    }

    /// Each malformed line is reported at its line with a reason naming the problem
    /// (Fail), and skipped and counted (Skip).
    #[test]
    fn malformed_lines() {
        let good = "100,1,200.5,10000,50,0,3,0";
        let cases: &[(&str, &[&str])] = &[
            (
                "12.5,1,200.5,10000,50,0,3,0",
                &["ts_ms", "integer timestamp", "12.5"],
            ),
            ("abc,1,200.5,10000,50,0,3,0", &["ts_ms", "\"abc\""]),
            ("1e3,1,200.5,10000,50,0,3,0", &["ts_ms", "1e3"]),
            (",1,200.5,10000,50,0,3,0", &["ts_ms", "missing"]),
            ("100,x1,200.5,10000,50,0,3,0", &["car", "integer key"]),
            ("100,,200.5,10000,50,0,3,0", &["car", "missing"]),
            (
                "100,1,fast,10000,50,0,3,0",
                &["speed", "expected a number", "\"fast\""],
            ),
            ("100,1,,10000,50,0,3,0", &["speed", "missing", "required"]),
            ("100,1,200.5,10000,50,0,3.5,0", &["gear", "whole number"]),
            (
                "100,1,500,10000,50,0,3,0",
                &["speed", "above the maximum 400"],
            ),
            ("100,1,-1,10000,50,0,3,0", &["speed", "below the minimum 0"]),
            (
                "100,1,NaN,10000,50,0,3,0",
                &["speed", "not a finite number"],
            ),
            (
                "100,1,inf,10000,50,0,3,0",
                &["speed", "not a finite number"],
            ),
            (
                "100,1,200.5,10000,50,0,3",
                &["expected 8 fields", "found 7"],
            ),
            (
                "100,1,200.5,10000,50,0,3,0,9",
                &["expected 8 fields", "found 9"],
            ),
            ("100,1,200.5", &["expected 8 fields", "found 3"]),
            ("100,1,\"200.5,10000,50,0,3,0", &["field 3", "not closed"]),
            (
                "100,1,\"200.5\"x,10000,50,0,3,0",
                &["field 3", "after the closing quote"],
            ),
        ];
        for (bad, words) in cases {
            let text = format!("{HEADER}{good}\n{good}\n{bad}\n{good}\n");
            for threads in [1, 2] {
                let d = run(text.as_bytes(), "csv", &f1(), OnError::Fail, 1, threads);
                let e = d.error.unwrap_or_else(|| panic!("{bad:?} accepted"));
                assert_eq!(e.location.line, 4, "{bad:?}");
                for w in *words {
                    assert!(e.reason.contains(w), "{bad:?}: {:?} lacks {w:?}", e.reason);
                }
                assert_eq!(d.ts.len(), 2);
                let d = run(text.as_bytes(), "csv", &f1(), OnError::Skip, 2, threads);
                assert_eq!(d.error, None, "{bad:?}");
                assert_eq!(d.skipped, 1, "{bad:?}");
                assert_eq!(d.lines, vec![2, 3, 5], "{bad:?}");
                assert_eq!(d.keys, vec!["1", "1", "1"]);
            }
        }
    }

    #[test]
    fn truncated_last_line_without_newline() {
        let text = format!("{HEADER}100,1,200.5,10000,50,0,3,0\n100,1,20");
        let d = run(text.as_bytes(), "csv", &f1(), OnError::Fail, 100, 1);
        let e = d.error.unwrap();
        assert_eq!(e.location.line, 3);
        assert!(e.reason.contains("fields"), "{}", e.reason);
        assert_eq!(d.ts, vec![100]);
    }

    #[test]
    fn rejected_row_does_not_leave_its_key() {
        let text = format!("{HEADER}100,1,200,1,1,1,1,1\n100,99,200,1,1,1,1,x\n");
        let f = temp_file(text.as_bytes(), "csv");
        let s = f1();
        let mut src =
            FileSource::open(f.path(), s.clone(), opts(&s, OnError::Skip, 100), None).unwrap();
        let c = src.next_chunk().unwrap().unwrap();
        assert_eq!(c.skipped, 1);
        assert_eq!(c.key_names.len(), 1);
        assert_eq!(&*c.key_names[0], "1");
    }

    #[test]
    fn projection_skips_unused_channels_but_checks_required_presence() {
        let s = f1();
        let mut o = opts(&s, OnError::Fail, 100);
        o.projection = vec![true, false, false, false, false, true];
        let text = format!("{HEADER}100,1,200.5,abc,50,0,3,0\n101,2,201,,50,0,3,0\n");
        let f = temp_file(text.as_bytes(), "csv");
        let mut src = FileSource::open(f.path(), s.clone(), o, Some(FileFormat::Csv)).unwrap();
        let c = src.next_chunk().unwrap().unwrap();
        assert_eq!(c.len(), 1, "unparsed text is not checked");
        assert_eq!(c.columns[0], vec![200.5]);
        assert!(c.columns[1].is_empty() && c.columns[4].is_empty());
        assert_eq!(c.columns[5], vec![0.0]);
        let Err(SourceError::Malformed(e)) = src.next_chunk() else {
            panic!("empty required cell must fail")
        };
        assert_eq!(e.location.line, 3);
        assert!(e.reason.contains("rpm"), "{}", e.reason);
    }

    #[test]
    fn string_keys_interned_per_chunk() {
        let mut text = String::from("t,id,v,on\n");
        for i in 0..60 {
            text.push_str(&format!("{i},car{},1,0\n", i % 4));
        }
        let d = run(text.as_bytes(), "csv", &small(), OnError::Fail, 7, 2);
        assert_eq!(d.error, None);
        let want: Vec<String> = (0..60).map(|i| format!("car{}", i % 4)).collect();
        assert_eq!(d.keys, want);
    }

    /// Long lines (several 64-byte windows) mixing fast and slow (quoted) lines:
    /// the separator index resynchronises after every slow line.
    #[test]
    fn wide_lines_mixing_fast_and_slow_paths() {
        let mut text = String::from("note,ts_ms,pad1,car,speed,rpm,throttle,brake,gear,drs,pad2\n");
        for i in 0..300 {
            let note = if i % 7 == 0 {
                format!("\"quoted, with \"\"comma\"\" {i}\"")
            } else {
                format!("plain note number {i} that is fairly long to cross windows")
            };
            text.push_str(&format!(
                "{note},{},{},{},{}.5,{},{},{},{},{},{}\r\n",
                1000 + i,
                "x".repeat(i % 90),
                i % 20,
                i % 300,
                9000 + i,
                i % 100,
                i % 2 * 100,
                i % 9,
                i % 15,
                "y".repeat(i % 70)
            ));
        }
        for threads in [1, 3] {
            let d = run(text.as_bytes(), "csv", &f1(), OnError::Fail, 13, threads);
            assert_eq!(d.error, None);
            assert_eq!(d.ts, (1000..1300).collect::<Vec<i64>>());
            assert_eq!(d.lines, (2..302).collect::<Vec<u64>>());
            let speeds: Vec<f64> = (0..300).map(|i| (i % 300) as f64 + 0.5).collect();
            assert_eq!(d.columns[0], speeds);
            assert_eq!(
                d.columns[5],
                (0..300).map(|i| (i % 15) as f64).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn exotic_numbers_use_fast_float() {
        let text = format!("{HEADER}100,1,2.5e2,1E4,+5,0.000001,8,14\n");
        let d = run(text.as_bytes(), "csv", &f1(), OnError::Fail, 10, 1);
        assert_eq!(d.error, None);
        assert_eq!(d.columns[0], vec![250.0]);
        assert_eq!(d.columns[1], vec![10000.0]);
        assert_eq!(d.columns[2], vec![5.0]);
        assert_eq!(d.columns[3], vec![0.000001]);
    }

    /// Every line through the slow path only: the reference for the fast path.
    fn slow_only(p: &CsvParser, d: &[u8]) -> Parts {
        let mut w = BlockWriter::new(&p.spec, 16);
        let mut skipped = 0;
        for (i, line) in d.split_inclusive(|&b| b == b'\n').enumerate() {
            w.line = i as u64;
            let mark = w.mark();
            match p.slow_row(strip_line_end(line), &mut w) {
                Ok(true) => w.end_row(),
                Ok(false) => {}
                Err(_) => {
                    w.rollback(mark);
                    skipped += 1;
                }
            }
        }
        chunk_parts(&w.chunk, skipped)
    }

    /// A chunk's times, key names, column bits, lines and skipped count.
    type Parts = (Vec<i64>, Vec<String>, Vec<Vec<u64>>, Vec<u64>, u64);

    fn chunk_parts(c: &crate::batch::RowChunk, skipped: u64) -> Parts {
        (
            c.ts.clone(),
            c.keys
                .iter()
                .map(|&k| c.key_names[k as usize].to_string())
                .collect(),
            c.columns
                .iter()
                .map(|col| col.iter().map(|v| v.to_bits()).collect())
                .collect(),
            c.lines.clone(),
            skipped,
        )
    }

    /// Rows the agreement test saw accepted (it must test acceptance too).
    static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    #[test]
    fn agreement_test_accepts_rows() {
        fast_path_agrees_with_slow_path();
        assert!(ACCEPTED.load(std::sync::atomic::Ordering::Relaxed) > 100);
    }

    /// A CSV cell: mostly numbers of the usual shapes, sometimes something odd.
    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[0-9]{1,2}",
            3 => "[0-9]{0,2}\\.[0-9]{0,4}",
            1 => "-?[0-9]{3,10}(\\.[0-9]{1,9})?",
            1 => "[0-9]{1,3}e-?[0-9]",
            1 => prop_oneof![Just(String::new()), Just(" 1".into()), Just("\"2\"".into()),
                Just("true".into()), Just("1\r".into()), Just("x".into()), Just("+3".into())],
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the fast path accepts, it reads exactly as the slow path does,
        /// and it rejects nothing the slow path accepts.
        #[test]
        fn fast_path_agrees_with_slow_path(
            rows in proptest::collection::vec(
                (proptest::collection::vec(cell(), 6..=7), any::<bool>(), 0usize..70), 1..30),
            last_newline in any::<bool>(),
            projection in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let s = f1();
            let mut o = opts(&s, OnError::Skip, 100);
            o.projection = projection;
            let spec = super::super::file::RowSpec::new(s.clone(), &o);
            let header = format!("pad,{}", HEADER.trim_end());
            let p = CsvParser::from_header(header.as_bytes(), spec).unwrap();
            let mut text = String::new();
            for (i, (cells, crlf, pad)) in rows.iter().enumerate() {
                let mut line = vec!["p".repeat(*pad), format!("{}", 1000 + i), (i % 3).to_string()];
                line.extend(cells.iter().cloned());
                text.push_str(&line.join(","));
                text.push_str(if *crlf { "\r\n" } else { "\n" });
            }
            if !last_newline {
                text.pop();
            }
            let d = text.as_bytes();
            let mut w = BlockWriter::new(&p.spec, 16);
            p.parse_block(d, &mut w);
            let skipped = w.chunk.skipped;
            let want = slow_only(&p, d);
            ACCEPTED.fetch_add(want.0.len(), std::sync::atomic::Ordering::Relaxed);
            prop_assert_eq!(chunk_parts(&w.chunk, skipped), want);
        }

        #[test]
        fn digits_exact_matches_parse(field in "[0-9]{1,8}|[0-9a-z.,/:-]{1,8}", tail in "[,\n0-9]{0,3}") {
            let text = format!("{field}{tail}");
            let got = digits_exact(text.as_bytes(), 0, field.len());
            let want = field.bytes().all(|b| b.is_ascii_digit()).then(|| field.parse::<u64>().unwrap());
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut text = HEADER.as_bytes().to_vec();
            text.extend_from_slice(&body);
            for on_error in [OnError::Fail, OnError::Skip] {
                let d = run(&text, "csv", &f1(), on_error, 3, 2);
                prop_assert!(d.lines.windows(2).all(|w| w[0] < w[1]));
            }
        }

        #[test]
        fn mutated_lines_never_panic(
            pos in 0usize..40, byte in any::<u8>(), cut in 0usize..40, schema_small in any::<bool>()
        ) {
            let (schema, mut line) = if schema_small {
                (small(), b"t,id,v,opt,on\n1,\"a\"\"b\",2.5,,true\n".to_vec())
            } else {
                (f1(), format!("{HEADER}123456,14,287.31,11234.5,98.2,0,7,12\n").into_bytes())
            };
            let p = pos.min(line.len() - 1);
            line[p] = byte;
            line.truncate(line.len() - cut.min(line.len()));
            let f = temp_file(&line, "csv");
            if let Ok(mut src) = FileSource::open(f.path(), schema.clone(), opts(&schema, OnError::Skip, 1), None) {
                while let Ok(Some(_)) = src.next_chunk() {}
            }
        }
    }
}
