use super::*;
use proptest::prelude::*;

/// NaN-aware equality: `Debug` prints every float in its shortest exact form
/// (and `-0.0` as such), and every NaN as `NaN`.
fn same(a: &RaceFrameData, b: &RaceFrameData) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn finite_or_nan_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => proptest::num::f64::NORMAL
            | proptest::num::f64::SUBNORMAL
            | proptest::num::f64::ZERO
            | proptest::num::f64::POSITIVE
            | proptest::num::f64::NEGATIVE,
        1 => Just(f64::NAN),
    ]
}

fn finite_or_nan_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => proptest::num::f32::NORMAL
            | proptest::num::f32::SUBNORMAL
            | proptest::num::f32::ZERO
            | proptest::num::f32::POSITIVE
            | proptest::num::f32::NEGATIVE,
        1 => Just(f32::NAN),
    ]
}

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        Just(Flag::None),
        Just(Flag::Green),
        Just(Flag::Yellow),
        Just(Flag::DoubleYellow),
        Just(Flag::Red),
        Just(Flag::Chequered),
    ]
}

fn compound() -> impl Strategy<Value = Compound> {
    prop_oneof![
        Just(Compound::Unknown),
        Just(Compound::Soft),
        Just(Compound::Medium),
        Just(Compound::Hard),
        Just(Compound::Intermediate),
        Just(Compound::Wet),
    ]
}

fn pit_event() -> impl Strategy<Value = PitEventData> {
    (
        any::<u16>(),
        prop_oneof![Just(PitEventKind::PitIn), Just(PitEventKind::PitOut)],
        any::<i64>(),
    )
        .prop_map(|(car, kind, ts_ms)| PitEventData { car, kind, ts_ms })
}

fn car(n_aggs: usize) -> impl Strategy<Value = CarFrameData> {
    (
        (
            any::<u16>(),
            any::<u32>(),
            proptest::collection::vec(finite_or_nan_f64(), n_aggs),
            any::<u16>(),
            finite_or_nan_f32(),
            finite_or_nan_f64(),
            finite_or_nan_f32(),
        ),
        (
            any::<u8>(),
            finite_or_nan_f64(),
            finite_or_nan_f64(),
            any::<bool>(),
            any::<bool>(),
            compound(),
            any::<u16>(),
        ),
        (finite_or_nan_f64(), any::<u8>(), any::<u8>()),
    )
        .prop_map(
            |(
                (car, rows, aggregates, lap, lap_distance_m, total_distance_m, speed_kmh),
                (
                    position,
                    gap_to_leader_s,
                    interval_s,
                    in_pit,
                    retired,
                    tyre_compound,
                    tyre_age_laps,
                ),
                (last_lap_s, drs, pit_stops),
            )| CarFrameData {
                car,
                rows,
                aggregates,
                lap,
                lap_distance_m,
                total_distance_m,
                speed_kmh,
                position,
                gap_to_leader_s,
                interval_s,
                in_pit,
                retired,
                tyre_compound,
                tyre_age_laps,
                last_lap_s,
                drs,
                pit_stops,
            },
        )
}

fn frame() -> impl Strategy<Value = RaceFrameData> {
    (0usize..5).prop_flat_map(|n_aggs| {
        (
            (any::<i64>(), any::<i64>(), any::<u64>(), any::<String>()),
            (
                any::<u16>(),
                any::<u16>(),
                flag(),
                any::<bool>(),
                any::<bool>(),
                proptest::collection::vec(pit_event(), 0..4),
                any::<bool>(),
            ),
            proptest::collection::vec(car(n_aggs), 0..6),
            proptest::collection::vec(any::<String>(), n_aggs),
            proptest::collection::vec(
                (
                    any::<String>(),
                    proptest::collection::vec(finite_or_nan_f64(), 0..4),
                )
                    .prop_map(|(name, values)| KernelResultData { name, values }),
                0..3,
            ),
        )
            .prop_map(
                |(
                    (window_start_ms, window_end_ms, seq, session),
                    (lap, total_laps, flag, safety_car, virtual_safety_car, pit_events, under_way),
                    cars,
                    aggregate_names,
                    kernels,
                )| RaceFrameData {
                    window_start_ms,
                    window_end_ms,
                    seq,
                    session,
                    race: RaceStateData {
                        lap,
                        total_laps,
                        flag,
                        safety_car,
                        virtual_safety_car,
                        pit_events,
                        under_way,
                    },
                    cars,
                    aggregate_names,
                    kernels,
                },
            )
    })
}

