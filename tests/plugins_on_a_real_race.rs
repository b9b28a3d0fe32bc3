//! Issue 4's acceptance tests with the repository's **real Rust plugins**
//! (`plugins/`, built to WASM by `pitwall-plugins-bundle`) on a **real race**:
//! every frame of the bundled 2024 Austrian GP (`data/2024-austria-race`,
//! ≈ 5 500 one-second windows, 20 cars), assembled through the engine exactly as
//! `pitwall replay --frames-out x.pwrf` does (`support/race_frames.rs`).
//!
//! The runtime's own tests (`host/runtime/tests/runtime/`) use WAT plugins;
//! these check the same guarantees with what ships:
//!
//! * hot swap under load: `counter` swapped back and forth hundreds of times
//!   from a control thread while the race runs at full speed beside
//!   `gap-watch`, `pace` and `drs-threat`;
//! * every hostile plugin beside the examples; automatic rollback of a bad
//!   version; determinism; a shadow run and its promotion.
//!
//! "Identical" below means the per-frame JSON of the published insights
//! (provenance and content hash included) is byte-identical to a run of the
//! three example plugins alone ([`baseline`], computed once per test binary).
//!
//! Runtime configuration: the default limits, except the per-call deadline
//! (see [`config`]): this machine is shared, and a 5 ms wall-clock deadline
//! can fail a µs call that happened to be descheduled, which would make a
//! comparison flaky without saying anything about the runtime.

#[path = "support/race_frames.rs"]
mod race_frames;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use pitwall_plugin_sdk::InsightBody;
use pitwall_runtime::{
    Boundary, ControlError, FailureAction, FailureKind, FrameOutcome, Handover, LifecycleEvent,
    LoadError, PluginSet, PublishedInsight, Runtime, RuntimeConfig, VersionState,
};
use race_frames::RaceFrame;

/// The example plugins (bundle keys = plugin names), in the set's call order.
const EXAMPLES: [&str; 3] = ["drs-threat", "gap-watch", "pace"];

/// Guard against a hang only (a ticket never applied); never reached when the
/// test passes.
const HANG: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Every frame of the race, built once per test binary (≈ 2 s).
fn frames() -> &'static [RaceFrame] {
    static FRAMES: OnceLock<Vec<RaceFrame>> = OnceLock::new();
    FRAMES.get_or_init(race_frames::austria_frames)
}

/// The default runtime limits with a per-call deadline of `deadline`.
fn config(deadline: Duration) -> RuntimeConfig {
    RuntimeConfig {
        deadline,
        ..RuntimeConfig::default()
    }
}

/// Generous: no real plugin needs more than a few hundred µs per frame; only
/// `hostile-spin` ever reaches a deadline (and gets its own, see its test).
fn relaxed() -> RuntimeConfig {
    config(Duration::from_millis(500))
}

fn wasm(key: &str) -> Vec<u8> {
    let path = pitwall_plugins_bundle::wasm_path(key);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A set with `keys` loaded before the first frame.
fn set_with(cfg: RuntimeConfig, keys: &[&str]) -> PluginSet {
    let mut set = PluginSet::new(Runtime::new(cfg).expect("runtime starts"));
    let control = set.control();
    let tickets: Vec<_> = keys
        .iter()
        .map(|k| control.deploy(&wasm(k), Boundary::Next).expect(k))
        .collect();
    let events = set.apply_pending(frames()[0].window_start_ms);
    assert_eq!(events.len(), keys.len(), "{events:?}");
    for t in tickets {
        let applied = t.wait(HANG).unwrap();
        assert!(
            matches!(applied.event, LifecycleEvent::Loaded { .. }),
            "{applied:?}"
        );
    }
    set
}

fn is_example(i: &PublishedInsight) -> bool {
    EXAMPLES.contains(&i.plugin_name())
}

/// The frame's insights of the example plugins, as JSON.
fn examples_json(out: &FrameOutcome) -> String {
    let v: Vec<&PublishedInsight> = out.insights.iter().filter(|i| is_example(i)).collect();
    serde_json::to_string(&v).unwrap()
}

/// The three example plugins alone over the whole race: per frame, their
/// insights as JSON (computed once per test binary). Every frame is answered
/// by every example, without a failure or a lifecycle event.
fn baseline() -> &'static [String] {
    static BASELINE: OnceLock<Vec<String>> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let mut set = set_with(relaxed(), &EXAMPLES);
        let out: Vec<String> = frames()
            .iter()
            .map(|f| {
                let out = set.on_frame(&f.bytes, f.window_start_ms);
                assert!(out.failures.is_empty() && out.events.is_empty(), "{out:?}");
                examples_json(&out)
            })
            .collect();
        for name in EXAMPLES {
            let s = set.stats(name).unwrap();
            let n = frames().len() as u64;
            assert_eq!((s.frames, s.calls, s.ok), (n, n, n), "{name}: {s:?}");
        }
        out
    })
}

