//! The fuel model through the SDK's native harness (the host's byte path,
//! without WASM), on synthetic cars whose window-mean speeds are known
//! exactly: constant vs accelerating, SC vs green, calibration to the race
//! facts, NASCAR units, lift-and-coast detection, bad data.

use pitwall_plugin_fuel::{Fuel, Params};
use pitwall_plugin_sdk::InsightsData;
use pitwall_plugin_sdk::frame::{CarFrameData, RaceFrameData};
use pitwall_plugin_sdk::testing::{Harness, frame};

const F1: &str = include_str!("../../../configs/fuel-f1.params.json");
const NASCAR: &str = include_str!("../../../configs/fuel-nascar.params.json");

fn metric(r: &InsightsData, car: u16, name: &str) -> Option<f64> {
    let car = car.to_string();
    r.metrics
        .iter()
        .find(|m| m.car() == car && m.name() == name)
        .map(|m| m.value())
}

fn unit(r: &InsightsData, name: &str) -> Option<String> {
    r.metrics
        .iter()
        .find(|m| m.name() == name)
        .map(|m| m.unit().to_string())
}

/// One synthetic car: a speed profile (window-mean m/s, one entry per 1 s
/// window, repeated lap after lap), the distance it has covered, and its lap.
struct SimCar {
    number: u16,
    profile: Vec<f64>,
    /// Index into the profile.
    i: usize,
    dist: f64,
}

/// A synthetic race: `lap_m` metres a lap, 1 s windows, the race under way.
struct Sim {
    cars: Vec<SimCar>,
    lap_m: f64,
    seq: u64,
    total_laps: u16,
    /// Behind a pace car every car runs this constant speed, m/s.
    pace_car: Option<f64>,
}

impl Sim {
    fn new(lap_m: f64, total_laps: u16, profiles: &[(u16, Vec<f64>)]) -> Sim {
        Sim {
            cars: profiles
                .iter()
                .map(|(n, p)| SimCar {
                    number: *n,
                    profile: p.clone(),
                    i: 0,
                    dist: 0.0,
                })
                .collect(),
            lap_m,
            seq: 0,
            total_laps,
            pace_car: None,
        }
    }

    /// The next window, every car's speed scaled by `scale` (SC: < 1).
    fn step(&mut self, scale: f64, safety_car: bool) -> RaceFrameData {
        let mut cars = Vec::new();
        for c in &mut self.cars {
            let v = self
                .pace_car
                .unwrap_or(c.profile[c.i % c.profile.len()] * scale);
            c.i += 1;
            c.dist += v;
            cars.push(CarFrameData {
                car: c.number,
                lap: 1 + (c.dist / self.lap_m) as u16,
                total_distance_m: c.dist,
                lap_distance_m: (c.dist % self.lap_m) as f32,
                speed_kmh: (v * 3.6) as f32,
                ..Default::default()
            });
        }
        // Positions by distance.
        let mut order: Vec<usize> = (0..cars.len()).collect();
        order.sort_by(|a, b| {
            cars[*b]
                .total_distance_m
                .total_cmp(&cars[*a].total_distance_m)
        });
        for (p, i) in order.iter().enumerate() {
            cars[*i].position = p as u8 + 1;
        }
        let lead_lap = cars.iter().map(|c| c.lap).max().unwrap_or(1);
        let mut f = frame(self.seq, cars);
        self.seq += 1;
        f.race.under_way = true;
        f.race.lap = lead_lap;
        f.race.total_laps = self.total_laps;
        f.race.safety_car = safety_car;
        f
    }
}

/// A road-course lap of ~61 s (~3.7 km): three straights, each ending in a
/// heavy braking zone; `coast` replaces the last two full-throttle seconds
/// of each straight by a lift (speed decaying at a drag-only ~4.5 m/s²).
fn road_lap(coast: bool) -> Vec<f64> {
    let mut v = Vec::new();
    let ramp = |v: &mut Vec<f64>, from: f64, to: f64, n: usize| {
        for i in 1..=n {
            v.push(from + (to - from) * i as f64 / n as f64);
        }
    };
    for (corner, top, hold) in [(25.0, 85.0, 6), (30.0, 75.0, 4), (35.0, 80.0, 4)] {
        v.extend([corner; 3]);
        ramp(&mut v, corner, top, 10);
        if coast {
            v.extend(std::iter::repeat_n(top, hold - 2));
            v.extend([top - 4.5, top - 9.0]);
        } else {
            v.extend(std::iter::repeat_n(top, hold));
        }
        // Braking: two windows down to the next corner speed.
        v.extend([top - 30.0, 45.0]);
    }
    v
}

