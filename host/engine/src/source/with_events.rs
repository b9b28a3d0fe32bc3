//! Merges a separate, time-ordered list of broadcast events (race control, pit
//! stops) into a telemetry source's chunks.
//!
//! In: a [`Source`] of rows and the events of the same session. Out: the same
//! chunks with each event placed (in [`RowChunk::events`]) just before the first row
//! at which the stream's running maximum event time reaches the event's time — the
//! moment a live feed would have delivered it. Events after the last row come with
//! the last chunk (an empty chunk if need be), so every event is delivered once.
//!
//! The placement depends only on the rows' times, so it is the same however the
//! rows are chunked, and after a checkpoint restore the events already delivered
//! are exactly those at or before the restored maximum event time
//! ([`Source::resume_after`]).

use crate::batch::RowChunk;
use crate::broadcast::BroadcastEvent;
use crate::error::SourceError;
use crate::schema::Schema;
use crate::source::Source;
use crate::time::EventTime;

/// A source with broadcast events merged in by event time.
pub struct WithEvents<S> {
    inner: S,
    /// Sorted by time (stable: same-time events keep their given order).
    events: Vec<BroadcastEvent>,
    next: usize,
    max_ts: Option<EventTime>,
    position: u64,
    done: bool,
}

impl<S: Source> WithEvents<S> {
    pub fn new(inner: S, mut events: Vec<BroadcastEvent>) -> Self {
        events.sort_by_key(|e| e.ts);
        WithEvents {
            inner,
            events,
            next: 0,
            max_ts: None,
            position: 0,
            done: false,
        }
    }

    /// Events not delivered yet.
    pub fn pending_events(&self) -> usize {
        self.events.len() - self.next
    }
}

impl<S: Source> Source for WithEvents<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema(&self) -> &Schema {
        self.inner.schema()
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        if self.done {
            return Ok(None);
        }
        match self.inner.next_chunk()? {
            Some(mut chunk) => {
                for i in 0..chunk.len() {
                    let ts = chunk.ts[i];
                    let m = self.max_ts.map_or(ts, |m| m.max(ts));
                    self.max_ts = Some(m);
                    while self.next < self.events.len() && self.events[self.next].ts <= m {
                        chunk.events.push((i, self.events[self.next].clone()));
                        self.next += 1;
                    }
                }
                chunk.events.sort_by_key(|(i, _)| *i);
                self.position = chunk.end_position;
                Ok(Some(chunk))
            }
            None => {
                self.done = true;
                if self.next == self.events.len() {
                    return Ok(None);
                }
                // The rest (after the last row's time) arrive at the end of input.
                let mut chunk = RowChunk {
                    end_position: self.position,
                    ..RowChunk::default()
                };
                chunk.columns = vec![Vec::new(); self.inner.schema().channels.len()];
                chunk.events = self.events[self.next..]
                    .iter()
                    .cloned()
                    .map(|e| (0, e))
                    .collect();
                self.next = self.events.len();
                Ok(Some(chunk))
            }
        }
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        self.position = position;
        self.inner.seek(position)
    }

    fn resume_after(&mut self, max_event_time: Option<EventTime>) {
        self.max_ts = max_event_time;
        self.next = match max_event_time {
            Some(m) => self.events.partition_point(|e| e.ts <= m),
            None => 0,
        };
        self.inner.resume_after(max_event_time);
    }

    fn recycle(&mut self, chunk: RowChunk) {
        self.inner.recycle(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::EventKind;
    use crate::source::memory::{MemorySource, Row};

    fn rows() -> Vec<Row> {
        [0, 100, 50, 300, 200, 400]
            .into_iter()
            .map(|ts| Row {
                ts,
                key: "1".into(),
                values: vec![1.0; 6],
            })
            .collect()
    }

    fn ev(ts: EventTime) -> BroadcastEvent {
        BroadcastEvent {
            ts,
            kind: EventKind::Flag,
            car: None,
            value: format!("at {ts}"),
        }
    }

    fn drain(src: &mut impl Source) -> Vec<(usize, EventTime)> {
        let mut out = Vec::new();
        let mut base = 0;
        while let Some(c) = src.next_chunk().unwrap() {
            out.extend(c.events.iter().map(|(i, e)| (base + i, e.ts)));
            base += c.len();
        }
        out
    }

    #[test]
    fn events_arrive_when_the_stream_reaches_their_time_whatever_the_chunking() {
        let events = vec![ev(250), ev(0), ev(120), ev(900)];
        let want = vec![(0, 0), (3, 120), (3, 250), (6, 900)];
        for chunk_rows in [1, 2, 4, 100] {
            let mut src = WithEvents::new(
                MemorySource::new(crate::Schema::f1_bench(), rows(), chunk_rows),
                events.clone(),
            );
            assert_eq!(drain(&mut src), want, "chunk_rows {chunk_rows}");
        }
    }

    #[test]
    fn resume_after_skips_exactly_the_delivered_events() {
        let events = vec![ev(0), ev(120), ev(250), ev(900)];
        let mut src = WithEvents::new(
            MemorySource::new(crate::Schema::f1_bench(), rows(), 2),
            events,
        );
        src.seek(4).unwrap();
        // Rows 0..4 had times 0, 100, 50, 300: events at 0, 120 and 250 were delivered.
        src.resume_after(Some(300));
        assert_eq!(drain(&mut src), vec![(2, 900)]);
    }
}
