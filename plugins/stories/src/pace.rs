//! Pace stories: a car catching the car ahead, and the fastest lap.
//!
//! In: each window's running order, intervals and last lap times. Out:
//! `catching` drafts (cars `[chaser, car ahead]`, evidence `interval_s`,
//! `rate_s_per_lap`, `laps_to_drs`) and `fastest_lap` drafts (cars `[car]`,
//! evidence `lap_s`, `lap`, `improvement_s`). State: per chaser the recent
//! intervals to the same car ahead; per car its last lap time; the best lap.
//!
//! **Catching**: the closing rate is the least-squares slope of the interval
//! over the last [`PaceParams::catch_window_s`] (a whole lap of noisy 1 Hz
//! samples, or a handful of a timing feed's 4-second updates: the fit takes
//! either), times the lap time. "X closes on Y at 0.4 s/lap, in DRS range in
//! ~3 laps" is told when the rate is at least [`PaceParams::min_rate_s_per_lap`]
//! and DRS range ([`PaceParams::drs_s`]) is at most
//! [`PaceParams::max_laps_to_drs`] laps away; at most once per pair per
//! [`PaceParams::catch_repeat_s`]. The history is dropped when the car ahead
//! changes, either car is in the pit lane, or racing is neutralised.
//!
//! **Fastest lap**: a car's new `last_lap_s` below every lap seen so far. Laps
//! count from the race being under way; the story is told from the leader's
//! lap [`PaceParams::fastest_from_lap`] on (before that, every lap of a
//! cleaner track is the fastest so far, and saying so is noise). A lap more
//! than [`PaceParams::max_improvement`] faster than the best so far is a
//! timing artefact, not a lap.

use std::collections::{BTreeMap, VecDeque};

use pitwall_plugin_sdk::Frame;
use pitwall_plugin_sdk::view::Flag;
use serde::{Deserialize, Serialize};

use crate::limit::Draft;
use crate::overtakes::front_weight;

/// Thresholds of the pace stories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaceParams {
    /// The interval history the closing rate is fitted over, s.
    pub catch_window_s: f64,
    /// Closing at least this fast, s per lap.
    pub min_rate_s_per_lap: f64,
    /// DRS range, s.
    pub drs_s: f64,
    /// Told when DRS range is at most this many laps away.
    pub max_laps_to_drs: f64,
    /// The same pair's catching is told at most once per this, s.
    pub catch_repeat_s: f64,
    /// Fastest laps are told from this leader lap on.
    pub fastest_from_lap: u16,
    /// A lap this much (fraction) faster than the best so far is an artefact.
    pub max_improvement: f64,
}