fn lap_m() -> f64 {
    road_lap(false).iter().sum()
}

/// Runs `sim` for `n` green windows, returning the last reply.
fn run(h: &mut Harness<Fuel>, sim: &mut Sim, n: usize) -> InsightsData {
    let mut last = None;
    for _ in 0..n {
        last = Some(h.run(&sim.step(1.0, false)).unwrap());
    }
    last.unwrap()
}

#[test]
fn the_config_files_decode_and_the_f1_one_is_the_defaults() {
    let f1: Params = serde_json::from_str(F1).unwrap();
    assert_eq!(f1, Params::default());
    let nascar: Params = serde_json::from_str(NASCAR).unwrap();
    assert_eq!(nascar.units.fuel, "gal");
    assert!(nascar.refuel_at_stops);
}

#[test]
fn accelerating_burns_more_than_constant_speed_at_the_same_mean_speed() {
    let mut h = Harness::<Fuel>::new();
    // Car 1 holds 60 m/s; car 2 accelerates 40 → 80 m/s and back, the same
    // mean speed (and distance) over the cycle.
    let mut accel: Vec<f64> = (0..=20).map(|i| 40.0 + 2.0 * i as f64).collect();
    accel.extend((1..20).rev().map(|i| 40.0 + 2.0 * i as f64));
    let constant = vec![60.0; accel.len()];
    let mut sim = Sim::new(1e9, 50, &[(1, constant), (2, accel)]);
    let r = run(&mut h, &mut sim, 2 * 40 + 2);
    let (c, a) = (
        metric(&r, 1, "fuel_kg_total").unwrap(),
        metric(&r, 2, "fuel_kg_total").unwrap(),
    );
    // Not all of the kinetic energy is lost: slowing at 2 m/s² is gentler
    // than drag alone would, so the engine still pushes on the way down
    // (KE gives part of the drag back). The rest, and the v³ of drag, cost.
    assert!(
        c > 0.0 && a > 1.08 * c,
        "constant {c} kg, accelerating {a} kg"
    );
    // Per window: constant speed burns the same every window.
    let w1 = metric(&r, 1, "fuel_kg_window").unwrap();
    let r2 = h.run(&sim.step(1.0, false)).unwrap();
    assert!((metric(&r2, 1, "fuel_kg_window").unwrap() - w1).abs() < 1e-3 * w1);
    assert_eq!(unit(&r, "fuel_kg_total").as_deref(), Some("kg"));
    // The start load goes down by what was burned.
    let rem = metric(&r2, 1, "fuel_kg_remaining").unwrap();
    let tot = metric(&r2, 1, "fuel_kg_total").unwrap();
    assert!((rem + tot - 107.0).abs() < 1e-9, "{rem} + {tot}");
}

#[test]
fn nothing_burns_before_the_race_is_under_way() {
    let mut h = Harness::<Fuel>::new();
    let mut sim = Sim::new(lap_m(), 50, &[(1, road_lap(false))]);
    for _ in 0..30 {
        let mut f = sim.step(1.0, false);
        f.race.under_way = false;
        let r = h.run(&f).unwrap();
        assert!(r.metrics.is_empty(), "{:?}", r.metrics);
    }
    let r = run(&mut h, &mut sim, 10);
    assert!(metric(&r, 1, "fuel_kg_total").unwrap() > 0.0);
}

#[test]
fn safety_car_laps_burn_less_than_green_laps() {
    let mut h = Harness::<Fuel>::new();
    let profile = road_lap(false);
    let n = profile.len();
    let mut sim = Sim::new(
        lap_m(),
        50,
        &[(1, profile.clone()), (2, profile.clone()), (3, profile)],
    );
    let mut green_lap = None;
    let mut sc_lap = None;
    // Three green laps, then three laps behind the SC at 60 % of the speed.
    for i in 0..(3 * n + 5 * n) {
        let sc = i >= 3 * n;
        let f = sim.step(if sc { 0.6 } else { 1.0 }, sc);
        let r = h.run(&f).unwrap();
        if let (Some(kg), Some(lap)) = (
            metric(&r, 1, "fuel_kg_lap"),
            metric(&r, 1, "fuel_lap_number"),
        ) {
            match lap as u16 {
                2 => green_lap = Some(kg),
                5 => sc_lap = Some(kg),
                _ => {}
            }
        }
    }
    let (g, s) = (green_lap.unwrap(), sc_lap.unwrap());
    // Drag power falls with v³ and the SC lap takes 1/0.6 as long: well under
    // the green lap, above the base flow alone.
    assert!(
        s < 0.7 * g && s > 0.05 * g,
        "green {g} kg/lap, SC {s} kg/lap"
    );
}

