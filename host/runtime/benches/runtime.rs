//! Criterion benches of the plugin runtime's hot path and swap.
//!
//! * `call/empty`: one `pitwall_on_frame` call with a tiny frame and an empty
//!   reply: alloc, copy in, call, verify (the fixed cost per plugin per frame);
//! * `call/20_cars`: a 20-car frame (6 aggregates per car) into a WAT plugin
//!   that walks every car's aggregates and speed, replying with 3 insights;
//!   `set/20_cars` is the same through `PluginSet::on_frame` (provenance,
//!   counters, status publication included);
//! * `swap/pause`: what the frame loop spends applying a swap with state
//!   handover (the `Swapped` event's `pause`);
//! * `compile`: validating and compiling a plugin (off the hot path).
//!
//! After criterion, it prints p50/p99/max of the 20-car call and of the swap
//! pause over many samples, since the goals are stated as p99.
//!
//! Run: `cargo bench -p pitwall-runtime --bench runtime -- --quick`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use pitwall_plugin_sdk::frame::{CarFrameData, Compound, Flag, RaceFrameData, RaceStateData};
use pitwall_plugin_sdk::{CarMetric, InsightsData, Prediction, Story};
use pitwall_runtime::{
    Boundary, LifecycleEvent, PluginInstance, PluginSet, Runtime, RuntimeConfig,
};

