//! A deterministic motorsport telemetry simulator that implements [`Source`].
//!
//! **In:** a [`SimConfig`] (cars, sample rate, event-time duration, channel count,
//! seed, out-of-order fraction and delay) and the job's [`SourceOptions`]
//! (projection, chunk size). **Out:** [`RowChunk`]s of `ts_ms, car, speed, rpm,
//! throttle, brake, gear, drs[, extra channels…]` rows, all cars interleaved per
//! tick like a real car-telemetry feed. **State:** the physics of every car, the
//! rows held back for late delivery, and the number of rows delivered (the
//! source position).
//!
//! Why it exists: the window benchmark, load tests and the demo need the real F1
//! load (20 cars × hundreds of channels at a few hundred Hz) with realistic shapes —
//! braking zones, gear shifts, DRS trains — and with out-of-order and late rows, on
//! any machine and identically on every run.
//!
//! # How rows are made
//!
//! 1. **Physics.** The circuit (`Track`) is a list of straights and corners with
//!    corner speed limits. A lap-time-simulation pass (accelerate forward under a
//!    power/drag limit, brake backward under an aero-dependent braking limit) turns it
//!    into a speed profile per metre and a phase per metre (braking, cornering at the
//!    limit, power). Each car follows the profile scaled by its own pace (and a small
//!    per-lap variation) from its own starting gap; DRS opens in the two zones when the
//!    car was within 1 s of the car ahead at the detection point (from its third lap,
//!    like the race rule). Gear follows speed, rpm follows speed and gear ratio,
//!    throttle and brake follow the phase (OpenF1 semantics: brake is 0 or 100,
//!    braking rows have throttle 0). Slow states — tyre and brake temperatures, ERS
//!    state of charge, fuel, oil and water temperatures — evolve with the phase.
//! 2. **Generation order.** Tick `k` has event time `start_ts_ms + ⌊k·1000/rate_hz⌋`
//!    (exact integer arithmetic, so 240 Hz is exact); every tick yields one row per
//!    car in grid order. Row `g = k·cars + car` is the `g`-th generated row.
//! 3. **Delivery order.** A row is held back with probability
//!    `out_of_order_fraction`, for a delay `d` drawn uniformly from
//!    `1..=max_delay_ms`; it is delivered right after the on-time rows of the first
//!    tick whose time is `≥ ts + d` (so it arrives at least `d` behind the newest
//!    timestamp: with `max_delay_ms` above the engine's watermark bound some rows are
//!    late). Held rows due at the same tick go out in `(due time, g)` order; rows
//!    still held at the end are flushed in that order.
//!
//! 4. **Race control** ([`RaceConfig`]). The simulator also sends the race's rare
//!    events on the broadcast side stream ([`RowChunk::events`]): `Flag` `GREEN` at
//!    the first tick and `CHEQUERED` at the last; safety-car periods (`YELLOW`,
//!    `SafetyCar`/`VirtualSafetyCar` `DEPLOYED` … `ENDING`, `GREEN`) drawn once per
//!    reference lap time, during which every car slows to 60 % of its racing
//!    profile, lifts and loses DRS; pit stops at seeded laps (`PitIn` when the car
//!    is down to the 80 km/h pit-lane limit, `TyreChange` with the new compound,
//!    `PitOut` 20–25 s after `PitIn`; low gear, no DRS in between); optional
//!    retirements, after which the car sends no more rows. Every event happens at a
//!    tick and carries that tick's time; it is delivered just before the first row
//!    generated at that tick (row position `p`, so `seek(n)` delivers exactly the
//!    events with `p >= n`; events after the last row go out with the last chunk).
//!    The plan (stop laps, compounds, periods, retirements) comes from its own
//!    ChaCha stream, so it does not disturb the telemetry's random draws.
//!
//! Every random decision is a hash of `(seed, g, stream)` or comes from a
//! ChaCha stream consumed once at start-up, never from the chunking, so the
//! delivered sequence is a pure function of the config: chunk size changes only
//! where chunks are cut, and [`Source::seek`]`(n)` regenerates and skips `n` rows
//! without filling any channel column (cheap: only the physics runs).
//!
//! Channels beyond the six F1 ones are computed column by column, per block of rows,
//! from a compact per-row physics record plus hashed noise, and only for projected
//! channels: this is what makes 20 cars × 300 channels far faster than real time.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::RowChunk;
use crate::broadcast::{BroadcastEvent, EventKind};
use crate::error::{ConfigError, SourceError};
use crate::schema::{ChannelSpec, ChannelType, KeySpec, KeyType, Schema, TimeSpec};
use crate::source::{Source, SourceOptions};
use crate::time::{ConfigDuration, EventTime, TimeUnit};

/// What the simulator generates. Deserializable from a TOML table; every field
/// has a default (20 cars, 240 Hz, 1000 s, the six F1 channels, seed 1, 2 % of
/// rows delivered up to 3 s late, event time starting at 0, no pacing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Number of cars (1–99), numbered like a real grid (1, 11, 16, 55, 44, …).
    pub cars: usize,
    /// Samples per second per car (1–1000); ticks are `⌊k·1000/rate_hz⌋` ms apart.
    pub rate_hz: u32,
    /// Event time covered: ticks with `ts < start_ts_ms + duration` are generated.
    pub duration: ConfigDuration,
    /// Total number of channels (≥ 6): the six F1 channels, then extra channels
    /// (tyre/brake temperatures, suspension, ERS, fuel, g-forces, … then
    /// `sensor_001`, `sensor_002`, …).
    pub channels: usize,
    /// Seed of every random decision.
    pub seed: u64,
    /// Fraction (0–1) of rows held back and delivered out of order.
    pub out_of_order_fraction: f64,
    /// Largest hold-back delay in event-time milliseconds.
    pub max_delay_ms: u64,
    /// Event time of the first tick, in ms.
    pub start_ts_ms: i64,
    /// Real-time pacing: `Some(1.0)` delivers rows as fast as event time passes,
    /// `Some(10.0)` ten times faster; `None` delivers as fast as possible. Affects
    /// only when rows are delivered (and where chunks are cut), never their content.
    pub pace: Option<f64>,
    /// Race control on the broadcast stream: flags, safety cars, pit stops,
    /// retirements (a `[race]` table in TOML).
    pub race: RaceConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            cars: 20,
            rate_hz: 240,
            duration: ConfigDuration::from_millis(1_000_000),
            channels: 6,
            seed: 1,
            out_of_order_fraction: 0.02,
            max_delay_ms: 3_000,
            start_ts_ms: 0,
            pace: None,
            race: RaceConfig::default(),
        }
    }
}

/// The first twenty numbers are the 2024 F1 grid; further cars (a NASCAR-size
/// field) take the free numbers from 5 upwards.
const F1_NUMBERS: [u32; 20] = [
    1, 11, 16, 55, 44, 63, 4, 81, 14, 18, 10, 31, 23, 2, 22, 3, 27, 20, 24, 77,
];
const MAX_CARS: usize = 99;
const MAX_CHANNELS: usize = 100_000;

impl SimConfig {
    /// Checks the config can be simulated.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("simulator: {m}")));
        if self.cars == 0 || self.cars > MAX_CARS {
            return bad(format!("cars must be 1..={MAX_CARS}, got {}", self.cars));
        }
        if self.rate_hz == 0 || self.rate_hz > 1000 {
            return bad(format!(
                "rate_hz must be 1..=1000 (timestamps are whole ms), got {}",
                self.rate_hz
            ));
        }
        if self.channels < 6 || self.channels > MAX_CHANNELS {
            return bad(format!(
                "channels must be 6..={MAX_CHANNELS} (the six F1 channels come first), got {}",
                self.channels
            ));
        }
        if !(0.0..=1.0).contains(&self.out_of_order_fraction) {
            return bad(format!(
                "out_of_order_fraction must be within 0..=1, got {}",
                self.out_of_order_fraction
            ));
        }
        if self.out_of_order_fraction > 0.0 && self.max_delay_ms == 0 {
            return bad(
                "max_delay_ms must be at least 1 when rows are delivered out of order".into(),
            );
        }
        if let Some(p) = self.pace
            && !(p.is_finite() && p > 0.0)
        {
            return bad(format!("pace must be a positive speed factor, got {p}"));
        }
        self.duration_ms()?;
        Ok(())
    }

    /// The duration in whole milliseconds.
    pub fn duration_ms(&self) -> Result<u64, ConfigError> {
        let ms = TimeUnit::Ms.ticks(self.duration.0, "simulator duration")?;
        Ok(ms as u64)
    }

    /// Number of ticks (samples per car): those with `⌊k·1000/rate⌋ < duration_ms`.
    pub fn ticks(&self) -> u64 {
        let d = self.duration_ms().unwrap_or(0) as u128;
        (d * self.rate_hz as u128).div_ceil(1000) as u64
    }

    /// Number of rows the simulator delivers without retirements: `ticks() × cars`
    /// (see [`Simulator::total_rows`]).
    pub fn total_rows(&self) -> u64 {
        self.ticks() * self.cars as u64
    }

    /// Event time of tick `k`: `start_ts_ms + ⌊k·1000/rate_hz⌋`, exactly.
    pub fn tick_ts(&self, k: u64) -> EventTime {
        self.start_ts_ms + (k as u128 * 1000 / self.rate_hz.max(1) as u128) as i64
    }

    /// The car numbers, in grid order (the order of cars within a tick).
    pub fn car_numbers(&self) -> Vec<u32> {
        let mut out: Vec<u32> = F1_NUMBERS.iter().copied().take(self.cars).collect();
        let mut n = 5;
        while out.len() < self.cars {
            if !F1_NUMBERS.contains(&n) {
                out.push(n);
            }
            n += 1;
        }
        out
    }

    /// The schema of the generated rows: time `ts_ms` (ms), key `car` (int), the
    /// channels of [`Schema::f1_bench`] in the same order, then `channels - 6`
    /// extra channels.
    pub fn schema(&self) -> Schema {
        let mut schema = Schema::f1_bench();
        schema.time = TimeSpec {
            name: "ts_ms".into(),
            unit: TimeUnit::Ms,
        };
        schema.key = KeySpec {
            name: "car".into(),
            ty: KeyType::Int,
        };
        for c in 6..self.channels.max(6) {
            let ch = extra_channel(c);
            schema.channels.push(ChannelSpec {
                name: ch.name,
                ty: ch.ty,
                unit: ch.unit.map(str::to_string),
                min: Some(ch.min),
                max: Some(ch.max),
                optional: false,
                sampling: None,
            });
        }
        schema
    }
}

/// Race control: the rare events the simulator sends besides telemetry, and the
/// physics that follows them. Deserializable from a TOML table; every field has a
/// default: six neutralisations per hour (about one in a 10-minute run), 30 % of
/// them virtual; one pit stop per car; no retirements.
///
/// `Flag` `GREEN` (first tick) and `CHEQUERED` (last tick) are always sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaceConfig {
    /// Neutralisations (safety car or VSC) per hour of racing: at each reference
    /// lap time a period starts with probability `1 - exp(-rate · lap_time)`, at a
    /// uniform point of that lap (not on the opening lap, and with at least a green
    /// lap between two). A safety car lasts 1.5–2.5 laps, a VSC 0.7–1.3.
    pub safety_car_per_hour: f64,
    /// Share (0–1) of neutralisations that are a virtual safety car.
    pub vsc_share: f64,
    /// Pit stops per car (0–5), spread evenly over the race at seeded laps.
    pub pit_stops: u32,
    /// Retirements per hour of racing, over the whole field (0: none). A retired
    /// car sends no rows after its `Retirement` event.
    pub retirements_per_hour: f64,
}

