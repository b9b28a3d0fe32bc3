//! `pitwall replay` on the bundled 2024 Bahrain GP (`data/2024-bahrain-race`), a
//! race with OpenF1 timing tables only (laps, intervals, positions): it replays
//! from timing, and its frame file is exactly what
//! `pitwall_race::session::race_frames` returns. Runs on a clean clone.

use std::path::PathBuf;
use std::process::Command;

fn bahrain_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/2024-bahrain-race"
    ))
}

#[test]
fn bahrain_timing_replays_to_the_library_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bahrain.ndjson");
    let o = Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args(["replay", "--data"])
        .arg(bahrain_dir())
        .arg("--frames-out")
        .arg(&out)
        .output()
        .expect("runs pitwall");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // 29,854 interval samples + 435 position records + 1,129 lap starts.
    assert!(err.contains("rows 31418"), "{err}");
    assert!(err.contains("late 0"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let frames = pitwall_race::session::race_frames(&bahrain_dir(), 1000).unwrap();
    assert!(frames.len() > 5000, "{} frames", frames.len());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), frames.len());
    for (line, f) in lines.iter().zip(&frames) {
        assert!(*line == f.to_ndjson_line(), "frame {} differs", f.seq);
    }
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["race"]["flag"], "chequered");
    assert_eq!(last["race"]["total_laps"], 57);
    assert_eq!(last["cars"].as_array().unwrap().len(), 20);
}

#[test]
fn bahrain_timing_prints_the_running_order_and_pit_stops() {
    let o = Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args(["replay", "--data"])
        .arg(bahrain_dir())
        .args(["--every", "600"])
        .output()
        .expect("runs pitwall");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    assert!(out.contains("P1 #1 P2 #"), "{out}");
    assert!(out.contains("#27 enters the pit lane"), "{out}");
    assert!(out.contains("CHEQUERED FLAG"), "{out}");
}
