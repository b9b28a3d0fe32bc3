use pitwall_plugin_pace::Pace;
use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_plugin_sdk::testing::{Harness, car, frame};

/// Cars 1 and 4 with `speed_mean` aggregates; car 4 optionally in the pit lane.
fn window(seq: u64, s1: f64, s4: f64, pit4: bool) -> RaceFrameData {
    let mut f = frame(seq, vec![car(1, 1, f64::NAN), car(4, 2, 1.0)]);
    f.aggregate_names = vec!["rows".into(), "speed_mean".into()];
    f.cars[0].aggregates = vec![10.0, s1];
    f.cars[1].aggregates = vec![10.0, s4];
    f.cars[1].in_pit = pit4;
    f.cars[1].speed_kmh = 80.0;
    f
}

fn metric(r: &pitwall_plugin_sdk::InsightsData, car: &str, name: &str) -> Option<f64> {
    r.metrics
        .iter()
        .find(|m| m.car() == car && m.name() == name)
        .map(|m| m.value())
}

#[test]
fn rolling_mean_of_the_speed_aggregate() {
    let mut h = Harness::<Pace>::new();
    h.set_params_json(&serde_json::json!({"windows": 3, "min_samples": 2}));
    let r = h.run(&window(0, 200.0, 190.0, false)).unwrap();
    assert!(r.metrics.is_empty(), "one sample is not enough");
    let r = h.run(&window(1, 210.0, 200.0, false)).unwrap();
    assert_eq!(metric(&r, "1", "pace_kmh"), Some(205.0));
    assert_eq!(metric(&r, "4", "pace_kmh"), Some(195.0));
    let r = h.run(&window(2, 220.0, 210.0, false)).unwrap();
    let r = [r, h.run(&window(3, 230.0, 220.0, false)).unwrap()];
    // Only the last three windows count.
    assert_eq!(metric(&r[1], "1", "pace_kmh"), Some(220.0));
    // Relative to the field's median pace before this frame (of two cars, the
    // upper one: car 1's 210), so the faster car is ahead of it.
    assert_eq!(metric(&r[1], "1", "pace_delta_kmh"), Some(220.0 - 210.0));
    assert_eq!(metric(&r[1], "4", "pace_delta_kmh"), Some(210.0 - 210.0));
    assert_eq!(
        r[1].metrics
            .iter()
            .find(|m| m.name() == "pace_kmh")
            .unwrap()
            .unit(),
        "km/h"
    );
}

#[test]
fn pit_lane_and_safety_car_windows_do_not_count() {
    let mut h = Harness::<Pace>::new();
    h.set_params_json(&serde_json::json!({"windows": 2, "min_samples": 2}));
    h.run(&window(0, 200.0, 200.0, false)).unwrap();
    h.run(&window(1, 200.0, 200.0, false)).unwrap();
    // Car 4 crawls down the pit lane at 80 km/h: its pace holds.
    let r = h.run(&window(2, 220.0, 80.0, true)).unwrap();
    assert_eq!(metric(&r, "4", "pace_kmh"), Some(200.0));
    assert_eq!(metric(&r, "1", "pace_kmh"), Some(210.0));
    // Under a VSC nobody's pace moves.
    let mut vsc = window(3, 100.0, 100.0, false);
    vsc.race.virtual_safety_car = true;
    let r = h.run(&vsc).unwrap();
    assert_eq!(metric(&r, "1", "pace_kmh"), Some(210.0));
}

#[test]
fn without_the_aggregate_it_reads_the_track_speed() {
    let mut h = Harness::<Pace>::new();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/austria-2024-start.pwrf"
    );
    let replies = h.run_file(path).unwrap();
    let last = replies.last().unwrap();
    // The real frames carry track state only; every running car gets a pace.
    assert!(
        last.metrics
            .iter()
            .filter(|m| m.name() == "pace_kmh")
            .count()
            >= 18,
        "{last:?}"
    );
    for m in last.metrics.iter().filter(|m| m.name() == "pace_kmh") {
        assert!((60.0..360.0).contains(&m.value()), "{m:?}");
    }
}
