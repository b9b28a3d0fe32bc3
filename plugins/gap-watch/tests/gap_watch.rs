use pitwall_plugin_gap_watch::GapWatch;
use pitwall_plugin_sdk::testing::{Harness, car, frame};
use pitwall_plugin_sdk::{InsightsData, frame::RaceFrameData};

/// Car 4 (P2) behind car 1 (P1) at the given interval, car 16 (P3) far behind.
fn window(seq: u64, interval: f64) -> RaceFrameData {
    frame(
        seq,
        vec![car(1, 1, f64::NAN), car(4, 2, interval), car(16, 3, 9.0)],
    )
}

fn run(h: &mut Harness<GapWatch>, intervals: &[f64]) -> Vec<InsightsData> {
    intervals
        .iter()
        .enumerate()
        .map(|(i, &iv)| h.run(&window(i as u64, iv)).unwrap())
        .collect()
}

#[test]
fn a_steady_chase_is_told_once() {
    let mut h = Harness::<GapWatch>::new();
    let replies = run(&mut h, &[1.6, 1.4, 1.2, 1.0, 0.8, 0.6, 0.5]);
    let told: Vec<usize> = (0..replies.len())
        .filter(|&i| !replies[i].stories.is_empty())
        .collect();
    // Five shrinking windows are needed; then the cooldown keeps it quiet.
    assert_eq!(told, [4]);
    let s = &replies[4].stories[0];
    assert_eq!(s.kind(), "catching");
    assert_eq!(s.cars(), ["4", "1"]);
    assert_eq!(
        s.headline(),
        "#4 is closing on #1: 0.8 s, 0.8 s closer in 4 s"
    );
    assert_eq!(s.evidence()[0], ("interval_s".to_string(), 0.8));
    assert!((s.evidence()[1].1 - 0.8).abs() < 1e-9);
    assert!(
        s.importance() > 0.5,
        "a fight for the lead matters: {}",
        s.importance()
    );
}

#[test]
fn noise_jumps_and_wide_gaps_are_not_chases() {
    let mut h = Harness::<GapWatch>::new();
    // Shrinks overall but grows once: not steady.
    assert!(
        run(&mut h, &[1.6, 1.4, 1.5, 1.0, 0.8])
            .iter()
            .all(|r| r.stories.is_empty())
    );
    let mut h = Harness::<GapWatch>::new();
    // A 3 s jump in one window is a timing artefact.
    assert!(
        run(&mut h, &[5.0, 1.9, 1.7, 1.5, 1.3])
            .iter()
            .all(|r| r.stories.is_empty())
    );
    let mut h = Harness::<GapWatch>::new();
    // Steady but too far apart to be a story.
    assert!(
        run(&mut h, &[6.0, 5.8, 5.6, 5.4, 5.2])
            .iter()
            .all(|r| r.stories.is_empty())
    );
}

#[test]
fn a_safety_car_resets_the_watch() {
    let mut h = Harness::<GapWatch>::new();
    for (i, iv) in [1.6, 1.4, 1.2, 1.0].into_iter().enumerate() {
        let mut f = window(i as u64, iv);
        if i == 2 {
            f.race.safety_car = true;
        }
        assert!(h.run(&f).unwrap().stories.is_empty());
    }
    // Only two clean windows since the SC: still nothing.
    assert!(h.run(&window(4, 0.8)).unwrap().stories.is_empty());
}

#[test]
fn parameters_retune_it_without_new_code() {
    let mut h = Harness::<GapWatch>::new();
    h.set_params_json(&serde_json::json!({"windows": 3, "min_closing_s": 0.1}));
    let replies = run(&mut h, &[1.6, 1.5, 1.4]);
    assert_eq!(replies[2].stories.len(), 1);
    // Unknown fields are refused, logged, and the defaults used.
    let mut h = Harness::<GapWatch>::new();
    h.set_params(br#"{"window": 3}"#.to_vec());
    assert!(
        run(&mut h, &[1.6, 1.5, 1.4])
            .iter()
            .all(|r| r.stories.is_empty())
    );
    assert!(
        h.logs().iter().any(|(_, m)| m.contains("unknown field")),
        "{:?}",
        h.logs()
    );
}

#[test]
fn the_real_race_start_has_chases() {
    let mut h = Harness::<GapWatch>::new();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/austria-2024-start.pwrf"
    );
    let replies = h.run_file(path).unwrap();
    assert_eq!(replies.len(), 90);
    let stories: Vec<_> = replies.iter().flat_map(|r| &r.stories).collect();
    assert!(stories.len() >= 5, "{} stories", stories.len());
    for s in stories {
        let ev = |n: &str| s.evidence().iter().find(|(k, _)| k == n).unwrap().1;
        assert!(ev("interval_s") <= 3.0 && ev("closed_s") >= 0.3, "{s:?}");
        assert!(ev("closed_s") <= 4.0 + 1e-9, "at most 1 s a window: {s:?}");
    }
    // Deterministic: a second run tells the same stories.
    let mut again = Harness::<GapWatch>::new();
    assert_eq!(again.run_file(path).unwrap(), replies);
}
