//! Errors, each with enough context for an operator to act on.

use std::fmt;
use std::path::PathBuf;

use pitwall_plugin_sdk::{AbiError, AbiVersion};

/// Why a plugin could not be loaded. Nothing of a refused plugin ever runs.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a WebAssembly core module: {0}")]
    NotWasm(String),
    #[error(
        "the plugin has no `{section}` custom section; build it with pitwall-plugin-sdk's \
         export macro, which writes both `pitwall:abi` and `pitwall:info`"
    )]
    MissingSection { section: &'static str },
    #[error("the plugin has {count} `{section}` custom sections; exactly one is allowed")]
    DuplicateSection { section: &'static str, count: usize },
    #[error(
        "malformed `pitwall:abi` section: {len} bytes, expected 4 (major u16 LE, then minor u16 LE)"
    )]
    MalformedAbi { len: usize },
    #[error("malformed `pitwall:info` section: {0}")]
    MalformedInfo(String),
    #[error(
        "`pitwall:info` declares ABI {info} but the `pitwall:abi` section says {section}; \
         the plugin was built inconsistently, rebuild it with the SDK"
    )]
    AbiDisagree {
        info: AbiVersion,
        section: AbiVersion,
    },
    // `reason`, not `source`: the message already says it, and a `source` would
    // print it twice in an error chain.
    #[error("this host cannot run the plugin: {reason} (this host runs ABI {supported})")]
    UnsupportedAbi {
        reason: AbiError,
        supported: SupportedAbis,
    },
    #[error(
        "the plugin imports `{module}::{name}`, which ABI {abi} does not provide (it provides \
         {provided}); plugins get no WASI and no other host functions"
    )]
    UnknownImport {
        module: String,
        name: String,
        abi: AbiVersion,
        provided: String,
    },
    #[error(
        "the plugin imports `{module}::{name}` as {found}, but ABI {abi} defines it as {expected}"
    )]
    ImportType {
        module: String,
        name: String,
        abi: AbiVersion,
        found: String,
        expected: String,
    },
    #[error("the plugin does not export `{name}` ({expected}), which ABI {abi} requires")]
    MissingExport {
        name: &'static str,
        abi: AbiVersion,
        expected: String,
    },
    #[error("the plugin exports `{name}` as {found}, but ABI {abi} defines it as {expected}")]
    ExportType {
        name: String,
        abi: AbiVersion,
        found: String,
        expected: String,
    },
    #[error("compiling the plugin failed: {0}")]
    Compile(String),
    #[error("the plugin failed to start: {0}")]
    Start(CallFailure),
    #[error(
        "file {} holds plugin `{declared}`; plugin files must be named after the plugin \
         (rename it to {declared}.wasm)", file.display()
    )]
    NameMismatch { file: PathBuf, declared: String },
}

/// The ABI versions a host has binding modules for, for error messages.
#[derive(Debug, Clone)]
pub struct SupportedAbis(pub Vec<AbiVersion>);

impl fmt::Display for SupportedAbis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}.0–{v}", v.major)?;
        }
        Ok(())
    }
}

/// What went wrong in one guest call. The call's result is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The guest trapped (`unreachable`, out-of-bounds access, stack overflow, …).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The guest tried to grow its memory past the cap (or `pitwall_alloc` returned 0).
    MemoryExceeded,
    /// `pitwall_on_frame` returned a negative value: a guest-reported error.
    NegativeReturn,
    /// The reply was not a valid `Insights` buffer for this window.
    BadReply,
    /// A fresh instance could not be created or its `pitwall_init` refused to start.
    Instantiate,
}

impl FailureKind {
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Trap,
        FailureKind::Deadline,
        FailureKind::MemoryExceeded,
        FailureKind::NegativeReturn,
        FailureKind::BadReply,
        FailureKind::Instantiate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::MemoryExceeded => "memory_exceeded",
            FailureKind::NegativeReturn => "negative_return",
            FailureKind::BadReply => "bad_reply",
            FailureKind::Instantiate => "instantiate",
        }
    }

    /// Whether the instance must be thrown away: after a trap (deadline and
    /// memory failures are traps too) its memory may be half-written.
    pub fn kills_instance(self) -> bool {
        matches!(
            self,
            FailureKind::Trap
                | FailureKind::Deadline
                | FailureKind::MemoryExceeded
                | FailureKind::Instantiate
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed guest call: its kind and a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct CallFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl CallFailure {
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        CallFailure {
            kind,
            message: message.into(),
        }
    }
}

/// Why a control request (load, swap, rollback, …) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("no plugin named `{0}` is loaded")]
    UnknownPlugin(String),
    #[error("plugin `{name}` has no version to roll back to (history: {history})")]
    NoPrevious { name: String, history: String },
    #[error("plugin `{name}` has no version {wanted} in its history (history: {history})")]
    NoSuchVersion {
        name: String,
        wanted: String,
        history: String,
    },
    #[error("plugin `{0}` has no shadow candidate; start one with shadow()")]
    NoShadow(String),
    #[error("the bytes are plugin `{found}`, not `{expected}`")]
    WrongPlugin { expected: String, found: String },
    #[error("the frame loop has stopped (its PluginSet was dropped); nothing can be scheduled")]
    FrameLoopGone,
    #[error("the change was not applied: {0}")]
    Rejected(String),
    #[error(
        "timed out waiting for the frame loop to apply the change (it applies at the next frame whose window starts at or after the boundary)"
    )]
    Timeout,
}
