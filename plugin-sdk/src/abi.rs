//! The ABI version a plugin is built against, and the kinds of plugin.
//!
//! The host keeps one binding module per supported ABI version (as Zed does
//! with `since_vX_Y_Z`), so an old plugin keeps running after the host moves
//! on. A plugin declares the version it was built with; the host decides with
//! [`AbiVersion::can_run`] whether it has a binding for it. The rule is the
//! usual one for additive evolution:
//!
//! * a **minor** bump only *adds* (a new host function, a new optional frame
//!   field); a host at minor `n` can run every plugin built at minor `≤ n`;
//! * a **major** bump may break anything; a host runs only plugins of its own
//!   major (or keeps an older binding module, which is then a separate entry
//!   in the host's list, not this rule).
//!
//! The rule applies unchanged while the major is `0`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The ABI version this SDK builds plugins against.
///
/// `1.0`: the first ABI plugins are built against (docs/plugin-abi.md): the
/// `RaceFrame` FlatBuffer in ([`FRAME_VERSION`](crate::frame::FRAME_VERSION)),
/// the `Insights` FlatBuffer out ([`INSIGHTS_VERSION`](crate::INSIGHTS_VERSION)),
/// the guest exports `pitwall_*` and the host imports of module `pitwall_v1`.
/// (`0.1` was the vocabulary alone, before any bytes crossed a boundary; no
/// plugin was ever built against it.)
pub const ABI_VERSION: AbiVersion = AbiVersion::new(1, 0);

/// A `MAJOR.MINOR` ABI version. Ordered by `(major, minor)`.
///
/// Serialized as the string `"MAJOR.MINOR"` (e.g. `"1.0"`), as the
/// `pitwall:info` section writes it (docs/plugin-abi.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct AbiVersion {
    pub major: u16,
    pub minor: u16,
}

/// Why a host cannot run a plugin's ABI, or why an ABI version string is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    #[error(
        "plugin ABI {plugin} has major version {}, this host speaks major {} (ABI {host}); \
         rebuild the plugin against a pitwall-plugin-sdk with ABI {}.x",
        plugin.major, host.major, host.major
    )]
    MajorMismatch {
        host: AbiVersion,
        plugin: AbiVersion,
    },
    #[error(
        "plugin ABI {plugin} is newer than this host's ABI {host}; \
         upgrade the host or rebuild the plugin against ABI {}.{} or older",
        host.major, host.minor
    )]
    PluginNewer {
        host: AbiVersion,
        plugin: AbiVersion,
    },
    #[error("invalid ABI version {input:?}: expected MAJOR.MINOR, e.g. \"1.0\"")]
    Parse { input: String },
}

impl AbiVersion {
    pub const fn new(major: u16, minor: u16) -> Self {
        AbiVersion { major, minor }
    }

    /// Whether a host speaking `self` can run a plugin built for `plugin`:
    /// same major, and the host's minor is at least the plugin's.
    pub fn can_run(self, plugin: AbiVersion) -> bool {
        self.check_plugin(plugin).is_ok()
    }

