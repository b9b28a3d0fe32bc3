//! `gap-watch`: a story generator that notices a car closing on the car ahead.
//!
//! Every window it records each running car's interval to the car ahead
//! (`CarFrame.interval_s`). When, over the last `windows` windows, the car
//! ahead stayed the same, the interval shrank in every window (no noise
//! allowed: a real chase closes steadily, and by at most `max_step_s` a
//! window: a bigger jump is a timing artefact) by at least `min_closing_s` in all,
//! and the interval is now under `max_interval_s`, it tells the story
//! `catching`: "#4 is closing on #1: 0.9 s, 0.6 s closer in 5 s".
//!
//! It stays quiet while racing is neutralised (SC, VSC, red flag: gaps then
//! close for reasons that are not a chase) and while either car is in the
//! pit lane, and tells a pair's story at most once per `cooldown` windows so
//! a long chase is not repeated every second.
//!
//! Parameters (optional JSON, [`Params`]) override the thresholds.

use std::collections::{HashMap, VecDeque};

use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};
use serde::Deserialize;

/// Thresholds, from the model parameters (JSON) or the defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Windows the interval must shrink over (at least 2).
    pub windows: usize,
    /// Total closing needed over those windows, seconds.
    pub min_closing_s: f64,
    /// Only chases this close are a story, seconds.
    pub max_interval_s: f64,
    /// Windows between two stories about the same pair.
    pub cooldown: u64,
    /// A step larger than this in one window is a timing artefact (a
    /// position swap, a track-model jump), not a chase, seconds.
    pub max_step_s: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            windows: 5,
            min_closing_s: 0.3,
            max_interval_s: 3.0,
            cooldown: 30,
            max_step_s: 1.0,
        }
    }
}

/// One car's recent intervals to the same car ahead.
#[derive(Debug, Default)]
struct Chase {
    ahead: u16,
    intervals: VecDeque<f64>,
    /// Frame `seq` of the last story told about this chase.
    told_at: Option<u64>,
}

#[derive(Default)]
pub struct GapWatch {
    chases: HashMap<u16, Chase>,
}

impl StoryGenerator for GapWatch {
    fn on_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context, out: &mut Output) -> PluginResult {
        let p: Params = ctx.params_json_or_default();
        let windows = p.windows.max(2);
        if frame.race().neutralised() {
            // A neutralised field closes up for reasons that are not a chase.
            self.chases.clear();
            return Ok(());
        }
        let order = frame.running_order();
        let mut seen = Vec::with_capacity(order.len());
        for pair in order.windows(2) {
            let (ahead, car) = (pair[0], pair[1]);
            seen.push(car.number());
            let chase = self.chases.entry(car.number()).or_default();
            let Some(interval) = car
                .interval_s()
                .filter(|_| !car.in_pit() && !ahead.in_pit())
            else {
                chase.intervals.clear();
                continue;
            };
            if chase.ahead != ahead.number() {
                *chase = Chase {
                    ahead: ahead.number(),
                    ..Chase::default()
                };
            }
            chase.intervals.push_back(interval);
            while chase.intervals.len() > windows {
                chase.intervals.pop_front();
            }
            if chase.intervals.len() < windows || interval > p.max_interval_s {
                continue;
            }
            let shrinking = chase
                .intervals
                .iter()
                .zip(chase.intervals.iter().skip(1))
                .all(|(a, b)| b < a && a - b <= p.max_step_s);
            let closed = chase.intervals[0] - interval;
            let cooling = chase
                .told_at
                .is_some_and(|t| frame.seq().saturating_sub(t) < p.cooldown);
            if !shrinking || closed < p.min_closing_s || cooling {
                continue;
            }
            let span_s = (windows - 1) as f64
                * (frame.window_end_ms() - frame.window_start_ms()) as f64
                / 1000.0;
            let headline = format!(
                "#{} is closing on #{}: {interval:.1} s, {closed:.1} s closer in {span_s:.0} s",
                car.number(),
                ahead.number()
            );
            // Closer and faster-closing chases matter more; a fight for the
            // lead more than one at the back.
            let closeness = 1.0 - (interval / p.max_interval_s).clamp(0.0, 1.0);
            let rate = (closed / span_s.max(1.0)).clamp(0.0, 1.0);
            let front = if ahead.position() <= Some(3) {
                0.2
            } else {
                0.0
            };
            let importance = (0.2 + 0.4 * closeness + 0.2 * rate + front).clamp(0.0, 1.0);
            out.story("catching", &headline)
                .cars(&[car.number(), ahead.number()])
                .importance(importance)
                .evidence("interval_s", interval)
                .evidence("closed_s", closed)
                .evidence("over_s", span_s)
                .emit()?;
            chase.told_at = Some(frame.seq());
        }
        // Forget cars that are no longer running behind someone.
        self.chases.retain(|car, _| seen.contains(car));
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    GapWatch,
    name = "gap-watch",
    version = "1.0.0",
    kind = story_generator
);