/// A realistic frame: `cars` cars, `aggs` aggregates each, two pit events.
fn sample(cars: u16, aggs: usize) -> RaceFrameData {
    let names = [
        "speed_mean",
        "speed_max",
        "throttle_mean",
        "brake_frac",
        "rpm_max",
        "gear_mode",
    ];
    RaceFrameData {
        window_start_ms: 3_661_000,
        window_end_ms: 3_662_000,
        seq: 3_661,
        session: "2024-silverstone-race".into(),
        race: RaceStateData {
            lap: 23,
            total_laps: 52,
            flag: Flag::Green,
            safety_car: false,
            virtual_safety_car: true,
            pit_events: vec![
                PitEventData {
                    car: 44,
                    kind: PitEventKind::PitIn,
                    ts_ms: 3_661_250,
                },
                PitEventData {
                    car: 1,
                    kind: PitEventKind::PitOut,
                    ts_ms: 3_661_900,
                },
            ],
            under_way: true,
        },
        cars: (0..cars)
            .map(|i| CarFrameData {
                car: i + 1,
                rows: 4,
                aggregates: (0..aggs)
                    .map(|a| {
                        if a == 3 && i == 5 {
                            f64::NAN
                        } else {
                            100.0 + f64::from(i) + a as f64 / 7.0
                        }
                    })
                    .collect(),
                lap: 23,
                lap_distance_m: 1234.5 + f32::from(i),
                total_distance_m: 130_000.25 - f64::from(i) * 40.0,
                speed_kmh: 287.4,
                position: (i + 1) as u8,
                gap_to_leader_s: if i == 0 { f64::NAN } else { f64::from(i) * 1.3 },
                interval_s: if i == 0 { f64::NAN } else { 1.3 },
                in_pit: i == 10,
                retired: i == 19,
                tyre_compound: Compound::Medium,
                tyre_age_laps: 12,
                last_lap_s: 67.125 + f64::from(i) / 10.0,
                drs: if i == 1 { 12 } else { 8 },
                pit_stops: 1,
            })
            .collect(),
        aggregate_names: names
            .iter()
            .cycle()
            .take(aggs)
            .map(|s| (*s).to_owned())
            .collect(),
        kernels: Vec::new(),
    }
}

proptest! {
    #[test]
    fn flatbuffer_round_trip(f in frame()) {
        let bytes = f.to_flatbuffer();
        let back = RaceFrameData::from_flatbuffer(&bytes).unwrap();
        prop_assert!(same(&f, &back), "{f:?}\n!=\n{back:?}");
    }

    #[test]
    fn ndjson_round_trip(f in frame()) {
        let line = f.to_ndjson_line();
        prop_assert!(!line.contains('\n'));
        let back = RaceFrameData::from_ndjson_line(&line).unwrap();
        prop_assert!(same(&f, &back), "{f:?}\n!=\n{back:?}");
    }

    #[test]
    fn corrupt_bytes_never_panic(
        f in frame(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = f.to_flatbuffer();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x | 1;
        }
        // Any outcome but a panic is fine; a buffer that still verifies must
        // also decode without panicking.
        let _ = RaceFrameData::from_flatbuffer(&bytes);
    }
}

#[test]
fn reused_builder_gives_identical_bytes() {
    let f = sample(20, 6);
    let mut fbb = FlatBufferBuilder::new();
    let first = f.write_flatbuffer(&mut fbb).to_vec();
    let _ = sample(3, 2).write_flatbuffer(&mut fbb);
    assert_eq!(f.write_flatbuffer(&mut fbb), &first[..]);
    assert_eq!(f.to_flatbuffer(), first);
}

