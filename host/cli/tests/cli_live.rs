//! The live REST views through the real binary: `pitwall run --listen` replays
//! the bundled race (2024 Austrian GP) through the shipped plugins and serves
//! `/live-battles`, `/predict`, `/burn-bar`, `/telemetry/live`.
//!
//! No timed assertions: during the race the test polls `/predict` and
//! `/live-battles` and checks every answer it gets (the overtake plugin
//! predicts in almost every window, so it sees some); after the race (`--stay`)
//! it checks the final state.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{get, serve};

use serde_json::Value;

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// A prediction as `/predict` and `/live-battles` give it.
fn check_prediction(p: &Value) {
    let prob = num(&p["probability"], "probability");
    assert!((0.0..=1.0).contains(&prob), "{p}");
    assert_eq!(p["kind"], "p_overtake", "{p}");
    assert_ne!(p["attacker"], p["defender"], "{p}");
    let terms = p["contributions"].as_array().expect("contributions");
    assert!(!terms.is_empty(), "{p}");
    for t in terms {
        assert!(t["name"].is_string(), "{t}");
        num(&t["value"], "contribution");
    }
    let prov = &p["provenance"];
    assert!(
        prov["plugin"].as_str().unwrap().starts_with("overtake@"),
        "{p}"
    );
    assert!(!prov["model_version"].as_str().unwrap().is_empty(), "{p}");
    num(&prov["window_start_ms"], "window_start_ms");
}

fn check_battle(b: &Value) {
    assert_ne!(b["attacker"], b["defender"], "{b}");
    assert!(
        b["defender"].as_str().unwrap().parse::<u16>().is_ok(),
        "{b}"
    );
    let interval = num(&b["interval_s"], "interval_s");
    assert!((0.0..5.0).contains(&interval), "{b}");
    assert!(num(&b["duration_s"], "duration_s") >= 0.0, "{b}");
    assert!(b["laps"].is_u64(), "{b}");
    assert!(
        b["provenance"]["plugin"]
            .as_str()
            .unwrap()
            .starts_with("battles@"),
        "{b}"
    );
    if !b["overtake"].is_null() {
        check_prediction(&b["overtake"]);
        assert_eq!(b["overtake"]["attacker"], b["attacker"], "{b}");
        assert_eq!(b["overtake"]["defender"], b["defender"], "{b}");
    }
}

#[test]
fn run_serves_live_battles_predictions_burn_bar_and_telemetry() {
    let mut served = serve(&[
        "run",
        "--speed",
        "0",
        "--every",
        "3600",
        "--predict-runs",
        "0",
        "--plugin-deadline",
        "2s",
        // No history store: this test is about the live side.
        "--no-store",
        "--stay",
    ]);
    let addr = served.addr.clone();
    let over = served.over.clone();

    // During the race.
    let (mut predictions, mut battles, mut polls) = (0usize, 0usize, 0usize);
    while !over.load(Ordering::SeqCst) {
        polls += 1;
        let (status, p) = get(&addr, "/predict");
        assert_eq!(status, 200, "{p}");
        for x in p["predictions"].as_array().unwrap() {
            check_prediction(x);
            predictions += 1;
        }
        let (status, b) = get(&addr, "/live-battles");
        assert_eq!(status, 200, "{b}");
        for x in b["battles"].as_array().unwrap() {
            check_battle(x);
            battles += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!served.exited(), "pitwall ended: {}", served.log());

    // After the race.
    let (_, tel) = get(&addr, "/telemetry/live");
    let (_, burn) = get(&addr, "/burn-bar");
    let (_, bat) = get(&addr, "/live-battles");
    let (_, pre) = get(&addr, "/predict");
    let (_, one) = get(&addr, "/telemetry/live?car=1");
    let (_, pre1) = get(&addr, "/predict?car=1");
    let bad = get(&addr, "/predict?car=abc");
    let unknown = get(&addr, "/burn-bar?car=99");
    let log = served.stop();
    eprintln!("{polls} polls during the race: {predictions} predictions, {battles} battles");
    assert!(
        predictions > 0 && battles > 0,
        "no prediction or battle seen in {polls} polls during the race:\n{log}"
    );

    // Telemetry: the 20 cars, the race state, the window.
    let window = num(&tel["window_start_ms"], "window_start_ms");
    assert_eq!(tel["race"]["session"], "2024-austria-race");
    assert_eq!(tel["race"]["flag"], "chequered");
    assert!(
        tel["race"]["lap"].as_u64().unwrap() >= 71,
        "{}",
        tel["race"]
    );
    let cars = tel["cars"].as_array().unwrap();
    assert_eq!(cars.len(), 20, "{tel}");
    assert_eq!(cars[0]["position"], 1, "by position");
    assert_eq!(one["cars"].as_array().unwrap().len(), 1);
    assert_eq!(one["cars"][0]["car"], "1");
    for r in [&burn, &bat, &pre] {
        assert_eq!(num(&r["window_start_ms"], "window_start_ms"), window);
    }

    // Burn Bar: kg, 80-110 kg for the race for every classified finisher
    // (90 % of the winner's laps).
    assert_eq!(burn["unit"], "kg");
    let total_laps = tel["race"]["total_laps"].as_u64().unwrap() as f64;
    let rows = burn["cars"].as_array().unwrap();
    assert_eq!(rows.len(), 20, "{burn}");
    let mut classified = 0;
    for c in rows {
        let laps = num(&c["lap_number"], "lap_number");
        if laps < (0.9 * total_laps).ceil() {
            continue;
        }
        classified += 1;
        let total = num(&c["total"], "total");
        assert!((80.0..=110.0).contains(&total), "{c}");
        let bar = num(&c["burn_bar"], "burn_bar");
        assert!((0.5..=1.5).contains(&bar), "{c}");
        assert!(num(&c["burn_lap"], "burn_lap") > 0.0, "{c}");
        assert!(c["saving_state"].is_string(), "{c}");
        assert_eq!(c["unit"], "kg");
        assert!(
            c["provenance"]["plugin"]
                .as_str()
                .unwrap()
                .starts_with("fuel@"),
            "{c}"
        );
    }
    assert!(classified >= 15, "{burn}");

    // Whatever is still live at the flag is well formed.
    for x in bat["battles"].as_array().unwrap() {
        check_battle(x);
    }
    for x in pre["predictions"].as_array().unwrap() {
        check_prediction(x);
    }
    for x in pre1["predictions"].as_array().unwrap() {
        assert!(x["attacker"] == "1" || x["defender"] == "1", "{x}");
    }
    assert_eq!(bad.0, 400, "{}", bad.1);
    assert!(
        bad.1["error"]
            .as_str()
            .unwrap()
            .contains("not a racing number")
    );
    assert_eq!(unknown.0, 404, "{}", unknown.1);
}
