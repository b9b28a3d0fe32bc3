//! Errors of the race-data readers: always the file, the line (or record) and what
//! was expected, so a user can open the file at the right place.

use std::path::PathBuf;

/// A problem reading real race data.
#[derive(Debug, thiserror::Error)]
pub enum RaceDataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Missing { path: PathBuf, reason: String },
    /// The engine stopped while replaying a session folder (a bad job plan, a
    /// malformed row) — `pitwall_race::session::race_frames`.
    #[error("replaying {path}: {source}")]
    Replay {
        path: PathBuf,
        #[source]
        source: pitwall_engine::EngineError,
    },
}

impl RaceDataError {
    pub fn malformed(path: impl Into<PathBuf>, line: u64, reason: impl Into<String>) -> Self {
        RaceDataError::Malformed {
            path: path.into(),
            line,
            reason: reason.into(),
        }
    }
}
