//! Race frames and window aggregates as Parquet (issue 6): the data-lake role
//! S3 plays in the AWS reference designs. A race replayed or windowed by
//! Pitwall becomes files that DuckDB, Spark, polars or pandas query directly.
//!
//! * [`FramesWriter`]: race frames ([`RaceFrameData`]), one row per car per
//!   window (see [`frames`]).
//! * [`AggregatesWriter`]: the engine's fired windows ([`WindowResult`]), one
//!   row per key per window, the content of `pitwall window`'s CSV with typed
//!   columns (see [`aggregates`]); [`AggregatesSink`] runs a job into one.
//!
//! Both stream: `create(path)`, `write(..)` as often as needed, `finish()`.
//! Rows are buffered column by column and written every
//! [`DEFAULT_ROW_GROUP_ROWS`] rows as one row group, so memory stays bounded
//! by one row group whatever the length of the race. Files are written beside
//! their final name and renamed into place when finished.
//!
//! ## Why the low-level writer, without Arrow
//!
//! The parquet crate's `SerializedFileWriter` with a schema built in code and
//! typed column writers is all a fixed, flat schema needs: no `arrow` feature
//! (which would compile arrow-array, -ipc, -select and more only to build
//! record batches we would fill from the same loops). Snappy (pure Rust) is
//! the only codec compiled in.
//!
//! [`RaceFrameData`]: pitwall_plugin_sdk::frame::RaceFrameData
//! [`WindowResult`]: pitwall_engine::WindowResult

pub mod aggregates;
mod column;
mod error;
pub mod frames;
mod table;

pub use aggregates::{AggregateColumns, AggregatesSink, AggregatesWriter};
pub use error::LakeError;
pub use frames::{FrameStats, FramesWriter};
pub use table::Stats;

/// Rows per row group by default: 64 Ki rows is a few MiB of buffered
/// columns, about 3 000 one-second windows of a 20-car field — large enough
/// for good compression and few footer entries, small enough to keep memory
/// flat.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 64 * 1024;

/// How a writer cuts its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Rows per row group (at least 1); the last group may be smaller.
    pub row_group_rows: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
        }
    }
}
