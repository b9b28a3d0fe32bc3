//! Comparing a shadow candidate's reply with the live version's, frame by frame.
//!
//! A candidate runs beside the live version on the same frames; its insights
//! are never published. Per frame both replies are matched by key:
//!
//! * stories by `(kind, cars)`,
//! * predictions by `(kind, attacker, defender)`,
//! * metrics by `(name, car)`.
//!
//! The frame **agrees** when both replies have the same set of story keys,
//! the same set of prediction keys with every matched probability within
//! [`ShadowTolerance::probability`], and the same set of metric keys with
//! every matched value within [`ShadowTolerance::metric`]. Over the run we
//! keep the agreement rate and the mean absolute difference of matched
//! probabilities and of matched metric values. Frames where either side
//! failed are counted, not compared.

use std::collections::HashMap;

use pitwall_plugin_sdk::InsightsData;
use serde::Serialize;

use crate::config::ShadowTolerance;

/// The comparison of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FrameComparison {
    pub agree: bool,
    pub stories_matched: u32,
    /// Stories present on one side only.
    pub stories_unmatched: u32,
    pub predictions_matched: u32,
    pub predictions_unmatched: u32,
    /// Sum over matched predictions of |p_live − p_candidate|.
    pub sum_abs_probability_diff: f64,
    pub max_abs_probability_diff: f64,
    pub metrics_matched: u32,
    pub metrics_unmatched: u32,
    /// Sum over matched metrics of |v_live − v_candidate|.
    pub sum_abs_metric_diff: f64,
    pub max_abs_metric_diff: f64,
}

/// Matches two multisets of keys; returns (matched, unmatched).
fn match_keys<K: Ord + Clone>(mut a: Vec<K>, mut b: Vec<K>) -> (u32, u32) {
    a.sort();
    b.sort();
    let (mut i, mut j, mut matched, mut unmatched) = (0, 0, 0u32, 0u32);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => {
                matched += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                unmatched += 1;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                unmatched += 1;
                j += 1;
            }
        }
    }
    unmatched += (a.len() - i + b.len() - j) as u32;
    (matched, unmatched)
}

/// Compares one frame's replies.
pub fn compare(
    live: &InsightsData,
    candidate: &InsightsData,
    tol: ShadowTolerance,
) -> FrameComparison {
    let mut c = FrameComparison::default();
    let story_keys = |d: &InsightsData| {
        d.stories
            .iter()
            .map(|s| (s.kind().to_string(), s.cars().to_vec()))
            .collect::<Vec<_>>()
    };
    (c.stories_matched, c.stories_unmatched) = match_keys(story_keys(live), story_keys(candidate));

    let mut live_p: HashMap<(&str, &str, &str), f64> = HashMap::new();
    for p in &live.predictions {
        live_p
            .entry((p.kind(), &p.cars().attacker, &p.cars().defender))
            .or_insert(p.probability());
    }
    let mut probability_ok = true;
    let mut seen = 0u32;
    for p in &candidate.predictions {
        let key = (
            p.kind(),
            p.cars().attacker.as_str(),
            p.cars().defender.as_str(),
        );
        if let Some(lp) = live_p.remove(&key) {
            let d = (lp - p.probability()).abs();
            c.predictions_matched += 1;
            c.sum_abs_probability_diff += d;
            c.max_abs_probability_diff = c.max_abs_probability_diff.max(d);
            probability_ok &= d <= tol.probability;
        } else {
            seen += 1;
        }
    }
    c.predictions_unmatched = seen + live_p.len() as u32;

    let mut live_m: HashMap<(&str, &str), f64> = HashMap::new();
    for m in &live.metrics {
        live_m.entry((m.name(), m.car())).or_insert(m.value());
    }
    let mut metric_ok = true;
    let mut seen = 0u32;
    for m in &candidate.metrics {
        if let Some(lv) = live_m.remove(&(m.name(), m.car())) {
            let d = (lv - m.value()).abs();
            c.metrics_matched += 1;
            c.sum_abs_metric_diff += d;
            c.max_abs_metric_diff = c.max_abs_metric_diff.max(d);
            metric_ok &= d <= tol.metric;
        } else {
            seen += 1;
        }
    }
    c.metrics_unmatched = seen + live_m.len() as u32;

    c.agree = c.stories_unmatched == 0
        && c.predictions_unmatched == 0
        && c.metrics_unmatched == 0
        && probability_ok
        && metric_ok;
    c
}

