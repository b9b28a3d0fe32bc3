//! Window aggregates, declared in config and compiled once into a plan.
//!
//! In: runs of rows of one car that fall into one window (slices of a
//! [`SampleBatch`](crate::batch::SampleBatch)'s columns). Out: one value per
//! declared aggregate when the window fires. State: an [`Accumulator`] per open
//! window — a few `f64`/`i64` slots per aggregate.
//!
//! Every update folds values strictly in input order, so results are bit-for-bit
//! the same however the input was cut into chunks (a restored checkpoint cuts it
//! differently). Missing values (`NaN`) are skipped.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::schema::{ChannelType, Schema};
use crate::time::EventTime;

/// Read access to rows for aggregates: a dense batch, or a chunk seen through
/// the indexes of one car's rows (no copy).
pub trait Rows {
    /// Event times of rows `range`.
    fn times(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = EventTime> + '_;
    /// Values of channel `ch` for rows `range`.
    fn values(&self, ch: usize, range: std::ops::Range<usize>) -> impl Iterator<Item = f64> + '_;
    /// One value.
    fn value(&self, ch: usize, i: usize) -> f64;
    /// Number of rows.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Event time of one row.
    fn ts(&self, i: usize) -> EventTime;
}

/// Rows held column by column.
pub struct DenseRows<'a> {
    pub ts: &'a [EventTime],
    pub columns: &'a [Vec<f64>],
}

impl Rows for DenseRows<'_> {
    fn times(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = EventTime> + '_ {
        self.ts[range].iter().copied()
    }
    fn values(&self, ch: usize, range: std::ops::Range<usize>) -> impl Iterator<Item = f64> + '_ {
        self.columns[ch][range].iter().copied()
    }
    fn value(&self, ch: usize, i: usize) -> f64 {
        self.columns[ch][i]
    }
    fn len(&self) -> usize {
        self.ts.len()
    }
    fn ts(&self, i: usize) -> EventTime {
        self.ts[i]
    }
}

/// Some rows of a chunk, by index (one car's rows, in input order).
pub struct IndexedRows<'a> {
    pub ts: &'a [EventTime],
    pub columns: &'a [Vec<f64>],
    pub idx: &'a [u32],
}

impl Rows for IndexedRows<'_> {
    fn times(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = EventTime> + '_ {
        self.idx[range].iter().map(|&i| self.ts[i as usize])
    }
    fn values(&self, ch: usize, range: std::ops::Range<usize>) -> impl Iterator<Item = f64> + '_ {
        let col = &self.columns[ch];
        self.idx[range].iter().map(move |&i| col[i as usize])
    }
    fn value(&self, ch: usize, i: usize) -> f64 {
        self.columns[ch][self.idx[i] as usize]
    }
    fn len(&self) -> usize {
        self.idx.len()
    }
    fn ts(&self, i: usize) -> EventTime {
        self.ts[self.idx[i] as usize]
    }
}

/// The kinds of aggregate a job can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    /// Rows of the car in the window (or, with `channel`, the values present in that channel).
    Count,
    Mean,
    Min,
    Max,
    Sum,
    /// The value with the earliest event time (ties: the larger value).
    First,
    /// The value with the latest event time (ties: the larger value).
    Last,
    /// `factor * Σ (c1 * c2 * …)` over the rows where every channel is present,
    /// e.g. `throttle * rpm * dt`, a fuel-burn proxy.
    SumProduct,
}

/// One aggregate as written in a job config (`[[aggregate]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    pub kind: AggregateKind,
    /// The channel it reads (all kinds but `sum_product`; optional for `count`).
    #[serde(default)]
    pub channel: Option<String>,
    /// The channels multiplied (`sum_product` only).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Constant multiplier (`sum_product` only; default 1).
    #[serde(default)]
    pub factor: Option<f64>,
    /// Output column name; default `kind_channel` (`mean_speed`, `count`).
    #[serde(default)]
    pub name: Option<String>,
}

