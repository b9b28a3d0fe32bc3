//! Property tests of the window engine against a plainly written reference.
//!
//! The reference ([`reference`]) follows the semantics of `engine.rs` row at a time,
//! with no chunks, no columnar batches and no cleverness:
//! * a row's window is `[ws, ws + size)`, `ws = ts - ts.rem_euclid(size)`, per car;
//! * `wm = max event time so far - bound`, updated after each row;
//! * a row is late when on arrival `wm >= ws + size - 1 + allowed_lateness`;
//! * after each row every open window with `ws + size - 1 + allowed_lateness <= wm`
//!   fires (in order of ws, then car number); at the end all the rest fire;
//! * keyed state (TTL, sampler): a car with no open window whose last on-time row
//!   is `ttl` or more behind the watermark is expired (its sampler starts afresh);
//! * sampling (min_interval, deadband) per car over its on-time rows in input order;
//! * a window ending at `E` sees the broadcast events with `ts <= E` that arrived
//!   before its fire condition held, folded in order of effective time
//!   (`max(ts, first not-yet-fired time at arrival)`, then arrival).
//!
//! Aggregates are computed naively from the stored rows of each window.

use std::collections::BTreeMap;
use std::sync::Arc;

use pitwall_engine::broadcast::{BroadcastEvent, BroadcastState, EventKind};
use pitwall_engine::job::JobOptions;
use pitwall_engine::source::Source;
use pitwall_engine::source::memory::{MemorySource, Row};
use pitwall_engine::{EngineStats, JobConfig, JobPlan, RowChunk, WindowEngine};
use pitwall_tests::{LateRec, RecordingSink, WindowRec};
use proptest::prelude::*;

/// Car numbers: numeric order (2, 7, 10, 44) differs from text order ("10", "2", "44", "7").
const CARS: [&str; 4] = ["7", "44", "2", "10"];

/// Channel indexes of the test schema.
const A: usize = 0; // float, required
const B: usize = 1; // float, optional (NaN = missing)
const G: usize = 2; // int, required
const S: usize = 3; // float, optional, sampled when the case says so

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Count,
    CountOf(usize),
    Mean(usize),
    Sum(usize),
    Min(usize),
    Max(usize),
    First(usize),
    Last(usize),
    /// `factor * Σ Π channels` over rows where every channel is present.
    SumProduct(&'static [usize], f64),
}

/// The aggregates every case declares, in order (names in [`config_text`]).
const AGGS: [Agg; 21] = [
    Agg::Count,
    Agg::CountOf(B),
    Agg::Mean(A),
    Agg::Sum(A),
    Agg::Min(A),
    Agg::Max(A),
    Agg::Min(B),
    Agg::Max(B),
    Agg::Mean(B),
    Agg::Sum(B),
    Agg::First(G),
    Agg::Last(G),
    Agg::First(B),
    Agg::Last(B),
    Agg::SumProduct(&[A, B], 0.5),
    Agg::SumProduct(&[A, B, G], 1.0),
    Agg::CountOf(S),
    Agg::Mean(S),
    Agg::Min(S),
    Agg::Last(S),
    Agg::Sum(G),
];

const CH_NAMES: [&str; 4] = ["a", "b", "g", "s"];

#[derive(Debug, Clone, PartialEq)]
struct Params {
    size: i64,
    bound: i64,
    lateness: i64,
    ttl: Option<i64>,
    /// `(min_interval, deadband)` of channel `s`.
    sampling: Option<(Option<i64>, Option<f64>)>,
}

