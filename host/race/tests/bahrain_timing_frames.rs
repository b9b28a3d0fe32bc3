//! The bundled 2024 Bahrain GP (`data/2024-bahrain-race`: OpenF1 timing tables,
//! no car positions) as race frames, through `pitwall_race::session::race_frames`
//! — what `pitwall replay --data data/2024-bahrain-race --frames-out` writes —
//! checked against the tables it came from. Runs on a clean clone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use pitwall_plugin_sdk::frame::{Flag, PitEventKind, RaceFrameData};
use pitwall_race::session::{self, SessionKind};
use pitwall_race::time::parse_utc_ms;
use pitwall_race::timing::{self, Gap};
use pitwall_race::{openf1, timing_timeline};

fn bahrain_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/2024-bahrain-race"
    ))
}

fn frames() -> &'static [RaceFrameData] {
    static FRAMES: OnceLock<Vec<RaceFrameData>> = OnceLock::new();
    FRAMES.get_or_init(|| session::race_frames(&bahrain_dir(), 1000).expect("Bahrain replays"))
}

/// Lap 1's start: 2024-03-02T15:03:42Z.
fn race_start() -> i64 {
    timing::BAHRAIN_2024_INTERVAL_EPOCH_MS
}

#[test]
fn bahrain_is_a_timing_session() {
    assert_eq!(
        SessionKind::detect(&bahrain_dir()),
        Some(SessionKind::Timing)
    );
    let t = timing_timeline::TimingTables::read(&bahrain_dir()).unwrap();
    assert_eq!(t.laps.len(), 1129);
    assert_eq!(t.intervals.len(), 29_854);
    assert_eq!(t.positions.len(), 435);
    assert_eq!(t.pits.len(), 43);
    assert_eq!(t.race_start(), Some(race_start()));
    assert_eq!(t.cars().len(), 20);
}

