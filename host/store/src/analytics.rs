//! Per-driver analytics from what the store holds: laps, stories and predictions.
//!
//! Everything is derived from archived rows, so the figures for a replayed
//! race are as deterministic as the replay. Definitions are on the fields of
//! [`RaceAnalytics`].

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::Store;
use crate::error::{SqliteContext, StoreError};
use crate::races::{driver, race_summary};

/// Laps slower than this multiple of the car's median lap in a race are not
/// "green": safety-car laps, in- and out-laps and the standing-start lap are
/// typically 10 % or more off the pace, while a tyre-worn racing lap is rarely
/// 7 % off. Same cut-off as the 107 % qualifying rule.
pub const GREEN_LAP_FACTOR: f64 = 1.07;

/// The lap metric read as fuel burned over the lap (kg), as the fuel plugin names it.
pub const FUEL_METRIC: &str = "fuel_kg_lap";

/// A driver's figures, race by race.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverAnalytics {
    /// Car number.
    pub number: String,
    /// Three-letter code, if the store has a driver row with one.
    pub code: Option<String>,
    /// Full name, likewise.
    pub name: Option<String>,
    /// Team, likewise.
    pub team: Option<String>,
    /// One entry per race with laps or insights for the car (or just the
    /// asked-for race), newest first.
    pub races: Vec<RaceAnalytics>,
}

/// One driver's figures in one race.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RaceAnalytics {
    /// The race.
    pub race_id: String,
    /// Its display name.
    pub race_name: String,
    /// Season.
    pub year: Option<i32>,
    /// Lap rows stored for the car.
    pub laps: u64,
    /// The fastest lap time (s) and its lap number.
    pub best_lap_s: Option<f64>,
    /// The lap on which [`RaceAnalytics::best_lap_s`] was set.
    pub best_lap: Option<u16>,
    /// Timed laps within [`GREEN_LAP_FACTOR`] × the car's median lap time in
    /// this race; slower laps (safety car, pit in/out, the start) are dropped
    /// from the green-lap figures.
    pub green_laps: u64,
    /// Mean of the green laps (s).
    pub mean_green_lap_s: Option<f64>,
    /// Median of the green laps (s).
    pub median_green_lap_s: Option<f64>,
    /// Position at the end of the first stored lap (the grid is not in the
    /// lap rows, so this is the lap-1 position for a full race).
    pub start_position: Option<u16>,
    /// Position at the end of the last stored lap.
    pub finish_position: Option<u16>,
    /// `pit_stop` stories with this car first.
    pub pit_stops: u64,
    /// `overtake` stories with this car first (the attacker).
    pub overtakes_made: u64,
    /// `overtake` stories with this car listed after the first (passed).
    pub overtakes_suffered: u64,
    /// `p_overtake` predictions with this car as the attacker.
    pub p_overtake_predictions: u64,
    /// Their mean probability.
    pub p_overtake_mean: Option<f64>,
    /// Their highest probability.
    pub p_overtake_max: Option<f64>,
    /// Laps with a [`FUEL_METRIC`] value.
    pub fuel_laps: u64,
    /// Mean fuel burned per lap (kg) over those laps.
    pub fuel_per_lap_mean_kg: Option<f64>,
    /// Fuel burned over those laps (kg).
    pub fuel_total_kg: Option<f64>,
}

impl Store {
    /// A driver's analytics for `race_id`, or for every race the car appears in.
    ///
    /// [`StoreError::UnknownRace`] for a race never begun;
    /// [`StoreError::UnknownDriver`] when the store has nothing at all for
    /// the number (no driver row, no lap, no insight).
    pub fn driver_analytics(
        &self,
        number: &str,
        race_id: Option<&str>,
    ) -> Result<DriverAnalytics, StoreError> {
        let conn = self.conn();
        if let Some(race) = race_id {
            race_summary(&conn, race)?;
        }
        let info = driver(&conn, number)?;
        let known: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM laps WHERE car = ?1)
                     OR EXISTS (SELECT 1 FROM insight_cars WHERE car = ?1)",
                [number],
                |r| r.get(0),
            )
            .ctx("looking a driver up")?;
        if info.is_none() && !known {
            return Err(StoreError::UnknownDriver(number.to_string()));
        }
        let races: Vec<String> = match race_id {
            Some(race) => vec![race.to_string()],
            None => {
                let mut stmt = conn
                    .prepare(
                        "SELECT r.race_id FROM races r WHERE r.race_id IN (
                            SELECT race_id FROM laps WHERE car = ?1
                            UNION SELECT race_id FROM insight_cars WHERE car = ?1)
                         ORDER BY r.started_ms IS NULL, r.started_ms DESC, r.race_id",
                    )
                    .ctx("preparing a driver's races")?;
                stmt.query_map([number], |r| r.get(0))
                    .ctx("listing a driver's races")?
                    .collect::<Result<_, _>>()
                    .ctx("reading a driver's races")?
            }
        };
        let races = races
            .iter()
            .map(|race| race_analytics(&conn, number, race))
            .collect::<Result<_, _>>()?;
        let info = info.unwrap_or(crate::DriverInfo {
            number: number.to_string(),
            code: None,
            name: None,
            team: None,
        });
        Ok(DriverAnalytics {
            number: info.number,
            code: info.code,
            name: info.name,
            team: info.team,
            races,
        })
    }
}

