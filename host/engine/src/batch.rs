//! Columnar telemetry as it flows through the engine.
//!
//! * [`RowChunk`]: what a source yields — rows of many cars **in input order**,
//!   column by column. Input order matters: the watermark and every late-data
//!   decision are defined over it.
//! * [`SampleBatch`]: what keyed operators consume — the on-time rows of **one car**
//!   from one chunk, still in input order, one value column per channel.
//!
//! Missing values (an optional channel that was absent, or a value thinned by
//! adaptive sampling) are `NaN`; aggregates skip them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::broadcast::BroadcastEvent;
use crate::error::{RecordError, RecordLocation};
use crate::schema::{KeyType, Schema};
use crate::time::{EventTime, MAX_EVENT_TIME, MIN_EVENT_TIME};

/// Dense id of a key (car) inside one engine, assigned in order of first appearance.
pub type KeyId = u32;

/// A run of rows from a source, in input order.
///
/// Keys are interned per chunk (`key_names`, indexed by `keys`) so that parallel
/// parsers need no shared dictionary; the engine maps them to its own [`KeyId`]s.
/// `columns` has one entry per schema channel; a channel the job does not use
/// (not in the source's projection) is left empty, so parsers skip its text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowChunk {
    pub ts: Vec<EventTime>,
    /// Index into `key_names` for each row.
    pub keys: Vec<u32>,
    /// Distinct key values of this chunk, as text.
    pub key_names: Vec<Arc<str>>,
    /// Value columns, one per schema channel (empty when not projected).
    pub columns: Vec<Vec<f64>>,
    /// Source line (or record) number of each row, 1-based, for error and late reports.
    pub lines: Vec<u64>,
    /// Broadcast events that arrived with this chunk: `(i, event)` means the event
    /// arrived just before row `i` (`i == len()` means after the last row).
    pub events: Vec<(usize, BroadcastEvent)>,
    /// Malformed records skipped inside this chunk (only when the job skips them).
    pub skipped: u64,
    /// The source's position after this chunk: where a restored job resumes.
    pub end_position: u64,
}

