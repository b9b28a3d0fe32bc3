//! The ground truth of a recorded race: what really happened, from the OpenF1
//! tables of its session folder, read against the race's own frames.
//!
//! * **Overtakes** (`openf1_overtakes.csv`): OpenF1 writes one row per position
//!   change between two cars, *including* those a pit stop or a retirement
//!   causes. A row is an **on-track** pass unless either car was in the pit
//!   lane, stopped or retired within ±[`PIT_MARGIN_MS`] of it (the same rule as
//!   the track model's own test), or it happened before the start or after the
//!   flag. Excluded rows keep their [`Exclusion`] so a report can say why.
//! * **Pit stops** (`openf1_pit.csv`): entry time, pit-lane time, lap.
//! * **SC / VSC periods** (`openf1_race_control.csv`): from `... DEPLOYED` to
//!   `... ENDING` / `... IN THIS LAP`, as the host's broadcast events read them.
//!
//! Times are event time in ms (the frames' clock, Unix ms for OpenF1 data).

use std::path::Path;

use pitwall_engine::broadcast::EventKind;
use pitwall_plugin_sdk::frame::{Flag, RaceFrameData};
use pitwall_race::openf1;

/// How far either side of a position change a pit visit, stop or retirement
/// makes it pit-related, ms. A pit stop costs ~20 s and the timing feed dates a
/// change at the next timing loop, so ±30 s.
pub const PIT_MARGIN_MS: i64 = 30_000;

/// Why a position change is not an on-track pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// Either car was in the pit lane within the margin.
    PitLane,
    /// Either car had stopped or retired within the margin.
    Retirement,
    /// Before the race was under way (grid, formation lap).
    BeforeStart,
    /// After the chequered flag (cars finishing, slowing down).
    AfterFlag,
}

/// One row of `openf1_overtakes.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Overtake {
    pub ts_ms: i64,
    /// The car that gained the place.
    pub attacker: u16,
    /// The car that lost it.
    pub defender: u16,
    /// The attacker's new position, when the table has it.
    pub position: Option<u8>,
    /// `None`: an on-track pass.
    pub excluded: Option<Exclusion>,
}

impl Overtake {
    pub fn on_track(&self) -> bool {
        self.excluded.is_none()
    }
}

/// One row of `openf1_pit.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PitStop {
    pub car: u16,
    /// Pit-lane entry.
    pub entry_ms: i64,
    /// Pit-lane time (entry to exit), s; `None` if the car never left.
    pub duration_s: Option<f64>,
    pub lap: Option<u16>,
}

/// Safety car or virtual safety car.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    SafetyCar,
    VirtualSafetyCar,
}

/// One SC or VSC period.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Period {
    pub kind: PeriodKind,
    pub start_ms: i64,
    /// `None` when the table never ends it.
    pub end_ms: Option<i64>,
}

/// Everything the evaluation compares against.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RaceTruth {
    /// Every position change of the table, in time order, with its exclusion.
    pub overtakes: Vec<Overtake>,
    pub pit_stops: Vec<PitStop>,
    pub periods: Vec<Period>,
    /// First window at whose end the race was under way.
    pub race_start_ms: Option<i64>,
    /// First window showing the chequered flag.
    pub flag_ms: Option<i64>,
}

/// What went wrong reading the truth.
#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("{path}: the ground-truth table is missing")]
    Missing { path: std::path::PathBuf },
    #[error(transparent)]
    Data(#[from] pitwall_race::RaceDataError),
}

impl RaceTruth {
    /// Reads the truth of the session folder `dir` against its `frames`
    /// (in window order). The overtakes table is required; pit and race
    /// control tables are read when present (a race without them has no stops
    /// or periods to recall).
    pub fn load(dir: &Path, frames: &[RaceFrameData]) -> Result<Self, TruthError> {
        let table = |name: &str| {
            let p = dir.join(name);
            p.is_file().then_some(p)
        };
        let overtakes_path = table("openf1_overtakes.csv").ok_or_else(|| TruthError::Missing {
            path: dir.join("openf1_overtakes.csv"),
        })?;
        let pit_stops = match table("openf1_pit.csv") {
            Some(p) => openf1::read_pit(p)?
                .into_iter()
                .map(|s| PitStop {
                    car: car16(s.driver_number),
                    entry_ms: s.ts,
                    duration_s: s.pit_duration,
                    lap: s.lap_number.map(|l| l.min(u16::MAX as u32) as u16),
                })
                .collect(),
            None => Vec::new(),
        };
        let periods = match table("openf1_race_control.csv") {
            Some(p) => periods(&openf1::read_race_control(p)?),
            None => Vec::new(),
        };
        let race_start_ms = frames
            .iter()
            .find(|f| f.race.under_way)
            .map(|f| f.window_start_ms);
        let flag_ms = frames
            .iter()
            .find(|f| f.race.flag == Flag::Chequered)
            .map(|f| f.window_start_ms);
        let mut truth = RaceTruth {
            overtakes: Vec::new(),
            pit_stops,
            periods,
            race_start_ms,
            flag_ms,
        };
        let mut rows = openf1::read_overtakes(overtakes_path)?;
        rows.sort_by_key(|o| (o.ts, o.overtaking_driver_number, o.overtaken_driver_number));
        truth.overtakes = rows
            .iter()
            .map(|o| {
                let (attacker, defender) = (
                    car16(o.overtaking_driver_number),
                    car16(o.overtaken_driver_number),
                );
                Overtake {
                    ts_ms: o.ts,
                    attacker,
                    defender,
                    position: o.position.map(|p| p.min(u8::MAX as u32) as u8),
                    excluded: truth.exclusion(frames, o.ts, [attacker, defender]),
                }
            })
            .collect();
        Ok(truth)
    }

