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
    #[error("rejected: {0}")]
    Invalid(#[from] crate::error::RecordError),
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
    schema: std::sync::Arc<Schema>,
}

impl PushHandle {
    /// Hands a chunk to the engine, or refuses at once when the queue is full.
    /// A chunk that does not follow the schema is refused with the reason.
    pub fn try_push(&self, chunk: RowChunk) -> Result<(), PushError> {
        chunk.validate(&self.schema, &[])?;
        self.tx.try_send(chunk).map_err(|e| match e {
            TrySendError::Full(_) => PushError::Full {
                capacity: self.capacity,
            },
            TrySendError::Disconnected(_) => PushError::Closed,
        })
    }

    /// Hands a chunk to the engine, waiting while the queue is full.
    pub fn push(&self, chunk: RowChunk) -> Result<(), PushError> {
        chunk.validate(&self.schema, &[])?;
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
                schema: schema.clone(),
                rx,
                position: 0,
            },
            PushHandle {
                tx,
                capacity,
                schema: std::sync::Arc::new(schema),
            },
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
    fn a_chunk_that_breaks_the_schema_is_refused() {
        let (_src, h) = PushSource::new("test", Schema::f1_bench(), 2);
        let mut c = RowChunk::with_capacity(6, 1, &[true; 6]);
        let k = c.intern_key("44");
        c.ts.push(0);
        c.keys.push(k);
        c.lines.push(1);
        for (i, col) in c.columns.iter_mut().enumerate() {
            col.push(if i == 0 { 999.0 } else { 1.0 });
        }
        let err = h.try_push(c.clone()).unwrap_err().to_string();
        assert!(err.contains("speed") && err.contains("maximum"), "{err}");
        c.columns[0][0] = 200.0;
        h.try_push(c.clone()).unwrap();
        c.columns[2].clear();
        assert!(matches!(h.try_push(c), Err(PushError::Invalid(_))));
    }

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
