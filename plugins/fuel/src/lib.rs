//! `fuel`: a fuel model and Burn Bar without a fuel sensor (car model).
//!
//! # What flows in, what flows out, what state it keeps
//!
//! In: each race frame (one 1 s window): per car the distance covered
//! (`total_distance_m`), lap, pit status and pit stops, and the throttle and
//! rpm aggregates where the feed has them; the race state (SC/VSC/red flag,
//! under way, total laps).
//!
//! Out, per running car and window (`<u>` is the fuel unit of the parameters:
//! `kg` for F1, `gal` for the NASCAR configuration):
//!
//! | metric | unit | meaning |
//! |---|---|---|
//! | `fuel_<u>_window` | `<u>` | fuel booked this frame (the window two frames back, see below) |
//! | `fuel_<u>_lap` | `<u>/lap` | the last completed lap |
//! | `fuel_lap_number` | `lap` | which lap that was |
//! | `fuel_<u>_stint` | `<u>` | since the last pit stop |
//! | `fuel_<u>_total` | `<u>` | since the start |
//! | `fuel_<u>_remaining` | `<u>` | start load (refilled at stops where the series refuels) less the burn; only with a start load |
//! | `fuel_<economy>_lap` | e.g. `mpg` | distance per fuel unit over the last lap; only with `units.economy` |
//! | `burn_bar` | `ratio` | last-lap burn / the field's median burn of the same lap (1 = the field; 0.96 = 4 % less); the lap before until three cars have completed it |
//! | `fuel_saving` | `score` | −1 pushing … 0 like the field … +1 saving (lift and coast, low burn) |
//! | `coast_fraction` | `ratio` | running average share of braking zones the car coasted into |
//!
//! and a `fuel_saving` story (cars `[car]`) when a car has been clearly
//! saving for several laps, at most once per car per `cooldown_laps`.
//!
//! State: per car the last five windows (for smoothing), the current lap,
//! stint and race sums, lift-and-coast counts and running averages; for the
//! field, every completed lap's sums (for the Burn Bar's medians and the
//! calibration) and the calibration in force.
//!
//! # The model
//!
//! **Speed and acceleration.** The window-mean speed is the distance covered
//! over the window (`Δtotal_distance / Δt`), not the speed at the window's
//! end: positions arrive at ~4 Hz, so the end speed is a difference of two
//! samples 0.25 s apart and swings by tens of km/h. The mean speeds are
//! smoothed 1-2-1 and differentiated centrally ([`physics::centre`]), so a
//! window is booked two frames after it closed. A gap in a car's data is one
//! long window at its mean speed.
//!
//! **Power and fuel.** Power at the wheels is drag + rolling resistance
//! (under weight and downforce) + the change of kinetic energy, clipped to
//! `[0, max_wheel_power]` ([`physics::wheel_power_w`]); the mass is the dry
//! car plus the fuel still on board, so the car gets lighter as it burns.
//! Fuel = work / (efficiency · LHV) + a base flow (idle, ancillaries) · time.
//! Where the frame has a throttle aggregate (and rpm), the work term is the
//! throttle model instead: throttle fraction · the rpm-dependent flow limit
//! (F1: 100 kg/h above 10 500 rpm). SC and VSC windows burn less by
//! themselves: at lower speed drag power falls with v³.
//!
//! **Calibration to race facts (fitted vs assumed).** Assumed, from the
//! parameters: the car (mass, CdA, ClA, Crr, power), the fuel's LHV, the
//! prior efficiency and base flow. Fitted, online, from the race itself: a
//! correction `k` of the work term, so that a green lap at the field's pace
//! burns the calibration target: `race_fuel / total_laps` for F1 (the start
//! load less what is left at the flag: the regulation allows 110 kg on
//! board, and teams finish nearly empty), or the green economy (NASCAR's
//! green-flag mpg, the figure teams measure from fuel-only stops) times the
//! lap's distance. `k` is the median over every valid green lap of the field
//! (not lap 1, no pit lane, no SC/VSC, a full lap's distance) of
//! `(target − base · time) / work`, refitted each time the leader starts a
//! lap once `min_green_laps` are in; before that the prior (`k = 1`) stands.
//! Where a yellow economy is given too (NASCAR's second calibration point)
//! and enough laps ran wholly under yellow, the base flow is fitted as well
//! (two equations, two unknowns, on the medians of the green and yellow
//! laps). The totals are kept as raw work and time, so a refit applies to
//! the whole race consistently. `k` absorbs what the model leaves out:
//! cornering (tyre scrub) drag, drivetrain losses, ERS recovery, and the
//! smoothing's loss of speed peaks; on the 2024 Austrian GP the fitted
//! `k = 1.37` from lap 5 on (an effective efficiency of 32.8 % for the
//! positions-only model; uncalibrated, the lead-lap cars would burn ~77 kg),
//! logged at info level whenever a refit moves it by more than 1 %.
//!
//! **Burn Bar.** The last completed lap's burn over the field's median burn of
//! the same lap number (at least three cars), so the bar compares cars over
//! the same conditions (a VSC lap with VSC laps).
//!
//! **Lift and coast, saving and pushing.** From speed alone: a braking zone
//! is a window-mean speed drop of `brake_drop_kmh` or more from at least
//! `brake_from_kmh`; it was preceded by a coast when the `coast_windows`
//! windows before it each lost `coast_min_drop_kmh..coast_max_drop_kmh`
//! (drag-only deceleration, while a car on the throttle at that speed holds
//! or gains speed). Two windows, because braking that starts late in one
//! window already lowers that window's mean. With a throttle channel, a
//! pre-braking window with a throttle below `lift_throttle_fraction` is a
//! lift. Per lap the coast fraction (coasts per braking zone) and the Burn
//! Bar feed running averages; the score is
//! `tanh((coast − field's coast)/coast_scale + (1 − burn)/burn_scale)`,
//! comparing with the field so that a track where everyone lifts somewhere
//! does not count as saving. Laps with a pit stop or under SC/VSC do not
//! move it.
//!
//! Hot swap: the race so far (every car's sums and windows, the field's
//! laps) is handed to a new version as JSON ([`RaceState`], state version 1).
//!
//! Determinism: event time only (window ends), ordered maps, no clock, no
//! randomness; NaN or missing data gives no sample, never a panic.

