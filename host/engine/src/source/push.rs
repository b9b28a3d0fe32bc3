//! A push source: producers (HTTP ingest, NATS subscribers) send chunks into a
//! bounded channel; the engine pulls them like any other source.
//!
//! Back-pressure is the point: [`PushHandle::try_push`] answers
//! [`PushError::Full`] when the engine is behind, so an HTTP handler can reply
//! `429`/`503` with `Retry-After` instead of buffering without bound, and
//! [`PushHandle::push`] blocks a producer that can afford to wait.

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::batch::RowChunk;
use crate::error::SourceError;
use crate::schema::Schema;
use crate::source::Source;

/// Why a push was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    #[error("the engine's input queue is full ({capacity} chunks); retry later")]
    Full { capacity: usize },
    #[error("the engine has stopped taking input")]
    Closed,
}

/// The producer side; cheap to clone, one per connection.
#[derive(Debug, Clone)]
pub struct PushHandle {
    tx: Sender<RowChunk>,
    capacity: usize,
}

impl PushHandle {
    /// Hands a chunk to the engine, or refuses at once when the queue is full.
    pub fn try_push(&self, chunk: RowChunk) -> Result<(), PushError> {
        self.tx.try_send(chunk).map_err(|e| match e {
            TrySendError::Full(_) => PushError::Full {
                capacity: self.capacity,
            },
            TrySendError::Disconnected(_) => PushError::Closed,
        })
    }

    /// Hands a chunk to the engine, waiting while the queue is full.
    pub fn push(&self, chunk: RowChunk) -> Result<(), PushError> {
        self.tx.send(chunk).map_err(|_| PushError::Closed)
    }

    /// Chunks waiting in the queue.
    pub fn depth(&self) -> usize {
        self.tx.len()
    }
}

/// The engine side of a push source. Ends when every [`PushHandle`] is dropped.
pub struct PushSource {
    name: String,
    schema: Schema,
    rx: Receiver<RowChunk>,
    position: u64,
}

impl PushSource {
    /// A push source whose queue holds at most `capacity` chunks.
    pub fn new(name: impl Into<String>, schema: Schema, capacity: usize) -> (Self, PushHandle) {
        let capacity = capacity.max(1);
        let (tx, rx) = bounded(capacity);
        (
            PushSource {
                name: name.into(),
                schema,
                rx,
                position: 0,
            },
            PushHandle { tx, capacity },
        )
    }
}

impl Source for PushSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        metrics::gauge!("pitwall_queue_depth", "stage" => "push_source").set(self.rx.len() as f64);
        match self.rx.recv() {
            Ok(mut chunk) => {
                // A push source counts chunks: its position is how many it has handed on.
                self.position += 1;
                chunk.end_position = self.position;
                Ok(Some(chunk))
            }
            Err(_) => Ok(None),
        }
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        // Pushed data is not replayable by the engine: the producer resends from
        // its own offset (NATS JetStream does). Record where we are so positions
        // stay monotonic across a restore.
        self.position = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_refuses_instead_of_buffering() {
        let (mut src, h) = PushSource::new("test", Schema::f1_bench(), 2);
        h.try_push(RowChunk::default()).unwrap();
        h.try_push(RowChunk::default()).unwrap();
        assert_eq!(
            h.try_push(RowChunk::default()),
            Err(PushError::Full { capacity: 2 })
        );
        assert_eq!(src.next_chunk().unwrap().unwrap().end_position, 1);
        h.try_push(RowChunk::default()).unwrap();
        drop(h);
        assert_eq!(src.next_chunk().unwrap().unwrap().end_position, 2);
        assert_eq!(src.next_chunk().unwrap().unwrap().end_position, 3);
        assert!(src.next_chunk().unwrap().is_none());
    }
}
