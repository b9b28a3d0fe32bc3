//! The insight feed hub: one numbered stream of events, a bounded replay buffer
//! and per-subscriber bounded queues.
//!
//! Why this shape:
//!
//! * **Ids come from the hub**, one counter, assigned under the same lock that
//!   appends to the replay buffer and hands the event to the subscribers. A
//!   subscriber that resumes from id `k` snapshots the buffer and registers its
//!   queue under that lock too, so it can neither miss an event published
//!   meanwhile nor see one twice.
//! * **Every subscriber has its own bounded queue** filled with `try_send`: the
//!   publisher never waits for a client. When a queue is full the subscriber
//!   is marked *lagging* (its sender is dropped, nothing more is queued for it).
//!   Once it drains what it has it asks the hub to resync: the events it
//!   missed are still in the replay buffer, so it gets them with a
//!   [`Notice::Lagged`] and carries on — nothing lost.
//! * **A subscriber that stays behind is cut off**: while lagging, every event
//!   it would have received counts as missed; past [`HubConfig::max_lag`] it is
//!   removed, its connection's [`ConnKill`] fires (a stalled TCP client never
//!   polls its stream, so only the connection can be closed) and, if it ever
//!   reads again, it gets [`Notice::Cut`] last.
//! * Events are serialized **once**, at publish: a thousand subscribers share
//!   one `Arc<Event>` and its JSON text.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_plugin_sdk::insight::InsightBody;
use pitwall_runtime::PublishedInsight;
use serde::Serialize;
use tokio::sync::{Notify, mpsc};

/// Event kinds the hub publishes (the `kinds` filter accepts exactly these).
pub const KINDS: &[&str] = &[
    KIND_STORY,
    KIND_PREDICTION,
    KIND_METRIC,
    KIND_RACE_STATE,
    KIND_RACE_PREDICTION,
];
/// A plugin story.
pub const KIND_STORY: &str = "story";
/// A plugin prediction (e.g. overtake probability).
pub const KIND_PREDICTION: &str = "prediction";
/// A plugin per-car metric.
pub const KIND_METRIC: &str = "metric";
/// Race state from a race frame (lap, flag, safety car, pit events).
pub const KIND_RACE_STATE: &str = "race_state";
/// The host's race predictor output (P(win), pit windows, ...).
pub const KIND_RACE_PREDICTION: &str = "race_prediction";

/// Sizes of the hub's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Events kept for replay to reconnecting clients (and for `/stories`).
    pub replay_capacity: usize,
    /// Events queued per subscriber before it counts as lagging.
    pub queue_capacity: usize,
    /// Events a lagging subscriber may miss before it is cut off. Keep it at
    /// most `replay_capacity`, so that a subscriber that recovers finds all
    /// it missed still in the buffer.
    pub max_lag: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            replay_capacity: 10_000,
            queue_capacity: 1_024,
            max_lag: 8_192,
        }
    }
}

/// One published item, numbered by the hub.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Monotonically increasing, starting at 1; the SSE `id`.
    pub id: u64,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// Racing numbers the event is about (empty: the race as a whole).
    pub cars: Vec<String>,
    /// Story importance, prediction probability, 1.0 for race state, 0.0 for metrics.
    pub importance: f64,
    /// The item itself, as JSON.
    pub data: serde_json::Value,
    /// The whole event as JSON text, made once at publish.
    #[serde(skip)]
    pub json: Arc<str>,
}

/// An item not yet numbered: what [`FeedHub::publish`] takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: &'static str,
    pub cars: Vec<String>,
    pub importance: f64,
    pub data: serde_json::Value,
}

impl NewEvent {
    /// A plugin insight: kind from its body (story, prediction, metric), the
    /// cars it names, its importance (story) or probability (prediction).
    pub fn from_insight(insight: &PublishedInsight) -> Result<Self, serde_json::Error> {
        let (kind, importance) = match insight.body() {
            InsightBody::Story(s) => (KIND_STORY, s.importance()),
            InsightBody::Prediction(p) => (KIND_PREDICTION, p.probability()),
            InsightBody::Metric(_) => (KIND_METRIC, 0.0),
        };
        Ok(Self {
            kind,
            cars: insight
                .body()
                .cars()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            importance,
            data: serde_json::to_value(insight)?,
        })
    }

