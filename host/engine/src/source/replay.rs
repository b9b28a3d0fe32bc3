//! Replaying a recorded race: at a speed factor, from a point of the race.
//!
//! In: any [`Source`] of a recording. Out: the same rows and events, with
//! * **pacing**: a chunk is handed on only when the wall clock says its event time
//!   is due at `speed` × real time (`None`: as fast as possible). Pacing changes
//!   when rows are delivered, never their content or event times — the engine
//!   stays a pure function of the input;
//! * **seek**: rows with event time before `start_at` are dropped (their windows are
//!   never opened); broadcast events before it are kept, so the race state (flags,
//!   tyres, who is in the pit lane) is right from the first window.
//!
//! The wall clock here only times delivery; it is the one place a replay reads it.

use std::time::{Duration, Instant};

use crate::batch::RowChunk;
use crate::error::SourceError;
use crate::schema::Schema;
use crate::source::Source;
use crate::time::EventTime;

/// Replay options.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplayOptions {
    /// Event-time seconds per wall second (1 = real time); `None` = as fast as possible.
    pub speed: Option<f64>,
    /// Drop rows before this event time.
    pub start_at: Option<EventTime>,
    /// Ticks per second of the schema's time unit (to pace).
    pub ticks_per_second: i64,
}

/// A paced, seekable view of a recording.
pub struct Replay<S> {
    inner: S,
    opts: ReplayOptions,
    /// Wall instant and event time of the first delivered row.
    anchor: Option<(Instant, EventTime)>,
    /// Rows dropped by `start_at`.
    pub skipped_before_start: u64,
}

impl<S: Source> Replay<S> {
    pub fn new(inner: S, opts: ReplayOptions) -> Self {
        Replay {
            inner,
            opts,
            anchor: None,
            skipped_before_start: 0,
        }
    }

    fn pace(&mut self, chunk: &RowChunk) {
        let (Some(speed), Some(&first)) = (self.opts.speed, chunk.ts.first()) else {
            return;
        };
        if speed.is_nan() || speed <= 0.0 {
            return;
        }
        let (t0, e0) = *self.anchor.get_or_insert((Instant::now(), first));
        // Hand the chunk on when its newest row is due.
        let newest = chunk.ts.iter().copied().max().unwrap_or(first);
        let due_s = (newest - e0) as f64 / self.opts.ticks_per_second.max(1) as f64 / speed;
        if due_s > 0.0 {
            let due = t0 + Duration::from_secs_f64(due_s);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }
}

/// Keeps rows with `ts >= start`, moving events to the kept rows' positions.
fn drop_before(chunk: &mut RowChunk, start: EventTime) -> u64 {
    if chunk.ts.iter().all(|&t| t >= start) {
        return 0;
    }
    let n = chunk.len();
    let keep: Vec<bool> = chunk.ts.iter().map(|&t| t >= start).collect();
    // New index of each old row position (events point at positions).
    let mut new_pos = Vec::with_capacity(n + 1);
    let mut k = 0;
    for &kept in &keep {
        new_pos.push(k);
        if kept {
            k += 1;
        }
    }
    new_pos.push(k);
    fn keep_marked<T>(v: &mut Vec<T>, keep: &[bool]) {
        let mut it = keep.iter();
        v.retain(|_| *it.next().unwrap_or(&false));
    }
    keep_marked(&mut chunk.ts, &keep);
    keep_marked(&mut chunk.keys, &keep);
    keep_marked(&mut chunk.lines, &keep);
    for col in &mut chunk.columns {
        if col.len() == n {
            keep_marked(col, &keep);
        }
    }
    for (at, _) in &mut chunk.events {
        *at = new_pos[(*at).min(n)];
    }
    (n - k) as u64
}

impl<S: Source> Source for Replay<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema(&self) -> &Schema {
        self.inner.schema()
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        let Some(mut chunk) = self.inner.next_chunk()? else {
            return Ok(None);
        };
        if let Some(start) = self.opts.start_at {
            self.skipped_before_start += drop_before(&mut chunk, start);
        }
        self.pace(&chunk);
        Ok(Some(chunk))
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        self.inner.seek(position)
    }

    fn resume_after(&mut self, max_event_time: Option<EventTime>) {
        self.inner.resume_after(max_event_time);
    }

    fn recycle(&mut self, chunk: RowChunk) {
        self.inner.recycle(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::{BroadcastEvent, EventKind};
    use crate::source::memory::{MemorySource, Row};

    #[test]
    fn start_at_drops_earlier_rows_and_keeps_events() {
        let rows: Vec<Row> = [0, 500, 1000, 400, 1500]
            .into_iter()
            .map(|ts| Row {
                ts,
                key: "1".into(),
                values: vec![1.0; 6],
            })
            .collect();
        let ev = BroadcastEvent {
            ts: 10,
            kind: EventKind::Flag,
            car: None,
            value: "GREEN".into(),
        };
        let src = MemorySource::new(crate::Schema::f1_bench(), rows, 10).with_events(vec![(1, ev)]);
        let mut r = Replay::new(
            src,
            ReplayOptions {
                start_at: Some(500),
                ticks_per_second: 1000,
                ..ReplayOptions::default()
            },
        );
        let c = r.next_chunk().unwrap().unwrap();
        assert_eq!(c.ts, vec![500, 1000, 1500]);
        assert_eq!(c.lines, vec![2, 3, 5]);
        assert_eq!(c.columns[0].len(), 3);
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.events[0].0, 0);
        assert_eq!(r.skipped_before_start, 2);
        c.check_shape(&[0, 1, 2, 3, 4, 5]).unwrap();
    }
}
