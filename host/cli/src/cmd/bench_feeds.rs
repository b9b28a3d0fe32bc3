//! `pitwall bench feeds`: issue 6's feed load test through the real job, one
//! command, bounded, loopback only. Build in release for figures worth quoting:
//!
//! ```sh
//! cargo build --release -p pitwall-cli && ./target/release/pitwall bench feeds
//! ```
//!
//! What runs, all in this process:
//!
//! * **The job**, on this thread: a recorded race (default: the bundled 2024
//!   Austrian GP) through the engine with the replay job of
//!   [`pitwall_race::session`] (the frames `pitwall replay` builds), as fast as
//!   it goes (or at `--speed`); every frame through the shipped plugins
//!   (battles, overtake, fuel, stories, loaded as `pitwall run` loads them);
//!   each frame's race state and every insight published into a [`FeedHub`]
//!   with the production [`HubConfig::default`]; each frame updates the live
//!   views.
//! * **The server**: the real router with the state `pitwall replay --listen`
//!   builds, on 127.0.0.1:0 ([`BackgroundServer`]: its own 2-worker runtime).
//! * **The clients**, on a runtime of their own: `--readers` raw-socket SSE
//!   readers of `/feed?kinds=...`, and one subscriber to everything that never
//!   reads (4 KiB receive buffer), which the hub must cut off.
//!
//! Why the per-frame stage is done here rather than by
//! [`super::plugin::WithPlugins`]: the bench needs every event's id and publish
//! instant, which `WithPlugins` (rightly) does not keep. [`TimedStage`] makes the
//! same calls in the same order (race state, plugins, insights, live views).
//!
//! **Latency.** A window *closes* when its frame reaches the stage: the engine
//! fired the window and the assembler built the frame, before the plugins run.
//! Just before each publish the stage writes, under the id the hub is about to
//! assign, the close instant of the event's window (its frame for the race
//! state, the insight's `window_start_ms` for an insight) and the publish
//! instant. A reader that receives an id looks both up and records close →
//! receipt and publish → receipt. Every reader, every event: no sampling (the
//! histograms are fixed-size, so recording everything costs no memory).
//!
//! **Checks** (any failure: an error, non-zero exit): every reader received
//! exactly the published events of its kinds, in id order, with no notice but
//! `lagged` (which loses nothing); the hub cut the stalled subscriber off and
//! its socket was closed. The whole run has a deadline (`--timeout`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use pitwall_engine::job::{JobOptions, JobSummary, run_job};
use pitwall_engine::source::replay::{Replay, ReplayOptions};
use pitwall_engine::source::with_events::WithEvents;
use pitwall_engine::source::{OnError, Source};
use pitwall_engine::time::ConfigDuration;
use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_race::frames::{FrameAssembler, FrameSink};
use pitwall_race::session;
use pitwall_server::feed::KINDS;
use pitwall_server::{BackgroundServer, FeedHub, HubConfig, HubStats, LiveView, NewEvent};
use tokio::net::{TcpSocket, TcpStream};

use super::plugin::{PluginChoice, PluginStage, PrintOptions};

/// Receive buffer of the subscriber that never reads: small, so that the
/// server's writes to it block soon and its queue fills.
const STALLED_RCVBUF: u32 = 4096;
/// How long the stalled socket may take to close once the hub cut it off.
const STALLED_CLOSE_LIMIT: Duration = Duration::from_secs(30);
/// How long all readers may take to subscribe.
const SUBSCRIBE_LIMIT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug, Clone)]
pub struct FeedBenchArgs {
    /// SSE readers, each subscribed to `--kinds`.
    #[arg(long, default_value_t = 1000)]
    pub readers: usize,
    /// Event kinds the readers subscribe to (`race_state`: one per window, so
    /// one latency sample per window per reader).
    #[arg(long, value_delimiter = ',', default_value = "story,race_state")]
    pub kinds: Vec<String>,
    /// The race (an OpenF1 session folder, as `pitwall replay --data`);
    /// default: the bundled 2024 Austrian GP.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Replay speed: 0 = as fast as possible, 1 = real time, 20 = `pitwall
    /// run`'s default.
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Per-call plugin deadline (`pitwall run --plugin-deadline`). Generous by
    /// default so that every run publishes the same events: on 2 cores shared
    /// with a thousand clients, calls get descheduled past `pitwall run`'s
    /// 5 ms, fail and restart the plugin, and each run then publishes a
    /// different set. Pass `5ms` to measure with the production deadline.
    #[arg(long, default_value = "1s")]
    pub plugin_deadline: String,
    /// Worker threads of the readers' tokio runtime (the server has its own 2).
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// Give up, with an error, when the whole run (plugins loading, replay,
    /// readers draining) takes longer than this.
    #[arg(long, default_value = "5m")]
    pub timeout: String,
}

