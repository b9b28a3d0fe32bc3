//! CSV exports of a race: predictions, stories, and laps with their metrics.
//!
//! Written through the `csv` crate, so headlines with commas, quotes or
//! newlines are quoted correctly. Numbers use Rust's shortest round-trip
//! formatting, so a value read back parses to the same `f64`. Every export
//! writes its header even when the race has no rows.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ParseNameError, SqliteContext, StoreError};
use crate::races::race_summary;
use crate::{Store, connect};

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    /// `race_id,event_id,window_start_ms,attacker,defender,kind,probability,plugin,model_version,contributions`;
    /// `contributions` is the expert breakdown as `name=value;name=value`.
    Predictions,
    /// `race_id,event_id,window_start_ms,kind,cars,importance,headline,plugin`;
    /// `cars` is space separated, in the story's order.
    Stories,
    /// `race_id,car,lap,completed_ms,lap_time_s,position`, then one column per
    /// metric name seen in the race, sorted; empty where a lap lacks it.
    Laps,
}

impl ExportKind {
    /// Every kind, in a stable order.
    pub const ALL: [ExportKind; 3] = [
        ExportKind::Predictions,
        ExportKind::Stories,
        ExportKind::Laps,
    ];

    /// The lowercase name (`predictions`, `stories`, `laps`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Predictions => "predictions",
            ExportKind::Stories => "stories",
            ExportKind::Laps => "laps",
        }
    }
}

impl std::fmt::Display for ExportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportKind {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExportKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseNameError {
                what: "export kind",
                value: s.to_string(),
                expected: "predictions, stories, laps",
            })
    }
}

impl Store {
    /// Writes `what` for `race_id` as CSV to `out` and returns the number of
    /// data rows (the header not counted). [`StoreError::UnknownRace`] if the
    /// race was never begun.
    ///
    /// The export reads on a connection of its own inside one read
    /// transaction: `out` may be a slow client, and streaming a whole race to
    /// it must not hold up other store calls, while the rows still come from
    /// one consistent snapshot even as an archiver keeps writing.
    pub fn export_csv(
        &self,
        what: ExportKind,
        race_id: &str,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        let mut conn = connect(self.path())?;
        let conn = conn.transaction().ctx("beginning an export")?;
        race_summary(&conn, race_id)?;
        let mut csv = csv::Writer::from_writer(out);
        let context = what.as_str();
        let csv_err = |source| StoreError::Csv { context, source };
        let rows = match what {
            ExportKind::Predictions => predictions(&conn, race_id, &mut csv)?,
            ExportKind::Stories => stories(&conn, race_id, &mut csv)?,
            ExportKind::Laps => laps(&conn, race_id, &mut csv)?,
        };
        csv.flush().map_err(|e| csv_err(csv::Error::from(e)))?;
        tracing::debug!(race = %race_id, export = context, rows, "csv exported");
        Ok(rows)
    }
}

type CsvOut<'a> = csv::Writer<&'a mut dyn Write>;

fn write(csv: &mut CsvOut<'_>, context: &'static str, record: &[String]) -> Result<(), StoreError> {
    csv.write_record(record)
        .map_err(|source| StoreError::Csv { context, source })
}

/// A nullable cell: the value, or empty.
fn cell<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Runs `sql` (with the race id as `?1`) and writes one CSV record per row,
/// as `record` makes it; the number of rows written.
fn write_rows(
    conn: &rusqlite::Connection,
    csv: &mut CsvOut<'_>,
    context: &'static str,
    sql: &str,
    race_id: &str,
    mut record: impl FnMut(&rusqlite::Row<'_>) -> Result<Vec<String>, StoreError>,
) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare(sql).ctx(context)?;
    let mut rows = stmt.query([race_id]).ctx(context)?;
    let mut n = 0;
    while let Some(r) = rows.next().ctx(context)? {
        write(csv, context, &record(r)?)?;
        n += 1;
    }
    Ok(n)
}

/// The ordered, space-separated cars of insight `i`.
const CARS: &str =
    "(SELECT group_concat(car, ' ' ORDER BY ord) FROM insight_cars WHERE insight_id = i.id)";

fn predictions(
    conn: &rusqlite::Connection,
    race_id: &str,
    csv: &mut CsvOut<'_>,
) -> Result<u64, StoreError> {
    const CONTEXT: &str = "predictions";
    let header = [
        "race_id",
        "event_id",
        "window_start_ms",
        "attacker",
        "defender",
        "kind",
        "probability",
        "plugin",
        "model_version",
        "contributions",
    ];
    write(csv, CONTEXT, &header.map(String::from))?;
    let sql = "SELECT i.event_id, i.window_start_ms,
            (SELECT car FROM insight_cars WHERE insight_id = i.id ORDER BY ord LIMIT 1),
            (SELECT car FROM insight_cars WHERE insight_id = i.id ORDER BY ord LIMIT 1 OFFSET 1),
            i.subkind, i.value, i.plugin, i.model_version,
            json_extract(i.json, '$.data.body.contributions')
         FROM insights i WHERE i.race_id = ?1 AND i.kind = 'prediction' ORDER BY i.event_id";
    write_rows(conn, csv, CONTEXT, sql, race_id, |r| {
        let read = || -> rusqlite::Result<_> {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        };
        let (event_id, window, attacker, defender, kind, p, plugin, model, contributions) =
            read().ctx("reading a prediction")?;
        let contributions = contributions
            .map(|text| format_contributions(&text))
            .transpose()?
            .unwrap_or_default();
        Ok(vec![
            race_id.to_string(),
            event_id.to_string(),
            window.to_string(),
            attacker.unwrap_or_default(),
            defender.unwrap_or_default(),
            kind.unwrap_or_default(),
            cell(p),
            plugin,
            model,
            contributions,
        ])
    })
}

