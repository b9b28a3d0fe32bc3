//! The track model: from raw position samples to race state, for any circuit.
//!
//! What flows in: position samples [`TrackSample`] `(ts_ms, car, x_m, y_m)` in event-time
//! order (ties in any order; OpenF1 `/location` gives x/y in 1/10 m, see
//! [`TrackSample::from_openf1`]). Nothing else — no track map, no timing feed.
//!
//! What flows out: per car a [`CarTrackState`] (lap, distance along the lap and in the
//! race, speed, race order, gap to the leader and interval to the car ahead *in
//! seconds*, pit-lane and stopped flags) from [`TrackModel::snapshot`], and the derived
//! pit-lane entries ([`TrackModel::pit_entries`]).
//!
//! # Algorithm
//!
//! 1. **Reference line** ([`ReferenceLine::from_samples`]): for every car, the first
//!    closed loop of its path (from where it starts moving until it comes back within
//!    25 m of that point after ≥ 1 km) is a candidate; the candidate of median length is
//!    resampled to fixed spacing (5 m) and lightly smoothed into a closed polyline, in
//!    the direction of travel. The median makes it robust to a car whose first loop
//!    went through the pit lane. A deployment that cannot wait for the first lap
//!    builds the line once (e.g. from practice) and reuses it.
//! 2. **Projection**: each sample is projected onto the polyline (nearest segment,
//!    searched in a window around the car's previous projection, global search as
//!    fallback) → raw arc length `s` and lateral distance.
//! 3. **Unwrapping**: the wrapped change of `s` is added to the car's total distance;
//!    implausible jumps (faster than 120 m/s) are rejected for a few samples; a car
//!    that has not moved 2 m is held (no noise-driven distance).
//! 4. **Start line and race start**: while no car has covered 1.5 laps since the last
//!    reset, a *grid* (≥ 75 % of the cars standing still for ≥ 5 s on the racing line)
//!    resets the count: the start/finish point becomes the front-most standing car
//!    (pole) and every car's total distance becomes its signed distance to it. This
//!    makes the formation lap not count (the grid is seen before and after it) and
//!    never fires in the race (red-flag stops happen after the leader has done more
//!    than 1.5 laps). A session without a grid (qualifying, practice) takes the
//!    line from the timing feed's lap publications
//!    ([`ReferenceLine::start_line_from_crossings`], [`TrackModel::with_start_line`]);
//!    with neither, laps count from each car's first sample.
//! 5. **Laps**: completed laps = ⌊max total distance / L⌋ (monotone, so noise at the
//!    line cannot count a lap twice).
//! 6. **Speed**: along-line distance over the last ≈ 1 s.
//! 7. **Order**: moving cars by total distance, then stopped cars (standing ≥ 60 s) by
//!    total distance.
//! 8. **Gaps**: each car keeps the times at which it first reached each total distance
//!    (one entry per sample, monotone). The gap of B to A is `now − t_A(d_B)`, where
//!    `t_A(d)` is interpolated — the time difference at the same track point, exact for
//!    lapped cars too (then more than a lap time).
//! 9. **Pit lane**: more than 10 m off the line for 3 samples (within 1 km of the
//!    start/finish point once it is known) enters; under 6 m for 3 samples leaves.
//!
//! Everything is a pure function of the input sequence: deterministic, event-time,
//! streaming (O(log n) per gap query, O(window) per sample).

use std::collections::BTreeMap;

use crate::openf1::LocationSample;

/// One position sample: a car at a point at an event time, in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackSample {
    /// Event time in ms since the Unix epoch.
    pub ts_ms: i64,
    pub car: u32,
    pub x_m: f64,
    pub y_m: f64,
}

impl TrackSample {
    /// From an OpenF1 `/location` sample (x, y in 1/10 m).
    pub fn from_openf1(s: &LocationSample) -> Self {
        TrackSample {
            ts_ms: s.ts,
            car: s.driver_number,
            x_m: s.x / 10.0,
            y_m: s.y / 10.0,
        }
    }
}