fn race_analytics(
    conn: &Connection,
    car: &str,
    race_id: &str,
) -> Result<RaceAnalytics, StoreError> {
    let (race_name, year): (String, Option<i32>) = conn
        .query_row(
            "SELECT name, year FROM races WHERE race_id = ?1",
            [race_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ctx("reading a race for analytics")?;

    let laps: Vec<(u16, Option<f64>, Option<u16>)> = conn
        .prepare_cached(
            "SELECT lap, lap_time_s, position FROM laps WHERE race_id = ?1 AND car = ?2 ORDER BY lap",
        )
        .ctx("preparing a driver's laps")?
        .query_map(params![race_id, car], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ctx("querying a driver's laps")?
        .collect::<Result<_, _>>()
        .ctx("reading a driver's laps")?;

    let timed: Vec<(u16, f64)> = laps
        .iter()
        .filter_map(|&(lap, time, _)| time.filter(|t| t.is_finite() && *t > 0.0).map(|t| (lap, t)))
        .collect();
    let best = timed
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut green: Vec<f64> = timed.iter().map(|&(_, t)| t).collect();
    if let Some(median) = median(&mut green) {
        green.retain(|&t| t <= GREEN_LAP_FACTOR * median);
    }
    let mean_green = (!green.is_empty()).then(|| green.iter().sum::<f64>() / green.len() as f64);
    let median_green = median(&mut green);
    let positions: Vec<u16> = laps.iter().filter_map(|&(_, _, p)| p).collect();

    let mut story_counts = conn
        .prepare_cached(
            "SELECT i.subkind, c.ord = 0, COUNT(*) FROM insight_cars c JOIN insights i ON i.id = c.insight_id
             WHERE c.car = ?1 AND c.race_id = ?2 AND i.kind = 'story' AND i.subkind IN ('pit_stop', 'overtake')
             GROUP BY i.subkind, c.ord = 0",
        )
        .ctx("preparing a driver's story counts")?;
    let (mut pit_stops, mut made, mut suffered) = (0, 0, 0);
    let counts = story_counts
        .query_map(params![car, race_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)? as u64,
            ))
        })
        .ctx("counting a driver's stories")?;
    for row in counts {
        match row.ctx("reading a driver's story counts")? {
            (kind, true, n) if kind == "pit_stop" => pit_stops += n,
            (kind, true, n) if kind == "overtake" => made += n,
            (kind, false, n) if kind == "overtake" => suffered += n,
            _ => {}
        }
    }

    let (predictions, p_mean, p_max): (u64, Option<f64>, Option<f64>) = conn
        .query_row(
            "SELECT COUNT(i.value), AVG(i.value), MAX(i.value)
             FROM insight_cars c JOIN insights i ON i.id = c.insight_id
             WHERE c.car = ?1 AND c.race_id = ?2 AND c.ord = 0
               AND i.kind = 'prediction' AND i.subkind = 'p_overtake'",
            params![car, race_id],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
        )
        .ctx("reading a driver's overtake predictions")?;

    let (fuel_laps, fuel_mean, fuel_total): (u64, Option<f64>, Option<f64>) = conn
        .query_row(
            "SELECT COUNT(value), AVG(value), SUM(value) FROM lap_metrics
             WHERE race_id = ?1 AND car = ?2 AND name = ?3",
            params![race_id, car, FUEL_METRIC],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
        )
        .ctx("reading a driver's fuel")?;

    Ok(RaceAnalytics {
        race_id: race_id.to_string(),
        race_name,
        year,
        laps: laps.len() as u64,
        best_lap_s: best.map(|b| b.1),
        best_lap: best.map(|b| b.0),
        green_laps: green.len() as u64,
        mean_green_lap_s: mean_green,
        median_green_lap_s: median_green,
        start_position: positions.first().copied(),
        finish_position: positions.last().copied(),
        pit_stops,
        overtakes_made: made,
        overtakes_suffered: suffered,
        p_overtake_predictions: predictions,
        p_overtake_mean: p_mean,
        p_overtake_max: p_max,
        fuel_laps,
        fuel_per_lap_mean_kg: fuel_mean,
        fuel_total_kg: fuel_total,
    })
}

