//! The live race as REST views: `/live-battles`, `/predict`, `/burn-bar`,
//! `/telemetry/live`.
//!
//! [`LiveView`] is updated once per frame by the job (the frame and the
//! insights the plugins published for it) and read by the handlers. Every
//! update builds a new immutable [`LiveState`] and swaps it in under a
//! `RwLock` held only for the swap: a handler clones an `Arc` and builds its
//! answer without holding anything.
//!
//! What is kept:
//!
//! * the race state of the latest frame (session, seq, window, lap, flag,
//!   SC/VSC) and each car's latest telemetry;
//! * the live battles: the `battle_*` metrics of the latest frame. A battle
//!   disappears when its metrics stop; in a frame where a plugin that told
//!   battles *failed* (deadline, trap), its battles of the frame before are kept;
//! * the current predictions (those of the latest frame, same rule for a
//!   failed plugin) and, per battle, the latest `p_overtake` about its pair;
//! * per car, the latest fuel / Burn Bar figures (`fuel_<u>_*`, `burn_bar`,
//!   `coast_fraction`, `fuel_saving`).
//!
//! Every figure from a plugin carries its [`Provenance`]: plugin
//! `name@version`, model version, the window it was made from and the
//! `.wasm` content hash.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use pitwall_plugin_sdk::frame::{CarFrameData, Compound, Flag, RaceFrameData};
use pitwall_plugin_sdk::insight::{CarMetric, InsightBody, Prediction};
use pitwall_runtime::PublishedInsight;
use serde::Serialize;

use crate::error::ApiError;

/// The prediction kind battles carry.
pub const P_OVERTAKE: &str = "p_overtake";

/// `fuel_saving` above this: `saving`; below its negative: `pushing`.
pub const SAVING_THRESHOLD: f64 = 0.3;

/// Where a figure came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Provenance {
    /// `name@version` of the plugin.
    pub plugin: String,
    pub plugin_version: String,
    /// Model parameters' version, or `none`.
    pub model_version: String,
    /// Start of the window the figure was made from (event time, ms).
    pub window_start_ms: i64,
    /// SHA-256 of the plugin's `.wasm`.
    pub content_hash: String,
}

impl Provenance {
    pub fn of(i: &PublishedInsight) -> Self {
        Self {
            plugin: i.plugin_id().to_owned(),
            plugin_version: i.plugin_version().to_owned(),
            model_version: i.model_version().to_owned(),
            window_start_ms: i.window_start_ms(),
            content_hash: i.content_hash().to_owned(),
        }
    }
}

/// Race-wide state of the latest frame.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RaceNow {
    pub session: String,
    pub seq: u64,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Leader's lap (0: not started).
    pub lap: u16,
    /// 0: unknown.
    pub total_laps: u16,
    /// `none`, `green`, `yellow`, `double_yellow`, `red` or `chequered`
    /// (the SDK's enum, documented here as its serde names).
    #[schema(value_type = String)]
    pub flag: Flag,
    pub safety_car: bool,
    pub virtual_safety_car: bool,
    pub under_way: bool,
}

/// One car's latest telemetry. Missing values are `null`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CarNow {
    /// Racing number.
    pub car: String,
    /// Window of the frame this comes from.
    pub window_start_ms: i64,
    /// 1-based; `null` when unknown.
    pub position: Option<u8>,
    pub lap: u16,
    /// To the car ahead, seconds.
    pub interval_s: Option<f64>,
    pub gap_to_leader_s: Option<f64>,
    pub speed_kmh: Option<f64>,
    pub lap_distance_m: Option<f64>,
    /// `unknown`, `soft`, `medium`, `hard`, `intermediate` or `wet`.
    #[schema(value_type = String)]
    pub tyre_compound: Compound,
    pub tyre_age_laps: u16,
    pub in_pit: bool,
    pub retired: bool,
    pub last_lap_s: Option<f64>,
    pub drs: u8,
    pub pit_stops: u8,
}

