//! Broadcast state: the rare race events every car's windows must see the same way.
//!
//! In: [`BroadcastEvent`]s (flag changes, safety car, pit in/out, retirements, tyre
//! changes) arriving with the telemetry, each with its own event time.
//! Out: for each window end `E`, a [`BroadcastState`] that reflects every event with
//! `ts <= E` that had arrived when the window fired, applied in event-time order
//! (ties in arrival order). It is computed once per window start and shared by all
//! cars' windows, so it is the same for every car however the stream is partitioned.
//! State kept: the current state and the events not yet applied. An event that
//! arrives after windows it belongs to have fired is counted as late and shapes
//! every window that fires after its arrival.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::EventTime;

/// What a broadcast event says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Track flag change; `value` is the flag (`GREEN`, `YELLOW`, `RED`, `CHEQUERED`, ...).
    Flag,
    /// Safety car; `value` is `DEPLOYED` or `ENDING`/`IN`.
    SafetyCar,
    /// Virtual safety car; `value` is `DEPLOYED` or `ENDING`.
    VirtualSafetyCar,
    /// A car entered the pit lane.
    PitIn,
    /// A car left the pit lane.
    PitOut,
    /// A car retired.
    Retirement,
    /// A car changed tyres; `value` is the compound.
    TyreChange,
    /// Anything else a source wants every window to see; `value` is free text.
    Other,
}

/// One rare event on the broadcast side stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastEvent {
    pub ts: EventTime,
    pub kind: EventKind,
    /// The car it concerns, if any (pit, retirement, tyre change).
    #[serde(default)]
    pub car: Option<String>,
    #[serde(default)]
    pub value: String,
}

/// The race-wide state every window sees.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BroadcastState {
    /// Latest track flag.
    pub flag: Option<String>,
    /// Safety car deployed.
    pub safety_car: bool,
    /// Virtual safety car deployed.
    pub virtual_safety_car: bool,
    /// Cars in the pit lane now.
    pub in_pit: std::collections::BTreeSet<String>,
    /// Cars that retired.
    pub retired: std::collections::BTreeSet<String>,
    /// Latest tyre compound per car.
    pub tyres: BTreeMap<String, String>,
    /// Latest free-text value per `Other` event name (`value` split at the first `=`).
    pub other: BTreeMap<String, String>,
    /// Event time of the last applied event.
    pub last_event_ts: Option<EventTime>,
    /// Events applied so far.
    pub applied: u64,
    /// Events ignored because a newer event (by event time) had already set the
    /// same field — a late `GREEN` from before a `RED` must not undo the `RED`.
    pub superseded: u64,
    /// Event time of the event that last set each field (`flag`, `pit:44`, …).
    stamps: BTreeMap<String, EventTime>,
}

impl BroadcastState {
    /// Event time of the event that last set the pit-lane state of `car` (its
    /// latest pit entry or exit), if any.
    pub fn pit_stamp(&self, car: &str) -> Option<EventTime> {
        self.stamps.get(&format!("pit:{car}")).copied()
    }

    /// Applies one event to the state, unless the field it sets was already set by
    /// an event with a later event time (then it is counted as superseded).
    pub fn apply(&mut self, e: &BroadcastEvent) {
        let car = e.car.clone().unwrap_or_default();
        let field = match e.kind {
            EventKind::Flag => "flag".to_string(),
            EventKind::SafetyCar => "safety_car".to_string(),
            EventKind::VirtualSafetyCar => "virtual_safety_car".to_string(),
            EventKind::PitIn | EventKind::PitOut => format!("pit:{car}"),
            EventKind::Retirement => format!("retired:{car}"),
            EventKind::TyreChange => format!("tyre:{car}"),
            EventKind::Other => format!(
                "other:{}",
                e.value.split_once('=').map_or(e.value.as_str(), |(k, _)| k)
            ),
        };
        match self.stamps.get(&field) {
            Some(&t) if t > e.ts => {
                self.superseded += 1;
                return;
            }
            _ => {
                self.stamps.insert(field, e.ts);
            }
        }
        match e.kind {
            EventKind::Flag => self.flag = Some(e.value.clone()),
            EventKind::SafetyCar => self.safety_car = is_deployed(&e.value),
            EventKind::VirtualSafetyCar => self.virtual_safety_car = is_deployed(&e.value),
            EventKind::PitIn => {
                self.in_pit.insert(car);
            }
            EventKind::PitOut => {
                self.in_pit.remove(&car);
            }
            EventKind::Retirement => {
                self.in_pit.remove(&car);
                self.retired.insert(car);
            }
            EventKind::TyreChange => {
                self.tyres.insert(car, e.value.clone());
            }
            EventKind::Other => {
                let (k, v) = e.value.split_once('=').unwrap_or((e.value.as_str(), ""));
                self.other.insert(k.to_string(), v.to_string());
            }
        }
        self.last_event_ts = Some(self.last_event_ts.map_or(e.ts, |t| t.max(e.ts)));
        self.applied += 1;
    }
}

