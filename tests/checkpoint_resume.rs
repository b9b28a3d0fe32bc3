//! Checkpoints are exact: a job stopped anywhere (`JobOptions::stop_after_rows`) and
//! restored from its checkpoint directory with a fresh source and a fresh sink gives
//! the windows, late rows and counters of a run that never stopped — for the
//! in-memory source, the simulator (out-of-order rows) and a CSV file. Also: a
//! corrupt newest checkpoint falls back to the previous one, and a checkpoint of a
//! different config is refused.

use std::path::Path;
use std::sync::Arc;

use pitwall_engine::broadcast::{BroadcastEvent, EventKind};
use pitwall_engine::checkpoint::CheckpointStore;
use pitwall_engine::job::{JobOptions, JobSink, JobSummary};
use pitwall_engine::output::{LateWriter, TableFormat, WindowJobSink};
use pitwall_engine::source::file::FileSource;
use pitwall_engine::source::memory::{MemorySource, Row};
use pitwall_engine::source::sim::{SimConfig, Simulator};
use pitwall_engine::source::{OnError, Source, SourceOptions};
use pitwall_engine::time::ConfigDuration;
use pitwall_engine::{CheckpointError, EngineError, EngineStats, JobConfig, JobPlan};
use pitwall_tests::{RecordingSink, bench_config_path, drain_source, rows_to_csv, rows_to_ndjson};
use proptest::prelude::*;

/// The window-bench job with a short checkpoint interval, so that periodic
/// checkpoints happen as well as the one taken at the stop.
fn bench_plan_every(interval: &str) -> Arc<JobPlan> {
    let text = std::fs::read_to_string(bench_config_path()).unwrap();
    assert!(text.contains("interval = \"60s\""));
    let text = text.replace("interval = \"60s\"", &format!("interval = \"{interval}\""));
    Arc::new(JobConfig::parse(&text).unwrap().plan().unwrap())
}

/// The window-bench job with keyed state that matters across a checkpoint: speed is
/// thinned (sampler state per car) and cars silent for 1.5 s expire (TTL); a 0.5 s bound.
fn stateful_plan() -> Arc<JobPlan> {
    let text = std::fs::read_to_string(bench_config_path()).unwrap();
    let text = text
        .replace("interval = \"60s\"", "interval = \"1s\"")
        .replace("ttl = \"30s\"", "ttl = \"1500ms\"")
        .replace("bound = \"2s\"", "bound = \"500ms\"")
        .replace(
            "{ name = \"speed\", type = \"float\", unit = \"km/h\", min = 0, max = 400 }",
            "{ name = \"speed\", type = \"float\", unit = \"km/h\", min = 0, max = 400, \
             sampling = { min_interval = \"6ms\", deadband = 0.5 } }",
        );
    let plan = JobConfig::parse(&text).unwrap().plan().unwrap();
    assert_eq!(plan.ttl, Some(1500));
    assert!(plan.schema.channels[0].sampling.is_some());
    Arc::new(plan)
}

fn opts(dir: Option<&Path>, stop_after_rows: Option<u64>) -> JobOptions {
    JobOptions {
        checkpoint_dir: dir.map(Path::to_path_buf),
        stop_after_rows,
        ..JobOptions::default()
    }
}

/// SplitMix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random rows of the bench schema: 3 cars, ~2 ms apart, 6 % sent up to 4.5 s back
/// (beyond the 2 s bound, so some are late), some duplicates.
fn bench_rows(seed: u64, n: usize) -> Vec<Row> {
    let mut ts = (mix(seed) % 2000) as i64 - 1000;
    (0..n)
        .map(|i| {
            let h = mix(seed ^ (i as u64).wrapping_mul(0x1000_0001));
            ts += (h % 5) as i64;
            let back = if h % 100 < 6 {
                ((h >> 8) % 4500) as i64
            } else {
                0
            };
            // Car 5 is silent through the middle of the race (its keyed state expires).
            let edge = i < n / 8 || i > n - n / 8;
            let car = ["1", "44", "16", "5"][((h >> 20) % if edge { 4 } else { 3 }) as usize];
            let v = |k: u32, m: u64| ((h >> k) % m) as f64;
            Row {
                ts: ts - back,
                key: car.to_string(),
                values: vec![
                    v(24, 3500) / 10.0,
                    9000.0 + v(30, 3000),
                    v(36, 1000) / 10.0,
                    if h.is_multiple_of(7) { 100.0 } else { 0.0 },
                    v(44, 9),
                    v(50, 15),
                ],
            }
        })
        .collect()
}