    /// The race-wide state of a frame (not the per-car telemetry: that is
    /// `/telemetry/live`'s job): window, lap, flag, safety cars, pit events.
    pub fn race_state(frame: &RaceFrameData) -> Result<Self, serde_json::Error> {
        let data = serde_json::json!({
            "session": frame.session,
            "seq": frame.seq,
            "window_start_ms": frame.window_start_ms,
            "window_end_ms": frame.window_end_ms,
            "race": serde_json::to_value(&frame.race)?,
        });
        Ok(Self {
            kind: KIND_RACE_STATE,
            cars: Vec::new(),
            importance: 1.0,
            data,
        })
    }
}

impl NewEvent {
    /// The race predictor's output carried by a frame (`p_win@1`,
    /// `pred_lap_s@1`, ... one value per car), as one event keyed by car:
    /// `{"lap": 12, "cars": {"1": {"p_win@1": 0.61, ...}, ...}}`. `None` when
    /// the frame carries no predictions. NaN values are left out.
    pub fn race_prediction(frame: &RaceFrameData) -> Option<Self> {
        if frame.kernels.is_empty() {
            return None;
        }
        let mut cars = serde_json::Map::new();
        for (i, car) in frame.cars.iter().enumerate() {
            let mut values = serde_json::Map::new();
            for k in &frame.kernels {
                if let Some(v) = k.values.get(i).copied().filter(|v| v.is_finite()) {
                    values.insert(k.name.clone(), v.into());
                }
            }
            if !values.is_empty() {
                cars.insert(car.car.to_string(), values.into());
            }
        }
        Some(Self {
            kind: KIND_RACE_PREDICTION,
            cars: Vec::new(),
            importance: 1.0,
            data: serde_json::json!({
                "session": frame.session,
                "seq": frame.seq,
                "window_start_ms": frame.window_start_ms,
                "lap": frame.race.lap,
                "cars": cars,
            }),
        })
    }
}

/// What a subscriber receives besides events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// The subscriber's queue overflowed; `missed` events were recovered from
    /// the replay buffer and follow this notice, in order.
    Lagged { missed: u64 },
    /// Events after `requested` are no longer in the replay buffer (or
    /// `requested` is newer than anything published: the server restarted);
    /// the stream continues from `oldest`. Clients should reload state.
    Reset { requested: u64, oldest: u64 },
    /// The subscriber stayed behind more than the hub allows and is
    /// disconnected; nothing follows.
    Cut { missed: u64 },
}

impl Notice {
    /// The SSE event name / WS `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Notice::Lagged { .. } => "lagged",
            Notice::Reset { .. } => "reset",
            Notice::Cut { .. } => "cut",
        }
    }
}

/// One item of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Event(Arc<Event>),
    Notice(Notice),
}

/// Which events a subscriber wants. Empty sets mean "all".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub kinds: Vec<&'static str>,
    /// Racing numbers. Events about no car (race-wide) always pass.
    pub cars: Vec<String>,
    pub min_importance: Option<f64>,
}

impl Filter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && (self.cars.is_empty()
                || event.cars.is_empty()
                || event.cars.iter().any(|c| self.cars.contains(c)))
            && self.min_importance.is_none_or(|m| event.importance >= m)
    }
}

/// A connection's kill switch: fired by the hub when it cuts the connection's
/// subscriber off, awaited by the connection's task, which then drops the
/// socket. Needed because a client that never reads never polls its stream.
#[derive(Debug, Clone, Default)]
pub struct ConnKill(Arc<ConnKillInner>);

#[derive(Debug, Default)]
struct ConnKillInner {
    fired: AtomicBool,
    notify: Notify,
}

impl ConnKill {
    pub fn new() -> Self {
        Self::default()
    }
    /// Fires the switch (idempotent).
    pub fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }
    pub fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }
    /// Resolves once [`ConnKill::fire`] has been called (at once if it already was).
    pub async fn fired(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_fired() {
                return;
            }
            notified.await;
        }
    }
}

