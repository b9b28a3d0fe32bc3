//! Race-strategy Monte Carlo: from the current race state, many simulated race
//! continuations per scenario (a candidate strategy for one car, the others on
//! their default plan), lap by lap to the flag.
//!
//! In: [`McInput`] — the cars (struct of arrays: base pace, time behind the
//! leader, compound, tyre age, flags), the scenarios, the race (laps done,
//! laps total, safety car / VSC laps still to run), the model parameter block
//! ([`crate::model::param`]), a seed and a run count. Out: [`McOutput`] —
//! per (scenario, run) the focus car's finishing position and race time
//! (relative to the leader now), and per run of scenario 0 every car's
//! finishing position. State: none.
//!
//! # One simulated lap (the order matters: CUDA mirrors it step for step)
//!
//! 1. With no safety car or VSC running, a race-wide draw decides whether one
//!    starts this lap: `u < p_sc` → safety car for 3–5 laps; `u < p_sc + p_vsc`
//!    → VSC for 1–2 laps.
//! 2. Cars are visited in running order (by accumulated time). Lap time = the
//!    model's mean lap (`common.cuh`'s `mean_lap`) + `noise · z`, plus
//!    `traffic` under green when the car started the lap within
//!    `traffic_gap` of the car ahead; under a safety car every lap is
//!    `sc_lap_s`, under VSC the green lap × `vsc_factor`.
//! 3. A car that stops this lap adds `pit_loss` (× `sc_pit_factor` /
//!    `vsc_pit_factor` under SC/VSC; a car already in the pit lane when the
//!    snapshot was taken adds half of it on the first lap), changes to
//!    [`Compound::next`](crate::model::Compound::next) and resets its tyre
//!    age; otherwise the age grows by one.
//! 4. On the first lap of a safety car the field closes up: each car's time
//!    becomes at most the leader's plus `rank · sc_gap_s`.
//! 5. Running order is re-sorted (stable insertion sort, nearly sorted input).
//!
//! Who stops: the focus car of a scenario exactly on its `stop1`/`stop2`
//! laps; every other car (and every car in a baseline scenario, `focus < 0`)
//! when its tyre age reaches the compound's `life` with at least
//! [`MIN_LAPS_LEFT_TO_STOP`] laps to go. Retired cars (flag bit 0 clear) take
//! no part and are classified after all running cars, in car order.
//!
//! # Randomness and parity
//!
//! Draws come from [`crate::rng`]: Philox4x32-10 keyed by the seed, counter
//! `(run, lap, car, stream)`. The scenario is *not* in the counter: every
//! scenario sees the same random race (common random numbers), so the
//! difference between two strategies is measured with far less noise than
//! their separate outcomes. Only `+ − × ÷` and comparisons are used (no
//! `exp`/`log`), and NVRTC compiles with `--fmad=false`, so the CUDA kernel
//! produces the same bits: parity is exact, not statistical.

use crate::model::param as p;
use crate::rng;

/// The most cars one simulation handles (local arrays in the kernel).
pub const MAX_CARS: usize = 32;

/// Cars on their default plan do not stop with fewer laps than this to go.
pub const MIN_LAPS_LEFT_TO_STOP: u32 = 5;

/// Flag bits of [`McCars::flags`].
pub mod flag {
    /// The car is running (not retired).
    pub const ACTIVE: u32 = 1;
    /// The car is in the pit lane at the snapshot: its stop is under way.
    pub const IN_PIT: u32 = 2;
}

/// The cars, struct of arrays (one device buffer each).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McCars {
    /// The car's pace at this circuit (see [`crate::model`]), s.
    pub base_s: Vec<f64>,
    /// Time behind the leader now, s (the leader 0).
    pub start_s: Vec<f64>,
    /// [`Compound`](crate::model::Compound) index.
    pub compound: Vec<u32>,
    /// Laps already run on the current tyres.
    pub tyre_age: Vec<u32>,
    /// [`flag`] bits.
    pub flags: Vec<u32>,
}

impl McCars {
    pub fn len(&self) -> usize {
        self.base_s.len()
    }
    pub fn is_empty(&self) -> bool {
        self.base_s.is_empty()
    }
}

/// One scenario: `focus` follows the given stops, everyone else their default
/// plan. `focus < 0` is the baseline (everyone on their default plan).
/// Stops are race lap numbers (the in-lap); `-1` is "no stop".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub focus: i32,
    pub stop1: i32,
    pub stop2: i32,
}

