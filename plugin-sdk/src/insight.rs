//! What plugins return: stories, predictions and per-car metrics, each wrapped
//! with its provenance.
//!
//! These types are the stable vocabulary between plugins, the host, the store
//! and the feeds. Across the WASM boundary they travel as the `Insights`
//! FlatBuffer ([`crate::insights`], versioned by its own `INSIGHTS_VERSION`),
//! whose decoder applies exactly these rules; the encoding may evolve with
//! the ABI, these shapes and their rules will not, which is why they live here
//! rather than in a binding module.
//!
//! Every value is checked when it is built (the builders) and when it is
//! deserialized, so an `Insight` in hand is always valid:
//!
//! * numbers are finite: JSON has no NaN or infinity (serde_json would write
//!   `null`), and a feed consumer should never have to guess what a missing
//!   number meant. A plugin that has nothing to say leaves the insight out;
//! * probabilities and importance lie in `0..=1`;
//! * kinds, metric names and evidence names are identifiers
//!   (`[a-z][a-z0-9_]*`, at most 64 characters), so they can become column
//!   names, metric labels and URL segments without escaping;
//! * headlines are one line of at most [`MAX_HEADLINE_CHARS`] characters, as
//!   they go straight onto on-air graphics.
//!
//! [`Provenance`] names the window, the plugin (`name@version`) and the model
//! parameters behind each insight, so every output can be traced to the code
//! and data that made it, and a shadow run can be compared insight by insight
//! with the live one. It is meant to be stamped by the host, which knows what
//! it loaded and what it passed in, rather than trusted from the plugin.

use serde::{Deserialize, Serialize};

use crate::info::{InfoError, PluginInfo, parse_plugin_id};

/// The longest identifier (kind, metric name, evidence name).
pub const MAX_IDENT_LEN: usize = 64;
/// The longest car key.
pub const MAX_CAR_LEN: usize = 32;
/// The longest headline, in characters.
pub const MAX_HEADLINE_CHARS: usize = 280;
/// The longest unit string.
pub const MAX_UNIT_LEN: usize = 16;
/// The longest model version string.
pub const MAX_MODEL_VERSION_LEN: usize = 64;
/// The model version of a plugin that reads no model parameters.
pub const NO_MODEL: &str = "none";

/// Why an insight is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InsightError {
    #[error(
        "{field} {value:?} is not an identifier: use [a-z][a-z0-9_]*, at most {MAX_IDENT_LEN} \
         characters (e.g. \"fuel_kg_per_lap\")"
    )]
    Identifier { field: String, value: String },
    #[error(
        "car {value:?} is not a car key: use 1 to {MAX_CAR_LEN} characters without spaces \
         (the key the source uses, e.g. \"44\")"
    )]
    Car { value: String },
    #[error("{field} = {value} is outside {range}")]
    OutOfRange {
        field: String,
        value: f64,
        range: &'static str,
    },
    #[error(
        "{field} = {value} is not a finite number; leave the value (or the insight) out \
         instead of sending NaN or infinity"
    )]
    NotFinite { field: String, value: f64 },
    #[error("{field} is not set; call .{field}(..) on the builder")]
    Missing { field: &'static str },
    #[error("{field} {value:?} is invalid: {reason}")]
    Text {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{field} names {name:?} twice; each name may appear once")]
    Duplicate { field: &'static str, name: String },
    #[error("a prediction's attacker and defender are both car {car:?}")]
    SameCar { car: String },
    #[error("a story names car {car:?} twice")]
    RepeatedCar { car: String },
    #[error("provenance: {0}")]
    Plugin(#[from] InfoError),
}

pub(crate) fn check_ident(field: impl Into<String>, value: &str) -> Result<(), InsightError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_IDENT_LEN
        && value.as_bytes()[0].is_ascii_lowercase()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(InsightError::Identifier {
            field: field.into(),
            value: value.to_string(),
        })
    }
}

pub(crate) fn check_car(value: &str) -> Result<(), InsightError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_CAR_LEN
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(InsightError::Car {
            value: value.to_string(),
        })
    }
}

