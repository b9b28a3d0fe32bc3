//! Hot swap under load: every window goes to exactly one version, the switch
//! happens exactly at the scheduled boundary, and state carries over.

use std::collections::BTreeMap;

use pitwall_runtime::{Boundary, Handover, LifecycleEvent, VersionState};

use crate::common::{Spec, counts, frame, set};

#[test]
fn a_hundred_and_twenty_swaps_lose_and_duplicate_nothing() {
    const FRAMES: i64 = 3_000;
    const EVERY: i64 = 25;
    let mut set = set();
    let control = set.control();
    let v1 = Spec::counter("counter", "1.0.0").wasm();
    let v2 = Spec::counter("counter", "2.0.0").wasm();
    control.deploy(&v1, Boundary::Next).unwrap();
    control
        .deploy(
            &Spec::fixed("bystander", "1.0.0", 0.5, 1.0).wasm(),
            Boundary::Next,
        )
        .unwrap();

    // Boundaries (window index) at which each version takes over.
    let mut schedule = BTreeMap::new();
    let mut tickets = Vec::new();
    let mut expected_version = "1.0.0";
    let mut swaps = 0;
    for i in 0..FRAMES {
        let ws = i * 1000;
        // Schedule the next swap a few windows ahead, from "another thread's" view.
        if i % EVERY == 3 && i + 10 < FRAMES {
            let boundary = (i + 10) * 1000;
            let to = if (i / EVERY) % 2 == 0 { &v2 } else { &v1 };
            let ver = if (i / EVERY) % 2 == 0 {
                "2.0.0"
            } else {
                "1.0.0"
            };
            schedule.insert(i + 10, ver);
            tickets.push((
                boundary,
                control.deploy(to, Boundary::At(boundary)).unwrap(),
            ));
        }
        if let Some(v) = schedule.get(&i) {
            expected_version = v;
        }
        let out = set.on_frame(&frame(ws), ws);
        let got = counts(&out, "counter");
        assert_eq!(
            got,
            vec![(expected_version.to_string(), (i + 1) as f64)],
            "window {i}: {out:?}"
        );
        assert_eq!(
            out.insights
                .iter()
                .filter(|x| x.plugin_name() == "bystander")
                .count(),
            3
        );
        for e in &out.events {
            if let LifecycleEvent::Swapped { to, handover, .. } = e {
                swaps += 1;
                assert_eq!(to, &format!("counter@{expected_version}"));
                assert!(
                    schedule.contains_key(&i),
                    "swap outside the schedule at {i}"
                );
                assert!(
                    matches!(
                        handover,
                        Handover::Restored {
                            from_state_version: 1,
                            bytes: 8
                        }
                    ),
                    "{handover:?}"
                );
            }
        }
    }
    assert!(swaps >= 100, "{swaps} swaps");
    assert_eq!(swaps, schedule.len());
    for (boundary, t) in tickets {
        assert_eq!(t.try_outcome().unwrap().unwrap().window_start_ms, boundary);
    }
    let stats = set.stats("counter").unwrap();
    assert_eq!(stats.swaps as usize, swaps);
    assert_eq!(stats.state_handovers as usize, swaps);
    assert_eq!(stats.failures.total(), 0);
    assert_eq!(stats.ok as i64, FRAMES);
}

