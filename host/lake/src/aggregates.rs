//! The engine's window aggregates as a Parquet table: one row per key per
//! window, the content `pitwall window` writes as CSV with typed columns.
//!
//! Columns: the key (named as the job's key column: `INT64` for an `int`
//! key, `STRING` otherwise), `window_start_<unit>` and `window_end_<unit>`
//! (`INT64`, the job's time unit), `rows` (rows of the key in the window,
//! `UINT_64`), then one column per declared aggregate, named as in the CSV:
//! `INT64` for an integer aggregate (counts, a last gear), `DOUBLE`
//! otherwise, null where the engine has no value (NaN).
//!
//! Rows are written as windows fire (by window, then key), not sorted by key
//! as the CSV is: sorting needs the whole job in memory, while firing order
//! streams, and clusters each row group by time so readers prune row groups
//! on a time filter.

use std::path::Path;

use parquet::file::metadata::KeyValue;
use pitwall_engine::aggregate::OutputType;
use pitwall_engine::schema::KeyType;
use pitwall_engine::{Collector, EngineError, EventTime, JobPlan, JobSink, WindowResult};

use crate::column::{Column, F64, I64, Opt, Req, U64, Utf8, not_nan_f64};
use crate::error::LakeError;
use crate::table::{Stats, Table};
use crate::{DEFAULT_ROW_GROUP_ROWS, WriterOptions};

/// The columns of a window table, from a job plan.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateColumns {
    /// The key column's name (`car`).
    pub key: String,
    /// How keys are stored: `Int` keys as `INT64`, `String` keys as `STRING`.
    pub key_type: KeyType,
    /// `window_start_ms` (or `_us`, `_ns`: the job's time unit).
    pub window_start: String,
    /// `window_end_ms` (or `_us`, `_ns`).
    pub window_end: String,
    /// Window size in the job's time unit.
    pub window_size: EventTime,
    /// Aggregate names, in declaration order.
    pub names: Vec<String>,
    /// Aggregate output types, in declaration order.
    pub types: Vec<OutputType>,
}

impl AggregateColumns {
    /// The columns of `plan`'s window table.
    pub fn from_plan(plan: &JobPlan) -> Self {
        let unit = plan.schema.time.unit.suffix();
        AggregateColumns {
            key: plan.schema.key.name.clone(),
            key_type: plan.schema.key.ty,
            window_start: format!("window_start_{unit}"),
            window_end: format!("window_end_{unit}"),
            window_size: plan.size,
            names: plan.aggregates.names().to_vec(),
            types: plan.aggregates.types().to_vec(),
        }
    }
}

/// Writes fired windows, streaming: at most one row group is held in memory.
pub struct AggregatesWriter {
    table: Table,
    spec: AggregateColumns,
    columns: WindowColumns,
    windows: u64,
    /// Integer aggregates of the row being checked (reused).
    ints: Vec<Option<i64>>,
}

impl AggregatesWriter {
    /// Creates the file with the default row-group size
    /// ([`DEFAULT_ROW_GROUP_ROWS`] rows).
    pub fn create(path: impl AsRef<Path>, columns: AggregateColumns) -> Result<Self, LakeError> {
        Self::create_with(
            path,
            columns,
            WriterOptions {
                row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            },
        )
    }

    /// Creates the file with `options`.
    pub fn create_with(
        path: impl AsRef<Path>,
        spec: AggregateColumns,
        options: WriterOptions,
    ) -> Result<Self, LakeError> {
        let path = path.as_ref();
        let fixed = [&spec.key, &spec.window_start, &spec.window_end, "rows"];
        for (i, n) in spec.names.iter().enumerate() {
            if fixed.contains(&n.as_str()) || spec.names[..i].contains(n) {
                return Err(LakeError::DuplicateColumn {
                    path: path.to_path_buf(),
                    name: n.clone(),
                });
            }
        }
        let types: Vec<&str> = spec
            .types
            .iter()
            .map(|t| match t {
                OutputType::Int => "int",
                OutputType::Float => "float",
            })
            .collect();
        let metadata = vec![
            KeyValue::new("pitwall.table".into(), "window_aggregates".to_string()),
            KeyValue::new("pitwall.window_size".into(), spec.window_size.to_string()),
            KeyValue::new("pitwall.aggregate_types".into(), types.join(",")),
        ];
        let mut table = Table::create(path, options.row_group_rows, metadata)?;
        let mut columns = WindowColumns::new(&spec);
        table.start(&columns.all())?;
        Ok(AggregatesWriter {
            table,
            columns,
            ints: Vec::with_capacity(spec.names.len()),
            spec,
            windows: 0,
        })
    }

