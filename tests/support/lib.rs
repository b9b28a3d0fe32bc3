//! Shared helpers for the end-to-end tests.
//!
//! * [`RecordingSink`]: a [`JobSink`] that records every fired window (values as
//!   bits, so `NaN` compares equal and floats compare exactly) and every late row,
//!   and checkpoints all of it (JSON), so a resumed job can be compared with an
//!   uninterrupted one.
//! * Writers that turn [`Row`]s into CSV / NDJSON telemetry files the file sources read.
//! * [`golden_input_csv`]: the tiny deterministic telemetry generator of the golden test.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pitwall_engine::broadcast::BroadcastState;
use pitwall_engine::job::{JobOptions, JobSink, JobSummary, run_job};
use pitwall_engine::schema::ChannelType;
use pitwall_engine::source::Source;
use pitwall_engine::source::memory::Row;
use pitwall_engine::{Collector, EngineError, JobConfig, JobPlan, LateRow, Schema, WindowResult};
use serde::{Deserialize, Serialize};

/// The workspace root (`tests/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `configs/window-bench.toml`, the benchmark job.
pub fn bench_config_path() -> PathBuf {
    workspace_root().join("configs").join("window-bench.toml")
}

pub fn bench_config() -> JobConfig {
    JobConfig::load(&bench_config_path()).expect("configs/window-bench.toml loads")
}

pub fn bench_plan() -> Arc<JobPlan> {
    Arc::new(bench_config().plan().expect("window-bench plans"))
}

/// One fired window as recorded by [`RecordingSink`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRec {
    pub car: String,
    pub start: i64,
    pub rows: u64,
    /// `f64::to_bits` of each aggregate value.
    pub values: Vec<u64>,
    pub broadcast: BroadcastState,
}

impl WindowRec {
    pub fn value(&self, i: usize) -> f64 {
        f64::from_bits(self.values[i])
    }
}

/// One late row as recorded by [`RecordingSink`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateRec {
    pub car: String,
    pub line: u64,
    pub ts: i64,
    pub window_start: i64,
    pub watermark: i64,
}

/// Records everything the engine emits, in emission order; checkpointable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingSink {
    pub windows: Vec<WindowRec>,
    pub late: Vec<LateRec>,
}

impl Collector for RecordingSink {
    fn window(&mut self, w: WindowResult) {
        self.windows.push(WindowRec {
            car: w.car.to_string(),
            start: w.start,
            rows: w.rows,
            values: w.values.iter().map(|v| v.to_bits()).collect(),
            broadcast: (*w.broadcast).clone(),
        });
    }

    fn late(&mut self, r: LateRow<'_>) {
        self.late.push(LateRec {
            car: r.car.to_string(),
            line: r.chunk.lines[r.row],
            ts: r.chunk.ts[r.row],
            window_start: r.window_start,
            watermark: r.watermark,
        });
    }
}

