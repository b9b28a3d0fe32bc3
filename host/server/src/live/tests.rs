use pitwall_plugin_sdk::frame::{CarFrameData, RaceStateData};
use pitwall_plugin_sdk::insight::{Insight, Prediction, Provenance as SdkProvenance, Story};

use super::*;

const W: i64 = 60_000;

fn frame(seq: u64, cars: &[(u16, u8)]) -> RaceFrameData {
    RaceFrameData {
        window_start_ms: W + seq as i64 * 1_000,
        window_end_ms: W + seq as i64 * 1_000 + 1_000,
        seq,
        session: "test".into(),
        race: RaceStateData {
            lap: 12,
            total_laps: 71,
            under_way: true,
            ..Default::default()
        },
        cars: cars
            .iter()
            .map(|&(car, position)| CarFrameData {
                car,
                position,
                lap: 12,
                interval_s: 0.8,
                speed_kmh: 301.5,
                last_lap_s: f64::NAN,
                ..Default::default()
            })
            .collect(),
        aggregate_names: Vec::new(),
        kernels: Vec::new(),
    }
}

fn published(
    window: i64,
    plugin: &str,
    model: &str,
    body: impl Into<InsightBody>,
) -> PublishedInsight {
    PublishedInsight {
        insight: Insight::new(
            SdkProvenance::from_parts(window, plugin, model).unwrap(),
            body,
        ),
        content_hash: "abc123".into(),
    }
}

fn metric(
    window: i64,
    plugin: &str,
    car: &str,
    name: &str,
    value: f64,
    unit: &str,
) -> PublishedInsight {
    published(
        window,
        plugin,
        "none",
        CarMetric::new(car, name, value, unit).unwrap(),
    )
}

fn battle(window: i64, attacker: &str, defender: u16, interval: f64) -> Vec<PublishedInsight> {
    vec![
        metric(
            window,
            "battles@1.0.0",
            attacker,
            "battle_defender",
            f64::from(defender),
            "",
        ),
        metric(
            window,
            "battles@1.0.0",
            attacker,
            "battle_interval_s",
            interval,
            "s",
        ),
        metric(
            window,
            "battles@1.0.0",
            attacker,
            "battle_duration_s",
            42.0,
            "s",
        ),
        metric(window, "battles@1.0.0", attacker, "battle_laps", 2.0, "lap"),
    ]
}

fn overtake(window: i64, attacker: &str, defender: &str, p: f64) -> PublishedInsight {
    published(
        window,
        "overtake@1.0.0",
        "m-2024",
        Prediction::builder(P_OVERTAKE, attacker, defender)
            .probability(p)
            .horizon_laps(3)
            .contribution("base", -2.0)
            .contribution("drs", 0.7)
            .build()
            .unwrap(),
    )
}

const FIELD: &[(u16, u8)] = &[(1, 1), (4, 2), (16, 3), (81, 4)];

#[test]
fn before_the_first_frame_everything_is_empty_and_unfiltered() {
    let s = LiveState::default();
    let b = serde_json::to_value(s.battles_body(None).unwrap()).unwrap();
    assert_eq!(b["window_start_ms"], serde_json::Value::Null);
    assert_eq!(b["race"], serde_json::Value::Null);
    assert_eq!(b["battles"], serde_json::json!([]));
    // No race yet: no car is known to be absent.
    assert!(s.telemetry_body(Some(4)).unwrap().cars.is_empty());
    assert!(s.burn_bar_body(None).unwrap().cars.is_empty());
}

