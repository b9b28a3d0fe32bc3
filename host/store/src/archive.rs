//! Archiving a job's insights and laps.
//!
//! The job's thread must never wait on disk for long, and must never lose an
//! insight. An [`Archiver`] hands items over a bounded channel
//! ([`CHANNEL_CAPACITY`]) to a writer thread with its own connection, which
//! commits one transaction per batch: up to [`MAX_BATCH`] items, or fewer when
//! the channel is momentarily empty (so a quiet live race is still written
//! promptly). When the writer falls behind, [`Archiver::send`] blocks: the
//! job slows down instead of the host buffering without bound or dropping rows.
//!
//! A row that cannot be written (say a duplicate event id) is rolled back on
//! its own (a savepoint per item), logged, counted in [`ArchiveStats::errors`],
//! and the rest of its batch is still committed.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{SqliteContext, StoreError};
use crate::{Store, connect, races};

/// Items the channel holds before [`Archiver::send`] blocks.
pub const CHANNEL_CAPACITY: usize = 4096;

/// The most items the writer commits in one transaction.
pub const MAX_BATCH: usize = 1000;

/// How many write errors are logged at `warn` before the rest go to `debug`
/// (a full disk would otherwise log every row).
const WARN_ERRORS: u64 = 10;

/// One thing to archive.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchiveItem {
    /// A published insight (story or prediction).
    Insight(InsightRow),
    /// A car's completed lap.
    Lap(LapRow),
}

impl From<InsightRow> for ArchiveItem {
    fn from(row: InsightRow) -> Self {
        ArchiveItem::Insight(row)
    }
}

impl From<LapRow> for ArchiveItem {
    fn from(row: LapRow) -> Self {
        ArchiveItem::Lap(row)
    }
}

/// An insight as the feed published it, with the columns queries need pulled out.
#[derive(Debug, Clone, PartialEq)]
pub struct InsightRow {
    /// The feed event id (monotonic within a run; unique within a race).
    pub event_id: u64,
    /// `"story"` or `"prediction"`.
    pub kind: String,
    /// The window start (event time, ms).
    pub window_start_ms: i64,
    /// Cars involved, in the insight's order: the attacker first for an
    /// overtake story or a `p_overtake` prediction.
    pub cars: Vec<String>,
    /// Importance, 0..1.
    pub importance: f64,
    /// The story or prediction kind, e.g. `overtake`, `p_overtake`.
    pub subkind: Option<String>,
    /// A story's headline.
    pub headline: Option<String>,
    /// A prediction's probability.
    pub value: Option<f64>,
    /// The producing plugin, `name@version`.
    pub plugin: String,
    /// The producing model's version.
    pub model_version: String,
    /// The insight's content hash.
    pub content_hash: String,
    /// The whole feed event as JSON text; history returns it as stored.
    pub json: String,
}

impl InsightRow {
    /// Builds a row from a feed event's JSON text (the shape the SSE feed
    /// sends: `id`, `kind`, `cars`, `importance`, and `data` with `body`,
    /// `content_hash` and `provenance`), keeping the text as [`InsightRow::json`].
    pub fn from_event_json(json: &str) -> Result<InsightRow, StoreError> {
        let event: Value = serde_json::from_str(json).map_err(|source| StoreError::Json {
            context: "parsing a feed event",
            source,
        })?;
        let missing =
            |field: &str| StoreError::InvalidArgument(format!("feed event without {field}"));
        let data = &event["data"];
        let body = &data["body"];
        let provenance = &data["provenance"];
        let text = |v: &Value| v.as_str().map(str::to_string);
        Ok(InsightRow {
            event_id: event["id"].as_u64().ok_or_else(|| missing("id"))?,
            kind: text(&event["kind"]).ok_or_else(|| missing("kind"))?,
            window_start_ms: provenance["window_start_ms"]
                .as_i64()
                .ok_or_else(|| missing("data.provenance.window_start_ms"))?,
            cars: event["cars"]
                .as_array()
                .map(|cars| cars.iter().filter_map(text).collect())
                .unwrap_or_default(),
            importance: event["importance"]
                .as_f64()
                .or_else(|| body["importance"].as_f64())
                .unwrap_or(0.0),
            subkind: text(&body["kind"]),
            headline: text(&body["headline"]),
            value: body["probability"].as_f64(),
            plugin: text(&provenance["plugin"]).ok_or_else(|| missing("data.provenance.plugin"))?,
            model_version: text(&provenance["model_version"]).unwrap_or_default(),
            content_hash: text(&data["content_hash"]).unwrap_or_default(),
            json: json.to_string(),
        })
    }
}

