//! The output builder: a plugin's stories, predictions and car metrics,
//! written straight into the `Insights` FlatBuffer.
//!
//! One [`Output`] lives as long as the plugin instance and is reset before
//! every frame: its FlatBuffer builder and scratch vectors keep their
//! capacity, so once they have grown to the plugin's usual reply, emitting
//! insights allocates nothing.
//!
//! Every item is checked when it is emitted, with the same rules the host
//! applies when it decodes the reply ([`InsightsData::from_flatbuffer`](crate::InsightsData::from_flatbuffer)):
//! an invalid item is refused *here*, with an error the plugin can log, and
//! does not cost the whole reply.
//!
//! ```
//! # use pitwall_plugin_sdk::Output;
//! let mut out = Output::default();
//! out.begin(61_000);
//! out.story("catching", "#4 is closing on #1")
//!     .cars(&[4, 1])
//!     .importance(0.6)
//!     .evidence("interval_s", 0.9)
//!     .emit()?;
//! out.prediction("p_attack", 4, 1).probability(0.3).horizon_laps(2).emit()?;
//! out.metric(4, "pace_kmh", 231.0, "km/h")?;
//! assert!(out.metric(4, "pace kmh", 1.0, "").is_err());
//! let reply = pitwall_plugin_sdk::InsightsData::from_flatbuffer(out.finish())?;
//! assert_eq!((reply.stories.len(), reply.predictions.len(), reply.metrics.len()), (1, 1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::frame::fb;
use crate::insight::{
    InsightError, check_finite, check_headline, check_ident, check_unit, check_unit_interval,
};
use crate::insights::INSIGHTS_VERSION;

/// Builds one reply per frame; see the [module docs](self).
pub struct Output {
    fbb: FlatBufferBuilder<'static>,
    window_start_ms: i64,
    stories: Vec<WIPOffset<fb::StoryOut<'static>>>,
    predictions: Vec<WIPOffset<fb::PredictionOut<'static>>>,
    metrics: Vec<WIPOffset<fb::CarMetricOut<'static>>>,
    // Scratch for the item being drafted.
    cars: Vec<u16>,
    named: Vec<WIPOffset<fb::NamedValue<'static>>>,
    /// Names of `named`, concatenated; `name_ends[i]` ends the i-th.
    names: String,
    name_ends: Vec<usize>,
}

impl Default for Output {
    fn default() -> Self {
        Output {
            fbb: FlatBufferBuilder::with_capacity(1024),
            window_start_ms: 0,
            stories: Vec::new(),
            predictions: Vec::new(),
            metrics: Vec::new(),
            cars: Vec::new(),
            named: Vec::new(),
            names: String::new(),
            name_ends: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("window_start_ms", &self.window_start_ms)
            .field("stories", &self.stories.len())
            .field("predictions", &self.predictions.len())
            .field("metrics", &self.metrics.len())
            .finish()
    }
}

impl Output {
    /// Starts the reply to the window at `window_start_ms` (the SDK's glue
    /// calls this before each frame), dropping anything not finished.
    pub fn begin(&mut self, window_start_ms: i64) {
        self.fbb.reset();
        self.window_start_ms = window_start_ms;
        self.stories.clear();
        self.predictions.clear();
        self.metrics.clear();
        self.clear_scratch();
    }

    fn clear_scratch(&mut self) {
        self.cars.clear();
        self.named.clear();
        self.names.clear();
        self.name_ends.clear();
    }

    /// Items emitted since [`begin`](Self::begin).
    pub fn len(&self) -> usize {
        self.stories.len() + self.predictions.len() + self.metrics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drafts a story of `kind` (an identifier, e.g. `catching`) with its
    /// one-line `headline`; nothing is emitted until [`StoryDraft::emit`].
    pub fn story<'o>(&'o mut self, kind: &'o str, headline: &'o str) -> StoryDraft<'o> {
        self.clear_scratch();
        StoryDraft {
            out: self,
            kind,
            headline,
            importance: None,
            err: None,
        }
    }

