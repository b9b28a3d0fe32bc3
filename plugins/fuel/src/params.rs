//! The model's parameters (JSON), with Formula 1 defaults.
//!
//! Everything physical is a parameter, so a series (or a team's better
//! numbers) is a parameter-only swap: no new code. `configs/fuel-f1.params.json`
//! spells out the defaults; `configs/fuel-nascar.params.json` is a NASCAR Cup
//! configuration (gallons, miles per gallon, green and yellow calibration
//! points).

use serde::Deserialize;

/// All settings; every field has a default (F1), unknown fields are refused
/// so a typo does not silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub units: Units,
    pub car: CarParams,
    /// Air density, kg/m³ (1.2 at sea level and 20 °C; Spielberg at 700 m is ~1.1).
    pub air_density: f64,
    /// m/s².
    pub gravity: f64,
    /// Fuel on board at the start, kg. Gives `fuel_<unit>_remaining` and the
    /// car's mass as it burns; `None`: no remaining figure, and the mass uses
    /// the calibration's race fuel (or none).
    pub start_load_kg: Option<f64>,
    /// The cars refuel at pit stops (NASCAR, IndyCar): the remaining fuel and
    /// the mass go back to the start load at each stop.
    pub refuel_at_stops: bool,
    pub calibration: Calibration,
    pub coast: CoastParams,
    pub story: StoryParams,
    /// Only windows of a race under way burn fuel in the model (the formation
    /// lap and the grid are left out). `false` for sources that cannot tell
    /// when the race started.
    pub require_under_way: bool,
    /// Aggregate names to read the throttle and rpm from, where the feed has them.
    pub throttle_aggregate: String,
    pub rpm_aggregate: String,
    /// Throttle value meaning fully open (100 for F1 percent).
    pub throttle_full: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            units: Units::default(),
            car: CarParams::default(),
            air_density: 1.15,
            gravity: 9.81,
            start_load_kg: Some(107.0),
            refuel_at_stops: false,
            calibration: Calibration::default(),
            coast: CoastParams::default(),
            story: StoryParams::default(),
            require_under_way: true,
            throttle_aggregate: "mean_throttle".into(),
            rpm_aggregate: "mean_rpm".into(),
            throttle_full: 100.0,
        }
    }
}

/// How figures are reported. The model works in kg and metres; these only
/// convert on the way out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Units {
    /// Fuel unit, an identifier: it is part of the metric names
    /// (`fuel_kg_lap`, `fuel_gal_lap`).
    pub fuel: String,
    /// kg in one fuel unit (1 for kg; ≈ 2.82 for a US gallon of E15 at 0.745 kg/l).
    pub kg_per_unit: f64,
    /// Distance unit for the economy figure (`mi`), if one is reported.
    pub distance: String,
    /// Metres in one distance unit (1609.344 for a mile).
    pub m_per_distance_unit: f64,
    /// Also report `fuel_<economy>_lap`, distance per fuel unit over the last
    /// lap (e.g. `mpg`); `None`: no economy figure.
    pub economy: Option<String>,
}

impl Default for Units {
    fn default() -> Self {
        Units {
            fuel: "kg".into(),
            kg_per_unit: 1.0,
            distance: "km".into(),
            m_per_distance_unit: 1000.0,
            economy: None,
        }
    }
}

/// The car and its power unit (assumed, not fitted: the calibration scales
/// the result, see the crate docs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CarParams {
    /// Minimum mass with the driver and without fuel, kg (F1 2024: 798).
    pub dry_mass_kg: f64,
    /// Drag area Cd·A, m² (F1 medium-downforce trim: ~1.1–1.3).
    pub cda_m2: f64,
    /// Downforce area Cl·A, m²; loads the tyres, so it adds rolling resistance.
    pub cla_m2: f64,
    /// Rolling-resistance coefficient of the tyres.
    pub crr: f64,
    /// The most the power unit delivers at the wheels, kW (F1: ~550 kW ICE +
    /// 120 kW MGU-K, less drivetrain losses). Clips noise spikes of the
    /// acceleration estimate to something a car can do.
    pub max_wheel_power_kw: f64,
    /// Tank-to-wheel efficiency before calibration (F1 ICE: ~50 % brake
    /// thermal efficiency, less drivetrain losses).
    pub efficiency: f64,
    /// Lower heating value of the fuel, MJ/kg (E10 race fuel ~43.5; E15 ~41.5).
    pub fuel_lhv_mj_per_kg: f64,
    /// Fuel flow with no power at the wheels (idle, ancillaries), kg/h.
    pub base_flow_kg_per_h: f64,
    /// With a throttle channel: the most fuel flow the engine may use, kg/h
    /// (F1 regulation: 100 kg/h above 10 500 rpm).
    pub max_flow_kg_per_h: f64,
    /// With an rpm channel: below `flow_knee_rpm` the flow limit is
    /// `flow_slope_kg_per_h_per_rpm · rpm + flow_offset_kg_per_h`
    /// (F1 regulation: 0.009·rpm + 5.5).
    pub flow_knee_rpm: f64,
    pub flow_slope_kg_per_h_per_rpm: f64,
    pub flow_offset_kg_per_h: f64,
}