pub mod params;
pub mod physics;

use std::collections::{BTreeMap, VecDeque};

use pitwall_plugin_sdk::{
    AggIndex, Car, CarModel, Context, Frame, LogLevel, Output, PluginResult, StateBytes, Stateful,
};
use serde::{Deserialize, Serialize};

pub use params::Params;
use physics::{Acc, Calib, KMH_PER_MS, Sample, centre, median};

/// Metric names and units, built once per parameter generation (the fuel
/// unit is part of the names).
#[derive(Debug, Clone, Default)]
struct Names {
    window: String,
    lap: String,
    stint: String,
    total: String,
    remaining: String,
    economy: Option<String>,
    unit: String,
    per_lap: String,
    economy_unit: String,
}

impl Names {
    fn new(p: &Params) -> Names {
        let u = &p.units.fuel;
        Names {
            window: format!("fuel_{u}_window"),
            lap: format!("fuel_{u}_lap"),
            stint: format!("fuel_{u}_stint"),
            total: format!("fuel_{u}_total"),
            remaining: format!("fuel_{u}_remaining"),
            economy: p.units.economy.as_ref().map(|e| format!("fuel_{e}_lap")),
            unit: u.clone(),
            per_lap: format!("{u}/lap"),
            economy_unit: p.units.economy.clone().unwrap_or_default(),
        }
    }
}

