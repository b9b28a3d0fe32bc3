use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;
use crate::classification::classify;
use crate::openf1::{
    read_location, read_overtakes, read_pit, read_race_control, read_session_result,
};

// ---------------------------------------------------------------------------
// Synthetic circuit: an ellipse, cars at known speeds.
// ---------------------------------------------------------------------------

/// Dense ellipse table (semi-axes 500 m × 300 m) → point at arc length `s`.
struct Ellipse {
    pts: Vec<[f64; 2]>,
    cum: Vec<f64>,
}

impl Ellipse {
    fn new() -> Self {
        let n = 20_000;
        let pts: Vec<[f64; 2]> = (0..=n)
            .map(|k| {
                let a = k as f64 / n as f64 * std::f64::consts::TAU;
                [500.0 * a.cos(), 300.0 * a.sin()]
            })
            .collect();
        let mut cum = vec![0.0];
        for w in pts.windows(2) {
            let c = cum.last().unwrap() + dist(w[0], w[1]);
            cum.push(c);
        }
        Ellipse { pts, cum }
    }
    fn len(&self) -> f64 {
        *self.cum.last().unwrap()
    }
    fn at(&self, s: f64) -> [f64; 2] {
        let s = s.rem_euclid(self.len());
        let i = self
            .cum
            .partition_point(|c| *c <= s)
            .clamp(1, self.cum.len() - 1)
            - 1;
        let t = (s - self.cum[i]) / (self.cum[i + 1] - self.cum[i]);
        lerp(self.pts[i], self.pts[i + 1], t)
    }
}

/// Cars `(number, start offset m, speed m/s, stop after s)`: 10 s on the grid, then
/// constant speed; samples every 250 ms for `secs`.
fn synth(cars: &[(u32, f64, f64, f64)], secs: f64) -> (Ellipse, Vec<TrackSample>) {
    let e = Ellipse::new();
    let mut out = Vec::new();
    let steps = (secs * 4.0) as i64;
    for k in 0..=steps {
        let t = k as f64 / 4.0;
        for &(car, off, v, stop) in cars {
            let run = (t - 10.0).clamp(0.0, stop);
            let p = e.at(off + v * run);
            out.push(TrackSample {
                ts_ms: 1_000_000 + k * 250,
                car,
                x_m: p[0],
                y_m: p[1],
            });
        }
    }
    (e, out)
}

#[test]
fn ellipse_distances_laps_gaps_lapped_and_stopped() {
    let cars = [
        (1, 0.0, 50.0, 1e9),
        (2, -20.0, 45.0, 1e9),
        (3, -40.0, 40.0, 100.0),
    ];
    let (e, samples) = synth(&cars, 250.0);
    let m = TrackModel::from_samples(&samples, TrackConfig::default()).unwrap();
    let l = m.line().length();
    assert!(
        (l - e.len()).abs() / e.len() < 0.01,
        "length {l} vs {}",
        e.len()
    );
    let snap = m.snapshot();
    let by = |c: u32| snap.iter().find(|s| s.car == c).unwrap().clone();
    let t = 240.0; // seconds of running
    let (a, b, c) = (by(1), by(2), by(3));
    // Distances scale by the line/ellipse length ratio (smoothing).
    let k = l / e.len();
    assert!((a.total_distance_m - 50.0 * t * k).abs() < 5.0, "{a:?}");
    assert!(
        (b.total_distance_m - (-20.0 + 45.0 * t) * k).abs() < 5.0,
        "{b:?}"
    );
    assert_eq!(a.laps_completed, (50.0 * t * k / l) as u32);
    assert_eq!(b.laps_completed, ((-20.0 + 45.0 * t) * k / l) as u32);
    assert_eq!(c.laps_completed, ((-40.0 + 40.0 * 100.0) * k / l) as u32);
    assert!((a.lap_distance_m - (50.0 * t * k).rem_euclid(l)).abs() < 5.0);
    assert!((a.speed_kmh - 180.0).abs() < 3.0, "{}", a.speed_kmh);
    assert!((b.speed_kmh - 162.0).abs() < 3.0, "{}", b.speed_kmh);
    // Order: 1, 2, then the stopped car 3 (lapped several times).
    assert_eq!([a.position, b.position, c.position], [1, 2, 3]);
    assert!(c.stopped && !a.stopped && c.speed_kmh.abs() < 1e-9);
    // Gap of 2 to 1: now − the time 1 was at 2's distance.
    let want = t - (-20.0 + 45.0 * t) / 50.0;
    let got = b.gap_to_leader_s.unwrap();
    assert!((got - want).abs() < 0.05, "gap {got} want {want}");
    assert!((b.interval_s.unwrap() - want).abs() < 0.05);
    assert_eq!(a.gap_to_leader_s, None);
    // Stopped car: the leader passed its distance long ago (lapped → more than a lap).
    let want_c = t - (-40.0 + 4000.0) / 50.0;
    assert!((c.gap_to_leader_s.unwrap() - want_c).abs() < 0.05);
    assert!(c.gap_to_leader_s.unwrap() > l / 50.0);
    assert!(m.pit_entries().is_empty(), "{:?}", m.pit_entries());
}

