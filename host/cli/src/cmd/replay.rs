//! `pitwall replay --data DIR`: a recorded real race through the engine.
//!
//! Reads an OpenF1 session folder (`location/`, or only the timing tables `laps`
//! and `intervals`, with `race_control` and `pit` tables beside it) or an F1
//! live-timing archive (`livetiming_raw/*.jsonStream`),
//! merges the race-control events into the telemetry by event time, replays it at a
//! speed factor from a chosen point of the race, and prints the per-window summaries
//! and race-control changes (the same printer as `pitwall run`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use pitwall_engine::Schema;
use pitwall_engine::job::{JobOptions, run_job};
use pitwall_engine::source::replay::{Replay, ReplayOptions};
use pitwall_engine::source::with_events::WithEvents;
use pitwall_engine::source::{OnError, Source, SourceOptions};
use pitwall_engine::time::ConfigDuration;
use pitwall_race::frames::{FlatBufferFrames, FrameAssembler, NdjsonFrames};
use pitwall_race::{livetiming, openf1};

use super::plugin::WithPlugins;
use super::run::Summaries;
use pitwall_plugin_sdk::frame::{Flag, PitEventKind, RaceFrameData};

/// Prints race frames for people: every `every` of event time the running order
/// with gaps, and at once every change of flag, safety car and pit lane.
struct PrintFrames {
    every_ms: i64,
    origin: Option<i64>,
    last_print: Option<i64>,
    last: Option<(Flag, bool, bool)>,
    /// Leader lap of the last printed prediction.
    predicted_lap: Option<u16>,
}

impl PrintFrames {
    fn clock(&self, ts: i64) -> String {
        super::race_clock(self.origin, ts)
    }
}

impl PrintFrames {
    /// Once per leader lap, when the frame carries race predictions: the
    /// favourites and the leader's predicted next lap. (The pit-strategy figures
    /// are in the frames; their gain is measured against staying out to the flag,
    /// which early in a race is no plan at all, so it makes a poor headline.)
    fn prediction_line(&mut self, f: &RaceFrameData) -> Option<String> {
        let kernel = |name: &str| f.kernels.iter().find(|k| k.name == name);
        let p_win = kernel("p_win@1")?;
        // After the flag the frames carry the last prediction on: print it once.
        if self.predicted_lap == Some(f.race.lap)
            || (f.race.total_laps > 0 && f.race.lap > f.race.total_laps)
        {
            return None;
        }
        self.predicted_lap = Some(f.race.lap);
        let mut fav: Vec<(u16, f64)> = f
            .cars
            .iter()
            .zip(&p_win.values)
            .filter(|(_, p)| p.is_finite() && **p > 0.0)
            .map(|(c, p)| (c.car, *p))
            .collect();
        fav.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut line = format!("lap {:>2} predictions | P(win)", f.race.lap);
        for (car, p) in fav.iter().take(3) {
            line += &format!(" #{car} {:.0}%", p * 100.0);
        }
        if let Some(lap_s) = kernel("pred_lap_s@1") {
            let leader = f.cars.iter().position(|c| c.position == 1);
            if let Some(t) = leader
                .and_then(|i| lap_s.values.get(i))
                .filter(|t| t.is_finite())
            {
                line += &format!(" | leader's next lap {t:.1} s");
            }
        }
        Some(line)
    }
}