/// `true` when `s` is usable inside a metric name (`[a-z][a-z0-9_]*`) and,
/// at most `max` bytes long, as a unit (units are at most 16 bytes: `kg/lap`).
fn ident_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Why parameters are refused (the defaults are used instead, with a warning).
fn check_params(p: &Params) -> Result<(), String> {
    let c = &p.car;
    let positive = [
        ("car.dry_mass_kg", c.dry_mass_kg),
        ("car.efficiency", c.efficiency),
        ("car.fuel_lhv_mj_per_kg", c.fuel_lhv_mj_per_kg),
        ("car.max_wheel_power_kw", c.max_wheel_power_kw),
        ("units.kg_per_unit", p.units.kg_per_unit),
        ("units.m_per_distance_unit", p.units.m_per_distance_unit),
        ("throttle_full", p.throttle_full),
        ("coast.coast_scale", p.coast.coast_scale),
        ("coast.burn_scale", p.coast.burn_scale),
    ];
    for (name, v) in positive {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{name} must be a positive number, not {v}"));
        }
    }
    let nonneg = [
        ("air_density", p.air_density),
        ("gravity", p.gravity),
        ("car.cda_m2", c.cda_m2),
        ("car.cla_m2", c.cla_m2),
        ("car.crr", c.crr),
        ("car.base_flow_kg_per_h", c.base_flow_kg_per_h),
    ];
    for (name, v) in nonneg {
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("{name} must be a number ≥ 0, not {v}"));
        }
    }
    if !ident_ok(&p.units.fuel, 12) {
        return Err(format!(
            "units.fuel {:?} is not an identifier",
            p.units.fuel
        ));
    }
    if let Some(e) = &p.units.economy
        && !ident_ok(e, 16)
    {
        return Err(format!("units.economy {e:?} is not an identifier"));
    }
    // The model keeps five windows: two smoothing, up to three before a braking zone.
    if !(1..=3).contains(&p.coast.coast_windows) {
        return Err("coast.coast_windows must be 1, 2 or 3".into());
    }
    if !(p.coast.lap_weight > 0.0 && p.coast.lap_weight <= 1.0) {
        return Err("coast.lap_weight must be in (0, 1]".into());
    }
    Ok(())
}

/// Everything the model keeps about one car.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CarState {
    /// End of the car's last window with a distance, and that distance.
    last: Option<(i64, f64)>,
    /// The last five samples (oldest first).
    samples: VecDeque<Sample>,
    /// The lap being summed (by the booked windows' laps) and its sums.
    lap: Option<(u16, Acc)>,
    /// The last completed lap, and the one before.
    last_lap: Option<(u16, Acc)>,
    prev_lap: Option<(u16, Acc)>,
    stint: Acc,
    /// The stint the booked windows belong to.
    booked_stint: u32,
    /// The stint of the latest sample: pit exits seen so far.
    stint_now: u32,
    /// A pit exit was seen and the host's stop count has not caught up yet.
    exit_pending: bool,
    /// Since the last refuelling (the start, where the series does not refuel).
    since_fill: Acc,
    total: Acc,
    /// Booked this frame.
    window: Acc,
    /// Pit stops and pit-lane status seen last frame (stint changes).
    pit_stops: u8,
    was_in_pit: bool,
    /// Lift-and-coast counts by lap: (braking zones, preceded by a coast).
    coast_counts: BTreeMap<u16, (u32, u32)>,
    /// Running averages over laps (None until the first usable lap).
    coast_avg: Option<f64>,
    burn_avg: Option<f64>,
    /// The score after the last completed lap, and how many laps in a row it
    /// has been at least the story's threshold.
    score: Option<f64>,
    saving_laps: u16,
    /// A story is due (set when a lap completes, told in `on_car`).
    story_due: bool,
    last_story_lap: Option<u16>,
}

/// What survives a hot swap to a new version ([`Stateful`], state version 1):
/// the race so far. The calibration is refitted from `laps` with the new
/// version's parameters on its first frame.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RaceState {
    cars: BTreeMap<u16, CarState>,
    /// Every completed lap of every car, by lap number.
    laps: BTreeMap<u16, Vec<Acc>>,
    calib: Option<Calib>,
    /// Race lap of the last story (any car).
    last_story_race_lap: Option<u16>,
}

/// The plugin; see the [crate docs](crate).
#[derive(Default)]
pub struct Fuel {
    params: Params,
    names: Names,
    /// Parameter generation the params were read at.
    generation: Option<i64>,
    st: RaceState,
    /// Leader's lap at the last calibration fit.
    fitted_at_lap: u16,
    // Per frame:
    throttle_index: Option<AggIndex>,
    rpm_index: Option<AggIndex>,
    neutral: bool,
    counting: bool,
    total_laps: Option<u16>,
    race_lap: u16,
    /// The field's median running coast fraction (before this frame).
    field_coast: Option<f64>,
    scratch: Vec<f64>,
    scratch2: Vec<f64>,
    scratch3: Vec<f64>,
}

