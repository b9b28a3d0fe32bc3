//! One plugin's lifecycle inside the frame loop: its live version and
//! instance, the version history, a standby instance for automatic rollback,
//! a shadow candidate, quarantine, and its counters.
//!
//! Everything here runs on the frame-loop thread; other threads only ever
//! see it through the published [`SetStatus`](crate::SetStatus).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use pitwall_plugin_sdk::{InsightsData, NO_MODEL, Provenance};

use crate::compiled::{CompiledPlugin, VersionInfo};
use crate::config::RuntimeConfig;
use crate::engine::Runtime;
use crate::error::CallFailure;
use crate::events::{
    FailureAction, FrameOutcome, Handover, LifecycleEvent, PluginFailure, ShadowFrame,
};
use crate::instance::{PluginInstance, RestoreOutcome};
use crate::published::PublishedInsight;
use crate::shadow::{self, ShadowStats};
use crate::stats::{PluginMetrics, PluginStats};
use crate::status::{ParamsInfo, PluginStatus, ShadowStatus, VersionEntry, VersionState};
use crate::store::Params;

/// A version and (unless it died) its instance.
pub(crate) struct Running {
    pub(crate) compiled: Arc<CompiledPlugin>,
    pub(crate) info: Arc<VersionInfo>,
    pub(crate) instance: Option<PluginInstance>,
}

impl Running {
    pub(crate) fn new(compiled: Arc<CompiledPlugin>, instance: Option<PluginInstance>) -> Self {
        Running {
            info: Arc::new(compiled.version_info()),
            compiled,
            instance,
        }
    }

    fn id(&self) -> &Arc<str> {
        self.compiled.id()
    }

    /// Makes sure the instance sees `params` (the loader may have prepared it
    /// with older ones).
    fn sync_params(&mut self, params: &Option<Params>) {
        if let Some(i) = self.instance.as_mut() {
            let want = params.as_ref().map_or(0, Params::generation);
            if i.params_generation() != want {
                i.set_params(params.clone());
            }
        }
    }
}

struct HistoryEntry {
    compiled: Arc<CompiledPlugin>,
    info: Arc<VersionInfo>,
    state: VersionState,
    live_since: Option<i64>,
}

struct Shadow {
    run: Running,
    since: i64,
    stats: ShadowStats,
}

/// How the previous live version is filed when a new one takes over.
enum Retire {
    /// It stays a rollback target.
    Previous,
    /// It was rolled back from.
    RolledBack(String),
}

pub(crate) struct Slot {
    name: Arc<str>,
    live: Running,
    windows_since_swap: u64,
    ok_since_swap: u64,
    /// Outcome of the live version's recent calls (true = failed), newest last,
    /// at most `RuntimeConfig::failure_window.1` of them.
    recent: std::collections::VecDeque<bool>,
    /// The live version replaced another one that can be rolled back to
    /// automatically (cleared by an automatic rollback, so it cannot cascade).
    swapped: bool,
    /// The previous version's instance, kept with its state as of the swap
    /// for the rollback window, so an automatic rollback needs no instantiation.
    standby: Option<Running>,
    /// Oldest first; the last entry is the live version.
    stack: Vec<HistoryEntry>,
    /// Rolled back from, newest first.
    retired: VecDeque<HistoryEntry>,
    quarantine: Option<String>,
    params: Option<Params>,
    shadow: Option<Shadow>,
    stats: PluginStats,
    metrics: PluginMetrics,
}

/// Things dropped after the frame's calls, so freeing an instance never
/// lengthens a swap pause.
pub(crate) type Graveyard = Vec<Running>;

impl Slot {
    pub(crate) fn new(mut run: Running, params: Option<Params>, window_start_ms: i64) -> Slot {
        run.sync_params(&params);
        let name: Arc<str> = run.compiled.name().into();
        let entry = HistoryEntry {
            compiled: run.compiled.clone(),
            info: run.info.clone(),
            state: VersionState::Live,
            live_since: Some(window_start_ms),
        };
        Slot {
            metrics: PluginMetrics::new(&name),
            name,
            live: run,
            windows_since_swap: 0,
            ok_since_swap: 0,
            recent: std::collections::VecDeque::new(),
            swapped: false,
            standby: None,
            stack: vec![entry],
            retired: VecDeque::new(),
            quarantine: None,
            params,
            shadow: None,
            stats: PluginStats::default(),
        }
    }

    pub(crate) fn live(&self) -> &Running {
        &self.live
    }