impl CarNow {
    fn of(c: &CarFrameData, window_start_ms: i64) -> Self {
        Self {
            car: c.car.to_string(),
            window_start_ms,
            position: (c.position > 0).then_some(c.position),
            lap: c.lap,
            interval_s: finite(c.interval_s),
            gap_to_leader_s: finite(c.gap_to_leader_s),
            speed_kmh: finite(f64::from(c.speed_kmh)),
            lap_distance_m: finite(f64::from(c.lap_distance_m)),
            tyre_compound: c.tyre_compound,
            tyre_age_laps: c.tyre_age_laps,
            in_pit: c.in_pit,
            retired: c.retired,
            last_lap_s: finite(c.last_lap_s),
            drs: c.drs,
            pit_stops: c.pit_stops,
        }
    }
}

/// One named term of a prediction (model units, usually log-odds).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Contribution {
    pub name: String,
    pub value: f64,
}

/// A prediction about a pair of cars.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PredictionNow {
    /// e.g. `p_overtake`.
    pub kind: String,
    pub attacker: String,
    pub defender: String,
    /// 0..=1.
    pub probability: f64,
    pub horizon_laps: u32,
    /// In the model's order.
    pub contributions: Vec<Contribution>,
    pub provenance: Provenance,
}

impl PredictionNow {
    fn of(p: &Prediction, i: &PublishedInsight) -> Self {
        Self {
            kind: p.kind().to_owned(),
            attacker: p.cars().attacker.clone(),
            defender: p.cars().defender.clone(),
            probability: p.probability(),
            horizon_laps: p.horizon_laps(),
            contributions: p
                .contributions()
                .iter()
                .map(|(name, value)| Contribution {
                    name: name.clone(),
                    value: *value,
                })
                .collect(),
            provenance: Provenance::of(i),
        }
    }
}

/// A live battle: `attacker` within reach of `defender`, the car directly ahead.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BattleNow {
    pub attacker: String,
    pub defender: String,
    /// The attacker's position.
    pub position: Option<u8>,
    pub interval_s: Option<f64>,
    /// How long the battle has lasted, seconds.
    pub duration_s: Option<f64>,
    /// Laps it has lasted.
    pub laps: Option<u32>,
    pub provenance: Provenance,
    /// The latest `p_overtake` about this pair (its own provenance says which
    /// window it is from); `null` when none was made.
    pub overtake: Option<PredictionNow>,
}

/// The fuel economy figure (`fuel_mpg_lap` with `units.economy`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Economy {
    pub value: f64,
    pub unit: String,
}

/// One car's latest fuel / Burn Bar figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FuelNow {
    pub car: String,
    /// The fuel unit of the amounts (`kg`, `gal`).
    pub unit: Option<String>,
    /// The lap `burn_lap` is about (the car's last completed lap).
    pub lap_number: Option<u32>,
    /// Burned on that lap, `unit`/lap.
    pub burn_lap: Option<f64>,
    /// `burn_lap` / the field's median burn on the same lap.
    pub burn_bar: Option<f64>,
    /// Burned in the latest window the car was booked.
    pub burn_window: Option<f64>,
    pub stint: Option<f64>,
    pub total: Option<f64>,
    /// Left in the tank (with a configured start load only).
    pub remaining: Option<f64>,
    pub economy: Option<Economy>,
    pub coast_fraction: Option<f64>,
    /// −1 pushing … +1 saving.
    pub fuel_saving: Option<f64>,
    /// `saving` (> 0.3), `pushing` (< −0.3), `neutral`; `null` without a score.
    #[schema(value_type = Option<String>)]
    pub saving_state: Option<&'static str>,
    /// Of the latest figure.
    pub provenance: Provenance,
}

impl FuelNow {
    fn new(car: &str, provenance: Provenance) -> Self {
        Self {
            car: car.to_owned(),
            unit: None,
            lap_number: None,
            burn_lap: None,
            burn_bar: None,
            burn_window: None,
            stint: None,
            total: None,
            remaining: None,
            economy: None,
            coast_fraction: None,
            fuel_saving: None,
            saving_state: None,
            provenance,
        }
    }