pub(crate) fn check_finite(field: impl Into<String>, value: f64) -> Result<(), InsightError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(InsightError::NotFinite {
            field: field.into(),
            value,
        })
    }
}

pub(crate) fn check_unit_interval(field: &str, value: f64) -> Result<(), InsightError> {
    check_finite(field, value)?;
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(InsightError::OutOfRange {
            field: field.to_string(),
            value,
            range: "0..=1",
        })
    }
}

/// Checks named values (evidence, contributions): identifier names, each once, finite values.
/// A headline: one non-blank line of at most [`MAX_HEADLINE_CHARS`] characters.
pub(crate) fn check_headline(h: &str) -> Result<(), InsightError> {
    if h.trim().is_empty() {
        return Err(InsightError::Text {
            field: "headline",
            value: h.to_string(),
            reason: "it is empty",
        });
    }
    if h.chars().count() > MAX_HEADLINE_CHARS {
        return Err(InsightError::Text {
            field: "headline",
            value: h.to_string(),
            reason: "it is longer than 280 characters",
        });
    }
    if h.chars().any(char::is_control) {
        return Err(InsightError::Text {
            field: "headline",
            value: h.to_string(),
            reason: "it contains a line break or control character; a headline is one line",
        });
    }
    Ok(())
}

/// A unit: at most [`MAX_UNIT_LEN`] bytes of one-line text.
pub(crate) fn check_unit(unit: &str) -> Result<(), InsightError> {
    if unit.len() > MAX_UNIT_LEN || unit.chars().any(char::is_control) {
        return Err(InsightError::Text {
            field: "unit",
            value: unit.to_string(),
            reason: "a unit is at most 16 bytes of one-line text (e.g. \"kg/lap\")",
        });
    }
    Ok(())
}