#[test]
fn ellipse_mid_race_snapshot_and_grid_not_counted() {
    // After 10 s of grid and 60 s at 50 m/s, car 1 has done 3000 m.
    let cars = [(1, 0.0, 50.0, 1e9), (2, -20.0, 50.0, 1e9)];
    let (e, samples) = synth(&cars, 70.0);
    let m = TrackModel::from_samples(&samples, TrackConfig::default()).unwrap();
    let k = m.line().length() / e.len();
    let s = m.snapshot();
    assert_eq!(s[0].car, 1);
    assert!(
        (s[0].total_distance_m - 3000.0 * k).abs() < 5.0,
        "{:?}",
        s[0]
    );
    assert_eq!(s[0].laps_completed, 1);
    assert!((s[1].interval_s.unwrap() - 0.4).abs() < 0.05, "{:?}", s[1]);
    assert!(m.start_finish_s().is_some());
}

#[test]
fn pit_detour_detected_with_hysteresis() {
    // Car 2 runs 25 m outside the line for 200 m just before the start/finish point on lap 2.
    let e = Ellipse::new();
    let mut samples = Vec::new();
    for k in 0..=(120 * 4) {
        let t = k as f64 / 4.0;
        for car in [1u32, 2] {
            let off = if car == 1 { 0.0 } else { -20.0 };
            let s = off + 50.0 * (t - 10.0).max(0.0);
            let mut p = e.at(s);
            let ls = s.rem_euclid(e.len());
            if car == 2 && s > e.len() * 1.5 && ls > e.len() - 300.0 && ls < e.len() - 100.0 {
                let q = e.at(s + 1.0);
                let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
                let n = dx.hypot(dy);
                p = [p[0] + 25.0 * dy / n, p[1] - 25.0 * dx / n];
            }
            samples.push(TrackSample {
                ts_ms: k * 250,
                car,
                x_m: p[0],
                y_m: p[1],
            });
        }
    }
    let m = TrackModel::from_samples(&samples, TrackConfig::default()).unwrap();
    let pits = m.pit_entries();
    assert_eq!(pits.len(), 1, "{pits:?}");
    assert_eq!((pits[0].car, pits[0].lap), (2, 2));
    assert!(!m.snapshot().iter().any(|s| s.in_pit));
}

#[test]
fn out_of_order_sample_is_refused() {
    let (_, samples) = synth(&[(1, 0.0, 50.0, 1e9)], 120.0);
    let mut m = TrackModel::new(
        ReferenceLine::from_samples(&samples).unwrap(),
        TrackConfig::default(),
    );
    m.push(&samples[10]).unwrap();
    assert!(m.push(&samples[5]).is_err());
}

