//! Races, circuits and drivers.
//!
//! A race is begun once per replay or live session ([`Store::begin_race`]).
//! Replays are deterministic (event time, never the wall clock), so running
//! the same race again produces the same insights: the store replaces the
//! earlier run's insights and laps instead of piling up duplicates.

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::error::{SqliteContext, StoreError};

/// A race as the host knows it when a job starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceInfo {
    /// Stable id, e.g. `2024-austria`; the key of everything stored for the race.
    pub race_id: String,
    /// Display name, e.g. `Austrian Grand Prix`.
    pub name: String,
    /// Season.
    pub year: Option<i32>,
    /// Where it is run; upserted with the race.
    pub circuit: Option<CircuitInfo>,
    /// Scheduled laps.
    pub total_laps: Option<u16>,
    /// Start time (event time, ms since the Unix epoch).
    pub started_ms: Option<i64>,
}

/// A circuit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitInfo {
    /// Stable key, e.g. `red-bull-ring`.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Country, if known.
    pub country: Option<String>,
}

/// A driver, keyed by car number (the key every insight and lap uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// Car number as text, e.g. `"44"`.
    pub number: String,
    /// Three-letter code, e.g. `HAM`.
    pub code: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Team.
    pub team: Option<String>,
}

/// A race with what the store holds for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceSummary {
    /// The race id.
    pub race_id: String,
    /// Display name.
    pub name: String,
    /// Season.
    pub year: Option<i32>,
    /// Circuit display name.
    pub circuit: Option<String>,
    /// Scheduled laps.
    pub total_laps: Option<u16>,
    /// Stored insights (stories and predictions).
    pub insights: u64,
    /// Stored lap rows (all cars).
    pub laps: u64,
}

/// The summary query: one race row with its counts (insights are counted by
/// the archive writer; a race has at most a few thousand laps, counted over
/// the `laps` primary key).
const SUMMARY_SELECT: &str = "SELECT r.race_id, r.name, r.year, c.name, r.total_laps,
        r.insight_count,
        (SELECT COUNT(*) FROM laps l WHERE l.race_id = r.race_id)
     FROM races r LEFT JOIN circuits c ON c.circuit_key = r.circuit_key";

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<RaceSummary> {
    Ok(RaceSummary {
        race_id: row.get(0)?,
        name: row.get(1)?,
        year: row.get(2)?,
        circuit: row.get(3)?,
        total_laps: row.get(4)?,
        insights: row.get::<_, i64>(5)? as u64,
        laps: row.get::<_, i64>(6)? as u64,
    })
}

/// Reads one race's summary, or [`StoreError::UnknownRace`].
pub(crate) fn race_summary(
    conn: &rusqlite::Connection,
    race_id: &str,
) -> Result<RaceSummary, StoreError> {
    let sql = format!("{SUMMARY_SELECT} WHERE r.race_id = ?1");
    conn.query_row(&sql, [race_id], summary_from_row)
        .optional()
        .ctx("reading a race")?
        .ok_or_else(|| StoreError::UnknownRace(race_id.to_string()))
}

fn non_empty(what: &str, value: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "{what} must not be empty"
        )));
    }
    Ok(())
}

impl Store {
    /// Records that a run of `race` starts: upserts the race (and its
    /// circuit), then deletes the race's earlier insights and laps.
    ///
    /// A replay is deterministic, so a second replay of the same race
    /// replaces the first rather than doubling it. The race row is updated,
    /// never deleted and re-inserted (that would cascade). Call it before
    /// [`Store::archiver`], and not while an archiver for the same race is
    /// still writing: its rows would be deleted with the rest.
    pub fn begin_race(&self, race: &RaceInfo) -> Result<(), StoreError> {
        non_empty("race_id", &race.race_id)?;
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("beginning a race")?;
        if let Some(c) = &race.circuit {
            non_empty("circuit key", &c.key)?;
            tx.execute(
                "INSERT INTO circuits (circuit_key, name, country) VALUES (?1, ?2, ?3)
                 ON CONFLICT (circuit_key) DO UPDATE SET name = excluded.name, country = excluded.country",
                params![c.key, c.name, c.country],
            )
            .ctx("upserting a circuit")?;
        }
        tx.execute(
            "INSERT INTO races (race_id, name, year, circuit_key, total_laps, started_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (race_id) DO UPDATE SET name = excluded.name, year = excluded.year,
                circuit_key = excluded.circuit_key, total_laps = excluded.total_laps,
                started_ms = excluded.started_ms, insight_count = 0",
            params![
                race.race_id,
                race.name,
                race.year,
                race.circuit.as_ref().map(|c| &c.key),
                race.total_laps,
                race.started_ms
            ],
        )
        .ctx("upserting a race")?;
        let insights = tx
            .execute("DELETE FROM insights WHERE race_id = ?1", [&race.race_id])
            .ctx("deleting a race's earlier insights")?;
        let laps = tx
            .execute("DELETE FROM laps WHERE race_id = ?1", [&race.race_id])
            .ctx("deleting a race's earlier laps")?;
        tx.commit().ctx("committing a race")?;
        tracing::info!(
            race = %race.race_id,
            replaced_insights = insights,
            replaced_laps = laps,
            "race begun"
        );
        Ok(())
    }

