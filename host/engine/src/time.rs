//! Event time: integer ticks in the unit the schema declares (ms, µs or ns).
//!
//! Pitwall never reads the wall clock in an operator. Every timestamp is an
//! exact integer so that windows, watermarks and late-data decisions are the
//! same on every replay. Durations in configs are written with a unit
//! (`"1s"`, `"250ms"`) and converted to ticks once, when the job is planned.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// An event-time instant, in ticks of the schema's [`TimeUnit`].
pub type EventTime = i64;

/// The earliest event time the engine accepts (−2^62 ticks: ±146 years in ns).
/// Keeping clear of `i64`'s ends means window arithmetic never saturates.
pub const MIN_EVENT_TIME: EventTime = -(1 << 62);
/// The latest event time the engine accepts (2^62 ticks).
pub const MAX_EVENT_TIME: EventTime = 1 << 62;

/// The resolution of event time, declared by the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    #[default]
    Ms,
    Us,
    Ns,
}

impl TimeUnit {
    /// Ticks in one second.
    pub fn ticks_per_second(self) -> i64 {
        match self {
            TimeUnit::Ms => 1_000,
            TimeUnit::Us => 1_000_000,
            TimeUnit::Ns => 1_000_000_000,
        }
    }

    /// Suffix used in output column names (`window_start_ms`).
    pub fn suffix(self) -> &'static str {
        match self {
            TimeUnit::Ms => "ms",
            TimeUnit::Us => "us",
            TimeUnit::Ns => "ns",
        }
    }

    /// Converts a duration to ticks; refuses durations that are not a whole number of ticks.
    pub fn ticks(self, d: std::time::Duration, what: &str) -> Result<i64, ConfigError> {
        let nanos = d.as_nanos();
        let per_tick: u128 = match self {
            TimeUnit::Ms => 1_000_000,
            TimeUnit::Us => 1_000,
            TimeUnit::Ns => 1,
        };
        if !nanos.is_multiple_of(per_tick) {
            return Err(ConfigError::Invalid(format!(
                "{what} = {:?} is not a whole number of {} (the schema's time unit)",
                d,
                self.suffix()
            )));
        }
        i64::try_from(nanos / per_tick)
            .map_err(|_| ConfigError::Invalid(format!("{what} = {d:?} is too large")))
    }
}

/// A duration written in a config as text with a unit: `"1s"`, `"250ms"`, `"2m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfigDuration(pub std::time::Duration);

impl TryFrom<String> for ConfigDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(ConfigDuration)
            .map_err(|e| {
                format!("invalid duration {s:?} ({e}); write e.g. \"1s\", \"250ms\", \"5m\"")
            })
    }
}

impl From<ConfigDuration> for String {
    fn from(d: ConfigDuration) -> String {
        humantime::format_duration(d.0).to_string()
    }
}

impl ConfigDuration {
    pub fn from_millis(ms: u64) -> Self {
        ConfigDuration(std::time::Duration::from_millis(ms))
    }
}

/// The start of the tumbling window of size `size` that holds `ts`:
/// `ts - ts mod size`, with a floor modulo so negative times work too.
/// Saturates at `EventTime::MIN` for the few timestamps within one window of it,
/// so no input can overflow the engine's arithmetic.
#[inline(always)]
pub fn window_start(ts: EventTime, size: i64) -> EventTime {
    ts.saturating_sub(ts.rem_euclid(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start_floors_negative_times() {
        assert_eq!(window_start(1999, 1000), 1000);
        assert_eq!(window_start(2000, 1000), 2000);
        assert_eq!(window_start(-1, 1000), -1000);
        assert_eq!(window_start(0, 1000), 0);
    }

    #[test]
    fn durations_convert_exactly_or_refuse() {
        let d = ConfigDuration::try_from("1s".to_string()).unwrap();
        assert_eq!(TimeUnit::Ms.ticks(d.0, "size").unwrap(), 1000);
        assert_eq!(TimeUnit::Us.ticks(d.0, "size").unwrap(), 1_000_000);
        let half = ConfigDuration::try_from("1500us".to_string()).unwrap();
        assert!(TimeUnit::Ms.ticks(half.0, "size").is_err());
        assert!(ConfigDuration::try_from("soon".to_string()).is_err());
    }
}
