//! Race frames: one per window, assembled from the engine's fired windows, the
//! broadcast state they carry, and the track model's per-car state.
//!
//! In: [`WindowResult`]s (all cars of a window start arrive together, in order of
//! start — the engine's firing order), a [`TrackTimeline`] (track state per window
//! end, computed from the position samples), the job's aggregate names. Out:
//! [`RaceFrameData`] (the plugin-sdk mirror of the FlatBuffers frame) per window, in
//! order, to any [`FrameSink`] — an NDJSON file for inspection, a length-prefixed
//! FlatBuffers file, or (issue 4) the plugin runtime.
//!
//! Everything here is a function of event time and input order, so a replay gives
//! byte-identical frame files.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use pitwall_engine::broadcast::BroadcastState;
use pitwall_engine::job::JobSink;
use pitwall_engine::{Collector, EventTime, LateRow, WindowResult};
use pitwall_plugin_sdk::frame::{
    CarFrameData, Compound, Flag, KernelResultData, PitEventData, PitEventKind, RaceFrameData,
    RaceStateData,
};

use crate::track::{CarTrackState, ReferenceLine, TrackConfig, TrackModel, TrackSample};

/// Track state of every car at the end of every window.
#[derive(Debug, Clone, Default)]
pub struct TrackTimeline {
    /// Window start → the cars' states after the window's last sample.
    by_window: BTreeMap<EventTime, Vec<CarTrackState>>,
    /// The reference line's length (m).
    pub lap_length_m: f64,
    /// First window at whose end the race was under way
    /// ([`TrackModel::race_under_way`]).
    under_way_from: Option<EventTime>,
}

impl TrackTimeline {
    /// Runs the track model over `samples` (sorted by time) and snapshots it at the
    /// end of every `window_ms` window. `None` when no reference line can be built.
    pub fn build(samples: &[TrackSample], window_ms: i64) -> Option<Self> {
        let line = ReferenceLine::from_samples(samples)?;
        let lap_length_m = line.length();
        let mut model = TrackModel::new(line, TrackConfig::default());
        let mut by_window = BTreeMap::new();
        let mut current: Option<EventTime> = None;
        let mut under_way_from = None;
        for s in samples {
            let ws = s.ts_ms - s.ts_ms.rem_euclid(window_ms);
            if let Some(c) = current
                && ws != c
            {
                by_window.insert(c, model.snapshot());
                if under_way_from.is_none() && model.race_under_way() {
                    // In hindsight: from the window the cars left the grid in
                    // (the formation lap is over), not from 1.5 laps later when
                    // the model is sure of it.
                    under_way_from = Some(
                        model
                            .race_start_ms()
                            .map_or(c, |t| t - t.rem_euclid(window_ms))
                            .min(c),
                    );
                }
            }
            current = Some(ws);
            if model.push(s).is_err() {
                return None;
            }
        }
        if let Some(c) = current {
            by_window.insert(c, model.snapshot());
        }
        Some(TrackTimeline {
            by_window,
            lap_length_m,
            under_way_from,
        })
    }

    /// A timeline computed elsewhere (from timing tables,
    /// [`crate::timing_timeline`]): the cars' states by window start — a window
    /// missing from the map has the state of the latest one before it — the lap
    /// length (`NaN` when unknown) and the first window at whose end the race was
    /// under way.
    pub fn from_windows(
        by_window: BTreeMap<EventTime, Vec<CarTrackState>>,
        lap_length_m: f64,
        under_way_from: Option<EventTime>,
    ) -> Self {
        TrackTimeline {
            by_window,
            lap_length_m,
            under_way_from,
        }
    }

    /// Whether the race was under way at the end of the window starting at `ws`
    /// (formation laps are over).
    pub fn under_way(&self, ws: EventTime) -> bool {
        self.under_way_from.is_some_and(|t| t <= ws)
    }

    /// The cars' states at the end of the window starting at `ws` (the latest
    /// window at or before it that had samples).
    pub fn at(&self, ws: EventTime) -> Option<&[CarTrackState]> {
        self.by_window
            .range(..=ws)
            .next_back()
            .map(|(_, v)| v.as_slice())
    }
}

/// Where frames go.
pub trait FrameSink {
    fn frame(&mut self, frame: &RaceFrameData) -> std::io::Result<()>;
}

/// One frame per line, as JSON (`RaceFrameData::to_ndjson_line`).
pub struct NdjsonFrames<W: Write>(pub W);

impl<W: Write> FrameSink for NdjsonFrames<W> {
    fn frame(&mut self, frame: &RaceFrameData) -> std::io::Result<()> {
        self.0.write_all(frame.to_ndjson_line().as_bytes())?;
        self.0.write_all(b"\n")
    }
}

