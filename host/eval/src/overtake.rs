//! The overtake model's evaluation: samples and labels from a recorded race,
//! and the metrics of a probability forecast against them.
//!
//! **Samples** (the issue's protocol): one per lap per battling pair, from
//! lap 2 on — at the window where the attacker starts a lap (≥ 2), if it is
//! within `battle_gap_s` of the car directly ahead, racing is not neutralised
//! and neither car is in the pit lane. **Label**: the attacker passes that
//! defender on track (an OpenF1 position change not caused by a pit stop or a
//! retirement, see [`truth`](crate::truth)) before it starts lap
//! `lap + horizon_laps`.
//!
//! **Metrics**: ROC AUC (the Mann–Whitney statistic, ties counted half) with
//! a percentile bootstrap interval that resamples *pairs of cars* (samples of
//! one pair are not independent), the Brier score, and calibration in ten
//! probability bins. The bootstrap is seeded: a report is reproducible.

use std::collections::BTreeMap;

use pitwall_plugin_overtake::features::{PairFeatures, PairTracker};
use pitwall_plugin_sdk::Frame;
use pitwall_plugin_sdk::frame::RaceFrameData;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::truth::RaceTruth;

/// One evaluation sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Which race (the session folder's name).
    pub race: String,
    /// Window start of the frame the sample was taken at.
    pub ts_ms: i64,
    /// The lap the attacker starts.
    pub lap: u16,
    pub attacker: u16,
    pub defender: u16,
    pub features: PairFeatures,
    /// A pass within the horizon.
    pub label: bool,
}

impl Sample {
    /// The pair, for grouping (bootstrap, folds).
    pub fn pair(&self) -> (&str, u16, u16) {
        (&self.race, self.attacker, self.defender)
    }
}

/// Sampling settings (the model file carries the same two numbers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleSpec {
    pub horizon_laps: u16,
    pub battle_gap_s: f64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            horizon_laps: 3,
            battle_gap_s: 2.0,
        }
    }
}

/// Every sample of one race, in time order; `on_frame` is called with each
/// frame's index and view after the features were updated (the evaluation
/// runs the WASM plugin beside it there).
pub fn samples(
    race: &str,
    frames: &[RaceFrameData],
    truth: &RaceTruth,
    spec: SampleSpec,
) -> Vec<(usize, Sample)> {
    let mut tracker = PairTracker::new();
    let mut laps: BTreeMap<u16, u16> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, data) in frames.iter().enumerate() {
        let bytes = data.to_flatbuffer();
        let frame = Frame::from_bytes(&bytes).expect("a frame the host wrote reads back");
        tracker.update(&frame);
        for pair in frame.pairs() {
            let (a, d) = (pair.attacker, pair.defender);
            let lap = a.lap();
            let started = laps.get(&a.number()).is_some_and(|&prev| lap > prev);
            if !started || lap < 2 || !tracker.racing() || a.in_pit() || d.in_pit() {
                continue;
            }
            let Some(features) = tracker.features(a.number(), d.number()) else {
                continue;
            };
            if features.interval_s >= spec.battle_gap_s {
                continue;
            }
            let end_ms = frames[i..]
                .iter()
                .find(|f| {
                    f.cars
                        .iter()
                        .any(|c| c.car == a.number() && c.lap >= lap + spec.horizon_laps)
                })
                .map_or(i64::MAX, |f| f.window_start_ms);
            let label = truth.on_track_overtakes().any(|o| {
                o.attacker == a.number()
                    && o.defender == d.number()
                    && o.ts_ms > data.window_start_ms
                    && o.ts_ms <= end_ms
            });
            out.push((
                i,
                Sample {
                    race: race.to_string(),
                    ts_ms: data.window_start_ms,
                    lap,
                    attacker: a.number(),
                    defender: d.number(),
                    features,
                    label,
                },
            ));
        }
        for c in &data.cars {
            laps.insert(c.car, c.lap);
        }
    }
    out
}

/// One calibration bin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// `[lo, hi)` of the predicted probability (the last bin includes 1).
    pub lo: f64,
    pub hi: f64,
    pub samples: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// How good a probability forecast is on labelled samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryReport {
    pub samples: usize,
    pub positives: usize,
    /// NaN when one class is missing.
    pub auc: f64,
    /// 95 % percentile bootstrap interval over pairs.
    pub auc_ci: (f64, f64),
    pub brier: f64,
    pub calibration: Vec<CalibrationBin>,
}