/// `[["base", -2.55], ["drs", 0.24]]` → `base=-2.55;drs=0.24`. Entries that
/// are not a `[name, number]` pair are written as their JSON text, so nothing
/// is silently dropped.
fn format_contributions(json: &str) -> Result<String, StoreError> {
    let value: Value = serde_json::from_str(json).map_err(|source| StoreError::Json {
        context: "reading prediction contributions",
        source,
    })?;
    let Value::Array(entries) = value else {
        return Ok(value.to_string());
    };
    let parts: Vec<String> = entries
        .iter()
        .map(|entry| match entry.as_array().map(Vec::as_slice) {
            Some([Value::String(name), v]) if v.is_number() => {
                format!("{name}={}", cell(v.as_f64()))
            }
            _ => entry.to_string(),
        })
        .collect();
    Ok(parts.join(";"))
}

fn stories(
    conn: &rusqlite::Connection,
    race_id: &str,
    csv: &mut CsvOut<'_>,
) -> Result<u64, StoreError> {
    const CONTEXT: &str = "stories";
    let header = [
        "race_id",
        "event_id",
        "window_start_ms",
        "kind",
        "cars",
        "importance",
        "headline",
        "plugin",
    ];
    write(csv, CONTEXT, &header.map(String::from))?;
    let sql = format!(
        "SELECT i.event_id, i.window_start_ms, i.subkind, {CARS}, i.importance, i.headline, i.plugin
         FROM insights i WHERE i.race_id = ?1 AND i.kind = 'story' ORDER BY i.event_id"
    );
    write_rows(conn, csv, CONTEXT, &sql, race_id, |r| {
        let read = || -> rusqlite::Result<_> {
            Ok(vec![
                race_id.to_string(),
                r.get::<_, i64>(0)?.to_string(),
                r.get::<_, i64>(1)?.to_string(),
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                r.get::<_, f64>(4)?.to_string(),
                r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                r.get::<_, String>(6)?,
            ])
        };
        read().ctx("reading a story")
    })
}

