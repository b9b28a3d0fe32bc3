//! `battles`: pairs of consecutive cars within 2 s, with start, end and
//! duration — the live list `/live-battles` serves.
//!
//! In: one race frame per window. Out:
//!
//! * every window, for every car attacking the car directly ahead, four
//!   metrics on the **attacker**: `battle_defender` (the racing number ahead),
//!   `battle_interval_s` (s), `battle_duration_s` (s since it formed),
//!   `battle_laps` (laps since it formed). A car can only attack the car
//!   directly ahead, so a car has at most one battle and the live list is
//!   "every car with a `battle_defender` metric in the latest window";
//! * the stories `battle_formed` and `battle_broken` (cars `[attacker,
//!   defender]`; evidence `interval_s`, `position`, `duration_s`, `laps` and,
//!   when broken, `reason`: 0 gap, 1 pass, 2 reordered, 3 pit, 4 retired,
//!   5 neutralised, 6 flag), through the [limiter](limit) so a lap on which
//!   many battles form does not flood the feed. A battle whose forming was not
//!   told (limited) is not told breaking either.
//!
//! The hysteresis (form under 2.0 s for 3 windows, break above 2.3 s for 3
//! windows, at once on a pass or a pit stop) is in [`battle`]. Parameters
//! (optional JSON, [`Params`]) override every threshold.

pub mod battle;
pub mod limit;

use std::collections::BTreeSet;

use battle::{BattleEvent, BattleParams, BattleTracker};
use limit::{Draft, LimitParams, Limiter};
use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};
use serde::{Deserialize, Serialize};

/// Model parameters (JSON); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    #[serde(flatten)]
    pub battle: BattleParams,
    pub limit: LimitParams,
}

#[derive(Default)]
pub struct Battles {
    tracker: BattleTracker,
    limiter: Limiter,
    /// Battles (attacker, defender, start) whose forming was told.
    told: BTreeSet<(u16, u16, i64)>,
    events: Vec<BattleEvent>,
    drafts: Vec<Draft>,
}

impl Battles {
    /// The tracker (for tests).
    pub fn tracker(&self) -> &BattleTracker {
        &self.tracker
    }
}

/// Fights at the front matter more.
fn front_weight(position: u8) -> f64 {
    match position {
        1 => 0.3,
        2..=3 => 0.2,
        4..=10 => 0.1,
        _ => 0.0,
    }
}

impl StoryGenerator for Battles {
    fn on_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context, out: &mut Output) -> PluginResult {
        let p: Params = ctx.params_json_or_default();
        self.events.clear();
        self.tracker.update(frame, &p.battle, &mut self.events);
        for e in &self.events {
            match e {
                BattleEvent::Formed(b) => {
                    let headline = format!(
                        "Battle for P{}: #{} is {:.1} s behind #{}",
                        b.position, b.attacker, b.interval_s, b.defender
                    );
                    self.drafts.push(
                        Draft::new(
                            "battle_formed",
                            &[b.attacker, b.defender],
                            headline,
                            0.3 + front_weight(b.position),
                        )
                        .evidence("interval_s", b.interval_s)
                        .evidence("position", f64::from(b.position))
                        .evidence("duration_s", b.duration_s()),
                    );
                }
                BattleEvent::Broken(b, reason) => {
                    if !self.told.remove(&(b.attacker, b.defender, b.start_ms)) {
                        continue;
                    }
                    let headline = format!(
                        "#{} and #{}: the battle for P{} is over after {:.0} s ({} laps): {}",
                        b.attacker,
                        b.defender,
                        b.position,
                        b.duration_s(),
                        b.laps(),
                        reason.phrase()
                    );
                    // Long fights, and fights settled by a pass, are worth more.
                    let length = (b.duration_s() / 600.0).min(0.2);
                    let pass = if *reason == battle::EndReason::Pass {
                        0.1
                    } else {
                        0.0
                    };
                    self.drafts.push(
                        Draft::new(
                            "battle_broken",
                            &[b.attacker, b.defender],
                            headline,
                            0.2 + front_weight(b.position) + length + pass,
                        )
                        .evidence("interval_s", b.interval_s)
                        .evidence("position", f64::from(b.position))
                        .evidence("duration_s", b.duration_s())
                        .evidence("laps", f64::from(b.laps()))
                        .evidence("reason", reason.code()),
                    );
                }
            }
        }
        // Which formed stories were told is the limiter's call; remember
        // those, so only their breaking is told.
        let formed: Vec<(u16, u16, i64)> = self
            .events
            .iter()
            .filter_map(|e| match e {
                BattleEvent::Formed(b) => Some((b.attacker, b.defender, b.start_ms)),
                _ => None,
            })
            .collect();
        self.limiter
            .tell(frame.window_start_ms(), &mut self.drafts, &p.limit, out)?;
        for key in formed {
            if self.limiter.was_told("battle_formed", &[key.0, key.1]) {
                self.told.insert(key);
            }
        }
        for b in self.tracker.battles() {
            out.metric(b.attacker, "battle_defender", f64::from(b.defender), "")?;
            out.metric(b.attacker, "battle_interval_s", b.interval_s, "s")?;
            out.metric(b.attacker, "battle_duration_s", b.duration_s(), "s")?;
            out.metric(b.attacker, "battle_laps", f64::from(b.laps()), "laps")?;
        }
        // Forget told battles that no longer exist without a break event
        // (cleared before the start).
        let live: BTreeSet<(u16, u16, i64)> = self
            .tracker
            .battles()
            .map(|b| (b.attacker, b.defender, b.start_ms))
            .collect();
        self.told.retain(|k| live.contains(k));
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Battles,
    name = "battles",
    version = "1.0.0",
    kind = story_generator
);