impl RowChunk {
    /// An empty chunk with `channels` columns, of which those in `projection` will hold values.
    pub fn with_capacity(channels: usize, rows: usize, projection: &[bool]) -> Self {
        RowChunk {
            ts: Vec::with_capacity(rows),
            keys: Vec::with_capacity(rows),
            key_names: Vec::new(),
            columns: (0..channels)
                .map(|c| {
                    if projection.get(c).copied().unwrap_or(true) {
                        Vec::with_capacity(rows)
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
            lines: Vec::with_capacity(rows),
            events: Vec::new(),
            skipped: 0,
            end_position: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Empties the chunk for reuse, keeping its buffers, and makes room for `rows`.
    pub fn reset(&mut self, channels: usize, rows: usize, projection: &[bool]) {
        self.ts.clear();
        self.ts.reserve(rows);
        self.keys.clear();
        self.keys.reserve(rows);
        self.key_names.clear();
        self.columns.resize_with(channels, Vec::new);
        for (c, col) in self.columns.iter_mut().enumerate() {
            col.clear();
            if projection.get(c).copied().unwrap_or(true) {
                col.reserve(rows);
            } else {
                *col = Vec::new();
            }
        }
        self.lines.clear();
        self.lines.reserve(rows);
        self.events.clear();
        self.skipped = 0;
        self.end_position = 0;
    }

    /// Interns `name` in this chunk's key table (linear scan: a chunk holds a few dozen cars).
    #[inline]
    pub fn intern_key(&mut self, name: &str) -> u32 {
        if let Some(i) = self.key_names.iter().position(|k| &**k == name) {
            return i as u32;
        }
        self.key_names.push(Arc::from(name));
        (self.key_names.len() - 1) as u32
    }

    /// Checks the chunk is well formed for a job that reads channels `used`:
    /// columns of equal length, key indexes in range, event times within
    /// [`MIN_EVENT_TIME`, `MAX_EVENT_TIME`], events in arrival order. The engine runs
    /// this on every chunk (it is a few vectorised passes) so that no chunk — from a
    /// push producer or an embedding program — can make it panic.
    pub fn check_shape(&self, used: &[usize]) -> Result<(), RecordError> {
        let n = self.ts.len();
        let at = |line: u64, reason: String| RecordError {
            location: RecordLocation {
                source: "chunk".into(),
                line,
            },
            reason,
        };
        if self.keys.len() != n || self.lines.len() != n {
            return Err(at(
                0,
                format!(
                    "chunk has {n} timestamps but {} keys and {} line numbers",
                    self.keys.len(),
                    self.lines.len()
                ),
            ));
        }
        for &c in used {
            let len = self.columns.get(c).map_or(0, Vec::len);
            if len != n {
                return Err(at(
                    0,
                    format!("chunk column {c} has {len} values for {n} rows"),
                ));
            }
        }
        let nk = self.key_names.len() as u32;
        if let Some(i) = self.keys.iter().position(|&k| k >= nk) {
            return Err(at(
                self.lines[i],
                format!("key index {} but the chunk names {nk} keys", self.keys[i]),
            ));
        }
        if let Some(i) = self
            .ts
            .iter()
            .position(|&t| !(MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&t))
        {
            return Err(at(
                self.lines[i],
                format!(
                    "event time {} is outside the supported range [-2^62, 2^62]",
                    self.ts[i]
                ),
            ));
        }
        if self.events.windows(2).any(|w| w[0].0 > w[1].0)
            || self.events.iter().any(|(i, _)| *i > n)
        {
            return Err(at(
                0,
                "broadcast events are not in arrival order within the chunk".into(),
            ));
        }
        Ok(())
    }

    /// Checks values too, for chunks from outside the engine's own sources (push
    /// producers): everything in [`RowChunk::check_shape`], plus every projected
    /// value accepted by the schema (finite, type, range) or missing only where the
    /// channel is optional, and integer keys where the schema says so.
    pub fn validate(&self, schema: &Schema, projection: &[bool]) -> Result<(), RecordError> {
        let used: Vec<usize> = (0..schema.channels.len())
            .filter(|&c| projection.get(c).copied().unwrap_or(true))
            .collect();
        self.check_shape(&used)?;
        let at = |i: usize, reason: String| RecordError {
            location: RecordLocation {
                source: "chunk".into(),
                line: self.lines[i],
            },
            reason,
        };
        if schema.key.ty == KeyType::Int
            && let Some(k) = self.key_names.iter().find(|k| k.parse::<i64>().is_err())
        {
            return Err(RecordError {
                location: RecordLocation {
                    source: "chunk".into(),
                    line: 0,
                },
                reason: format!("key {k:?} is not an integer, as the schema's key type says"),
            });
        }
        for &c in &used {
            let optional = schema.channels[c].optional;
            for (i, &v) in self.columns.get(c).into_iter().flatten().enumerate() {
                if v.is_nan() {
                    if !optional {
                        return Err(at(i, format!("{}: missing value", schema.channels[c].name)));
                    }
                } else if let Err(reason) = schema.check_value(c, v) {
                    return Err(at(i, reason));
                }
            }
        }
        Ok(())
    }

    /// Checks the columns agree in length (a debugging aid for sources).
    pub fn debug_assert_consistent(&self) {
        debug_assert_eq!(self.ts.len(), self.keys.len());
        debug_assert_eq!(self.ts.len(), self.lines.len());
        for c in &self.columns {
            debug_assert!(c.is_empty() || c.len() == self.ts.len());
        }
    }
}

/// The on-time rows of one car from one chunk, in input order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleBatch {
    pub key: KeyId,
    pub ts: Vec<EventTime>,
    /// One column per schema channel; empty when the channel is not projected.
    pub columns: Vec<Vec<f64>>,
}

impl SampleBatch {
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn clear(&mut self) {
        self.ts.clear();
        for c in &mut self.columns {
            c.clear();
        }
    }
}

/// Maps key text to dense [`KeyId`]s, in order of first appearance. Part of the
/// checkpoint, so ids are stable across a restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyDictionary {
    names: Vec<Arc<str>>,
    #[serde(skip)]
    index: std::collections::HashMap<Arc<str>, KeyId>,
}

impl KeyDictionary {
    pub fn intern(&mut self, name: &Arc<str>) -> KeyId {
        if self.index.len() != self.names.len() {
            self.rebuild_index();
        }
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as KeyId;
        self.names.push(name.clone());
        self.index.insert(name.clone(), id);
        id
    }

    pub fn name(&self, id: KeyId) -> &Arc<str> {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn rebuild_index(&mut self) {
        self.index = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as KeyId))
            .collect();
    }
}
