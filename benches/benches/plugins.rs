//! Criterion benches of the plugin runtime with the **real Rust plugins**
//! (`plugins/`, built to WASM by `pitwall-plugins-bundle`) on a **real race
//! frame**: the bundled 2024 Austrian GP replayed through the engine into race
//! frames exactly as `pitwall replay --frames-out x.pwrf` does
//! (`tests/support/race_frames.rs`); the frame benched is the mid-race one
//! (lap 37, 20 cars, all running).
//!
//! * `plugins/pace`: `PluginSet::on_frame` with `pace` alone (a car model:
//!   20 `on_car` calls, 40 metrics back), warmed on the race up to that frame;
//! * `plugins/examples`: the same with `gap-watch`, `pace` and `drs-threat`;
//! * `plugins/pace_call`, `plugins/counter_call`: one `PluginInstance::call_frame`
//!   without the set (no provenance, counters, status publication);
//!   `plugins/counter_call_1car` the same with a 1-car frame;
//! * `plugins/counter`: `counter` alone, no swap (the reference for the next);
//! * `plugins/counter_swap`: `on_frame` of a frame at which `counter` is
//!   swapped 1.0.0 <-> 2.0.0 with state handover (snapshot + restore), its
//!   call, and dropping the instance swapped out two swaps before — the swap
//!   as the frame loop sees it. The new version is compiled and instantiated
//!   off the clock, as `PluginControl` does it in the caller's thread.
//!
//! Afterwards it prints p50/p99/max of the same, over 20 000 frames (2 000
//! swaps), plus the runtime's own `Swapped { pause }` (the handover alone) and
//! the example plugins over 600 consecutive mid-race frames.
//!
//! Run: `cargo bench -p pitwall-benches --bench plugins -- --warm-up-time 1 --measurement-time 3`

#[path = "../../tests/support/race_frames.rs"]
mod race_frames;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use pitwall_runtime::{
    Boundary, CompiledPlugin, LifecycleEvent, PluginInstance, PluginSet, Runtime, RuntimeConfig,
};
use race_frames::RaceFrame;

fn wasm(key: &str) -> Vec<u8> {
    std::fs::read(pitwall_plugins_bundle::wasm_path(key)).expect("bundled plugin")
}