impl JobSink for RecordingSink {
    fn snapshot(&mut self) -> Result<Vec<u8>, EngineError> {
        serde_json::to_vec(self).map_err(|e| EngineError::Stage {
            stage: "test sink",
            reason: e.to_string(),
        })
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), EngineError> {
        *self = serde_json::from_slice(state).map_err(|e| EngineError::Stage {
            stage: "test sink",
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

/// Runs a job with default options plus `opts`, ignoring progress.
pub fn run(
    plan: &Arc<JobPlan>,
    source: Box<dyn Source>,
    sink: &mut dyn JobSink,
    opts: &JobOptions,
) -> Result<JobSummary, EngineError> {
    run_job(plan.clone(), source, sink, opts, &mut |_| {})
}

/// Reads a whole source into rows (all channels; unprojected ones become `NaN`).
pub fn drain_source(source: &mut dyn Source) -> Vec<Row> {
    let channels = source.schema().channels.len();
    let mut rows = Vec::new();
    while let Some(chunk) = source.next_chunk().expect("source reads") {
        for i in 0..chunk.len() {
            rows.push(Row {
                ts: chunk.ts[i],
                key: chunk.key_names[chunk.keys[i] as usize].to_string(),
                values: (0..channels)
                    .map(|c| chunk.columns[c].get(i).copied().unwrap_or(f64::NAN))
                    .collect(),
            });
        }
    }
    rows
}

/// Formats a value as the file sources read it back exactly: integers of int/bool
/// channels without a fraction, floats in Rust's shortest round-trip form.
fn fmt_value(ty: ChannelType, v: f64) -> String {
    match ty {
        ChannelType::Int | ChannelType::Bool if v.fract() == 0.0 => format!("{}", v as i64),
        _ => format!("{v}"),
    }
}

/// The rows as a CSV telemetry file with a header row (`NaN` as an empty cell).
pub fn rows_to_csv(schema: &Schema, rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(&schema.time.name);
    out.push(',');
    out.push_str(&schema.key.name);
    for c in &schema.channels {
        out.push(',');
        out.push_str(&c.name);
    }
    out.push('\n');
    for r in rows {
        out.push_str(&r.ts.to_string());
        out.push(',');
        out.push_str(&r.key);
        for (c, spec) in schema.channels.iter().enumerate() {
            out.push(',');
            let v = r.values.get(c).copied().unwrap_or(f64::NAN);
            if !v.is_nan() {
                out.push_str(&fmt_value(spec.ty, v));
            }
        }
        out.push('\n');
    }
    out
}

/// The rows as NDJSON, one flat object per line (`NaN` values left out; int keys as numbers).
pub fn rows_to_ndjson(schema: &Schema, rows: &[Row]) -> String {
    let int_key = schema.key.ty == pitwall_engine::schema::KeyType::Int;
    let mut out = String::new();
    for r in rows {
        out.push('{');
        out.push_str(&format!("{:?}:{}", schema.time.name, r.ts));
        if int_key && r.key.parse::<i64>().is_ok() {
            out.push_str(&format!(",{:?}:{}", schema.key.name, r.key));
        } else {
            out.push_str(&format!(
                ",{:?}:{}",
                schema.key.name,
                serde_json::to_string(&r.key).unwrap()
            ));
        }
        for (c, spec) in schema.channels.iter().enumerate() {
            let v = r.values.get(c).copied().unwrap_or(f64::NAN);
            if !v.is_nan() {
                out.push_str(&format!(",{:?}:{}", spec.name, fmt_value(spec.ty, v)));
            }
        }
        out.push_str("}\n");
    }
    out
}

/// SplitMix64: the golden generator's only source of randomness.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Tenths as decimal text (`1234` → `123.4`).
fn tenths(v: i64) -> String {
    format!("{}.{}", v / 10, v % 10)
}

/// The golden test's input: 3 cars (44, 3, 16 — numeric and text order differ),
/// 240 Hz, event time 0..6000 ms, in the window-bench schema
/// (`ts_ms,car,speed,rpm,throttle,brake,gear,drs`).
///
/// Integer arithmetic only, so the text is identical on every platform. About 4 %
/// of rows are held back 1..=4000 ms and delivered after the first tick at or past
/// their due time (beyond the 2 s watermark bound, so some are late); about 0.5 %
/// are sent twice. Returns the CSV text.
pub fn golden_input_csv() -> String {
    const CARS: [(&str, i64); 3] = [("44", 0), ("3", 1900), ("16", 4100)];
    const TICKS: u64 = 1440; // 6 s at 240 Hz
    let tick_ts = |k: u64| (k * 1000 / 240) as i64;
    let mut out = String::from("ts_ms,car,speed,rpm,throttle,brake,gear,drs\n");
    let line = |g: u64, ts: i64, car: &str, offset: i64| -> String {
        let h = mix(g ^ 0x5157_4a11);
        let p = (ts + offset).rem_euclid(7000);
        let tri = if p < 3500 { p } else { 7000 - p };
        // Speed in tenths of km/h: 80..325 km/h plus ±1 km/h noise.
        let speed = 800 + tri * 7 / 10 + (h % 21) as i64 - 10;
        let gear = (1 + speed / 420).clamp(1, 8);
        let rpm = 9000 + (speed * 37 + gear * 500) % 3500;
        let braking = (3500..4200).contains(&p);
        let (throttle, brake) = if braking {
            (0, 100)
        } else {
            ((400 + tri * 6 / 35 + ((h >> 8) % 11) as i64).min(1000), 0)
        };
        let drs = if tri > 3000 { 12 } else { 0 };
        format!(
            "{ts},{car},{},{rpm},{},{brake},{gear},{drs}\n",
            tenths(speed),
            tenths(throttle)
        )
    };
    // (due time, g, text) of held-back rows.
    let mut held: Vec<(i64, u64, String)> = Vec::new();
    for k in 0..TICKS {
        let ts = tick_ts(k);
        for (c, (car, offset)) in CARS.iter().enumerate() {
            let g = k * CARS.len() as u64 + c as u64;
            let text = line(g, ts, car, *offset);
            let h = mix(g);
            if h % 100 < 4 {
                let delay = 1 + ((h >> 16) % 4000) as i64;
                held.push((ts + delay, g, text));
                continue;
            }
            out.push_str(&text);
            if (h >> 32).is_multiple_of(200) {
                out.push_str(&text);
            }
        }
        held.sort();
        let due = held.partition_point(|(d, _, _)| *d <= ts);
        for (_, _, text) in held.drain(..due) {
            out.push_str(&text);
        }
    }
    for (_, _, text) in held {
        out.push_str(&text);
    }
    out
}