#[test]
fn zero_copy_view_reads_fields_in_place() {
    let f = sample(20, 6);
    let bytes = f.to_flatbuffer();
    let v = read_frame(&bytes).unwrap();
    assert_eq!(v.frame_version(), FRAME_VERSION);
    assert_eq!(&bytes[4..8], FILE_IDENTIFIER.as_bytes());
    assert_eq!(v.seq(), 3_661);
    assert_eq!(v.session(), Some("2024-silverstone-race"));
    let race = v.race().unwrap();
    assert_eq!(race.flag(), fb::Flag::Green);
    assert!(race.virtual_safety_car());
    let pits = race.pit_events().unwrap();
    assert_eq!(pits.len(), 2);
    assert_eq!(pits.get(0).car(), 44);
    assert_eq!(pits.get(0).kind(), fb::PitEventKind::PitIn);
    let cars = v.cars().unwrap();
    assert_eq!(cars.len(), 20);
    let c6 = cars.get(5);
    assert_eq!(c6.car(), 6);
    let aggs = c6.aggregates().unwrap();
    assert_eq!(aggs.len(), 6);
    assert!(aggs.get(3).is_nan());
    assert_eq!(aggs.get(0), 105.0);
    assert!(cars.get(0).gap_to_leader_s().is_nan());
    assert_eq!(cars.get(0).tyre_compound(), fb::Compound::Medium);
    assert_eq!(v.aggregate_names().unwrap().get(2), "throttle_mean");
    assert!(
        v.kernels().is_none(),
        "kernels are reserved and not written when empty"
    );
}

#[test]
fn frame_size_20_cars_6_aggregates() {
    let bytes = sample(20, 6).to_flatbuffer();
    println!(
        "race frame, 20 cars x 6 aggregates, 2 pit events: {} bytes FlatBuffer, {} bytes NDJSON",
        bytes.len(),
        sample(20, 6).to_ndjson_line().len()
    );
    assert!(bytes.len() < 4096, "{} bytes", bytes.len());
}

#[test]
fn every_truncation_is_rejected() {
    let f = sample(20, 6);
    let bytes = f.to_flatbuffer();
    let mut accepted = 0;
    for len in 0..bytes.len() {
        // Cutting only trailing padding (the last string's NUL and alignment
        // bytes) loses nothing; anything else must be rejected, not panic.
        if let Ok(back) = RaceFrameData::from_flatbuffer(&bytes[..len]) {
            assert!(
                same(&f, &back),
                "truncated to {len} bytes decoded differently"
            );
            accepted += 1;
        }
    }
    assert!(accepted <= 3, "{accepted} truncations accepted");
    assert!(matches!(
        RaceFrameData::from_flatbuffer(&bytes[..3]),
        Err(FrameError::TooShort { len: 3 })
    ));
}

#[test]
fn wrong_identifier_is_a_clear_error() {
    let mut bytes = sample(2, 1).to_flatbuffer();
    bytes[4..8].copy_from_slice(b"NOPE");
    let err = RaceFrameData::from_flatbuffer(&bytes).unwrap_err();
    assert!(matches!(err, FrameError::WrongIdentifier { found } if &found == b"NOPE"));
    assert!(err.to_string().contains("not a race frame"), "{err}");
}

fn raw_frame(version: u16, flag: u8, compound: u8) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::new();
    let race = fb::RaceState::create(
        &mut fbb,
        &fb::RaceStateArgs {
            flag: fb::Flag(flag),
            ..Default::default()
        },
    );
    let car = fb::CarFrame::create(
        &mut fbb,
        &fb::CarFrameArgs {
            car: 16,
            tyre_compound: fb::Compound(compound),
            ..Default::default()
        },
    );
    let cars = fbb.create_vector(&[car]);
    let root = fb::RaceFrame::create(
        &mut fbb,
        &fb::RaceFrameArgs {
            frame_version: version,
            race: Some(race),
            cars: Some(cars),
            ..Default::default()
        },
    );
    fb::finish_race_frame_buffer(&mut fbb, root);
    fbb.finished_data().to_vec()
}

#[test]
fn other_versions_are_rejected() {
    for v in [0, FRAME_VERSION + 1, u16::MAX] {
        let err = RaceFrameData::from_flatbuffer(&raw_frame(v, 0, 0)).unwrap_err();
        assert!(
            matches!(err, FrameError::UnsupportedVersion { found, expected: FRAME_VERSION } if found == v),
            "{err}"
        );
        assert!(read_frame(&raw_frame(v, 0, 0)).is_err());
    }
    let line =
        sample(1, 1)
            .to_ndjson_line()
            .replacen("\"frame_version\":1", "\"frame_version\":9", 1);
    assert!(matches!(
        RaceFrameData::from_ndjson_line(&line),
        Err(FrameError::UnsupportedVersion { found: 9, .. })
    ));
}

