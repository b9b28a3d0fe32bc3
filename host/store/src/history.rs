//! Paging and scrubbing through a race's stored insights.
//!
//! Pages are keyset-paginated on the feed's event id (`after_id`), not on an
//! offset: a page costs the same at the end of a race as at the start, and a
//! page boundary never shifts while a live race is still being archived.
//! Every shape of query is an ordered range scan of an index:
//! `insights_race_event` (race, event id), or `insight_cars_by_car`
//! (car, race, event id) when filtered by car.

use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Store;
use crate::error::{SqliteContext, StoreError};
use crate::races::{RaceSummary, race_summary};

/// Items per page when a query asks for 0.
pub const DEFAULT_PAGE: usize = 100;
/// The largest page; larger limits are clamped to it, so one request cannot
/// pull a whole race into memory.
pub const MAX_PAGE: usize = 5_000;

/// Which insights of a race to return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryQuery {
    /// The race.
    pub race_id: String,
    /// Scrub to a time: only insights whose window started at or before this
    /// (event time, ms).
    pub at_ms: Option<i64>,
    /// Only these kinds; empty for all. A name matches an insight's kind
    /// (`story`, `prediction`) or its story/prediction kind (`overtake`,
    /// `p_overtake`), so a client can ask for "all predictions" or "only
    /// pit stops" alike.
    pub kinds: Vec<String>,
    /// Only insights involving this car.
    pub car: Option<String>,
    /// Only insights after this event id (the previous page's `next_after`).
    pub after_id: Option<u64>,
    /// Page size; 0 means [`DEFAULT_PAGE`], and it is clamped to [`MAX_PAGE`].
    pub limit: usize,
}

/// One page of a race's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPage {
    /// The race and its totals.
    pub race: RaceSummary,
    /// The stored feed events, by event id ascending.
    pub items: Vec<Value>,
    /// Pass as `after_id` for the next page; `None` when this is the last.
    pub next_after: Option<u64>,
}

impl HistoryQuery {
    /// The effective page size.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        }
    }
}

/// Builds the page query: one row more than the page, to know whether
/// another page follows.
pub(crate) fn page_sql(q: &HistoryQuery) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("SELECT i.event_id, i.json FROM ");
    let mut args: Vec<SqlValue> = Vec::new();
    // `e` is the table whose event_id column drives the scan and the order.
    let e = match &q.car {
        Some(car) => {
            sql.push_str(
                "insight_cars c JOIN insights i ON i.id = c.insight_id WHERE c.car = ? AND c.race_id = ?",
            );
            args.push(SqlValue::Text(car.clone()));
            args.push(SqlValue::Text(q.race_id.clone()));
            "c"
        }
        None => {
            sql.push_str("insights i WHERE i.race_id = ?");
            args.push(SqlValue::Text(q.race_id.clone()));
            "i"
        }
    };
    if let Some(after) = q.after_id {
        sql.push_str(&format!(" AND {e}.event_id > ?"));
        args.push(SqlValue::Integer(i64::try_from(after).unwrap_or(i64::MAX)));
    }
    if let Some(at) = q.at_ms {
        sql.push_str(" AND i.window_start_ms <= ?");
        args.push(SqlValue::Integer(at));
    }
    if !q.kinds.is_empty() {
        let marks = vec!["?"; q.kinds.len()].join(", ");
        sql.push_str(&format!(
            " AND (i.kind IN ({marks}) OR i.subkind IN ({marks}))"
        ));
        for _ in 0..2 {
            args.extend(q.kinds.iter().map(|k| SqlValue::Text(k.clone())));
        }
    }
    sql.push_str(&format!(" ORDER BY {e}.event_id LIMIT ?"));
    args.push(SqlValue::Integer(q.page_size() as i64 + 1));
    (sql, args)
}

