//! The control handle: load, swap, roll back, unload, parameters, shadow,
//! promote — from any thread, while the frame loop runs.
//!
//! Every request is validated, compiled **and instantiated here, in the
//! caller's thread** (an API worker, the directory watcher), then queued for
//! the frame loop with a target [`Boundary`]. The frame loop applies it at
//! the start of the first frame whose window starts at or after the
//! boundary, so the only work left on the hot path is the state handover and
//! a few pointer moves. The returned [`Ticket`] tells when (and whether) it
//! was applied.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};

use crate::compiled::CompiledPlugin;
use crate::engine::Runtime;
use crate::error::{ControlError, LoadError};
use crate::events::LifecycleEvent;
use crate::instance::PluginInstance;
use crate::status::{PluginStatus, SetStatus, VersionEntry, VersionState};
use crate::store::Params;

/// When a queued change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// At the next frame the loop processes.
    Next,
    /// At the first frame whose `window_start_ms` is at or after this.
    At(i64),
}

/// A compiled version with an instance made off the frame loop.
pub(crate) struct Prepared {
    pub(crate) compiled: Arc<CompiledPlugin>,
    pub(crate) instance: PluginInstance,
}

pub(crate) enum Command {
    /// Load a new plugin, or swap in a new version of a loaded one.
    Deploy(Prepared),
    /// Make `target` live again; `from` is the live version the request was made against.
    Rollback {
        target: Prepared,
        from: crate::compiled::ContentHash,
    },
    Unload(String),
    SetParams {
        name: String,
        bytes: Arc<[u8]>,
    },
    Shadow(Prepared),
    Promote(String),
    Discard(String),
    Resume(String),
}

pub(crate) struct Queued {
    pub(crate) boundary: Boundary,
    pub(crate) command: Command,
    pub(crate) reply: Sender<Result<Applied, String>>,
}

/// A change the frame loop applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The window at whose start it took effect.
    pub window_start_ms: i64,
    pub event: LifecycleEvent,
}

/// The answer to a queued change.
#[derive(Debug)]
pub struct Ticket {
    rx: Receiver<Result<Applied, String>>,
}

impl Ticket {
    /// Waits until the frame loop applied (or refused) the change. Frames must
    /// keep flowing for that to happen.
    pub fn wait(&self, timeout: Duration) -> Result<Applied, ControlError> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => r.map_err(ControlError::Rejected),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(ControlError::Timeout),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err(ControlError::FrameLoopGone)
            }
        }
    }

    /// The outcome, if the change has been applied or refused already.
    pub fn try_outcome(&self) -> Option<Result<Applied, ControlError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r.map_err(ControlError::Rejected)),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                Some(Err(ControlError::FrameLoopGone))
            }
        }
    }
}

/// A cloneable handle on a [`PluginSet`](crate::PluginSet), for the HTTP
/// API, the CLI and the directory watcher.
#[derive(Clone)]
pub struct PluginControl {
    pub(crate) runtime: Runtime,
    pub(crate) tx: Sender<Queued>,
    pub(crate) status: Arc<ArcSwap<SetStatus>>,
}

impl std::fmt::Debug for PluginControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginControl").finish_non_exhaustive()
    }
}

impl PluginControl {
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The latest published status (one atomic load).
    pub fn status(&self) -> Arc<SetStatus> {
        self.status.load_full()
    }

    /// One plugin's status.
    pub fn plugin(&self, name: &str) -> Option<PluginStatus> {
        self.status().plugin(name).cloned()
    }

