//! On-track overtakes, told apart from the position changes a pit stop or a
//! retirement causes.
//!
//! In: the running order of each window. Out: `overtake` drafts, cars
//! `[attacker, defender]`. State: last window's positions, when each car was
//! last in the pit lane, and the passes waiting to be confirmed.
//!
//! **Where the frames carry distances** (a track model: `total_distance_m`),
//! the order of two cars is read the way the timing feed reads it: at
//! *virtual timing loops* every [`OvertakeParams::loop_m`] (200 m) of race
//! distance, the spacing of the feed's mini-sector loops (~20 a lap). A car's
//! crossing time is interpolated between two windows; #A passed #B between
//! loops k−1 and k when #B crossed k−1 first and #A crosses k first. Two
//! cars side by side swap places in the 4 Hz-derived order every other
//! sample; read 200 m apart that flapping mostly vanishes, while a pass and
//! a re-pass over a few hundred metres is still seen. A pass re-passed
//! before it is confirmed is a real pass (and the re-pass another) only when
//! the attacker led at a loop by [`OvertakeParams::repass_lead_s`]; below
//! that the two are side by side within the position data's resolution
//! (half a 4 Hz sample) and neither is told.
//!
//! **Timing-only frames** (no distances, e.g. a race built from the timing
//! feed alone) already change their order only at timing points: any pair
//! whose frame order flips between two windows is a candidate pass (a car
//! that gains two places in a window passes two cars), and the attacker must
//! lead by [`OvertakeParams::min_margin_s`] on the gaps at some point.
//!
//! Either way a pass becomes a story once it has stood for
//! [`OvertakeParams::confirm_s`] and neither car was in the pit lane (flag or
//! pit event) within [`OvertakeParams::pit_margin_s`] before the pass or
//! since: a car that dives into the pit lane loses places to everyone
//! behind, and a car leaving it is passed or passes on cold tyres in a way
//! that is the stop's doing, not racing. A retired or vanished car's changes
//! are never passes.
//!
//! Nothing before the race is under way, nothing after the chequered flag.

use std::collections::BTreeMap;

use pitwall_plugin_sdk::Frame;
use pitwall_plugin_sdk::view::Flag;
use serde::{Deserialize, Serialize};

use crate::limit::Draft;

/// Thresholds of the overtake detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OvertakeParams {
    /// A pass must stand this long before it is told, s.
    pub confirm_s: f64,
    /// A pit-lane visit of either car this close before the pass (or during
    /// the confirmation) makes it pit-related, s.
    pub pit_margin_s: f64,
    /// Timing-only frames: the attacker must at some point of the hold lead
    /// by this much (the defender's gap to the leader minus the attacker's), s.
    pub min_margin_s: f64,
    /// Timing-only frames: how much longer than `confirm_s` a pass may wait
    /// for that margin, s.
    pub margin_wait_s: f64,
    /// Spacing of the virtual timing loops where frames carry distances, m
    /// (the feed has ~20 mini-sector loops a lap: ~200 m on a 4–5 km track).
    pub loop_m: f64,
    /// A pass re-passed before it is confirmed counts (both are told) only
    /// if the attacker led at a loop by this much, s: below it the cars are
    /// side by side within the position data's resolution (half a 4 Hz sample).
    pub repass_lead_s: f64,
}

impl Default for OvertakeParams {
    fn default() -> Self {
        OvertakeParams {
            confirm_s: 5.0,
            pit_margin_s: 30.0,
            min_margin_s: 0.2,
            margin_wait_s: 10.0,
            loop_m: 200.0,
            repass_lead_s: 0.15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    attacker: u16,
    defender: u16,
    /// When the order flipped (the loop crossing, or the window's start).
    at_ms: i64,
    /// The largest lead seen since, s (infinite when the gaps are unknown).
    margin_s: f64,
    /// Read at the virtual timing loops (else from the frame order).
    by_loops: bool,
    /// Re-passed after a clear lead: a real pass, told once confirmed.
    repassed: bool,
}

/// Where a car was at the end of the last window, and when it crossed the
/// last few virtual timing loops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Track {
    end_ms: i64,
    distance_m: f64,
    /// The distance has changed at least once (a track model is running).
    moving: bool,
    /// Loop index → crossing time, ms.
    loops: BTreeMap<i64, f64>,
}

/// Loops remembered per car.
const LOOPS_KEPT: usize = 4;

/// See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overtakes {
    /// Last window's positions of the running cars.
    prev: BTreeMap<u16, u8>,
    /// End of the last window each car was in the pit lane.
    last_pit_ms: BTreeMap<u16, i64>,
    /// Distance and loop crossings of the running cars.
    track: BTreeMap<u16, Track>,
    pending: Vec<Pending>,
}

