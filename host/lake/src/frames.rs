//! Race frames as a Parquet table: one row per car per window.
//!
//! A frame is a window of the whole field; the lake wants one row per car so
//! that `GROUP BY car`, a filter on one driver, or a join with lap tables is
//! plain SQL. Each row repeats the window and race-wide fields (session, seq,
//! window bounds, race lap, flag, SC/VSC) — dictionary and run-length encoding
//! make that repetition almost free on disk — and carries every per-car field
//! of the frame, then one `agg_<name>` column per window aggregate.
//!
//! The frame's "no value" codes become nulls: NaN numbers, position 0
//! (unknown), race distance 0 (unknown), compound `unknown`. The race's pit
//! events become per-car columns (`pit_in_ms`, `pit_out_ms`): the host derives
//! at most one entry and one exit per car per window. A pit event of a car
//! that is not in the frame has no row to go to; such events are counted in
//! [`FrameStats::pit_events_without_car`], as frames without any car are in
//! [`FrameStats::frames_without_cars`]. The reserved `kernels` field is not
//! exported (no host writes it yet).

use std::path::Path;

use parquet::file::metadata::KeyValue;
use pitwall_plugin_sdk::frame::{
    CarFrameData, Compound, FRAME_VERSION, Flag, PitEventKind, RaceFrameData,
};

use crate::column::{
    Bool, Column, F32, F64, I64, Opt, Req, U8, U16, U32, U64, Utf8, not_nan_f32, not_nan_f64,
};
use crate::error::LakeError;
use crate::table::{Stats, Table};
use crate::{DEFAULT_ROW_GROUP_ROWS, WriterOptions};

/// Prefix of the aggregate columns (`agg_mean_speed`): keeps an aggregate's
/// name from clashing with a frame field such as `lap` or `rows`.
pub const AGGREGATE_PREFIX: &str = "agg_";

/// What a finished frames export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameStats {
    /// The file.
    pub file: Stats,
    /// Frames written.
    pub frames: u64,
    /// Frames with no car (no rows in the file for them).
    pub frames_without_cars: u64,
    /// Pit events of cars absent from their frame (not in the file).
    pub pit_events_without_car: u64,
}

/// Writes race frames, one row per car per window, streaming: at most one
/// row group is held in memory.
pub struct FramesWriter {
    table: Table,
    /// Created with the first frame, which fixes the aggregate columns.
    columns: Option<FrameColumns>,
    frames: u64,
    frames_without_cars: u64,
    pit_events_without_car: u64,
}

impl FramesWriter {
    /// Creates the file with the default row-group size
    /// ([`DEFAULT_ROW_GROUP_ROWS`] rows).
    pub fn create(path: impl AsRef<Path>) -> Result<Self, LakeError> {
        Self::create_with(
            path,
            WriterOptions {
                row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            },
        )
    }

    /// Creates the file with `options`.
    pub fn create_with(path: impl AsRef<Path>, options: WriterOptions) -> Result<Self, LakeError> {
        let metadata = vec![
            KeyValue::new("pitwall.table".into(), "race_frames".to_string()),
            KeyValue::new("pitwall.frame_version".into(), FRAME_VERSION.to_string()),
        ];
        Ok(FramesWriter {
            table: Table::create(path.as_ref(), options.row_group_rows, metadata)?,
            columns: None,
            frames: 0,
            frames_without_cars: 0,
            pit_events_without_car: 0,
        })
    }

    /// Appends one frame's rows. The first frame fixes the aggregate columns;
    /// a later frame with other aggregate names is refused (and nothing of it
    /// is written).
    pub fn write(&mut self, frame: &RaceFrameData) -> Result<(), LakeError> {
        if self.columns.is_none() {
            let mut columns = FrameColumns::new(&frame.aggregate_names);
            self.table.start(&columns.all())?;
            self.columns = Some(columns);
        }
        let Some(columns) = self.columns.as_mut() else {
            unreachable!("set above");
        };
        if columns.aggregate_names != frame.aggregate_names {
            return Err(LakeError::AggregateNamesChanged {
                path: self.table.path().to_path_buf(),
                seq: frame.seq,
                expected: columns.aggregate_names.clone(),
                found: frame.aggregate_names.clone(),
            });
        }
        // Check the whole frame before buffering any of it: a refused frame
        // must not leave half a row in the columns.
        for c in &frame.cars {
            if c.aggregates.len() != columns.aggregates.len() {
                return Err(LakeError::AggregateCount {
                    path: self.table.path().to_path_buf(),
                    what: format!("frame {}, car {}", frame.seq, c.car),
                    expected: columns.aggregates.len(),
                    found: c.aggregates.len(),
                });
            }
        }
        let pits = PitTimes::of(frame, self.table.path())?;
        self.pit_events_without_car += pits.without_car(&frame.cars);
        self.frames += 1;
        if frame.cars.is_empty() {
            self.frames_without_cars += 1;
        }
        for car in &frame.cars {
            columns.push(frame, car, pits.of_car(car.car));
            if self.table.row_pushed() {
                self.table.flush(&mut columns.all())?;
            }
        }
        Ok(())
    }

