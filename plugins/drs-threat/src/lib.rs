//! `drs-threat`: a pair model giving the chance that a car attacks the car
//! ahead within `horizon_laps` laps (`p_attack`).
//!
//! A small mixture of experts in log-odds, each reported as a contribution so
//! a producer can say *why*:
//!
//! * `drs`: inside the DRS threshold (1 s by default) the attacker gets the
//!   rear-wing advantage; the term grows as the interval shrinks below it;
//! * `closing`: how fast the interval shrinks, seconds per window, from the
//!   previous frame's interval of the same pair;
//! * `tyres`: fresher tyres than the defender (laps of tyre age, clamped);
//! * `bias`: the base rate.
//!
//! `p = sigmoid(bias + drs + closing + tyres)`. Pairs further apart than
//! `max_interval_s`, in the pit lane, or while racing is neutralised are not
//! predicted. The weights and thresholds come from the model parameters
//! ([`Params`], JSON); a parameter-only swap retunes the model without new code.

use std::collections::HashMap;

use pitwall_plugin_sdk::{Context, Frame, Output, Pair, PairModel, PluginResult};
use serde::Deserialize;

/// The model's parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// DRS activation threshold, seconds.
    pub drs_threshold_s: f64,
    /// Pairs further apart are not predicted, seconds.
    pub max_interval_s: f64,
    pub bias: f64,
    /// Log-odds at zero interval (scaled linearly to 0 at the threshold).
    pub w_drs: f64,
    /// Log-odds per second per window of closing.
    pub w_closing: f64,
    /// Log-odds per lap of tyre-age advantage (clamped to ±10 laps).
    pub w_tyres: f64,
    pub horizon_laps: u16,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            drs_threshold_s: 1.0,
            max_interval_s: 2.0,
            bias: -2.5,
            w_drs: 3.0,
            w_closing: 8.0,
            w_tyres: 0.08,
            horizon_laps: 2,
        }
    }
}

#[derive(Default)]
pub struct DrsThreat {
    params: Params,
    neutralised: bool,
    /// Interval of (attacker, defender) in the previous frame.
    last: HashMap<(u16, u16), f64>,
    next: HashMap<(u16, u16), f64>,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl PairModel for DrsThreat {
    fn begin_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context) -> PluginResult {
        self.params = ctx.params_json_or_default();
        self.neutralised = frame.race().neutralised();
        // The pairs of the previous frame become `last`; the map is reused.
        std::mem::swap(&mut self.last, &mut self.next);
        self.next.clear();
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
        let Some(interval) = pair.interval_s() else {
            return Ok(());
        };
        let key = (a.number(), d.number());
        self.next.insert(key, interval);
        let p = &self.params;
        if self.neutralised || a.in_pit() || d.in_pit() || interval > p.max_interval_s {
            return Ok(());
        }
        let drs = if interval < p.drs_threshold_s {
            p.w_drs * (1.0 - interval / p.drs_threshold_s)
        } else {
            0.0
        };
        let closing_rate = self.last.get(&key).map_or(0.0, |prev| prev - interval);
        let closing = p.w_closing * closing_rate;
        let tyre_advantage =
            (f64::from(d.tyre_age_laps()) - f64::from(a.tyre_age_laps())).clamp(-10.0, 10.0);
        let tyres = p.w_tyres * tyre_advantage;
        let probability = sigmoid(p.bias + drs + closing + tyres);
        out.prediction("p_attack", a.number(), d.number())
            .probability(probability)
            .horizon_laps(p.horizon_laps.max(1))
            .contribution("bias", p.bias)
            .contribution("drs", drs)
            .contribution("closing", closing)
            .contribution("tyres", tyres)
            .emit()?;
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    DrsThreat,
    name = "drs-threat",
    version = "1.0.0",
    kind = pair_model
);
