//! `stories`: the race told as stories a producer can put on air.
//!
//! In: one race frame per window. Out: stories, each with a kind, the cars, a
//! one-line headline, an importance in `[0, 1]` and the evidence behind it:
//!
//! | kind | cars | evidence |
//! |---|---|---|
//! | `overtake` | attacker, defender | `position`, `lap`, `gap_s`, `held_s` |
//! | `pit_stop` | car | `pit_lane_s`, `positions_lost`, `position`, `lap` |
//! | `undercut` / `overcut` | maker, rival | `worked` (1/0), `position`, `rival_position` |
//! | `safety_car_deployed` / `vsc_deployed` | — | `lap` |
//! | `safety_car_ended` / `vsc_ended` | — | `lap`, `duration_s` |
//! | `catching` | chaser, car ahead | `interval_s`, `rate_s_per_lap`, `laps_to_drs`, `position` |
//! | `fastest_lap` | car | `lap_s`, `lap`, `improvement_s` |
//! | `battle_formed` / `battle_broken` | attacker, defender | as the `battles` plugin (only with `battle_stories`) |
//!
//! Each kind has its own module ([`overtakes`], [`pits`], [`pace`]; SC/VSC
//! here); every draft then goes through the [limiter](limit): duplicates are
//! suppressed and commentary is rate-limited, facts (importance ≥ 0.6:
//! overtakes, pit stops, SC/VSC) are always told. Nothing is told before the
//! race is under way (no formation-lap stories) or after the chequered flag.
//!
//! Battles are the `battles` plugin's to tell (it shares the tracker and the
//! limiter with this crate by `#[path]`); `battle_stories: true` makes this
//! plugin tell them too, for a deployment without `battles`. Fuel saving is
//! the `fuel` plugin's.
//!
//! Parameters: optional JSON, [`Params`]; every field has a default.

#[path = "../../battles/src/battle.rs"]
pub mod battle;
#[path = "../../battles/src/limit.rs"]
pub mod limit;
pub mod overtakes;
pub mod pace;
pub mod pits;

use battle::{BattleEvent, BattleParams, BattleTracker};
use limit::{Draft, LimitParams, Limiter};
use pitwall_plugin_sdk::view::Flag;
use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};
use serde::{Deserialize, Serialize};

/// Model parameters (JSON); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub overtakes: overtakes::OvertakeParams,
    pub pits: pits::PitParams,
    pub pace: pace::PaceParams,
    pub limit: LimitParams,
    /// Tell `battle_formed` / `battle_broken` here too.
    pub battle_stories: bool,
    pub battles: BattleParams,
}

/// The neutralisation in force (SC wins over VSC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Neutral {
    #[default]
    None,
    Vsc,
    SafetyCar,
}

#[derive(Default)]
pub struct Stories {
    overtakes: overtakes::Overtakes,
    pits: pits::Pits,
    pace: pace::Pace,
    battles: BattleTracker,
    battle_events: Vec<BattleEvent>,
    limiter: Limiter,
    /// Neutralisation last window, and when it started (ms).
    neutral: (Neutral, i64),
    drafts: Vec<Draft>,
}

impl Stories {
    /// The limiter (for tests: how many drafts it dropped).
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// SC / VSC deployed and ended.
    fn neutralisation(&mut self, frame: &Frame<'_>) {
        let race = frame.race();
        let now = frame.window_start_ms();
        let state = if !race.under_way() || race.flag() == Flag::Chequered {
            Neutral::None
        } else if race.safety_car() {
            Neutral::SafetyCar
        } else if race.virtual_safety_car() {
            Neutral::Vsc
        } else {
            Neutral::None
        };
        let (was, since) = self.neutral;
        if state == was {
            return;
        }
        self.neutral = (state, now);
        if !race.under_way() || race.flag() == Flag::Chequered {
            return;
        }
        let lap = f64::from(race.lap());
        let (name, ended) = match was {
            Neutral::SafetyCar => ("The safety car", "safety_car_ended"),
            Neutral::Vsc => ("The virtual safety car", "vsc_ended"),
            Neutral::None => ("", ""),
        };
        if !ended.is_empty() {
            let duration_s = (now - since) as f64 / 1000.0;
            self.drafts.push(
                Draft::new(
                    ended,
                    &[],
                    format!("{name} period ends on lap {lap} after {duration_s:.0} s"),
                    0.7,
                )
                .evidence("lap", lap)
                .evidence("duration_s", duration_s),
            );
        }
        let (kind, headline, importance) = match state {
            Neutral::SafetyCar => ("safety_car_deployed", "Safety car deployed", 0.9),
            Neutral::Vsc => ("vsc_deployed", "Virtual safety car deployed", 0.8),
            Neutral::None => return,
        };
        self.drafts.push(
            Draft::new(kind, &[], format!("{headline} on lap {lap}"), importance)
                .evidence("lap", lap),
        );
    }

    fn battle_stories(&mut self) {
        for e in &self.battle_events {
            let d = match e {
                BattleEvent::Formed(b) => Draft::new(
                    "battle_formed",
                    &[b.attacker, b.defender],
                    format!(
                        "Battle for P{}: #{} is {:.1} s behind #{}",
                        b.position, b.attacker, b.interval_s, b.defender
                    ),
                    0.3 + overtakes::front_weight(b.position),
                )
                .evidence("interval_s", b.interval_s)
                .evidence("position", f64::from(b.position))
                .evidence("duration_s", b.duration_s()),
                BattleEvent::Broken(b, reason) => Draft::new(
                    "battle_broken",
                    &[b.attacker, b.defender],
                    format!(
                        "#{} and #{}: the battle for P{} is over after {:.0} s: {}",
                        b.attacker,
                        b.defender,
                        b.position,
                        b.duration_s(),
                        reason.phrase()
                    ),
                    0.2 + overtakes::front_weight(b.position),
                )
                .evidence("interval_s", b.interval_s)
                .evidence("position", f64::from(b.position))
                .evidence("duration_s", b.duration_s())
                .evidence("laps", f64::from(b.laps()))
                .evidence("reason", reason.code()),
            };
            self.drafts.push(d);
        }
    }
}

impl StoryGenerator for Stories {
    fn on_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context, out: &mut Output) -> PluginResult {
        let p: Params = ctx.params_json_or_default();
        self.drafts.clear();
        self.neutralisation(frame);
        self.overtakes.update(frame, &p.overtakes, &mut self.drafts);
        self.pits.update(frame, &p.pits, &mut self.drafts);
        self.pace.update(frame, &p.pace, &mut self.drafts);
        if p.battle_stories {
            self.battle_events.clear();
            self.battles
                .update(frame, &p.battles, &mut self.battle_events);
            self.battle_stories();
        }
        self.limiter
            .tell(frame.window_start_ms(), &mut self.drafts, &p.limit, out)?;
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Stories,
    name = "stories",
    version = "1.0.0",
    kind = story_generator
);