    /// Drafts a prediction of `kind` (e.g. `p_attack`) about `attacker` (behind)
    /// against `defender` (ahead).
    pub fn prediction<'o>(
        &'o mut self,
        kind: &'o str,
        attacker: u16,
        defender: u16,
    ) -> PredictionDraft<'o> {
        self.clear_scratch();
        PredictionDraft {
            out: self,
            kind,
            attacker,
            defender,
            probability: None,
            horizon_laps: None,
            err: None,
        }
    }

    /// Emits one number about one car (`unit` may be empty).
    pub fn metric(
        &mut self,
        car: u16,
        name: &str,
        value: f64,
        unit: &str,
    ) -> Result<(), InsightError> {
        check_ident("metric name", name)?;
        check_finite(format!("metric {name:?}"), value)?;
        check_unit(unit)?;
        let name = self.fbb.create_string(name);
        let unit = self.fbb.create_string(unit);
        let m = fb::CarMetricOut::create(
            &mut self.fbb,
            &fb::CarMetricOutArgs {
                car,
                name: Some(name),
                value,
                unit: Some(unit),
            },
        );
        self.metrics.push(m);
        Ok(())
    }

    /// Finishes the reply and returns its bytes (valid until the next `begin`).
    pub fn finish(&mut self) -> &[u8] {
        let stories = self.fbb.create_vector(&self.stories);
        let predictions = self.fbb.create_vector(&self.predictions);
        let metrics = self.fbb.create_vector(&self.metrics);
        let root = fb::Insights::create(
            &mut self.fbb,
            &fb::InsightsArgs {
                insights_version: INSIGHTS_VERSION,
                window_start_ms: self.window_start_ms,
                stories: Some(stories),
                predictions: Some(predictions),
                metrics: Some(metrics),
            },
        );
        self.fbb.finish(root, None);
        self.fbb.finished_data()
    }

    /// Adds one named value (evidence, contribution) to the draft.
    fn push_named(
        &mut self,
        field: &'static str,
        name: &str,
        value: f64,
    ) -> Result<(), InsightError> {
        check_ident(format!("{field} name"), name)?;
        check_finite(format!("{field} {name:?}"), value)?;
        let mut start = 0;
        for &end in &self.name_ends {
            if &self.names[start..end] == name {
                return Err(InsightError::Duplicate {
                    field,
                    name: name.to_string(),
                });
            }
            start = end;
        }
        self.names.push_str(name);
        self.name_ends.push(self.names.len());
        let n = self.fbb.create_string(name);
        let nv = fb::NamedValue::create(
            &mut self.fbb,
            &fb::NamedValueArgs {
                name: Some(n),
                value,
            },
        );
        self.named.push(nv);
        Ok(())
    }
}

/// A story being drafted; [`emit`](Self::emit) checks and writes it.
#[must_use = "a draft is only written by .emit()"]
pub struct StoryDraft<'o> {
    out: &'o mut Output,
    kind: &'o str,
    headline: &'o str,
    importance: Option<f64>,
    err: Option<InsightError>,
}

impl StoryDraft<'_> {
    /// Adds a car the story is about (most relevant first; each car once).
    pub fn car(mut self, car: u16) -> Self {
        if self.err.is_none() && self.out.cars.contains(&car) {
            self.err = Some(InsightError::RepeatedCar {
                car: car.to_string(),
            });
        }
        self.out.cars.push(car);
        self
    }
    /// Adds several cars.
    pub fn cars(mut self, cars: &[u16]) -> Self {
        for &c in cars {
            self = self.car(c);
        }
        self
    }
    /// Required, `0..=1`.
    pub fn importance(mut self, importance: f64) -> Self {
        self.importance = Some(importance);
        self
    }
    /// A number behind the headline (an identifier name, finite value, each name once).
    pub fn evidence(mut self, name: &str, value: f64) -> Self {
        if self.err.is_none()
            && let Err(e) = self.out.push_named("evidence", name, value)
        {
            self.err = Some(e);
        }
        self
    }
    /// Checks the story and adds it to the reply.
    pub fn emit(self) -> Result<(), InsightError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        check_ident("story kind", self.kind)?;
        check_headline(self.headline)?;
        let importance = self.importance.ok_or(InsightError::Missing {
            field: "importance",
        })?;
        check_unit_interval("importance", importance)?;
        let out = self.out;
        let kind = out.fbb.create_string(self.kind);
        let cars = out.fbb.create_vector(&out.cars);
        let headline = out.fbb.create_string(self.headline);
        let evidence = out.fbb.create_vector(&out.named);
        let s = fb::StoryOut::create(
            &mut out.fbb,
            &fb::StoryOutArgs {
                kind: Some(kind),
                cars: Some(cars),
                headline: Some(headline),
                importance,
                evidence: Some(evidence),
            },
        );
        out.stories.push(s);
        Ok(())
    }
}

/// A prediction being drafted; [`emit`](Self::emit) checks and writes it.
#[must_use = "a draft is only written by .emit()"]
pub struct PredictionDraft<'o> {
    out: &'o mut Output,
    kind: &'o str,
    attacker: u16,
    defender: u16,
    probability: Option<f64>,
    horizon_laps: Option<u16>,
    err: Option<InsightError>,
}

