//! The `battles` plugin through the SDK's native harness, on synthetic frames.

use pitwall_plugin_battles::Battles;
use pitwall_plugin_sdk::InsightsData;
use pitwall_plugin_sdk::frame::{CarFrameData, RaceFrameData};
use pitwall_plugin_sdk::testing::{Harness, car, frame};

/// Window `seq` of a race under way on lap 10: #1 leads, #4 follows at `interval`.
fn race(seq: u64, interval: f64) -> RaceFrameData {
    let lead = CarFrameData {
        lap: 10,
        ..car(1, 1, f64::NAN)
    };
    let chase = CarFrameData {
        lap: 10,
        ..car(4, 2, interval)
    };
    let mut f = frame(seq, vec![lead, chase]);
    f.race.under_way = true;
    f.race.lap = 10;
    f
}

fn stories(replies: &[InsightsData]) -> Vec<(i64, String)> {
    replies
        .iter()
        .flat_map(|r| {
            r.stories
                .iter()
                .map(move |s| (r.window_start_ms / 1000, s.kind().to_string()))
        })
        .collect()
}

fn metric(r: &InsightsData, name: &str) -> Option<f64> {
    r.metrics
        .iter()
        .find(|m| m.car() == "4" && m.name() == name)
        .map(|m| m.value())
}

#[test]
fn a_battle_forms_after_three_windows_and_is_a_live_metric() {
    let mut h = Harness::<Battles>::new();
    let intervals = [2.5, 1.9, 1.8, 1.7, 1.6, 1.5];
    let frames: Vec<_> = intervals
        .iter()
        .enumerate()
        .map(|(i, &x)| race(i as u64, x))
        .collect();
    let replies = h.run_all(&frames).unwrap();
    assert_eq!(stories(&replies), [(3, "battle_formed".to_string())]);
    assert_eq!(metric(&replies[2], "battle_defender"), None);
    let last = replies.last().unwrap();
    assert_eq!(metric(last, "battle_defender"), Some(1.0));
    assert_eq!(metric(last, "battle_interval_s"), Some(1.5));
    // Under the threshold since window 1: 5 s at the end of window 5.
    assert_eq!(metric(last, "battle_duration_s"), Some(5.0));
    assert_eq!(metric(last, "battle_laps"), Some(0.0));
}

#[test]
fn hysteresis_keeps_a_hovering_interval_from_flapping() {
    let mut h = Harness::<Battles>::new();
    // Forms, then hovers between 1.9 and 2.2 s (above 2.0, under 2.3): one
    // battle throughout; then 2.4 s for three windows breaks it.
    let mut intervals = vec![1.8, 1.8, 1.8];
    for i in 0..20 {
        intervals.push(if i % 2 == 0 { 2.2 } else { 1.9 });
    }
    intervals.extend([2.4, 2.4, 2.4, 2.4]);
    let frames: Vec<_> = intervals
        .iter()
        .enumerate()
        .map(|(i, &x)| race(i as u64, x))
        .collect();
    let replies = h.run_all(&frames).unwrap();
    let got = stories(&replies);
    assert_eq!(
        got,
        [
            (2, "battle_formed".to_string()),
            (25, "battle_broken".to_string())
        ]
    );
    let broken = replies[25].stories[0].evidence();
    assert!(broken.contains(&("reason".to_string(), 0.0)), "{broken:?}");
    assert!(metric(&replies[24], "battle_defender").is_some());
    assert!(metric(&replies[25], "battle_defender").is_none());
}

#[test]
fn a_pass_breaks_the_battle_and_a_pit_stop_too() {
    let mut h = Harness::<Battles>::new();
    let mut frames: Vec<_> = (0..5).map(|i| race(i, 1.0)).collect();
    // #4 gets past.
    let mut f = race(5, 0.4);
    f.cars[0].position = 2;
    f.cars[0].interval_s = 0.4;
    f.cars[1].position = 1;
    f.cars[1].interval_s = f64::NAN;
    frames.push(f);
    let replies = h.run_all(&frames).unwrap();
    let last = &replies[5].stories;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].kind(), "battle_broken");
    assert_eq!(last[0].cars(), ["4", "1"]);
    assert!(last[0].evidence().contains(&("reason".to_string(), 1.0)));

    let mut h = Harness::<Battles>::new();
    let mut frames: Vec<_> = (0..5).map(|i| race(i, 1.0)).collect();
    let mut f = race(5, 1.0);
    f.cars[0].in_pit = true;
    frames.push(f);
    let replies = h.run_all(&frames).unwrap();
    assert!(
        replies[5].stories[0]
            .evidence()
            .contains(&("reason".to_string(), 3.0))
    );
}

#[test]
fn no_battle_before_the_start_or_under_a_safety_car() {
    let mut h = Harness::<Battles>::new();
    let frames: Vec<_> = (0..10)
        .map(|i| {
            let mut f = race(i, 1.0);
            f.race.under_way = i >= 5;
            f.race.safety_car = i >= 5;
            f
        })
        .collect();
    let replies = h.run_all(&frames).unwrap();
    assert!(stories(&replies).is_empty());
    assert!(replies.iter().all(|r| r.metrics.is_empty()));
}