/// A car's lap, recorded when the lap completes.
#[derive(Debug, Clone, PartialEq)]
pub struct LapRow {
    /// Car number.
    pub car: String,
    /// Lap number (1-based).
    pub lap: u16,
    /// When the lap completed (event time, ms).
    pub completed_ms: i64,
    /// Lap time, if timing had one.
    pub lap_time_s: Option<f64>,
    /// Position at the end of the lap.
    pub position: Option<u16>,
    /// The latest per-car plugin metrics at lap end, e.g. `fuel_kg_lap`.
    /// Non-finite values are skipped (SQLite has no NaN).
    pub metrics: Vec<(String, f64)>,
}

/// What an archiver wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveStats {
    /// Insights committed.
    pub insights: u64,
    /// Laps committed.
    pub laps: u64,
    /// Items that could not be written (each was logged).
    pub errors: u64,
    /// The first write error's message, if any, for the caller's report.
    pub first_error: Option<String>,
}

/// Sends a race's insights and laps to the writer thread. `Send`, so a job
/// can own it; dropping it flushes and joins like [`Archiver::finish`].
pub struct Archiver {
    race_id: String,
    sender: Option<SyncSender<ArchiveItem>>,
    writer: Option<JoinHandle<ArchiveStats>>,
}

impl std::fmt::Debug for Archiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archiver")
            .field("race_id", &self.race_id)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Starts a writer thread archiving into `race_id`, which must have been
    /// begun ([`Store::begin_race`]); [`StoreError::UnknownRace`] otherwise.
    pub fn archiver(&self, race_id: &str) -> Result<Archiver, StoreError> {
        self.archiver_with(race_id, CHANNEL_CAPACITY, None)
    }

    /// [`Store::archiver`] with the channel size and a hook the writer runs
    /// before reading anything (tests use it to hold the writer back).
    pub(crate) fn archiver_with(
        &self,
        race_id: &str,
        capacity: usize,
        before_start: Option<Box<dyn FnOnce() + Send>>,
    ) -> Result<Archiver, StoreError> {
        races::race_summary(&self.conn(), race_id)?;
        let conn = connect(self.path())?;
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let race = race_id.to_string();
        let writer = std::thread::Builder::new()
            .name(format!("pitwall-archive-{race_id}"))
            .spawn(move || {
                if let Some(hook) = before_start {
                    hook();
                }
                run_writer(conn, &race, receiver)
            })
            .map_err(|source| StoreError::Io {
                context: "spawning the archive writer for",
                path: self.path().to_path_buf(),
                source,
            })?;
        Ok(Archiver {
            race_id: race_id.to_string(),
            sender: Some(sender),
            writer: Some(writer),
        })
    }
}

impl Archiver {
    /// The race this archiver writes into.
    pub fn race_id(&self) -> &str {
        &self.race_id
    }

    /// Queues one item. Blocks while the channel is full (back-pressure);
    /// fails with [`StoreError::WriterGone`] only if the writer thread died.
    pub fn send(&self, item: ArchiveItem) -> Result<(), StoreError> {
        let sender = self.sender.as_ref().ok_or(StoreError::WriterGone)?;
        match sender.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(item)) => {
                tracing::trace!(race = %self.race_id, "archive channel full; waiting for the writer");
                sender.send(item).map_err(|_| StoreError::WriterGone)
            }
            Err(TrySendError::Disconnected(_)) => Err(StoreError::WriterGone),
        }
    }

    /// Flushes everything sent, stops the writer and returns what it wrote.
    /// Rows that failed are in [`ArchiveStats::errors`] (and were logged);
    /// [`StoreError::WriterGone`] means the writer thread panicked.
    pub fn finish(mut self) -> Result<ArchiveStats, StoreError> {
        self.close()
    }

    fn close(&mut self) -> Result<ArchiveStats, StoreError> {
        // Dropping the sender ends the writer's loop once the channel drains.
        self.sender.take();
        let writer = self.writer.take().ok_or(StoreError::WriterGone)?;
        let stats = writer.join().map_err(|_| StoreError::WriterGone)?;
        tracing::info!(
            race = %self.race_id,
            insights = stats.insights,
            laps = stats.laps,
            errors = stats.errors,
            "archive finished"
        );
        Ok(stats)
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        if self.writer.is_some()
            && let Err(e) = self.close()
        {
            tracing::error!(race = %self.race_id, error = %e, "archive writer failed");
        }
    }
}

