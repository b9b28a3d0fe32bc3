//! An in-memory source: rows given as values, cut into chunks of a chosen size.
//! For tests, examples and embedding; its position is the number of rows handed out.

use crate::batch::RowChunk;
use crate::broadcast::BroadcastEvent;
use crate::error::SourceError;
use crate::schema::Schema;
use crate::source::Source;
use crate::time::EventTime;

/// One row: event time, key, one value per schema channel (`NaN` = missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub ts: EventTime,
    pub key: String,
    pub values: Vec<f64>,
}

/// Rows (and broadcast events) held in memory, handed out `chunk_rows` at a time.
pub struct MemorySource {
    schema: Schema,
    rows: Vec<Row>,
    /// `(i, event)`: the event arrives just before row `i`.
    events: Vec<(usize, BroadcastEvent)>,
    chunk_rows: usize,
    next: usize,
    /// The chunk holding the last row (and any trailing events) was handed out.
    done: bool,
}

impl MemorySource {
    pub fn new(schema: Schema, rows: Vec<Row>, chunk_rows: usize) -> Self {
        MemorySource {
            schema,
            rows,
            events: Vec::new(),
            chunk_rows: chunk_rows.max(1),
            next: 0,
            done: false,
        }
    }

    /// Adds broadcast events; `(i, e)` arrives just before row `i` (`i == rows` after the last).
    pub fn with_events(mut self, mut events: Vec<(usize, BroadcastEvent)>) -> Self {
        events.sort_by_key(|(i, _)| *i);
        self.events = events;
        self
    }
}

impl Source for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        let total = self.rows.len();
        if self.done {
            return Ok(None);
        }
        let start = self.next;
        let end = (start + self.chunk_rows).min(total);
        let channels = self.schema.channels.len();
        let mut chunk = RowChunk::with_capacity(channels, end - start, &vec![true; channels]);
        for (i, row) in self.rows[start..end].iter().enumerate() {
            let k = chunk.intern_key(&row.key);
            chunk.ts.push(row.ts);
            chunk.keys.push(k);
            chunk.lines.push((start + i + 1) as u64);
            for (c, col) in chunk.columns.iter_mut().enumerate() {
                col.push(row.values.get(c).copied().unwrap_or(f64::NAN));
            }
        }
        // Events after the last row are delivered with the last chunk.
        let last = end == total;
        self.done = last;
        for (at, e) in &self.events {
            let in_chunk = (*at >= start && *at < end) || (last && *at >= end);
            if in_chunk {
                chunk.events.push(((*at).min(end) - start, e.clone()));
            }
        }
        chunk.end_position = end as u64;
        self.next = end;
        Ok(Some(chunk))
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        let p = position as usize;
        if p > self.rows.len() {
            return Err(SourceError::Seek {
                source_name: "memory".into(),
                position,
                reason: format!("only {} rows", self.rows.len()),
            });
        }
        self.next = p;
        self.done = p == self.rows.len() && p > 0;
        Ok(())
    }
}