    pub(crate) fn stats(&self) -> &PluginStats {
        &self.stats
    }

    pub(crate) fn params(&self) -> Option<&Params> {
        self.params.as_ref()
    }

    // ---- history -----------------------------------------------------------

    fn retire_live(&mut self, how: Retire, cfg: &RuntimeConfig) {
        if let Some(mut top) = self.stack.pop() {
            match how {
                Retire::Previous => {
                    top.state = VersionState::Previous;
                    self.stack.push(top);
                }
                Retire::RolledBack(reason) => {
                    top.state = VersionState::RolledBack(reason);
                    self.retired.push_front(top);
                    self.retired.truncate(cfg.history_len.max(1));
                }
            }
        }
    }

    fn push_live(&mut self, run: &Running, ws: i64, cfg: &RuntimeConfig) {
        let hash = run.compiled.content_hash();
        self.stack.retain(|e| e.compiled.content_hash() != hash);
        self.retired.retain(|e| e.compiled.content_hash() != hash);
        self.stack.push(HistoryEntry {
            compiled: run.compiled.clone(),
            info: run.info.clone(),
            state: VersionState::Live,
            live_since: Some(ws),
        });
        let keep = cfg.history_len.max(1);
        if self.stack.len() > keep {
            let extra = self.stack.len() - keep;
            self.stack.drain(..extra);
        }
    }

    fn previous_entry(&self) -> Option<&HistoryEntry> {
        self.stack.len().checked_sub(2).map(|i| &self.stack[i])
    }

    // ---- swaps ---------------------------------------------------------------

    /// Hands `from`'s state to `to` when both can; otherwise says why not.
    fn handover(from: &mut Running, to: &mut Running, graveyard: &mut Graveyard) -> Handover {
        let fresh = |reason: String| Handover::Fresh { reason };
        let Some(old_sv) = from.compiled.info().state_version() else {
            return fresh(format!("{} declares no state_version", from.id()));
        };
        if !from.compiled.can_snapshot() {
            return fresh(format!("{} does not export pitwall_snapshot", from.id()));
        }
        if !to.compiled.can_restore() {
            return fresh(format!(
                "{} does not export pitwall_restore or declares no state_version",
                to.id()
            ));
        }
        let Some(old) = from.instance.as_mut() else {
            return fresh(format!("{} has no running instance (it failed)", from.id()));
        };
        let Some(new) = to.instance.as_mut() else {
            return fresh(format!("{} has no running instance", to.id()));
        };
        let state = match old.snapshot() {
            Ok(Some(state)) => state,
            Ok(None) => return fresh(format!("{} exports no snapshot", from.id())),
            Err(f) => {
                if f.kind.kills_instance() {
                    graveyard.push(Running::new(from.compiled.clone(), from.instance.take()));
                }
                return fresh(format!("snapshot of {} failed: {f}", from.id()));
            }
        };
        match new.restore(&state, old_sv) {
            Ok(Some(RestoreOutcome::Restored)) => Handover::Restored {
                from_state_version: old_sv,
                bytes: state.len(),
            },
            Ok(Some(RestoreOutcome::Refused(code))) => fresh(format!(
                "{} refused state version {old_sv} from {} (code {code})",
                to.id(),
                from.id()
            )),
            Ok(None) => fresh(format!("{} exports no restore", to.id())),
            Err(f) => {
                if f.kind.kills_instance() {
                    graveyard.push(Running::new(to.compiled.clone(), to.instance.take()));
                }
                fresh(format!("restore into {} failed: {f}", to.id()))
            }
        }
    }

    /// Makes `new` live at window `ws` with state handover from the current
    /// live version, which becomes the standby (or is rolled back from).
    fn install(
        &mut self,
        mut new: Running,
        ws: i64,
        retire: Retire,
        cfg: &RuntimeConfig,
        graveyard: &mut Graveyard,
    ) -> Handover {
        new.sync_params(&self.params);
        let handover = Self::handover(&mut self.live, &mut new, graveyard);
        match &handover {
            Handover::Restored { .. } => {
                self.stats.state_handovers += 1;
                tracing::info!(plugin = %self.name, from = %self.live.id(), to = %new.id(), "state handed over");
            }
            Handover::Fresh { reason } => {
                self.stats.fresh_starts += 1;
                tracing::info!(plugin = %self.name, from = %self.live.id(), to = %new.id(), %reason, "new version starts with fresh state");
            }
        }
        let rolled_back = matches!(retire, Retire::RolledBack(_));
        self.retire_live(retire, cfg);
        self.push_live(&new, ws, cfg);
        let old = std::mem::replace(&mut self.live, new);
        if let Some(s) = self.standby.take() {
            graveyard.push(s);
        }
        if rolled_back || cfg.rollback_window == 0 {
            graveyard.push(old);
            self.swapped = !rolled_back && self.stack.len() > 1;
        } else {
            self.standby = Some(old);
            self.swapped = true;
        }
        self.windows_since_swap = 0;
        self.ok_since_swap = 0;
        self.recent.clear();
        self.quarantine = None;
        self.stats.consecutive_failures = 0;
        self.stats.swaps += 1;
        self.metrics.swaps.increment(1);
        handover
    }