fn config_text(p: &Params) -> String {
    let mut s = String::from(
        "[schema]\ntime = { name = \"t\", unit = \"ms\" }\nkey = { name = \"car\", type = \"int\" }\n\
         channels = [\n  { name = \"a\", type = \"float\" },\n  { name = \"b\", type = \"float\", optional = true },\n\
         \x20 { name = \"g\", type = \"int\" },\n",
    );
    let sampling = match p.sampling {
        None => String::new(),
        Some((mi, db)) => {
            let mut parts = Vec::new();
            if let Some(mi) = mi {
                parts.push(format!("min_interval = \"{mi}ms\""));
            }
            if let Some(db) = db {
                parts.push(format!("deadband = {db:?}"));
            }
            format!(", sampling = {{ {} }}", parts.join(", "))
        }
    };
    s.push_str(&format!(
        "  {{ name = \"s\", type = \"float\", optional = true{sampling} }},\n]\n"
    ));
    s.push_str(&format!(
        "[window]\nsize = \"{}ms\"\nbound = \"{}ms\"\nallowed_lateness = \"{}ms\"\n",
        p.size, p.bound, p.lateness
    ));
    if let Some(ttl) = p.ttl {
        s.push_str(&format!("[state]\nttl = \"{ttl}ms\"\n"));
    }
    for (i, agg) in AGGS.iter().enumerate() {
        s.push_str("[[aggregate]]\n");
        let (kind, chs): (&str, Vec<usize>) = match *agg {
            Agg::Count => ("count", vec![]),
            Agg::CountOf(c) => ("count", vec![c]),
            Agg::Mean(c) => ("mean", vec![c]),
            Agg::Sum(c) => ("sum", vec![c]),
            Agg::Min(c) => ("min", vec![c]),
            Agg::Max(c) => ("max", vec![c]),
            Agg::First(c) => ("first", vec![c]),
            Agg::Last(c) => ("last", vec![c]),
            Agg::SumProduct(chs, factor) => {
                let names: Vec<String> =
                    chs.iter().map(|c| format!("{:?}", CH_NAMES[*c])).collect();
                s.push_str(&format!(
                    "kind = \"sum_product\"\nchannels = [{}]\nfactor = {factor:?}\nname = \"agg{i}\"\n",
                    names.join(", ")
                ));
                continue;
            }
        };
        s.push_str(&format!("kind = \"{kind}\"\nname = \"agg{i}\"\n"));
        if let [c] = chs.as_slice() {
            s.push_str(&format!("channel = \"{}\"\n", CH_NAMES[*c]));
        }
    }
    s
}

fn plan_for(p: &Params) -> Arc<JobPlan> {
    let text = config_text(p);
    let cfg = JobConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Arc::new(cfg.plan().unwrap_or_else(|e| panic!("{e}\n{text}")))
}

// ---------------------------------------------------------------------------
// The reference.

/// What the reference expects.
#[derive(Debug, Default)]
struct Expected {
    /// Fired windows in firing order, with the index of the row after which each
    /// fired (`None`: at the end of input).
    windows: Vec<(ExpWindow, Option<usize>)>,
    late: Vec<LateRec>,
    rows_in: u64,
    late_rows_per_key: Vec<u64>,
    keys_expired: u64,
    thinned_s: u64,
}

#[derive(Debug, Clone)]
struct ExpWindow {
    car: String,
    start: i64,
    rows: u64,
    /// `(value, tolerance)`: tolerance 0 means exact (NaN matches NaN).
    values: Vec<(f64, f64)>,
    broadcast: BroadcastState,
}

/// A stored on-time row: `(ts, values after sampling)`.
type Stored = (i64, [f64; 4]);

fn aggregate(agg: Agg, rows: &[Stored]) -> (f64, f64) {
    let present = |c: usize| rows.iter().filter(move |r| !r.1[c].is_nan());
    let sum_tol = |terms: &mut dyn Iterator<Item = f64>| -> (f64, f64, f64) {
        let (mut s, mut abs, mut n) = (0.0, 0.0, 0.0);
        for t in terms {
            s += t;
            abs += t.abs();
            n += 1.0;
        }
        (s, abs, n)
    };
    match agg {
        Agg::Count => (rows.len() as f64, 0.0),
        Agg::CountOf(c) => (present(c).count() as f64, 0.0),
        Agg::Sum(c) | Agg::Mean(c) => {
            let (s, abs, n) = sum_tol(&mut present(c).map(|r| r.1[c]));
            if n == 0.0 {
                (f64::NAN, 0.0)
            } else if matches!(agg, Agg::Mean(_)) {
                (s / n, 1e-9 * (abs / n) + 1e-300)
            } else {
                (s, 1e-9 * abs + 1e-300)
            }
        }
        Agg::Min(c) => (
            present(c)
                .map(|r| r.1[c])
                .reduce(f64::min)
                .unwrap_or(f64::NAN),
            0.0,
        ),
        Agg::Max(c) => (
            present(c)
                .map(|r| r.1[c])
                .reduce(f64::max)
                .unwrap_or(f64::NAN),
            0.0,
        ),
        Agg::First(c) => {
            // Earliest event time; ties: the larger value.
            let best = present(c).map(|r| (r.0, r.1[c])).reduce(|b, x| {
                if x.0 < b.0 || (x.0 == b.0 && x.1 > b.1) {
                    x
                } else {
                    b
                }
            });
            (best.map_or(f64::NAN, |b| b.1), 0.0)
        }
        Agg::Last(c) => {
            // Latest event time; ties: the larger value.
            let best = present(c).map(|r| (r.0, r.1[c])).reduce(|b, x| {
                if x.0 > b.0 || (x.0 == b.0 && x.1 > b.1) {
                    x
                } else {
                    b
                }
            });
            (best.map_or(f64::NAN, |b| b.1), 0.0)
        }
        Agg::SumProduct(chs, factor) => {
            let (s, abs, n) = sum_tol(
                &mut rows
                    .iter()
                    .filter(|r| chs.iter().all(|&c| !r.1[c].is_nan()))
                    .map(|r| factor * chs.iter().map(|&c| r.1[c]).product::<f64>()),
            );
            if n == 0.0 {
                (f64::NAN, 0.0)
            } else {
                (s, 1e-9 * abs + 1e-300)
            }
        }
    }
}

