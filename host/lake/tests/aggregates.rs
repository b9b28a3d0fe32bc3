//! Window aggregates to Parquet: the window-bench job over the committed
//! golden input, streamed into Parquet, must hold exactly the committed
//! golden window table (`tests/golden/window-bench-windows.csv`, which
//! `pitwall window` writes), with typed columns; plus the edge cases of the
//! writer (string keys, missing values, values an integer column cannot hold).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::record::Field;
use pitwall_engine::aggregate::OutputType;
use pitwall_engine::broadcast::BroadcastState;
use pitwall_engine::schema::KeyType;
use pitwall_engine::source::SourceOptions;
use pitwall_engine::source::file::FileSource;
use pitwall_engine::{JobConfig, JobOptions, JobPlan, WindowResult, run_job};
use pitwall_lake::{AggregateColumns, AggregatesSink, AggregatesWriter, LakeError, WriterOptions};
use support::{get, read_rows, row_group_sizes};

fn workspace(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn bench_plan() -> Arc<JobPlan> {
    let config = JobConfig::load(&workspace("configs/window-bench.toml")).unwrap();
    Arc::new(config.plan().unwrap())
}

/// Runs the window-bench job over the golden input into a Parquet file.
fn export_golden(path: &Path, row_group_rows: usize) -> pitwall_lake::Stats {
    let plan = bench_plan();
    let opts = SourceOptions {
        projection: plan.aggregates.used_channels().to_vec(),
        on_error: plan.on_error,
        chunk_rows: 512,
    };
    let source = FileSource::open(
        &workspace("tests/golden/window-bench-input.csv"),
        plan.schema.clone(),
        opts,
        None,
    )
    .unwrap();
    let writer = AggregatesWriter::create_with(
        path,
        AggregateColumns::from_plan(&plan),
        WriterOptions { row_group_rows },
    )
    .unwrap();
    let mut sink = AggregatesSink::new(writer);
    run_job(
        plan,
        Box::new(source),
        &mut sink,
        &JobOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    sink.finish().unwrap()
}

/// A cell as the golden CSV writes it: integers bare, floats shortest
/// round-trip, nulls empty.
fn csv_cell(f: &Field) -> String {
    match f {
        Field::Long(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Double(v) => {
            // The CSV's float format (ryu's shortest round-trip) parses back
            // to the same f64: compare as numbers, printed the same way.
            format!("{v:?}")
        }
        Field::Null => String::new(),
        other => panic!("unexpected {other:?}"),
    }
}

fn same_number(csv: &str, got: &str) -> bool {
    csv == got || csv.parse::<f64>().ok() == got.parse::<f64>().ok() && !csv.is_empty()
}

#[test]
fn the_golden_window_job_exports_exactly_the_golden_window_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("windows.parquet");
    let stats = export_golden(&path, 5);
    let golden =
        std::fs::read_to_string(workspace("tests/golden/window-bench-windows.csv")).unwrap();
    let mut lines = golden.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let want: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(stats.rows, want.len() as u64);

    // Columns: the CSV's, with the window end and the row count after the start.
    let names = support::column_names(&path);
    let mut expected_names: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    expected_names.insert(2, "window_end_ms".into());
    expected_names.insert(3, "rows".into());
    assert_eq!(names, expected_names);

    // Rows come in firing order; sorted as the CSV is, they are the CSV.
    let mut rows = read_rows(&path);
    let key = |r: &support::Row| match (get(r, "car"), get(r, "window_start_ms")) {
        (Field::Long(c), Field::Long(s)) => (*c, *s),
        other => panic!("{other:?}"),
    };
    rows.sort_by_key(key);
    for (row, want) in rows.iter().zip(&want) {
        for (col, cell) in header.iter().zip(want) {
            let got = csv_cell(get(row, col));
            assert!(
                same_number(cell, &got),
                "{col}: csv {cell:?}, parquet {got:?}"
            );
        }
        let (_, start) = key(row);
        assert_eq!(get(row, "window_end_ms"), &Field::Long(start + 1000));
        // `count` counts rows: the row count column agrees.
        assert_eq!(csv_cell(get(row, "rows")), csv_cell(get(row, "count")));
    }
    assert_eq!(row_group_sizes(&path), vec![5, 5, 5, 3]);
}

#[test]
fn the_window_table_has_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("windows.parquet");
    export_golden(&path, 1000);
    let schema = support::schema(&path);
    let col = |n: &str| schema[n].clone();
    assert_eq!(col("car"), ("INT64".into(), "None".into(), false));
    assert_eq!(
        col("window_start_ms"),
        ("INT64".into(), "None".into(), false)
    );
    assert_eq!(
        col("rows"),
        (
            "INT64".into(),
            "Some(Integer(IntType { bit_width: 64, is_signed: false }))".into(),
            false
        )
    );
    // Integer aggregates as INT64, the rest as DOUBLE; both nullable.
    assert_eq!(col("count"), ("INT64".into(), "None".into(), true));
    assert_eq!(col("last_gear"), ("INT64".into(), "None".into(), true));
    assert_eq!(col("mean_speed"), ("DOUBLE".into(), "None".into(), true));
}

fn string_key_columns() -> AggregateColumns {
    AggregateColumns {
        key: "driver".into(),
        key_type: KeyType::String,
        window_start: "window_start_us".into(),
        window_end: "window_end_us".into(),
        window_size: 500_000,
        names: vec!["laps".into(), "mean_speed".into()],
        types: vec![OutputType::Int, OutputType::Float],
    }
}

fn window(car: &str, start: i64, values: Vec<f64>) -> WindowResult {
    WindowResult {
        key: 0,
        car: Arc::from(car),
        start,
        rows: 3,
        values,
        broadcast: Arc::new(BroadcastState::default()),
    }
}

#[test]
fn string_keys_and_missing_values_read_back_as_strings_and_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.parquet");
    let mut w = AggregatesWriter::create(&path, string_key_columns()).unwrap();
    w.write(&window("VER", 0, vec![2.0, f64::NAN])).unwrap();
    w.write(&window("NOR, Lando", 500_000, vec![f64::NAN, 301.25]))
        .unwrap();
    let stats = w.finish().unwrap();
    assert_eq!((stats.rows, stats.row_groups), (2, 1));
    let rows = read_rows(&path);
    assert_eq!(get(&rows[0], "driver"), &Field::Str("VER".into()));
    assert_eq!(get(&rows[0], "laps"), &Field::Long(2));
    assert_eq!(get(&rows[0], "mean_speed"), &Field::Null);
    assert_eq!(get(&rows[0], "rows"), &Field::ULong(3));
    assert_eq!(get(&rows[1], "driver"), &Field::Str("NOR, Lando".into()));
    assert_eq!(get(&rows[1], "window_start_us"), &Field::Long(500_000));
    assert_eq!(get(&rows[1], "window_end_us"), &Field::Long(1_000_000));
    assert_eq!(get(&rows[1], "laps"), &Field::Null);
    assert_eq!(get(&rows[1], "mean_speed"), &Field::Double(301.25));
}