/// Each frame as a FlatBuffer, prefixed by its length (u32, little-endian).
pub struct FlatBufferFrames<W: Write>(pub W);

impl<W: Write> FrameSink for FlatBufferFrames<W> {
    fn frame(&mut self, frame: &RaceFrameData) -> std::io::Result<()> {
        let bytes = frame.to_flatbuffer();
        self.0.write_all(&(bytes.len() as u32).to_le_bytes())?;
        self.0.write_all(&bytes)
    }
}

/// Collects frames in memory (tests).
impl FrameSink for Vec<RaceFrameData> {
    fn frame(&mut self, frame: &RaceFrameData) -> std::io::Result<()> {
        self.push(frame.clone());
        Ok(())
    }
}

/// Builds one frame per window start from the engine's outputs.
pub struct FrameAssembler<S> {
    sink: S,
    session: String,
    window_ms: i64,
    aggregate_names: Vec<String>,
    track: Option<TrackTimeline>,
    total_laps: u16,
    current: Option<EventTime>,
    windows: Vec<WindowResult>,
    previous_race: Arc<BroadcastState>,
    /// Tyre stints per car (OpenF1 `stints`), for compound and age by lap.
    stints: BTreeMap<u16, Vec<crate::openf1::Stint>>,
    seq: u64,
    /// Late rows seen (the frame for their window had already gone).
    pub late_rows: u64,
    /// The first error of the sink, if any.
    pub error: Option<std::io::Error>,
    predictions: Option<PredictionStage>,
    /// Completed pit stops per car (pit lane exits seen so far).
    pit_stops: BTreeMap<u16, u8>,
}

/// Race-outcome, pit-strategy and lap-time predictions (the `pitwall-gpu`
/// kernels), run once per leader lap and carried in every frame of that lap.
///
/// Once per lap because the Monte Carlo is the costliest thing the host does per
/// race (≈1 s for 1,000 runs on 2 CPU cores) and its inputs — laps left, tyre
/// ages, lap times — change per lap. The trigger is the leader's lap in event
/// time, so a replay gives the same predictions every time.
struct PredictionStage {
    predictor: pitwall_gpu::RacePredictor,
    /// Leader lap of the last prediction.
    lap: Option<u16>,
    /// car → the latest values, one per kernel name.
    names: Vec<String>,
    values: BTreeMap<u16, Vec<f64>>,
    /// The first error, if a kernel failed (the frames go on without predictions).
    error: Option<pitwall_gpu::GpuError>,
}

impl<S: FrameSink> FrameAssembler<S> {
    pub fn new(
        sink: S,
        session: impl Into<String>,
        window_ms: i64,
        aggregate_names: Vec<String>,
        track: Option<TrackTimeline>,
    ) -> Self {
        FrameAssembler {
            sink,
            session: session.into(),
            window_ms,
            aggregate_names,
            track,
            total_laps: 0,
            current: None,
            windows: Vec::new(),
            previous_race: Arc::default(),
            stints: BTreeMap::new(),
            seq: 0,
            late_rows: 0,
            error: None,
            predictions: None,
            pit_stops: BTreeMap::new(),
        }
    }

    /// Runs `predictor` once per leader lap and puts its per-car results
    /// (`p_win@1`, `pred_lap_s@1`, ...) in the frames' `kernels`.
    pub fn with_predictor(mut self, predictor: pitwall_gpu::RacePredictor) -> Self {
        self.predictions = Some(PredictionStage {
            predictor,
            lap: None,
            names: Vec::new(),
            values: BTreeMap::new(),
            error: None,
        });
        self
    }

    /// The first prediction error, if any (predictions stop, frames go on).
    pub fn prediction_error(&self) -> Option<&pitwall_gpu::GpuError> {
        self.predictions.as_ref().and_then(|p| p.error.as_ref())
    }

    /// Tyre stints (OpenF1 `stints`): each car's compound and tyre age on its
    /// current lap come from the stint covering that lap (a tyre change on the
    /// broadcast stream still wins for the compound).
    pub fn with_stints(mut self, stints: Vec<crate::openf1::Stint>) -> Self {
        for s in stints {
            self.stints
                .entry(s.driver_number.min(u16::MAX as u32) as u16)
                .or_default()
                .push(s);
        }
        for v in self.stints.values_mut() {
            v.sort_by_key(|s| s.stint_number);
        }
        self
    }

