//! Writing schema-shaped rows as CSV or NDJSON.
//!
//! **In:** [`RowChunk`]s (or single rows of them) that follow a [`Schema`].
//! **Out:** text on any [`Write`]: CSV with a header `ts_ms,car,speed,…` in schema
//! order, or NDJSON objects `{"ts_ms":123,"car":14,"speed":287.3,…}`, one per line.
//! **State:** which channels are written, the optional leading columns, and counts
//! of rows and bytes.
//!
//! Why: the simulator writes benchmark inputs with it (`pitwall simulate`), and the
//! engine writes its late-data side output with it: [`RowWriter::write_row_with`]
//! puts extra integer fields (`line`, `watermark_ms`) in front of a row, so a late
//! row can be traced back to its input line and the watermark that refused it.
//!
//! Formatting is chosen so the files read back exactly and fast: timestamps and
//! `int`/`bool` channels are written as integers (itoa), floats in ryu's
//! shortest round-trip form (a whole float may be written without `.0`, e.g.
//! `300`; it parses back to the same `f64`). A missing value (`NaN`, or any
//! non-finite value, which no schema accepts) is an empty CSV cell and an
//! omitted JSON key. An `int` key whose text is a whole number is a bare JSON
//! number; any other key is a JSON string, and CSV cells with `,`, `"` or line
//! breaks are quoted.
//!
//! The writer keeps no unwritten bytes between calls: each call hands its text
//! to `W` before returning, so wrap files in a (large) `BufWriter` and call
//! [`RowWriter::finish`] (or `flush`) at the end.

use std::io::{self, Write};
use std::path::Path;

use crate::batch::RowChunk;
use crate::schema::{ChannelType, KeyType, Schema};

/// The text formats rows can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowFormat {
    /// Comma-separated with a header line.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl RowFormat {
    /// The format for a file extension (`csv`; `ndjson`, `jsonl`, `json`), case-insensitive.
    pub fn from_extension(ext: &str) -> Option<RowFormat> {
        match ext.to_ascii_lowercase().as_str() {
            "csv" => Some(RowFormat::Csv),
            "ndjson" | "jsonl" | "json" => Some(RowFormat::Ndjson),
            _ => None,
        }
    }

    /// The format for a path, from its extension.
    pub fn from_path(path: &Path) -> Option<RowFormat> {
        path.extension()
            .and_then(|e| e.to_str())
            .and_then(RowFormat::from_extension)
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            RowFormat::Csv => "csv",
            RowFormat::Ndjson => "ndjson",
        }
    }
}

impl std::str::FromStr for RowFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RowFormat::from_extension(s.trim())
            .ok_or_else(|| format!("unknown row format {s:?}; use csv or ndjson"))
    }
}

impl std::fmt::Display for RowFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// One written channel.
struct Col {
    index: usize,
    name: String,
    /// Written as an integer when whole (int and bool channels).
    int: bool,
    /// `,"name":` for NDJSON.
    json_prefix: Vec<u8>,
}

/// Bytes handed to `W` at once while writing a chunk.
const FLUSH_AT: usize = 1 << 20;

/// Writes rows of one schema as CSV or NDJSON. See the module docs.
pub struct RowWriter<W: Write> {
    out: W,
    format: RowFormat,
    time_name: String,
    key_name: String,
    key_int: bool,
    /// `{"ts_ms":` and `,"car":`.
    json_time: Vec<u8>,
    json_key: Vec<u8>,
    cols: Vec<Col>,
    /// Names of the leading integer columns; fixed by the first write (or
    /// [`RowWriter::with_leading_columns`]), since the CSV header names them.
    leading: Option<Vec<String>>,
    header_done: bool,
    buf: Vec<u8>,
    /// Per-chunk table of formatted key text.
    keys: Vec<Vec<u8>>,
    rows: u64,
    bytes: u64,
}

impl<W: Write> RowWriter<W> {
    /// A writer of every channel of `schema`.
    pub fn new(out: W, schema: &Schema, format: RowFormat) -> Self {
        Self::with_projection(out, schema, format, &[])
    }

