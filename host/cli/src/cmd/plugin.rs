//! `pitwall plugin new|build|test`, and the plugin stage of `run` and `replay`:
//! every race frame goes through the loaded WASM plugins, their insights are
//! printed as they come, and a plugin directory can be watched for hot swaps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pitwall_plugin_sdk::InsightBody;
use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_race::frames::FrameSink;
use pitwall_runtime::{
    Boundary, LifecycleEvent, PluginSet, PluginWatcher, Runtime, RuntimeConfig, WatchConfig,
};

use crate::plugin_scaffold::{ScaffoldKind, SdkSource, scaffold};

#[derive(clap::Args, Debug)]
pub struct PluginArgs {
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// Scaffold a plugin crate that builds and passes its own test.
    New {
        /// Plugin name (`[a-z0-9-]`, e.g. `undercut-watch`).
        name: String,
        /// `story` (whole frame → stories), `car` (per car → metrics) or `pair`
        /// (per pair of cars → predictions).
        #[arg(long)]
        kind: ScaffoldKind,
        /// Directory to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin crate for wasm32-unknown-unknown and print the `.wasm` path.
    Build {
        /// The plugin crate (a directory with a Cargo.toml).
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Run a plugin over a recorded race; print its insights and call timing.
    Test {
        /// The plugin module.
        wasm: PathBuf,
        /// The race (see `pitwall replay --data`); default: the bundled race.
        #[arg(long)]
        race: Option<PathBuf>,
        /// Model parameters to hand the plugin (its `params` blob).
        #[arg(long)]
        params: Option<PathBuf>,
        /// Print every insight (default: stories, and a count of the rest).
        #[arg(long)]
        all: bool,
        /// Per-call deadline.
        #[arg(long, default_value = "5ms")]
        deadline: String,
    },
}

/// Which plugins a run loads.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginChoice {
    None,
    /// The plugins this checkout ships (`plugins/`, built by
    /// `pitwall-plugins-bundle`): battles, overtake, fuel, stories.
    Examples,
    /// Every `NAME.wasm` (and `NAME.params.json`) in a directory, watched: a new
    /// or changed file is swapped in at the next window boundary.
    Watch(PathBuf),
    /// Exactly these modules.
    Files(Vec<PathBuf>),
}

/// How the stage runs plugins and prints their insights.
#[derive(Debug, Clone)]
pub struct PrintOptions {
    /// Print stories at least this important; predictions and metrics only when
    /// `all`.
    pub min_importance: f64,
    pub all: bool,
    /// Per-call deadline (epoch interruption). A few ms on a quiet machine; a
    /// loaded one (CI, a laptop on battery) can deschedule a call for longer.
    pub deadline: Duration,
}

/// Parses a `--plugin-deadline` value such as `5ms` or `1s`.
pub fn parse_deadline(s: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(s)
        .with_context(|| format!("--plugin-deadline {s:?}: expected e.g. 5ms or 1s"))?;
    if d.is_zero() {
        bail!("--plugin-deadline must be more than 0");
    }
    Ok(d)
}

/// The plugin stage: a [`FrameSink`] that hands every frame to `inner` and then
/// to the plugins, printing what they say.
pub struct WithPlugins<S> {
    inner: S,
    stage: Option<PluginStage>,
    /// The feeds (`--listen`): race state per frame and every insight.
    hub: Option<pitwall_server::FeedHub>,
    /// The live REST views (`--listen`): updated once per frame.
    live: Option<pitwall_server::LiveView>,
    /// The history store (`--listen` with a store): stories, predictions, laps.
    archive: Option<super::archive::RaceArchive>,
    /// The race predictions last published (they repeat for a whole lap).
    last_prediction: Vec<pitwall_plugin_sdk::frame::KernelResultData>,
}

pub struct PluginStage {
    set: PluginSet,
    _watcher: Option<PluginWatcher>,
    print: PrintOptions,
    origin: Option<i64>,
    frames: u64,
    insights: u64,
    failures: u64,
    /// Wall time of each frame's plugin calls (for the summary, never for decisions).
    call_times: Vec<Duration>,
    /// Reused for every frame's FlatBuffer: no allocation per frame.
    fbb: flatbuffers::FlatBufferBuilder<'static>,
}

impl<S> WithPlugins<S> {
    pub fn new(inner: S, stage: Option<PluginStage>) -> Self {
        WithPlugins {
            inner,
            stage,
            hub: None,
            live: None,
            archive: None,
            last_prediction: Vec::new(),
        }
    }