    /// Swaps in a new version (a deploy of a loaded plugin).
    pub(crate) fn swap(
        &mut self,
        new: Running,
        ws: i64,
        cfg: &RuntimeConfig,
        graveyard: &mut Graveyard,
    ) -> Result<LifecycleEvent, String> {
        if new.compiled.content_hash() == self.live.compiled.content_hash() {
            return Err(format!(
                "{} ({}) is already live",
                new.id(),
                new.compiled.content_hash().short()
            ));
        }
        let started = Instant::now();
        let from = self.live.id().to_string();
        let to = new.id().to_string();
        let span = tracing::info_span!("plugin.swap", plugin = %self.name, %from, %to, window = ws);
        let _e = span.enter();
        let handover = self.install(new, ws, Retire::Previous, cfg, graveyard);
        let pause = started.elapsed();
        self.metrics.swap_pause_seconds.record(pause.as_secs_f64());
        tracing::info!(pause_us = pause.as_secs_f64() * 1e6, "plugin swapped");
        Ok(LifecycleEvent::Swapped {
            plugin: self.name.to_string(),
            from,
            to,
            handover,
            pause,
        })
    }

    /// An operator's rollback to `target` (prepared off the loop).
    pub(crate) fn rollback(
        &mut self,
        target: Running,
        ws: i64,
        cfg: &RuntimeConfig,
        graveyard: &mut Graveyard,
    ) -> Result<LifecycleEvent, String> {
        let from = self.live.id().to_string();
        let to = target.id().to_string();
        let _e = tracing::info_span!("plugin.swap", plugin = %self.name, %from, %to, window = ws, rollback = true).entered();
        let reason = "rolled back by an operator".to_string();
        let handover = self.install(
            target,
            ws,
            Retire::RolledBack(reason.clone()),
            cfg,
            graveyard,
        );
        self.stats.rollbacks += 1;
        self.metrics.rollbacks.increment(1);
        Ok(LifecycleEvent::RolledBack {
            plugin: self.name.to_string(),
            from,
            to,
            automatic: false,
            reason,
            handover,
        })
    }

    /// Quarantines the live version and makes the previous one live again,
    /// preferring the standby instance (state as of the swap) over a fresh one.
    fn auto_rollback(
        &mut self,
        reason: &str,
        ws: i64,
        cfg: &RuntimeConfig,
        graveyard: &mut Graveyard,
    ) -> LifecycleEvent {
        let from = self.live.id().to_string();
        let target = self
            .previous_entry()
            .map(|e| e.compiled.clone())
            .expect("checked by caller");
        let _e = tracing::warn_span!("plugin.swap", plugin = %self.name, %from, to = %target.id(), window = ws, rollback = true).entered();
        let (mut run, handover) = match self.standby.take() {
            Some(s)
                if s.compiled.content_hash() == target.content_hash() && s.instance.is_some() =>
            {
                let since = self.stack.last().and_then(|e| e.live_since).unwrap_or(ws);
                (
                    s,
                    Handover::Fresh {
                        reason: format!(
                            "the previous version resumes with its state as of the swap at window {since}"
                        ),
                    },
                )
            }
            other => {
                if let Some(o) = other {
                    graveyard.push(o);
                }
                (
                    Running::new(target, None),
                    Handover::Fresh {
                        reason: "the previous version starts from a fresh instance".into(),
                    },
                )
            }
        };
        run.sync_params(&self.params);
        let why = format!("automatic rollback: {reason}");
        self.retire_live(Retire::RolledBack(why.clone()), cfg);
        self.push_live(&run, ws, cfg);
        let old = std::mem::replace(&mut self.live, run);
        graveyard.push(old);
        self.swapped = false;
        self.windows_since_swap = 0;
        self.ok_since_swap = 0;
        self.recent.clear();
        self.quarantine = None;
        self.stats.consecutive_failures = 0;
        self.stats.rollbacks += 1;
        self.stats.auto_rollbacks += 1;
        self.stats.swaps += 1;
        self.metrics.rollbacks.increment(1);
        tracing::warn!(plugin = %self.name, %from, to = %self.live.id(), %reason, "automatic rollback");
        LifecycleEvent::RolledBack {
            plugin: self.name.to_string(),
            from,
            to: self.live.id().to_string(),
            automatic: true,
            reason: why,
            handover,
        }
    }

