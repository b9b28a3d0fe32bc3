//! Tumbling event-time windows of one car.
//!
//! In: a car's on-time [`SampleBatch`]es (rows in input order; a row's window is
//! `[ws, ws + size)` with `ws = ts - ts mod size`). Out: the accumulators of the
//! windows whose fire time the watermark has reached, oldest first. State: the
//! car's open windows, sorted by start — with a bound of a few windows, a car
//! holds only a handful, so a sorted deque beats any map.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Accumulator, AggregatePlan, DenseRows, Rows};
use crate::batch::SampleBatch;
use crate::time::{EventTime, window_start};

/// One open window of one car.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenWindow {
    pub start: EventTime,
    pub acc: Accumulator,
}

/// The open windows of one car.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TumblingWindows {
    open: VecDeque<OpenWindow>,
}

impl TumblingWindows {
    /// Folds a batch into its windows: runs of rows in the same window are
    /// aggregated column by column.
    pub fn process_batch(&mut self, batch: &SampleBatch, size: EventTime, plan: &AggregatePlan) {
        self.process_rows(
            &DenseRows {
                ts: &batch.ts,
                columns: &batch.columns,
            },
            size,
            plan,
        )
    }

    /// Like [`TumblingWindows::process_batch`], for any [`Rows`] view.
    pub fn process_rows<R: Rows>(&mut self, rows: &R, size: EventTime, plan: &AggregatePlan) {
        let n = rows.len();
        let mut i = 0;
        while i < n {
            let ws = window_start(rows.ts(i), size);
            let we = ws.saturating_add(size);
            let mut j = i + 1;
            while j < n {
                let t = rows.ts(j);
                if t < ws || t >= we {
                    break;
                }
                j += 1;
            }
            let w = self.window_mut(ws, plan);
            plan.update_rows(&mut w.acc, rows, i..j);
            i = j;
        }
    }

    fn window_mut(&mut self, ws: EventTime, plan: &AggregatePlan) -> &mut OpenWindow {
        // Usually the newest window; search from the back.
        let pos = self.open.iter().rposition(|w| w.start <= ws);
        let at = match pos {
            Some(p) if self.open[p].start == ws => return &mut self.open[p],
            Some(p) => p + 1,
            None => 0,
        };
        self.open.insert(
            at,
            OpenWindow {
                start: ws,
                acc: plan.new_accumulator(),
            },
        );
        &mut self.open[at]
    }

    /// Removes and returns, oldest first, the windows with `fire_at(start) <= wm`.
    pub fn handle_watermark(
        &mut self,
        wm: EventTime,
        fire_at: impl Fn(EventTime) -> EventTime,
        out: &mut impl FnMut(OpenWindow),
    ) {
        while let Some(w) = self.open.front() {
            if fire_at(w.start) > wm {
                break;
            }
            out(self.open.pop_front().expect("front exists"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }
}
