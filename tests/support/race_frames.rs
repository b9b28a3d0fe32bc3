//! The bundled real race (`data/2024-austria-race`, the 2024 Austrian GP from
//! OpenF1) as race frames, built exactly the way
//! `pitwall replay --data data/2024-austria-race --frames-out x.pwrf` builds them
//! (`host/cli/src/cmd/replay.rs`, sharing `pitwall_race::session`): the OpenF1 location source merged with the
//! race-control and pit events, replayed at full speed through the engine with
//! the replay job (1 s windows), the track timeline from the position samples,
//! tyre stints and the race distance, into a [`FrameAssembler`]. No race
//! predictions (`--predict-runs 0`, the default).
//!
//! Included with `#[path]` by the plugin tests and the plugin bench, so the
//! `pitwall-tests` support library keeps its dependencies.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pitwall_engine::Schema;
use pitwall_engine::job::{JobOptions, run_job};
use pitwall_engine::source::replay::{Replay, ReplayOptions};
use pitwall_engine::source::with_events::WithEvents;
use pitwall_engine::source::{OnError, Source, SourceOptions};
use pitwall_engine::time::ConfigDuration;
use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_race::frames::{FrameAssembler, FrameSink};
use pitwall_race::{openf1, session};

/// One race frame as plugins get it.
#[derive(Debug, Clone)]
pub struct RaceFrame {
    pub window_start_ms: i64,
    /// Leader lap (`race.lap`).
    pub lap: u16,
    /// Cars in the frame.
    pub cars: usize,
    /// Cars with a position in the running order.
    pub running: usize,
    /// `RaceFrameData::to_flatbuffer`: the bytes `--frames-out x.pwrf` writes.
    pub bytes: Vec<u8>,
}

/// `data/2024-austria-race`.
pub fn austria_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join("2024-austria-race")
}

struct Collect(Vec<RaceFrame>);

impl FrameSink for Collect {
    fn frame(&mut self, f: &RaceFrameData) -> std::io::Result<()> {
        self.0.push(RaceFrame {
            window_start_ms: f.window_start_ms,
            lap: f.race.lap,
            cars: f.cars.len(),
            running: f.cars.iter().filter(|c| c.position > 0).count(),
            bytes: f.to_flatbuffer(),
        });
        Ok(())
    }
}

/// Every frame of an OpenF1 session folder, in window order.
pub fn openf1_frames(dir: &Path) -> Vec<RaceFrame> {
    let probe = openf1::OpenF1LocationSource::open(
        dir,
        &SourceOptions {
            chunk_rows: 2048,
            ..SourceOptions::all(&Schema::f1_bench())
        },
    )
    .expect("OpenF1 location source opens");
    let opts = SourceOptions {
        projection: vec![true; probe.schema().channels.len()],
        on_error: OnError::Fail,
        chunk_rows: 2048,
    };
    drop(probe);
    let source = openf1::OpenF1LocationSource::open(dir, &opts).expect("source opens");
    let events = openf1::race_events(dir).expect("race-control and pit events read");
    let config = session::replay_job(source.schema(), ConfigDuration::from_millis(1000));
    let plan = Arc::new(config.plan().expect("replay job plans"));
    let replay = Replay::new(
        WithEvents::new(Box::new(source) as Box<dyn Source>, events),
        ReplayOptions {
            speed: None,
            start_at: None,
            ticks_per_second: plan.schema.time.unit.ticks_per_second(),
        },
    );
    let track = session::openf1_track(dir, plan.size).expect("location files read");
    assert!(track.is_some(), "no track timeline for {}", dir.display());
    let stints = openf1::read_stints(dir.join("stints.csv")).expect("stints read");
    let total_laps = session::openf1_race_laps(dir).expect("session result reads");
    let session = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let names = plan.aggregates.names().to_vec();
    let mut sink = FrameAssembler::new(Collect(Vec::new()), session, plan.size, names, track)
        .with_stints(stints)
        .with_total_laps(total_laps);
    run_job(
        plan,
        Box::new(replay),
        &mut sink,
        &JobOptions::default(),
        &mut |_| {},
    )
    .expect("replay job runs");
    let (Collect(frames), n) = sink.finish().expect("frames assembled");
    assert_eq!(frames.len() as u64, n);
    frames
}

/// Every frame of the bundled 2024 Austrian GP.
pub fn austria_frames() -> Vec<RaceFrame> {
    openf1_frames(&austria_dir())
}
