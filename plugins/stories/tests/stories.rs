//! The `stories` plugin through the SDK's native harness, on synthetic frames.

use pitwall_plugin_sdk::InsightsData;
use pitwall_plugin_sdk::frame::{CarFrameData, PitEventData, PitEventKind, RaceFrameData};
use pitwall_plugin_sdk::testing::{Harness, car, frame};
use pitwall_plugin_stories::Stories;

/// A running car: position, gap to the leader (the leader: 0).
fn runner(number: u16, position: u8, gap: f64) -> CarFrameData {
    CarFrameData {
        gap_to_leader_s: if position == 1 { f64::NAN } else { gap },
        lap: 10,
        ..car(number, position, f64::NAN)
    }
}

/// Window `seq` of a race under way on lap 10.
fn race(seq: u64, cars: Vec<CarFrameData>) -> RaceFrameData {
    let mut f = frame(seq, cars);
    f.race.under_way = true;
    f.race.lap = 10;
    f
}

fn kinds(replies: &[InsightsData]) -> Vec<(u64, String, Vec<String>)> {
    replies
        .iter()
        .flat_map(|r| {
            r.stories.iter().map(move |s| {
                (
                    (r.window_start_ms / 1000) as u64,
                    s.kind().to_string(),
                    s.cars().to_vec(),
                )
            })
        })
        .collect()
}

/// #4 runs behind #1 until window 10, then passes and pulls away.
fn a_pass(seq: u64) -> Vec<CarFrameData> {
    let (p1, p4) = if seq < 10 { (1, 2) } else { (2, 1) };
    let lead = if seq < 10 {
        0.5
    } else {
        0.5 + 0.1 * (seq - 9) as f64
    };
    vec![
        runner(1, p1, if p1 == 1 { 0.0 } else { lead }),
        runner(4, p4, if p4 == 1 { 0.0 } else { lead }),
        runner(16, 3, 20.0),
    ]
}

#[test]
fn an_on_track_pass_is_told_once_after_it_holds() {
    let mut h = Harness::<Stories>::new();
    let frames: Vec<_> = (0..30).map(|s| race(s, a_pass(s))).collect();
    let got = kinds(&h.run_all(&frames).unwrap());
    let passes: Vec<_> = got.iter().filter(|k| k.1 == "overtake").collect();
    assert_eq!(passes.len(), 1, "{got:?}");
    let (at, _, cars) = passes[0];
    assert_eq!(cars, &["4", "1"]);
    // Told once the place has held for 5 s, not before.
    assert!((14..=16).contains(at), "{got:?}");
}

#[test]
fn nothing_is_told_before_the_race_is_under_way() {
    let mut h = Harness::<Stories>::new();
    let frames: Vec<_> = (0..30)
        .map(|s| {
            let mut f = race(s, a_pass(s));
            f.race.under_way = false;
            f
        })
        .collect();
    assert!(kinds(&h.run_all(&frames).unwrap()).is_empty());
}

#[test]
fn a_place_lost_to_a_pit_stop_is_a_pit_stop_not_an_overtake() {
    // #1 leads, dives into the pit lane at window 10 (20 s), rejoins behind #4.
    let mut h = Harness::<Stories>::new();
    let frames: Vec<_> = (0..60)
        .map(|s| {
            let pitting = (10..30).contains(&s);
            let (p1, p4) = if s < 12 { (1, 2) } else { (2, 1) };
            let mut one = runner(1, p1, if p1 == 1 { 0.0 } else { 18.0 });
            one.in_pit = pitting;
            one.pit_stops = u8::from(s >= 30);
            let mut f = race(
                s,
                vec![
                    one,
                    runner(4, p4, if p4 == 1 { 0.0 } else { 1.0 }),
                    runner(16, 3, 25.0),
                ],
            );
            if s == 10 || s == 30 {
                f.race.pit_events.push(PitEventData {
                    ts_ms: s as i64 * 1000 + 200,
                    car: 1,
                    kind: if s == 10 {
                        PitEventKind::PitIn
                    } else {
                        PitEventKind::PitOut
                    },
                });
            }
            f
        })
        .collect();
    let replies = h.run_all(&frames).unwrap();
    let got = kinds(&replies);
    assert!(!got.iter().any(|k| k.1 == "overtake"), "{got:?}");
    let stop: Vec<_> = replies
        .iter()
        .flat_map(|r| &r.stories)
        .filter(|s| s.kind() == "pit_stop")
        .collect();
    assert_eq!(stop.len(), 1, "{got:?}");
    assert_eq!(stop[0].cars(), ["1"]);
    let ev = |n: &str| stop[0].evidence().iter().find(|(k, _)| k == n).unwrap().1;
    assert!((ev("pit_lane_s") - 20.0).abs() < 1e-9, "{:?}", stop[0]);
    assert_eq!(ev("positions_lost"), 1.0);
}