/// The writer loop: a batch per wake-up until every sender is gone.
fn run_writer(
    mut conn: Connection,
    race_id: &str,
    receiver: Receiver<ArchiveItem>,
) -> ArchiveStats {
    let mut stats = ArchiveStats::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = receiver.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        write_batch(&mut conn, race_id, &batch, &mut stats);
        batch.clear();
    }
    stats
}

/// Commits one batch; per-item failures are rolled back alone and counted.
fn write_batch(
    conn: &mut Connection,
    race_id: &str,
    batch: &[ArchiveItem],
    stats: &mut ArchiveStats,
) {
    let mut insights = 0;
    let mut laps = 0;
    let mut failed = 0;
    let result = (|| -> Result<(), StoreError> {
        let mut tx = conn.transaction().ctx("beginning an archive batch")?;
        for item in batch {
            let sp = tx.savepoint().ctx("opening an item savepoint")?;
            let written = match item {
                ArchiveItem::Insight(row) => {
                    insert_insight(&sp, race_id, row).map(|()| &mut insights)
                }
                ArchiveItem::Lap(row) => insert_lap(&sp, race_id, row).map(|()| &mut laps),
            };
            match written {
                Ok(counter) => {
                    sp.commit().ctx("releasing an item savepoint")?;
                    *counter += 1;
                }
                Err(e) => {
                    // Finishing a savepoint rolls it back (its default drop
                    // behaviour): this item only, the batch goes on.
                    sp.finish().ctx("rolling back an item")?;
                    failed += 1;
                    record_error(stats, race_id, &e, 1);
                }
            }
        }
        if insights > 0 {
            tx.prepare_cached(
                "UPDATE races SET insight_count = insight_count + ?1 WHERE race_id = ?2",
            )
            .ctx("preparing the insight count update")?
            .execute(params![insights as i64, race_id])
            .ctx("counting a race's insights")?;
        }
        tx.commit().ctx("committing an archive batch")
    })();
    match result {
        Ok(()) => {
            stats.insights += insights;
            stats.laps += laps;
            tracing::debug!(
                race = %race_id,
                items = batch.len(),
                insights,
                laps,
                "archive batch committed"
            );
        }
        Err(e) => {
            // The transaction rolled back: every item not already counted is lost.
            let lost = batch.len() as u64 - failed;
            record_error(stats, race_id, &e, lost);
        }
    }
}

/// Logs a write error and counts the `items` it cost.
fn record_error(stats: &mut ArchiveStats, race_id: &str, e: &StoreError, items: u64) {
    let before = stats.errors;
    stats.errors += items;
    if before < WARN_ERRORS {
        tracing::warn!(race = %race_id, error = %e, items, "archive write failed");
    } else {
        tracing::debug!(race = %race_id, error = %e, items, "archive write failed");
    }
    if stats.first_error.is_none() {
        stats.first_error = Some(e.to_string());
    }
}