#[test]
fn the_calibration_makes_a_green_lap_the_race_target() {
    let mut h = Harness::<Fuel>::new();
    h.set_params_json(&serde_json::json!({
        "calibration": {"race_fuel": 100.0, "min_green_laps": 12}
    }));
    let profiles: Vec<(u16, Vec<f64>)> = (1..=4).map(|n| (n, road_lap(false))).collect();
    let mut sim = Sim::new(lap_m(), 50, &profiles);
    let n = road_lap(false).len();
    let r = run(&mut h, &mut sim, 8 * n);
    // 100 kg over 50 laps: 2 kg a green lap at the field's pace.
    for car in 1..=4 {
        let kg = metric(&r, car, "fuel_kg_lap").unwrap();
        assert!((kg - 2.0).abs() < 0.05, "#{car}: {kg} kg/lap");
        let bar = metric(&r, car, "burn_bar").unwrap();
        assert!((bar - 1.0).abs() < 0.03, "#{car}: burn bar {bar}");
    }
    assert_eq!(unit(&r, "fuel_kg_lap").as_deref(), Some("kg/lap"));
    assert!(
        h.logs()
            .iter()
            .any(|(_, m)| m.contains("calibration at lap")),
        "{:?}",
        h.logs()
    );
}

/// A 1.5-mile oval at Cup speeds: ~85 m/s on the straights, ~75 in the turns.
fn oval_lap() -> Vec<f64> {
    let mut v = Vec::new();
    for _ in 0..2 {
        v.extend([85.0; 8]);
        v.extend([81.0, 77.0, 75.0, 75.0, 75.0, 75.0, 77.0, 81.0]);
    }
    v
}

#[test]
fn nascar_units_gallons_and_mpg_with_green_and_yellow_calibration_points() {
    let mut h = Harness::<Fuel>::new();
    h.set_params(NASCAR.as_bytes().to_vec());
    let lap: f64 = oval_lap().iter().sum();
    let profiles: Vec<(u16, Vec<f64>)> = (1..=5).map(|n| (n, oval_lap())).collect();
    let mut sim = Sim::new(lap, 0, &profiles);
    let n = oval_lap().len();
    let mut mpg_green = None;
    let mut mpg_yellow = None;
    // 8 green laps, ~3 caution laps behind the pace car at 45 m/s, 5 green laps.
    for i in 0..(8 * n + 6 * n + 5 * n) {
        let yellow = (8 * n..14 * n).contains(&i);
        sim.pace_car = yellow.then_some(45.0);
        let r = h.run(&sim.step(1.0, yellow)).unwrap();
        if i == 8 * n - 1 {
            // Before the yellow point is known: green economy already fitted.
            mpg_green = metric(&r, 1, "fuel_mpg_lap");
            assert_eq!(unit(&r, "fuel_mpg_lap").as_deref(), Some("mpg"));
            assert_eq!(unit(&r, "fuel_gal_lap").as_deref(), Some("gal/lap"));
            assert_eq!(unit(&r, "fuel_gal_total").as_deref(), Some("gal"));
            assert!(metric(&r, 1, "fuel_kg_total").is_none());
            // 20 gallons to start with.
            let rem = metric(&r, 1, "fuel_gal_remaining").unwrap();
            let tot = metric(&r, 1, "fuel_gal_total").unwrap();
            assert!((rem + tot - 56.4 / 2.82).abs() < 1e-9);
        }
        if i == 14 * n - 1 {
            mpg_yellow = metric(&r, 1, "fuel_mpg_lap");
        }
        if i == 19 * n - 1 {
            // Green again, with the base flow fitted: the green point holds.
            let g = metric(&r, 1, "fuel_mpg_lap").unwrap();
            assert!((g - 4.8).abs() < 0.15, "green after the caution {g} mpg");
        }
    }
    let (g, y) = (mpg_green.unwrap(), mpg_yellow.unwrap());
    assert!((g - 4.8).abs() < 0.15, "green {g} mpg");
    // Three yellow laps × five cars fit the base flow: a lap behind the pace
    // car (the median yellow lap; the first has the slowdown in it) holds
    // the yellow point.
    assert!((y - 10.5).abs() < 0.3, "yellow {y} mpg; {:?}", h.logs());
    let fit = h.logs().last().unwrap().1.clone();
    assert!(
        fit.contains("base flow") && !fit.contains("base flow 3.00"),
        "{fit}"
    );
}

