use pitwall_plugin_drs_threat::{DrsThreat, Params};
use pitwall_plugin_sdk::frame::RaceFrameData;
use pitwall_plugin_sdk::testing::{Harness, car, frame};
use pitwall_plugin_sdk::{InsightsData, Prediction};

/// Leader 1, then 4 at `i4` behind it, then 16 at `i16` behind 4.
fn window(seq: u64, i4: f64, i16: f64) -> RaceFrameData {
    frame(
        seq,
        vec![car(1, 1, f64::NAN), car(4, 2, i4), car(16, 3, i16)],
    )
}

fn pred<'a>(r: &'a InsightsData, attacker: &str) -> Option<&'a Prediction> {
    r.predictions.iter().find(|p| p.cars().attacker == attacker)
}

fn contribution(p: &Prediction, name: &str) -> f64 {
    p.contributions().iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn inside_drs_and_closing_is_a_threat() {
    let mut h = Harness::<DrsThreat>::new();
    h.run(&window(0, 0.9, 1.8)).unwrap();
    let r = h.run(&window(1, 0.5, 1.9)).unwrap();
    let close = pred(&r, "4").unwrap();
    assert_eq!(
        (close.kind(), close.cars().defender.as_str()),
        ("p_attack", "1")
    );
    let far = pred(&r, "16").unwrap();
    assert!(
        close.probability() > 0.5 && far.probability() < 0.1,
        "{close:?} {far:?}"
    );
    // The contributions are the log-odds terms, and they add up to p.
    let d = Params::default();
    assert!((contribution(close, "drs") - d.w_drs * 0.5).abs() < 1e-9);
    assert!((contribution(close, "closing") - d.w_closing * 0.4).abs() < 1e-9);
    assert_eq!(contribution(far, "drs"), 0.0);
    assert!(contribution(far, "closing") < 0.0, "16 is dropping back");
    let sum: f64 = close.contributions().iter().map(|(_, v)| v).sum();
    assert!((close.probability() - 1.0 / (1.0 + (-sum).exp())).abs() < 1e-12);
    assert_eq!(close.horizon_laps(), 2);
}

#[test]
fn fresher_tyres_add_to_the_threat() {
    let mut h = Harness::<DrsThreat>::new();
    let mut f = window(0, 0.8, 5.0);
    f.cars[1].tyre_age_laps = 3; // car 4
    f.cars[0].tyre_age_laps = 30; // car 1
    let r = h.run(&f).unwrap();
    assert!(
        (contribution(pred(&r, "4").unwrap(), "tyres") - 0.8).abs() < 1e-9,
        "clamped to 10 laps"
    );
    assert!(pred(&r, "16").is_none(), "5 s behind is not predicted");
}

#[test]
fn parameters_change_the_model_and_the_threshold() {
    let mut h = Harness::<DrsThreat>::new();
    let base = h.run(&window(0, 1.2, 1.5)).unwrap();
    assert_eq!(contribution(pred(&base, "4").unwrap(), "drs"), 0.0);
    h.set_params_json(&serde_json::json!({"drs_threshold_s": 1.5, "horizon_laps": 5}));
    let r = h.run(&window(1, 1.2, 1.5)).unwrap();
    let p = pred(&r, "4").unwrap();
    assert!(
        contribution(p, "drs") > 0.0 && p.probability() > pred(&base, "4").unwrap().probability()
    );
    assert_eq!(p.horizon_laps(), 5);
}

#[test]
fn nothing_under_safety_car_or_in_the_pits() {
    let mut h = Harness::<DrsThreat>::new();
    let mut sc = window(0, 0.4, 0.6);
    sc.race.safety_car = true;
    assert!(h.run(&sc).unwrap().predictions.is_empty());
    let mut pit = window(1, 0.4, 0.6);
    pit.cars[1].in_pit = true; // car 4: both its pairs are off
    let r = h.run(&pit).unwrap();
    assert!(r.predictions.is_empty(), "{r:?}");
}

#[test]
fn real_frames_give_valid_predictions() {
    let mut h = Harness::<DrsThreat>::new();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/austria-2024-start.pwrf"
    );
    let replies = h.run_file(path).unwrap();
    let n: usize = replies.iter().map(|r| r.predictions.len()).sum();
    assert!(n > 50, "{n}");
}