impl Fuel {
    fn calib(&self) -> Calib {
        self.st.calib.unwrap_or_else(|| Calib::prior(&self.params))
    }

    /// Fuel the car started with (and gets back at a refuelling stop), kg.
    fn load_kg(&self) -> f64 {
        let p = &self.params;
        p.start_load_kg
            .or_else(|| p.calibration.race_fuel.map(|f| f * p.units.kg_per_unit))
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(0.0)
    }

    /// Calibration targets per green lap and per yellow lap, kg, for a lap of
    /// `dist_m` metres; `None` where the parameters give no such point.
    fn targets(&self, dist_m: f64) -> (Option<f64>, Option<f64>) {
        let p = &self.params;
        let kgpu = p.units.kg_per_unit;
        let per_m = |economy: Option<f64>| {
            economy
                .filter(|e| e.is_finite() && *e > 0.0)
                .map(|e| dist_m * kgpu / (e * p.units.m_per_distance_unit))
        };
        let green = match (p.calibration.race_fuel, self.total_laps) {
            (Some(f), Some(n)) if f.is_finite() && f > 0.0 => Some(f * kgpu / f64::from(n)),
            _ => per_m(p.calibration.green_economy),
        };
        (green, per_m(p.calibration.yellow_economy))
    }

    /// Refits the calibration from every completed lap (see the crate docs).
    fn fit(&mut self, ctx: &Context) {
        let prior = Calib::prior(&self.params);
        let cal = &self.params.calibration;
        // The track length: the median distance of completed laps.
        self.scratch.clear();
        self.scratch.extend(
            self.st
                .laps
                .iter()
                .filter(|(l, _)| **l >= 2)
                .flat_map(|(_, v)| v.iter().map(|a| a.dist_m)),
        );
        let Some(track) = median(&mut self.scratch) else {
            return;
        };
        let full =
            |a: &Acc| a.secs > 0.0 && a.work_kg > 0.0 && (a.dist_m - track).abs() <= 0.05 * track;
        let green =
            |l: u16, a: &Acc| l >= 2 && full(a) && a.neutral_secs == 0.0 && a.pit_secs == 0.0;
        let yellow = |a: &Acc| full(a) && a.neutral_secs >= 0.8 * a.secs && a.pit_secs == 0.0;
        let (Some(target_g), target_y) = self.targets(track) else {
            return;
        };
        // Green-only fit: the per-lap corrections' median.
        let (ks, ws, ts) = (&mut self.scratch, &mut self.scratch2, &mut self.scratch3);
        ks.clear();
        ws.clear();
        ts.clear();
        for (&l, v) in &self.st.laps {
            for a in v.iter().filter(|a| green(l, a)) {
                let target = self
                    .params
                    .calibration
                    .race_fuel
                    .filter(|_| self.total_laps.is_some())
                    .map_or(target_g * a.dist_m / track, |_| target_g);
                ks.push((target - prior.base_kg_per_s * a.secs) / a.work_kg);
                ws.push(a.work_kg / a.dist_m);
                ts.push(a.secs / a.dist_m);
            }
        }
        if ks.len() < cal.min_green_laps.max(1) {
            return;
        }
        let k_green = median(ks).filter(|k| k.is_finite() && *k > 0.0);
        let mut fitted = k_green.map(|k| Calib {
            k,
            base_kg_per_s: prior.base_kg_per_s,
        });
        // Two points: green and yellow medians per metre (a lap is a whole
        // number of windows, so its distance varies by a window's worth),
        // solved for k and the base flow.
        if let Some(target_y) = target_y {
            let (target_g, target_y) = (target_g / track, target_y / track);
            let (wg, sg) = (median(ws), median(ts));
            ws.clear();
            ts.clear();
            for a in self.st.laps.values().flatten().filter(|a| yellow(a)) {
                ws.push(a.work_kg / a.dist_m);
                ts.push(a.secs / a.dist_m);
            }
            if ws.len() >= cal.min_yellow_laps.max(1)
                && let (Some(wg), Some(sg), Some(wy), Some(sy)) = (wg, sg, median(ws), median(ts))
            {
                let det = wg * sy - wy * sg;
                if det.abs() > 1e-9 * (wg * sy).abs() {
                    let k = (target_g * sy - target_y * sg) / det;
                    let c = (wg * target_y - wy * target_g) / det;
                    if k.is_finite() && k > 0.0 && c.is_finite() && c >= 0.0 {
                        fitted = Some(Calib {
                            k,
                            base_kg_per_s: c,
                        });
                    }
                }
            }
        }
        if let Some(f) = fitted {
            if self
                .st
                .calib
                .is_none_or(|old| (old.k - f.k).abs() > 0.01 * old.k)
            {
                ctx.log(
                    LogLevel::Info,
                    &format!(
                        "calibration at lap {}: k = {:.3} (effective efficiency {:.1} %), base flow {:.2} kg/h",
                        self.race_lap,
                        f.k,
                        100.0 * self.params.car.efficiency / f.k,
                        f.base_kg_per_s * 3600.0
                    ),
                );
            }
            self.st.calib = Some(f);
        }
    }

