//! The story limiter: duplicates suppressed, rates limited, so a producer's
//! feed is not flooded when a lot happens at once (the first racing lap, a
//! pit-stop cycle, a neutralisation that breaks every battle).
//!
//! In: the stories a plugin drafted for one window ([`Draft`]). Out: those it
//! tells, written to the [`Output`]. State: a token bucket and the stories
//! told recently.
//!
//! * A story with the same kind and cars as one told less than
//!   [`LimitParams::repeat_s`] ago is a duplicate and dropped.
//! * Telling costs a token; the bucket holds [`LimitParams::burst`] tokens and
//!   refills at [`LimitParams::per_minute`] (event time, never the wall
//!   clock, so a replay tells the same stories every time). At most
//!   [`LimitParams::max_per_window`] stories a window.
//! * The most important drafts go first; a draft at least
//!   [`LimitParams::must_tell`] important is told even from an empty bucket
//!   (an SC, an overtake, a pit stop are facts a feed must not lose; what the
//!   limiter is for is commentary: battles, catching, fastest laps).
//!
//! This file is shared with the `stories` plugin (see `battle.rs`).

use pitwall_plugin_sdk::{Output, PluginResult};
use serde::{Deserialize, Serialize};

/// The limiter's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitParams {
    /// Tokens regained per minute of event time.
    pub per_minute: f64,
    /// Bucket size: how many stories may come at once.
    pub burst: f64,
    /// At most this many stories a window (`must_tell` ones included).
    pub max_per_window: usize,
    /// Drafts at least this important are told without a token.
    pub must_tell: f64,
    /// The same kind and cars are not told twice within this, s.
    pub repeat_s: f64,
}

impl Default for LimitParams {
    fn default() -> Self {
        LimitParams {
            per_minute: 6.0,
            burst: 6.0,
            max_per_window: 6,
            must_tell: 0.6,
            repeat_s: 30.0,
        }
    }
}

/// A story drafted for this window, not yet told.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: &'static str,
    pub cars: Vec<u16>,
    pub headline: String,
    pub importance: f64,
    pub evidence: Vec<(&'static str, f64)>,
}

impl Draft {
    pub fn new(kind: &'static str, cars: &[u16], headline: String, importance: f64) -> Self {
        Draft {
            kind,
            cars: cars.to_vec(),
            headline,
            importance: importance.clamp(0.0, 1.0),
            evidence: Vec::new(),
        }
    }

    /// Adds a number behind the headline.
    pub fn evidence(mut self, name: &'static str, value: f64) -> Self {
        if value.is_finite() {
            self.evidence.push((name, value));
        }
        self
    }

    fn write(&self, out: &mut Output) -> PluginResult {
        let mut s = out
            .story(self.kind, &self.headline)
            .cars(&self.cars)
            .importance(self.importance);
        for &(name, value) in &self.evidence {
            s = s.evidence(name, value);
        }
        s.emit()?;
        Ok(())
    }
}

/// See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limiter {
    /// `None` until the first window (the bucket starts full).
    tokens: Option<f64>,
    last_ms: i64,
    /// Told recently: kind, cars, when.
    recent: Vec<(String, Vec<u16>, i64)>,
    /// Drafts dropped so far (duplicates and over the rate).
    pub dropped: u64,
    /// What the last [`tell`](Limiter::tell) told: kind and cars.
    #[serde(skip)]
    last_told: Vec<(&'static str, Vec<u16>)>,
}

impl Limiter {
    /// Tells the admissible `drafts` of the window starting at `now_ms`
    /// (draining the vector); returns how many were told.
    pub fn tell(
        &mut self,
        now_ms: i64,
        drafts: &mut Vec<Draft>,
        p: &LimitParams,
        out: &mut Output,
    ) -> PluginResult<usize> {
        let burst = p.burst.max(1.0);
        let tokens = match self.tokens {
            None => burst,
            Some(t) => {
                let dt_min = (now_ms - self.last_ms).max(0) as f64 / 60_000.0;
                (t + dt_min * p.per_minute.max(0.0)).min(burst)
            }
        };
        self.tokens = Some(tokens);
        self.last_ms = now_ms;
        let repeat_ms = (p.repeat_s.max(0.0) * 1000.0) as i64;
        self.recent.retain(|(_, _, t)| now_ms - t < repeat_ms);
        // Most important first; ties keep the drafting order.
        drafts.sort_by(|a, b| b.importance.total_cmp(&a.importance));
        self.last_told.clear();
        let mut told = 0;
        for d in drafts.drain(..) {
            let duplicate = self
                .recent
                .iter()
                .any(|(k, c, _)| k == d.kind && *c == d.cars);
            let tokens = self.tokens.expect("set above");
            let admitted = !duplicate
                && told < p.max_per_window
                && (tokens >= 1.0 || d.importance >= p.must_tell);
            if !admitted {
                self.dropped += 1;
                continue;
            }
            self.tokens = Some((tokens - 1.0).max(0.0));
            d.write(out)?;
            self.recent
                .push((d.kind.to_string(), d.cars.clone(), now_ms));
            self.last_told.push((d.kind, d.cars));
            told += 1;
        }
        Ok(told)
    }

    /// Whether the last [`tell`](Self::tell) told a story of `kind` about `cars`.
    pub fn was_told(&self, kind: &str, cars: &[u16]) -> bool {
        self.last_told.iter().any(|(k, c)| *k == kind && c == cars)
    }
}