fn is_deployed(v: &str) -> bool {
    let v = v.to_ascii_uppercase();
    v.contains("DEPLOY") || v == "ON" || v == "TRUE" || v == "1"
}

/// Orders broadcast events by event time and hands each window the state at its end.
///
/// Each event is pushed with its *effective* time: its own event time, or — for an
/// event that arrives after windows it belongs to have already fired — the first
/// event time whose window had not fired yet when it arrived. Windows then see an
/// event exactly when they fired after its arrival, which makes the result the
/// same however the input is cut into chunks (and across a checkpoint restore).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BroadcastOperator {
    state: BroadcastState,
    /// Arrived but not yet applied: `(effective ts, arrival seq, event)`, kept sorted.
    pending: Vec<(EventTime, u64, BroadcastEvent)>,
    arrivals: u64,
    /// Events that arrived after a window they belong to had fired.
    pub late_events: u64,
    #[serde(skip)]
    cache: Option<Arc<BroadcastState>>,
}

impl BroadcastOperator {
    /// Takes one arriving event. `not_before` is the earliest event time whose window
    /// had not fired when it arrived (`None` before any window could fire); `late`
    /// says whether the window holding the event's own time had already fired.
    pub fn push(&mut self, e: BroadcastEvent, not_before: Option<EventTime>, late: bool) {
        self.arrivals += 1;
        if late {
            self.late_events += 1;
            metrics::counter!("pitwall_broadcast_late_events_total").increment(1);
        }
        let effective = not_before.map_or(e.ts, |nb| nb.max(e.ts));
        let key = (effective, self.arrivals);
        let at = self
            .pending
            .partition_point(|(ts, seq, _)| (*ts, *seq) <= key);
        self.pending.insert(at, (effective, self.arrivals, e));
    }

    /// The state every window ending at `end` (inclusive) sees. Calls must come with
    /// non-decreasing `end`, as windows fire in order.
    pub fn state_at(&mut self, end: EventTime) -> Arc<BroadcastState> {
        let n = self.pending.partition_point(|(ts, _, _)| *ts <= end);
        if n > 0 {
            for (_, _, e) in self.pending.drain(..n) {
                self.state.apply(&e);
            }
            self.cache = None;
        }
        self.cache
            .get_or_insert_with(|| Arc::new(self.state.clone()))
            .clone()
    }

    /// The current state (all applied events).
    pub fn state(&self) -> &BroadcastState {
        &self.state
    }

    /// Events waiting for their window to close.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, kind: EventKind, car: Option<&str>, value: &str) -> BroadcastEvent {
        BroadcastEvent {
            ts,
            kind,
            car: car.map(str::to_string),
            value: value.into(),
        }
    }

    #[test]
    fn events_apply_in_event_time_order_at_window_end() {
        let mut op = BroadcastOperator::default();
        op.push(ev(1500, EventKind::Flag, None, "GREEN"), None, false);
        op.push(ev(1200, EventKind::Flag, None, "YELLOW"), None, false);
        op.push(
            ev(2500, EventKind::SafetyCar, None, "DEPLOYED"),
            None,
            false,
        );
        let s = op.state_at(999);
        assert_eq!(s.flag, None);
        let s = op.state_at(1999);
        assert_eq!(s.flag.as_deref(), Some("GREEN"));
        assert!(!s.safety_car);
        let s = op.state_at(2999);
        assert!(s.safety_car);
        assert_eq!(op.late_events, 0);
    }

    #[test]
    fn an_older_event_arriving_late_does_not_undo_a_newer_one() {
        let mut op = BroadcastOperator::default();
        op.push(ev(4000, EventKind::Flag, None, "RED"), None, false);
        assert_eq!(op.state_at(4999).flag.as_deref(), Some("RED"));
        op.push(ev(1000, EventKind::Flag, None, "GREEN"), Some(5000), true);
        let s = op.state_at(5999);
        assert_eq!(s.flag.as_deref(), Some("RED"));
        assert_eq!(s.superseded, 1);
        // Other fields are independent: an old pit event still lands.
        op.push(ev(1000, EventKind::PitIn, Some("4"), ""), Some(6000), true);
        assert!(op.state_at(6999).in_pit.contains("4"));
    }

    #[test]
    fn late_event_is_counted_and_still_applied() {
        let mut op = BroadcastOperator::default();
        assert!(op.state_at(1999).in_pit.is_empty());
        // Windows up to 1999 fired before it arrived: it counts from 2000 on.
        op.push(ev(1000, EventKind::PitIn, Some("44"), ""), Some(2000), true);
        assert_eq!(op.late_events, 1);
        assert!(op.state_at(2999).in_pit.contains("44"));
    }
}