impl Scenario {
    pub const BASELINE: Scenario = Scenario {
        focus: -1,
        stop1: -1,
        stop2: -1,
    };
}

/// Scenarios as struct of arrays (the kernel's layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScenarioArrays {
    pub focus: Vec<i32>,
    pub stop1: Vec<i32>,
    pub stop2: Vec<i32>,
}

impl ScenarioArrays {
    pub fn from_scenarios(s: &[Scenario]) -> Self {
        ScenarioArrays {
            focus: s.iter().map(|s| s.focus).collect(),
            stop1: s.iter().map(|s| s.stop1).collect(),
            stop2: s.iter().map(|s| s.stop2).collect(),
        }
    }
}

/// Everything one Monte Carlo call needs.
#[derive(Debug, Clone, PartialEq)]
pub struct McInput {
    pub cars: McCars,
    /// Scenario 0 must be the baseline: its runs give every car's finishing
    /// position distribution.
    pub scenarios: Vec<Scenario>,
    /// Laps completed by the leader; simulation starts with lap `lap + 1`.
    pub lap: u32,
    pub total_laps: u32,
    /// Safety-car / VSC laps still to run at the snapshot.
    pub sc_laps_left: u32,
    pub vsc_laps_left: u32,
    pub params: [f64; p::LEN],
    pub seed: u64,
    pub runs: u32,
}

/// A Monte Carlo input the kernels cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McError {
    #[error("{n} cars: the Monte Carlo handles 1 to {MAX_CARS} cars per race")]
    Cars { n: usize },
    #[error("car column {what} has {got} entries for {n} cars")]
    Column {
        what: &'static str,
        n: usize,
        got: usize,
    },
    #[error("scenario 0 must be the baseline (focus -1), got {got:?}")]
    NoBaseline { got: Option<Scenario> },
    #[error("scenario {index} focuses on car {focus}, but there are {n} cars")]
    Focus { index: usize, focus: i32, n: usize },
    #[error("compound index {compound} of car {car} is not a dry compound (0..3)")]
    Compound { car: usize, compound: u32 },
    #[error("parameter {index} is {value}: every model parameter must be finite")]
    Param { index: usize, value: f64 },
    #[error("runs must be at least 1")]
    NoRuns,
    #[error("{scenarios} scenarios x {runs} runs is more outputs than this kernel indexes (u32)")]
    TooLarge { scenarios: usize, runs: u32 },
}

impl McInput {
    /// Checks the shape of the input (both paths call it first).
    pub fn validate(&self) -> Result<(), McError> {
        let n = self.cars.len();
        if n == 0 || n > MAX_CARS {
            return Err(McError::Cars { n });
        }
        for (what, got) in [
            ("start_s", self.cars.start_s.len()),
            ("compound", self.cars.compound.len()),
            ("tyre_age", self.cars.tyre_age.len()),
            ("flags", self.cars.flags.len()),
        ] {
            if got != n {
                return Err(McError::Column { what, n, got });
            }
        }
        if self.scenarios.first().is_none_or(|s| s.focus >= 0) {
            return Err(McError::NoBaseline {
                got: self.scenarios.first().copied(),
            });
        }
        for (index, s) in self.scenarios.iter().enumerate() {
            if s.focus >= n as i32 {
                return Err(McError::Focus {
                    index,
                    focus: s.focus,
                    n,
                });
            }
        }
        for (car, &compound) in self.cars.compound.iter().enumerate() {
            if compound > 2 {
                return Err(McError::Compound { car, compound });
            }
        }
        if let Some((index, &value)) = self.params.iter().enumerate().find(|(_, v)| !v.is_finite())
        {
            return Err(McError::Param { index, value });
        }
        if self.runs == 0 {
            return Err(McError::NoRuns);
        }
        if (self.scenarios.len() as u64) * u64::from(self.runs) > u64::from(u32::MAX) {
            return Err(McError::TooLarge {
                scenarios: self.scenarios.len(),
                runs: self.runs,
            });
        }
        Ok(())
    }
}

/// Per-run results. Index `scenario * runs + run` for the focus outputs,
/// `run * n_cars + car` for the baseline positions.
#[derive(Debug, Clone, PartialEq)]
pub struct McOutput {
    pub runs: u32,
    pub n_cars: usize,
    pub n_scenarios: usize,
    /// The focus car's finishing position (1-based); 0 for the baseline.
    pub focus_pos: Vec<u32>,
    /// The focus car's race time from now, relative to the leader's start
    /// (s); 0 for the baseline.
    pub focus_time: Vec<f64>,
    /// Scenario 0: every car's finishing position per run.
    pub base_pos: Vec<u32>,
}

