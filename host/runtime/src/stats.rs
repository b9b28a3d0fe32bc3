//! Per-plugin counters, kept twice on purpose: as a plain struct the API
//! returns (and tests assert on), and as `metrics` counters named
//! `pitwall_plugin_…` with a `plugin` label for whatever recorder the host
//! installs (Prometheus, …). Without a recorder the metrics cost nothing.

use metrics::{Counter, Histogram};
use serde::Serialize;

use crate::error::FailureKind;

/// Failed calls by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FailureCounts {
    pub trap: u64,
    pub deadline: u64,
    pub memory_exceeded: u64,
    pub negative_return: u64,
    pub bad_reply: u64,
    pub instantiate: u64,
}

impl FailureCounts {
    pub fn get(&self, kind: FailureKind) -> u64 {
        match kind {
            FailureKind::Trap => self.trap,
            FailureKind::Deadline => self.deadline,
            FailureKind::MemoryExceeded => self.memory_exceeded,
            FailureKind::NegativeReturn => self.negative_return,
            FailureKind::BadReply => self.bad_reply,
            FailureKind::Instantiate => self.instantiate,
        }
    }

    fn bump(&mut self, kind: FailureKind) {
        let c = match kind {
            FailureKind::Trap => &mut self.trap,
            FailureKind::Deadline => &mut self.deadline,
            FailureKind::MemoryExceeded => &mut self.memory_exceeded,
            FailureKind::NegativeReturn => &mut self.negative_return,
            FailureKind::BadReply => &mut self.bad_reply,
            FailureKind::Instantiate => &mut self.instantiate,
        };
        *c += 1;
    }

    pub fn total(&self) -> u64 {
        FailureKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// Everything counted about one plugin (all its versions) since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PluginStats {
    /// Frames offered to the live version (including skipped ones).
    pub frames: u64,
    /// Calls made to the live version.
    pub calls: u64,
    /// Calls that returned a valid reply.
    pub ok: u64,
    pub failures: FailureCounts,
    /// Failures in a row, reset by a successful call or a swap.
    pub consecutive_failures: u32,
    /// Frames not called because the plugin was quarantined.
    pub skipped_quarantined: u64,
    pub insights_published: u64,
    /// Fresh instances made after one died (trap, deadline, memory).
    pub restarts: u64,
    pub quarantines: u64,
    /// Versions swapped in (deploys, promotions and rollbacks).
    pub swaps: u64,
    pub rollbacks: u64,
    pub auto_rollbacks: u64,
    /// Swaps where the new version took over the old one's state.
    pub state_handovers: u64,
    /// Swaps where the new version started with fresh state.
    pub fresh_starts: u64,
    pub params_updates: u64,
    /// Guest log calls dropped (rate limit, invalid level/UTF-8/pointer).
    pub log_dropped: u64,
}

impl PluginStats {
    pub(crate) fn failed(&mut self, kind: FailureKind) {
        self.failures.bump(kind);
        self.consecutive_failures += 1;
    }
}

/// The `metrics` handles of one plugin, registered once.
pub(crate) struct PluginMetrics {
    pub(crate) calls: Counter,
    pub(crate) failures: [Counter; 6],
    pub(crate) insights: Counter,
    pub(crate) quarantines: Counter,
    pub(crate) swaps: Counter,
    pub(crate) rollbacks: Counter,
    pub(crate) restarts: Counter,
    pub(crate) log_dropped: Counter,
    pub(crate) call_seconds: Histogram,
    pub(crate) swap_pause_seconds: Histogram,
    pub(crate) shadow_calls: Counter,
    pub(crate) shadow_agreed: Counter,
}

impl PluginMetrics {
    pub(crate) fn new(plugin: &str) -> Self {
        let p = plugin.to_string();
        let failures = FailureKind::ALL.map(|k| {
            metrics::counter!("pitwall_plugin_failures_total", "plugin" => p.clone(), "kind" => k.as_str())
        });
        PluginMetrics {
            calls: metrics::counter!("pitwall_plugin_calls_total", "plugin" => p.clone()),
            failures,
            insights: metrics::counter!("pitwall_plugin_insights_total", "plugin" => p.clone()),
            quarantines: metrics::counter!("pitwall_plugin_quarantines_total", "plugin" => p.clone()),
            swaps: metrics::counter!("pitwall_plugin_swaps_total", "plugin" => p.clone()),
            rollbacks: metrics::counter!("pitwall_plugin_rollbacks_total", "plugin" => p.clone()),
            restarts: metrics::counter!("pitwall_plugin_restarts_total", "plugin" => p.clone()),
            log_dropped: metrics::counter!("pitwall_plugin_log_dropped_total", "plugin" => p.clone()),
            call_seconds: metrics::histogram!("pitwall_plugin_call_seconds", "plugin" => p.clone()),
            swap_pause_seconds: metrics::histogram!("pitwall_plugin_swap_pause_seconds", "plugin" => p.clone()),
            shadow_calls: metrics::counter!("pitwall_plugin_shadow_calls_total", "plugin" => p.clone()),
            shadow_agreed: metrics::counter!("pitwall_plugin_shadow_agreed_total", "plugin" => p),
        }
    }

    pub(crate) fn failure(&self, kind: FailureKind) {
        let i = FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.failures[i].increment(1);
    }
}