    /// Also write what is published to the history store.
    pub fn with_archive(mut self, archive: Option<super::archive::RaceArchive>) -> Self {
        self.archive = archive;
        self
    }

    /// Also publish to the feeds.
    pub fn with_hub(mut self, hub: Option<pitwall_server::FeedHub>) -> Self {
        self.hub = hub;
        self
    }

    /// Also update the live REST views (`/live-battles`, `/predict`, ...).
    pub fn with_live(mut self, live: Option<pitwall_server::LiveView>) -> Self {
        self.live = live;
        self
    }

    /// The inner sink and the stage back; the archive is flushed and closed
    /// (a store that failed is reported, the race's outputs stand).
    pub fn into_parts(self) -> (S, Option<PluginStage>) {
        if let Some(a) = self.archive {
            match a.finish() {
                Ok(s) => eprintln!(
                    "history store: {} insights, {} laps{}",
                    s.insights,
                    s.laps,
                    if s.errors > 0 {
                        format!(", {} write errors", s.errors)
                    } else {
                        String::new()
                    }
                ),
                Err(e) => eprintln!("history store: {e:#}"),
            }
        }
        (self.inner, self.stage)
    }
}

impl<S: FrameSink> FrameSink for WithPlugins<S> {
    fn frame(&mut self, frame: &RaceFrameData) -> std::io::Result<()> {
        // The window closed and its frame was assembled just before this
        // call: the latency below is close → everything published.
        let closed = std::time::Instant::now();
        let _span = tracing::debug_span!("frame", seq = frame.seq).entered();
        self.inner.frame(frame)?;
        if let Some(hub) = &self.hub {
            if let Err(e) = hub.publish_race_state(frame) {
                tracing::warn!("race state not published: {e}");
            }
            if !frame.kernels.is_empty()
                && frame.kernels != self.last_prediction
                && let Some(ev) = pitwall_server::NewEvent::race_prediction(frame)
            {
                hub.publish(ev);
                self.last_prediction.clone_from(&frame.kernels);
            }
        }
        let out = self.stage.as_mut().map(|stage| stage.frame(frame));
        if let (Some(out), Some(hub)) = (&out, &self.hub) {
            for i in &out.insights {
                match pitwall_server::NewEvent::from_insight(i) {
                    Ok(ev) => {
                        let event = hub.publish_event(ev);
                        if let Some(a) = self.archive.as_mut() {
                            a.insight(i, &event);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(plugin = i.plugin_id(), "insight not published: {e}")
                    }
                }
            }
        }
        if let Some(a) = self.archive.as_mut() {
            a.frame_done(frame);
        }
        if self.hub.is_some() {
            metrics::histogram!("pitwall_window_latency_seconds")
                .record(closed.elapsed().as_secs_f64());
        }
        if let Some(live) = &self.live {
            let (insights, failed) = out.as_ref().map_or((&[][..], Vec::new()), |o| {
                (
                    &o.insights[..],
                    o.failures.iter().map(|f| &*f.plugin).collect(),
                )
            });
            live.update(frame, insights, &failed);
        }
        Ok(())
    }
}

impl PluginStage {
    /// Loads the chosen plugins (`None` for [`PluginChoice::None`]). Modules are
    /// compiled here, before the first frame; a module that does not load is an
    /// error that names the file and the reason.
    pub fn open(choice: &PluginChoice, print: PrintOptions) -> anyhow::Result<Option<Self>> {
        let files: Vec<PathBuf> = match choice {
            PluginChoice::None => return Ok(None),
            PluginChoice::Examples => pitwall_plugins_bundle::shipped()
                .map(|p| p.path())
                .collect(),
            PluginChoice::Files(f) => f.clone(),
            PluginChoice::Watch(_) => Vec::new(),
        };
        let runtime = Runtime::new(RuntimeConfig {
            deadline: print.deadline,
            ..RuntimeConfig::default()
        })
        .context("starting the plugin runtime")?;
        let mut set = PluginSet::new(runtime);
        let control = set.control();
        for f in &files {
            control
                .deploy_file(f, Boundary::Next)
                .with_context(|| format!("loading plugin {}", f.display()))?;
        }
        let watcher = match choice {
            PluginChoice::Watch(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating plugin directory {}", dir.display()))?;
                let w = PluginWatcher::start(dir, control.clone(), WatchConfig::default())
                    .with_context(|| format!("watching {}", dir.display()))?;
                eprintln!(
                    "plugins: watching {} (drop NAME.wasm or NAME.params.json in to swap at the next window)",
                    dir.display()
                );
                Some(w)
            }
            _ => None,
        };
        for e in set.apply_pending(i64::MIN) {
            print_event(&e, "");
        }
        Ok(Some(PluginStage {
            set,
            _watcher: watcher,
            print,
            origin: None,
            frames: 0,
            insights: 0,
            failures: 0,
            call_times: Vec::new(),
            fbb: flatbuffers::FlatBufferBuilder::with_capacity(4096),
        }))
    }

