//! Adaptive sampling: per-channel downsampling before windowing.
//!
//! In: a car's [`SampleBatch`] in input order. Out: the same batch with values that
//! the channel's [`SamplingPolicy`](crate::schema::SamplingPolicy) drops replaced by `NaN` (missing); rows are kept,
//! so `count` and other channels are unaffected. State: per car and sampled
//! channel, the event time and value of the last kept sample.
//!
//! A value is kept when both hold: at least `min_interval` of event time since the
//! last kept value (in input order; an earlier, out-of-order timestamp does not
//! qualify), and it differs from the last kept value by more than `deadband`.
//! The first value of a car is always kept.

use serde::{Deserialize, Serialize};

use crate::batch::SampleBatch;
use crate::schema::Schema;
use crate::time::EventTime;

/// One sampled channel, compiled.
#[derive(Debug, Clone, PartialEq)]
struct SampledChannel {
    ch: usize,
    name: String,
    min_interval: Option<EventTime>,
    deadband: Option<f64>,
}

/// The sampling policies of a schema, compiled.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SamplingPlan {
    channels: Vec<SampledChannel>,
}

/// Last kept sample of one car's sampled channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LastKept {
    pub ts: EventTime,
    pub value: f64,
}

/// Per-car sampling state (one slot per sampled channel).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SamplerState {
    last: Vec<Option<LastKept>>,
}

impl SamplingPlan {
    /// Compiles the policies of the channels the job uses (`used[c]`).
    pub fn compile(schema: &Schema, used: &[bool]) -> Self {
        let unit = schema.time.unit;
        let channels = schema
            .channels
            .iter()
            .enumerate()
            .filter(|(c, _)| used.get(*c).copied().unwrap_or(false))
            .filter_map(|(ch, spec)| {
                let p = spec.sampling?;
                let min_interval = p
                    .min_interval
                    .and_then(|d| unit.ticks(d.0, "min_interval").ok())
                    .filter(|t| *t > 0);
                let deadband = p.deadband.filter(|d| *d >= 0.0);
                (min_interval.is_some() || deadband.is_some()).then_some(SampledChannel {
                    ch,
                    name: spec.name.clone(),
                    min_interval,
                    deadband,
                })
            })
            .collect();
        SamplingPlan { channels }
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// A fresh per-car state.
    pub fn new_state(&self) -> SamplerState {
        SamplerState {
            last: vec![None; self.channels.len()],
        }
    }

    /// Thins `batch` in place; returns the number of values dropped per sampled channel
    /// (added to `dropped`, indexed by schema channel).
    pub fn apply(&self, state: &mut SamplerState, batch: &mut SampleBatch, dropped: &mut [u64]) {
        for (slot, sc) in self.channels.iter().enumerate() {
            let col = &mut batch.columns[sc.ch];
            let mut last = state.last[slot];
            let mut n = 0u64;
            for (v, &t) in col.iter_mut().zip(&batch.ts) {
                if v.is_nan() {
                    continue;
                }
                let keep = match last {
                    None => true,
                    Some(l) => {
                        sc.min_interval
                            .is_none_or(|mi| t >= l.ts.saturating_add(mi))
                            && sc.deadband.is_none_or(|d| (*v - l.value).abs() > d)
                    }
                };
                if keep {
                    last = Some(LastKept { ts: t, value: *v });
                } else {
                    *v = f64::NAN;
                    n += 1;
                }
            }
            state.last[slot] = last;
            dropped[sc.ch] += n;
            if n > 0 {
                metrics::counter!("pitwall_sampled_out_values_total", "channel" => sc.name.clone())
                    .increment(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SamplingPolicy;
    use crate::time::ConfigDuration;

    fn schema_with(policy: SamplingPolicy) -> Schema {
        let mut s = Schema::f1_bench();
        s.channels[0].sampling = Some(policy);
        s
    }

    fn batch(ts: Vec<i64>, speed: Vec<f64>) -> SampleBatch {
        let mut columns = vec![Vec::new(); 6];
        columns[0] = speed;
        SampleBatch {
            key: 0,
            ts,
            columns,
        }
    }

    #[test]
    fn min_interval_thins_a_fast_channel_across_batches() {
        let s = schema_with(SamplingPolicy {
            min_interval: Some(ConfigDuration::from_millis(100)),
            deadband: None,
        });
        let plan = SamplingPlan::compile(&s, &[true; 6]);
        let mut st = plan.new_state();
        let mut dropped = vec![0; 6];
        let mut b = batch((0..10).map(|i| i * 40).collect(), vec![1.0; 10]);
        plan.apply(&mut st, &mut b, &mut dropped);
        let kept: Vec<i64> =
            b.ts.iter()
                .zip(&b.columns[0])
                .filter(|(_, v)| !v.is_nan())
                .map(|(t, _)| *t)
                .collect();
        assert_eq!(kept, vec![0, 120, 240, 360]);
        assert_eq!(dropped[0], 6);
        let mut b2 = batch(vec![400, 480], vec![1.0, 1.0]);
        plan.apply(&mut st, &mut b2, &mut dropped);
        assert!(b2.columns[0][0].is_nan());
        assert_eq!(b2.columns[0][1], 1.0);
    }

    #[test]
    fn deadband_keeps_only_real_changes() {
        let s = schema_with(SamplingPolicy {
            min_interval: None,
            deadband: Some(0.5),
        });
        let plan = SamplingPlan::compile(&s, &[true; 6]);
        let mut st = plan.new_state();
        let mut dropped = vec![0; 6];
        let mut b = batch(vec![0, 1, 2, 3, 4], vec![10.0, 10.2, 10.6, 10.7, 9.0]);
        plan.apply(&mut st, &mut b, &mut dropped);
        let kept: Vec<f64> = b.columns[0]
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .collect();
        assert_eq!(kept, vec![10.0, 10.6, 9.0]);
    }
}