    /// Appends one fired window. A window that does not fit the columns (a
    /// wrong value count, a non-integer key or integer aggregate) is refused
    /// whole.
    pub fn write(&mut self, w: &WindowResult) -> Result<(), LakeError> {
        let path = || self.table.path().to_path_buf();
        if w.values.len() != self.spec.names.len() {
            return Err(LakeError::AggregateCount {
                path: path(),
                what: format!("the window of key {:?} at {}", &*w.car, w.start),
                expected: self.spec.names.len(),
                found: w.values.len(),
            });
        }
        let key_int = match self.spec.key_type {
            KeyType::Int => Some(w.car.parse::<i64>().map_err(|_| LakeError::KeyNotInteger {
                path: path(),
                key: w.car.to_string(),
            })?),
            KeyType::String => None,
        };
        self.ints.clear();
        for ((v, t), name) in w.values.iter().zip(&self.spec.types).zip(&self.spec.names) {
            if *t == OutputType::Int {
                let i = whole(*v).map_err(|value| LakeError::NotAnInteger {
                    path: path(),
                    column: name.clone(),
                    key: w.car.to_string(),
                    window_start: w.start,
                    value,
                })?;
                self.ints.push(i);
            }
        }
        let c = &mut self.columns;
        match (&mut c.key, key_int) {
            (KeyColumn::Int(col), Some(k)) => col.push(k),
            (KeyColumn::Text(col), _) => col.push(&w.car),
            (KeyColumn::Int(_), None) => unreachable!("an int key type parses the key above"),
        }
        c.window_start.push(w.start);
        c.window_end
            .push(w.start.saturating_add(self.spec.window_size));
        c.rows.push(w.rows);
        let mut ints = self.ints.iter();
        for (col, v) in c.aggregates.iter_mut().zip(&w.values) {
            match col {
                AggregateColumn::Int(col) => col.push(ints.next().copied().flatten()),
                AggregateColumn::Float(col) => col.push(not_nan_f64(*v)),
            }
        }
        self.windows += 1;
        if self.table.row_pushed() {
            self.table.flush(&mut self.columns.all())?;
        }
        Ok(())
    }

    /// Writes the last row group and the footer and moves the file into place.
    pub fn finish(mut self) -> Result<Stats, LakeError> {
        self.table.finish(&mut self.columns.all())
    }
}

/// `Ok(None)` for NaN (no value), `Ok(Some)` for a whole number an `i64`
/// holds, `Err(v)` otherwise.
fn whole(v: f64) -> Result<Option<i64>, f64> {
    // 2^63: the first f64 past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if v.is_nan() {
        Ok(None)
    } else if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
        Ok(Some(v as i64))
    } else {
        Err(v)
    }
}

enum KeyColumn {
    Int(Req<I64>),
    Text(Req<Utf8>),
}

enum AggregateColumn {
    Int(Opt<I64>),
    Float(Opt<F64>),
}

/// The buffered columns of a window table, in file order.
struct WindowColumns {
    key: KeyColumn,
    window_start: Req<I64>,
    window_end: Req<I64>,
    rows: Req<U64>,
    aggregates: Vec<AggregateColumn>,
}

impl WindowColumns {
    fn new(spec: &AggregateColumns) -> Self {
        WindowColumns {
            key: match spec.key_type {
                KeyType::Int => KeyColumn::Int(Req::new(&spec.key)),
                KeyType::String => KeyColumn::Text(Req::new(&spec.key)),
            },
            window_start: Req::new(&spec.window_start),
            window_end: Req::new(&spec.window_end),
            rows: Req::new("rows"),
            aggregates: spec
                .names
                .iter()
                .zip(&spec.types)
                .map(|(n, t)| match t {
                    OutputType::Int => AggregateColumn::Int(Opt::new(n)),
                    OutputType::Float => AggregateColumn::Float(Opt::new(n)),
                })
                .collect(),
        }
    }

    /// Every column, in file order.
    fn all(&mut self) -> Vec<&mut dyn Column> {
        let mut v: Vec<&mut dyn Column> = vec![match &mut self.key {
            KeyColumn::Int(c) => c,
            KeyColumn::Text(c) => c,
        }];
        v.push(&mut self.window_start);
        v.push(&mut self.window_end);
        v.push(&mut self.rows);
        v.extend(self.aggregates.iter_mut().map(|c| match c {
            AggregateColumn::Int(c) => c as &mut dyn Column,
            AggregateColumn::Float(c) => c as &mut dyn Column,
        }));
        v
    }
}

/// A job sink that streams every fired window into an [`AggregatesWriter`]:
/// what `pitwall export parquet --config` runs the engine into.
///
/// The engine's collector cannot fail, so the first write error is kept and
/// returned by [`finish`](Self::finish); later windows are dropped. The sink
/// cannot checkpoint (rows already in row groups cannot be taken back on a
/// restore), so a job with a checkpoint directory fails at its first
/// checkpoint instead of writing duplicates.
pub struct AggregatesSink {
    writer: AggregatesWriter,
    error: Option<LakeError>,
}

impl AggregatesSink {
    pub fn new(writer: AggregatesWriter) -> Self {
        AggregatesSink {
            writer,
            error: None,
        }
    }

    /// The first write error, or the finished file's stats.
    pub fn finish(self) -> Result<Stats, LakeError> {
        match self.error {
            Some(e) => Err(e),
            None => self.writer.finish(),
        }
    }
}

impl Collector for AggregatesSink {
    fn window(&mut self, w: WindowResult) {
        if self.error.is_none()
            && let Err(e) = self.writer.write(&w)
        {
            self.error = Some(e);
        }
    }
}

impl JobSink for AggregatesSink {
    fn snapshot(&mut self) -> Result<Vec<u8>, EngineError> {
        Err(EngineError::Stage {
            stage: "parquet export",
            reason: "the Parquet export streams row groups and cannot checkpoint; \
                     run it without a checkpoint directory"
                .into(),
        })
    }
}
