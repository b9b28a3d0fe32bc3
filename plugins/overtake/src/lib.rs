//! `overtake`: the probability that the car behind passes the car ahead on
//! track within the next `horizon_laps` laps (default 3), for every battle
//! (interval under `battle_gap_s`, default 2 s), every window.
//!
//! A mixture of experts with a stacker ([`model`]): a DRS / overtake-mode
//! expert (time and depth inside DRS range, the flap where the feed has it), an
//! ERS / straight-line expert (top-speed and acceleration differences, where
//! the source has speeds) and an aero expert (time in the wake, corner speed
//! lost), combined with the context (interval, closing rate, pace, tyres,
//! laps left). Each prediction carries every term as a contribution.
//!
//! Features ([`features`]) come from the frames alone, the same code natively
//! in `pitwall train overtake` and `pitwall eval`. The model is the plugin's
//! parameter file (JSON, [`model::OvertakeModel`]); without one the plugin
//! uses the model bundled at build time. A new file swapped in mid-race takes
//! effect at the next window. Nothing is predicted before the start, while
//! racing is neutralised, or for a car in the pit lane.

pub mod features;
pub mod model;

use pitwall_plugin_sdk::{Context, Frame, LogLevel, Output, Pair, PairModel, PluginResult};

use features::PairTracker;
use model::OvertakeModel;

/// The prediction kind.
pub const KIND: &str = "p_overtake";

pub struct Overtake {
    tracker: PairTracker,
    model: OvertakeModel,
    /// Parameter generation the model was read from (0 = bundled).
    generation: i64,
}

impl Default for Overtake {
    fn default() -> Self {
        Overtake {
            tracker: PairTracker::new(),
            model: model::bundled(),
            generation: 0,
        }
    }
}

impl Overtake {
    /// Re-reads the model when the host has new parameters. A file that does
    /// not parse or validate is refused with a warning; the previous model
    /// stays (the host's provenance still names the new file: a producer sees
    /// the warning in the plugin log).
    fn refresh_model(&mut self, ctx: &mut Context) {
        let generation = ctx.params_generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        if generation == 0 {
            self.model = model::bundled();
            return;
        }
        let parsed = ctx
            .params_json::<OvertakeModel>()
            .map_err(|e| e.to_string())
            .and_then(|m| m.cloned().ok_or_else(|| "no parameters".to_string()))
            .and_then(|m| m.validate().map(|()| m).map_err(|e| e.to_string()));
        match parsed {
            Ok(m) => self.model = m,
            Err(e) => ctx.log(LogLevel::Warn, &format!("{e}; keeping the previous model")),
        }
    }
}

impl PairModel for Overtake {
    fn begin_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context) -> PluginResult {
        self.refresh_model(ctx);
        self.tracker.update(frame);
        Ok(())
    }

    fn on_pair(
        &mut self,
        pair: &Pair<'_>,
        _frame: &Frame<'_>,
        _ctx: &mut Context,
        out: &mut Output,
    ) -> PluginResult {
        let (a, d) = (pair.attacker, pair.defender);
        if !self.tracker.racing() || a.in_pit() || d.in_pit() {
            return Ok(());
        }
        let Some(f) = self.tracker.features(a.number(), d.number()) else {
            return Ok(());
        };
        if f.interval_s >= self.model.battle_gap_s {
            return Ok(());
        }
        let p = self.model.predict(&f);
        let mut draft = out
            .prediction(KIND, a.number(), d.number())
            .probability(p.probability)
            .horizon_laps(self.model.horizon_laps);
        for (name, value) in &p.contributions {
            draft = draft.contribution(name, *value);
        }
        draft.emit()?;
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Overtake,
    name = "overtake",
    version = "1.0.0",
    kind = pair_model
);
