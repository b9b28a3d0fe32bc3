//! The hostile plugins, natively: the harness reports what the host would
//! count (the WASM-level behaviour, deadlines and memory caps, is tested by
//! the runtime against the built modules).

use pitwall_plugin_sdk::testing::{Harness, HarnessError, car, frame};

#[test]
fn trap_works_once_then_panics_every_frame() {
    let mut h = Harness::<pitwall_plugin_hostile_trap::Trap>::new();
    let f = frame(0, vec![car(1, 1, f64::NAN)]);
    assert!(h.run(&f).unwrap().is_empty());
    for _ in 0..4 {
        assert!(matches!(h.run(&f), Err(HarnessError::Panic(_))));
    }
}

#[test]
fn garbage_replies_are_all_refused_by_the_host_check() {
    use pitwall_plugin_hostile_garbage::{Garbage, NOT_FLATBUFFER, raw_reply};
    use pitwall_plugin_sdk::{INSIGHTS_VERSION, InsightsData, InsightsError};
    let kinds: Vec<_> = (1..=6).map(Garbage::for_call).collect();
    assert_eq!(kinds[0], kinds[5]);
    assert!(InsightsData::from_flatbuffer(NOT_FLATBUFFER).is_err());
    let invalid = InsightsData::from_flatbuffer(&raw_reply(INSIGHTS_VERSION, 1.5)).unwrap_err();
    assert!(
        matches!(
            invalid,
            InsightsError::Item {
                list: "predictions",
                ..
            }
        ),
        "{invalid}"
    );
    let version = InsightsData::from_flatbuffer(&raw_reply(7, 0.5)).unwrap_err();
    assert!(matches!(
        version,
        InsightsError::UnsupportedVersion { found: 7, .. }
    ));
    let echoed = frame(0, vec![]).to_flatbuffer();
    assert_eq!(
        InsightsData::from_flatbuffer(&echoed).unwrap_err(),
        InsightsError::EchoedFrame
    );
}