    /// Compound and age (laps) of `car`'s tyres on `lap`, from the stints.
    fn tyres_on(&self, car: u16, lap: u16) -> Option<(Compound, u16)> {
        let lap = lap as u32;
        let s = self.stints.get(&car)?.iter().find(|s| {
            s.lap_start.is_some_and(|a| a <= lap) && s.lap_end.is_none_or(|b| lap <= b)
        })?;
        let age = s.tyre_age_at_start.unwrap_or(0) + (lap - s.lap_start.unwrap_or(lap));
        Some((
            s.compound.as_deref().map_or(Compound::Unknown, compound),
            age.min(u16::MAX as u32) as u16,
        ))
    }

    /// The scheduled race distance, when known.
    pub fn with_total_laps(mut self, laps: u16) -> Self {
        self.total_laps = laps;
        self
    }

    /// Emits the last window's frame (call when the job has ended).
    pub fn finish(mut self) -> Result<(S, u64), std::io::Error> {
        self.flush();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok((self.sink, self.seq)),
        }
    }

    fn flush(&mut self) {
        let Some(start) = self.current.take() else {
            return;
        };
        let mut windows = std::mem::take(&mut self.windows);
        windows.sort_by_key(|w| car_number(&w.car));
        let race_now = windows
            .first()
            .map(|w| w.broadcast.clone())
            .unwrap_or_default();
        let track = self.track.as_ref().and_then(|t| t.at(start));
        let pit_events = pit_events(&self.previous_race, &race_now, start);
        for e in &pit_events {
            if e.kind == PitEventKind::PitOut {
                let n = self.pit_stops.entry(e.car).or_default();
                *n = n.saturating_add(1);
            }
        }
        let drs_index = self.aggregate_names.iter().position(|n| n == "max_drs");
        let track_of = |car: u16| track.and_then(|t| t.iter().find(|c| c.car == car as u32));
        // Every car of the window, plus every car the timeline knows that sent no
        // row in it (rows 0, aggregates NaN): a timing feed samples each car only
        // every few seconds, and plugins need the whole field in every frame.
        let no_values = vec![f64::NAN; self.aggregate_names.len()];
        let mut rows: Vec<(u16, Arc<str>, u64, &[f64])> = windows
            .iter()
            .map(|w| {
                (
                    car_number(&w.car),
                    w.car.clone(),
                    w.rows,
                    w.values.as_slice(),
                )
            })
            .collect();
        for t in track.into_iter().flatten() {
            let car = t.car.min(u16::MAX as u32) as u16;
            if !rows.iter().any(|r| r.0 == car) {
                rows.push((car, Arc::from(t.car.to_string()), 0, no_values.as_slice()));
            }
        }
        rows.sort_by_key(|r| r.0);
        let cars = rows
            .iter()
            .map(|&(car, ref key, rows, values)| {
                let key: &str = key;
                let mut c = CarFrameData {
                    car,
                    rows: rows.min(u32::MAX as u64) as u32,
                    aggregates: values.to_vec(),
                    in_pit: race_now.in_pit.contains(key),
                    retired: race_now.retired.contains(key),
                    tyre_compound: race_now
                        .tyres
                        .get(key)
                        .map_or(Compound::Unknown, |t| compound(t)),
                    pit_stops: self.pit_stops.get(&car).copied().unwrap_or(0),
                    drs: drs_index
                        .and_then(|i| values.get(i))
                        .filter(|v| v.is_finite())
                        .map_or(0, |v| v.clamp(0.0, 255.0) as u8),
                    ..CarFrameData::default()
                };
                if let Some(t) = track_of(car) {
                    c.lap = t.lap.min(u16::MAX as u32) as u16;
                    c.lap_distance_m = t.lap_distance_m as f32;
                    c.total_distance_m = t.total_distance_m;
                    c.speed_kmh = t.speed_kmh as f32;
                    c.position = t.position.min(u8::MAX as u32) as u8;
                    c.gap_to_leader_s = t.gap_to_leader_s.unwrap_or(f64::NAN);
                    c.interval_s = t.interval_s.unwrap_or(f64::NAN);
                    c.in_pit |= t.in_pit;
                    c.retired |= t.stopped;
                    c.last_lap_s = t.last_lap_s.unwrap_or(f64::NAN);
                }
                if let Some((comp, age)) = self.tyres_on(car, c.lap) {
                    if c.tyre_compound == Compound::Unknown {
                        c.tyre_compound = comp;
                    }
                    c.tyre_age_laps = age;
                }
                c
            })
            .collect::<Vec<_>>();
        let leader_lap = track
            .and_then(|t| t.iter().find(|c| c.position == 1))
            .map(|c| c.lap.min(u16::MAX as u32) as u16)
            .or_else(|| {
                race_now
                    .other
                    .get("lap")
                    .and_then(|l| l.parse::<u16>().ok())
            })
            .unwrap_or(0);
        let last_laps: BTreeMap<u16, f64> = track
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t.car.min(u16::MAX as u32) as u16, t.last_lap_s?)))
            .collect();
        // With positions, predictions wait for the race to be under way (the
        // formation lap counts laps too); live timing's lap count is official.
        let under_way = match self.track.as_ref() {
            Some(t) => t.under_way(start),
            None => leader_lap >= 1,
        };
        let kernels = match self.predictions.as_mut() {
            Some(p) if under_way => {
                p.kernels(&cars, &race_now, leader_lap, self.total_laps, &last_laps)
            }
            _ => Vec::new(),
        };
        let race = RaceStateData {
            lap: leader_lap,
            total_laps: self.total_laps,
            flag: flag(race_now.flag.as_deref()),
            safety_car: race_now.safety_car,
            virtual_safety_car: race_now.virtual_safety_car,
            pit_events,
            under_way,
        };
        let frame = RaceFrameData {
            window_start_ms: start,
            window_end_ms: start + self.window_ms,
            seq: self.seq,
            session: self.session.clone(),
            race,
            cars,
            aggregate_names: self.aggregate_names.clone(),
            kernels,
        };
        self.seq += 1;
        self.previous_race = race_now;
        if let Err(e) = self.sink.frame(&frame)
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }
}

