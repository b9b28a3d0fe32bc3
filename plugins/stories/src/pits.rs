//! Pit stops (with their pit-lane time and the places they cost) and the
//! undercuts and overcuts they start.
//!
//! In: each window's `in_pit` flags, pit-lane events and running order. Out:
//! `pit_stop` drafts (cars `[car]`, evidence `pit_lane_s`, `positions_lost`)
//! and `undercut` / `overcut` drafts (evidence `worked` 1/0). State: each car's
//! stop in progress and last position outside one, and the open duels.
//!
//! A stop is the union of what the sources say: it starts at the first of
//! the `in_pit` flag rising and a pit-in event, and ends at the last of the
//! flag falling and a pit-out event (the track model and the timing feed do not
//! agree to the second). `pit_lane_s` is the events' entry-to-exit time when
//! both are known, else the flag's. The story is told
//! [`PitParams::settle_s`] after the stop ends, when the places lost (position
//! now minus position before the stop) have settled.
//!
//! **Undercut / overcut**: when a car starts a stop within
//! [`PitParams::duel_interval_s`] of the car directly ahead, it tries an
//! undercut on it; within that of the car directly behind, the car behind
//! (staying out) tries an overcut. The duel is settled when the rival's own
//! stop has ended and settled, if it started within [`PitParams::duel_laps`]
//! laps: the attempt worked if its maker is then ahead of the rival.

use std::collections::BTreeMap;

use pitwall_plugin_sdk::Frame;
use pitwall_plugin_sdk::frame::PitEventKind;
use pitwall_plugin_sdk::view::Flag;
use serde::{Deserialize, Serialize};

use crate::limit::Draft;
use crate::overtakes::front_weight;

/// Thresholds of the pit-stop stories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PitParams {
    /// Wait this long after the exit before counting places lost, s.
    pub settle_s: f64,
    /// A stop this close (interval, s) to the car ahead or behind starts a duel.
    pub duel_interval_s: f64,
    /// The rival must stop within this many laps for an undercut or overcut.
    pub duel_laps: u16,
}

impl Default for PitParams {
    fn default() -> Self {
        PitParams {
            settle_s: 5.0,
            duel_interval_s: 3.5,
            duel_laps: 5,
        }
    }
}

/// One car's stop in progress (or ended, settling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stop {
    /// Start by the flag / by the pit-in event.
    flag_in_ms: Option<i64>,
    event_in_ms: Option<i64>,
    flag_out_ms: Option<i64>,
    event_out_ms: Option<i64>,
    /// Still in the pit lane by the flag.
    flag_on: bool,
    /// Position before the stop (0 = unknown).
    position_before: u8,
    lap: u16,
}

impl Stop {
    fn ended(&self) -> bool {
        !self.flag_on && (self.event_in_ms.is_none() || self.event_out_ms.is_some())
    }
    fn end_ms(&self) -> Option<i64> {
        self.flag_out_ms.into_iter().chain(self.event_out_ms).max()
    }
    fn pit_lane_s(&self) -> Option<f64> {
        let (a, b) = match (self.event_in_ms, self.event_out_ms) {
            (Some(a), Some(b)) => (a, b),
            _ => (self.flag_in_ms?, self.flag_out_ms?),
        };
        Some((b - a) as f64 / 1000.0)
    }
}

/// An undercut (`maker` stopped first, from behind `rival`) or an overcut
/// (`maker` stayed out, behind `rival`, who stopped first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Duel {
    undercut: bool,
    maker: u16,
    rival: u16,
    /// The car whose stop is still to come.
    waiting_for: u16,
    /// Leader lap when it started.
    lap: u16,
    /// Set once the second stop has started.
    second_started: bool,
}

/// See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pits {
    stops: BTreeMap<u16, Stop>,
    /// Last position of each car outside a stop.
    position: BTreeMap<u16, u8>,
    duels: Vec<Duel>,
}

