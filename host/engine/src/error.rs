//! Errors of the engine, with the context a user needs to act on them.

use std::path::PathBuf;

/// A problem in the configuration (schema, windows, aggregates) found before any row flows.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} is not valid TOML for a Pitwall job: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Where a bad input record sits, so the user can open the file at that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLocation {
    /// The source's name (a file path, `simulator`, `http`).
    pub source: String,
    /// 1-based line (or record) number in that source.
    pub line: u64,
}

impl std::fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.line)
    }
}

/// One malformed input record: where it is and what is wrong with it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{location}: {reason}")]
pub struct RecordError {
    pub location: RecordLocation,
    pub reason: String,
}

/// Errors of a source: I/O, or a malformed record when the job is set to fail on them.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // Not `#[source]`: the record error is the whole story, and chaining it would
    // print the location and reason twice.
    #[error("malformed record at {}: {}", .0.location, .0.reason)]
    Malformed(RecordError),
    #[error("cannot seek {source_name} to {position}: {reason}")]
    Seek {
        source_name: String,
        position: u64,
        reason: String,
    },
    #[error("source {0} was closed by its producer")]
    Closed(String),
}

impl From<RecordError> for SourceError {
    fn from(e: RecordError) -> Self {
        SourceError::Malformed(e)
    }
}

/// Errors while writing or restoring a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "checkpoint {path} was written by a different job configuration \
         (fingerprint {found:016x}, this job is {expected:016x}); \
         remove the checkpoint directory or use the original config"
    )]
    ConfigMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
}

/// Any error that stops a job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("output {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pipeline stage {stage} stopped unexpectedly: {reason}")]
    Stage { stage: &'static str, reason: String },
}