impl McOutput {
    pub fn zeroed(n_scenarios: usize, runs: u32, n_cars: usize) -> Self {
        let cells = n_scenarios * runs as usize;
        McOutput {
            runs,
            n_cars,
            n_scenarios,
            focus_pos: vec![0; cells],
            focus_time: vec![0.0; cells],
            base_pos: vec![0; runs as usize * n_cars],
        }
    }
}

/// One worker's first run, its focus outputs (scenario-major) and baseline positions.
type WorkerResult = (usize, Vec<(u32, f64)>, Vec<u32>);

/// Runs every (scenario, run) on the calling thread. The reference.
pub fn simulate(input: &McInput) -> Result<McOutput, McError> {
    simulate_threads(input, 1)
}

/// Same result as [`simulate`], with runs split over `threads` OS threads
/// (each (scenario, run) is independent and draws by counter, so the split
/// cannot change a bit).
pub fn simulate_threads(input: &McInput, threads: usize) -> Result<McOutput, McError> {
    input.validate()?;
    let _span = tracing::debug_span!(
        "mc_cpu",
        cars = input.cars.len(),
        scenarios = input.scenarios.len(),
        runs = input.runs
    )
    .entered();
    let n = input.cars.len();
    let runs = input.runs as usize;
    let mut out = McOutput::zeroed(input.scenarios.len(), input.runs, n);
    let threads = threads.clamp(1, runs.max(1));
    let chunk = runs.div_ceil(threads);
    // Split the scenario-major focus outputs by run ranges: each thread works
    // on a run range of every scenario; collect per thread, then scatter.
    let results: Vec<WorkerResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let (lo, hi) = (t * chunk, ((t + 1) * chunk).min(runs));
                    let mut focus = Vec::with_capacity((hi - lo) * input.scenarios.len());
                    let mut base = Vec::with_capacity((hi - lo) * n);
                    let mut pos = [0u32; MAX_CARS];
                    for (si, sc) in input.scenarios.iter().enumerate() {
                        for run in lo..hi {
                            let t = simulate_one(input, *sc, run as u32, &mut pos);
                            if si == 0 {
                                base.extend_from_slice(&pos[..n]);
                            }
                            focus.push(t);
                        }
                    }
                    (lo, focus, base)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("Monte Carlo worker panicked"))
            .collect()
    });
    for (lo, focus, base) in results {
        let width = focus.len() / input.scenarios.len().max(1);
        for si in 0..input.scenarios.len() {
            for k in 0..width {
                let (pos, time) = focus[si * width + k];
                let i = si * runs + lo + k;
                out.focus_pos[i] = pos;
                out.focus_time[i] = time;
            }
        }
        out.base_pos[lo * n..lo * n + base.len()].copy_from_slice(&base);
    }
    Ok(out)
}

#[inline]
fn mean_lap(prm: &[f64; p::LEN], base: f64, c: usize, age: f64, lap: f64) -> f64 {
    let over = age - prm[p::LIFE + c];
    let cliff = if over > 0.0 {
        prm[p::CLIFF] * over
    } else {
        0.0
    };
    (((base + prm[p::OFFSET + c]) + prm[p::DEG + c] * age) + cliff) + prm[p::FUEL] * lap
}

#[inline]
fn next_compound(c: u32) -> u32 {
    match c {
        0 => 2,
        1 => 2,
        _ => 1,
    }
}

