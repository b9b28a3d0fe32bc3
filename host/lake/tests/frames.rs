//! Race frames to Parquet and back: every frame of the bundled races is
//! rebuilt from the file's rows, field by field, and must equal the frame
//! that was written (NaN and the frame's "unknown" codes read back from nulls).

mod support;

use std::path::Path;

use parquet::record::Field;
use pitwall_lake::{FramesWriter, LakeError, WriterOptions};
use pitwall_plugin_sdk::frame::{
    CarFrameData, Compound, Flag, PitEventData, PitEventKind, RaceFrameData, RaceStateData,
};
use support::{Row, get, read_rows, row_group_sizes};

fn write(path: &Path, frames: &[RaceFrameData], row_group_rows: usize) -> pitwall_lake::FrameStats {
    let mut w = FramesWriter::create_with(path, WriterOptions { row_group_rows }).unwrap();
    for f in frames {
        w.write(f).unwrap();
    }
    w.finish().unwrap()
}

fn u8_or_0(f: &Field) -> u8 {
    match f {
        Field::UByte(v) => *v,
        Field::Null => 0,
        other => panic!("not a UINT_8: {other:?}"),
    }
}

fn u16_of(f: &Field) -> u16 {
    match f {
        Field::UShort(v) => *v,
        other => panic!("not a UINT_16: {other:?}"),
    }
}

fn f64_or_nan(f: &Field) -> f64 {
    match f {
        Field::Double(v) => *v,
        Field::Null => f64::NAN,
        other => panic!("not a DOUBLE: {other:?}"),
    }
}

fn f32_or_nan(f: &Field) -> f32 {
    match f {
        Field::Float(v) => *v,
        Field::Null => f32::NAN,
        other => panic!("not a FLOAT: {other:?}"),
    }
}

fn i64_opt(f: &Field) -> Option<i64> {
    match f {
        Field::Long(v) => Some(*v),
        Field::Null => None,
        other => panic!("not an INT64: {other:?}"),
    }
}

fn bool_of(f: &Field) -> bool {
    match f {
        Field::Bool(v) => *v,
        other => panic!("not a BOOLEAN: {other:?}"),
    }
}

fn str_opt(f: &Field) -> Option<&str> {
    match f {
        Field::Str(s) => Some(s),
        Field::Null => None,
        other => panic!("not a STRING: {other:?}"),
    }
}

fn flag(s: &str) -> Flag {
    serde_json::from_value(serde_json::Value::String(s.into())).unwrap()
}

fn compound(s: Option<&str>) -> Compound {
    s.map_or(Compound::Unknown, |s| {
        serde_json::from_value(serde_json::Value::String(s.into())).unwrap()
    })
}

/// Rebuilds frames from rows (consecutive rows of one `seq` are one frame).
fn frames_from_rows(rows: &[Row], aggregate_names: &[String]) -> Vec<RaceFrameData> {
    let mut frames: Vec<RaceFrameData> = Vec::new();
    for row in rows {
        let seq = match get(row, "seq") {
            Field::ULong(v) => *v,
            other => panic!("seq is not a UINT_64: {other:?}"),
        };
        if frames.last().is_none_or(|f| f.seq != seq) {
            frames.push(RaceFrameData {
                window_start_ms: i64_opt(get(row, "window_start_ms")).unwrap(),
                window_end_ms: i64_opt(get(row, "window_end_ms")).unwrap(),
                seq,
                session: str_opt(get(row, "session")).unwrap().to_string(),
                race: RaceStateData {
                    lap: u16_of(get(row, "race_lap")),
                    total_laps: match get(row, "total_laps") {
                        Field::UShort(v) => *v,
                        Field::Null => 0,
                        other => panic!("total_laps: {other:?}"),
                    },
                    flag: flag(str_opt(get(row, "flag")).unwrap()),
                    safety_car: bool_of(get(row, "safety_car")),
                    virtual_safety_car: bool_of(get(row, "virtual_safety_car")),
                    pit_events: Vec::new(),
                    under_way: bool_of(get(row, "under_way")),
                },
                cars: Vec::new(),
                aggregate_names: aggregate_names.to_vec(),
                kernels: Vec::new(),
            });
        }
        let f = frames.last_mut().unwrap();
        let car = u16_of(get(row, "car"));
        for (kind, col) in [
            (PitEventKind::PitIn, "pit_in_ms"),
            (PitEventKind::PitOut, "pit_out_ms"),
        ] {
            if let Some(ts_ms) = i64_opt(get(row, col)) {
                f.race.pit_events.push(PitEventData { car, kind, ts_ms });
            }
        }
        f.cars.push(CarFrameData {
            car,
            rows: match get(row, "rows") {
                Field::UInt(v) => *v,
                other => panic!("rows: {other:?}"),
            },
            aggregates: aggregate_names
                .iter()
                .map(|n| f64_or_nan(get(row, &format!("agg_{n}"))))
                .collect(),
            lap: u16_of(get(row, "lap")),
            lap_distance_m: f32_or_nan(get(row, "lap_distance_m")),
            total_distance_m: f64_or_nan(get(row, "total_distance_m")),
            speed_kmh: f32_or_nan(get(row, "speed_kmh")),
            position: u8_or_0(get(row, "position")),
            gap_to_leader_s: f64_or_nan(get(row, "gap_to_leader_s")),
            interval_s: f64_or_nan(get(row, "interval_s")),
            in_pit: bool_of(get(row, "in_pit")),
            retired: bool_of(get(row, "retired")),
            tyre_compound: compound(str_opt(get(row, "tyre_compound"))),
            tyre_age_laps: u16_of(get(row, "tyre_age_laps")),
            last_lap_s: f64_or_nan(get(row, "last_lap_s")),
            drs: u8_or_0(get(row, "drs")),
            pit_stops: u8_or_0(get(row, "pit_stops")),
        });
    }
    for f in &mut frames {
        // The order the host's frame assembler gives them.
        f.race
            .pit_events
            .sort_by_key(|e| (e.ts_ms, e.car, e.kind as u8));
    }
    frames
}