    pub(crate) fn set_params(&mut self, params: Params) -> LifecycleEvent {
        for run in [
            Some(&mut self.live),
            self.standby.as_mut(),
            self.shadow.as_mut().map(|s| &mut s.run),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(i) = run.instance.as_mut() {
                i.set_params(Some(params.clone()));
            }
        }
        self.stats.params_updates += 1;
        let event = LifecycleEvent::ParamsUpdated {
            plugin: self.name.to_string(),
            model_version: params.version().to_string(),
            generation: params.generation(),
        };
        self.params = Some(params);
        event
    }

    pub(crate) fn resume(&mut self, graveyard: &mut Graveyard) -> LifecycleEvent {
        self.quarantine = None;
        self.stats.consecutive_failures = 0;
        self.recent.clear();
        if let Some(i) = self.live.instance.take() {
            graveyard.push(Running::new(self.live.compiled.clone(), Some(i)));
        }
        LifecycleEvent::Resumed {
            plugin: self.name.to_string(),
            version: self.live.id().to_string(),
        }
    }

    // ---- shadow --------------------------------------------------------------

    pub(crate) fn start_shadow(
        &mut self,
        mut cand: Running,
        ws: i64,
        graveyard: &mut Graveyard,
    ) -> Result<LifecycleEvent, String> {
        if cand.compiled.content_hash() == self.live.compiled.content_hash() {
            return Err(format!(
                "{} is the live version; shadow a different build",
                cand.id()
            ));
        }
        cand.sync_params(&self.params);
        let handover = Self::handover(&mut self.live, &mut cand, graveyard);
        let candidate = cand.id().to_string();
        if let Some(old) = self.shadow.replace(Shadow {
            run: cand,
            since: ws,
            stats: ShadowStats::default(),
        }) {
            graveyard.push(old.run);
        }
        Ok(LifecycleEvent::ShadowStarted {
            plugin: self.name.to_string(),
            candidate,
            handover,
        })
    }

    pub(crate) fn promote(
        &mut self,
        ws: i64,
        cfg: &RuntimeConfig,
        graveyard: &mut Graveyard,
    ) -> Result<LifecycleEvent, String> {
        let shadow = self
            .shadow
            .take()
            .ok_or_else(|| format!("plugin `{}` has no shadow candidate", self.name))?;
        let from = self.live.id().to_string();
        let to = shadow.run.id().to_string();
        let started = Instant::now();
        let _e = tracing::info_span!("plugin.swap", plugin = %self.name, %from, %to, window = ws, promote = true).entered();
        let handover = self.install(shadow.run, ws, Retire::Previous, cfg, graveyard);
        self.metrics
            .swap_pause_seconds
            .record(started.elapsed().as_secs_f64());
        Ok(LifecycleEvent::ShadowPromoted {
            plugin: self.name.to_string(),
            from,
            to,
            handover,
        })
    }

    pub(crate) fn discard(&mut self, graveyard: &mut Graveyard) -> Result<LifecycleEvent, String> {
        let shadow = self
            .shadow
            .take()
            .ok_or_else(|| format!("plugin `{}` has no shadow candidate", self.name))?;
        let candidate = shadow.run.id().to_string();
        graveyard.push(shadow.run);
        Ok(LifecycleEvent::ShadowDiscarded {
            plugin: self.name.to_string(),
            candidate,
        })
    }

    // ---- the frame path --------------------------------------------------------

    /// Calls `run` on one frame, re-instantiating it first if its instance
    /// died. Returns the verified reply or the failure.
    fn call(
        run: &mut Running,
        runtime: &Runtime,
        params: &Option<Params>,
        frame: &[u8],
        ws: i64,
        stats: Option<&mut PluginStats>,
        out: &mut FrameOutcome,
    ) -> Result<InsightsData, CallFailure> {
        if run.instance.is_none() {
            let fresh = PluginInstance::new(runtime, &run.compiled, params.clone())?;
            run.instance = Some(fresh);
            if let Some(stats) = stats {
                stats.restarts += 1;
            }
            out.events.push(LifecycleEvent::Restarted {
                plugin: run.compiled.name().to_string(),
                version: run.id().to_string(),
            });
        }
        let instance = run.instance.as_mut().expect("just made");
        instance.call_frame(frame, ws)
    }