    /// Takes one metric; `false` when it is not a fuel figure.
    fn take(&mut self, m: &CarMetric) -> bool {
        let v = m.value();
        match m.name() {
            "burn_bar" => self.burn_bar = Some(v),
            "coast_fraction" => self.coast_fraction = Some(v),
            "fuel_saving" => {
                self.fuel_saving = Some(v);
                self.saving_state = Some(if v > SAVING_THRESHOLD {
                    "saving"
                } else if v < -SAVING_THRESHOLD {
                    "pushing"
                } else {
                    "neutral"
                });
            }
            "fuel_lap_number" => self.lap_number = (v >= 0.0).then_some(v as u32),
            name => {
                let Some((u, what)) = name
                    .strip_prefix("fuel_")
                    .and_then(|rest| rest.rsplit_once('_'))
                else {
                    return false;
                };
                let slot = match what {
                    "window" => &mut self.burn_window,
                    "stint" => &mut self.stint,
                    "total" => &mut self.total,
                    "remaining" => &mut self.remaining,
                    // `fuel_kg_lap` is in `kg/lap`; `fuel_mpg_lap` (economy) is not.
                    "lap" if m.unit().ends_with("/lap") => &mut self.burn_lap,
                    "lap" => {
                        self.economy = Some(Economy {
                            value: v,
                            unit: m.unit().to_owned(),
                        });
                        return true;
                    }
                    _ => return false,
                };
                *slot = Some(v);
                if self.unit.as_deref() != Some(u) {
                    self.unit = Some(u.to_owned());
                }
            }
        }
        true
    }
}

/// Everything the live routes answer from, as of the latest frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LiveState {
    /// `None` before the first frame.
    pub race: Option<RaceNow>,
    /// By racing number.
    pub cars: BTreeMap<u16, CarNow>,
    /// By attacker's position.
    pub battles: Vec<BattleNow>,
    /// Of the latest frame, by attacker's position.
    pub predictions: Vec<PredictionNow>,
    /// By racing number.
    pub fuel: BTreeMap<u16, FuelNow>,
    /// The latest `p_overtake` per (attacker, defender), for the battles.
    #[serde(skip)]
    last_overtake: HashMap<(String, String), PredictionNow>,
}