impl AggregateSpec {
    pub fn new(kind: AggregateKind, channel: Option<&str>) -> Self {
        AggregateSpec {
            kind,
            channel: channel.map(str::to_string),
            channels: Vec::new(),
            factor: None,
            name: None,
        }
    }

    pub fn sum_product(channels: &[&str], factor: f64) -> Self {
        AggregateSpec {
            kind: AggregateKind::SumProduct,
            channel: None,
            channels: channels.iter().map(|c| c.to_string()).collect(),
            factor: Some(factor),
            name: None,
        }
    }
}

/// How an aggregate's output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputType {
    Int,
    Float,
}

/// A compiled aggregate: channel indexes resolved, slots assigned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    CountRows,
    CountValues {
        ch: usize,
        slot: usize,
    },
    /// Sum and count in `slot`, `slot + 1`; `mean` divides at the end.
    SumCount {
        ch: usize,
        slot: usize,
        mean: bool,
    },
    Min {
        ch: usize,
        slot: usize,
    },
    Max {
        ch: usize,
        slot: usize,
    },
    /// Value in `slot`, event time in `tslot`.
    First {
        ch: usize,
        slot: usize,
        tslot: usize,
    },
    Last {
        ch: usize,
        slot: usize,
        tslot: usize,
    },
    /// Sum in `slot`, rows used in `slot + 1`.
    SumProduct {
        chs: Vec<usize>,
        factor: f64,
        slot: usize,
    },
}

/// The job's aggregates, compiled against its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatePlan {
    pub(crate) ops: Vec<Op>,
    names: Vec<String>,
    types: Vec<OutputType>,
    f_slots: usize,
    t_slots: usize,
    /// Channels some aggregate reads (the source's projection).
    used: Vec<bool>,
    /// Channels that can hold missing values (optional or thinned); others skip NaN checks.
    maybe_missing: Vec<bool>,
}

/// Per-window accumulator state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    pub rows: u64,
    f: Vec<f64>,
    t: Vec<EventTime>,
}