impl PredictionStage {
    /// The frame's kernel results: a new prediction when the leader starts a new
    /// lap, the last one otherwise.
    fn kernels(
        &mut self,
        cars: &[CarFrameData],
        race: &BroadcastState,
        leader_lap: u16,
        total_laps: u16,
        last_laps: &BTreeMap<u16, f64>,
    ) -> Vec<KernelResultData> {
        // Without a race distance there are no laps left to simulate.
        if self.error.is_none()
            && total_laps > 0
            && (1..=total_laps).contains(&leader_lap)
            && self.lap != Some(leader_lap)
        {
            self.lap = Some(leader_lap);
            let snap = race_snapshot(cars, race, leader_lap, total_laps, last_laps);
            match self.predictor.update(&snap) {
                Ok(p) => {
                    let results = p.kernel_results();
                    self.names = results.iter().map(|k| k.name.clone()).collect();
                    self.values = snap
                        .cars
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let v = results.iter().map(|k| k.values[i]).collect();
                            (c.car as u16, v)
                        })
                        .collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "race predictions stopped");
                    self.error = Some(e);
                }
            }
        }
        // After the flag the last prediction is the race's; none before lap 1.
        if self.names.is_empty() {
            return Vec::new();
        }
        self.names
            .iter()
            .enumerate()
            .map(|(k, name)| KernelResultData {
                name: name.clone(),
                values: cars
                    .iter()
                    .map(|c| self.values.get(&c.car).map_or(f64::NAN, |v| v[k]))
                    .collect(),
            })
            .collect()
    }
}

/// The predictor's view of one frame.
fn race_snapshot(
    cars: &[CarFrameData],
    race: &BroadcastState,
    leader_lap: u16,
    total_laps: u16,
    last_laps: &BTreeMap<u16, f64>,
) -> pitwall_gpu::RaceSnapshot {
    let gpu_compound = |c: Compound| match c {
        Compound::Soft => Some(pitwall_gpu::Compound::Soft),
        Compound::Medium => Some(pitwall_gpu::Compound::Medium),
        Compound::Hard => Some(pitwall_gpu::Compound::Hard),
        _ => None,
    };
    pitwall_gpu::RaceSnapshot {
        lap: u32::from(leader_lap),
        total_laps: u32::from(total_laps),
        safety_car: race.safety_car,
        vsc: race.virtual_safety_car,
        cars: cars
            .iter()
            .filter(|c| c.position > 0)
            .map(|c| pitwall_gpu::CarSnapshot {
                car: u32::from(c.car),
                position: u32::from(c.position),
                gap_to_leader_s: if c.gap_to_leader_s.is_finite() {
                    c.gap_to_leader_s
                } else {
                    0.0
                },
                laps_completed: u32::from(c.lap.saturating_sub(1)),
                compound: gpu_compound(c.tyre_compound),
                tyre_age: u32::from(c.tyre_age_laps),
                in_pit: c.in_pit,
                retired: c.retired,
                last_lap_s: last_laps.get(&c.car).copied(),
            })
            .collect(),
    }
}

impl<S: FrameSink> Collector for FrameAssembler<S> {
    fn window(&mut self, w: WindowResult) {
        if self.current != Some(w.start) {
            self.flush();
            self.current = Some(w.start);
        }
        self.windows.push(w);
    }