impl LiveState {
    /// The state after `frame` and its insights; `failed` names the plugins
    /// whose call failed on this frame (their battles and predictions of the
    /// frame before are kept).
    pub fn next(
        &self,
        frame: &RaceFrameData,
        insights: &[PublishedInsight],
        failed: &[&str],
    ) -> Self {
        let w = frame.window_start_ms;
        let mut s = self.clone();
        s.race = Some(RaceNow {
            session: frame.session.clone(),
            seq: frame.seq,
            window_start_ms: w,
            window_end_ms: frame.window_end_ms,
            lap: frame.race.lap,
            total_laps: frame.race.total_laps,
            flag: frame.race.flag,
            safety_car: frame.race.safety_car,
            virtual_safety_car: frame.race.virtual_safety_car,
            under_way: frame.race.under_way,
        });
        for c in &frame.cars {
            s.cars.insert(c.car, CarNow::of(c, w));
        }

        // Battles: the attackers' `battle_*` metrics, by (plugin, attacker).
        let mut battles: BTreeMap<(String, String), BattleParts> = BTreeMap::new();
        let mut predictions = Vec::new();
        for i in insights {
            match i.body() {
                InsightBody::Metric(m) if m.name().starts_with("battle_") => {
                    let b = battles
                        .entry((i.plugin_name().to_owned(), m.car().to_owned()))
                        .or_insert_with(|| BattleParts::new(Provenance::of(i)));
                    let v = m.value();
                    match m.name() {
                        "battle_defender" => {
                            b.defender =
                                (v >= 0.0 && v.fract() == 0.0).then(|| (v as u32).to_string())
                        }
                        "battle_interval_s" => b.interval_s = finite(v),
                        "battle_duration_s" => b.duration_s = finite(v),
                        "battle_laps" => b.laps = (v >= 0.0).then_some(v as u32),
                        _ => {}
                    }
                }
                InsightBody::Metric(m) => {
                    let Ok(car) = m.car().parse::<u16>() else {
                        continue;
                    };
                    let mut f = s
                        .fuel
                        .get(&car)
                        .cloned()
                        .unwrap_or_else(|| FuelNow::new(m.car(), Provenance::of(i)));
                    if f.take(m) {
                        f.provenance = Provenance::of(i);
                        s.fuel.insert(car, f);
                    }
                }
                InsightBody::Prediction(p) => {
                    let now = PredictionNow::of(p, i);
                    if now.kind == P_OVERTAKE {
                        s.last_overtake
                            .insert((now.attacker.clone(), now.defender.clone()), now.clone());
                    }
                    predictions.push(now);
                }
                InsightBody::Story(_) => {}
            }
        }
        let kept = |plugin: &str| {
            failed
                .iter()
                .any(|f| plugin.split_once('@').map_or(plugin, |(n, _)| n) == *f)
        };
        let mut next_battles: Vec<BattleNow> = self
            .battles
            .iter()
            .filter(|b| kept(&b.provenance.plugin))
            .cloned()
            .collect();
        next_battles.extend(battles.into_iter().filter_map(|((_, attacker), b)| {
            Some(BattleNow {
                defender: b.defender?,
                attacker,
                position: None,
                interval_s: b.interval_s,
                duration_s: b.duration_s,
                laps: b.laps,
                provenance: b.provenance,
                overtake: None,
            })
        }));
        let mut next_predictions: Vec<PredictionNow> = self
            .predictions
            .iter()
            .filter(|p| kept(&p.provenance.plugin))
            .cloned()
            .collect();
        next_predictions.extend(predictions);

        // Only pairs still battling or predicted keep their latest p_overtake.
        let live: HashSet<(&str, &str)> = next_battles
            .iter()
            .map(|b| (b.attacker.as_str(), b.defender.as_str()))
            .chain(
                next_predictions
                    .iter()
                    .map(|p| (p.attacker.as_str(), p.defender.as_str())),
            )
            .collect();
        s.last_overtake
            .retain(|(a, d), _| live.contains(&(a.as_str(), d.as_str())));
        for b in &mut next_battles {
            b.position = s.position(&b.attacker);
            b.overtake = s
                .last_overtake
                .get(&(b.attacker.clone(), b.defender.clone()))
                .cloned();
        }
        let order = |car: &str| {
            (
                s.position(car).unwrap_or(u8::MAX),
                car.parse::<u16>().unwrap_or(u16::MAX),
            )
        };
        next_battles.sort_by_key(|b| order(&b.attacker));
        next_predictions.sort_by(|a, b| {
            order(&a.attacker)
                .cmp(&order(&b.attacker))
                .then_with(|| a.kind.cmp(&b.kind))
        });
        s.battles = next_battles;
        s.predictions = next_predictions;
        s
    }

    /// The latest known position of `car`.
    pub fn position(&self, car: &str) -> Option<u8> {
        self.cars
            .get(&car.parse::<u16>().ok()?)
            .and_then(|c| c.position)
    }

    /// `Ok(None)`: no filter; a 404 for a car not in the race (once the race
    /// is known: before the first frame every list is empty anyway).
    fn check_car(&self, car: Option<u16>) -> Result<Option<String>, ApiError> {
        match car {
            Some(n) if self.race.is_some() && !self.cars.contains_key(&n) => {
                Err(ApiError::NotFound(format!("car {n} is not in the race")))
            }
            Some(n) => Ok(Some(n.to_string())),
            None => Ok(None),
        }
    }

    fn header(&self) -> Header {
        Header {
            window_start_ms: self.race.as_ref().map(|r| r.window_start_ms),
            window_end_ms: self.race.as_ref().map(|r| r.window_end_ms),
            race: self.race.clone(),
        }
    }

    /// `GET /live-battles`.
    pub fn battles_body(&self, car: Option<u16>) -> Result<BattlesBody, ApiError> {
        let car = self.check_car(car)?;
        let about = |b: &BattleNow| {
            car.as_ref()
                .is_none_or(|c| *c == b.attacker || *c == b.defender)
        };
        Ok(BattlesBody {
            header: self.header(),
            battles: self.battles.iter().filter(|b| about(b)).cloned().collect(),
        })
    }

    /// `GET /predict`.
    pub fn predict_body(&self, car: Option<u16>) -> Result<PredictBody, ApiError> {
        let car = self.check_car(car)?;
        let about = |p: &PredictionNow| {
            car.as_ref()
                .is_none_or(|c| *c == p.attacker || *c == p.defender)
        };
        Ok(PredictBody {
            header: self.header(),
            predictions: self
                .predictions
                .iter()
                .filter(|p| about(p))
                .cloned()
                .collect(),
        })
    }

