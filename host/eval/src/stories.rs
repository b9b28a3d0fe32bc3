//! Story recall and precision against a race's ground truth ([`RaceTruth`]).
//!
//! In: the stories a story plugin told ([`TimedStory`]: the window time, kind,
//! cars and importance), and the truth of the race. Out: a [`StoryReport`]
//! with, per category, how many truth items a story recalled and how many of
//! the category's stories match a truth item, plus the misses and the false
//! alarms themselves so a report can say *which*.
//!
//! Categories, story kinds and tolerances (the defaults of [`Tolerances`]):
//!
//! * **On-track overtakes** ([`RaceTruth::on_track_overtakes`]) — story kind
//!   `overtake`, cars `[attacker, defender]`: the same two cars in the same
//!   roles within ±[`Tolerances::overtake_ms`] (20 s) of the table's row. The
//!   timing feed dates a pass at the next timing loop and a plugin may wait a
//!   few seconds to confirm a pass, hence the margin. An `overtake` story that
//!   matches a *pit-related* position change is a false alarm: telling those
//!   apart is the point.
//! * **Pit stops** (`openf1_pit.csv`) — kind `pit_stop`, first car the car:
//!   within ±[`Tolerances::pit_stop_ms`] (60 s) of the pit-lane entry (a story
//!   told at the exit, with the stop's duration, is ~20–30 s after the entry).
//! * **SC / VSC periods** — each period gives two items, its start and (when
//!   the table ends it) its end: `safety_car_deployed` / `vsc_deployed` within
//!   ±[`Tolerances::period_ms`] (30 s) of the start, `safety_car_ended` /
//!   `vsc_ended` within the same margin of the end.
//!
//! Matching is one-to-one: a truth item is matched by at most one story and a
//! story matches at most one item (so a pass told twice is one hit and one
//! false alarm). Items are matched in time order, each to the nearest free
//! story within the tolerance. Stories of other kinds (battles, catching,
//! fastest laps, undercuts) have no truth table; the report counts them.
//!
//! Everything here is a pure function of its inputs: no clock, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::truth::{PeriodKind, RaceTruth};

/// One story as a plugin told it, with the window it was told in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedStory {
    /// Start of the window the story was published for (event time, ms).
    pub ts_ms: i64,
    /// The story's kind (`overtake`, `pit_stop`, …).
    pub kind: String,
    /// Racing numbers, most relevant first (for an overtake: attacker, defender).
    pub cars: Vec<u16>,
    pub importance: f64,
}

impl TimedStory {
    pub fn new(ts_ms: i64, kind: impl Into<String>, cars: &[u16], importance: f64) -> Self {
        TimedStory {
            ts_ms,
            kind: kind.into(),
            cars: cars.to_vec(),
            importance,
        }
    }
}

/// How far a story may be from its truth item, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tolerances {
    /// Overtake: same attacker and defender within ± this of the table's row.
    pub overtake_ms: i64,
    /// Pit stop: same car within ± this of the pit-lane entry.
    pub pit_stop_ms: i64,
    /// SC / VSC: deployed (ended) within ± this of the period's start (end).
    pub period_ms: i64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            overtake_ms: 20_000,
            pit_stop_ms: 60_000,
            period_ms: 30_000,
        }
    }
}

/// A truth item no story recalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Missed {
    /// When it happened (the pass, the pit entry, the period's start or end).
    pub ts_ms: i64,
    /// The story kind that would have matched it.
    pub kind: String,
    pub cars: Vec<u16>,
}

/// Recall and precision of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryReport {
    /// Truth items of the category.
    pub truth: usize,
    /// Truth items matched by a story.
    pub recalled: usize,
    /// Stories of the category's kinds.
    pub stories: usize,
    /// Stories that matched a truth item (equals `recalled`: matching is one-to-one).
    pub matched_stories: usize,
    /// `recalled / truth`; `None` without truth items.
    pub recall: Option<f64>,
    /// `matched_stories / stories`; `None` without stories.
    pub precision: Option<f64>,
    /// The truth items no story matched.
    pub missed: Vec<Missed>,
    /// The stories that matched no truth item.
    pub false_alarms: Vec<TimedStory>,
}

