//! A plugin's reply to one frame: the `Insights` FlatBuffer, owned and checked.
//!
//! The guest encodes its stories, predictions and car metrics as one
//! `pitwall.frame.Insights` table (schema `plugin-sdk/schema/frame.fbs`) and
//! returns a pointer to it (docs/plugin-abi.md §2). The host must not trust
//! those bytes: [`InsightsData::from_flatbuffer`] runs the flatbuffers
//! verifier, checks [`INSIGHTS_VERSION`], and then applies exactly the rules
//! the SDK's builders apply ([`Story::builder`], [`Prediction::builder`],
//! [`CarMetric::new`]), so a hostile or buggy plugin cannot get a value onto a
//! feed that a well-behaved one could not have built. Errors name the item
//! (`stories[2]: importance = 1.5 is outside 0..=1`), because the message ends
//! up in the host's log next to the plugin's name and is all an author gets.
//!
//! Cars are racing numbers (`u16`) on the wire and car keys (strings) in the
//! SDK's types; decoding writes the number in decimal (`44` → `"44"`), and
//! encoding accepts only car keys that are plain decimal numbers that fit a
//! `u16`, so the two directions round-trip exactly.
//!
//! Provenance is **not** on the wire: the host knows which plugin it called,
//! from which `.wasm`, with which parameters, and stamps it with
//! [`InsightsData::into_insights`] / [`InsightsData::to_insights`].

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::frame::fb;
use crate::insight::{CarMetric, Insight, InsightError, Prediction, Provenance, Story};

/// Major version of the `Insights` table, written in `Insights.insights_version`.
/// Readers reject any other value (0 means "not a reply").
pub const INSIGHTS_VERSION: u16 = 1;

/// Why a plugin's reply is not acceptable, or why insights cannot be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InsightsError {
    /// The flatbuffers verifier rejected the bytes (truncated, corrupt, not a FlatBuffer).
    #[error("the plugin's reply is not a valid Insights FlatBuffer: {0}")]
    Invalid(#[from] flatbuffers::InvalidFlatbuffer),
    /// An `Insights` table of another major version (0: the field was not written).
    #[error(
        "the plugin's reply has insights_version {found}, this host reads version {expected} \
         (0 means the field is missing: build replies with the SDK's output builder)"
    )]
    UnsupportedVersion {
        /// The version in the reply.
        found: u16,
        /// [`INSIGHTS_VERSION`].
        expected: u16,
    },
    /// One item breaks the SDK's validation rules.
    #[error("{list}[{index}]: {source}")]
    Item {
        /// `stories`, `predictions` or `metrics`.
        list: &'static str,
        /// Position in that list.
        index: usize,
        /// The rule it breaks.
        #[source]
        source: InsightError,
    },
    /// A car key that has no racing number, so it cannot go on the wire.
    #[error(
        "{list}[{index}]: car {car:?} is not a racing number (a plain decimal number \
         from 0 to 65535); the Insights FlatBuffer carries cars as numbers"
    )]
    CarNumber {
        /// `stories`, `predictions` or `metrics`.
        list: &'static str,
        /// Position in that list.
        index: usize,
        /// The car key.
        car: String,
    },
    /// The reply is a race frame (identifier `PWRF`), e.g. a guest that
    /// handed back its input: the frame's first fields line up with
    /// `insights_version` and `window_start_ms`, so the verifier alone would
    /// accept it as an empty reply.
    #[error("the plugin's reply is a race frame (identifier \"PWRF\"), not an Insights table")]
    EchoedFrame,
    /// The reply answers another window than the one the host passed in.
    #[error(
        "the plugin's reply is for window {found} ms, but it was given window {expected} ms \
         (stale output?)"
    )]
    WrongWindow {
        /// `window_start_ms` of the frame passed in.
        expected: i64,
        /// `window_start_ms` echoed in the reply.
        found: i64,
    },
}

/// A plugin's insights for one window, owned and valid.
///
/// Every `Story`, `Prediction` and `CarMetric` in here was checked when it was
/// built, so an `InsightsData` decoded with [`from_flatbuffer`](Self::from_flatbuffer)
/// holds only values the SDK's builders accept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InsightsData {
    /// Echo of the frame's `window_start_ms`.
    pub window_start_ms: i64,
    pub stories: Vec<Story>,
    pub predictions: Vec<Prediction>,
    pub metrics: Vec<CarMetric>,
}

/// Parses a car key as a racing number: plain decimal, no sign or leading zeros.
pub(crate) fn car_number(car: &str) -> Option<u16> {
    crate::abi::parse_decimal::<u16>(car)
}

