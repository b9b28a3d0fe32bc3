//! Window-job outputs: the table of fired windows and the late-data side output.
//!
//! In: [`WindowResult`]s and [`LateRow`]s from the engine. Out: files.
//! * [`WindowTable`] keeps fired windows (car, start, values) and writes them,
//!   sorted by (car, window start), as CSV (`car,window_start_ms,<aggregates>`) or
//!   NDJSON. Its records are its checkpoint state.
//! * [`LateWriter`] appends each late row as one NDJSON line with its line number,
//!   the watermark it met and its window, so a user can inspect what was cut off.
//!   Its checkpoint state is the file length, so a restored job truncates what was
//!   written after the checkpoint and never duplicates a line.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::aggregate::OutputType;
use crate::config::JobPlan;
use crate::engine::{Collector, LateRow, WindowResult, key_cmp};
use crate::error::EngineError;
use crate::time::EventTime;

/// Output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Ndjson,
}

impl TableFormat {
    /// From a file extension: `.csv`, or `.ndjson`/`.jsonl`/`.json`.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(TableFormat::Csv),
            "ndjson" | "jsonl" | "json" => Some(TableFormat::Ndjson),
            _ => None,
        }
    }
}

/// One fired window as stored in the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub car: Arc<str>,
    pub start: EventTime,
    pub values: Vec<f64>,
}

/// Fired windows, kept until the job ends and then written sorted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowTable {
    pub records: Vec<WindowRecord>,
}

impl Collector for WindowTable {
    fn window(&mut self, w: WindowResult) {
        self.records.push(WindowRecord {
            car: w.car,
            start: w.start,
            values: w.values,
        });
    }
}

impl WindowTable {
    /// Sorts by (car, window start), cars ordered as the schema's key type says.
    pub fn sort(&mut self, plan: &JobPlan) {
        let ty = plan.schema.key.ty;
        self.records
            .sort_by(|a, b| key_cmp(ty, &a.car, &b.car).then(a.start.cmp(&b.start)));
    }