/// Checks one frame's example insights against the baseline.
fn assert_examples_unchanged(i: usize, out: &FrameOutcome, context: &str) {
    let got = examples_json(out);
    let want = &baseline()[i];
    if got != *want {
        let at = got
            .bytes()
            .zip(want.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let around = |s: &str| s[at.saturating_sub(80)..(at + 160).min(s.len())].to_string();
        panic!(
            "{context}: frame {i} (window {}): the example plugins' insights differ from \
             the run without it\n got: …{}…\nwant: …{}…",
            frames()[i].window_start_ms,
            around(&got),
            around(want)
        );
    }
}

/// `bytes` with its `pitwall:info` custom section replaced by `info` (a real
/// plugin's code under another identity), or with `extra` appended as a new
/// custom section (the same plugin, a different build: another content hash).
fn rewrite_sections(bytes: &[u8], info: Option<&str>, extra: Option<(&str, &[u8])>) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn read_leb(b: &[u8], at: &mut usize) -> usize {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let byte = b[*at];
            *at += 1;
            v |= ((byte & 0x7f) as usize) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    fn custom(name: &str, data: &[u8], out: &mut Vec<u8>) {
        let mut payload = Vec::new();
        leb(name.len(), &mut payload);
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data);
        out.push(0);
        leb(payload.len(), out);
        out.extend_from_slice(&payload);
    }
    assert_eq!(&bytes[..4], b"\0asm");
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    let mut replaced = false;
    while at < bytes.len() {
        let start = at;
        let id = bytes[at];
        at += 1;
        let size = read_leb(bytes, &mut at);
        let body = at;
        at += size;
        if id == 0 {
            let mut p = body;
            let len = read_leb(bytes, &mut p);
            if &bytes[p..p + len] == b"pitwall:info"
                && let Some(info) = info
            {
                custom("pitwall:info", info.as_bytes(), &mut out);
                replaced = true;
                continue;
            }
        }
        out.extend_from_slice(&bytes[start..at]);
    }
    assert!(info.is_none() || replaced, "no pitwall:info section");
    if let Some((name, data)) = extra {
        custom(name, data, &mut out);
    }
    out
}

fn story(i: &PublishedInsight) -> &pitwall_plugin_sdk::Story {
    match i.body() {
        InsightBody::Story(s) => s,
        other => panic!("expected a story, got {other:?}"),
    }
}

/// The frame count a `counter` story reports (its `frames` evidence).
fn count_of(i: &PublishedInsight) -> f64 {
    story(i)
        .evidence()
        .iter()
        .find(|(k, _)| k == "frames")
        .expect("counter story has `frames` evidence")
        .1
}

// ---------------------------------------------------------------------------
// The race and the plugins
// ---------------------------------------------------------------------------

/// The frames are the whole real race, and the example plugins really work on
/// it (otherwise every "identical to the baseline" below would be vacuous).
#[test]
fn the_real_race_gives_thousands_of_frames_the_examples_answer() {
    let frames = frames();
    assert!(frames.len() > 5_000, "{} frames", frames.len());
    // One frame per 1 s window that had data, in order (a second without a
    // single position sample has no frame).
    let mut contiguous = 0;
    for w in frames.windows(2) {
        let step = w[1].window_start_ms - w[0].window_start_ms;
        assert!(step > 0 && step % 1_000 == 0, "{step}");
        contiguous += usize::from(step == 1_000);
    }
    assert!(contiguous * 100 >= (frames.len() - 1) * 99, "{contiguous}");
    assert!(frames.iter().all(|f| f.cars == 20));
    assert!(frames.iter().map(|f| f.lap).max() >= Some(71));

    let mut per_plugin: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for json in baseline() {
        let v: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
        let mut seen = BTreeMap::new();
        for i in &v {
            let plugin = i["provenance"]["plugin"].as_str().unwrap().to_string();
            *seen.entry(plugin).or_insert(0usize) += 1;
        }
        for (p, n) in seen {
            let e = per_plugin.entry(p).or_default();
            e.0 += 1;
            e.1 += n;
        }
    }
    // (frames with output, insights)
    let (gw_frames, gw) = per_plugin["gap-watch@1.0.0"];
    let (pace_frames, pace) = per_plugin["pace@1.0.0"];
    let (drs_frames, drs) = per_plugin["drs-threat@1.0.0"];
    eprintln!("{per_plugin:?}");
    assert!(
        gw >= 10,
        "gap-watch told {gw} stories in {gw_frames} frames"
    );
    assert!(
        pace_frames > frames.len() / 2 && pace > 20 * pace_frames,
        "pace: {pace} metrics in {pace_frames} frames"
    );
    assert!(
        drs_frames > frames.len() / 2 && drs > 3 * drs_frames,
        "drs-threat: {drs} predictions in {drs_frames} frames"
    );
}

