//! Track state from OpenF1 *timing* tables alone — for races that have laps,
//! intervals and positions but no car positions (the 2024 Bahrain GP in
//! `data/2024-bahrain-race`).
//!
//! In: a session folder's [`TimingTables`] — `laps` (lap start times, sector and
//! lap durations), `intervals` (gap to the car ahead), `position` (OpenF1's
//! official order changes), `pit` (pit-lane visits) and `session_result` (DNFs).
//! Out: the same [`TrackTimeline`] the [`FrameAssembler`](crate::frames::FrameAssembler)
//! consumes from the position-based track model: every known car's
//! [`CarTrackState`] at the end of every window. Distances, speed and lateral
//! offset are unknown from timing and are `NaN`; the lap length is `NaN`.
//!
//! Per car, at the end `T` of a window (everything with a time `<= T` counts):
//!
//! * **lap**: laps completed + 1, where a lap is completed when the next lap's
//!   `date_start` (or, for the car's last lap, `date_start + lap_duration`) is
//!   reached; `last_lap_s` is the completed lap's `lap_duration`.
//! * **position**: the running order is derived from the timing points each car
//!   has passed — its line crossings and the two intermediate sector ends
//!   (`date_start + duration_sector_1`, `+ duration_sector_2`). Cars are ordered by
//!   the last point passed (further first), then by when they passed it (earlier
//!   first), then by OpenF1's latest official position, then by car number; retired
//!   cars go to the back. Why not OpenF1's `position` table alone: its changes are
//!   sparse (435 records for a 57-lap race) and count pit-stop shuffles at their
//!   own moments, while the laps give every car three timing points a lap, the way
//!   a timing tower orders cars. Before lap 1 starts no car has passed a point and
//!   the official order (the grid) decides.
//! * **interval_s**: the car's latest `intervals` sample, when it is a time and at
//!   most [`STALE_INTERVAL_MS`] old; `None` for a missing (`null`) or lapped
//!   (`+1 LAP`) sample, a stale one, the leader, and a retired car.
//! * **gap_to_leader_s**: the intervals summed down the running order from P2;
//!   `None` from the first car whose interval is unknown on (and for the leader).
//!   The reshaped Bahrain intervals dropped OpenF1's own `gap_to_leader`.
//! * **in_pit**: from a pit row's `date` for `pit_duration` seconds. OpenF1
//!   documents `date` as the moment of the pit event and `pit_duration` as the time
//!   "from entering to leaving the pit lane", so `date` is read as the pit-lane
//!   entry — the same reading as [`PitStop::to_events`], so the frames' `in_pit`
//!   and their pit in/out events agree. Without a duration the car stays in.
//! * **stopped** (the frame's `retired`): a car the session result marks `dnf`,
//!   from just after its last timing data (lap point or interval sample).
//!
//! The race is under way from the window holding the earliest lap-1 `date_start`.
//! Everything is a function of the tables, so the timeline is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pitwall_engine::EventTime;

use crate::error::RaceDataError;
use crate::frames::TrackTimeline;
use crate::openf1::{self, PitStop, SessionResult};
use crate::timing::{self, Gap, Interval, Lap, Position};
use crate::track::CarTrackState;

/// An interval sample older than this is not shown (OpenF1 publishes one about
/// every 4 s per car; mid-race gaps of up to 31 s occur in Bahrain 2024, around
/// pit stops and at the leader's line crossings, so 60 s only hides a feed that
/// has really stopped — e.g. a car that finished or retired).
pub const STALE_INTERVAL_MS: i64 = 60_000;

/// Where a session folder keeps its timing tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingFiles {
    /// OpenF1 `laps` (CSV or JSON) or the reshaped `rel_lap_data.json`.
    pub laps: PathBuf,
    /// OpenF1 `intervals` (CSV or JSON) or the reshaped `interval_data.json`.
    pub intervals: PathBuf,
    /// Whether `intervals` is the reshaped form (`[t, interval]` pairs, `t` in
    /// seconds after lap 1's start).
    pub reshaped_intervals: bool,
    /// OpenF1 `position` (CSV or JSON; the Bahrain copy is `intial_positions.json`).
    pub positions: Option<PathBuf>,
}

