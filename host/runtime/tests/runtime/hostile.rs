//! Hostile plugins: each is contained and reported, the others keep getting
//! every frame, and the host never crashes.

use pitwall_runtime::{
    Boundary, FailureAction, FailureKind, LifecycleEvent, PluginSet, RuntimeConfig, VersionState,
};

use crate::common::{Spec, counts, frame, runtime_with, set};

/// Loads a bystander and `hostile`, runs `frames` frames, and checks the
/// bystander answered every one. Returns the set.
fn run_beside_bystander(hostile: &Spec, frames: i64) -> PluginSet {
    let mut set = set();
    let control = set.control();
    control
        .deploy(&Spec::counter("bystander", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    control.deploy(&hostile.wasm(), Boundary::Next).unwrap();
    for i in 0..frames {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        assert_eq!(
            counts(&out, "bystander"),
            vec![("1.0.0".to_string(), (i + 1) as f64)],
            "bystander missed frame {i}: {out:?}"
        );
        assert!(out.insights.iter().all(|i| i.plugin_name() != hostile.name));
    }
    set
}

fn check_quarantined(set: &PluginSet, name: &str, kind: FailureKind, frames: u64) {
    let stats = set.stats(name).unwrap();
    assert_eq!(stats.failures.get(kind), 3, "{stats:?}");
    assert_eq!(stats.failures.total(), 3, "{stats:?}");
    assert_eq!(stats.quarantines, 1);
    assert_eq!(stats.calls, 3);
    assert_eq!(stats.skipped_quarantined, frames - 3);
    let status = set.status();
    let reason = status.plugin(name).unwrap().quarantined.clone().unwrap();
    assert!(reason.contains("3 consecutive failures"), "{reason}");
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let s = Spec::new("spinner", "1.0.0").prelude("(loop $l (br $l))");
    let set = run_beside_bystander(&s, 6);
    check_quarantined(&set, "spinner", FailureKind::Deadline, 6);
}

#[test]
fn a_1gb_allocation_is_refused_and_memory_stays_capped() {
    let s = Spec::new("hog", "1.0.0")
        .prelude("(if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1)) (then unreachable))");
    let set = run_beside_bystander(&s, 5);
    check_quarantined(&set, "hog", FailureKind::MemoryExceeded, 5);
}

#[test]
fn a_large_alloc_request_from_the_host_is_refused_too() {
    // A 70 MB frame cannot fit under the 64 MiB cap: pitwall_alloc's grow fails.
    let mut set = set();
    set.control()
        .deploy(&Spec::new("small", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    let big = vec![0u8; 70 << 20];
    let out = set.on_frame(&big, 0);
    assert_eq!(
        out.failures[0].failure.kind,
        FailureKind::MemoryExceeded,
        "{out:?}"
    );
}

#[test]
fn a_trap_is_contained() {
    let s = Spec::new("crasher", "1.0.0").prelude("unreachable");
    let set = run_beside_bystander(&s, 5);
    check_quarantined(&set, "crasher", FailureKind::Trap, 5);
    // Each trap killed the instance; the next call got a fresh one.
    assert_eq!(set.stats("crasher").unwrap().restarts, 2);
}

#[test]
fn garbage_output_is_dropped() {
    let s = Spec::new("liar", "1.0.0")
        .prelude("(return (i64.or (i64.shl (i64.const 2048) (i64.const 32)) (i64.const 32)))");
    let set = run_beside_bystander(&s, 4);
    check_quarantined(&set, "liar", FailureKind::BadReply, 4);
}

#[test]
fn out_of_bounds_replies_and_negative_returns_are_failures() {
    let s = Spec::new("wild", "1.0.0").prelude("(return (i64.const 0x7fff000000001000))");
    let set = run_beside_bystander(&s, 3);
    check_quarantined(&set, "wild", FailureKind::BadReply, 3);
    let s = Spec::new("sulky", "1.0.0").prelude("(return (i64.const -7))");
    let set = run_beside_bystander(&s, 3);
    check_quarantined(&set, "sulky", FailureKind::NegativeReturn, 3);
}

#[test]
fn a_stale_window_is_a_bad_reply() {
    // Echoes window + 1.
    let mut s = Spec::new("stale", "1.0.0");
    s.reply.window_start_ms = 0;
    let wat = s.wat().replace(
        "(call $window (local.get $ptr))",
        "(i64.add (call $window (local.get $ptr)) (i64.const 1))",
    );
    let mut set = set();
    set.control()
        .deploy(&wat::parse_str(&wat).unwrap(), Boundary::Next)
        .unwrap();
    let out = set.on_frame(&frame(0), 0);
    let f = &out.failures[0].failure;
    assert_eq!(f.kind, FailureKind::BadReply);
    assert!(f.message.contains("stale"), "{f}");
}

#[test]
fn a_trap_restarts_the_instance_with_fresh_state() {
    // Traps on window 3000 only; its counter restarts from zero afterwards.
    let s = Spec::counter("flaky", "1.0.0").prelude(
        "(if (i64.eq (call $window (local.get $ptr)) (i64.const 3000)) (then unreachable))",
    );
    let mut set = set();
    set.control().deploy(&s.wasm(), Boundary::Next).unwrap();
    let mut got = Vec::new();
    for i in 0..6 {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        got.push(counts(&out, "flaky").first().map(|c| c.1));
        if i == 3 {
            assert_eq!(out.failures[0].action, FailureAction::Counted);
        }
        if i == 4 {
            assert!(
                out.events
                    .iter()
                    .any(|e| matches!(e, LifecycleEvent::Restarted { .. }))
            );
        }
    }
    assert_eq!(
        got,
        [Some(1.0), Some(2.0), Some(3.0), None, Some(1.0), Some(2.0)]
    );
    let stats = set.stats("flaky").unwrap();
    assert_eq!(
        (stats.failures.trap, stats.restarts, stats.quarantines),
        (1, 1, 0)
    );
}

#[test]
fn quarantine_can_be_lifted() {
    let s = Spec::new("crasher", "1.0.0").prelude("unreachable");
    let mut set = run_beside_bystander(&s, 4);
    let t = set.control().resume("crasher", Boundary::Next).unwrap();
    let out = set.on_frame(&frame(4_000), 4_000);
    assert!(t.try_outcome().unwrap().is_ok());
    assert_eq!(out.failures.len(), 1, "called again after resume");
    assert!(
        set.status()
            .plugin("crasher")
            .unwrap()
            .quarantined
            .is_none()
    );
}

#[test]
fn a_bad_swap_rolls_back_automatically() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(&Spec::counter("model", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    for i in 0..5 {
        set.on_frame(&frame(i * 1000), i * 1000);
    }
    let bad = Spec::counter("model", "2.0.0").prelude("unreachable");
    control.deploy(&bad.wasm(), Boundary::At(5_000)).unwrap();
    let mut seen = Vec::new();
    for i in 5..12 {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        seen.push(counts(&out, "model"));
        if i == 7 {
            assert_eq!(out.failures[0].action, FailureAction::RolledBack, "{out:?}");
            assert!(out.events.iter().any(|e| matches!(
                e,
                LifecycleEvent::RolledBack { automatic: true, to, .. } if to == "model@1.0.0"
            )));
        }
    }
    // Frames 5, 6, 7 went to 2.0.0 and failed; from 8 on 1.0.0 resumes with
    // its state as of the swap (5 frames counted), so it counts 6, 7, …
    let v1 = |n: f64| vec![("1.0.0".to_string(), n)];
    assert_eq!(
        seen,
        vec![vec![], vec![], vec![], v1(6.0), v1(7.0), v1(8.0), v1(9.0)]
    );
    let stats = set.stats("model").unwrap();
    assert_eq!(
        (stats.auto_rollbacks, stats.failures.trap, stats.swaps),
        (1, 3, 2)
    );
    let versions = control.versions("model").unwrap();
    assert_eq!(versions[0].info.id, "model@1.0.0");
    assert_eq!(versions[0].state, VersionState::Live);
    assert_eq!(versions[1].info.id, "model@2.0.0");
    assert!(matches!(&versions[1].state, VersionState::RolledBack(r) if r.contains("automatic")));
}

#[test]
fn an_old_version_failing_is_quarantined_not_rolled_back() {
    let config = RuntimeConfig {
        rollback_window: 2,
        max_instances: 16,
        ..RuntimeConfig::default()
    };
    let mut set = PluginSet::new(runtime_with(config));
    let control = set.control();
    control
        .deploy(&Spec::counter("model", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    // 2.0.0 works for 4 windows, then traps for ever.
    let v2 = Spec::counter("model", "2.0.0").prelude(
        "(if (i64.ge_s (call $window (local.get $ptr)) (i64.const 5000)) (then unreachable))",
    );
    control.deploy(&v2.wasm(), Boundary::At(1_000)).unwrap();
    for i in 0..10 {
        set.on_frame(&frame(i * 1000), i * 1000);
    }
    let stats = set.stats("model").unwrap();
    assert_eq!(
        (stats.auto_rollbacks, stats.quarantines),
        (0, 1),
        "{stats:?}"
    );
    assert_eq!(set.live_version("model").unwrap().as_ref(), "model@2.0.0");
}

#[test]
fn guest_logging_is_rate_limited_and_never_traps() {
    let s = Spec::new("chatty", "1.0.0").prelude(
        "(local $i i32)
         (loop $l
           (call $log (i32.const 2) (i32.const 3000) (i32.const 20))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))
         (call $log (i32.const 99) (i32.const 3000) (i32.const 20))
         (call $log (i32.const 2) (i32.const -5) (i32.const 20))
         (call $log (i32.const 2) (i32.const 2048) (i32.const 100000))",
    );
    let wat = s.wat();
    let mut set = set();
    set.control()
        .deploy(&wat::parse_str(&wat).unwrap(), Boundary::Next)
        .unwrap();
    let out = set.on_frame(&frame(0), 0);
    assert!(out.failures.is_empty(), "{out:?}");
    // 20 of 50 pass the burst; 30 suppressed + 3 invalid.
    assert_eq!(set.stats("chatty").unwrap().log_dropped, 33);
}