// ---------------------------------------------------------------------------
// Hot swap under load
// ---------------------------------------------------------------------------

/// `counter` is swapped between 1.0.0 and 2.0.0 hundreds of times (gaps of 1,
/// 5, 13 and 29 windows) by a control thread — compile, instantiate, queue
/// with `Boundary::At(window)` — while the frame loop replays the race at full
/// speed beside the three example plugins. The frame loop only waits, at a
/// boundary, until the control thread has queued that boundary's swap, so the
/// schedule is exact whatever the threads' timing.
#[test]
fn counter_hot_swapped_hundreds_of_times_under_load_loses_no_window() {
    let frames = frames();
    let mut set = set_with(
        relaxed(),
        &["counter-v1", "drs-threat", "gap-watch", "pace"],
    );
    let (v1, v2) = (wasm("counter-v1"), wasm("counter-v2"));
    let hash = |b: &[u8]| set.runtime().compile(b).unwrap().content_hash().to_string();
    let (h1, h2) = (hash(&v1), hash(&v2));

    let gaps = [1usize, 5, 13, 29];
    let mut boundaries = Vec::new();
    let mut at = 10;
    while at < frames.len() {
        boundaries.push(at);
        at += gaps[boundaries.len() % gaps.len()];
    }
    assert!(boundaries.len() >= 300, "{} swaps", boundaries.len());
    eprintln!("{} swaps over {} frames", boundaries.len(), frames.len());
    let windows: Vec<i64> = boundaries
        .iter()
        .map(|&i| frames[i].window_start_ms)
        .collect();

    let control = set.control();
    let (queued_tx, queued_rx) = std::sync::mpsc::channel::<usize>();
    let swapper = std::thread::spawn({
        let windows = windows.clone();
        move || {
            let mut applied = Vec::new();
            for (k, &w) in windows.iter().enumerate() {
                let bytes = if k % 2 == 0 { &v2 } else { &v1 };
                let ticket = control.swap("counter", bytes, Boundary::At(w)).unwrap();
                queued_tx.send(k).unwrap();
                applied.push(ticket.wait(HANG).unwrap());
            }
            applied
        }
    });

    let mut next = 0;
    let mut version = ("1.0.0", 1.0, &h1);
    for (i, f) in frames.iter().enumerate() {
        let at_boundary = boundaries.get(next) == Some(&i);
        if at_boundary {
            assert_eq!(queued_rx.recv_timeout(HANG), Ok(next));
            next += 1;
            version = if next % 2 == 1 {
                ("2.0.0", 2.0, &h2)
            } else {
                ("1.0.0", 1.0, &h1)
            };
        }
        let out = set.on_frame(&f.bytes, f.window_start_ms);
        assert!(out.failures.is_empty(), "frame {i}: {:?}", out.failures);
        if at_boundary {
            // The swap is applied at exactly this frame, before its calls, with
            // the count handed over.
            let (from, to) = if version.0 == "2.0.0" {
                ("counter@1.0.0", "counter@2.0.0")
            } else {
                ("counter@2.0.0", "counter@1.0.0")
            };
            match &out.events[..] {
                [
                    LifecycleEvent::Swapped {
                        plugin,
                        from: f,
                        to: t,
                        handover:
                            Handover::Restored {
                                from_state_version: 1,
                                ..
                            },
                        ..
                    },
                ] if plugin == "counter" && f == from && t == to => {}
                other => panic!("frame {i}: expected the swap {from} -> {to}, got {other:?}"),
            }
        } else {
            assert!(out.events.is_empty(), "frame {i}: {:?}", out.events);
        }
        // Exactly one counter reply per frame, from the scheduled version, and
        // the count carries on across every swap: frame i is the (i+1)-th.
        let counter: Vec<&PublishedInsight> = out
            .insights
            .iter()
            .filter(|x| x.plugin_name() == "counter")
            .collect();
        assert_eq!(counter.len(), 1, "frame {i}: {counter:?}");
        let c = counter[0];
        let n = (i + 1) as f64;
        assert_eq!(
            (c.plugin_version(), c.content_hash(), c.window_start_ms()),
            (version.0, version.2.as_str(), f.window_start_ms),
            "frame {i}"
        );
        assert_eq!(
            story(c).evidence(),
            &[
                ("frames".to_string(), n),
                ("version_major".to_string(), version.1)
            ],
            "frame {i}"
        );
        assert_eq!(
            story(c).headline(),
            format!("counter {}: {} frames", version.0, i + 1)
        );
        // Swapping counter does not disturb the others.
        assert_examples_unchanged(i, &out, "counter swaps");
    }
    assert_eq!(next, boundaries.len());

    let applied = swapper.join().unwrap();
    let at: Vec<i64> = applied.iter().map(|a| a.window_start_ms).collect();
    assert_eq!(at, windows, "a swap applied off its boundary");

    let n = frames.len() as u64;
    let swaps = boundaries.len() as u64;
    let s = set.stats("counter").unwrap();
    assert_eq!((s.frames, s.calls, s.ok), (n, n, n), "{s:?}");
    assert_eq!(
        (
            s.swaps,
            s.state_handovers,
            s.fresh_starts,
            s.failures.total()
        ),
        (swaps, swaps, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.insights_published, n);
    for name in EXAMPLES {
        let s = set.stats(name).unwrap();
        assert_eq!((s.frames, s.ok, s.swaps), (n, n, 0), "{name}: {s:?}");
    }
    let status = set.status();
    let counter = status.plugin("counter").unwrap();
    assert_eq!(counter.live.id, format!("counter@{}", version.0));
    assert_eq!(counter.pending, 0);
}

// ---------------------------------------------------------------------------
// Hostile plugins beside the real ones
// ---------------------------------------------------------------------------

/// What happened to the hostile plugin over the race.
#[derive(Debug, Default)]
struct HostileRun {
    /// Per failed frame: (frame index, kind, action, message).
    failures: Vec<(usize, FailureKind, FailureAction, String)>,
    quarantined_at: Option<usize>,
    restarts: usize,
}

/// Runs the whole race with the examples and `hostile` (loaded at frame
/// `from`, unloaded at frame `until` when given); checks at every frame that
/// the examples' insights are exactly the baseline's, that the hostile plugin
/// never publishes anything, and that nothing else fails.
fn beside_examples(
    cfg: RuntimeConfig,
    hostile: &str,
    from: usize,
    until: Option<usize>,
) -> (PluginSet, HostileRun) {
    let frames = frames();
    let mut set = set_with(cfg, &EXAMPLES);
    let control = set.control();
    let load = control
        .deploy(&wasm(hostile), Boundary::At(frames[from].window_start_ms))
        .unwrap();
    let unload = until.map(|u| {
        control
            .unload(hostile, Boundary::At(frames[u].window_start_ms))
            .unwrap()
    });
    let mut run = HostileRun::default();
    for (i, f) in frames.iter().enumerate() {
        let out = set.on_frame(&f.bytes, f.window_start_ms);
        assert_examples_unchanged(i, &out, hostile);
        assert!(
            out.insights.iter().all(is_example),
            "frame {i}: {hostile} published: {:?}",
            out.insights
                .iter()
                .filter(|x| !is_example(x))
                .collect::<Vec<_>>()
        );
        for fail in &out.failures {
            assert_eq!(&*fail.plugin, hostile, "frame {i}: {fail:?}");
            run.failures.push((
                i,
                fail.failure.kind,
                fail.action,
                fail.failure.message.clone(),
            ));
        }
        for e in &out.events {
            match e {
                LifecycleEvent::Quarantined { plugin, .. } if plugin == hostile => {
                    assert!(run.quarantined_at.is_none(), "quarantined twice");
                    run.quarantined_at = Some(i);
                }
                LifecycleEvent::Restarted { plugin, .. } if plugin == hostile => run.restarts += 1,
                LifecycleEvent::Loaded { plugin, .. } if plugin == hostile => {
                    assert_eq!(i, from)
                }
                LifecycleEvent::Unloaded { plugin, .. } if plugin == hostile => {
                    assert_eq!(Some(i), until)
                }
                other => panic!("frame {i}: unexpected {other:?}"),
            }
        }
    }
    assert_eq!(
        load.wait(HANG).unwrap().window_start_ms,
        frames[from].window_start_ms
    );
    if let Some(u) = unload {
        u.wait(HANG).unwrap();
    }
    for name in EXAMPLES {
        let s = set.stats(name).unwrap();
        let n = frames.len() as u64;
        assert_eq!((s.frames, s.ok, s.failures.total()), (n, n, 0), "{name}");
    }
    (set, run)
}

/// The hostile plugin was quarantined by its third failure in a row, right
/// after it turned bad; the reason names the failure; it is skipped from then on.
fn assert_quarantined(set: &PluginSet, name: &str, run: &HostileRun, kind: FailureKind) {
    let frames = frames().len();
    let first = run.failures[0].0;
    assert_eq!(run.failures.len(), 3, "{run:?}");
    assert!(run.failures.iter().all(|f| f.1 == kind), "{run:?}");
    assert_eq!(
        run.failures.iter().map(|f| f.2).collect::<Vec<_>>(),
        [
            FailureAction::Counted,
            FailureAction::Counted,
            FailureAction::Quarantined
        ]
    );
    assert_eq!(run.quarantined_at, Some(first + 2), "{run:?}");
    let status = set.status();
    let p = status.plugin(name).unwrap();
    let reason = p.quarantined.as_deref().expect("quarantined");
    assert!(
        reason.contains("3 consecutive failures") && reason.contains(kind.as_str()),
        "{reason}"
    );
    let s = p.stats;
    assert_eq!(s.failures.get(kind), 3);
    assert_eq!(s.quarantines, 1);
    assert_eq!(s.skipped_quarantined, (frames - first - 3) as u64, "{s:?}");
    assert_eq!(s.insights_published, 0);
}

#[test]
fn hostile_alloc_is_capped_quarantined_and_the_examples_keep_every_frame() {
    let cfg = relaxed();
    let cap = cfg.memory_limit;
    let (set, run) = beside_examples(cfg, "hostile-alloc", 0, None);
    assert_quarantined(&set, "hostile-alloc", &run, FailureKind::MemoryExceeded);
    assert_eq!(run.failures[0].0, 0, "fails from its first frame");
    // Memory stays bounded: every growth past the runtime's cap was refused
    // (the guest asked for more than the cap and did not get it).
    for (_, _, _, msg) in &run.failures {
        let num = |after: &str| -> usize {
            let rest = &msg[msg.find(after).unwrap_or_else(|| panic!("{msg}")) + after.len()..];
            rest.split(' ').next().unwrap().parse().unwrap()
        };
        let (asked, said_cap) = (num("refused growth to "), num("(cap "));
        assert_eq!(said_cap, cap, "{msg}");
        assert!(asked > cap, "{msg}");
    }
    // Every dead instance was replaced by a fresh one for the next call.
    assert_eq!(run.restarts, 2, "{run:?}");
}

#[test]
fn hostile_garbage_replies_are_dropped_and_it_is_quarantined() {
    let (set, run) = beside_examples(relaxed(), "hostile-garbage", 0, None);
    assert_quarantined(&set, "hostile-garbage", &run, FailureKind::BadReply);
    // Not a FlatBuffer, then out of bounds, then an invalid insight.
    let msgs: Vec<&str> = run.failures.iter().map(|f| f.3.as_str()).collect();
    assert!(msgs[1].contains("outside the guest's"), "{msgs:?}");
    assert!(msgs[2].contains("1.5"), "{msgs:?}");
    assert_eq!(run.restarts, 0, "a bad reply keeps the instance");
}

/// `hostile-spin` answers two frames, then loops forever. Its deadline is
/// 20 ms here (a missed deadline is what is tested; 20 ms keeps the
/// examples clear of it on a loaded machine). It runs for 600 frames of
/// the race (10 minutes mid-race) and is unloaded.
#[test]
fn hostile_spin_hits_the_deadline_and_the_examples_keep_every_frame() {
    let from = 1_000;
    let (set, run) = beside_examples(
        config(Duration::from_millis(20)),
        "hostile-spin",
        from,
        Some(from + 600),
    );
    assert!(set.stats("hostile-spin").is_none(), "unloaded");
    assert!(!run.failures.is_empty());
    assert_eq!(run.failures[0].0, from + 2, "{run:?}");
    for (_, kind, _, msg) in &run.failures {
        assert_eq!(*kind, FailureKind::Deadline);
        assert!(msg.contains("deadline"), "{msg}");
    }
    // Failing one call in three, it is quarantined by its failure rate at its
    // 20th call (7 of 20 failed).
    assert_eq!(run.quarantined_at, Some(from + 20), "{run:?}");
    assert_eq!(run.failures.len(), 7, "{run:?}");
    eprintln!(
        "hostile-spin: {} deadline failures, {} restarts, quarantined at {:?}",
        run.failures.len(),
        run.restarts,
        run.quarantined_at
    );
}

#[test]
fn hostile_trap_is_contained_and_the_examples_keep_every_frame() {
    let (_set, run) = beside_examples(relaxed(), "hostile-trap", 0, Some(600));
    assert!(!run.failures.is_empty());
    assert_eq!(run.failures[0].0, 1, "frame 0 is fine, then it traps");
    for (_, kind, _, msg) in &run.failures {
        assert_eq!(*kind, FailureKind::Trap);
        assert!(msg.contains("unreachable"), "{msg}");
    }
    assert!(run.quarantined_at.is_some(), "{run:?}");
    eprintln!(
        "hostile-trap: {} traps, {} restarts, quarantined at {:?}",
        run.failures.len(),
        run.restarts,
        run.quarantined_at
    );
}

#[test]
fn hostile_abi_is_refused_at_load_naming_the_abi_and_nothing_runs() {
    let mut set = set_with(relaxed(), &EXAMPLES);
    let err = set
        .control()
        .deploy(&wasm("hostile-abi"), Boundary::Next)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ControlError::Load(LoadError::UnsupportedAbi { .. })),
        "{err:?}"
    );
    assert!(
        msg.contains("9.0") && msg.contains("1.0") && msg.contains("rebuild"),
        "{msg}"
    );
    for (i, f) in frames().iter().enumerate() {
        let out = set.on_frame(&f.bytes, f.window_start_ms);
        assert!(out.events.is_empty() && out.failures.is_empty(), "{out:?}");
        assert_examples_unchanged(i, &out, "hostile-abi");
    }
    assert_eq!(set.plugins().collect::<Vec<_>>(), EXAMPLES);
}