#[test]
fn lift_and_coast_is_detected_as_saving_and_told_once() {
    let mut h = Harness::<Fuel>::new();
    let profiles = vec![
        (1, road_lap(false)),
        (2, road_lap(false)),
        (3, road_lap(true)),
        (4, road_lap(false)),
        (5, road_lap(false)),
    ];
    let mut sim = Sim::new(lap_m(), 50, &profiles);
    let n = road_lap(false).len();
    let mut stories = Vec::new();
    let mut last = None;
    for _ in 0..12 * n {
        let r = h.run(&sim.step(1.0, false)).unwrap();
        stories.extend(r.stories.iter().cloned());
        last = Some(r);
    }
    let r = last.unwrap();
    let saver = metric(&r, 3, "fuel_saving").unwrap();
    let other = metric(&r, 1, "fuel_saving").unwrap();
    assert!(saver > 0.8, "the coasting car scores {saver}");
    assert!(other.abs() < 0.3, "a car like the field scores {other}");
    let bar = metric(&r, 3, "burn_bar").unwrap();
    assert!(bar < 0.99, "coasting burns less than the field: {bar}");
    // One story, about car 3, rate-limited (cooldown of 10 laps).
    assert_eq!(stories.len(), 1, "{stories:?}");
    assert_eq!(stories[0].kind(), "fuel_saving");
    assert_eq!(stories[0].cars(), ["3"]);
    assert!(stories[0].headline().contains("#3"));
}

#[test]
fn pushing_scores_negative() {
    let mut h = Harness::<Fuel>::new();
    // Car 9 runs 4 % faster everywhere: more drag, more fuel per lap.
    let fast: Vec<f64> = road_lap(false).iter().map(|v| v * 1.04).collect();
    let profiles = vec![
        (1, road_lap(false)),
        (2, road_lap(false)),
        (3, road_lap(false)),
        (9, fast),
    ];
    let mut sim = Sim::new(lap_m(), 50, &profiles);
    let r = run(&mut h, &mut sim, 10 * road_lap(false).len());
    let s = metric(&r, 9, "fuel_saving").unwrap();
    assert!(s < -0.5, "pushing scores {s}");
    assert!(metric(&r, 9, "burn_bar").unwrap() > 1.03);
}

