//! The window engine: one chunk of input rows in, fired windows and late rows out.
//!
//! ```text
//! RowChunk (input order) ─► watermark + late split ─► partition by car ─► sampling ─► tumbling windows
//!                                  │                                                      │ watermark
//!                                  └─► Collector::late                 Collector::window ◄┘ (+ broadcast state)
//! ```
//!
//! Semantics (exactly; no wall clock anywhere):
//! * a row's window is `[ws, ws + size)`, `ws = ts - ts mod size`, per car;
//! * the watermark is `max event time seen so far (all cars) - bound`, updated after
//!   each row in input order;
//! * a window fires once `wm >= ws + size - 1 + allowed_lateness`; windows fire in
//!   order of `ws` (then car);
//! * a row is late when, on its arrival, its window's fire condition already holds
//!   (whether or not its car had rows there): it goes to the late-data side output
//!   and is counted per car;
//! * at end of input ([`WindowEngine::finish`]) every open window fires.
//!
//! Windows are fired at chunk boundaries rather than after every row. That changes
//! nothing observable: a row that is not late belongs to a window that has not
//! fired, and the fired windows' order and contents — including the broadcast
//! state they see and the keyed-state expiry — are defined row by row and
//! computed so that any cut of the input into chunks gives identical outputs.
//! That is what makes checkpoints exact.
//!
//! State ([`EngineState`], serialisable): the watermark's max event time, the key
//! dictionary, per car the keyed state (last event time, sampler state, open
//! windows), the broadcast operator, and the counters.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Accumulator, IndexedRows};
use crate::batch::{KeyDictionary, KeyId, RowChunk, SampleBatch};
use crate::broadcast::{BroadcastOperator, BroadcastState};
use crate::config::JobPlan;
use crate::error::RecordError;
use crate::sampling::{SamplerState, SamplingPlan};
use crate::schema::KeyType;
use crate::time::{EventTime, window_start};
use crate::window::{OpenWindow, TumblingWindows};

/// Rows between flushes of the per-car row lists: each car's rows are aggregated
/// while this stretch of the chunk is still in cache (a 64 Ki-row chunk of 20
/// interleaved cars would otherwise stream through memory once per car). Where the
/// flushes fall changes no result: aggregates fold in input order.
const FLUSH_ROWS: usize = 4096;

/// One fired window of one car.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult {
    pub key: KeyId,
    pub car: Arc<str>,
    pub start: EventTime,
    /// Rows of the car in the window.
    pub rows: u64,
    /// One value per declared aggregate (`NaN`: no value).
    pub values: Vec<f64>,
    /// The race-wide state at the window's end, shared by every car's window.
    pub broadcast: Arc<BroadcastState>,
}

/// A row that arrived after its window fired.
#[derive(Debug, Clone, Copy)]
pub struct LateRow<'a> {
    pub chunk: &'a RowChunk,
    /// Index of the row in `chunk`.
    pub row: usize,
    pub car: &'a Arc<str>,
    pub window_start: EventTime,
    /// The watermark when the row arrived.
    pub watermark: EventTime,
}

/// Where the engine's outputs go.
pub trait Collector {
    /// A window fired.
    fn window(&mut self, w: WindowResult);
    /// A late row, for the late-data side output. The row is counted either way.
    fn late(&mut self, _row: LateRow<'_>) {}
}

/// Collects everything in memory (tests, small jobs).
#[derive(Debug, Default)]
pub struct VecCollector {
    pub windows: Vec<WindowResult>,
    /// `(car, line, ts, window_start, watermark)` of each late row.
    pub late: Vec<(Arc<str>, u64, EventTime, EventTime, EventTime)>,
}

impl Collector for VecCollector {
    fn window(&mut self, w: WindowResult) {
        self.windows.push(w);
    }
    fn late(&mut self, r: LateRow<'_>) {
        self.late.push((
            r.car.clone(),
            r.chunk.lines[r.row],
            r.chunk.ts[r.row],
            r.window_start,
            r.watermark,
        ));
    }
}

/// Counters of a job, part of its state (deterministic; restored with checkpoints).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Rows the engine received (late ones included, skipped malformed ones not).
    pub rows_in: u64,
    pub late_rows: u64,
    /// Late rows per key (by [`KeyId`]).
    pub late_rows_per_key: Vec<u64>,
    /// Malformed rows the sources skipped.
    pub skipped_rows: u64,
    pub windows_fired: u64,
    /// Values dropped by adaptive sampling, per schema channel.
    pub thinned_per_channel: Vec<u64>,
    /// Cars whose keyed state expired (TTL).
    pub keys_expired: u64,
    pub broadcast_events: u64,
    pub chunks: u64,
}