/// The first of `names` (each also tried with `.gz`) that is a file in `dir`.
fn first_file(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))])
        .find(|p| p.is_file())
}

impl TimingFiles {
    /// The timing tables of `dir`, if it has laps and intervals: the OpenF1 names
    /// (`laps`, `intervals`, `position`, also `openf1_`-prefixed, `.csv` or
    /// `.json`) or the reshaped Bahrain names; any of them may be gzipped.
    pub fn find(dir: &Path) -> Option<TimingFiles> {
        let laps = first_file(
            dir,
            &[
                "openf1_laps.csv",
                "laps.csv",
                "openf1_laps.json",
                "laps.json",
                "rel_lap_data.json",
            ],
        )?;
        let native = first_file(
            dir,
            &[
                "openf1_intervals.csv",
                "intervals.csv",
                "openf1_intervals.json",
                "intervals.json",
            ],
        );
        let (intervals, reshaped_intervals) = match native {
            Some(p) => (p, false),
            None => (first_file(dir, &["interval_data.json"])?, true),
        };
        let positions = first_file(
            dir,
            &[
                "openf1_position.csv",
                "position.csv",
                "openf1_position.json",
                "position.json",
                "intial_positions.json",
            ],
        );
        Some(TimingFiles {
            laps,
            intervals,
            reshaped_intervals,
            positions,
        })
    }
}

/// The tables a timing timeline is built from, read from one session folder.
#[derive(Debug, Clone, Default)]
pub struct TimingTables {
    pub laps: Vec<Lap>,
    pub intervals: Vec<Interval>,
    pub positions: Vec<Position>,
    pub pits: Vec<PitStop>,
    pub results: Vec<SessionResult>,
}

impl TimingTables {
    /// Reads the folder's timing tables ([`TimingFiles::find`]) plus its OpenF1
    /// `pit` and `session_result` tables when present. The reshaped intervals are
    /// timed from the earliest lap-1 `date_start` (the instant the source asked
    /// OpenF1 for intervals after — for Bahrain
    /// [`timing::BAHRAIN_2024_INTERVAL_EPOCH_MS`]).
    ///
    /// Errors: no laps or intervals ([`RaceDataError::Missing`]), reshaped
    /// intervals without a lap-1 start, or an unreadable or malformed file.
    pub fn read(dir: &Path) -> Result<TimingTables, RaceDataError> {
        let files = TimingFiles::find(dir).ok_or_else(|| RaceDataError::Missing {
            path: dir.to_path_buf(),
            reason: "no OpenF1 timing tables (laps and intervals, or the reshaped \
                     rel_lap_data.json and interval_data.json)"
                .into(),
        })?;
        let laps = if files.laps.to_string_lossy().contains("rel_lap_data") {
            timing::read_rel_lap_data(&files.laps)?
        } else {
            timing::read_laps(&files.laps)?
        };
        let intervals = if files.reshaped_intervals {
            let epoch = race_start(&laps).ok_or_else(|| RaceDataError::Missing {
                path: files.laps.clone(),
                reason: "no lap 1 with a start time, which the reshaped intervals are timed from"
                    .into(),
            })?;
            timing::read_interval_data(&files.intervals, epoch)?
        } else {
            timing::read_intervals(&files.intervals)?
        };
        let positions = match &files.positions {
            Some(p) => timing::read_positions(p)?,
            None => Vec::new(),
        };
        let pits = match openf1::table_file(dir, "pit") {
            Some(p) => openf1::read_pit(p)?,
            None => Vec::new(),
        };
        let results = match openf1::table_file(dir, "session_result") {
            Some(p) => openf1::read_session_result(p)?,
            None => Vec::new(),
        };
        Ok(TimingTables {
            laps,
            intervals,
            positions,
            pits,
            results,
        })
    }

    /// The earliest lap-1 `date_start`: the race start.
    pub fn race_start(&self) -> Option<EventTime> {
        race_start(&self.laps)
    }