#[test]
fn bad_data_gives_no_panic_and_no_error() {
    let mut h = Harness::<Fuel>::new();
    let mut sim = Sim::new(lap_m(), 50, &[(1, road_lap(false)), (2, road_lap(false))]);
    for i in 0..200 {
        let mut f = sim.step(1.0, false);
        match i % 7 {
            0 => f.cars[0].total_distance_m = f64::NAN,
            1 => f.cars[1].total_distance_m = -5.0,
            2 => f.cars[0].retired = true,
            3 => f.cars.clear(),
            4 => f.cars[1].total_distance_m = 1e12,
            _ => {}
        }
        if i == 100 {
            // Unknown fields are refused: a warning and the defaults, not a failure.
            h.set_params(br#"{"not_a_field": 1}"#.to_vec());
        }
        if i == 150 {
            // So is a fuel unit that cannot be part of a metric name.
            h.set_params(br#"{"units": {"fuel": "US gal"}}"#.to_vec());
        }
        let r = h.run(&f).unwrap();
        for m in &r.metrics {
            assert!(m.value().is_finite());
        }
    }
    let logs = h.logs();
    assert!(
        logs.iter().any(|(_, m)| m.contains("not valid JSON")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|(_, m)| m.contains("units.fuel")),
        "{logs:?}"
    );
}

#[test]
fn a_hot_swap_hands_the_race_so_far_to_the_new_instance() {
    let mut h = Harness::<Fuel>::new();
    let profiles: Vec<(u16, Vec<f64>)> = (1..=4).map(|n| (n, road_lap(false))).collect();
    let mut sim = Sim::new(lap_m(), 50, &profiles);
    let n = road_lap(false).len();
    let before = run(&mut h, &mut sim, 8 * n);
    let total = metric(&before, 2, "fuel_kg_total").unwrap();
    let lap = metric(&before, 2, "fuel_kg_lap").unwrap();
    let (mut h, handed_over) = h.swap_to::<Fuel>().unwrap();
    assert!(handed_over);
    let after = h.run(&sim.step(1.0, false)).unwrap();
    let window = metric(&after, 2, "fuel_kg_window").unwrap();
    // The same calibration is refitted from the handed-over laps: the total
    // carries on by exactly this window's burn.
    assert!((metric(&after, 2, "fuel_kg_total").unwrap() - (total + window)).abs() < 1e-9);
    assert_eq!(metric(&after, 2, "fuel_kg_lap"), Some(lap));
    assert!(metric(&after, 2, "burn_bar").is_some());
}

#[test]
fn with_a_throttle_channel_the_burn_follows_the_throttle() {
    let mut h = Harness::<Fuel>::new();
    let mut sim = Sim::new(1e9, 50, &[(1, vec![60.0]), (2, vec![60.0])]);
    let mut windows = Vec::new();
    for i in 0..20 {
        let mut f = sim.step(1.0, false);
        f.aggregate_names = vec!["mean_throttle".into(), "mean_rpm".into()];
        // Same speed; car 1 flat out above the knee, car 2 at half throttle at
        // 8 000 rpm (regulation curve: 77.5 kg/h).
        f.cars[0].aggregates = vec![100.0, 11_000.0];
        f.cars[1].aggregates = vec![50.0, 8_000.0];
        let r = h.run(&f).unwrap();
        if i > 6 {
            windows.push((
                metric(&r, 1, "fuel_kg_window").unwrap(),
                metric(&r, 2, "fuel_kg_window").unwrap(),
            ));
        }
    }
    // Uncalibrated (no laps yet): flow · 1 s plus the 3 kg/h base flow.
    let base = 3.0 / 3600.0;
    for (a, b) in windows {
        assert!((a - (100.0 / 3600.0 + base)).abs() < 1e-9, "{a}");
        assert!((b - (0.5 * 77.5 / 3600.0 + base)).abs() < 1e-9, "{b}");
    }
}

#[test]
fn a_pit_stop_starts_a_stint_and_refuels_where_the_series_does() {
    for (params, refuel) in [(F1, false), (NASCAR, true)] {
        let mut h = Harness::<Fuel>::new();
        h.set_params(params.as_bytes().to_vec());
        let p: Params = serde_json::from_str(params).unwrap();
        let (fuel, load) = (
            p.units.fuel.clone(),
            p.start_load_kg.unwrap() / p.units.kg_per_unit,
        );
        let name = |m: &str| format!("fuel_{fuel}_{m}");
        let mut sim = Sim::new(lap_m(), 50, &[(1, road_lap(false))]);
        let before = run(&mut h, &mut sim, 100);
        let stint_before = metric(&before, 1, &name("stint")).unwrap();
        // 20 s in the pit lane, then out with one stop more.
        for _ in 0..20 {
            let mut f = sim.step(0.3, false);
            f.cars[0].in_pit = true;
            h.run(&f).unwrap();
        }
        let mut last = None;
        for _ in 0..10 {
            let mut f = sim.step(1.0, false);
            f.cars[0].pit_stops = 1;
            last = Some(h.run(&f).unwrap());
        }
        let r = last.unwrap();
        let (stint, total) = (
            metric(&r, 1, &name("stint")).unwrap(),
            metric(&r, 1, &name("total")).unwrap(),
        );
        let remaining = metric(&r, 1, &name("remaining")).unwrap();
        assert!(
            stint > 0.0 && stint < 0.2 * stint_before,
            "{fuel}: stint {stint}"
        );
        assert!(total > stint_before + stint, "{fuel}: total {total}");
        if refuel {
            assert!(
                (remaining - (load - stint)).abs() < 1e-9,
                "refilled: {remaining}"
            );
        } else {
            assert!(
                (remaining - (load - total)).abs() < 1e-9,
                "no refuel: {remaining}"
            );
        }
    }
}