    /// The field's median fuel for lap `lap` under `c` (at least three cars).
    fn lap_median(&mut self, lap: u16, c: &Calib) -> Option<f64> {
        let recs = self.st.laps.get(&lap)?;
        if recs.len() < 3 {
            return None;
        }
        self.scratch.clear();
        self.scratch.extend(recs.iter().map(|a| a.fuel_kg(c)));
        median(&mut self.scratch).filter(|m| *m > 0.0)
    }

    /// Records a car's completed lap and updates its running averages.
    fn complete_lap(&mut self, number: u16, lap: u16, acc: Acc) {
        self.st.laps.entry(lap).or_default().push(acc);
        let c = self.calib();
        // The Burn Bar of the *previous* lap: by the time a car finishes lap
        // n, nearly the whole field has finished lap n − 1, so its median is
        // settled (lap n's has only the cars ahead).
        let prev = self
            .st
            .cars
            .get(&number)
            .and_then(|s| s.last_lap)
            .filter(|(l, a)| *l + 1 == lap && a.pit_secs == 0.0 && a.neutral_secs == 0.0);
        let prev_ratio = prev.and_then(|(l, a)| {
            let m = self.lap_median(l, &c)?;
            Some(a.fuel_kg(&c) / m)
        });
        let p = self.params.coast.clone();
        let story = self.params.story.clone();
        let field_coast = self.field_coast;
        let clean = acc.pit_secs == 0.0 && acc.neutral_secs == 0.0 && lap >= 2;
        let Some(s) = self.st.cars.get_mut(&number) else {
            return;
        };
        s.prev_lap = s.last_lap.replace((lap, acc));
        let counts = s.coast_counts.remove(&lap);
        s.coast_counts.retain(|l, _| *l > lap);
        let w = p.lap_weight;
        let ewma = |avg: &mut Option<f64>, x: f64| {
            *avg = Some(avg.map_or(x, |a| a + w * (x - a)));
        };
        if clean && let Some((brakes, coasts)) = counts.filter(|c| c.0 > 0) {
            ewma(&mut s.coast_avg, f64::from(coasts) / f64::from(brakes));
        }
        if let Some(r) = prev_ratio.filter(|r| r.is_finite()) {
            ewma(&mut s.burn_avg, r);
        }
        if s.coast_avg.is_none() && s.burn_avg.is_none() {
            return;
        }
        let coast_term = match (s.coast_avg, field_coast) {
            (Some(a), Some(f)) => (a - f) / p.coast_scale,
            _ => 0.0,
        };
        let burn_term = s.burn_avg.map_or(0.0, |b| (1.0 - b) / p.burn_scale);
        let score = (coast_term + burn_term).tanh();
        s.score = score.is_finite().then_some(score);
        // A saving lap for the story: a high score *and* both signs of it,
        // coasting clearly more than the field and burning clearly less (a
        // low burn alone may just be a slow car).
        let coasting = coast_term >= story.min_coast_excess / p.coast_scale;
        let burning_less = s
            .burn_avg
            .is_some_and(|b| b <= 1.0 - story.min_burn_deficit);
        if clean {
            if s.score.is_some_and(|x| x >= story.min_score) && coasting && burning_less {
                s.saving_laps = s.saving_laps.saturating_add(1);
            } else {
                s.saving_laps = 0;
            }
        }
        let cooled = s
            .last_story_lap
            .is_none_or(|l| lap >= l.saturating_add(story.cooldown_laps));
        let field_cooled = self
            .st
            .last_story_race_lap
            .is_none_or(|l| self.race_lap >= l.saturating_add(story.field_cooldown_laps));
        s.story_due = story.enabled
            && lap >= story.from_lap
            && s.saving_laps >= story.laps.max(1)
            && cooled
            && field_cooled;
    }