pub(crate) fn check_named_values(
    field: &'static str,
    values: &[(String, f64)],
) -> Result<(), InsightError> {
    for (i, (name, value)) in values.iter().enumerate() {
        check_ident(format!("{field} name"), name)?;
        check_finite(format!("{field} {name:?}"), *value)?;
        if values[..i].iter().any(|(n, _)| n == name) {
            return Err(InsightError::Duplicate {
                field,
                name: name.clone(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Story
// ---------------------------------------------------------------------------

/// Something worth telling: a battle, an undercut, a tyre cliff.
///
/// `evidence` holds the numbers that made the plugin tell it (`gap_s`,
/// `closing_rate_s_per_lap`), in the order the plugin gives them, so a
/// producer can see why and a test can check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoryWire")]
pub struct Story {
    kind: String,
    cars: Vec<String>,
    headline: String,
    importance: f64,
    evidence: Vec<(String, f64)>,
}

impl Story {
    /// Starts a story of `kind` (an identifier such as `battle`) with its headline.
    pub fn builder(kind: impl Into<String>, headline: impl Into<String>) -> StoryBuilder {
        StoryBuilder {
            kind: kind.into(),
            headline: headline.into(),
            cars: Vec::new(),
            importance: None,
            evidence: Vec::new(),
        }
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// The cars the story is about, in the plugin's order (may be empty: a
    /// story about the race as a whole).
    pub fn cars(&self) -> &[String] {
        &self.cars
    }
    pub fn headline(&self) -> &str {
        &self.headline
    }
    /// How much it matters, `0..=1`; feeds and the dashboard rank by it.
    pub fn importance(&self) -> f64 {
        self.importance
    }
    pub fn evidence(&self) -> &[(String, f64)] {
        &self.evidence
    }

    fn validate(&self) -> Result<(), InsightError> {
        check_ident("story kind", &self.kind)?;
        for (i, car) in self.cars.iter().enumerate() {
            check_car(car)?;
            if self.cars[..i].contains(car) {
                return Err(InsightError::RepeatedCar { car: car.clone() });
            }
        }
        check_headline(&self.headline)?;
        check_unit_interval("importance", self.importance)?;
        check_named_values("evidence", &self.evidence)
    }
}

/// Builds a [`Story`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct StoryBuilder {
    kind: String,
    headline: String,
    cars: Vec<String>,
    importance: Option<f64>,
    evidence: Vec<(String, f64)>,
}

impl StoryBuilder {
    pub fn car(mut self, car: impl Into<String>) -> Self {
        self.cars.push(car.into());
        self
    }
    pub fn cars<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cars: I) -> Self {
        self.cars.extend(cars.into_iter().map(Into::into));
        self
    }
    /// Required, `0..=1`.
    pub fn importance(mut self, importance: f64) -> Self {
        self.importance = Some(importance);
        self
    }
    pub fn evidence(mut self, name: impl Into<String>, value: f64) -> Self {
        self.evidence.push((name.into(), value));
        self
    }
    pub fn build(self) -> Result<Story, InsightError> {
        let story = Story {
            kind: self.kind,
            cars: self.cars,
            headline: self.headline,
            importance: self.importance.ok_or(InsightError::Missing {
                field: "importance",
            })?,
            evidence: self.evidence,
        };
        story.validate()?;
        Ok(story)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoryWire {
    kind: String,
    #[serde(default)]
    cars: Vec<String>,
    headline: String,
    importance: f64,
    #[serde(default)]
    evidence: Vec<(String, f64)>,
}

impl TryFrom<StoryWire> for Story {
    type Error = InsightError;
    fn try_from(w: StoryWire) -> Result<Self, InsightError> {
        let s = Story {
            kind: w.kind,
            cars: w.cars,
            headline: w.headline,
            importance: w.importance,
            evidence: w.evidence,
        };
        s.validate()?;
        Ok(s)
    }
}

// ---------------------------------------------------------------------------
// Prediction
// ---------------------------------------------------------------------------

/// The two cars of a pair model, in the roles the prediction is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarPair {
    /// The car behind, trying to pass.
    pub attacker: String,
    /// The car ahead.
    pub defender: String,
}

/// A probability about a pair of cars, e.g. `p_overtake`: the chance that the
/// attacker passes the defender within `horizon_laps` laps.
///
/// `contributions` break the probability down by feature (`drs`,
/// `tyre_age_delta`), in the model's own units (often log-odds), so a
/// producer can say *why* and a shadow run can be compared term by term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PredictionWire")]
pub struct Prediction {
    kind: String,
    cars: CarPair,
    probability: f64,
    horizon_laps: u32,
    contributions: Vec<(String, f64)>,
}

impl Prediction {
    /// Starts a prediction of `kind` (e.g. `p_overtake`) about `attacker` against `defender`.
    pub fn builder(
        kind: impl Into<String>,
        attacker: impl Into<String>,
        defender: impl Into<String>,
    ) -> PredictionBuilder {
        PredictionBuilder {
            kind: kind.into(),
            cars: CarPair {
                attacker: attacker.into(),
                defender: defender.into(),
            },
            probability: None,
            horizon_laps: None,
            contributions: Vec::new(),
        }
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }
    pub fn cars(&self) -> &CarPair {
        &self.cars
    }
    /// `0..=1`.
    pub fn probability(&self) -> f64 {
        self.probability
    }
    /// How many laps ahead the prediction looks (at least 1).
    pub fn horizon_laps(&self) -> u32 {
        self.horizon_laps
    }
    pub fn contributions(&self) -> &[(String, f64)] {
        &self.contributions
    }

    fn validate(&self) -> Result<(), InsightError> {
        check_ident("prediction kind", &self.kind)?;
        check_car(&self.cars.attacker)?;
        check_car(&self.cars.defender)?;
        if self.cars.attacker == self.cars.defender {
            return Err(InsightError::SameCar {
                car: self.cars.attacker.clone(),
            });
        }
        check_unit_interval("probability", self.probability)?;
        if self.horizon_laps == 0 {
            return Err(InsightError::OutOfRange {
                field: "horizon_laps".into(),
                value: 0.0,
                range: "1.. (a prediction looks at least one lap ahead)",
            });
        }
        check_named_values("contributions", &self.contributions)
    }
}

/// Builds a [`Prediction`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct PredictionBuilder {
    kind: String,
    cars: CarPair,
    probability: Option<f64>,
    horizon_laps: Option<u32>,
    contributions: Vec<(String, f64)>,
}

impl PredictionBuilder {
    /// Required, `0..=1`.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
    /// Required, at least 1.
    pub fn horizon_laps(mut self, laps: u32) -> Self {
        self.horizon_laps = Some(laps);
        self
    }
    pub fn contribution(mut self, name: impl Into<String>, value: f64) -> Self {
        self.contributions.push((name.into(), value));
        self
    }
    pub fn build(self) -> Result<Prediction, InsightError> {
        let p = Prediction {
            kind: self.kind,
            cars: self.cars,
            probability: self.probability.ok_or(InsightError::Missing {
                field: "probability",
            })?,
            horizon_laps: self.horizon_laps.ok_or(InsightError::Missing {
                field: "horizon_laps",
            })?,
            contributions: self.contributions,
        };
        p.validate()?;
        Ok(p)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictionWire {
    kind: String,
    cars: CarPair,
    probability: f64,
    horizon_laps: u32,
    #[serde(default)]
    contributions: Vec<(String, f64)>,
}

impl TryFrom<PredictionWire> for Prediction {
    type Error = InsightError;
    fn try_from(w: PredictionWire) -> Result<Self, InsightError> {
        let p = Prediction {
            kind: w.kind,
            cars: w.cars,
            probability: w.probability,
            horizon_laps: w.horizon_laps,
            contributions: w.contributions,
        };
        p.validate()?;
        Ok(p)
    }
}

// ---------------------------------------------------------------------------
// CarMetric
// ---------------------------------------------------------------------------

/// One number about one car, e.g. `fuel_kg_per_lap` or `burn_bar`.
///
/// `unit` is free text for display (`kg/lap`, `%`) and may be empty for a
/// dimensionless score; the metric's meaning is carried by `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CarMetricWire")]
pub struct CarMetric {
    car: String,
    name: String,
    value: f64,
    unit: String,
}

impl CarMetric {
    pub fn new(
        car: impl Into<String>,
        name: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
    ) -> Result<Self, InsightError> {
        let m = CarMetric {
            car: car.into(),
            name: name.into(),
            value,
            unit: unit.into(),
        };
        m.validate()?;
        Ok(m)
    }

    pub fn car(&self) -> &str {
        &self.car
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn value(&self) -> f64 {
        self.value
    }
    pub fn unit(&self) -> &str {
        &self.unit
    }

    fn validate(&self) -> Result<(), InsightError> {
        check_car(&self.car)?;
        check_ident("metric name", &self.name)?;
        check_finite(format!("metric {:?}", self.name), self.value)?;
        check_unit(&self.unit)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CarMetricWire {
    car: String,
    name: String,
    value: f64,
    #[serde(default)]
    unit: String,
}

impl TryFrom<CarMetricWire> for CarMetric {
    type Error = InsightError;
    fn try_from(w: CarMetricWire) -> Result<Self, InsightError> {
        CarMetric::new(w.car, w.name, w.value, w.unit)
    }
}

// ---------------------------------------------------------------------------
// Provenance and Insight
// ---------------------------------------------------------------------------

/// Where an insight came from: the window, the plugin and the model parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ProvenanceWire")]
pub struct Provenance {
    window_start_ms: i64,
    plugin: String,
    model_version: String,
}

impl Provenance {
    /// Provenance for an insight made by `plugin` from the window that starts
    /// at `window_start_ms` (event time), with model parameters `model_version`
    /// ([`NO_MODEL`] for a plugin that reads none).
    pub fn new(
        window_start_ms: i64,
        plugin: &PluginInfo,
        model_version: impl Into<String>,
    ) -> Result<Self, InsightError> {
        Self::from_parts(window_start_ms, plugin.id(), model_version)
    }

    /// Like [`new`](Self::new), from a `name@version` id.
    pub fn from_parts(
        window_start_ms: i64,
        plugin_id: impl Into<String>,
        model_version: impl Into<String>,
    ) -> Result<Self, InsightError> {
        let p = Provenance {
            window_start_ms,
            plugin: plugin_id.into(),
            model_version: model_version.into(),
        };
        p.validate()?;
        Ok(p)
    }

    /// Event-time start of the window the insight was made from.
    pub fn window_start_ms(&self) -> i64 {
        self.window_start_ms
    }
    /// `name@version` of the plugin.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
    pub fn plugin_name(&self) -> &str {
        self.plugin.split_once('@').map_or("", |(n, _)| n)
    }
    pub fn plugin_version(&self) -> &str {
        self.plugin.split_once('@').map_or("", |(_, v)| v)
    }
    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    fn validate(&self) -> Result<(), InsightError> {
        parse_plugin_id(&self.plugin)?;
        let mv = &self.model_version;
        if mv.is_empty()
            || mv.len() > MAX_MODEL_VERSION_LEN
            || mv.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(InsightError::Text {
                field: "model_version",
                value: mv.clone(),
                reason: "use 1 to 64 characters without spaces (e.g. \"2024-07-01\", or \"none\")",
            });
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvenanceWire {
    window_start_ms: i64,
    plugin: String,
    model_version: String,
}

impl TryFrom<ProvenanceWire> for Provenance {
    type Error = InsightError;
    fn try_from(w: ProvenanceWire) -> Result<Self, InsightError> {
        Provenance::from_parts(w.window_start_ms, w.plugin, w.model_version)
    }
}

/// The content of an insight. Serialized with a `type` tag:
/// `{"type": "story", "kind": "battle", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InsightBody {
    Story(Story),
    Prediction(Prediction),
    Metric(CarMetric),
}

impl InsightBody {
    /// The cars the insight is about, for filtering feeds by car.
    pub fn cars(&self) -> Vec<&str> {
        match self {
            InsightBody::Story(s) => s.cars.iter().map(String::as_str).collect(),
            InsightBody::Prediction(p) => vec![&p.cars.attacker, &p.cars.defender],
            InsightBody::Metric(m) => vec![&m.car],
        }
    }
}

impl From<Story> for InsightBody {
    fn from(s: Story) -> Self {
        InsightBody::Story(s)
    }
}
impl From<Prediction> for InsightBody {
    fn from(p: Prediction) -> Self {
        InsightBody::Prediction(p)
    }
}
impl From<CarMetric> for InsightBody {
    fn from(m: CarMetric) -> Self {
        InsightBody::Metric(m)
    }
}

/// One insight as it leaves the host: what was said, and who said it from what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Insight {
    pub provenance: Provenance,
    pub body: InsightBody,
}

impl Insight {
    pub fn new(provenance: Provenance, body: impl Into<InsightBody>) -> Self {
        Insight {
            provenance,
            body: body.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PluginKind;

    fn battle() -> Story {
        Story::builder("battle", "NOR closes on VER: 0.4 s and falling")
            .cars(["4", "1"])
            .importance(0.8)
            .evidence("gap_s", 0.4)
            .evidence("closing_rate_s_per_lap", -0.15)
            .build()
            .unwrap()
    }

    fn overtake() -> Prediction {
        Prediction::builder("p_overtake", "4", "1")
            .probability(0.35)
            .horizon_laps(3)
            .contribution("drs", 0.9)
            .contribution("tyre_age_delta", -0.2)
            .build()
            .unwrap()
    }

    fn provenance() -> Provenance {
        let info = PluginInfo::new("overtake", "1.2.0", PluginKind::PairModel).unwrap();
        Provenance::new(61_000, &info, "2024-07-01").unwrap()
    }

    #[test]
    fn builders_keep_what_they_are_given() {
        let s = battle();
        assert_eq!(s.kind(), "battle");
        assert_eq!(s.cars(), ["4", "1"]);
        assert_eq!(s.importance(), 0.8);
        assert_eq!(
            s.evidence()[1],
            ("closing_rate_s_per_lap".to_string(), -0.15)
        );
        let p = overtake();
        assert_eq!(p.cars().attacker, "4");
        assert_eq!(p.horizon_laps(), 3);
        assert_eq!(p.contributions().len(), 2);
        let m = CarMetric::new("44", "fuel_kg_per_lap", 1.62, "kg/lap").unwrap();
        assert_eq!(
            (m.car(), m.name(), m.value(), m.unit()),
            ("44", "fuel_kg_per_lap", 1.62, "kg/lap")
        );
    }

    #[test]
    fn story_rules() {
        let base = || Story::builder("battle", "A headline").importance(0.5);
        assert!(matches!(
            Story::builder("battle", "   ").importance(0.5).build(),
            Err(InsightError::Text {
                field: "headline",
                ..
            })
        ));
        assert!(
            Story::builder("battle", "two\nlines")
                .importance(0.5)
                .build()
                .is_err()
        );
        assert!(
            Story::builder("battle", "x".repeat(281))
                .importance(0.5)
                .build()
                .is_err()
        );
        assert!(
            Story::builder("battle", "é".repeat(280))
                .importance(0.5)
                .build()
                .is_ok()
        );
        assert!(
            Story::builder("Battle", "h")
                .importance(0.5)
                .build()
                .is_err()
        );
        assert!(Story::builder("", "h").importance(0.5).build().is_err());
        assert_eq!(
            Story::builder("battle", "h").build().unwrap_err(),
            InsightError::Missing {
                field: "importance"
            }
        );
        for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            assert!(base().importance(bad).build().is_err(), "{bad}");
        }
        assert!(base().importance(0.0).build().is_ok());
        assert!(base().importance(1.0).build().is_ok());
        assert!(base().car("44").car("44").build().is_err());
        assert!(base().car("").build().is_err());
        assert!(base().car("4 4").build().is_err());
        assert!(base().evidence("gap", f64::NAN).build().is_err());
        assert!(
            base()
                .evidence("gap", 1.0)
                .evidence("gap", 2.0)
                .build()
                .is_err()
        );
        assert!(base().evidence("Gap", 1.0).build().is_err());
        // A story about the whole race names no car.
        assert!(base().build().unwrap().cars().is_empty());
    }

    #[test]
    fn prediction_rules() {
        let base = || Prediction::builder("p_overtake", "4", "1").horizon_laps(1);
        for bad in [-0.1, 1.5, f64::NAN, f64::NEG_INFINITY] {
            let err = base().probability(bad).build().unwrap_err();
            assert!(err.to_string().contains("probability"), "{err}");
        }
        assert!(base().probability(1.0).build().is_ok());
        assert!(matches!(
            Prediction::builder("p_overtake", "4", "4")
                .probability(0.5)
                .horizon_laps(1)
                .build(),
            Err(InsightError::SameCar { .. })
        ));
        assert!(base().probability(0.5).horizon_laps(0).build().is_err());
        assert_eq!(
            Prediction::builder("p_overtake", "4", "1")
                .probability(0.5)
                .build()
                .unwrap_err(),
            InsightError::Missing {
                field: "horizon_laps"
            }
        );
        assert!(
            base()
                .probability(0.5)
                .contribution("drs", f64::INFINITY)
                .build()
                .is_err()
        );
        // Contributions may be negative (log-odds terms).
        assert!(
            base()
                .probability(0.5)
                .contribution("drs", -3.0)
                .build()
                .is_ok()
        );
    }

    #[test]
    fn metric_rules() {
        assert!(CarMetric::new("44", "burn_bar", 0.7, "").is_ok());
        assert!(CarMetric::new("44", "burn_bar", f64::NAN, "").is_err());
        assert!(CarMetric::new("", "burn_bar", 0.7, "").is_err());
        assert!(CarMetric::new("44", "burn bar", 0.7, "").is_err());
        assert!(CarMetric::new("44", "burn_bar", 0.7, "a very long unit name").is_err());
        let err = CarMetric::new("44", "fuel", f64::INFINITY, "kg")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"fuel\"") && err.contains("not a finite number"),
            "{err}"
        );
    }

    #[test]
    fn provenance_names_plugin_and_model() {
        let p = provenance();
        assert_eq!(p.plugin(), "overtake@1.2.0");
        assert_eq!((p.plugin_name(), p.plugin_version()), ("overtake", "1.2.0"));
        assert_eq!(p.window_start_ms(), 61_000);
        assert_eq!(p.model_version(), "2024-07-01");
        assert!(Provenance::from_parts(0, "overtake@1.2.0", NO_MODEL).is_ok());
        assert!(Provenance::from_parts(0, "overtake@1.2.0", "").is_err());
        assert!(Provenance::from_parts(0, "overtake@1.2.0", "v 2").is_err());
        assert!(matches!(
            Provenance::from_parts(0, "overtake", "v2"),
            Err(InsightError::Plugin(InfoError::Id { .. }))
        ));
        assert!(Provenance::from_parts(-5_000, "a@0.0.1", "v2").is_ok());
    }

    #[test]
    fn insights_have_a_stable_json_shape() {
        let m = CarMetric::new("44", "fuel_kg_per_lap", 1.5, "kg/lap").unwrap();
        let insight = Insight::new(provenance(), m);
        let json = serde_json::to_string(&insight).unwrap();
        assert_eq!(
            json,
            r#"{"provenance":{"window_start_ms":61000,"plugin":"overtake@1.2.0","model_version":"2024-07-01"},"body":{"type":"metric","car":"44","name":"fuel_kg_per_lap","value":1.5,"unit":"kg/lap"}}"#
        );
        let story = serde_json::to_value(InsightBody::from(battle())).unwrap();
        assert_eq!(story["type"], "story");
        assert_eq!(story["evidence"][0], serde_json::json!(["gap_s", 0.4]));
        let pred = serde_json::to_value(InsightBody::from(overtake())).unwrap();
        assert_eq!(
            pred["cars"],
            serde_json::json!({"attacker": "4", "defender": "1"})
        );
    }

    #[test]
    fn insights_roundtrip_through_json() {
        for body in [
            InsightBody::from(battle()),
            InsightBody::from(overtake()),
            InsightBody::from(CarMetric::new("44", "burn_bar", 0.25, "").unwrap()),
        ] {
            let insight = Insight::new(provenance(), body);
            let json = serde_json::to_string(&insight).unwrap();
            let back: Insight = serde_json::from_str(&json).unwrap();
            assert_eq!(back, insight, "{json}");
        }
    }

    #[test]
    fn deserializing_checks_the_rules() {
        let ok = r#"{"type":"prediction","kind":"p_overtake","cars":{"attacker":"4","defender":"1"},"probability":0.5,"horizon_laps":2}"#;
        let p: InsightBody = serde_json::from_str(ok).unwrap();
        assert_eq!(p.cars(), ["4", "1"]);
        let err = serde_json::from_str::<InsightBody>(&ok.replace("0.5", "1.5"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("probability = 1.5 is outside 0..=1"), "{err}");
        // NaN arrives from JSON as null, which is not a number at all.
        assert!(serde_json::from_str::<InsightBody>(&ok.replace("0.5", "null")).is_err());
        // Unknown fields are refused rather than silently dropped.
        let extra = ok.replace("\"horizon_laps\":2", "\"horizon_laps\":2,\"confidence\":1");
        assert!(serde_json::from_str::<InsightBody>(&extra).is_err());
        let story = r#"{"type":"story","kind":"battle","headline":"","importance":0.5}"#;
        let err = serde_json::from_str::<InsightBody>(story)
            .unwrap_err()
            .to_string();
        assert!(err.contains("headline"), "{err}");
        let prov = r#"{"window_start_ms":0,"plugin":"Bad@1.0.0","model_version":"v1"}"#;
        assert!(serde_json::from_str::<Provenance>(prov).is_err());
    }
}
