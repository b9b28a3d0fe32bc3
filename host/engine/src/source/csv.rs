//! CSV telemetry: the header row resolved against the schema, and a block parser.
//!
//! **In:** the header line (once per file) and blocks of whole lines (from
//! [`super::file`]). **Out:** rows pushed into a [`BlockWriter`]: time, key and
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

use super::file::{BlockParse, BlockWriter, RowSpec, Seps, decimal_field, fast_int, show};
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
        Ok(CsvParser { spec, plan, absent })
    }

    /// Parses the line at `p` on the fast path; returns the start of the next line,
    /// or `None` to hand the line to the slow path (values pushed are then rolled
    /// back). Field bounds come from `seps` (the next `,`, `\n` or `"`); a quote
    /// anywhere in the line sends it to the slow path.
    #[inline(always)]
    fn fast_row(
        &self,
        d: &[u8],
        p: usize,
        w: &mut BlockWriter<'_>,
        seps: &mut Seps<'_>,
    ) -> Option<usize> {
        let last = self.plan.len() - 1;
        let mut s = p;
        for (i, act) in self.plan.iter().enumerate() {
            let e = seps.next_sep();
            let mut fe = e;
            if i < last {
                if d.get(e) != Some(&b',') {
                    return None;
                }
            } else {
                if !matches!(d.get(e), None | Some(b'\n')) {
                    return None;
                }
                if fe > s && d[fe - 1] == b'\r' {
                    fe -= 1;
                }
            }
            match *act {
                Action::Time => {
                    let (v, q) = fast_int(d, s)?;
                    if q != fe {
                        return None;
                    }
                    w.chunk.ts.push(v);
                }
                Action::KeyInt => {
                    let (v, q) = fast_int(d, s)?;
                    if q != fe {
                        return None;
                    }
                    let id = w.int_key(v);
                    w.chunk.keys.push(id);
                }
                Action::KeyStr => {
                    if fe == s {
                        return None;
                    }
                    let id = w.str_key(&d[s..fe]).ok()?;
                    w.chunk.keys.push(id);
                }
                Action::Channel(c) => {
                    let v = self.fast_value(c, d, s, fe)?;
                    w.chunk.columns[c].push(v);
                }
                Action::Present(_) => {
                    if fe == s {
                        return None;
                    }
                }
                Action::Ignore => {}
            }
            s = e + 1;
        }
        for &c in &self.absent {
            w.chunk.columns[c].push(f64::NAN);
        }
        Some(s.min(d.len()))
    }

    /// A channel value from the field `d[s..e]`.
    #[inline(always)]
    fn fast_value(&self, c: usize, d: &[u8], s: usize, e: usize) -> Option<f64> {
        let plan = &self.spec.channels[c];
        if plan.ty == ChannelType::Bool {
            return match &d[s..e] {
                b"0" | b"false" => Some(0.0),
                b"1" | b"true" => Some(1.0),
                _ => None,
            };
        }
        let v = match decimal_field(d, s, e) {
            Some(v) => v,
            None if e == s => return plan.optional.then_some(f64::NAN),
            None => fast_float2::parse::<f64, _>(&d[s..e]).ok()?,
        };
        // NaN and infinities fail `accepts` and get their reason on the slow path.
        self.spec.accepts(c, v).then_some(v)
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
        let mut seps = Seps::new(d, [b',', b'\n', b'"'], 0);
        let mut p = 0;
        while p < d.len() {
            let mark = w.mark();
            if let Some(next) = self.fast_row(d, p, w, &mut seps) {
                w.end_row();
                w.line += 1;
                p = next;
                continue;
            }
            w.rollback(mark);
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
            seps.reset(p);
        }
    }
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
