//! The race classification at the chequered flag, derived from line crossings.
//!
//! In: a [`TrackModel`] that has seen the race past the flag, the time race
//! control showed the chequered flag, and the time penalties race control
//! announced. Out: every car's classified position, laps, finishing time and
//! the penalty seconds added to it.
//!
//! The rules are the sporting regulations' simple core:
//!
//! * the race ends when the leader completes the lap on which the flag is
//!   shown; every other car finishes at its first line crossing after that
//!   (a lapped car with fewer laps);
//! * classified cars are ordered by laps completed, then by finishing time
//!   plus the time penalties they did not serve;
//! * a time penalty is *served* at the car's next pit stop after it was given
//!   (the car is held for that long), so only penalties with no later stop
//!   before the flag are added at the end;
//! * cars that never cross the line after the flag did not finish; they rank
//!   behind, by laps completed, then by who completed that many laps first.
//!
//! Why bother: the on-road order at the flag is not the result. In the 2024
//! Austrian GP Albon crossed the line ahead of Tsunoda but had an unserved
//! 5 s penalty; the official result has Tsunoda 14th and Albon 15th, and so
//! does this.

use crate::track::TrackModel;

/// A time penalty announced by race control (`"5 SECOND TIME PENALTY FOR CAR 23"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimePenalty {
    pub car: u32,
    /// When it was announced (event time, ms).
    pub ts_ms: i64,
    pub seconds: u32,
}

impl TimePenalty {
    /// Parses a race-control message (OpenF1 `race_control.message` and the live-timing
    /// `RaceControlMessages` share the wording). Drive-through and stop-go penalties
    /// are served in the pit lane and change no finishing time, so they are not
    /// time penalties here; neither is a message about an investigation.
    pub fn from_message(ts_ms: i64, message: &str) -> Option<TimePenalty> {
        let m = message.to_ascii_uppercase();
        let at = m.find(" SECOND TIME PENALTY FOR CAR ")?;
        let seconds = m[..at]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        let rest = &m[at + " SECOND TIME PENALTY FOR CAR ".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let car = digits.parse().ok()?;
        Some(TimePenalty {
            car,
            ts_ms,
            seconds,
        })
    }
}

/// One car's line in the derived classification.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifiedCar {
    /// 1-based; finishers first.
    pub position: u32,
    pub car: u32,
    /// Laps completed when the car finished (or when it last crossed the line).
    pub laps: u32,
    /// When it took the flag; `None` for a car that did not finish.
    pub finish_ms: Option<i64>,
    /// Penalty seconds added to its race time (announced, not served at a stop).
    pub penalty_s: u32,
}

impl ClassifiedCar {
    pub fn finished(&self) -> bool {
        self.finish_ms.is_some()
    }
}

/// Why no classification could be derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassificationError {
    #[error("no car completed a lap after the chequered flag at {chequered_ms} ms")]
    NoFinisher { chequered_ms: i64 },
}

/// How long after race control's flag message the leader may still be on its way
/// to the line (the message and the crossing are timed by different systems).
const FLAG_GRACE_MS: i64 = 10_000;

/// Derives the classification (see the module docs). `model` must have seen the
/// race until every finisher crossed the line after the flag.
pub fn classify(
    model: &TrackModel,
    chequered_ms: i64,
    penalties: &[TimePenalty],
) -> Result<Vec<ClassifiedCar>, ClassificationError> {
    let cars: Vec<(u32, u32)> = model
        .snapshot()
        .iter()
        .map(|s| (s.car, s.laps_completed))
        .collect();
    let laps_by = |car: u32, t: i64, max: u32| -> u32 {
        (1..=max)
            .take_while(|&n| model.crossing_time_ms(car, n).is_some_and(|c| c <= t))
            .count() as u32
    };
    // The leader's last lap: the most laps any car completed by shortly after the flag.
    let leader_laps = cars
        .iter()
        .map(|&(car, done)| laps_by(car, chequered_ms + FLAG_GRACE_MS, done))
        .max()
        .unwrap_or(0);
    let flag_ms = cars
        .iter()
        .filter_map(|&(car, _)| model.crossing_time_ms(car, leader_laps))
        .min()
        .filter(|_| leader_laps > 0)
        .ok_or(ClassificationError::NoFinisher { chequered_ms })?;

    let pits = model.pit_entries();
    let mut lines: Vec<ClassifiedCar> = cars
        .iter()
        .map(|&(car, done)| {
            let finish = (1..=done).find_map(|n| {
                model
                    .crossing_time_ms(car, n)
                    .filter(|t| *t >= flag_ms)
                    .map(|t| (n, t))
            });
            let penalty_s = penalties
                .iter()
                .filter(|p| p.car == car && p.ts_ms <= flag_ms)
                .filter(|p| {
                    !pits
                        .iter()
                        .any(|e| e.car == car && e.ts_ms > p.ts_ms && e.ts_ms < flag_ms)
                })
                .map(|p| p.seconds)
                .sum();
            match finish {
                Some((laps, t)) => ClassifiedCar {
                    position: 0,
                    car,
                    laps,
                    finish_ms: Some(t),
                    penalty_s,
                },
                None => ClassifiedCar {
                    position: 0,
                    car,
                    laps: laps_by(car, flag_ms, done),
                    finish_ms: None,
                    penalty_s,
                },
            }
        })
        .collect();
    let race_time = |c: &ClassifiedCar| {
        c.finish_ms
            .map(|t| t + i64::from(c.penalty_s) * 1000)
            .or_else(|| model.crossing_time_ms(c.car, c.laps))
            .unwrap_or(i64::MAX)
    };
    lines.sort_by(|a, b| {
        b.finished()
            .cmp(&a.finished())
            .then(b.laps.cmp(&a.laps))
            .then(race_time(a).cmp(&race_time(b)))
            .then(a.car.cmp(&b.car))
    });
    for (i, l) in lines.iter_mut().enumerate() {
        l.position = i as u32 + 1;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_time_penalties_and_ignores_other_penalties() {
        let p = TimePenalty::from_message(
            7,
            "FIA STEWARDS: 5 SECOND TIME PENALTY FOR CAR 23 (ALB) - FAILING TO FOLLOW RACE DIRECTORS INSTRUCTIONS",
        )
        .unwrap();
        assert_eq!(
            p,
            TimePenalty {
                car: 23,
                ts_ms: 7,
                seconds: 5
            }
        );
        let p =
            TimePenalty::from_message(0, "FIA Stewards: 10 second time penalty for Car 1 (VER)");
        assert_eq!(p.map(|p| (p.car, p.seconds)), Some((1, 10)));
        for m in [
            "FIA STEWARDS: DRIVE THROUGH PENALTY FOR CAR 4 (NOR) - PIT LANE SPEEDING",
            "FIA STEWARDS: INCIDENT INVOLVING CAR 23 (ALB) UNDER INVESTIGATION",
            "CAR 22 (TSU) TIME 1:11.950 DELETED - TRACK LIMITS AT TURN 1 LAP 36",
            "SECOND TIME PENALTY FOR CAR X",
        ] {
            assert_eq!(TimePenalty::from_message(0, m), None, "{m}");
        }
    }
}
