//! What the overtake model sees of a pair of cars: per-window histories of
//! every car, and the pair features computed from them.
//!
//! The same code runs inside the WASM plugin (live, every window) and natively
//! in `pitwall train overtake` / `pitwall eval` (over recorded races), so the
//! features a model is trained on are exactly those it is served with.
//!
//! Everything is a function of the frames in order (event time only): a replay
//! gives the same features every time.

use std::collections::{HashMap, VecDeque};

use pitwall_plugin_sdk::Frame;
use pitwall_plugin_sdk::frame::Compound;
use serde::{Deserialize, Serialize};

/// The interval under which the attacker is "in DRS range" / in the wake, s
/// (the F1 DRS detection threshold).
pub const DRS_GAP_S: f64 = 1.0;

/// A lap when a car has no lap time yet, s (a guess only used to size the
/// history before the first lap time is known).
const DEFAULT_LAP_S: f64 = 90.0;

/// Windows of history kept per car: three slow laps of 1 s windows.
const HISTORY: usize = 400;

/// One car in one window, as far as the model cares.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    ts_ms: i64,
    /// Car directly ahead in the running order (0 = none).
    ahead: u16,
    /// Interval to `ahead`, s (NaN = unknown).
    interval_s: f64,
    /// Speed at the end of the window, km/h (NaN = the source has no speed).
    speed_kmh: f64,
    /// DRS flap open (only meaningful where the feed has a DRS channel).
    drs_open: bool,
    in_pit: bool,
}

#[derive(Debug, Default)]
struct CarHistory {
    samples: VecDeque<Sample>,
    last_lap_s: Option<f64>,
    lap: u16,
    tyre_age: u16,
    compound: Option<Compound>,
    /// The feed has a DRS channel for this car (some window had a code > 0).
    has_drs: bool,
    /// Recent completed lap times, oldest first (one per lap).
    laps: VecDeque<f64>,
    /// Best lap so far.
    best_lap_s: Option<f64>,
}

/// Features of one (attacker, defender) pair at the end of a window. Each is a
/// plain number; `NaN` means "the source cannot tell" (e.g. no speeds in a
/// timing-only race) and the model treats that expert as absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairFeatures {
    // --- DRS / overtake-mode expert ---
    /// How deep inside DRS range the attacker is now: `max(0, 1 s − interval)`,
    /// 0 when DRS is not enabled (first two laps, neutralised).
    pub drs_depth_s: f64,
    /// Share of the last lap spent within 1 s of this defender (DRS detection
    /// is passed with that interval on most of those windows).
    pub drs_share_lap: f64,
    /// Share of the last lap with the DRS flap open (feeds with a DRS channel).
    pub drs_open_share: f64,
    // --- ERS / straight-line expert ---
    /// Attacker's top speed minus the defender's over the last lap, km/h.
    pub top_speed_diff_kmh: f64,
    /// Attacker's mean acceleration when accelerating minus the defender's, m/s².
    pub accel_diff_ms2: f64,
    // --- aero (wake) expert ---
    /// Share of the last three laps spent within 1 s of this defender.
    pub wake_share_3laps: f64,
    /// How much slower the attacker's slowest point of the lap was than the
    /// defender's, km/h (corner speed lost in dirty air; positive = lost).
    pub corner_loss_kmh: f64,
    // --- context ---
    /// The interval now, s.
    pub interval_s: f64,
    /// How much the interval shrank over the last lap, s (positive = closing).
    pub closing_s_per_lap: f64,
    /// Defender's last lap minus the attacker's, s (positive = attacker faster).
    pub pace_diff_s: f64,
    /// Defender's tyre age minus the attacker's, laps (positive = attacker fresher).
    pub tyre_age_diff: f64,
    /// Attacker's compound softness minus the defender's (soft 3, medium 2, hard 1).
    pub compound_diff: f64,
    /// Laps left in the race (NaN = distance unknown).
    pub laps_left: f64,
    /// Defender's mean of its last three laps minus the attacker's, s
    /// (positive = attacker faster; steadier than one lap).
    pub pace3_diff_s: f64,
    /// Defender's best lap so far minus the attacker's, s: the cars' speed
    /// potential (positive = attacker's car quicker).
    pub best_lap_diff_s: f64,
    /// The defender's own interval to the car ahead of it, s, capped at 5
    /// (a defender in a DRS train gets DRS too and is harder to pass).
    pub defender_gap_ahead_s: f64,
    /// 1 when the attacker was directly ahead of this defender within the
    /// last two laps (it just lost the place: a re-pass with DRS is likely), else 0.
    pub lost_place_recently: f64,
}

