//! Sources: where rows enter the engine.
//!
//! One trait covers pull sources (files, the simulator, recorded races) and push
//! sources (HTTP ingest, NATS): a push source is a bounded channel whose receiving
//! end implements [`Source`] ([`push::PushSource`]), so producers feel back-pressure
//! when the engine is slow instead of the engine buffering without bound.
//!
//! A source yields [`RowChunk`]s in input order and can resume from the position
//! stored in a checkpoint ([`RowChunk::end_position`]).

pub mod csv;
pub mod file;
pub mod memory;
pub mod ndjson;
pub mod push;
pub mod replay;
pub mod sim;
pub mod with_events;

use serde::{Deserialize, Serialize};

use crate::batch::RowChunk;
use crate::error::SourceError;
use crate::schema::Schema;
use crate::time::EventTime;

/// What a source does with a malformed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the job with an error naming the file and line.
    #[default]
    Fail,
    /// Skip the record, count it (`RowChunk::skipped`, metrics) and log the first few reasons.
    Skip,
}

/// Options every source honours.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// `projection[c]`: the job uses channel `c`. Unused channels are not parsed
    /// (their text is still checked to be present when required).
    pub projection: Vec<bool>,
    pub on_error: OnError,
    /// Target rows per chunk.
    pub chunk_rows: usize,
}

impl SourceOptions {
    /// All channels projected, fail on error, 64 Ki rows per chunk.
    pub fn all(schema: &Schema) -> Self {
        SourceOptions {
            projection: vec![true; schema.channels.len()],
            on_error: OnError::Fail,
            chunk_rows: 64 * 1024,
        }
    }
}

/// A stream of telemetry rows in input order.
pub trait Source: Send {
    /// A name for errors and metrics (`data/race.csv`, `simulator`, `http`).
    fn name(&self) -> &str;

    /// The schema the rows follow.
    fn schema(&self) -> &Schema;

    /// The next chunk, in input order; `Ok(None)` at the end of input. A push
    /// source blocks until rows arrive or its producers are gone.
    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError>;

    /// Continues after `position`, a value taken from [`RowChunk::end_position`]
    /// (as stored in a checkpoint). Must be called before the first `next_chunk`.
    fn seek(&mut self, position: u64) -> Result<(), SourceError>;

    /// Takes back a chunk the engine is done with, so its buffers can be refilled
    /// instead of allocating (and page-faulting) fresh ones for every chunk.
    /// Sources that do not pool buffers just drop it.
    fn recycle(&mut self, _chunk: RowChunk) {}

    /// Told, after [`Source::seek`] on a checkpoint restore, the largest event time
    /// the engine had seen at that position — what a source needs that derives
    /// anything from event time (e.g. [`with_events::WithEvents`]). Most ignore it.
    fn resume_after(&mut self, _max_event_time: Option<EventTime>) {}
}

/// A boxed source is a source, so wrappers ([`with_events::WithEvents`],
/// [`replay::Replay`]) can take one chosen at run time.
impl<S: Source + ?Sized> Source for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn schema(&self) -> &Schema {
        (**self).schema()
    }
    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        (**self).next_chunk()
    }
    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        (**self).seek(position)
    }
    fn recycle(&mut self, chunk: RowChunk) {
        (**self).recycle(chunk)
    }
    fn resume_after(&mut self, max_event_time: Option<EventTime>) {
        (**self).resume_after(max_event_time)
    }
}