impl Default for RaceConfig {
    fn default() -> Self {
        RaceConfig {
            safety_car_per_hour: 6.0,
            vsc_share: 0.3,
            pit_stops: 1,
            retirements_per_hour: 0.0,
        }
    }
}

impl RaceConfig {
    /// Only the `GREEN` and `CHEQUERED` flags: no neutralisations, stops or retirements.
    pub fn quiet() -> Self {
        RaceConfig {
            safety_car_per_hour: 0.0,
            pit_stops: 0,
            retirements_per_hour: 0.0,
            ..RaceConfig::default()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("simulator race: {m}")));
        for (name, v) in [
            ("safety_car_per_hour", self.safety_car_per_hour),
            ("retirements_per_hour", self.retirements_per_hour),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a rate >= 0, got {v}"));
            }
        }
        if !(0.0..=1.0).contains(&self.vsc_share) {
            return bad(format!(
                "vsc_share must be within 0..=1, got {}",
                self.vsc_share
            ));
        }
        if self.pit_stops > 5 {
            return bad(format!("pit_stops must be 0..=5, got {}", self.pit_stops));
        }
        Ok(())
    }
}

/// Tyre compounds, in `TyreChange` values.
pub const COMPOUNDS: [&str; 3] = ["SOFT", "MEDIUM", "HARD"];
const RETIRE_REASONS: [&str; 5] = ["engine", "gearbox", "hydraulics", "accident", "brakes"];
/// Salt of the race plan's ChaCha stream (kept apart from the telemetry's).
const RACE_SALT: u64 = 0x5241_4345_5F43_5452;
/// Speed factor under a safety car or VSC, and how fast (per second) it is reached.
const SC_FACTOR: f64 = 0.6;
const SC_RAMP_PER_S: f64 = 0.1;
/// Pit entry (m from the line, just after the last corner) and the lane's limit (m/s).
const PIT_ENTRY_M: f64 = 4_975.0;
/// Pit-lane limit with room for the reported speed's noise: ≤ 80 km/h as sent.
pub const PIT_LANE_KMH: f64 = 79.0;
const PIT_SPEED: f64 = PIT_LANE_KMH / 3.6;
/// Braking into the pit lane and accelerating out of it (m/s²).
const PIT_BRAKE: f64 = 25.0;
const PIT_EXIT_ACCEL: f64 = 12.0;
/// A speed cap at or above this (m/s) is off (above any profile speed).
const CAP_OFF: f64 = 150.0;
/// The cap on an in-lap: on, but above any speed.
const CAP_ARMED: f64 = 140.0;

/// One planned pit stop.
#[derive(Debug, Clone, Copy)]
struct PitStop {
    /// Taken when the car passes the pit entry with `Car::lap == lap`.
    lap: i64,
    lane_ms: i64,
    tyre_ms: i64,
    compound: u8,
}

/// A planned race-level event: a neutralisation starts or ends.
#[derive(Debug, Clone, Copy)]
struct RaceStep {
    ts: EventTime,
    deploy: bool,
    virtual_sc: bool,
}

/// Everything race control does, drawn once from the seed.
#[derive(Debug, Clone)]
struct RacePlan {
    /// Per car, in lap order.
    stops: Vec<Vec<PitStop>>,
    /// Neutralisation starts and ends, in time order.
    steps: Vec<RaceStep>,
    /// Per car: the tick of its retirement (`u64::MAX`: none) and the reason.
    retire: Vec<(u64, &'static str)>,
}

impl RacePlan {
    fn new(cfg: &SimConfig, race: &RaceConfig, lap_s: f64) -> RacePlan {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ RACE_SALT);
        let dur = cfg.duration_ms().unwrap_or(0) as f64;
        let lap_ms = lap_s * 1000.0;
        let laps = dur / lap_ms;
        let n = race.pit_stops as usize;
        let stops = (0..cfg.cars)
            .map(|_| {
                let mut tyre = rng.random_range(0..2u8);
                let mut last = -2;
                (1..=n)
                    .map(|j| {
                        let x = laps * (j as f64 + rng.random_range(-0.35..0.35)) / (n + 1) as f64;
                        let lap = (x.floor() as i64).max(last + 2).max(0);
                        last = lap;
                        let lane_ms = rng.random_range(20_000..=25_000i64);
                        let tyre_ms = (lane_ms as f64 * rng.random_range(0.4..0.6)) as i64;
                        tyre = (tyre + rng.random_range(1..3u8)) % 3;
                        PitStop {
                            lap,
                            lane_ms,
                            tyre_ms,
                            compound: tyre,
                        }
                    })
                    .collect()
            })
            .collect();
        let p = 1.0 - (-race.safety_car_per_hour * lap_s / 3600.0).exp();
        let mut steps = Vec::new();
        // None on the opening lap.
        let mut t = lap_ms;
        while t < dur {
            let draw: f64 = rng.random();
            let at = t + rng.random::<f64>() * lap_ms;
            let virtual_sc = rng.random::<f64>() < race.vsc_share;
            let len = lap_ms
                * if virtual_sc {
                    rng.random_range(0.7..1.3)
                } else {
                    rng.random_range(1.5..2.5)
                };
            if draw < p && at < dur {
                let from = cfg.start_ts_ms + at as i64;
                let to = cfg.start_ts_ms + (at + len) as i64;
                for (ts, deploy) in [(from, true), (to, false)] {
                    steps.push(RaceStep {
                        ts,
                        deploy,
                        virtual_sc,
                    });
                }
                // At least a green lap before the next one.
                t = at + len + lap_ms;
            } else {
                t += lap_ms;
            }
        }
        let ticks = cfg.ticks();
        let p_car =
            1.0 - (-race.retirements_per_hour / cfg.cars.max(1) as f64 * dur / 3_600_000.0).exp();
        let retire = (0..cfg.cars)
            .map(|_| {
                let draw: f64 = rng.random();
                let at = rng.random_range(0.1..0.95);
                let why = RETIRE_REASONS[rng.random_range(0..RETIRE_REASONS.len())];
                if draw < p_car {
                    (((ticks as f64 * at) as u64).max(1), why)
                } else {
                    (u64::MAX, why)
                }
            })
            .collect();
        RacePlan {
            stops,
            steps,
            retire,
        }
    }

    /// Rows the run delivers: every car's ticks up to its retirement.
    fn total_rows(&self, ticks: u64) -> u64 {
        self.retire.iter().map(|&(r, _)| r.min(ticks)).sum()
    }
}

// ---------------------------------------------------------------------------
// Noise: stateless hashing, so a value depends on (seed, row, channel) only.

const PHI: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;

#[inline(always)]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in `[-1, 1)`, from `(key, g, stream)`.
#[inline(always)]
fn noise(key: u64, g: u64, stream: u64) -> f64 {
    let h = mix64(
        key.wrapping_add(g.wrapping_mul(PHI))
            .wrapping_add(stream.wrapping_mul(K2)),
    );
    // Through i64: a single conversion instruction (the value fits in 53 bits).
    ((h >> 11) as i64) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
}

/// Rounds to `1/scale` (half away from zero) without a libm call.
#[inline(always)]
fn round_to(x: f64, scale: f64) -> f64 {
    let y = x * scale;
    let r = if y >= 0.0 {
        (y + 0.5) as i64
    } else {
        (y - 0.5) as i64
    };
    r as f64 / scale
}

// ---------------------------------------------------------------------------
// The circuit.

const G: f64 = 9.81;
const INV_G: f64 = 1.0 / G;

/// Straights (`v_kmh == 0`) and corners (speed limit in km/h, `dir` +1 right, -1 left).
/// About 5.2 km; the lap-time simulation gives a lap of roughly 87 s.
const CIRCUIT: &[(f64, f64, f64)] = &[
    (850.0, 0.0, 0.0), // main straight (the line is at 0)
    (70.0, 90.0, 1.0), // T1 hairpin
    (320.0, 0.0, 0.0),
    (130.0, 155.0, -1.0), // T2
    (180.0, 0.0, 0.0),
    (200.0, 245.0, 1.0), // T3
    (950.0, 0.0, 0.0),   // back straight
    (90.0, 110.0, -1.0), // T4/T5 chicane
    (70.0, 125.0, 1.0),
    (280.0, 0.0, 0.0),
    (200.0, 185.0, 1.0),  // T6
    (280.0, 265.0, -1.0), // T7 sweeper
    (300.0, 0.0, 0.0),
    (110.0, 110.0, -1.0), // T8
    (320.0, 0.0, 0.0),
    (160.0, 185.0, 1.0), // T9
    (340.0, 0.0, 0.0),
    (120.0, 140.0, 1.0), // T10, onto the main straight
    (220.0, 0.0, 0.0),
];

/// DRS zones: (detection point, activation start, end), metres from the line.
const DRS_ZONES: &[(f64, f64, f64)] = &[(4_700.0, 60.0, 720.0), (1_450.0, 1_800.0, 2_580.0)];

const PHASE_BRAKE: u8 = 255;
const PHASE_POWER: u8 = 254;

/// The circuit as per-metre arrays, precomputed once.
#[derive(Debug)]
pub(crate) struct Track {
    len: usize,
    len_f: f64,
    /// Reference speed (m/s) at each metre, `len + 1` entries (the last repeats the first).
    v: Vec<f64>,
    /// [`PHASE_BRAKE`], [`PHASE_POWER`], or the throttle (%) held at a corner's limit.
    phase: Vec<u8>,
    /// Signed curvature (1/m, + right) at each metre.
    inv_r: Vec<f64>,
    pub(crate) drs: Vec<(f64, f64, f64)>,
}

/// Acceleration limit (m/s²): traction below ~85 m/s, then power minus drag.
fn accel_limit(v: f64) -> f64 {
    (12.0f64).min(937.0 / v.max(1.0)) - 0.001_164 * v * v - 0.15
}

/// Braking limit (m/s²): grows with downforce, capped at 5.5 g.
fn brake_limit(v: f64) -> f64 {
    (G * (1.5 + 3.5 * (v / 80.0) * (v / 80.0))).min(5.5 * G)
}

/// Lateral grip (m/s²) at speed `v`: grows with downforce, capped at 5.5 g.
fn lateral_limit(v: f64) -> f64 {
    (G * (2.0 + 3.5 * (v / 70.0) * (v / 70.0))).min(5.5 * G)
}

impl Track {
    pub(crate) fn circuit() -> Track {
        let len: usize = CIRCUIT.iter().map(|s| s.0 as usize).sum();
        let v_top = 400.0 / 3.6;
        let mut v_lim = vec![v_top; len];
        let mut corner_thr = vec![0u8; len];
        let mut inv_r = vec![0.0; len];
        let mut at = 0;
        for &(l, v_kmh, dir) in CIRCUIT {
            let l = l as usize;
            if v_kmh > 0.0 {
                let v = v_kmh / 3.6;
                let r = v * v / lateral_limit(v);
                let thr = 15.0 + 70.0 * ((v_kmh - 80.0) / 200.0).clamp(0.0, 1.0);
                for m in at..at + l {
                    v_lim[m] = v;
                    inv_r[m] = dir / r;
                    corner_thr[m] = thr as u8;
                }
            }
            at += l;
        }
        // Forward pass (two laps so the wrap-around converges), then backward.
        let mut vf = vec![0.0; len];
        let mut v = v_lim[0].min(60.0);
        for i in 0..2 * len {
            let m = i % len;
            v = v_lim[m].min(v);
            vf[m] = v;
            v = (v * v + 2.0 * accel_limit(v).max(0.0)).sqrt();
        }
        let mut vb = vf.clone();
        let mut v = vf[len - 1];
        for i in (0..2 * len).rev() {
            let m = i % len;
            v = vf[m].min(v);
            vb[m] = v;
            v = (v * v + 2.0 * brake_limit(v)).sqrt();
        }
        let phase = (0..len)
            .map(|m| {
                if vb[m] < vf[m] - 1e-9 {
                    PHASE_BRAKE
                } else if corner_thr[m] > 0 && vb[m] >= v_lim[m] - 1e-9 {
                    corner_thr[m]
                } else {
                    PHASE_POWER
                }
            })
            .collect();
        let mut vv = vb;
        vv.push(vv[0]);
        Track {
            len,
            len_f: len as f64,
            v: vv,
            phase,
            inv_r,
            drs: DRS_ZONES.to_vec(),
        }
    }

