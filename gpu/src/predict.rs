//! The host integration: one call per window (or every N windows) from the
//! race-frame assembler turns a [`RaceSnapshot`] into per-car predictions —
//! P(win), P(podium), expected position, the best pit lap with its expected
//! gain, and the next lap's predicted time with an error estimate.
//!
//! In: [`RaceSnapshot`] (per car position, gap, laps, tyres, pit/retired
//! flags, last lap time; the race lap, total laps, SC/VSC). Out:
//! [`RacePrediction`], and [`RacePrediction::kernel_results`] in the frame
//! schema's `KernelResult { name, values }` shape (one value per car, in
//! snapshot order). State: [`PaceEstimator`] — each car's recent green-flag
//! laps, from which its pace at this circuit is estimated online (the model's
//! shape parameters are fitted offline; a circuit's base pace is not).
//!
//! The heavy part, the Monte Carlo (1 baseline + 4 strategies per running
//! car, `runs` continuations each), and the lap-time prediction run on the
//! [`Backend`] chosen at construction; results do not depend on it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backend::{Backend, GpuError};
use crate::cpu::lap_predict::{self, LapPredictInput};
use crate::cpu::monte_carlo::{self, McCars, McInput, McOutput, Scenario, flag};
use crate::cuda::CudaRuntime;
use crate::model::{Compound, LapModel, param};

/// Version suffix of the [`KernelResult`] names; bump when the model or the
/// meaning of an output changes.
pub const MODEL_VERSION: u32 = 1;

/// One car at the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarSnapshot {
    /// Racing number (the key the predictor keeps state by).
    pub car: u32,
    /// Running position, 1-based.
    pub position: u32,
    /// Seconds behind the leader (0 for the leader).
    pub gap_to_leader_s: f64,
    /// Laps completed.
    pub laps_completed: u32,
    /// `None` for wet or unknown tyres (predictions are then `NaN`).
    pub compound: Option<Compound>,
    /// Laps already run on the current tyres.
    pub tyre_age: u32,
    pub in_pit: bool,
    pub retired: bool,
    /// The car's most recent completed lap time (s), if the feed has it.
    pub last_lap_s: Option<f64>,
}

/// The race at the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RaceSnapshot {
    /// Laps completed by the leader.
    pub lap: u32,
    pub total_laps: u32,
    pub safety_car: bool,
    pub vsc: bool,
    pub cars: Vec<CarSnapshot>,
}

/// Tunables of the predictor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictorConfig {
    /// Continuations per scenario. 10,000 on a GPU; the CPU default is lower.
    pub runs: u32,
    pub seed: u64,
    /// Probability that a safety car / VSC starts on a given lap.
    pub p_sc_per_lap: f64,
    pub p_vsc_per_lap: f64,
    /// "Pit in k laps" strategy.
    pub pit_in_k: u32,
    /// Recent green laps a car's pace estimate uses.
    pub pace_window_laps: usize,
    /// Pseudo-laps of the field average mixed into each car's estimate.
    pub pace_prior_laps: f64,
    /// Safety-car lap time as a multiple of the field's pace.
    pub sc_lap_factor: f64,
    pub vsc_factor: f64,
    pub sc_pit_factor: f64,
    pub vsc_pit_factor: f64,
    /// Spacing of the field behind a safety car (s).
    pub sc_gap_s: f64,
    /// Threads of the CPU path.
    pub cpu_threads: usize,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        PredictorConfig {
            runs: 1000,
            seed: 0x5EED_0FF1,
            // Roughly 1 SC and 0.6 VSC per 60-lap race in 2023-2024.
            p_sc_per_lap: 0.015,
            p_vsc_per_lap: 0.01,
            pit_in_k: 5,
            pace_window_laps: 5,
            pace_prior_laps: 1.0,
            sc_lap_factor: 1.4,
            vsc_factor: 1.35,
            sc_pit_factor: 0.55,
            vsc_pit_factor: 0.65,
            sc_gap_s: 0.8,
            cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The candidate strategies evaluated for every running car.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Strategy {
    /// No further stop.
    StayOut,
    /// Stop at the end of the next lap.
    PitNow,
    /// Stop at the end of lap `now + k`.
    PitIn(u32),
    /// Stop now and once more half-way through the remaining laps.
    TwoMoreStops,
}

impl Strategy {
    /// The in-laps of this strategy (race lap numbers; -1 for none), given
    /// laps completed and race length. A stop on the last lap is no stop.
    pub fn stops(self, lap: u32, total: u32) -> (i32, i32) {
        let valid = |l: u32| if l < total { l as i32 } else { -1 };
        match self {
            Strategy::StayOut => (-1, -1),
            Strategy::PitNow => (valid(lap + 1), -1),
            Strategy::PitIn(k) => (valid(lap + k.max(1)), -1),
            Strategy::TwoMoreStops => {
                let second = lap + 1 + total.saturating_sub(lap + 1).div_ceil(2);
                (valid(lap + 1), valid(second))
            }
        }
    }
}

/// One car's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarPrediction {
    pub car: u32,
    pub p_win: f64,
    pub p_podium: f64,
    pub expected_position: f64,
    /// In-lap of the best strategy's first stop; `None` when staying out is best.
    pub best_pit_lap: Option<u32>,
    pub best_strategy: Option<Strategy>,
    /// Expected race time gained by the best strategy over staying out (s, ≥ 0).
    pub pit_gain_s: f64,
    /// Standard error of that gain (paired runs, common random numbers).
    pub pit_gain_se_s: f64,
    pub pred_lap_s: f64,
    pub pred_lap_err_s: f64,
}