/// Keyed state of one car.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CarState {
    /// Largest event time of the car's on-time rows.
    last_seen: EventTime,
    sampler: SamplerState,
    windows: TumblingWindows,
}

/// Everything a checkpoint must hold of the engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    max_ts: Option<EventTime>,
    keys: KeyDictionary,
    cars: Vec<Option<CarState>>,
    broadcast: BroadcastOperator,
    stats: EngineStats,
}

/// The keyed, event-time window engine.
pub struct WindowEngine {
    plan: Arc<JobPlan>,
    sampling: SamplingPlan,
    /// Channels copied into per-car batches (read by aggregates).
    used: Vec<usize>,
    state: EngineState,
    /// Row indexes of the current chunk per key, waiting to be flushed.
    pending_rows: Vec<Vec<u32>>,
    touched: Vec<KeyId>,
    /// Keys of this chunk's late rows (for the per-car late counter).
    late_keys: Vec<KeyId>,
    local: Vec<KeyId>,
    batch: SampleBatch,
    fired: Vec<(EventTime, KeyId, Accumulator)>,
}

impl WindowEngine {
    pub fn new(plan: Arc<JobPlan>) -> Self {
        Self::from_state(plan, EngineState::default())
    }

    /// An engine that continues from a checkpointed state.
    pub fn from_state(plan: Arc<JobPlan>, state: EngineState) -> Self {
        let used_mask = plan.aggregates.used_channels().to_vec();
        let sampling = SamplingPlan::compile(&plan.schema, &used_mask);
        let used = (0..used_mask.len()).filter(|&c| used_mask[c]).collect();
        let channels = plan.schema.channels.len();
        let mut state = state;
        state.stats.thinned_per_channel.resize(channels, 0);
        WindowEngine {
            sampling,
            used,
            state,
            pending_rows: Vec::new(),
            touched: Vec::new(),
            late_keys: Vec::new(),
            local: Vec::new(),
            batch: SampleBatch {
                key: 0,
                ts: Vec::new(),
                columns: vec![Vec::new(); channels],
            },
            fired: Vec::new(),
            plan,
        }
    }

    pub fn plan(&self) -> &Arc<JobPlan> {
        &self.plan
    }

