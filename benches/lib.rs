//! Shared fixtures for the criterion benches: deterministic telemetry chunks in the
//! shape of the window benchmark (`ts_ms, car, speed, rpm, throttle, brake, gear, drs`,
//! 20 cars interleaved at 240 Hz, ~2 % of rows delayed).

use std::sync::Arc;

use pitwall_engine::{JobConfig, JobPlan, RowChunk};

/// The window-benchmark job (`configs/window-bench.toml`), planned.
pub fn bench_plan() -> Arc<JobPlan> {
    let cfg = JobConfig::parse(include_str!("../configs/window-bench.toml"))
        .expect("configs/window-bench.toml parses");
    Arc::new(cfg.plan().expect("configs/window-bench.toml plans"))
}

/// `chunks` chunks of `rows` rows each: 20 cars at 240 Hz, values from a cheap
/// deterministic generator; every 50th row is delayed by up to 3 s.
pub fn bench_chunks(chunks: usize, rows: usize) -> Vec<RowChunk> {
    let cars = 20usize;
    let mut out = Vec::with_capacity(chunks);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut row = 0usize;
    for _ in 0..chunks {
        let mut c = RowChunk::with_capacity(6, rows, &[true; 6]);
        for _ in 0..rows {
            let tick = (row / cars) as i64;
            let car = row % cars;
            let mut ts = tick * 1000 / 240;
            if row % 50 == 49 {
                ts -= (rnd() % 3000) as i64;
            }
            let name = (car + 1).to_string();
            let k = c.intern_key(&name);
            c.ts.push(ts);
            c.keys.push(k);
            c.lines.push(row as u64 + 2);
            let r = rnd();
            c.columns[0].push(80.0 + (r % 24000) as f64 / 100.0);
            c.columns[1].push(8000.0 + (r % 4000) as f64);
            c.columns[2].push((r % 101) as f64);
            c.columns[3].push(if r % 7 == 0 { 100.0 } else { 0.0 });
            c.columns[4].push((1 + r % 8) as f64);
            c.columns[5].push(if r % 5 == 0 { 12.0 } else { 0.0 });
            row += 1;
        }
        c.end_position = row as u64;
        out.push(c);
    }
    out
}