impl InsightsData {
    /// An empty reply for the window that starts at `window_start_ms` (valid:
    /// a plugin with nothing to say returns it).
    pub fn empty(window_start_ms: i64) -> Self {
        InsightsData {
            window_start_ms,
            ..Default::default()
        }
    }

    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.stories.is_empty() && self.predictions.is_empty() && self.metrics.is_empty()
    }

    /// Number of items (stories + predictions + metrics).
    pub fn len(&self) -> usize {
        self.stories.len() + self.predictions.len() + self.metrics.len()
    }

    /// Encodes the reply in a fresh builder.
    ///
    /// # Panics
    ///
    /// If a car key is not a racing number (see [`try_to_flatbuffer`](Self::try_to_flatbuffer),
    /// which returns the error instead). Values built from frames always are.
    pub fn to_flatbuffer(&self) -> Vec<u8> {
        match self.try_to_flatbuffer() {
            Ok(bytes) => bytes,
            Err(e) => panic!("cannot encode insights: {e}"),
        }
    }

    /// Encodes the reply in a fresh builder, or says which car key is not a racing number.
    pub fn try_to_flatbuffer(&self) -> Result<Vec<u8>, InsightsError> {
        let mut fbb = FlatBufferBuilder::with_capacity(512);
        Ok(self.write_flatbuffer(&mut fbb)?.to_vec())
    }

    /// Encodes the reply into `fbb` (reset first, so one builder serves call
    /// after call without reallocating once it has grown) and returns the bytes.
    pub fn write_flatbuffer<'b>(
        &self,
        fbb: &'b mut FlatBufferBuilder<'static>,
    ) -> Result<&'b [u8], InsightsError> {
        fbb.reset();
        fbb.force_defaults(false);
        let mut stories = Vec::with_capacity(self.stories.len());
        for (index, s) in self.stories.iter().enumerate() {
            let mut cars = Vec::with_capacity(s.cars().len());
            for car in s.cars() {
                cars.push(car_number(car).ok_or_else(|| InsightsError::CarNumber {
                    list: "stories",
                    index,
                    car: car.clone(),
                })?);
            }
            let kind = fbb.create_string(s.kind());
            let cars = fbb.create_vector(&cars);
            let headline = fbb.create_string(s.headline());
            let evidence = named_values(fbb, s.evidence());
            stories.push(fb::StoryOut::create(
                fbb,
                &fb::StoryOutArgs {
                    kind: Some(kind),
                    cars: Some(cars),
                    headline: Some(headline),
                    importance: s.importance(),
                    evidence: Some(evidence),
                },
            ));
        }
        let mut predictions = Vec::with_capacity(self.predictions.len());
        for (index, p) in self.predictions.iter().enumerate() {
            let number = |car: &String| {
                car_number(car).ok_or_else(|| InsightsError::CarNumber {
                    list: "predictions",
                    index,
                    car: car.clone(),
                })
            };
            let attacker = number(&p.cars().attacker)?;
            let defender = number(&p.cars().defender)?;
            let kind = fbb.create_string(p.kind());
            let contributions = named_values(fbb, p.contributions());
            predictions.push(fb::PredictionOut::create(
                fbb,
                &fb::PredictionOutArgs {
                    kind: Some(kind),
                    attacker,
                    defender,
                    probability: p.probability(),
                    // The wire carries a u16; a longer horizon is saturated
                    // (no race is 65 535 laps long).
                    horizon_laps: u16::try_from(p.horizon_laps()).unwrap_or(u16::MAX),
                    contributions: Some(contributions),
                },
            ));
        }
        let mut metrics = Vec::with_capacity(self.metrics.len());
        for (index, m) in self.metrics.iter().enumerate() {
            let car = car_number(m.car()).ok_or_else(|| InsightsError::CarNumber {
                list: "metrics",
                index,
                car: m.car().to_string(),
            })?;
            let name = fbb.create_string(m.name());
            let unit = fbb.create_string(m.unit());
            metrics.push(fb::CarMetricOut::create(
                fbb,
                &fb::CarMetricOutArgs {
                    car,
                    name: Some(name),
                    value: m.value(),
                    unit: Some(unit),
                },
            ));
        }
        let stories = fbb.create_vector(&stories);
        let predictions = fbb.create_vector(&predictions);
        let metrics = fbb.create_vector(&metrics);
        let root = fb::Insights::create(
            fbb,
            &fb::InsightsArgs {
                insights_version: INSIGHTS_VERSION,
                window_start_ms: self.window_start_ms,
                stories: Some(stories),
                predictions: Some(predictions),
                metrics: Some(metrics),
            },
        );
        fbb.finish(root, None);
        Ok(fbb.finished_data())
    }

    /// Verifies and decodes a plugin's reply: the flatbuffers verifier, then
    /// `insights_version == INSIGHTS_VERSION`, then the SDK's rules for every
    /// item. Never panics, whatever the bytes.
    pub fn from_flatbuffer(buf: &[u8]) -> Result<Self, InsightsError> {
        let view = read_insights(buf)?;
        Self::from_view(&view)
    }

    /// Like [`from_flatbuffer`](Self::from_flatbuffer), and also checks that the
    /// reply echoes the window it was given.
    pub fn from_flatbuffer_for_window(
        buf: &[u8],
        window_start_ms: i64,
    ) -> Result<Self, InsightsError> {
        let data = Self::from_flatbuffer(buf)?;
        if data.window_start_ms != window_start_ms {
            return Err(InsightsError::WrongWindow {
                expected: window_start_ms,
                found: data.window_start_ms,
            });
        }
        Ok(data)
    }

    /// Copies a verified view ([`read_insights`]) into owned, validated values.
    /// Absent vectors and strings read as empty (and an empty name then fails
    /// validation with a message that says which).
    pub fn from_view(v: &fb::Insights<'_>) -> Result<Self, InsightsError> {
        let item = |list: &'static str, index: usize| {
            move |source: InsightError| InsightsError::Item {
                list,
                index,
                source,
            }
        };
        let mut out = InsightsData::empty(v.window_start_ms());
        for (i, s) in v.stories().into_iter().flatten().enumerate() {
            let mut b = Story::builder(
                s.kind().unwrap_or_default(),
                s.headline().unwrap_or_default(),
            )
            .cars(s.cars().into_iter().flatten().map(|c| c.to_string()))
            .importance(s.importance());
            for nv in s.evidence().into_iter().flatten() {
                b = b.evidence(nv.name().unwrap_or_default(), nv.value());
            }
            out.stories.push(b.build().map_err(item("stories", i))?);
        }
        for (i, p) in v.predictions().into_iter().flatten().enumerate() {
            let mut b = Prediction::builder(
                p.kind().unwrap_or_default(),
                p.attacker().to_string(),
                p.defender().to_string(),
            )
            .probability(p.probability())
            .horizon_laps(u32::from(p.horizon_laps()));
            for nv in p.contributions().into_iter().flatten() {
                b = b.contribution(nv.name().unwrap_or_default(), nv.value());
            }
            out.predictions
                .push(b.build().map_err(item("predictions", i))?);
        }
        for (i, m) in v.metrics().into_iter().flatten().enumerate() {
            let metric = CarMetric::new(
                m.car().to_string(),
                m.name().unwrap_or_default(),
                m.value(),
                m.unit().unwrap_or_default(),
            )
            .map_err(item("metrics", i))?;
            out.metrics.push(metric);
        }
        Ok(out)
    }

    /// Stamps every item with `provenance` (the host's knowledge of who made
    /// it from what), stories first, then predictions, then metrics.
    pub fn to_insights(&self, provenance: &Provenance) -> Vec<Insight> {
        self.clone().into_insights(provenance)
    }

    /// Like [`to_insights`](Self::to_insights), consuming the reply.
    pub fn into_insights(self, provenance: &Provenance) -> Vec<Insight> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(
            self.stories
                .into_iter()
                .map(|s| Insight::new(provenance.clone(), s)),
        );
        out.extend(
            self.predictions
                .into_iter()
                .map(|p| Insight::new(provenance.clone(), p)),
        );
        out.extend(
            self.metrics
                .into_iter()
                .map(|m| Insight::new(provenance.clone(), m)),
        );
        out
    }

    /// Builds the provenance from `plugin_id` (`name@version`), `model_version`
    /// and this reply's window, then stamps every item with it.
    pub fn with_provenance(
        self,
        plugin_id: &str,
        model_version: &str,
    ) -> Result<Vec<Insight>, InsightError> {
        let p = Provenance::from_parts(self.window_start_ms, plugin_id, model_version)?;
        Ok(self.into_insights(&p))
    }
}