#[test]
fn a_battle_appears_with_its_prediction_and_disappears_when_its_metrics_stop() {
    let view = LiveView::new();
    let f0 = frame(0, FIELD);
    view.update(&f0, &[], &[]);
    assert!(view.state().battles.is_empty());

    let f1 = frame(1, FIELD);
    let mut ins = battle(f1.window_start_ms, "4", 1, 0.6);
    ins.extend(battle(f1.window_start_ms, "81", 16, 1.2));
    ins.push(overtake(f1.window_start_ms, "4", "1", 0.35));
    view.update(&f1, &ins, &[]);
    let s = view.state();
    assert_eq!(s.battles.len(), 2);
    let b = &s.battles[0];
    assert_eq!((b.attacker.as_str(), b.defender.as_str()), ("4", "1"));
    assert_eq!(b.position, Some(2));
    assert_eq!(b.interval_s, Some(0.6));
    assert_eq!(b.duration_s, Some(42.0));
    assert_eq!(b.laps, Some(2));
    assert_eq!(b.provenance.plugin, "battles@1.0.0");
    assert_eq!(b.provenance.window_start_ms, f1.window_start_ms);
    let p = b
        .overtake
        .as_ref()
        .expect("the pair's p_overtake is attached");
    assert_eq!(p.probability, 0.35);
    assert_eq!(p.provenance.model_version, "m-2024");
    assert_eq!(p.provenance.plugin_version, "1.0.0");
    assert_eq!(
        p.contributions,
        vec![
            Contribution {
                name: "base".into(),
                value: -2.0
            },
            Contribution {
                name: "drs".into(),
                value: 0.7
            }
        ]
    );
    assert!(
        s.battles[1].overtake.is_none(),
        "no prediction for 81 on 16"
    );

    // Next frame: 81's battle goes on without a prediction this window, the
    // 4-1 pair keeps its latest p_overtake (from frame 1) while it battles.
    let f2 = frame(2, FIELD);
    let mut ins = battle(f2.window_start_ms, "4", 1, 0.5);
    ins.extend(battle(f2.window_start_ms, "81", 16, 1.1));
    view.update(&f2, &ins, &[]);
    let s = view.state();
    assert_eq!(s.battles.len(), 2);
    assert!(
        s.predictions.is_empty(),
        "no prediction in the latest frame"
    );
    let p = s.battles[0].overtake.as_ref().unwrap();
    assert_eq!(p.provenance.window_start_ms, f1.window_start_ms);

    // The battles plugin fails on frame 3: its battles of frame 2 stand.
    let f3 = frame(3, FIELD);
    view.update(&f3, &[], &["battles"]);
    assert_eq!(view.state().battles.len(), 2);

    // Frame 4: only 81 still battles; 4-1 is gone, and so is its prediction.
    let f4 = frame(4, FIELD);
    view.update(&f4, &battle(f4.window_start_ms, "81", 16, 1.9), &[]);
    let s = view.state();
    assert_eq!(s.battles.len(), 1);
    assert_eq!(s.battles[0].attacker, "81");
    assert_eq!(s.battles[0].interval_s, Some(1.9));
    assert!(s.last_overtake.is_empty());

    view.update(&frame(5, FIELD), &[], &[]);
    assert!(view.state().battles.is_empty());
}

#[test]
fn predictions_are_those_of_the_latest_frame_and_filter_by_car() {
    let view = LiveView::new();
    let f = frame(0, FIELD);
    view.update(
        &f,
        &[
            overtake(f.window_start_ms, "81", "16", 0.2),
            overtake(f.window_start_ms, "4", "1", 0.6),
        ],
        &[],
    );
    let s = view.state();
    let all = s.predict_body(None).unwrap();
    // By the attacker's position.
    assert_eq!(all.predictions[0].attacker, "4");
    assert_eq!(all.predictions[1].attacker, "81");
    let one = s.predict_body(Some(16)).unwrap();
    assert_eq!(one.predictions.len(), 1);
    assert_eq!(one.predictions[0].defender, "16");
    assert_eq!(s.predict_body(Some(81)).unwrap().predictions.len(), 1);
    assert!(s.predict_body(Some(1)).unwrap().predictions[0].probability == 0.6);
    let err = s.predict_body(Some(44)).unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::NOT_FOUND);
    assert!(err.to_string().contains("car 44 is not in the race"));

    // The overtake plugin fails: its predictions stand; then it answers nothing.
    view.update(&frame(1, FIELD), &[], &["overtake"]);
    assert_eq!(view.state().predictions.len(), 2);
    view.update(&frame(2, FIELD), &[], &[]);
    assert!(view.state().predictions.is_empty());
}