// ---------------------------------------------------------------------------
// Automatic rollback
// ---------------------------------------------------------------------------

/// The bundle has no hostile build of a real plugin, so this relabels real
/// hostile modules: the compiled Rust code of `hostile-alloc` (traps out of
/// memory on every frame: the instance dies) and of `hostile-garbage` (bad
/// replies: the instance lives) with a `pitwall:info` that says
/// `counter@3.0.0`. `counter-v1` runs 2 000 frames, the bad version is swapped
/// in; its first three frames fail, it is quarantined and the runtime rolls
/// back to 1.0.0, whose standby instance resumes with its count as of the
/// swap. The examples never notice.
#[test]
fn a_bad_version_of_counter_is_rolled_back_automatically() {
    for (bad_key, kind) in [
        ("hostile-alloc", FailureKind::MemoryExceeded),
        ("hostile-garbage", FailureKind::BadReply),
    ] {
        let frames = frames();
        let kind_json = if bad_key == "hostile-alloc" {
            "story_generator"
        } else {
            "pair_model"
        };
        let bad = rewrite_sections(
            &wasm(bad_key),
            Some(&format!(
                r#"{{"name":"counter","version":"3.0.0","kind":"{kind_json}","abi":"1.0"}}"#
            )),
            None,
        );
        let mut set = set_with(
            relaxed(),
            &["counter-v1", "drs-threat", "gap-watch", "pace"],
        );
        let control = set.control();
        let swap_at = 2_000;
        let ticket = control
            .swap(
                "counter",
                &bad,
                Boundary::At(frames[swap_at].window_start_ms),
            )
            .unwrap();
        let mut counts = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let mut out = set.on_frame(&f.bytes, f.window_start_ms);
            assert_examples_unchanged(i, &out, bad_key);
            let c: Vec<(String, f64)> = out
                .insights
                .iter()
                .filter(|x| x.plugin_name() == "counter")
                .map(|x| (x.plugin_version().to_string(), count_of(x)))
                .collect();
            counts.push(c);
            match i {
                _ if i == swap_at => assert!(
                    matches!(
                        &out.events[..],
                        [LifecycleEvent::Swapped { to, handover: Handover::Fresh { .. }, .. }]
                            if to == "counter@3.0.0"
                    ),
                    "{:?}",
                    out.events
                ),
                _ if i == swap_at + 2 => {
                    // (a dead instance is restarted first)
                    out.events
                        .retain(|e| !matches!(e, LifecycleEvent::Restarted { .. }));
                    assert_eq!(out.failures.len(), 1);
                    assert_eq!(out.failures[0].failure.kind, kind);
                    assert_eq!(out.failures[0].action, FailureAction::RolledBack);
                    assert!(
                        matches!(
                            &out.events[..],
                            [
                                LifecycleEvent::Quarantined { version, .. },
                                LifecycleEvent::RolledBack { from, to, automatic: true, reason, .. },
                            ] if version == "counter@3.0.0" && from == "counter@3.0.0"
                                && to == "counter@1.0.0" && reason.contains(kind.as_str())
                        ),
                        "{:?}",
                        out.events
                    );
                }
                _ if i == swap_at + 1 => {
                    assert_eq!(out.failures.len(), 1, "{out:?}");
                    assert_eq!(out.failures[0].action, FailureAction::Counted);
                }
                _ => assert!(
                    out.failures.is_empty() && (i == swap_at || out.events.is_empty()),
                    "frame {i}: {out:?}"
                ),
            }
        }
        assert_eq!(
            ticket.wait(HANG).unwrap().window_start_ms,
            frames[swap_at].window_start_ms
        );
        // 1.0.0 counts frames 0..2000; the bad version's three windows give
        // nothing; 1.0.0 resumes from its state at the swap (2000 frames).
        for (i, c) in counts.iter().enumerate() {
            let want: Vec<(String, f64)> = match i {
                _ if i < swap_at => vec![("1.0.0".into(), (i + 1) as f64)],
                _ if i < swap_at + 3 => vec![],
                _ => vec![("1.0.0".into(), (i - 2) as f64)],
            };
            assert_eq!(c, &want, "{bad_key}: frame {i}");
        }
        let s = set.stats("counter").unwrap();
        assert_eq!(
            (
                s.swaps,
                s.auto_rollbacks,
                s.failures.get(kind),
                s.quarantines
            ),
            (2, 1, 3, 1),
            "{s:?}"
        );
        let versions = control.versions("counter").unwrap();
        assert_eq!(versions[0].info.id, "counter@1.0.0");
        assert_eq!(versions[0].state, VersionState::Live);
        let bad_entry = versions
            .iter()
            .find(|v| v.info.id == "counter@3.0.0")
            .unwrap();
        assert!(
            matches!(&bad_entry.state, VersionState::RolledBack(r) if r.contains("automatic rollback")),
            "{:?}",
            bad_entry.state
        );
        assert!(
            set.status()
                .plugin("counter")
                .unwrap()
                .quarantined
                .is_none()
        );
    }
}