    /// Every car in the laps, intervals or positions (the cars every frame shows).
    pub fn cars(&self) -> BTreeSet<u32> {
        self.laps
            .iter()
            .map(|l| l.driver_number)
            .chain(self.intervals.iter().map(|i| i.driver_number))
            .chain(self.positions.iter().map(|p| p.driver_number))
            .collect()
    }

    /// The timeline at the end of every `window_ms` window from the first timing
    /// record on (module doc); `None` when the tables hold no car.
    pub fn timeline(&self, window_ms: i64) -> Option<TrackTimeline> {
        let window_ms = window_ms.max(1);
        let cars: Vec<CarTiming> = self
            .cars()
            .into_iter()
            .map(|car| CarTiming::new(car, self))
            .collect();
        if cars.is_empty() {
            return None;
        }
        let ws = |t: EventTime| t - t.rem_euclid(window_ms);
        // The state only changes at these instants, so a snapshot at the end of
        // each window holding one is the state of every later window up to the
        // next (which `TrackTimeline::at` looks up).
        let mut changes = BTreeSet::new();
        for c in &cars {
            changes.extend(c.points.iter().map(|p| ws(p.ts)));
            for &(t, _) in &c.intervals {
                changes.insert(ws(t));
                changes.insert(ws(t + STALE_INTERVAL_MS + 1));
            }
            changes.extend(c.official.iter().map(|&(t, _)| ws(t)));
            for &(a, b) in &c.pits {
                changes.insert(ws(a));
                if let Some(b) = b {
                    changes.insert(ws(b));
                }
            }
            if let Some(t) = c.retired_after {
                changes.insert(ws(t + 1));
            }
        }
        let under_way_from = self.race_start().map(ws);
        changes.extend(under_way_from);
        let by_window = changes
            .into_iter()
            .map(|w| (w, snapshot(&cars, w + window_ms - 1)))
            .collect::<BTreeMap<_, _>>();
        Some(TrackTimeline::from_windows(
            by_window,
            f64::NAN,
            under_way_from,
        ))
    }
}

fn race_start(laps: &[Lap]) -> Option<EventTime> {
    laps.iter()
        .filter(|l| l.lap_number == 1)
        .filter_map(|l| l.date_start)
        .min()
}

/// A place on the lap a car's timing says it passed: the start of `lap`
/// (`seg` 0) or the end of its sector `seg` (1, 2).
#[derive(Debug, Clone, Copy)]
struct TimingPoint {
    ts: EventTime,
    lap: u32,
    seg: u8,
}

/// One car's timing, as time-ordered runs.
struct CarTiming {
    car: u32,
    /// Passed points, strictly increasing in (lap, seg) and in time.
    points: Vec<TimingPoint>,
    /// Lap number → its duration (s).
    durations: BTreeMap<u32, f64>,
    intervals: Vec<(EventTime, Gap)>,
    /// OpenF1 position changes.
    official: Vec<(EventTime, u32)>,
    /// Pit-lane entry and exit (none: did not come out).
    pits: Vec<(EventTime, Option<EventTime>)>,
    /// For a DNF: the time of its last timing data.
    retired_after: Option<EventTime>,
}

fn secs_ms(s: f64) -> Option<i64> {
    (0.0..1.0e7)
        .contains(&s)
        .then(|| (s * 1000.0).round() as i64)
}

