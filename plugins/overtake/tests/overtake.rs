//! The `overtake` plugin through the SDK's native harness, on synthetic frames.

use pitwall_plugin_overtake::model::{self, OvertakeModel, sigmoid};
use pitwall_plugin_overtake::{KIND, Overtake};
use pitwall_plugin_sdk::InsightsData;
use pitwall_plugin_sdk::LogLevel;
use pitwall_plugin_sdk::frame::{CarFrameData, RaceFrameData};
use pitwall_plugin_sdk::testing::{Harness, car, frame};

/// Three running cars on lap `lap`: #1 leads, #4 `gap4` behind it, #16 far back.
fn cars(lap: u16, gap4: f64) -> Vec<CarFrameData> {
    let runner = |n: u16, pos: u8, interval: f64, speed: f32| CarFrameData {
        lap,
        speed_kmh: speed,
        tyre_age_laps: if n == 4 { 3 } else { 15 },
        ..car(n, pos, interval)
    };
    vec![
        runner(1, 1, f64::NAN, 300.0),
        runner(4, 2, gap4, 305.0),
        runner(16, 3, 8.0, 290.0),
    ]
}

/// Window `seq` of a race under way on lap 10 (leader), racing.
fn racing(seq: u64, gap4: f64) -> RaceFrameData {
    let mut f = frame(seq, cars(10, gap4));
    f.race.under_way = true;
    f.race.lap = 10;
    f
}

/// One prediction: window, attacker, defender, probability, contributions.
type Row = (i64, String, String, f64, Vec<(String, f64)>);

fn predictions(replies: &[InsightsData]) -> Vec<Row> {
    replies
        .iter()
        .flat_map(|r| {
            r.predictions.iter().map(move |p| {
                assert_eq!(p.kind(), KIND);
                (
                    r.window_start_ms,
                    p.cars().attacker.clone(),
                    p.cars().defender.clone(),
                    p.probability(),
                    p.contributions().to_vec(),
                )
            })
        })
        .collect()
}

#[test]
fn the_bundled_model_parses_and_validates() {
    let m = model::bundled();
    m.validate().unwrap();
    assert_eq!(m.horizon_laps, 3);
    assert!(
        m.training.samples > 0 && !m.training.races.is_empty(),
        "{:?}",
        m.training
    );
}

#[test]
fn battles_get_a_probability_with_contributions_that_add_up() {
    let mut h = Harness::<Overtake>::new();
    let frames: Vec<_> = (0..30).map(|s| racing(s, 0.6)).collect();
    let got = predictions(&h.run_all(&frames).unwrap());
    // Only #4 on #1 is a battle (#16 is 8 s back), once per window.
    assert_eq!(got.len(), 30);
    for (_, a, d, p, contributions) in &got {
        assert_eq!((a.as_str(), d.as_str()), ("4", "1"));
        assert!((0.0..=1.0).contains(p));
        let logit: f64 = contributions.iter().map(|c| c.1).sum();
        assert!((sigmoid(logit) - p).abs() < 1e-9, "{p} vs {logit}");
        for name in ["base", "interval", "closing", "tyre_age"] {
            assert!(
                contributions.iter().any(|c| c.0 == name),
                "{name}: {contributions:?}"
            );
        }
    }
}

#[test]
fn closer_is_likelier() {
    let p_at = |gap: f64| {
        let mut h = Harness::<Overtake>::new();
        let frames: Vec<_> = (0..10).map(|s| racing(s, gap)).collect();
        predictions(&h.run_all(&frames).unwrap()).last().unwrap().3
    };
    assert!(p_at(0.3) > p_at(1.8), "{} vs {}", p_at(0.3), p_at(1.8));
}

#[test]
fn nothing_before_the_start_under_a_safety_car_or_in_the_pit_lane() {
    let mut h = Harness::<Overtake>::new();
    let mut frames = Vec::new();
    for s in 0..10 {
        let mut f = racing(s, 0.5);
        f.race.under_way = false;
        frames.push(f);
    }
    for s in 10..20 {
        let mut f = racing(s, 0.5);
        f.race.safety_car = true;
        frames.push(f);
    }
    for s in 20..30 {
        let mut f = racing(s, 0.5);
        f.cars.iter_mut().find(|c| c.car == 1).unwrap().in_pit = true;
        frames.push(f);
    }
    assert!(predictions(&h.run_all(&frames).unwrap()).is_empty());
}

#[test]
fn a_new_model_file_is_used_at_once_and_a_bad_one_is_refused() {
    let mut h = Harness::<Overtake>::new();
    let before = predictions(&h.run(&racing(0, 0.6)).map(|r| vec![r]).unwrap())[0].3;
    let mut shifted: OvertakeModel = model::bundled();
    shifted.context.intercept += 2.0;
    h.set_params_json(&shifted);
    let after = predictions(&h.run(&racing(1, 0.6)).map(|r| vec![r]).unwrap())[0].3;
    assert!(after > before, "{after} vs {before}");
    // A file with a feature the plugin does not know: refused, the previous
    // model stays, and the plugin says why.
    let mut bad = shifted.clone();
    bad.baseline.features[0] = "rain_intensity".into();
    h.set_params_json(&bad);
    let still = predictions(&h.run(&racing(2, 0.6)).map(|r| vec![r]).unwrap())[0].3;
    assert!((still - after).abs() < 0.05, "{still} vs {after}");
    let logs = h.take_logs();
    assert!(
        logs.iter()
            .any(|(l, m)| *l == LogLevel::Warn && m.contains("rain_intensity")),
        "{logs:?}"
    );
    // Not JSON at all: refused too.
    h.set_params(b"{not json".to_vec());
    assert!(!predictions(&h.run(&racing(3, 0.6)).map(|r| vec![r]).unwrap()).is_empty());
    assert!(h.take_logs().iter().any(|(l, _)| *l == LogLevel::Warn));
}