impl AggregatePlan {
    /// Resolves channel names and assigns accumulator slots.
    pub fn compile(specs: &[AggregateSpec], schema: &Schema) -> Result<Self, ConfigError> {
        if specs.is_empty() {
            return Err(ConfigError::Invalid(
                "the job declares no aggregates; add at least one [[aggregate]]".into(),
            ));
        }
        let mut ops = Vec::with_capacity(specs.len());
        let mut names = Vec::with_capacity(specs.len());
        let mut types = Vec::with_capacity(specs.len());
        let mut used = vec![false; schema.channels.len()];
        let (mut f_slots, mut t_slots) = (0usize, 0usize);
        for (i, spec) in specs.iter().enumerate() {
            let what = format!("aggregate #{} ({:?})", i + 1, spec.kind);
            let one_channel = |used: &mut Vec<bool>| -> Result<usize, ConfigError> {
                let name = spec.channel.as_deref().ok_or_else(|| {
                    ConfigError::Invalid(format!("{what} needs `channel = \"...\"`"))
                })?;
                let ch = schema.require_channel(name, &what)?;
                used[ch] = true;
                Ok(ch)
            };
            if spec.kind != AggregateKind::SumProduct
                && (!spec.channels.is_empty() || spec.factor.is_some())
            {
                return Err(ConfigError::Invalid(format!(
                    "{what}: `channels` and `factor` belong to kind = \"sum_product\""
                )));
            }
            let channel_ty = |ch: usize| match schema.channels[ch].ty {
                ChannelType::Float => OutputType::Float,
                ChannelType::Int | ChannelType::Bool => OutputType::Int,
            };
            let (op, default_name, ty) = match spec.kind {
                AggregateKind::Count => match &spec.channel {
                    None => (Op::CountRows, "count".to_string(), OutputType::Int),
                    Some(c) => {
                        let ch = one_channel(&mut used)?;
                        f_slots += 1;
                        (
                            Op::CountValues {
                                ch,
                                slot: f_slots - 1,
                            },
                            format!("count_{c}"),
                            OutputType::Int,
                        )
                    }
                },
                AggregateKind::Mean | AggregateKind::Sum => {
                    let ch = one_channel(&mut used)?;
                    let slot = f_slots;
                    f_slots += 2;
                    let mean = spec.kind == AggregateKind::Mean;
                    let (prefix, ty) = if mean {
                        ("mean", OutputType::Float)
                    } else {
                        ("sum", channel_ty(ch))
                    };
                    (
                        Op::SumCount { ch, slot, mean },
                        format!("{prefix}_{}", schema.channels[ch].name),
                        ty,
                    )
                }
                AggregateKind::Min | AggregateKind::Max => {
                    let ch = one_channel(&mut used)?;
                    let slot = f_slots;
                    f_slots += 1;
                    let min = spec.kind == AggregateKind::Min;
                    (
                        if min {
                            Op::Min { ch, slot }
                        } else {
                            Op::Max { ch, slot }
                        },
                        format!(
                            "{}_{}",
                            if min { "min" } else { "max" },
                            schema.channels[ch].name
                        ),
                        channel_ty(ch),
                    )
                }
                AggregateKind::First | AggregateKind::Last => {
                    let ch = one_channel(&mut used)?;
                    let (slot, tslot) = (f_slots, t_slots);
                    f_slots += 1;
                    t_slots += 1;
                    let first = spec.kind == AggregateKind::First;
                    (
                        if first {
                            Op::First { ch, slot, tslot }
                        } else {
                            Op::Last { ch, slot, tslot }
                        },
                        format!(
                            "{}_{}",
                            if first { "first" } else { "last" },
                            schema.channels[ch].name
                        ),
                        channel_ty(ch),
                    )
                }
                AggregateKind::SumProduct => {
                    if spec.channel.is_some() {
                        return Err(ConfigError::Invalid(format!(
                            "{what}: sum_product takes `channels = [..]`, not `channel`"
                        )));
                    }
                    if spec.channels.is_empty() {
                        return Err(ConfigError::Invalid(format!(
                            "{what}: sum_product needs `channels = [\"a\", \"b\", ...]`"
                        )));
                    }
                    let mut chs = Vec::new();
                    for c in &spec.channels {
                        let ch = schema.require_channel(c, &what)?;
                        used[ch] = true;
                        chs.push(ch);
                    }
                    let factor = spec.factor.unwrap_or(1.0);
                    if !factor.is_finite() {
                        return Err(ConfigError::Invalid(format!(
                            "{what}: factor must be a finite number"
                        )));
                    }
                    let slot = f_slots;
                    f_slots += 2;
                    (
                        Op::SumProduct { chs, factor, slot },
                        format!("sum_{}", spec.channels.join("_x_")),
                        OutputType::Float,
                    )
                }
            };
            let name = spec.name.clone().unwrap_or(default_name);
            if names.contains(&name) {
                return Err(ConfigError::Invalid(format!(
                    "two aggregates are named {name:?}; give one a different `name`"
                )));
            }
            ops.push(op);
            names.push(name);
            types.push(ty);
        }
        let mut maybe_missing: Vec<bool> = schema
            .channels
            .iter()
            .map(|c| c.optional || c.sampling.is_some())
            .collect();
        maybe_missing.resize(schema.channels.len(), true);
        Ok(AggregatePlan {
            ops,
            names,
            types,
            f_slots,
            t_slots,
            used,
            maybe_missing,
        })
    }

    /// Output column names, in declaration order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Output types, in declaration order.
    pub fn types(&self) -> &[OutputType] {
        &self.types
    }

    /// Channels the aggregates read.
    pub fn used_channels(&self) -> &[bool] {
        &self.used
    }