fn window_start(ts: i64, size: i64) -> i64 {
    ts - ts.rem_euclid(size)
}

/// Runs the reference over `rows` with `events` (`(i, e)`: `e` arrives just before row `i`).
fn reference(p: &Params, rows: &[Row], events: &[(usize, BroadcastEvent)]) -> Expected {
    let fire_at = |ws: i64| ws + p.size - 1 + p.lateness;
    let mut exp = Expected::default();
    let mut keys: Vec<String> = Vec::new();
    let mut max_ts: Option<i64> = None;
    // Open windows by (ws, car number) → rows in input order.
    let mut open: BTreeMap<(i64, i64), Vec<Stored>> = BTreeMap::new();
    // Live keyed state per car number: (last on-time event time, sampler's last kept (ts, value)).
    let mut cars: BTreeMap<i64, (i64, Option<(i64, f64)>)> = BTreeMap::new();
    // Events in arrival order with the watermark they met.
    let mut events: Vec<(usize, BroadcastEvent)> = events.to_vec();
    events.sort_by_key(|(i, _)| *i);
    let mut arrived: Vec<(Option<i64>, BroadcastEvent)> = Vec::new();
    let mut next_event = 0;
    // Fired windows without their broadcast state yet.
    let mut fired: Vec<(i64, i64, Vec<Stored>, Option<usize>)> = Vec::new();

    let fire = |open: &mut BTreeMap<(i64, i64), Vec<Stored>>,
                fired: &mut Vec<(i64, i64, Vec<Stored>, Option<usize>)>,
                wm: Option<i64>,
                after: Option<usize>| {
        let due: Vec<(i64, i64)> = open
            .keys()
            .filter(|(ws, _)| wm.is_none_or(|wm| wm >= fire_at(*ws)))
            .copied()
            .collect();
        for k in due {
            let rows = open.remove(&k).expect("listed");
            fired.push((k.0, k.1, rows, after));
        }
    };

    for (i, row) in rows.iter().enumerate() {
        while next_event < events.len() && events[next_event].0 <= i {
            arrived.push((max_ts.map(|m| m - p.bound), events[next_event].1.clone()));
            next_event += 1;
        }
        if !keys.contains(&row.key) {
            keys.push(row.key.clone());
            exp.late_rows_per_key.push(0);
        }
        let key_id = keys.iter().position(|k| *k == row.key).expect("interned");
        let car: i64 = row.key.parse().expect("int keys");
        let ws = window_start(row.ts, p.size);
        let wm = max_ts.map(|m| m - p.bound);
        exp.rows_in += 1;
        if let Some(wm) = wm
            && wm >= fire_at(ws)
        {
            exp.late_rows_per_key[key_id] += 1;
            exp.late.push(LateRec {
                car: row.key.clone(),
                line: i as u64 + 1,
                ts: row.ts,
                window_start: ws,
                watermark: wm,
            });
        } else {
            let state = cars.entry(car).or_insert((row.ts, None));
            state.0 = state.0.max(row.ts);
            let mut v = [row.values[A], row.values[B], row.values[G], row.values[S]];
            if let Some((mi, db)) = p.sampling
                && !v[S].is_nan()
                && (mi.is_some() || db.is_some())
            {
                let keep = match state.1 {
                    None => true,
                    Some((lt, lv)) => {
                        mi.is_none_or(|mi| row.ts >= lt + mi)
                            && db.is_none_or(|db| (v[S] - lv).abs() > db)
                    }
                };
                if keep {
                    state.1 = Some((row.ts, v[S]));
                } else {
                    v[S] = f64::NAN;
                    exp.thinned_s += 1;
                }
            }
            open.entry((ws, car)).or_default().push((row.ts, v));
        }
        max_ts = Some(max_ts.map_or(row.ts, |m| m.max(row.ts)));
        let wm = max_ts.map(|m| m - p.bound);
        fire(&mut open, &mut fired, wm, Some(i));
        if let (Some(ttl), Some(wm)) = (p.ttl, wm) {
            let idle: Vec<i64> = cars
                .iter()
                .filter(|&(&c, &(last, _))| {
                    last + ttl <= wm && !open.keys().any(|&(_, oc)| oc == c)
                })
                .map(|(&c, _)| c)
                .collect();
            for c in idle {
                cars.remove(&c);
                exp.keys_expired += 1;
            }
        }
    }
    while next_event < events.len() {
        arrived.push((max_ts.map(|m| m - p.bound), events[next_event].1.clone()));
        next_event += 1;
    }
    fire(&mut open, &mut fired, None, None);

    for (ws, car, rows, after) in fired {
        let end = ws + p.size - 1;
        // Events that belong to the window and arrived before its fire condition held,
        // in order of effective time, then arrival.
        let mut seen: Vec<(i64, usize, &BroadcastEvent)> = arrived
            .iter()
            .enumerate()
            .filter(|(_, (wm, e))| e.ts <= end && wm.is_none_or(|wm| wm < fire_at(ws)))
            .map(|(seq, (wm, e))| {
                let effective = wm.map_or(e.ts, |wm| e.ts.max(wm - p.lateness + 1));
                (effective, seq, e)
            })
            .collect();
        seen.sort_by_key(|(eff, seq, _)| (*eff, *seq));
        let mut broadcast = BroadcastState::default();
        for (_, _, e) in seen {
            broadcast.apply(e);
        }
        exp.windows.push((
            ExpWindow {
                car: car.to_string(),
                start: ws,
                rows: rows.len() as u64,
                values: AGGS.iter().map(|a| aggregate(*a, &rows)).collect(),
                broadcast,
            },
            after,
        ));
    }
    exp
}