// ---------------------------------------------------------------------------
// Real data: 2024 Austrian GP.
// ---------------------------------------------------------------------------

fn austria() -> Option<(PathBuf, Vec<TrackSample>)> {
    let dir = crate::data_dir()?.join("f1/2024_austria_race");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("location"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut v: Vec<TrackSample> = files
        .iter()
        .flat_map(|f| read_location(f).unwrap())
        .map(|s| TrackSample::from_openf1(&s))
        .collect();
    v.sort_by_key(|s| (s.ts_ms, s.car));
    Some((dir, v))
}

const FLAG_MS: i64 = 1_719_757_645_000; // 2024-06-30T14:27:25Z, race_control CHEQUERED FLAG

type Snapshots = Vec<(i64, Vec<CarTrackState>)>;

/// Runs the race; returns the model after it, the snapshot 2 min after the flag, and
/// a (time, snapshot) at every sample time (4 Hz).
fn run_austria(samples: &[TrackSample]) -> (TrackModel, Vec<CarTrackState>, Snapshots) {
    let line = ReferenceLine::from_samples(samples).unwrap();
    let mut m = TrackModel::new(line, TrackConfig::default());
    let mut at_flag = None;
    let mut every = Vec::new();
    for s in samples {
        if at_flag.is_none() && s.ts_ms > FLAG_MS + 120_000 {
            at_flag = Some(m.snapshot());
        }
        if m.now_ms() < s.ts_ms && m.now_ms() > 0 {
            every.push((m.now_ms(), m.snapshot()));
        }
        m.push(s).unwrap();
    }
    (m, at_flag.unwrap(), every)
}

#[test]
fn austria_release_timing() {
    let Some((_, samples)) = austria() else {
        return;
    };
    let t0 = std::time::Instant::now();
    let line = ReferenceLine::from_samples(&samples).unwrap();
    let t1 = std::time::Instant::now();
    let mut m = TrackModel::new(line, TrackConfig::default());
    for s in &samples {
        m.push(s).unwrap();
    }
    let snap = m.snapshot();
    println!(
        "line {:?}, {} samples {:?}, {} cars",
        t1 - t0,
        samples.len(),
        t1.elapsed(),
        snap.len()
    );
}

#[test]
fn austria_laps_pits_overtakes() {
    austria_check(false);
}

#[test]
fn austria_order_at_flag() {
    austria_check(true);
}

fn austria_check(assert_order: bool) {
    let Some((dir, samples)) = austria() else {
        return;
    };
    assert_eq!(samples.len(), 419_520);
    let (m, flag, every) = run_austria(&samples);
    println!(
        "line length {:.1} m, start/finish at s = {:?}",
        m.line().length(),
        m.start_finish_s()
    );
    for s in &flag {
        println!(
            "P{:>2} #{:>2} laps {:>2} dist {:>9.1} gap {:>8.3?} int {:>8.3?} pit {} stopped {}",
            s.position,
            s.car,
            s.laps_completed,
            s.total_distance_m,
            s.gap_to_leader_s,
            s.interval_s,
            s.in_pit,
            s.stopped
        );
    }
    // Winner's lap count at the flag.
    let winner = flag.iter().find(|s| s.car == 63).unwrap();
    assert_eq!(winner.laps_completed, 71);
    // Classification: crossings after the flag plus unserved time penalties.
    let penalties: Vec<_> = read_race_control(dir.join("openf1_race_control.csv"))
        .unwrap()
        .iter()
        .filter_map(|m| m.time_penalty())
        .collect();
    assert_eq!(penalties.len(), 6);
    let classified = classify(&m, FLAG_MS, &penalties).unwrap();
    let derived_pos = |car: u32| {
        classified
            .iter()
            .find(|c| c.car == car)
            .map_or(0, |c| c.position)
    };
    let result = read_session_result(dir.join("openf1_session_result.csv")).unwrap();
    let mut wrong = Vec::new();
    let mut n = 0;
    for r in result.iter().filter(|r| !r.dnf && !r.dns && !r.dsq) {
        let Some(p) = r.position else { continue };
        n += 1;
        let got = derived_pos(r.driver_number);
        let laps = classified
            .iter()
            .find(|c| c.car == r.driver_number)
            .unwrap()
            .laps;
        assert_eq!(Some(laps), r.number_of_laps, "laps of #{}", r.driver_number);
        if got != p {
            wrong.push((r.driver_number, p, got));
        }
    }
    println!(
        "order at flag: {} of {n} classified match; wrong (car, official, derived): {wrong:?}",
        n - wrong.len()
    );

    if assert_order {
        assert!(wrong.is_empty(), "order mismatches {wrong:?}");
        return;
    }
    // Pit stops.
    let official = read_pit(dir.join("openf1_pit.csv")).unwrap();
    let derived: Vec<PitEntry> = m
        .pit_entries()
        .iter()
        .copied()
        .filter(|p| p.ts_ms <= FLAG_MS)
        .collect();
    let mut used = vec![false; derived.len()];
    let mut matched = 0;
    for o in &official {
        let lap = o.lap_number.unwrap_or(0) as i64;
        if let Some(i) = (0..derived.len()).find(|&i| {
            !used[i]
                && derived[i].car == o.driver_number
                && (derived[i].lap as i64 - lap).abs() <= 1
        }) {
            used[i] = true;
            matched += 1;
        } else {
            println!("unmatched official pit: car {} lap {lap}", o.driver_number);
        }
    }
    let extra: Vec<&PitEntry> = derived
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(p, _)| p)
        .collect();
    println!(
        "pits: {matched}/{} official matched, {} derived, extra {extra:?}",
        official.len(),
        derived.len()
    );

    // Overtakes: on-track passes (the timing feed's position changes, minus those
    // caused by a pit stop) must show up as a sign change of the pair's derived gap.
    // The feed times a pass at the next timing loop, so allow ±15 s. A pass re-passed
    // within 10 s may be invisible in the positions: they come at ~4 Hz, and a car
    // covers ~20 m between two samples at speed. Then the cars must stay within
    // 25 m (one sample's travel) of each other between the pass and the re-pass.
    let overtakes = read_overtakes(dir.join("openf1_overtakes.csv")).unwrap();
    let range = |from: i64, to: i64| {
        every.partition_point(|(ts, _)| *ts < from)..every.partition_point(|(ts, _)| *ts <= to)
    };
    let state = |i: usize, car: u32| every[i].1.iter().find(|s| s.car == car);
    let ahead_m = |i: usize, a: u32, b: u32| -> Option<f64> {
        Some(state(i, a)?.total_distance_m - state(i, b)?.total_distance_m)
    };
    let (mut crossed, mut side_by_side, mut pit_related) = (0, 0, 0);
    let mut missed = Vec::new();
    for o in &overtakes {
        let (a, b) = (o.overtaking_driver_number, o.overtaken_driver_number);
        if range(o.ts - 30_000, o.ts + 30_000).any(|i| {
            [a, b]
                .iter()
                .any(|&c| state(i, c).is_some_and(|s| s.in_pit || s.stopped))
        }) {
            pit_related += 1;
            continue;
        }
        let d: Vec<f64> = range(o.ts - 15_000, o.ts + 15_000)
            .filter_map(|i| ahead_m(i, a, b))
            .collect();
        if d.windows(2).any(|w| w[0] <= 0.0 && w[1] > 0.0) {
            crossed += 1;
            continue;
        }
        let repass = overtakes.iter().find(|r| {
            r.overtaking_driver_number == b
                && r.overtaken_driver_number == a
                && (r.ts - o.ts).abs() <= 10_000
        });
        let close = repass.is_some_and(|r| {
            range(o.ts.min(r.ts), o.ts.max(r.ts))
                .filter_map(|i| ahead_m(i, a, b))
                .all(|d| d.abs() <= 25.0)
        });
        if close {
            side_by_side += 1;
        } else {
            missed.push((o.ts, a, b));
        }
    }
    println!(
        "overtakes: {} in the table, {pit_related} pit-related; of the on-track ones \
         {crossed} change the gap's sign within ±15 s, {side_by_side} are passes re-passed \
         side by side, missed {missed:?}",
        overtakes.len()
    );

    assert!(
        matched as f64 >= 0.9 * official.len() as f64,
        "pits matched {matched}/{}",
        official.len()
    );
    assert!(
        extra.len() as f64 <= 0.1 * official.len() as f64,
        "extra pits {extra:?}"
    );
    assert!(
        missed.is_empty(),
        "overtakes not seen in the derived gaps: {missed:?}"
    );
    assert!(crossed >= 80, "only {crossed} on-track overtakes");
}

