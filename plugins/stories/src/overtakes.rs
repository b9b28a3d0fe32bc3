//! On-track overtakes, told apart from the position changes a pit stop or a
//! retirement causes.
//!
//! In: the running order of each window. Out: `overtake` drafts, cars
//! `[attacker, defender]`. State: last window's positions, when each car was
//! last in the pit lane, and the passes waiting to be confirmed.
//!
//! Any pair of running cars whose order flips between two windows is a
//! candidate pass (a car that gains two places in a window passes two cars).
//! It becomes a story once the attacker has held the place for
//! [`OvertakeParams::confirm_s`] and neither car was in the pit lane (flag or
//! pit event) within [`OvertakeParams::pit_margin_s`] before the pass or since:
//! a car that dives into the pit lane loses places to everyone behind, and a
//! car leaving it is passed or passes on cold tyres in a way that is the stop's
//! doing, not racing. A retired or vanished car's changes are never passes.
//! A re-pass inside the confirmation time cancels the pass (a side-by-side
//! moment whose net result is told once it holds).
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
    /// The attacker must hold the place this long, s.
    pub confirm_s: f64,
    /// A pit-lane visit of either car this close before the pass (or during
    /// the confirmation) makes it pit-related, s.
    pub pit_margin_s: f64,
    /// The attacker must at some point of the hold lead by this much (the
    /// defender's gap to the leader minus the attacker's), s: two cars side
    /// by side swap places in the track model's order every other sample.
    pub min_margin_s: f64,
    /// How much longer than `confirm_s` a pass may wait for that margin, s.
    pub margin_wait_s: f64,
}

impl Default for OvertakeParams {
    fn default() -> Self {
        OvertakeParams {
            confirm_s: 5.0,
            pit_margin_s: 30.0,
            min_margin_s: 0.2,
            margin_wait_s: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    attacker: u16,
    defender: u16,
    /// Window in which the order flipped.
    at_ms: i64,
    /// The largest lead seen since, s (infinite when the gaps are unknown).
    margin_s: f64,
}

/// See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overtakes {
    /// Last window's positions of the running cars.
    prev: BTreeMap<u16, u8>,
    /// End of the last window each car was in the pit lane.
    last_pit_ms: BTreeMap<u16, i64>,
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
            self.pending.clear();
            return;
        }
        let pos: BTreeMap<u16, u8> = frame
            .running_order()
            .iter()
            .filter_map(|c| Some((c.number(), c.position()?)))
            .collect();
        // New flips since the last window.
        for (&a, &pa) in &pos {
            let Some(&was_a) = self.prev.get(&a) else {
                continue;
            };
            for (&b, &pb) in &pos {
                let Some(&was_b) = self.prev.get(&b) else {
                    continue;
                };
                if was_a > was_b && pa < pb {
                    // a got past b; a pending pass of b on a is undone.
                    self.pending
                        .retain(|x| !(x.attacker == b && x.defender == a));
                    self.pending.push(Pending {
                        attacker: a,
                        defender: b,
                        at_ms: frame.window_start_ms(),
                        margin_s: f64::NEG_INFINITY,
                    });
                }
            }
        }
        self.prev = pos;
        let confirm_ms = (p.confirm_s.max(0.0) * 1000.0) as i64;
        let margin_ms = (p.pit_margin_s.max(0.0) * 1000.0) as i64;
        let mut keep = Vec::with_capacity(self.pending.len());
        let wait_ms = (p.margin_wait_s.max(0.0) * 1000.0) as i64;
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
            if pitted || pa > pb {
                continue;
            }
            let attacker = frame.car(x.attacker);
            let defender = frame.car(x.defender);
            // The leader has no gap to the leader: 0.
            let gap = |c: Option<pitwall_plugin_sdk::Car<'_>>, pos: u8| match c {
                Some(c) if pos == 1 => Some(c.gap_to_leader_s().unwrap_or(0.0)),
                Some(c) => c.gap_to_leader_s(),
                None => None,
            };
            let lead = match (gap(attacker, pa), gap(defender, pb)) {
                (Some(ga), Some(gb)) => gb - ga,
                _ => f64::INFINITY,
            };
            x.margin_s = x.margin_s.max(lead);
            if now - x.at_ms < confirm_ms {
                keep.push(x);
                continue;
            }
            if x.margin_s < p.min_margin_s {
                if now - x.at_ms < confirm_ms + wait_ms {
                    keep.push(x);
                }
                continue;
            }
            let lap = attacker.map_or(0, |c| c.lap());
            let gap = defender.and_then(|c| c.interval_s());
            let headline = format!(
                "#{} passes #{} for P{pa} on lap {lap}",
                x.attacker, x.defender
            );
            drafts.push(
                Draft::new(
                    "overtake",
                    &[x.attacker, x.defender],
                    headline,
                    0.6 + front_weight(pa),
                )
                .evidence("position", f64::from(pa))
                .evidence("lap", f64::from(lap))
                .evidence("gap_s", gap.unwrap_or(f64::NAN))
                .evidence("held_s", (now - x.at_ms) as f64 / 1000.0),
            );
        }
        self.pending = keep;
    }
}