    /// A fresh accumulator for a new window.
    pub fn new_accumulator(&self) -> Accumulator {
        let mut f = vec![0.0; self.f_slots];
        for op in &self.ops {
            match *op {
                Op::Min { slot, .. } => f[slot] = f64::INFINITY,
                Op::Max { slot, .. } => f[slot] = f64::NEG_INFINITY,
                Op::First { slot, .. } | Op::Last { slot, .. } => f[slot] = f64::NAN,
                _ => {}
            }
        }
        Accumulator {
            rows: 0,
            f,
            t: vec![EventTime::MIN; self.t_slots],
        }
    }

    /// Folds rows `range` of a batch (all in the same window) into `acc`.
    #[inline]
    pub fn update(
        &self,
        acc: &mut Accumulator,
        ts: &[EventTime],
        columns: &[Vec<f64>],
        range: std::ops::Range<usize>,
    ) {
        self.update_rows(acc, &DenseRows { ts, columns }, range)
    }

    /// Folds rows `range` of any [`Rows`] view (all in the same window) into `acc`.
    #[inline]
    pub fn update_rows<R: Rows>(
        &self,
        acc: &mut Accumulator,
        rows: &R,
        range: std::ops::Range<usize>,
    ) {
        acc.rows += range.len() as u64;
        for op in &self.ops {
            match op {
                Op::CountRows => {}
                Op::CountValues { ch, slot } => {
                    acc.f[*slot] += rows
                        .values(*ch, range.clone())
                        .filter(|v| !v.is_nan())
                        .count() as f64;
                }
                Op::SumCount { ch, slot, .. } => {
                    let (mut s, mut n) = (acc.f[*slot], acc.f[*slot + 1]);
                    if self.maybe_missing[*ch] {
                        for v in rows.values(*ch, range.clone()) {
                            if !v.is_nan() {
                                s += v;
                                n += 1.0;
                            }
                        }
                    } else {
                        for v in rows.values(*ch, range.clone()) {
                            s += v;
                        }
                        n += range.len() as f64;
                    }
                    acc.f[*slot] = s;
                    acc.f[*slot + 1] = n;
                }
                Op::Min { ch, slot } => {
                    // NaN compares false, so missing values never win.
                    acc.f[*slot] = rows
                        .values(*ch, range.clone())
                        .fold(acc.f[*slot], |m, v| if v < m { v } else { m });
                }
                Op::Max { ch, slot } => {
                    acc.f[*slot] = rows
                        .values(*ch, range.clone())
                        .fold(acc.f[*slot], |m, v| if v > m { v } else { m });
                }
                Op::First { ch, slot, tslot } => {
                    let (mut bv, mut bt) = (acc.f[*slot], acc.t[*tslot]);
                    for (t, v) in rows
                        .times(range.clone())
                        .zip(rows.values(*ch, range.clone()))
                    {
                        if v.is_nan() {
                            continue;
                        }
                        if bv.is_nan() || t < bt || (t == bt && v > bv) {
                            bv = v;
                            bt = t;
                        }
                    }
                    acc.f[*slot] = bv;
                    acc.t[*tslot] = bt;
                }
                Op::Last { ch, slot, tslot } => {
                    let (mut bv, mut bt) = (acc.f[*slot], acc.t[*tslot]);
                    for (t, v) in rows
                        .times(range.clone())
                        .zip(rows.values(*ch, range.clone()))
                    {
                        if v.is_nan() {
                            continue;
                        }
                        if bv.is_nan() || t > bt || (t == bt && v > bv) {
                            bv = v;
                            bt = t;
                        }
                    }
                    acc.f[*slot] = bv;
                    acc.t[*tslot] = bt;
                }
                Op::SumProduct { chs, factor, slot } => {
                    let (mut s, mut n) = (acc.f[*slot], acc.f[*slot + 1]);
                    if let [a, b] = chs.as_slice() {
                        let pairs = rows
                            .values(*a, range.clone())
                            .zip(rows.values(*b, range.clone()));
                        for (x, y) in pairs {
                            let p = x * y;
                            if !p.is_nan() {
                                s += factor * p;
                                n += 1.0;
                            }
                        }
                    } else {
                        for i in range.clone() {
                            let mut p = *factor;
                            for &c in chs {
                                p *= rows.value(c, i);
                            }
                            if !p.is_nan() {
                                s += p;
                                n += 1.0;
                            }
                        }
                    }
                    acc.f[*slot] = s;
                    acc.f[*slot + 1] = n;
                }
            }
        }
    }

