//! The job's side of the history store: what a served race writes to
//! [`pitwall_store`] as it runs.
//!
//! * every story and prediction the feed published, with its feed id and the
//!   exact JSON the feed sent (so `/history` pages and the live feed agree,
//!   and a client can move from one to the other by id);
//! * one lap row per car per completed lap: lap time, position, and the
//!   latest value each plugin metric had at the window the lap ended
//!   (`fuel_kg_lap`, `burn_bar`, ...). Per-window metrics are not stored
//!   one by one: ~20 per car per window would be a million rows a race for
//!   little use; the Parquet export keeps the frames for the data lake.
//!
//! The race, its circuit and drivers come from the data folder: `race.json`
//! (name, year, circuit) and OpenF1's `drivers.csv` when present.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_plugin_sdk::insight::InsightBody;
use pitwall_runtime::PublishedInsight;
use pitwall_server::Event;
use pitwall_store::{
    ArchiveItem, ArchiveStats, Archiver, CircuitInfo, DriverInfo, InsightRow, LapRow, RaceInfo,
    Store,
};

/// `race.json` in a data folder: what the frames do not say about the race.
#[derive(Debug, serde::Deserialize)]
struct RaceMeta {
    name: String,
    year: Option<i32>,
    circuit: Option<CircuitMeta>,
}

#[derive(Debug, serde::Deserialize)]
struct CircuitMeta {
    key: String,
    name: String,
    country: Option<String>,
}

/// The race as the store names it: `race_id` is the data folder's name (the
/// frames' session), so a second replay of the same race replaces the first.
pub fn race_info(data: &Path, total_laps: u16) -> anyhow::Result<RaceInfo> {
    let race_id = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the data folder has no name")?;
    let meta_path = data.join("race.json");
    let meta: Option<RaceMeta> = if meta_path.is_file() {
        let text = std::fs::read_to_string(&meta_path)
            .with_context(|| format!("reading {}", meta_path.display()))?;
        Some(
            serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", meta_path.display()))?,
        )
    } else {
        None
    };
    Ok(RaceInfo {
        name: meta
            .as_ref()
            .map_or_else(|| race_id.clone(), |m| m.name.clone()),
        year: meta.as_ref().and_then(|m| m.year),
        circuit: meta.and_then(|m| m.circuit).map(|c| CircuitInfo {
            key: c.key,
            name: c.name,
            country: c.country,
        }),
        total_laps: (total_laps > 0).then_some(total_laps),
        started_ms: None,
        race_id,
    })
}

/// The drivers in OpenF1's `drivers.csv`, if the folder has one.
pub fn drivers(data: &Path) -> anyhow::Result<Vec<DriverInfo>> {
    let path = data.join("drivers.csv");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    Ok(pitwall_race::openf1::read_drivers(&path)?
        .into_iter()
        .map(|d| DriverInfo {
            number: d.driver_number.to_string(),
            code: d.name_acronym,
            name: d.full_name,
            team: d.team_name,
        })
        .collect())
}

/// Writes one race into the store as the job publishes it.
pub struct RaceArchive {
    archiver: Archiver,
    /// Each car's lap in the previous frame.
    laps: HashMap<u16, u16>,
    /// Each car's latest value of each plugin metric.
    metrics: HashMap<String, BTreeMap<String, f64>>,
    failed: u64,
}

impl RaceArchive {
    /// Starts `race` in `store` (replacing an earlier run of it).
    pub fn open(store: &Store, race: &RaceInfo, drivers: &[DriverInfo]) -> anyhow::Result<Self> {
        store
            .begin_race(race)
            .with_context(|| format!("starting race {} in the store", race.race_id))?;
        for d in drivers {
            store
                .upsert_driver(d)
                .with_context(|| format!("storing driver #{}", d.number))?;
        }
        Ok(Self {
            archiver: store.archiver(&race.race_id)?,
            laps: HashMap::new(),
            metrics: HashMap::new(),
            failed: 0,
        })
    }

    fn send(&mut self, item: ArchiveItem) {
        if let Err(e) = self.archiver.send(item) {
            // The writer is gone (its error is in `finish`); the race goes on.
            if self.failed == 0 {
                tracing::error!(error = %e, "history store writer stopped");
            }
            self.failed += 1;
        }
    }

    /// A published insight: stories and predictions are kept as the feed sent
    /// them; metrics update the car's latest values for its next lap row.
    pub fn insight(&mut self, insight: &PublishedInsight, event: &Event) {
        let (subkind, headline, value) = match insight.body() {
            InsightBody::Metric(m) => {
                self.metrics
                    .entry(m.car().to_owned())
                    .or_default()
                    .insert(m.name().to_owned(), m.value());
                return;
            }
            InsightBody::Story(s) => (s.kind(), Some(s.headline().to_owned()), None),
            InsightBody::Prediction(p) => (p.kind(), None, Some(p.probability())),
        };
        self.send(ArchiveItem::Insight(InsightRow {
            event_id: event.id,
            kind: event.kind.to_owned(),
            window_start_ms: insight.window_start_ms(),
            cars: event.cars.clone(),
            importance: event.importance,
            subkind: Some(subkind.to_owned()),
            headline,
            value,
            plugin: insight.plugin_id().to_owned(),
            model_version: insight.model_version().to_owned(),
            content_hash: insight.content_hash().to_owned(),
            json: event.json.to_string(),
        }));
    }

    /// After a frame's insights: a lap row for every car whose lap counter
    /// moved on in this frame.
    pub fn frame_done(&mut self, frame: &RaceFrameData) {
        for car in &frame.cars {
            let prev = self.laps.insert(car.car, car.lap);
            let Some(prev) = prev.filter(|&p| car.lap > p && p > 0) else {
                continue;
            };
            let number = car.car.to_string();
            let metrics = self
                .metrics
                .get(&number)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default();
            self.send(ArchiveItem::Lap(LapRow {
                car: number,
                lap: prev,
                completed_ms: frame.window_end_ms,
                lap_time_s: car.last_lap_s.is_finite().then_some(car.last_lap_s),
                position: (car.position > 0).then_some(u16::from(car.position)),
                metrics,
            }));
        }
    }

    /// Flushes and closes; the counts written.
    pub fn finish(self) -> anyhow::Result<ArchiveStats> {
        Ok(self.archiver.finish()?)
    }
}