    /// Writes the last row group and the footer and moves the file into
    /// place. With no frame written, the file has the fixed columns only.
    pub fn finish(mut self) -> Result<FrameStats, LakeError> {
        let mut columns = self
            .columns
            .take()
            .unwrap_or_else(|| FrameColumns::new(&[]));
        let file = self.table.finish(&mut columns.all())?;
        Ok(FrameStats {
            file,
            frames: self.frames,
            frames_without_cars: self.frames_without_cars,
            pit_events_without_car: self.pit_events_without_car,
        })
    }
}

/// The pit lane entry and exit times of each car in one frame.
struct PitTimes(Vec<(u16, Option<i64>, Option<i64>)>);

impl PitTimes {
    fn of(frame: &RaceFrameData, path: &Path) -> Result<Self, LakeError> {
        let mut out: Vec<(u16, Option<i64>, Option<i64>)> = Vec::new();
        for e in &frame.race.pit_events {
            let i = match out.iter().position(|p| p.0 == e.car) {
                Some(i) => i,
                None => {
                    out.push((e.car, None, None));
                    out.len() - 1
                }
            };
            let (slot, kind) = match e.kind {
                PitEventKind::PitIn => (&mut out[i].1, "pit_in"),
                PitEventKind::PitOut => (&mut out[i].2, "pit_out"),
            };
            if let Some(first_ms) = *slot {
                return Err(LakeError::DuplicatePitEvent {
                    path: path.to_path_buf(),
                    seq: frame.seq,
                    car: e.car,
                    kind,
                    first_ms,
                    second_ms: e.ts_ms,
                });
            }
            *slot = Some(e.ts_ms);
        }
        Ok(PitTimes(out))
    }

    /// `(pit_in_ms, pit_out_ms)` of `car`.
    fn of_car(&self, car: u16) -> (Option<i64>, Option<i64>) {
        self.0
            .iter()
            .find(|p| p.0 == car)
            .map_or((None, None), |p| (p.1, p.2))
    }

    /// Events of cars that have no row in the frame.
    fn without_car(&self, cars: &[CarFrameData]) -> u64 {
        self.0
            .iter()
            .filter(|p| !cars.iter().any(|c| c.car == p.0))
            .map(|p| u64::from(p.1.is_some()) + u64::from(p.2.is_some()))
            .sum()
    }
}

/// `snake_case`, as the frame's NDJSON writes it.
fn flag_name(f: Flag) -> &'static str {
    match f {
        Flag::None => "none",
        Flag::Green => "green",
        Flag::Yellow => "yellow",
        Flag::DoubleYellow => "double_yellow",
        Flag::Red => "red",
        Flag::Chequered => "chequered",
    }
}

/// `snake_case`, as the frame's NDJSON writes it; `None` (null) for unknown.
fn compound_name(c: Compound) -> Option<&'static str> {
    match c {
        Compound::Unknown => None,
        Compound::Soft => Some("soft"),
        Compound::Medium => Some("medium"),
        Compound::Hard => Some("hard"),
        Compound::Intermediate => Some("intermediate"),
        Compound::Wet => Some("wet"),
    }
}

/// The buffered columns of a frames file, in file order.
struct FrameColumns {
    aggregate_names: Vec<String>,
    // The window and the race, repeated on each car's row.
    session: Req<Utf8>,
    seq: Req<U64>,
    window_start_ms: Req<I64>,
    window_end_ms: Req<I64>,
    race_lap: Req<U16>,
    total_laps: Opt<U16>,
    flag: Req<Utf8>,
    safety_car: Req<Bool>,
    virtual_safety_car: Req<Bool>,
    under_way: Req<Bool>,
    // The car.
    car: Req<U16>,
    rows: Req<U32>,
    position: Opt<U8>,
    lap: Req<U16>,
    lap_distance_m: Opt<F32>,
    total_distance_m: Opt<F64>,
    speed_kmh: Opt<F32>,
    gap_to_leader_s: Opt<F64>,
    interval_s: Opt<F64>,
    last_lap_s: Opt<F64>,
    in_pit: Req<Bool>,
    retired: Req<Bool>,
    tyre_compound: Opt<Utf8>,
    tyre_age_laps: Req<U16>,
    drs: Req<U8>,
    pit_stops: Req<U8>,
    pit_in_ms: Opt<I64>,
    pit_out_ms: Opt<I64>,
    aggregates: Vec<Opt<F64>>,
}