/// A set with `keys` loaded and fed `warm` (the race up to the benched frame).
fn set_with(rt: &Runtime, keys: &[&str], warm: &[RaceFrame]) -> PluginSet {
    let mut set = PluginSet::new(rt.clone());
    for k in keys {
        set.control().deploy(&wasm(k), Boundary::Next).unwrap();
    }
    set.apply_pending(warm[0].window_start_ms);
    for f in warm {
        let out = set.on_frame(&f.bytes, f.window_start_ms);
        assert!(out.failures.is_empty(), "{:?}", out.failures);
    }
    set
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "n {} p50 {:.2?} p90 {:.2?} p99 {:.2?} max {:.2?}",
        v.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

struct Swapper {
    set: PluginSet,
    versions: [Arc<CompiledPlugin>; 2],
    next: usize,
}

impl Swapper {
    /// Queues the other version (instantiated here, off the clock), then times
    /// the frame that applies it. Returns (on_frame time, runtime's pause).
    fn swap_once(&mut self, frame: &RaceFrame) -> (Duration, Duration) {
        let v = self.versions[self.next % 2].clone();
        self.next += 1;
        self.set
            .control()
            .deploy_compiled(v, Boundary::Next)
            .unwrap();
        let t = Instant::now();
        let out = self.set.on_frame(&frame.bytes, frame.window_start_ms);
        let took = t.elapsed();
        let pause = out
            .events
            .iter()
            .find_map(|e| match e {
                LifecycleEvent::Swapped { pause, .. } => Some(*pause),
                _ => None,
            })
            .expect("swapped");
        assert_eq!(out.insights.len(), 1);
        black_box(out);
        (took, pause)
    }
}

fn benches(c: &mut Criterion) {
    let frames = race_frames::austria_frames();
    let mid = frames.len() / 2;
    let frame = &frames[mid];
    assert_eq!((frame.cars, frame.running), (20, 20));
    eprintln!(
        "{} frames; benched frame {mid}: lap {}, {} cars, {} bytes",
        frames.len(),
        frame.lap,
        frame.cars,
        frame.bytes.len()
    );
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let warm = &frames[..mid];

    let mut pace = set_with(&rt, &["pace"], warm);
    let mut examples = set_with(&rt, &["drs-threat", "gap-watch", "pace"], warm);
    let mut counter = set_with(&rt, &["counter-v1"], &warm[..10]);
    let mut swapper = Swapper {
        set: set_with(&rt, &["counter-v1"], &warm[..10]),
        versions: [
            rt.compile(&wasm("counter-v2")).unwrap(),
            rt.compile(&wasm("counter-v1")).unwrap(),
        ],
        next: 0,
    };
    {
        let out = examples.on_frame(&frame.bytes, frame.window_start_ms);
        let per = |p: &str| out.insights.iter().filter(|i| i.plugin_name() == p).count();
        eprintln!(
            "benched frame's replies: pace {} metrics, drs-threat {} predictions, gap-watch {} stories",
            per("pace"),
            per("drs-threat"),
            per("gap-watch")
        );
    }

    // One call without the set (no provenance, counters or status): alloc,
    // copy in, the guest's work, verification and decoding of the reply.
    let instance = |key: &str, warm: &[RaceFrame]| {
        let mut i = PluginInstance::new(&rt, &rt.compile(&wasm(key)).unwrap(), None).unwrap();
        for f in warm {
            i.call_frame(&f.bytes, f.window_start_ms).unwrap();
        }
        i
    };
    let mut pace_call = instance("pace", warm);
    let mut counter_call = instance("counter-v1", &warm[..10]);

    let mut g = c.benchmark_group("plugins");
    g.bench_function("pace_call", |b| {
        b.iter(|| black_box(pace_call.call_frame(black_box(&frame.bytes), frame.window_start_ms)))
    });
    // The same with a 1-car frame (≈ 10x smaller): what scales with the frame.
    let tiny = pitwall_plugin_sdk::testing::frame(
        0,
        vec![pitwall_plugin_sdk::testing::car(1, 1, f64::NAN)],
    );
    let tiny = (tiny.to_flatbuffer(), tiny.window_start_ms);
    eprintln!("1-car frame: {} bytes", tiny.0.len());
    g.bench_function("counter_call_1car", |b| {
        b.iter(|| black_box(counter_call.call_frame(black_box(&tiny.0), tiny.1)))
    });
    g.bench_function("counter_call", |b| {
        b.iter(|| {
            black_box(counter_call.call_frame(black_box(&frame.bytes), frame.window_start_ms))
        })
    });
    g.bench_function("pace", |b| {
        b.iter(|| black_box(pace.on_frame(black_box(&frame.bytes), frame.window_start_ms)))
    });
    g.bench_function("examples", |b| {
        b.iter(|| black_box(examples.on_frame(black_box(&frame.bytes), frame.window_start_ms)))
    });
    g.bench_function("counter", |b| {
        b.iter(|| black_box(counter.on_frame(black_box(&frame.bytes), frame.window_start_ms)))
    });
    g.bench_function("counter_swap", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| swapper.swap_once(frame).0).sum())
    });
    g.finish();

    // Distributions (the goals are stated as p99).
    let time = |set: &mut PluginSet, f: &RaceFrame| {
        let t = Instant::now();
        black_box(set.on_frame(&f.bytes, f.window_start_ms));
        t.elapsed()
    };
    let d: Vec<Duration> = (0..20_000).map(|_| time(&mut pace, frame)).collect();
    println!("plugins/pace distribution: {}", percentiles(d));
    let d: Vec<Duration> = (0..20_000).map(|_| time(&mut examples, frame)).collect();
    println!("plugins/examples distribution: {}", percentiles(d));
    let d: Vec<Duration> = (0..20_000).map(|_| time(&mut counter, frame)).collect();
    println!("plugins/counter distribution: {}", percentiles(d));
    let (took, pauses): (Vec<Duration>, Vec<Duration>) =
        (0..2_000).map(|_| swapper.swap_once(frame)).unzip();
    println!("plugins/counter_swap distribution: {}", percentiles(took));
    println!(
        "plugins/counter_swap runtime pause (Swapped.pause, handover only): {}",
        percentiles(pauses)
    );
    // The examples over 600 consecutive mid-race frames (10 minutes of racing),
    // each frame once, continuing from the race state.
    let mut fresh = set_with(&rt, &["drs-threat", "gap-watch", "pace"], warm);
    let d: Vec<Duration> = frames[mid..mid + 600]
        .iter()
        .map(|f| time(&mut fresh, f))
        .collect();
    println!(
        "plugins/examples over 600 consecutive mid-race frames: {}",
        percentiles(d)
    );
}

criterion_group!(plugin_benches, benches);

fn main() {
    plugin_benches();
    Criterion::default().configure_from_args().final_summary();
}
