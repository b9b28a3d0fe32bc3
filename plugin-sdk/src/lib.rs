//! # pitwall-plugin-sdk
//!
//! Everything a Pitwall plugin is written, tested and exported with, and the
//! vocabulary the host shares with it (docs/plugin-abi.md, docs/plugins.md).
//!
//! A plugin is a small Rust crate compiled to `wasm32-unknown-unknown` and
//! loaded by the host into a sandbox. Once per window it receives the race
//! frame (every car's aggregates, track and race state) as a FlatBuffer and
//! returns its insights as another. This crate holds:
//!
//! * **writing a plugin**: one trait per kind ([`StoryGenerator`],
//!   [`CarModel`], [`PairModel`]), optional [`Stateful`] hand-over on hot
//!   swaps, the zero-copy frame view ([`Frame`], [`Car`], [`Pair`], [`Race`]),
//!   the allocation-free [`Output`] builder, model parameters and logging
//!   through the [`Context`] (and the [`info!`] family of macros);
//! * **exporting it**: [`export_plugin!`] emits the `pitwall:abi` /
//!   `pitwall:info` sections and the `pitwall_*` exports;
//! * **testing it natively**: [`testing::Harness`] runs the same type through
//!   the same bytes as the host, without WASM;
//! * **the shared vocabulary**: [`ABI_VERSION`] and [`PluginKind`],
//!   [`PluginInfo`], the insights ([`Story`], [`Prediction`], [`CarMetric`],
//!   [`Insight`] with [`Provenance`]), the `Insights` wire format
//!   ([`InsightsData`], verified and validated for the host), and the
//!   deterministic [`LogRateLimiter`] the host applies to guest logs.
//!
//! ## Why these rules
//!
//! * **Determinism.** Pitwall replays give identical outputs every time. Nothing
//!   here reads a clock or a random source; the log rate limit counts event
//!   time or calls, not seconds on the wall.
//! * **Provenance.** Every insight names the window it came from, the plugin
//!   as `name@version` and the model parameters' version, so an on-air number
//!   can be traced to the code and data behind it, and a shadow run compared
//!   with the live one.
//! * **A stable vocabulary.** The bytes that cross the boundary (the
//!   `RaceFrame` and `Insights` FlatBuffers, the host functions of module
//!   `pitwall_v1`) are versioned by [`ABI_VERSION`] (docs/plugin-abi.md); the
//!   names and rules of these types are what stores, feeds and dashboards
//!   rely on, so they are fixed here and checked when built, when
//!   deserialized and when decoded from a plugin's reply
//!   ([`InsightsData::from_flatbuffer`]).
//!
//! ## Example
//!
//! ```
//! use pitwall_plugin_sdk::{Insight, PluginInfo, PluginKind, Prediction, Provenance};
//!
//! let info = PluginInfo::new("overtake", "1.2.0", PluginKind::PairModel)?;
//! let p = Prediction::builder("p_overtake", "4", "1")
//!     .probability(0.35)
//!     .horizon_laps(3)
//!     .contribution("drs", 0.9)
//!     .build()?;
//! let insight = Insight::new(Provenance::new(61_000, &info, "2024-07-01")?, p);
//! assert_eq!(insight.provenance.plugin(), "overtake@1.2.0");
//!
//! // Invalid values never get built.
//! assert!(Prediction::builder("p_overtake", "4", "1").probability(1.2).horizon_laps(3).build().is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The flatbuffers crate this SDK builds on (for hand-built buffers in tests).
pub use flatbuffers;
/// serde_json, for plugins that read their parameters as untyped JSON.
pub use serde_json;

pub mod abi;
pub mod context;
pub mod export;
pub mod frame;
pub mod guest;
pub mod info;
pub mod insight;
pub mod insights;
pub mod log;
pub mod output;
pub mod plugin;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod view;

pub use abi::{ABI_VERSION, AbiError, AbiVersion, ParsePluginKindError, PluginKind};
pub use context::{Context, ParamsError};
pub use info::{InfoError, PluginInfo};
pub use insight::{
    CarMetric, CarPair, Insight, InsightBody, InsightError, NO_MODEL, Prediction,
    PredictionBuilder, Provenance, Story, StoryBuilder,
};
pub use insights::{INSIGHTS_VERSION, InsightsData, InsightsError, read_insights};
pub use log::{
    LogLevel, LogRateLimiter, ParseLogLevelError, RateBasis, RateLimitError, TokenBucket, Verdict,
};
pub use output::{Output, PredictionDraft, StoryDraft};
pub use plugin::{
    CallError, CarModel, ExportedPlugin, PairModel, PluginResult, Runtime, StateBytes, Stateful,
    StoryGenerator,
};
pub use view::{AggIndex, Car, Frame, Pair, Race};