#[test]
fn safety_car_deployed_and_ended_once_each() {
    let mut h = Harness::<Stories>::new();
    let frames: Vec<_> = (0..40)
        .map(|s| {
            let mut f = race(s, vec![runner(1, 1, 0.0), runner(4, 2, 1.5)]);
            f.race.safety_car = (10..25).contains(&s);
            f
        })
        .collect();
    let got = kinds(&h.run_all(&frames).unwrap());
    let sc: Vec<_> = got
        .iter()
        .map(|(t, k, _)| (*t, k.as_str()))
        .filter(|(_, k)| k.starts_with("safety_car"))
        .collect();
    assert_eq!(sc, [(10, "safety_car_deployed"), (25, "safety_car_ended")]);
}

#[test]
fn commentary_is_rate_limited_and_facts_are_not() {
    // Eight cars set a fastest lap in turn, one a window: the bucket (burst
    // 2, 1 a minute) lets two through; a safety car in the same windows is
    // told regardless. A fastest lap by the same car again is a duplicate.
    let mut h = Harness::<Stories>::new();
    h.set_params_json(&serde_json::json!({
        "limit": {"burst": 2.0, "per_minute": 1.0}
    }));
    let numbers = [1u16, 4, 10, 16, 44, 55, 63, 81];
    let frames: Vec<_> = (0..8u64)
        .map(|s| {
            let cars = numbers
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let mut c = runner(n, i as u8 + 1, i as f64);
                    if i as u64 <= s {
                        c.last_lap_s = 70.0 - 0.1 * i as f64;
                    }
                    c
                })
                .collect();
            let mut f = race(s, cars);
            f.race.safety_car = s >= 3;
            f
        })
        .collect();
    let got = kinds(&h.run_all(&frames).unwrap());
    let fastest = got.iter().filter(|k| k.1 == "fastest_lap").count();
    assert_eq!(fastest, 2, "{got:?}");
    assert!(got.iter().any(|k| k.1 == "safety_car_deployed"), "{got:?}");
    assert_eq!(h.plugin().limiter().dropped, 6);
}

/// A car on a track model: race distance `d` m (the order follows it).
fn on_track(number: u16, position: u8, d: f64) -> CarFrameData {
    CarFrameData {
        total_distance_m: d,
        ..runner(number, position, f64::NAN)
    }
}

/// #1 and #4 at 60 m/s; #4's distance relative to #1's is `rel(seq)` m.
fn pair(seq: u64, rel: impl Fn(u64) -> f64) -> Vec<CarFrameData> {
    let d1 = 1_000.0 + 60.0 * seq as f64;
    let d4 = d1 + rel(seq);
    let (p1, p4) = if d4 > d1 { (2, 1) } else { (1, 2) };
    vec![
        on_track(1, p1, d1),
        on_track(4, p4, d4),
        on_track(16, 3, 500.0 + 60.0 * seq as f64),
    ]
}

fn overtakes(frames: &[RaceFrameData]) -> Vec<(u64, String, Vec<String>)> {
    let mut h = Harness::<Stories>::new();
    let got = kinds(&h.run_all(frames).unwrap());
    got.into_iter().filter(|k| k.1 == "overtake").collect()
}

#[test]
fn a_clean_pass_read_at_the_timing_loops_is_one_story() {
    // #4 runs 20 m behind #1, then gains 4 m/s from window 10 on.
    let frames: Vec<_> = (0..40)
        .map(|s| race(s, pair(s, |s| -20.0 + 4.0 * s.saturating_sub(10) as f64)))
        .collect();
    let passes = overtakes(&frames);
    assert_eq!(passes.len(), 1, "{passes:?}");
    assert_eq!(passes[0].2, ["4", "1"]);
}

#[test]
fn side_by_side_flapping_is_not_a_pass() {
    // Side by side for 30 s: the 4 Hz-derived order swaps every window
    // (±3 m, a twentieth of a second), then #1 stays ahead.
    let rel = |s: u64| {
        if (10..40).contains(&s) {
            if s.is_multiple_of(2) { 3.0 } else { -3.0 }
        } else {
            -15.0
        }
    };
    let frames: Vec<_> = (0..60).map(|s| race(s, pair(s, rel))).collect();
    let passes = overtakes(&frames);
    assert!(passes.len() <= 1, "{passes:?}");
    assert!(passes.is_empty(), "net nothing changed: {passes:?}");
}

#[test]
fn a_clear_pass_re_passed_is_two_stories() {
    // #4 gets 15 m (0.25 s) ahead for a few seconds, then #1 re-passes.
    let rel = |s: u64| match s {
        0..10 => -15.0,
        10..18 => 15.0,
        _ => -15.0,
    };
    let frames: Vec<_> = (0..50).map(|s| race(s, pair(s, rel))).collect();
    let passes = overtakes(&frames);
    let cars: Vec<_> = passes.iter().map(|p| p.2.clone()).collect();
    assert_eq!(cars, [vec!["4", "1"], vec!["1", "4"]], "{passes:?}");
}
