//! What a replay of a recorded session needs besides its sources: the replay
//! job (its windows and aggregates), the source, events and track timeline of an
//! OpenF1 session folder (car positions or timing tables only) and its race
//! distance — and [`race_frames`], the whole replay as frames. One place, used by
//! `pitwall replay` and by the tests, benches and tools that build the same frames.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pitwall_engine::aggregate::{AggregateKind, AggregateSpec};
use pitwall_engine::broadcast::BroadcastEvent;
use pitwall_engine::config::{CheckpointConfig, InputConfig, StateConfig, WindowConfig};
use pitwall_engine::job::{JobOptions, run_job};
use pitwall_engine::source::replay::{Replay, ReplayOptions};
use pitwall_engine::source::with_events::WithEvents;
use pitwall_engine::source::{OnError, Source, SourceOptions};
use pitwall_engine::time::ConfigDuration;
use pitwall_engine::{EngineError, JobConfig, Schema};
use pitwall_plugin_sdk::frame::RaceFrameData;

use crate::error::RaceDataError;
use crate::frames::{FrameAssembler, FrameSink, TrackTimeline};
use crate::openf1;
use crate::timing_source::TimingSource;
use crate::timing_timeline::{TimingFiles, TimingTables};
use crate::track::TrackSample;

/// The replay job over a recording's own schema: rows per car per window, last
/// position, and speed figures where the feed has them. 1 s out-of-order bound;
/// keyed state of a car that sends nothing for 2 min expires (retirements).
pub fn replay_job(schema: &Schema, window: ConfigDuration) -> JobConfig {
    let has = |c: &str| schema.channel_index(c).is_some();
    let mut aggregates = vec![AggregateSpec::new(AggregateKind::Count, None)];
    for (kind, ch) in [
        (AggregateKind::Last, "x"),
        (AggregateKind::Last, "y"),
        (AggregateKind::Max, "speed"),
        (AggregateKind::Mean, "speed"),
        (AggregateKind::Mean, "throttle"),
        (AggregateKind::Mean, "rpm"),
        (AggregateKind::Max, "drs"),
    ] {
        if has(ch) {
            aggregates.push(AggregateSpec::new(kind, Some(ch)));
        }
    }
    JobConfig {
        schema: schema.clone(),
        window: WindowConfig {
            size: window,
            bound: ConfigDuration::from_millis(1000),
            allowed_lateness: None,
        },
        state: StateConfig {
            ttl: Some(ConfigDuration::from_millis(120_000)),
        },
        checkpoint: CheckpointConfig::default(),
        input: InputConfig::default(),
        aggregates,
    }
}

