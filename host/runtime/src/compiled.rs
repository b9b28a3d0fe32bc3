//! A validated, compiled plugin version, ready to instantiate.
//!
//! Compiling (15–50 ms) and linking happen once per version, off the frame
//! loop; what is left per instance is `InstancePre::instantiate`, a few µs
//! with the pooling allocator.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pitwall_plugin_sdk::{AbiVersion, PluginInfo, PluginKind};
use serde::Serialize;
use wasmtime::{InstancePre, Module};

use crate::abi::Binding;
use crate::sections::Declared;
use crate::store::HostState;

/// SHA-256 of a plugin's `.wasm` bytes: the identity of a build.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The first 12 hex digits, for log lines.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short())
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One compiled plugin version. Shared (`Arc`) between the loader, the frame
/// loop, the version history and the compile cache.
pub struct CompiledPlugin {
    info: PluginInfo,
    id: Arc<str>,
    binding: &'static Binding,
    hash: ContentHash,
    hash_hex: Arc<str>,
    wasm_len: usize,
    // Kept so the module outlives every `InstancePre` derived from it, and
    // for future serialization into an on-disk cache.
    #[allow(dead_code)]
    module: Module,
    pre: InstancePre<HostState>,
    has_init: bool,
    can_snapshot: bool,
    can_restore: bool,
    compile_time: Duration,
}

impl fmt::Debug for CompiledPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPlugin")
            .field("id", &self.id)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl CompiledPlugin {
    pub(crate) fn new(
        declared: Declared,
        binding: &'static Binding,
        hash: ContentHash,
        wasm_len: usize,
        module: Module,
        pre: InstancePre<HostState>,
        compile_time: Duration,
    ) -> Self {
        let has = |name| Binding::exports_fn(&module, name);
        CompiledPlugin {
            id: declared.info.id().into(),
            info: declared.info,
            binding,
            hash,
            hash_hex: hash.to_string().into(),
            wasm_len,
            has_init: has("pitwall_init"),
            can_snapshot: has("pitwall_snapshot"),
            can_restore: has("pitwall_restore"),
            module,
            pre,
            compile_time,
        }
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn name(&self) -> &str {
        self.info.name()
    }

    /// `name@version`.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub fn content_hash(&self) -> ContentHash {
        self.hash
    }

    pub(crate) fn hash_hex(&self) -> &Arc<str> {
        &self.hash_hex
    }

    pub(crate) fn binding(&self) -> &'static Binding {
        self.binding
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// Whether the plugin exports `pitwall_init`.
    pub fn has_init(&self) -> bool {
        self.has_init
    }

    /// Whether the plugin can hand its state to a successor: it exports
    /// `pitwall_snapshot` and declares a `state_version`.
    pub fn can_snapshot(&self) -> bool {
        self.can_snapshot && self.info.state_version().is_some()
    }

    /// Whether the plugin can take over a predecessor's state.
    pub fn can_restore(&self) -> bool {
        self.can_restore && self.info.state_version().is_some()
    }

    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// A serializable summary, for status and the HTTP API.
    pub fn version_info(&self) -> VersionInfo {
        VersionInfo {
            name: self.info.name().to_string(),
            version: self.info.version().to_string(),
            id: self.id.to_string(),
            kind: self.info.kind(),
            abi: self.info.abi(),
            content_hash: self.hash,
            state_version: self.info.state_version(),
            state_handover: self.can_snapshot() && self.can_restore(),
            wasm_bytes: self.wasm_len,
            compile_ms: self.compile_time.as_secs_f64() * 1e3,
        }
    }
}

/// What an operator sees of one plugin version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
    /// `name@version`.
    pub id: String,
    pub kind: PluginKind,
    pub abi: AbiVersion,
    /// SHA-256 of the `.wasm`, hex.
    pub content_hash: ContentHash,
    pub state_version: Option<u32>,
    /// Exports both snapshot and restore and declares a state version.
    pub state_handover: bool,
    pub wasm_bytes: usize,
    pub compile_ms: f64,
}