/// Counters, for tests, `/health` and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HubStats {
    /// Id of the newest event (0: none yet).
    pub last_id: u64,
    /// Id of the oldest event still in the replay buffer (0: none).
    pub oldest_id: u64,
    pub buffered: usize,
    pub subscribers: usize,
    /// Times a subscriber's queue overflowed.
    pub lagged: u64,
    /// Subscribers cut off for staying behind.
    pub cut: u64,
}

/// The hub. Cheap to clone; all clones publish into the same stream.
#[derive(Debug, Clone)]
pub struct FeedHub {
    inner: Arc<Mutex<State>>,
    config: HubConfig,
}

#[derive(Debug)]
struct State {
    next_id: u64,
    /// Every kind, the newest `replay_capacity` events.
    buffer: VecDeque<Arc<Event>>,
    /// Per kind, its newest `replay_capacity` events: a flood of one kind
    /// (per-car metrics, every window) must not evict the rare ones (stories)
    /// that a client filtered on them wants replayed, or `/stories` pages.
    by_kind: HashMap<&'static str, KindBuffer>,
    subs: HashMap<u64, SubEntry>,
    next_sub: u64,
    lagged: u64,
    cut: u64,
}

#[derive(Debug, Default)]
struct KindBuffer {
    events: VecDeque<Arc<Event>>,
    /// Id of the newest event of this kind evicted so far (0: none).
    evicted_up_to: u64,
}

#[derive(Debug)]
struct SubEntry {
    filter: Arc<Filter>,
    /// `None` while lagging.
    tx: Option<mpsc::Sender<Arc<Event>>>,
    missed: u64,
    kill: Option<ConnKill>,
    cut: Arc<AtomicBool>,
}

impl FeedHub {
    pub fn new(config: HubConfig) -> Self {
        assert!(config.replay_capacity > 0 && config.queue_capacity > 0);
        Self {
            inner: Arc::new(Mutex::new(State {
                next_id: 1,
                buffer: VecDeque::with_capacity(config.replay_capacity.min(1 << 16)),
                by_kind: HashMap::new(),
                subs: HashMap::new(),
                next_sub: 0,
                lagged: 0,
                cut: 0,
            })),
            config,
        }
    }

    pub fn config(&self) -> HubConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update
        // is a single push/insert), so poisoning is not a reason to stop.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers `event`, keeps it for replay and offers it to every matching
    /// subscriber without waiting; returns its id.
    pub fn publish(&self, event: NewEvent) -> u64 {
        self.publish_event(event).id
    }