/// A shadow run's totals so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ShadowStats {
    /// Frames both sides answered, and which were compared.
    pub frames_compared: u64,
    pub frames_agreed: u64,
    /// Frames the candidate failed (not compared).
    pub candidate_failures: u64,
    /// Frames the live version failed or skipped (not compared).
    pub live_unavailable: u64,
    pub predictions_matched: u64,
    pub predictions_unmatched: u64,
    pub sum_abs_probability_diff: f64,
    pub metrics_matched: u64,
    pub metrics_unmatched: u64,
    pub sum_abs_metric_diff: f64,
    pub stories_matched: u64,
    pub stories_unmatched: u64,
    /// Set when the candidate failed `failure_threshold` times in a row and was stopped.
    pub stopped: bool,
    pub consecutive_failures: u32,
}

impl ShadowStats {
    pub(crate) fn add(&mut self, c: &FrameComparison) {
        self.frames_compared += 1;
        self.frames_agreed += u64::from(c.agree);
        self.predictions_matched += u64::from(c.predictions_matched);
        self.predictions_unmatched += u64::from(c.predictions_unmatched);
        self.sum_abs_probability_diff += c.sum_abs_probability_diff;
        self.metrics_matched += u64::from(c.metrics_matched);
        self.metrics_unmatched += u64::from(c.metrics_unmatched);
        self.sum_abs_metric_diff += c.sum_abs_metric_diff;
        self.stories_matched += u64::from(c.stories_matched);
        self.stories_unmatched += u64::from(c.stories_unmatched);
    }

    /// Share of compared frames that agreed; `None` before the first comparison.
    pub fn agreement_rate(&self) -> Option<f64> {
        (self.frames_compared > 0).then(|| self.frames_agreed as f64 / self.frames_compared as f64)
    }

    /// Mean |Δp| over matched predictions.
    pub fn mean_abs_probability_diff(&self) -> Option<f64> {
        (self.predictions_matched > 0)
            .then(|| self.sum_abs_probability_diff / self.predictions_matched as f64)
    }

    /// Mean |Δvalue| over matched metrics.
    pub fn mean_abs_metric_diff(&self) -> Option<f64> {
        (self.metrics_matched > 0).then(|| self.sum_abs_metric_diff / self.metrics_matched as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitwall_plugin_sdk::{CarMetric, Prediction, Story};

    fn reply(p: f64, fuel: f64, extra_story: bool) -> InsightsData {
        let mut d = InsightsData::empty(0);
        d.stories.push(
            Story::builder("battle", "x")
                .cars(["4", "1"])
                .importance(0.5)
                .build()
                .unwrap(),
        );
        if extra_story {
            d.stories.push(
                Story::builder("battle", "y")
                    .cars(["1", "4"])
                    .importance(0.5)
                    .build()
                    .unwrap(),
            );
        }
        d.predictions.push(
            Prediction::builder("p_overtake", "4", "1")
                .probability(p)
                .horizon_laps(1)
                .build()
                .unwrap(),
        );
        d.metrics
            .push(CarMetric::new("4", "fuel", fuel, "kg").unwrap());
        d
    }

    #[test]
    fn identical_replies_agree() {
        let c = compare(
            &reply(0.3, 1.0, false),
            &reply(0.3, 1.0, false),
            ShadowTolerance::default(),
        );
        assert!(c.agree);
        assert_eq!(
            (c.predictions_matched, c.metrics_matched, c.stories_matched),
            (1, 1, 1)
        );
        assert_eq!(c.sum_abs_probability_diff, 0.0);
    }

    #[test]
    fn tolerance_and_car_order_decide() {
        let tol = ShadowTolerance::default();
        assert!(compare(&reply(0.3, 1.0, false), &reply(0.34, 1.0, false), tol).agree);
        let c = compare(&reply(0.3, 1.0, false), &reply(0.4, 1.0, false), tol);
        assert!(!c.agree && (c.max_abs_probability_diff - 0.1).abs() < 1e-12);
        assert!(!compare(&reply(0.3, 1.0, false), &reply(0.3, 1.5, false), tol).agree);
        // A story about (1, 4) is not the story about (4, 1).
        let c = compare(&reply(0.3, 1.0, false), &reply(0.3, 1.0, true), tol);
        assert_eq!((c.stories_matched, c.stories_unmatched), (1, 1));
        assert!(!c.agree);
    }

    #[test]
    fn stats_average_over_matches() {
        let mut s = ShadowStats::default();
        let tol = ShadowTolerance::default();
        s.add(&compare(
            &reply(0.3, 1.0, false),
            &reply(0.4, 3.0, false),
            tol,
        ));
        s.add(&compare(
            &reply(0.3, 1.0, false),
            &reply(0.3, 1.0, false),
            tol,
        ));
        assert_eq!(s.agreement_rate(), Some(0.5));
        assert!((s.mean_abs_probability_diff().unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(s.mean_abs_metric_diff(), Some(1.0));
    }
}