    /// The state to checkpoint.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    pub fn stats(&self) -> &EngineStats {
        &self.state.stats
    }

    pub fn keys(&self) -> &KeyDictionary {
        &self.state.keys
    }

    /// The largest event time seen so far (`None` before the first row).
    pub fn max_event_time(&self) -> Option<EventTime> {
        self.state.max_ts
    }

    /// The current watermark (`None` before the first row).
    pub fn watermark(&self) -> Option<EventTime> {
        self.state.max_ts.map(|m| m.saturating_sub(self.plan.bound))
    }

    /// Windows open now, over all cars.
    pub fn open_windows(&self) -> usize {
        self.state
            .cars
            .iter()
            .flatten()
            .map(|c| c.windows.len())
            .sum()
    }

    /// Cars with live keyed state.
    pub fn live_keys(&self) -> usize {
        self.state.cars.iter().flatten().count()
    }

    /// The broadcast state as of now (all events applied so far).
    pub fn broadcast(&self) -> &BroadcastState {
        self.state.broadcast.state()
    }

    /// Processes one chunk; fires the windows its rows' watermark closes.
    ///
    /// A malformed chunk (see [`RowChunk::check_shape`]) is refused whole, before
    /// any state changes.
    pub fn process_chunk(
        &mut self,
        chunk: &RowChunk,
        out: &mut dyn Collector,
    ) -> Result<(), RecordError> {
        let _span = tracing::trace_span!("window_chunk", rows = chunk.len()).entered();
        chunk.check_shape(&self.used)?;
        self.local.clear();
        for name in &chunk.key_names {
            let id = self.state.keys.intern(name);
            self.local.push(id);
        }
        let nkeys = self.state.keys.len();
        if self.state.cars.len() < nkeys {
            self.state.cars.resize_with(nkeys, || None);
            self.state.stats.late_rows_per_key.resize(nkeys, 0);
        }
        if self.pending_rows.len() < nkeys {
            self.pending_rows.resize_with(nkeys, Vec::new);
        }

        let plan = self.plan.clone();
        let (size, bound) = (plan.size, plan.bound);
        // `EventTime::MIN` stands for "no row yet": event times are at least
        // MIN_EVENT_TIME (checked above), so that watermark makes nothing late
        // and expires nothing.
        let ttl = plan.ttl.unwrap_or(EventTime::MAX);
        let mut max_ts = self.state.max_ts.unwrap_or(EventTime::MIN);
        let mut events = chunk.events.iter().peekable();
        let mut next_event_at = events.peek().map_or(usize::MAX, |(at, _)| *at);
        let mut late_in_chunk = 0u64;
        // The window of the previous row: rows arrive nearly in time order, so
        // most rows fall in it and skip the division.
        let (mut cur_ws, mut cur_end, mut cur_fire) = (0, EventTime::MIN, 0);

        for i in 0..chunk.len() {
            if next_event_at <= i {
                while let Some((at, _)) = events.peek()
                    && *at <= i
                {
                    let (_, e) = events.next().expect("peeked");
                    self.push_event(e.clone(), max_ts);
                }
                next_event_at = events.peek().map_or(usize::MAX, |(at, _)| *at);
            }
            let ts = chunk.ts[i];
            let key = self.local[chunk.keys[i] as usize];
            if ts < cur_ws || ts >= cur_end {
                cur_ws = window_start(ts, size);
                cur_end = cur_ws.saturating_add(size);
                cur_fire = plan.fire_at(cur_ws);
            }
            let wm = max_ts.saturating_sub(bound);
            if wm >= cur_fire {
                late_in_chunk += 1;
                self.state.stats.late_rows_per_key[key as usize] += 1;
                self.late_keys.push(key);
                out.late(LateRow {
                    chunk,
                    row: i,
                    car: self.state.keys.name(key),
                    window_start: cur_ws,
                    watermark: wm,
                });
            } else {
                let car = &mut self.state.cars[key as usize];
                match car {
                    None => {
                        *car = Some(CarState {
                            last_seen: ts,
                            sampler: self.sampling.new_state(),
                            windows: TumblingWindows::default(),
                        });
                    }
                    Some(c) => {
                        if c.last_seen.saturating_add(ttl) <= wm {
                            // The car was silent past its TTL before this row: its
                            // keyed state expired then. Rows before this one still
                            // belong to the old state.
                            self.flush_key(key, chunk);
                            let c = self.state.cars[key as usize].as_mut().expect("live");
                            c.sampler = self.sampling.new_state();
                            c.last_seen = ts;
                            self.state.stats.keys_expired += 1;
                        } else if ts > c.last_seen {
                            c.last_seen = ts;
                        }
                    }
                }
                let rows = &mut self.pending_rows[key as usize];
                if rows.is_empty() {
                    self.touched.push(key);
                }
                rows.push(i as u32);
            }
            max_ts = max_ts.max(ts);
            if i % FLUSH_ROWS == FLUSH_ROWS - 1 {
                self.flush_touched(chunk);
            }
        }
        for (_, e) in events {
            self.push_event(e.clone(), max_ts);
        }
        if !chunk.is_empty() {
            self.state.max_ts = Some(max_ts);
        }

        self.flush_touched(chunk);

        let stats = &mut self.state.stats;
        stats.rows_in += chunk.len() as u64;
        stats.late_rows += late_in_chunk;
        stats.skipped_rows += chunk.skipped;
        stats.chunks += 1;
        metrics::counter!("pitwall_rows_total").increment(chunk.len() as u64);
        if late_in_chunk > 0 {
            // Per car, as Flink's side-output counters are: a few late rows per chunk.
            self.late_keys.sort_unstable();
            for run in self.late_keys.chunk_by(|a, b| a == b) {
                let car = self.state.keys.name(run[0]).to_string();
                metrics::counter!("pitwall_late_rows_total", "car" => car)
                    .increment(run.len() as u64);
            }
            self.late_keys.clear();
        }

        if let Some(wm) = self.watermark() {
            self.fire(wm, out);
            self.expire_idle_keys(wm);
            metrics::gauge!("pitwall_watermark").set(wm as f64);
        }
        Ok(())
    }

    /// End of input: fires every open window, in order.
    pub fn finish(&mut self, out: &mut dyn Collector) {
        self.fire(EventTime::MAX, out);
    }

    fn push_event(&mut self, e: crate::broadcast::BroadcastEvent, max_ts: EventTime) {
        let plan = &self.plan;
        self.state.stats.broadcast_events += 1;
        // Windows ending before `not_before` had fired when the event arrived.
        let wm = (max_ts != EventTime::MIN).then(|| max_ts.saturating_sub(plan.bound));
        let not_before = wm.map(|wm| wm.saturating_sub(plan.allowed_lateness).saturating_add(1));
        let late = wm.is_some_and(|wm| wm >= plan.fire_at(window_start(e.ts, plan.size)));
        self.state.broadcast.push(e, not_before, late);
    }

    /// Flushes every car with pending rows.
    fn flush_touched(&mut self, chunk: &RowChunk) {
        let touched = std::mem::take(&mut self.touched);
        for &key in &touched {
            self.flush_key(key, chunk);
        }
        self.touched = touched;
        self.touched.clear();
    }

    /// Runs a car's pending rows of `chunk` through sampling and its windows.
    fn flush_key(&mut self, key: KeyId, chunk: &RowChunk) {
        let rows = &mut self.pending_rows[key as usize];
        if rows.is_empty() {
            return;
        }
        let car = self.state.cars[key as usize]
            .as_mut()
            .expect("rows are only queued for live cars");
        if self.sampling.is_empty() {
            // Nothing to thin: aggregate straight from the chunk through the row
            // indexes, without copying the car's rows out.
            let view = IndexedRows {
                ts: &chunk.ts,
                columns: &chunk.columns,
                idx: rows,
            };
            car.windows
                .process_rows(&view, self.plan.size, &self.plan.aggregates);
            rows.clear();
            return;
        }
        // Sampling rewrites values: copy the car's rows into a batch first.
        let b = &mut self.batch;
        b.key = key;
        b.ts.clear();
        b.ts.extend(rows.iter().map(|&i| chunk.ts[i as usize]));
        for &c in &self.used {
            let src = &chunk.columns[c];
            let dst = &mut b.columns[c];
            dst.clear();
            dst.extend(rows.iter().map(|&i| src[i as usize]));
        }
        rows.clear();
        self.sampling.apply(
            &mut car.sampler,
            b,
            &mut self.state.stats.thinned_per_channel,
        );
        car.windows
            .process_batch(b, self.plan.size, &self.plan.aggregates);
    }

    /// Fires every window with `fire_at(start) <= wm`, ordered by start, then car.
    fn fire(&mut self, wm: EventTime, out: &mut dyn Collector) {
        let plan = self.plan.clone();
        let fired = &mut self.fired;
        for (key, car) in self.state.cars.iter_mut().enumerate() {
            if let Some(car) = car {
                car.windows
                    .handle_watermark(wm, |ws| plan.fire_at(ws), &mut |w: OpenWindow| {
                        fired.push((w.start, key as KeyId, w.acc))
                    });
            }
        }
        if fired.is_empty() {
            return;
        }
        let keys = &self.state.keys;
        let ty = plan.schema.key.ty;
        fired.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| key_cmp(ty, keys.name(a.1), keys.name(b.1)))
        });
        let n = fired.len() as u64;
        for (start, key, acc) in fired.drain(..) {
            let broadcast = self
                .state
                .broadcast
                .state_at(start.saturating_add(plan.size - 1));
            out.window(WindowResult {
                key,
                car: keys.name(key).clone(),
                start,
                rows: acc.rows,
                values: plan.aggregates.finish(&acc),
                broadcast,
            });
        }
        self.state.stats.windows_fired += n;
        metrics::counter!("pitwall_windows_fired_total").increment(n);
    }

    /// Frees the state of cars silent for longer than the TTL.
    fn expire_idle_keys(&mut self, wm: EventTime) {
        let Some(ttl) = self.plan.ttl else { return };
        let mut expired = 0;
        for car in self.state.cars.iter_mut() {
            if let Some(c) = car
                && c.windows.is_empty()
                && c.last_seen.saturating_add(ttl) <= wm
            {
                *car = None;
                expired += 1;
            }
        }
        if expired > 0 {
            self.state.stats.keys_expired += expired;
            metrics::counter!("pitwall_keys_expired_total").increment(expired);
        }
    }
}

/// Orders keys as the schema says: numerically for int keys, as text otherwise.
/// A total order even if an int schema meets a non-integer key (sources refuse
/// those, but an embedder might not): integers first, then text.
pub fn key_cmp(ty: KeyType, a: &str, b: &str) -> Ordering {
    match ty {
        KeyType::Int => {
            let rank = |s: &str| s.parse::<i64>().map_or((1, 0), |v| (0, v));
            rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
        }
        KeyType::String => a.cmp(b),
    }
}