fn laps(
    conn: &rusqlite::Connection,
    race_id: &str,
    csv: &mut CsvOut<'_>,
) -> Result<u64, StoreError> {
    const CONTEXT: &str = "laps";
    // Metric values by (car, lap), and the sorted set of names for the columns.
    let mut names = BTreeSet::new();
    let mut values: HashMap<(String, u16), Vec<(String, f64)>> = HashMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT car, lap, name, value FROM lap_metrics WHERE race_id = ?1")
            .ctx("preparing the lap metrics export")?;
        let rows = stmt
            .query_map([race_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .ctx("querying lap metrics")?;
        for row in rows {
            let (car, lap, name, value): (String, u16, String, f64) =
                row.ctx("reading a lap metric")?;
            names.insert(name.clone());
            values.entry((car, lap)).or_default().push((name, value));
        }
    }
    let names: Vec<String> = names.into_iter().collect();
    let mut header: Vec<String> = [
        "race_id",
        "car",
        "lap",
        "completed_ms",
        "lap_time_s",
        "position",
    ]
    .map(String::from)
    .to_vec();
    header.extend(names.iter().cloned());
    write(csv, CONTEXT, &header)?;

    // Lap by lap, and within a lap in the order the cars crossed the line.
    let sql = "SELECT car, lap, completed_ms, lap_time_s, position FROM laps
             WHERE race_id = ?1 ORDER BY lap, completed_ms, car";
    write_rows(conn, csv, CONTEXT, sql, race_id, |r| {
        let read = || -> rusqlite::Result<_> {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u16>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<f64>>(3)?,
                r.get::<_, Option<u16>>(4)?,
            ))
        };
        let (car, lap, completed_ms, time, position) = read().ctx("reading a lap")?;
        let metrics = values.remove(&(car.clone(), lap)).unwrap_or_default();
        let mut record = vec![
            race_id.to_string(),
            car,
            lap.to_string(),
            completed_ms.to_string(),
            cell(time),
            cell(position),
        ];
        record.extend(
            names
                .iter()
                .map(|name| cell(metrics.iter().find(|(n, _)| n == name).map(|&(_, v)| v))),
        );
        Ok(record)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{archive_all, prediction, race, story, story_with, temp_store};
    use crate::{ArchiveItem, LapRow};

    fn export(
        store: &Store,
        what: ExportKind,
        race_id: &str,
    ) -> (u64, Vec<String>, Vec<Vec<String>>) {
        let mut out = Vec::new();
        let n = store.export_csv(what, race_id, &mut out).unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let header = reader.headers().unwrap().iter().map(String::from).collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        (n, header, rows)
    }

    #[test]
    fn stories_csv_round_trips_awkward_headlines() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        let awkward = "#3 passes #31, then says \"what?\"\non lap 1";
        archive_all(
            &store,
            "r",
            vec![
                story_with(10, 1_000, &["3", "31"], "overtake", awkward, 0.7),
                story_with(12, 2_000, &["44"], "pit_stop", "plain", 0.25),
                prediction(11, 1_500, "4", "1", 0.22),
            ],
        );
        let (n, header, rows) = export(&store, ExportKind::Stories, "r");
        assert_eq!(n, 2);
        assert_eq!(
            header,
            [
                "race_id",
                "event_id",
                "window_start_ms",
                "kind",
                "cars",
                "importance",
                "headline",
                "plugin"
            ]
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            [
                "r",
                "10",
                "1000",
                "overtake",
                "3 31",
                "0.7",
                awkward,
                "stories@1.0.0"
            ]
        );
        assert_eq!(rows[1][..6], ["r", "12", "2000", "pit_stop", "44", "0.25"]);
    }

    #[test]
    fn predictions_csv_has_attacker_defender_and_contributions() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        archive_all(
            &store,
            "r",
            vec![
                prediction(5, 500, "4", "1", 0.22),
                story(6, 600, &["4"], "overtake"),
                prediction(7, 700, "16", "55", 0.1 + 0.2),
            ],
        );
        let (n, header, rows) = export(&store, ExportKind::Predictions, "r");
        assert_eq!(n, 2);
        assert_eq!(header.len(), 10);
        assert_eq!(header[9], "contributions");
        assert_eq!(
            rows[0],
            [
                "r",
                "5",
                "500",
                "4",
                "1",
                "p_overtake",
                "0.22",
                "overtake@1.0.0",
                "m1",
                "base=-2.55;drs=0.24"
            ]
        );
        // Shortest round-trip formatting: reading back gives the same f64.
        assert_eq!(rows[1][6].parse::<f64>().unwrap(), 0.1 + 0.2);
    }

    #[test]
    fn laps_csv_has_a_sorted_column_per_metric() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        let lap = |car: &str, lap: u16, ms: i64, metrics: Vec<(&str, f64)>| {
            ArchiveItem::Lap(LapRow {
                car: car.into(),
                lap,
                completed_ms: ms,
                lap_time_s: (lap > 1).then_some(80.25),
                position: Some(if car == "1" { 1 } else { 2 }),
                metrics: metrics
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
            })
        };
        archive_all(
            &store,
            "r",
            vec![
                lap("44", 1, 1_100, vec![("fuel_kg_lap", 1.5)]),
                lap("1", 1, 1_000, vec![("fuel_kg_lap", 1.4), ("burn_bar", 0.8)]),
                lap("1", 2, 2_000, vec![]),
            ],
        );
        let (n, header, rows) = export(&store, ExportKind::Laps, "r");
        assert_eq!(n, 3);
        assert_eq!(
            header,
            [
                "race_id",
                "car",
                "lap",
                "completed_ms",
                "lap_time_s",
                "position",
                "burn_bar",
                "fuel_kg_lap"
            ]
        );
        assert_eq!(rows[0], ["r", "1", "1", "1000", "", "1", "0.8", "1.4"]);
        assert_eq!(rows[1], ["r", "44", "1", "1100", "", "2", "", "1.5"]);
        assert_eq!(rows[2], ["r", "1", "2", "2000", "80.25", "1", "", ""]);
    }

    #[test]
    fn empty_race_exports_a_header_and_unknown_race_errors() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        for what in ExportKind::ALL {
            let (n, header, rows) = export(&store, what, "r");
            assert_eq!((n, rows.len()), (0, 0));
            assert_eq!(header[0], "race_id");
            let mut out = Vec::new();
            assert!(matches!(
                store.export_csv(what, "nope", &mut out),
                Err(StoreError::UnknownRace(_))
            ));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn export_kind_parses_and_displays() {
        for what in ExportKind::ALL {
            assert_eq!(what.to_string().parse::<ExportKind>().unwrap(), what);
        }
        assert_eq!("Laps".parse::<ExportKind>().unwrap(), ExportKind::Laps);
        let err = "frames".parse::<ExportKind>().unwrap_err();
        assert!(
            err.to_string().contains("predictions, stories, laps"),
            "{err}"
        );
    }

    #[test]
    fn contributions_keep_odd_entries() {
        assert_eq!(
            format_contributions("[[\"a\",1],[\"b\",-0.5]]").unwrap(),
            "a=1;b=-0.5"
        );
        assert_eq!(
            format_contributions("[[\"a\",1],\"x\"]").unwrap(),
            "a=1;\"x\""
        );
        assert_eq!(format_contributions("[]").unwrap(), "");
    }
}
