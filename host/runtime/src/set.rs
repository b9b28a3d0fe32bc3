//! The frame loop's side: every loaded plugin, called once per race frame,
//! with queued lifecycle changes applied exactly at window boundaries.
//!
//! [`PluginSet::on_frame`] does, in order:
//!
//! 1. takes the changes queued by [`PluginControl`] handles and applies, in
//!    the order they were queued, each one whose boundary is at or before
//!    this frame's `window_start_ms` (so this frame already goes to the new
//!    version: every frame goes to exactly one version);
//! 2. calls every live plugin (name order) and its shadow candidate, drops
//!    and counts failed calls, quarantines and rolls back as configured;
//! 3. publishes the new status with `arc-swap` and returns the
//!    [`FrameOutcome`] (insights with provenance, failures, comparisons,
//!    lifecycle events).
//!
//! Instances freed during the frame are dropped after the calls, so a swap
//! pause covers only the state handover and a few pointer moves.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};

use crate::control::{Applied, Boundary, Command, PluginControl, Queued};
use crate::engine::Runtime;
use crate::events::{FrameOutcome, LifecycleEvent};
use crate::slot::{Graveyard, Running, Slot, params_info};
use crate::stats::PluginStats;
use crate::status::SetStatus;
use crate::store::Params;

/// All plugins of one pipeline. Owned by the frame-loop thread.
pub struct PluginSet {
    runtime: Runtime,
    slots: BTreeMap<String, Slot>,
    tx: Sender<Queued>,
    rx: Receiver<Queued>,
    pending: Vec<Queued>,
    status: Arc<ArcSwap<SetStatus>>,
    staged_params: BTreeMap<String, Params>,
    last_window: Option<i64>,
    frames: u64,
    params_generation: u64,
    graveyard: Graveyard,
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSet")
            .field("plugins", &self.slots.keys().collect::<Vec<_>>())
            .field("last_window", &self.last_window)
            .finish_non_exhaustive()
    }
}

impl Command {
    fn plugin(&self) -> &str {
        match self {
            Command::Deploy(p) | Command::Shadow(p) => p.compiled.name(),
            Command::Rollback { target, .. } => target.compiled.name(),
            Command::Unload(n) | Command::Promote(n) | Command::Discard(n) | Command::Resume(n) => {
                n
            }
            Command::SetParams { name, .. } => name,
        }
    }
}

impl PluginSet {
    /// An empty set. Load plugins through [`control`](Self::control).
    pub fn new(runtime: Runtime) -> PluginSet {
        let (tx, rx) = crossbeam_channel::unbounded();
        PluginSet {
            runtime,
            slots: BTreeMap::new(),
            tx,
            rx,
            pending: Vec::new(),
            status: Arc::new(ArcSwap::from_pointee(SetStatus::default())),
            staged_params: BTreeMap::new(),
            last_window: None,
            frames: 0,
            params_generation: 0,
            graveyard: Vec::new(),
        }
    }

