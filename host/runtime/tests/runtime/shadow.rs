//! Shadow runs: a candidate sees the same frames, its insights are compared
//! and never published; it is promoted or discarded on command.

use pitwall_plugin_sdk::Prediction;
use pitwall_runtime::{Boundary, Handover, LifecycleEvent};

use crate::common::{Spec, counts, frame, set};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn comparison_numbers_are_right_and_promotion_takes_effect_at_a_boundary() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(
            &Spec::fixed("overtake", "1.0.0", 0.30, 10.0).wasm(),
            Boundary::Next,
        )
        .unwrap();
    set.on_frame(&frame(0), 0);

    // Candidate B: p 0.36 (|Δ| 0.06 > 0.05), metric 12.5 (|Δ| 2.5), and one
    // extra prediction the live version does not make.
    let mut b = Spec::fixed("overtake", "1.1.0", 0.36, 12.5);
    b.reply.predictions.push(
        Prediction::builder("p_overtake", "16", "55")
            .probability(0.5)
            .horizon_laps(2)
            .build()
            .unwrap(),
    );
    control.shadow(&b.wasm(), Boundary::At(1_000)).unwrap();
    for i in 1..=10 {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        assert!(
            out.insights.iter().all(|x| x.plugin_version() == "1.0.0"),
            "shadow output published"
        );
        assert_eq!(out.insights.len(), 3);
        let c = out.shadow[0].comparison;
        assert!(!c.agree);
        assert_eq!((c.predictions_matched, c.predictions_unmatched), (1, 1));
        assert_eq!((c.stories_matched, c.stories_unmatched), (1, 0));
        assert!(close(c.sum_abs_probability_diff, 0.06), "{c:?}");
        assert!(close(c.sum_abs_metric_diff, 2.5), "{c:?}");
    }
    let s = control.plugin("overtake").unwrap().shadow.unwrap();
    assert_eq!(s.candidate.id, "overtake@1.1.0");
    assert_eq!((s.stats.frames_compared, s.stats.frames_agreed), (10, 0));
    assert_eq!(s.agreement_rate, Some(0.0));
    assert!(close(s.mean_abs_probability_diff.unwrap(), 0.06));
    assert!(close(s.mean_abs_metric_diff.unwrap(), 2.5));
    assert_eq!(s.stats.predictions_unmatched, 10);

    // Discard B; shadow C, which agrees within tolerance (|Δp| = 0.02, same metric).
    let t = control.discard("overtake", Boundary::Next).unwrap();
    let out = set.on_frame(&frame(11_000), 11_000);
    assert!(out.shadow.is_empty());
    assert!(matches!(
        t.try_outcome().unwrap().unwrap().event,
        LifecycleEvent::ShadowDiscarded { .. }
    ));
    control
        .shadow(
            &Spec::fixed("overtake", "1.2.0", 0.32, 10.0).wasm(),
            Boundary::Next,
        )
        .unwrap();
    for i in 12..16 {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        assert!(out.shadow[0].comparison.agree);
    }
    let s = control.plugin("overtake").unwrap().shadow.unwrap();
    assert_eq!(s.agreement_rate, Some(1.0));
    assert!(close(s.mean_abs_probability_diff.unwrap(), 0.02));
    assert_eq!(s.mean_abs_metric_diff, Some(0.0));

    // Promote at 20 000: frames before go to 1.0.0, from it on to 1.2.0.
    control.promote("overtake", Boundary::At(20_000)).unwrap();
    for i in 16..23 {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        let want = if i < 20 { "1.0.0" } else { "1.2.0" };
        assert!(
            out.insights.iter().all(|x| x.plugin_version() == want),
            "window {i}"
        );
        assert_eq!(out.insights.len(), 3);
        assert_eq!(out.shadow.is_empty(), i >= 20);
    }
    assert!(control.plugin("overtake").unwrap().shadow.is_none());
    assert!(
        control
            .promote("overtake", Boundary::Next)
            .unwrap()
            .wait(std::time::Duration::ZERO)
            .is_err()
    );
}

#[test]
fn a_stateful_candidate_starts_from_the_live_state_and_keeps_it_on_promotion() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(&Spec::counter("c", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    for i in 0..3 {
        set.on_frame(&frame(i * 1000), i * 1000);
    }
    let t = control
        .shadow(&Spec::counter("c", "2.0.0").wasm(), Boundary::Next)
        .unwrap();
    for i in 3..6 {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        // Same count on both sides: the candidate took over the live state.
        assert!(out.shadow[0].comparison.agree, "{out:?}");
    }
    assert!(matches!(
        t.try_outcome().unwrap().unwrap().event,
        LifecycleEvent::ShadowStarted {
            handover: Handover::Restored { .. },
            ..
        }
    ));
    control.promote("c", Boundary::Next).unwrap();
    let out = set.on_frame(&frame(6_000), 6_000);
    assert_eq!(counts(&out, "c"), vec![("2.0.0".into(), 7.0)]);
}

#[test]
fn a_failing_candidate_never_hurts_the_live_version() {
    let mut set = set();
    let control = set.control();
    control
        .deploy(&Spec::counter("c", "1.0.0").wasm(), Boundary::Next)
        .unwrap();
    set.on_frame(&frame(0), 0);
    control
        .shadow(
            &Spec::counter("c", "2.0.0").prelude("unreachable").wasm(),
            Boundary::Next,
        )
        .unwrap();
    for i in 1..8 {
        let out = set.on_frame(&frame(i * 1000), i * 1000);
        assert_eq!(counts(&out, "c"), vec![("1.0.0".into(), (i + 1) as f64)]);
    }
    let status = control.plugin("c").unwrap();
    let s = status.shadow.unwrap();
    assert!(s.stats.stopped);
    assert_eq!(s.stats.candidate_failures, 3);
    assert_eq!(status.stats.failures.total(), 0);
}