    /// The output values of a fired window (`NaN` where the window held no value).
    pub fn finish(&self, acc: &Accumulator) -> Vec<f64> {
        self.ops
            .iter()
            .map(|op| match *op {
                Op::CountRows => acc.rows as f64,
                Op::CountValues { slot, .. } => acc.f[slot],
                Op::SumCount { slot, mean, .. } => {
                    let (s, n) = (acc.f[slot], acc.f[slot + 1]);
                    match (n > 0.0, mean) {
                        (false, _) => f64::NAN,
                        (true, true) => s / n,
                        (true, false) => s,
                    }
                }
                Op::Min { slot, .. } | Op::Max { slot, .. } => {
                    let v = acc.f[slot];
                    if v.is_infinite() { f64::NAN } else { v }
                }
                Op::First { slot, .. } | Op::Last { slot, .. } => acc.f[slot],
                Op::SumProduct { slot, .. } => {
                    if acc.f[slot + 1] > 0.0 {
                        acc.f[slot]
                    } else {
                        f64::NAN
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(specs: &[AggregateSpec]) -> AggregatePlan {
        AggregatePlan::compile(specs, &Schema::f1_bench()).unwrap()
    }

    #[test]
    fn first_and_last_are_by_event_time_with_ties_to_the_larger_value() {
        let p = plan(&[
            AggregateSpec::new(AggregateKind::First, Some("gear")),
            AggregateSpec::new(AggregateKind::Last, Some("gear")),
        ]);
        let mut acc = p.new_accumulator();
        let ts = vec![20, 10, 30, 10, 30];
        let mut cols = vec![Vec::new(); 6];
        cols[4] = vec![5.0, 3.0, 6.0, 4.0, 2.0];
        p.update(&mut acc, &ts, &cols, 0..2);
        p.update(&mut acc, &ts, &cols, 2..5);
        assert_eq!(p.finish(&acc), vec![4.0, 6.0]);
    }

    #[test]
    fn sum_product_and_mean() {
        let p = plan(&[
            AggregateSpec::new(AggregateKind::Count, None),
            AggregateSpec::new(AggregateKind::Mean, Some("speed")),
            AggregateSpec::sum_product(&["throttle", "rpm"], 0.5),
            AggregateSpec::new(AggregateKind::Min, Some("speed")),
        ]);
        let mut acc = p.new_accumulator();
        let ts = vec![1, 2];
        let mut cols = vec![Vec::new(); 6];
        cols[0] = vec![100.0, 200.0];
        cols[1] = vec![10.0, 20.0];
        cols[2] = vec![1.0, 2.0];
        p.update(&mut acc, &ts, &cols, 0..2);
        assert_eq!(
            p.finish(&acc),
            vec![2.0, 150.0, 0.5 * 10.0 + 0.5 * 40.0, 100.0]
        );
        assert_eq!(
            p.names(),
            ["count", "mean_speed", "sum_throttle_x_rpm", "min_speed"]
        );
    }

    #[test]
    fn unknown_channel_is_a_clear_error() {
        let err = AggregatePlan::compile(
            &[AggregateSpec::new(AggregateKind::Max, Some("boost"))],
            &Schema::f1_bench(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"boost\""), "{err}");
        assert!(err.contains("speed, rpm"), "{err}");
    }

    #[test]
    fn empty_window_values_are_missing() {
        let p = plan(&[
            AggregateSpec::new(AggregateKind::Max, Some("speed")),
            AggregateSpec::new(AggregateKind::Last, Some("gear")),
        ]);
        let acc = p.new_accumulator();
        assert!(p.finish(&acc).iter().all(|v| v.is_nan()));
    }
}
