//! `pitwall simulate` and `pitwall window` through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../configs/window-bench.toml"
);
const HEADER: &str =
    "car,window_start_ms,count,mean_speed,max_speed,mean_throttle,throttle_rpm_dt,last_gear";

fn pitwall(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pitwall"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the pitwall binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and requires success.
fn ok(dir: &Path, args: &[&str]) -> String {
    let o = pitwall(dir, args);
    let err = stderr(&o);
    assert!(
        o.status.success(),
        "pitwall {args:?} failed ({}):\n{err}",
        o.status
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// `pitwall simulate` of a small race: 7 cars (numbers 1, 4, 11, … so that numeric
/// and text order differ), 240 Hz, 4 s, 5 % of rows up to 4 s late.
fn simulate(dir: &Path, out: &str) -> PathBuf {
    ok(
        dir,
        &[
            "simulate",
            "--out",
            out,
            "--cars",
            "7",
            "--rate-hz",
            "240",
            "--duration",
            "4s",
            "--seed",
            "5",
            "--out-of-order",
            "0.05",
            "--max-delay",
            "4s",
        ],
    );
    dir.join(out)
}

const ROWS: usize = 7 * 240 * 4;

fn window(dir: &Path, input: &str, out: &str, extra: &[&str]) -> String {
    let mut args = vec!["window", "--config", CONFIG, "--input", input, "--out", out];
    args.extend_from_slice(extra);
    ok(dir, &args)
}

/// A count from the summary line (`rows 3600  late 26 …  skipped 0 …`).
fn summary_count(stderr: &str, what: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("rows "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == what)
        .unwrap_or_else(|| panic!("no {what:?} in {line:?}"));
    words[i + 1]
        .parse()
        .unwrap_or_else(|_| panic!("{what} in {line:?}"))
}

#[test]
fn csv_and_ndjson_inputs_give_identical_sorted_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = simulate(dir, "race.csv");
    let nd = simulate(dir, "race.ndjson");
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().count(),
        ROWS + 1
    );
    assert_eq!(std::fs::read_to_string(&nd).unwrap().lines().count(), ROWS);

    let e1 = window(dir, "race.csv", "from-csv.csv", &[]);
    let e2 = window(dir, "race.ndjson", "from-ndjson.csv", &[]);
    let a = std::fs::read_to_string(dir.join("from-csv.csv")).unwrap();
    let b = std::fs::read_to_string(dir.join("from-ndjson.csv")).unwrap();
    assert_eq!(a, b, "CSV and NDJSON inputs window differently");
    for e in [&e1, &e2] {
        assert_eq!(summary_count(e, "rows"), ROWS as u64);
        assert_eq!(summary_count(e, "skipped"), 0);
    }
    let late = summary_count(&e1, "late");
    assert_eq!(late, summary_count(&e2, "late"));
    assert!(late > 0, "the simulated race has late rows");
    // The late file holds one line per late row (line numbers differ: the CSV header).
    let late_lines = std::fs::read_to_string(dir.join("from-csv.csv.late.ndjson")).unwrap();
    assert_eq!(late_lines.lines().count() as u64, late);
    for l in late_lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            v["line"].as_u64().unwrap() >= 2 && v["watermark_ms"].is_i64(),
            "{l}"
        );
    }

    let mut lines = a.lines();
    assert_eq!(lines.next(), Some(HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 7 * 4, "7 cars × 4 one-second windows");
    let keys: Vec<(u32, i64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.len(), 8, "{r:?}");
            (r[0].parse().unwrap(), r[1].parse().unwrap())
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by car number, then window start");
    assert!(
        keys.iter().any(|k| k.0 == 4),
        "car 4 sorts before car 11 only numerically"
    );
    let counted: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    assert_eq!(
        counted + late,
        ROWS as u64,
        "every row is in a window or late"
    );

    // NDJSON output carries the same windows.
    window(dir, "race.csv", "windows.ndjson", &["--no-late-out"]);
    let nd_out = std::fs::read_to_string(dir.join("windows.ndjson")).unwrap();
    let nd_rows: Vec<serde_json::Value> = nd_out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(nd_rows.len(), rows.len());
    for (j, r) in nd_rows.iter().zip(&rows) {
        assert_eq!(j["car"].as_u64().unwrap().to_string(), r[0]);
        assert_eq!(j["window_start_ms"].as_i64().unwrap().to_string(), r[1]);
        assert_eq!(j["count"].as_u64().unwrap().to_string(), r[2]);
        assert_eq!(
            j["mean_speed"].as_f64().unwrap(),
            r[3].parse::<f64>().unwrap()
        );
    }
}

#[test]
fn simulate_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let a = std::fs::read(simulate(dir, "a.csv")).unwrap();
    let b = std::fs::read(simulate(dir, "b.csv")).unwrap();
    assert_eq!(a, b, "the same seed gives the same file");
    ok(
        dir,
        &[
            "simulate",
            "--out",
            "c.csv",
            "--cars",
            "7",
            "--duration",
            "4s",
            "--seed",
            "6",
        ],
    );
    assert_ne!(std::fs::read(dir.join("c.csv")).unwrap(), a);
}

/// Takes the simulated CSV/NDJSON and replaces line `line` (1-based) with `with`.
fn corrupt(dir: &Path, src: &Path, name: &str, line: usize, with: &str) {
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines: Vec<&str> = text.lines().take(400).collect();
    lines[line - 1] = with;
    std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
}

