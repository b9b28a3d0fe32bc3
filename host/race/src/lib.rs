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
//!   and the reshaped Bahrain copies;
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
pub mod time;
pub mod timing;
pub mod track;

pub use error::RaceDataError;
