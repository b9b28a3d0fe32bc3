//! Pitwall's embedded store (issue 6, parts 4 "Store" and 5 "Auth").
//!
//! One SQLite file holds races, circuits, drivers, every insight the plugins
//! published (stories and predictions, each with its provenance and the whole
//! feed event as JSON), per-lap rows with the plugins' per-car metrics, users
//! and API keys. SQLite because a race-day host must not need a database
//! server: the file is created on first [`Store::open`] and migrated in place
//! ([`schema`]).
//!
//! The pieces, one module each:
//! - [`Store`] (here): the handle, a cheap `Clone` around one connection;
//! - [`races`]: races, circuits and drivers, and replacing a race on replay;
//! - [`archive`]: the [`Archiver`], a writer thread that batches a job's
//!   insights and laps into transactions, with back-pressure;
//! - [`history`]: paging and scrubbing through a race's insights;
//! - [`analytics`]: per-driver figures across races;
//! - [`export`]: CSV of predictions, stories and laps;
//! - [`keys`]: API keys with roles, stored hashed.
//!
//! Concurrency: the file is in WAL mode, so readers (history, exports) never
//! wait for the archiver's writer thread, which has its own connection. Calls
//! on one `Store` (and its clones) share one connection behind a mutex; each
//! is short (a page, a key lookup), which suits a host serving a few producers.

pub mod analytics;
pub mod archive;
pub mod error;
pub mod export;
pub mod history;
pub mod keys;
pub mod races;
pub mod schema;

#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

pub use analytics::{DriverAnalytics, RaceAnalytics};
pub use archive::{ArchiveItem, ArchiveStats, Archiver, InsightRow, LapRow};
pub use error::{ParseNameError, StoreError};
pub use export::ExportKind;
pub use history::{HistoryPage, HistoryQuery};
pub use keys::{KeyRecord, NewKey, Role};
pub use races::{CircuitInfo, DriverInfo, RaceInfo, RaceSummary};
pub use schema::LATEST_VERSION;

use error::SqliteContext;

/// How long a statement waits for another connection's write lock before it
/// fails with `SQLITE_BUSY`. Writes are short transactions (an archive batch
/// of at most ~1000 rows, a key insert), so seconds is generous.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store: a handle to one SQLite file. `Clone` is cheap (an `Arc`), and
/// the handle is `Send + Sync`, so the server can keep it in its app state.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating it and its parent directory if needed) the database
    /// at `path` and migrates it to [`LATEST_VERSION`].
    ///
    /// Fails with [`StoreError::SchemaTooNew`] for a file written by a newer
    /// build.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                context: "creating the store directory",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut conn = Connection::open(path).ctx("opening the database")?;
        // Refuse a newer database before any pragma changes its file (WAL).
        schema::refuse_newer(&conn, path)?;
        configure(&conn, path)?;
        let found = schema::migrate(&mut conn, path)?;
        tracing::info!(
            path = %path.display(),
            found,
            version = LATEST_VERSION,
            "store opened"
        );
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema version of the open database (`PRAGMA user_version`);
    /// after [`Store::open`] it is [`LATEST_VERSION`].
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        schema::version(&self.conn())
    }

    /// The shared connection. A poisoned lock is taken anyway: every store
    /// call is a single statement or a transaction that rolls back on drop,
    /// so a panic elsewhere cannot leave the connection half-way.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Opens a connection with the settings every connection to the store needs.
///
/// - WAL: readers and the archive writer do not block each other, and a
///   commit is one append to the log.
/// - `synchronous = NORMAL`: in WAL mode this can lose the last commits on a
///   power cut but never corrupts the file; insights are re-derivable by a
///   replay, and per-batch fsyncs would cap the archiver's throughput.
/// - foreign keys on (SQLite defaults them off per connection), so the
///   cascades in the schema apply.
/// - a busy timeout, so two writers wait for each other instead of failing.
pub(crate) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).ctx("opening the database")?;
    configure(&conn, path)?;
    Ok(conn)
}

/// Applies [`connect`]'s settings to an open connection.
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting the busy timeout")?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .ctx("enabling WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "store is not in WAL mode");
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        .ctx("setting connection pragmas")
}

/// Wall-clock milliseconds since the Unix epoch, for `created_ms` and
/// `revoked_ms` (bookkeeping, not event time).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::temp_store;

    #[test]
    fn store_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Store>();
    }

    #[test]
    fn fresh_database_is_at_latest_version_and_reopen_is_a_no_op() {
        let (dir, store) = temp_store();
        assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
        let schema_sql = |s: &Store| -> Vec<String> {
            let conn = s.conn();
            let mut stmt = conn
                .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let before = schema_sql(&store);
        assert!(before.iter().any(|s| s.contains("CREATE TABLE insights")));
        store
            .upsert_driver(&DriverInfo {
                number: "44".into(),
                code: Some("HAM".into()),
                name: None,
                team: None,
            })
            .unwrap();
        let path = store.path().to_path_buf();
        drop(store);

        let again = Store::open(&path).unwrap();
        assert_eq!(again.schema_version().unwrap(), LATEST_VERSION);
        assert_eq!(schema_sql(&again), before);
        let code: String = again
            .conn()
            .query_row("SELECT code FROM drivers WHERE number = '44'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(code, "HAM");
        drop(dir);
    }

    #[test]
    fn open_creates_parent_directories_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/pitwall.db");
        let store = Store::open(&path).unwrap();
        assert!(path.exists());
        let mode: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn database_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
                .unwrap();
        }
        match Store::open(&path) {
            Err(StoreError::SchemaTooNew {
                found, supported, ..
            }) => {
                assert_eq!(found, LATEST_VERSION + 1);
                assert_eq!(supported, LATEST_VERSION);
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
        let message = Store::open(&path).unwrap_err().to_string();
        assert!(message.contains("newer"), "{message}");
        // Refusing must not have touched the file.
        let conn = Connection::open(&path).unwrap();
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST_VERSION + 1);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "refusing must not switch the file to WAL");
    }
}
