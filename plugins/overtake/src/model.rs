//! The overtake model's parameters and its forward pass: a mixture of
//! experts combined by a stacker, all logistic, all in one JSON file.
//!
//! * Each **expert** is a logistic regression on its own features
//!   ([`PairFeatures`]): `drs` (DRS depth, time in DRS range, flap open),
//!   `ers` (top-speed and acceleration differences), `aero` (time in the wake,
//!   corner speed lost). An expert whose features the source cannot give
//!   (`NaN`, e.g. speeds in a timing-only race) is *absent*.
//! * The **stacker** is a logistic regression on the experts' centred logits
//!   (an absent expert contributes 0, i.e. its training average) and on the
//!   context features (interval, closing rate, pace, tyres, laps left).
//!
//! Every term of the stacker's sum is reported as a contribution (log-odds),
//! so a producer can say *why*: `drs +1.2, ers +0.4, closing +0.3, base -2.9`.
//! The contributions add up to the logit of the probability.
//!
//! The file is written by `pitwall train overtake` and is the plugin's model
//! parameters: swapping it into a running replay changes the model at the next
//! window without new code.

use serde::{Deserialize, Serialize};

use crate::features::PairFeatures;

/// A logistic regression on named features, standardised with the training
/// mean and scale: `logit = intercept + Σ w·(x − mean)/scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logistic {
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
}

/// Why a parameter file cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "overtake model: {}", self.0)
    }
}

impl std::error::Error for ModelError {}

impl Logistic {
    /// The standardised terms `w·(x − mean)/scale`, one per feature; a
    /// missing feature (NaN) sits at its training mean (term 0). `None` when
    /// every feature is missing: the source cannot feed this model at all.
    pub fn terms(&self, f: &PairFeatures) -> Option<Vec<f64>> {
        let mut any = false;
        let terms = self
            .features
            .iter()
            .enumerate()
            .map(|(i, name)| match f.get(name).filter(|x| x.is_finite()) {
                Some(x) => {
                    any = true;
                    self.weights[i] * (x - self.mean[i]) / self.scale[i]
                }
                None => 0.0,
            })
            .collect();
        any.then_some(terms)
    }

    /// The log-odds for `f`, or `None` when every feature is missing.
    pub fn logit(&self, f: &PairFeatures) -> Option<f64> {
        Some(self.intercept + self.terms(f)?.iter().sum::<f64>())
    }

    fn check(&self, what: &str) -> Result<(), ModelError> {
        let n = self.features.len();
        if self.mean.len() != n || self.scale.len() != n || self.weights.len() != n {
            return Err(ModelError(format!(
                "{what}: {n} features but {} means, {} scales, {} weights",
                self.mean.len(),
                self.scale.len(),
                self.weights.len()
            )));
        }
        let probe = PairFeatures::default().named();
        for name in &self.features {
            if !probe.iter().any(|(p, _)| p == name) {
                return Err(ModelError(format!("{what}: unknown feature {name:?}")));
            }
        }
        if self.scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self
                .mean
                .iter()
                .chain(&self.weights)
                .chain(std::iter::once(&self.intercept))
                .any(|v| !v.is_finite())
        {
            return Err(ModelError(format!(
                "{what}: every mean, weight and the intercept must be finite, every scale > 0"
            )));
        }
        Ok(())
    }
}

/// One expert of the mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expert {
    /// `drs`, `ers`, `aero`: the name its contribution is reported under.
    pub name: String,
    pub model: Logistic,
    /// The expert's mean logit on the training samples where it was present
    /// (the stacker sees `logit − mean_logit`).
    pub mean_logit: f64,
    /// The stacker's weight on this expert.
    pub weight: f64,
}

/// What the model was trained on (reported, not used).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingInfo {
    pub races: Vec<String>,
    pub samples: usize,
    pub positives: usize,
    /// The learning library and its settings.
    pub method: String,
}

/// The whole model: the parameter file of the `overtake` plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvertakeModel {
    /// Model version, reported with every prediction's provenance by the host
    /// (the host also hashes the file).
    pub version: String,
    /// The label's horizon: a pass within this many laps.
    pub horizon_laps: u16,
    /// Pairs closer than this are battles and get a prediction, s.
    pub battle_gap_s: f64,
    pub experts: Vec<Expert>,
    /// The stacker's context part (its intercept is the model's base rate).
    pub context: Logistic,
    /// The baseline `pitwall eval` compares against: a plain logistic
    /// regression on interval, 1-lap closing rate and tyre-age difference.
    pub baseline: Logistic,
    #[serde(default)]
    pub training: TrainingInfo,
}

/// A probability with its breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub probability: f64,
    /// `(name, log-odds)`: `base`, one per expert present, one per context
    /// feature; they add up to the logit of `probability`.
    pub contributions: Vec<(String, f64)>,
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Short names for the context features in contributions.
fn context_label(feature: &str) -> &str {
    match feature {
        "interval_s" => "interval",
        "closing_s_per_lap" => "closing",
        "pace_diff_s" => "pace",
        "tyre_age_diff" => "tyre_age",
        "compound_diff" => "compound",
        "laps_left" => "laps_left",
        "pace3_diff_s" => "pace_3laps",
        "best_lap_diff_s" => "car_speed",
        "defender_gap_ahead_s" => "drs_train",
        "lost_place_recently" => "repass",
        other => other,
    }
}

impl OvertakeModel {
    /// Checks the file's shape (lengths, known features, finite numbers).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.horizon_laps == 0 {
            return Err(ModelError("horizon_laps must be at least 1".into()));
        }
        if !(self.battle_gap_s.is_finite() && self.battle_gap_s > 0.0) {
            return Err(ModelError("battle_gap_s must be > 0".into()));
        }
        for e in &self.experts {
            e.model.check(&format!("expert {}", e.name))?;
            if !(e.mean_logit.is_finite() && e.weight.is_finite()) {
                return Err(ModelError(format!(
                    "expert {}: non-finite stacker term",
                    e.name
                )));
            }
        }
        self.context.check("context")?;
        self.baseline.check("baseline")
    }

    /// The model's probability for one pair, with its breakdown.
    pub fn predict(&self, f: &PairFeatures) -> Prediction {
        let mut contributions = Vec::with_capacity(2 + self.experts.len() + 6);
        contributions.push(("base".to_string(), self.context.intercept));
        for e in &self.experts {
            if let Some(z) = e.model.logit(f) {
                contributions.push((e.name.clone(), e.weight * (z - e.mean_logit)));
            }
        }
        let terms = self.context.terms(f).unwrap_or_default();
        for (name, term) in self.context.features.iter().zip(terms) {
            contributions.push((context_label(name).to_string(), term));
        }
        let logit: f64 = contributions.iter().map(|(_, v)| v).sum();
        Prediction {
            probability: sigmoid(logit),
            contributions,
        }
    }

    /// The baseline's probability (missing features at their training mean).
    pub fn baseline_probability(&self, f: &PairFeatures) -> f64 {
        sigmoid(self.baseline.logit(f).unwrap_or(self.baseline.intercept))
    }
}

/// The model shipped with the plugin: `model/overtake.params.json`, trained by
/// `pitwall train overtake` on the bundled races.
pub fn bundled() -> OvertakeModel {
    serde_json::from_str(include_str!("../model/overtake.params.json"))
        .expect("the bundled overtake model parses (checked by a unit test)")
}