#[test]
fn windows_that_do_not_fit_the_columns_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.parquet");
    let mut w = AggregatesWriter::create(&path, string_key_columns()).unwrap();
    let err = w.write(&window("VER", 0, vec![2.5, 1.0])).unwrap_err();
    assert!(
        matches!(&err, LakeError::NotAnInteger { column, value, .. } if column == "laps" && *value == 2.5),
        "{err:?}"
    );
    let err = w
        .write(&window("VER", 0, vec![f64::INFINITY, 1.0]))
        .unwrap_err();
    assert!(matches!(err, LakeError::NotAnInteger { .. }), "{err:?}");
    let err = w.write(&window("VER", 0, vec![1.0])).unwrap_err();
    assert!(
        matches!(
            err,
            LakeError::AggregateCount {
                expected: 2,
                found: 1,
                ..
            }
        ),
        "{err:?}"
    );
    w.write(&window("VER", 0, vec![1.0, 2.0])).unwrap();
    assert_eq!(w.finish().unwrap().rows, 1);
    assert_eq!(read_rows(&path).len(), 1);

    let mut int_key = string_key_columns();
    int_key.key_type = KeyType::Int;
    let path = dir.path().join("int.parquet");
    let mut w = AggregatesWriter::create(&path, int_key).unwrap();
    let err = w.write(&window("VER", 0, vec![1.0, 2.0])).unwrap_err();
    assert!(matches!(err, LakeError::KeyNotInteger { .. }), "{err:?}");
}

#[test]
fn an_aggregate_named_like_a_fixed_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cols = string_key_columns();
    cols.names[1] = "rows".into();
    let err = AggregatesWriter::create(dir.path().join("w.parquet"), cols)
        .err()
        .expect("rows clashes");
    assert!(
        matches!(&err, LakeError::DuplicateColumn { name, .. } if name == "rows"),
        "{err:?}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no file left"
    );
}

#[test]
fn an_unwritable_path_fails_with_the_path_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: the temporary file can be made,
    // the rename into place cannot.
    let path = dir.path().join("windows.parquet");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("keep"), b"x").unwrap();
    let w = AggregatesWriter::create(&path, string_key_columns()).unwrap();
    let err = w.finish().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LakeError::Io { .. }), "{err:?}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("renaming"),
        "{msg}"
    );
    // The temporary file went with the error.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("windows.parquet")]);
}

#[test]
fn a_job_with_checkpoints_is_refused_instead_of_writing_duplicates() {
    use pitwall_engine::JobSink;
    let dir = tempfile::tempdir().unwrap();
    let w = AggregatesWriter::create(dir.path().join("w.parquet"), string_key_columns()).unwrap();
    let mut sink = AggregatesSink::new(w);
    let err = sink.snapshot().unwrap_err();
    assert!(err.to_string().contains("cannot checkpoint"), "{err}");
}
