//! What the frame loop reports about one frame, and about lifecycle changes.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::CallFailure;
use crate::published::PublishedInsight;
use crate::shadow::FrameComparison;

/// How the new version got its state on a swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "handover")]
pub enum Handover {
    /// The old version's snapshot was restored into the new one.
    Restored {
        from_state_version: u32,
        bytes: usize,
    },
    /// The new version starts with fresh state, and why.
    Fresh { reason: String },
}

/// A change to the set of running plugins, applied at a window boundary.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum LifecycleEvent {
    Loaded {
        plugin: String,
        version: String,
        content_hash: String,
    },
    Swapped {
        plugin: String,
        from: String,
        to: String,
        handover: Handover,
        /// Time the frame loop spent on the swap (state handover included).
        #[serde(with = "micros")]
        pause: Duration,
    },
    RolledBack {
        plugin: String,
        from: String,
        to: String,
        automatic: bool,
        reason: String,
        handover: Handover,
    },
    Quarantined {
        plugin: String,
        version: String,
        reason: String,
    },
    Resumed {
        plugin: String,
        version: String,
    },
    Unloaded {
        plugin: String,
        version: String,
    },
    ParamsUpdated {
        plugin: String,
        model_version: String,
        generation: u64,
    },
    ShadowStarted {
        plugin: String,
        candidate: String,
        handover: Handover,
    },
    ShadowPromoted {
        plugin: String,
        from: String,
        to: String,
        handover: Handover,
    },
    ShadowDiscarded {
        plugin: String,
        candidate: String,
    },
    /// A fresh instance replaced a dead one (after a trap).
    Restarted {
        plugin: String,
        version: String,
    },
}

mod micros {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e6)
    }
}

/// What the runtime did about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    /// Counted; the plugin keeps running (re-instantiated first if the instance died).
    Counted,
    /// The failure threshold was reached: no more frames until an operator acts.
    Quarantined,
    /// Quarantined soon after a swap: the previous version is live again.
    RolledBack,
    /// A shadow candidate's failure (never affects the live version).
    ShadowCounted,
    /// A shadow candidate reached the failure threshold and was stopped.
    ShadowStopped,
}

/// One failed call in one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginFailure {
    pub plugin: Arc<str>,
    /// `name@version` of the version that failed.
    pub version: Arc<str>,
    pub failure: CallFailure,
    pub action: FailureAction,
}

impl Serialize for CallFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("CallFailure", 2)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("message", &self.message)?;
        st.end()
    }
}

/// A shadow candidate's comparison for one frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowFrame {
    pub plugin: Arc<str>,
    pub live: Arc<str>,
    pub candidate: Arc<str>,
    pub comparison: FrameComparison,
}

/// Everything one frame produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FrameOutcome {
    pub window_start_ms: i64,
    /// Insights of the live versions, in plugin-name order, each with provenance.
    pub insights: Vec<PublishedInsight>,
    pub failures: Vec<PluginFailure>,
    pub shadow: Vec<ShadowFrame>,
    /// Lifecycle changes applied at this frame's boundary (before its calls)
    /// or caused by its failures (after them).
    pub events: Vec<LifecycleEvent>,
}