/// The frame schema's reserved `KernelResult { name: string; values: [double] }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelResult {
    pub name: String,
    pub values: Vec<f64>,
}

/// All cars' predictions, in snapshot order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RacePrediction {
    pub lap: u32,
    pub backend: Backend,
    pub runs: u32,
    pub cars: Vec<CarPrediction>,
}

impl RacePrediction {
    /// The outputs as frame kernel results, one value per car in snapshot
    /// order, `NaN` where there is no value (retired, unknown tyres, no pit
    /// stop recommended): `p_win@1`, `p_podium@1`, `exp_pos@1`,
    /// `best_pit_lap@1`, `pit_gain_s@1`, `pit_gain_se_s@1`, `pred_lap_s@1`,
    /// `pred_lap_err_s@1`.
    pub fn kernel_results(&self) -> Vec<KernelResult> {
        let col = |name: &str, f: &dyn Fn(&CarPrediction) -> f64| KernelResult {
            name: format!("{name}@{MODEL_VERSION}"),
            values: self.cars.iter().map(f).collect(),
        };
        vec![
            col("p_win", &|c| c.p_win),
            col("p_podium", &|c| c.p_podium),
            col("exp_pos", &|c| c.expected_position),
            col("best_pit_lap", &|c| {
                c.best_pit_lap.map_or(f64::NAN, f64::from)
            }),
            col("pit_gain_s", &|c| c.pit_gain_s),
            col("pit_gain_se_s", &|c| c.pit_gain_se_s),
            col("pred_lap_s", &|c| c.pred_lap_s),
            col("pred_lap_err_s", &|c| c.pred_lap_err_s),
        ]
    }
}

/// Online estimate of each car's base pace (see [`crate::model`]): the mean
/// of its last `window` green-lap residuals `lap − shape(compound, age, lap)`,
/// shrunk towards the field's mean by `prior` pseudo-laps.
#[derive(Debug, Clone, Default)]
pub struct PaceEstimator {
    window: usize,
    prior: f64,
    residuals: BTreeMap<u32, Vec<f64>>,
}

impl PaceEstimator {
    pub fn new(window: usize, prior: f64) -> Self {
        PaceEstimator {
            window: window.max(1),
            prior: prior.max(0.0),
            residuals: BTreeMap::new(),
        }
    }

    /// Records a green-flag racing lap (not lap 1, no pit in/out, no SC/VSC).
    pub fn record(
        &mut self,
        model: &LapModel,
        car: u32,
        lap_s: f64,
        compound: Compound,
        age: u32,
        lap: u32,
    ) {
        let r = lap_s - model.shape_s(compound, f64::from(age), f64::from(lap));
        let v = self.residuals.entry(car).or_default();
        v.push(r);
        if v.len() > self.window {
            v.remove(0);
        }
    }

    fn field_mean(&self) -> Option<f64> {
        let means: Vec<f64> = self
            .residuals
            .values()
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
            .collect();
        (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64)
    }

