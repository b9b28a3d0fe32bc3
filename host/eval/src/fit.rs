//! Fitting the overtake model ([`OvertakeModel`]) on labelled samples.
//!
//! Every piece is an L2-regularised logistic regression fitted by
//! `linfa-logistic` (rust-ml's linfa; L-BFGS through argmin) on standardised
//! features — a well-kept library rather than a hand-rolled optimiser:
//!
//! 1. each **expert** on its own features, over the samples where the source
//!    gives at least one of them;
//! 2. the **stacker** on the experts' *out-of-fold* logits (5 folds grouped by
//!    pair of cars, so no expert scores a sample it was fitted on; an absent
//!    expert enters as 0 = its average) plus the context features;
//! 3. the **baseline**: interval, 1-lap closing rate and tyre-age difference.
//!
//! Deterministic: same samples, same model.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use pitwall_plugin_overtake::model::{Expert, Logistic, OvertakeModel, TrainingInfo};

use crate::overtake::{Sample, SampleSpec};

/// The experts and their features.
pub const EXPERTS: [(&str, &[&str]); 3] = [
    ("drs", &["drs_depth_s", "drs_share_lap", "drs_open_share"]),
    ("ers", &["top_speed_diff_kmh", "accel_diff_ms2"]),
    ("aero", &["wake_share_3laps", "corner_loss_kmh"]),
];

/// The stacker's context features.
pub const CONTEXT: [&str; 10] = [
    "interval_s",
    "lost_place_recently",
    "closing_s_per_lap",
    "pace_diff_s",
    "pace3_diff_s",
    "best_lap_diff_s",
    "defender_gap_ahead_s",
    "tyre_age_diff",
    "compound_diff",
    "laps_left",
];

/// The baseline's features (the issue's "plain logistic regression").
pub const BASELINE: [&str; 3] = ["interval_s", "closing_s_per_lap", "tyre_age_diff"];

/// Folds for the stacker's out-of-fold expert logits.
const FOLDS: usize = 5;

/// Fitting settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// L2 penalty (linfa's `alpha`) on standardised features.
    pub alpha: f64,
    pub max_iterations: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            alpha: 1.0,
            max_iterations: 500,
        }
    }
}

/// Why a model could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("{what}: {samples} samples, {positives} passes: need both passes and non-passes")]
    OneClass {
        what: String,
        samples: usize,
        positives: usize,
    },
    #[error("{what}: {source}")]
    Linfa {
        what: String,
        #[source]
        source: linfa_logistic::error::Error,
    },
}

