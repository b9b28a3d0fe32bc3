//! The bundled real races as race frames, built exactly the way
//! `pitwall replay --data data/2024-austria-race --frames-out x.pwrf` builds them:
//! `pitwall_race::session::race_frames_into`, which `pitwall replay` shares (the
//! folder's source — OpenF1 positions, or timing tables only as for
//! `data/2024-bahrain-race` — merged with the race-control and pit events,
//! replayed at full speed through the engine with the replay job (1 s windows),
//! the track or timing timeline, tyre stints and the race distance, into a
//! `FrameAssembler`). No race predictions (`--predict-runs 0`, the default).
//!
//! Included with `#[path]` by the plugin tests and the plugin bench, so the
//! `pitwall-tests` support library keeps its dependencies.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_race::frames::FrameSink;
use pitwall_race::session;

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

/// Every frame of an OpenF1 session folder (positions or timing tables), in
/// window order.
pub fn openf1_frames(dir: &Path) -> Vec<RaceFrame> {
    let (Collect(frames), n) = session::race_frames_into(dir, 1000, Collect(Vec::new()))
        .unwrap_or_else(|e| panic!("replaying {}: {e}", dir.display()));
    assert_eq!(frames.len() as u64, n);
    frames
}

/// Every frame of the bundled 2024 Austrian GP.
pub fn austria_frames() -> Vec<RaceFrame> {
    openf1_frames(&austria_dir())
}

/// `data/2024-bahrain-race` (OpenF1 timing tables only).
pub fn bahrain_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join("2024-bahrain-race")
}

/// Every frame of the bundled 2024 Bahrain GP.
pub fn bahrain_frames() -> Vec<RaceFrame> {
    openf1_frames(&bahrain_dir())
}