    /// Reference speed (m/s) at lap distance `s`, and the metre index.
    #[inline(always)]
    fn at(&self, s: f64) -> (f64, usize) {
        let i = (s as usize).min(self.len - 1);
        let f = s - i as f64;
        (self.v[i] + (self.v[i + 1] - self.v[i]) * f, i)
    }

    /// Lap time (s) of a car with pace 1 and no DRS.
    pub(crate) fn lap_time(&self) -> f64 {
        (0..self.len)
            .map(|m| 1.0 / (0.5 * (self.v[m] + self.v[m + 1])))
            .sum()
    }

    pub(crate) fn length_m(&self) -> f64 {
        self.len_f
    }
}

/// True when moving from `prev` to `cur` (lap distances) passes point `p`.
#[inline(always)]
fn crossed(prev: f64, cur: f64, p: f64) -> bool {
    if cur >= prev {
        prev < p && p <= cur
    } else {
        p > prev || p <= cur
    }
}

#[inline(always)]
fn in_zone(s: f64, zone: (f64, f64, f64)) -> bool {
    zone.1 <= s && s < zone.2
}

/// Top speed (km/h) of gears 1..=8 at 12 000 rpm; index 0 unused.
const GEAR_TOP: [f64; 9] = [1.0, 105.0, 140.0, 170.0, 200.0, 232.0, 265.0, 300.0, 345.0];
const SHIFT_RPM: f64 = 12_000.0;

/// Gear for a (reported) speed: the lowest gear whose shift point is above it.
/// A pure, non-decreasing function of speed.
#[inline(always)]
fn gear_for(kmh: f64) -> usize {
    let mut g = 1;
    while g < 8 && kmh > GEAR_TOP[g] * 0.98 {
        g += 1;
    }
    g
}

// ---------------------------------------------------------------------------
// Per-row physics record and per-car state.

/// Everything a delivered row's channels are computed from (compact: rows wait in
/// the hold-back queue and in per-block buffers).
#[derive(Debug, Clone, Copy, Default)]
struct Core {
    g: u64,
    ts: EventTime,
    /// Event time of the tick at which the row is delivered (for pacing).
    deliver_ts: EventTime,
    car: u32,
    speed: f32,
    rpm: f32,
    throttle: f32,
    brake: f32,
    gear: f32,
    drs: f32,
    lat_g: f32,
    long_g: f32,
    inv_r: f32,
    tyre: [f32; 4],
    brake_t: [f32; 4],
    ers: f32,
    fuel_flow: f32,
    fuel: f32,
    lap_dist: f32,
    lap: f32,
    oil: f32,
    water: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Drs {
    Off,
    Eligible(usize),
    Open(usize),
}

#[derive(Debug, Clone)]
struct Car {
    pace: f64,
    /// Distance from the line, `0 <= s < track length`.
    s: f64,
    /// Line crossings so far, minus one (cars start behind the line, on lap -1).
    lap: i64,
    lap_factor: f64,
    prev_v: f64,
    drs: Drs,
    drs_boost: f64,
    long_g: f64,
    lat_g: f64,
    tyre: [f64; 4],
    brake_t: [f64; 4],
    ers: f64,
    fuel: f64,
    oil: f64,
    water: f64,
    /// Where the car is in its pit stop.
    pit: Pit,
    /// Speed cap (m/s) into, in and out of the pit lane; `>= CAP_OFF`: none.
    cap: f64,
    /// Next planned stop (index into the plan) and its lap (`i64::MAX`: none left).
    stop: usize,
    pit_lap: i64,
    retired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pit {
    Racing,
    /// On the lap of a planned stop (the cap is on at `CAP_ARMED`, above any
    /// speed, so the fast path's one `cap < CAP_OFF` test covers every pit state).
    Armed,
    /// Braking from the pit entry down to the pit-lane limit.
    Entry,
    /// In the lane since `PitIn`: tyres change at `tyre` (`MAX` once done), out at `out`.
    Lane {
        tyre: EventTime,
        out: EventTime,
    },
}

impl Car {
    /// Moves the pit-lane speed cap one tick (down to the limit from the entry, up
    /// at the car's acceleration after `PitOut`) and applies it to speed `v`.
    /// Returns the speed, whether the cap bound it, and whether the car is in the pit.
    #[inline(never)]
    fn apply_cap(&mut self, v: f64, dt: f64) -> (f64, bool, bool) {
        let in_pit = match self.pit {
            Pit::Racing => {
                self.cap += PIT_EXIT_ACCEL * dt;
                if self.cap >= CAP_OFF {
                    self.cap = f64::INFINITY;
                }
                false
            }
            Pit::Armed => false,
            Pit::Entry | Pit::Lane { .. } => {
                self.cap = (self.cap - PIT_BRAKE * dt).max(PIT_SPEED);
                true
            }
        };
        if v > self.cap {
            (self.cap, true, in_pit)
        } else {
            (v, false, in_pit)
        }
    }
}

/// A row held back for late delivery; the heap pops the smallest `(release, g)`.
struct Held {
    release: EventTime,
    core: Core,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.release, self.core.g) == (o.release, o.core.g)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.release, o.core.g).cmp(&(self.release, self.core.g))
    }
}

/// Stream ids for hashed noise.
const S_SPEED: u64 = 1;
const S_RPM: u64 = 2;
const S_THROTTLE: u64 = 3;
const S_LAP: u64 = 4;
const S_EXTRA: u64 = 1_000;

/// Per-tick smoothing factors, computed once (no divisions in the hot loop).
struct Rates {
    rate: f64,
    long: f64,
    lat: f64,
    boost_open: f64,
    boost_close: f64,
    tyre: f64,
    oil: f64,
    water: f64,
}

impl Rates {
    fn new(dt: f64) -> Rates {
        let ema = |tau: f64| (dt / tau).min(1.0);
        Rates {
            rate: 1.0 / dt,
            long: ema(0.1),
            lat: ema(0.12),
            boost_open: ema(0.8),
            boost_close: ema(0.25),
            tyre: ema(6.0),
            oil: ema(30.0),
            water: ema(40.0),
        }
    }
}

/// Throttle and brake (%) at the limit in track phase `phase`.
#[inline(always)]
fn racing_throttle(phase: u8, key: u64, g: u64) -> (f64, f64) {
    match phase {
        PHASE_BRAKE => (0.0, 100.0),
        PHASE_POWER => {
            let thr = if noise(key, g, S_THROTTLE) > -0.8 {
                100.0
            } else {
                99.0
            };
            (thr, 0.0)
        }
        c => (
            round_to(c as f64 + 3.0 * noise(key, g, S_THROTTLE), 1.0).clamp(0.0, 100.0),
            0.0,
        ),
    }
}

/// A car's pace factor for one lap (±0.4 %).
fn lap_factor(key: u64, car: usize, lap: i64) -> f64 {
    1.0 + 0.004 * noise(key, car as u64, (lap as u64) << 8 | S_LAP)
}

/// The row generator: physics plus the delivery queue. Rebuilt from the config
/// on seek, so its output is a pure function of the config.
struct Generator {
    track: Arc<Track>,
    ticks: u64,
    tick: u64,
    ts_of: (i64, u128),
    dt: f64,
    k: Rates,
    key: u64,
    ooo_key: u64,
    ooo_threshold: u64,
    max_delay: u64,
    cars: Vec<Car>,
    held: BinaryHeap<Held>,
    ready: VecDeque<Core>,
    last_ts: EventTime,
    delivered: u64,
    /// Race control: the plan, the next planned step, and the neutralisation in
    /// force (`sc_target` < 1 while deployed, `sc_f` the factor ramping to it).
    plan: RacePlan,
    next_step: usize,
    /// A safety car or VSC is deployed.
    sc: bool,
    sc_target: f64,
    sc_f: f64,
    sc_ramp: f64,
    /// The next retirement's tick (`u64::MAX`: none), and whether any car retired.
    next_retire: u64,
    any_retired: bool,
    names: Vec<String>,
    /// Events generated and not yet delivered: `(position, event)`, where position
    /// is the delivery index of the first row after it, in generation order.
    events: VecDeque<(u64, BroadcastEvent)>,
    /// Position of the first queued event (`u64::MAX`: none), checked per row.
    next_event: u64,
}

impl Generator {
    fn new(cfg: &SimConfig, race: &RaceConfig, track: Arc<Track>) -> Generator {
        let plan = RacePlan::new(cfg, race, track.lap_time());
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let key = rng.random::<u64>();
        let ooo_key = rng.random::<u64>();
        let mut cars = Vec::with_capacity(cfg.cars);
        let mut behind: f64 = 120.0;
        for i in 0..cfg.cars {
            let pace = if i == 0 {
                1.0
            } else {
                rng.random_range(0.978..1.0)
            };
            let dist = -behind;
            behind += rng.random_range(12.0..70.0);
            let s = dist.rem_euclid(track.len_f);
            let lap = (dist / track.len_f).floor() as i64;
            let (v0, _) = track.at(s);
            cars.push(Car {
                pace,
                s,
                lap,
                lap_factor: lap_factor(key, i, lap),
                prev_v: v0 * pace,
                drs: Drs::Off,
                drs_boost: 0.0,
                long_g: 0.0,
                lat_g: 0.0,
                tyre: std::array::from_fn(|_| rng.random_range(80.0..95.0)),
                brake_t: std::array::from_fn(|_| rng.random_range(350.0..450.0)),
                ers: rng.random_range(50.0..90.0),
                fuel: 100.0 - rng.random_range(0.0..5.0),
                oil: rng.random_range(95.0..105.0),
                water: rng.random_range(85.0..95.0),
                pit: Pit::Racing,
                cap: f64::INFINITY,
                stop: 0,
                pit_lap: plan.stops[i].first().map_or(i64::MAX, |p| p.lap),
                retired: false,
            });
        }
        let frac = cfg.out_of_order_fraction.clamp(0.0, 1.0);
        Generator {
            track,
            ticks: cfg.ticks(),
            tick: 0,
            ts_of: (cfg.start_ts_ms, cfg.rate_hz as u128),
            dt: 1.0 / cfg.rate_hz as f64,
            k: Rates::new(1.0 / cfg.rate_hz as f64),
            key,
            ooo_key,
            ooo_threshold: (frac * (1u64 << 53) as f64) as u64,
            max_delay: cfg.max_delay_ms.max(1),
            cars,
            held: BinaryHeap::new(),
            ready: VecDeque::new(),
            last_ts: cfg.start_ts_ms,
            delivered: 0,
            next_retire: plan.retire.iter().map(|r| r.0).min().unwrap_or(u64::MAX),
            any_retired: false,
            plan,
            next_step: 0,
            sc: false,
            sc_target: 1.0,
            sc_f: 1.0,
            sc_ramp: SC_RAMP_PER_S / cfg.rate_hz as f64,
            names: cfg.car_numbers().iter().map(u32::to_string).collect(),
            events: VecDeque::new(),
            next_event: u64::MAX,
        }
    }