    pub(crate) fn run_frame(
        &mut self,
        runtime: &Runtime,
        frame: &[u8],
        ws: i64,
        out: &mut FrameOutcome,
        graveyard: &mut Graveyard,
    ) {
        let cfg = runtime.config();
        self.stats.frames += 1;
        let live_reply = if self.quarantine.is_some() {
            self.stats.skipped_quarantined += 1;
            None
        } else {
            let span = tracing::debug_span!("plugin.call", plugin = %self.name, version = %self.live.id(), window = ws);
            let _e = span.enter();
            let started = Instant::now();
            let restarts_before = self.stats.restarts;
            let r = Self::call(
                &mut self.live,
                runtime,
                &self.params,
                frame,
                ws,
                Some(&mut self.stats),
                out,
            );
            if self.stats.restarts != restarts_before {
                self.metrics.restarts.increment(1);
            }
            self.metrics
                .call_seconds
                .record(started.elapsed().as_secs_f64());
            self.metrics.calls.increment(1);
            self.stats.calls += 1;
            if let Some(i) = self.live.instance.as_mut() {
                let dropped = i.take_log_dropped();
                if dropped > 0 {
                    self.stats.log_dropped += dropped;
                    self.metrics.log_dropped.increment(dropped);
                }
            }
            match r {
                Ok(data) => {
                    self.stats.ok += 1;
                    self.stats.consecutive_failures = 0;
                    self.ok_since_swap += 1;
                    self.record_outcome(false, cfg);
                    Some(data)
                }
                Err(f) => {
                    self.live_failed(f, ws, cfg, out, graveyard);
                    None
                }
            }
        };

        if let Some(shadow) = self.shadow.as_mut().filter(|s| !s.stats.stopped) {
            self.metrics.shadow_calls.increment(1);
            match Self::call(&mut shadow.run, runtime, &self.params, frame, ws, None, out) {
                Ok(cand) => {
                    shadow.stats.consecutive_failures = 0;
                    if let Some(live) = &live_reply {
                        let c = shadow::compare(live, &cand, cfg.shadow_tolerance);
                        shadow.stats.add(&c);
                        if c.agree {
                            self.metrics.shadow_agreed.increment(1);
                        }
                        out.shadow.push(ShadowFrame {
                            plugin: self.name.clone(),
                            live: self.live.id().clone(),
                            candidate: shadow.run.id().clone(),
                            comparison: c,
                        });
                    } else {
                        shadow.stats.live_unavailable += 1;
                    }
                }
                Err(f) => {
                    shadow.stats.candidate_failures += 1;
                    shadow.stats.consecutive_failures += 1;
                    if live_reply.is_none() {
                        shadow.stats.live_unavailable += 1;
                    }
                    if f.kind.kills_instance()
                        && let Some(i) = shadow.run.instance.take()
                    {
                        graveyard.push(Running::new(shadow.run.compiled.clone(), Some(i)));
                    }
                    let stop = shadow.stats.consecutive_failures >= cfg.failure_threshold.max(1);
                    shadow.stats.stopped = stop;
                    tracing::warn!(plugin = %self.name, candidate = %shadow.run.id(), failure = %f, stopped = stop, "shadow candidate failed");
                    out.failures.push(PluginFailure {
                        plugin: self.name.clone(),
                        version: shadow.run.id().clone(),
                        failure: f,
                        action: if stop {
                            FailureAction::ShadowStopped
                        } else {
                            FailureAction::ShadowCounted
                        },
                    });
                }
            }
        }

        if let Some(data) = live_reply {
            self.publish(data, ws, out);
        }
        self.windows_since_swap += 1;
        if self.windows_since_swap >= cfg.rollback_window
            && self.ok_since_swap > 0
            && let Some(s) = self.standby.take()
        {
            graveyard.push(s);
        }
    }