/// Equal field by field, NaN equal to NaN (`to_ndjson_line` writes every
/// field, NaN as null, floats shortest round-trip; the f32 fields are
/// compared by bits first so a rounding through f64 could not hide).
fn assert_same_frames(got: &[RaceFrameData], want: &[RaceFrameData]) {
    assert_eq!(got.len(), want.len(), "frame count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.cars.len(), w.cars.len(), "cars in frame {}", w.seq);
        for (gc, wc) in g.cars.iter().zip(&w.cars) {
            for (a, b) in [
                (gc.lap_distance_m, wc.lap_distance_m),
                (gc.speed_kmh, wc.speed_kmh),
            ] {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "frame {} car {}: {a} != {b}",
                    w.seq,
                    wc.car
                );
            }
        }
        assert_eq!(g.to_ndjson_line(), w.to_ndjson_line(), "frame {}", w.seq);
    }
}

fn nulls(rows: &[Row], col: &str) -> usize {
    rows.iter()
        .filter(|r| matches!(get(r, col), Field::Null))
        .count()
}

#[test]
fn austria_frames_round_trip_through_parquet_in_bounded_row_groups() {
    let frames = support::austria();
    assert!(frames.len() > 4000, "a whole race: {} frames", frames.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.parquet");
    let stats = write(&path, frames, 20_000);

    let cars: usize = frames.iter().map(|f| f.cars.len()).sum();
    assert_eq!(stats.frames, frames.len() as u64);
    assert_eq!(stats.file.rows, cars as u64);
    assert_eq!(stats.frames_without_cars, 0);
    assert_eq!(stats.pit_events_without_car, 0);
    assert_eq!(stats.file.bytes, std::fs::metadata(&path).unwrap().len());
    let groups = row_group_sizes(&path);
    assert_eq!(groups.len(), stats.file.row_groups);
    assert_eq!(groups.len(), cars.div_ceil(20_000));
    assert!(groups.iter().all(|&n| n <= 20_000), "{groups:?}");
    assert_eq!(groups.iter().sum::<i64>(), cars as i64);

    // The race has what the nullable and derived columns are for.
    let pit_events: usize = frames.iter().map(|f| f.race.pit_events.len()).sum();
    assert!(pit_events >= 20, "Austria 2024 had pit stops: {pit_events}");
    assert!(
        frames
            .iter()
            .any(|f| f.race.virtual_safety_car || f.race.safety_car)
    );
    assert!(
        frames
            .iter()
            .flat_map(|f| &f.cars)
            .any(|c| c.total_distance_m > 100_000.0 && c.gap_to_leader_s > 1.0),
        "positions give distances and gaps"
    );

    let rows = read_rows(&path);
    assert_eq!(rows.len(), cars);
    assert!(
        nulls(&rows, "speed_kmh") < rows.len() / 10,
        "positions give speeds"
    );
    let back = frames_from_rows(&rows, &frames[0].aggregate_names);
    assert_same_frames(&back, frames);
}

#[test]
fn bahrain_timing_only_frames_round_trip_with_nulls_where_the_frame_has_no_value() {
    let all = support::bahrain();
    // A few hundred frames around the first stops and the start.
    let first_stop = all
        .iter()
        .position(|f| !f.race.pit_events.is_empty())
        .expect("Bahrain 2024 had pit stops");
    let frames = &all[first_stop.saturating_sub(300)..(first_stop + 300).min(all.len())];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.parquet");
    let stats = write(&path, frames, pitwall_lake::DEFAULT_ROW_GROUP_ROWS);
    assert_eq!(stats.file.row_groups, 1);
    assert_eq!(stats.pit_events_without_car, 0);

    let rows = read_rows(&path);
    let cars: Vec<&CarFrameData> = frames.iter().flat_map(|f| &f.cars).collect();
    assert_eq!(rows.len(), cars.len());
    // Nulls exactly where the frame says "no value".
    let count = |p: &dyn Fn(&CarFrameData) -> bool| cars.iter().filter(|c| p(c)).count();
    assert_eq!(
        nulls(&rows, "interval_s"),
        count(&|c| c.interval_s.is_nan())
    );
    assert_eq!(
        nulls(&rows, "gap_to_leader_s"),
        count(&|c| c.gap_to_leader_s.is_nan())
    );
    assert_eq!(
        nulls(&rows, "last_lap_s"),
        count(&|c| c.last_lap_s.is_nan())
    );
    assert_eq!(nulls(&rows, "position"), count(&|c| c.position == 0));
    assert_eq!(
        nulls(&rows, "tyre_compound"),
        count(&|c| c.tyre_compound == Compound::Unknown)
    );
    assert_eq!(
        nulls(&rows, "pit_in_ms"),
        cars.len()
            - frames
                .iter()
                .flat_map(|f| &f.race.pit_events)
                .filter(|e| e.kind == PitEventKind::PitIn)
                .count()
    );
    // Timing tables give no track state: no distance or speed at all.
    for col in ["lap_distance_m", "total_distance_m", "speed_kmh"] {
        assert_eq!(nulls(&rows, col), rows.len(), "{col}");
    }
    // Cars sampled every few seconds: windows without a row have null aggregates.
    let agg = format!("agg_{}", frames[0].aggregate_names[0]);
    assert!(
        nulls(&rows, &agg) > 0,
        "{agg} has nulls in a timing-only race"
    );
    assert!(nulls(&rows, "interval_s") > 0 && nulls(&rows, "interval_s") < rows.len());

    let back = frames_from_rows(&rows, &frames[0].aggregate_names);
    assert_same_frames(&back, frames);
}

#[test]
fn row_groups_never_exceed_the_configured_size() {
    let frames = &support::austria()[1000..1010];
    let rows: usize = frames.iter().map(|f| f.cars.len()).sum();
    let dir = tempfile::tempdir().unwrap();
    for size in [1, 7, rows, rows + 1] {
        let path = dir.path().join(format!("frames-{size}.parquet"));
        let stats = write(&path, frames, size);
        let groups = row_group_sizes(&path);
        assert_eq!(groups.len(), rows.div_ceil(size), "size {size}");
        assert_eq!(stats.file.row_groups, groups.len());
        assert!(groups.iter().all(|&n| n as usize <= size), "{groups:?}");
        // Only the last group may be short.
        assert!(
            groups[..groups.len() - 1]
                .iter()
                .all(|&n| n as usize == size)
        );
        assert_eq!(groups.iter().sum::<i64>() as usize, rows);
        assert_same_frames(
            &frames_from_rows(&read_rows(&path), &frames[0].aggregate_names),
            frames,
        );
    }
}

#[test]
fn the_schema_has_typed_columns_nullable_where_a_frame_may_lack_the_value() {
    let frames = &support::austria()[..3];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.parquet");
    write(&path, frames, 100);
    let schema = support::schema(&path);
    let col = |n: &str| {
        schema
            .get(n)
            .unwrap_or_else(|| panic!("no column {n}"))
            .clone()
    };
    let int =
        |bits: i8| format!("Some(Integer(IntType {{ bit_width: {bits}, is_signed: false }}))");
    assert_eq!(
        col("session"),
        ("BYTE_ARRAY".into(), "Some(String)".into(), false)
    );
    assert_eq!(col("seq"), ("INT64".into(), int(64), false));
    assert_eq!(
        col("window_start_ms"),
        ("INT64".into(), "None".into(), false)
    );
    assert_eq!(col("car"), ("INT32".into(), int(16), false));
    assert_eq!(col("position"), ("INT32".into(), int(8), true));
    assert_eq!(col("rows"), ("INT32".into(), int(32), false));
    assert_eq!(col("speed_kmh"), ("FLOAT".into(), "None".into(), true));
    assert_eq!(col("interval_s"), ("DOUBLE".into(), "None".into(), true));
    assert_eq!(
        col("tyre_compound"),
        ("BYTE_ARRAY".into(), "Some(String)".into(), true)
    );
    assert_eq!(col("in_pit"), ("BOOLEAN".into(), "None".into(), false));
    assert_eq!(col("pit_out_ms"), ("INT64".into(), "None".into(), true));
    let names = support::column_names(&path);
    let aggs: Vec<String> = frames[0]
        .aggregate_names
        .iter()
        .map(|n| format!("agg_{n}"))
        .collect();
    assert_eq!(names[names.len() - aggs.len()..], aggs[..]);
    for a in &aggs {
        assert_eq!(col(a), ("DOUBLE".into(), "None".into(), true));
    }
}

#[test]
fn an_unwritable_path_fails_with_the_path_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("frames.parquet");
    let err = FramesWriter::create(&path)
        .err()
        .expect("the folder does not exist");
    assert!(matches!(err, LakeError::Io { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("creating the file"), "{msg}");
}

#[test]
fn a_writer_dropped_unfinished_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.parquet");
    let mut w = FramesWriter::create(&path).unwrap();
    w.write(&support::austria()[0]).unwrap();
    drop(w);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_frame_with_other_aggregates_is_refused_whole() {
    let frames = &support::austria()[..2];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.parquet");
    let mut w = FramesWriter::create(&path).unwrap();
    w.write(&frames[0]).unwrap();
    let mut other = frames[1].clone();
    other.aggregate_names.push("extra".into());
    let err = w.write(&other).unwrap_err();
    assert!(matches!(err, LakeError::AggregateNamesChanged { seq, .. } if seq == other.seq));
    let mut short = frames[1].clone();
    short.cars.last_mut().unwrap().aggregates.pop();
    let err = w.write(&short).unwrap_err();
    assert!(matches!(err, LakeError::AggregateCount { .. }), "{err:?}");
    // Neither left a partial row behind.
    let stats = w.finish().unwrap();
    assert_eq!(stats.frames, 1);
    assert_eq!(stats.file.rows, frames[0].cars.len() as u64);
    assert_same_frames(
        &frames_from_rows(&read_rows(&path), &frames[0].aggregate_names),
        &frames[..1],
    );
}

#[test]
fn pit_events_map_to_their_car_and_unrepresentable_ones_are_reported() {
    let mut f = support::austria()[1000].clone();
    let (a, b) = (f.cars[0].car, f.cars[1].car);
    f.race.pit_events = vec![
        PitEventData {
            car: a,
            kind: PitEventKind::PitIn,
            ts_ms: f.window_start_ms + 10,
        },
        PitEventData {
            car: b,
            kind: PitEventKind::PitOut,
            ts_ms: f.window_start_ms + 20,
        },
        PitEventData {
            car: 999,
            kind: PitEventKind::PitIn,
            ts_ms: f.window_start_ms + 30,
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.parquet");
    let mut w = FramesWriter::create(&path).unwrap();
    w.write(&f).unwrap();
    let mut twice = f.clone();
    twice.seq += 1;
    twice.race.pit_events.push(PitEventData {
        car: a,
        kind: PitEventKind::PitIn,
        ts_ms: f.window_start_ms + 40,
    });
    let err = w.write(&twice).unwrap_err();
    assert!(
        matches!(err, LakeError::DuplicatePitEvent { car, kind: "pit_in", .. } if car == a),
        "{err:?}"
    );
    let stats = w.finish().unwrap();
    assert_eq!(stats.pit_events_without_car, 1);
    let rows = read_rows(&path);
    assert_eq!(
        i64_opt(get(&rows[0], "pit_in_ms")),
        Some(f.window_start_ms + 10)
    );
    assert_eq!(i64_opt(get(&rows[0], "pit_out_ms")), None);
    assert_eq!(
        i64_opt(get(&rows[1], "pit_out_ms")),
        Some(f.window_start_ms + 20)
    );
    assert_eq!(nulls(&rows, "pit_in_ms"), rows.len() - 1);
}

#[test]
fn a_file_with_no_frame_has_the_fixed_columns_and_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.parquet");
    let stats = FramesWriter::create(&path).unwrap().finish().unwrap();
    assert_eq!(
        (stats.frames, stats.file.rows, stats.file.row_groups),
        (0, 0, 0)
    );
    assert!(read_rows(&path).is_empty());
    let names = support::column_names(&path);
    assert_eq!(names.first().map(String::as_str), Some("session"));
    assert_eq!(names.last().map(String::as_str), Some("pit_out_ms"));
}