impl Pits {
    /// Reads one frame; pushes the stories due to `drafts`.
    pub fn update(&mut self, frame: &Frame<'_>, p: &PitParams, drafts: &mut Vec<Draft>) {
        let race = frame.race();
        let (start, end) = (frame.window_start_ms(), frame.window_end_ms());
        let mut started = Vec::new();
        for (ts, car, kind) in race.pit_events() {
            let stop = self.stops.entry(car).or_insert_with(|| {
                started.push(car);
                new_stop(self.position.get(&car).copied(), race.lap())
            });
            match kind {
                PitEventKind::PitIn => {
                    stop.event_in_ms.get_or_insert(ts);
                }
                PitEventKind::PitOut => stop.event_out_ms = Some(ts),
            }
        }
        for car in frame.cars() {
            let n = car.number();
            if car.in_pit() {
                let stop = self.stops.entry(n).or_insert_with(|| {
                    started.push(n);
                    new_stop(self.position.get(&n).copied(), race.lap())
                });
                stop.flag_in_ms.get_or_insert(start);
                stop.flag_on = true;
                stop.flag_out_ms = None;
            } else {
                if let Some(stop) = self.stops.get_mut(&n)
                    && stop.flag_on
                {
                    stop.flag_on = false;
                    stop.flag_out_ms = Some(start);
                }
                if !self.stops.contains_key(&n)
                    && let Some(pos) = car.position()
                {
                    self.position.insert(n, pos);
                }
            }
        }
        let telling = race.under_way() && race.flag() != Flag::Chequered;
        if telling {
            self.start_duels(frame, &started, p);
        }
        // Stops that ended and settled.
        let settle_ms = (p.settle_s.max(0.0) * 1000.0) as i64;
        let done: Vec<u16> = self
            .stops
            .iter()
            .filter(|(_, s)| s.ended() && s.end_ms().is_some_and(|e| end - e >= settle_ms))
            .map(|(&c, _)| c)
            .collect();
        for car in done {
            let stop = self.stops.remove(&car).expect("listed above");
            let Some(now) = frame.car(car).filter(|c| !c.retired()) else {
                continue;
            };
            let after = now.position().unwrap_or(0);
            if after > 0 {
                self.position.insert(car, after);
            }
            if !telling {
                continue;
            }
            let lost = if stop.position_before > 0 && after > 0 {
                f64::from(after) - f64::from(stop.position_before)
            } else {
                f64::NAN
            };
            let lane = stop.pit_lane_s().unwrap_or(f64::NAN);
            let mut headline = format!("#{car} pits on lap {}", stop.lap);
            if lane.is_finite() {
                headline += &format!(": {lane:.1} s in the pit lane");
            }
            if lost.is_finite() {
                headline += &match lost as i64 {
                    0 => ", keeps the place".to_string(),
                    n if n > 0 => format!(", drops from P{} to P{after}", stop.position_before),
                    _ => format!(", up from P{} to P{after}", stop.position_before),
                };
            }
            let w = front_weight(stop.position_before.min(after.max(1)));
            drafts.push(
                Draft::new("pit_stop", &[car], headline, 0.6 + w)
                    .evidence("pit_lane_s", lane)
                    .evidence("positions_lost", lost)
                    .evidence("position", f64::from(after))
                    .evidence("lap", f64::from(stop.lap)),
            );
            self.settle_duels(car, frame, drafts);
        }
        // Duels whose rival never stopped in time.
        let lap = race.lap();
        self.duels
            .retain(|d| d.second_started || lap <= d.lap.saturating_add(p.duel_laps));
        if !telling {
            self.duels.clear();
        }
    }

    /// Opens duels for the cars that started a stop in this window.
    fn start_duels(&mut self, frame: &Frame<'_>, started: &[u16], p: &PitParams) {
        let order = frame.running_order();
        for &car in started {
            // A stop that settles a duel is the second stop, not a new attempt.
            let mut second = false;
            for d in self.duels.iter_mut().filter(|d| d.waiting_for == car) {
                d.second_started = true;
                second = true;
            }
            if second {
                continue;
            }
            let Some(i) = order.iter().position(|c| c.number() == car) else {
                continue;
            };
            // `car`'s own `in_pit` may already be set; only the rival must be
            // on track, within the interval.
            let close = |behind: usize, rival: usize| {
                order[behind]
                    .interval_s()
                    .is_some_and(|x| x <= p.duel_interval_s)
                    && !order[rival].in_pit()
            };
            // The car ahead stays out: an undercut attempt by `car`.
            if i > 0 && close(i, i - 1) {
                let rival = order[i - 1].number();
                self.duels.push(Duel {
                    undercut: true,
                    maker: car,
                    rival,
                    waiting_for: rival,
                    lap: frame.race().lap(),
                    second_started: false,
                });
            }
            // The car behind stays out: an overcut attempt by it.
            if i + 1 < order.len() && close(i + 1, i + 1) {
                let maker = order[i + 1].number();
                self.duels.push(Duel {
                    undercut: false,
                    maker,
                    rival: car,
                    waiting_for: maker,
                    lap: frame.race().lap(),
                    second_started: false,
                });
            }
        }
    }

    /// `car`'s stop has settled: the duels waiting for it are decided.
    fn settle_duels(&mut self, car: u16, frame: &Frame<'_>, drafts: &mut Vec<Draft>) {
        let pos = |n: u16| {
            frame
                .car(n)
                .filter(|c| !c.retired())
                .and_then(|c| c.position())
        };
        let mut keep = Vec::with_capacity(self.duels.len());
        for d in std::mem::take(&mut self.duels) {
            if d.waiting_for != car || !d.second_started {
                keep.push(d);
                continue;
            }
            let (Some(pm), Some(pr)) = (pos(d.maker), pos(d.rival)) else {
                continue;
            };
            let worked = pm < pr;
            let (kind, what) = if d.undercut {
                ("undercut", "undercut")
            } else {
                ("overcut", "overcut")
            };
            let headline = format!(
                "The {what} by #{} on #{} {}: P{pm} against P{pr}",
                d.maker,
                d.rival,
                if worked { "worked" } else { "failed" }
            );
            drafts.push(
                Draft::new(
                    kind,
                    &[d.maker, d.rival],
                    headline,
                    0.45 + front_weight(pm.min(pr)) + if worked { 0.1 } else { 0.0 },
                )
                .evidence("worked", if worked { 1.0 } else { 0.0 })
                .evidence("position", f64::from(pm))
                .evidence("rival_position", f64::from(pr)),
            );
        }
        self.duels = keep;
    }
}

fn new_stop(position_before: Option<u8>, lap: u16) -> Stop {
    Stop {
        flag_in_ms: None,
        event_in_ms: None,
        flag_out_ms: None,
        event_out_ms: None,
        flag_on: false,
        position_before: position_before.unwrap_or(0),
        lap,
    }
}