    fn publish(&mut self, data: InsightsData, ws: i64, out: &mut FrameOutcome) {
        if data.is_empty() {
            return;
        }
        let model = self.params.as_ref().map_or(NO_MODEL, Params::version);
        let provenance = match Provenance::from_parts(ws, &**self.live.id(), model) {
            Ok(p) => p,
            Err(e) => {
                // Cannot happen: the id and model version were validated when loaded.
                tracing::error!(plugin = %self.name, error = %e, "cannot build provenance; reply dropped");
                return;
            }
        };
        let n = data.len();
        let hash = self.live.compiled.hash_hex();
        out.insights
            .extend(
                data.into_insights(&provenance)
                    .into_iter()
                    .map(|insight| PublishedInsight {
                        insight,
                        content_hash: hash.clone(),
                    }),
            );
        self.stats.insights_published += n as u64;
        self.metrics.insights.increment(n as u64);
    }

    /// Records a live call's outcome; returns how many of the recent calls failed.
    fn record_outcome(&mut self, failed: bool, cfg: &RuntimeConfig) -> u32 {
        let keep = cfg.failure_window.1.max(1) as usize;
        self.recent.push_back(failed);
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
        self.recent.iter().filter(|f| **f).count() as u32
    }

    fn live_failed(
        &mut self,
        f: CallFailure,
        ws: i64,
        cfg: &RuntimeConfig,
        out: &mut FrameOutcome,
        graveyard: &mut Graveyard,
    ) {
        self.stats.failed(f.kind);
        self.metrics.failure(f.kind);
        if f.kind.kills_instance()
            && let Some(i) = self.live.instance.take()
        {
            graveyard.push(Running::new(self.live.compiled.clone(), Some(i)));
        }
        let version = self.live.id().clone();
        let mut action = FailureAction::Counted;
        let failed_recently = self.record_outcome(true, cfg);
        let (most, of) = cfg.failure_window;
        let too_many = most > 0 && self.recent.len() as u32 >= of && failed_recently >= most;
        if self.stats.consecutive_failures >= cfg.failure_threshold.max(1) || too_many {
            let reason = if self.stats.consecutive_failures >= cfg.failure_threshold.max(1) {
                format!(
                    "{} consecutive failures, the last: {f}",
                    self.stats.consecutive_failures
                )
            } else {
                format!("{failed_recently} of the last {of} calls failed, the last: {f}")
            };
            self.stats.quarantines += 1;
            self.metrics.quarantines.increment(1);
            let recent = self.windows_since_swap < cfg.rollback_window || self.ok_since_swap == 0;
            if self.swapped && recent && self.previous_entry().is_some() {
                action = FailureAction::RolledBack;
                out.events.push(LifecycleEvent::Quarantined {
                    plugin: self.name.to_string(),
                    version: version.to_string(),
                    reason: reason.clone(),
                });
                let event = self.auto_rollback(&reason, ws, cfg, graveyard);
                out.events.push(event);
            } else {
                action = FailureAction::Quarantined;
                tracing::error!(plugin = %self.name, version = %version, %reason, "plugin quarantined");
                out.events.push(LifecycleEvent::Quarantined {
                    plugin: self.name.to_string(),
                    version: version.to_string(),
                    reason: reason.clone(),
                });
                self.quarantine = Some(reason);
            }
        } else {
            tracing::warn!(plugin = %self.name, version = %version, failure = %f, "plugin call failed");
        }
        out.failures.push(PluginFailure {
            plugin: self.name.clone(),
            version,
            failure: f,
            action,
        });
    }

    // ---- status ------------------------------------------------------------------

    pub(crate) fn status(&self, pending: usize) -> PluginStatus {
        let mut versions: Vec<VersionEntry> = self
            .stack
            .iter()
            .rev()
            .chain(self.retired.iter())
            .map(|e| VersionEntry {
                info: e.info.clone(),
                state: e.state.clone(),
                live_since_ms: e.live_since,
                compiled: e.compiled.clone(),
            })
            .collect();
        versions.shrink_to_fit();
        PluginStatus {
            name: self.name.to_string(),
            live: self.live.info.clone(),
            quarantined: self.quarantine.clone(),
            versions,
            params: self.params.as_ref().map(params_info),
            shadow: self.shadow.as_ref().map(|s| ShadowStatus {
                candidate: s.run.info.clone(),
                since_ms: s.since,
                stats: s.stats,
                agreement_rate: s.stats.agreement_rate(),
                mean_abs_probability_diff: s.stats.mean_abs_probability_diff(),
                mean_abs_metric_diff: s.stats.mean_abs_metric_diff(),
            }),
            stats: self.stats,
            pending,
        }
    }
}

pub(crate) fn params_info(p: &Params) -> ParamsInfo {
    ParamsInfo {
        version: p.version().to_string(),
        generation: p.generation(),
        bytes: p.bytes().len(),
        params: p.clone(),
    }
}