    /// The plugin control handle (for the server's health and plugin panel).
    pub fn control(&self) -> pitwall_runtime::PluginControl {
        self.set.control()
    }

    /// One frame through every plugin; what they said.
    pub fn frame(&mut self, frame: &RaceFrameData) -> pitwall_runtime::FrameOutcome {
        self.origin.get_or_insert(frame.window_start_ms);
        let bytes = frame.write_flatbuffer(&mut self.fbb);
        let t0 = Instant::now();
        let out = self.set.on_frame(bytes, frame.window_start_ms);
        self.call_times.push(t0.elapsed());
        self.frames += 1;
        let clock = super::race_clock(self.origin, frame.window_start_ms);
        for e in &out.events {
            print_event(e, &clock);
        }
        for f in &out.failures {
            self.failures += 1;
            println!(
                "{clock} plugin {} failed: {:?} ({:?})",
                f.version, f.failure, f.action
            );
        }
        for i in &out.insights {
            self.insights += 1;
            match i.body() {
                InsightBody::Story(s) if s.importance() >= self.print.min_importance => {
                    println!(
                        "{clock} {} story [{}] {} (importance {:.2})",
                        i.plugin_id(),
                        s.kind(),
                        s.headline(),
                        s.importance()
                    );
                }
                InsightBody::Prediction(p) if self.print.all => println!(
                    "{clock} {} {} #{} on #{}: {:.2}",
                    i.plugin_id(),
                    p.kind(),
                    p.cars().attacker,
                    p.cars().defender,
                    p.probability()
                ),
                InsightBody::Metric(m) if self.print.all => println!(
                    "{clock} {} #{} {} = {:.3} {}",
                    i.plugin_id(),
                    m.car(),
                    m.name(),
                    m.value(),
                    m.unit()
                ),
                _ => {}
            }
        }
        out
    }

