//! The telemetry schema: which column is event time, which is the key (the car),
//! and which channels a source carries, with their type, unit, valid range and
//! downsampling policy.
//!
//! Channels come from config, never from code: an F1 feed declares speed, rpm,
//! gear, throttle, brake, drs, x, y, z; a NASCAR feed declares others. Every
//! channel value is held as `f64` inside the engine (integers up to 2^53 are exact);
//! the declared type decides what a source accepts and how outputs are written.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::time::{ConfigDuration, TimeUnit};

/// How a channel's values are typed in input files and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// Any finite number.
    #[default]
    Float,
    /// A whole number (`3`, `-1`; `3.5` is refused).
    Int,
    /// `true`/`false` (or `1`/`0`), held as 1.0/0.0.
    Bool,
}

/// Downsampling applied per car and channel before windowing ("adaptive sampling"):
/// a 1 kHz channel that matters at 10 Hz is thinned early. A value is kept when both
/// conditions hold (an absent condition holds); a thinned value becomes missing for
/// that row, the row itself stays (other channels and `count` still see it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SamplingPolicy {
    /// Keep a value only if at least this much event time passed since the last kept one.
    pub min_interval: Option<ConfigDuration>,
    /// Keep a value only if it differs from the last kept one by more than this.
    pub deadband: Option<f64>,
}

/// One channel of the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    pub name: String,
    #[serde(rename = "type", default)]
    pub ty: ChannelType,
    #[serde(default)]
    pub unit: Option<String>,
    /// Smallest valid value; a row outside the range is malformed.
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest valid value; a row outside the range is malformed.
    #[serde(default)]
    pub max: Option<f64>,
    /// A missing value (absent field, empty CSV cell, JSON `null`) is allowed.
    /// Required channels reject rows that lack them.
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub sampling: Option<SamplingPolicy>,
}

/// The event-time column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    pub name: String,
    #[serde(default)]
    pub unit: TimeUnit,
}

/// How key values compare when outputs are sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// Keys sort as text.
    #[default]
    String,
    /// Keys are whole numbers and sort numerically (car numbers).
    Int,
}

/// The key column (the car).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub name: String,
    #[serde(rename = "type", default)]
    pub ty: KeyType,
}

/// A source's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub time: TimeSpec,
    pub key: KeySpec,
    pub channels: Vec<ChannelSpec>,
}

impl Schema {
    /// Checks names are unique and ranges are sane.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for name in std::iter::once(&self.time.name)
            .chain(std::iter::once(&self.key.name))
            .chain(self.channels.iter().map(|c| &c.name))
        {
            if name.is_empty() {
                return Err(ConfigError::Invalid(
                    "a schema column has an empty name".into(),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "schema column {name:?} is declared twice"
                )));
            }
        }
        for c in &self.channels {
            if let (Some(lo), Some(hi)) = (c.min, c.max)
                && lo > hi
            {
                return Err(ConfigError::Invalid(format!(
                    "channel {:?}: min {lo} is above max {hi}",
                    c.name
                )));
            }
            if let Some(SamplingPolicy {
                deadband: Some(d), ..
            }) = c.sampling
                && (d.is_nan() || d < 0.0)
            {
                return Err(ConfigError::Invalid(format!(
                    "channel {:?}: deadband must be >= 0, got {d}",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// Index of a channel by name.
    pub fn channel_index(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }

    /// Like [`Schema::channel_index`], with an error that lists the channels there are.
    pub fn require_channel(&self, name: &str, used_by: &str) -> Result<usize, ConfigError> {
        self.channel_index(name).ok_or_else(|| {
            let known: Vec<&str> = self.channels.iter().map(|c| c.name.as_str()).collect();
            ConfigError::Invalid(format!(
                "{used_by} refers to channel {name:?}, which the schema does not declare \
                 (channels: {})",
                known.join(", ")
            ))
        })
    }

    /// Checks one parsed value against the channel's type and range.
    /// Returns the reason when it is not acceptable.
    #[inline]
    pub fn check_value(&self, channel: usize, v: f64) -> Result<(), String> {
        let c = &self.channels[channel];
        if !v.is_finite() {
            return Err(format!("{}: value {v} is not a finite number", c.name));
        }
        if c.ty == ChannelType::Int && v.fract() != 0.0 {
            return Err(format!("{}: {v} is not a whole number", c.name));
        }
        if let Some(lo) = c.min
            && v < lo
        {
            return Err(format!("{}: {v} is below the minimum {lo}", c.name));
        }
        if let Some(hi) = c.max
            && v > hi
        {
            return Err(format!("{}: {v} is above the maximum {hi}", c.name));
        }
        Ok(())
    }

    /// The F1 car-telemetry schema of the window benchmark (`configs/window-bench.toml`):
    /// `ts_ms, car, speed, rpm, throttle, brake, gear, drs`.
    pub fn f1_bench() -> Schema {
        let ch = |name: &str, ty: ChannelType, unit: &str, min: f64, max: f64| ChannelSpec {
            name: name.into(),
            ty,
            unit: Some(unit.into()),
            min: Some(min),
            max: Some(max),
            optional: false,
            sampling: None,
        };
        Schema {
            time: TimeSpec {
                name: "ts_ms".into(),
                unit: TimeUnit::Ms,
            },
            key: KeySpec {
                name: "car".into(),
                ty: KeyType::Int,
            },
            channels: vec![
                ch("speed", ChannelType::Float, "km/h", 0.0, 400.0),
                ch("rpm", ChannelType::Float, "1/min", 0.0, 20000.0),
                ch("throttle", ChannelType::Float, "%", 0.0, 104.0),
                ch("brake", ChannelType::Float, "%", 0.0, 100.0),
                ch("gear", ChannelType::Int, "", 0.0, 8.0),
                ch("drs", ChannelType::Int, "code", 0.0, 14.0),
            ],
        }
    }
}
