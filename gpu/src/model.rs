//! The lap-time model shared by the Monte Carlo, the lap-time predictor and the
//! fitting example.
//!
//! One lap of car `d` on compound `c` with tyres `age` laps old, on race lap
//! `lap`:
//!
//! ```text
//! t = base_d + compound_offset[c] + deg[c] · age + cliff · max(0, age − life[c])
//!     + fuel · lap + traffic · [car ahead within traffic_gap_s at the line]
//!     + noise
//! ```
//!
//! * `base_d` is the car's pace at this circuit. It is not a model parameter:
//!   tracks differ by tens of seconds, so the host estimates it online from the
//!   car's own green-flag laps ([`crate::predict`]); the fit reports one per
//!   driver for the fitting race only.
//! * `deg`, `compound_offset`, `fuel` and `traffic` are fitted by least squares
//!   on real green-flag laps (`cargo run -p pitwall-gpu --example
//!   fit_lap_model`), `noise_s` is the residual standard deviation.
//! * `life` and `cliff_s_per_lap` are not identifiable from one race (teams pit
//!   before the cliff); `life` is the 90th percentile of real stint lengths per
//!   compound, `cliff_s_per_lap` a stated prior. They only matter to strategies
//!   that run tyres past their usual life.
//!
//! The evaluation order of [`LapModel::mean_lap_s`] is mirrored exactly by
//! `gpu/kernels/common.cuh`; keep the two in step.

use serde::{Deserialize, Serialize};

/// Dry tyre compounds, as the model indexes them. Wet compounds are out of
/// scope (the model is fitted on dry races); they map to `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Compound {
    Soft = 0,
    Medium = 1,
    Hard = 2,
}

impl Compound {
    pub const ALL: [Compound; 3] = [Compound::Soft, Compound::Medium, Compound::Hard];

    /// Parses OpenF1 / live-timing names (`SOFT`, `Medium`, ...); wet and
    /// unknown compounds give `None`.
    pub fn parse(s: &str) -> Option<Compound> {
        match s.trim().to_ascii_uppercase().as_str() {
            "SOFT" => Some(Compound::Soft),
            "MEDIUM" => Some(Compound::Medium),
            "HARD" => Some(Compound::Hard),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: u32) -> Option<Compound> {
        Compound::ALL.get(i as usize).copied()
    }

    /// The compound a pit stop fits: the usual dry-race choice (softs and
    /// hards go to the other of hard/medium, mediums to hards). Kernels use the
    /// same table (`next_compound` in `common.cuh`).
    pub fn next(self) -> Compound {
        match self {
            Compound::Soft => Compound::Hard,
            Compound::Medium => Compound::Hard,
            Compound::Hard => Compound::Medium,
        }
    }
}

/// The fitted model, as committed in `gpu/models/lap_model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LapModel {
    /// Where the parameters came from (races, command), for traceability.
    pub source: String,
    /// Seconds added per lap of tyre age, per compound (SOFT, MEDIUM, HARD).
    pub deg_s_per_lap: [f64; 3],
    /// Pace offset of each compound relative to SOFT (s); `[0]` is 0.
    pub compound_offset_s: [f64; 3],
    /// Seconds per race lap (negative: the car gets lighter as fuel burns).
    pub fuel_s_per_lap: f64,
    /// Time lost on a lap started within `traffic_gap_s` of the car ahead.
    pub traffic_s: f64,
    pub traffic_gap_s: f64,
    /// Residual standard deviation of a green-flag lap (s).
    pub noise_s: f64,
    /// Usual stint length per compound (laps).
    pub life_laps: [f64; 3],
    /// Extra seconds per lap per lap of age beyond `life_laps` (a prior).
    pub cliff_s_per_lap: f64,
    /// Race time lost by a pit stop under green flag (in-lap + out-lap minus
    /// two racing laps), fitted from real stops.
    pub pit_loss_s: f64,
    /// Per-driver `base_d` of the fitting race (for inspection only).
    #[serde(default)]
    pub fit_base_s: Vec<(u32, f64)>,
}

/// The committed fit (`gpu/models/lap_model.json`).
pub const DEFAULT_MODEL_JSON: &str = include_str!("../models/lap_model.json");

impl LapModel {
    /// The model fitted from real races and committed with the crate.
    pub fn fitted() -> LapModel {
        serde_json::from_str(DEFAULT_MODEL_JSON)
            .expect("gpu/models/lap_model.json is valid (checked by a test)")
    }