    /// Inserts or updates a driver. Fields given as `None` keep what is
    /// stored, so sources that know different parts (the timing feed knows
    /// the code, an entry list the team) can each fill in theirs.
    pub fn upsert_driver(&self, d: &DriverInfo) -> Result<(), StoreError> {
        non_empty("driver number", &d.number)?;
        self.conn()
            .execute(
                "INSERT INTO drivers (number, code, name, team) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (number) DO UPDATE SET
                    code = COALESCE(excluded.code, code),
                    name = COALESCE(excluded.name, name),
                    team = COALESCE(excluded.team, team)",
                params![d.number, d.code, d.name, d.team],
            )
            .ctx("upserting a driver")?;
        Ok(())
    }

    /// Reads a driver, if the store has a row for that number.
    pub fn driver(&self, number: &str) -> Result<Option<DriverInfo>, StoreError> {
        driver(&self.conn(), number)
    }

    /// Every race, newest start first (races without a start time last).
    pub fn races(&self) -> Result<Vec<RaceSummary>, StoreError> {
        let conn = self.conn();
        let sql =
            format!("{SUMMARY_SELECT} ORDER BY r.started_ms IS NULL, r.started_ms DESC, r.race_id");
        let mut stmt = conn.prepare(&sql).ctx("preparing the race list")?;
        let rows = stmt
            .query_map([], summary_from_row)
            .ctx("listing races")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("reading races")?;
        Ok(rows)
    }

    /// One race's summary, or [`StoreError::UnknownRace`].
    pub fn race(&self, race_id: &str) -> Result<RaceSummary, StoreError> {
        race_summary(&self.conn(), race_id)
    }
}

pub(crate) fn driver(
    conn: &rusqlite::Connection,
    number: &str,
) -> Result<Option<DriverInfo>, StoreError> {
    conn.query_row(
        "SELECT number, code, name, team FROM drivers WHERE number = ?1",
        [number],
        |r| {
            Ok(DriverInfo {
                number: r.get(0)?,
                code: r.get(1)?,
                name: r.get(2)?,
                team: r.get(3)?,
            })
        },
    )
    .optional()
    .ctx("reading a driver")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{archive_all, lap, race, story, temp_store};

    #[test]
    fn begin_race_replaces_the_earlier_run() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r1")).unwrap();
        store.begin_race(&race("r2")).unwrap();
        archive_all(
            &store,
            "r1",
            vec![story(1, 1000, &["1", "2"], "overtake"), lap("1", 1, 5000)],
        );
        archive_all(&store, "r2", vec![story(1, 1000, &["1"], "pit_stop")]);
        let r1 = store.race("r1").unwrap();
        assert_eq!((r1.insights, r1.laps), (1, 1));

        let mut again = race("r1");
        again.name = "Renamed".into();
        again.circuit = None;
        store.begin_race(&again).unwrap();
        let r1 = store.race("r1").unwrap();
        assert_eq!((r1.insights, r1.laps), (0, 0));
        assert_eq!(r1.name, "Renamed");
        assert_eq!(r1.circuit, None);
        // The other race is untouched, and so are the cascaded child tables.
        assert_eq!(store.race("r2").unwrap().insights, 1);
        let cars: i64 = store
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM insight_cars WHERE race_id = 'r1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(cars, 0);
        let metrics: i64 = store
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM lap_metrics WHERE race_id = 'r1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(metrics, 0);

        // The second run archives the same event ids without conflicts.
        let stats = archive_all(&store, "r1", vec![story(1, 1000, &["1", "2"], "overtake")]);
        assert_eq!((stats.insights, stats.errors), (1, 0));
        assert_eq!(store.race("r1").unwrap().insights, 1);
    }

    #[test]
    fn races_lists_summaries_newest_first() {
        let (_dir, store) = temp_store();
        let mut old = race("old");
        old.started_ms = Some(1_000);
        let mut new = race("new");
        new.started_ms = Some(2_000);
        let mut undated = race("undated");
        undated.started_ms = None;
        undated.circuit = None;
        for r in [&undated, &old, &new] {
            store.begin_race(r).unwrap();
        }
        let list = store.races().unwrap();
        let ids: Vec<_> = list.iter().map(|r| r.race_id.as_str()).collect();
        assert_eq!(ids, ["new", "old", "undated"]);
        assert_eq!(list[0].circuit.as_deref(), Some("Red Bull Ring"));
        assert_eq!(list[0].total_laps, Some(71));
        assert_eq!(list[2].circuit, None);
    }

    #[test]
    fn unknown_race_is_an_error() {
        let (_dir, store) = temp_store();
        assert!(matches!(store.race("nope"), Err(StoreError::UnknownRace(id)) if id == "nope"));
        assert!(matches!(
            store.archiver("nope"),
            Err(StoreError::UnknownRace(_))
        ));
        assert!(matches!(
            store.begin_race(&race(" ")),
            Err(StoreError::InvalidArgument(_))
        ));
    }

    #[test]
    fn upsert_driver_merges_fields() {
        let (_dir, store) = temp_store();
        let mut d = DriverInfo {
            number: "1".into(),
            code: Some("VER".into()),
            name: None,
            team: Some("Red Bull".into()),
        };
        store.upsert_driver(&d).unwrap();
        d.code = None;
        d.name = Some("Max Verstappen".into());
        d.team = Some("Red Bull Racing".into());
        store.upsert_driver(&d).unwrap();
        let got = store.driver("1").unwrap().unwrap();
        assert_eq!(got.code.as_deref(), Some("VER"));
        assert_eq!(got.name.as_deref(), Some("Max Verstappen"));
        assert_eq!(got.team.as_deref(), Some("Red Bull Racing"));
        assert_eq!(store.driver("2").unwrap(), None);
    }
}
