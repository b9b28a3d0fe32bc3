//! The physics: power at the wheels from speed and acceleration, fuel from
//! power (or from throttle and rpm where the feed has them), speed and
//! acceleration from successive windows, and the accumulators a lap, stint
//! or race is summed in.
//!
//! Pure functions of their inputs: no state, no clock, no panics on NaN
//! (non-finite inputs give zero burn).

use serde::{Deserialize, Serialize};

use crate::params::{CarParams, Params};

/// km/h in one m/s.
pub const KMH_PER_MS: f64 = 3.6;

/// Power the power unit delivers at the wheels, W, for a car of `mass_kg`
/// at `v` m/s accelerating at `a` m/s²:
///
/// `P = ½ρ·CdA·v³ + Crr·(m·g + ½ρ·ClA·v²)·v + m·a·v`
///
/// (aerodynamic drag, rolling resistance under weight and downforce, and the
/// change of kinetic energy), clipped to `[0, max_wheel_power]`: braking
/// returns nothing to the tank (ERS recovery is in the calibration), and an
/// acceleration estimate beyond what the car can deliver is noise.
pub fn wheel_power_w(p: &Params, mass_kg: f64, v: f64, a: f64) -> f64 {
    let c = &p.car;
    let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
    let a = if a.is_finite() { a } else { 0.0 };
    let q = 0.5 * p.air_density * v * v;
    let drag = q * c.cda_m2;
    let rolling = c.crr * (mass_kg * p.gravity + q * c.cla_m2);
    let power = (drag + rolling + mass_kg * a) * v;
    let max = c.max_wheel_power_kw * 1e3;
    if power.is_finite() {
        power.clamp(0.0, max.max(0.0))
    } else {
        0.0
    }
}

/// Fuel for `energy_j` joules at the wheels with the prior (uncalibrated)
/// tank-to-wheel efficiency, kg.
pub fn work_fuel_kg(c: &CarParams, energy_j: f64) -> f64 {
    let denom = c.efficiency * c.fuel_lhv_mj_per_kg * 1e6;
    let kg = energy_j / denom;
    if kg.is_finite() { kg.max(0.0) } else { 0.0 }
}

/// Fuel over `dt_s` seconds from a throttle fraction (0..1) and engine
/// speed, kg: the throttle opens the flow towards the rpm-dependent limit
/// (F1: 100 kg/h above 10 500 rpm, 0.009·rpm + 5.5 kg/h below). Without rpm
/// the limit is the maximum flow.
pub fn throttle_fuel_kg(c: &CarParams, throttle: f64, rpm: Option<f64>, dt_s: f64) -> f64 {
    let limit = match rpm.filter(|r| r.is_finite() && *r >= 0.0) {
        Some(r) if r < c.flow_knee_rpm => {
            (c.flow_slope_kg_per_h_per_rpm * r + c.flow_offset_kg_per_h).min(c.max_flow_kg_per_h)
        }
        _ => c.max_flow_kg_per_h,
    };
    let kg = throttle.clamp(0.0, 1.0) * limit.max(0.0) / 3600.0 * dt_s;
    if kg.is_finite() { kg.max(0.0) } else { 0.0 }
}

/// The calibration in force: fuel = `k` · work fuel + `base_kg_per_s` · time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calib {
    /// Correction of the prior model's work fuel (1 = uncalibrated).
    pub k: f64,
    /// Fuel flow with no work, kg/s.
    pub base_kg_per_s: f64,
}

impl Calib {
    /// The uncalibrated prior of `params`.
    pub fn prior(p: &Params) -> Calib {
        Calib {
            k: 1.0,
            base_kg_per_s: p.car.base_flow_kg_per_h.max(0.0) / 3600.0,
        }
    }
}

/// What a lap, stint or race is summed in. Kept as the model's raw parts
/// (work fuel and time) rather than kg, so a refitted calibration applies
/// to everything already driven, and a total never jumps out of step with
/// its laps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Acc {
    /// Prior-model fuel for the work at the wheels (or the throttle model), kg.
    pub work_kg: f64,
    /// Seconds driven.
    pub secs: f64,
    /// Metres covered.
    pub dist_m: f64,
    /// Seconds of it under SC, VSC or red flag.
    pub neutral_secs: f64,
    /// Seconds of it in the pit lane.
    pub pit_secs: f64,
}

impl Acc {
    pub fn add(&mut self, o: &Acc) {
        self.work_kg += o.work_kg;
        self.secs += o.secs;
        self.dist_m += o.dist_m;
        self.neutral_secs += o.neutral_secs;
        self.pit_secs += o.pit_secs;
    }

    /// Fuel burned, kg, under calibration `c`.
    pub fn fuel_kg(&self, c: &Calib) -> f64 {
        c.k * self.work_kg + c.base_kg_per_s * self.secs
    }
}