impl FrameColumns {
    fn new(aggregate_names: &[String]) -> Self {
        FrameColumns {
            aggregate_names: aggregate_names.to_vec(),
            session: Req::new("session"),
            seq: Req::new("seq"),
            window_start_ms: Req::new("window_start_ms"),
            window_end_ms: Req::new("window_end_ms"),
            race_lap: Req::new("race_lap"),
            total_laps: Opt::new("total_laps"),
            flag: Req::new("flag"),
            safety_car: Req::new("safety_car"),
            virtual_safety_car: Req::new("virtual_safety_car"),
            under_way: Req::new("under_way"),
            car: Req::new("car"),
            rows: Req::new("rows"),
            position: Opt::new("position"),
            lap: Req::new("lap"),
            lap_distance_m: Opt::new("lap_distance_m"),
            total_distance_m: Opt::new("total_distance_m"),
            speed_kmh: Opt::new("speed_kmh"),
            gap_to_leader_s: Opt::new("gap_to_leader_s"),
            interval_s: Opt::new("interval_s"),
            last_lap_s: Opt::new("last_lap_s"),
            in_pit: Req::new("in_pit"),
            retired: Req::new("retired"),
            tyre_compound: Opt::new("tyre_compound"),
            tyre_age_laps: Req::new("tyre_age_laps"),
            drs: Req::new("drs"),
            pit_stops: Req::new("pit_stops"),
            pit_in_ms: Opt::new("pit_in_ms"),
            pit_out_ms: Opt::new("pit_out_ms"),
            aggregates: aggregate_names
                .iter()
                .map(|n| Opt::new(format!("{AGGREGATE_PREFIX}{n}")))
                .collect(),
        }
    }

    /// Every column, in file order.
    fn all(&mut self) -> Vec<&mut dyn Column> {
        let mut v: Vec<&mut dyn Column> = vec![
            &mut self.session,
            &mut self.seq,
            &mut self.window_start_ms,
            &mut self.window_end_ms,
            &mut self.race_lap,
            &mut self.total_laps,
            &mut self.flag,
            &mut self.safety_car,
            &mut self.virtual_safety_car,
            &mut self.under_way,
            &mut self.car,
            &mut self.rows,
            &mut self.position,
            &mut self.lap,
            &mut self.lap_distance_m,
            &mut self.total_distance_m,
            &mut self.speed_kmh,
            &mut self.gap_to_leader_s,
            &mut self.interval_s,
            &mut self.last_lap_s,
            &mut self.in_pit,
            &mut self.retired,
            &mut self.tyre_compound,
            &mut self.tyre_age_laps,
            &mut self.drs,
            &mut self.pit_stops,
            &mut self.pit_in_ms,
            &mut self.pit_out_ms,
        ];
        v.extend(self.aggregates.iter_mut().map(|c| c as &mut dyn Column));
        v
    }

    /// Buffers one car's row (aggregate count checked by the caller).
    fn push(&mut self, f: &RaceFrameData, c: &CarFrameData, pit: (Option<i64>, Option<i64>)) {
        let r = &f.race;
        self.session.push(&f.session);
        self.seq.push(f.seq);
        self.window_start_ms.push(f.window_start_ms);
        self.window_end_ms.push(f.window_end_ms);
        self.race_lap.push(r.lap);
        self.total_laps
            .push((r.total_laps > 0).then_some(r.total_laps));
        self.flag.push(flag_name(r.flag));
        self.safety_car.push(r.safety_car);
        self.virtual_safety_car.push(r.virtual_safety_car);
        self.under_way.push(r.under_way);
        self.car.push(c.car);
        self.rows.push(c.rows);
        self.position.push((c.position > 0).then_some(c.position));
        self.lap.push(c.lap);
        self.lap_distance_m.push(not_nan_f32(c.lap_distance_m));
        self.total_distance_m.push(not_nan_f64(c.total_distance_m));
        self.speed_kmh.push(not_nan_f32(c.speed_kmh));
        self.gap_to_leader_s.push(not_nan_f64(c.gap_to_leader_s));
        self.interval_s.push(not_nan_f64(c.interval_s));
        self.last_lap_s.push(not_nan_f64(c.last_lap_s));
        self.in_pit.push(c.in_pit);
        self.retired.push(c.retired);
        self.tyre_compound.push(compound_name(c.tyre_compound));
        self.tyre_age_laps.push(c.tyre_age_laps);
        self.drs.push(c.drs);
        self.pit_stops.push(c.pit_stops);
        self.pit_in_ms.push(pit.0);
        self.pit_out_ms.push(pit.1);
        for (col, v) in self.aggregates.iter_mut().zip(&c.aggregates) {
            col.push(not_nan_f64(*v));
        }
    }
}
