//! A job's configuration (TOML) and the plan compiled from it.
//!
//! ```toml
//! [schema]                      # see `Schema`
//! time = { name = "ts_ms", unit = "ms" }
//! key = { name = "car", type = "int" }
//! channels = [ { name = "speed", type = "float", unit = "km/h" }, ... ]
//!
//! [window]
//! size = "1s"                   # tumbling window size
//! bound = "2s"                  # watermark = max event time seen - bound
//! allowed_lateness = "0s"       # keeps windows open this much longer
//!
//! [state]
//! ttl = "30s"                   # a car silent this long (event time) is expired
//!
//! [checkpoint]
//! interval = "60s"              # event time between checkpoints
//!
//! [input]
//! on_error = "fail"             # or "skip": skip and count malformed rows
//!
//! [[aggregate]]
//! kind = "mean"
//! channel = "speed"
//! ```
//!
//! Durations are converted to event-time ticks once, in [`JobConfig::plan`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::aggregate::{AggregatePlan, AggregateSpec};
use crate::error::ConfigError;
use crate::schema::Schema;
use crate::source::OnError;
use crate::time::{ConfigDuration, EventTime};

/// `[window]`: tumbling event-time windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub size: ConfigDuration,
    /// Out-of-orderness bound of the watermark.
    pub bound: ConfigDuration,
    #[serde(default)]
    pub allowed_lateness: Option<ConfigDuration>,
}

/// `[state]`: keyed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Event time after which a silent car's state is freed. Default: none (never).
    #[serde(default)]
    pub ttl: Option<ConfigDuration>,
}

/// `[checkpoint]`: when to checkpoint, in event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Event time between checkpoints; default 60 s. The directory is given at run time.
    #[serde(default)]
    pub interval: Option<ConfigDuration>,
}

/// `[input]`: how sources treat bad records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    #[serde(default)]
    pub on_error: OnError,
}

/// A whole job config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    pub schema: Schema,
    pub window: WindowConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    #[serde(default)]
    pub input: InputConfig,
    #[serde(rename = "aggregate", default)]
    pub aggregates: Vec<AggregateSpec>,
}

/// The job compiled for the engine: durations in ticks, aggregates resolved.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub schema: Schema,
    pub size: EventTime,
    pub bound: EventTime,
    pub allowed_lateness: EventTime,
    pub ttl: Option<EventTime>,
    pub checkpoint_interval: EventTime,
    pub on_error: OnError,
    pub aggregates: AggregatePlan,
    /// Identifies the config a checkpoint belongs to.
    pub fingerprint: u64,
}

impl JobConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "<config>".into(),
            source: Box::new(e),
        })
    }

    /// Validates the config and converts it into a plan.
    pub fn plan(&self) -> Result<JobPlan, ConfigError> {
        self.schema.validate()?;
        let unit = self.schema.time.unit;
        let size = unit.ticks(self.window.size.0, "window.size")?;
        if size <= 0 {
            return Err(ConfigError::Invalid("window.size must be positive".into()));
        }
        let bound = unit.ticks(self.window.bound.0, "window.bound")?;
        let allowed_lateness = match self.window.allowed_lateness {
            Some(d) => unit.ticks(d.0, "window.allowed_lateness")?,
            None => 0,
        };
        let ttl = match self.state.ttl {
            Some(d) => {
                let t = unit.ticks(d.0, "state.ttl")?;
                if t <= 0 {
                    return Err(ConfigError::Invalid("state.ttl must be positive".into()));
                }
                if t < size.saturating_add(allowed_lateness) {
                    return Err(ConfigError::Invalid(format!(
                        "state.ttl must be at least window.size + window.allowed_lateness \
                         ({} {}) so a car's windows fire before its state expires",
                        size.saturating_add(allowed_lateness),
                        unit.suffix()
                    )));
                }
                Some(t)
            }
            None => None,
        };
        let checkpoint_interval = match self.checkpoint.interval {
            Some(d) => unit.ticks(d.0, "checkpoint.interval")?,
            None => 60 * unit.ticks_per_second(),
        };
        if checkpoint_interval <= 0 {
            return Err(ConfigError::Invalid(
                "checkpoint.interval must be positive".into(),
            ));
        }
        for c in &self.schema.channels {
            if let Some(p) = &c.sampling
                && let Some(mi) = p.min_interval
            {
                unit.ticks(mi.0, &format!("channel {:?} sampling.min_interval", c.name))?;
            }
        }
        let aggregates = AggregatePlan::compile(&self.aggregates, &self.schema)?;
        Ok(JobPlan {
            schema: self.schema.clone(),
            size,
            bound,
            allowed_lateness,
            ttl,
            checkpoint_interval,
            on_error: self.input.on_error,
            aggregates,
            fingerprint: self.fingerprint(),
        })
    }

    /// A stable hash of everything that shapes the engine's state and outputs.
    pub fn fingerprint(&self) -> u64 {
        // FNV-1a over the canonical JSON form: stable across runs and platforms.
        let mut shape = self.clone();
        shape.checkpoint = CheckpointConfig::default();
        shape.input = InputConfig::default();
        let text = serde_json::to_string(&shape).unwrap_or_default();
        fnv1a(text.as_bytes())
    }
}

/// 64-bit FNV-1a: a tiny, stable hash for fingerprints and checksums.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl JobPlan {
    /// The event time a window starting at `ws` fires at: `wm >= fire_at(ws)`.
    #[inline]
    pub fn fire_at(&self, ws: EventTime) -> EventTime {
        ws.saturating_add(self.size - 1)
            .saturating_add(self.allowed_lateness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENCH: &str = include_str!("../../../configs/window-bench.toml");

    #[test]
    fn window_bench_config_plans() {
        let cfg = JobConfig::parse(BENCH).unwrap();
        let plan = cfg.plan().unwrap();
        assert_eq!(plan.size, 1000);
        assert_eq!(plan.bound, 2000);
        assert_eq!(
            plan.aggregates.names(),
            [
                "count",
                "mean_speed",
                "max_speed",
                "mean_throttle",
                "throttle_rpm_dt",
                "last_gear"
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        let bad = BENCH.replace("bound = \"2s\"", "bound = \"2 parsecs\"");
        let err = JobConfig::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("parsecs"), "{err}");
        let typo = BENCH.replace("[window]", "[window]\nsise = \"1s\"");
        assert!(JobConfig::parse(&typo).is_err());
    }

    #[test]
    fn fingerprint_ignores_checkpoint_settings_but_not_windows() {
        let a = JobConfig::parse(BENCH).unwrap();
        let mut b = a.clone();
        b.checkpoint.interval = Some(ConfigDuration::from_millis(5000));
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.window.size = ConfigDuration::from_millis(500);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