    /// [`Self::publish`], returning the numbered event (its id and JSON text,
    /// e.g. for the history store to keep exactly what the feed sent).
    pub fn publish_event(&self, event: NewEvent) -> Arc<Event> {
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        let json = serde_json::to_string(&EventWire {
            id,
            kind: event.kind,
            cars: &event.cars,
            importance: event.importance,
            data: &event.data,
        })
        .expect("a serde_json::Value always serializes");
        let event = Arc::new(Event {
            id,
            kind: event.kind,
            cars: event.cars,
            importance: event.importance,
            data: event.data,
            json: json.into(),
        });
        if st.buffer.len() == self.config.replay_capacity {
            st.buffer.pop_front();
        }
        st.buffer.push_back(event.clone());
        let kept = st.by_kind.entry(event.kind).or_default();
        if kept.events.len() == self.config.replay_capacity
            && let Some(old) = kept.events.pop_front()
        {
            kept.evicted_up_to = old.id;
        }
        kept.events.push_back(event.clone());

        let mut newly_lagged = 0;
        let mut cut = Vec::new();
        for (&sid, entry) in st.subs.iter_mut() {
            if !entry.filter.matches(&event) {
                continue;
            }
            match &entry.tx {
                Some(tx) => match tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        entry.tx = None;
                        entry.missed = 1;
                        newly_lagged += 1;
                    }
                    // The subscription is being dropped; its Drop removes it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                },
                None => {
                    entry.missed += 1;
                    if entry.missed > self.config.max_lag {
                        cut.push(sid);
                    }
                }
            }
        }
        st.lagged += newly_lagged;
        if newly_lagged > 0 {
            metrics::counter!("pitwall_feed_lagged_total").increment(newly_lagged);
        }
        for sid in cut {
            if let Some(entry) = st.subs.remove(&sid) {
                tracing::warn!(
                    subscriber = sid,
                    missed = entry.missed,
                    "feed subscriber cut off: stayed behind"
                );
                entry.cut.store(true, Ordering::SeqCst);
                if let Some(kill) = &entry.kill {
                    kill.fire();
                }
                st.cut += 1;
                metrics::counter!("pitwall_feed_cut_total").increment(1);
            }
        }
        metrics::counter!("pitwall_feed_events_total", "kind" => event.kind).increment(1);
        metrics::gauge!("pitwall_feed_subscribers").set(st.subs.len() as f64);
        event
    }

    /// Publishes a plugin insight.
    pub fn publish_insight(&self, insight: &PublishedInsight) -> Result<u64, serde_json::Error> {
        Ok(self.publish(NewEvent::from_insight(insight)?))
    }

    /// Publishes the race state of a frame.
    pub fn publish_race_state(&self, frame: &RaceFrameData) -> Result<u64, serde_json::Error> {
        Ok(self.publish(NewEvent::race_state(frame)?))
    }

    /// Subscribes with `filter`: live events only when `resume` is `None`;
    /// with `Some(k)` first every buffered event after `k` that passes the
    /// filter (a [`Notice::Reset`] first if some are gone). `kill` is fired if
    /// the subscriber is cut off.
    pub fn subscribe(
        &self,
        filter: Filter,
        resume: Option<u64>,
        kill: Option<ConnKill>,
    ) -> Subscription {
        let filter = Arc::new(filter);
        let (tx, rx) = mpsc::channel(self.config.queue_capacity);
        let cut = Arc::new(AtomicBool::new(false));
        let mut st = self.lock();
        let sid = st.next_sub;
        st.next_sub += 1;
        let mut backlog = VecDeque::new();
        // Live subscribers start after the newest event.
        let mut start = st.next_id - 1;
        if let Some(k) = resume
            && !filter.kinds.is_empty()
        {
            // Filtered on kinds: replay from those kinds' own buffers.
            let (notice, from) = replay_start_kinds(&st, k, &filter.kinds);
            if let Some(n) = notice {
                backlog.push_back(Item::Notice(n));
            }
            let mut events: Vec<Arc<Event>> = filter
                .kinds
                .iter()
                .filter_map(|kind| st.by_kind.get(kind))
                .flat_map(|b| b.events.iter())
                .filter(|e| e.id > from && filter.matches(e))
                .cloned()
                .collect();
            events.sort_by_key(|e| e.id);
            events.dedup_by_key(|e| e.id);
            backlog.extend(events.into_iter().map(Item::Event));
            start = from;
        } else if let Some(k) = resume {
            let (notice, from) = replay_start(&st, k);
            if let Some(n) = notice {
                backlog.push_back(Item::Notice(n));
            }
            backlog.extend(
                st.buffer
                    .iter()
                    .filter(|e| e.id > from && filter.matches(e))
                    .cloned()
                    .map(Item::Event),
            );
            start = from;
        }
        st.subs.insert(
            sid,
            SubEntry {
                filter: filter.clone(),
                tx: Some(tx),
                missed: 0,
                kill,
                cut: cut.clone(),
            },
        );
        metrics::gauge!("pitwall_feed_subscribers").set(st.subs.len() as f64);
        drop(st);
        tracing::debug!(subscriber = sid, ?resume, "feed subscriber joined");
        Subscription {
            hub: self.clone(),
            sid,
            filter,
            rx,
            backlog,
            last_delivered: start,
            cut,
            done: false,
        }
    }

    /// Up to `limit` buffered events of `kind`, newest first, with ids below
    /// `before` (all when `None`): the paging behind `/stories`.
    pub fn recent(&self, kind: &str, before: Option<u64>, limit: usize) -> Vec<Arc<Event>> {
        let st = self.lock();
        st.by_kind
            .get(kind)
            .into_iter()
            .flat_map(|b| b.events.iter().rev())
            .filter(|e| before.is_none_or(|b| e.id < b))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> HubStats {
        let st = self.lock();
        HubStats {
            last_id: st.next_id - 1,
            oldest_id: st.buffer.front().map_or(0, |e| e.id),
            buffered: st.buffer.len(),
            subscribers: st.subs.len(),
            lagged: st.lagged,
            cut: st.cut,
        }
    }
}