/// Fits the whole model on `samples` (from `races`).
pub fn fit(
    samples: &[Sample],
    races: &[String],
    spec: SampleSpec,
    opts: FitOptions,
    version: &str,
) -> Result<OvertakeModel, FitError> {
    let labels: Vec<bool> = samples.iter().map(|s| s.label).collect();
    let value = |s: &Sample, f: &str| s.features.get(f).unwrap_or(f64::NAN);
    let present = |s: &Sample, feats: &[&str]| feats.iter().any(|f| value(s, f).is_finite());
    let fold_of: Vec<usize> = samples.iter().map(|s| fold(s) % FOLDS).collect();

    let mut experts = Vec::new();
    // Out-of-fold centred logits per expert (0 where absent).
    let mut stack_cols: Vec<Vec<f64>> = Vec::new();
    for (name, feats) in EXPERTS {
        let idx: Vec<usize> = (0..samples.len())
            .filter(|&i| present(&samples[i], feats))
            .collect();
        let rows: Vec<&Sample> = idx.iter().map(|&i| &samples[i]).collect();
        let y: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
        if y.iter().all(|&l| l) || y.iter().all(|&l| !l) {
            // The training races cannot teach this expert (e.g. no speeds in
            // any of them): it stays out of the mixture.
            continue;
        }
        let model = fit_logistic(&format!("expert {name}"), &rows, &y, feats, opts)?;
        let mut oof = vec![0.0; samples.len()];
        for k in 0..FOLDS {
            let train: Vec<usize> = idx.iter().copied().filter(|&i| fold_of[i] != k).collect();
            let test: Vec<usize> = idx.iter().copied().filter(|&i| fold_of[i] == k).collect();
            let ty: Vec<bool> = train.iter().map(|&i| labels[i]).collect();
            let fold_model = if ty.iter().any(|&l| l) && ty.iter().any(|&l| !l) {
                let tr: Vec<&Sample> = train.iter().map(|&i| &samples[i]).collect();
                fit_logistic(&format!("expert {name}, fold {k}"), &tr, &ty, feats, opts)?
            } else {
                model.clone()
            };
            for i in test {
                oof[i] = fold_model.logit(&samples[i].features).unwrap_or(0.0);
            }
        }
        let mean_logit = idx.iter().map(|&i| oof[i]).sum::<f64>() / idx.len() as f64;
        for &i in &idx {
            oof[i] -= mean_logit;
        }
        stack_cols.push(oof);
        experts.push(Expert {
            name: name.to_string(),
            model,
            mean_logit,
            weight: 0.0,
        });
    }

    // Stacker: expert columns as they are (log-odds), context standardised.
    let all: Vec<&Sample> = samples.iter().collect();
    let (cmean, cscale) = standardisation(&all, &CONTEXT);
    let n_cols = experts.len() + CONTEXT.len();
    let mut x = Array2::<f64>::zeros((samples.len(), n_cols));
    for (i, s) in samples.iter().enumerate() {
        for (k, col) in stack_cols.iter().enumerate() {
            x[[i, k]] = col[i];
        }
        for (j, f) in CONTEXT.iter().enumerate() {
            let v = value(s, f);
            x[[i, experts.len() + j]] = if v.is_finite() {
                (v - cmean[j]) / cscale[j]
            } else {
                0.0
            };
        }
    }
    let (w, b) = logistic_regression("stacker", x, &labels, opts)?;
    for (k, e) in experts.iter_mut().enumerate() {
        e.weight = w[k];
    }
    let context = Logistic {
        features: CONTEXT.iter().map(|s| s.to_string()).collect(),
        mean: cmean,
        scale: cscale,
        weights: w[experts.len()..].to_vec(),
        intercept: b,
    };
    let baseline = fit_logistic("baseline", &all, &labels, &BASELINE, opts)?;
    Ok(OvertakeModel {
        version: version.to_string(),
        horizon_laps: spec.horizon_laps,
        battle_gap_s: spec.battle_gap_s,
        experts,
        context,
        baseline,
        training: TrainingInfo {
            races: races.to_vec(),
            samples: samples.len(),
            positives: labels.iter().filter(|&&l| l).count(),
            method: format!(
                "linfa-logistic 0.8 (L-BFGS), L2 alpha {} on standardised features; \
                 stacker on {FOLDS}-fold out-of-fold expert logits grouped by pair",
                opts.alpha
            ),
        },
    })
}

/// A fold number from the pair (race, attacker, defender): FNV-1a, stable.
fn fold(s: &Sample) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s
        .race
        .bytes()
        .chain(s.attacker.to_le_bytes())
        .chain(s.defender.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 16) as usize
}

/// Mean and standard deviation of each feature over the rows where it is
/// finite (scale 1 for a constant or absent feature).
fn standardisation(rows: &[&Sample], feats: &[&str]) -> (Vec<f64>, Vec<f64>) {
    feats
        .iter()
        .map(|f| {
            let v: Vec<f64> = rows
                .iter()
                .filter_map(|s| s.features.get(f))
                .filter(|v| v.is_finite())
                .collect();
            if v.is_empty() {
                return (0.0, 1.0);
            }
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            let sd = var.sqrt();
            (mean, if sd > 1e-9 { sd } else { 1.0 })
        })
        .unzip()
}

/// A standardised logistic regression on `feats` (missing values at the mean).
fn fit_logistic(
    what: &str,
    rows: &[&Sample],
    labels: &[bool],
    feats: &[&str],
    opts: FitOptions,
) -> Result<Logistic, FitError> {
    let (mean, scale) = standardisation(rows, feats);
    let mut x = Array2::<f64>::zeros((rows.len(), feats.len()));
    for (i, s) in rows.iter().enumerate() {
        for (j, f) in feats.iter().enumerate() {
            let v = s.features.get(f).unwrap_or(f64::NAN);
            x[[i, j]] = if v.is_finite() {
                (v - mean[j]) / scale[j]
            } else {
                0.0
            };
        }
    }
    let (weights, intercept) = logistic_regression(what, x, labels, opts)?;
    Ok(Logistic {
        features: feats.iter().map(|s| s.to_string()).collect(),
        mean,
        scale,
        weights,
        intercept,
    })
}

