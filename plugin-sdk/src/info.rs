//! Plugin metadata: who a plugin is, what it does, which ABI it speaks.
//!
//! `name@version` is how every insight names the code that made it (see
//! [`Provenance`](crate::Provenance)), how operators address a plugin when they
//! swap, shadow or roll it back, and how logs are attributed. So the rules are
//! strict and simple enough to put in a URL, a file name and a metric label
//! without escaping:
//!
//! * **name**: 1 to 64 characters from `[a-z0-9-]`, starting with a letter,
//!   not ending with `-`, no `--` (e.g. `fuel-model`, `overtake2`);
//! * **version**: `MAJOR.MINOR.PATCH`, plain decimal numbers without leading
//!   zeros (e.g. `1.4.0`); no pre-release or build suffix, so two builds that
//!   differ must differ in their numbers.
//!
//! Deserializing a [`PluginInfo`] checks the same rules, so an invalid value
//! cannot be built from JSON either.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::abi::{ABI_VERSION, AbiVersion, PluginKind, parse_decimal};

/// The longest plugin name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A problem with plugin metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error(
        "invalid plugin name {name:?}: {reason}; use 1 to {MAX_NAME_LEN} characters from \
         [a-z0-9-], starting with a letter (e.g. \"fuel-model\")"
    )]
    Name { name: String, reason: &'static str },
    #[error(
        "invalid plugin version {version:?}: expected MAJOR.MINOR.PATCH with plain decimal \
         numbers (e.g. \"1.4.0\")"
    )]
    Version { version: String },
    #[error(
        "invalid plugin id {id:?}: expected NAME@MAJOR.MINOR.PATCH (e.g. \"fuel-model@1.4.0\")"
    )]
    Id { id: String },
}