/// The median (mean of the middle two for an even count); sorts `values`.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{archive_all, prediction, race, story, temp_store};
    use crate::{ArchiveItem, DriverInfo, LapRow};

    fn lap(
        car: &str,
        lap: u16,
        time: Option<f64>,
        position: u16,
        fuel: Option<f64>,
    ) -> ArchiveItem {
        ArchiveItem::Lap(LapRow {
            car: car.into(),
            lap,
            completed_ms: i64::from(lap) * 90_000,
            lap_time_s: time,
            position: Some(position),
            metrics: fuel
                .map(|f| vec![(FUEL_METRIC.to_string(), f)])
                .unwrap_or_default(),
        })
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn a_hand_built_race_gives_known_answers() {
        let (_dir, store) = temp_store();
        let mut austria = race("austria");
        austria.started_ms = Some(2_000);
        let mut earlier = race("earlier");
        earlier.started_ms = Some(1_000);
        store.begin_race(&austria).unwrap();
        store.begin_race(&earlier).unwrap();
        store
            .upsert_driver(&DriverInfo {
                number: "44".into(),
                code: Some("HAM".into()),
                name: Some("Lewis Hamilton".into()),
                team: Some("Mercedes".into()),
            })
            .unwrap();
        archive_all(
            &store,
            "austria",
            vec![
                // Lap 1 (standing start) and lap 5 (pit) are slow; lap 6 is untimed.
                lap("44", 1, Some(95.0), 5, Some(1.5)),
                lap("44", 2, Some(80.0), 4, Some(1.7)),
                lap("44", 3, Some(81.0), 4, None),
                lap("44", 4, Some(82.0), 3, None),
                lap("44", 5, Some(100.0), 6, None),
                lap("44", 6, None, 4, None),
                lap("44", 7, Some(80.5), 3, None),
                lap("1", 1, Some(79.0), 1, Some(9.0)),
                story(1, 1, &["44", "1"], "overtake"),
                story(2, 2, &["44", "16"], "overtake"),
                story(3, 3, &["16", "44"], "overtake"),
                story(4, 4, &["44"], "pit_stop"),
                story(5, 5, &["1"], "pit_stop"),
                story(6, 6, &["44", "1"], "battle"),
                prediction(7, 7, "44", "1", 0.2),
                prediction(8, 8, "44", "1", 0.6),
                prediction(9, 9, "1", "44", 0.9),
            ],
        );
        archive_all(&store, "earlier", vec![lap("44", 1, Some(70.0), 2, None)]);

        let all = store.driver_analytics("44", None).unwrap();
        assert_eq!(all.code.as_deref(), Some("HAM"));
        let order: Vec<_> = all.races.iter().map(|r| r.race_id.as_str()).collect();
        assert_eq!(order, ["austria", "earlier"]);

        let one = store.driver_analytics("44", Some("austria")).unwrap();
        assert_eq!(one.races.len(), 1);
        let a = &one.races[0];
        assert_eq!(a, &all.races[0]);
        assert_eq!(a.laps, 7);
        assert_eq!((a.best_lap_s, a.best_lap), (Some(80.0), Some(2)));
        // Median of the six timed laps is 81.5; 1.07 × 81.5 = 87.2 drops 95 and 100.
        assert_eq!(a.green_laps, 4);
        assert!(close(a.mean_green_lap_s, (80.0 + 81.0 + 82.0 + 80.5) / 4.0));
        assert!(close(a.median_green_lap_s, 80.75));
        assert_eq!((a.start_position, a.finish_position), (Some(5), Some(3)));
        assert_eq!(a.pit_stops, 1);
        assert_eq!((a.overtakes_made, a.overtakes_suffered), (2, 1));
        assert_eq!(a.p_overtake_predictions, 2);
        assert!(close(a.p_overtake_mean, 0.4));
        assert!(close(a.p_overtake_max, 0.6));
        assert_eq!(a.fuel_laps, 2);
        assert!(close(a.fuel_per_lap_mean_kg, 1.6));
        assert!(close(a.fuel_total_kg, 3.2));

        let e = &all.races[1];
        assert_eq!((e.laps, e.green_laps, e.pit_stops), (1, 1, 0));
        assert_eq!(
            (e.fuel_laps, e.fuel_total_kg, e.p_overtake_mean),
            (0, None, None)
        );

        // Car 16 has only stories: no laps, one overtake made, one suffered.
        let c16 = store.driver_analytics("16", None).unwrap();
        assert_eq!(c16.code, None);
        let r = &c16.races[0];
        assert_eq!((r.laps, r.best_lap_s, r.start_position), (0, None, None));
        assert_eq!((r.overtakes_made, r.overtakes_suffered), (1, 1));
    }

    #[test]
    fn unknown_driver_and_race_are_errors() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        assert!(matches!(
            store.driver_analytics("99", None),
            Err(StoreError::UnknownDriver(n)) if n == "99"
        ));
        assert!(matches!(
            store.driver_analytics("99", Some("nope")),
            Err(StoreError::UnknownRace(r)) if r == "nope"
        ));
        // A driver row with no data is known, with no races.
        store
            .upsert_driver(&DriverInfo {
                number: "77".into(),
                code: None,
                name: None,
                team: None,
            })
            .unwrap();
        assert!(store.driver_analytics("77", None).unwrap().races.is_empty());
        let in_race = store.driver_analytics("77", Some("r")).unwrap();
        assert_eq!(in_race.races[0].laps, 0);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