    /// The expected lap time without noise and traffic (see the module docs).
    #[inline]
    pub fn mean_lap_s(&self, base_s: f64, compound: Compound, age: f64, lap: f64) -> f64 {
        let c = compound.index();
        let over = age - self.life_laps[c];
        let cliff = if over > 0.0 {
            self.cliff_s_per_lap * over
        } else {
            0.0
        };
        (((base_s + self.compound_offset_s[c]) + self.deg_s_per_lap[c] * age) + cliff)
            + self.fuel_s_per_lap * lap
    }

    /// The part of [`mean_lap_s`](Self::mean_lap_s) that does not depend on
    /// the car's base pace.
    pub fn shape_s(&self, compound: Compound, age: f64, lap: f64) -> f64 {
        self.mean_lap_s(0.0, compound, age, lap)
    }

    /// Kernel parameter block: the model flattened in the order `common.cuh`
    /// reads it (see [`param`]).
    pub fn params(&self) -> [f64; param::LEN] {
        let mut p = [0.0; param::LEN];
        p[param::DEG..param::DEG + 3].copy_from_slice(&self.deg_s_per_lap);
        p[param::OFFSET..param::OFFSET + 3].copy_from_slice(&self.compound_offset_s);
        p[param::LIFE..param::LIFE + 3].copy_from_slice(&self.life_laps);
        p[param::CLIFF] = self.cliff_s_per_lap;
        p[param::FUEL] = self.fuel_s_per_lap;
        p[param::TRAFFIC] = self.traffic_s;
        p[param::TRAFFIC_GAP] = self.traffic_gap_s;
        p[param::NOISE] = self.noise_s;
        p
    }
}

/// Indices into the `f64` parameter block the kernels take (`P_*` in
/// `common.cuh`). Race-level settings of the Monte Carlo follow the model's.
pub mod param {
    pub const DEG: usize = 0;
    pub const OFFSET: usize = 3;
    pub const LIFE: usize = 6;
    pub const CLIFF: usize = 9;
    pub const FUEL: usize = 10;
    pub const TRAFFIC: usize = 11;
    pub const TRAFFIC_GAP: usize = 12;
    pub const NOISE: usize = 13;
    pub const PIT_LOSS: usize = 14;
    pub const P_SC: usize = 15;
    pub const P_VSC: usize = 16;
    pub const SC_LAP_S: usize = 17;
    pub const VSC_FACTOR: usize = 18;
    pub const SC_PIT_FACTOR: usize = 19;
    pub const VSC_PIT_FACTOR: usize = 20;
    pub const SC_GAP_S: usize = 21;
    pub const LEN: usize = 22;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_model_loads_and_is_plausible() {
        let m = LapModel::fitted();
        // Tyres get slower with age, fuel burn makes laps faster, noise is
        // tenths of a second, a stop costs 15-30 s: anything else is a broken fit.
        for c in 0..3 {
            assert!(
                m.deg_s_per_lap[c] > -0.05 && m.deg_s_per_lap[c] < 0.3,
                "{m:?}"
            );
            assert!(m.life_laps[c] >= 5.0, "{m:?}");
        }
        assert_eq!(m.compound_offset_s[0], 0.0);
        assert!(m.fuel_s_per_lap < 0.0 && m.fuel_s_per_lap > -0.2, "{m:?}");
        assert!(m.noise_s > 0.1 && m.noise_s < 2.0, "{m:?}");
        assert!(m.pit_loss_s > 15.0 && m.pit_loss_s < 35.0, "{m:?}");
    }

    #[test]
    fn compounds_parse_and_cycle() {
        assert_eq!(Compound::parse(" medium"), Some(Compound::Medium));
        assert_eq!(Compound::parse("INTERMEDIATE"), None);
        for c in Compound::ALL {
            assert_ne!(c.next(), c);
            assert_eq!(Compound::from_index(c as u32), Some(c));
        }
    }

    #[test]
    fn cliff_applies_only_past_life() {
        let mut m = LapModel::fitted();
        m.cliff_s_per_lap = 0.5;
        let life = m.life_laps[0];
        let a = m.mean_lap_s(90.0, Compound::Soft, life, 10.0);
        let b = m.mean_lap_s(90.0, Compound::Soft, life + 2.0, 10.0);
        assert!((b - a - (2.0 * m.deg_s_per_lap[0] + 1.0)).abs() < 1e-9);
    }
}
