//! What a replay of a recorded session needs besides its sources: the replay
//! job (its windows and aggregates), the track timeline of an OpenF1 session
//! and its race distance. One place, used by `pitwall replay` and by the tests
//! and benches that build the same frames.

use std::path::{Path, PathBuf};

use pitwall_engine::aggregate::{AggregateKind, AggregateSpec};
use pitwall_engine::config::{CheckpointConfig, InputConfig, StateConfig, WindowConfig};
use pitwall_engine::time::ConfigDuration;
use pitwall_engine::{JobConfig, Schema};

use crate::error::RaceDataError;
use crate::frames::TrackTimeline;
use crate::openf1;
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