#[test]
fn a_boundary_between_frames_applies_at_the_next_frame() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(&Spec::counter("c", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    set.on_frame(&frame(0), 0);
    let t = control
        .deploy(&Spec::counter("c", "2.0.0").wasm(), Boundary::At(1_500))
        .unwrap();
    assert_eq!(
        counts(&set.on_frame(&frame(1_000), 1_000), "c")[0].0,
        "1.0.0"
    );
    assert_eq!(
        counts(&set.on_frame(&frame(2_000), 2_000), "c"),
        vec![("2.0.0".into(), 3.0)]
    );
    assert_eq!(t.try_outcome().unwrap().unwrap().window_start_ms, 2_000);
}

#[test]
fn without_snapshot_the_new_version_starts_fresh_and_says_why() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(&Spec::counter("c", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    set.on_frame(&frame(0), 0);
    let mut v2 = Spec::counter("c", "2.0.0");
    v2.stateful = false;
    v2.state_version = None;
    control.deploy(&v2.wasm(), Boundary::Next).unwrap();
    let out = set.on_frame(&frame(1_000), 1_000);
    assert_eq!(counts(&out, "c"), vec![("2.0.0".into(), 1.0)]);
    let reason = out
        .events
        .iter()
        .find_map(|e| match e {
            LifecycleEvent::Swapped {
                handover: Handover::Fresh { reason },
                ..
            } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        reason.contains("c@2.0.0") && reason.contains("pitwall_restore"),
        "{reason}"
    );
    assert_eq!(set.stats("c").unwrap().fresh_starts, 1);
}

#[test]
fn rollback_returns_to_the_previous_version_with_state() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(&Spec::counter("c", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    set.on_frame(&frame(0), 0);
    control
        .deploy(&Spec::counter("c", "2.0.0").wasm(), Boundary::Next)
        .unwrap();
    set.on_frame(&frame(1_000), 1_000);
    control
        .deploy(&Spec::counter("c", "3.0.0").wasm(), Boundary::Next)
        .unwrap();
    set.on_frame(&frame(2_000), 2_000);
    let versions = control.versions("c").unwrap();
    let ids: Vec<_> = versions
        .iter()
        .map(|v| (v.info.id.as_str(), v.state.clone()))
        .collect();
    assert_eq!(
        ids,
        [
            ("c@3.0.0", VersionState::Live),
            ("c@2.0.0", VersionState::Previous),
            ("c@1.0.0", VersionState::Previous)
        ]
    );
    let t = control.rollback("c", Boundary::At(4_000)).unwrap();
    assert_eq!(
        counts(&set.on_frame(&frame(3_000), 3_000), "c")[0].0,
        "3.0.0"
    );
    let out = set.on_frame(&frame(4_000), 4_000);
    assert_eq!(counts(&out, "c"), vec![("2.0.0".into(), 5.0)]);
    assert!(matches!(
        t.try_outcome().unwrap().unwrap().event,
        LifecycleEvent::RolledBack {
            automatic: false,
            ..
        }
    ));
    // 3.0.0 is listed as rolled back from; the next rollback goes to 1.0.0.
    let versions = control.versions("c").unwrap();
    assert!(matches!(
        versions.last().unwrap().state,
        VersionState::RolledBack(_)
    ));
    control.rollback("c", Boundary::Next).unwrap();
    assert_eq!(
        counts(&set.on_frame(&frame(5_000), 5_000), "c")[0].0,
        "1.0.0"
    );
    assert!(
        control
            .rollback("c", Boundary::Next)
            .is_err_and(|e| e.to_string().contains("no version to roll back"))
    );
    // rollback_to a rolled-back version by number.
    control.rollback_to("c", "3.0.0", Boundary::Next).unwrap();
    assert_eq!(
        counts(&set.on_frame(&frame(6_000), 6_000), "c"),
        vec![("3.0.0".into(), 7.0)]
    );
    assert_eq!(set.stats("c").unwrap().rollbacks, 3);
}

#[test]
fn the_same_version_is_not_swapped_in_twice() {
    let mut set = set();
    let control = set.control();
    let wasm = Spec::counter("c", "1.0.0").wasm();
    control.deploy(&wasm, Boundary::Next).unwrap();
    set.on_frame(&frame(0), 0);
    let t = control.deploy(&wasm, Boundary::Next).unwrap();
    set.on_frame(&frame(1_000), 1_000);
    let err = t.try_outcome().unwrap().unwrap_err().to_string();
    assert!(err.contains("already live"), "{err}");
}

#[test]
fn control_calls_work_from_other_threads() {
    let mut set = set();
    let control = set.control();
    let v1 = Spec::counter("c", "1.0.0").wasm();
    let v2 = Spec::counter("c", "2.0.0").wasm();
    let worker = std::thread::spawn(move || {
        control
            .deploy(&v1, Boundary::Next)
            .unwrap()
            .wait(std::time::Duration::from_secs(60))
            .unwrap();
        let t = control.deploy(&v2, Boundary::Next).unwrap();
        t.wait(std::time::Duration::from_secs(60)).unwrap()
    });
    let mut ws = 0;
    while !worker.is_finished() {
        set.on_frame(&frame(ws), ws);
        ws += 1000;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let applied = worker.join().unwrap();
    let out = set.on_frame(&frame(ws), ws);
    assert_eq!(counts(&out, "c")[0].0, "2.0.0");
    assert!(applied.window_start_ms < ws);
}