    /// A writer of the channels with `projection[c] == true` (a channel past the
    /// end of `projection` is written), in schema order.
    pub fn with_projection(
        out: W,
        schema: &Schema,
        format: RowFormat,
        projection: &[bool],
    ) -> Self {
        let cols = schema
            .channels
            .iter()
            .enumerate()
            .filter(|(c, _)| projection.get(*c).copied().unwrap_or(true))
            .map(|(index, ch)| Col {
                index,
                name: ch.name.clone(),
                int: matches!(ch.ty, ChannelType::Int | ChannelType::Bool),
                json_prefix: format!(",{}:", json_string(&ch.name)).into_bytes(),
            })
            .collect();
        RowWriter {
            out,
            format,
            time_name: schema.time.name.clone(),
            key_name: schema.key.name.clone(),
            key_int: schema.key.ty == KeyType::Int,
            json_time: format!("{}:", json_string(&schema.time.name)).into_bytes(),
            json_key: format!(",{}:", json_string(&schema.key.name)).into_bytes(),
            cols,
            leading: None,
            header_done: false,
            buf: Vec::with_capacity(FLUSH_AT + 64 * 1024),
            keys: Vec::new(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Declares leading integer columns (e.g. `["line", "watermark_ms"]`) that
    /// every row will carry through [`RowWriter::write_row_with`]; the CSV header
    /// names them before the time column. Without this, the first write decides.
    pub fn with_leading_columns(mut self, names: &[&str]) -> Self {
        self.leading = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn format(&self) -> RowFormat {
        self.format
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Bytes handed to the underlying writer so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Writes the CSV header now (once; NDJSON has none). Called by the first
    /// write and by [`RowWriter::finish`], so an empty CSV still has its header.
    pub fn write_header(&mut self) -> io::Result<()> {
        if self.header_done {
            return Ok(());
        }
        let leading = self.leading.get_or_insert_with(Vec::new);
        if self.format == RowFormat::Csv {
            let mut first = true;
            let names = leading
                .iter()
                .chain([&self.time_name, &self.key_name])
                .chain(self.cols.iter().map(|c| &c.name));
            for name in names {
                if !first {
                    self.buf.push(b',');
                }
                first = false;
                push_csv_text(&mut self.buf, name);
            }
            self.buf.push(b'\n');
        }
        self.header_done = true;
        Ok(())
    }

    /// Writes every row of `chunk`, in order.
    pub fn write_chunk(&mut self, chunk: &RowChunk) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.check_leading(&[])?;
        self.write_header()?;
        self.check_columns(chunk)?;
        self.prepare_keys(chunk);
        for i in 0..chunk.len() {
            self.push_row(chunk, i, &[]);
            if self.buf.len() >= FLUSH_AT {
                self.drain()?;
            }
        }
        self.rows += chunk.len() as u64;
        self.drain()
    }

    /// Writes row `i` of `chunk`.
    pub fn write_row(&mut self, chunk: &RowChunk, i: usize) -> io::Result<()> {
        self.write_row_with(chunk, i, &[])
    }

    /// Writes row `i` of `chunk` with extra integer fields in front, e.g. for the
    /// late-data side output `&[("line", 812), ("watermark_ms", 41_000)]`:
    /// NDJSON `{"line":812,"watermark_ms":41000,"ts_ms":…}`, CSV
    /// `812,41000,<ts>,…` under the header `line,watermark_ms,ts_ms,…`.
    /// Every row of one writer must carry the same extra names, in the same order
    /// (the first write, or [`RowWriter::with_leading_columns`], fixes them).
    pub fn write_row_with(
        &mut self,
        chunk: &RowChunk,
        i: usize,
        extra: &[(&str, i64)],
    ) -> io::Result<()> {
        if i >= chunk.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "row {i} is out of range: the chunk has {} rows",
                    chunk.len()
                ),
            ));
        }
        self.check_leading(extra)?;
        self.write_header()?;
        self.check_columns(chunk)?;
        self.keys.clear();
        self.keys
            .push(self.format_key(&chunk.key_names[chunk.keys[i] as usize]));
        self.push_row_with_key(chunk, i, 0, extra);
        self.rows += 1;
        self.drain()
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.out.flush()
    }