    /// `GET /burn-bar`.
    pub fn burn_bar_body(&self, car: Option<u16>) -> Result<BurnBarBody, ApiError> {
        let car = self.check_car(car)?;
        let mut cars: Vec<BurnBarCar> = self
            .fuel
            .values()
            .filter(|f| car.as_ref().is_none_or(|c| *c == f.car))
            .map(|f| BurnBarCar {
                position: self.position(&f.car),
                fuel: f.clone(),
            })
            .collect();
        cars.sort_by_key(|c| {
            (
                c.position.unwrap_or(u8::MAX),
                c.fuel.car.parse::<u16>().unwrap_or(u16::MAX),
            )
        });
        let mut laps: Vec<f64> = cars.iter().filter_map(|c| c.fuel.burn_lap).collect();
        laps.sort_by(f64::total_cmp);
        let field_median_lap = (!laps.is_empty()).then(|| {
            let n = laps.len();
            if n % 2 == 1 {
                laps[n / 2]
            } else {
                (laps[n / 2 - 1] + laps[n / 2]) / 2.0
            }
        });
        Ok(BurnBarBody {
            header: self.header(),
            unit: cars.iter().find_map(|c| c.fuel.unit.clone()),
            field_median_lap,
            cars,
        })
    }

    /// `GET /telemetry/live`.
    pub fn telemetry_body(&self, car: Option<u16>) -> Result<TelemetryBody, ApiError> {
        let car = self.check_car(car)?;
        let mut cars: Vec<CarNow> = self
            .cars
            .values()
            .filter(|c| car.as_ref().is_none_or(|n| *n == c.car))
            .cloned()
            .collect();
        cars.sort_by_key(|c| {
            (
                c.position.unwrap_or(u8::MAX),
                c.car.parse::<u16>().unwrap_or(u16::MAX),
            )
        });
        Ok(TelemetryBody {
            header: self.header(),
            cars,
        })
    }
}

struct BattleParts {
    defender: Option<String>,
    interval_s: Option<f64>,
    duration_s: Option<f64>,
    laps: Option<u32>,
    provenance: Provenance,
}

impl BattleParts {
    fn new(provenance: Provenance) -> Self {
        Self {
            defender: None,
            interval_s: None,
            duration_s: None,
            laps: None,
            provenance,
        }
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// What every live answer starts with. All `null` before the first frame.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Header {
    /// Window of the latest frame (event time, ms since the session epoch).
    pub window_start_ms: Option<i64>,
    pub window_end_ms: Option<i64>,
    pub race: Option<RaceNow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BattlesBody {
    #[serde(flatten)]
    pub header: Header,
    pub battles: Vec<BattleNow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PredictBody {
    #[serde(flatten)]
    pub header: Header,
    pub predictions: Vec<PredictionNow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BurnBarCar {
    pub position: Option<u8>,
    #[serde(flatten)]
    pub fuel: FuelNow,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BurnBarBody {
    #[serde(flatten)]
    pub header: Header,
    /// The fuel unit (`kg`, `gal`); `null` before any fuel figure.
    pub unit: Option<String>,
    /// Median of the cars' latest `burn_lap` (cars may be on different laps;
    /// `burn_bar` compares the same lap).
    pub field_median_lap: Option<f64>,
    pub cars: Vec<BurnBarCar>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TelemetryBody {
    #[serde(flatten)]
    pub header: Header,
    pub cars: Vec<CarNow>,
}

/// The live race, shared by the job (one [`update`](Self::update) per frame)
/// and the handlers ([`state`](Self::state)). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    current: Arc<RwLock<Arc<LiveState>>>,
    /// Serializes updates (the read lock is never held while building).
    writer: Arc<Mutex<()>>,
}

impl LiveView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one frame and the insights published for it; `failed` names the
    /// plugins (names, not versions) whose call failed on this frame.
    pub fn update(&self, frame: &RaceFrameData, insights: &[PublishedInsight], failed: &[&str]) {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let next = Arc::new(self.state().next(frame, insights, failed));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// The state as of the latest frame.
    pub fn state(&self) -> Arc<LiveState> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests;
