//! `pitwall run`: the main job. By default the bundled real race (the 2024 Austrian
//! GP, `data/2024-austria-race/`) replayed through the engine at 20x real time with
//! its race control; with `--simulate`, a simulated race (20 cars, the window
//! benchmark's channels, flags, safety cars, pit stops). Either way it prints a
//! summary line as the windows close, with the race state the windows saw, and a
//! line whenever race control changes that state. Issue 6 serves the feeds on
//! localhost. With `--ingest` (live mode) the engine reads telemetry POSTed to
//! `/ingest` instead (see [`run_ingest`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use pitwall_engine::broadcast::BroadcastState;
use pitwall_engine::job::{JobOptions, JobSink, run_job};
use pitwall_engine::source::sim::{RaceConfig, SimConfig, Simulator};
use pitwall_engine::source::{OnError, SourceOptions};
use pitwall_engine::time::ConfigDuration;
use pitwall_engine::{Collector, EventTime, JobConfig, JobPlan, LateRow, WindowResult};

/// The job `pitwall run` uses unless given `--config`.
const DEFAULT_CONFIG: &str = include_str!("../../../../configs/window-bench.toml");

/// The race `pitwall run` replays unless told otherwise (in the checkout).
pub const BUNDLED_RACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/2024-austria-race");

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run the simulator instead of the bundled real race.
    #[arg(long)]
    pub simulate: bool,
    /// A recorded race to replay instead of the bundled one (see `pitwall replay`).
    #[arg(long, conflicts_with = "simulate")]
    pub data: Option<PathBuf>,
    /// Live mode: the engine reads telemetry POSTed to `/ingest` (NDJSON or
    /// FlatBuffers batches, in `--config`'s schema) instead of replaying a race;
    /// windows become frames, plugins and feeds as in a replay. Ctrl-C ends it.
    #[arg(long, conflicts_with_all = ["simulate", "data", "no_listen", "frames_out"])]
    pub ingest: bool,
    /// With `--ingest`: batches the engine's input queue holds; beyond them
    /// `/ingest` answers 429 with `Retry-After`.
    #[arg(long, default_value_t = 64, requires = "ingest")]
    pub ingest_queue: usize,
    /// With `--ingest`: the race id the history store files the live race
    /// under (default: `live-` and the start time, UTC, e.g.
    /// `live-2026-11-22T06-15-00Z`). Reusing an id replaces that race's
    /// history.
    #[arg(long, requires = "ingest")]
    pub race_id: Option<String>,
    /// With `--ingest`: the largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = pitwall_server::ingest::DEFAULT_BODY_LIMIT, requires = "ingest")]
    pub ingest_max_body: usize,
    /// Write one race frame per window here (`.ndjson` or `.pwrf`); real races only.
    #[arg(long, conflicts_with = "simulate")]
    pub frames_out: Option<PathBuf>,
    /// Race predictions once per lap (Monte Carlo runs per strategy; 0 = none).
    #[arg(long, default_value_t = 500, conflicts_with = "simulate")]
    pub predict_runs: u32,
    /// Where the prediction kernels run: `auto`, `on` (GPU or fail), `off` (CPU).
    #[arg(long, default_value = "auto")]
    pub gpu: pitwall_gpu::GpuSetting,
    /// Run the WASM plugins in this directory (watched: drop a new `NAME.wasm` in
    /// to hot-swap it at the next window) instead of the bundled examples.
    #[arg(long, conflicts_with = "simulate")]
    pub plugins: Option<PathBuf>,
    /// Run no plugins.
    #[arg(long, conflicts_with = "plugins")]
    pub no_plugins: bool,
    /// Print plugin stories at least this important (0..1).
    #[arg(long, default_value_t = 0.5)]
    pub min_importance: f64,
    /// Serve the feeds here while the race runs: SSE `/feed`, WebSocket `/ws`,
    /// `/health`, `/stories`, Prometheus `/metrics`, the live views
    /// `/live-battles`, `/predict`, `/burn-bar`, `/telemetry/live` (port 0: any
    /// free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Serve nothing.
    #[arg(long)]
    pub no_listen: bool,
    /// Keep serving after the race until Ctrl-C.
    #[arg(long, conflicts_with = "no_listen")]
    pub stay: bool,
    /// Per-call plugin deadline (e.g. `5ms`, `1s`): a call past it is interrupted
    /// and counted as a failure.
    #[arg(long, default_value = "5ms")]
    pub plugin_deadline: String,
    /// Job config for `--simulate` (schema, windows, aggregates); default:
    /// configs/window-bench.toml, built in.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cars on track (`--simulate`).
    #[arg(long, default_value_t = 20)]
    pub cars: usize,
    /// Event time to simulate (`--simulate`; e.g. `10m`, `90s`).
    #[arg(long, default_value = "5m")]
    pub duration: String,
    /// Replay speed: 1 = real time, 20 = twenty times faster, 0 = as fast as possible.
    #[arg(long, default_value_t = 20.0)]
    pub speed: f64,
    /// Simulator seed (same seed, same race, same output).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one summary line every this many seconds of event time.
    #[arg(long, default_value_t = 30)]
    pub every: u64,
    /// The history store and API keys (with the server).
    #[command(flatten)]
    pub server: super::server_opts::ServerOptions,
    /// Safety cars and VSCs per hour of racing (0: none).
    #[arg(long, default_value_t = RaceConfig::default().safety_car_per_hour)]
    pub safety_cars: f64,
    /// Pit stops per car.
    #[arg(long, default_value_t = RaceConfig::default().pit_stops)]
    pub pit_stops: u32,
    /// Retirements per hour of racing (0: none); a retired car sends no more rows
    /// and its keyed state expires after the job's TTL.
    #[arg(long, default_value_t = RaceConfig::default().retirements_per_hour)]
    pub retirements: f64,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    if args.ingest {
        return run_ingest(args);
    }
    if !args.simulate {
        let data = args
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(BUNDLED_RACE));
        if !data.is_dir() {
            bail!(
                "the bundled race is not at {} (run from a checkout, give --data DIR, or use --simulate)",
                data.display()
            );
        }
        return super::replay::run(&super::replay::ReplayArgs {
            data,
            speed: args.speed,
            from: None,
            window: "1s".into(),
            every: args.every,
            frames_out: args.frames_out.clone(),
            predict_runs: args.predict_runs,
            gpu: args.gpu,
            laps: None,
            plugins: args.plugins.clone(),
            example_plugins: args.plugins.is_none() && !args.no_plugins,
            min_importance: args.min_importance,
            plugin_deadline: args.plugin_deadline.clone(),
            listen: (!args.no_listen).then_some(args.listen),
            stay: args.stay,
            server: args.server.clone(),
        });
    }
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
    let race = RaceConfig {
        safety_car_per_hour: args.safety_cars,
        pit_stops: args.pit_stops,
        retirements_per_hour: args.retirements,
        ..RaceConfig::default()
    };
    let source = Simulator::with_race(
        sim,
        race,
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

/// `pitwall run --ingest`: the live job. Telemetry comes from `POST /ingest`
/// through a bounded [`PushSource`](pitwall_engine::source::push::PushSource); the job's windows (1 s, the replay's
/// aggregates over `--config`'s schema) become race frames for the plugins and
/// the feeds, as in a replay. Live frames have no track model: no positions or
/// running order (unless rows carry `x`/`y`, whose last values are aggregated),
/// only the aggregates and race state. Runs until Ctrl-C.
fn run_ingest(args: &RunArgs) -> anyhow::Result<()> {
    use pitwall_engine::RowChunk;
    use pitwall_engine::source::push::PushSource;
    use pitwall_race::frames::FrameAssembler;
    use pitwall_server::ingest::Ingest;
    use pitwall_server::{FeedHub, HubConfig};

    let schema = match &args.config {
        Some(p) => JobConfig::load(p)?,
        None => JobConfig::parse(DEFAULT_CONFIG)?,
    }
    .schema;
    let config = pitwall_race::session::replay_job(&schema, ConfigDuration::from_millis(1000));
    let plan = Arc::new(config.plan().context("planning the live job")?);
    let (source, handle) = PushSource::new("http", schema.clone(), args.ingest_queue);
    // Before the plugins and the engine: metric handles bind to the recorder
    // installed when they are made.
    super::prometheus();
    let choice = match &args.plugins {
        Some(dir) => super::plugin::PluginChoice::Watch(dir.clone()),
        None if args.no_plugins => super::plugin::PluginChoice::None,
        None => super::plugin::PluginChoice::Examples,
    };
    let stage = super::plugin::PluginStage::open(
        &choice,
        super::plugin::PrintOptions {
            min_importance: args.min_importance,
            all: false,
            deadline: super::plugin::parse_deadline(&args.plugin_deadline)?,
        },
    )?;

    // Live frames have no lap model: stories and predictions are archived,
    // lap rows only where frames carry laps.
    let (store, auth) = args.server.open(args.listen)?;
    let hub = FeedHub::new(HubConfig::default());
    let mut state = super::replay::app_state(hub.clone(), stage.as_ref())
        .with_auth(auth)
        .with_ingest(
            Ingest::new(handle.clone(), schema.clone()).with_body_limit(args.ingest_max_body),
        );
    if let Some(c) = stage.as_ref().map(|s| s.control()) {
        state = state.with_plugins(c);
    }
    if let Some(s) = &store {
        state = state.with_store(s.clone());
    }
    let live = state.live.clone();
    let server = pitwall_server::BackgroundServer::start(args.listen, state)
        .with_context(|| format!("serving on {}", args.listen))?;
    let names: Vec<&str> = schema.channels.iter().map(|c| c.name.as_str()).collect();
    eprintln!(
        "pitwall: live ingest on http://{}/ingest (channels: {}; queue {} batches); Ctrl-C stops",
        server.local_addr(),
        names.join(", "),
        args.ingest_queue
    );
    super::replay::print_routes(server.local_addr(), store.is_some(), true);

    // The engine waits on the queue; on Ctrl-C an empty chunk wakes it so it
    // sees the stop request (a full queue wakes it anyway).
    let stop = super::stop_on_ctrl_c();
    let waker = {
        let (stop, handle) = (stop.clone(), handle.clone());
        let n = schema.channels.len();
        std::thread::Builder::new()
            .name("pitwall-ingest-stop".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let _ = handle.try_push(RowChunk::with_capacity(n, 0, &vec![true; n]));
            })?
    };
    drop(handle);
    let job = JobOptions {
        stop: Some(stop),
        ..JobOptions::default()
    };
    let printer = LiveFrames {
        every_ms: args.every.max(1) as i64 * 1000,
        last: None,
    };
    let archive = match &store {
        Some(store) => {
            let race_id = args.race_id.clone().unwrap_or_else(|| {
                // A name for people, not an input to any operator.
                let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string()
                    .replace(':', "-");
                format!("live-{now}")
            });
            anyhow::ensure!(
                !race_id.is_empty()
                    && race_id.len() <= 128
                    && race_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
                "--race-id `{race_id}`: use letters, digits, `-`, `_`, `.` (it is a URL path segment)"
            );
            let race = pitwall_store::RaceInfo {
                name: format!("live ingest {race_id}"),
                race_id,
                year: None,
                circuit: None,
                total_laps: None,
                started_ms: None,
            };
            eprintln!(
                "history: stories and predictions into race `{}` in {}",
                race.race_id,
                args.server.db.display()
            );
            Some(super::archive::RaceArchive::open(store, &race, &[])?)
        }
        None => None,
    };
    let mut sink = FrameAssembler::new(
        super::plugin::WithPlugins::new(printer, stage)
            .with_hub(Some(hub.clone()))
            .with_live(Some(live))
            .with_archive(archive),
        "live",
        plan.size,
        plan.aggregates.names().to_vec(),
        None,
    );
    let summary = run_job(plan, Box::new(source), &mut sink, &job, &mut |_| {})?;
    let (out, frames) = sink.finish()?;
    if let Some(stage) = out.into_parts().1 {
        stage.summary();
    }
    eprintln!("feeds: {:?}", hub.stats());
    server.shutdown()?;
    let _ = waker.join();
    let s = &summary.stats;
    eprintln!(
        "done: rows {}  late {}  windows {}  frames {frames}  in {:.1} s",
        s.rows_in,
        s.late_rows,
        s.windows_fired,
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Live frames for people: one line every `every_ms` of event time.
struct LiveFrames {
    every_ms: i64,
    last: Option<i64>,
}

impl pitwall_race::frames::FrameSink for LiveFrames {
    fn frame(&mut self, f: &pitwall_plugin_sdk::frame::RaceFrameData) -> std::io::Result<()> {
        if self
            .last
            .is_some_and(|t| f.window_start_ms - t < self.every_ms)
        {
            return Ok(());
        }
        self.last = Some(f.window_start_ms);
        println!(
            "live frame {} at {} ms: {} cars | {:?} flag",
            f.seq,
            f.window_start_ms,
            f.cars.len(),
            f.race.flag
        );
        Ok(())
    }
}

/// Prints, per second of racing, who was fastest and the field's averages, and
/// race control's changes as the windows see them.
pub(crate) struct Summaries {
    plan: Arc<JobPlan>,
    /// Event time shown as 0:00.0: the first window's start (0 for the simulator).
    origin: Option<EventTime>,
    every: EventTime,
    current: Option<EventTime>,
    windows: Vec<WindowResult>,
    /// The race state of the previous window start.
    race: Arc<BroadcastState>,
    late: u64,
    max_speed: Option<usize>,
    mean_speed: Option<usize>,
    burn: Option<usize>,
}

impl Summaries {
    pub(crate) fn new(plan: Arc<JobPlan>, every_s: u64) -> Self {
        let col = |n: &str| plan.aggregates.names().iter().position(|x| x == n);
        Summaries {
            origin: None,
            every: every_s as EventTime * plan.schema.time.unit.ticks_per_second(),
            current: None,
            windows: Vec::new(),
            race: Arc::default(),
            late: 0,
            max_speed: col("max_speed"),
            mean_speed: col("mean_speed"),
            burn: col("throttle_rpm_dt"),
            plan,
        }
    }

    /// `[  m:ss.s]` of an event time (tenths truncated, so 59.99 s is `0:59.9`).
    fn clock(&self, ts: EventTime) -> String {
        let ts = ts - self.origin.unwrap_or(0);
        let ms = ts as i128 * 1000 / self.plan.schema.time.unit.ticks_per_second() as i128;
        let sign = if ms < 0 { "-" } else { "" };
        let ms = ms.unsigned_abs();
        format!(
            "[{:>4}:{:02}.{}]",
            format!("{sign}{}", ms / 60_000),
            ms % 60_000 / 1000,
            ms % 1000 / 100
        )
    }

    /// Prints what race control changed between the previous window start's state
    /// and `now`'s: one line per change.
    fn print_race_changes(&mut self, now: &Arc<BroadcastState>, start: EventTime) {
        if Arc::ptr_eq(now, &self.race) || **now == *self.race {
            return;
        }
        let prev = std::mem::replace(&mut self.race, now.clone());
        // A lone new event's own time; several: the window's start (the state only
        // keeps the latest event's time).
        let at = match now.last_event_ts {
            Some(t) if now.applied == prev.applied + 1 && prev.last_event_ts < Some(t) => t,
            _ => start,
        };
        for msg in race_changes(&prev, now) {
            println!("{} {msg}", self.clock(at));
        }
    }

    pub(crate) fn print_pending(&mut self) {
        let Some(start) = self.current else { return };
        let ws = std::mem::take(&mut self.windows);
        let mut line = format!("{} {:>2} cars", self.clock(start), ws.len());
        if let Some(w) = ws.first() {
            line += &format!(" | {:<10}", race_state(&w.broadcast));
        }
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
        if let Some(b) = ws.first().map(|w| &w.broadcast) {
            if !b.in_pit.is_empty() {
                line += &format!(" | pit lane {}", cars(&b.in_pit));
            }
            if !b.retired.is_empty() {
                line += &format!(" | out {}", cars(&b.retired));
            }
        }
        line += &format!(" | late rows {}", self.late);
        println!("{line}");
    }
}

impl Collector for Summaries {
    fn window(&mut self, w: WindowResult) {
        self.origin.get_or_insert(w.start);
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
            let now = w.broadcast.clone();
            self.print_race_changes(&now, w.start);
        }
        self.windows.push(w);
    }

    fn late(&mut self, _row: LateRow<'_>) {
        self.late += 1;
    }
}

impl JobSink for Summaries {}

/// The flag and the neutralisation: `GREEN`, `YELLOW SC`, `YELLOW VSC`, `CHEQUERED`.
fn race_state(b: &BroadcastState) -> String {
    let mut s = b.flag.clone().unwrap_or_else(|| "-".into());
    if b.safety_car {
        s += " SC";
    } else if b.virtual_safety_car {
        s += " VSC";
    }
    s
}

/// `#44 #1`, in car-number order.
fn cars(set: &std::collections::BTreeSet<String>) -> String {
    let mut v: Vec<&String> = set.iter().collect();
    v.sort_by_key(|c| (c.parse::<u64>().unwrap_or(u64::MAX), c.as_str()));
    let v: Vec<String> = v.iter().map(|c| format!("#{c}")).collect();
    v.join(" ")
}

/// What race control changed from `prev` to `now`, as terminal lines.
fn race_changes(prev: &BroadcastState, now: &BroadcastState) -> Vec<String> {
    let mut out = Vec::new();
    let deployed = |on: bool| if on { "deployed" } else { "ending" };
    if now.safety_car != prev.safety_car {
        out.push(format!("SAFETY CAR {}", deployed(now.safety_car)));
    }
    if now.virtual_safety_car != prev.virtual_safety_car {
        out.push(format!(
            "VIRTUAL SAFETY CAR {}",
            deployed(now.virtual_safety_car)
        ));
    }
    if now.flag != prev.flag
        && let Some(f) = &now.flag
    {
        out.push(format!("{f} FLAG"));
    }
    for (car, compound) in &now.tyres {
        if prev.tyres.get(car) != Some(compound) {
            out.push(format!("#{car} pits: {compound} tyres"));
        }
    }
    for car in now.retired.difference(&prev.retired) {
        out.push(format!("#{car} RETIRES"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitwall_engine::broadcast::{BroadcastEvent, EventKind};

    fn apply(s: &BroadcastState, events: &[(EventKind, Option<&str>, &str)]) -> BroadcastState {
        let mut s = s.clone();
        for (i, (kind, car, value)) in events.iter().enumerate() {
            s.apply(&BroadcastEvent {
                ts: 1_000 + i as EventTime,
                kind: kind.clone(),
                car: car.map(str::to_string),
                value: value.to_string(),
            });
        }
        s
    }

    #[test]
    fn race_changes_read_like_race_control() {
        let green = apply(
            &BroadcastState::default(),
            &[(EventKind::Flag, None, "GREEN")],
        );
        assert_eq!(
            race_changes(&BroadcastState::default(), &green),
            ["GREEN FLAG"]
        );
        assert_eq!(race_state(&green), "GREEN");
        let sc = apply(
            &green,
            &[
                (EventKind::Flag, None, "YELLOW"),
                (EventKind::SafetyCar, None, "DEPLOYED"),
                (EventKind::PitIn, Some("44"), ""),
                (EventKind::PitIn, Some("4"), ""),
            ],
        );
        assert_eq!(
            race_changes(&green, &sc),
            ["SAFETY CAR deployed", "YELLOW FLAG"]
        );
        assert_eq!(race_state(&sc), "YELLOW SC");
        assert_eq!(cars(&sc.in_pit), "#4 #44");
        let tyres = apply(
            &sc,
            &[
                (EventKind::TyreChange, Some("44"), "MEDIUM"),
                (EventKind::Retirement, Some("23"), "engine"),
            ],
        );
        assert_eq!(
            race_changes(&sc, &tyres),
            ["#44 pits: MEDIUM tyres", "#23 RETIRES"]
        );
        assert!(race_changes(&tyres, &tyres).is_empty());
    }
}
