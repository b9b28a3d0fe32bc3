//! # pitwall-engine
//!
//! The host engine's core, with no knowledge of HTTP or WASM:
//!
//! ```text
//! sources ──► watermark + late split ──► partition by car ──► sampling ──► tumbling windows ──► results
//! (file, sim,    (input order)              (SampleBatch)      (per car,     (per car, event time)   (+ broadcast
//!  push)              │                                          per channel)                         state at end)
//!                     └──► late-data side output
//! ```
//!
//! Every operator is a pure function of its input order: the watermark advances
//! from event timestamps only, never from the wall clock, so a replay gives
//! identical outputs and a job stopped half-way and restored from a checkpoint
//! gives exactly the outputs of an uninterrupted run.

pub mod aggregate;
pub mod batch;
pub mod broadcast;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod job;
pub mod output;
pub mod row_writer;
pub mod sampling;
pub mod schema;
pub mod source;
pub mod time;
pub mod window;

pub use batch::{KeyDictionary, KeyId, RowChunk, SampleBatch};
pub use config::{JobConfig, JobPlan};
pub use engine::{Collector, EngineStats, LateRow, VecCollector, WindowEngine, WindowResult};
pub use error::{CheckpointError, ConfigError, EngineError, RecordError, SourceError};
pub use job::{JobOptions, JobSink, JobSummary, Progress, run_job};
pub use schema::{ChannelSpec, ChannelType, Schema};
pub use time::{EventTime, TimeUnit};