#[test]
fn fuel_figures_accumulate_per_car_with_their_unit_and_provenance() {
    let view = LiveView::new();
    let f = frame(0, FIELD);
    let w = f.window_start_ms;
    let fuel =
        |car: &str, name: &str, v: f64, unit: &str| metric(w, "fuel@1.0.0", car, name, v, unit);
    view.update(
        &f,
        &[
            fuel("1", "fuel_kg_window", 0.024, "kg"),
            fuel("1", "fuel_kg_stint", 20.1, "kg"),
            fuel("1", "fuel_kg_total", 60.5, "kg"),
            fuel("1", "fuel_kg_remaining", 46.5, "kg"),
            fuel("1", "fuel_kg_lap", 1.5, "kg/lap"),
            fuel("1", "fuel_lap_number", 40.0, "lap"),
            fuel("1", "burn_bar", 1.02, "ratio"),
            fuel("1", "fuel_saving", -0.5, "score"),
            fuel("1", "coast_fraction", 0.03, "ratio"),
            fuel("4", "fuel_kg_lap", 1.4, "kg/lap"),
            fuel("4", "fuel_saving", 0.1, "score"),
            fuel("16", "fuel_kg_lap", 1.45, "kg/lap"),
            fuel("16", "fuel_saving", 0.9, "score"),
            // Not fuel: ignored.
            metric(w, "pace@1.0.0", "1", "pace_s", 65.0, "s"),
        ],
        &[],
    );
    let s = view.state();
    let b = s.burn_bar_body(None).unwrap();
    assert_eq!(b.unit.as_deref(), Some("kg"));
    assert_eq!(b.cars.len(), 3);
    assert_eq!(b.field_median_lap, Some(1.45));
    let c = &b.cars[0];
    assert_eq!((c.fuel.car.as_str(), c.position), ("1", Some(1)));
    assert_eq!(c.fuel.burn_window, Some(0.024));
    assert_eq!(c.fuel.stint, Some(20.1));
    assert_eq!(c.fuel.total, Some(60.5));
    assert_eq!(c.fuel.remaining, Some(46.5));
    assert_eq!(c.fuel.burn_lap, Some(1.5));
    assert_eq!(c.fuel.lap_number, Some(40));
    assert_eq!(c.fuel.burn_bar, Some(1.02));
    assert_eq!(c.fuel.coast_fraction, Some(0.03));
    assert_eq!(c.fuel.saving_state, Some("pushing"));
    assert_eq!(c.fuel.provenance.plugin, "fuel@1.0.0");
    assert_eq!(b.cars[1].fuel.saving_state, Some("neutral"));
    assert_eq!(b.cars[2].fuel.saving_state, Some("saving"));

    // A later window updates what it carries and keeps the rest.
    let f = frame(1, FIELD);
    view.update(
        &f,
        &[metric(
            f.window_start_ms,
            "fuel@1.0.1",
            "1",
            "fuel_kg_total",
            60.6,
            "kg",
        )],
        &[],
    );
    let s = view.state();
    let one = s.burn_bar_body(Some(1)).unwrap();
    assert_eq!(one.cars.len(), 1);
    assert_eq!(one.cars[0].fuel.total, Some(60.6));
    assert_eq!(one.cars[0].fuel.burn_lap, Some(1.5));
    assert_eq!(one.cars[0].fuel.provenance.plugin_version, "1.0.1");
    assert_eq!(
        one.cars[0].fuel.provenance.window_start_ms,
        f.window_start_ms
    );
    // 81 is in the race but has no figures yet.
    assert!(s.burn_bar_body(Some(81)).unwrap().cars.is_empty());
}

#[test]
fn nascar_gallons_and_economy() {
    let view = LiveView::new();
    let f = frame(0, FIELD);
    let w = f.window_start_ms;
    view.update(
        &f,
        &[
            metric(w, "fuel@1.0.0", "4", "fuel_gal_lap", 0.5, "gal/lap"),
            metric(w, "fuel@1.0.0", "4", "fuel_mpg_lap", 5.1, "mpg"),
            metric(w, "fuel@1.0.0", "4", "fuel_gal_total", 30.0, "gal"),
        ],
        &[],
    );
    let s = view.state();
    let f = &s.fuel[&4];
    assert_eq!(f.unit.as_deref(), Some("gal"));
    assert_eq!(f.burn_lap, Some(0.5));
    assert_eq!(f.total, Some(30.0));
    assert_eq!(
        f.economy,
        Some(Economy {
            value: 5.1,
            unit: "mpg".into()
        })
    );
}

#[test]
fn telemetry_is_the_latest_per_car_in_position_order() {
    let view = LiveView::new();
    let mut f = frame(0, &[(4, 2), (1, 1), (81, 0)]);
    f.race.safety_car = true;
    f.cars[0].last_lap_s = 66.2;
    f.cars[0].in_pit = true;
    view.update(&f, &[], &[]);
    let s = view.state();
    let t = s.telemetry_body(None).unwrap();
    let order: Vec<&str> = t.cars.iter().map(|c| c.car.as_str()).collect();
    assert_eq!(order, ["1", "4", "81"], "unknown position last");
    assert_eq!(t.header.window_start_ms, Some(f.window_start_ms));
    assert!(t.header.race.as_ref().unwrap().safety_car);
    let v = serde_json::to_value(s.telemetry_body(Some(4)).unwrap()).unwrap();
    assert_eq!(v["cars"].as_array().unwrap().len(), 1);
    assert_eq!(v["cars"][0]["last_lap_s"], 66.2);
    assert_eq!(v["cars"][0]["in_pit"], true);
    assert_eq!(v["cars"][0]["tyre_compound"], "unknown");
    assert_eq!(v["race"]["lap"], 12);
    assert_eq!(v["race"]["flag"], "none");
    let v = serde_json::to_value(s.telemetry_body(Some(1)).unwrap()).unwrap();
    assert_eq!(
        v["cars"][0]["last_lap_s"],
        serde_json::Value::Null,
        "NaN is null"
    );
    assert_eq!(
        s.telemetry_body(Some(5)).unwrap_err().status(),
        axum::http::StatusCode::NOT_FOUND
    );
    // Stories change nothing here.
    let story = Story::builder("overtake", "4 passes 1")
        .cars(["4", "1"])
        .importance(0.9)
        .build()
        .unwrap();
    view.update(
        &frame(1, &[(4, 1), (1, 2), (81, 3)]),
        &[published(0, "stories@1.0.0", "none", story)],
        &[],
    );
    let s = view.state();
    assert_eq!(s.telemetry_body(None).unwrap().cars[0].car, "4");
    assert!(s.battles.is_empty() && s.predictions.is_empty() && s.fuel.is_empty());
}