impl Default for PaceParams {
    fn default() -> Self {
        PaceParams {
            catch_window_s: 60.0,
            min_rate_s_per_lap: 0.3,
            drs_s: 1.0,
            max_laps_to_drs: 5.0,
            catch_repeat_s: 300.0,
            fastest_from_lap: 5,
            max_improvement: 0.05,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Chase {
    ahead: u16,
    /// (window start ms, interval s)
    samples: VecDeque<(i64, f64)>,
}

/// See the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    chases: BTreeMap<u16, Chase>,
    /// When each (chaser, ahead) was last told.
    told: BTreeMap<(u16, u16), i64>,
    last_lap: BTreeMap<u16, f64>,
    best: Option<f64>,
}

/// Least-squares slope of `y` over `t` (s per s); `None` for fewer than 3
/// samples or no spread in time.
fn slope(samples: &VecDeque<(i64, f64)>) -> Option<f64> {
    if samples.len() < 3 {
        return None;
    }
    let t0 = samples[0].0;
    let n = samples.len() as f64;
    let (mut st, mut sy, mut stt, mut sty) = (0.0, 0.0, 0.0, 0.0);
    for &(t, y) in samples {
        let t = (t - t0) as f64 / 1000.0;
        st += t;
        sy += y;
        stt += t * t;
        sty += t * y;
    }
    let den = n * stt - st * st;
    (den > 1e-9).then(|| (n * sty - st * sy) / den)
}

impl Pace {
    /// Reads one frame; pushes the stories due to `drafts`.
    pub fn update(&mut self, frame: &Frame<'_>, p: &PaceParams, drafts: &mut Vec<Draft>) {
        let race = frame.race();
        let under_way = race.under_way() && race.flag() != Flag::Chequered;
        self.fastest(frame, p, under_way, drafts);
        if !under_way || race.neutralised() {
            self.chases.clear();
            return;
        }
        let now = frame.window_start_ms();
        let window_ms = (p.catch_window_s.max(1.0) * 1000.0) as i64;
        let repeat_ms = (p.catch_repeat_s.max(0.0) * 1000.0) as i64;
        let order = frame.running_order();
        let mut seen = Vec::with_capacity(order.len());
        for w in order.windows(2) {
            let (ahead, car) = (&w[0], &w[1]);
            seen.push(car.number());
            let chase = self.chases.entry(car.number()).or_default();
            if chase.ahead != ahead.number() || car.in_pit() || ahead.in_pit() {
                *chase = Chase {
                    ahead: ahead.number(),
                    samples: VecDeque::new(),
                };
                if car.in_pit() || ahead.in_pit() {
                    continue;
                }
            }
            let Some(interval) = car.interval_s() else {
                continue;
            };
            chase.samples.push_back((now, interval));
            while chase
                .samples
                .front()
                .is_some_and(|&(t, _)| now - t > window_ms)
            {
                chase.samples.pop_front();
            }
            // A full window of history, and a chase worth telling.
            let span = now - chase.samples.front().map_or(now, |s| s.0);
            if span * 10 < window_ms * 9 || interval <= p.drs_s {
                continue;
            }
            let Some(per_s) = slope(&chase.samples) else {
                continue;
            };
            let lap_s = ahead
                .last_lap_s()
                .or(car.last_lap_s())
                .filter(|l| (30.0..300.0).contains(l))
                .unwrap_or(90.0);
            let rate = -per_s * lap_s;
            if rate < p.min_rate_s_per_lap {
                continue;
            }
            let laps_to_drs = (interval - p.drs_s) / rate;
            let key = (car.number(), ahead.number());
            if laps_to_drs > p.max_laps_to_drs
                || self.told.get(&key).is_some_and(|&t| now - t < repeat_ms)
            {
                continue;
            }
            self.told.insert(key, now);
            let laps = laps_to_drs.max(1.0).round();
            let headline = format!(
                "#{} closes on #{} at {rate:.1} s/lap, in DRS range in ~{laps:.0} {} ({interval:.1} s now)",
                car.number(),
                ahead.number(),
                if laps == 1.0 { "lap" } else { "laps" }
            );
            let pos = ahead.position().unwrap_or(0);
            drafts.push(
                Draft::new(
                    "catching",
                    &[car.number(), ahead.number()],
                    headline,
                    0.3 + front_weight(pos) + (rate / 5.0).min(0.1),
                )
                .evidence("interval_s", interval)
                .evidence("rate_s_per_lap", rate)
                .evidence("laps_to_drs", laps_to_drs)
                .evidence("position", f64::from(pos)),
            );
        }
        self.chases.retain(|c, _| seen.contains(c));
        self.told.retain(|_, &mut t| now - t < repeat_ms);
    }

    fn fastest(
        &mut self,
        frame: &Frame<'_>,
        p: &PaceParams,
        under_way: bool,
        drafts: &mut Vec<Draft>,
    ) {
        if !under_way {
            // Formation-lap and in-lap times are not race laps.
            for car in frame.cars() {
                if let Some(l) = car.last_lap_s() {
                    self.last_lap.insert(car.number(), l);
                }
            }
            return;
        }
        let tell = frame.race().lap() >= p.fastest_from_lap;
        for car in frame.cars() {
            let Some(lap_s) = car.last_lap_s() else {
                continue;
            };
            let new = self.last_lap.insert(car.number(), lap_s) != Some(lap_s);
            if !new || car.retired() || lap_s <= 0.0 {
                continue;
            }
            let improvement = self.best.map(|b| b - lap_s);
            match self.best {
                Some(best) if lap_s >= best => continue,
                Some(best) if lap_s < best * (1.0 - p.max_improvement) => continue,
                _ => {}
            }
            self.best = Some(lap_s);
            if !tell {
                continue;
            }
            let lap = car.lap().saturating_sub(1);
            let progress = frame
                .race()
                .total_laps()
                .map_or(0.0, |t| f64::from(frame.race().lap()) / f64::from(t));
            let (m, s) = ((lap_s / 60.0).floor(), lap_s % 60.0);
            drafts.push(
                Draft::new(
                    "fastest_lap",
                    &[car.number()],
                    format!(
                        "Fastest lap: #{} with {m:.0}:{s:06.3} on lap {lap}",
                        car.number()
                    ),
                    0.3 + 0.3 * progress.clamp(0.0, 1.0),
                )
                .evidence("lap_s", lap_s)
                .evidence("lap", f64::from(lap))
                .evidence("improvement_s", improvement.unwrap_or(f64::NAN)),
            );
        }
    }
}