impl PredictionDraft<'_> {
    /// Required, `0..=1`.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
    /// Required, at least 1.
    pub fn horizon_laps(mut self, laps: u16) -> Self {
        self.horizon_laps = Some(laps);
        self
    }
    /// One term of the probability (e.g. an expert's share, often in log-odds).
    pub fn contribution(mut self, name: &str, value: f64) -> Self {
        if self.err.is_none()
            && let Err(e) = self.out.push_named("contributions", name, value)
        {
            self.err = Some(e);
        }
        self
    }
    /// Checks the prediction and adds it to the reply.
    pub fn emit(self) -> Result<(), InsightError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        check_ident("prediction kind", self.kind)?;
        if self.attacker == self.defender {
            return Err(InsightError::SameCar {
                car: self.attacker.to_string(),
            });
        }
        let probability = self.probability.ok_or(InsightError::Missing {
            field: "probability",
        })?;
        check_unit_interval("probability", probability)?;
        let horizon_laps = self.horizon_laps.ok_or(InsightError::Missing {
            field: "horizon_laps",
        })?;
        if horizon_laps == 0 {
            return Err(InsightError::OutOfRange {
                field: "horizon_laps".into(),
                value: 0.0,
                range: "1.. (a prediction looks at least one lap ahead)",
            });
        }
        let out = self.out;
        let kind = out.fbb.create_string(self.kind);
        let contributions = out.fbb.create_vector(&out.named);
        let p = fb::PredictionOut::create(
            &mut out.fbb,
            &fb::PredictionOutArgs {
                kind: Some(kind),
                attacker: self.attacker,
                defender: self.defender,
                probability,
                horizon_laps,
                contributions: Some(contributions),
            },
        );
        out.predictions.push(p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InsightsData;

    #[test]
    fn drafts_are_checked_and_bad_ones_leave_the_reply_valid() {
        let mut out = Output::default();
        out.begin(7);
        assert!(
            out.story("battle", "h")
                .cars(&[4, 4])
                .importance(0.5)
                .emit()
                .is_err()
        );
        assert!(
            out.story("battle", "two\nlines")
                .importance(0.5)
                .emit()
                .is_err()
        );
        assert!(
            out.story("battle", "h").emit().is_err(),
            "importance is required"
        );
        let dup = out
            .story("battle", "h")
            .importance(0.5)
            .evidence("gap_s", 1.0)
            .evidence("gap_s", 2.0)
            .emit()
            .unwrap_err();
        assert!(matches!(dup, InsightError::Duplicate { .. }));
        assert!(
            out.prediction("p", 1, 1)
                .probability(0.5)
                .horizon_laps(1)
                .emit()
                .is_err()
        );
        assert!(
            out.prediction("p", 1, 2)
                .probability(1.1)
                .horizon_laps(1)
                .emit()
                .is_err()
        );
        assert!(
            out.prediction("p", 1, 2)
                .probability(0.5)
                .horizon_laps(0)
                .emit()
                .is_err()
        );
        assert!(
            out.prediction("p", 1, 2)
                .probability(0.5)
                .horizon_laps(1)
                .contribution("x", f64::NAN)
                .emit()
                .is_err()
        );
        assert!(out.metric(1, "m", f64::INFINITY, "").is_err());
        assert!(out.is_empty());
        out.story("battle", "ok")
            .car(1)
            .car(2)
            .importance(1.0)
            .evidence("gap_s", 0.4)
            .emit()
            .unwrap();
        out.prediction("p_attack", 2, 1)
            .probability(0.0)
            .horizon_laps(3)
            .contribution("drs", -1.0)
            .emit()
            .unwrap();
        out.metric(2, "m", -3.5, "s").unwrap();
        let reply = InsightsData::from_flatbuffer(out.finish()).unwrap();
        assert_eq!(reply.window_start_ms, 7);
        assert_eq!(reply.stories[0].cars(), ["1", "2"]);
        assert_eq!(reply.stories[0].evidence(), [("gap_s".to_string(), 0.4)]);
        assert_eq!(
            reply.predictions[0].contributions(),
            [("drs".to_string(), -1.0)]
        );
        assert_eq!(reply.metrics[0].value(), -3.5);
        // The next frame starts empty.
        out.begin(8);
        let empty = InsightsData::from_flatbuffer(out.finish()).unwrap();
        assert!(empty.is_empty() && empty.window_start_ms == 8);
    }

    #[test]
    fn the_builder_is_reused_across_frames() {
        let mut out = Output::default();
        let mut sizes = Vec::new();
        // Window 1 on: a window of 0 is a default value FlatBuffers leaves out.
        for w in 1..50 {
            out.begin(w);
            for car in 0..20 {
                out.metric(car, "pace_kmh", 200.0 + f64::from(car), "km/h")
                    .unwrap();
            }
            let bytes = out.finish().to_vec();
            assert_eq!(
                InsightsData::from_flatbuffer(&bytes).unwrap().metrics.len(),
                20
            );
            sizes.push(bytes.len());
        }
        // Same content shape, same size: nothing accumulates across frames.
        assert!(sizes.windows(2).all(|w| w[0] == w[1]), "{sizes:?}");
    }
}