impl Default for CarParams {
    fn default() -> Self {
        CarParams {
            dry_mass_kg: 798.0,
            cda_m2: 1.2,
            cla_m2: 3.5,
            crr: 0.012,
            max_wheel_power_kw: 700.0,
            efficiency: 0.45,
            fuel_lhv_mj_per_kg: 43.5,
            base_flow_kg_per_h: 3.0,
            max_flow_kg_per_h: 100.0,
            flow_knee_rpm: 10_500.0,
            flow_slope_kg_per_h_per_rpm: 0.009,
            flow_offset_kg_per_h: 5.5,
        }
    }
}

/// Race facts the model is calibrated on (see the crate docs). Fuel amounts
/// here are in the display unit ([`Units::fuel`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Calibration {
    /// Fuel a full race distance at the field's green pace burns: the start
    /// load less what is left at the flag (F1: at most 110 kg on board, about
    /// 1 kg left for the FIA sample). Green per-lap target = this / total laps.
    pub race_fuel: Option<f64>,
    /// Green-flag economy, distance units per fuel unit (NASCAR: green mpg,
    /// as teams measure it from fuel-only stops). Used when `race_fuel` is
    /// not given or the race distance is unknown.
    pub green_economy: Option<f64>,
    /// Yellow-flag (SC/VSC/caution) economy, distance units per fuel unit:
    /// a second calibration point that fits the base flow as well.
    pub yellow_economy: Option<f64>,
    /// Green laps (field-wide) needed before the fit replaces the prior.
    pub min_green_laps: usize,
    /// Yellow laps needed before the yellow point is used.
    pub min_yellow_laps: usize,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            race_fuel: Some(105.5),
            green_economy: None,
            yellow_economy: None,
            min_green_laps: 20,
            min_yellow_laps: 5,
        }
    }
}

/// Lift-and-coast detection and the saving/pushing score.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoastParams {
    /// A braking zone starts from at least this speed, km/h.
    pub brake_from_kmh: f64,
    /// … with the window-mean speed falling at least this much in one window, km/h.
    pub brake_drop_kmh: f64,
    /// A coasting window loses at least this much speed, km/h per window
    /// (drag alone at 300 km/h takes ~15–20 km/h/s off an F1 car) …
    pub coast_min_drop_kmh: f64,
    /// … and at most this much (more is braking).
    pub coast_max_drop_kmh: f64,
    /// Windows of coasting needed before the braking zone, 1 to 3 (two: one
    /// window's drop can be the start of braking smeared into the window mean).
    pub coast_windows: usize,
    /// With a throttle channel: a pre-braking window with less mean throttle
    /// than this fraction of full is a lift.
    pub lift_throttle_fraction: f64,
    /// Weight of the per-lap figures in the running averages (0..1].
    pub lap_weight: f64,
    /// Coast-fraction excess over the field that counts as fully saving.
    pub coast_scale: f64,
    /// Burn below the field (1 − burn_bar) that counts as fully saving.
    pub burn_scale: f64,
}

impl Default for CoastParams {
    fn default() -> Self {
        CoastParams {
            brake_from_kmh: 180.0,
            brake_drop_kmh: 30.0,
            coast_min_drop_kmh: 4.0,
            coast_max_drop_kmh: 28.0,
            coast_windows: 2,
            lift_throttle_fraction: 0.5,
            lap_weight: 0.3,
            coast_scale: 0.3,
            burn_scale: 0.04,
        }
    }
}

/// The `fuel_saving` story.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoryParams {
    /// Tell stories at all.
    pub enabled: bool,
    /// Saving score needed on each of `laps` consecutive completed laps …
    pub min_score: f64,
    /// … with the car's coast fraction at least this much above the field's …
    pub min_coast_excess: f64,
    /// … and its Burn Bar at least this much below 1.
    pub min_burn_deficit: f64,
    pub laps: u16,
    /// No story about laps before this one (the opening laps' field is
    /// bunched and its medians settle only after a few laps).
    pub from_lap: u16,
    /// Laps before the same car's story may be told again.
    pub cooldown_laps: u16,
    /// Race laps between two stories about any cars.
    pub field_cooldown_laps: u16,
}

impl Default for StoryParams {
    fn default() -> Self {
        StoryParams {
            enabled: true,
            min_score: 0.6,
            min_coast_excess: 0.15,
            min_burn_deficit: 0.02,
            laps: 4,
            from_lap: 6,
            cooldown_laps: 10,
            field_cooldown_laps: 2,
        }
    }
}