    /// Takes the first queued event if its position is at most `upto`.
    fn pop_event(&mut self, upto: u64) -> Option<BroadcastEvent> {
        if self.next_event > upto {
            return None;
        }
        let (_, e) = self.events.pop_front()?;
        self.next_event = self.events.front().map_or(u64::MAX, |e| e.0);
        Some(e)
    }

    /// Queues an event before the next row to be generated.
    #[cold]
    fn emit(&mut self, ts: EventTime, kind: EventKind, car: Option<usize>, value: &str) {
        let e = BroadcastEvent {
            ts,
            kind,
            car: car.map(|c| self.names[c].clone()),
            value: value.to_string(),
        };
        // `produce` runs only when every generated row was delivered.
        if self.events.is_empty() {
            self.next_event = self.delivered;
        }
        self.events.push_back((self.delivered, e));
    }

    /// Race-level steps due at tick `k` (time `ts`), before any car moves.
    #[inline]
    fn race_control(&mut self, k: u64, ts: EventTime) {
        if k == 0 {
            self.emit(ts, EventKind::Flag, None, "GREEN");
        }
        while let Some(&step) = self.plan.steps.get(self.next_step)
            && step.ts <= ts
        {
            self.next_step += 1;
            let kind = if step.virtual_sc {
                EventKind::VirtualSafetyCar
            } else {
                EventKind::SafetyCar
            };
            if step.deploy {
                self.emit(ts, EventKind::Flag, None, "YELLOW");
                self.emit(ts, kind, None, "DEPLOYED");
                self.sc = true;
                self.sc_target = SC_FACTOR;
            } else {
                self.emit(ts, kind, None, "ENDING");
                self.emit(ts, EventKind::Flag, None, "GREEN");
                self.sc = false;
                self.sc_target = 1.0;
            }
        }
        if self.sc_f != self.sc_target {
            self.sc_f = if self.sc_f > self.sc_target {
                (self.sc_f - self.sc_ramp).max(self.sc_target)
            } else {
                (self.sc_f + self.sc_ramp).min(self.sc_target)
            };
        }
    }

    /// Retires the cars due at tick `k`: they send no rows from this tick on.
    #[cold]
    fn retire(&mut self, k: u64, ts: EventTime) {
        for ci in 0..self.cars.len() {
            let (at, why) = self.plan.retire[ci];
            if at == k {
                self.cars[ci].retired = true;
                self.any_retired = true;
                self.emit(ts, EventKind::Retirement, Some(ci), why);
            }
        }
        self.next_retire = (self.plan.retire.iter().map(|r| r.0))
            .filter(|&t| t > k)
            .min()
            .unwrap_or(u64::MAX);
    }

    /// A car in the pit (after its tick's row): `PitIn` once down to the limit,
    /// `TyreChange`, `PitOut`.
    #[cold]
    #[inline(never)]
    fn pit_step(&mut self, ci: usize, ts: EventTime) {
        let car = &mut self.cars[ci];
        match car.pit {
            Pit::Racing | Pit::Armed => {}
            Pit::Entry => {
                if car.cap <= PIT_SPEED {
                    let stop = self.plan.stops[ci][car.stop];
                    car.pit = Pit::Lane {
                        tyre: ts + stop.tyre_ms,
                        out: ts + stop.lane_ms,
                    };
                    self.emit(ts, EventKind::PitIn, Some(ci), "");
                }
            }
            Pit::Lane { tyre, out } => {
                let stop = self.plan.stops[ci][car.stop];
                if ts >= tyre {
                    car.pit = Pit::Lane {
                        tyre: EventTime::MAX,
                        out,
                    };
                    // Fresh tyres, off the blankets.
                    car.tyre = [80.0; 4];
                    self.emit(
                        ts,
                        EventKind::TyreChange,
                        Some(ci),
                        COMPOUNDS[stop.compound as usize],
                    );
                }
                let car = &mut self.cars[ci];
                if ts >= out {
                    car.pit = Pit::Racing;
                    car.stop += 1;
                    car.pit_lap = self.plan.stops[ci]
                        .get(car.stop)
                        .map_or(i64::MAX, |p| p.lap);
                    self.emit(ts, EventKind::PitOut, Some(ci), "");
                }
            }
        }
    }

    /// Advances one car by one tick and records its row.
    #[inline]
    /// `sc`: a safety car or VSC is deployed; `sc_f`: the speed factor it sets.
    fn step_car(&mut self, ci: usize, g: u64, ts: EventTime, sc: bool, sc_f: f64) -> Core {
        let tr = &*self.track;
        let dt = self.dt;
        let key = self.key;
        let car = &mut self.cars[ci];

        let k = &self.k;
        let s0 = car.s;
        let (vp, _) = tr.at(s0);
        let mut v = vp * car.pace * car.lap_factor * (1.0 + car.drs_boost) * sc_f;
        // Pit lane: the cap brakes to the limit from the entry, holds it in the lane
        // and lifts at the car's acceleration after `PitOut` (it is always on while
        // the car is in the pit).
        let capped = car.cap < CAP_OFF;
        let (mut cap_binding, mut in_pit) = (false, false);
        if capped {
            (v, cap_binding, in_pit) = car.apply_cap(v, dt);
        }
        // Neutralised (safety car, VSC), in the pit or accelerating out: no DRS.
        let neutral = sc || (capped && car.pit != Pit::Armed);
        let mut s1 = s0 + v * dt;
        if s1 >= tr.len_f {
            s1 -= tr.len_f;
            car.lap += 1;
            car.lap_factor = lap_factor(key, ci, car.lap);
            if car.lap == car.pit_lap {
                car.pit = Pit::Armed;
                car.cap = car.cap.min(CAP_ARMED);
            }
        }
        if capped && car.pit == Pit::Armed && s0 < PIT_ENTRY_M && PIT_ENTRY_M <= s1 {
            car.pit = Pit::Entry;
            car.cap = v;
        }
        car.s = s1;
        let i1 = (s1 as usize).min(tr.len - 1);
        let phase = tr.phase[i1];
        let braking = phase == PHASE_BRAKE;

        // Accelerations, smoothed like an IMU's output.
        let a = (v - car.prev_v) * k.rate;
        car.prev_v = v;
        car.long_g += (a * INV_G - car.long_g) * k.long;
        let lat = v * v * tr.inv_r[i1] * INV_G;
        car.lat_g += (lat - car.lat_g) * k.lat;

        // DRS state machine: detection → eligible → open in the zone → off.
        let enabled = car.lap >= 1;
        let mut detect = None;
        for (z, zone) in tr.drs.iter().enumerate() {
            if crossed(s0, s1, zone.0) {
                detect = Some(z);
            }
        }
        car.drs = match car.drs {
            _ if neutral => Drs::Off,
            Drs::Eligible(z) | Drs::Open(z)
                if crossed(s0, s1, tr.drs[z].2) || (in_zone(s1, tr.drs[z]) && braking) =>
            {
                Drs::Off
            }
            Drs::Eligible(z) if in_zone(s1, tr.drs[z]) => Drs::Open(z),
            other => other,
        };
        if car.drs_boost > 0.0 || matches!(car.drs, Drs::Open(_)) {
            if matches!(car.drs, Drs::Open(_)) {
                car.drs_boost += (0.04 - car.drs_boost) * k.boost_open;
            } else {
                car.drs_boost -= car.drs_boost * k.boost_close;
            }
        }

        let speed = round_to(v * 3.6 + 0.35 * noise(key, g, S_SPEED), 1.0).clamp(0.0, 400.0);
        let gear = gear_for(speed);
        let rpm = round_to(
            SHIFT_RPM * speed / GEAR_TOP[gear] + 40.0 * noise(key, g, S_RPM),
            1.0,
        )
        .clamp(4_000.0, 13_500.0);
        let (throttle, brake) = if neutral {
            match phase {
                _ if car.pit == Pit::Entry => (0.0, 100.0),
                // Holding the pit-lane limit, or accelerating out of the lane.
                _ if cap_binding && car.pit != Pit::Racing => {
                    (round_to(18.0 + 3.0 * noise(key, g, S_THROTTLE), 1.0), 0.0)
                }
                _ if cap_binding => (100.0, 0.0),
                PHASE_BRAKE => (0.0, 100.0),
                // Behind the safety car: well off the throttle.
                PHASE_POWER if sc => (round_to(35.0 + 5.0 * noise(key, g, S_THROTTLE), 1.0), 0.0),
                c if sc => (
                    round_to(0.5 * c as f64 + 3.0 * noise(key, g, S_THROTTLE), 1.0)
                        .clamp(0.0, 100.0),
                    0.0,
                ),
                c => racing_throttle(c, key, g),
            }
        } else {
            racing_throttle(phase, key, g)
        };

        // Slow states.
        let lg = car.lat_g;
        let front_load = lg.abs() * 5.0 + (-car.long_g).max(0.0) * 4.0;
        let rear_load = lg.abs() * 4.0 + car.long_g.max(0.0) * 8.0;
        // A right-hander (lat > 0) loads the left tyres.
        let (left, right) = if lg > 0.0 { (1.3, 0.7) } else { (0.7, 1.3) };
        let base = 82.0 + v * (1.0 / 12.0);
        let targets = [
            base + front_load * left,
            base + front_load * right,
            base + rear_load * left,
            base + rear_load * right,
        ];
        for (t, target) in car.tyre.iter_mut().zip(targets) {
            *t += (target - *t) * k.tyre;
        }
        let cool = (0.15 + v * (1.0 / 400.0)) * dt;
        for (w, t) in car.brake_t.iter_mut().enumerate() {
            // Fronts take most of the braking energy.
            let heat = match (braking, w < 2) {
                (false, _) => 0.0,
                (true, true) => 4.0 * v,
                (true, false) => 2.8 * v,
            };
            *t = (*t + heat * dt - (*t - 100.0) * cool).clamp(20.0, 1_400.0);
        }
        car.ers += if braking {
            2.0
        } else if throttle >= 99.0 && speed > 120.0 {
            -0.5
        } else {
            0.1
        } * dt;
        car.ers = car.ers.clamp(0.0, 100.0);
        let thr = throttle * 0.01;
        let fuel_flow = (8.0 + 92.0 * thr * (rpm * (1.0 / 10_500.0)).min(1.0)).min(100.0);
        car.fuel = (car.fuel - fuel_flow * (1.0 / 3600.0) * dt).max(0.0);
        car.oil += (95.0 + 20.0 * thr - car.oil) * k.oil;
        car.water += (88.0 + 15.0 * thr - car.water) * k.water;

        let drs = match car.drs {
            Drs::Off => 0.0,
            Drs::Eligible(_) => 8.0,
            Drs::Open(_) => 12.0,
        };
        let core = Core {
            g,
            ts,
            deliver_ts: ts,
            car: ci as u32,
            speed: speed as f32,
            rpm: rpm as f32,
            throttle: throttle as f32,
            brake: brake as f32,
            gear: gear as f32,
            drs,
            lat_g: car.lat_g as f32,
            long_g: car.long_g as f32,
            inv_r: tr.inv_r[i1] as f32,
            tyre: car.tyre.map(|t| t as f32),
            brake_t: car.brake_t.map(|t| t as f32),
            ers: car.ers as f32,
            fuel_flow: fuel_flow as f32,
            fuel: car.fuel as f32,
            lap_dist: s1 as f32,
            lap: (car.lap + 1).max(0) as f32,
            oil: car.oil as f32,
            water: car.water as f32,
        };

        if in_pit {
            self.pit_step(ci, ts);
        }
        // Detection point crossed: eligible when within 1 s of the car ahead.
        if let Some(z) = detect
            && enabled
            && !neutral
            && !matches!(self.cars[ci].drs, Drs::Open(_))
        {
            let gap_m = self.gap_ahead_m(ci);
            let car = &mut self.cars[ci];
            car.drs = if gap_m < v.max(1.0) * 1.0 {
                Drs::Eligible(z)
            } else {
                Drs::Off
            };
        }
        core
    }