/// Importance of a fight for `position`: the lead most, the points more than the back.
pub fn front_weight(position: u8) -> f64 {
    match position {
        1 => 0.3,
        2..=3 => 0.2,
        4..=10 => 0.1,
        _ => 0.0,
    }
}

impl Overtakes {
    /// Reads one frame; pushes confirmed passes to `drafts`.
    pub fn update(&mut self, frame: &Frame<'_>, p: &OvertakeParams, drafts: &mut Vec<Draft>) {
        let race = frame.race();
        let now = frame.window_end_ms();
        for car in frame.cars() {
            if car.in_pit() {
                self.last_pit_ms.insert(car.number(), now);
            }
        }
        for (ts, car, _) in race.pit_events() {
            let t = self.last_pit_ms.entry(car).or_insert(ts);
            *t = (*t).max(ts);
        }
        if !race.under_way() || race.flag() == Flag::Chequered {
            self.prev.clear();
            self.track.clear();
            self.pending.clear();
            return;
        }
        let order = frame.running_order();
        let pos: BTreeMap<u16, u8> = order
            .iter()
            .filter_map(|c| Some((c.number(), c.position()?)))
            .collect();
        let crossings = self.loops(&order, now, p);
        // Frame-order flips, for pairs not both read at the loops.
        for (&a, &pa) in &pos {
            let Some(&was_a) = self.prev.get(&a) else {
                continue;
            };
            for (&b, &pb) in &pos {
                let Some(&was_b) = self.prev.get(&b) else {
                    continue;
                };
                if was_a > was_b && pa < pb && !(self.tracked(a) && self.tracked(b)) {
                    self.flip(a, b, frame.window_start_ms(), false, p);
                }
            }
        }
        // Loop flips, in crossing order.
        for &(t, x, k) in &crossings {
            self.loop_crossed(t, x, k, p);
        }
        self.prev = pos;
        self.confirm(frame, p, drafts);
    }

    fn tracked(&self, car: u16) -> bool {
        self.track.get(&car).is_some_and(|t| t.moving)
    }