impl CarTiming {
    fn new(car: u32, t: &TimingTables) -> Self {
        let mut laps: Vec<&Lap> = t.laps.iter().filter(|l| l.driver_number == car).collect();
        laps.sort_by_key(|l| l.lap_number);
        let mut points = Vec::new();
        let mut durations = BTreeMap::new();
        for (i, l) in laps.iter().enumerate() {
            if let Some(d) = l.lap_duration.filter(|d| d.is_finite()) {
                durations.insert(l.lap_number, d);
            }
            let Some(start) = l.date_start else { continue };
            points.push(TimingPoint {
                ts: start,
                lap: l.lap_number,
                seg: 0,
            });
            let s1 = l.duration_sector_1.and_then(secs_ms);
            let s2 = l.duration_sector_2.and_then(secs_ms);
            if let Some(s1) = s1 {
                points.push(TimingPoint {
                    ts: start + s1,
                    lap: l.lap_number,
                    seg: 1,
                });
                if let Some(s2) = s2 {
                    points.push(TimingPoint {
                        ts: start + s1 + s2,
                        lap: l.lap_number,
                        seg: 2,
                    });
                }
            }
            // The last lap's end is the only crossing no lap start records.
            let next_recorded = laps
                .get(i + 1)
                .is_some_and(|n| n.lap_number == l.lap_number + 1 && n.date_start.is_some());
            if !next_recorded && let Some(d) = l.lap_duration.and_then(secs_ms) {
                points.push(TimingPoint {
                    ts: start + d,
                    lap: l.lap_number + 1,
                    seg: 0,
                });
            }
        }
        // Keep only progress: a point out of order (bad sector sums) is dropped.
        points.sort_by_key(|p| (p.ts, p.lap, p.seg));
        let mut kept: Vec<TimingPoint> = Vec::with_capacity(points.len());
        for p in points {
            if kept
                .last()
                .is_none_or(|q| (p.lap, p.seg) > (q.lap, q.seg) && p.ts >= q.ts)
            {
                kept.push(p);
            }
        }
        let intervals: Vec<(EventTime, Gap)> = t
            .intervals
            .iter()
            .filter(|i| i.driver_number == car)
            .map(|i| (i.ts, i.interval))
            .collect();
        let official = t
            .positions
            .iter()
            .filter(|p| p.driver_number == car)
            .map(|p| (p.ts, p.position))
            .collect();
        let mut pits: Vec<(EventTime, Option<EventTime>)> = t
            .pits
            .iter()
            .filter(|p| p.driver_number == car)
            .map(|p| (p.ts, p.pit_duration.and_then(secs_ms).map(|d| p.ts + d)))
            .collect();
        pits.sort();
        let dnf = t.results.iter().any(|r| r.driver_number == car && r.dnf);
        let last_data = kept
            .last()
            .map(|p| p.ts)
            .into_iter()
            .chain(intervals.last().map(|i| i.0))
            .max();
        CarTiming {
            car,
            points: kept,
            durations,
            intervals,
            official,
            pits,
            retired_after: if dnf { last_data } else { None },
        }
    }

    /// The latest entry of a time-ordered run at or before `t`.
    fn latest<T: Copy>(run: &[(EventTime, T)], t: EventTime) -> Option<(EventTime, T)> {
        run[..run.partition_point(|r| r.0 <= t)].last().copied()
    }
}

/// One car at time `t`, before the order is known.
struct Raw {
    state: CarTrackState,
    /// (lap, seg, time) of the last point passed.
    progress: Option<(u32, u8, EventTime)>,
    official: Option<u32>,
    /// The interval sample as shown (fresh, in seconds).
    interval: Option<f64>,
}