/// Weights and intercept of `P(true)`.
fn logistic_regression(
    what: &str,
    x: Array2<f64>,
    labels: &[bool],
    opts: FitOptions,
) -> Result<(Vec<f64>, f64), FitError> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Err(FitError::OneClass {
            what: what.to_string(),
            samples: labels.len(),
            positives,
        });
    }
    let probe = x.row(0).to_owned().insert_axis(ndarray::Axis(0));
    let y = Array1::from_iter(labels.iter().copied());
    let data = Dataset::new(x, y);
    let fitted = LogisticRegression::default()
        .alpha(opts.alpha)
        .max_iterations(opts.max_iterations)
        .fit(&data)
        .map_err(|source| FitError::Linfa {
            what: what.to_string(),
            source,
        })?;
    // linfa models the probability of one of the two labels, chosen by its
    // own rules: ask it which, and turn the model into one of `P(true)`.
    let p = fitted.predict_probabilities(&probe)[0];
    let class = fitted.predict(&probe)[0];
    let models_true = if p >= 0.5 { class } else { !class };
    let (w, b) = (fitted.params().to_vec(), fitted.intercept());
    Ok(if models_true {
        (w, b)
    } else {
        (w.iter().map(|v| -v).collect(), -b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitwall_plugin_overtake::features::PairFeatures;

    fn sample(i: usize, interval: f64, label: bool) -> Sample {
        Sample {
            race: "r".into(),
            ts_ms: i as i64,
            lap: 2,
            attacker: (i % 17) as u16,
            defender: 99,
            features: PairFeatures {
                interval_s: interval,
                drs_depth_s: (1.0 - interval).max(0.0),
                drs_share_lap: if interval < 1.0 { 0.8 } else { 0.1 },
                top_speed_diff_kmh: f64::NAN,
                accel_diff_ms2: f64::NAN,
                corner_loss_kmh: f64::NAN,
                drs_open_share: f64::NAN,
                ..PairFeatures::default()
            },
            label,
        }
    }

    #[test]
    fn close_pairs_pass_more_and_missing_experts_stay_out() {
        // Passes happen mostly inside 0.6 s.
        let samples: Vec<Sample> = (0..300)
            .map(|i| {
                let interval = (i % 20) as f64 / 10.0;
                sample(i, interval, interval < 0.6 && i % 3 != 0 || i % 97 == 0)
            })
            .collect();
        let m = fit(
            &samples,
            &["r".into()],
            SampleSpec::default(),
            FitOptions::default(),
            "t",
        )
        .unwrap();
        m.validate().unwrap();
        // No speeds anywhere: the ERS expert cannot be fitted and is left out.
        assert!(m.experts.iter().all(|e| e.name != "ers"));
        assert!(m.experts.iter().any(|e| e.name == "drs"));
        let close = m.predict(&sample(0, 0.3, false).features).probability;
        let far = m.predict(&sample(0, 1.8, false).features).probability;
        assert!(close > far + 0.2, "close {close} far {far}");
        assert!(
            m.baseline_probability(&sample(0, 0.3, false).features)
                > m.baseline_probability(&sample(0, 1.8, false).features)
        );
        // The contributions add up to the logit.
        let p = m.predict(&sample(0, 0.3, false).features);
        let logit: f64 = p.contributions.iter().map(|c| c.1).sum();
        assert!((pitwall_plugin_overtake::model::sigmoid(logit) - p.probability).abs() < 1e-12);
    }

    #[test]
    fn one_class_is_a_clear_error() {
        let samples: Vec<Sample> = (0..10).map(|i| sample(i, 0.5, false)).collect();
        let e = fit(
            &samples,
            &[],
            SampleSpec::default(),
            FitOptions::default(),
            "t",
        )
        .unwrap_err();
        assert!(e.to_string().contains("need both"), "{e}");
    }
}