    /// Updates the cars' distances; returns this window's loop crossings
    /// `(time ms, car, loop)` in time order.
    fn loops(
        &mut self,
        order: &[pitwall_plugin_sdk::Car<'_>],
        now: i64,
        p: &OvertakeParams,
    ) -> Vec<(f64, u16, i64)> {
        let loop_m = p.loop_m.max(1.0);
        let mut out = Vec::new();
        let mut seen = Vec::with_capacity(order.len());
        for c in order {
            let Some(d1) = c.total_distance_m() else {
                continue;
            };
            seen.push(c.number());
            let tr = self.track.entry(c.number()).or_insert(Track {
                end_ms: now,
                distance_m: d1,
                moving: false,
                loops: BTreeMap::new(),
            });
            let (t0, d0) = (tr.end_ms as f64, tr.distance_m);
            if d1 != d0 {
                tr.moving = true;
            }
            if d1 > d0 && now as f64 > t0 {
                let first = (d0 / loop_m).floor() as i64 + 1;
                let last = (d1 / loop_m).floor() as i64;
                for k in first..=last {
                    let t = t0 + (now as f64 - t0) * (k as f64 * loop_m - d0) / (d1 - d0);
                    tr.loops.insert(k, t);
                    out.push((t, c.number(), k));
                }
                while tr.loops.len() > LOOPS_KEPT {
                    tr.loops.pop_first();
                }
            }
            tr.end_ms = now;
            tr.distance_m = d1;
        }
        self.track.retain(|car, _| seen.contains(car));
        out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    }

    /// Car `x` crossed loop `k` at `t`: the leads of its pending defences
    /// grow, and it has passed every car that crossed loop k−1 before it and
    /// has not crossed loop k yet.
    fn loop_crossed(&mut self, t: f64, x: u16, k: i64, p: &OvertakeParams) {
        let at = |car: u16, k: i64| {
            self.track
                .get(&car)
                .and_then(|tr| tr.loops.get(&k).copied())
        };
        for q in self
            .pending
            .iter_mut()
            .filter(|q| q.by_loops && q.defender == x)
        {
            if let Some(ta) = self.track.get(&q.attacker).and_then(|tr| tr.loops.get(&k))
                && *ta < t
            {
                q.margin_s = q.margin_s.max((t - ta) / 1000.0);
            }
        }
        let Some(x_prev) = at(x, k - 1) else {
            return;
        };
        let passed: Vec<u16> = self
            .track
            .iter()
            .filter(|(y, tr)| {
                **y != x
                    && tr.moving
                    && tr.loops.get(&(k - 1)).is_some_and(|&ty| ty < x_prev)
                    && tr.loops.get(&k).is_none_or(|&ty| ty > t)
            })
            .map(|(y, _)| *y)
            .collect();
        for y in passed {
            self.flip(x, y, t as i64, true, p);
        }
    }

    /// `a` got past `b` at `at_ms`. A pending pass of `b` on `a` is undone:
    /// if `b` had led clearly it was a real pass (told) and this is a re-pass;
    /// else the two were side by side and neither is a pass.
    fn flip(&mut self, a: u16, b: u16, at_ms: i64, by_loops: bool, p: &OvertakeParams) {
        if let Some(i) = self
            .pending
            .iter()
            .position(|x| x.attacker == b && x.defender == a && !x.repassed)
        {
            if self.pending[i].margin_s < p.repass_lead_s {
                self.pending.remove(i);
                return;
            }
            self.pending[i].repassed = true;
        }
        self.pending.push(Pending {
            attacker: a,
            defender: b,
            at_ms,
            margin_s: if by_loops { 0.0 } else { f64::NEG_INFINITY },
            by_loops,
            repassed: false,
        });
    }

    /// Tells the passes that have stood long enough.
    fn confirm(&mut self, frame: &Frame<'_>, p: &OvertakeParams, drafts: &mut Vec<Draft>) {
        let now = frame.window_end_ms();
        let confirm_ms = (p.confirm_s.max(0.0) * 1000.0) as i64;
        let margin_ms = (p.pit_margin_s.max(0.0) * 1000.0) as i64;
        let wait_ms = (p.margin_wait_s.max(0.0) * 1000.0) as i64;
        let mut keep = Vec::with_capacity(self.pending.len());
        for mut x in std::mem::take(&mut self.pending) {
            let (Some(&pa), Some(&pb)) = (self.prev.get(&x.attacker), self.prev.get(&x.defender))
            else {
                continue; // retired or lost from the order: not a pass
            };
            let pitted = [x.attacker, x.defender].iter().any(|c| {
                self.last_pit_ms
                    .get(c)
                    .is_some_and(|&t| t >= x.at_ms - margin_ms)
            });
            if pitted {
                continue;
            }
            let attacker = frame.car(x.attacker);
            let defender = frame.car(x.defender);
            if !x.by_loops {
                if pa > pb && !x.repassed {
                    continue;
                }
                // The leader has no gap to the leader: 0.
                let gap = |c: Option<pitwall_plugin_sdk::Car<'_>>, pos: u8| match c {
                    Some(c) if pos == 1 => Some(c.gap_to_leader_s().unwrap_or(0.0)),
                    Some(c) => c.gap_to_leader_s(),
                    None => None,
                };
                if pa < pb {
                    let lead = match (gap(attacker, pa), gap(defender, pb)) {
                        (Some(ga), Some(gb)) => gb - ga,
                        _ => f64::INFINITY,
                    };
                    x.margin_s = x.margin_s.max(lead);
                }
            }
            if now - x.at_ms < confirm_ms {
                keep.push(x);
                continue;
            }
            if !x.by_loops && x.margin_s < p.min_margin_s {
                if now - x.at_ms < confirm_ms + wait_ms {
                    keep.push(x);
                }
                continue;
            }
            let place = pa.min(pb);
            let lap = attacker.map_or(0, |c| c.lap());
            let gap = defender.and_then(|c| c.interval_s());
            let headline = format!(
                "#{} passes #{} for P{place} on lap {lap}",
                x.attacker, x.defender
            );
            drafts.push(
                Draft::new(
                    "overtake",
                    &[x.attacker, x.defender],
                    headline,
                    0.6 + front_weight(place),
                )
                .evidence("position", f64::from(place))
                .evidence("lap", f64::from(lap))
                .evidence("gap_s", gap.unwrap_or(f64::NAN))
                .evidence("held_s", (now - x.at_ms) as f64 / 1000.0),
            );
        }
        self.pending = keep;
    }
}