pub fn run(args: &FeedBenchArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let kinds = parse_kinds(&args.kinds)?;
    let timeout = humantime::parse_duration(&args.timeout)
        .with_context(|| format!("--timeout {:?}: expected e.g. 5m or 90s", args.timeout))?;
    let deadline = t0 + timeout;
    if !args.speed.is_finite() || args.speed < 0.0 {
        bail!("--speed must be a number >= 0 (0: as fast as possible)");
    }
    ensure!(args.readers > 0, "--readers must be at least 1");
    check_open_files(args.readers)?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(super::run::BUNDLED_RACE));
    let rss_start = memory_kib("VmRSS:");

    let stage = PluginStage::open(
        &PluginChoice::Examples,
        PrintOptions {
            // Nothing printed per story: the summary is the output.
            min_importance: f64::INFINITY,
            all: false,
            deadline: super::plugin::parse_deadline(&args.plugin_deadline)?,
        },
    )?
    .context("the shipped plugins did not load")?;
    let plugins: Vec<String> = stage
        .control()
        .status()
        .plugins
        .iter()
        .map(|p| {
            // The runtime may report the version as `name@version` already.
            let v = &p.live.version;
            if v.contains('@') {
                v.clone()
            } else {
                format!("{}@{v}", p.name)
            }
        })
        .collect();
    let job = ReplayJob::open(&data, args.speed)?;
    let session = job.session.clone();
    let rss_before = memory_kib("VmRSS:");
    let hwm_before = memory_kib("VmHWM:");

    // The server, as `pitwall replay --listen` starts it.
    let hub = FeedHub::new(HubConfig::default());
    let state = super::replay::app_state(hub.clone(), Some(&stage)).with_plugins(stage.control());
    let live = state.live.clone();
    let server = BackgroundServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), state)
        .context("starting the server on 127.0.0.1:0")?;
    let addr = server.local_addr();

    // The clients, on their own runtime.
    let shared = Arc::new(Shared::new(kinds.clone()));
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .thread_name("bench-readers")
        .enable_all()
        .build()
        .context("starting the readers' runtime")?;
    let path = format!("/feed?kinds={}", kinds.join(","));
    let readers = clients.block_on(connect_readers(addr, &path, args.readers, &shared))?;
    let stalled = clients.block_on(connect_stalled(addr))?;
    let want = args.readers + 1;
    let subscribed = wait_until(deadline.min(Instant::now() + SUBSCRIBE_LIMIT), || {
        hub.stats().subscribers >= want
    });
    if !subscribed {
        bail!(
            "only {} of {want} feed subscribers registered within {SUBSCRIBE_LIMIT:?}",
            hub.stats().subscribers
        );
    }

    // The race.
    let replay_started = Instant::now();
    let stage = TimedStage::new(stage, hub.clone(), live, shared.clone());
    let (stage, frames, summary) = job.run(stage, deadline)?;
    let replay_took = replay_started.elapsed();
    if summary.stopped_early {
        bail!(
            "timed out (--timeout {}) during the replay, after {frames} frames",
            args.timeout
        );
    }
    let published = hub.stats();
    ensure!(
        published.last_id == stage.next_id - 1,
        "the hub holds {} events, the stage published {}",
        published.last_id,
        stage.next_id - 1
    );
    let expected = stage.expected(&kinds);

    // Drain: every reader up to the last event of its kinds (or failed).
    let drained = wait_until(deadline, || {
        readers.iter().all(|r| {
            r.failed.load(Ordering::SeqCst) || r.last.load(Ordering::SeqCst) >= expected.last
        })
    });
    let delivered_after = replay_started.elapsed();
    let rss_after = memory_kib("VmRSS:");
    let hwm_after = memory_kib("VmHWM:");
    let hub_stats = hub.stats();

    // The stalled subscriber: cut by the hub, then its socket must close.
    let stalled_closed = if hub_stats.cut > 0 {
        Some(clients.block_on(drain_to_close(stalled, STALLED_CLOSE_LIMIT)))
    } else {
        drop(stalled);
        None
    };

    let mut failures = Vec::new();
    let mut lagged_readers = 0;
    let mut behind = 0;
    for (i, r) in readers.iter().enumerate() {
        if r.lagged.load(Ordering::SeqCst) > 0 {
            lagged_readers += 1;
        }
        let got = Sequence {
            count: r.count.load(Ordering::SeqCst),
            last: r.last.load(Ordering::SeqCst),
        };
        let problem = match r.error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => Some(e),
            None => got.check(expected).err(),
        };
        if let Some(p) = problem {
            if got.last < expected.last {
                behind += 1;
            }
            failures.push(format!("reader {i}: {p}"));
        }
    }

    let report = Report {
        args,
        session,
        plugins: &plugins,
        kinds: &kinds,
        frames,
        replay_took,
        delivered_after,
        drained,
        expected,
        published_by_kind: &stage.published,
        hub: hub_stats,
        lagged_readers,
        failed_calls: stage.failed_calls,
        stalled_closed: &stalled_closed,
        memory: [rss_start, rss_before, hwm_before, rss_after, hwm_after],
        close_to_publish: &stage.close_to_publish,
        shared: &shared,
        failures: failures.len(),
    };
    report.print();
    for f in failures.iter().take(5) {
        println!("  {f}");
    }
    if failures.len() > 5 {
        println!("  ... and {} more", failures.len() - 5);
    }
    stage.stage.summary();

    clients.shutdown_timeout(Duration::from_secs(1));
    server.shutdown().context("stopping the server")?;

    let mut wrong = Vec::new();
    if !drained {
        wrong.push(format!(
            "timed out (--timeout {}) with {behind} readers still behind",
            args.timeout
        ));
    }
    if !failures.is_empty() {
        wrong.push(format!(
            "{} of {} readers did not receive every event of their kinds in order",
            failures.len(),
            args.readers
        ));
    }
    match &stalled_closed {
        None => wrong.push("the stalled subscriber was not cut off".into()),
        Some(Err(e)) => wrong.push(format!("the stalled subscriber was cut off but {e}")),
        Some(Ok(_)) => {}
    }
    if hub_stats.subscribers != args.readers {
        wrong.push(format!(
            "the hub has {} subscribers at the end, expected the {} readers",
            hub_stats.subscribers, args.readers
        ));
    }
    if !wrong.is_empty() {
        bail!("bench feeds failed: {}", wrong.join("; "));
    }
    Ok(())
}

/// The `--kinds` list as the hub's kind names, checked and deduplicated.
fn parse_kinds(kinds: &[String]) -> anyhow::Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in kinds.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        let known = KINDS.iter().find(|known| **known == k).with_context(|| {
            format!("--kinds: unknown kind `{k}` (known: {})", KINDS.join(", "))
        })?;
        if !out.contains(known) {
            out.push(*known);
        }
    }
    ensure!(!out.is_empty(), "--kinds: give at least one kind");
    Ok(out)
}

/// Each reader holds two sockets open in this process (its end and the
/// server's), so a low `ulimit -n` would fail half-way with EMFILE; say so first.
fn check_open_files(readers: usize) -> anyhow::Result<()> {
    let need = 2 * (readers as u64 + 1) + 256;
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        });
    if let Some(soft) = soft
        && soft < need
    {
        bail!(
            "{readers} readers need about {need} open files (both ends of each connection \
             are in this process) but the limit is {soft}: raise it with `ulimit -n {need}`"
        );
    }
    Ok(())
}

