//! `pitwall plugin new|build|test` and the plugin stage of `pitwall run`, through
//! the real binary, the real runtime and real plugins on the bundled race.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pitwall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args(args)
        // Plugin builds share one target dir, so the SDK is compiled once.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scaffold-test"),
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("runs pitwall")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A plugin author's whole loop: scaffold, build to wasm32, run over a real race.
#[test]
fn new_build_and_test_a_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let o = pitwall(&[
        "plugin",
        "new",
        "close-calls",
        "--kind",
        "pair",
        "--dir",
        dir,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let o = pitwall(&["plugin", "build", &format!("{dir}/close-calls")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let wasm = PathBuf::from(out.trim());
    assert!(
        wasm.is_file() && wasm.extension().is_some_and(|e| e == "wasm"),
        "{out}"
    );

    let o = pitwall(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--all",
        "--deadline",
        "2s",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    // Every window of the bundled race went through the plugin, without failures.
    assert!(err.contains("plugins: 5484 frames"), "{err}");
    assert!(
        err.contains("close-calls@0.1.0: calls 5484 ok 5484 failures 0"),
        "{err}"
    );
    assert!(out.contains("close-calls@0.1.0"), "{out}");

    // A second scaffold of the same name is refused, the first one untouched.
    let o = pitwall(&[
        "plugin",
        "new",
        "close-calls",
        "--kind",
        "story",
        "--dir",
        dir,
    ]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("already exists"));
}

#[test]
fn a_plugin_for_an_unknown_abi_is_refused_with_the_reason() {
    let wasm = pitwall_plugins_bundle::wasm_path("hostile-abi");
    let o = pitwall(&["plugin", "test", wasm.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("plugin ABI 9.0"), "{err}");
    assert!(err.contains("this host runs ABI 1.0"), "{err}");
}

#[test]
fn a_trapping_plugin_is_counted_and_the_replay_goes_on() {
    let wasm = pitwall_plugins_bundle::wasm_path("hostile-trap");
    let o = pitwall(&["plugin", "test", wasm.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("plugins: 5484 frames"), "{err}");
    assert!(err.contains("rows 419520"), "{err}");
    let line = err.lines().find(|l| l.contains("hostile-trap@")).unwrap();
    assert!(!line.contains("failures 0 "), "{line}");
}

/// The README's main command runs the shipped plugins on every frame.
#[test]
fn run_feeds_every_frame_to_the_shipped_plugins() {
    let o = pitwall(&[
        "run",
        "--speed",
        "0",
        "--every",
        "3600",
        "--predict-runs",
        "0",
        // A loaded CI machine can deschedule a call past the default 5 ms; what is
        // tested here is that every frame reaches every plugin.
        "--plugin-deadline",
        "2s",
        "--listen",
        "127.0.0.1:0",
        // No history store: this test is about the live side.
        "--no-store",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for p in pitwall_plugins_bundle::shipped() {
        let line = err
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}:", p.id())))
            .unwrap_or_else(|| panic!("no summary for {} in {err}", p.id()));
        assert!(line.contains("calls 5484 ok 5484 failures 0"), "{line}");
    }
    assert!(
        out.contains("stories@") && out.contains("story [overtake]"),
        "{out}"
    );
}

/// `pitwall run --listen` serves the feeds beside the replay: with `--stay` it
/// keeps serving after the race, and `/health` names the loaded plugins and
/// `/stories` pages the stories the plugins told.
#[test]
fn run_serves_health_and_stories_on_localhost() {
    let served = common::serve(&[
        "run",
        "--speed",
        "0",
        "--every",
        "3600",
        "--predict-runs",
        "0",
        "--plugin-deadline",
        "2s",
        // No history store: this test is about the live side.
        "--no-store",
        "--stay",
    ]);
    // "still serving" once the race is over.
    while !served.over.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let get = |path: &str| {
        let r = common::http(&served.addr, "GET", path, &[], b"");
        format!("{}\r\n\r\n{}", r.head, r.body)
    };
    let health = get("/health");
    let stories = get("/stories?limit=5");
    let bad = get("/feed?min_importance=lots");
    served.stop();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    for p in pitwall_plugins_bundle::shipped() {
        assert!(
            health.contains(&format!("\"name\":\"{}\"", p.name)),
            "{health}"
        );
    }
    assert!(stories.starts_with("HTTP/1.1 200"), "{stories}");
    assert!(stories.contains("\"plugin\":\"stories@"), "{stories}");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
}
