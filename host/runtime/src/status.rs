//! The published view of a [`PluginSet`](crate::PluginSet): what the HTTP
//! API and CLI read while the frame loop runs.
//!
//! The frame loop owns the instances; after every frame it stores a fresh
//! [`SetStatus`] with `arc-swap`, so readers on any thread get a consistent
//! snapshot with one atomic load and never block the loop.

use std::sync::Arc;

use serde::Serialize;

use crate::compiled::{CompiledPlugin, VersionInfo};
use crate::shadow::ShadowStats;
use crate::stats::PluginStats;
use crate::store::Params;

/// Where a version stands in a plugin's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum VersionState {
    /// Receiving frames now.
    Live,
    /// Was live before; `rollback` goes back to the newest of these.
    Previous,
    /// Was rolled back from (by an operator, or automatically with the reason).
    RolledBack(String),
}

/// One entry of a plugin's version list.
#[derive(Debug, Clone, Serialize)]
pub struct VersionEntry {
    #[serde(flatten)]
    pub info: Arc<VersionInfo>,
    #[serde(flatten)]
    pub state: VersionState,
    /// Window at which it last became live.
    pub live_since_ms: Option<i64>,
    #[serde(skip)]
    pub(crate) compiled: Arc<CompiledPlugin>,
}

impl VersionEntry {
    pub fn compiled(&self) -> &Arc<CompiledPlugin> {
        &self.compiled
    }
}

/// The current model parameters of a plugin.
#[derive(Debug, Clone, Serialize)]
pub struct ParamsInfo {
    /// Content hash of the blob (what provenance carries as model version).
    pub version: String,
    pub generation: u64,
    pub bytes: usize,
    #[serde(skip)]
    pub(crate) params: Params,
}

/// A running shadow candidate.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowStatus {
    pub candidate: Arc<VersionInfo>,
    pub since_ms: i64,
    pub stats: ShadowStats,
    /// Agreement rate, mean |Δp| and mean |Δmetric| (also computable from `stats`).
    pub agreement_rate: Option<f64>,
    pub mean_abs_probability_diff: Option<f64>,
    pub mean_abs_metric_diff: Option<f64>,
}

/// One plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub live: Arc<VersionInfo>,
    /// Why the plugin receives no frames, if it is quarantined.
    pub quarantined: Option<String>,
    /// Newest first: live, then previous versions, then rolled-back ones.
    pub versions: Vec<VersionEntry>,
    pub params: Option<ParamsInfo>,
    pub shadow: Option<ShadowStatus>,
    pub stats: PluginStats,
    /// Changes queued for a later boundary.
    pub pending: usize,
}

/// Every plugin of one set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetStatus {
    /// Window start of the last frame processed.
    pub last_window_start_ms: Option<i64>,
    pub frames: u64,
    pub plugins: Vec<PluginStatus>,
    /// Parameters supplied for plugins not loaded yet.
    pub staged_params: Vec<(String, ParamsInfo)>,
    /// Changes queued for a later boundary, all plugins.
    pub pending: usize,
}

impl SetStatus {
    pub fn plugin(&self, name: &str) -> Option<&PluginStatus> {
        self.plugins.iter().find(|p| p.name == name)
    }
}