    /// Like [`can_run`](Self::can_run), with an error that says what to do.
    pub fn check_plugin(self, plugin: AbiVersion) -> Result<(), AbiError> {
        if self.major != plugin.major {
            Err(AbiError::MajorMismatch { host: self, plugin })
        } else if self.minor < plugin.minor {
            Err(AbiError::PluginNewer { host: self, plugin })
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl From<AbiVersion> for String {
    fn from(v: AbiVersion) -> String {
        v.to_string()
    }
}

impl TryFrom<String> for AbiVersion {
    type Error = AbiError;
    fn try_from(s: String) -> Result<Self, AbiError> {
        s.parse()
    }
}

impl FromStr for AbiVersion {
    type Err = AbiError;
    fn from_str(s: &str) -> Result<Self, AbiError> {
        let err = || AbiError::Parse {
            input: s.to_string(),
        };
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        Ok(AbiVersion::new(
            parse_decimal(major).ok_or_else(err)?,
            parse_decimal(minor).ok_or_else(err)?,
        ))
    }
}

/// A plain decimal number: digits only, no sign, no leading zeros (except `0` itself).
pub(crate) fn parse_decimal<T: FromStr>(s: &str) -> Option<T> {
    let plain =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if plain { s.parse().ok() } else { None }
}

/// What a plugin does, which fixes the insight it mainly returns and how the
/// host schedules it.
///
/// The names are part of the stable vocabulary: they appear in plugin
/// metadata, configs and feeds as `story_generator`, `car_model`, `pair_model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Reads the whole race frame and tells stories (battles, undercuts, …):
    /// returns [`Story`](crate::Story) insights.
    StoryGenerator,
    /// Models one car at a time (e.g. fuel use, the Burn Bar): returns
    /// [`CarMetric`](crate::CarMetric) insights.
    CarModel,
    /// Models a pair of cars (e.g. the chance of an overtake): returns
    /// [`Prediction`](crate::Prediction) insights.
    PairModel,
}

impl PluginKind {
    pub const ALL: [PluginKind; 3] = [
        PluginKind::StoryGenerator,
        PluginKind::CarModel,
        PluginKind::PairModel,
    ];

    /// The name used in metadata and configs.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::StoryGenerator => "story_generator",
            PluginKind::CarModel => "car_model",
            PluginKind::PairModel => "pair_model",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown plugin kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown plugin kind {input:?}: expected \"story_generator\", \"car_model\" or \"pair_model\""
)]
pub struct ParsePluginKindError {
    pub input: String,
}

impl FromStr for PluginKind {
    type Err = ParsePluginKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParsePluginKindError {
                input: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_runs_same_major_older_or_equal_minor() {
        let host = AbiVersion::new(1, 3);
        assert!(host.can_run(AbiVersion::new(1, 0)));
        assert!(host.can_run(AbiVersion::new(1, 3)));
        assert!(!host.can_run(AbiVersion::new(1, 4)));
        assert!(!host.can_run(AbiVersion::new(0, 3)));
        assert!(!host.can_run(AbiVersion::new(2, 0)));
        assert!(ABI_VERSION.can_run(ABI_VERSION));
    }

    #[test]
    fn incompatibility_errors_say_what_to_do() {
        let host = AbiVersion::new(1, 3);
        let newer = host.check_plugin(AbiVersion::new(1, 5)).unwrap_err();
        assert!(matches!(newer, AbiError::PluginNewer { .. }));
        let msg = newer.to_string();
        assert!(msg.contains("1.5") && msg.contains("1.3"), "{msg}");
        let major = host
            .check_plugin(AbiVersion::new(2, 0))
            .unwrap_err()
            .to_string();
        assert!(
            major.contains("major version 2") && major.contains("ABI 1.x"),
            "{major}"
        );
    }

    #[test]
    fn abi_version_parses_and_prints() {
        let v: AbiVersion = "2.17".parse().unwrap();
        assert_eq!(v, AbiVersion::new(2, 17));
        assert_eq!(v.to_string(), "2.17");
        for bad in [
            "", "1", "1.", ".1", "1.2.3", "01.2", "-1.2", "1.x", "70000.0",
        ] {
            assert!(bad.parse::<AbiVersion>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"2.17\"");
        assert_eq!(serde_json::from_str::<AbiVersion>("\"2.17\"").unwrap(), v);
        assert!(serde_json::from_str::<AbiVersion>("\"2.x\"").is_err());
        assert_eq!(ABI_VERSION.to_string(), "1.0");
    }

    #[test]
    fn plugin_kind_names_are_stable() {
        for k in PluginKind::ALL {
            assert_eq!(k.as_str().parse::<PluginKind>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let err = "fuel".parse::<PluginKind>().unwrap_err().to_string();
        assert!(
            err.contains("\"fuel\"") && err.contains("car_model"),
            "{err}"
        );
    }
}
