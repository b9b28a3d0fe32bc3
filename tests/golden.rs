//! Golden replay: a small committed telemetry file through the window-bench job,
//! compared byte for byte with the committed window table and late-row file.
//!
//! `PITWALL_BLESS=1 cargo test -p pitwall-tests --test golden` rewrites the files in
//! `tests/golden/` (see its README). Review the diff before committing it.

use std::path::{Path, PathBuf};

use pitwall_engine::job::JobOptions;
use pitwall_engine::output::{LateWriter, TableFormat, WindowJobSink};
use pitwall_engine::source::file::FileSource;
use pitwall_engine::source::{OnError, SourceOptions};
use pitwall_tests::{bench_plan, golden_input_csv};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

const INPUT: &str = "window-bench-input.csv";
const WINDOWS: &str = "window-bench-windows.csv";
const LATE: &str = "window-bench-late.ndjson";

fn blessing() -> bool {
    std::env::var("PITWALL_BLESS").is_ok_and(|v| v == "1")
}

/// Compares `got` with the committed file `name` (or writes it when blessing).
fn check_golden(name: &str, got: &[u8]) {
    let path = golden_dir().join(name);
    if blessing() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, got).unwrap();
        eprintln!("blessed {}", path.display());
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with PITWALL_BLESS=1 to create it",
            path.display()
        )
    });
    if got != want.as_slice() {
        let (g, w) = (String::from_utf8_lossy(got), String::from_utf8_lossy(&want));
        let first = g
            .lines()
            .zip(w.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(g.lines().count().min(w.lines().count()));
        panic!(
            "{name} differs from the committed golden file at line {}:\n  got:  {:?}\n  want: {:?}\n\
             ({} vs {} lines). If the change is intended, run with PITWALL_BLESS=1 and review the diff.",
            first + 1,
            g.lines().nth(first),
            w.lines().nth(first),
            g.lines().count(),
            w.lines().count()
        );
    }
}

/// Runs the window-bench job on `input`; returns (window table CSV, late NDJSON).
fn run_bench(input: &Path, chunk_rows: usize, threads: usize) -> (Vec<u8>, Vec<u8>) {
    let plan = bench_plan();
    let tmp = tempfile::tempdir().unwrap();
    let late_path = tmp.path().join("late.ndjson");
    let out_path = tmp.path().join("windows.csv");
    let opts = SourceOptions {
        projection: plan.aggregates.used_channels().to_vec(),
        on_error: OnError::Fail,
        chunk_rows,
    };
    let source = FileSource::open(input, plan.schema.clone(), opts, None)
        .unwrap()
        .with_parse_threads(threads);
    let mut sink = WindowJobSink::new(Some(LateWriter::create(&late_path, &plan).unwrap()));
    let summary =
        pitwall_tests::run(&plan, Box::new(source), &mut sink, &JobOptions::default()).unwrap();
    assert!(!summary.stopped_early);
    assert!(sink.late_error.is_none());
    sink.late.as_mut().unwrap().flush().unwrap();
    sink.table
        .write(&plan, &out_path, TableFormat::Csv)
        .unwrap();
    (
        std::fs::read(&out_path).unwrap(),
        std::fs::read(&late_path).unwrap(),
    )
}

#[test]
fn window_bench_golden_replay() {
    // The committed input is what the generator makes (so it can be re-made and reviewed).
    let input = golden_input_csv();
    assert!(
        input.len() < 200_000,
        "golden input stays small: {} bytes",
        input.len()
    );
    check_golden(INPUT, input.as_bytes());
    let input_path = golden_dir().join(INPUT);

    let (windows, late) = run_bench(&input_path, 64 * 1024, 2);
    check_golden(WINDOWS, &windows);
    check_golden(LATE, &late);

    // Sanity of the expected output itself, so a bad bless cannot slip through unseen.
    let text = String::from_utf8(windows.clone()).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "car,window_start_ms,count,mean_speed,max_speed,mean_throttle,throttle_rpm_dt,last_gear"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // 3 cars × 6 one-second windows.
    assert_eq!(rows.len(), 18);
    let keys: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by car number, then window start");
    assert_eq!(keys[0], (3, 0));
    let late_rows = late.iter().filter(|b| **b == b'\n').count();
    let input_rows = input.lines().count() - 1;
    let counted: usize = rows.iter().map(|r| r[2].parse::<usize>().unwrap()).sum();
    assert_eq!(
        counted + late_rows,
        input_rows,
        "every row is in a window or late"
    );
    assert!(late_rows > 0, "the golden input has late rows");
    for r in &rows {
        let count: u32 = r[2].parse().unwrap();
        assert!((225..=255).contains(&count), "{r:?}");
        let speed: f64 = r[3].parse().unwrap();
        let max_speed: f64 = r[4].parse().unwrap();
        assert!(
            (80.0..=330.0).contains(&speed) && speed <= max_speed && max_speed <= 330.0,
            "{r:?}"
        );
        let throttle: f64 = r[5].parse().unwrap();
        assert!((0.0..=100.0).contains(&throttle), "{r:?}");
        let gear: u32 = r[7].parse().unwrap();
        assert!((1..=8).contains(&gear), "{r:?}");
    }

    // Chunking and parse threads change nothing.
    assert_eq!(
        run_bench(&input_path, 97, 1),
        (windows.clone(), late.clone())
    );
    assert_eq!(run_bench(&input_path, 1000, 3), (windows.clone(), late));

    // The same rows as NDJSON window identically.
    let tmp = tempfile::tempdir().unwrap();
    let nd = tmp.path().join("input.ndjson");
    let mut text = String::new();
    let mut csv_lines = input.lines();
    let header: Vec<&str> = csv_lines.next().unwrap().split(',').collect();
    for l in csv_lines {
        let fields: Vec<String> = header
            .iter()
            .zip(l.split(','))
            .map(|(h, v)| format!("\"{h}\":{v}"))
            .collect();
        text.push_str(&format!("{{{}}}\n", fields.join(",")));
    }
    std::fs::write(&nd, text).unwrap();
    assert_eq!(
        run_bench(&nd, 500, 2).0,
        windows,
        "NDJSON input windows like CSV"
    );
}
