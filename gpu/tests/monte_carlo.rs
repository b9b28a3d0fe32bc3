//! The Monte Carlo's CPU reference and the host predictor: determinism, the
//! thread split, and outcomes that follow from the race state.

use pitwall_gpu::cpu::monte_carlo::{self, McError};
use pitwall_gpu::predict::{CarSnapshot, PredictorConfig, RacePredictor, RaceSnapshot, Strategy};
use pitwall_gpu::{Backend, Compound, LapModel};
use proptest::prelude::*;

fn car(i: u32, gap: f64, compound: Compound, age: u32) -> CarSnapshot {
    CarSnapshot {
        car: i,
        position: i,
        gap_to_leader_s: gap,
        laps_completed: 30,
        compound: Some(compound),
        tyre_age: age,
        in_pit: false,
        retired: false,
        last_lap_s: None,
    }
}

fn race(cars: Vec<CarSnapshot>, lap: u32, total: u32) -> RaceSnapshot {
    RaceSnapshot {
        lap,
        total_laps: total,
        safety_car: false,
        vsc: false,
        cars,
    }
}

fn predictor(runs: u32, threads: usize) -> RacePredictor {
    let cfg = PredictorConfig {
        runs,
        cpu_threads: threads,
        ..Default::default()
    };
    RacePredictor::new(LapModel::fitted(), cfg, Backend::Cpu).unwrap()
}

#[test]
fn a_big_lead_late_in_the_race_wins() {
    let snap = race(
        vec![
            car(1, 0.0, Compound::Hard, 10),
            car(2, 25.0, Compound::Hard, 10),
            car(3, 26.0, Compound::Hard, 10),
        ],
        55,
        57,
    );
    let p = predictor(400, 2).update(&snap).unwrap();
    assert!(p.cars[0].p_win > 0.99, "{:?}", p.cars[0]);
    assert!((p.cars.iter().map(|c| c.p_win).sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(
        p.cars.iter().all(|c| (c.p_podium - 1.0).abs() < 1e-12),
        "three cars: all on the podium"
    );
    assert!((p.cars.iter().map(|c| c.expected_position).sum::<f64>() - 6.0).abs() < 1e-9);
    // Two laps to go: no stop pays for itself.
    assert!(
        p.cars.iter().all(|c| c.best_pit_lap.is_none()),
        "{:?}",
        p.cars
    );
}

#[test]
fn worn_tyres_with_many_laps_left_call_for_a_stop() {
    // 40 laps to go on 35-lap-old softs (life 22): staying out costs far more
    // than a stop.
    let snap = race(
        vec![
            car(1, 0.0, Compound::Soft, 35),
            car(2, 3.0, Compound::Hard, 2),
        ],
        17,
        57,
    );
    let p = predictor(300, 2).update(&snap).unwrap();
    let c = &p.cars[0];
    assert!(c.best_pit_lap.is_some() && c.pit_gain_s > 10.0, "{c:?}");
    assert!(c.pit_gain_se_s < c.pit_gain_s / 5.0, "{c:?}");
    assert_ne!(c.best_strategy, Some(Strategy::StayOut));
    let names: Vec<String> = p.kernel_results().into_iter().map(|k| k.name).collect();
    assert_eq!(
        names,
        [
            "p_win@1",
            "p_podium@1",
            "exp_pos@1",
            "best_pit_lap@1",
            "pit_gain_s@1",
            "pit_gain_se_s@1",
            "pred_lap_s@1",
            "pred_lap_err_s@1"
        ]
    );
}

#[test]
fn retired_cars_finish_last_and_lap_times_are_learned() {
    let mut cars = vec![
        car(1, 0.0, Compound::Medium, 5),
        car(2, 1.0, Compound::Medium, 5),
        car(3, 2.0, Compound::Medium, 5),
    ];
    cars[0].retired = true;
    let mut pred = predictor(200, 1);
    for lap in 30..36 {
        for c in &mut cars {
            c.laps_completed = lap;
            c.tyre_age = 5 + lap - 30;
            c.last_lap_s = Some(if c.car == 2 { 96.0 } else { 97.0 });
        }
        let p = pred.update(&race(cars.clone(), lap, 57)).unwrap();
        assert_eq!(p.cars[0].expected_position, 3.0);
        assert!(p.cars[0].pred_lap_s.is_nan());
        if lap >= 33 {
            // Car 2 laps a second faster: predicted faster, with an error
            // estimate at least the model's noise.
            assert!(
                p.cars[1].pred_lap_s < p.cars[2].pred_lap_s - 0.5,
                "{:?}",
                p.cars
            );
            assert!((p.cars[1].pred_lap_s - 96.1).abs() < 0.5, "{:?}", p.cars[1]);
            assert!(p.cars[1].pred_lap_err_s >= LapModel::fitted().noise_s);
        }
    }
}

#[test]
fn bad_inputs_are_refused() {
    let pred = predictor(10, 1);
    let (mut input, _) = pred.mc_input(&race(vec![car(1, 0.0, Compound::Soft, 1)], 1, 10));
    input.scenarios.remove(0);
    assert!(matches!(
        monte_carlo::simulate(&input),
        Err(McError::NoBaseline { .. })
    ));
    let (mut input, _) = pred.mc_input(&race(vec![car(1, 0.0, Compound::Soft, 1)], 1, 10));
    input.cars.compound[0] = 7;
    let e = monte_carlo::simulate(&input).unwrap_err().to_string();
    assert!(e.contains("compound index 7 of car 0"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Same seed → same bits; the thread split never changes a bit; positions
    /// are a permutation in every run.
    #[test]
    fn deterministic_and_split_invariant(
        n in 1usize..22,
        lap in 0u32..56,
        seed in any::<u64>(),
        threads in 1usize..5,
        sc in any::<bool>(),
    ) {
        let comps = [Compound::Soft, Compound::Medium, Compound::Hard];
        let cars: Vec<CarSnapshot> = (0..n as u32)
            .map(|i| {
                let mut c = car(i + 1, f64::from(i) * 0.9, comps[(i % 3) as usize], (i * 5) % 30);
                c.retired = i == 3;
                c.in_pit = i == 2;
                c
            })
            .collect();
        let mut snap = race(cars, lap, 57);
        snap.safety_car = sc;
        let cfg = PredictorConfig { runs: 40, seed, p_sc_per_lap: 0.1, p_vsc_per_lap: 0.1, ..Default::default() };
        let pred = RacePredictor::new(LapModel::fitted(), cfg, Backend::Cpu).unwrap();
        let (input, _) = pred.mc_input(&snap);
        let a = monte_carlo::simulate(&input).unwrap();
        let b = monte_carlo::simulate_threads(&input, threads).unwrap();
        prop_assert_eq!(&a, &b);
        for run in 0..40usize {
            let mut pos = a.base_pos[run * n..(run + 1) * n].to_vec();
            pos.sort_unstable();
            prop_assert_eq!(pos, (1..=n as u32).collect::<Vec<_>>());
        }
        prop_assert!(a.focus_time.iter().all(|t| t.is_finite()));
    }
}