fn bench_events(seed: u64, rows: &[Row]) -> Vec<(usize, BroadcastEvent)> {
    (0..6u64)
        .map(|k| {
            let h = mix(seed.wrapping_add(k * 7919));
            let at = (h % (rows.len() as u64 + 1)) as usize;
            let near = rows
                .get(at.min(rows.len().saturating_sub(1)))
                .map_or(0, |r| r.ts);
            let ts = near + ((h >> 16) % 6000) as i64 - 3000;
            let (kind, value) = match (h >> 32) % 3 {
                0 => (
                    EventKind::Flag,
                    ["GREEN", "YELLOW", "RED"][((h >> 40) % 3) as usize],
                ),
                1 => (
                    EventKind::SafetyCar,
                    ["DEPLOYED", "IN"][((h >> 40) % 2) as usize],
                ),
                _ => (EventKind::PitIn, ""),
            };
            (
                at,
                BroadcastEvent {
                    ts,
                    kind,
                    car: Some("44".into()),
                    value: value.into(),
                },
            )
        })
        .collect()
}

fn memory_source(
    plan: &JobPlan,
    rows: &[Row],
    events: &[(usize, BroadcastEvent)],
    chunk: usize,
) -> Box<dyn Source> {
    Box::new(
        MemorySource::new(plan.schema.clone(), rows.to_vec(), chunk).with_events(events.to_vec()),
    )
}

/// Runs `make_source()` to the end, stopping after each of `stops` rows (rows of that
/// run) and resuming with a fresh source and sink from the checkpoint directory.
/// Returns the final sink and summary, and how many runs it took.
fn run_in_pieces<S: JobSink + Default>(
    plan: &Arc<JobPlan>,
    make_source: &dyn Fn() -> Box<dyn Source>,
    dir: &Path,
    stops: &[u64],
) -> (S, JobSummary, usize) {
    let mut runs = 0;
    for &stop in stops {
        let mut sink = S::default();
        runs += 1;
        let s = pitwall_tests::run(plan, make_source(), &mut sink, &opts(Some(dir), Some(stop)))
            .expect("run");
        if !s.stopped_early {
            return (sink, s, runs);
        }
        assert!(s.checkpoints_written >= 1);
    }
    let mut sink = S::default();
    runs += 1;
    let s = pitwall_tests::run(plan, make_source(), &mut sink, &opts(Some(dir), None))
        .expect("final run");
    assert!(!s.stopped_early);
    (sink, s, runs)
}

