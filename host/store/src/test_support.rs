//! Fixtures shared by the unit tests.

use tempfile::TempDir;

use crate::{ArchiveItem, ArchiveStats, CircuitInfo, InsightRow, LapRow, RaceInfo, Store};

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub(crate) fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("pitwall.db")).expect("open store");
    (dir, store)
}

/// A race at the Red Bull Ring.
pub(crate) fn race(id: &str) -> RaceInfo {
    RaceInfo {
        race_id: id.to_string(),
        name: format!("Race {id}"),
        year: Some(2024),
        circuit: Some(CircuitInfo {
            key: "red-bull-ring".into(),
            name: "Red Bull Ring".into(),
            country: Some("Austria".into()),
        }),
        total_laps: Some(71),
        started_ms: Some(1_719_752_400_000),
    }
}

/// A story insight whose JSON is shaped like the feed's.
pub(crate) fn story(id: u64, window_start_ms: i64, cars: &[&str], kind: &str) -> ArchiveItem {
    story_with(
        id,
        window_start_ms,
        cars,
        kind,
        &format!("{kind} #{id}"),
        0.5,
    )
}

/// A story with a chosen headline and importance.
pub(crate) fn story_with(
    id: u64,
    window_start_ms: i64,
    cars: &[&str],
    kind: &str,
    headline: &str,
    importance: f64,
) -> ArchiveItem {
    let cars: Vec<String> = cars.iter().map(|c| c.to_string()).collect();
    let json = serde_json::json!({
        "id": id,
        "kind": "story",
        "cars": cars,
        "importance": importance,
        "data": {
            "body": {"cars": cars, "headline": headline, "importance": importance, "kind": kind, "type": "story"},
            "content_hash": format!("h{id}"),
            "provenance": {"model_version": "none", "plugin": "stories@1.0.0", "window_start_ms": window_start_ms}
        }
    });
    ArchiveItem::Insight(InsightRow::from_event_json(&json.to_string()).expect("story json"))
}

/// A `p_overtake` prediction, attacker first, with two expert contributions.
pub(crate) fn prediction(
    id: u64,
    window_start_ms: i64,
    attacker: &str,
    defender: &str,
    probability: f64,
) -> ArchiveItem {
    let json = serde_json::json!({
        "id": id,
        "kind": "prediction",
        "cars": [attacker, defender],
        "importance": probability,
        "data": {
            "body": {
                "cars": {"attacker": attacker, "defender": defender},
                "contributions": [["base", -2.55], ["drs", 0.24]],
                "horizon_laps": 3,
                "kind": "p_overtake",
                "probability": probability,
                "type": "prediction"
            },
            "content_hash": format!("h{id}"),
            "provenance": {"model_version": "m1", "plugin": "overtake@1.0.0", "window_start_ms": window_start_ms}
        }
    });
    ArchiveItem::Insight(InsightRow::from_event_json(&json.to_string()).expect("prediction json"))
}

/// A lap with a 90 s lap time, position 1 and a fuel metric.
pub(crate) fn lap(car: &str, lap: u16, completed_ms: i64) -> ArchiveItem {
    ArchiveItem::Lap(LapRow {
        car: car.to_string(),
        lap,
        completed_ms,
        lap_time_s: Some(90.0),
        position: Some(1),
        metrics: vec![("fuel_kg_lap".into(), 1.5)],
    })
}

/// Archives `items` into `race_id` and waits for the writer.
pub(crate) fn archive_all(store: &Store, race_id: &str, items: Vec<ArchiveItem>) -> ArchiveStats {
    let archiver = store.archiver(race_id).expect("archiver");
    for item in items {
        archiver.send(item).expect("send");
    }
    archiver.finish().expect("finish")
}