/// One race continuation of scenario `sc`, run `run`. Writes every car's
/// finishing position into `pos` and returns the focus car's (position,
/// time), `(0, 0.0)` for the baseline. Mirrors `mc_run` in
/// `gpu/kernels/monte_carlo.cu` statement for statement (hence `x = x + y`
/// written as the CUDA source writes it).
#[allow(clippy::assign_op_pattern)]
pub fn simulate_one(
    input: &McInput,
    sc: Scenario,
    run: u32,
    pos: &mut [u32; MAX_CARS],
) -> (u32, f64) {
    let prm = &input.params;
    let cars = &input.cars;
    let n = cars.len();
    let mut t = [0.0f64; MAX_CARS];
    let mut age = [0.0f64; MAX_CARS];
    let mut comp = [0u32; MAX_CARS];
    let mut flags = [0u32; MAX_CARS];
    let mut order = [0usize; MAX_CARS];
    for i in 0..n {
        t[i] = cars.start_s[i];
        age[i] = f64::from(cars.tyre_age[i]);
        comp[i] = cars.compound[i];
        flags[i] = cars.flags[i];
        order[i] = i;
    }
    sort_order(&mut order[..n], &t);
    let (mut sc_left, mut vsc_left) = (input.sc_laps_left, input.vsc_laps_left);
    for lap in input.lap + 1..=input.total_laps {
        let mut new_sc = false;
        if sc_left == 0 && vsc_left == 0 {
            let w = rng::draw(input.seed, run, lap, rng::RACE, rng::stream::RACE_EVENT);
            let u = rng::uniform(w[0]);
            if u < prm[p::P_SC] {
                sc_left = 3 + w[1] % 3;
                new_sc = true;
            } else if u < prm[p::P_SC] + prm[p::P_VSC] {
                vsc_left = 1 + w[1] % 2;
            }
        }
        let mode = if sc_left > 0 {
            2
        } else if vsc_left > 0 {
            1
        } else {
            0
        };
        let lapf = f64::from(lap);
        let mut have_prev = false;
        let mut prev_t = 0.0f64;
        for &i in &order[..n] {
            if flags[i] & flag::ACTIVE == 0 {
                continue;
            }
            let c = comp[i] as usize;
            let mut lt = mean_lap(prm, cars.base_s[i], c, age[i], lapf);
            let w = rng::draw(input.seed, run, lap, i as u32, rng::stream::LAP_NOISE);
            lt = lt + prm[p::NOISE] * rng::approx_normal(w);
            if mode == 0 && have_prev && t[i] - prev_t < prm[p::TRAFFIC_GAP] {
                lt = lt + prm[p::TRAFFIC];
            }
            if mode == 2 {
                lt = prm[p::SC_LAP_S];
            } else if mode == 1 {
                lt = lt * prm[p::VSC_FACTOR];
            }
            have_prev = true;
            prev_t = t[i];
            let pit_factor = if mode == 2 {
                prm[p::SC_PIT_FACTOR]
            } else if mode == 1 {
                prm[p::VSC_PIT_FACTOR]
            } else {
                1.0
            };
            let pending = flags[i] & flag::IN_PIT != 0;
            let stop = if pending {
                true
            } else if sc.focus == i as i32 {
                lap as i32 == sc.stop1 || lap as i32 == sc.stop2
            } else {
                age[i] >= prm[p::LIFE + c] && input.total_laps - lap >= MIN_LAPS_LEFT_TO_STOP
            };
            if stop {
                let loss = if pending {
                    flags[i] &= !flag::IN_PIT;
                    prm[p::PIT_LOSS] * 0.5
                } else {
                    prm[p::PIT_LOSS] * pit_factor
                };
                lt = lt + loss;
                comp[i] = next_compound(comp[i]);
                age[i] = 0.0;
            } else {
                age[i] = age[i] + 1.0;
            }
            t[i] = t[i] + lt;
        }
        if new_sc {
            let mut rank = 0.0f64;
            let mut lead = 0.0f64;
            for &i in &order[..n] {
                if flags[i] & flag::ACTIVE == 0 {
                    continue;
                }
                if rank == 0.0 {
                    lead = t[i];
                } else {
                    let cap = lead + rank * prm[p::SC_GAP_S];
                    if t[i] > cap {
                        t[i] = cap;
                    }
                }
                rank = rank + 1.0;
            }
        }
        sc_left = sc_left.saturating_sub(1);
        vsc_left = vsc_left.saturating_sub(1);
        sort_order(&mut order[..n], &t);
    }
    // Classification: running cars in order, then retired cars in car order.
    let mut place = 1u32;
    for &i in &order[..n] {
        if flags[i] & flag::ACTIVE != 0 {
            pos[i] = place;
            place += 1;
        }
    }
    for i in 0..n {
        if flags[i] & flag::ACTIVE == 0 {
            pos[i] = place;
            place += 1;
        }
    }
    if sc.focus >= 0 {
        let f = sc.focus as usize;
        (pos[f], t[f])
    } else {
        (0, 0.0)
    }
}

/// Stable insertion sort of car indices by time (strict `>` keeps ties in
/// their previous order). Running order changes little per lap, so this is
/// close to linear.
#[inline]
fn sort_order(order: &mut [usize], t: &[f64; MAX_CARS]) {
    for k in 1..order.len() {
        let x = order[k];
        let mut j = k;
        while j > 0 && t[order[j - 1]] > t[x] {
            order[j] = order[j - 1];
            j -= 1;
        }
        order[j] = x;
    }
}