/// Checks a plugin name against the rules in the module docs.
pub fn validate_name(name: &str) -> Result<(), InfoError> {
    let fail = |reason| {
        Err(InfoError::Name {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("it is too long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return fail("it contains a character other than a-z, 0-9 and '-'");
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return fail("it does not start with a letter");
    }
    if name.ends_with('-') || name.contains("--") {
        return fail("it ends with '-' or contains \"--\"");
    }
    Ok(())
}

/// Parses a `MAJOR.MINOR.PATCH` version.
pub fn parse_version(version: &str) -> Result<(u64, u64, u64), InfoError> {
    let err = || InfoError::Version {
        version: version.to_string(),
    };
    let mut parts = version.split('.');
    let mut next = || parts.next().and_then(parse_decimal::<u64>).ok_or_else(err);
    let v = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return Err(err());
    }
    Ok(v)
}

/// Splits and checks a `name@version` plugin id.
pub fn parse_plugin_id(id: &str) -> Result<(&str, &str), InfoError> {
    let (name, version) = id
        .split_once('@')
        .ok_or_else(|| InfoError::Id { id: id.to_string() })?;
    validate_name(name)?;
    parse_version(version)?;
    Ok((name, version))
}

/// What a plugin declares about itself.
///
/// Always valid: built with [`PluginInfo::new`] or deserialized, both of which
/// check the name and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PluginInfoWire")]
pub struct PluginInfo {
    name: String,
    version: String,
    kind: PluginKind,
    abi: AbiVersion,
    /// Absent from the JSON when `None` (docs/plugin-abi.md §1).
    #[serde(skip_serializing_if = "Option::is_none")]
    state_version: Option<u32>,
}

impl PluginInfo {
    /// Metadata for a plugin built against this SDK's [`ABI_VERSION`], without
    /// state snapshots.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        kind: PluginKind,
    ) -> Result<Self, InfoError> {
        let (name, version) = (name.into(), version.into());
        validate_name(&name)?;
        parse_version(&version)?;
        Ok(PluginInfo {
            name,
            version,
            kind,
            abi: ABI_VERSION,
            state_version: None,
        })
    }

    /// Declares that the plugin exports snapshot/restore of its state, in
    /// format `version`. On a hot swap the host hands the old plugin's
    /// snapshot to the new one at a window boundary, together with this
    /// number, so the new code can tell whether it understands the bytes.
    pub fn with_state_version(mut self, version: u32) -> Self {
        self.state_version = Some(version);
        self
    }

    /// Overrides the declared ABI (a plugin built against an older SDK, or a test).
    pub fn with_abi(mut self, abi: AbiVersion) -> Self {
        self.abi = abi;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The version as numbers, for ordering releases.
    pub fn version_triple(&self) -> (u64, u64, u64) {
        parse_version(&self.version).expect("validated on construction")
    }

    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    pub fn abi(&self) -> AbiVersion {
        self.abi
    }

    /// The state snapshot format, or `None` when the plugin keeps no state across swaps.
    pub fn state_version(&self) -> Option<u32> {
        self.state_version
    }

    /// `name@version`, as written in every insight's provenance.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

impl fmt::Display for PluginInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} ({}, ABI {})",
            self.name, self.version, self.kind, self.abi
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginInfoWire {
    name: String,
    version: String,
    kind: PluginKind,
    abi: AbiVersion,
    #[serde(default)]
    state_version: Option<u32>,
}

impl TryFrom<PluginInfoWire> for PluginInfo {
    type Error = InfoError;
    fn try_from(w: PluginInfoWire) -> Result<Self, InfoError> {
        let info = PluginInfo::new(w.name, w.version, w.kind)?.with_abi(w.abi);
        Ok(PluginInfo {
            state_version: w.state_version,
            ..info
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for name in [
            "fuel",
            "fuel-model",
            "overtake2",
            "a",
            "p-overtake-v2",
            &"x".repeat(64),
        ] {
            validate_name(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        }
    }

    #[test]
    fn bad_names_fail_with_a_reason() {
        for (name, why) in [
            ("", "empty"),
            ("Fuel", "character"),
            ("fuel_model", "character"),
            ("fuel model", "character"),
            ("fuël", "character"),
            ("2fast", "start with a letter"),
            ("-fuel", "start with a letter"),
            ("fuel-", "ends with"),
            ("fuel--model", "contains"),
            (&"x".repeat(65), "too long"),
        ] {
            let err = validate_name(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
            assert!(err.contains("[a-z0-9-]"), "{err}");
        }
    }

    #[test]
    fn versions_are_three_plain_numbers() {
        assert_eq!(parse_version("1.4.0").unwrap(), (1, 4, 0));
        assert_eq!(parse_version("0.0.0").unwrap(), (0, 0, 0));
        assert_eq!(parse_version("10.20.300").unwrap(), (10, 20, 300));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "01.2.3",
            "1.2.3-rc1",
            "v1.2.3",
            "1..3",
            " 1.2.3",
        ] {
            let err = parse_version(bad).unwrap_err().to_string();
            assert!(err.contains("MAJOR.MINOR.PATCH"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn info_builds_an_id_and_defaults_to_this_abi() {
        let info = PluginInfo::new("fuel-model", "1.4.0", PluginKind::CarModel)
            .unwrap()
            .with_state_version(3);
        assert_eq!(info.id(), "fuel-model@1.4.0");
        assert_eq!(info.abi(), ABI_VERSION);
        assert_eq!(info.state_version(), Some(3));
        assert_eq!(info.version_triple(), (1, 4, 0));
        assert_eq!(
            parse_plugin_id(&info.id()).unwrap(),
            ("fuel-model", "1.4.0")
        );
        assert!(PluginInfo::new("Fuel", "1.0.0", PluginKind::CarModel).is_err());
        assert!(PluginInfo::new("fuel", "1.0", PluginKind::CarModel).is_err());
    }

    #[test]
    fn plugin_ids_are_checked() {
        for bad in [
            "fuel",
            "fuel@",
            "@1.0.0",
            "Fuel@1.0.0",
            "fuel@1.0",
            "fuel@1.0.0@2",
        ] {
            assert!(parse_plugin_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn info_roundtrips_through_json_and_rejects_invalid() {
        let info = PluginInfo::new("overtake", "0.2.1", PluginKind::PairModel).unwrap();
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(
            json,
            r#"{"name":"overtake","version":"0.2.1","kind":"pair_model","abi":"1.0"}"#
        );
        let stateful = info.clone().with_state_version(3);
        let json3 = serde_json::to_string(&stateful).unwrap();
        assert!(
            json3.ends_with(r#""abi":"1.0","state_version":3}"#),
            "{json3}"
        );
        assert_eq!(
            serde_json::from_str::<PluginInfo>(&json3).unwrap(),
            stateful
        );
        assert_eq!(serde_json::from_str::<PluginInfo>(&json).unwrap(), info);
        let bad = json.replace("overtake", "Overtake!");
        let err = serde_json::from_str::<PluginInfo>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid plugin name"), "{err}");
        let unknown = json3.replace("\"state_version\"", "\"state\"");
        assert!(serde_json::from_str::<PluginInfo>(&unknown).is_err());
    }
}
