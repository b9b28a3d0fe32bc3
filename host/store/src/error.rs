//! The store's one error type.
//!
//! Every SQLite failure carries a short `context` naming what the store was
//! doing ("inserting an insight", "reading races"), because a bare
//! `SQLITE_BUSY` or `FOREIGN KEY constraint failed` in a server log says nothing
//! about which request caused it.

use std::path::PathBuf;

/// Errors from [`Store`](crate::Store) and [`Archiver`](crate::Archiver).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A SQLite call failed.
    #[error("sqlite: {context}: {source}")]
    Sqlite {
        /// What the store was doing.
        context: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Applying a schema migration failed; the database stays at `from`.
    #[error("migrating the store from schema version {from} to {to}: {source}")]
    Migration {
        /// The version the database was at.
        from: u32,
        /// The version the failed migration leads to.
        to: u32,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer Pitwall; this build refuses to
    /// touch it rather than misread tables it does not know.
    #[error(
        "the store at {path} has schema version {found}, newer than the {supported} this build knows: \
         upgrade pitwall, or point it at another database file"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: u32,
        /// The latest version this build can migrate to.
        supported: u32,
    },
    /// No race with this id was begun in the store.
    #[error("unknown race '{0}'")]
    UnknownRace(String),
    /// The store has nothing (no driver row, no lap, no insight) for this car number.
    #[error("unknown driver '{0}'")]
    UnknownDriver(String),
    /// A caller-supplied value the store cannot accept (empty id, zero rate, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A file-system operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Writing CSV failed (usually the output stream, e.g. a closed HTTP body).
    #[error("writing {context} CSV: {source}")]
    Csv {
        /// Which export.
        context: &'static str,
        /// The csv error.
        #[source]
        source: csv::Error,
    },
    /// Stored or supplied JSON could not be parsed.
    #[error("json: {context}: {source}")]
    Json {
        /// What was being parsed.
        context: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The archiver's writer thread has stopped (it panicked or could not
    /// start); items sent now would be lost, so `send` refuses them.
    #[error("the archive writer thread has stopped")]
    WriterGone,
    /// The operating system's random source failed while making a key secret.
    #[error("the OS random source failed: {0}")]
    Random(getrandom::Error),
}

/// Attaches a `context` to a rusqlite result.
pub(crate) trait SqliteContext<T> {
    /// Maps the error into [`StoreError::Sqlite`] with `context`.
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { context, source })
    }
}

/// A name that is not one of an enum's spellings (a [`Role`](crate::Role) or
/// an [`ExportKind`](crate::ExportKind)); separate from [`StoreError`] so a
/// CLI parser can use `FromStr` without dragging in the store's errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}' (expected one of: {expected})")]
pub struct ParseNameError {
    /// What was being parsed ("role", "export kind").
    pub what: &'static str,
    /// The rejected text.
    pub value: String,
    /// The accepted spellings, comma separated.
    pub expected: &'static str,
}