const WS_SENTINEL: i64 = 0x0123_4567_89ab_cdef;
const VALUE_SENTINEL: f64 = 987_654.321;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// A plugin replying with `reply` (window patched in); `walk` makes it sum
/// every car's aggregates and speed into the first metric's value;
/// `stateful` adds snapshot/restore of an 8-byte counter.
fn plugin(name: &str, version: &str, reply: InsightsData, walk: bool, stateful: bool) -> Vec<u8> {
    let mut reply = reply;
    reply.window_start_ms = WS_SENTINEL;
    let t = reply.to_flatbuffer();
    let ws_at = 32768 + find(&t, &WS_SENTINEL.to_le_bytes());
    let patch = if walk {
        format!(
            "(f64.store (i32.const {}) (call $walk (local.get $ptr)))",
            32768 + find(&t, &VALUE_SENTINEL.to_le_bytes())
        )
    } else {
        String::new()
    };
    let sv = if stateful { ",\"state_version\":1" } else { "" };
    let info = format!(
        "{{\"name\":\"{name}\",\"version\":\"{version}\",\"kind\":\"car_model\",\"abi\":\"1.0\"{sv}}}"
    );
    let state = if stateful {
        r#"(func (export "pitwall_snapshot") (result i64)
             (i64.store (i32.const 512) (global.get $count)) (i64.const 2199023255560))
           (func (export "pitwall_restore") (param $p i32) (param $l i32) (param $sv i32) (result i32)
             (global.set $count (i64.load (local.get $p))) (i32.const 0))"#
    } else {
        ""
    };
    let wat = format!(
        r#"(module
  (@custom "pitwall:abi" "\01\00\00\00")
  (@custom "pitwall:info" "{info}")
  (memory (export "memory") 2)
  (global $count (mut i64) (i64.const 0))
  (data (i32.const 1024) "{data}")
  (func (export "pitwall_alloc") (param $len i32) (result i32)
    (local $need i32)
    (local.set $need (i32.add (i32.const 65536) (local.get $len)))
    (if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.sub (i32.div_u (i32.add (local.get $need) (i32.const 65535)) (i32.const 65536)) (memory.size))) (i32.const -1))
        (then (return (i32.const 0))))))
    (i32.const 65536))
  (func $field (param $table i32) (param $idx i32) (result i32)
    (local $vt i32) (local $slot i32) (local $off i32)
    (local.set $vt (i32.sub (local.get $table) (i32.load (local.get $table))))
    (local.set $slot (i32.add (i32.const 4) (i32.mul (local.get $idx) (i32.const 2))))
    (if (i32.ge_u (local.get $slot) (i32.load16_u (local.get $vt))) (then (return (i32.const 0))))
    (local.set $off (i32.load16_u (i32.add (local.get $vt) (local.get $slot))))
    (if (i32.eqz (local.get $off)) (then (return (i32.const 0))))
    (i32.add (local.get $table) (local.get $off)))
  (func $vec (param $pos i32) (result i32) (i32.add (local.get $pos) (i32.load (local.get $pos))))
  (func $walk (param $ptr i32) (result f64)
    (local $root i32) (local $cars i32) (local $n i32) (local $i i32) (local $car i32)
    (local $f i32) (local $aggs i32) (local $m i32) (local $j i32) (local $sum f64)
    (local.set $root (call $vec (local.get $ptr)))
    (local.set $f (call $field (local.get $root) (i32.const 6)))
    (if (i32.eqz (local.get $f)) (then (return (f64.const 0))))
    (local.set $cars (call $vec (local.get $f)))
    (local.set $n (i32.load (local.get $cars)))
    (block $done (loop $cl
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $car (call $vec (i32.add (i32.add (local.get $cars) (i32.const 4)) (i32.mul (local.get $i) (i32.const 4)))))
      (local.set $f (call $field (local.get $car) (i32.const 6)))
      (if (local.get $f) (then (local.set $sum (f64.add (local.get $sum) (f64.promote_f32 (f32.load (local.get $f)))))))
      (local.set $f (call $field (local.get $car) (i32.const 2)))
      (if (local.get $f) (then
        (local.set $aggs (call $vec (local.get $f)))
        (local.set $m (i32.load (local.get $aggs)))
        (local.set $j (i32.const 0))
        (block $ad (loop $al
          (br_if $ad (i32.ge_u (local.get $j) (local.get $m)))
          (local.set $sum (f64.add (local.get $sum)
            (f64.load (i32.add (i32.add (local.get $aggs) (i32.const 4)) (i32.mul (local.get $j) (i32.const 8))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $al)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $cl)))
    (local.get $sum))
  (func (export "pitwall_on_frame") (param $ptr i32) (param $len i32) (result i64)
    (local $root i32) (local $f i32)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (memory.copy (i32.const 32768) (i32.const 1024) (i32.const {tl}))
    (local.set $root (call $vec (local.get $ptr)))
    (local.set $f (call $field (local.get $root) (i32.const 1)))
    (i64.store (i32.const {ws_at}) (if (result i64) (local.get $f) (then (i64.load (local.get $f))) (else (i64.const 0))))
    {patch}
    (i64.or (i64.shl (i64.const 32768) (i64.const 32)) (i64.const {tl})))
  {state}
)"#,
        info = hex(info.as_bytes()),
        data = hex(&t),
        tl = t.len(),
    );
    wat::parse_str(wat).unwrap()
}

fn three_insights() -> InsightsData {
    InsightsData {
        window_start_ms: 0,
        stories: vec![
            Story::builder("battle", "NOR closes on VER")
                .cars(["4", "1"])
                .importance(0.8)
                .build()
                .unwrap(),
        ],
        predictions: vec![
            Prediction::builder("p_overtake", "4", "1")
                .probability(0.3)
                .horizon_laps(3)
                .build()
                .unwrap(),
        ],
        metrics: vec![CarMetric::new("1", "walk_sum", VALUE_SENTINEL, "").unwrap()],
    }
}

fn race_frame(cars: u16, ws: i64) -> Vec<u8> {
    let names = [
        "speed_mean",
        "speed_max",
        "throttle_mean",
        "brake_frac",
        "rpm_max",
        "gear_mode",
    ];
    RaceFrameData {
        window_start_ms: ws,
        window_end_ms: ws + 1000,
        seq: (ws / 1000) as u64,
        session: "2024-austria-race".into(),
        race: RaceStateData {
            lap: 23,
            total_laps: 71,
            flag: Flag::Green,
            ..Default::default()
        },
        cars: (0..cars)
            .map(|i| CarFrameData {
                car: i + 1,
                rows: 4,
                aggregates: (0..names.len())
                    .map(|a| 100.0 + f64::from(i) + a as f64 / 7.0)
                    .collect(),
                lap: 23,
                lap_distance_m: 1234.5 + f32::from(i),
                total_distance_m: 130_000.25 - f64::from(i) * 40.0,
                speed_kmh: 287.4,
                position: (i + 1) as u8,
                gap_to_leader_s: f64::from(i) * 1.3,
                interval_s: 1.3,
                tyre_compound: Compound::Medium,
                tyre_age_laps: 12,
                ..Default::default()
            })
            .collect(),
        aggregate_names: names.iter().map(|s| s.to_string()).collect(),
        kernels: vec![],
    }
    .to_flatbuffer()
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: 16,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    format!(
        "p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs (n = {})",
        p(0.5),
        p(0.99),
        p(1.0),
        v.len()
    )
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let empty = rt
        .compile(&plugin(
            "empty",
            "1.0.0",
            InsightsData::default(),
            false,
            false,
        ))
        .unwrap();
    let walker = rt
        .compile(&plugin("walker", "1.0.0", three_insights(), true, false))
        .unwrap();
    let tiny = race_frame(0, 1000);
    let frame20 = race_frame(20, 1000);

    let mut inst = PluginInstance::new(&rt, &empty, None).unwrap();
    c.bench_function("call/empty", |b| {
        b.iter(|| black_box(inst.call_frame(black_box(&tiny), 1000).unwrap()))
    });

    let mut inst = PluginInstance::new(&rt, &walker, None).unwrap();
    let check = inst.call_frame(&frame20, 1000).unwrap();
    assert_eq!(check.len(), 3);
    c.bench_function("call/20_cars", |b| {
        b.iter(|| black_box(inst.call_frame(black_box(&frame20), 1000).unwrap()))
    });

    let mut set = PluginSet::new(rt.clone());
    set.control()
        .deploy_compiled(walker.clone(), Boundary::Next)
        .unwrap();
    set.apply_pending(0);
    c.bench_function("set/20_cars", |b| {
        b.iter(|| black_box(set.on_frame(black_box(&frame20), 1000)))
    });

    // Swap pause: alternate two stateful versions, one swap per frame.
    let v1 = rt
        .compile(&plugin("walker", "1.0.0", three_insights(), true, true))
        .unwrap();
    let v2 = rt
        .compile(&plugin("walker", "2.0.0", three_insights(), true, true))
        .unwrap();
    let mut set = PluginSet::new(rt.clone());
    let control = set.control();
    control.deploy_compiled(v1.clone(), Boundary::Next).unwrap();
    set.apply_pending(0);
    let mut flip = false;
    let mut swap_once = |set: &mut PluginSet| -> Duration {
        flip = !flip;
        let v = if flip { &v2 } else { &v1 };
        control.deploy_compiled(v.clone(), Boundary::Next).unwrap();
        let out = set.on_frame(&frame20, 1000);
        out.events
            .iter()
            .find_map(|e| match e {
                LifecycleEvent::Swapped { pause, .. } => Some(*pause),
                _ => None,
            })
            .expect("swapped")
    };
    c.bench_function("swap/pause", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| swap_once(&mut set)).sum())
    });

    let wasm = plugin("compiled", "1.0.0", three_insights(), true, true);
    c.bench_function("compile/walker", |b| {
        b.iter(|| black_box(rt.compile(&wasm).unwrap()))
    });

    // Distributions for the p99 goals.
    let mut inst = PluginInstance::new(&rt, &walker, None).unwrap();
    let calls: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            black_box(inst.call_frame(&frame20, 1000).unwrap());
            t.elapsed()
        })
        .collect();
    println!("call/20_cars distribution: {}", percentiles(calls));
    let mut set2 = PluginSet::new(rt.clone());
    set2.control()
        .deploy_compiled(walker.clone(), Boundary::Next)
        .unwrap();
    set2.apply_pending(0);
    let frames: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            black_box(set2.on_frame(&frame20, 1000));
            t.elapsed()
        })
        .collect();
    println!("set/20_cars distribution: {}", percentiles(frames));
    let pauses: Vec<Duration> = (0..2_000).map(|_| swap_once(&mut set)).collect();
    println!("swap/pause distribution: {}", percentiles(pauses));
    let compiles: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            black_box(rt.compile(&wasm).unwrap());
            t.elapsed()
        })
        .collect();
    println!("compile distribution: {}", percentiles(compiles));
}

criterion_group!(runtime_benches, benches);

fn main() {
    runtime_benches();
    Criterion::default().configure_from_args().final_summary();
}