impl Store {
    /// One page of a race's insights, filtered as `q` says, by event id.
    /// [`StoreError::UnknownRace`] if the race was never begun.
    pub fn history(&self, q: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        let conn = self.conn();
        let race = race_summary(&conn, &q.race_id)?;
        let (sql, args) = page_sql(q);
        let mut stmt = conn.prepare_cached(&sql).ctx("preparing a history page")?;
        let mut rows: Vec<(i64, String)> = stmt
            .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx("querying a history page")?
            .collect::<Result<_, _>>()
            .ctx("reading a history page")?;
        let size = q.page_size();
        let more = rows.len() > size;
        rows.truncate(size);
        let next_after = if more {
            rows.last().map(|(id, _)| *id as u64)
        } else {
            None
        };
        let items = rows
            .iter()
            .map(|(_, json)| serde_json::from_str(json))
            .collect::<Result<_, _>>()
            .map_err(|source| StoreError::Json {
                context: "reading a stored insight",
                source,
            })?;
        Ok(HistoryPage {
            race,
            items,
            next_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::*;
    use crate::test_support::{archive_all, lap, prediction, race, story, temp_store};
    use crate::{ArchiveItem, InsightRow};

    /// A deterministic pseudo-random sequence (splitmix64) for building the archive.
    struct Mix(u64);
    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const CARS: [&str; 6] = ["1", "4", "11", "16", "44", "81"];
    const STORY_KINDS: [&str; 3] = ["overtake", "pit_stop", "battle"];

    /// Thousands of insights (and some laps) with event ids that skip, windows
    /// that are not monotone in event id, and some cars listed twice.
    fn archive() -> Vec<ArchiveItem> {
        let mut mix = Mix(6);
        let mut id = 0;
        let mut window = 1_000_000;
        let mut items = Vec::new();
        for n in 0..3_000 {
            id += 1 + mix.below(3);
            window += mix.below(2_000) as i64 - 500;
            let a = CARS[mix.below(6) as usize];
            let b = CARS[mix.below(6) as usize];
            let item = if mix.below(2) == 0 {
                let kind = STORY_KINDS[mix.below(3) as usize];
                match mix.below(3) {
                    0 => story(id, window, &[a], kind),
                    _ => story(id, window, &[a, b], kind),
                }
            } else {
                prediction(id, window, a, b, mix.below(100) as f64 / 100.0)
            };
            items.push(item);
            if n % 50 == 0 {
                items.push(lap(a, (n / 50 + 1) as u16, window));
            }
        }
        items
    }

    /// The page the store should return, computed from what was sent.
    fn expected(sent: &[&InsightRow], q: &HistoryQuery) -> (Vec<u64>, Option<u64>) {
        let all: Vec<u64> = sent
            .iter()
            .filter(|r| q.at_ms.is_none_or(|at| r.window_start_ms <= at))
            .filter(|r| {
                q.kinds.is_empty()
                    || q.kinds
                        .iter()
                        .any(|k| *k == r.kind || Some(k) == r.subkind.as_ref())
            })
            .filter(|r| q.car.as_ref().is_none_or(|c| r.cars.contains(c)))
            .filter(|r| q.after_id.is_none_or(|after| r.event_id > after))
            .map(|r| r.event_id)
            .collect();
        let size = q.page_size();
        let page: Vec<u64> = all.iter().copied().take(size).collect();
        let next = (all.len() > size).then(|| page[size - 1]);
        (page, next)
    }

    fn ids(page: &HistoryPage) -> Vec<u64> {
        page.items
            .iter()
            .map(|v| v["id"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn pages_match_a_plain_filter_of_what_was_sent() {
        let (_dir, store) = temp_store();
        store.begin_race(&race("r")).unwrap();
        store.begin_race(&race("other")).unwrap();
        let items = archive();
        let stats = archive_all(&store, "r", items.clone());
        assert_eq!(stats.errors, 0);
        // Another race with the same event ids must never leak into "r".
        archive_all(&store, "other", items[..200].to_vec());
        let sent: Vec<&InsightRow> = items
            .iter()
            .filter_map(|i| match i {
                ArchiveItem::Insight(r) => Some(r),
                ArchiveItem::Lap(_) => None,
            })
            .collect();
        let max_id = sent.last().unwrap().event_id;
        let windows = (
            sent.iter().map(|r| r.window_start_ms).min().unwrap(),
            sent.iter().map(|r| r.window_start_ms).max().unwrap(),
        );
        let by_id: std::collections::HashMap<u64, &InsightRow> =
            sent.iter().map(|r| (r.event_id, *r)).collect();

        let kinds = prop::sample::subsequence(
            vec![
                "story",
                "prediction",
                "overtake",
                "pit_stop",
                "p_overtake",
                "none",
            ],
            0..3,
        );
        let car = prop::option::of(prop::sample::select(vec!["1", "44", "81", "99"]));
        let strategy = (
            // Often exactly a stored window start, to pin down `<=` at the edge.
            prop::option::of(prop_oneof![
                windows.0 - 10..windows.1 + 10,
                prop::sample::select(sent.iter().map(|r| r.window_start_ms).collect::<Vec<_>>()),
            ]),
            kinds,
            car,
            prop::option::of(0..max_id + 5),
            prop_oneof![Just(0usize), 1..400usize],
        );
        let mut runner = TestRunner::new(Config {
            cases: 40,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |(at_ms, kinds, car, after_id, limit)| {
                let q = HistoryQuery {
                    race_id: "r".into(),
                    at_ms,
                    kinds: kinds.into_iter().map(String::from).collect(),
                    car: car.map(String::from),
                    after_id,
                    limit,
                };
                let page = store.history(&q).unwrap();
                let (want, want_next) = expected(&sent, &q);
                prop_assert_eq!(ids(&page), want);
                prop_assert_eq!(page.next_after, want_next);
                for item in &page.items {
                    let stored = by_id[&item["id"].as_u64().unwrap()];
                    let sent_json: Value = serde_json::from_str(&stored.json).unwrap();
                    prop_assert_eq!(item, &sent_json);
                }

                // Following next_after to the end yields the whole filtered list.
                let whole = expected(
                    &sent,
                    &HistoryQuery {
                        limit: MAX_PAGE,
                        ..q.clone()
                    },
                )
                .0;
                let mut all = Vec::new();
                let mut walk = HistoryQuery { limit: 997, ..q };
                loop {
                    let page = store.history(&walk).unwrap();
                    all.extend(ids(&page));
                    match page.next_after {
                        Some(next) => walk.after_id = Some(next),
                        None => break,
                    }
                }
                prop_assert_eq!(all, whole);
                Ok(())
            })
            .unwrap();

        let page = store
            .history(&HistoryQuery {
                race_id: "r".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.items.len(), DEFAULT_PAGE);
        assert_eq!(page.race.insights, sent.len() as u64);
        assert_eq!(page.race.laps, stats.laps);
    }

    #[test]
    fn every_query_shape_uses_an_index() {
        let (_dir, store) = temp_store();
        let base = HistoryQuery {
            race_id: "r".into(),
            ..Default::default()
        };
        let shapes = [
            (base.clone(), "insights_race_event"),
            (
                HistoryQuery {
                    after_id: Some(5),
                    ..base.clone()
                },
                "insights_race_event",
            ),
            (
                HistoryQuery {
                    kinds: vec!["story".into()],
                    after_id: Some(5),
                    ..base.clone()
                },
                "insights_race_",
            ),
            (
                HistoryQuery {
                    at_ms: Some(9),
                    ..base.clone()
                },
                "insights_race_",
            ),
            (
                HistoryQuery {
                    car: Some("44".into()),
                    ..base.clone()
                },
                "insight_cars_by_car",
            ),
            (
                HistoryQuery {
                    car: Some("44".into()),
                    after_id: Some(5),
                    at_ms: Some(9),
                    kinds: vec!["overtake".into()],
                    ..base.clone()
                },
                "insight_cars_by_car",
            ),
        ];
        let conn = store.conn();
        for (q, index) in shapes {
            let (sql, args) = page_sql(&q);
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join(" | ");
            assert!(plan.contains(index), "{q:?}: {plan}");
            assert!(!plan.contains("SCAN"), "{q:?}: {plan}");
        }
    }

    #[test]
    fn unknown_race_is_an_error() {
        let (_dir, store) = temp_store();
        let q = HistoryQuery {
            race_id: "nope".into(),
            ..Default::default()
        };
        assert!(matches!(store.history(&q), Err(StoreError::UnknownRace(id)) if id == "nope"));
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        let q = |limit| HistoryQuery {
            limit,
            ..Default::default()
        };
        assert_eq!(q(0).page_size(), DEFAULT_PAGE);
        assert_eq!(q(7).page_size(), 7);
        assert_eq!(q(usize::MAX).page_size(), MAX_PAGE);
    }
}