#[test]
fn bahrain_frames_run_57_laps_with_every_car_in_every_frame() {
    let frames = frames();
    assert!(frames.len() > 5000, "{} frames", frames.len());
    for w in frames.windows(2) {
        assert!(w[0].window_start_ms < w[1].window_start_ms);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    for f in frames {
        assert_eq!(f.race.total_laps, 57);
        assert_eq!(f.cars.len(), 20, "window {}", f.window_start_ms);
        let positions: BTreeSet<u8> = f.cars.iter().map(|c| c.position).collect();
        assert_eq!(
            positions,
            (1..=20).collect(),
            "window {}",
            f.window_start_ms
        );
        assert!(f.cars.windows(2).all(|w| w[0].car < w[1].car));
    }
    // The leader's lap counts 1 to 57, then 58 once the winner has taken the flag.
    let laps: BTreeSet<u16> = frames.iter().map(|f| f.race.lap).collect();
    assert_eq!(laps, (1..=58).collect());
    let chequered = frames
        .iter()
        .find(|f| f.race.flag == Flag::Chequered)
        .expect("a chequered flag");
    let finished = frames.iter().find(|f| f.race.lap == 58).unwrap();
    // Car 1's lap 57: 16:33:52.694 + 94.923 s = 16:35:27.617; the flag message
    // is stamped 16:35:26.
    assert_eq!(
        finished.window_start_ms,
        parse_utc_ms("2024-03-02T16:35:27Z").unwrap()
    );
    assert!((finished.window_start_ms - chequered.window_start_ms).abs() <= 2_000);
    let winner = finished.cars.iter().find(|c| c.position == 1).unwrap();
    assert_eq!((winner.car, winner.lap), (1, 58));
    assert!((winner.last_lap_s - 94.923).abs() < 1e-9);
    // Timing knows no distances or speeds.
    assert!(finished.cars.iter().all(|c| c.total_distance_m.is_nan()));
    // Tyres from the stints: car 1 starts on softs aged 3 laps.
    let first = &frames[0];
    let c1 = first.cars.iter().find(|c| c.car == 1).unwrap();
    assert_eq!(c1.tyre_age_laps, 3);
}

#[test]
fn bahrain_order_at_the_flag_is_the_classification() {
    let result =
        openf1::read_session_result(bahrain_dir().join("openf1_session_result.csv")).unwrap();
    let mut classified: Vec<(u32, u16)> = result
        .iter()
        .map(|r| (r.position.unwrap(), r.driver_number as u16))
        .collect();
    classified.sort();
    let classified: Vec<u16> = classified.into_iter().map(|c| c.1).collect();
    let last = frames().last().unwrap();
    let mut order: Vec<_> = last.cars.iter().collect();
    order.sort_by_key(|c| c.position);
    let order: Vec<u16> = order.iter().map(|c| c.car).collect();
    assert_eq!(order, classified);
    // Laps completed agree too (lap = laps completed + 1 after the flag).
    for r in &result {
        let c = last
            .cars
            .iter()
            .find(|c| u32::from(c.car) == r.driver_number)
            .unwrap();
        assert_eq!(
            Some(u32::from(c.lap) - 1),
            r.number_of_laps,
            "car {}",
            c.car
        );
    }
}

#[test]
fn bahrain_frame_intervals_are_the_interval_samples() {
    let samples =
        timing::read_interval_data(bahrain_dir().join("interval_data.json.gz"), race_start())
            .unwrap();
    // The last sample of each car in each window is what that window's frame shows.
    let mut last: BTreeMap<(i64, u16), Gap> = BTreeMap::new();
    for s in &samples {
        last.insert(
            (s.ts - s.ts.rem_euclid(1000), s.driver_number as u16),
            s.interval,
        );
    }
    let by_window: BTreeMap<i64, &RaceFrameData> =
        frames().iter().map(|f| (f.window_start_ms, f)).collect();
    let (mut times, mut missing) = (0, 0);
    for ((ws, car), gap) in last {
        let f = by_window
            .get(&ws)
            .expect("a frame for every window with a sample");
        let c = f.cars.iter().find(|c| c.car == car).unwrap();
        if c.position == 1 {
            // The leader has no car ahead.
            assert!(c.interval_s.is_nan() && c.gap_to_leader_s.is_nan());
            continue;
        }
        match gap {
            Gap::Seconds(s) => {
                assert_eq!(c.interval_s, s, "car {car} in window {ws}");
                times += 1;
            }
            _ => {
                assert!(c.interval_s.is_nan(), "car {car} in window {ws}");
                missing += 1;
            }
        }
    }
    assert!(times > 25_000, "{times} interval samples compared");
    assert!(missing > 400, "{missing} null samples compared");
    // The gap to the leader sums the intervals down the order.
    let f = by_window[&parse_utc_ms("2024-03-02T16:00:00Z").unwrap()];
    let mut order: Vec<_> = f.cars.iter().collect();
    order.sort_by_key(|c| c.position);
    let mut sum = 0.0;
    for c in &order[1..] {
        sum += c.interval_s;
        if sum.is_finite() {
            assert!((c.gap_to_leader_s - sum).abs() < 1e-9, "car {}", c.car);
        } else {
            assert!(c.gap_to_leader_s.is_nan());
        }
    }
    assert!(order[1].gap_to_leader_s.is_finite());
}

#[test]
fn bahrain_pit_events_are_the_pit_table() {
    let table = openf1::read_pit(bahrain_dir().join("openf1_pit.csv")).unwrap();
    let mut expected: Vec<(i64, u16, bool)> = table
        .iter()
        .flat_map(|p| p.to_events())
        .map(|e| {
            let car: u16 = e.car.as_deref().unwrap().parse().unwrap();
            let is_in = e.kind == pitwall_engine::broadcast::EventKind::PitIn;
            (e.ts, car, is_in)
        })
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 86);
    let mut seen: Vec<(i64, u16, bool)> = frames()
        .iter()
        .flat_map(|f| &f.race.pit_events)
        .map(|e| (e.ts_ms, e.car, e.kind == PitEventKind::PitIn))
        .collect();
    seen.sort();
    assert_eq!(seen.len(), expected.len());
    // Each at its own time — or, when no timing row followed it in its window (the
    // engine hands an event over with the next row), at the next window's start.
    let mut exact = 0;
    for (s, e) in seen.iter().zip(&expected) {
        assert_eq!((s.1, s.2), (e.1, e.2), "{s:?} against {e:?}");
        assert!((0..1000).contains(&(s.0 - e.0)), "{s:?} against {e:?}");
        if s.0 == e.0 {
            exact += 1;
        } else {
            assert_eq!(s.0 % 1000, 0, "late only to a window start: {s:?}");
        }
    }
    assert!(exact >= 80, "{exact} of 86 exact");
    // In the pit lane between the two, in the frames' car state as well.
    let stop = &table[0];
    let exit = stop.ts + (stop.pit_duration.unwrap() * 1000.0).round() as i64;
    for f in frames() {
        let c = f
            .cars
            .iter()
            .find(|c| u32::from(c.car) == stop.driver_number)
            .unwrap();
        let end = f.window_end_ms - 1;
        if end >= stop.ts && end < exit {
            assert!(c.in_pit, "window {}", f.window_start_ms);
        }
    }
    // Completed stops are counted: car 1 stopped twice.
    let last = frames().last().unwrap();
    let c1 = last.cars.iter().find(|c| c.car == 1).unwrap();
    assert_eq!(c1.pit_stops, 2);
}

#[test]
fn bahrain_is_under_way_from_lap_one() {
    let frames = frames();
    let before: Vec<_> = frames
        .iter()
        .filter(|f| f.window_start_ms < race_start())
        .collect();
    // The grid snapshot of the position table, an hour before the start.
    assert!(!before.is_empty());
    for f in &before {
        assert!(!f.race.under_way, "window {}", f.window_start_ms);
        assert!(f.cars.iter().all(|c| c.lap == 1 && c.last_lap_s.is_nan()));
    }
    // The grid order is OpenF1's: car 1 on pole.
    let grid = before[0].cars.iter().find(|c| c.position == 1).unwrap();
    assert_eq!(grid.car, 1);
    assert!(
        frames
            .iter()
            .filter(|f| f.window_start_ms >= race_start())
            .all(|f| f.race.under_way)
    );
}

#[test]
fn bahrain_frames_are_deterministic() {
    let again = session::race_frames(&bahrain_dir(), 1000).unwrap();
    let a: Vec<String> = frames().iter().map(|f| f.to_ndjson_line()).collect();
    let b: Vec<String> = again.iter().map(|f| f.to_ndjson_line()).collect();
    assert!(a == b, "two replays must give identical frames");
}

#[test]
fn a_folder_of_neither_kind_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = session::race_frames(tmp.path(), 1000).unwrap_err();
    assert!(
        err.to_string().contains("neither OpenF1 positions"),
        "{err}"
    );
}