    /// `(base, variance of base)` for `car`, or `None` before any lap of any
    /// car was recorded. The variance is `noise² / (n + prior)`.
    pub fn base(&self, car: u32, noise_s: f64) -> Option<(f64, f64)> {
        let field = self.field_mean()?;
        let own = self.residuals.get(&car).map_or(&[][..], Vec::as_slice);
        let n = own.len() as f64;
        let k = if n == 0.0 { 1.0 } else { self.prior };
        let b = (own.iter().sum::<f64>() + k * field) / (n + k);
        Some((b, noise_s * noise_s / (n + k)))
    }
}

enum Engine {
    Cpu { threads: usize },
    Cuda(Box<CudaRuntime>),
}

/// Stateful per-race predictor; call [`RacePredictor::update`] with each
/// snapshot, in race order.
pub struct RacePredictor {
    model: LapModel,
    cfg: PredictorConfig,
    engine: Engine,
    pace: PaceEstimator,
    /// Per car: laps completed at the last snapshot, and the tyres then.
    last: BTreeMap<u32, (u32, Option<Compound>, u32, bool)>,
    sc_seen_on_lap: BTreeMap<u32, bool>,
}

impl std::fmt::Debug for RacePredictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RacePredictor")
            .field("backend", &self.backend())
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl RacePredictor {
    /// A predictor on `backend` (from [`crate::detect_backend`]); opening a
    /// CUDA backend compiles the kernels once.
    pub fn new(model: LapModel, cfg: PredictorConfig, backend: Backend) -> Result<Self, GpuError> {
        let engine = match backend {
            Backend::Cpu => Engine::Cpu {
                threads: cfg.cpu_threads.max(1),
            },
            Backend::Cuda { device } => Engine::Cuda(Box::new(CudaRuntime::new(device)?)),
        };
        let pace = PaceEstimator::new(cfg.pace_window_laps, cfg.pace_prior_laps);
        Ok(RacePredictor {
            model,
            cfg,
            engine,
            pace,
            last: BTreeMap::new(),
            sc_seen_on_lap: BTreeMap::new(),
        })
    }

    pub fn backend(&self) -> Backend {
        match &self.engine {
            Engine::Cpu { .. } => Backend::Cpu,
            Engine::Cuda(rt) => Backend::Cuda {
                device: rt.device(),
            },
        }
    }

    pub fn pace(&self) -> &PaceEstimator {
        &self.pace
    }

    /// Learns from the laps completed since the last snapshot (pace), then
    /// predicts.
    pub fn update(&mut self, snap: &RaceSnapshot) -> Result<RacePrediction, GpuError> {
        let _span =
            tracing::info_span!("race_predict", lap = snap.lap, cars = snap.cars.len()).entered();
        self.observe(snap);
        self.predict(snap)
    }

    /// Records each car's newly completed lap when it was a green racing lap:
    /// not lap 1, not an in- or out-lap (in the pit lane now or then, or on
    /// tyres younger than 2 laps), no SC/VSC seen during it.
    pub fn observe(&mut self, snap: &RaceSnapshot) {
        let neutralised = snap.safety_car || snap.vsc;
        let e = self.sc_seen_on_lap.entry(snap.lap + 1).or_insert(false);
        *e |= neutralised;
        for c in &snap.cars {
            let prev = self
                .last
                .insert(c.car, (c.laps_completed, c.compound, c.tyre_age, c.in_pit));
            let Some((prev_laps, prev_comp, prev_age, prev_pit)) = prev else {
                continue;
            };
            if c.laps_completed != prev_laps + 1 {
                continue;
            }
            let lap = c.laps_completed;
            let sc = self.sc_seen_on_lap.get(&lap).copied().unwrap_or(false) || neutralised;
            let green = lap > 1
                && !sc
                && !c.in_pit
                && !prev_pit
                && !c.retired
                && prev_comp == c.compound
                && c.tyre_age >= 2;
            if let (true, Some(lap_s), Some(comp)) = (green, c.last_lap_s, c.compound) {
                // The completed lap was run at the age it had when it started.
                let age = prev_age.min(c.tyre_age.saturating_sub(1));
                if lap_s.is_finite() && lap_s > 0.0 {
                    self.pace.record(&self.model, c.car, lap_s, comp, age, lap);
                }
            }
        }
    }

    fn base_for(&self, car: u32) -> (f64, f64) {
        // Without any lap yet, every car gets the same placeholder pace: the
        // order then comes from the gaps alone.
        self.pace
            .base(car, self.model.noise_s)
            .unwrap_or((90.0, f64::NAN))
    }

    /// The Monte Carlo input for a snapshot (exposed for benches and tests).
    pub fn mc_input(&self, snap: &RaceSnapshot) -> (McInput, Vec<(usize, Strategy)>) {
        let strategies = [
            Strategy::StayOut,
            Strategy::PitNow,
            Strategy::PitIn(self.cfg.pit_in_k),
            Strategy::TwoMoreStops,
        ];
        let mut cars = McCars::default();
        let mut field = Vec::new();
        for c in &snap.cars {
            let (b, _) = self.base_for(c.car);
            let running = !c.retired && c.compound.is_some();
            cars.base_s.push(b);
            cars.start_s.push(if c.gap_to_leader_s.is_finite() {
                c.gap_to_leader_s
            } else {
                0.0
            });
            cars.compound
                .push(c.compound.map_or(0, |c| c.index() as u32));
            cars.tyre_age.push(c.tyre_age);
            cars.flags.push(
                if running { flag::ACTIVE } else { 0 } | if c.in_pit { flag::IN_PIT } else { 0 },
            );
            if running {
                field.push(b);
            }
        }
        let field_pace = if field.is_empty() {
            90.0
        } else {
            field.iter().sum::<f64>() / field.len() as f64
        };
        let mut scenarios = vec![Scenario::BASELINE];
        let mut which = vec![];
        for (i, c) in snap.cars.iter().enumerate() {
            if c.retired || c.compound.is_none() {
                continue;
            }
            for s in strategies {
                let (stop1, stop2) = s.stops(snap.lap, snap.total_laps);
                scenarios.push(Scenario {
                    focus: i as i32,
                    stop1,
                    stop2,
                });
                which.push((i, s));
            }
        }
        let mut params = self.model.params();
        params[param::PIT_LOSS] = self.model.pit_loss_s;
        params[param::P_SC] = self.cfg.p_sc_per_lap;
        params[param::P_VSC] = self.cfg.p_vsc_per_lap;
        params[param::SC_LAP_S] = field_pace * self.cfg.sc_lap_factor;
        params[param::VSC_FACTOR] = self.cfg.vsc_factor;
        params[param::SC_PIT_FACTOR] = self.cfg.sc_pit_factor;
        params[param::VSC_PIT_FACTOR] = self.cfg.vsc_pit_factor;
        params[param::SC_GAP_S] = self.cfg.sc_gap_s;
        let input = McInput {
            cars,
            scenarios,
            lap: snap.lap.min(snap.total_laps),
            total_laps: snap.total_laps,
            sc_laps_left: u32::from(snap.safety_car) * 2,
            vsc_laps_left: u32::from(snap.vsc),
            params,
            seed: self.cfg.seed ^ u64::from(snap.lap) << 32,
            runs: self.cfg.runs,
        };
        (input, which)
    }

    /// Predicts from the current pace estimates without learning.
    pub fn predict(&mut self, snap: &RaceSnapshot) -> Result<RacePrediction, GpuError> {
        let (input, which) = self.mc_input(snap);
        let mut lp = LapPredictInput {
            horizon: 1,
            ..Default::default()
        };
        for c in &snap.cars {
            let (b, var) = self.base_for(c.car);
            lp.base_s.push(b);
            lp.base_var.push(var);
            lp.compound.push(c.compound.map_or(0, |c| c.index() as u32));
            lp.tyre_age.push(c.tyre_age);
            lp.lap.push(c.laps_completed + 1);
        }
        let params = input.params;
        let (mc, laps) = if snap.cars.is_empty() {
            (None, lap_predict::predict(&lp, &params)?)
        } else {
            match &mut self.engine {
                Engine::Cpu { threads } => (
                    Some(monte_carlo::simulate_threads(&input, *threads)?),
                    lap_predict::predict(&lp, &params)?,
                ),
                Engine::Cuda(rt) => (Some(rt.monte_carlo(&input)?), rt.lap_predict(&lp, &params)?),
            }
        };
        let summary = mc
            .as_ref()
            .map(|mc| summarize(mc, &input.scenarios, &which, snap.cars.len()));
        let cars = snap
            .cars
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = summary.as_ref().map(|s| &s[i]);
                let valid = c.compound.is_some() && !c.retired;
                let nan_unless = |x: f64| if valid { x } else { f64::NAN };
                CarPrediction {
                    car: c.car,
                    p_win: s.map_or(f64::NAN, |s| s.p_win),
                    p_podium: s.map_or(f64::NAN, |s| s.p_podium),
                    expected_position: s.map_or(f64::NAN, |s| s.expected_position),
                    best_pit_lap: s.and_then(|s| s.best_pit_lap),
                    best_strategy: s.and_then(|s| s.best_strategy),
                    pit_gain_s: s.map_or(f64::NAN, |s| nan_unless(s.gain)),
                    pit_gain_se_s: s.map_or(f64::NAN, |s| nan_unless(s.gain_se)),
                    pred_lap_s: nan_unless(laps.mean[i]),
                    pred_lap_err_s: nan_unless(laps.err[i]),
                }
            })
            .collect();
        Ok(RacePrediction {
            lap: snap.lap,
            backend: self.backend(),
            runs: input.runs,
            cars,
        })
    }
}

