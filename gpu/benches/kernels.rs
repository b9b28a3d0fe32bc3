//! Every kernel on both paths over a range of sizes. GPU benches run only when
//! a usable CUDA device is present (otherwise they print why and are
//! skipped). Short measurement times: this is for crossover and ratio, not
//! third-digit precision.
//!
//! ```sh
//! cargo bench -p pitwall-gpu --bench kernels
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pitwall_gpu::cpu::lap_predict::{self, LapPredictInput};
use pitwall_gpu::cpu::monte_carlo;
use pitwall_gpu::cpu::segmented_reduce::{ProductSpec, SegmentLayout, segmented_reduce};
use pitwall_gpu::cuda::{CudaRuntime, probe};
use pitwall_gpu::predict::{CarSnapshot, PredictorConfig, RacePredictor, RaceSnapshot};
use pitwall_gpu::{Backend, Compound, LapModel};

fn gpu() -> Option<CudaRuntime> {
    let p = probe();
    if !p.usable() {
        eprintln!(
            "GPU benches skipped: no CUDA driver ({})",
            p.problem.unwrap_or_default()
        );
        return None;
    }
    match CudaRuntime::new(0) {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("GPU benches skipped: {e}");
            None
        }
    }
}

fn reduce_benches(c: &mut Criterion) {
    let mut rt = gpu();
    let mut g = c.benchmark_group("segmented_reduce");
    // 20 cars, 240 Hz, 1 s windows; channels x windows vary the size.
    for (channels, windows) in [(6usize, 1usize), (300, 1), (300, 10)] {
        let per = 240 * windows;
        let n = 20 * per;
        let ts: Vec<i64> = (0..n).map(|i| ((i % per) as i64) * 1000 / 240).collect();
        let car: Vec<u32> = (0..n).map(|i| (i / per) as u32).collect();
        let cols: Vec<Vec<f64>> = (0..channels)
            .map(|c| (0..n).map(|i| ((i * 31 + c) % 1000) as f64).collect())
            .collect();
        let refs: Vec<&[f64]> = cols.iter().map(Vec::as_slice).collect();
        let layout = SegmentLayout::build(&ts, &car, 1000).unwrap();
        let spec = Some(ProductSpec {
            a: 0,
            b: 1.min(channels - 1),
            factor: 1.0,
        });
        let id = format!("20cars_{channels}ch_{windows}win");
        g.throughput(Throughput::Elements((n * channels) as u64));
        g.bench_function(BenchmarkId::new("cpu", &id), |b| {
            b.iter(|| black_box(segmented_reduce(&layout, &refs, spec).unwrap()))
        });
        if let Some(rt) = rt.as_mut() {
            g.bench_function(BenchmarkId::new("cuda", &id), |b| {
                b.iter(|| black_box(rt.segmented_reduce(&layout, &refs, spec).unwrap()))
            });
        }
    }
    g.finish();
}

fn snapshot() -> RaceSnapshot {
    let comps = [Compound::Soft, Compound::Medium, Compound::Hard];
    RaceSnapshot {
        lap: 20,
        total_laps: 57,
        safety_car: false,
        vsc: false,
        cars: (0..20u32)
            .map(|i| CarSnapshot {
                car: i + 1,
                position: i + 1,
                gap_to_leader_s: f64::from(i) * 1.5,
                laps_completed: 20,
                compound: Some(comps[(i % 3) as usize]),
                tyre_age: 5 + i,
                in_pit: false,
                retired: false,
                last_lap_s: Some(95.0),
            })
            .collect(),
    }
}

fn mc_benches(c: &mut Criterion) {
    let mut rt = gpu();
    let mut g = c.benchmark_group("monte_carlo");
    g.sample_size(10);
    // 20 cars x (1 baseline + 4 strategies x 20 cars) scenarios x runs, 37 laps to go.
    for runs in [100u32, 1000, 10_000] {
        let cfg = PredictorConfig {
            runs,
            ..Default::default()
        };
        let pred = RacePredictor::new(LapModel::fitted(), cfg, Backend::Cpu).unwrap();
        let (input, _) = pred.mc_input(&snapshot());
        let sims = input.scenarios.len() as u64 * u64::from(runs);
        g.throughput(Throughput::Elements(sims));
        // The 2-core CPU path at 10,000 runs takes tens of seconds per
        // iteration; it is linear in runs, so 100 and 1000 give its rate.
        if runs <= 1000 {
            g.bench_function(BenchmarkId::new("cpu_1thread", runs), |b| {
                b.iter(|| black_box(monte_carlo::simulate(&input).unwrap()))
            });
            g.bench_function(BenchmarkId::new("cpu_2threads", runs), |b| {
                b.iter(|| black_box(monte_carlo::simulate_threads(&input, 2).unwrap()))
            });
        }
        if let Some(rt) = rt.as_mut() {
            g.bench_function(BenchmarkId::new("cuda", runs), |b| {
                b.iter(|| black_box(rt.monte_carlo(&input).unwrap()))
            });
        }
    }
    g.finish();
}

fn lap_benches(c: &mut Criterion) {
    let mut rt = gpu();
    let params = LapModel::fitted().params();
    let mut g = c.benchmark_group("lap_predict");
    // The host's call (20 cars, next lap) up to a whole-field stint table.
    for (n, horizon) in [(20usize, 1u32), (20, 70), (10_000, 70)] {
        let input = LapPredictInput {
            base_s: (0..n).map(|i| 90.0 + (i % 20) as f64 * 0.1).collect(),
            base_var: vec![0.02; n],
            compound: (0..n).map(|i| (i % 3) as u32).collect(),
            tyre_age: (0..n).map(|i| (i % 30) as u32).collect(),
            lap: vec![10; n],
            horizon,
        };
        let id = format!("{n}cars_h{horizon}");
        g.throughput(Throughput::Elements((n * horizon as usize) as u64));
        g.bench_function(BenchmarkId::new("cpu", &id), |b| {
            b.iter(|| black_box(lap_predict::predict(&input, &params).unwrap()))
        });
        if let Some(rt) = rt.as_mut() {
            g.bench_function(BenchmarkId::new("cuda", &id), |b| {
                b.iter(|| black_box(rt.lap_predict(&input, &params).unwrap()))
            });
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = reduce_benches, mc_benches, lap_benches }
criterion_main!(benches);