impl pitwall_race::frames::FrameSink for PrintFrames {
    fn frame(&mut self, f: &RaceFrameData) -> std::io::Result<()> {
        self.origin.get_or_insert(f.window_start_ms);
        let r = &f.race;
        let state = (r.flag, r.safety_car, r.virtual_safety_car);
        if self.last != Some(state) {
            let mut what = format!("{:?} flag", r.flag).to_uppercase();
            if r.safety_car {
                what += ", SAFETY CAR";
            }
            if r.virtual_safety_car {
                what += ", VIRTUAL SAFETY CAR";
            }
            println!("{} {what}", self.clock(f.window_start_ms));
            self.last = Some(state);
        }
        if let Some(line) = self.prediction_line(f) {
            println!("{} {line}", self.clock(f.window_start_ms));
        }
        for e in &r.pit_events {
            let lap = f.cars.iter().find(|c| c.car == e.car).map_or(0, |c| c.lap);
            let verb = match e.kind {
                PitEventKind::PitIn => "enters the pit lane",
                PitEventKind::PitOut => "leaves the pit lane",
            };
            println!("{} #{} {verb} (lap {lap})", self.clock(e.ts_ms), e.car);
        }
        if self
            .last_print
            .is_some_and(|t| f.window_start_ms - t < self.every_ms)
        {
            return Ok(());
        }
        self.last_print = Some(f.window_start_ms);
        let mut order: Vec<_> = f.cars.iter().filter(|c| c.position > 0).collect();
        order.sort_by_key(|c| c.position);
        let mut line = format!(
            "{} lap {:>2} | {:<9}",
            self.clock(f.window_start_ms),
            r.lap,
            format!("{:?}", r.flag).to_uppercase()
        );
        for c in order.iter().take(6) {
            line += &match c.position {
                1 => format!(" | P1 #{}", c.car),
                p if c.interval_s.is_finite() => {
                    format!(" P{p} #{} +{:.1}s", c.car, c.interval_s)
                }
                p => format!(" P{p} #{}", c.car),
            };
        }
        let in_pit: Vec<String> = f
            .cars
            .iter()
            .filter(|c| c.in_pit)
            .map(|c| format!("#{}", c.car))
            .collect();
        if !in_pit.is_empty() {
            line += &format!(" | pit lane {}", in_pit.join(" "));
        }
        println!("{line}");
        Ok(())
    }
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// A session folder: OpenF1 CSV (`location/`, `openf1_race_control.csv`, `openf1_pit.csv`)
    /// or a live-timing archive (`livetiming_raw/`).
    #[arg(long)]
    pub data: PathBuf,
    /// Replay speed: 1 = real time, 10 = ten times faster, 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Start this far into the recording (e.g. `20m`); earlier rows are skipped.
    #[arg(long)]
    pub from: Option<String>,
    /// Window size.
    #[arg(long, default_value = "1s")]
    pub window: String,
    /// Print one summary line every this many seconds of event time.
    #[arg(long, default_value_t = 60)]
    pub every: u64,
    /// Write one race frame per window here instead of printing summaries:
    /// `.ndjson` (inspection) or `.pwrf` (length-prefixed FlatBuffers, as plugins get them).
    #[arg(long)]
    pub frames_out: Option<PathBuf>,
    /// Race predictions (P(win), pit window, next lap time) once per lap: Monte
    /// Carlo runs per strategy; 0 = none. Needs the race distance (`--laps`, or the
    /// session result's laps).
    #[arg(long, default_value_t = 0)]
    pub predict_runs: u32,
    /// Where the prediction kernels run: `auto` (GPU if there is one), `on`
    /// (GPU or fail), `off` (CPU).
    #[arg(long, default_value = "auto")]
    pub gpu: pitwall_gpu::GpuSetting,
    /// Scheduled race distance in laps (default: from the session result, if any).
    #[arg(long)]
    pub laps: Option<u16>,
    /// Run the WASM plugins in this directory on every frame, and watch it: a new
    /// or changed `NAME.wasm` / `NAME.params.json` is swapped in at the next window.
    #[arg(long, conflicts_with = "example_plugins")]
    pub plugins: Option<PathBuf>,
    /// Run the example plugins built with this checkout (plugins/).
    #[arg(long)]
    pub example_plugins: bool,
    /// Print plugin stories at least this important (0..1).
    #[arg(long, default_value_t = 0.5)]
    pub min_importance: f64,
    /// Per-call plugin deadline (e.g. `5ms`, `1s`).
    #[arg(long, default_value = "5ms")]
    pub plugin_deadline: String,
    /// Serve the feeds here while replaying: SSE `/feed`, WebSocket `/ws`,
    /// `/health`, `/stories`, Prometheus `/metrics`, the live views
    /// `/live-battles`, `/predict`, `/burn-bar`, `/telemetry/live` (port 0: any
    /// free port).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// With `--listen`: keep serving after the race until Ctrl-C.
    #[arg(long, requires = "listen")]
    pub stay: bool,
    /// With `--listen`: the history store and API keys.
    #[command(flatten)]
    pub server: super::server_opts::ServerOptions,
}