    /// A summary per plugin, on stderr.
    pub fn summary(&self) {
        let mut t = self.call_times.clone();
        t.sort_unstable();
        let pct = |q: f64| {
            t.get(((t.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        eprintln!(
            "plugins: {} frames, {} insights, {} failed calls; all plugins per frame p50 {:.1} µs, p99 {:.1} µs",
            self.frames,
            self.insights,
            self.failures,
            pct(0.5),
            pct(0.99)
        );
        for name in self.set.plugins() {
            if let Some(s) = self.set.stats(name) {
                eprintln!(
                    "  {}: calls {} ok {} failures {} insights {} swaps {} rollbacks {} quarantines {}",
                    self.set.live_version(name).as_deref().unwrap_or(name),
                    s.calls,
                    s.ok,
                    s.failures.total(),
                    s.insights_published,
                    s.swaps,
                    s.rollbacks,
                    s.quarantines
                );
            }
        }
    }
}

fn print_event(e: &LifecycleEvent, clock: &str) {
    let line = match e {
        LifecycleEvent::Loaded {
            plugin,
            version,
            content_hash,
        } => {
            // The runtime reports the version as `name@version`.
            let id = if version.contains('@') {
                version.clone()
            } else {
                format!("{plugin}@{version}")
            };
            format!(
                "plugin {id} loaded (sha256 {})",
                &content_hash[..content_hash.len().min(12)]
            )
        }
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    };
    if clock.is_empty() {
        eprintln!("{line}");
    } else {
        println!("{clock} {line}");
    }
}

pub fn run(args: &PluginArgs) -> anyhow::Result<()> {
    match &args.command {
        PluginCommand::New { name, kind, dir } => {
            // Inside this checkout the SDK is a path; elsewhere, its version.
            let sdk_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugin-sdk");
            let sdk = if sdk_dir.join("Cargo.toml").is_file() {
                SdkSource::Path(sdk_dir)
            } else {
                SdkSource::Version(env!("CARGO_PKG_VERSION").to_string())
            };
            let out = scaffold(name, *kind, dir, &sdk)
                .with_context(|| format!("creating plugin {name} in {}", dir.display()))?;
            println!("created {} ({kind} plugin)", out.display());
            println!(
                "next: cd {} && cargo test && pitwall plugin build",
                out.display()
            );
            Ok(())
        }
        PluginCommand::Build { path } => {
            let wasm = build(path)?;
            println!("{}", wasm.display());
            Ok(())
        }
        PluginCommand::Test {
            wasm,
            race,
            params,
            all,
            deadline,
        } => test(
            wasm,
            race.as_deref(),
            params.as_deref(),
            PrintOptions {
                min_importance: 0.0,
                all: *all,
                deadline: parse_deadline(deadline)?,
            },
        ),
    }
}

/// `cargo build --release --target wasm32-unknown-unknown` in `path`; the module's path.
fn build(path: &Path) -> anyhow::Result<PathBuf> {
    let manifest = path.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: give the plugin crate's directory",
            path.display()
        );
    }
    ensure_wasm_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .with_context(|| format!("running {cargo}"))?;
    if !out.status.success() {
        bail!(
            "building {} for wasm32 failed:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The cdylib artifact from cargo's JSON messages.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .context("the build produced no .wasm: is the crate a cdylib (crate-type = [\"cdylib\"])?")
}

/// Installs the wasm32 target with rustup when it is missing.
fn ensure_wasm_target() -> anyhow::Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc")?;
    let lib = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib/wasm32-unknown-unknown");
    if lib.is_dir() {
        return Ok(());
    }
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-unknown-unknown"])
        .status()
        .context("the wasm32-unknown-unknown target is missing and rustup is not available")?;
    if !status.success() {
        bail!("rustup target add wasm32-unknown-unknown failed");
    }
    Ok(())
}

/// `pitwall plugin test`: the plugin alone over a recorded race.
fn test(
    wasm: &Path,
    race: Option<&Path>,
    params: Option<&Path>,
    print: PrintOptions,
) -> anyhow::Result<()> {
    let stage = PluginStage::open(&PluginChoice::Files(vec![wasm.to_path_buf()]), print)?
        .context("no plugin stage")?;
    if let Some(p) = params {
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let name = stage
            .set
            .plugins()
            .next()
            .context("the plugin did not load")?
            .to_string();
        stage
            .set
            .control()
            .set_params(&name, bytes, Boundary::Next)
            .with_context(|| format!("setting the parameters of {name}"))?;
    }
    let data = race
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(super::run::BUNDLED_RACE));
    super::replay::run_with_plugins(
        &super::replay::ReplayArgs::for_plugin_test(data),
        Some(stage),
    )
}