/// The whole evaluation; what `pitwall eval --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoryReport {
    pub tolerances: Tolerances,
    /// On-track overtakes (kind `overtake`).
    pub overtakes: CategoryReport,
    /// Pit stops (kind `pit_stop`).
    pub pit_stops: CategoryReport,
    /// SC / VSC starts and ends (kinds `safety_car_*`, `vsc_*`).
    pub sc_vsc: CategoryReport,
    /// Every story told, counted by kind.
    pub stories_by_kind: BTreeMap<String, usize>,
}

impl StoryReport {
    /// The three categories with their names, in report order.
    pub fn categories(&self) -> [(&'static str, &CategoryReport); 3] {
        [
            ("on-track overtakes", &self.overtakes),
            ("pit stops", &self.pit_stops),
            ("SC/VSC periods", &self.sc_vsc),
        ]
    }
}

impl std::fmt::Display for StoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.1} %", 100.0 * x));
        for (name, c) in self.categories() {
            writeln!(
                f,
                "{name:<20} recall {:>7} ({}/{})  precision {:>7} ({}/{})",
                pct(c.recall),
                c.recalled,
                c.truth,
                pct(c.precision),
                c.matched_stories,
                c.stories
            )?;
        }
        let kinds: Vec<String> = self
            .stories_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        write!(f, "stories by kind: {}", kinds.join(", "))
    }
}

/// One truth item to recall: when, which story kind, which cars (in order).
struct Item {
    ts_ms: i64,
    kind: &'static str,
    cars: Vec<u16>,
}

/// Does `story` name `item`'s cars? Overtakes need both cars in their roles;
/// a pit stop needs its car first; periods name no car.
fn same_cars(item: &Item, story: &TimedStory) -> bool {
    item.cars.is_empty() || story.cars.starts_with(&item.cars)
}

/// Matches `items` one-to-one with the stories of `kinds` and counts.
fn category(
    items: &[Item],
    stories: &[TimedStory],
    kinds: &[&str],
    tolerance_ms: i64,
) -> CategoryReport {
    let candidates: Vec<&TimedStory> = stories
        .iter()
        .filter(|s| kinds.contains(&s.kind.as_str()))
        .collect();
    let mut used = vec![false; candidates.len()];
    let mut order: Vec<&Item> = items.iter().collect();
    order.sort_by_key(|i| i.ts_ms);
    let mut missed = Vec::new();
    let mut recalled = 0;
    for item in order {
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(k, s)| {
                !used[*k]
                    && s.kind == item.kind
                    && same_cars(item, s)
                    && (s.ts_ms - item.ts_ms).abs() <= tolerance_ms
            })
            .min_by_key(|(k, s)| ((s.ts_ms - item.ts_ms).abs(), *k))
            .map(|(k, _)| k);
        match best {
            Some(k) => {
                used[k] = true;
                recalled += 1;
            }
            None => missed.push(Missed {
                ts_ms: item.ts_ms,
                kind: item.kind.to_string(),
                cars: item.cars.clone(),
            }),
        }
    }
    let false_alarms: Vec<TimedStory> = candidates
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(s, _)| (*s).clone())
        .collect();
    let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
    CategoryReport {
        truth: items.len(),
        recalled,
        stories: candidates.len(),
        matched_stories: recalled,
        recall: ratio(recalled, items.len()),
        precision: ratio(recalled, candidates.len()),
        missed,
        false_alarms,
    }
}

/// Evaluates `stories` against `truth` with the default [`Tolerances`].
pub fn evaluate(stories: &[TimedStory], truth: &RaceTruth) -> StoryReport {
    evaluate_with(stories, truth, Tolerances::default())
}

