//! The battle tracker: which cars are fighting the car directly ahead.
//!
//! In: one race frame per window. Out: the battles under way after the frame
//! ([`BattleTracker::battles`]) and what changed in it ([`BattleEvent`]).
//! State: per attacking car, its battle (if any) and the hysteresis counters
//! that stand between one noisy window and a story.
//!
//! A car can only attack the car directly ahead in the running order, so a
//! battle is keyed by its attacker. It **forms** when the interval stays under
//! [`BattleParams::form_below_s`] for [`BattleParams::form_windows`] windows in
//! a row against the same car, and **breaks** when the interval stays above
//! the (higher) [`BattleParams::break_above_s`] for
//! [`BattleParams::break_windows`] windows, at once when the attacker gets past
//! or the car ahead changes otherwise, when either car is in the pit lane or
//! retires, when racing is neutralised (SC, VSC, red flag: a bunched field is
//! not a fight) and at the chequered flag. The gap between the two thresholds
//! is what keeps an interval that hovers around 2 s from flapping.
//!
//! Nothing forms before the race is under way or before the leader's lap
//! [`BattleParams::min_lap`]: on the opening lap the whole field is nose to
//! tail and "everyone is battling" says nothing.
//!
//! A window with no interval (timing-only sources update it every few seconds
//! and may leave a gap) neither forms nor breaks a battle: it holds.
//!
//! This file is shared with the `stories` plugin (`#[path]` include, not a
//! crate dependency: both crates export the plugin ABI symbols, which would
//! clash in one WASM module).

use std::collections::BTreeMap;

use pitwall_plugin_sdk::view::Flag;
use pitwall_plugin_sdk::{Car, Frame};
use serde::{Deserialize, Serialize};

/// Thresholds of the tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BattleParams {
    /// A battle forms under this interval, s.
    pub form_below_s: f64,
    /// ... held for this many windows in a row.
    pub form_windows: u32,
    /// A battle breaks above this interval, s (above `form_below_s`).
    pub break_above_s: f64,
    /// ... held for this many windows in a row.
    pub break_windows: u32,
    /// No battle forms before the leader's lap `min_lap`.
    pub min_lap: u16,
}

impl Default for BattleParams {
    fn default() -> Self {
        BattleParams {
            form_below_s: 2.0,
            form_windows: 3,
            break_above_s: 2.3,
            break_windows: 3,
            min_lap: 2,
        }
    }
}

/// Why a battle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The interval opened past the break threshold.
    Gap,
    /// The attacker got past.
    Pass,
    /// A third car came between them, or the defender was otherwise lost.
    Reordered,
    /// Either car went into the pit lane.
    Pit,
    /// Either car retired or left the running order.
    Retired,
    /// SC, VSC or red flag.
    Neutralised,
    /// The chequered flag.
    Flag,
}

impl EndReason {
    /// A stable code for the story's evidence.
    pub fn code(self) -> f64 {
        match self {
            EndReason::Gap => 0.0,
            EndReason::Pass => 1.0,
            EndReason::Reordered => 2.0,
            EndReason::Pit => 3.0,
            EndReason::Retired => 4.0,
            EndReason::Neutralised => 5.0,
            EndReason::Flag => 6.0,
        }
    }

    /// How the headline says it.
    pub fn phrase(self) -> &'static str {
        match self {
            EndReason::Gap => "the gap opened",
            EndReason::Pass => "the attacker got past",
            EndReason::Reordered => "the order changed",
            EndReason::Pit => "a pit stop",
            EndReason::Retired => "a retirement",
            EndReason::Neutralised => "the race was neutralised",
            EndReason::Flag => "the chequered flag",
        }
    }
}

/// One battle under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Battle {
    /// The car behind.
    pub attacker: u16,
    /// The car directly ahead.
    pub defender: u16,
    /// Start of the first window under the threshold, ms.
    pub start_ms: i64,
    /// End of the last window seen, ms.
    pub last_ms: i64,
    /// The attacker's lap when the battle formed.
    pub start_lap: u16,
    /// The attacker's lap now.
    pub lap: u16,
    /// The last known interval, s.
    pub interval_s: f64,
    /// The defender's position (the place fought for), last known.
    pub position: u8,
    /// Windows in a row above the break threshold.
    over: u32,
}

impl Battle {
    /// How long it has lasted, s.
    pub fn duration_s(&self) -> f64 {
        (self.last_ms - self.start_ms) as f64 / 1000.0
    }
    /// Laps it has lasted (the attacker's laps since it formed).
    pub fn laps(&self) -> u16 {
        self.lap.saturating_sub(self.start_lap)
    }
}

/// What changed in a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum BattleEvent {
    Formed(Battle),
    Broken(Battle, EndReason),
}

/// A pair under the form threshold, not (yet) a battle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Candidate {
    defender: u16,
    since_ms: i64,
    windows: u32,
}