/// ROC AUC: the chance a random positive scores above a random negative
/// (ties half); NaN without both classes.
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties, then the Mann–Whitney U of the positives.
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            ranks[*k] = r;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Mean squared error of the probabilities.
pub fn brier(probs: &[f64], labels: &[bool]) -> f64 {
    if probs.is_empty() {
        return f64::NAN;
    }
    probs
        .iter()
        .zip(labels)
        .map(|(p, &l)| (p - if l { 1.0 } else { 0.0 }).powi(2))
        .sum::<f64>()
        / probs.len() as f64
}

/// Ten equal-width probability bins (empty bins left out).
pub fn calibration(probs: &[f64], labels: &[bool]) -> Vec<CalibrationBin> {
    (0..10)
        .filter_map(|b| {
            let (lo, hi) = (b as f64 / 10.0, (b + 1) as f64 / 10.0);
            let inside: Vec<(f64, bool)> = probs
                .iter()
                .zip(labels)
                .filter(|(p, _)| **p >= lo && (**p < hi || (b == 9 && **p <= 1.0)))
                .map(|(p, l)| (*p, *l))
                .collect();
            (!inside.is_empty()).then(|| CalibrationBin {
                lo,
                hi,
                samples: inside.len(),
                mean_predicted: inside.iter().map(|x| x.0).sum::<f64>() / inside.len() as f64,
                observed_rate: inside.iter().filter(|x| x.1).count() as f64 / inside.len() as f64,
            })
        })
        .collect()
}

/// Bootstrap resamples for the AUC interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The full report for `probs` on `samples` (same order).
pub fn report(samples: &[Sample], probs: &[f64], seed: u64) -> BinaryReport {
    let labels: Vec<bool> = samples.iter().map(|s| s.label).collect();
    BinaryReport {
        samples: samples.len(),
        positives: labels.iter().filter(|&&l| l).count(),
        auc: auc(probs, &labels),
        auc_ci: bootstrap_auc(samples, probs, seed),
        brier: brier(probs, &labels),
        calibration: calibration(probs, &labels),
    }
}

/// 95 % percentile interval of the AUC, resampling pairs with replacement.
pub fn bootstrap_auc(samples: &[Sample], probs: &[f64], seed: u64) -> (f64, f64) {
    let mut groups: BTreeMap<(&str, u16, u16), Vec<usize>> = BTreeMap::new();
    for (i, s) in samples.iter().enumerate() {
        groups.entry(s.pair()).or_default().push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    if groups.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut aucs = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let (mut s, mut l) = (Vec::new(), Vec::new());
    for _ in 0..BOOTSTRAP_RESAMPLES {
        s.clear();
        l.clear();
        for _ in 0..groups.len() {
            for &i in &groups[rng.random_range(0..groups.len())] {
                s.push(probs[i]);
                l.push(samples[i].label);
            }
        }
        let a = auc(&s, &l);
        if a.is_finite() {
            aucs.push(a);
        }
    }
    if aucs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    aucs.sort_by(f64::total_cmp);
    let q = |p: f64| aucs[((aucs.len() - 1) as f64 * p).round() as usize];
    (q(0.025), q(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_and_ties() {
        assert_eq!(auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), 1.0);
        assert_eq!(auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), 0.0);
        // One tie between a positive and a negative: half a pair.
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
        // 3 of the 4 (pos, neg) pairs ordered right.
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert!(auc(&[0.1, 0.2], &[true, true]).is_nan());
    }

    #[test]
    fn brier_and_calibration() {
        let p = [0.0, 1.0, 0.25, 0.95];
        let l = [false, true, true, true];
        assert!((brier(&p, &l) - (0.5625 + 0.0025) / 4.0).abs() < 1e-12);
        let bins = calibration(&p, &l);
        assert_eq!(bins.len(), 3);
        assert_eq!(bins[2].samples, 2);
        assert_eq!(bins[2].observed_rate, 1.0);
    }

    fn sample(pair: u16, label: bool) -> Sample {
        Sample {
            race: "r".into(),
            ts_ms: 0,
            lap: 2,
            attacker: pair,
            defender: 1,
            features: PairFeatures::default(),
            label,
        }
    }

    #[test]
    fn bootstrap_interval_brackets_the_auc_and_is_reproducible() {
        let samples: Vec<Sample> = (0..40).map(|i| sample(i % 10, i % 3 == 0)).collect();
        let probs: Vec<f64> = (0..40)
            .map(|i| if i % 3 == 0 { 0.6 } else { 0.4 } + (i % 7) as f64 / 20.0)
            .collect();
        let r = report(&samples, &probs, 7);
        assert!(r.auc_ci.0 <= r.auc && r.auc <= r.auc_ci.1, "{r:?}");
        assert_eq!(r, report(&samples, &probs, 7));
    }
}