    /// A handle for other threads (cloneable, `Send + Sync`).
    pub fn control(&self) -> PluginControl {
        PluginControl {
            runtime: self.runtime.clone(),
            tx: self.tx.clone(),
            status: self.status.clone(),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Names of the loaded plugins.
    pub fn plugins(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }

    /// One plugin's counters, straight from the frame loop.
    pub fn stats(&self, name: &str) -> Option<PluginStats> {
        self.slots.get(name).map(|s| *s.stats())
    }

    /// `name@version` of a plugin's live version.
    pub fn live_version(&self, name: &str) -> Option<Arc<str>> {
        self.slots.get(name).map(|s| s.live().compiled.id().clone())
    }

    /// The latest published status.
    pub fn status(&self) -> Arc<SetStatus> {
        self.status.load_full()
    }

    /// Applies the queued changes that are due at `window_start_ms` without
    /// calling any plugin (e.g. to load plugins before the first frame).
    pub fn apply_pending(&mut self, window_start_ms: i64) -> Vec<LifecycleEvent> {
        let mut out = FrameOutcome::default();
        self.apply_due(window_start_ms, &mut out);
        self.graveyard.clear();
        self.publish();
        out.events
    }

    /// Runs every plugin on one race frame (the `RaceFrame` FlatBuffer of the
    /// window starting at `window_start_ms`).
    pub fn on_frame(&mut self, frame: &[u8], window_start_ms: i64) -> FrameOutcome {
        let mut out = FrameOutcome {
            window_start_ms,
            ..FrameOutcome::default()
        };
        self.apply_due(window_start_ms, &mut out);
        for slot in self.slots.values_mut() {
            slot.run_frame(
                &self.runtime,
                frame,
                window_start_ms,
                &mut out,
                &mut self.graveyard,
            );
        }
        self.frames += 1;
        self.last_window = Some(window_start_ms);
        self.publish();
        self.graveyard.clear();
        out
    }

    fn apply_due(&mut self, ws: i64, out: &mut FrameOutcome) {
        self.pending.extend(self.rx.try_iter());
        if self.pending.is_empty() {
            return;
        }
        for q in std::mem::take(&mut self.pending) {
            let due = match q.boundary {
                Boundary::Next => true,
                Boundary::At(b) => ws >= b,
            };
            if !due {
                self.pending.push(q);
                continue;
            }
            let plugin = q.command.plugin().to_string();
            match self.apply(q.command, ws) {
                Ok(event) => {
                    out.events.push(event.clone());
                    let _ = q.reply.send(Ok(Applied {
                        window_start_ms: ws,
                        event,
                    }));
                }
                Err(reason) => {
                    tracing::warn!(%plugin, window = ws, %reason, "plugin change refused");
                    let _ = q.reply.send(Err(reason));
                }
            }
        }
    }

    fn apply(&mut self, command: Command, ws: i64) -> Result<LifecycleEvent, String> {
        let cfg = self.runtime.config();
        let unknown = |name: &str| format!("no plugin named `{name}` is loaded");
        match command {
            Command::Deploy(p) => {
                let run = Running::new(p.compiled, Some(p.instance));
                let name = run.compiled.name().to_string();
                match self.slots.get_mut(&name) {
                    Some(slot) => slot.swap(run, ws, cfg, &mut self.graveyard),
                    None => {
                        let params = self.staged_params.remove(&name);
                        let event = LifecycleEvent::Loaded {
                            plugin: name.clone(),
                            version: run.compiled.id().to_string(),
                            content_hash: run.compiled.content_hash().to_string(),
                        };
                        tracing::info!(plugin = %name, version = %run.compiled.id(), window = ws, "plugin loaded");
                        self.slots.insert(name, Slot::new(run, params, ws));
                        Ok(event)
                    }
                }
            }
            Command::Rollback { target, from } => {
                let run = Running::new(target.compiled, Some(target.instance));
                let name = run.compiled.name().to_string();
                let slot = self.slots.get_mut(&name).ok_or_else(|| unknown(&name))?;
                if slot.live().compiled.content_hash() != from {
                    return Err(format!(
                        "the live version of `{name}` changed since the rollback was requested \
                         (now {}); request it again",
                        slot.live().compiled.id()
                    ));
                }
                slot.rollback(run, ws, cfg, &mut self.graveyard)
            }
            Command::Unload(name) => {
                let slot = self.slots.remove(&name).ok_or_else(|| unknown(&name))?;
                let version = slot.live().compiled.id().to_string();
                tracing::info!(plugin = %name, %version, window = ws, "plugin unloaded");
                drop(slot);
                Ok(LifecycleEvent::Unloaded {
                    plugin: name,
                    version,
                })
            }
            Command::SetParams { name, bytes } => {
                let current = self
                    .slots
                    .get(&name)
                    .and_then(|s| s.params())
                    .or_else(|| self.staged_params.get(&name));
                let candidate = Params::new(bytes, self.params_generation + 1);
                if current.is_some_and(|c| c.version() == candidate.version()) {
                    return Err(format!(
                        "plugin `{name}` already has these parameters (version {})",
                        candidate.version()
                    ));
                }
                self.params_generation += 1;
                match self.slots.get_mut(&name) {
                    Some(slot) => Ok(slot.set_params(candidate)),
                    None => {
                        let event = LifecycleEvent::ParamsUpdated {
                            plugin: name.clone(),
                            model_version: candidate.version().to_string(),
                            generation: candidate.generation(),
                        };
                        self.staged_params.insert(name, candidate);
                        Ok(event)
                    }
                }
            }
            Command::Shadow(p) => {
                let run = Running::new(p.compiled, Some(p.instance));
                let name = run.compiled.name().to_string();
                let slot = self.slots.get_mut(&name).ok_or_else(|| unknown(&name))?;
                slot.start_shadow(run, ws, &mut self.graveyard)
            }
            Command::Promote(name) => self
                .slots
                .get_mut(&name)
                .ok_or_else(|| unknown(&name))?
                .promote(ws, cfg, &mut self.graveyard),
            Command::Discard(name) => self
                .slots
                .get_mut(&name)
                .ok_or_else(|| unknown(&name))?
                .discard(&mut self.graveyard),
            Command::Resume(name) => Ok(self
                .slots
                .get_mut(&name)
                .ok_or_else(|| unknown(&name))?
                .resume(&mut self.graveyard)),
        }
    }

    fn publish(&self) {
        let pending_for = |name: &str| {
            self.pending
                .iter()
                .filter(|q| q.command.plugin() == name)
                .count()
        };
        let status = SetStatus {
            last_window_start_ms: self.last_window,
            frames: self.frames,
            plugins: self
                .slots
                .iter()
                .map(|(name, s)| s.status(pending_for(name)))
                .collect(),
            staged_params: self
                .staged_params
                .iter()
                .map(|(n, p)| (n.clone(), params_info(p)))
                .collect(),
            pending: self.pending.len(),
        };
        self.status.store(Arc::new(status));
    }
}
