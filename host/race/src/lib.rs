//! # pitwall-race
//!
//! Readers for the real race formats Pitwall replays, turning them into what the
//! engine consumes: telemetry rows keyed by car (sources yielding
//! [`RowChunk`](pitwall_engine::RowChunk)s) and the rare race events (flags,
//! SC/VSC, pit in/out, retirements, tyre changes) as
//! [`BroadcastEvent`](pitwall_engine::broadcast::BroadcastEvent)s.
//!
//! * [`openf1`]: OpenF1 CSV — `location`, `car_data`, and the event tables
//!   (`race_control`, `pit`, `stints`, `drivers`, `session_result`, `overtakes`);
//! * [`timing`]: OpenF1 timing tables (`laps`, `intervals`, `position`), CSV or JSON,
//!   and the reshaped Bahrain copies; [`timing_source`] replays them through the
//!   engine and [`timing_timeline`] turns them into track state for race frames
//!   (races without car positions);
//! * [`livetiming`]: the official F1 live-timing archive (`.jsonStream` topics,
//!   compressed `CarData.z` / `Position.z`, delta topics merged into state);
//! * [`fastf1`]: the FastF1 SignalR recording (`saved_data.txt`).
//!
//! Malformed input is reported with file and line ([`RaceDataError`]), never a panic.

pub mod classification;
pub mod error;
pub mod fastf1;
pub mod frames;
pub mod livetiming;
pub mod openf1;
pub mod session;
pub mod time;
pub mod timing;
pub mod timing_source;
pub mod timing_timeline;
pub mod track;

pub use error::RaceDataError;

/// The shared data folder for real-data tests (`PITWALL_DATA_DIR`, default
/// `../shared/data` beside the checkout), or `None` with a visible skip line.
#[cfg(test)]
pub(crate) fn data_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("PITWALL_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: no data dir at {}", dir.display());
        None
    }
}