fn assert_same_stats(got: &EngineStats, want: &EngineStats, what: &str) {
    assert_eq!(
        got, want,
        "{what}: counters differ from the uninterrupted run"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// In-memory rows and broadcast events, random chunk size, stopped 1–3 times at
    /// random points; half the cases with sampling and TTL expiry in the keyed state.
    #[test]
    fn memory_job_resumes_exactly(
        seed in any::<u64>(),
        n in 0usize..3000,
        chunk in 1usize..300,
        stops in proptest::collection::vec(0u64..2500, 1..4),
        stateful in any::<bool>(),
    ) {
        let plan = if stateful { stateful_plan() } else { bench_plan_every("1s") };
        let rows = bench_rows(seed, n);
        let events = bench_events(seed, &rows);
        let mut whole = RecordingSink::default();
        let want = pitwall_tests::run(&plan, memory_source(&plan, &rows, &events, chunk), &mut whole, &opts(None, None)).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let make = || memory_source(&plan, &rows, &events, chunk);
        let (got, summary, runs) = run_in_pieces::<RecordingSink>(&plan, &make, dir.path(), &stops);
        prop_assert!(runs >= 2 || stops[0] >= n as u64);
        prop_assert_eq!(&got.windows, &whole.windows);
        prop_assert_eq!(&got.late, &whole.late);
        prop_assert_eq!(&summary.stats, &want.stats);
        prop_assert_eq!(summary.watermark, want.watermark);
    }
}

/// The simulator at 240 Hz with out-of-order rows, stopped at several points.
#[test]
fn simulator_job_resumes_exactly() {
    let plan = bench_plan_every("1s");
    let sim_cfg = |seed| SimConfig {
        cars: 4,
        rate_hz: 240,
        duration: ConfigDuration::from_millis(8_000),
        seed,
        out_of_order_fraction: 0.05,
        max_delay_ms: 4_000,
        ..SimConfig::default()
    };
    for seed in [1u64, 7] {
        let source_opts = SourceOptions {
            projection: plan.aggregates.used_channels().to_vec(),
            on_error: OnError::Fail,
            chunk_rows: 700,
        };
        let make = || -> Box<dyn Source> {
            Box::new(Simulator::new(sim_cfg(seed), source_opts.clone()).unwrap())
        };
        let mut whole = RecordingSink::default();
        let want = pitwall_tests::run(&plan, make(), &mut whole, &opts(None, None)).unwrap();
        assert_eq!(want.stats.rows_in, 4 * 240 * 8);
        assert!(
            want.stats.late_rows > 0,
            "the simulator sends some rows late"
        );
        assert!(whole.windows.len() >= 4 * 8);
        for stops in [vec![1], vec![3000], vec![2000, 2000, 2000], vec![7000]] {
            let dir = tempfile::tempdir().unwrap();
            let (got, summary, _) =
                run_in_pieces::<RecordingSink>(&plan, &make, dir.path(), &stops);
            assert_eq!(got.windows, whole.windows, "seed {seed}, stops {stops:?}");
            assert_eq!(got.late, whole.late, "seed {seed}, stops {stops:?}");
            assert_same_stats(
                &summary.stats,
                &want.stats,
                &format!("seed {seed}, stops {stops:?}"),
            );
        }
    }
}

/// Simulated rows written to a CSV and an NDJSON file.
fn sim_files(dir: &Path) -> ([std::path::PathBuf; 2], Vec<Row>) {
    let cfg = SimConfig {
        cars: 3,
        rate_hz: 240,
        duration: ConfigDuration::from_millis(6_000),
        seed: 3,
        out_of_order_fraction: 0.05,
        max_delay_ms: 4_000,
        ..SimConfig::default()
    };
    let schema = cfg.schema();
    let mut sim = Simulator::new(cfg, SourceOptions::all(&schema)).unwrap();
    let rows = drain_source(&mut sim);
    let csv = dir.join("sim.csv");
    std::fs::write(&csv, rows_to_csv(&schema, &rows)).unwrap();
    let ndjson = dir.join("sim.ndjson");
    std::fs::write(&ndjson, rows_to_ndjson(&schema, &rows)).unwrap();
    ([csv, ndjson], rows)
}

fn file_source(plan: &JobPlan, path: &Path, chunk_rows: usize) -> Box<dyn Source> {
    let o = SourceOptions {
        projection: plan.aggregates.used_channels().to_vec(),
        on_error: OnError::Fail,
        chunk_rows,
    };
    Box::new(
        FileSource::open(path, plan.schema.clone(), o, None)
            .unwrap()
            .with_parse_threads(2),
    )
}

/// A CSV and an NDJSON file through `FileSource`, stopped at several points; they
/// also window exactly like the same rows from memory.
#[test]
fn file_jobs_resume_exactly() {
    let plan = bench_plan_every("1s");
    let tmp = tempfile::tempdir().unwrap();
    let (files, rows) = sim_files(tmp.path());
    let mut mem = RecordingSink::default();
    pitwall_tests::run(
        &plan,
        memory_source(&plan, &rows, &[], 500),
        &mut mem,
        &opts(None, None),
    )
    .unwrap();
    for (file, header_lines) in files.iter().zip([1, 0]) {
        let name = file.display().to_string();
        let make = || file_source(&plan, file, 500);
        let mut whole = RecordingSink::default();
        let want = pitwall_tests::run(&plan, make(), &mut whole, &opts(None, None)).unwrap();
        assert_eq!(want.stats.rows_in, rows.len() as u64);
        assert!(want.stats.late_rows > 0);
        assert_eq!(
            mem.windows, whole.windows,
            "{name}: file and in-memory rows window differently"
        );
        // Same late rows; CSV line numbers count the header.
        let shifted: Vec<_> = mem
            .late
            .iter()
            .map(|l| (l.car.clone(), l.line + header_lines, l.ts))
            .collect();
        let file_late: Vec<_> = whole
            .late
            .iter()
            .map(|l| (l.car.clone(), l.line, l.ts))
            .collect();
        assert_eq!(file_late, shifted, "{name}");

        for stops in [vec![1], vec![1700], vec![1000, 1000, 1000, 1000]] {
            let dir = tempfile::tempdir().unwrap();
            let (got, summary, runs) =
                run_in_pieces::<RecordingSink>(&plan, &make, dir.path(), &stops);
            assert!(runs >= 2);
            assert_eq!(got.windows, whole.windows, "{name}, stops {stops:?}");
            assert_eq!(got.late, whole.late, "{name}, stops {stops:?}");
            assert_same_stats(
                &summary.stats,
                &want.stats,
                &format!("{name}, stops {stops:?}"),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// `WindowJobSink`: the window table and the late-row file.

/// Runs with a `WindowJobSink` writing late rows to `late`; the late writer is opened
/// keeping what a previous run wrote (the restored checkpoint cuts it back).
fn window_sink_run(
    plan: &Arc<JobPlan>,
    source: Box<dyn Source>,
    late: &Path,
    o: &JobOptions,
) -> Result<(WindowJobSink, JobSummary), EngineError> {
    let existing = std::fs::metadata(late).map_or(0, |m| m.len());
    let writer = LateWriter::open_at(late, plan, existing)?;
    let mut sink = WindowJobSink::new(Some(writer));
    let s = pitwall_tests::run(plan, source, &mut sink, o)?;
    assert!(sink.late_error.is_none());
    if let Some(l) = &mut sink.late {
        l.flush().unwrap();
    }
    Ok((sink, s))
}

fn table_csv(plan: &JobPlan, sink: &mut WindowJobSink) -> Vec<u8> {
    sink.table.sort(plan);
    let mut out = Vec::new();
    sink.table
        .write_to(plan, &mut out, TableFormat::Csv)
        .unwrap();
    out
}

/// Stopped and resumed (twice), `WindowJobSink` writes the same window table and a
/// late file identical byte for byte to an uninterrupted run's.
#[test]
fn window_job_sink_resumes_with_identical_table_and_late_file() {
    let plan = bench_plan_every("1s");
    let rows = bench_rows(42, 3000);
    let events = bench_events(42, &rows);
    let tmp = tempfile::tempdir().unwrap();
    let late_whole = tmp.path().join("whole.late.ndjson");
    let (mut whole, want) = window_sink_run(
        &plan,
        memory_source(&plan, &rows, &events, 128),
        &late_whole,
        &opts(None, None),
    )
    .unwrap();
    let want_table = table_csv(&plan, &mut whole);
    let want_late = std::fs::read(&late_whole).unwrap();
    assert!(want.stats.late_rows > 5, "the input has late rows");
    assert_eq!(
        want_late.iter().filter(|b| **b == b'\n').count() as u64,
        want.stats.late_rows
    );

    for stops in [vec![700u64], vec![300, 1000, 900], vec![2999]] {
        let dir = tmp.path().join(format!("ckpt-{stops:?}"));
        let late = tmp.path().join(format!("piece-{stops:?}.late.ndjson"));
        let mut last = None;
        for stop in stops.iter().map(|s| Some(*s)).chain([None]) {
            let (sink, s) = window_sink_run(
                &plan,
                memory_source(&plan, &rows, &events, 128),
                &late,
                &opts(Some(&dir), stop),
            )
            .unwrap();
            let done = !s.stopped_early;
            last = Some((sink, s));
            if done {
                break;
            }
        }
        let (mut sink, s) = last.unwrap();
        assert!(!s.stopped_early);
        assert_eq!(
            table_csv(&plan, &mut sink),
            want_table,
            "stops {stops:?}: window table"
        );
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(&late).unwrap()),
            String::from_utf8_lossy(&want_late),
            "stops {stops:?}: late file"
        );
        assert_same_stats(&s.stats, &want.stats, &format!("stops {stops:?}"));
    }
}

/// A late file created afresh on resume, as `pitwall window` does (`LateWriter::create`),
/// must not end up with the part before the checkpoint lost or zero-filled: a resumed
/// run must give the late file of an uninterrupted run.
#[test]
fn resume_with_a_freshly_created_late_writer_keeps_the_late_file_intact() {
    let plan = bench_plan_every("1s");
    let rows = bench_rows(5, 2000);
    let tmp = tempfile::tempdir().unwrap();
    let whole_late = tmp.path().join("whole.ndjson");
    let mut whole = WindowJobSink::new(Some(LateWriter::create(&whole_late, &plan).unwrap()));
    pitwall_tests::run(
        &plan,
        memory_source(&plan, &rows, &[], 100),
        &mut whole,
        &opts(None, None),
    )
    .unwrap();
    whole.late.as_mut().unwrap().flush().unwrap();
    drop(whole);
    let want = std::fs::read(&whole_late).unwrap();
    assert!(!want.is_empty());

    let dir = tmp.path().join("ckpt");
    let late = tmp.path().join("piece.ndjson");
    for stop in [Some(1500), None] {
        let mut sink = WindowJobSink::new(Some(LateWriter::create(&late, &plan).unwrap()));
        let s = pitwall_tests::run(
            &plan,
            memory_source(&plan, &rows, &[], 100),
            &mut sink,
            &opts(Some(&dir), stop),
        );
        match s {
            Ok(_) => {
                sink.late.as_mut().unwrap().flush().unwrap();
            }
            // Refusing to resume onto a truncated late file is acceptable too.
            Err(e) => {
                assert!(stop.is_none(), "{e}");
                return;
            }
        }
    }
    let got = std::fs::read(&late).unwrap();
    assert!(
        got == want,
        "late file after resume differs from an uninterrupted run: {} bytes (of which {} NUL) vs {} bytes; starts {:?}",
        got.len(),
        got.iter().filter(|b| **b == 0).count(),
        want.len(),
        String::from_utf8_lossy(&got[..got.len().min(80)])
    );
}

/// Re-running a finished job with its checkpoint directory repeats nothing: same
/// windows, late rows and counters.
#[test]
fn rerunning_a_finished_job_changes_nothing() {
    let plan = bench_plan_every("1s");
    let rows = bench_rows(9, 1200);
    let dir = tempfile::tempdir().unwrap();
    let mut first = RecordingSink::default();
    let a = pitwall_tests::run(
        &plan,
        memory_source(&plan, &rows, &[], 100),
        &mut first,
        &opts(Some(dir.path()), None),
    )
    .unwrap();
    let mut again = RecordingSink::default();
    let b = pitwall_tests::run(
        &plan,
        memory_source(&plan, &rows, &[], 100),
        &mut again,
        &opts(Some(dir.path()), None),
    )
    .unwrap();
    assert!(b.resumed_from.is_some());
    assert_eq!(b.rows_this_run, 0);
    assert_eq!(again, first);
    assert_eq!(b.stats.rows_in, a.stats.rows_in);
    assert_eq!(b.stats.windows_fired, a.stats.windows_fired);
    assert_eq!(b.stats.late_rows, a.stats.late_rows);
}

// ---------------------------------------------------------------------------
// Damaged and foreign checkpoints.

fn checkpoint_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    v.sort();
    v
}

/// The newest checkpoint is damaged (truncated, or a flipped byte): the job resumes
/// from the previous one and still gives the uninterrupted run's outputs, late file included.
#[test]
fn corrupt_newest_checkpoint_falls_back_to_the_previous_one() {
    let plan = bench_plan_every("1s");
    let rows = bench_rows(11, 3000);
    let tmp = tempfile::tempdir().unwrap();
    let whole_late = tmp.path().join("whole.ndjson");
    let (mut whole, want) = window_sink_run(
        &plan,
        memory_source(&plan, &rows, &[], 100),
        &whole_late,
        &opts(None, None),
    )
    .unwrap();
    let want_table = table_csv(&plan, &mut whole);
    let want_late = std::fs::read(&whole_late).unwrap();

    for damage in ["flip", "truncate", "garbage"] {
        let dir = tmp.path().join(format!("ckpt-{damage}"));
        let late = tmp.path().join(format!("{damage}.ndjson"));
        let (_, first) = window_sink_run(
            &plan,
            memory_source(&plan, &rows, &[], 100),
            &late,
            &opts(Some(&dir), Some(2200)),
        )
        .unwrap();
        assert!(first.stopped_early);
        let files = checkpoint_files(&dir);
        assert!(
            files.len() >= 2,
            "periodic checkpoints plus the stop: {files:?}"
        );
        let newest = files.last().unwrap();
        let previous = CheckpointStore::read(&files[files.len() - 2]).unwrap();
        let mut bytes = std::fs::read(newest).unwrap();
        match damage {
            "flip" => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x5a;
            }
            "truncate" => bytes.truncate(bytes.len() / 3),
            _ => bytes = b"not a checkpoint at all".to_vec(),
        }
        std::fs::write(newest, bytes).unwrap();
        assert!(CheckpointStore::read(newest).is_err());

        let (mut sink, s) = window_sink_run(
            &plan,
            memory_source(&plan, &rows, &[], 100),
            &late,
            &opts(Some(&dir), None),
        )
        .unwrap();
        assert_eq!(
            s.resumed_from,
            Some(previous.seq),
            "{damage}: resumes from the previous checkpoint"
        );
        assert_eq!(
            s.rows_this_run,
            rows.len() as u64 - previous.source_position
        );
        assert_eq!(
            table_csv(&plan, &mut sink),
            want_table,
            "{damage}: window table"
        );
        assert_eq!(
            std::fs::read(&late).unwrap(),
            want_late,
            "{damage}: late file"
        );
        assert_same_stats(&s.stats, &want.stats, damage);
    }
}

/// A checkpoint directory written by another config (another window size) is refused
/// with an error that says so and names the file; nothing is resumed.
#[test]
fn checkpoint_of_a_different_config_is_refused() {
    let plan = bench_plan_every("1s");
    let rows = bench_rows(13, 1000);
    let dir = tempfile::tempdir().unwrap();
    let mut sink = RecordingSink::default();
    let s = pitwall_tests::run(
        &plan,
        memory_source(&plan, &rows, &[], 100),
        &mut sink,
        &opts(Some(dir.path()), Some(400)),
    )
    .unwrap();
    assert!(s.stopped_early);

    let text = std::fs::read_to_string(bench_config_path())
        .unwrap()
        .replace("size = \"1s\"", "size = \"500ms\"");
    let other = Arc::new(JobConfig::parse(&text).unwrap().plan().unwrap());
    assert_ne!(other.fingerprint, plan.fingerprint);
    let mut sink = RecordingSink::default();
    let err = pitwall_tests::run(
        &other,
        memory_source(&other, &rows, &[], 100),
        &mut sink,
        &opts(Some(dir.path()), None),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Checkpoint(CheckpointError::ConfigMismatch { .. })
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("different job configuration"), "{msg}");
    assert!(
        msg.contains(&dir.path().display().to_string()),
        "names the checkpoint: {msg}"
    );
    assert!(sink.windows.is_empty() && sink.late.is_empty());
}

/// A checkpoint is accepted by a config that differs only in its checkpoint settings.
#[test]
fn checkpoint_settings_do_not_block_a_resume() {
    let plan = bench_plan_every("1s");
    let rows = bench_rows(13, 1000);
    let dir = tempfile::tempdir().unwrap();
    let mut whole = RecordingSink::default();
    pitwall_tests::run(
        &plan,
        memory_source(&plan, &rows, &[], 100),
        &mut whole,
        &opts(None, None),
    )
    .unwrap();
    let mut sink = RecordingSink::default();
    let s = pitwall_tests::run(
        &plan,
        memory_source(&plan, &rows, &[], 100),
        &mut sink,
        &opts(Some(dir.path()), Some(400)),
    )
    .unwrap();
    assert!(s.stopped_early);
    let same = bench_plan_every("5s");
    let mut sink = RecordingSink::default();
    let s = pitwall_tests::run(
        &same,
        memory_source(&same, &rows, &[], 100),
        &mut sink,
        &opts(Some(dir.path()), None),
    )
    .unwrap();
    assert!(s.resumed_from.is_some());
    assert_eq!(sink, whole);
}