impl ReplayArgs {
    /// Which plugins the replay loads.
    pub fn plugin_choice(&self) -> super::plugin::PluginChoice {
        use super::plugin::PluginChoice;
        match (&self.plugins, self.example_plugins) {
            (Some(dir), _) => PluginChoice::Watch(dir.clone()),
            (None, true) => PluginChoice::Examples,
            (None, false) => PluginChoice::None,
        }
    }

    /// A full-speed replay of `data` for `pitwall plugin test` (no summaries).
    pub fn for_plugin_test(data: PathBuf) -> Self {
        ReplayArgs {
            data,
            speed: 0.0,
            from: None,
            window: "1s".into(),
            every: 3600,
            frames_out: None,
            predict_runs: 0,
            gpu: pitwall_gpu::GpuSetting::Off,
            laps: None,
            plugins: None,
            example_plugins: false,
            min_importance: 0.0,
            plugin_deadline: "5ms".into(),
            listen: None,
            stay: false,
            server: super::server_opts::ServerOptions::default(),
        }
    }
}

/// The race distance: `--laps`, else the winner's laps in an OpenF1 session result.
fn race_laps(args: &ReplayArgs) -> anyhow::Result<u16> {
    if let Some(l) = args.laps {
        return Ok(l);
    }
    Ok(pitwall_race::session::openf1_race_laps(&args.data)?)
}

/// Adds the race predictor to `a` when `--predict-runs` asks for it.
fn with_predictions<S: pitwall_race::frames::FrameSink>(
    a: FrameAssembler<S>,
    args: &ReplayArgs,
    total_laps: u16,
) -> anyhow::Result<FrameAssembler<S>> {
    let a = a.with_total_laps(total_laps);
    if args.predict_runs == 0 {
        return Ok(a);
    }
    if total_laps == 0 {
        eprintln!("no race distance known (give --laps N): no race predictions");
        return Ok(a);
    }
    let backend = pitwall_gpu::detect_backend(args.gpu)?;
    let cfg = pitwall_gpu::PredictorConfig {
        runs: args.predict_runs,
        ..pitwall_gpu::PredictorConfig::default()
    };
    let predictor = pitwall_gpu::RacePredictor::new(pitwall_gpu::LapModel::fitted(), cfg, backend)?;
    eprintln!(
        "race predictions once per lap: {} runs per strategy on {backend:?}",
        args.predict_runs
    );
    Ok(a.with_predictor(predictor))
}

/// The formats `replay` knows.
enum Format {
    OpenF1,
    /// OpenF1 timing tables only (laps, intervals, positions; no car positions).
    Timing,
    LiveTiming(PathBuf),
}

fn detect(dir: &Path) -> anyhow::Result<Format> {
    use pitwall_race::session::SessionKind;
    match SessionKind::detect(dir) {
        Some(SessionKind::Positions) => return Ok(Format::OpenF1),
        Some(SessionKind::Timing) => return Ok(Format::Timing),
        None => {}
    }
    for d in [dir.join("livetiming_raw"), dir.to_path_buf()] {
        if d.join("CarData.z.jsonStream").is_file() || d.join("Position.z.jsonStream").is_file() {
            return Ok(Format::LiveTiming(d));
        }
    }
    bail!(
        "{} is neither an OpenF1 session folder (location/, or laps and intervals) nor a \
         live-timing archive (livetiming_raw/ with CarData.z or Position.z)",
        dir.display()
    )
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    run_with_plugins(args, None)
}