/// One window of one car as the model keeps it until it can be smoothed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Mean speed over the window (distance covered / time), m/s.
    pub v: f64,
    /// Seconds since the car's previous sample (1 normally; more after a gap).
    pub dt: f64,
    pub lap: u16,
    /// Counts towards the race (under way).
    pub counted: bool,
    pub neutral: bool,
    pub in_pit: bool,
    /// Stint number (pit exits seen so far) when the window closed.
    pub stint: u32,
    /// Throttle fraction 0..1, where the feed has it.
    pub throttle: Option<f64>,
    pub rpm: Option<f64>,
}

/// 1-2-1 smoothing weights; see [`centre`].
const KERNEL: [f64; 3] = [0.25, 0.5, 0.25];

/// Speed and acceleration at the middle of five successive samples: the
/// window-mean speeds are smoothed 1-2-1 (at 1 s windows of 4 Hz positions
/// the mean speed of one window has a ±0.25 s timing jitter at each end,
/// tens of km/h), and the acceleration is the central difference of the
/// smoothed speeds either side, over the time between their window centres.
/// Positive-only power turns noise into phantom work, so the smoothing
/// matters more than the lag (two windows) it costs.
pub fn centre(s: &[Sample; 5]) -> (f64, f64) {
    let sm = |i: usize| -> f64 { (0..3).map(|j| KERNEL[j] * s[i - 1 + j].v).sum() };
    let (v1, v2, v3) = (sm(1), sm(2), sm(3));
    // Window centres: sample i ends at T_i and starts dt_i before.
    let span = 0.5 * s[1].dt + s[2].dt + 0.5 * s[3].dt;
    let a = if span > 0.0 { (v3 - v1) / span } else { 0.0 };
    (v2, a)
}

/// Median of `v` (the upper one of an even count), sorting it in place.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_terms_and_clipping() {
        let p = Params::default();
        let m = 850.0;
        // Standing still: nothing.
        assert_eq!(wheel_power_w(&p, m, 0.0, 3.0), 0.0);
        // Constant 250 km/h: drag + rolling only, cubic in speed.
        let v = 250.0 / KMH_PER_MS;
        let cruise = wheel_power_w(&p, m, v, 0.0);
        let drag = 0.5 * p.air_density * p.car.cda_m2 * v.powi(3);
        assert!(cruise > drag && cruise < drag * 1.2, "{cruise} vs {drag}");
        // Accelerating costs more, braking returns nothing, noise is clipped.
        assert!(wheel_power_w(&p, m, v, 2.0) > cruise);
        assert_eq!(wheel_power_w(&p, m, v, -40.0), 0.0);
        assert_eq!(wheel_power_w(&p, m, v, 50.0), 700e3);
        assert_eq!(wheel_power_w(&p, m, f64::NAN, 1.0), 0.0);
        assert_eq!(wheel_power_w(&p, m, v, f64::INFINITY), cruise);
    }

    #[test]
    fn fuel_from_work_and_from_throttle() {
        let c = CarParams::default();
        // 1 MJ at the wheels at 45 % of 43.5 MJ/kg.
        assert!((work_fuel_kg(&c, 1e6) - 1.0 / (0.45 * 43.5)).abs() < 1e-12);
        assert_eq!(work_fuel_kg(&c, f64::NAN), 0.0);
        // Full throttle above the knee: 100 kg/h.
        assert!((throttle_fuel_kg(&c, 1.0, Some(11_000.0), 3600.0) - 100.0).abs() < 1e-9);
        // At 8 000 rpm the regulation curve: 0.009·8000 + 5.5 = 77.5 kg/h.
        assert!((throttle_fuel_kg(&c, 1.0, Some(8_000.0), 3600.0) - 77.5).abs() < 1e-9);
        assert!((throttle_fuel_kg(&c, 0.5, None, 3600.0) - 50.0).abs() < 1e-9);
        assert_eq!(throttle_fuel_kg(&c, f64::NAN, None, 1.0), 0.0);
    }

    #[test]
    fn centre_smooths_and_differentiates() {
        let mk = |v: f64| Sample {
            v,
            dt: 1.0,
            ..Default::default()
        };
        // A steady ramp of 2 m/s per window: smoothing keeps it exactly.
        let s = [mk(50.0), mk(52.0), mk(54.0), mk(56.0), mk(58.0)];
        assert_eq!(centre(&s), (54.0, 2.0));
        // A single noisy window is damped.
        let s = [mk(60.0), mk(60.0), mk(70.0), mk(60.0), mk(60.0)];
        let (v, a) = centre(&s);
        assert_eq!((v, a), (65.0, 0.0));
    }
}