fn insert_insight(conn: &Connection, race_id: &str, row: &InsightRow) -> Result<(), StoreError> {
    let event_id = i64::try_from(row.event_id).map_err(|_| {
        StoreError::InvalidArgument(format!(
            "event id {} does not fit SQLite's INTEGER",
            row.event_id
        ))
    })?;
    conn.prepare_cached(
        "INSERT INTO insights (race_id, event_id, kind, subkind, window_start_ms, importance,
            headline, value, plugin, model_version, content_hash, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .ctx("preparing the insight insert")?
    .execute(params![
        race_id,
        event_id,
        row.kind,
        row.subkind,
        row.window_start_ms,
        row.importance,
        row.headline,
        row.value,
        row.plugin,
        row.model_version,
        row.content_hash,
        row.json
    ])
    .ctx("inserting an insight")?;
    let insight_id = conn.last_insert_rowid();
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO insight_cars (insight_id, ord, car, race_id, event_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .ctx("preparing the insight car insert")?;
    for (ord, car) in row.cars.iter().enumerate() {
        // A car listed twice is indexed once, at its first place.
        if row.cars[..ord].contains(car) {
            continue;
        }
        stmt.execute(params![insight_id, ord as i64, car, race_id, event_id])
            .ctx("inserting an insight car")?;
    }
    Ok(())
}

fn insert_lap(conn: &Connection, race_id: &str, row: &LapRow) -> Result<(), StoreError> {
    // A lap sent again (a timing correction) replaces the earlier values.
    conn.prepare_cached(
        "INSERT INTO laps (race_id, car, lap, completed_ms, lap_time_s, position)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (race_id, car, lap) DO UPDATE SET completed_ms = excluded.completed_ms,
            lap_time_s = excluded.lap_time_s, position = excluded.position",
    )
    .ctx("preparing the lap insert")?
    .execute(params![
        race_id,
        row.car,
        row.lap,
        row.completed_ms,
        row.lap_time_s,
        row.position
    ])
    .ctx("inserting a lap")?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO lap_metrics (race_id, car, lap, name, value) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (race_id, car, lap, name) DO UPDATE SET value = excluded.value",
        )
        .ctx("preparing the lap metric insert")?;
    for (name, value) in row.metrics.iter().filter(|(_, v)| v.is_finite()) {
        stmt.execute(params![race_id, row.car, row.lap, name, value])
            .ctx("inserting a lap metric")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::HistoryQuery;
    use crate::test_support::{archive_all, lap, race, story, temp_store};

    const STORY: &str = r##"{"id":1210,"kind":"story","cars":["3","31"],"importance":0.7,"data":{"body":{"cars":["3","31"],"evidence":[["position",9.0],["lap",1.0]],"headline":"#3 passes #31 for P9 on lap 1","importance":0.7,"kind":"overtake","type":"story"},"content_hash":"98..","provenance":{"model_version":"none","plugin":"stories@1.0.0","window_start_ms":1719752594000}}}"##;
    const PREDICTION: &str = r##"{"id":185,"kind":"prediction","cars":["4","1"],"importance":0.22,"data":{"body":{"cars":{"attacker":"4","defender":"1"},"contributions":[["base",-2.55],["drs",0.24]],"horizon_laps":3,"kind":"p_overtake","probability":0.22,"type":"prediction"},"content_hash":"71..","provenance":{"model_version":"none","plugin":"overtake@1.0.0","window_start_ms":1719752583000}}}"##;

    #[test]
    fn rows_from_feed_event_json() {
        let s = InsightRow::from_event_json(STORY).unwrap();
        assert_eq!(s.event_id, 1210);
        assert_eq!(s.kind, "story");
        assert_eq!(s.cars, ["3", "31"]);
        assert_eq!(s.subkind.as_deref(), Some("overtake"));
        assert_eq!(s.headline.as_deref(), Some("#3 passes #31 for P9 on lap 1"));
        assert_eq!(s.value, None);
        assert_eq!(s.plugin, "stories@1.0.0");
        assert_eq!(s.window_start_ms, 1_719_752_594_000);
        assert_eq!(s.content_hash, "98..");
        assert_eq!(s.json, STORY);

        let p = InsightRow::from_event_json(PREDICTION).unwrap();
        assert_eq!((p.event_id, p.kind.as_str()), (185, "prediction"));
        assert_eq!(p.cars, ["4", "1"]);
        assert_eq!(p.value, Some(0.22));
        assert_eq!(p.importance, 0.22);
        assert_eq!(p.subkind.as_deref(), Some("p_overtake"));
        assert_eq!(p.model_version, "none");

        assert!(matches!(
            InsightRow::from_event_json(r#"{"kind":"story"}"#),
            Err(StoreError::InvalidArgument(m)) if m.contains("id")
        ));
        assert!(matches!(
            InsightRow::from_event_json("{"),
            Err(StoreError::Json { .. })
        ));
    }

    #[test]
    fn a_bad_row_is_counted_and_the_rest_of_its_batch_is_kept() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        let ArchiveItem::Insight(mut bad_json) = story(3, 300, &["1"], "overtake") else {
            unreachable!("story() builds an insight")
        };
        bad_json.json = "not json".into();
        let stats = archive_all(
            &store,
            "r",
            vec![
                story(1, 100, &["1"], "overtake"),
                story(1, 100, &["2"], "overtake"), // duplicate event id
                bad_json.into(),                   // fails the json_valid check
                story(2, 200, &["2"], "overtake"),
                lap("1", 1, 90_000),
            ],
        );
        assert_eq!((stats.insights, stats.laps, stats.errors), (2, 1, 2));
        let first = stats.first_error.unwrap();
        assert!(first.contains("inserting an insight"), "{first}");
        let page = store
            .history(&HistoryQuery {
                race_id: "r".into(),
                at_ms: None,
                kinds: vec![],
                car: None,
                after_id: None,
                limit: 10,
            })
            .unwrap();
        let ids: Vec<_> = page
            .items
            .iter()
            .map(|v| v["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(page.race.insights, 2, "failed rows are not counted");
        // The rolled-back duplicate left no car row behind.
        let cars: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM insight_cars", [], |r| r.get(0))
            .unwrap();
        assert_eq!(cars, 2);
    }

    #[test]
    fn dropping_the_archiver_flushes() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        let archiver = store.archiver("r").unwrap();
        for i in 0..2500 {
            archiver
                .send(story(i, i as i64, &["7"], "overtake"))
                .unwrap();
        }
        drop(archiver);
        assert_eq!(store.race("r").unwrap().insights, 2500);
    }

    #[test]
    fn lap_metrics_are_stored_and_a_resent_lap_replaces_values() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        let mut first = LapRow {
            car: "16".into(),
            lap: 3,
            completed_ms: 300,
            lap_time_s: Some(70.5),
            position: Some(2),
            metrics: vec![("fuel_kg_lap".into(), 1.6), ("burn".into(), f64::NAN)],
        };
        let mut second = first.clone();
        second.position = Some(1);
        second.metrics = vec![("fuel_kg_lap".into(), 1.7)];
        first.lap_time_s = Some(70.4);
        let stats = archive_all(&store, "r", vec![first.into(), second.into()]);
        assert_eq!((stats.laps, stats.errors), (2, 0));
        let conn = store.conn();
        let (pos, time): (i64, f64) = conn
            .query_row("SELECT position, lap_time_s FROM laps", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((pos, time), (1, 70.5));
        let metrics: Vec<(String, f64)> = conn
            .prepare("SELECT name, value FROM lap_metrics ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(metrics, [("fuel_kg_lap".to_string(), 1.7)]);
    }

    /// With the writer held back, the sender stops at the channel's capacity
    /// (bounded memory); once released, every item arrives (no loss).
    #[test]
    fn back_pressure_blocks_the_sender_and_loses_nothing() {
        const CAPACITY: usize = 64;
        const ITEMS: usize = 5_000;
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        let (open_gate, gate) = mpsc::channel::<()>();
        let archiver = store
            .archiver_with(
                "r",
                CAPACITY,
                Some(Box::new(move || {
                    let _ = gate.recv();
                })),
            )
            .unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let sender = {
            let sent = Arc::clone(&sent);
            std::thread::spawn(move || {
                for i in 0..ITEMS {
                    let item = if i % 10 == 0 {
                        lap(&(i % 20).to_string(), (i / 20) as u16 + 1, i as i64)
                    } else {
                        story(i as u64, i as i64, &["1", "2"], "overtake")
                    };
                    archiver.send(item).unwrap();
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                archiver.finish().unwrap()
            })
        };
        while sent.load(Ordering::SeqCst) < CAPACITY {
            std::thread::yield_now();
        }
        // Give an unbounded channel every chance to run past the capacity.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(sent.load(Ordering::SeqCst), CAPACITY);
        assert!(!sender.is_finished());

        open_gate.send(()).unwrap();
        let stats = sender.join().unwrap();
        assert_eq!(stats.errors, 0);
        assert_eq!((stats.insights + stats.laps) as usize, ITEMS);
        assert_eq!(stats.laps as usize, ITEMS / 10);
        let summary = store.race("r").unwrap();
        assert_eq!(
            (summary.insights, summary.laps),
            (stats.insights, stats.laps)
        );
    }
}