/// A field of `/proc/self/status` in KiB (`VmRSS:`, `VmHWM:`); `None` where
/// there is no procfs.
fn memory_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Polls `done` every 5 ms until it holds (true) or `deadline` passes (false).
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Nanoseconds from `base` to `t`, plus one: 0 means "not stamped".
fn stamp(base: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(base).as_nanos() as u64 + 1
}

// ---------------------------------------------------------------------------
// The job

/// The replay job over a session folder, built as
/// [`pitwall_race::session::race_frames_into`] builds it, but with a replay
/// speed and a deadline.
struct ReplayJob {
    session: String,
    plan: Arc<pitwall_engine::JobPlan>,
    replay: Box<dyn Source>,
    track: Option<pitwall_race::frames::TrackTimeline>,
    stints: Vec<pitwall_race::openf1::Stint>,
    total_laps: u16,
}

impl ReplayJob {
    fn open(dir: &std::path::Path, speed: f64) -> anyhow::Result<Self> {
        let kind = session::SessionKind::detect(dir).with_context(|| {
            format!(
                "{} is not an OpenF1 session folder (location/ or location.csv[.gz], or the \
                 laps and intervals tables)",
                dir.display()
            )
        })?;
        let source = session::session_source(dir, kind, OnError::Fail, 2048)
            .with_context(|| format!("opening {}", dir.display()))?;
        let events = session::session_events(dir)
            .with_context(|| format!("reading the race events of {}", dir.display()))?;
        let config = session::replay_job(source.schema(), ConfigDuration::from_millis(1000));
        let plan = Arc::new(config.plan().context("planning the replay job")?);
        let replay: Box<dyn Source> = Box::new(Replay::new(
            WithEvents::new(source, events),
            ReplayOptions {
                speed: (speed > 0.0).then_some(speed),
                start_at: None,
                ticks_per_second: plan.schema.time.unit.ticks_per_second(),
            },
        ));
        let track = session::session_timeline(dir, plan.size)
            .with_context(|| format!("building the track timeline of {}", dir.display()))?;
        let stints_file = dir.join("stints.csv");
        let stints = if stints_file.is_file() {
            pitwall_race::openf1::read_stints(&stints_file)
                .with_context(|| format!("reading {}", stints_file.display()))?
        } else {
            Vec::new()
        };
        let total_laps = session::openf1_race_laps(dir)
            .with_context(|| format!("reading the race distance of {}", dir.display()))?;
        let session = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            session,
            plan,
            replay,
            track,
            stints,
            total_laps,
        })
    }

    /// Runs the whole race into `stage`; stops at the next chunk once
    /// `deadline` has passed (`stopped_early` in the summary).
    fn run(
        self,
        stage: TimedStage,
        deadline: Instant,
    ) -> anyhow::Result<(TimedStage, u64, JobSummary)> {
        let names = self.plan.aggregates.names().to_vec();
        let mut assembler =
            FrameAssembler::new(stage, self.session, self.plan.size, names, self.track)
                .with_stints(self.stints)
                .with_total_laps(self.total_laps);
        let stop = Arc::new(AtomicBool::new(false));
        let opts = JobOptions {
            stop: Some(stop.clone()),
            ..JobOptions::default()
        };
        let summary = run_job(self.plan, self.replay, &mut assembler, &opts, &mut |_| {
            if Instant::now() >= deadline {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .context("the replay job failed")?;
        let (stage, frames) = assembler
            .finish()
            .context("the replay job failed at its last frames")?;
        Ok((stage, frames, summary))
    }
}

/// The per-frame stage of `pitwall run --listen` (what
/// [`super::plugin::WithPlugins`] does, in its order: race state to the hub,
/// the frame through the plugins, their insights to the hub, the live views),
/// stamping every event's window close and publish instants under its id.
struct TimedStage {
    stage: PluginStage,
    hub: FeedHub,
    live: LiveView,
    shared: Arc<Shared>,
    /// The id the hub gives the next event (the stage is its only publisher).
    next_id: u64,
    /// Close instant per window start: an insight names the window it was made from.
    closed_at: HashMap<i64, Instant>,
    /// Per kind of [`KINDS`]: how many were published, the last id.
    published: [Sequence; KINDS.len()],
    /// Per kind of [`KINDS`]: window close → publish (engine + plugins).
    close_to_publish: Vec<Histogram>,
    failed_calls: u64,
}

impl TimedStage {
    fn new(stage: PluginStage, hub: FeedHub, live: LiveView, shared: Arc<Shared>) -> Self {
        let next_id = hub.stats().last_id + 1;
        Self {
            stage,
            hub,
            live,
            shared,
            next_id,
            closed_at: HashMap::new(),
            published: [Sequence::default(); KINDS.len()],
            close_to_publish: KINDS.iter().map(|_| Histogram::new()).collect(),
            failed_calls: 0,
        }
    }

    /// What a reader of `kinds` must end up with.
    fn expected(&self, kinds: &[&str]) -> Sequence {
        let mut e = Sequence::default();
        for (k, p) in KINDS.iter().zip(&self.published) {
            if kinds.contains(k) {
                e.count += p.count;
                e.last = e.last.max(p.last);
            }
        }
        e
    }

    fn try_frame(&mut self, frame: &RaceFrameData, closed: Instant) -> anyhow::Result<()> {
        self.closed_at.insert(frame.window_start_ms, closed);
        let race_state = NewEvent::race_state(frame).context("the race state as JSON")?;
        self.publish(race_state, closed)?;
        let out = self.stage.frame(frame);
        self.failed_calls += out.failures.len() as u64;
        for i in &out.insights {
            let at = *self.closed_at.get(&i.window_start_ms()).with_context(|| {
                format!(
                    "{} made an insight from window {}, which never closed",
                    i.plugin_id(),
                    i.window_start_ms()
                )
            })?;
            let event = NewEvent::from_insight(i)
                .with_context(|| format!("an insight of {} as JSON", i.plugin_id()))?;
            self.publish(event, at)?;
        }
        let failed: Vec<&str> = out.failures.iter().map(|f| &*f.plugin).collect();
        self.live.update(frame, &out.insights, &failed);
        Ok(())
    }

    fn publish(&mut self, event: NewEvent, closed: Instant) -> anyhow::Result<()> {
        let kind = KINDS
            .iter()
            .position(|k| *k == event.kind)
            .with_context(|| format!("the hub does not know kind {}", event.kind))?;
        let id = self.next_id;
        let now = Instant::now();
        let base = self.shared.base;
        self.shared
            .stamps
            .set(id, stamp(base, closed), stamp(base, now), kind)?;
        let got = self.hub.publish(event);
        ensure!(
            got == id,
            "the hub numbered an event {got} where the bench expected {id}: something else \
             publishes into this hub"
        );
        self.next_id += 1;
        self.published[kind].count += 1;
        self.published[kind].last = id;
        self.close_to_publish[kind].record(micros(now.saturating_duration_since(closed)));
        Ok(())
    }
}

impl FrameSink for TimedStage {
    fn frame(&mut self, frame: &RaceFrameData) -> std::io::Result<()> {
        // The engine fired the window and the assembler built its frame just
        // now: this is the window's close.
        let closed = Instant::now();
        self.try_frame(frame, closed)
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

// ---------------------------------------------------------------------------
// Shared between the stage and the readers

/// What the readers share: the stamps to look ids up in and the histograms
/// they record into.
struct Shared {
    base: Instant,
    stamps: Stamps,
    /// The readers' kinds; the histograms below are in this order.
    kinds: Vec<&'static str>,
    close_to_receipt: Vec<Histogram>,
    publish_to_receipt: Histogram,
}

impl Shared {
    fn new(kinds: Vec<&'static str>) -> Self {
        Self {
            base: Instant::now(),
            stamps: Stamps::new(),
            close_to_receipt: kinds.iter().map(|_| Histogram::new()).collect(),
            kinds,
            publish_to_receipt: Histogram::new(),
        }
    }
}

const STAMP_CHUNK: usize = 1 << 16;
const STAMP_CHUNKS: usize = 256;

/// Per event id: window close, publish (both [`stamp`]s) and kind (index in
/// [`KINDS`]). Written by the stage before the hub numbers the event, read by
/// a reader once it has received it. In fixed chunks allocated on first use,
/// so it grows without a lock and never moves: a reader never waits on the
/// job. Holds 16.7 M events (the bundled race publishes ~0.3 M).
struct Stamps {
    chunks: Vec<OnceLock<Box<[[AtomicU64; 3]]>>>,
}

impl Stamps {
    fn new() -> Self {
        Self {
            chunks: (0..STAMP_CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn slot(id: u64) -> Option<(usize, usize)> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        (i / STAMP_CHUNK < STAMP_CHUNKS).then_some((i / STAMP_CHUNK, i % STAMP_CHUNK))
    }

    fn set(&self, id: u64, closed: u64, published: u64, kind: usize) -> anyhow::Result<()> {
        let (c, i) = Self::slot(id).with_context(|| {
            format!(
                "event {id}: the bench stamps at most {} events",
                STAMP_CHUNK * STAMP_CHUNKS
            )
        })?;
        let chunk = self.chunks[c].get_or_init(|| {
            (0..STAMP_CHUNK)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect()
        });
        chunk[i][2].store(kind as u64, Ordering::Release);
        chunk[i][1].store(published, Ordering::Release);
        // Written last: a non-zero close means the entry is complete.
        chunk[i][0].store(closed, Ordering::Release);
        Ok(())
    }

    /// `(closed, published, kind)` of `id`, if stamped.
    fn get(&self, id: u64) -> Option<(u64, u64, usize)> {
        let (c, i) = Self::slot(id)?;
        let e = &self.chunks[c].get()?[i];
        let closed = e[0].load(Ordering::Acquire);
        (closed != 0).then(|| {
            (
                closed,
                e[1].load(Ordering::Acquire),
                e[2].load(Ordering::Acquire) as usize,
            )
        })
    }
}

/// Bits of sub-bucket resolution per power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

/// A latency histogram in microseconds that many threads record into:
/// exact below 128 µs, then 128 buckets per power of two (each at most
/// 1/128 ≈ 0.8 % of its values wide). Fixed size (58 KiB) however many
/// samples, so a thousand readers can record every event without the bench's
/// own memory growing with the load it measures.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        let top = v >> shift; // SUB..2*SUB
        (SUB + u64::from(shift) * SUB + (top - SUB)) as usize
    }

    /// The largest value bucket `i` holds.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = (i - SUB) / SUB;
        let top = (i - SUB) % SUB + SUB;
        (((u128::from(top) + 1) << shift) - 1).min(u128::from(u64::MAX)) as u64
    }

    pub(crate) fn record(&self, us: u64) {
        self.buckets[Self::index(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn max(&self) -> Option<u64> {
        (self.count() > 0).then(|| self.max.load(Ordering::Relaxed))
    }

    /// The nearest-rank `q` quantile (0 < q ≤ 1): the smallest recorded value
    /// with at least `q` of the samples at or below it, to within its bucket
    /// (reported as the bucket's top, capped at the max). `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Some(Self::upper(i).min(self.max.load(Ordering::Relaxed)));
            }
        }
        self.max()
    }

    /// The sum of several histograms.
    pub(crate) fn merged<'a>(hs: impl IntoIterator<Item = &'a Histogram>) -> Histogram {
        let out = Histogram::new();
        for h in hs {
            for (o, b) in out.buckets.iter().zip(h.buckets.iter()) {
                o.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            out.count.fetch_add(h.count(), Ordering::Relaxed);
            out.max
                .fetch_max(h.max.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        out
    }
}

/// Ids seen of some kinds: how many and the last. Ids must strictly increase
/// (the hub numbers events in publish order and every subscriber, lagged or
/// not, receives them in that order), so a reader that saw as many ids of its
/// kinds as were published, the last one included, saw exactly those ids.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sequence {
    pub count: u64,
    pub last: u64,
}

impl Sequence {
    pub(crate) fn observe(&mut self, id: u64) -> Result<(), String> {
        if id <= self.last {
            return Err(format!(
                "event {id} after {}: out of order or repeated",
                self.last
            ));
        }
        self.count += 1;
        self.last = id;
        Ok(())
    }

    /// `Ok` when this saw exactly `expected`'s events.
    pub(crate) fn check(&self, expected: Sequence) -> Result<(), String> {
        if *self == expected {
            return Ok(());
        }
        if self.count < expected.count {
            Err(format!(
                "received {} of {} events ({} missing), last id {} of {}",
                self.count,
                expected.count,
                expected.count - self.count,
                self.last,
                expected.last
            ))
        } else {
            Err(format!(
                "received {} events, last id {}; published {}, last id {}",
                self.count, self.last, expected.count, expected.last
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// The clients

/// One reader's progress, polled by the main thread.
#[derive(Debug, Default)]
struct ReaderState {
    count: AtomicU64,
    last: AtomicU64,
    /// `lagged` notices received (its queue overflowed; nothing lost).
    lagged: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
}

async fn connect_readers(
    addr: SocketAddr,
    path: &str,
    n: usize,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<Arc<ReaderState>>> {
    let request: Arc<str> =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").into();
    let mut readers = Vec::with_capacity(n);
    for i in 0..n {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting reader {i} to {addr}"))?;
        let state = Arc::new(ReaderState::default());
        tokio::spawn(read_feed(
            stream,
            request.clone(),
            shared.clone(),
            state.clone(),
        ));
        readers.push(state);
    }
    Ok(readers)
}

/// A subscriber to every kind that never reads a byte.
async fn connect_stalled(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4().context("a socket for the stalled client")?;
    socket
        .set_recv_buffer_size(STALLED_RCVBUF)
        .context("shrinking the stalled client's receive buffer")?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting the stalled client to {addr}"))?;
    write_all(
        &stream,
        format!("GET /feed HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .await
    .context("sending the stalled client's request")?;
    Ok(stream)
}

/// Reads a cut-off socket to its end; the bytes it still held.
async fn drain_to_close(stream: TcpStream, limit: Duration) -> Result<u64, String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    let drain = async {
        loop {
            stream.readable().await?;
            match stream.try_read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(limit, drain).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(format!("reading its socket failed: {e}")),
        Err(_) => Err(format!("its socket was still open {limit:?} later")),
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

thread_local! {
    /// One read buffer per client worker thread, not per reader: a reader
    /// parses what it read before it awaits again, so a thousand readers cost
    /// a few hundred bytes each, not a buffer each.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 256 * 1024]);
}

async fn read_feed(
    stream: TcpStream,
    request: Arc<str>,
    shared: Arc<Shared>,
    state: Arc<ReaderState>,
) {
    if let Err(e) = read_feed_inner(&stream, &request, &shared, &state).await {
        *state.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        state.failed.store(true, Ordering::SeqCst);
    }
}

async fn read_feed_inner(
    stream: &TcpStream,
    request: &str,
    shared: &Shared,
    state: &ReaderState,
) -> Result<(), String> {
    write_all(stream, request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut parser = SseParser::default();
    let mut seen = Sequence::default();
    let mut lagged = 0;
    loop {
        stream
            .readable()
            .await
            .map_err(|e| format!("waiting on the socket: {e}"))?;
        READ_BUF.with_borrow_mut(|buf| match stream.try_read(buf) {
            Ok(0) => Err(format!(
                "the server closed the feed after event {} ({} received)",
                seen.last, seen.count
            )),
            Ok(n) => {
                let now = stamp(shared.base, Instant::now());
                parser.feed(&buf[..n], &mut |item| match item {
                    SseItem::Event { id, kind } => {
                        let k = shared
                            .kinds
                            .iter()
                            .position(|s| *s == kind)
                            .ok_or_else(|| format!("event {id} of kind `{kind}` not subscribed"))?;
                        seen.observe(id)?;
                        let (closed, published, stamped_kind) = shared
                            .stamps
                            .get(id)
                            .ok_or_else(|| format!("event {id} was never stamped"))?;
                        if KINDS.get(stamped_kind) != Some(&kind) {
                            return Err(format!("event {id} arrived as `{kind}`"));
                        }
                        shared.close_to_receipt[k].record(now.saturating_sub(closed) / 1000);
                        shared
                            .publish_to_receipt
                            .record(now.saturating_sub(published) / 1000);
                        Ok(())
                    }
                    SseItem::Notice { name: "lagged" } => {
                        lagged += 1;
                        Ok(())
                    }
                    SseItem::Notice { name } => Err(format!(
                        "`{name}` notice after event {}: events were lost",
                        seen.last
                    )),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(format!("reading the feed: {e}")),
        })?;
        state.count.store(seen.count, Ordering::SeqCst);
        state.lagged.store(lagged, Ordering::SeqCst);
        state.last.store(seen.last, Ordering::SeqCst);
    }
}

/// One thing a feed said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseItem<'a> {
    /// An event with an id (`event:` names its kind; `message` when absent).
    Event { id: u64, kind: &'a str },
    /// An event without an id: one of the hub's notices (`lagged`, `reset`, `cut`).
    Notice { name: &'a str },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// The status line and headers, not complete yet.
    #[default]
    Head,
    /// Chunked coding: a chunk-size line.
    Size { size: u64, digits: bool, ext: bool },
    /// Chunked coding: this many bytes of chunk data to come.
    Data(u64),
    /// Chunked coding: the CRLF after a chunk's data.
    DataEnd,
    /// No transfer coding: everything until EOF is the stream.
    Identity,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// The field name, up to `:` or the end of the line.
    #[default]
    Name,
    /// The value of `id` or `event`, kept.
    Id,
    Event,
    /// Any other field (`data`, comments): skipped to the end of the line.
    Skip,
}

/// An incremental reader of an HTTP/1.1 SSE response, fed whatever the
/// socket gave: status line and headers, chunked transfer coding (or none),
/// then SSE lines. Keeps only the `id` and `event` fields — data lines are
/// skipped, never stored — so a reader costs a few hundred bytes however
/// long its events are.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    body: Body,
    head: Vec<u8>,
    line: Line,
    /// Nothing but `\r` seen on the current line yet.
    line_blank: bool,
    /// The next value byte is the first (a single leading space is dropped).
    value_start: bool,
    name: [u8; 8],
    name_len: usize,
    value: [u8; 32],
    value_len: usize,
    id: Option<u64>,
    event: [u8; 32],
    event_len: usize,
    started: bool,
}

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

impl SseParser {
    /// Parses `bytes`, calling `on` for every complete event; stops at the
    /// first error (a bad response, or one `on` returned).
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        on: &mut dyn FnMut(SseItem<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if !self.started {
            self.started = true;
            self.line_blank = true;
        }
        if self.body != Body::Head {
            return self.body_bytes(bytes, on);
        }
        let from = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(bytes);
        let Some(end) = self.head[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| from + p + 4)
        else {
            if self.head.len() > MAX_HEAD {
                return Err(format!("response head longer than {MAX_HEAD} bytes"));
            }
            return Ok(());
        };
        let rest = self.head.split_off(end);
        let head = std::mem::take(&mut self.head);
        self.body = parse_head(&head)?;
        self.body_bytes(&rest, on)
    }

    fn body_bytes(
        &mut self,
        mut s: &[u8],
        on: &mut dyn FnMut(SseItem<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        while let Some(&b) = s.first() {
            match self.body {
                Body::Head => unreachable!("the head is parsed before the body"),
                Body::Identity => return self.sse(s, on),
                Body::Data(left) => {
                    let n = s.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let (chunk, rest) = s.split_at(n);
                    self.body = match left - n as u64 {
                        0 => Body::DataEnd,
                        left => Body::Data(left),
                    };
                    self.sse(chunk, on)?;
                    s = rest;
                }
                Body::DataEnd => {
                    s = &s[1..];
                    match b {
                        b'\r' => {}
                        b'\n' => {
                            self.body = Body::Size {
                                size: 0,
                                digits: false,
                                ext: false,
                            }
                        }
                        _ => return Err(format!("chunk data longer than announced ({b:#04x})")),
                    }
                }
                Body::Size { size, digits, ext } => {
                    s = &s[1..];
                    self.body = match b {
                        b'\n' if !digits => return Err("an empty chunk-size line".into()),
                        b'\n' if size == 0 => return Err("the server ended the feed".into()),
                        b'\n' => Body::Data(size),
                        b'\r' => continue,
                        _ if ext => continue,
                        b';' => Body::Size {
                            size,
                            digits,
                            ext: true,
                        },
                        _ => {
                            let d = (b as char)
                                .to_digit(16)
                                .ok_or_else(|| format!("bad chunk size byte {b:#04x}"))?;
                            let size = size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(u64::from(d)))
                                .ok_or("chunk size overflows")?;
                            Body::Size {
                                size,
                                digits: true,
                                ext,
                            }
                        }
                    };
                }
            }
        }
        Ok(())
    }

    /// SSE lines (`\n`-terminated; a trailing `\r` is dropped).
    fn sse(
        &mut self,
        mut s: &[u8],
        on: &mut dyn FnMut(SseItem<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        while let Some(&b) = s.first() {
            if self.line == Line::Skip {
                match s.iter().position(|&c| c == b'\n') {
                    Some(p) => {
                        s = &s[p + 1..];
                        self.end_line(on)?;
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            s = &s[1..];
            match (self.line, b) {
                (_, b'\n') => {
                    match self.line {
                        Line::Id => {
                            let v = &self.value[..self.value_len];
                            let id = std::str::from_utf8(v)
                                .ok()
                                .and_then(|v| v.parse().ok())
                                .ok_or_else(|| {
                                    format!("bad event id `{}`", String::from_utf8_lossy(v))
                                })?;
                            self.id = Some(id);
                        }
                        Line::Event => {
                            self.event[..self.value_len]
                                .copy_from_slice(&self.value[..self.value_len]);
                            self.event_len = self.value_len;
                        }
                        Line::Name | Line::Skip => {}
                    }
                    self.end_line(on)?;
                }
                (_, b'\r') => {}
                (Line::Name, b':') => {
                    self.line_blank = false;
                    self.line = match &self.name[..self.name_len] {
                        b"id" => Line::Id,
                        b"event" => Line::Event,
                        _ => Line::Skip,
                    };
                    self.value_start = true;
                    self.value_len = 0;
                }
                (Line::Name, _) => {
                    self.line_blank = false;
                    if self.name_len == self.name.len() {
                        self.line = Line::Skip;
                    } else {
                        self.name[self.name_len] = b;
                        self.name_len += 1;
                    }
                }
                (Line::Id | Line::Event, b' ') if self.value_start => self.value_start = false,
                (Line::Id | Line::Event, _) => {
                    self.value_start = false;
                    if self.value_len == self.value.len() {
                        return Err(format!(
                            "an SSE field longer than {} bytes",
                            self.value.len()
                        ));
                    }
                    self.value[self.value_len] = b;
                    self.value_len += 1;
                }
                (Line::Skip, _) => unreachable!("skipped lines are handled above"),
            }
        }
        Ok(())
    }

    /// The end of a line; a blank one dispatches the event it ends.
    fn end_line(
        &mut self,
        on: &mut dyn FnMut(SseItem<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let blank = self.line_blank;
        self.line = Line::Name;
        self.name_len = 0;
        self.line_blank = true;
        if !blank {
            return Ok(());
        }
        let name = std::str::from_utf8(&self.event[..self.event_len])
            .map_err(|_| "an event name that is not UTF-8".to_string())?;
        let r = match self.id {
            Some(id) => on(SseItem::Event {
                id,
                kind: if name.is_empty() { "message" } else { name },
            }),
            None if !name.is_empty() => on(SseItem::Notice { name }),
            None => Ok(()),
        };
        self.id = None;
        self.event_len = 0;
        r
    }
}

/// Checks the status line (200) and content type (SSE); the body's coding.
fn parse_head(head: &[u8]) -> Result<Body, String> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("the server answered `{status}`"));
    }
    let mut chunked = false;
    let mut sse = false;
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            sse = value.starts_with("text/event-stream");
        }
    }
    if !sse {
        return Err("the answer is not an event stream (no content-type text/event-stream)".into());
    }
    Ok(if chunked {
        Body::Size {
            size: 0,
            digits: false,
            ext: false,
        }
    } else {
        Body::Identity
    })
}

// ---------------------------------------------------------------------------
// The summary

struct Report<'a> {
    args: &'a FeedBenchArgs,
    session: String,
    plugins: &'a [String],
    kinds: &'a [&'static str],
    frames: u64,
    replay_took: Duration,
    delivered_after: Duration,
    drained: bool,
    expected: Sequence,
    published_by_kind: &'a [Sequence],
    hub: HubStats,
    lagged_readers: usize,
    failed_calls: u64,
    stalled_closed: &'a Option<Result<u64, String>>,
    /// VmRSS at start, VmRSS and VmHWM before the server, VmRSS and VmHWM at the end.
    memory: [Option<u64>; 5],
    close_to_publish: &'a [Histogram],
    shared: &'a Shared,
    failures: usize,
}

fn fmt_us(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us < 1000 => format!("{us} µs"),
        Some(us) if us < 10_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        Some(us) => format!("{:.1} s", us as f64 / 1e6),
    }
}

fn fmt_mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{} MiB", k / 1024))
}

fn latency_row(what: &str, h: &Histogram) -> String {
    format!(
        "    {what:<30} {:>10} {:>10} {:>10} {:>10}",
        h.count(),
        fmt_us(h.quantile(0.5)),
        fmt_us(h.quantile(0.99)),
        fmt_us(h.max())
    )
}

impl Report<'_> {
    fn print(&self) {
        let a = self.args;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let speed = if a.speed > 0.0 {
            format!("{}x real time", a.speed)
        } else {
            "full speed".into()
        };
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        println!(
            "pitwall bench feeds: {} at {speed}, {profile} build, {cores} cores",
            self.session
        );
        println!(
            "  plugins   {} (deadline {})",
            self.plugins.join(", "),
            a.plugin_deadline
        );
        let by_kind: Vec<String> = KINDS
            .iter()
            .zip(self.published_by_kind)
            .filter(|(_, p)| p.count > 0)
            .map(|(k, p)| format!("{k} {}", p.count))
            .collect();
        println!(
            "  replay    {} frames in {:.2} s; {} events published ({}); {} failed plugin calls",
            self.frames,
            self.replay_took.as_secs_f64(),
            self.hub.last_id,
            by_kind.join(", "),
            self.failed_calls
        );
        let received: u64 = self
            .shared
            .close_to_receipt
            .iter()
            .map(Histogram::count)
            .sum();
        println!(
            "  readers   {} x /feed?kinds={}: {} events each expected, {} received in all; \
             {} ({} with a `lagged` notice)",
            a.readers,
            self.kinds.join(","),
            self.expected.count,
            received,
            if self.failures == 0 && self.drained {
                "every reader got every event in id order".to_string()
            } else {
                format!("{} readers FAILED", self.failures)
            },
            self.lagged_readers
        );
        println!(
            "  delivery  last reader done {:.2} s after the replay started{} ({:.0} events/s to readers)",
            self.delivered_after.as_secs_f64(),
            if self.drained { "" } else { " (TIMED OUT)" },
            received as f64 / self.delivered_after.as_secs_f64().max(1e-9)
        );
        let stalled = match self.stalled_closed {
            None => "NOT cut off".to_string(),
            Some(Ok(n)) => format!(
                "cut off by the hub, socket closed ({} KiB were still in flight)",
                n / 1024
            ),
            Some(Err(e)) => format!("cut off by the hub, but {e}"),
        };
        println!(
            "  stalled   1 x /feed (all kinds, {STALLED_RCVBUF} B receive buffer, never reads): {stalled}"
        );
        println!(
            "  hub       last id {}, buffered {}, subscribers {} at the end, lagged {}, cut {}",
            self.hub.last_id,
            self.hub.buffered,
            self.hub.subscribers,
            self.hub.lagged,
            self.hub.cut
        );
        let [start, before, hwm_before, after, hwm] = self.memory;
        println!(
            "  memory    VmRSS {} at start, {} before the server (peak so far {}: plugins \
             compiled, track built), {} after delivery; peak VmHWM {}",
            fmt_mib(start),
            fmt_mib(before),
            fmt_mib(hwm_before),
            fmt_mib(after),
            fmt_mib(hwm)
        );
        println!(
            "  latency   (every event at every reader; ≤ 0.8 % bucket error)\n    {:<30} {:>10} {:>10} {:>10} {:>10}",
            "", "samples", "p50", "p99", "max"
        );
        for (k, h) in self.kinds.iter().zip(&self.shared.close_to_receipt) {
            println!("{}", latency_row(&format!("close -> receipt, {k}"), h));
        }
        if self.kinds.len() > 1 {
            let all = Histogram::merged(&self.shared.close_to_receipt);
            println!("{}", latency_row("close -> receipt, all", &all));
        }
        for k in self.kinds {
            if let Some(i) = KINDS.iter().position(|x| x == k) {
                println!(
                    "{}",
                    latency_row(&format!("close -> publish, {k}"), &self.close_to_publish[i])
                );
            }
        }
        println!(
            "{}",
            latency_row("publish -> receipt, all", &self.shared.publish_to_receipt)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_exact_below_128_us_and_within_a_bucket_above() {
        let h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(50));
        assert_eq!(h.quantile(0.99), Some(99));
        assert_eq!(h.quantile(1.0), Some(100));
        assert_eq!(h.max(), Some(100));

        let h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 50_000u64), (0.99, 99_000)] {
            let got = h.quantile(q).unwrap();
            assert!(got >= exact, "q {q}: {got} below {exact}");
            assert!(
                got as f64 <= exact as f64 * (1.0 + 1.0 / 128.0),
                "q {q}: {got}"
            );
        }
        assert_eq!(h.quantile(1.0), Some(100_000));
    }

    #[test]
    fn histogram_buckets_cover_every_value_in_order() {
        let mut prev = None;
        for v in (0..20_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i < BUCKETS);
            assert!(v <= Histogram::upper(i), "{v} above its bucket's top");
            if i > 0 {
                assert!(v > Histogram::upper(i - 1), "{v} in too high a bucket");
            }
            if let Some(p) = prev {
                assert!(i >= p);
            }
            prev = Some(i);
        }
    }

    #[test]
    fn empty_histograms_have_no_quantiles_and_merge_adds_up() {
        let a = Histogram::new();
        assert_eq!(a.quantile(0.5), None);
        assert_eq!(a.max(), None);
        let b = Histogram::new();
        a.record(10);
        b.record(30);
        b.record(20);
        let m = Histogram::merged([&a, &b]);
        assert_eq!(m.count(), 3);
        assert_eq!(m.quantile(0.5), Some(20));
        assert_eq!(m.max(), Some(30));
    }

    #[test]
    fn a_sequence_wants_increasing_ids_and_all_of_them() {
        let mut s = Sequence::default();
        for id in [3, 7, 8, 20] {
            s.observe(id).unwrap();
        }
        assert!(s.observe(20).unwrap_err().contains("out of order"));
        assert!(s.observe(5).is_err());
        assert_eq!(s.check(Sequence { count: 4, last: 20 }), Ok(()));
        let short = s.check(Sequence { count: 5, last: 21 }).unwrap_err();
        assert!(
            short.contains("received 4 of 5 events (1 missing)"),
            "{short}"
        );
        assert!(s.check(Sequence { count: 3, last: 20 }).is_err());
    }

    #[test]
    fn stamps_are_read_back_by_id_and_absent_until_written() {
        let s = Stamps::new();
        assert_eq!(s.get(1), None);
        s.set(1, 10, 20, 3).unwrap();
        s.set(70_000, 11, 21, 0).unwrap();
        assert_eq!(s.get(1), Some((10, 20, 3)));
        assert_eq!(s.get(70_000), Some((11, 21, 0)));
        assert_eq!(s.get(2), None);
        assert_eq!(s.get(0), None);
        assert!(
            s.set((STAMP_CHUNK * STAMP_CHUNKS) as u64 + 1, 1, 1, 0)
                .is_err()
        );
    }

    fn chunked(events: &[&str]) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        Transfer-Encoding: chunked\r\ndate: x\r\n\r\n"
            .to_vec();
        for e in events {
            out.extend_from_slice(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes());
        }
        out
    }

    /// Owned items, for comparing.
    fn parse_in_pieces(bytes: &[u8], piece: usize) -> Result<Vec<(Option<u64>, String)>, String> {
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for part in bytes.chunks(piece) {
            p.feed(part, &mut |item| {
                got.push(match item {
                    SseItem::Event { id, kind } => (Some(id), kind.to_string()),
                    SseItem::Notice { name } => (None, name.to_string()),
                });
                Ok(())
            })?;
        }
        Ok(got)
    }

    #[test]
    fn the_parser_reads_events_and_notices_however_the_bytes_are_split() {
        let bytes = chunked(&[
            "id: 1\nevent: story\ndata: {\"id\":1,\"x\":\"a: b\"}\n\n",
            ": keep-alive\n\n",
            "event: lagged\ndata: {\"type\":\"lagged\",\"missed\":3}\n\n",
            "id: 12\nevent: race_state\ndata: {}\n\nid: 13\ndata: x\n\n",
            "id:14\r\nevent:story\r\ndata: y\r\n\r\n",
        ]);
        let want = vec![
            (Some(1), "story".to_string()),
            (None, "lagged".to_string()),
            (Some(12), "race_state".to_string()),
            (Some(13), "message".to_string()),
            (Some(14), "story".to_string()),
        ];
        for piece in [1, 2, 3, 7, 64, bytes.len()] {
            assert_eq!(
                parse_in_pieces(&bytes, piece).unwrap(),
                want,
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn the_parser_reads_a_plain_body_and_refuses_what_is_not_a_feed() {
        let plain =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nid: 5\nevent: story\n\n";
        assert_eq!(
            parse_in_pieces(plain, 4).unwrap(),
            vec![(Some(5), "story".to_string())]
        );
        let refused = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n{}";
        assert!(parse_in_pieces(refused, 100).unwrap_err().contains("400"));
        let json = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}";
        assert!(
            parse_in_pieces(json, 100)
                .unwrap_err()
                .contains("event stream")
        );
        let mut ended = chunked(&["id: 1\nevent: story\n\n"]);
        ended.extend_from_slice(b"0\r\n\r\n");
        assert!(
            parse_in_pieces(&ended, 3)
                .unwrap_err()
                .contains("ended the feed")
        );
        let bad_id = chunked(&["id: x1\nevent: story\n\n"]);
        assert!(
            parse_in_pieces(&bad_id, 5)
                .unwrap_err()
                .contains("bad event id")
        );
    }

    #[test]
    fn kinds_are_checked_and_deduplicated() {
        let k = |s: &[&str]| parse_kinds(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            k(&["story", "race_state", "story"]).unwrap(),
            vec!["story", "race_state"]
        );
        assert!(
            k(&["stories"])
                .unwrap_err()
                .to_string()
                .contains("unknown kind `stories`")
        );
        assert!(k(&[""]).is_err());
    }
}