/// [`replay_start`] for a subscriber of `kinds` only: a reset when an event
/// of one of those kinds after `k` was evicted.
fn replay_start_kinds(st: &State, k: u64, kinds: &[&'static str]) -> (Option<Notice>, u64) {
    let newest = st.next_id - 1;
    let evicted = kinds
        .iter()
        .filter_map(|kind| st.by_kind.get(kind))
        .map(|b| b.evicted_up_to)
        .max()
        .unwrap_or(0);
    if k > newest || evicted > k {
        (
            Some(Notice::Reset {
                requested: k,
                oldest: evicted + 1,
            }),
            evicted,
        )
    } else {
        (None, k)
    }
}

/// Where a replay after `k` starts: `(notice, from)`, events with id > `from`
/// follow. A gap (evicted events) or an id from the future gives a reset.
fn replay_start(st: &State, k: u64) -> (Option<Notice>, u64) {
    let newest = st.next_id - 1;
    let oldest = st.buffer.front().map_or(st.next_id, |e| e.id);
    // Newer than anything published (the server restarted), or evicted.
    if k > newest || k + 1 < oldest {
        (
            Some(Notice::Reset {
                requested: k,
                oldest,
            }),
            oldest - 1,
        )
    } else {
        (None, k)
    }
}

#[derive(Serialize)]
struct EventWire<'a> {
    id: u64,
    kind: &'static str,
    cars: &'a [String],
    importance: f64,
    data: &'a serde_json::Value,
}

/// A subscriber's end: yields events in id order and notices. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    hub: FeedHub,
    sid: u64,
    filter: Arc<Filter>,
    rx: mpsc::Receiver<Arc<Event>>,
    backlog: VecDeque<Item>,
    last_delivered: u64,
    cut: Arc<AtomicBool>,
    done: bool,
}

impl Subscription {
    /// The next item; `None` once the subscriber was cut off (after
    /// [`Notice::Cut`]). Cancel-safe: the only await is the queue's `recv`.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.backlog.pop_front() {
                if let Item::Event(e) = &item {
                    self.last_delivered = e.id;
                }
                return Some(item);
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Some(event) => {
                    // The queue only holds events newer than the backlog.
                    debug_assert!(event.id > self.last_delivered);
                    self.last_delivered = event.id;
                    return Some(Item::Event(event));
                }
                None => self.resync(),
            }
        }
    }

    /// The queue's sender is gone: the hub marked this subscriber lagging (or
    /// cut it off). Recover what was missed from the replay buffer under the
    /// hub's lock and take a fresh queue.
    fn resync(&mut self) {
        let mut st = self.hub.lock();
        let Some(entry) = st.subs.get_mut(&self.sid) else {
            self.done = true;
            if self.cut.load(Ordering::SeqCst) {
                self.backlog.push_back(Item::Notice(Notice::Cut {
                    missed: self.hub.config.max_lag + 1,
                }));
            }
            return;
        };
        let missed = entry.missed;
        let (tx, rx) = mpsc::channel(self.hub.config.queue_capacity);
        entry.tx = Some(tx);
        entry.missed = 0;
        self.rx = rx;
        let (notice, from) = replay_start(&st, self.last_delivered);
        self.backlog
            .push_back(Item::Notice(notice.unwrap_or(Notice::Lagged { missed })));
        let filter = &self.filter;
        self.backlog.extend(
            st.buffer
                .iter()
                .filter(|e| e.id > from && filter.matches(e))
                .cloned()
                .map(Item::Event),
        );
        tracing::debug!(
            subscriber = self.sid,
            missed,
            "feed subscriber resynced after lag"
        );
    }

    /// Id of the last event handed out (or the resume point).
    pub fn last_delivered(&self) -> u64 {
        self.last_delivered
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut st = self.hub.lock();
        st.subs.remove(&self.sid);
        metrics::gauge!("pitwall_feed_subscribers").set(st.subs.len() as f64);
    }
}

#[cfg(test)]
mod tests;