fn raw_state(c: &CarTiming, t: EventTime) -> Raw {
    let passed = &c.points[..c.points.partition_point(|p| p.ts <= t)];
    let progress = passed.last().map(|p| (p.lap, p.seg, p.ts));
    let laps_completed = progress.map_or(0, |(lap, _, _)| lap.saturating_sub(1));
    let interval_sample = CarTiming::latest(&c.intervals, t);
    let official = CarTiming::latest(&c.official, t);
    let retired = c.retired_after.is_some_and(|r| t > r);
    let interval = interval_sample
        .filter(|(ts, _)| t - ts <= STALE_INTERVAL_MS)
        .and_then(|(_, g)| g.seconds())
        .filter(|_| !retired);
    let in_pit = c
        .pits
        .iter()
        .any(|&(a, b)| a <= t && b.is_none_or(|b| t < b));
    let ts_ms = [
        progress.map(|p| p.2),
        interval_sample.map(|i| i.0),
        official.map(|o| o.0),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(t);
    Raw {
        state: CarTrackState {
            car: c.car,
            ts_ms,
            lap: laps_completed + 1,
            laps_completed,
            lap_distance_m: f64::NAN,
            total_distance_m: f64::NAN,
            speed_kmh: f64::NAN,
            lateral_m: f64::NAN,
            position: 0,
            gap_to_leader_s: None,
            interval_s: None,
            in_pit,
            last_lap_s: (laps_completed >= 1)
                .then(|| c.durations.get(&laps_completed).copied())
                .flatten(),
            stationary_s: 0.0,
            stopped: retired,
        },
        progress,
        official: official.map(|o| o.1),
        interval,
    }
}

/// Every car's state at `t`, in car-number order, with the running order applied.
fn snapshot(cars: &[CarTiming], t: EventTime) -> Vec<CarTrackState> {
    let mut raw: Vec<Raw> = cars.iter().map(|c| raw_state(c, t)).collect();
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&raw[a], &raw[b]);
        a.state
            .stopped
            .cmp(&b.state.stopped)
            // Further along first: more laps, then a later point of the lap.
            .then_with(|| {
                let key = |r: &Raw| r.progress.map(|(lap, seg, _)| (lap, seg));
                key(b).cmp(&key(a))
            })
            // Then whoever got there first.
            .then_with(|| {
                let ts = |r: &Raw| r.progress.map_or(EventTime::MAX, |p| p.2);
                ts(a).cmp(&ts(b))
            })
            .then_with(|| {
                let off = |r: &Raw| r.official.unwrap_or(u32::MAX);
                off(a).cmp(&off(b))
            })
            .then_with(|| a.state.car.cmp(&b.state.car))
    });
    let mut gap = Some(0.0);
    for (rank, &i) in order.iter().enumerate() {
        let r = &mut raw[i];
        r.state.position = rank as u32 + 1;
        if rank == 0 {
            continue;
        }
        r.state.interval_s = r.interval;
        gap = gap.zip(r.interval).map(|(g, i)| g + i);
        r.state.gap_to_leader_s = gap;
    }
    raw.into_iter().map(|r| r.state).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lap(car: u32, n: u32, start: i64, s: [f64; 3]) -> Lap {
        Lap {
            driver_number: car,
            lap_number: n,
            date_start: Some(start),
            duration_sector_1: Some(s[0]),
            duration_sector_2: Some(s[1]),
            duration_sector_3: Some(s[2]),
            lap_duration: Some(s.iter().sum()),
            ..Lap::default()
        }
    }

    fn interval(car: u32, ts: i64, gap: Gap) -> Interval {
        Interval {
            ts,
            meeting_key: None,
            session_key: None,
            driver_number: car,
            gap_to_leader: Gap::None,
            interval: gap,
        }
    }

    /// Two cars, two laps each from t = 10 s: car 2 is quicker in sector 1 of
    /// lap 1 and takes the lead there; car 1 pits at 40 s; car 2 retires.
    fn tables() -> TimingTables {
        TimingTables {
            laps: vec![
                lap(1, 1, 10_000, [10.0, 10.0, 10.0]),
                lap(1, 2, 40_000, [10.0, 10.0, 10.0]),
                lap(2, 1, 10_000, [9.0, 10.0, 10.0]),
                lap(2, 2, 39_000, [10.0, 10.0, 10.0]),
            ],
            intervals: vec![
                interval(1, 19_500, Gap::Seconds(0.9)),
                interval(1, 45_000, Gap::None),
                interval(2, 12_000, Gap::Seconds(0.4)),
            ],
            positions: vec![
                Position {
                    ts: 1_000,
                    meeting_key: None,
                    session_key: None,
                    driver_number: 1,
                    position: 1,
                },
                Position {
                    ts: 1_000,
                    meeting_key: None,
                    session_key: None,
                    driver_number: 2,
                    position: 2,
                },
            ],
            pits: vec![PitStop {
                ts: 40_500,
                meeting_key: None,
                session_key: None,
                driver_number: 1,
                lap_number: Some(2),
                pit_duration: Some(20.0),
                line: 2,
            }],
            results: vec![SessionResult {
                position: None,
                driver_number: 2,
                number_of_laps: Some(2),
                dnf: true,
                dns: false,
                dsq: false,
                duration: None,
                gap_to_leader: Gap::None,
                points: None,
                meeting_key: None,
                session_key: None,
            }],
        }
    }

    fn car(tl: &TrackTimeline, ws: i64, car: u32) -> CarTrackState {
        tl.at(ws)
            .unwrap()
            .iter()
            .find(|c| c.car == car)
            .unwrap()
            .clone()
    }

    #[test]
    fn order_laps_intervals_pits_and_retirement_from_timing() {
        let tl = tables().timeline(1000).unwrap();
        // On the grid: the official order, lap 1, not under way.
        assert!(!tl.under_way(1000));
        assert_eq!(car(&tl, 1000, 1).position, 1);
        assert_eq!(car(&tl, 1000, 2).lap, 1);
        assert!(tl.under_way(10_000));
        // Both start lap 1 at the same instant: the official order breaks the tie.
        assert_eq!(car(&tl, 10_000, 1).position, 1);
        // Car 2 ends sector 1 first (19 s against 20 s) and leads.
        let c2 = car(&tl, 19_000, 2);
        assert_eq!((c2.position, c2.interval_s), (1, None));
        let c1 = car(&tl, 19_000, 1);
        assert_eq!(c1.position, 2);
        // Car 1's only interval sample so far is at 19.5 s: shown from its window.
        assert_eq!(c1.interval_s, Some(0.9));
        assert_eq!(c1.gap_to_leader_s, Some(0.9));
        // Car 1 completes lap 1 at 40 s; its last lap is 30 s.
        let c1 = car(&tl, 40_000, 1);
        assert_eq!(
            (c1.lap, c1.laps_completed, c1.last_lap_s),
            (2, 1, Some(30.0))
        );
        // In the pit lane from 40.5 s for 20 s.
        assert!(c1.in_pit && car(&tl, 59_000, 1).in_pit && !car(&tl, 60_000, 1).in_pit);
        // A null sample hides the interval; so does age.
        assert_eq!(car(&tl, 45_000, 1).interval_s, None);
        // Car 2 finishes lap 2 at 69 s, its last data; retired after, at the back.
        let c2 = car(&tl, 69_000, 2);
        assert!(c2.stopped && c2.position == 2 && c2.lap == 3);
        assert_eq!(car(&tl, 69_000, 1).position, 1);
        assert!(!car(&tl, 68_000, 2).stopped);
        // Every car in every window, distances unknown.
        assert_eq!(tl.at(50_000).unwrap().len(), 2);
        assert!(car(&tl, 50_000, 1).total_distance_m.is_nan());
        assert!(tl.lap_length_m.is_nan());
    }

    #[test]
    fn stale_interval_disappears_after_a_minute() {
        let mut t = tables();
        t.results.clear();
        t.pits.clear();
        // Car 2 runs behind car 1 all along; its one sample is at 21.5 s.
        t.intervals = vec![interval(2, 21_500, Gap::Seconds(1.5))];
        t.laps.retain(|l| l.lap_number == 1);
        t.laps[1] = lap(2, 1, 10_000, [11.0, 10.0, 10.0]);
        let tl = t.timeline(1000).unwrap();
        let last_fresh = 21_000 + STALE_INTERVAL_MS - 1000;
        assert_eq!(car(&tl, last_fresh, 2).position, 2);
        assert_eq!(car(&tl, last_fresh, 2).interval_s, Some(1.5));
        assert_eq!(car(&tl, last_fresh + 1000, 2).interval_s, None);
    }

    #[test]
    fn no_tables_no_timeline() {
        assert!(TimingTables::default().timeline(1000).is_none());
        let tmp = tempfile::tempdir().unwrap();
        assert!(TimingFiles::find(tmp.path()).is_none());
        assert!(matches!(
            TimingTables::read(tmp.path()),
            Err(RaceDataError::Missing { .. })
        ));
    }
}