/// Tunables of the [`TrackModel`]. The defaults suit F1 data at ≈ 4 Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    /// Lateral distance (m) above which a sample counts as off the racing line (pit).
    pub pit_enter_m: f64,
    /// Lateral distance (m) under which a pit-lane car counts as back on the line.
    pub pit_exit_m: f64,
    /// Consecutive samples needed to change the pit state (hysteresis).
    pub pit_samples: u32,
    /// Pit lane only within this distance (m) of the start/finish point, once known.
    pub pit_window_m: f64,
    /// A car standing still this long (ms) is `stopped` and drops behind moving cars.
    pub stopped_after_ms: i64,
    /// Window (ms) of the derived speed.
    pub speed_window_ms: i64,
    /// Fraction of cars that must stand still to recognise a grid.
    pub grid_fraction: f64,
    /// How long (ms) they must stand still.
    pub grid_still_ms: i64,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            pit_enter_m: 10.0,
            pit_exit_m: 6.0,
            pit_samples: 3,
            pit_window_m: 1000.0,
            stopped_after_ms: 60_000,
            speed_window_ms: 1000,
            grid_fraction: 0.75,
            grid_still_ms: 5000,
        }
    }
}

/// A closed polyline along the circuit, built from the data, in the direction of travel.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceLine {
    pts: Vec<[f64; 2]>,
    /// Arc length at each point; `cum[n]` = length.
    cum: Vec<f64>,
}

/// Spacing (m) of the resampled reference line.
const SPACING_M: f64 = 5.0;
/// A loop must be at least this long (m).
const MIN_LOOP_M: f64 = 1000.0;
/// Travel (m) after which the second reference-line candidate of a car starts.
const LATE_START_M: f64 = 2000.0;
/// A loop closes when the car comes back this close (m) to its starting point.
const CLOSE_M: f64 = 25.0;
/// Fastest plausible car (m/s), for rejecting jumps.
const VMAX: f64 = 120.0;
/// A car that moved less than this (m) is standing still.
const STILL_M: f64 = 2.0;

impl ReferenceLine {
    /// The reference line from the first closed loop of each car's path (samples in
    /// time order, any mix of cars); the median-length loop wins. `None` when no car
    /// completed a loop.
    pub fn from_samples(samples: &[TrackSample]) -> Option<Self> {
        let mut paths: BTreeMap<u32, Vec<[f64; 2]>> = BTreeMap::new();
        for s in samples {
            paths.entry(s.car).or_default().push([s.x_m, s.y_m]);
        }
        // Two candidates per car: from where it starts, and from 2 km on. A race car's
        // first loop starts on the grid; a qualifying car's starts in the pit lane and
        // would only close when it comes back in, several laps later, while its loop
        // from 2 km on lies on the circuit. The median sorts them out.
        let mut loops: Vec<Vec<[f64; 2]>> = paths
            .values()
            .flat_map(|p| [first_loop(p, 0.0), first_loop(p, LATE_START_M)])
            .flatten()
            .collect();
        if loops.is_empty() {
            return None;
        }
        loops.sort_by(|a, b| path_len(a).total_cmp(&path_len(b)));
        let mid = loops.len() / 2;
        Self::from_loop(&loops[mid])
    }

    /// The reference line from one closed path (last point near the first), in the
    /// direction of travel: resampled every 5 m and smoothed (±2 points).
    pub fn from_loop(path: &[[f64; 2]]) -> Option<Self> {
        let len = path_len(path) + dist(path[path.len() - 1], path[0]);
        if path.len() < 4 || len < 10.0 * SPACING_M {
            return None;
        }
        let n = (len / SPACING_M).round() as usize;
        let step = len / n as f64;
        let mut closed: Vec<[f64; 2]> = path.to_vec();
        closed.push(path[0]);
        let mut raw = Vec::with_capacity(n);
        let (mut i, mut acc) = (0usize, 0.0f64);
        for k in 0..n {
            let target = k as f64 * step;
            while i + 1 < closed.len() - 1 && acc + dist(closed[i], closed[i + 1]) < target {
                acc += dist(closed[i], closed[i + 1]);
                i += 1;
            }
            let seg = dist(closed[i], closed[i + 1]);
            let t = if seg > 0.0 {
                ((target - acc) / seg).clamp(0.0, 1.0)
            } else {
                0.0
            };
            raw.push(lerp(closed[i], closed[i + 1], t));
        }
        let pts: Vec<[f64; 2]> = (0..n)
            .map(|k| {
                let mut p = [0.0, 0.0];
                for d in 0..5 {
                    let q = raw[(k + n + d - 2) % n];
                    p[0] += q[0] / 5.0;
                    p[1] += q[1] / 5.0;
                }
                p
            })
            .collect();
        let mut cum = Vec::with_capacity(n + 1);
        cum.push(0.0);
        for k in 0..n {
            let c = cum[k] + dist(pts[k], pts[(k + 1) % n]);
            cum.push(c);
        }
        Some(ReferenceLine { pts, cum })
    }

