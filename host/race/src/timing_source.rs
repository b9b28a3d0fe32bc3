//! OpenF1 timing tables as ONE time-ordered engine [`Source`] — the rows a race
//! without car positions (the 2024 Bahrain GP) sends through the engine.
//!
//! In: a session folder's [`TimingTables`] (laps, intervals, positions). Out:
//! [`RowChunk`]s keyed by car, one row per record, never joined:
//!
//! * an `intervals` sample: channel `interval` (s to the car ahead; missing for
//!   a `null` or lapped sample);
//! * a `position` record: channel `position` (OpenF1's official order);
//! * a `laps` record, at its `date_start`: channel `lap` (the lap number started).
//!
//! The other channels of a row are missing (`NaN`), so every channel is optional.
//! Rows are ordered by (time, car, table: interval, position, lap; record order),
//! whatever the files' order, so a replay is byte-identical every time. Position
//! = rows handed out, as for the OpenF1 location source.

use std::path::Path;

use pitwall_engine::schema::{ChannelSpec, ChannelType, KeySpec, KeyType, Schema, TimeSpec};
use pitwall_engine::source::{Source, SourceOptions};
use pitwall_engine::{EventTime, RowChunk, SourceError, TimeUnit};

use crate::error::RaceDataError;
use crate::timing_timeline::TimingTables;

/// The channels of a [`TimingSource`], in schema order.
pub const TIMING_CHANNELS: [&str; 3] = ["interval", "position", "lap"];

/// The schema of a [`TimingSource`]: time `ts_ms` (ms), key `car` (int), optional
/// channels `interval` (float, s), `position` (int), `lap` (int).
pub fn timing_schema() -> Schema {
    let ch = |name: &str, ty: ChannelType, unit: &str, range: (f64, f64)| ChannelSpec {
        name: name.into(),
        ty,
        unit: Some(unit.into()),
        min: Some(range.0),
        max: Some(range.1),
        optional: true,
        sampling: None,
    };
    Schema {
        time: TimeSpec {
            name: "ts_ms".into(),
            unit: TimeUnit::Ms,
        },
        key: KeySpec {
            name: "car".into(),
            ty: KeyType::Int,
        },
        channels: vec![
            ch("interval", ChannelType::Float, "s", (0.0, 1.0e6)),
            ch("position", ChannelType::Int, "", (1.0, 99.0)),
            ch("lap", ChannelType::Int, "", (1.0, 1000.0)),
        ],
    }
}

/// One merged row.
#[derive(Debug, Clone, Copy)]
struct TimingRow {
    ts: EventTime,
    car: u32,
    /// 0 interval, 1 position, 2 lap (the column it fills).
    table: u8,
    /// Record number within its table (ties).
    seq: u32,
    value: f64,
}

/// The timing tables of one session folder as an engine source.
pub struct TimingSource {
    name: String,
    schema: Schema,
    rows: Vec<TimingRow>,
    projection: Vec<bool>,
    chunk_rows: usize,
    next: usize,
}

impl TimingSource {
    /// Reads the folder's timing tables ([`TimingTables::read`]) and merges them.
    pub fn open(dir: impl AsRef<Path>, opts: &SourceOptions) -> Result<Self, RaceDataError> {
        let dir = dir.as_ref();
        let tables = TimingTables::read(dir)?;
        Ok(Self::from_tables(dir.display().to_string(), &tables, opts))
    }