impl PairFeatures {
    /// Names and values of the features, in a fixed order (the model's
    /// parameter files name features by these strings).
    pub fn named(&self) -> [(&'static str, f64); 17] {
        [
            ("drs_depth_s", self.drs_depth_s),
            ("drs_share_lap", self.drs_share_lap),
            ("drs_open_share", self.drs_open_share),
            ("top_speed_diff_kmh", self.top_speed_diff_kmh),
            ("accel_diff_ms2", self.accel_diff_ms2),
            ("wake_share_3laps", self.wake_share_3laps),
            ("corner_loss_kmh", self.corner_loss_kmh),
            ("interval_s", self.interval_s),
            ("closing_s_per_lap", self.closing_s_per_lap),
            ("pace_diff_s", self.pace_diff_s),
            ("tyre_age_diff", self.tyre_age_diff),
            ("compound_diff", self.compound_diff),
            ("laps_left", self.laps_left),
            ("pace3_diff_s", self.pace3_diff_s),
            ("best_lap_diff_s", self.best_lap_diff_s),
            ("defender_gap_ahead_s", self.defender_gap_ahead_s),
            ("lost_place_recently", self.lost_place_recently),
        ]
    }

    /// The feature called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.named()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// Per-car histories over the frames seen so far.
#[derive(Debug, Default)]
pub struct PairTracker {
    cars: HashMap<u16, CarHistory>,
    leader_lap: u16,
    total_laps: u16,
    neutralised: bool,
    under_way: bool,
}

fn softness(c: Compound) -> Option<f64> {
    match c {
        Compound::Soft => Some(3.0),
        Compound::Medium => Some(2.0),
        Compound::Hard => Some(1.0),
        _ => None,
    }
}

impl PairTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one frame (call once per frame, in window order).
    pub fn update(&mut self, frame: &Frame<'_>) {
        let race = frame.race();
        self.leader_lap = race.lap();
        self.total_laps = race.total_laps().unwrap_or(0);
        self.neutralised = race.neutralised();
        self.under_way = race.under_way();
        let ts_ms = frame.window_end_ms();
        let order = frame.running_order();
        let mut ahead_of: HashMap<u16, u16> = HashMap::with_capacity(order.len());
        for w in order.windows(2) {
            ahead_of.insert(w[1].number(), w[0].number());
        }
        for car in frame.cars() {
            let h = self.cars.entry(car.number()).or_default();
            let drs = car.drs();
            h.has_drs |= drs > 0;
            h.lap = car.lap();
            h.tyre_age = car.tyre_age_laps();
            h.compound = Some(car.tyre_compound());
            if let Some(l) = car.last_lap_s()
                && h.last_lap_s != Some(l)
            {
                h.last_lap_s = Some(l);
                h.laps.push_back(l);
                if h.laps.len() > 3 {
                    h.laps.pop_front();
                }
                // In- and out-laps are slow, never the best: the minimum is safe.
                h.best_lap_s = Some(h.best_lap_s.map_or(l, |b| b.min(l)));
            }
            let ahead = ahead_of.get(&car.number()).copied().unwrap_or(0);
            h.samples.push_back(Sample {
                ts_ms,
                ahead,
                interval_s: if ahead == 0 {
                    f64::NAN
                } else {
                    car.interval_s().unwrap_or(f64::NAN)
                },
                speed_kmh: car.speed_kmh().map_or(f64::NAN, f64::from),
                drs_open: car.drs_open(),
                in_pit: car.in_pit(),
            });
            if h.samples.len() > HISTORY {
                h.samples.pop_front();
            }
        }
    }

    /// Whether the race is running normally (under way, not neutralised).
    pub fn racing(&self) -> bool {
        self.under_way && !self.neutralised
    }

    /// The features of `attacker` behind `defender` now; `None` if either car
    /// is unknown or the attacker has no interval to the defender.
    pub fn features(&self, attacker: u16, defender: u16) -> Option<PairFeatures> {
        let a = self.cars.get(&attacker)?;
        let d = self.cars.get(&defender)?;
        let now = *a.samples.back()?;
        if now.ahead != defender || !now.interval_s.is_finite() {
            return None;
        }
        let lap_ms = (a.last_lap_s.or(d.last_lap_s).unwrap_or(DEFAULT_LAP_S) * 1000.0) as i64;
        let since = |laps: i64| now.ts_ms - laps * lap_ms;
        // One pass over the attacker's last three laps: window counts and the
        // windows spent within 1 s of this defender (and with the flap open),
        // and the first window behind it in the last lap (for the closing rate).
        let (lap1, lap3) = (since(1), since(3));
        let (mut n1, mut n3, mut close1, mut close3, mut open1) = (0u32, 0u32, 0u32, 0u32, 0u32);
        let mut first_behind: Option<Sample> = None;
        for s in a.samples.iter().rev().take_while(|s| s.ts_ms > lap3) {
            let in_lap = s.ts_ms > lap1;
            n3 += 1;
            n1 += u32::from(in_lap);
            let behind = s.ahead == defender && s.interval_s.is_finite();
            if behind && s.interval_s < DRS_GAP_S {
                close3 += 1;
                close1 += u32::from(in_lap);
            }
            if in_lap && behind && s.drs_open {
                open1 += 1;
            }
            if s.ts_ms >= lap1 && behind {
                first_behind = Some(*s);
            }
        }
        let share = |k: u32, n: u32| {
            if n == 0 {
                0.0
            } else {
                f64::from(k) / f64::from(n)
            }
        };
        let drs_enabled = self.racing() && self.leader_lap >= 3;
        let drs_depth_s = if drs_enabled {
            (DRS_GAP_S - now.interval_s).max(0.0)
        } else {
            0.0
        };
        let drs_share_lap = share(close1, n1);
        let wake_share_3laps = share(close3, n3);
        let drs_open_share = if a.has_drs {
            share(open1, n1)
        } else {
            f64::NAN
        };
        // Interval one lap ago, to the same defender.
        let closing_s_per_lap = first_behind
            .filter(|s| now.ts_ms - s.ts_ms >= lap_ms / 2)
            .map_or(0.0, |s| {
                // Scaled to a full lap when the pair is younger than one.
                (s.interval_s - now.interval_s) * lap_ms as f64 / (now.ts_ms - s.ts_ms) as f64
            });
        let (a_speed, d_speed) = (
            speed_profile(&a.samples, since(1)),
            speed_profile(&d.samples, since(1)),
        );
        let (top_speed_diff_kmh, corner_loss_kmh, accel_diff_ms2) = match (a_speed, d_speed) {
            (Some(a), Some(d)) => (a.max - d.max, d.min - a.min, a.accel - d.accel),
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        let pace_diff_s = match (d.last_lap_s, a.last_lap_s) {
            (Some(dl), Some(al)) => (dl - al).clamp(-10.0, 10.0),
            _ => 0.0,
        };
        let compound_diff = match (a.compound.and_then(softness), d.compound.and_then(softness)) {
            (Some(x), Some(y)) => x - y,
            _ => 0.0,
        };
        let laps_left = if self.total_laps > 0 {
            f64::from(self.total_laps.saturating_sub(self.leader_lap))
        } else {
            f64::NAN
        };
        let mean3 = |h: &CarHistory| {
            (!h.laps.is_empty()).then(|| h.laps.iter().sum::<f64>() / h.laps.len() as f64)
        };
        let pace3_diff_s = match (mean3(d), mean3(a)) {
            (Some(dl), Some(al)) => (dl - al).clamp(-10.0, 10.0),
            _ => 0.0,
        };
        let best_lap_diff_s = match (d.best_lap_s, a.best_lap_s) {
            (Some(dl), Some(al)) => (dl - al).clamp(-5.0, 5.0),
            _ => 0.0,
        };
        let defender_gap_ahead_s = d
            .samples
            .back()
            .map(|s| s.interval_s)
            .filter(|g| g.is_finite())
            .map_or(5.0, |g| g.min(5.0));
        let lost_place_recently = if d
            .samples
            .iter()
            .rev()
            .take_while(|s| s.ts_ms > since(2))
            .any(|s| s.ahead == attacker)
        {
            1.0
        } else {
            0.0
        };
        Some(PairFeatures {
            lost_place_recently,
            pace3_diff_s,
            best_lap_diff_s,
            defender_gap_ahead_s,
            drs_depth_s,
            drs_share_lap,
            drs_open_share,
            top_speed_diff_kmh,
            accel_diff_ms2,
            wake_share_3laps,
            corner_loss_kmh,
            interval_s: now.interval_s,
            closing_s_per_lap: closing_s_per_lap.clamp(-5.0, 5.0),
            pace_diff_s,
            tyre_age_diff: f64::from(d.tyre_age) - f64::from(a.tyre_age),
            compound_diff,
            laps_left,
        })
    }

    /// The attacker's lap now (for sampling once per lap).
    pub fn lap_of(&self, car: u16) -> Option<u16> {
        self.cars.get(&car).map(|h| h.lap)
    }
}

/// A car's speed figures over the windows since `since_ms`, out of the pit lane.
struct SpeedProfile {
    max: f64,
    min: f64,
    /// Mean of the positive accelerations, m/s².
    accel: f64,
}

fn speed_profile(samples: &VecDeque<Sample>, since_ms: i64) -> Option<SpeedProfile> {
    let mut max = f64::NEG_INFINITY;
    let mut min = f64::INFINITY;
    let (mut acc_sum, mut acc_n) = (0.0, 0u32);
    let mut prev: Option<&Sample> = None;
    let mut n = 0;
    let start = samples.partition_point(|s| s.ts_ms <= since_ms);
    for s in samples.range(start..) {
        if s.in_pit || !s.speed_kmh.is_finite() {
            prev = None;
            continue;
        }
        n += 1;
        max = max.max(s.speed_kmh);
        min = min.min(s.speed_kmh);
        if let Some(p) = prev {
            let dt = (s.ts_ms - p.ts_ms) as f64 / 1000.0;
            let dv = (s.speed_kmh - p.speed_kmh) / 3.6;
            if dt > 0.0 && dv > 0.0 {
                acc_sum += dv / dt;
                acc_n += 1;
            }
        }
        prev = Some(s);
    }
    // A third of a lap of speeds at least, or the figures mean little.
    (n >= 20).then(|| SpeedProfile {
        max,
        min,
        accel: if acc_n > 0 {
            acc_sum / f64::from(acc_n)
        } else {
            0.0
        },
    })
}