    /// Arc length of the point of the line nearest to `(x_m, y_m)`.
    pub fn arc_length_at(&self, x_m: f64, y_m: f64) -> f64 {
        self.project([x_m, y_m], None).1
    }

    /// Where the start/finish line is, from the times a timing feed says cars
    /// crossed it (`(car, ts_ms)`), for a session without a grid (qualifying,
    /// practice), whose positions alone do not say where a lap begins.
    ///
    /// A feed publishes a crossing some latency `τ` after it happened, so at the
    /// publication a car is `v·τ` past the line. Each crossing gives the car's arc
    /// length `s` and speed `v` there (positions interpolated between samples);
    /// fitting `s = s_line + τ·v` over all crossings (least squares, then again
    /// without the residuals beyond 3 median deviations) gives the line and the
    /// latency — a fast car and a slow one would otherwise place it tens of metres
    /// apart. Returns `(s_line, τ in ms)`; `None` when fewer than 3 crossings fall
    /// between two samples of their car.
    pub fn start_line_from_crossings(
        &self,
        samples: &[TrackSample],
        crossings: &[(u32, i64)],
    ) -> Option<(f64, f64)> {
        let mut by_car: BTreeMap<u32, Vec<&TrackSample>> = BTreeMap::new();
        for s in samples {
            by_car.entry(s.car).or_default().push(s);
        }
        // (arc length, speed m/s) at each publication.
        let at: Vec<(f64, f64)> = crossings
            .iter()
            .filter_map(|&(car, ts)| {
                let v = by_car.get(&car)?;
                let i = v.partition_point(|s| s.ts_ms <= ts);
                let (a, b) = (v.get(i.checked_sub(1)?)?, v.get(i)?);
                let dt_ms = (b.ts_ms - a.ts_ms).max(1) as f64;
                let t = (ts - a.ts_ms) as f64 / dt_ms;
                let (pa, pb) = ([a.x_m, a.y_m], [b.x_m, b.y_m]);
                let s = self.project(lerp(pa, pb, t), None).1;
                Some((s, dist(pa, pb) / (dt_ms / 1000.0)))
            })
            .collect();
        if at.len() < 3 {
            return None;
        }
        // Offsets relative to the median position, so the fit never wraps.
        let r = at[0].0;
        let mut off: Vec<f64> = at.iter().map(|(s, _)| self.wrap(s - r)).collect();
        let mut sorted = off.clone();
        sorted.sort_by(f64::total_cmp);
        let centre = r + sorted[sorted.len() / 2];
        for (o, (s, _)) in off.iter_mut().zip(&at) {
            *o = self.wrap(s - centre);
        }
        let points: Vec<(f64, f64)> = at.iter().zip(&off).map(|((_, v), o)| (*v, *o)).collect();
        let (a, tau) = fit_line(&points)?;
        let mut dev: Vec<f64> = points
            .iter()
            .map(|(v, o)| (o - a - tau * v).abs())
            .collect();
        dev.sort_by(f64::total_cmp);
        let mad = dev[dev.len() / 2].max(1.0);
        let kept: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(v, o)| (o - a - tau * v).abs() <= 3.0 * mad)
            .collect();
        let (a, tau) = fit_line(&kept).unwrap_or((a, tau));
        Some(((centre + a).rem_euclid(self.length()), tau * 1000.0))
    }

    /// Lap length (m).
    pub fn length(&self) -> f64 {
        self.cum[self.pts.len()]
    }

    /// The polyline's points (closed: the last joins the first).
    pub fn points(&self) -> &[[f64; 2]] {
        &self.pts
    }

    /// Projects `p` on segment `i` → (arc length, distance).
    fn project_seg(&self, i: usize, p: [f64; 2]) -> (f64, f64) {
        let n = self.pts.len();
        let a = self.pts[i];
        let b = self.pts[(i + 1) % n];
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let l2 = dx * dx + dy * dy;
        let t = if l2 > 0.0 {
            (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let q = [a[0] + t * dx, a[1] + t * dy];
        (
            self.cum[i] + t * (self.cum[i + 1] - self.cum[i]),
            dist(p, q),
        )
    }

    /// Nearest point of the line to `p`: (segment, arc length, lateral distance),
    /// searched from `hint` (−back..+ahead segments) when given, globally otherwise or
    /// when the window's best is farther than `fallback_m`.
    fn project(&self, p: [f64; 2], hint: Option<usize>) -> (usize, f64, f64) {
        let n = self.pts.len();
        let mut best = (0usize, 0.0f64, f64::INFINITY);
        let scan = |i: usize, best: &mut (usize, f64, f64)| {
            let (s, d) = self.project_seg(i, p);
            if d < best.2 {
                *best = (i, s, d);
            }
        };
        if let Some(h) = hint {
            let (back, ahead) = (10usize, 50usize);
            for k in 0..=(back + ahead).min(n - 1) {
                scan((h + n - back.min(n - 1) + k) % n, &mut best);
            }
            if best.2 <= 8.0 {
                return best;
            }
        }
        for i in 0..n {
            scan(i, &mut best);
        }
        best
    }

    /// Wraps an arc-length difference into [−L/2, L/2).
    fn wrap(&self, d: f64) -> f64 {
        let l = self.length();
        (d + l / 2.0).rem_euclid(l) - l / 2.0
    }
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

fn lerp(a: [f64; 2], b: [f64; 2], t: f64) -> [f64; 2] {
    [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
}

/// Least-squares `y = a + b·x` over `(x, y)`; `None` without spread in `x`.
fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in points {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    if sxx <= f64::EPSILON * n {
        return None;
    }
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

fn path_len(p: &[[f64; 2]]) -> f64 {
    p.windows(2).map(|w| dist(w[0], w[1])).sum()
}

/// The first closed loop of a path that starts after `skip_m` of travel: from where
/// it first moves, until it is back within [`CLOSE_M`] of that point after
/// ≥ [`MIN_LOOP_M`] (the closest such point).
fn first_loop(p: &[[f64; 2]], skip_m: f64) -> Option<Vec<[f64; 2]>> {
    let mut travelled = 0.0;
    let from = (1..p.len())
        .find(|&i| {
            travelled += dist(p[i - 1], p[i]);
            travelled >= skip_m
        })
        .unwrap_or(0);
    let p = &p[from..];
    let start = p.iter().position(|q| dist(*q, p[0]) > 5.0)?;
    let a = p[start];
    let mut travelled = 0.0;
    let mut end: Option<usize> = None;
    for j in start + 1..p.len() {
        travelled += dist(p[j - 1], p[j]);
        if travelled < MIN_LOOP_M {
            continue;
        }
        let d = dist(p[j], a);
        match end {
            None if d < CLOSE_M => end = Some(j),
            Some(e) if d < dist(p[e], a) => end = Some(j),
            Some(_) if d > CLOSE_M => break,
            _ => {}
        }
    }
    let end = end?;
    // Drop repeated points (a car standing still) so resampling is clean.
    let mut out: Vec<[f64; 2]> = Vec::with_capacity(end - start);
    for q in &p[start..end] {
        if out.last().is_none_or(|l| dist(*l, *q) > 0.01) {
            out.push(*q);
        }
    }
    Some(out)
}

/// A derived entry into the pit lane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PitEntry {
    pub car: u32,
    pub ts_ms: i64,
    /// The lap the car was on (1-based) when it entered.
    pub lap: u32,
}

/// One car's derived state at the model's current time (see [`TrackModel::snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CarTrackState {
    pub car: u32,
    /// Time of the car's latest sample (ms).
    pub ts_ms: i64,
    /// Current lap, 1-based (laps completed + 1).
    pub lap: u32,
    /// Laps completed since the race start (crossings of the start/finish point).
    pub laps_completed: u32,
    /// Distance past the start/finish point along the reference line (m), in [0, L).
    pub lap_distance_m: f64,
    /// Distance since the race start (m); negative on the grid behind the line.
    pub total_distance_m: f64,
    /// Derived speed along the line over the last second (km/h).
    pub speed_kmh: f64,
    /// Distance from the reference line (m).
    pub lateral_m: f64,
    /// Race order, 1-based (moving cars first).
    pub position: u32,
    /// Seconds since the leader was at this car's total distance; `None` for the leader.
    pub gap_to_leader_s: Option<f64>,
    /// Seconds since the car ahead (in `position`) was at this car's total distance.
    pub interval_s: Option<f64>,
    pub in_pit: bool,
    /// Duration of the car's last completed lap (s), from its line crossings;
    /// `None` before it completed two.
    pub last_lap_s: Option<f64>,
    /// Standing still for this long (s).
    pub stationary_s: f64,
    /// Standing still for at least [`TrackConfig::stopped_after_ms`] (retired or parked).
    pub stopped: bool,
}

#[derive(Debug, Clone)]
struct Car {
    car: u32,
    seg: usize,
    s_raw: f64,
    lateral: f64,
    total: f64,
    best: f64,
    ts: i64,
    anchor: [f64; 2],
    anchor_ts: i64,
    rejected: u32,
    in_pit: bool,
    pit_count: u32,
    /// (total distance, ts) at each new maximum since the last reset.
    hist: Vec<(f64, i64)>,
    /// Recent (ts, total) for the speed.
    recent: std::collections::VecDeque<(i64, f64)>,
}

/// The streaming track model (see the module docs). Feed samples in time order with
/// [`TrackModel::push`]; read [`TrackModel::snapshot`] whenever wanted.
#[derive(Debug, Clone)]
pub struct TrackModel {
    line: ReferenceLine,
    cfg: TrackConfig,
    /// Arc length of the start/finish point on the line, once a grid was seen.
    origin: Option<f64>,
    cars: BTreeMap<u32, Car>,
    now: i64,
    pits: Vec<PitEntry>,
    /// Set once a car covered 1.5 laps since the last reset: no more grid resets.
    race_locked: bool,
    /// Model time of the last grid reset: the cars stood there until the start.
    last_grid_ms: Option<i64>,
}

/// A sample older than the model's current time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("sample at {ts_ms} ms is older than the model time {now_ms} ms")]
pub struct OutOfOrder {
    pub ts_ms: i64,
    pub now_ms: i64,
}

impl TrackModel {
    pub fn new(line: ReferenceLine, cfg: TrackConfig) -> Self {
        TrackModel {
            line,
            cfg,
            origin: None,
            cars: BTreeMap::new(),
            now: i64::MIN,
            pits: Vec::new(),
            race_locked: false,
            last_grid_ms: None,
        }
    }

    /// A model whose start/finish point is known (arc length `start_finish_s` on
    /// `line`), e.g. a qualifying session, which has no grid to find it from. Laps
    /// count from the first crossing of that point; grid detection is off.
    pub fn with_start_line(line: ReferenceLine, cfg: TrackConfig, start_finish_s: f64) -> Self {
        let l = line.length();
        let mut m = TrackModel::new(line, cfg);
        m.origin = Some(start_finish_s.rem_euclid(l));
        m.race_locked = true;
        m
    }

    /// Builds the line from `samples` ([`ReferenceLine::from_samples`]) and runs them all.
    pub fn from_samples(samples: &[TrackSample], cfg: TrackConfig) -> Option<Self> {
        let line = ReferenceLine::from_samples(samples)?;
        let mut m = TrackModel::new(line, cfg);
        for s in samples {
            m.push(s).ok()?;
        }
        Some(m)
    }

    pub fn line(&self) -> &ReferenceLine {
        &self.line
    }

    /// Arc length of the start/finish point on the reference line, once known.
    pub fn start_finish_s(&self) -> Option<f64> {
        self.origin
    }

    /// The model's current time (latest sample), ms.
    pub fn now_ms(&self) -> i64 {
        self.now
    }

    /// When `car` completed lap `laps` (crossed the start/finish point for the
    /// `laps`-th time since the race start), interpolated between samples; `None` if
    /// it has not (yet).
    pub fn crossing_time_ms(&self, car: u32, laps: u32) -> Option<i64> {
        let c = self.cars.get(&car)?;
        time_at(&c.hist, laps as f64 * self.line.length())
    }

    /// Whether the race is under way: the leader covered 1.5 laps since the last
    /// grid (or the start line was given, [`TrackModel::with_start_line`]). Before
    /// that, laps may still be formation laps.
    pub fn race_under_way(&self) -> bool {
        self.race_locked
    }

    /// When the race started, once that is certain ([`race_under_way`](Self::race_under_way)):
    /// the last moment the cars were seen standing on the grid (within the
    /// grid detection's few seconds of the lights going out). `None` before
    /// that, and for a model without a grid.
    pub fn race_start_ms(&self) -> Option<i64> {
        self.last_grid_ms.filter(|_| self.race_locked)
    }

    /// Derived pit-lane entries so far, in time order.
    pub fn pit_entries(&self) -> &[PitEntry] {
        &self.pits
    }

    /// Feeds one sample (time order; equal times in any order).
    pub fn push(&mut self, s: &TrackSample) -> Result<(), OutOfOrder> {
        if s.ts_ms < self.now {
            return Err(OutOfOrder {
                ts_ms: s.ts_ms,
                now_ms: self.now,
            });
        }
        self.now = s.ts_ms;
        let p = [s.x_m, s.y_m];
        let cfg = &self.cfg;
        let line = &self.line;
        let l = line.length();
        let origin = self.origin;
        let car = match self.cars.get_mut(&s.car) {
            Some(c) => c,
            None => {
                let (seg, s_raw, lat) = line.project(p, None);
                let total = origin.map_or(0.0, |o| line.wrap(s_raw - o));
                self.cars.insert(
                    s.car,
                    Car {
                        car: s.car,
                        seg,
                        s_raw,
                        lateral: lat,
                        total,
                        best: total,
                        ts: s.ts_ms,
                        anchor: p,
                        anchor_ts: s.ts_ms,
                        rejected: 0,
                        in_pit: false,
                        pit_count: 0,
                        hist: vec![(total, s.ts_ms)],
                        recent: [(s.ts_ms, total)].into(),
                    },
                );
                return Ok(());
            }
        };
        let dt = (s.ts_ms - car.ts).max(0) as f64 / 1000.0;
        car.ts = s.ts_ms;
        if dist(p, car.anchor) > STILL_M {
            car.anchor = p;
            car.anchor_ts = s.ts_ms;
            let (seg, s_raw, lat) = line.project(p, Some(car.seg));
            let ds = line.wrap(s_raw - car.s_raw);
            if ds.abs() > VMAX * dt + 30.0 && car.rejected < 8 {
                car.rejected += 1;
            } else {
                car.rejected = 0;
                car.seg = seg;
                car.s_raw = s_raw;
                car.lateral = lat;
                car.total += ds;
            }
        }
        if car.total > car.best {
            car.best = car.total;
            car.hist.push((car.total, s.ts_ms));
        }
        car.recent.push_back((s.ts_ms, car.total));
        while car.recent.len() > 2 && s.ts_ms - car.recent[1].0 >= cfg.speed_window_ms {
            car.recent.pop_front();
        }
        // Pit lane with hysteresis.
        let near_sf = origin.is_none_or(|o| line.wrap(car.s_raw - o).abs() <= cfg.pit_window_m);
        let want = if car.in_pit {
            car.lateral >= cfg.pit_exit_m
        } else {
            car.lateral > cfg.pit_enter_m && near_sf
        };
        if want != car.in_pit {
            car.pit_count += 1;
            if car.pit_count >= cfg.pit_samples {
                car.in_pit = want;
                car.pit_count = 0;
                if want {
                    self.pits.push(PitEntry {
                        car: car.car,
                        ts_ms: s.ts_ms,
                        lap: laps_of(car.best, l) + 1,
                    });
                }
            }
        } else {
            car.pit_count = 0;
        }
        if !self.race_locked {
            self.check_grid();
        }
        Ok(())
    }

    /// Grid detection (module docs, step 4).
    fn check_grid(&mut self) {
        let l = self.line.length();
        if self.cars.values().any(|c| c.best > 1.5 * l) {
            self.race_locked = true;
            return;
        }
        let now = self.now;
        let still: Vec<&Car> = self
            .cars
            .values()
            .filter(|c| {
                now - c.anchor_ts >= self.cfg.grid_still_ms && c.lateral <= self.cfg.pit_enter_m
            })
            .collect();
        if self.cars.len() < 2
            || (still.len() as f64) < self.cfg.grid_fraction * self.cars.len() as f64
        {
            return;
        }
        // Pole: the standing car farthest ahead of the cluster (relative to the first).
        let r = still[0].s_raw;
        let pole = still
            .iter()
            .map(|c| self.line.wrap(c.s_raw - r))
            .fold(f64::NEG_INFINITY, f64::max);
        let origin = (r + pole).rem_euclid(l);
        self.origin = Some(origin);
        self.last_grid_ms = Some(now);
        for c in self.cars.values_mut() {
            let t = self.line.wrap(c.s_raw - origin);
            c.total = t;
            c.best = t;
            c.hist.clear();
            c.hist.push((t, c.ts));
            c.recent.clear();
            c.recent.push_back((c.ts, t));
        }
    }

    /// The state of every car at the model's current time, in race order.
    pub fn snapshot(&self) -> Vec<CarTrackState> {
        let l = self.line.length();
        let stopped = |c: &Car| self.now - c.anchor_ts >= self.cfg.stopped_after_ms;
        let mut order: Vec<&Car> = self.cars.values().collect();
        order.sort_by(|a, b| {
            stopped(a)
                .cmp(&stopped(b))
                .then(b.best.total_cmp(&a.best))
                .then(a.car.cmp(&b.car))
        });
        let leader = order.first().copied();
        let mut out = Vec::with_capacity(order.len());
        for (i, c) in order.iter().enumerate() {
            let gap = |ahead: &Car| -> Option<f64> {
                time_at(&ahead.hist, c.best).map(|t| (c.ts - t) as f64 / 1000.0)
            };
            let gap_to_leader_s = match leader {
                Some(ld) if i > 0 => gap(ld),
                _ => None,
            };
            let interval_s = if i > 0 { gap(order[i - 1]) } else { None };
            let speed_kmh = match (c.recent.front(), c.recent.back()) {
                (Some(a), Some(b)) if b.0 > a.0 => {
                    (b.1 - a.1) / ((b.0 - a.0) as f64 / 1000.0) * 3.6
                }
                _ => 0.0,
            };
            let done = laps_of(c.best, l);
            let last_lap_s = match done {
                0 | 1 => None,
                n => {
                    let a = time_at(&c.hist, f64::from(n - 1) * l);
                    let b = time_at(&c.hist, f64::from(n) * l);
                    a.zip(b).map(|(a, b)| (b - a) as f64 / 1000.0)
                }
            };
            let lap_distance_m = match self.origin {
                Some(o) => (c.s_raw - o).rem_euclid(l),
                None => c.s_raw,
            };
            out.push(CarTrackState {
                car: c.car,
                ts_ms: c.ts,
                lap: done + 1,
                laps_completed: done,
                lap_distance_m,
                total_distance_m: c.total,
                speed_kmh,
                lateral_m: c.lateral,
                position: i as u32 + 1,
                gap_to_leader_s,
                interval_s,
                in_pit: c.in_pit,
                last_lap_s,
                stationary_s: (self.now - c.anchor_ts) as f64 / 1000.0,
                stopped: stopped(c),
            });
        }
        out
    }
}

fn laps_of(best: f64, l: f64) -> u32 {
    if best <= 0.0 {
        0
    } else {
        (best / l).floor() as u32
    }
}

/// The time at which a car's history first reached total distance `d` (interpolated);
/// `None` when it never did.
fn time_at(hist: &[(f64, i64)], d: f64) -> Option<i64> {
    let last = hist.last()?;
    if d > last.0 {
        return None;
    }
    let i = hist.partition_point(|h| h.0 < d);
    if i == 0 {
        return Some(hist[0].1);
    }
    let (a, b) = (hist[i - 1], hist[i]);
    let t = (d - a.0) / (b.0 - a.0);
    Some(a.1 + ((b.1 - a.1) as f64 * t).round() as i64)
}

#[cfg(test)]
mod tests;
