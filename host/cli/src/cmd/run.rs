//! `pitwall run`: the main job. For now a simulated race (20 cars, the window
//! benchmark's channels) replayed through the engine, printing a summary of each
//! second of racing as its windows close. Issue 3 replaces the simulator with a
//! real recorded race, and issue 6 serves the feeds on localhost.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use pitwall_engine::job::{JobOptions, JobSink, run_job};
use pitwall_engine::source::sim::{SimConfig, Simulator};
use pitwall_engine::source::{OnError, SourceOptions};
use pitwall_engine::time::ConfigDuration;
use pitwall_engine::{Collector, EventTime, JobConfig, JobPlan, LateRow, WindowResult};

/// The job `pitwall run` uses unless given `--config`.
const DEFAULT_CONFIG: &str = include_str!("../../../../configs/window-bench.toml");

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Job config (schema, windows, aggregates); default: configs/window-bench.toml, built in.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cars on track.
    #[arg(long, default_value_t = 20)]
    pub cars: usize,
    /// Event time to simulate (e.g. `10m`, `90s`).
    #[arg(long, default_value = "5m")]
    pub duration: String,
    /// Replay speed: 1 = real time, 20 = twenty times faster, 0 = as fast as possible.
    #[arg(long, default_value_t = 20.0)]
    pub speed: f64,
    /// Simulator seed (same seed, same race, same output).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one summary line every this many seconds of event time.
    #[arg(long, default_value_t = 5)]
    pub every: u64,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(p) => JobConfig::load(p)?,
        None => JobConfig::parse(DEFAULT_CONFIG)?,
    };
    let plan = Arc::new(config.plan().context("planning the job")?);
    let duration = ConfigDuration::try_from(args.duration.clone()).map_err(anyhow::Error::msg)?;
    if args.speed.is_nan() || args.speed < 0.0 {
        bail!("--speed must be >= 0");
    }
    let sim = SimConfig {
        cars: args.cars,
        duration,
        seed: args.seed,
        pace: (args.speed > 0.0).then_some(args.speed),
        ..SimConfig::default()
    };
    let sim_names: Vec<String> = sim.schema().channels.into_iter().map(|c| c.name).collect();
    let job_names: Vec<&str> = plan
        .schema
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if sim_names.iter().map(String::as_str).collect::<Vec<_>>() != job_names {
        bail!(
            "the job's channels ({}) are not the simulator's ({})",
            job_names.join(", "),
            sim_names.join(", ")
        );
    }
    let source = Simulator::new(
        sim,
        SourceOptions {
            projection: plan.aggregates.used_channels().to_vec(),
            on_error: OnError::Fail,
            chunk_rows: 4 * 1024,
        },
    )?;
    eprintln!(
        "pitwall: simulated race, {} cars, {} of event time at {}; Ctrl-C stops",
        args.cars,
        args.duration,
        if args.speed > 0.0 {
            format!("{}x real time", args.speed)
        } else {
            "full speed".into()
        }
    );
    let mut sink = Summaries::new(plan.clone(), args.every.max(1));
    let job = JobOptions {
        stop: Some(super::stop_on_ctrl_c()),
        ..JobOptions::default()
    };
    let summary = run_job(plan, Box::new(source), &mut sink, &job, &mut |_| {})?;
    sink.print_pending();
    let s = &summary.stats;
    eprintln!(
        "done: rows {}  late {}  windows {}  in {:.1} s",
        s.rows_in,
        s.late_rows,
        s.windows_fired,
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Prints, per second of racing, who was fastest and the field's averages.
struct Summaries {
    plan: Arc<JobPlan>,
    every: EventTime,
    current: Option<EventTime>,
    windows: Vec<WindowResult>,
    late: u64,
    max_speed: Option<usize>,
    mean_speed: Option<usize>,
    burn: Option<usize>,
}

impl Summaries {
    fn new(plan: Arc<JobPlan>, every_s: u64) -> Self {
        let col = |n: &str| plan.aggregates.names().iter().position(|x| x == n);
        Summaries {
            every: every_s as EventTime * plan.schema.time.unit.ticks_per_second(),
            current: None,
            windows: Vec::new(),
            late: 0,
            max_speed: col("max_speed"),
            mean_speed: col("mean_speed"),
            burn: col("throttle_rpm_dt"),
            plan,
        }
    }

    fn print_pending(&mut self) {
        let Some(start) = self.current else { return };
        let ws = std::mem::take(&mut self.windows);
        let secs = start as f64 / self.plan.schema.time.unit.ticks_per_second() as f64;
        let mut line = format!(
            "[{:>4}:{:04.1}] {:>2} cars",
            (secs / 60.0) as u64,
            secs % 60.0,
            ws.len()
        );
        let best = |col: usize| {
            ws.iter()
                .filter(|w| !w.values[col].is_nan())
                .max_by(|a, b| a.values[col].total_cmp(&b.values[col]))
        };
        if let Some(c) = self.max_speed
            && let Some(w) = best(c)
        {
            line += &format!(" | top speed #{} {:.1} km/h", w.car, w.values[c]);
        }
        if let Some(c) = self.mean_speed {
            let v: Vec<f64> = ws
                .iter()
                .map(|w| w.values[c])
                .filter(|v| !v.is_nan())
                .collect();
            if !v.is_empty() {
                line += &format!(
                    " | field mean {:.1} km/h",
                    v.iter().sum::<f64>() / v.len() as f64
                );
            }
        }
        if let Some(c) = self.burn
            && let Some(w) = best(c)
        {
            line += &format!(" | hardest on the throttle #{}", w.car);
        }
        let flags = &ws.first().map(|w| w.broadcast.clone());
        if let Some(b) = flags
            && b.safety_car
        {
            line += " | SAFETY CAR";
        }
        line += &format!(" | late rows {}", self.late);
        println!("{line}");
    }
}

impl Collector for Summaries {
    fn window(&mut self, w: WindowResult) {
        if self.current != Some(w.start) {
            let due = match self.current {
                None => true,
                Some(c) => w.start.div_euclid(self.every) != c.div_euclid(self.every),
            };
            if due {
                self.print_pending();
            }
            self.windows.clear();
            self.current = Some(w.start);
        }
        self.windows.push(w);
    }

    fn late(&mut self, _row: LateRow<'_>) {
        self.late += 1;
    }
}

impl JobSink for Summaries {}