#[test]
fn bad_rows_fail_with_file_and_line_or_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = simulate(dir, "race.csv");
    let nd = simulate(dir, "race.ndjson");
    let cases: [(&Path, &str, usize, &str); 8] = [
        (&csv, "non-numeric.csv", 50, "20,1,200.5,abc,50,0,5,0"),
        (&csv, "missing-field.csv", 61, "20,1,200.5,10000,50,0,5"),
        (&csv, "fractional-ts.csv", 72, "20.5,1,200.5,10000,50,0,5,0"),
        (&csv, "garbage.csv", 300, "this is not telemetry"),
        (
            &nd,
            "missing-field.ndjson",
            40,
            r#"{"ts_ms":20,"car":1,"speed":200.5,"throttle":50,"brake":0,"gear":5,"drs":0}"#,
        ),
        (
            &nd,
            "truncated.ndjson",
            33,
            r#"{"ts_ms":20,"car":1,"speed":"#,
        ),
        (
            &nd,
            "string-value.ndjson",
            120,
            r#"{"ts_ms":20,"car":1,"speed":"fast","rpm":10000,"throttle":50,"brake":0,"gear":5,"drs":0}"#,
        ),
        (
            &nd,
            "fractional-ts.ndjson",
            7,
            r#"{"ts_ms":20.25,"car":1,"speed":200,"rpm":10000,"throttle":50,"brake":0,"gear":5,"drs":0}"#,
        ),
    ];
    for (src, name, line, with) in cases {
        corrupt(dir, src, name, line, with);
        let out = format!("{name}.out.csv");
        let o = pitwall(
            dir,
            &["window", "--config", CONFIG, "--input", name, "--out", &out],
        );
        let err = stderr(&o);
        assert!(
            !o.status.success(),
            "{name}: a bad row must fail the job:\n{err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}:{line}")),
            "{name}: the error names file and line {line}:\n{err}"
        );
        assert!(!dir.join(&out).exists(), "{name}: no output on failure");

        let err = window(dir, name, &out, &["--skip-bad-rows"]);
        assert_eq!(summary_count(&err, "skipped"), 1, "{name}: {err}");
        let rows_in = if name.ends_with(".csv") {
            399 - 1
        } else {
            400 - 1
        };
        assert_eq!(summary_count(&err, "rows"), rows_in, "{name}: {err}");
        let table = std::fs::read_to_string(dir.join(&out)).unwrap();
        assert_eq!(table.lines().next(), Some(HEADER));
    }
}

/// Timestamps at the ends of the i64 range: the job either windows them or refuses the
/// row naming file and line — it never panics.
#[test]
fn extreme_timestamps_are_handled_or_refused_without_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = simulate(dir, "race.csv");
    for (name, ts) in [("min.csv", i64::MIN), ("max.csv", i64::MAX)] {
        corrupt(dir, &csv, name, 30, &format!("{ts},1,200,10000,50,0,5,0"));
        let o = pitwall(
            dir,
            &[
                "window", "--config", CONFIG, "--input", name, "--out", "o.csv",
            ],
        );
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(
            o.status.success() || err.contains(&format!("{name}:30")),
            "{name}: a refused row names file and line:\n{err}"
        );
    }
}

#[test]
fn missing_input_and_bad_config_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = pitwall(
        dir,
        &[
            "window",
            "--config",
            CONFIG,
            "--input",
            "nowhere.csv",
            "--out",
            "o.csv",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("nowhere.csv") && !err.contains("panicked"),
        "{err}"
    );

    std::fs::write(dir.join("bad.toml"), "[window]\nsize = \"1 fortnight\"\n").unwrap();
    simulate(dir, "race.csv");
    let o = pitwall(
        dir,
        &[
            "window", "--config", "bad.toml", "--input", "race.csv", "--out", "o.csv",
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml") && !err.contains("panicked"),
        "{err}"
    );
}

/// `--checkpoint-dir` with `--stop-after-rows`, then runs that resume: the window
/// table and the late file equal those of one uninterrupted run, byte for byte.
#[test]
fn stopped_and_resumed_runs_write_the_uninterrupted_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    simulate(dir, "race.csv");
    let whole = window(dir, "race.csv", "whole.csv", &["--chunk-rows", "500"]);
    let want = std::fs::read(dir.join("whole.csv")).unwrap();
    let want_late = std::fs::read(dir.join("whole.csv.late.ndjson")).unwrap();
    assert!(summary_count(&whole, "late") > 0);

    for (name, stops) in [("once", &[5800][..]), ("thrice", &[1500, 1500, 1500][..])] {
        let ck = format!("ck-{name}");
        let out = format!("{name}.csv");
        for stop in stops {
            let err = window(
                dir,
                "race.csv",
                &out,
                &[
                    "--chunk-rows",
                    "500",
                    "--checkpoint-dir",
                    &ck,
                    "--stop-after-rows",
                    &stop.to_string(),
                ],
            );
            assert!(err.contains("stopped"), "{name}: {err}");
        }
        let err = window(
            dir,
            "race.csv",
            &out,
            &["--chunk-rows", "500", "--checkpoint-dir", &ck],
        );
        assert!(err.contains("resumed"), "{name}: {err}");
        assert_eq!(
            summary_count(&err, "rows"),
            ROWS as u64,
            "{name}: counters span all runs"
        );
        assert_eq!(
            summary_count(&err, "late"),
            summary_count(&whole, "late"),
            "{name}"
        );
        let got = std::fs::read(dir.join(&out)).unwrap();
        assert!(
            got == want,
            "{name}: window table differs from the uninterrupted run"
        );
        let got_late = std::fs::read(dir.join(format!("{out}.late.ndjson"))).unwrap();
        assert!(
            got_late == want_late,
            "{name}: late file differs from the uninterrupted run ({} bytes, {} NUL, vs {} bytes)",
            got_late.len(),
            got_late.iter().filter(|b| **b == 0).count(),
            want_late.len()
        );
    }
}