// ---------------------------------------------------------------------------
// Comparing.

fn same_value(got: f64, (want, tol): (f64, f64)) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if tol == 0.0 {
        got == want
    } else {
        (got - want).abs() <= tol
    }
}

fn check_window(i: usize, got: &WindowRec, want: &ExpWindow) -> Result<(), String> {
    if got.car != want.car || got.start != want.start || got.rows != want.rows {
        return Err(format!(
            "window #{i}: got (car {}, start {}, rows {}), want (car {}, start {}, rows {})",
            got.car, got.start, got.rows, want.car, want.start, want.rows
        ));
    }
    if got.values.len() != want.values.len() {
        return Err(format!(
            "window #{i}: {} values, want {}",
            got.values.len(),
            want.values.len()
        ));
    }
    for (a, agg) in AGGS.iter().enumerate() {
        if !same_value(got.value(a), want.values[a]) {
            return Err(format!(
                "window #{i} (car {}, start {}): aggregate #{a} {agg:?} = {:?}, want {:?} (±{:e})",
                got.car,
                got.start,
                got.value(a),
                want.values[a].0,
                want.values[a].1
            ));
        }
    }
    if got.broadcast != want.broadcast {
        return Err(format!(
            "window #{i} (car {}, start {}): broadcast state\n  got  {:?}\n  want {:?}",
            got.car, got.start, got.broadcast, want.broadcast
        ));
    }
    Ok(())
}

fn check_all(
    what: &str,
    windows: &[WindowRec],
    late: &[LateRec],
    stats: &EngineStats,
    exp: &Expected,
    events: usize,
) -> Result<(), String> {
    let ctx = |m: String| format!("{what}: {m}");
    for (i, (got, (want, _))) in windows.iter().zip(&exp.windows).enumerate() {
        check_window(i, got, want).map_err(ctx)?;
    }
    if windows.len() != exp.windows.len() {
        return Err(ctx(format!(
            "{} windows fired, want {} (first missing/extra: {:?})",
            windows.len(),
            exp.windows.len(),
            if windows.len() > exp.windows.len() {
                format!(
                    "{:?}",
                    windows.get(exp.windows.len()).map(|w| (&w.car, w.start))
                )
            } else {
                format!(
                    "{:?}",
                    exp.windows
                        .get(windows.len())
                        .map(|w| (&w.0.car, w.0.start))
                )
            }
        )));
    }
    if late != exp.late.as_slice() {
        return Err(ctx(format!(
            "late rows\n  got  {late:?}\n  want {:?}",
            exp.late
        )));
    }
    let want_stats = (
        exp.rows_in,
        exp.late.len() as u64,
        exp.late_rows_per_key.clone(),
        0u64,
        exp.windows.len() as u64,
        vec![0, 0, 0, exp.thinned_s],
        exp.keys_expired,
        events as u64,
    );
    let got_stats = (
        stats.rows_in,
        stats.late_rows,
        stats.late_rows_per_key.clone(),
        stats.skipped_rows,
        stats.windows_fired,
        stats.thinned_per_channel.clone(),
        stats.keys_expired,
        stats.broadcast_events,
    );
    if got_stats != want_stats {
        return Err(ctx(format!(
            "stats (rows_in, late_rows, late_rows_per_key, skipped, windows_fired, thinned, \
             keys_expired, broadcast_events)\n  got  {got_stats:?}\n  want {want_stats:?}"
        )));
    }
    Ok(())
}