    /// Books one smoothed window of car `number` into its sums.
    fn book(&mut self, number: u16, mid: &Sample, v: f64, a: f64) -> Option<(u16, Acc)> {
        let load = self.load_kg();
        let c = self.calib();
        let p = &self.params;
        let s = self.st.cars.get_mut(&number)?;
        let on_board = if p.refuel_at_stops {
            load - s.since_fill.fuel_kg(&c)
        } else {
            load - s.total.fuel_kg(&c)
        };
        let mass = p.car.dry_mass_kg + on_board.max(0.0);
        let work_kg = match mid.throttle {
            Some(t) => physics::throttle_fuel_kg(&p.car, t, mid.rpm, mid.dt),
            None => physics::work_fuel_kg(&p.car, physics::wheel_power_w(p, mass, v, a) * mid.dt),
        };
        let acc = Acc {
            work_kg,
            secs: mid.dt,
            dist_m: mid.v * mid.dt,
            neutral_secs: if mid.neutral { mid.dt } else { 0.0 },
            pit_secs: if mid.in_pit { mid.dt } else { 0.0 },
        };
        if mid.stint != s.booked_stint {
            s.booked_stint = mid.stint;
            s.stint = Acc::default();
            if p.refuel_at_stops {
                s.since_fill = Acc::default();
            }
        }
        s.window.add(&acc);
        s.stint.add(&acc);
        s.since_fill.add(&acc);
        s.total.add(&acc);
        let mut completed = None;
        match &mut s.lap {
            Some((l, sum)) if *l == mid.lap => sum.add(&acc),
            slot => {
                completed = slot.take();
                *slot = Some((mid.lap, acc));
            }
        }
        completed
    }

    /// Takes this frame's window of `car`: a new sample, lift-and-coast
    /// counting, and the booking of the window two back.
    fn observe(&mut self, car: &Car<'_>, frame: &Frame<'_>) {
        let number = car.number();
        let end = frame.window_end_ms();
        let (neutral, counting) = (self.neutral, self.counting);
        let throttle = self
            .throttle_index
            .and_then(|i| car.aggregate_at(i))
            .map(|t| (t / self.params.throttle_full).clamp(0.0, 1.0));
        let rpm = self.rpm_index.and_then(|i| car.aggregate_at(i));
        let coast = self.params.coast.clone();
        let s = self.st.cars.entry(number).or_default();
        s.window = Acc::default();
        // Stints: a new one when the car leaves the pit lane, or when the
        // host's stop count moves without a pit exit seen (a source with the
        // count but without pit-lane status); not twice for one stop.
        if s.was_in_pit && !car.in_pit() {
            s.stint_now += 1;
            s.exit_pending = true;
        }
        if car.pit_stops() != s.pit_stops {
            if !s.exit_pending {
                s.stint_now += 1;
            }
            s.exit_pending = false;
            s.pit_stops = car.pit_stops();
        }
        s.was_in_pit = car.in_pit();
        let Some(dist) = car.total_distance_m() else {
            return;
        };
        let Some((last_end, last_dist)) = s.last.replace((end, dist)) else {
            return;
        };
        let dt = (end - last_end) as f64 / 1000.0;
        if dt <= 0.0 {
            s.last = Some((last_end, last_dist));
            return;
        }
        // 110 m/s (~400 km/h) is faster than any racing car: a bigger jump is
        // a position glitch, not speed.
        let v = ((dist - last_dist) / dt).clamp(0.0, 110.0);
        s.samples.push_back(Sample {
            v,
            dt,
            lap: car.lap(),
            counted: counting,
            neutral,
            in_pit: car.in_pit(),
            stint: s.stint_now,
            throttle,
            rpm,
        });
        while s.samples.len() > 5 {
            s.samples.pop_front();
        }
        // Lift and coast: did the window just closed start a braking zone,
        // and did the car coast into it?
        let n = s.samples.len();
        if counting && !neutral && n >= 2 + coast.coast_windows.max(1) {
            let kmh = |i: usize| s.samples[i].v * KMH_PER_MS;
            let (before, now) = (kmh(n - 2), kmh(n - 1));
            let braking = before >= coast.brake_from_kmh && before - now >= coast.brake_drop_kmh;
            // One zone may take two windows of braking: count its first.
            let already = n >= 3 && kmh(n - 3) - before >= coast.brake_drop_kmh;
            if braking && !already {
                let windows = coast.coast_windows.max(1);
                let by_speed = (0..windows).all(|j| {
                    let (a, b) = (kmh(n - 3 - j), kmh(n - 2 - j));
                    let drop = a - b;
                    a >= coast.brake_from_kmh
                        && drop >= coast.coast_min_drop_kmh
                        && drop <= coast.coast_max_drop_kmh
                });
                let by_throttle = s.samples[n - 3]
                    .throttle
                    .is_some_and(|t| t < coast.lift_throttle_fraction);
                let e = s.coast_counts.entry(car.lap()).or_default();
                e.0 += 1;
                e.1 += u32::from(by_speed || by_throttle);
            }
        }
        if s.samples.len() < 5 {
            return;
        }
        let window: [Sample; 5] = std::array::from_fn(|i| s.samples[i]);
        let mid = window[2];
        if !mid.counted {
            return;
        }
        let (v, a) = centre(&window);
        if let Some((lap, acc)) = self.book(number, &mid, v, a) {
            self.complete_lap(number, lap, acc);
        }
    }

