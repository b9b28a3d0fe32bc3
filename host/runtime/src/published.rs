//! What leaves the runtime: an SDK [`Insight`] (window, `name@version`,
//! model version, body) plus the content hash of the `.wasm` that made it.
//!
//! The SDK's `Provenance` has no field for the content hash, so the runtime
//! wraps it instead of changing the SDK's wire type.

use std::sync::Arc;

use pitwall_plugin_sdk::{Insight, InsightBody};
use serde::Serialize;

/// One published insight with its full provenance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedInsight {
    #[serde(flatten)]
    pub insight: Insight,
    /// SHA-256 of the plugin's `.wasm`, hex.
    pub content_hash: Arc<str>,
}

impl PublishedInsight {
    pub fn plugin_name(&self) -> &str {
        self.insight.provenance.plugin_name()
    }
    pub fn plugin_version(&self) -> &str {
        self.insight.provenance.plugin_version()
    }
    /// `name@version`.
    pub fn plugin_id(&self) -> &str {
        self.insight.provenance.plugin()
    }
    /// The model parameters' version (a content hash), or `none`.
    pub fn model_version(&self) -> &str {
        self.insight.provenance.model_version()
    }
    pub fn window_start_ms(&self) -> i64 {
        self.insight.provenance.window_start_ms()
    }
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }
    pub fn body(&self) -> &InsightBody {
        &self.insight.body
    }
}