/// Windows are emitted in order of start, then car number.
fn check_stream_order(windows: &[WindowRec]) -> Result<(), String> {
    for (i, pair) in windows.windows(2).enumerate() {
        let k = |w: &WindowRec| (w.start, w.car.parse::<i64>().expect("int car"));
        if k(&pair[0]) >= k(&pair[1]) {
            return Err(format!(
                "windows #{i} and #{} fired out of order: (start {}, car {}) then (start {}, car {})",
                i + 1,
                pair[0].start,
                pair[0].car,
                pair[1].start,
                pair[1].car
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running the engine.

/// Through `run_job` with a `MemorySource` of `chunk_rows`-row chunks.
fn run_job_memory(
    plan: &Arc<JobPlan>,
    rows: &[Row],
    events: &[(usize, BroadcastEvent)],
    chunk_rows: usize,
) -> (RecordingSink, EngineStats) {
    let schema = plan.schema.clone();
    let src = MemorySource::new(schema, rows.to_vec(), chunk_rows).with_events(events.to_vec());
    let mut sink = RecordingSink::default();
    let summary = pitwall_tests::run(plan, Box::new(src), &mut sink, &JobOptions::default())
        .expect("job runs");
    assert!(!summary.stopped_early);
    (sink, summary.stats)
}

/// Concatenates consecutive chunks into one (keys re-interned, event positions shifted).
fn merge_chunks(parts: &[RowChunk]) -> RowChunk {
    let channels = parts[0].columns.len();
    let mut out = RowChunk::with_capacity(channels, 0, &vec![true; channels]);
    for p in parts {
        let base = out.len();
        for (i, e) in &p.events {
            out.events.push((base + i, e.clone()));
        }
        for i in 0..p.len() {
            let k = out.intern_key(&p.key_names[p.keys[i] as usize]);
            out.keys.push(k);
            out.ts.push(p.ts[i]);
            out.lines.push(p.lines[i]);
            for c in 0..channels {
                out.columns[c].push(p.columns[c][i]);
            }
        }
        out.skipped += p.skipped;
        out.end_position = p.end_position;
    }
    out
}

/// Drives a `WindowEngine` directly with chunks cut at `cuts` (sizes, cycled), and
/// checks after each chunk that exactly the windows due by then have fired.
fn run_engine_cut(
    plan: &Arc<JobPlan>,
    rows: &[Row],
    events: &[(usize, BroadcastEvent)],
    cuts: &[usize],
    exp: &Expected,
) -> Result<(RecordingSink, EngineStats), String> {
    let mut src =
        MemorySource::new(plan.schema.clone(), rows.to_vec(), 1).with_events(events.to_vec());
    let mut singles = Vec::new();
    while let Some(c) = src.next_chunk().map_err(|e| e.to_string())? {
        singles.push(c);
    }
    let mut engine = WindowEngine::new(plan.clone());
    let mut sink = RecordingSink::default();
    let mut at = 0;
    let mut cut = 0;
    while at < singles.len() {
        let n = cuts[cut % cuts.len()].max(1).min(singles.len() - at);
        cut += 1;
        let chunk = merge_chunks(&singles[at..at + n]);
        at += n;
        engine
            .process_chunk(&chunk, &mut sink)
            .expect("generated chunks are well formed");
        // Rows 0..end have been processed: the windows whose fire condition held
        // after one of them have fired, and no others.
        let end = rows.len().min(at);
        let due = exp
            .windows
            .iter()
            .take_while(|(_, after)| after.is_some_and(|a| a < end))
            .count();
        if sink.windows.len() != due {
            return Err(format!(
                "after rows 1..={end} (watermark {:?}) {} windows have fired, want {due}",
                engine.watermark(),
                sink.windows.len()
            ));
        }
    }
    engine.finish(&mut sink);
    Ok((sink, engine.stats().clone()))
}

// ---------------------------------------------------------------------------
// Generators.

fn params(with_state: bool) -> impl Strategy<Value = Params> {
    let sizes = prop_oneof![
        Just(1i64),
        Just(2),
        Just(5),
        Just(10),
        Just(100),
        Just(250),
        Just(1000)
    ];
    sizes
        .prop_flat_map(move |size| {
            let lateness = prop_oneof![2 => Just(0i64), 1 => 0..=2 * size];
            let mi = proptest::option::of(1..=2 * size);
            let db = proptest::option::of(prop_oneof![Just(0.0f64), 0.0f64..3.0]);
            let (ttl_extra, sampling) = if with_state {
                (
                    proptest::option::weighted(0.7, 0..=3 * size).boxed(),
                    proptest::option::weighted(0.7, (mi, db)).boxed(),
                )
            } else {
                (Just(None).boxed(), Just(None).boxed())
            };
            (Just(size), 0..=3 * size, lateness, ttl_extra, sampling)
        })
        .prop_map(|(size, bound, lateness, ttl_extra, sampling)| Params {
            size,
            bound,
            lateness,
            ttl: ttl_extra.map(|x| size + lateness + x),
            sampling,
        })
}

/// One generated row before timestamps are laid out:
/// `(car, step in quarter windows, how far back, a, b, g, s)`.
type RowSeed = (usize, u8, Option<u16>, f64, f64, f64, f64);

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![(-20i32..20).prop_map(f64::from), -1000.0f64..1000.0]
}

fn row_seed() -> impl Strategy<Value = RowSeed> {
    (
        0..CARS.len(),
        0u8..=4,
        proptest::option::weighted(0.2, any::<u16>()),
        value(),
        prop_oneof![1 => Just(f64::NAN), 3 => value()],
        (0i32..6).prop_map(f64::from),
        prop_oneof![1 => Just(f64::NAN), 2 => (0i32..8).prop_map(f64::from), 2 => 0.0f64..8.0],
    )
}

/// Lays out timestamps: a cursor that moves forward `step/4` windows per row, and
/// rows that jump back as far as several windows plus the bound.
fn make_rows(p: &Params, start: i64, seeds: &[RowSeed]) -> Vec<Row> {
    let mut cursor = start;
    let max_back = 6 * p.size + p.bound;
    seeds
        .iter()
        .map(|&(car, step, back, a, b, g, s)| {
            cursor += step as i64 * p.size / 4 + i64::from(p.size < 4 && step == 4);
            let ts = cursor - back.map_or(0, |b| b as i64 % (max_back + 1));
            Row {
                ts,
                key: CARS[car].to_string(),
                values: vec![a, b, g, s],
            }
        })
        .collect()
}

fn event_kind() -> impl Strategy<Value = (EventKind, Option<String>, String)> {
    let car = (0..CARS.len()).prop_map(|c| Some(CARS[c].to_string()));
    prop_oneof![
        prop_oneof![Just("GREEN"), Just("YELLOW"), Just("RED")].prop_map(|v| (
            EventKind::Flag,
            None,
            v.to_string()
        )),
        prop_oneof![Just("DEPLOYED"), Just("IN")].prop_map(|v| (
            EventKind::SafetyCar,
            None,
            v.to_string()
        )),
        car.clone()
            .prop_map(|c| (EventKind::PitIn, c, String::new())),
        car.clone()
            .prop_map(|c| (EventKind::PitOut, c, String::new())),
        car.clone()
            .prop_map(|c| (EventKind::Retirement, c, String::new())),
        (car, prop_oneof![Just("SOFT"), Just("HARD")]).prop_map(|(c, v)| (
            EventKind::TyreChange,
            c,
            v.to_string()
        )),
        (0u8..3, 0u8..3).prop_map(|(k, v)| (EventKind::Other, None, format!("k{k}=v{v}"))),
    ]
}

/// `(where among the rows, which row's time, offset in quarter windows, what)`.
type EventSeed = (u16, u16, i8, (EventKind, Option<String>, String));

fn event_seed() -> impl Strategy<Value = EventSeed> {
    (any::<u16>(), any::<u16>(), -12i8..=12, event_kind())
}

fn make_events(p: &Params, rows: &[Row], seeds: &[EventSeed]) -> Vec<(usize, BroadcastEvent)> {
    seeds
        .iter()
        .map(|(at, near, off, (kind, car, value))| {
            let pos = *at as usize % (rows.len() + 1);
            let base = if rows.is_empty() {
                0
            } else {
                rows[*near as usize % rows.len()].ts
            };
            let ts = base + *off as i64 * p.size / 4;
            (
                pos,
                BroadcastEvent {
                    ts,
                    kind: kind.clone(),
                    car: car.clone(),
                    value: value.clone(),
                },
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Case {
    p: Params,
    rows: Vec<Row>,
    events: Vec<(usize, BroadcastEvent)>,
    chunk_rows: usize,
    cuts: Vec<usize>,
}

fn case(with_state: bool, with_events: bool, max_rows: usize) -> impl Strategy<Value = Case> {
    let events = proptest::collection::vec(event_seed(), if with_events { 0..8 } else { 0..1 });
    (
        params(with_state),
        -3000i64..3000,
        proptest::collection::vec(row_seed(), 0..max_rows),
        events,
        1usize..40,
        proptest::collection::vec(1usize..30, 1..6),
    )
        .prop_map(move |(p, start, seeds, ev, chunk_rows, cuts)| {
            let rows = make_rows(&p, start, &seeds);
            let events = if with_events {
                make_events(&p, &rows, &ev)
            } else {
                Vec::new()
            };
            Case {
                p,
                rows,
                events,
                chunk_rows,
                cuts,
            }
        })
}

/// Runs the engine both ways and compares with the reference.
fn check_case(c: &Case) -> Result<(), TestCaseError> {
    let plan = plan_for(&c.p);
    let exp = reference(&c.p, &c.rows, &c.events);
    let (sink, stats) = run_job_memory(&plan, &c.rows, &c.events, c.chunk_rows);
    check_stream_order(&sink.windows).map_err(TestCaseError::fail)?;
    check_all(
        &format!("run_job, {}-row chunks", c.chunk_rows),
        &sink.windows,
        &sink.late,
        &stats,
        &exp,
        c.events.len(),
    )
    .map_err(TestCaseError::fail)?;
    let (sink2, stats2) =
        run_engine_cut(&plan, &c.rows, &c.events, &c.cuts, &exp).map_err(TestCaseError::fail)?;
    check_all(
        &format!("WindowEngine, chunks cut {:?}", c.cuts),
        &sink2.windows,
        &sink2.late,
        &stats2,
        &exp,
        c.events.len(),
    )
    .map_err(TestCaseError::fail)?;
    Ok(())
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        // Failing inputs are printed (shrunk); no regression files in the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(256))]

    /// Windows, values, late rows and counters equal the reference (no TTL, no sampling,
    /// no broadcast events), through `run_job` and through `WindowEngine` with uneven chunks.
    #[test]
    fn windows_and_late_rows_match_the_reference(c in case(false, false, 120)) {
        check_case(&c)?;
    }

    /// The same with keyed-state TTL and adaptive sampling of channel `s`.
    #[test]
    fn ttl_and_sampling_match_the_reference(c in case(true, false, 120)) {
        check_case(&c)?;
    }

    /// The same with broadcast events: every car's window with the same start sees the
    /// same state, the fold of the events that belong to it and arrived before it fired.
    #[test]
    fn broadcast_state_matches_the_reference(c in case(true, true, 80)) {
        check_case(&c)?;
        let plan = plan_for(&c.p);
        let (sink, _) = run_job_memory(&plan, &c.rows, &c.events, c.chunk_rows);
        for pair in sink.windows.windows(2) {
            if pair[0].start == pair[1].start {
                prop_assert_eq!(&pair[0].broadcast, &pair[1].broadcast,
                    "cars {} and {} differ at window {}", pair[0].car, pair[1].car, pair[0].start);
            }
        }
    }

    /// Chunk size changes nothing: one row per chunk, everything in one chunk and a
    /// random size give bit-identical windows, late rows and counters.
    #[test]
    fn chunk_size_never_changes_outputs(c in case(true, true, 120)) {
        let plan = plan_for(&c.p);
        let n = c.rows.len().max(1);
        let (base, mut base_stats) = run_job_memory(&plan, &c.rows, &c.events, 1);
        base_stats.chunks = 0;
        for chunk_rows in [n, c.chunk_rows, 2] {
            let (sink, mut stats) = run_job_memory(&plan, &c.rows, &c.events, chunk_rows);
            stats.chunks = 0;
            prop_assert_eq!(&sink, &base, "outputs differ with {}-row chunks", chunk_rows);
            prop_assert_eq!(&stats, &base_stats, "stats differ with {}-row chunks", chunk_rows);
        }
    }
}

// ---------------------------------------------------------------------------
// Hand-written cases: each pins one rule with a minimal input.

fn simple(size: i64, bound: i64, lateness: i64) -> Params {
    Params {
        size,
        bound,
        lateness,
        ttl: None,
        sampling: None,
    }
}

fn row(ts: i64, car: &str, a: f64) -> Row {
    Row {
        ts,
        key: car.to_string(),
        values: vec![a, f64::NAN, 1.0, f64::NAN],
    }
}

fn run_simple(p: &Params, rows: &[Row]) -> RecordingSink {
    let plan = plan_for(p);
    let (sink, _) = run_job_memory(&plan, rows, &[], 2);
    let exp = reference(p, rows, &[]);
    let (s2, stats2) = run_job_memory(&plan, rows, &[], 1);
    check_all("hand-written", &s2.windows, &s2.late, &stats2, &exp, 0).unwrap();
    sink
}

#[test]
fn a_row_is_late_exactly_when_its_window_could_have_fired() {
    // size 10, bound 5: after ts 24, wm = 19 >= 9 = fire_at(0): window 0 is closed,
    // window 10 (fire_at 19) too; window 20 (fire_at 29) is open.
    let p = simple(10, 5, 0);
    let rows = vec![
        row(3, "7", 1.0),
        row(24, "7", 2.0),
        row(9, "7", 3.0),   // late: window 0
        row(19, "44", 4.0), // late: window 10, although car 44 never had a row there
        row(20, "44", 5.0), // on time
    ];
    let sink = run_simple(&p, &rows);
    let late: Vec<(u64, &str)> = sink.late.iter().map(|l| (l.line, l.car.as_str())).collect();
    assert_eq!(late, vec![(3, "7"), (4, "44")]);
    assert_eq!(sink.late[0].watermark, 19);
    let w: Vec<(i64, &str, u64)> = sink
        .windows
        .iter()
        .map(|w| (w.start, w.car.as_str(), w.rows))
        .collect();
    assert_eq!(w, vec![(0, "7", 1), (20, "7", 1), (20, "44", 1)]);
}

#[test]
fn allowed_lateness_keeps_windows_open_longer() {
    let p = simple(10, 0, 5);
    // wm after ts 14 is 14 = fire_at(0) = 9 + 5: window 0 closes.
    let rows = vec![
        row(0, "2", 1.0),
        row(13, "2", 1.0),
        row(9, "2", 2.0),
        row(14, "2", 1.0),
        row(9, "2", 3.0),
    ];
    let sink = run_simple(&p, &rows);
    assert_eq!(
        sink.late.iter().map(|l| l.line).collect::<Vec<_>>(),
        vec![5]
    );
    assert_eq!(sink.windows[0].start, 0);
    assert_eq!(sink.windows[0].rows, 2);
}

#[test]
fn negative_timestamps_floor_to_their_window() {
    let p = simple(1000, 500, 0);
    let rows = vec![
        row(-1, "10", 1.0),
        row(-1000, "10", 2.0),
        row(-1001, "10", 3.0),
        row(0, "10", 4.0),
    ];
    let sink = run_simple(&p, &rows);
    let w: Vec<(i64, u64)> = sink.windows.iter().map(|w| (w.start, w.rows)).collect();
    // -1001 arrives when wm = -501 >= fire_at(-2000) = -1001: late.
    assert_eq!(w, vec![(-1000, 2), (0, 1)]);
    assert_eq!(sink.late.len(), 1);
    assert_eq!(sink.late[0].window_start, -2000);
}

#[test]
fn windows_fire_in_order_of_start_then_car_number() {
    // Windows 0 and 10 of all cars fire together when ts 100 arrives (bound 50).
    let p = simple(10, 50, 0);
    let mut rows: Vec<Row> = Vec::new();
    for ts in [5, 15] {
        for c in ["44", "7", "10", "2"] {
            rows.push(row(ts, c, 1.0));
        }
    }
    rows.push(row(100, "7", 1.0));
    let sink = run_simple(&p, &rows);
    let cars: Vec<(i64, &str)> = sink
        .windows
        .iter()
        .map(|w| (w.start, w.car.as_str()))
        .collect();
    assert_eq!(
        cars,
        vec![
            (0, "2"),
            (0, "7"),
            (0, "10"),
            (0, "44"),
            (10, "2"),
            (10, "7"),
            (10, "10"),
            (10, "44"),
            (100, "7")
        ]
    );
}

#[test]
fn first_and_last_break_event_time_ties_by_the_larger_value() {
    let p = simple(100, 1000, 0);
    let mk = |ts, g| Row {
        ts,
        key: "7".into(),
        values: vec![0.0, f64::NAN, g, f64::NAN],
    };
    let rows = vec![
        mk(50, 2.0),
        mk(10, 3.0),
        mk(90, 1.0),
        mk(10, 5.0),
        mk(90, 4.0),
        mk(10, 4.0),
    ];
    let sink = run_simple(&p, &rows);
    let first = AGGS.iter().position(|a| *a == Agg::First(G)).unwrap();
    let last = AGGS.iter().position(|a| *a == Agg::Last(G)).unwrap();
    assert_eq!(sink.windows[0].value(first), 5.0);
    assert_eq!(sink.windows[0].value(last), 4.0);
}

/// Timestamps at the ends of the i64 range (a file can hold them) must not crash the
/// engine: the job stops with an error naming the row, before any state changes.
#[test]
fn extreme_timestamps_are_refused_without_a_panic() {
    let p = simple(1000, 2000, 0);
    let rows = vec![
        row(0, "7", 1.0),
        row(i64::MIN, "7", 2.0),
        row(i64::MAX, "44", 3.0),
        row(i64::MIN + 1, "2", 1.0),
        row(5, "7", 1.0),
    ];
    let plan = plan_for(&p);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let src = MemorySource::new(plan.schema.clone(), rows.clone(), 2);
        let mut sink = RecordingSink::default();
        pitwall_tests::run(&plan, Box::new(src), &mut sink, &JobOptions::default())
    }));
    let err = result
        .expect("extreme timestamps must not panic the engine")
        .expect_err("timestamps outside ±2^62 are refused")
        .to_string();
    assert!(err.contains("memory:2"), "{err}");
    assert!(err.contains("outside the supported range"), "{err}");
}