    fn emit(&mut self, car: &Car<'_>, out: &mut Output) -> PluginResult {
        let number = car.number();
        let c = self.calib();
        let load = self.load_kg();
        let has_load = self.params.start_load_kg.is_some();
        let kgpu = self.params.units.kg_per_unit;
        let mpdu = self.params.units.m_per_distance_unit;
        let refuel = self.params.refuel_at_stops;
        let Some(s) = self.st.cars.get(&number) else {
            return Ok(());
        };
        if s.total.secs == 0.0 {
            return Ok(());
        }
        let (window, stint, total) = (s.window, s.stint, s.total);
        let used = if refuel { s.since_fill } else { s.total };
        let (last_lap, prev_lap, score, coast) = (s.last_lap, s.prev_lap, s.score, s.coast_avg);
        let story_due = s.story_due && !self.neutral;
        // Until three cars have completed the car's last lap (the leader,
        // just after the line), its previous lap stands in.
        let mut ratio = |l: Option<(u16, Acc)>| {
            let (lap, acc) = l?;
            let m = self.lap_median(lap, &c)?;
            Some(acc.fuel_kg(&c) / m)
        };
        let bar = ratio(last_lap).or_else(|| ratio(prev_lap));
        let n = &self.names;
        let to_unit = |kg: f64| kg / kgpu;
        out.metric(number, &n.window, to_unit(window.fuel_kg(&c)), &n.unit)?;
        out.metric(number, &n.stint, to_unit(stint.fuel_kg(&c)), &n.unit)?;
        out.metric(number, &n.total, to_unit(total.fuel_kg(&c)), &n.unit)?;
        if has_load {
            out.metric(
                number,
                &n.remaining,
                to_unit(load - used.fuel_kg(&c)),
                &n.unit,
            )?;
        }
        if let Some((lap, acc)) = last_lap {
            let kg = acc.fuel_kg(&c);
            out.metric(number, &n.lap, to_unit(kg), &n.per_lap)?;
            out.metric(number, "fuel_lap_number", f64::from(lap), "lap")?;
            if let Some(e) = &n.economy
                && kg > 0.0
            {
                out.metric(
                    number,
                    e,
                    (acc.dist_m / mpdu) / to_unit(kg),
                    &n.economy_unit,
                )?;
            }
        }
        if let Some(bar) = bar {
            out.metric(number, "burn_bar", bar, "ratio")?;
        }
        if let Some(score) = score {
            out.metric(number, "fuel_saving", score, "score")?;
        }
        if let Some(coast) = coast {
            out.metric(number, "coast_fraction", coast, "ratio")?;
        }
        if story_due {
            self.tell(number, out)?;
        }
        Ok(())
    }