// ---------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------

/// Two independent runs (each its own runtime, compile and instances) of the
/// example plugins and `counter` over the race publish byte-identical insights.
#[test]
fn two_runs_of_the_real_plugins_are_identical() {
    let run = || -> Vec<String> {
        let mut set = set_with(
            relaxed(),
            &["counter-v1", "drs-threat", "gap-watch", "pace"],
        );
        frames()
            .iter()
            .map(|f| {
                let out = set.on_frame(&f.bytes, f.window_start_ms);
                assert!(out.failures.is_empty());
                serde_json::to_string(&out.insights).unwrap()
            })
            .collect()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), frames().len());
    let first_diff = a.iter().zip(&b).position(|(x, y)| x != y);
    assert_eq!(
        first_diff, None,
        "the runs differ from frame {first_diff:?}"
    );
    let total: usize = a.iter().map(String::len).sum();
    eprintln!("{} frames, {total} bytes of insight JSON per run", a.len());
    assert!(total > 10_000_000, "{total} bytes of insights");
}

// ---------------------------------------------------------------------------
// Shadow
// ---------------------------------------------------------------------------

/// `pace` live and the same `pace` code as a shadow candidate (a distinct
/// build: an extra custom section changes its content hash, nothing else)
/// from the first frame: every frame is compared and agrees, with a mean
/// absolute metric difference of 0. Promoted at a boundary mid-race, the
/// candidate publishes from exactly that frame on, with its own state, so the
/// published numbers stay those of the baseline.
#[test]
fn a_shadow_copy_of_pace_agrees_fully_and_is_promoted_at_a_boundary() {
    let frames = frames();
    let mut set = set_with(relaxed(), &EXAMPLES);
    let control = set.control();
    let live_hash = control
        .plugin("pace")
        .unwrap()
        .live
        .content_hash
        .to_string();
    let candidate = rewrite_sections(
        &wasm("pace"),
        None,
        Some(("pitwall-test:build", b"shadow candidate")),
    );
    let cand_hash = set
        .runtime()
        .compile(&candidate)
        .unwrap()
        .content_hash()
        .to_string();
    assert_ne!(cand_hash, live_hash);
    let shadow = control.shadow(&candidate, Boundary::Next).unwrap();
    let promote_at = frames.len() / 2;
    let promote = control
        .promote("pace", Boundary::At(frames[promote_at].window_start_ms))
        .unwrap();
    let mut compared_metrics = 0u64;
    for (i, f) in frames.iter().enumerate() {
        let out = set.on_frame(&f.bytes, f.window_start_ms);
        assert!(out.failures.is_empty(), "{out:?}");
        match i {
            0 => assert!(
                matches!(&out.events[..], [LifecycleEvent::ShadowStarted { plugin, .. }] if plugin == "pace"),
                "{:?}",
                out.events
            ),
            _ if i == promote_at => assert!(
                matches!(&out.events[..], [LifecycleEvent::ShadowPromoted { plugin, .. }] if plugin == "pace"),
                "{:?}",
                out.events
            ),
            _ => assert!(out.events.is_empty(), "{:?}", out.events),
        }
        if i < promote_at {
            assert_eq!(out.shadow.len(), 1, "frame {i}");
            let c = out.shadow[0].comparison;
            assert!(c.agree, "frame {i}: {c:?}");
            assert_eq!(
                (
                    c.metrics_unmatched,
                    c.sum_abs_metric_diff,
                    c.stories_unmatched
                ),
                (0, 0.0, 0)
            );
            compared_metrics += u64::from(c.metrics_matched);
            if i == promote_at - 1 {
                let status = set.status();
                let sh = status.plugin("pace").unwrap().shadow.clone().unwrap();
                assert_eq!(sh.candidate.content_hash.to_string(), cand_hash);
                assert_eq!(sh.stats.frames_compared, promote_at as u64);
                assert_eq!(sh.stats.frames_agreed, promote_at as u64);
                assert_eq!(sh.stats.metrics_matched, compared_metrics);
                assert_eq!(sh.agreement_rate, Some(1.0));
                assert_eq!(sh.mean_abs_metric_diff, Some(0.0));
            }
        } else {
            assert!(out.shadow.is_empty(), "frame {i}");
        }
        // Before the promotion the live build publishes, from it on the
        // candidate; the numbers are the baseline's either way.
        let want_hash = if i < promote_at {
            &live_hash
        } else {
            &cand_hash
        };
        let mut out = out;
        for x in out.insights.iter_mut() {
            if x.plugin_name() == "pace" {
                assert_eq!(x.content_hash(), want_hash.as_str(), "frame {i}");
                x.content_hash = live_hash.as_str().into();
            }
        }
        assert_examples_unchanged(i, &out, "pace shadow");
    }
    assert!(compared_metrics > 20 * promote_at as u64 / 2);
    assert_eq!(
        shadow.wait(HANG).unwrap().window_start_ms,
        frames[0].window_start_ms
    );
    assert_eq!(
        promote.wait(HANG).unwrap().window_start_ms,
        frames[promote_at].window_start_ms
    );
    let status = set.status();
    let pace = status.plugin("pace").unwrap();
    assert!(pace.shadow.is_none());
    assert_eq!(pace.live.content_hash.to_string(), cand_hash);
    assert_eq!(pace.versions[1].state, VersionState::Previous);
    assert_eq!(pace.versions[1].info.content_hash.to_string(), live_hash);
}

// ---------------------------------------------------------------------------
// Found by these tests, fixed in the runtime
// ---------------------------------------------------------------------------

/// A plugin that fails again after every restart never reaches the consecutive-
/// failure threshold: the fresh instance's first frames succeed. `hostile-trap`
/// (fine on its first frame, then traps) would keep failing for the whole race,
/// `hostile-spin` would cost a full deadline every third frame. The failure rate
/// over the recent calls (`RuntimeConfig::failure_window`, 5 of 20) quarantines it.
#[test]
fn a_plugin_that_fails_after_each_restart_is_quarantined_by_its_failure_rate() {
    let mut set = set_with(relaxed(), &["hostile-trap"]);
    for f in &frames()[..100] {
        set.on_frame(&f.bytes, f.window_start_ms);
    }
    let s = set.stats("hostile-trap").unwrap();
    assert!(s.failures.trap >= 3, "{s:?}");
    assert_eq!(s.quarantines, 1, "never quarantined: {s:?}");
    // It fails every other call: quarantined once 20 calls are in the window
    // (10 failed ≥ 5), then skipped.
    assert_eq!((s.calls, s.failures.trap), (20, 10), "{s:?}");
    assert_eq!(s.skipped_quarantined, 100 - s.calls, "{s:?}");
}