    /// The on-track passes.
    pub fn on_track_overtakes(&self) -> impl Iterator<Item = &Overtake> {
        self.overtakes.iter().filter(|o| o.on_track())
    }

    /// Why a position change at `ts` between `cars` is not an on-track pass.
    fn exclusion(&self, frames: &[RaceFrameData], ts: i64, cars: [u16; 2]) -> Option<Exclusion> {
        if self.race_start_ms.is_none_or(|s| ts < s) {
            return Some(Exclusion::BeforeStart);
        }
        if self.flag_ms.is_some_and(|f| ts >= f) {
            return Some(Exclusion::AfterFlag);
        }
        let in_table_pit = self.pit_stops.iter().any(|p| {
            cars.contains(&p.car) && {
                let exit = p.entry_ms + (p.duration_s.unwrap_or(60.0) * 1000.0) as i64;
                ts >= p.entry_ms - PIT_MARGIN_MS && ts <= exit + PIT_MARGIN_MS
            }
        });
        let near = window_range(frames, ts - PIT_MARGIN_MS, ts + PIT_MARGIN_MS);
        let car_states = || {
            frames[near.clone()]
                .iter()
                .flat_map(|f| f.cars.iter().filter(|c| cars.contains(&c.car)))
        };
        if in_table_pit || car_states().any(|c| c.in_pit) {
            return Some(Exclusion::PitLane);
        }
        if car_states().any(|c| c.retired) {
            return Some(Exclusion::Retirement);
        }
        None
    }
}

/// The frames whose windows start in `[from, to]` (frames in window order).
pub fn window_range(frames: &[RaceFrameData], from: i64, to: i64) -> std::ops::Range<usize> {
    let a = frames.partition_point(|f| f.window_start_ms < from);
    let b = frames.partition_point(|f| f.window_start_ms <= to);
    a..b.max(a)
}

/// SC and VSC periods from race-control messages (in any order).
fn periods(messages: &[openf1::RaceControlMessage]) -> Vec<Period> {
    let mut events: Vec<_> = messages.iter().map(|m| m.to_event()).collect();
    events.sort_by_key(|e| e.ts);
    let mut out: Vec<Period> = Vec::new();
    for e in events {
        let kind = match e.kind {
            EventKind::SafetyCar => PeriodKind::SafetyCar,
            EventKind::VirtualSafetyCar => PeriodKind::VirtualSafetyCar,
            _ => continue,
        };
        let open = out
            .iter_mut()
            .rev()
            .find(|p| p.kind == kind && p.end_ms.is_none());
        match (e.value.as_str(), open) {
            ("DEPLOYED", None) => out.push(Period {
                kind,
                start_ms: e.ts,
                end_ms: None,
            }),
            ("ENDING", Some(p)) => p.end_ms = Some(e.ts),
            // A repeated DEPLOYED, or an ENDING without a start: nothing new.
            _ => {}
        }
    }
    out
}

fn car16(n: u32) -> u16 {
    n.min(u16::MAX as u32) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(ts: i64, msg: &str) -> openf1::RaceControlMessage {
        openf1::RaceControlMessage {
            ts,
            meeting_key: None,
            session_key: None,
            driver_number: None,
            lap_number: None,
            category: "SafetyCar".into(),
            flag: None,
            scope: None,
            sector: None,
            message: msg.into(),
            line: 0,
        }
    }

    #[test]
    fn periods_pair_deployed_with_ending() {
        let p = periods(&[
            rc(5_000, "VIRTUAL SAFETY CAR ENDING"),
            rc(1_000, "VIRTUAL SAFETY CAR DEPLOYED"),
            rc(9_000, "SAFETY CAR DEPLOYED"),
            rc(9_500, "SAFETY CAR DEPLOYED"),
            rc(20_000, "SAFETY CAR IN THIS LAP"),
            rc(30_000, "VIRTUAL SAFETY CAR DEPLOYED"),
        ]);
        assert_eq!(
            p,
            [
                Period {
                    kind: PeriodKind::VirtualSafetyCar,
                    start_ms: 1_000,
                    end_ms: Some(5_000)
                },
                Period {
                    kind: PeriodKind::SafetyCar,
                    start_ms: 9_000,
                    end_ms: Some(20_000)
                },
                Period {
                    kind: PeriodKind::VirtualSafetyCar,
                    start_ms: 30_000,
                    end_ms: None
                },
            ]
        );
    }

    #[test]
    fn window_range_is_inclusive() {
        let frames: Vec<RaceFrameData> = (0..10)
            .map(|i| RaceFrameData {
                window_start_ms: i * 1000,
                ..RaceFrameData::default()
            })
            .collect();
        assert_eq!(window_range(&frames, 2000, 4000), 2..5);
        assert_eq!(window_range(&frames, 2500, 2600), 3..3);
        assert_eq!(window_range(&frames, -100, 100_000), 0..10);
    }
}
