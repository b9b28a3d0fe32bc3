//! Model-parameter replacement: same code, new blob, new model version in
//! provenance, `params_generation` bumped.

use pitwall_plugin_sdk::InsightBody;
use pitwall_runtime::{Boundary, LifecycleEvent};
use sha2::{Digest, Sha256};

use crate::common::{Spec, frame, set};

/// Publishes metric `params` = generation * 1000 + params_len, after reading
/// the blob (bounds-checked) into its memory.
fn params_plugin() -> Vec<u8> {
    let mut s = Spec::counter("fuel", "1.0.0");
    s.stateful = false;
    let wat = s.wat().replace(
        "(f64.convert_i64_u (global.get $count))",
        "(f64.convert_i64_u (i64.add (i64.mul (call $params_generation) (i64.const 1000))
            (i64.extend_i32_u (call $params_read (i32.const 4096) (call $params_len)))))",
    );
    wat::parse_str(wat).unwrap()
}

fn value(out: &pitwall_runtime::FrameOutcome) -> (f64, String) {
    let i = &out.insights[0];
    match i.body() {
        InsightBody::Metric(m) => (m.value(), i.model_version().to_string()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn parameters_replace_at_a_boundary_and_show_in_provenance() {
    let mut set = set();
    let control = set.control();
    // Parameters staged before the plugin exists are used when it loads.
    control
        .set_params("fuel", &b"{\"k\":1}"[..], Boundary::Next)
        .unwrap();
    set.apply_pending(0);
    control.deploy(&params_plugin(), Boundary::Next).unwrap();
    let (v, model) = value(&set.on_frame(&frame(0), 0));
    assert_eq!(v, 1007.0);
    let hash: String = Sha256::digest(b"{\"k\":1}")
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(model, hash);

    let t = control
        .set_params("fuel", &b"{\"k\":22}"[..], Boundary::At(2_000))
        .unwrap();
    assert_eq!(value(&set.on_frame(&frame(1_000), 1_000)).0, 1007.0);
    let out = set.on_frame(&frame(2_000), 2_000);
    assert_eq!(value(&out).0, 2008.0);
    assert_ne!(value(&out).1, hash);
    assert!(matches!(
        t.try_outcome().unwrap().unwrap().event,
        LifecycleEvent::ParamsUpdated { generation: 2, .. }
    ));
    // The same blob again is refused as a no-op.
    let t = control
        .set_params("fuel", &b"{\"k\":22}"[..], Boundary::Next)
        .unwrap();
    set.on_frame(&frame(3_000), 3_000);
    assert!(t.try_outcome().unwrap().is_err());
    let status = control.plugin("fuel").unwrap();
    assert_eq!(status.params.unwrap().generation, 2);
    assert_eq!(status.stats.params_updates, 1);
}

#[test]
fn without_parameters_the_model_version_is_none() {
    let mut set = set();
    set.control()
        .deploy(&params_plugin(), Boundary::Next)
        .unwrap();
    assert_eq!(value(&set.on_frame(&frame(0), 0)), (0.0, "none".into()));
}