    /// The source over tables already read.
    pub fn from_tables(name: String, t: &TimingTables, opts: &SourceOptions) -> Self {
        let mut rows = Vec::with_capacity(t.intervals.len() + t.positions.len() + t.laps.len());
        rows.extend(t.intervals.iter().enumerate().map(|(i, s)| TimingRow {
            ts: s.ts,
            car: s.driver_number,
            table: 0,
            seq: i as u32,
            value: s.interval.seconds().unwrap_or(f64::NAN),
        }));
        rows.extend(t.positions.iter().enumerate().map(|(i, p)| TimingRow {
            ts: p.ts,
            car: p.driver_number,
            table: 1,
            seq: i as u32,
            value: p.position as f64,
        }));
        rows.extend(t.laps.iter().enumerate().filter_map(|(i, l)| {
            Some(TimingRow {
                ts: l.date_start?,
                car: l.driver_number,
                table: 2,
                seq: i as u32,
                value: l.lap_number as f64,
            })
        }));
        rows.sort_by_key(|r| (r.ts, r.car, r.table, r.seq));
        let schema = timing_schema();
        let projection = (0..schema.channels.len())
            .map(|c| opts.projection.get(c).copied().unwrap_or(true))
            .collect();
        TimingSource {
            name,
            schema,
            rows,
            projection,
            chunk_rows: opts.chunk_rows.max(1),
            next: 0,
        }
    }

    /// Rows in the merged stream.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl Source for TimingSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        if self.next >= self.rows.len() {
            return Ok(None);
        }
        let start = self.next;
        let end = (start + self.chunk_rows).min(self.rows.len());
        let n = self.schema.channels.len();
        let mut chunk = RowChunk::with_capacity(n, end - start, &self.projection);
        let mut last_car = u32::MAX;
        let mut last_key = 0;
        for (i, r) in self.rows[start..end].iter().enumerate() {
            if r.car != last_car {
                last_key = chunk.intern_key(&r.car.to_string());
                last_car = r.car;
            }
            chunk.ts.push(r.ts);
            chunk.keys.push(last_key);
            chunk.lines.push((start + i + 1) as u64);
            for (c, col) in chunk.columns.iter_mut().enumerate() {
                if self.projection[c] {
                    col.push(if c == r.table as usize {
                        r.value
                    } else {
                        f64::NAN
                    });
                }
            }
        }
        chunk.end_position = end as u64;
        self.next = end;
        Ok(Some(chunk))
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        match usize::try_from(position) {
            Ok(p) if p <= self.rows.len() => {
                self.next = p;
                Ok(())
            }
            _ => Err(SourceError::Seek {
                source_name: self.name.clone(),
                position,
                reason: format!("only {} rows", self.rows.len()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::{Gap, Interval, Lap, Position};

    #[test]
    fn rows_merge_by_time_car_and_table() {
        let t = TimingTables {
            laps: vec![Lap {
                driver_number: 4,
                lap_number: 1,
                date_start: Some(1000),
                ..Lap::default()
            }],
            intervals: vec![
                Interval {
                    ts: 1000,
                    meeting_key: None,
                    session_key: None,
                    driver_number: 4,
                    gap_to_leader: Gap::None,
                    interval: Gap::Seconds(0.5),
                },
                Interval {
                    ts: 900,
                    meeting_key: None,
                    session_key: None,
                    driver_number: 44,
                    gap_to_leader: Gap::None,
                    interval: Gap::Laps(1),
                },
            ],
            positions: vec![Position {
                ts: 1000,
                meeting_key: None,
                session_key: None,
                driver_number: 1,
                position: 1,
            }],
            ..TimingTables::default()
        };
        let opts = SourceOptions::all(&timing_schema());
        let mut s = TimingSource::from_tables("t".into(), &t, &opts);
        assert_eq!(s.len(), 4);
        let c = s.next_chunk().unwrap().unwrap();
        assert_eq!(c.ts, [900, 1000, 1000, 1000]);
        let keys: Vec<&str> = c.keys.iter().map(|k| &*c.key_names[*k as usize]).collect();
        assert_eq!(keys, ["44", "1", "4", "4"]);
        // 44: lapped, no time; 1: position; 4: interval, then lap.
        assert!(c.columns[0][0].is_nan());
        assert_eq!(c.columns[1][1], 1.0);
        assert_eq!((c.columns[0][2], c.columns[2][3]), (0.5, 1.0));
        assert!(c.columns[2][2].is_nan() && c.columns[0][3].is_nan());
        assert!(s.next_chunk().unwrap().is_none());
        s.seek(3).unwrap();
        assert_eq!(s.next_chunk().unwrap().unwrap().ts, [1000]);
        assert!(s.seek(5).is_err());
    }
}