/// See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BattleTracker {
    /// By attacker.
    battles: BTreeMap<u16, Battle>,
    candidates: BTreeMap<u16, Candidate>,
}

impl BattleTracker {
    /// The battles under way, by attacker.
    pub fn battles(&self) -> impl Iterator<Item = &Battle> {
        self.battles.values()
    }

    /// The battle `attacker` is in, if any.
    pub fn battle_of(&self, attacker: u16) -> Option<&Battle> {
        self.battles.get(&attacker)
    }

    /// Reads one frame; appends what changed to `events` (breaks first, in
    /// attacker order, then formations in running order).
    pub fn update(&mut self, frame: &Frame<'_>, p: &BattleParams, events: &mut Vec<BattleEvent>) {
        let race = frame.race();
        let end_ms = frame.window_end_ms();
        if !race.under_way() {
            // Grid and formation lap: nothing to tell, nothing to keep.
            self.battles.clear();
            self.candidates.clear();
            return;
        }
        let stop = if race.flag() == Flag::Chequered {
            Some(EndReason::Flag)
        } else if race.neutralised() {
            Some(EndReason::Neutralised)
        } else {
            None
        };
        if let Some(reason) = stop {
            for (_, b) in std::mem::take(&mut self.battles) {
                events.push(BattleEvent::Broken(b, reason));
            }
            self.candidates.clear();
            return;
        }
        let order = frame.running_order();
        // Breaks: every battle is checked against this frame's order.
        let attackers: Vec<u16> = self.battles.keys().copied().collect();
        for a in attackers {
            let b = self.battles.get_mut(&a).expect("listed above");
            let reason = check(b, &order, frame, p, end_ms);
            if let Some(reason) = reason {
                let b = self.battles.remove(&a).expect("listed above");
                events.push(BattleEvent::Broken(b, reason));
            }
        }
        // Formations.
        let may_form = race.lap() >= p.min_lap;
        let mut seen = Vec::with_capacity(order.len());
        for w in order.windows(2) {
            let (ahead, car) = (&w[0], &w[1]);
            let a = car.number();
            seen.push(a);
            if self.battles.contains_key(&a) {
                self.candidates.remove(&a);
                continue;
            }
            let close = !car.in_pit() && !ahead.in_pit();
            let interval = car.interval_s();
            let under = close && interval.is_some_and(|i| i < p.form_below_s);
            let holds = close && interval.is_none();
            match self.candidates.get_mut(&a) {
                Some(c) if c.defender == ahead.number() && under => c.windows += 1,
                Some(c) if c.defender == ahead.number() && holds => {}
                _ if under => {
                    self.candidates.insert(
                        a,
                        Candidate {
                            defender: ahead.number(),
                            since_ms: frame.window_start_ms(),
                            windows: 1,
                        },
                    );
                }
                _ => {
                    self.candidates.remove(&a);
                }
            }
            let Some(c) = self.candidates.get(&a) else {
                continue;
            };
            if may_form && c.windows >= p.form_windows.max(1) {
                let b = Battle {
                    attacker: a,
                    defender: c.defender,
                    start_ms: c.since_ms,
                    last_ms: end_ms,
                    start_lap: car.lap(),
                    lap: car.lap(),
                    interval_s: interval.unwrap_or(p.form_below_s),
                    position: ahead.position().unwrap_or(0),
                    over: 0,
                };
                self.candidates.remove(&a);
                events.push(BattleEvent::Formed(b.clone()));
                self.battles.insert(a, b);
            }
        }
        self.candidates.retain(|a, _| seen.contains(a));
    }
}

/// Whether battle `b` ends with this frame (and updates it if not).
fn check(
    b: &mut Battle,
    order: &[Car<'_>],
    frame: &Frame<'_>,
    p: &BattleParams,
    end_ms: i64,
) -> Option<EndReason> {
    let Some(i) = order.iter().position(|c| c.number() == b.attacker) else {
        return Some(EndReason::Retired);
    };
    let car = &order[i];
    let Some(d) = order.iter().position(|c| c.number() == b.defender) else {
        return Some(match frame.car(b.defender) {
            Some(c) if c.in_pit() => EndReason::Pit,
            _ => EndReason::Retired,
        });
    };
    let defender = &order[d];
    if car.in_pit() || defender.in_pit() {
        return Some(EndReason::Pit);
    }
    if d > i {
        return Some(EndReason::Pass);
    }
    if d + 1 != i {
        return Some(EndReason::Reordered);
    }
    b.last_ms = end_ms;
    b.lap = car.lap();
    b.position = defender.position().unwrap_or(b.position);
    if let Some(interval) = car.interval_s() {
        b.interval_s = interval;
        if interval > p.break_above_s {
            b.over += 1;
            if b.over >= p.break_windows.max(1) {
                return Some(EndReason::Gap);
            }
        } else {
            b.over = 0;
        }
    }
    None
}
