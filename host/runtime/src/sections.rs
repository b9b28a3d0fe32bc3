//! Reads a plugin's `pitwall:abi` and `pitwall:info` custom sections.
//!
//! This runs on the raw bytes with `wasmparser`, **before** anything is
//! compiled: a plugin built for an ABI this host cannot run is refused in
//! microseconds with a message that says what to do, instead of failing to
//! link (or worse, linking and misbehaving) after a 50 ms compile.

use pitwall_plugin_sdk::{AbiVersion, PluginInfo};
use wasmparser::{Parser, Payload};

use crate::error::LoadError;

/// Name of the section holding the ABI version (4 bytes: major, minor; u16 LE).
pub const ABI_SECTION: &str = "pitwall:abi";
/// Name of the section holding the plugin's `PluginInfo` as JSON.
pub const INFO_SECTION: &str = "pitwall:info";

/// What a plugin declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// From `pitwall:abi`.
    pub abi: AbiVersion,
    /// From `pitwall:info`, validated (name, version rules) and agreeing with `abi`.
    pub info: PluginInfo,
}

/// Reads and checks both sections. Does not look at the ABI's support; see
/// [`abi::binding_for`](crate::abi::binding_for).
pub fn read_declared(wasm: &[u8]) -> Result<Declared, LoadError> {
    let mut abi = Vec::new();
    let mut info = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| LoadError::NotWasm(e.to_string()))? {
            Payload::Version { encoding, .. } if encoding != wasmparser::Encoding::Module => {
                return Err(LoadError::NotWasm(
                    "this is a component; Pitwall plugins are core modules \
                     (build for wasm32-unknown-unknown)"
                        .into(),
                ));
            }
            Payload::CustomSection(reader) => match reader.name() {
                ABI_SECTION => abi.push(reader.data()),
                INFO_SECTION => info.push(reader.data()),
                _ => {}
            },
            _ => {}
        }
    }
    let abi_bytes = one(ABI_SECTION, abi)?;
    let info_bytes = one(INFO_SECTION, info)?;
    let abi = match abi_bytes {
        [a, b, c, d] => AbiVersion::new(u16::from_le_bytes([*a, *b]), u16::from_le_bytes([*c, *d])),
        other => return Err(LoadError::MalformedAbi { len: other.len() }),
    };
    let text = std::str::from_utf8(info_bytes)
        .map_err(|e| LoadError::MalformedInfo(format!("not UTF-8: {e}")))?;
    let info: PluginInfo =
        serde_json::from_str(text).map_err(|e| LoadError::MalformedInfo(e.to_string()))?;
    if info.abi() != abi {
        return Err(LoadError::AbiDisagree {
            info: info.abi(),
            section: abi,
        });
    }
    Ok(Declared { abi, info })
}

fn one<'a>(section: &'static str, found: Vec<&'a [u8]>) -> Result<&'a [u8], LoadError> {
    match found.as_slice() {
        [] => Err(LoadError::MissingSection { section }),
        [one] => Ok(one),
        many => Err(LoadError::DuplicateSection {
            section,
            count: many.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_junk_are_not_modules() {
        assert!(matches!(
            read_declared(b"not wasm"),
            Err(LoadError::NotWasm(_))
        ));
        // A component header: version 0x0d, layer 1.
        let component = b"\0asm\x0d\x00\x01\x00";
        let err = read_declared(component).unwrap_err().to_string();
        assert!(err.contains("component"), "{err}");
    }

    #[test]
    fn duplicate_sections_are_refused() {
        let wasm = wat::parse_str(
            r#"(module (@custom "pitwall:abi" "\01\00\00\00") (@custom "pitwall:abi" "\01\00\00\00"))"#,
        )
        .unwrap();
        let err = read_declared(&wasm).unwrap_err();
        assert!(
            matches!(err, LoadError::DuplicateSection { count: 2, .. }),
            "{err}"
        );
    }
}