#[test]
fn absent_fields_read_as_schema_defaults() {
    let f = RaceFrameData::from_flatbuffer(&raw_frame(FRAME_VERSION, 0, 0)).unwrap();
    assert_eq!(f.session, "");
    assert!(f.aggregate_names.is_empty());
    assert_eq!(f.race, RaceStateData::default());
    let c = &f.cars[0];
    assert_eq!(c.car, 16);
    assert!(c.aggregates.is_empty());
    assert!(
        c.gap_to_leader_s.is_nan() && c.interval_s.is_nan(),
        "schema default is nan"
    );
    assert_eq!(c.tyre_compound, Compound::Unknown);
}

#[test]
fn unknown_enum_values_are_reported_by_the_mirror() {
    let err = RaceFrameData::from_flatbuffer(&raw_frame(FRAME_VERSION, 200, 0)).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::UnknownEnumValue {
                field: "flag",
                value: 200
            }
        ),
        "{err}"
    );
    let err = RaceFrameData::from_flatbuffer(&raw_frame(FRAME_VERSION, 0, 6)).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::UnknownEnumValue {
                field: "tyre_compound",
                value: 6
            }
        ),
        "{err}"
    );
    // The zero-copy view still reads it: guests must map unknown values.
    let bytes = raw_frame(FRAME_VERSION, 200, 0);
    assert_eq!(read_frame(&bytes).unwrap().race().unwrap().flag().0, 200);
}

#[test]
fn infinities_survive_flatbuffers_and_become_null_in_ndjson() {
    let mut f = sample(2, 2);
    f.cars[0].aggregates[0] = f64::INFINITY;
    f.cars[1].speed_kmh = f32::NEG_INFINITY;
    let back = RaceFrameData::from_flatbuffer(&f.to_flatbuffer()).unwrap();
    assert!(same(&f, &back));
    let line = f.to_ndjson_line();
    assert!(line.starts_with("{\"frame_version\":1,"), "{line}");
    assert!(line.contains("\"aggregates\":[null,"), "{line}");
    let back = RaceFrameData::from_ndjson_line(&line).unwrap();
    assert!(back.cars[0].aggregates[0].is_nan());
    assert!(back.cars[1].speed_kmh.is_nan());
    assert!(
        !line.contains("kernels"),
        "reserved kernels omitted when empty"
    );
}

/// FNV-1a 64 of `bytes`, as `scripts/gen-flatbuffers.sh` records it.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn generated_code_matches_schema() {
    let generated = include_str!("frame_generated.rs");
    let header = |key: &str| {
        generated
            .lines()
            .take(20)
            .find_map(|l| l.strip_prefix(&format!("// {key}: ")))
            .unwrap_or_else(|| panic!("frame_generated.rs has no `{key}` header line"))
            .trim()
            .to_owned()
    };
    let len: usize = header("schema-len").parse().unwrap();
    let fnv = u64::from_str_radix(&header("schema-fnv1a64"), 16).unwrap();
    assert!(
        len == SCHEMA.len() && fnv == fnv1a64(SCHEMA.as_bytes()),
        "plugin-sdk/schema/frame.fbs changed ({} bytes, fnv1a64 {:016x}) but \
         frame_generated.rs was generated from {len} bytes, {fnv:016x}: \
         run scripts/gen-flatbuffers.sh",
        SCHEMA.len(),
        fnv1a64(SCHEMA.as_bytes()),
    );
    assert_eq!(fb::RACE_FRAME_IDENTIFIER, FILE_IDENTIFIER);
    assert!(SCHEMA.contains("file_identifier \"PWRF\";"));
    assert!(
        !SCHEMA.contains("table Result"),
        "a table named Result breaks the Rust codegen"
    );
}

#[test]
fn negative_zero_and_defaults_round_trip_exactly() {
    let mut f = sample(1, 1);
    f.cars[0].speed_kmh = -0.0;
    f.cars[0].gap_to_leader_s = -0.0;
    f.cars[0].tyre_compound = Compound::Unknown;
    let back = RaceFrameData::from_flatbuffer(&f.to_flatbuffer()).unwrap();
    assert!(back.cars[0].speed_kmh.is_sign_negative());
    assert!(back.cars[0].gap_to_leader_s.is_sign_negative());
    assert!(same(&f, &back));
}