    /// Writes the table (sorted first) to `path`.
    pub fn write(
        &mut self,
        plan: &JobPlan,
        path: &Path,
        format: TableFormat,
    ) -> Result<(), EngineError> {
        let _span = tracing::info_span!("write_windows", rows = self.records.len()).entered();
        self.sort(plan);
        let err = |source| EngineError::Output {
            path: path.to_path_buf(),
            source,
        };
        // Written beside the target and renamed into place: a crash never leaves a
        // half-written table where a complete one is expected.
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let file = File::create(&tmp).map_err(err)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        self.write_to(plan, &mut w, format).map_err(err)?;
        let file = w.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Writes the table in its current order.
    pub fn write_to(
        &self,
        plan: &JobPlan,
        w: &mut impl Write,
        format: TableFormat,
    ) -> std::io::Result<()> {
        let names = plan.aggregates.names();
        let types = plan.aggregates.types();
        let key = &plan.schema.key.name;
        let start_col = format!("window_start_{}", plan.schema.time.unit.suffix());
        let mut buf = Vec::with_capacity(256);
        match format {
            TableFormat::Csv => {
                write!(w, "{key},{start_col}")?;
                for n in names {
                    write!(w, ",{n}")?;
                }
                writeln!(w)?;
                for r in &self.records {
                    buf.clear();
                    buf.extend_from_slice(csv_text(&r.car).as_bytes());
                    buf.push(b',');
                    buf.extend_from_slice(itoa::Buffer::new().format(r.start).as_bytes());
                    for (v, t) in r.values.iter().zip(types) {
                        buf.push(b',');
                        push_value(&mut buf, *v, *t);
                    }
                    buf.push(b'\n');
                    w.write_all(&buf)?;
                }
            }
            TableFormat::Ndjson => {
                let key_json = serde_json::to_string(key).unwrap_or_default();
                let names_json: Vec<String> = names
                    .iter()
                    .map(|n| serde_json::to_string(n).unwrap_or_default())
                    .collect();
                for r in &self.records {
                    buf.clear();
                    buf.push(b'{');
                    buf.extend_from_slice(key_json.as_bytes());
                    buf.push(b':');
                    push_key_json(&mut buf, &r.car, plan);
                    buf.extend_from_slice(format!(",\"{start_col}\":").as_bytes());
                    buf.extend_from_slice(itoa::Buffer::new().format(r.start).as_bytes());
                    for ((v, t), n) in r.values.iter().zip(types).zip(&names_json) {
                        buf.push(b',');
                        buf.extend_from_slice(n.as_bytes());
                        buf.push(b':');
                        if !v.is_finite() {
                            // JSON has no infinity; NaN (no value) and overflow are null.
                            buf.extend_from_slice(b"null");
                        } else {
                            push_value(&mut buf, *v, *t);
                        }
                    }
                    buf.extend_from_slice(b"}\n");
                    w.write_all(&buf)?;
                }
            }
        }
        Ok(())
    }
}

/// Writes a value: integers without a fraction, floats shortest round-trip, NaN as nothing.
fn push_value(buf: &mut Vec<u8>, v: f64, t: OutputType) {
    if v.is_nan() {
        return;
    }
    if v.is_infinite() {
        // A sum that overflowed f64: say so rather than print a plausible number.
        buf.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if t == OutputType::Int && v.fract() == 0.0 && v.abs() < 9.0e15 {
        buf.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        buf.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

fn push_key_json(buf: &mut Vec<u8>, car: &str, plan: &JobPlan) {
    if plan.schema.key.ty == crate::schema::KeyType::Int && car.parse::<i64>().is_ok() {
        buf.extend_from_slice(car.as_bytes());
    } else {
        buf.extend_from_slice(serde_json::to_string(car).unwrap_or_default().as_bytes());
    }
}

/// Writes `s` as a JSON string.
fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        buf.extend_from_slice(serde_json::to_string(s).unwrap_or_default().as_bytes());
    }
}

/// Quotes a CSV field when it needs it.
fn csv_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Appends late rows to an NDJSON file.
pub struct LateWriter {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
    /// Nothing decided yet: the file is truncated on first write or flush unless
    /// a checkpoint restore (`reopen_at`) says how much of it to keep.
    fresh: bool,
    /// The line being written (reused).
    line: Vec<u8>,
    /// Pre-encoded JSON keys: `"ts_ms":`, `,"window_start_ms":`, `,"watermark_ms":`.
    time_key: String,
    window_key: String,
    watermark_key: String,
    /// Channels written: index, pre-encoded `,"name":`, number format.
    channels: Vec<(usize, String, OutputType)>,
}

impl LateWriter {
    /// Creates (or truncates) the side-output file.
    pub fn create(path: &Path, plan: &JobPlan) -> Result<Self, EngineError> {
        Self::open_at(path, plan, 0)
    }

    /// Opens the side output continuing after `len` bytes (a checkpoint's view of it).
    pub fn open_at(path: &Path, plan: &JobPlan, len: u64) -> Result<Self, EngineError> {
        let err = |source| EngineError::Output {
            path: path.to_path_buf(),
            source,
        };
        // Not truncated here: a job that restores a checkpoint keeps the lines
        // written before it (`reopen_at`); a fresh job truncates on first use.
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        let fresh = len == 0;
        if !fresh {
            f.set_len(len).map_err(err)?;
            f.seek(SeekFrom::Start(len)).map_err(err)?;
        }
        let used = plan.aggregates.used_channels();
        let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let suffix = plan.schema.time.unit.suffix();
        Ok(LateWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
            fresh,
            written: len,
            line: Vec::with_capacity(256),
            time_key: format!("{}:", json(&plan.schema.time.name)),
            window_key: format!(",\"window_start_{suffix}\":"),
            watermark_key: format!(",\"watermark_{suffix}\":"),
            channels: plan
                .schema
                .channels
                .iter()
                .enumerate()
                .filter(|(c, _)| used[*c])
                .map(|(c, s)| {
                    let ty = if s.ty == crate::schema::ChannelType::Float {
                        OutputType::Float
                    } else {
                        OutputType::Int
                    };
                    (c, format!(",{}:", json(&s.name)), ty)
                })
                .collect(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same writer continuing after `len` bytes: what a restored checkpoint saw.
    /// Lines written after that checkpoint are cut off, so none is duplicated.
    pub fn reopen_at(mut self, len: u64) -> std::io::Result<Self> {
        self.out.flush()?;
        let f = self.out.get_mut();
        let have = f.metadata()?.len();
        if have < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the late-data file has {have} bytes but the checkpoint saw {len}; \
                     it was changed or truncated since"
                ),
            ));
        }
        f.set_len(len)?;
        f.seek(SeekFrom::Start(len))?;
        self.written = len;
        self.fresh = false;
        Ok(self)
    }

    /// Truncates a file nobody restored, before its first line.
    fn start(&mut self) -> std::io::Result<()> {
        if self.fresh {
            self.fresh = false;
            let f = self.out.get_mut();
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
        }
        Ok(())
    }

    /// Bytes written so far (its checkpoint state).
    pub fn len(&self) -> u64 {
        self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Writes one late row: `{"line":..,"car":..,"ts_ms":..,"window_start_ms":..,"watermark_ms":..,<channels the job reads>}`.
    pub fn write(&mut self, r: &LateRow<'_>) -> std::io::Result<()> {
        let c = r.chunk;
        let buf = &mut self.line;
        buf.clear();
        let mut int = itoa::Buffer::new();
        buf.extend_from_slice(b"{\"line\":");
        buf.extend_from_slice(int.format(c.lines[r.row]).as_bytes());
        buf.extend_from_slice(b",\"car\":");
        push_json_str(buf, r.car);
        buf.push(b',');
        buf.extend_from_slice(self.time_key.as_bytes());
        buf.extend_from_slice(int.format(c.ts[r.row]).as_bytes());
        buf.extend_from_slice(self.window_key.as_bytes());
        buf.extend_from_slice(int.format(r.window_start).as_bytes());
        buf.extend_from_slice(self.watermark_key.as_bytes());
        buf.extend_from_slice(int.format(r.watermark).as_bytes());
        for (ch, key, ty) in &self.channels {
            if let Some(&v) = c.columns[*ch].get(r.row)
                && !v.is_nan()
            {
                buf.extend_from_slice(key.as_bytes());
                push_value(buf, v, *ty);
            }
        }
        buf.extend_from_slice(b"}\n");
        let len = buf.len() as u64;
        self.start()?;
        self.out.write_all(&self.line)?;
        self.written += len;
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.start()?;
        self.out.flush()
    }

    /// Flushes and syncs to disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// The sink of `pitwall window`: the window table plus an optional late-data file.
pub struct WindowJobSink {
    pub table: WindowTable,
    pub late: Option<LateWriter>,
    /// First I/O error of the late writer (reported when the job ends).
    pub late_error: Option<std::io::Error>,
}

#[derive(Serialize, Deserialize)]
struct WindowJobSinkState {
    table: WindowTable,
    late_len: u64,
}

impl WindowJobSink {
    pub fn new(late: Option<LateWriter>) -> Self {
        WindowJobSink {
            table: WindowTable::default(),
            late,
            late_error: None,
        }
    }
}

impl Collector for WindowJobSink {
    fn window(&mut self, w: WindowResult) {
        self.table.window(w);
    }
    fn late(&mut self, row: LateRow<'_>) {
        if let Some(l) = &mut self.late
            && let Err(e) = l.write(&row)
            && self.late_error.is_none()
        {
            self.late_error = Some(e);
        }
    }
}

impl crate::job::JobSink for WindowJobSink {
    fn snapshot(&mut self) -> Result<Vec<u8>, EngineError> {
        let late_len = match &mut self.late {
            Some(l) => {
                // Durable before the checkpoint that records its length.
                l.sync().map_err(|source| EngineError::Output {
                    path: l.path().to_path_buf(),
                    source,
                })?;
                l.len()
            }
            None => 0,
        };
        let state = WindowJobSinkState {
            table: self.table.clone(),
            late_len,
        };
        postcard::to_allocvec(&state).map_err(|e| EngineError::Stage {
            stage: "sink",
            reason: format!("cannot encode the window table: {e}"),
        })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), EngineError> {
        let s: WindowJobSinkState =
            postcard::from_bytes(state).map_err(|e| EngineError::Stage {
                stage: "sink",
                reason: format!("checkpointed window table is unreadable: {e}"),
            })?;
        self.table = s.table;
        if let Some(l) = self.late.take() {
            let path = l.path().to_path_buf();
            let plan_channels = l;
            self.late = Some(
                plan_channels
                    .reopen_at(s.late_len)
                    .map_err(|source| EngineError::Output { path, source })?,
            );
        }
        Ok(())
    }
}
