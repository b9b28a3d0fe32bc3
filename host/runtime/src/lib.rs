//! # pitwall-runtime
//!
//! The host side of Pitwall's WebAssembly plugins (`docs/plugin-abi.md`):
//! load `.wasm` plugins, run each once per race frame in a sandbox, and swap,
//! roll back, shadow and re-parameterise them while frames keep flowing.
//!
//! ```text
//!  PluginControl (any thread)           PluginSet (frame-loop thread)
//!  ─────────────────────────            ─────────────────────────────
//!  compile (sections → ABI → module)    on_frame(frame, window_start)
//!  instantiate (pooling, µs)      ──►    1. apply queued changes due at this boundary
//!  queue with a Boundary                 2. call live versions (+ shadow candidates)
//!  read status (arc-swap)        ◄──     3. publish status, return FrameOutcome
//! ```
//!
//! * [`Runtime`]: the wasmtime engine (cranelift, pooling allocator, epoch
//!   interruption with a ticker thread), one linker per ABI binding
//!   ([`abi`]), and [`Runtime::compile`] which refuses a plugin by its
//!   custom sections ([`sections`]) before compiling anything.
//! * [`PluginSet`]: the plugins of one pipeline; [`PluginSet::on_frame`] is
//!   the hot path. Each plugin has a live version, a history, a standby for
//!   automatic rollback, an optional shadow candidate and its [`PluginStats`].
//! * [`PluginControl`]: a cloneable handle (for the HTTP API, the CLI and
//!   [`PluginWatcher`]) to deploy, swap, roll back, unload, set parameters,
//!   shadow, promote and discard, each applied at a window [`Boundary`].
//! * [`PublishedInsight`]: every insight with its provenance: plugin name,
//!   version, content hash (SHA-256 of the `.wasm`), model version, window.
//!
//! ## Guarantees
//!
//! * **A plugin never crashes the host.** Traps, missed deadlines, memory
//!   over the cap, negative returns and unverifiable replies are
//!   [`CallFailure`]s: the call's result is dropped and counted; after
//!   `failure_threshold` in a row the plugin is quarantined, and rolled back
//!   automatically if it was swapped in recently.
//! * **Every frame goes to exactly one version.** A change queued for
//!   boundary `b` applies before the first frame with `window_start_ms ≥ b`
//!   is called, on the frame-loop thread; no frame reaches both or neither.
//! * **State survives a swap** when both versions export snapshot/restore:
//!   the old version's snapshot (taken at the boundary) is restored into the
//!   new one together with the old `state_version`.
//!
//! ## Example
//!
//! ```no_run
//! use pitwall_runtime::{Boundary, PluginSet, Runtime, RuntimeConfig};
//! use std::time::Duration;
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let mut set = PluginSet::new(runtime);
//! let control = set.control(); // clone it into the HTTP server, the watcher, …
//! let wasm = std::fs::read("plugins/battle.wasm")?;
//! let ticket = control.deploy(&wasm, Boundary::Next)?;
//! # let frames: Vec<(Vec<u8>, i64)> = vec![];
//! for (frame, window_start_ms) in frames {
//!     let outcome = set.on_frame(&frame, window_start_ms);
//!     for insight in &outcome.insights {
//!         println!("{} {} {:?}", insight.plugin_id(), insight.content_hash(), insight.body());
//!     }
//! }
//! # let _ = ticket.try_outcome();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod abi;
pub mod compiled;
pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod events;
pub mod instance;
pub mod published;
pub mod sections;
pub mod set;
pub mod shadow;
mod slot;
pub mod stats;
pub mod status;
pub mod store;
pub mod watch;

pub use compiled::{CompiledPlugin, ContentHash, VersionInfo};
pub use config::{LogLimit, RuntimeConfig, ShadowTolerance};
pub use control::{Applied, Boundary, PluginControl, Ticket};
pub use engine::{EngineError, Runtime};
pub use error::{CallFailure, ControlError, FailureKind, LoadError};
pub use events::{
    FailureAction, FrameOutcome, Handover, LifecycleEvent, PluginFailure, ShadowFrame,
};
pub use instance::{PluginInstance, RestoreOutcome};
pub use published::PublishedInsight;
pub use set::PluginSet;
pub use shadow::{FrameComparison, ShadowStats};
pub use stats::{FailureCounts, PluginStats};
pub use status::{ParamsInfo, PluginStatus, SetStatus, ShadowStatus, VersionEntry, VersionState};
pub use store::Params;
pub use watch::{PluginWatcher, WatchConfig, WatchError, WatchEvent, WatchOutcome};