    /// Distance (m) to the nearest car ahead on track (lapped cars count, as in F1).
    fn gap_ahead_m(&self, ci: usize) -> f64 {
        let l = self.track.len_f;
        let me = self.cars[ci].s;
        self.cars
            .iter()
            .enumerate()
            .filter(|&(j, c)| j != ci && !c.retired)
            .map(|(_, c)| (c.s - me).rem_euclid(l))
            .filter(|&d| d > 0.0)
            .fold(f64::INFINITY, f64::min)
    }

    /// Generates the next tick (or flushes the held rows at the end).
    /// Returns false when there is nothing left.
    fn produce(&mut self) -> bool {
        if self.tick < self.ticks {
            let k = self.tick;
            let ts = self.ts_of.0 + (k as u128 * 1000 / self.ts_of.1) as i64;
            let n = self.cars.len() as u64;
            self.race_control(k, ts);
            if k >= self.next_retire {
                self.retire(k, ts);
            }
            let any_retired = self.any_retired;
            let (sc, sc_f) = (self.sc, self.sc_f);
            for ci in 0..self.cars.len() {
                if any_retired && self.cars[ci].retired {
                    continue;
                }
                let g = k * n + ci as u64;
                let core = self.step_car(ci, g, ts, sc, sc_f);
                let h = mix64(self.ooo_key.wrapping_add(g.wrapping_mul(PHI)));
                if (h >> 11) < self.ooo_threshold {
                    let delay = 1 + mix64(h ^ K2) % self.max_delay;
                    self.held.push(Held {
                        release: ts + delay as i64,
                        core,
                    });
                } else {
                    self.ready.push_back(core);
                }
            }
            while let Some(top) = self.held.peek()
                && top.release <= ts
            {
                let mut core = self.held.pop().expect("peeked").core;
                core.deliver_ts = ts;
                self.ready.push_back(core);
            }
            if k + 1 == self.ticks {
                self.emit(ts, EventKind::Flag, None, "CHEQUERED");
            }
            self.last_ts = ts;
            self.tick += 1;
            true
        } else if !self.held.is_empty() {
            while let Some(h) = self.held.pop() {
                let mut core = h.core;
                core.deliver_ts = self.last_ts;
                self.ready.push_back(core);
            }
            true
        } else {
            false
        }
    }

    /// The next row in delivery order, without taking it.
    #[inline]
    fn peek(&mut self) -> Option<&Core> {
        while self.ready.is_empty() {
            if !self.produce() {
                return None;
            }
        }
        self.ready.front()
    }

    #[inline]
    fn next(&mut self) -> Option<Core> {
        self.peek()?;
        self.delivered += 1;
        self.ready.pop_front()
    }
}

// ---------------------------------------------------------------------------
// Channels.

/// How a channel's value is computed from a [`Core`].
#[derive(Debug, Clone, Copy)]
enum Kind {
    Speed,
    Rpm,
    Throttle,
    Brake,
    Gear,
    Drs,
    TyreTemp(usize),
    BrakeTemp(usize),
    Susp(usize),
    Ers,
    FuelFlow,
    FuelMass,
    GLat,
    GLong,
    Steering,
    LapDistance,
    Lap,
    Oil,
    Water,
    /// A generic sensor: `off + a·speed + b·throttle + c·g_lat + amp·noise`.
    Sensor {
        off: f64,
        a: f64,
        b: f64,
        c: f64,
        amp: f64,
    },
}

struct ExtraChannel {
    name: String,
    unit: Option<&'static str>,
    ty: ChannelType,
    min: f64,
    max: f64,
    kind: Kind,
}

/// Named extra channels, in schema order after the six F1 ones.
const NAMED_EXTRAS: &[(&str, &str, f64, f64, Kind)] = &[
    ("tyre_temp_fl", "°C", 0.0, 200.0, Kind::TyreTemp(0)),
    ("tyre_temp_fr", "°C", 0.0, 200.0, Kind::TyreTemp(1)),
    ("tyre_temp_rl", "°C", 0.0, 200.0, Kind::TyreTemp(2)),
    ("tyre_temp_rr", "°C", 0.0, 200.0, Kind::TyreTemp(3)),
    ("brake_temp_fl", "°C", 0.0, 1_500.0, Kind::BrakeTemp(0)),
    ("brake_temp_fr", "°C", 0.0, 1_500.0, Kind::BrakeTemp(1)),
    ("brake_temp_rl", "°C", 0.0, 1_500.0, Kind::BrakeTemp(2)),
    ("brake_temp_rr", "°C", 0.0, 1_500.0, Kind::BrakeTemp(3)),
    ("susp_fl", "mm", 0.0, 100.0, Kind::Susp(0)),
    ("susp_fr", "mm", 0.0, 100.0, Kind::Susp(1)),
    ("susp_rl", "mm", 0.0, 100.0, Kind::Susp(2)),
    ("susp_rr", "mm", 0.0, 100.0, Kind::Susp(3)),
    ("ers_soc", "%", 0.0, 100.0, Kind::Ers),
    ("fuel_flow", "kg/h", 0.0, 110.0, Kind::FuelFlow),
    ("fuel_mass", "kg", 0.0, 110.0, Kind::FuelMass),
    ("g_lat", "g", -8.0, 8.0, Kind::GLat),
    ("g_long", "g", -8.0, 8.0, Kind::GLong),
    ("steering", "deg", -270.0, 270.0, Kind::Steering),
    ("lap_distance", "m", 0.0, 10_000.0, Kind::LapDistance),
    ("lap", "", 0.0, 1_000_000.0, Kind::Lap),
    ("oil_temp", "°C", 0.0, 200.0, Kind::Oil),
    ("water_temp", "°C", 0.0, 200.0, Kind::Water),
];

/// Channel `c` (≥ 6) of the schema: a named extra, then `sensor_NNN`.
fn extra_channel(c: usize) -> ExtraChannel {
    let i = c - 6;
    if let Some(&(name, unit, min, max, kind)) = NAMED_EXTRAS.get(i) {
        let ty = if matches!(kind, Kind::Lap) {
            ChannelType::Int
        } else {
            ChannelType::Float
        };
        return ExtraChannel {
            name: name.to_string(),
            unit: (!unit.is_empty()).then_some(unit),
            ty,
            min,
            max,
            kind,
        };
    }
    let n = i - NAMED_EXTRAS.len() + 1;
    // Fixed per-channel parameters (independent of the seed: they define the channel).
    let u = |s: u64| (noise(0x5EED_5EED, n as u64, s) + 1.0) * 0.5;
    ExtraChannel {
        name: format!("sensor_{n:03}"),
        unit: None,
        ty: ChannelType::Float,
        min: 0.0,
        max: 1_000.0,
        kind: Kind::Sensor {
            off: 100.0 + 400.0 * u(1),
            a: u(2),
            b: 0.1 * u(3),
            c: 20.0 * u(4) - 10.0,
            amp: 0.2 + 4.8 * u(5),
        },
    }
}

fn channel_kind(c: usize) -> Kind {
    match c {
        0 => Kind::Speed,
        1 => Kind::Rpm,
        2 => Kind::Throttle,
        3 => Kind::Brake,
        4 => Kind::Gear,
        5 => Kind::Drs,
        _ => extra_channel(c).kind,
    }
}

/// Appends channel `c`'s values for the rows of `block` to `col`.
/// The `match` is outside the loops so each loop is a tight, specialised one.
fn fill_column(kind: Kind, c: usize, key: u64, block: &[Core], col: &mut Vec<f64>) {
    let s = S_EXTRA + c as u64;
    let nz = |r: &Core| noise(key, r.g, s);
    macro_rules! fill {
        (|$r:ident| $e:expr) => {
            col.extend(block.iter().map(|$r| $e))
        };
    }
    match kind {
        Kind::Speed => fill!(|r| r.speed as f64),
        Kind::Rpm => fill!(|r| r.rpm as f64),
        Kind::Throttle => fill!(|r| r.throttle as f64),
        Kind::Brake => fill!(|r| r.brake as f64),
        Kind::Gear => fill!(|r| r.gear as f64),
        Kind::Drs => fill!(|r| r.drs as f64),
        Kind::TyreTemp(w) => {
            fill!(|r| round_to((r.tyre[w] as f64 + 0.15 * nz(r)).clamp(0.0, 200.0), 10.0))
        }
        Kind::BrakeTemp(w) => {
            fill!(|r| round_to((r.brake_t[w] as f64 + 3.0 * nz(r)).clamp(0.0, 1_500.0), 1.0))
        }
        Kind::Susp(w) => fill!(|r| {
            let v = r.speed as f64 / 3.6;
            let lat = r.lat_g as f64;
            let long = r.long_g as f64;
            // Right-hander (lat > 0) compresses the left side; braking the front.
            let roll = if w % 2 == 0 { 2.5 * lat } else { -2.5 * lat };
            let pitch = if w < 2 { -3.0 * long } else { 3.0 * long };
            let x = 20.0 + 0.0025 * v * v + roll + pitch + 0.3 * nz(r);
            round_to(x.clamp(0.0, 100.0), 10.0)
        }),
        Kind::Ers => fill!(|r| round_to(r.ers as f64, 10.0).clamp(0.0, 100.0)),
        Kind::FuelFlow => fill!(|r| round_to(r.fuel_flow as f64, 10.0).clamp(0.0, 110.0)),
        Kind::FuelMass => fill!(|r| round_to(r.fuel as f64, 100.0).clamp(0.0, 110.0)),
        Kind::GLat => fill!(|r| round_to((r.lat_g as f64 + 0.03 * nz(r)).clamp(-8.0, 8.0), 100.0)),
        Kind::GLong => {
            fill!(|r| round_to((r.long_g as f64 + 0.03 * nz(r)).clamp(-8.0, 8.0), 100.0))
        }
        Kind::Steering => fill!(|r| {
            // Wheel angle ≈ wheelbase / radius, steering ratio 12:1.
            let deg = (3.6 * r.inv_r as f64).atan().to_degrees() * 12.0 + 0.5 * nz(r);
            round_to(deg.clamp(-270.0, 270.0), 10.0)
        }),
        Kind::LapDistance => fill!(|r| round_to(r.lap_dist as f64, 10.0).clamp(0.0, 10_000.0)),
        Kind::Lap => fill!(|r| r.lap as f64),
        Kind::Oil => fill!(|r| round_to(r.oil as f64 + 0.1 * nz(r), 10.0).clamp(0.0, 200.0)),
        Kind::Water => fill!(|r| round_to(r.water as f64 + 0.1 * nz(r), 10.0).clamp(0.0, 200.0)),
        Kind::Sensor { off, a, b, c, amp } => fill!(|r| {
            let x =
                off + a * r.speed as f64 + b * r.throttle as f64 + c * r.lat_g as f64 + amp * nz(r);
            round_to(x.clamp(0.0, 1_000.0), 100.0)
        }),
    }
}