/// Runs the flatbuffers verifier and the version check, and returns the
/// zero-copy view of the reply (no item validation: see
/// [`InsightsData::from_view`]).
pub fn read_insights(buf: &[u8]) -> Result<fb::Insights<'_>, InsightsError> {
    // An `Insights` buffer has no file identifier; bytes 4..8 of one are
    // vtable or table data, which never spell "PWRF" (that would be a vtable
    // of 0x5750 bytes).
    if buf.len() >= 8 && fb::race_frame_buffer_has_identifier(buf) {
        return Err(InsightsError::EchoedFrame);
    }
    let view = flatbuffers::root::<fb::Insights>(buf)?;
    let found = view.insights_version();
    if found != INSIGHTS_VERSION {
        return Err(InsightsError::UnsupportedVersion {
            found,
            expected: INSIGHTS_VERSION,
        });
    }
    Ok(view)
}

/// Writes a `[NamedValue]` vector.
pub(crate) fn named_values<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    values: &[(String, f64)],
) -> WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<fb::NamedValue<'a>>>> {
    let offsets: Vec<_> = values
        .iter()
        .map(|(name, value)| {
            let name = fbb.create_string(name);
            fb::NamedValue::create(
                fbb,
                &fb::NamedValueArgs {
                    name: Some(name),
                    value: *value,
                },
            )
        })
        .collect();
    fbb.create_vector(&offsets)
}

#[cfg(test)]
mod tests;