/// Per-car reduction of the Monte Carlo's per-run outputs, in run order (the
/// same code for both backends, so equal per-run outputs give equal
/// summaries).
#[derive(Debug, Clone, PartialEq)]
pub struct CarSummary {
    pub p_win: f64,
    pub p_podium: f64,
    pub expected_position: f64,
    pub best_strategy: Option<Strategy>,
    pub best_pit_lap: Option<u32>,
    pub gain: f64,
    pub gain_se: f64,
}

/// Reduces `mc` (scenario 0 the baseline, then `which[k]` = (car, strategy)
/// of scenario `k + 1`).
pub fn summarize(
    mc: &McOutput,
    scenarios: &[Scenario],
    which: &[(usize, Strategy)],
    n_cars: usize,
) -> Vec<CarSummary> {
    let runs = mc.runs as usize;
    let mut out: Vec<CarSummary> = (0..n_cars)
        .map(|car| {
            let (mut win, mut podium, mut sum) = (0u64, 0u64, 0u64);
            for r in 0..runs {
                let p = mc.base_pos[r * n_cars + car];
                win += u64::from(p == 1);
                podium += u64::from(p <= 3);
                sum += u64::from(p);
            }
            let rf = runs as f64;
            CarSummary {
                p_win: win as f64 / rf,
                p_podium: podium as f64 / rf,
                expected_position: sum as f64 / rf,
                best_strategy: None,
                best_pit_lap: None,
                gain: 0.0,
                gain_se: 0.0,
            }
        })
        .collect();
    let times = |k: usize| &mc.focus_time[(k + 1) * runs..(k + 2) * runs];
    let mut by_car: BTreeMap<usize, Vec<(usize, Strategy)>> = BTreeMap::new();
    for (k, &(car, s)) in which.iter().enumerate() {
        by_car.entry(car).or_default().push((k, s));
    }
    for (car, scen) in by_car {
        let Some(&(stay_k, _)) = scen.iter().find(|(_, s)| *s == Strategy::StayOut) else {
            continue;
        };
        let stay = times(stay_k);
        let mut best: Option<(f64, f64, usize, Strategy)> = None;
        for &(k, s) in &scen {
            if s == Strategy::StayOut {
                continue;
            }
            // Paired differences: same random race in both scenarios.
            let (mut m, mut m2) = (0.0f64, 0.0f64);
            for (a, b) in stay.iter().zip(times(k)) {
                let d = a - b;
                m += d;
                m2 += d * d;
            }
            let rf = runs as f64;
            let mean = m / rf;
            let var = if runs > 1 {
                ((m2 - m * mean) / (rf - 1.0)).max(0.0)
            } else {
                0.0
            };
            let se = (var / rf).sqrt();
            if best.is_none_or(|(bm, _, _, _)| mean > bm) {
                best = Some((mean, se, k, s));
            }
        }
        if let Some((gain, se, k, s)) = best
            && gain > 0.0
        {
            let c = &mut out[car];
            c.gain = gain;
            c.gain_se = se;
            c.best_strategy = Some(s);
            c.best_pit_lap = u32::try_from(scenarios[k + 1].stop1).ok();
        }
    }
    out
}