    fn late(&mut self, _row: LateRow<'_>) {
        self.late_rows += 1;
    }
}

impl<S: FrameSink> JobSink for FrameAssembler<S> {}

fn car_number(car: &str) -> u16 {
    car.parse().unwrap_or(0)
}

/// Pit lane entries and exits between two race states, stamped with the event time
/// of the entry or exit (never before `window_start`: an event that arrived late is
/// reported in the first window that could still show it). A car that enters and
/// leaves within one window shows neither; pit stops last ~20 s, windows ~1 s.
fn pit_events(
    prev: &BroadcastState,
    now: &BroadcastState,
    window_start: EventTime,
) -> Vec<PitEventData> {
    let mut out: Vec<PitEventData> = now
        .in_pit
        .difference(&prev.in_pit)
        .map(|c| (c, PitEventKind::PitIn))
        .chain(
            prev.in_pit
                .difference(&now.in_pit)
                .map(|c| (c, PitEventKind::PitOut)),
        )
        .map(|(c, kind)| PitEventData {
            car: car_number(c),
            kind,
            ts_ms: now.pit_stamp(c).unwrap_or(window_start).max(window_start),
        })
        .collect();
    out.sort_by_key(|e| (e.ts_ms, e.car, e.kind as u8));
    out
}

fn flag(f: Option<&str>) -> Flag {
    match f.map(|f| f.to_ascii_uppercase()) {
        Some(f) if f == "GREEN" || f == "CLEAR" => Flag::Green,
        Some(f) if f == "YELLOW" => Flag::Yellow,
        Some(f) if f == "DOUBLE YELLOW" => Flag::DoubleYellow,
        Some(f) if f == "RED" => Flag::Red,
        Some(f) if f == "CHEQUERED" => Flag::Chequered,
        _ => Flag::None,
    }
}

fn compound(c: &str) -> Compound {
    match c.to_ascii_uppercase().as_str() {
        "SOFT" => Compound::Soft,
        "MEDIUM" => Compound::Medium,
        "HARD" => Compound::Hard,
        "INTERMEDIATE" => Compound::Intermediate,
        "WET" => Compound::Wet,
        _ => Compound::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitwall_engine::broadcast::BroadcastState;

    fn result(car: &str, start: i64, race: &Arc<BroadcastState>) -> WindowResult {
        WindowResult {
            key: 0,
            car: Arc::from(car),
            start,
            rows: 4,
            values: vec![4.0, 1.5],
            broadcast: race.clone(),
        }
    }

    #[test]
    fn one_frame_per_window_with_cars_sorted_and_pit_events_derived() {
        let mut green = BroadcastState::default();
        green.flag = Some("GREEN".into());
        let green = Arc::new(green);
        let mut pit = (*green).clone();
        pit.apply(&pitwall_engine::broadcast::BroadcastEvent {
            ts: 1400,
            kind: pitwall_engine::broadcast::EventKind::PitIn,
            car: Some("44".into()),
            value: "IN".into(),
        });
        pit.tyres.insert("44".into(), "HARD".into());
        pit.safety_car = true;
        let pit = Arc::new(pit);
        let mut a = FrameAssembler::new(
            Vec::<RaceFrameData>::new(),
            "test",
            1000,
            vec!["count".into(), "last_x".into()],
            None,
        );
        for w in [
            result("44", 0, &green),
            result("4", 0, &green),
            result("4", 1000, &pit),
            result("44", 1000, &pit),
        ] {
            a.window(w);
        }
        let (frames, n) = a.finish().unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            frames[0].cars.iter().map(|c| c.car).collect::<Vec<_>>(),
            [4, 44]
        );
        assert_eq!(frames[0].race.flag, Flag::Green);
        assert!(frames[0].race.pit_events.is_empty());
        let f1 = &frames[1];
        assert_eq!(f1.seq, 1);
        assert!(f1.race.safety_car);
        assert_eq!(f1.race.pit_events.len(), 1);
        assert_eq!(f1.race.pit_events[0].car, 44);
        // Stamped when the car entered, not when the window started.
        assert_eq!(f1.race.pit_events[0].ts_ms, 1400);
        assert!(f1.cars[1].in_pit);
        assert_eq!(f1.cars[1].tyre_compound, Compound::Hard);
        // The frames survive the FlatBuffers round trip.
        assert_eq!(f1.cars[0].tyre_age_laps, 0);
        let back = RaceFrameData::from_flatbuffer(&f1.to_flatbuffer()).unwrap();
        assert_eq!(back.race, f1.race);
    }
}