    /// A plugin's versions, newest first, the live one marked.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionEntry>, ControlError> {
        self.plugin(name)
            .map(|p| p.versions)
            .ok_or_else(|| ControlError::UnknownPlugin(name.to_string()))
    }

    fn send(&self, boundary: Boundary, command: Command) -> Result<Ticket, ControlError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Queued {
                boundary,
                command,
                reply,
            })
            .map_err(|_| ControlError::FrameLoopGone)?;
        Ok(Ticket { rx })
    }

    /// The parameters a new instance of `name` should start with.
    fn params_for(&self, name: &str) -> Option<Params> {
        let status = self.status();
        status
            .plugin(name)
            .and_then(|p| p.params.as_ref())
            .or_else(|| {
                status
                    .staged_params
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| p)
            })
            .map(|p| p.params.clone())
    }

    fn prepare(&self, compiled: Arc<CompiledPlugin>) -> Result<Prepared, ControlError> {
        let params = self.params_for(compiled.name());
        let instance =
            PluginInstance::new(&self.runtime, &compiled, params).map_err(LoadError::Start)?;
        Ok(Prepared { compiled, instance })
    }

    /// Loads a plugin, or swaps in a new version when one with the same name
    /// is loaded. Validation, compilation and instantiation happen now, in
    /// this thread; the change is applied at `boundary`.
    pub fn deploy(&self, wasm: &[u8], boundary: Boundary) -> Result<Ticket, ControlError> {
        let compiled = self.runtime.compile(wasm)?;
        self.deploy_compiled(compiled, boundary)
    }

    /// [`deploy`](Self::deploy) of an already compiled version.
    pub fn deploy_compiled(
        &self,
        compiled: Arc<CompiledPlugin>,
        boundary: Boundary,
    ) -> Result<Ticket, ControlError> {
        let prepared = self.prepare(compiled)?;
        self.send(boundary, Command::Deploy(prepared))
    }

    /// Reads and deploys a `.wasm` file.
    pub fn deploy_file(
        &self,
        path: &std::path::Path,
        boundary: Boundary,
    ) -> Result<Ticket, ControlError> {
        let compiled = self.runtime.compile_file(path)?;
        self.deploy_compiled(compiled, boundary)
    }

    /// Swaps a new version of the loaded plugin `name` in; refuses bytes of
    /// another plugin or a plugin that is not loaded.
    pub fn swap(
        &self,
        name: &str,
        wasm: &[u8],
        boundary: Boundary,
    ) -> Result<Ticket, ControlError> {
        if self.plugin(name).is_none() {
            return Err(ControlError::UnknownPlugin(name.to_string()));
        }
        let compiled = self.runtime.compile(wasm)?;
        if compiled.name() != name {
            return Err(ControlError::WrongPlugin {
                expected: name.to_string(),
                found: compiled.id().to_string(),
            });
        }
        self.deploy_compiled(compiled, boundary)
    }

    /// Makes the previous version live again (with state handover when both
    /// versions support it). The version rolled back from stays listed.
    pub fn rollback(&self, name: &str, boundary: Boundary) -> Result<Ticket, ControlError> {
        let status = self
            .plugin(name)
            .ok_or_else(|| ControlError::UnknownPlugin(name.to_string()))?;
        let target = status
            .versions
            .iter()
            .find(|v| v.state == VersionState::Previous)
            .ok_or_else(|| ControlError::NoPrevious {
                name: name.to_string(),
                history: history(&status),
            })?;
        self.rollback_entry(&status, target.compiled.clone(), boundary)
    }

    /// Makes a specific version live again: `wanted` is a version (`1.2.0`)
    /// or a content-hash prefix.
    pub fn rollback_to(
        &self,
        name: &str,
        wanted: &str,
        boundary: Boundary,
    ) -> Result<Ticket, ControlError> {
        let status = self
            .plugin(name)
            .ok_or_else(|| ControlError::UnknownPlugin(name.to_string()))?;
        let target = status
            .versions
            .iter()
            .filter(|v| v.state != VersionState::Live)
            .find(|v| {
                v.info.version == wanted
                    || (wanted.len() >= 4 && v.info.content_hash.to_string().starts_with(wanted))
            })
            .ok_or_else(|| ControlError::NoSuchVersion {
                name: name.to_string(),
                wanted: wanted.to_string(),
                history: history(&status),
            })?;
        self.rollback_entry(&status, target.compiled.clone(), boundary)
    }

    fn rollback_entry(
        &self,
        status: &PluginStatus,
        target: Arc<CompiledPlugin>,
        boundary: Boundary,
    ) -> Result<Ticket, ControlError> {
        let from = status.live.content_hash;
        let target = self.prepare(target)?;
        self.send(boundary, Command::Rollback { target, from })
    }

    /// Removes a plugin at `boundary`.
    pub fn unload(&self, name: &str, boundary: Boundary) -> Result<Ticket, ControlError> {
        self.send(boundary, Command::Unload(name.to_string()))
    }

    /// Replaces a plugin's model parameters (opaque bytes) at `boundary`: the
    /// code keeps running, `params_generation` is bumped, and provenance
    /// carries the new blob's content hash. For a plugin not loaded yet the
    /// parameters are kept for when it is.
    pub fn set_params(
        &self,
        name: &str,
        bytes: impl Into<Arc<[u8]>>,
        boundary: Boundary,
    ) -> Result<Ticket, ControlError> {
        self.send(
            boundary,
            Command::SetParams {
                name: name.to_string(),
                bytes: bytes.into(),
            },
        )
    }

    /// Starts `wasm` as a shadow candidate beside the live version of the
    /// plugin of the same name: it gets the live version's state and every
    /// frame from `boundary` on; its insights are compared, not published.
    pub fn shadow(&self, wasm: &[u8], boundary: Boundary) -> Result<Ticket, ControlError> {
        let compiled = self.runtime.compile(wasm)?;
        if self.plugin(compiled.name()).is_none() {
            return Err(ControlError::UnknownPlugin(compiled.name().to_string()));
        }
        let prepared = self.prepare(compiled)?;
        self.send(boundary, Command::Shadow(prepared))
    }

    /// Makes the shadow candidate live at `boundary` (with state handover).
    pub fn promote(&self, name: &str, boundary: Boundary) -> Result<Ticket, ControlError> {
        self.send(boundary, Command::Promote(name.to_string()))
    }

    /// Stops the shadow candidate.
    pub fn discard(&self, name: &str, boundary: Boundary) -> Result<Ticket, ControlError> {
        self.send(boundary, Command::Discard(name.to_string()))
    }

    /// Lifts a quarantine: the live version gets frames again, with a fresh instance.
    pub fn resume(&self, name: &str, boundary: Boundary) -> Result<Ticket, ControlError> {
        self.send(boundary, Command::Resume(name.to_string()))
    }
}

fn history(status: &PluginStatus) -> String {
    status
        .versions
        .iter()
        .map(|v| format!("{} ({})", v.info.id, v.info.content_hash.short()))
        .collect::<Vec<_>>()
        .join(", ")
}