// ---------------------------------------------------------------------------
// The source.

/// Rows are filled column by column in blocks of this many (a block's records
/// stay in L1/L2 while all its columns are written).
const BLOCK: usize = 512;

/// The simulator as a [`Source`]: yields chunks of at most `chunk_rows` rows in
/// delivery order, filling only projected channels. `lines` is the 1-based
/// delivery index of each row, `end_position` the number of rows delivered.
pub struct Simulator {
    cfg: SimConfig,
    schema: Schema,
    opts: SourceOptions,
    track: Arc<Track>,
    race: RaceConfig,
    total_rows: u64,
    generator: Generator,
    kinds: Vec<Option<Kind>>,
    car_names: Vec<Arc<str>>,
    block: Vec<Core>,
    slots: Vec<u32>,
    /// Wall-clock anchor for pacing: (instant, delivery event time) of the first row.
    pace_anchor: Option<(Instant, EventTime)>,
}

impl Simulator {
    /// A simulator at position 0, race control as `cfg.race` says. Fails when the
    /// config is invalid.
    pub fn new(cfg: SimConfig, opts: SourceOptions) -> Result<Simulator, ConfigError> {
        let race = cfg.race.clone();
        Simulator::with_race(cfg, race, opts)
    }

    /// A simulator at position 0 whose race control follows `race` (overriding `cfg.race`).
    pub fn with_race(
        mut cfg: SimConfig,
        race: RaceConfig,
        opts: SourceOptions,
    ) -> Result<Simulator, ConfigError> {
        cfg.race = race.clone();
        cfg.validate()?;
        race.validate()?;
        let schema = cfg.schema();
        let track = Arc::new(Track::circuit());
        let kinds = (0..cfg.channels)
            .map(|c| {
                opts.projection
                    .get(c)
                    .copied()
                    .unwrap_or(true)
                    .then(|| channel_kind(c))
            })
            .collect();
        let car_names = cfg
            .car_numbers()
            .iter()
            .map(|n| Arc::from(n.to_string()))
            .collect();
        tracing::debug!(
            cars = cfg.cars,
            rate_hz = cfg.rate_hz,
            channels = cfg.channels,
            rows = cfg.total_rows(),
            lap_s = track.lap_time(),
            "simulator ready"
        );
        let generator = Generator::new(&cfg, &race, track.clone());
        Ok(Simulator {
            total_rows: generator.plan.total_rows(cfg.ticks()),
            generator,
            race,
            slots: vec![u32::MAX; cfg.cars],
            cfg,
            schema,
            opts,
            track,
            kinds,
            car_names,
            block: Vec::with_capacity(BLOCK),
            pace_anchor: None,
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    pub fn race(&self) -> &RaceConfig {
        &self.race
    }

    /// Rows the whole run delivers (for progress bars): [`SimConfig::total_rows`]
    /// less the ticks after retirements.
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    /// Rows delivered so far (the source position).
    pub fn position(&self) -> u64 {
        self.generator.delivered
    }

    /// Lap time (s) of the fastest car without DRS.
    pub fn reference_lap_s(&self) -> f64 {
        self.track.lap_time()
    }

    /// Length of the simulated circuit in metres (`lap_distance` runs from 0 to this).
    pub fn track_length_m(&self) -> f64 {
        self.track.length_m()
    }

    /// The DRS zones as `(detection, start, end)` lap distances in metres.
    pub fn drs_zones(&self) -> &[(f64, f64, f64)] {
        &self.track.drs
    }

    /// Waits until the next row is due under pacing. Returns false (without
    /// waiting) when it is not yet due and `may_cut` allows ending the chunk.
    fn pace_gate(&mut self, deliver_ts: EventTime, may_cut: bool) -> bool {
        let Some(pace) = self.cfg.pace else {
            return true;
        };
        let (t0, ts0) = *self
            .pace_anchor
            .get_or_insert_with(|| (Instant::now(), deliver_ts));
        let due = t0 + Duration::from_secs_f64((deliver_ts - ts0).max(0) as f64 / 1000.0 / pace);
        let now = Instant::now();
        if now >= due {
            return true;
        }
        if may_cut {
            return false;
        }
        std::thread::sleep(due - now);
        true
    }

    /// Moves the queued events with position `<= upto` into `chunk`, before row `at`.
    #[cold]
    fn take_events(&mut self, chunk: &mut RowChunk, at: usize, upto: u64) {
        while let Some(e) = self.generator.pop_event(upto) {
            chunk.events.push((at, e));
        }
    }

    fn emit_block(&mut self, chunk: &mut RowChunk) {
        let first_line = self.generator.delivered - self.block.len() as u64 + 1;
        for (i, r) in self.block.iter().enumerate() {
            chunk.ts.push(r.ts);
            let slot = &mut self.slots[r.car as usize];
            if *slot == u32::MAX {
                chunk.key_names.push(self.car_names[r.car as usize].clone());
                *slot = (chunk.key_names.len() - 1) as u32;
            }
            chunk.keys.push(*slot);
            chunk.lines.push(first_line + i as u64);
        }
        for (c, kind) in self.kinds.iter().enumerate() {
            if let Some(kind) = *kind {
                fill_column(
                    kind,
                    c,
                    self.generator.key,
                    &self.block,
                    &mut chunk.columns[c],
                );
            }
        }
        self.block.clear();
    }
}

impl Source for Simulator {
    fn name(&self) -> &str {
        "simulator"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        let remaining = self.total_rows() - self.generator.delivered;
        let want = self.opts.chunk_rows.max(1).min(remaining as usize);
        if want == 0 {
            return Ok(None);
        }
        let proj: Vec<bool> = self.kinds.iter().map(Option::is_some).collect();
        let mut chunk = RowChunk::with_capacity(self.cfg.channels, want, &proj);
        self.slots.fill(u32::MAX);
        let mut taken = 0;
        'rows: while taken < want {
            let Some(next) = self.generator.peek() else {
                break;
            };
            let deliver_ts = next.deliver_ts;
            if !self.pace_gate(deliver_ts, taken > 0) {
                break 'rows;
            }
            if self.generator.next_event <= self.generator.delivered {
                self.take_events(&mut chunk, taken, self.generator.delivered);
            }
            let row = self.generator.next().expect("peeked");
            self.block.push(row);
            taken += 1;
            if self.block.len() == BLOCK {
                self.emit_block(&mut chunk);
            }
        }
        if !self.block.is_empty() {
            self.emit_block(&mut chunk);
        }
        if chunk.is_empty() {
            return Ok(None);
        }
        if self.generator.delivered == self.total_rows {
            // The last chunk also carries the events after the last row.
            while self.generator.produce() {}
            debug_assert!(self.generator.ready.is_empty(), "rows beyond total_rows");
            self.take_events(&mut chunk, taken, u64::MAX);
        }
        chunk.end_position = self.generator.delivered;
        chunk.debug_assert_consistent();
        Ok(Some(chunk))
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        let total = self.total_rows;
        if position > total {
            return Err(SourceError::Seek {
                source_name: self.name().to_string(),
                position,
                reason: format!("the simulation has only {total} rows"),
            });
        }
        if position < self.generator.delivered {
            self.generator = Generator::new(&self.cfg, &self.race, self.track.clone());
        }
        while self.generator.delivered < position {
            self.generator.next();
        }
        // Events before row `position` went out with the rows before it (and those
        // after the last row with the last chunk).
        let upto = if position == total {
            u64::MAX
        } else {
            position.saturating_sub(1)
        };
        if position > 0 {
            while self.generator.pop_event(upto).is_some() {}
        }
        self.pace_anchor = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(secs: u64, rate: u32, channels: usize) -> SimConfig {
        SimConfig {
            rate_hz: rate,
            duration: ConfigDuration::from_millis(secs * 1000),
            channels,
            ..SimConfig::default()
        }
    }

    fn sim(c: &SimConfig, chunk_rows: usize) -> Simulator {
        let schema = c.schema();
        let mut opts = SourceOptions::all(&schema);
        opts.chunk_rows = chunk_rows;
        Simulator::new(c.clone(), opts).unwrap()
    }

    /// One flattened row: (ts, car, line, values).
    type Row = (i64, String, u64, Vec<f64>);

    fn drain(s: &mut Simulator) -> (Vec<Row>, Vec<u64>) {
        let mut rows = Vec::new();
        let mut ends = Vec::new();
        while let Some(ch) = s.next_chunk().unwrap() {
            for i in 0..ch.len() {
                let vals = ch
                    .columns
                    .iter()
                    .map(|col| col.get(i).copied().unwrap_or(f64::NAN))
                    .collect();
                rows.push((
                    ch.ts[i],
                    ch.key_names[ch.keys[i] as usize].to_string(),
                    ch.lines[i],
                    vals,
                ));
            }
            ends.push(ch.end_position);
        }
        (rows, ends)
    }

    /// Rows and events, each event with its delivery position (rows before it).
    type Events = Vec<(u64, BroadcastEvent)>;

    fn drain_events(s: &mut Simulator) -> (Vec<Row>, Events) {
        let mut rows = Vec::new();
        let mut events = Vec::new();
        let mut at = s.position();
        while let Some(ch) = s.next_chunk().unwrap() {
            ch.check_shape(&[]).unwrap();
            for (i, e) in &ch.events {
                events.push((at + *i as u64, e.clone()));
            }
            for i in 0..ch.len() {
                let vals = ch
                    .columns
                    .iter()
                    .map(|col| col.get(i).copied().unwrap_or(f64::NAN))
                    .collect();
                rows.push((
                    ch.ts[i],
                    ch.key_names[ch.keys[i] as usize].to_string(),
                    ch.lines[i],
                    vals,
                ));
            }
            at = ch.end_position;
        }
        (rows, events)
    }

    fn raced(c: &SimConfig, race: &RaceConfig, chunk_rows: usize) -> Simulator {
        let mut opts = SourceOptions::all(&c.schema());
        opts.chunk_rows = chunk_rows;
        Simulator::with_race(c.clone(), race.clone(), opts).unwrap()
    }

    /// 15 minutes at 10 Hz with frequent neutralisations, two stops per car and
    /// some retirements.
    fn busy_race() -> (SimConfig, RaceConfig) {
        let c = SimConfig {
            seed: 3,
            out_of_order_fraction: 0.05,
            max_delay_ms: 2_000,
            ..cfg(900, 10, 6)
        };
        let race = RaceConfig {
            safety_car_per_hour: 30.0,
            vsc_share: 0.4,
            pit_stops: 2,
            retirements_per_hour: 16.0,
        };
        (c, race)
    }

    fn of_kind(events: &Events, kind: EventKind) -> Vec<&BroadcastEvent> {
        events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.kind == kind)
            .collect()
    }

    /// `(from, to)` of every neutralisation (`to` = end of run when it never ends).
    fn neutralisations(events: &Events) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut open = None;
        for (_, e) in events {
            match (&e.kind, e.value.as_str()) {
                (EventKind::SafetyCar | EventKind::VirtualSafetyCar, "DEPLOYED") => {
                    assert!(open.is_none(), "overlapping neutralisations");
                    open = Some(e.ts);
                }
                (EventKind::SafetyCar | EventKind::VirtualSafetyCar, "ENDING") => {
                    out.push((open.take().expect("ENDING without DEPLOYED"), e.ts));
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            out.push((from, i64::MAX));
        }
        out
    }

    #[test]
    fn race_events_are_deterministic_and_independent_of_chunking() {
        let (c, race) = busy_race();
        let (rows, events) = drain_events(&mut raced(&c, &race, 64 * 1024));
        let kinds: std::collections::BTreeSet<_> =
            events.iter().map(|e| e.1.kind.clone()).collect();
        for k in [
            EventKind::Flag,
            EventKind::SafetyCar,
            EventKind::VirtualSafetyCar,
            EventKind::PitIn,
            EventKind::TyreChange,
            EventKind::PitOut,
            EventKind::Retirement,
        ] {
            assert!(kinds.contains(&k), "no {k:?} event in {events:?}");
        }
        // Delivered in event-time order, each before the first row of its tick.
        assert!(
            events
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1.ts <= w[1].1.ts)
        );
        for (at, e) in &events {
            let at = *at as usize;
            if at < rows.len() {
                assert!(rows[at].0 >= e.ts, "event {e:?} after a row of its tick");
            }
            if at > 0 && (c.out_of_order_fraction == 0.0) {
                assert!(rows[at - 1].0 < e.ts);
            }
        }
        for size in [1, 7, 4096] {
            let (r, e) = drain_events(&mut raced(&c, &race, size));
            assert_eq!(e, events, "chunk_rows {size}");
            assert_eq!(r, rows, "chunk_rows {size}");
        }
        let (r, e) = drain_events(&mut raced(&c, &race, 500));
        assert_eq!((r, e), (rows.clone(), events.clone()));
        let (_, other) = drain_events(&mut raced(&SimConfig { seed: 4, ..c }, &race, 4096));
        assert_ne!(other, events);
    }

    #[test]
    fn seek_delivers_each_event_exactly_once() {
        let (c, race) = busy_race();
        let c = SimConfig {
            duration: ConfigDuration::from_millis(400_000),
            ..c
        };
        let mut s = raced(&c, &race, 64 * 1024);
        let total = s.total_rows();
        let (rows, events) = drain_events(&mut s);
        assert_eq!(rows.len() as u64, total);
        let mut at: Vec<u64> = vec![0, 1, 2, 999, total - 1, total];
        for (p, _) in events.iter().skip(1).step_by(7) {
            at.extend([*p - 1, *p, *p + 1]);
        }
        for n in at {
            // An uninterrupted run cut at `n` (a chunk ending there), then a seek.
            let mut first = raced(&c, &race, n.max(1) as usize);
            let mut before = Vec::new();
            if n > 0 {
                let ch = first.next_chunk().unwrap().unwrap();
                assert_eq!(ch.end_position, n);
                before.extend(ch.events.iter().map(|(i, e)| (*i as u64, e.clone())));
            }
            let mut second = raced(&c, &race, 333);
            second.seek(n).unwrap();
            let (rest, after) = drain_events(&mut second);
            assert_eq!(rest.len() as u64, total - n);
            before.extend(after);
            assert_eq!(before, events, "seek {n}");
        }
    }

    #[test]
    fn safety_car_slows_the_field() {
        let (c, race) = busy_race();
        let c = SimConfig {
            out_of_order_fraction: 0.0,
            ..c
        };
        let race = RaceConfig {
            pit_stops: 0,
            retirements_per_hour: 0.0,
            ..race
        };
        let (rows, events) = drain_events(&mut raced(&c, &race, 64 * 1024));
        let periods = neutralisations(&events);
        assert!(periods.len() >= 2, "{periods:?}");
        // Inside: after the 4 s slow-down; outside: 5 s clear of every period.
        let (mut inside, mut outside) = (Vec::new(), Vec::new());
        for (ts, _, _, v) in &rows {
            if periods.iter().any(|&(a, b)| a + 5_000 <= *ts && *ts < b) {
                inside.push(v);
            } else if periods
                .iter()
                .all(|&(a, b)| *ts < a - 1_000 || *ts >= b.saturating_add(6_000))
            {
                outside.push(v);
            }
        }
        let mean = |v: &[&Vec<f64>], c: usize| v.iter().map(|r| r[c]).sum::<f64>() / v.len() as f64;
        let (si, so) = (mean(&inside, 0), mean(&outside, 0));
        assert!(
            si < 0.7 * so,
            "mean speed {si:.1} under SC vs {so:.1} racing"
        );
        assert!(
            mean(&inside, 2) < 0.7 * mean(&outside, 2),
            "throttle does not drop"
        );
        assert!(inside.iter().all(|r| r[5] == 0.0), "DRS under a safety car");
        assert!(outside.iter().any(|r| r[5] == 12.0));
        // Flags around them: YELLOW with the deployment, GREEN with the end.
        for (at, e) in &events {
            if e.value == "DEPLOYED" {
                assert!(events.contains(&(
                    *at,
                    BroadcastEvent {
                        ts: e.ts,
                        kind: EventKind::Flag,
                        car: None,
                        value: "YELLOW".into()
                    }
                )));
            }
        }
    }

    #[test]
    fn pit_lane_is_slow_and_every_car_stops() {
        let (c, race) = busy_race();
        let race = RaceConfig {
            retirements_per_hour: 0.0,
            pit_stops: 1,
            ..race
        };
        let (rows, events) = drain_events(&mut raced(&c, &race, 64 * 1024));
        let ins = of_kind(&events, EventKind::PitIn);
        assert_eq!(ins.len(), c.cars, "one stop per car");
        for pin in ins {
            let car = pin.car.clone().unwrap();
            let mine = |k: EventKind| {
                events
                    .iter()
                    .map(|(_, e)| e)
                    .find(|e| e.kind == k && e.car.as_ref() == Some(&car))
                    .unwrap_or_else(|| panic!("car {car}: no {k:?}"))
            };
            let out = mine(EventKind::PitOut);
            let tyre = mine(EventKind::TyreChange);
            let lane = out.ts - pin.ts;
            assert!(
                (20_000..=25_200).contains(&lane),
                "car {car}: {lane} ms in the lane"
            );
            assert!(pin.ts < tyre.ts && tyre.ts < out.ts);
            assert!(COMPOUNDS.contains(&tyre.value.as_str()));
            let in_lane: Vec<_> = rows
                .iter()
                .filter(|r| r.1 == car && pin.ts <= r.0 && r.0 < out.ts)
                .collect();
            assert!(in_lane.len() as i64 >= lane / 100 - 1);
            for r in in_lane {
                let v = &r.3;
                assert!(v[0] <= 80.0, "car {car} at {} km/h in the pit lane", v[0]);
                assert!(v[4] <= 2.0 && v[5] == 0.0, "gear {} drs {}", v[4], v[5]);
            }
        }
    }

    #[test]
    fn flags_open_and_close_the_race() {
        let (c, race) = busy_race();
        let (_, events) = drain_events(&mut raced(&c, &race, 10_000));
        let first = &events.first().unwrap().1;
        assert_eq!(
            (&first.kind, first.value.as_str()),
            (&EventKind::Flag, "GREEN")
        );
        assert_eq!(first.ts, c.start_ts_ms);
        let last = &events.last().unwrap().1;
        assert_eq!(
            (&last.kind, last.value.as_str()),
            (&EventKind::Flag, "CHEQUERED")
        );
        assert_eq!(last.ts, c.tick_ts(c.ticks() - 1));
        assert_eq!(
            events.iter().filter(|e| e.1.value == "CHEQUERED").count(),
            1
        );
        // Quiet race control: only the two flags, and the same rows as before.
        let (rows, quiet) = drain_events(&mut raced(&c, &RaceConfig::quiet(), 10_000));
        assert_eq!(quiet.len(), 2);
        assert_eq!(rows.len() as u64, c.total_rows());
        let (loud, _) = drain_events(&mut raced(&c, &race, 10_000));
        assert_ne!(loud.len(), rows.len(), "retirements shorten the run");
    }

    #[test]
    fn retired_car_sends_no_more_rows() {
        let (c, race) = busy_race();
        for ooo in [0.0, 0.05] {
            let c = SimConfig {
                out_of_order_fraction: ooo,
                ..c.clone()
            };
            let mut s = raced(&c, &race, 4096);
            let total = s.total_rows();
            assert!(total < c.total_rows());
            let (rows, events) = drain_events(&mut s);
            assert_eq!(rows.len() as u64, total);
            let gone: Vec<_> = events
                .iter()
                .filter(|(_, e)| e.kind == EventKind::Retirement)
                .collect();
            assert!(gone.len() >= 2, "{gone:?}");
            for (at, e) in gone {
                let car = e.car.as_deref().unwrap();
                assert!(RETIRE_REASONS.contains(&e.value.as_str()));
                let mine: Vec<_> = rows.iter().filter(|r| r.1 == car).collect();
                assert!(!mine.is_empty());
                assert!(mine.iter().all(|r| r.0 < e.ts), "car {car} after retiring");
                if ooo == 0.0 {
                    assert!(rows[*at as usize..].iter().all(|r| r.1 != car));
                }
                // Its pit events stop too.
                assert!(
                    !events
                        .iter()
                        .any(|(_, x)| x.ts > e.ts && x.car.as_deref() == Some(car))
                );
            }
        }
    }

    #[test]
    fn race_config_from_toml_and_validation() {
        let r: RaceConfig = toml::from_str("pit_stops = 2\nsafety_car_per_hour = 0.5\n").unwrap();
        assert_eq!(r.pit_stops, 2);
        assert_eq!(r.vsc_share, RaceConfig::default().vsc_share);
        assert!(toml::from_str::<RaceConfig>("pitstops = 2").is_err());
        r.validate().unwrap();
        for bad in [
            RaceConfig {
                safety_car_per_hour: -1.0,
                ..r.clone()
            },
            RaceConfig {
                retirements_per_hour: f64::NAN,
                ..r.clone()
            },
            RaceConfig {
                vsc_share: 2.0,
                ..r.clone()
            },
            RaceConfig {
                pit_stops: 9,
                ..r.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        // The default gives a neutralisation in a 10-minute run of the default seed.
        let c = SimConfig {
            duration: ConfigDuration::from_millis(600_000),
            ..SimConfig::default()
        };
        let plan = RacePlan::new(&c, &RaceConfig::default(), Track::circuit().lap_time());
        assert_eq!(plan.steps.iter().filter(|s| s.deploy).count(), 1);
    }

    #[test]
    fn schema_matches_f1_bench_and_extends() {
        let base = cfg(1, 10, 6).schema();
        assert_eq!(base, Schema::f1_bench());
        let big = cfg(1, 10, 300).schema();
        big.validate().unwrap();
        assert_eq!(big.channels.len(), 300);
        assert_eq!(&big.channels[..6], &Schema::f1_bench().channels[..]);
        assert_eq!(big.channels[6].name, "tyre_temp_fl");
        assert_eq!(big.channels[299].name, "sensor_272");
    }

    #[test]
    fn car_numbers_are_unique_for_big_fields() {
        let c = SimConfig {
            cars: 40,
            ..SimConfig::default()
        };
        let n = c.car_numbers();
        assert_eq!(n.len(), 40);
        assert_eq!(&n[..4], &[1, 11, 16, 55]);
        let set: std::collections::HashSet<_> = n.iter().collect();
        assert_eq!(set.len(), 40);
        assert!(n.iter().all(|&x| (1..=99).contains(&x)));
    }

    #[test]
    fn config_from_toml_with_defaults() {
        let c: SimConfig = toml::from_str("cars = 40\nduration = \"10m\"\nseed = 7\n").unwrap();
        assert_eq!(c.cars, 40);
        assert_eq!(c.duration_ms().unwrap(), 600_000);
        assert_eq!(c.rate_hz, 240);
        assert_eq!(c.channels, 6);
        assert!(toml::from_str::<SimConfig>("carz = 3").is_err());
        let c: SimConfig = toml::from_str("cars = 4\n[race]\npit_stops = 2\n").unwrap();
        assert_eq!(c.race.pit_stops, 2);
        assert_eq!(c.race.vsc_share, RaceConfig::default().vsc_share);
        let d = SimConfig::default();
        assert_eq!(d.total_rows(), 4_800_000);
        assert!(
            SimConfig {
                channels: 5,
                ..d.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            SimConfig {
                rate_hz: 0,
                ..d.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            SimConfig {
                out_of_order_fraction: 1.5,
                ..d
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn ticks_use_exact_integer_time() {
        let c = cfg(1, 240, 6);
        assert_eq!(c.ticks(), 240);
        let ts: Vec<i64> = (0..7).map(|k| c.tick_ts(k)).collect();
        assert_eq!(ts, vec![0, 4, 8, 12, 16, 20, 25]);
        assert_eq!(c.tick_ts(240), 1000);
        let odd = cfg(1, 183, 6);
        assert_eq!(odd.ticks(), 183);
        assert!(odd.tick_ts(182) < 1000);
    }

    #[test]
    fn lap_is_plausible() {
        let t = Track::circuit();
        let lap = t.lap_time();
        assert!((78.0..92.0).contains(&lap), "lap time {lap:.1} s");
        assert!((5_000.0..6_000.0).contains(&t.length_m()));
    }

    #[test]
    fn same_seed_same_chunks_and_other_seed_differs() {
        let c = cfg(20, 50, 30);
        let mut a = sim(&c, 1000);
        let mut b = sim(&c, 1000);
        loop {
            let (x, y) = (a.next_chunk().unwrap(), b.next_chunk().unwrap());
            assert_eq!(x, y);
            if x.is_none() {
                break;
            }
        }
        let (ra, _) = drain(&mut sim(&c, 1000));
        let (rb, _) = drain(&mut sim(&SimConfig { seed: 2, ..c }, 1000));
        assert_eq!(ra.len(), rb.len());
        assert_ne!(ra, rb);
    }

    #[test]
    fn chunk_size_does_not_change_rows() {
        let c = SimConfig {
            out_of_order_fraction: 0.1,
            ..cfg(30, 60, 12)
        };
        let (base, ends) = drain(&mut sim(&c, 64 * 1024));
        assert_eq!(base.len() as u64, c.total_rows());
        assert_eq!(*ends.last().unwrap(), c.total_rows());
        for size in [1, 7, 511, 512, 513, 5000] {
            let (rows, ends) = drain(&mut sim(&c, size));
            assert_eq!(rows, base, "chunk_rows {size}");
            assert_eq!(ends.len(), (base.len()).div_ceil(size));
        }
        for (i, r) in base.iter().enumerate() {
            assert_eq!(r.2, i as u64 + 1, "lines are delivery indices");
        }
    }

    #[test]
    fn seek_resumes_exactly() {
        let c = SimConfig {
            out_of_order_fraction: 0.2,
            max_delay_ms: 500,
            ..cfg(10, 100, 8)
        };
        let (all, _) = drain(&mut sim(&c, 333));
        for n in [0, 1, 19, 20, 777, all.len() as u64 - 1, all.len() as u64] {
            let mut s = sim(&c, 250);
            s.seek(n).unwrap();
            let (rest, ends) = drain(&mut s);
            assert_eq!(&rest[..], &all[n as usize..], "seek {n}");
            if !rest.is_empty() {
                assert_eq!(*ends.last().unwrap(), all.len() as u64);
            }
        }
        // Seeking backwards after reading, and past the end.
        let mut s = sim(&c, 100);
        s.next_chunk().unwrap();
        s.next_chunk().unwrap();
        s.seek(50).unwrap();
        assert_eq!(drain(&mut s).0, all[50..]);
        assert!(sim(&c, 10).seek(all.len() as u64 + 1).is_err());
    }

    #[test]
    fn projection_leaves_unused_columns_empty() {
        let c = cfg(5, 20, 30);
        let schema = c.schema();
        let mut opts = SourceOptions::all(&schema);
        opts.projection = (0..30).map(|i| i == 0 || i == 17).collect();
        let mut s = Simulator::new(c.clone(), opts).unwrap();
        let ch = s.next_chunk().unwrap().unwrap();
        let full = sim(&c, 64 * 1024).next_chunk().unwrap().unwrap();
        for (i, col) in ch.columns.iter().enumerate() {
            if i == 0 || i == 17 {
                assert_eq!(col, &full.columns[i]);
            } else {
                assert!(col.is_empty());
            }
        }
    }

    #[test]
    fn physics_is_consistent() {
        // 250 s: DRS becomes available from the third lap.
        let c = SimConfig {
            out_of_order_fraction: 0.0,
            ..cfg(250, 20, 30)
        };
        let schema = c.schema();
        let ld = schema.channel_index("lap_distance").unwrap();
        let mut s = sim(&c, 64 * 1024);
        let zones = s.drs_zones().to_vec();
        let (rows, _) = drain(&mut s);
        let mut gears_at: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
        let (mut braking, mut open, mut eligible, mut shifts) = (0, 0, 0, 0);
        let mut last_gear: std::collections::HashMap<String, f64> = Default::default();
        for (_, car, _, v) in &rows {
            let (speed, rpm, thr, brake, gear, drs) = (v[0], v[1], v[2], v[3], v[4], v[5]);
            assert!(brake == 0.0 || brake == 100.0);
            if brake == 100.0 {
                braking += 1;
                assert_eq!(thr, 0.0, "braking rows have no throttle");
            }
            assert!((0.0..=100.0).contains(&thr) && thr.fract() == 0.0);
            assert!((1.0..=8.0).contains(&gear));
            assert!((4_000.0..=13_500.0).contains(&rpm), "rpm {rpm}");
            assert!(
                speed.fract() == 0.0 && (40.0..=380.0).contains(&speed),
                "speed {speed}"
            );
            let e = gears_at.entry(speed as i64).or_insert((gear, gear));
            e.0 = e.0.min(gear);
            e.1 = e.1.max(gear);
            assert!([0.0, 8.0, 12.0].contains(&drs), "drs {drs}");
            if drs == 12.0 {
                open += 1;
                let d = v[ld];
                assert!(
                    zones.iter().any(|z| z.1 <= d + 0.1 && d <= z.2 + 0.1),
                    "DRS open at {d} m, outside every zone"
                );
            }
            if drs == 8.0 {
                eligible += 1;
            }
            if let Some(g) = last_gear.insert(car.clone(), gear)
                && g != gear
            {
                shifts += 1;
            }
        }
        // Gear is non-decreasing in speed: the top gear seen at a speed never
        // exceeds the lowest gear seen at any higher speed.
        let mut max_so_far = 0.0;
        for (_, (lo, hi)) in gears_at {
            assert!(lo >= max_so_far, "gear not monotone in speed");
            max_so_far = f64::max(max_so_far, hi);
        }
        let n = rows.len();
        assert!(
            braking > n / 20 && braking < n / 3,
            "braking {braking} of {n}"
        );
        assert!(
            open > 0 && eligible > 0,
            "DRS never used: open {open}, eligible {eligible}"
        );
        assert!(shifts > 20 * 2 * 10, "too few gear shifts: {shifts}");
    }

    #[test]
    fn out_of_order_fraction_and_lateness() {
        let c = SimConfig {
            out_of_order_fraction: 0.05,
            max_delay_ms: 3_000,
            ..cfg(60, 100, 6)
        };
        let (rows, _) = drain(&mut sim(&c, 10_000));
        let mut max_ts = i64::MIN;
        let (mut ooo, mut beyond_2s) = (0usize, 0usize);
        for r in &rows {
            if r.0 < max_ts {
                ooo += 1;
                if max_ts - r.0 > 2_000 {
                    beyond_2s += 1;
                }
            }
            max_ts = max_ts.max(r.0);
        }
        let frac = ooo as f64 / rows.len() as f64;
        assert!(
            (0.045..0.055).contains(&frac),
            "out-of-order fraction {frac}"
        );
        // Delays are uniform up to 3 s: about a third of held rows exceed 2 s.
        let late = beyond_2s as f64 / ooo as f64;
        assert!((0.25..0.42).contains(&late), "share beyond 2 s: {late}");
        assert!(rows.iter().all(|r| max_ts - r.0 <= 3_000 + 10 || r.0 >= 0));

        let in_order = SimConfig {
            out_of_order_fraction: 0.0,
            ..c
        };
        let (rows, _) = drain(&mut sim(&in_order, 10_000));
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn all_values_pass_the_schema() {
        let c = SimConfig {
            cars: 40,
            ..cfg(120, 10, 300)
        };
        let schema = c.schema();
        let (rows, _) = drain(&mut sim(&c, 4096));
        assert_eq!(rows.len() as u64, c.total_rows());
        for (_, car, line, v) in &rows {
            for (ch, &x) in v.iter().enumerate() {
                if let Err(e) = schema.check_value(ch, x) {
                    panic!("car {car} line {line}: {e}");
                }
            }
        }
    }

    #[test]
    fn pacing_slows_delivery_but_not_content() {
        let c = SimConfig {
            pace: Some(20.0),
            ..cfg(1, 50, 6)
        };
        let t0 = Instant::now();
        let (paced, _) = drain(&mut sim(&c, 1_000));
        let took = t0.elapsed();
        // 1 s of event time at 20× is 50 ms (the first tick is due at once).
        assert!(took >= Duration::from_millis(40), "took {took:?}");
        let (fast, _) = drain(&mut sim(
            &SimConfig {
                pace: None,
                ..c.clone()
            },
            1_000,
        ));
        assert_eq!(paced, fast);
        // Events too (a short race: the two flags).
        let c = SimConfig {
            pace: Some(50.0),
            ..cfg(2, 50, 6)
        };
        let paced = drain_events(&mut sim(&c, 1_000));
        let fast = drain_events(&mut sim(&SimConfig { pace: None, ..c }, 1_000));
        assert_eq!(paced.1.len(), 2);
        assert_eq!(paced, fast);
    }

    /// Generation throughput; run with
    /// `cargo test --release -p pitwall-engine --lib source::sim::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        for (channels, secs, rate) in [(6, 1000, 240), (300, 100, 183)] {
            let c = cfg(secs, rate, channels);
            let mut s = sim(&c, 64 * 1024);
            let t0 = Instant::now();
            let mut rows = 0u64;
            while let Some(ch) = s.next_chunk().unwrap() {
                rows += ch.len() as u64;
            }
            let dt = t0.elapsed().as_secs_f64();
            let values = rows * channels as u64;
            let realtime = secs as f64 / dt;
            println!(
                "20 cars x {channels} ch @ {rate} Hz, {secs} s: {rows} rows in {dt:.3} s = \
                 {:.2} M rows/s, {:.1} M values/s, {realtime:.0}x real time",
                rows as f64 / dt / 1e6,
                values as f64 / dt / 1e6
            );
            let t0 = Instant::now();
            let mut s = sim(&c, 64 * 1024);
            s.seek(rows).unwrap();
            println!("  seek to the end: {:.3} s", t0.elapsed().as_secs_f64());
        }
    }
}
