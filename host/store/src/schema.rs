//! The relational layout and its versioned migrations.
//!
//! Versions live in SQLite's `PRAGMA user_version` (0 for a new file). Each
//! entry of `MIGRATIONS` takes the schema from version `i` to `i + 1` and
//! runs in its own `BEGIN IMMEDIATE` transaction together with the version
//! bump, so a crash mid-migration leaves the previous version intact and two
//! processes opening the same file at once migrate it only once.
//!
//! Why not `rusqlite_migration`: its latest release (2.6.0) depends on
//! rusqlite 0.40, while the workspace uses 0.41.1. Both would link
//! `libsqlite3-sys` (`links = "sqlite3"`), which Cargo refuses to build twice
//! in one graph, so the crate cannot be used until it moves to 0.41. The
//! runner below is the part of it we need: ordered SQL scripts on
//! `user_version`, and a refusal to open a database from a newer build.
//!
//! Migrations are append-only: once released, a script is never edited; a
//! change to the layout is a new entry.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{SqliteContext, StoreError};

/// Version 1: races, circuits, drivers, insights (with their cars), laps and
/// per-lap metrics, users and API keys.
///
/// Notes on the choices:
/// - Tables are `STRICT`, so a mistyped bind fails loudly instead of storing
///   text in a number column.
/// - `insights.json` is the whole feed event, checked with `json_valid` so
///   history reads never meet text they cannot parse; the other columns are
///   the parts queries filter or sort on.
/// - `insight_cars` carries `race_id` and `event_id` copies so that history
///   filtered by car is one ordered range scan of `insight_cars_by_car`
///   (car, race, event id), and `ord` keeps a car's place in the insight's
///   list: 0 is the attacker of an overtake or of a `p_overtake` prediction.
/// - `races.insight_count` is kept by the archive writer in the same
///   transaction as the rows, so a history page's race summary does not count
///   a long race's insights on every request.
/// - Children cascade from `races`, so [`Store::begin_race`](crate::Store::begin_race)
///   replaces a race's insights and laps with two deletes.
/// - `api_keys.secret_sha256` is the only trace of a secret (see [`crate::keys`]).
const V1: &str = r#"
CREATE TABLE circuits (
    circuit_key TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    country     TEXT
) STRICT;

CREATE TABLE races (
    race_id     TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    year        INTEGER,
    circuit_key TEXT REFERENCES circuits (circuit_key),
    total_laps  INTEGER,
    started_ms  INTEGER,
    insight_count INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX races_circuit ON races (circuit_key);

CREATE TABLE drivers (
    number TEXT PRIMARY KEY NOT NULL,
    code   TEXT,
    name   TEXT,
    team   TEXT
) STRICT;

CREATE TABLE insights (
    id              INTEGER PRIMARY KEY,
    race_id         TEXT NOT NULL REFERENCES races (race_id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    subkind         TEXT,
    window_start_ms INTEGER NOT NULL,
    importance      REAL NOT NULL,
    headline        TEXT,
    value           REAL,
    plugin          TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    json            TEXT NOT NULL CHECK (json_valid(json))
) STRICT;
CREATE UNIQUE INDEX insights_race_event ON insights (race_id, event_id);
CREATE INDEX insights_race_window ON insights (race_id, window_start_ms);

CREATE TABLE insight_cars (
    insight_id INTEGER NOT NULL REFERENCES insights (id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    car        TEXT NOT NULL,
    race_id    TEXT NOT NULL,
    event_id   INTEGER NOT NULL,
    PRIMARY KEY (insight_id, ord)
) STRICT;
CREATE INDEX insight_cars_by_car ON insight_cars (car, race_id, event_id);

CREATE TABLE laps (
    race_id      TEXT NOT NULL REFERENCES races (race_id) ON DELETE CASCADE,
    car          TEXT NOT NULL,
    lap          INTEGER NOT NULL,
    completed_ms INTEGER NOT NULL,
    lap_time_s   REAL,
    position     INTEGER,
    PRIMARY KEY (race_id, car, lap)
) STRICT;
CREATE INDEX laps_by_car ON laps (car, race_id);

CREATE TABLE lap_metrics (
    race_id TEXT NOT NULL,
    car     TEXT NOT NULL,
    lap     INTEGER NOT NULL,
    name    TEXT NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (race_id, car, lap, name),
    FOREIGN KEY (race_id, car, lap) REFERENCES laps (race_id, car, lap) ON DELETE CASCADE
) STRICT;

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL CHECK (role IN ('guest', 'user', 'admin')),
    secret_sha256   TEXT NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    rate_per_minute INTEGER NOT NULL CHECK (rate_per_minute > 0),
    created_ms      INTEGER NOT NULL,
    revoked_ms      INTEGER
) STRICT;
CREATE INDEX api_keys_user ON api_keys (user_id);
"#;

/// The migrations, in order: entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this build migrates to.
pub const LATEST_VERSION: u32 = MIGRATIONS.len() as u32;

/// Reads `PRAGMA user_version`.
pub(crate) fn version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx("reading the schema version")?;
    // user_version is a signed 32-bit field; a negative one was not written by us.
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Fails with [`StoreError::SchemaTooNew`] if the database is newer than this build.
pub(crate) fn refuse_newer(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    check_not_newer(version(conn)?, path)
}

/// Brings the database up to [`LATEST_VERSION`], one transaction per step.
///
/// Returns the version it found. Refuses ([`StoreError::SchemaTooNew`]) a
/// database whose version is above the latest this build knows.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<u32, StoreError> {
    let found = version(conn)?;
    check_not_newer(found, path)?;
    for (index, script) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = index as u32 + 1;
        let from = to - 1;
        let err = |source| StoreError::Migration { from, to, source };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        // Another process may have migrated between our read and the lock.
        let now = version(&tx)?;
        check_not_newer(now, path)?;
        if now >= to {
            continue;
        }
        tx.execute_batch(script).map_err(err)?;
        tx.pragma_update(None, "user_version", to).map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(path = %path.display(), from, to, "store schema migrated");
    }
    Ok(found)
}

fn check_not_newer(found: u32, path: &Path) -> Result<(), StoreError> {
    if found > LATEST_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: LATEST_VERSION,
        });
    }
    Ok(())
}