/// Evaluates `stories` against `truth` with the given tolerances.
pub fn evaluate_with(stories: &[TimedStory], truth: &RaceTruth, tol: Tolerances) -> StoryReport {
    let overtakes: Vec<Item> = truth
        .on_track_overtakes()
        .map(|o| Item {
            ts_ms: o.ts_ms,
            kind: "overtake",
            cars: vec![o.attacker, o.defender],
        })
        .collect();
    let pits: Vec<Item> = truth
        .pit_stops
        .iter()
        .map(|p| Item {
            ts_ms: p.entry_ms,
            kind: "pit_stop",
            cars: vec![p.car],
        })
        .collect();
    let mut periods = Vec::new();
    for p in &truth.periods {
        let (deployed, ended) = match p.kind {
            PeriodKind::SafetyCar => ("safety_car_deployed", "safety_car_ended"),
            PeriodKind::VirtualSafetyCar => ("vsc_deployed", "vsc_ended"),
        };
        periods.push(Item {
            ts_ms: p.start_ms,
            kind: deployed,
            cars: Vec::new(),
        });
        if let Some(end) = p.end_ms {
            periods.push(Item {
                ts_ms: end,
                kind: ended,
                cars: Vec::new(),
            });
        }
    }
    let mut stories_by_kind = BTreeMap::new();
    for s in stories {
        *stories_by_kind.entry(s.kind.clone()).or_insert(0) += 1;
    }
    StoryReport {
        tolerances: tol,
        overtakes: category(&overtakes, stories, &["overtake"], tol.overtake_ms),
        pit_stops: category(&pits, stories, &["pit_stop"], tol.pit_stop_ms),
        sc_vsc: category(
            &periods,
            stories,
            &[
                "safety_car_deployed",
                "safety_car_ended",
                "vsc_deployed",
                "vsc_ended",
            ],
            tol.period_ms,
        ),
        stories_by_kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::{Exclusion, Overtake, Period, PitStop};

    fn pass(ts_ms: i64, attacker: u16, defender: u16, excluded: Option<Exclusion>) -> Overtake {
        Overtake {
            ts_ms,
            attacker,
            defender,
            position: None,
            excluded,
        }
    }

    fn truth() -> RaceTruth {
        RaceTruth {
            overtakes: vec![
                pass(100_000, 4, 1, None),
                pass(200_000, 16, 55, None),
                // Caused by #11's pit stop: not on track.
                pass(300_000, 44, 11, Some(Exclusion::PitLane)),
            ],
            pit_stops: vec![
                PitStop {
                    car: 11,
                    entry_ms: 290_000,
                    duration_s: Some(21.0),
                    lap: Some(20),
                },
                PitStop {
                    car: 63,
                    entry_ms: 500_000,
                    duration_s: Some(22.0),
                    lap: Some(30),
                },
            ],
            periods: vec![
                Period {
                    kind: PeriodKind::VirtualSafetyCar,
                    start_ms: 600_000,
                    end_ms: Some(650_000),
                },
                Period {
                    kind: PeriodKind::SafetyCar,
                    start_ms: 900_000,
                    end_ms: None,
                },
            ],
            race_start_ms: Some(0),
            flag_ms: Some(1_000_000),
        }
    }

    #[test]
    fn a_perfect_story_set_scores_one_everywhere() {
        let stories = vec![
            TimedStory::new(104_000, "overtake", &[4, 1], 0.6),
            TimedStory::new(195_000, "overtake", &[16, 55], 0.6),
            TimedStory::new(315_000, "pit_stop", &[11], 0.5),
            TimedStory::new(525_000, "pit_stop", &[63], 0.5),
            TimedStory::new(601_000, "vsc_deployed", &[], 0.8),
            TimedStory::new(651_000, "vsc_ended", &[], 0.6),
            TimedStory::new(900_000, "safety_car_deployed", &[], 0.9),
            TimedStory::new(150_000, "battle_formed", &[4, 1], 0.4),
        ];
        let r = evaluate(&stories, &truth());
        for (name, c) in r.categories() {
            assert_eq!((c.recall, c.precision), (Some(1.0), Some(1.0)), "{name}");
            assert!(c.missed.is_empty() && c.false_alarms.is_empty());
        }
        assert_eq!(
            (r.overtakes.truth, r.pit_stops.truth, r.sc_vsc.truth),
            (2, 2, 3)
        );
        assert_eq!(r.stories_by_kind["battle_formed"], 1);
        assert_eq!(r.stories_by_kind["overtake"], 2);
    }

    #[test]
    fn wrong_roles_times_and_pit_related_passes_are_false_alarms() {
        let stories = vec![
            // Roles swapped: the defender did not pass the attacker.
            TimedStory::new(100_000, "overtake", &[1, 4], 0.6),
            // Right pair, 21 s late: outside the tolerance.
            TimedStory::new(221_000, "overtake", &[16, 55], 0.6),
            // The pit stop's position change told as a pass.
            TimedStory::new(300_000, "overtake", &[44, 11], 0.6),
            // Right, and told twice: one hit, one false alarm.
            TimedStory::new(101_000, "overtake", &[4, 1], 0.6),
            TimedStory::new(102_000, "overtake", &[4, 1], 0.6),
            // A pit stop of the wrong car; a VSC told as a full SC.
            TimedStory::new(500_000, "pit_stop", &[44], 0.5),
            TimedStory::new(600_000, "safety_car_deployed", &[], 0.9),
        ];
        let r = evaluate(&stories, &truth());
        assert_eq!((r.overtakes.recalled, r.overtakes.stories), (1, 5));
        assert_eq!(r.overtakes.recall, Some(0.5));
        assert_eq!(r.overtakes.precision, Some(0.2));
        assert_eq!(r.overtakes.missed[0].cars, [16, 55]);
        assert_eq!(r.overtakes.false_alarms.len(), 4);
        assert_eq!(
            (r.pit_stops.recall, r.pit_stops.precision),
            (Some(0.0), Some(0.0))
        );
        assert_eq!(r.pit_stops.missed.len(), 2);
        assert_eq!(r.sc_vsc.recalled, 0);
        assert_eq!(r.sc_vsc.missed.len(), 3);
    }

    #[test]
    fn matching_is_one_to_one_and_nearest_first() {
        // Two passes of the same pair 30 s apart, two stories: each pass
        // gets the story nearest to it, even though both stories are within
        // 20 s of the first pass.
        let mut t = truth();
        t.overtakes = vec![pass(100_000, 4, 1, None), pass(130_000, 4, 1, None)];
        let stories = vec![
            TimedStory::new(112_000, "overtake", &[4, 1], 0.6),
            TimedStory::new(99_000, "overtake", &[4, 1], 0.6),
        ];
        let r = evaluate(&stories, &t);
        assert_eq!(
            (r.overtakes.recalled, r.overtakes.precision),
            (2, Some(1.0))
        );
    }

    #[test]
    fn no_truth_and_no_stories_give_no_ratio_and_tolerances_apply() {
        let r = evaluate(&[], &RaceTruth::default());
        assert_eq!((r.overtakes.recall, r.overtakes.precision), (None, None));
        let stories = [TimedStory::new(140_000, "pit_stop", &[11], 0.5)];
        let tight = Tolerances {
            pit_stop_ms: 10_000,
            ..Tolerances::default()
        };
        let mut t = truth();
        t.pit_stops.truncate(1);
        assert_eq!(evaluate(&stories[..], &t).pit_stops.recalled, 0);
        let stories = [TimedStory::new(295_000, "pit_stop", &[11], 0.5)];
        assert_eq!(evaluate_with(&stories, &t, tight).pit_stops.recalled, 1);
        let json = serde_json::to_value(evaluate(&stories, &t)).unwrap();
        assert_eq!(json["pit_stops"]["recall"], 1.0);
        assert_eq!(json["tolerances"]["overtake_ms"], 20_000);
        assert!(evaluate(&stories, &t).to_string().contains("pit stops"));
    }
}