/// 2025 Mexico City qualifying (live timing): lap times from the positions alone,
/// once the start line is placed, agree with `TimingData` within 0.2 s.
#[test]
fn mexico_qualifying_lap_times_from_positions() {
    let Some(data) = crate::data_dir() else {
        return;
    };
    let dir = data.join("f1/2025_mexico_city_qualifying");
    let samples = crate::livetiming::read_position_samples(&dir).unwrap();
    let session = crate::livetiming::read_session(&dir).unwrap();
    let line = ReferenceLine::from_samples(&samples).unwrap();
    println!("line length {:.1} m", line.length());
    // The official lap is 4.304 km; the line runs ~on the racing line.
    assert!(
        (4200.0..4400.0).contains(&line.length()),
        "{}",
        line.length()
    );
    let crossings: Vec<(u32, i64)> = session
        .laps
        .iter()
        .filter_map(|l| Some((l.car.parse().ok()?, l.ts)))
        .collect();
    let timed: Vec<(u32, i64, i64)> = session
        .laps
        .iter()
        .filter(|l| l.timed)
        .filter_map(|l| Some((l.car.parse().ok()?, l.ts, l.lap_time_ms)))
        .collect();
    let (sf, latency_ms) = line
        .start_line_from_crossings(&samples, &crossings)
        .unwrap();
    println!("start line at s = {sf:.1} m, feed latency {latency_ms:.0} ms");
    let mut m = TrackModel::with_start_line(line, TrackConfig::default(), sf);
    for s in &samples {
        m.push(s).unwrap();
    }
    let cars: BTreeSet<u32> = samples.iter().map(|s| s.car).collect();
    assert_eq!(cars.len(), 20);
    // Every line crossing of every car, then each timed lap matched to the crossing
    // nearest to its publication (the feed publishes a lap within ~1 s of its end).
    let crossing_times =
        |car: u32| -> Vec<i64> { (1..).map_while(|n| m.crossing_time_ms(car, n)).collect() };
    let all: BTreeMap<u32, Vec<i64>> = cars.iter().map(|&c| (c, crossing_times(c))).collect();
    let (mut within, mut n) = (0, 0);
    let mut errors = Vec::new();
    for &(car, ts, lap_ms) in &timed {
        n += 1;
        let c = &all[&car];
        let Some(k) = (1..c.len()).min_by_key(|&k| (c[k] - ts).abs()) else {
            continue;
        };
        if (c[k] - ts).abs() > 5_000 {
            println!("#{car}: no line crossing within 5 s of the lap published at {ts}");
            continue;
        }
        let derived = c[k] - c[k - 1];
        let err = (derived - lap_ms).abs();

        errors.push(err);
        if err <= 200 {
            within += 1;
        }
    }
    errors.sort_unstable();
    println!(
        "start line at s = {sf:.0} m; {within}/{n} timed laps within 0.2 s; median error {} ms, p90 {} ms",
        errors[errors.len() / 2],
        errors[errors.len() * 9 / 10]
    );
    assert!(n >= 80, "only {n} timed laps");
    assert!(
        within as f64 >= 0.9 * n as f64,
        "{within}/{n} laps within 0.2 s"
    );
}