    /// The `fuel_saving` story for `number` (its conditions checked by the caller).
    fn tell(&mut self, number: u16, out: &mut Output) -> PluginResult {
        let c = self.calib();
        let kgpu = self.params.units.kg_per_unit;
        let unit = self.names.unit.clone();
        let Some(s) = self.st.cars.get_mut(&number) else {
            return Ok(());
        };
        let (Some(score), Some((lap, acc))) = (s.score, s.last_lap) else {
            return Ok(());
        };
        s.story_due = false;
        s.last_story_lap = Some(lap);
        self.st.last_story_race_lap = Some(self.race_lap);
        let laps = s.saving_laps;
        let burn = s.burn_avg.unwrap_or(1.0);
        let coast = s.coast_avg.unwrap_or(0.0);
        let less = (1.0 - burn) * 100.0;
        let headline = if less >= 0.5 {
            format!(
                "#{number} is saving fuel: lifting and coasting for {laps} laps, burning {less:.0}% less than the field"
            )
        } else {
            format!(
                "#{number} is saving fuel: lifting and coasting into the braking zones for {laps} laps"
            )
        };
        out.story("fuel_saving", &headline)
            .car(number)
            .importance((0.3 + 0.4 * score).clamp(0.0, 1.0))
            .evidence("fuel_saving", score)
            .evidence("burn_bar", burn)
            .evidence("coast_fraction", coast)
            .evidence("saving_laps", f64::from(laps))
            .evidence(&format!("fuel_{unit}_lap"), acc.fuel_kg(&c) / kgpu)
            .emit()?;
        Ok(())
    }
}

impl CarModel for Fuel {
    fn begin_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context) -> PluginResult {
        let generation = ctx.params_generation();
        if self.generation != Some(generation) {
            let p: Params = ctx.params_json_or_default();
            self.params = match check_params(&p) {
                Ok(()) => p,
                Err(e) => {
                    ctx.log(
                        LogLevel::Warn,
                        &format!("parameters refused ({e}); using the defaults"),
                    );
                    Params::default()
                }
            };
            self.names = Names::new(&self.params);
            self.generation = Some(generation);
            // New physics or targets: refit from the laps already driven.
            self.st.calib = None;
            self.fitted_at_lap = 0;
        }
        let race = frame.race();
        self.throttle_index = frame.aggregate_index(&self.params.throttle_aggregate);
        self.rpm_index = frame.aggregate_index(&self.params.rpm_aggregate);
        self.neutral = race.neutralised();
        self.counting = race.under_way() || !self.params.require_under_way;
        self.total_laps = race.total_laps();
        self.race_lap = race.lap();
        if self.race_lap != self.fitted_at_lap {
            self.fitted_at_lap = self.race_lap;
            self.fit(ctx);
        }
        self.scratch.clear();
        self.scratch
            .extend(self.st.cars.values().filter_map(|s| s.coast_avg));
        self.field_coast = median(&mut self.scratch);
        Ok(())
    }

    fn on_car(
        &mut self,
        car: &Car<'_>,
        frame: &Frame<'_>,
        _ctx: &mut Context,
        out: &mut Output,
    ) -> PluginResult {
        self.observe(car, frame);
        self.emit(car, out)
    }
}

impl Stateful for Fuel {
    type State = RaceState;

    fn snapshot(&self) -> RaceState {
        self.st.clone()
    }

    fn restore(&mut self, old_state_version: u32, state: StateBytes<'_>) -> PluginResult {
        if old_state_version != 1 {
            return Err(format!(
                "state version {old_state_version} is unknown (this build reads 1)"
            )
            .into());
        }
        self.st = state.decode()?;
        // Refit with this version's parameters on the first frame.
        self.generation = None;
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Fuel,
    name = "fuel",
    version = "1.0.0",
    kind = car_model,
    state_version = 1
);
