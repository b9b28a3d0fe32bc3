use pitwall_plugin_counter::Counter as V1;
use pitwall_plugin_counter_v2::Counter as V2;
use pitwall_plugin_sdk::testing::{Harness, frame};
use pitwall_plugin_sdk::{CallError, InsightsData, testing::HarnessError};

fn count(r: &InsightsData) -> (f64, f64, String) {
    let s = &r.stories[0];
    (
        s.evidence()[0].1,
        s.evidence()[1].1,
        s.headline().to_string(),
    )
}

#[test]
fn the_count_survives_swaps_both_ways() {
    let mut a = Harness::<V1>::new();
    assert_eq!(a.info().id(), "counter@1.0.0");
    assert_eq!(a.info().state_version(), Some(1));
    for s in 0..3 {
        a.run(&frame(s, vec![])).unwrap();
    }
    let (mut b, handed_over) = a.swap_to::<V2>().unwrap();
    assert!(handed_over);
    assert_eq!(b.info().id(), "counter@2.0.0");
    let r = b.run(&frame(3, vec![])).unwrap();
    assert_eq!(count(&r), (4.0, 2.0, "counter 2.0.0: 4 frames".into()));
    // And back (a rollback).
    let (mut a, handed_over) = b.swap_to::<V1>().unwrap();
    assert!(handed_over);
    assert_eq!(
        count(&a.run(&frame(4, vec![])).unwrap()),
        (5.0, 1.0, "counter 1.0.0: 5 frames".into())
    );
}

#[test]
fn restore_refuses_an_unknown_state_version_or_bad_bytes() {
    let mut a = Harness::<V1>::new();
    a.run(&frame(0, vec![])).unwrap();
    let snap = a.snapshot().unwrap();
    assert_eq!(snap, br#"{"frames":1}"#);
    let mut b = Harness::<V2>::new();
    let err = b.restore(&snap, 2).unwrap_err();
    assert!(
        matches!(&err, HarnessError::Call(CallError::Plugin(m)) if m.contains("state version 2")),
        "{err}"
    );
    assert!(b.restore(b"{not json", 1).is_err());
    // Refused: it starts fresh.
    assert_eq!(count(&b.run(&frame(1, vec![])).unwrap()).0, 1.0);
    assert!(b.logs().iter().any(|(_, m)| m.contains("refused")));
    b.restore(&snap, 1).unwrap();
    assert_eq!(b.plugin().frames(), 1);
}
