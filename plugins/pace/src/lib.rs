//! `pace`: a car model giving each car's rolling green-flag pace.
//!
//! Per car it keeps the last `windows` window speeds and emits `pace_kmh`,
//! their mean, once it has at least `min_samples`. The speed is the window
//! aggregate named `speed_aggregate` (default `speed_mean`) when the frame
//! carries it, else the car's speed at the end of the window (`speed_kmh`),
//! so the model works on both the simulator's frames (aggregates) and the
//! real-race frames (track state only).
//!
//! Track state decides which windows count: a window under SC, VSC or red
//! flag, or with the car in the pit lane, says nothing about its racing pace
//! and is skipped (the car keeps its earlier samples). Also emits
//! `pace_delta_kmh`: the car's pace minus the field's median pace, so a
//! producer can say "the fastest car on track" without comparing numbers.

use std::collections::{HashMap, VecDeque};

use pitwall_plugin_sdk::{AggIndex, Car, CarModel, Context, Frame, Output, PluginResult};
use serde::Deserialize;

/// Settings, from the model parameters (JSON) or the defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Window aggregate to read the speed from, if the frame has it.
    pub speed_aggregate: String,
    /// Rolling window, in frames.
    pub windows: usize,
    /// Samples needed before a car's pace is reported.
    pub min_samples: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            speed_aggregate: "speed_mean".into(),
            windows: 30,
            min_samples: 5,
        }
    }
}

#[derive(Default)]
pub struct Pace {
    speeds: HashMap<u16, VecDeque<f64>>,
    params: Params,
    speed_index: Option<AggIndex>,
    /// Median pace of the field at the start of the frame.
    field_median: Option<f64>,
    green: bool,
}

impl Pace {
    fn mean(samples: &VecDeque<f64>) -> f64 {
        samples.iter().sum::<f64>() / samples.len() as f64
    }

    fn speed(&self, car: &Car<'_>) -> Option<f64> {
        match self.speed_index {
            Some(i) => car.aggregate_at(i),
            None => car.speed_kmh().map(f64::from),
        }
        .filter(|s| *s > 0.0)
    }
}

impl CarModel for Pace {
    fn begin_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context) -> PluginResult {
        self.params = ctx.params_json_or_default();
        self.speed_index = frame.aggregate_index(&self.params.speed_aggregate);
        self.green = !frame.race().neutralised();
        let min = self.params.min_samples.max(1);
        let mut paces: Vec<f64> = self
            .speeds
            .values()
            .filter(|s| s.len() >= min)
            .map(Self::mean)
            .collect();
        paces.sort_by(f64::total_cmp);
        self.field_median = (!paces.is_empty()).then(|| paces[paces.len() / 2]);
        Ok(())
    }

    fn on_car(
        &mut self,
        car: &Car<'_>,
        _frame: &Frame<'_>,
        _ctx: &mut Context,
        out: &mut Output,
    ) -> PluginResult {
        let speed = self.speed(car).filter(|_| self.green && !car.in_pit());
        let windows = self.params.windows.max(1);
        let samples = self.speeds.entry(car.number()).or_default();
        if let Some(s) = speed {
            samples.push_back(s);
            while samples.len() > windows {
                samples.pop_front();
            }
        }
        if samples.len() < self.params.min_samples.max(1) {
            return Ok(());
        }
        let pace = Self::mean(samples);
        out.metric(car.number(), "pace_kmh", pace, "km/h")?;
        if let Some(median) = self.field_median {
            out.metric(car.number(), "pace_delta_kmh", pace - median, "km/h")?;
        }
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(Pace, name = "pace", version = "1.0.0", kind = car_model);
