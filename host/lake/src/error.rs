//! Why an export failed, always with the file it was writing.

use std::path::PathBuf;

/// An export error. Every variant names the Parquet file being written, so a
/// caller that exports several tables can tell which one failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Creating, writing, syncing or renaming the file failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The Parquet file (the final name, not its temporary sibling).
        path: PathBuf,
        /// What was being done, e.g. "creating the file".
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet encoder refused the schema or a column chunk.
    #[error("{}: encoding Parquet: {source}", path.display())]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A frame whose aggregate names differ from the first frame's: the file's
    /// columns are fixed by the first frame, so the rest cannot be written.
    #[error(
        "{}: frame {seq} has aggregates {found:?}, but the file's columns were fixed \
         by the first frame as {expected:?}",
        path.display()
    )]
    AggregateNamesChanged {
        /// The Parquet file.
        path: PathBuf,
        /// The offending frame's `seq`.
        seq: u64,
        /// Names of the first frame.
        expected: Vec<String>,
        /// Names of this frame.
        found: Vec<String>,
    },
    /// A frame or window with the wrong number of aggregate values.
    #[error(
        "{}: {what} has {found} aggregate values, but the file has {expected} aggregate columns",
        path.display()
    )]
    AggregateCount {
        /// The Parquet file.
        path: PathBuf,
        /// Which row, e.g. "frame 12, car 44".
        what: String,
        /// Columns in the file.
        expected: usize,
        /// Values in the row.
        found: usize,
    },
    /// Two pit events of one kind for one car in one window: a car row has
    /// one `pit_in_ms` and one `pit_out_ms` column, so the second would be lost.
    #[error(
        "{}: frame {seq} has two {kind} events for car {car} (at {first_ms} and {second_ms} ms); \
         a row holds one of each kind",
        path.display()
    )]
    DuplicatePitEvent {
        /// The Parquet file.
        path: PathBuf,
        /// The frame's `seq`.
        seq: u64,
        /// Racing number.
        car: u16,
        /// `pit_in` or `pit_out`.
        kind: &'static str,
        /// Event time of the first event, ms.
        first_ms: i64,
        /// Event time of the second event, ms.
        second_ms: i64,
    },
    /// An integer-typed aggregate (a count, a last gear, ...) whose value is
    /// not a whole number an `INT64` column can hold: the engine's `Int`
    /// output type promises one, so this is an overflow, not a rounding choice.
    #[error(
        "{}: aggregate {column:?} of key {key:?} at {window_start} is {value}, \
         not a whole number an INT64 column can hold",
        path.display()
    )]
    NotAnInteger {
        /// The Parquet file.
        path: PathBuf,
        /// The aggregate's column.
        column: String,
        /// The window's key (car).
        key: String,
        /// The window's start, in the job's time unit.
        window_start: i64,
        /// The value.
        value: f64,
    },
    /// A key that is not an integer although the job's key type is `int`
    /// (sources validate keys, so this means a caller bypassed them).
    #[error(
        "{}: key {key:?} is not an integer, as the job's key type says",
        path.display()
    )]
    KeyNotInteger {
        /// The Parquet file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// An aggregate named like a fixed column of the window table (the key,
    /// `window_start_*`, `window_end_*`, `rows`): Parquet columns need
    /// unique names.
    #[error(
        "{}: aggregate {name:?} has the name of another column of the window table; \
         rename it in the job config",
        path.display()
    )]
    DuplicateColumn {
        /// The Parquet file.
        path: PathBuf,
        /// The clashing name.
        name: String,
    },
}