/// Track state for an OpenF1 session folder, from its location files
/// (`location/*.csv`, or `location.csv[.gz]`); `None` if it has none or no
/// reference line can be built.
pub fn openf1_track(dir: &Path, window_ms: i64) -> Result<Option<TrackTimeline>, RaceDataError> {
    let loc = dir.join("location");
    let mut files: Vec<PathBuf> = if loc.is_dir() {
        std::fs::read_dir(&loc)
            .map_err(|source| RaceDataError::Io {
                path: loc.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect()
    } else {
        ["location.csv", "location.csv.gz"]
            .iter()
            .map(|n| dir.join(n))
            .filter(|p| p.is_file())
            .collect()
    };
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut samples = Vec::new();
    for f in &files {
        samples.extend(
            openf1::read_location(f)?
                .iter()
                .map(TrackSample::from_openf1),
        );
    }
    samples.sort_by_key(|s| (s.ts_ms, s.car));
    Ok(TrackTimeline::build(&samples, window_ms))
}

/// The race distance of an OpenF1 session: the winner's laps in its
/// `openf1_session_result.csv`; 0 when the folder has none.
pub fn openf1_race_laps(dir: &Path) -> Result<u16, RaceDataError> {
    let path = dir.join("openf1_session_result.csv");
    if !path.is_file() {
        return Ok(0);
    }
    Ok(openf1::read_session_result(&path)?
        .iter()
        .filter_map(|r| r.number_of_laps)
        .max()
        .map_or(0, |l| l.min(u16::MAX as u32) as u16))
}

/// What a session folder holds for a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// OpenF1 car positions (`location/`, `location.csv[.gz]`): the track model.
    Positions,
    /// OpenF1 timing tables only (laps, intervals, positions): the timing
    /// timeline ([`crate::timing_timeline`]).
    Timing,
}

impl SessionKind {
    /// The kind of an OpenF1 session folder (positions win when it has both),
    /// `None` for a folder of neither kind.
    pub fn detect(dir: &Path) -> Option<SessionKind> {
        if dir.join("location").is_dir()
            || dir.join("location.csv").is_file()
            || dir.join("location.csv.gz").is_file()
        {
            Some(SessionKind::Positions)
        } else if TimingFiles::find(dir).is_some() {
            Some(SessionKind::Timing)
        } else {
            None
        }
    }
}

/// The engine source of an OpenF1 session folder: its location (and car data)
/// rows, or its timing rows ([`TimingSource`]), every channel projected.
pub fn session_source(
    dir: &Path,
    kind: SessionKind,
    on_error: OnError,
    chunk_rows: usize,
) -> Result<Box<dyn Source>, RaceDataError> {
    // An empty projection reads every channel the folder has.
    let opts = SourceOptions {
        projection: Vec::new(),
        on_error,
        chunk_rows,
    };
    Ok(match kind {
        SessionKind::Positions => Box::new(openf1::OpenF1LocationSource::open(dir, &opts)?),
        SessionKind::Timing => Box::new(TimingSource::open(dir, &opts)?),
    })
}

/// The race events of an OpenF1 session folder ([`openf1::race_events`]); none
/// when it has neither a race_control nor a pit table.
pub fn session_events(dir: &Path) -> Result<Vec<BroadcastEvent>, RaceDataError> {
    match openf1::race_events(dir) {
        Err(RaceDataError::Missing { .. }) => Ok(Vec::new()),
        r => r,
    }
}

/// The track timeline of an OpenF1 session folder of either kind: from its
/// positions ([`openf1_track`]) or its timing tables
/// ([`TimingTables::timeline`]); `None` for a folder of neither kind.
pub fn session_timeline(
    dir: &Path,
    window_ms: i64,
) -> Result<Option<TrackTimeline>, RaceDataError> {
    match SessionKind::detect(dir) {
        Some(SessionKind::Positions) => openf1_track(dir, window_ms),
        Some(SessionKind::Timing) => Ok(TimingTables::read(dir)?.timeline(window_ms)),
        None => Ok(None),
    }
}

/// Every race frame of an OpenF1 session folder — with car positions or with
/// timing tables only — in window order, built exactly as `pitwall replay --data
/// DIR --window <window_ms>ms --frames-out x.ndjson` builds them: the folder's
/// source merged with its race-control and pit events, replayed at full speed
/// through the engine with the [`replay_job`] (2,048-row chunks, malformed rows
/// fail), the track or timing timeline, the tyre stints (`stints.csv`) and the
/// race distance from the session result; no race predictions. The session name
/// is the folder's name.
///
/// Deterministic: the same folder gives the same frames every time (event time
/// only, no wall clock). Errors: a folder of neither kind
/// ([`RaceDataError::Missing`]), an unreadable or malformed table, or the engine
/// stopping ([`RaceDataError::Replay`]).
pub fn race_frames(dir: &Path, window_ms: i64) -> Result<Vec<RaceFrameData>, RaceDataError> {
    race_frames_into(dir, window_ms, Vec::new()).map(|(frames, _)| frames)
}

/// [`race_frames`] into any [`FrameSink`]; returns the sink and the frame count.
pub fn race_frames_into<S: FrameSink>(
    dir: &Path,
    window_ms: i64,
    sink: S,
) -> Result<(S, u64), RaceDataError> {
    let kind = SessionKind::detect(dir).ok_or_else(|| RaceDataError::Missing {
        path: dir.to_path_buf(),
        reason: "neither OpenF1 positions (location/, location.csv[.gz]) nor OpenF1 \
                 timing tables (laps and intervals)"
            .into(),
    })?;
    let replay_err = |source| RaceDataError::Replay {
        path: dir.to_path_buf(),
        source,
    };
    let source = session_source(dir, kind, OnError::Fail, 2048)?;
    let events = session_events(dir)?;
    let window = ConfigDuration::from_millis(window_ms.max(1) as u64);
    let config = replay_job(source.schema(), window);
    let plan = Arc::new(
        config
            .plan()
            .map_err(|e| replay_err(EngineError::Config(e)))?,
    );
    let replay = Replay::new(
        WithEvents::new(source, events),
        ReplayOptions {
            speed: None,
            start_at: None,
            ticks_per_second: plan.schema.time.unit.ticks_per_second(),
        },
    );
    let track = session_timeline(dir, plan.size)?;
    let stints_file = dir.join("stints.csv");
    let stints = if stints_file.is_file() {
        openf1::read_stints(&stints_file)?
    } else {
        Vec::new()
    };
    let total_laps = openf1_race_laps(dir)?;
    let session = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names = plan.aggregates.names().to_vec();
    let mut assembler = FrameAssembler::new(sink, session, plan.size, names, track)
        .with_stints(stints)
        .with_total_laps(total_laps);
    run_job(
        plan,
        Box::new(replay),
        &mut assembler,
        &JobOptions::default(),
        &mut |_| {},
    )
    .map_err(replay_err)?;
    assembler.finish().map_err(|source| RaceDataError::Io {
        path: dir.to_path_buf(),
        source,
    })
}