    /// Writes the header if nothing was written, flushes, and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header()?;
        self.flush()?;
        Ok(self.out)
    }

    fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.bytes += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn check_leading(&mut self, extra: &[(&str, i64)]) -> io::Result<()> {
        match &self.leading {
            None => {
                self.leading = Some(extra.iter().map(|(n, _)| n.to_string()).collect());
                Ok(())
            }
            Some(names)
                if names.len() == extra.len()
                    && names.iter().zip(extra).all(|(a, (b, _))| a == b) =>
            {
                Ok(())
            }
            Some(names) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "row written with leading fields {:?}, but this writer's rows carry {:?}",
                    extra.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                    names
                ),
            )),
        }
    }

    fn check_columns(&self, chunk: &RowChunk) -> io::Result<()> {
        for c in &self.cols {
            let ok = chunk
                .columns
                .get(c.index)
                .is_some_and(|col| col.len() == chunk.len());
            if !ok {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "channel {:?} has no values in this chunk (not in the source's projection); \
                         build the writer with the same projection",
                        c.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn format_key(&self, name: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(name.len() + 2);
        match self.format {
            RowFormat::Csv => push_csv_text(&mut out, name),
            RowFormat::Ndjson => {
                if self.key_int && is_json_integer(name) {
                    out.extend_from_slice(name.as_bytes());
                } else {
                    out.extend_from_slice(json_string(name).as_bytes());
                }
            }
        }
        out
    }

    fn prepare_keys(&mut self, chunk: &RowChunk) {
        let keys = chunk.key_names.iter().map(|k| self.format_key(k)).collect();
        self.keys = keys;
    }

    #[inline]
    fn push_row(&mut self, chunk: &RowChunk, i: usize, extra: &[(&str, i64)]) {
        self.push_row_with_key(chunk, i, chunk.keys[i] as usize, extra);
    }

    /// Appends row `i` to `buf`, its key text taken from `self.keys[key_slot]`.
    #[inline]
    fn push_row_with_key(
        &mut self,
        chunk: &RowChunk,
        i: usize,
        key_slot: usize,
        extra: &[(&str, i64)],
    ) {
        let mut ints = itoa::Buffer::new();
        let mut floats = ryu::Buffer::new();
        let buf = &mut self.buf;
        match self.format {
            RowFormat::Csv => {
                for &(_, v) in extra {
                    buf.extend_from_slice(ints.format(v).as_bytes());
                    buf.push(b',');
                }
                buf.extend_from_slice(ints.format(chunk.ts[i]).as_bytes());
                buf.push(b',');
                buf.extend_from_slice(&self.keys[key_slot]);
                for c in &self.cols {
                    buf.push(b',');
                    let v = chunk.columns[c.index][i];
                    if v.is_finite() {
                        push_number(buf, v, c.int, &mut ints, &mut floats);
                    }
                }
            }
            RowFormat::Ndjson => {
                buf.push(b'{');
                for &(name, v) in extra {
                    buf.extend_from_slice(json_string(name).as_bytes());
                    buf.push(b':');
                    buf.extend_from_slice(ints.format(v).as_bytes());
                    buf.push(b',');
                }
                buf.extend_from_slice(&self.json_time);
                buf.extend_from_slice(ints.format(chunk.ts[i]).as_bytes());
                buf.extend_from_slice(&self.json_key);
                buf.extend_from_slice(&self.keys[key_slot]);
                for c in &self.cols {
                    let v = chunk.columns[c.index][i];
                    if v.is_finite() {
                        buf.extend_from_slice(&c.json_prefix);
                        push_number(buf, v, c.int, &mut ints, &mut floats);
                    }
                }
                buf.push(b'}');
            }
        }
        buf.push(b'\n');
    }
}

/// Appends a finite value: whole values (other than `-0.0` of a float channel)
/// below 2^53 as integers, values with at most three decimals (most telemetry)
/// through [`push_short_decimal`], the rest in ryu's shortest round-trip form.
#[inline(always)]
fn push_number(
    buf: &mut Vec<u8>,
    v: f64,
    int: bool,
    ints: &mut itoa::Buffer,
    floats: &mut ryu::Buffer,
) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    // `as` conversions instead of `fract()`, which is a libm call on baseline x86-64.
    let whole = v.abs() < EXACT && (v as i64) as f64 == v;
    if whole && (int || v != 0.0 || v.is_sign_positive()) {
        buf.extend_from_slice(ints.format(v as i64).as_bytes());
    } else if !push_short_decimal(buf, v, ints) {
        buf.extend_from_slice(floats.format_finite(v).as_bytes());
    }
}

/// Writes `v` as `[-]int.frac` with 1–3 decimals when that reads back exactly,
/// several times faster than ryu for values like `287.3` or `0.25`.
///
/// Exact because: with `m = round(|v|·10^k)` (below 2^53) and `10^k` both exact
/// doubles, `m / 10^k` is the correctly rounded value of the decimal `m·10^-k`,
/// which is what a correct parser returns for the text; so when the division
/// gives back `|v|`, the text parses to `v`. The smallest such `k` is used, so
/// the text has no trailing zero.
#[inline(always)]
fn push_short_decimal(buf: &mut Vec<u8>, v: f64, ints: &mut itoa::Buffer) -> bool {
    let a = v.abs();
    if a >= 1e12 {
        return false;
    }
    for (k, p) in [(1usize, 10u64), (2, 100), (3, 1000)] {
        let pf = p as f64;
        let m = (a * pf + 0.5) as u64;
        if m as f64 / pf == a {
            if v.is_sign_negative() {
                buf.push(b'-');
            }
            buf.extend_from_slice(ints.format(m / p).as_bytes());
            buf.push(b'.');
            let frac = ints.format(m % p).as_bytes();
            buf.extend(std::iter::repeat_n(b'0', k - frac.len()));
            buf.extend_from_slice(frac);
            return true;
        }
    }
    false
}

/// Appends `s` as a CSV cell, quoted when it holds a separator, quote or line break.
fn push_csv_text(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// `-?[0-9]+` without leading zeros: valid as a bare JSON number.
fn is_json_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::schema::{ChannelSpec, KeySpec};
    use crate::source::sim::{SimConfig, Simulator};
    use crate::source::{Source, SourceOptions};

    fn chunk(rows: &[(i64, &str, [f64; 6])]) -> RowChunk {
        let mut ch = RowChunk::with_capacity(6, rows.len(), &[true; 6]);
        for (i, (ts, key, vals)) in rows.iter().enumerate() {
            ch.ts.push(*ts);
            let k = ch.intern_key(key);
            ch.keys.push(k);
            ch.lines.push(i as u64 + 1);
            for (c, v) in vals.iter().enumerate() {
                ch.columns[c].push(*v);
            }
        }
        ch
    }

    fn text(format: RowFormat, ch: &RowChunk) -> String {
        let mut w = RowWriter::new(Vec::new(), &Schema::f1_bench(), format);
        w.write_chunk(ch).unwrap();
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn csv_shape() {
        let ch = chunk(&[
            (0, "1", [287.3, 11_000.0, 100.0, 0.0, 7.0, 12.0]),
            (4, "44", [90.0, 6_500.5, 0.0, 100.0, 2.0, 0.0]),
        ]);
        assert_eq!(
            text(RowFormat::Csv, &ch),
            "ts_ms,car,speed,rpm,throttle,brake,gear,drs\n\
             0,1,287.3,11000,100,0,7,12\n\
             4,44,90,6500.5,0,100,2,0\n"
        );
    }

    #[test]
    fn ndjson_shape() {
        let ch = chunk(&[(123, "14", [287.3, 11_000.0, 99.0, 0.0, 7.0, 8.0])]);
        let out = text(RowFormat::Ndjson, &ch);
        assert_eq!(
            out,
            "{\"ts_ms\":123,\"car\":14,\"speed\":287.3,\"rpm\":11000,\"throttle\":99,\
             \"brake\":0,\"gear\":7,\"drs\":8}\n"
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["speed"].as_f64(), Some(287.3));
    }

    #[test]
    fn nan_is_empty_cell_and_omitted_key() {
        let ch = chunk(&[(
            5,
            "4",
            [f64::NAN, 10_000.0, f64::NAN, 0.0, 3.0, f64::INFINITY],
        )]);
        assert_eq!(
            text(RowFormat::Csv, &ch).lines().nth(1).unwrap(),
            "5,4,,10000,,0,3,"
        );
        assert_eq!(
            text(RowFormat::Ndjson, &ch).trim(),
            "{\"ts_ms\":5,\"car\":4,\"rpm\":10000,\"brake\":0,\"gear\":3}"
        );
    }

    #[test]
    fn string_keys_are_escaped() {
        let mut schema = Schema::f1_bench();
        schema.key = KeySpec {
            name: "driver".into(),
            ty: KeyType::String,
        };
        let ch = chunk(&[(1, "VER, \"Max\"", [1.0; 6]), (2, "007", [1.0; 6])]);
        let mut w = RowWriter::new(Vec::new(), &schema, RowFormat::Csv);
        w.write_chunk(&ch).unwrap();
        let csv = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "1,\"VER, \"\"Max\"\"\",1,1,1,1,1,1"
        );
        let mut w = RowWriter::new(Vec::new(), &schema, RowFormat::Ndjson);
        w.write_chunk(&ch).unwrap();
        let js = String::from_utf8(w.finish().unwrap()).unwrap();
        let rows: Vec<serde_json::Value> = js
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows[0]["driver"], "VER, \"Max\"");
        // An int key that is not a plain integer stays a string.
        assert_eq!(rows[1]["driver"], "007");
        let ch = chunk(&[(1, "007", [1.0; 6])]);
        let int_key = text(RowFormat::Ndjson, &ch);
        let v: serde_json::Value = serde_json::from_str(int_key.trim()).unwrap();
        assert_eq!(v["car"], "007");
    }

    #[test]
    fn projection_writes_only_used_channels() {
        let schema = Schema::f1_bench();
        let proj = [true, false, true, false, false, false];
        let mut ch = chunk(&[(1, "1", [200.0, 9_000.0, 50.0, 0.0, 5.0, 0.0])]);
        for (c, used) in proj.iter().enumerate() {
            if !used {
                ch.columns[c].clear();
            }
        }
        let mut w = RowWriter::with_projection(Vec::new(), &schema, RowFormat::Csv, &proj);
        w.write_chunk(&ch).unwrap();
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "ts_ms,car,speed,throttle\n1,1,200,50\n"
        );
        // A writer of every channel refuses a chunk that lacks some.
        let mut w = RowWriter::new(Vec::new(), &schema, RowFormat::Csv);
        let err = w.write_chunk(&ch).unwrap_err();
        assert!(err.to_string().contains("\"rpm\""), "{err}");
    }

    #[test]
    fn rows_with_leading_fields() {
        let ch = chunk(&[
            (10, "1", [100.0, 8_000.0, 100.0, 0.0, 3.0, 0.0]),
            (20, "16", [101.5, 8_100.0, 100.0, 0.0, 3.0, 0.0]),
        ]);
        let schema = Schema::f1_bench();
        let mut w = RowWriter::new(Vec::new(), &schema, RowFormat::Ndjson);
        w.write_row_with(&ch, 1, &[("line", 2), ("watermark_ms", 3_000)])
            .unwrap();
        assert!(w.write_row_with(&ch, 0, &[("line", 1)]).is_err());
        assert!(w.write_chunk(&ch).is_err());
        assert!(
            w.write_row_with(&ch, 5, &[("line", 1), ("watermark_ms", 0)])
                .is_err()
        );
        assert_eq!(w.rows_written(), 1);
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "{\"line\":2,\"watermark_ms\":3000,\"ts_ms\":20,\"car\":16,\"speed\":101.5,\
             \"rpm\":8100,\"throttle\":100,\"brake\":0,\"gear\":3,\"drs\":0}\n"
        );

        let mut w = RowWriter::new(Vec::new(), &schema, RowFormat::Csv)
            .with_leading_columns(&["line", "watermark_ms"]);
        w.write_row_with(&ch, 0, &[("line", 1), ("watermark_ms", -5)])
            .unwrap();
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "line,watermark_ms,ts_ms,car,speed,rpm,throttle,brake,gear,drs\n\
             1,-5,10,1,100,8000,100,0,3,0\n"
        );
        // An empty CSV side output still has its header.
        let w = RowWriter::new(Vec::new(), &schema, RowFormat::Csv).with_leading_columns(&["line"]);
        assert_eq!(
            String::from_utf8(w.finish().unwrap()).unwrap(),
            "line,ts_ms,car,speed,rpm,throttle,brake,gear,drs\n"
        );
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(
            RowFormat::from_path(Path::new("/tmp/a.CSV")),
            Some(RowFormat::Csv)
        );
        assert_eq!(
            RowFormat::from_path(Path::new("a.jsonl")),
            Some(RowFormat::Ndjson)
        );
        assert_eq!(
            RowFormat::from_path(Path::new("a.ndjson")),
            Some(RowFormat::Ndjson)
        );
        assert_eq!(RowFormat::from_path(Path::new("a.parquet")), None);
        assert_eq!(RowFormat::from_path(Path::new("noext")), None);
        assert_eq!("ndjson".parse::<RowFormat>(), Ok(RowFormat::Ndjson));
        assert!("xml".parse::<RowFormat>().is_err());
    }

    fn one_float_schema(ty: ChannelType) -> Schema {
        let mut s = Schema::f1_bench();
        s.channels = vec![ChannelSpec {
            name: "x".into(),
            ty,
            unit: None,
            min: None,
            max: None,
            optional: true,
            sampling: None,
        }];
        s
    }

    fn roundtrip(v: f64, ty: ChannelType, format: RowFormat) -> f64 {
        let schema = one_float_schema(ty);
        let mut ch = RowChunk::with_capacity(1, 1, &[true]);
        ch.ts.push(0);
        ch.keys.push(0);
        ch.key_names.push(Arc::from("1"));
        ch.lines.push(1);
        ch.columns[0].push(v);
        let mut w = RowWriter::new(Vec::new(), &schema, format);
        w.write_chunk(&ch).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        match format {
            RowFormat::Csv => {
                let line = out.lines().nth(1).unwrap();
                line.rsplit(',').next().unwrap().parse().unwrap()
            }
            RowFormat::Ndjson => {
                let tail = out.trim().split("\"x\":").nth(1).unwrap();
                let num = tail.trim_end_matches('}');
                // Valid JSON, too.
                serde_json::from_str::<serde_json::Value>(out.trim()).unwrap();
                num.parse().unwrap()
            }
        }
    }

    #[test]
    fn special_floats_round_trip() {
        for v in [
            0.0,
            -0.0,
            300.0,
            -1.5,
            0.1,
            1e-300,
            f64::MIN_POSITIVE,
            5e-324,
            1e300,
            f64::MAX,
            9_007_199_254_740_993.0,
            -9_007_199_254_740_992.0,
            123_456.789_012_345_68,
        ] {
            for format in [RowFormat::Csv, RowFormat::Ndjson] {
                let back = roundtrip(v, ChannelType::Float, format);
                assert_eq!(back.to_bits(), v.to_bits(), "{v} via {format}");
            }
        }
        assert_eq!(roundtrip(7.0, ChannelType::Int, RowFormat::Csv), 7.0);
        assert_eq!(roundtrip(-3.0, ChannelType::Int, RowFormat::Ndjson), -3.0);
        assert_eq!(roundtrip(2.5, ChannelType::Int, RowFormat::Csv), 2.5);
    }

    proptest::proptest! {
        #[test]
        fn floats_round_trip_exactly(bits in proptest::prelude::any::<u64>()) {
            let v = f64::from_bits(bits);
            proptest::prop_assume!(v.is_finite());
            for format in [RowFormat::Csv, RowFormat::Ndjson] {
                let back = roundtrip(v, ChannelType::Float, format);
                proptest::prop_assert_eq!(back.to_bits(), v.to_bits());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn short_decimals_round_trip_exactly(m in 0u64..10_000_000_000_000, k in 0u32..5, neg: bool, ulps in -2i64..=2) {
            let v = m as f64 / 10f64.powi(k as i32);
            let v = f64::from_bits((v.to_bits() as i64 + ulps).max(0) as u64);
            let v = if neg { -v } else { v };
            for format in [RowFormat::Csv, RowFormat::Ndjson] {
                let back = roundtrip(v, ChannelType::Float, format);
                proptest::prop_assert_eq!(back.to_bits(), v.to_bits());
            }
        }
    }

    #[test]
    fn short_decimals_are_short() {
        let mut ints = itoa::Buffer::new();
        for (v, text) in [
            (287.3, "287.3"),
            (0.05, "0.05"),
            (-1.25, "-1.25"),
            (0.001, "0.001"),
            (12.07, "12.07"),
        ] {
            let mut buf = Vec::new();
            assert!(push_short_decimal(&mut buf, v, &mut ints));
            assert_eq!(std::str::from_utf8(&buf).unwrap(), text);
        }
        assert!(!push_short_decimal(&mut Vec::new(), 0.1 + 0.2, &mut ints));
        assert!(!push_short_decimal(&mut Vec::new(), 1e-7, &mut ints));
    }

    /// Simulator rows written as CSV parse back to exactly the same values.
    #[test]
    fn simulator_rows_round_trip_through_csv() {
        let cfg = SimConfig {
            rate_hz: 10,
            duration: crate::time::ConfigDuration::from_millis(20_000),
            channels: 40,
            ..SimConfig::default()
        };
        let schema = cfg.schema();
        let mut opts = SourceOptions::all(&schema);
        opts.chunk_rows = 1_000;
        let mut sim = Simulator::new(cfg, opts).unwrap();
        let mut w = RowWriter::new(Vec::new(), &schema, RowFormat::Csv);
        let mut chunks = Vec::new();
        while let Some(ch) = sim.next_chunk().unwrap() {
            w.write_chunk(&ch).unwrap();
            chunks.push(ch);
        }
        let rows_written = w.rows_written();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header[0], "ts_ms");
        assert_eq!(header[1], "car");
        assert_eq!(header.len(), 42);
        let mut n = 0;
        for ch in &chunks {
            for i in 0..ch.len() {
                let cells: Vec<&str> = lines.next().unwrap().split(',').collect();
                assert_eq!(cells[0].parse::<i64>().unwrap(), ch.ts[i]);
                assert_eq!(cells[1], &*ch.key_names[ch.keys[i] as usize]);
                for (c, cell) in cells[2..].iter().enumerate() {
                    assert_eq!(
                        cell.parse::<f64>().unwrap().to_bits(),
                        ch.columns[c][i].to_bits()
                    );
                }
                n += 1;
            }
        }
        assert!(lines.next().is_none());
        assert_eq!(n, rows_written);
    }

    /// Writing throughput; run with
    /// `cargo test --release -p pitwall-engine --lib row_writer::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        for format in [RowFormat::Csv, RowFormat::Ndjson] {
            let cfg = SimConfig::default();
            let schema = cfg.schema();
            let mut sim = Simulator::new(cfg, SourceOptions::all(&schema)).unwrap();
            let mut chunks = Vec::new();
            while let Some(ch) = sim.next_chunk().unwrap() {
                chunks.push(ch);
            }
            let t0 = std::time::Instant::now();
            let mut w = RowWriter::new(io::sink(), &schema, format);
            for ch in &chunks {
                w.write_chunk(ch).unwrap();
            }
            let dt = t0.elapsed().as_secs_f64();
            println!(
                "{format}: {} rows, {:.0} MB formatted in {dt:.3} s = {:.1} M rows/s, {:.0} MB/s",
                w.rows_written(),
                w.bytes_written() as f64 / 1e6,
                w.rows_written() as f64 / dt / 1e6,
                w.bytes_written() as f64 / dt / 1e6
            );
        }
    }
}
