//! The plugin directory watcher: a `.wasm` dropped into the directory is
//! compiled in the background and swapped in at a boundary.

use std::path::Path;
use std::time::{Duration, Instant};

use pitwall_runtime::{Boundary, PluginSet, PluginWatcher, WatchConfig, WatchOutcome};

use crate::common::{Spec, counts, frame, set};

/// Writes `bytes` to `dir/name` atomically (temp file, then rename).
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Runs frames until `done` says so (generous timeout, no timing assertions).
fn frames_until(
    set: &mut PluginSet,
    ws: &mut i64,
    mut done: impl FnMut(&pitwall_runtime::FrameOutcome) -> bool,
) -> pitwall_runtime::FrameOutcome {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = set.on_frame(&frame(*ws), *ws);
        *ws += 1000;
        if done(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher did not deliver in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn dropping_a_new_wasm_swaps_it_in_at_a_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = set();
    drop_file(
        dir.path(),
        "counter.wasm",
        &Spec::counter("counter", "1.0.0").wasm(),
    );
    let watcher = PluginWatcher::start(
        dir.path(),
        set.control(),
        WatchConfig {
            debounce: Duration::from_millis(50),
            boundary: Boundary::Next,
            initial_scan: true,
        },
    )
    .unwrap();
    let mut ws = 0;
    let mut total = 0.0;
    frames_until(&mut set, &mut ws, |out| {
        let c = counts(out, "counter");
        if let Some((_, v)) = c.first() {
            total = *v;
        }
        !c.is_empty()
    });
    assert_eq!(total, 1.0);

    drop_file(
        dir.path(),
        "counter.wasm",
        &Spec::counter("counter", "2.0.0").wasm(),
    );
    let mut last = total;
    let out = frames_until(&mut set, &mut ws, |out| {
        let c = counts(out, "counter");
        assert_eq!(c.len(), 1, "exactly one version per window");
        assert_eq!(c[0].1, last + 1.0, "state continues across the swap");
        last = c[0].1;
        c[0].0 == "2.0.0"
    });
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, pitwall_runtime::LifecycleEvent::Swapped { .. }))
    );

    // Params file, a misnamed plugin, and a same-bytes rewrite (deduplicated).
    drop_file(dir.path(), "counter.params.json", b"{\"k\":1}");
    drop_file(
        dir.path(),
        "wrong.wasm",
        &Spec::counter("counter", "3.0.0").wasm(),
    );
    drop_file(
        dir.path(),
        "counter.wasm",
        &Spec::counter("counter", "2.0.0").wasm(),
    );
    let (mut params, mut rejected, mut v2_deploys) = (false, false, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(params && rejected) {
        assert!(Instant::now() < deadline, "watcher events missing");
        set.on_frame(&frame(ws), ws);
        ws += 1000;
        while let Ok(e) = watcher.events().try_recv() {
            match e.outcome {
                WatchOutcome::ParamsQueued { plugin, .. } => {
                    assert_eq!(plugin, "counter");
                    params = true;
                }
                WatchOutcome::Rejected { error } => {
                    assert!(
                        error.to_string().contains("rename it to counter.wasm"),
                        "{error}"
                    );
                    rejected = true;
                }
                WatchOutcome::Deployed { plugin, .. } => {
                    assert_ne!(plugin, "counter@3.0.0");
                    v2_deploys += usize::from(plugin == "counter@2.0.0");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // v1 and v2 were deployed once each; the rewrite of v2 was deduplicated.
    assert!(v2_deploys <= 1, "same bytes deployed twice");
    set.on_frame(&frame(ws), ws);
    let status = set.status();
    let p = status.plugin("counter").unwrap();
    assert_eq!(p.live.id, "counter@2.0.0");
    assert_eq!(p.params.as_ref().unwrap().generation, 1);
    drop(watcher);
}
