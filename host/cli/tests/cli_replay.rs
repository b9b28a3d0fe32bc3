//! `pitwall replay` on the real recorded races in the shared data directory
//! (`PITWALL_DATA_DIR`, default `../shared/data` beside the checkout). Skipped,
//! visibly, when the data is not there.

use std::path::PathBuf;
use std::process::Command;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PITWALL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: no data dir at {}", dir.display());
        None
    }
}

fn replay(dir: PathBuf) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args(["replay", "--data"])
        .arg(&dir)
        .args(["--every", "600"])
        .output()
        .expect("runs pitwall");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        o.status.success(),
        "replay of {} failed:\n{err}",
        dir.display()
    );
    assert!(!err.contains("panicked"), "{err}");
    (out, err)
}

#[test]
fn austria_2024_replays_with_its_race_control() {
    let Some(data) = data_dir() else { return };
    let (out, err) = replay(data.join("f1/2024_austria_race"));
    // Every location row of all 20 cars goes through the engine.
    assert!(err.contains("rows 419520"), "{err}");
    assert!(err.contains("late 0"), "{err}");
    // The VSC near the end and the flag, from OpenF1 race_control.
    assert!(out.contains("VIRTUAL SAFETY CAR"), "{out}");
    assert!(out.contains("CHEQUERED FLAG"), "{out}");
    // Positions give a running order with intervals.
    assert!(out.contains("P1 #") && out.contains("P2 #"), "{out}");
}

#[test]
fn mexico_qualifying_live_timing_replays() {
    let Some(data) = data_dir() else { return };
    let (out, err) = replay(data.join("f1/2025_mexico_city_qualifying"));
    assert!(out.contains("20 cars"), "{out}");
    // 20 cars x 17,356 CarData samples + 20 x 17,920 Position samples (data README).
    assert!(err.contains("rows 705520"), "{err}");
}

#[test]
fn a_folder_of_neither_format_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args(["replay", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("neither an OpenF1 session folder"), "{err}");
}

#[test]
fn austria_frames_are_deterministic_and_carry_the_race() {
    let Some(data) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_pitwall"))
            .args(["replay", "--data"])
            .arg(data.join("f1/2024_austria_race"))
            .arg("--frames-out")
            .arg(&out)
            .output()
            .expect("runs pitwall");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        std::fs::read(out).unwrap()
    };
    let a = run("a.ndjson");
    let b = run("b.ndjson");
    assert!(a == b, "two replays must write byte-identical frame files");
    let text = String::from_utf8(a).unwrap();
    let frames: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(frames.len() > 5000, "{} frames", frames.len());
    // Frames are in order, one per window.
    for w in frames.windows(2) {
        assert!(w[0]["window_start_ms"].as_i64() < w[1]["window_start_ms"].as_i64());
    }
    // The derived leader lap reaches the race distance (71 laps) by the end, and
    // the chequered flag is in the race state.
    let last = frames.last().unwrap();
    assert!(
        last["race"]["lap"].as_u64().unwrap() >= 71,
        "{}",
        last["race"]
    );
    assert_eq!(last["race"]["flag"], "chequered");
    assert_eq!(last["cars"].as_array().unwrap().len(), 20);
}

/// The README's main command, on the race bundled in the repository (no shared data
/// needed), at full speed.
#[test]
fn run_replays_the_bundled_race() {
    let o = Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args([
            "run",
            "--speed",
            "0",
            "--every",
            "3600",
            "--predict-runs",
            "100",
            "--gpu",
            "off",
            "--no-listen",
        ])
        .output()
        .expect("runs pitwall");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(err.contains("rows 419520"), "{err}");
    assert!(out.contains("enters the pit lane"), "{out}");
    assert!(out.contains("CHEQUERED FLAG"), "{out}");
    assert!(out.contains("P1 #"), "{out}");
    // Race predictions once per lap from the start (lap 1: the race is under
    // way from the moment the cars leave the grid) to lap 71, from the CPU kernels.
    assert_eq!(out.matches("predictions | P(win)").count(), 71, "{out}");
    assert!(out.contains("lap  1 predictions"), "{out}");
    assert!(out.contains("lap 71 predictions"), "{out}");
}

#[test]
fn run_simulate_still_works() {
    let o = Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args(["run", "--simulate", "--duration", "20s", "--speed", "0"])
        .output()
        .expect("runs pitwall");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("rows 96000"), "{err}");
}