/// The server's state over `hub`: `/health` names the stage's plugins and
/// model versions, `/metrics` serves Prometheus when a recorder installs.
/// Shared by the replay and the live ingest job.
pub(super) fn app_state(
    hub: pitwall_server::FeedHub,
    stage: Option<&super::plugin::PluginStage>,
) -> pitwall_server::AppState {
    use pitwall_server::{AppState, Health, PluginVersion};
    let control = stage.map(|s| s.control());
    let state = AppState::new(hub, move || {
        let plugins = control
            .as_ref()
            .map(|c| {
                c.status()
                    .plugins
                    .iter()
                    .map(|p| PluginVersion {
                        name: p.name.clone(),
                        version: p.live.version.clone(),
                        model_version: p
                            .params
                            .as_ref()
                            .map_or_else(|| "none".into(), |m| m.version.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Health::ok(plugins)
    });
    match super::prometheus() {
        Some(h) => state.with_prometheus(h),
        None => state,
    }
}

/// A running server and what the job feeds it.
struct Serving {
    server: pitwall_server::BackgroundServer,
    hub: pitwall_server::FeedHub,
    live: pitwall_server::LiveView,
    store: Option<pitwall_store::Store>,
}

/// Starts the HTTP server (feeds, health, metrics, live views, history) on
/// its own thread.
fn start_server(
    addr: std::net::SocketAddr,
    stage: Option<&super::plugin::PluginStage>,
    opts: &super::server_opts::ServerOptions,
) -> anyhow::Result<Serving> {
    let (store, auth) = opts.open(addr)?;
    let hub = pitwall_server::FeedHub::new(pitwall_server::HubConfig::default());
    let control = stage.map(|s| s.control());
    let mut state = app_state(hub.clone(), stage).with_auth(auth);
    if let Some(c) = control {
        state = state.with_plugins(c);
    }
    if let Some(s) = &store {
        state = state.with_store(s.clone());
    }
    let live = state.live.clone();
    let server = pitwall_server::BackgroundServer::start(addr, state)
        .with_context(|| format!("serving on {addr}"))?;
    print_routes(server.local_addr(), store.is_some(), false);
    Ok(Serving {
        server,
        hub,
        live,
        store,
    })
}

/// Says where everything is served.
pub(super) fn print_routes(addr: std::net::SocketAddr, store: bool, ingest: bool) {
    eprintln!(
        "feeds on http://{addr}: /feed (SSE), /ws (WebSocket), /health, /stories, /metrics, \
         /live-battles, /predict, /burn-bar, /telemetry/live, /plugins{}{}, /openapi.json; \
         dashboard on http://{addr}/",
        if store {
            ", /races, /history/{race}, /analytics/driver/{n}, /export/{race}/{predictions,stories,laps}.csv"
        } else {
            ""
        },
        if ingest { ", POST /ingest" } else { "" },
    );
}

/// Frames to a file, in either format.
enum FrameWriter {
    Flat(FlatBufferFrames<std::io::BufWriter<std::fs::File>>),
    Ndjson(NdjsonFrames<std::io::BufWriter<std::fs::File>>),
}

impl FrameWriter {
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            FrameWriter::Flat(w) => w.0.flush(),
            FrameWriter::Ndjson(w) => w.0.flush(),
        }
    }
}

impl pitwall_race::frames::FrameSink for FrameWriter {
    fn frame(&mut self, f: &RaceFrameData) -> std::io::Result<()> {
        match self {
            FrameWriter::Flat(w) => w.frame(f),
            FrameWriter::Ndjson(w) => w.frame(f),
        }
    }
}

/// The replay with a plugin stage already opened (`pitwall plugin test`), or the
/// one `args` asks for.
pub fn run_with_plugins(
    args: &ReplayArgs,
    stage: Option<super::plugin::PluginStage>,
) -> anyhow::Result<()> {
    let opts = |schema: &Schema| SourceOptions {
        projection: vec![true; schema.channels.len()],
        on_error: OnError::Fail,
        chunk_rows: 2048,
    };
    let format = detect(&args.data)?;
    let is_openf1 = matches!(format, Format::OpenF1 | Format::Timing);
    let (source, events): (Box<dyn Source>, _) = match format {
        Format::OpenF1 => {
            let probe = openf1::OpenF1LocationSource::open(
                &args.data,
                &SourceOptions {
                    chunk_rows: 2048,
                    ..SourceOptions::all(&Schema::f1_bench())
                },
            )?;
            let o = opts(probe.schema());
            let src = openf1::OpenF1LocationSource::open(&args.data, &o)?;
            let events = openf1::race_events(&args.data).unwrap_or_else(|e| {
                tracing::warn!("no race-control events: {e}");
                Vec::new()
            });
            (Box::new(src), events)
        }
        Format::Timing => {
            let src = pitwall_race::session::session_source(
                &args.data,
                pitwall_race::session::SessionKind::Timing,
                OnError::Fail,
                2048,
            )?;
            (src, pitwall_race::session::session_events(&args.data)?)
        }
        Format::LiveTiming(dir) => {
            let schema = livetiming::telemetry_schema();
            let src = livetiming::LiveTimingTelemetrySource::open(&dir, opts(&schema))?;
            let events = livetiming::race_events(&dir)?;
            (Box::new(src), events)
        }
    };
    let window = ConfigDuration::try_from(args.window.clone()).map_err(anyhow::Error::msg)?;
    let config = pitwall_race::session::replay_job(source.schema(), window);
    let plan = Arc::new(config.plan().context("planning the replay job")?);
    let first_ts = events.first().map(|e| e.ts);
    let n_events = events.len();
    let merged = WithEvents::new(source, events);
    let start_at = match &args.from {
        Some(d) => {
            let d = ConfigDuration::try_from(d.clone()).map_err(anyhow::Error::msg)?;
            let origin = first_ts.context("--from needs a recording with a known start")?;
            Some(origin + d.0.as_millis() as i64)
        }
        None => None,
    };
    if args.speed.is_nan() || args.speed < 0.0 {
        bail!("--speed must be >= 0");
    }
    let replay = Replay::new(
        merged,
        ReplayOptions {
            speed: (args.speed > 0.0).then_some(args.speed),
            start_at,
            ticks_per_second: plan.schema.time.unit.ticks_per_second(),
        },
    );
    eprintln!(
        "pitwall: replaying {} ({} race-control events) at {}",
        args.data.display(),
        n_events,
        if args.speed > 0.0 {
            format!("{}x real time", args.speed)
        } else {
            "full speed".into()
        }
    );
    let job = JobOptions {
        stop: Some(super::stop_on_ctrl_c()),
        ..JobOptions::default()
    };
    let session = args
        .data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let track = if is_openf1 {
        pitwall_race::session::session_timeline(&args.data, plan.size)?
    } else {
        None
    };
    let stints_file = args.data.join("stints.csv");
    let stints = if is_openf1 && stints_file.is_file() {
        openf1::read_stints(&stints_file)?
    } else {
        Vec::new()
    };
    let total_laps = race_laps(args)?;
    if args.listen.is_some() {
        // Before the plugins load: their metric handles bind to the recorder
        // installed when they are made.
        super::prometheus();
    }
    let stage = match stage {
        Some(s) => Some(s),
        None => super::plugin::PluginStage::open(
            &args.plugin_choice(),
            super::plugin::PrintOptions {
                min_importance: args.min_importance,
                all: false,
                deadline: super::plugin::parse_deadline(&args.plugin_deadline)?,
            },
        )?,
    };
    let server = match args.listen {
        Some(addr) => Some(start_server(addr, stage.as_ref(), &args.server)?),
        None => None,
    };
    let hub = server.as_ref().map(|s| s.hub.clone());
    let live = server.as_ref().map(|s| s.live.clone());
    let archive = || -> anyhow::Result<Option<super::archive::RaceArchive>> {
        let Some(store) = server.as_ref().and_then(|s| s.store.as_ref()) else {
            return Ok(None);
        };
        let race = super::archive::race_info(&args.data, total_laps)?;
        let drivers = super::archive::drivers(&args.data)?;
        eprintln!(
            "history: race `{}` into {}",
            race.race_id,
            args.server.db.display()
        );
        Ok(Some(super::archive::RaceArchive::open(
            store, &race, &drivers,
        )?))
    };
    let names = plan.aggregates.names().to_vec();
    let (summary, stage) = match &args.frames_out {
        None if track.is_some() || stage.is_some() || hub.is_some() => {
            // Print frames for people (the running order needs positions).
            let printer = PrintFrames {
                every_ms: if track.is_some() {
                    args.every.max(1) as i64 * 1000
                } else {
                    i64::MAX
                },
                origin: None,
                last_print: None,
                last: None,
                predicted_lap: None,
            };
            let mut sink = with_predictions(
                FrameAssembler::new(
                    WithPlugins::new(printer, stage)
                        .with_hub(hub.clone())
                        .with_live(live.clone())
                        .with_archive(archive()?),
                    session,
                    plan.size,
                    names,
                    track,
                )
                .with_stints(stints.clone()),
                args,
                total_laps,
            )?;
            let summary = run_job(plan, Box::new(replay), &mut sink, &job, &mut |_| {})?;
            let (out, _) = sink.finish()?;
            (summary, out.into_parts().1)
        }
        None => {
            let mut sink = Summaries::new(plan.clone(), args.every.max(1));
            let summary = run_job(plan, Box::new(replay), &mut sink, &job, &mut |_| {})?;
            sink.print_pending();
            (summary, None)
        }
        Some(path) => {
            let window_ms = plan.size;
            if track.is_none() {
                eprintln!(
                    "no position-derived track state for this recording; frames carry aggregates and race state"
                );
            }
            let file = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            let flat = path.extension().is_some_and(|e| e == "pwrf");
            let writer = if flat {
                FrameWriter::Flat(FlatBufferFrames(file))
            } else {
                FrameWriter::Ndjson(NdjsonFrames(file))
            };
            let mut sink = with_predictions(
                FrameAssembler::new(
                    WithPlugins::new(writer, stage)
                        .with_hub(hub.clone())
                        .with_live(live.clone())
                        .with_archive(archive()?),
                    session,
                    window_ms,
                    names,
                    track,
                )
                .with_stints(stints.clone()),
                args,
                total_laps,
            )?;
            let summary = run_job(plan, Box::new(replay), &mut sink, &job, &mut |_| {})?;
            let (out, frames) = sink.finish()?;
            let (mut writer, stage) = out.into_parts();
            writer.flush()?;
            eprintln!("wrote {frames} frames to {}", path.display());
            (summary, stage)
        }
    };
    if let Some(stage) = &stage {
        stage.summary();
    }
    if let Some(Serving { server, hub, .. }) = server {
        let stats = hub.stats();
        eprintln!("feeds: {stats:?}");
        if args.stay {
            eprintln!(
                "the race is over; still serving on http://{} until Ctrl-C",
                server.local_addr()
            );
            let stop = super::stop_on_ctrl_c();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        server.shutdown()?;
    }
    let s = &summary.stats;
    eprintln!(
        "done: rows {}  late {}  windows {}  race-control events {}  in {:.2} s",
        s.rows_in,
        s.late_rows,
        s.windows_fired,
        s.broadcast_events,
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}
