//! Segmented window reduction: per (car, channel, window) count, sum, mean,
//! min and max, plus a scaled sum of the product of two channels.
//!
//! In: columnar telemetry for many cars, rows in any order — a timestamp
//! (event-time ms) and a car id per row, and one `f64` column per channel
//! (`NaN` = missing). Out: one set of statistics per (car, window) segment and
//! channel. State: none; it is a pure function.
//!
//! This is the kernel behind per-window aggregates when many cars (or many
//! sessions) are reduced at once, e.g. re-aggregating a whole recorded race
//! at a new window size. The host engine's streaming aggregates
//! (`pitwall-engine`'s `aggregate` module) follow the same rules, so the two
//! agree value for value.
//!
//! # Rules
//!
//! * A row at `ts` belongs to the window starting at `floor(ts / w) * w`
//!   (floor division: `-1` ms falls in the window starting at `-w`).
//! * Within a segment, values are folded **strictly in input order** (rows in
//!   ascending input index), starting from `+0.0`, so results do not depend on
//!   how rows of different segments interleave, and a replay is bit-identical.
//! * `NaN` values are skipped by every statistic of that channel; `count` is
//!   the number of values present. A channel with no value in a segment has
//!   `count = 0` and `NaN` for sum, mean, min and max (as the engine writes
//!   "no value").
//! * `min`/`max` keep the first of equal values (`v < min`, `v > max`), so the
//!   sign of a zero is decided by input order; CUDA must use the same compare,
//!   not `fmin`/`fmax`.
//! * `mean = sum / count`, one IEEE division.
//! * The product statistic is `Σ factor · (a · b)` over rows where `a · b` is
//!   not `NaN` (both present; `0 · ∞` counts as missing), with its own count,
//!   and `NaN` when no row qualifies. The expression is evaluated exactly as
//!   written (two roundings, no fused multiply-add).
//!
//! # Layout (struct of arrays, one device buffer per field)
//!
//! [`SegmentLayout`] is computed once per input (timestamps, cars, window
//! size) and can be reused for any set of channels over the same rows:
//!
//! ```text
//! rows[n_rows]                u32  input row indices, grouped by segment; ascending within one
//! seg_offsets[n_segments + 1] u32  segment s covers rows[seg_offsets[s] .. seg_offsets[s + 1]]
//! seg_car[n_segments]         u32  the segment's car
//! seg_window_start[n_segments] i64 the segment's window start, ms
//! ```
//!
//! Segments are ordered by `(car, window_start)`. When the input is already
//! sorted that way (the common case: one car's rows in time order),
//! `rows` is the identity and building the layout is one linear pass.
//!
//! Channels go to the device as one column-major buffer, channel `c` at
//! `c * n_rows`. [`ReduceOutput`] is channel-major: statistic `x` of channel
//! `c` in segment `s` is `x[c * n_segments + s]`, so threads
//! `c * n_segments + s` (one per segment and channel, each folding its
//! segment's rows in order) write consecutive addresses. The product
//! statistic has one entry per segment.
//!
//! # Tolerance of the CUDA path
//!
//! The CUDA kernel (issue 7) must give exactly the same `count`, `min`, `max`
//! and segment table. If it folds each segment in order as above (one thread
//! per segment and channel, `--fmad=false`), sums and means are bit-identical
//! too. If it splits long segments across threads, each sum may differ from
//! this reference by at most [`sum_tolerance`]`(count, Σ|xᵢ|)` and each mean
//! by that divided by `count` plus one rounding; `Σ|xᵢ|` is this same kernel
//! run on the absolute values.

use self::ReduceError::*;

/// A bad input to the segmented reduction.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReduceError {
    #[error("window size must be a positive number of milliseconds, got {window_ms}")]
    WindowSize { window_ms: i64 },
    #[error(
        "{what} has {got} rows but the timestamps have {expected}; every column needs one value per row"
    )]
    Length {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error(
        "{rows} rows is more than this kernel indexes ({} at most); split the input",
        u32::MAX
    )]
    TooManyRows { rows: usize },
    #[error(
        "timestamp {ts} ms (row {row}) has no window start of size {window_ms} ms within the i64 range"
    )]
    WindowOverflow { row: usize, ts: i64, window_ms: i64 },
    #[error("product channel {index} does not exist; the input has {channels} channels")]
    ProductChannel { index: usize, channels: usize },
    #[error("product factor must be a finite number, got {factor}")]
    ProductFactor { factor: f64 },
}

/// The start of the window of size `window_ms` holding `ts` (floor division).
pub fn window_start(ts: i64, window_ms: i64) -> Option<i64> {
    ts.div_euclid(window_ms).checked_mul(window_ms)
}

/// The bound within which a differently ordered sum of `count` values whose
/// absolute values add up to `abs_sum` can differ from the in-order sum:
/// `count · ε · abs_sum`.
///
/// Each order's error is at most `γₙ₋₁ · Σ|xᵢ|` with `γₖ = k·u / (1 − k·u)` and
/// `u = ε/2`, so two orders differ by at most about `(n − 1) · ε · Σ|xᵢ|`; the
/// extra `ε` covers the `1/(1 − k·u)` term for any realistic `n`.
pub fn sum_tolerance(count: u32, abs_sum: f64) -> f64 {
    f64::from(count) * f64::EPSILON * abs_sum
}

/// The scaled product of two channels to sum per segment: `Σ factor · (a · b)`,
/// e.g. `throttle · rpm · dt` as a fuel-burn proxy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProductSpec {
    pub a: usize,
    pub b: usize,
    pub factor: f64,
}

/// Rows grouped into (car, window) segments. See the module docs for the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLayout {
    window_ms: i64,
    rows: Vec<u32>,
    seg_offsets: Vec<u32>,
    seg_car: Vec<u32>,
    seg_window_start: Vec<i64>,
}

impl SegmentLayout {
    /// Groups rows (timestamp `ts_ms[i]`, car `car[i]`) into segments of
    /// `window_ms`-wide tumbling windows.
    pub fn build(ts_ms: &[i64], car: &[u32], window_ms: i64) -> Result<Self, ReduceError> {
        if window_ms <= 0 {
            return Err(WindowSize { window_ms });
        }
        let n = ts_ms.len();
        if car.len() != n {
            return Err(Length {
                what: "the car id column".into(),
                expected: n,
                got: car.len(),
            });
        }
        if u32::try_from(n).is_err() {
            return Err(TooManyRows { rows: n });
        }
        let mut starts = Vec::with_capacity(n);
        let mut sorted = true;
        for (row, &ts) in ts_ms.iter().enumerate() {
            let w = window_start(ts, window_ms).ok_or(WindowOverflow { row, ts, window_ms })?;
            if row > 0 && (car[row - 1], starts[row - 1]) > (car[row], w) {
                sorted = false;
            }
            starts.push(w);
        }
        // Row indices fit u32 (checked above).
        let mut rows: Vec<u32> = (0..n as u32).collect();
        if !sorted {
            // The row index in the key makes the unstable sort stable: input order within a segment.
            rows.sort_unstable_by_key(|&r| (car[r as usize], starts[r as usize], r));
        }
        let mut seg_offsets = Vec::new();
        let mut seg_car = Vec::new();
        let mut seg_window_start = Vec::new();
        for (i, &r) in rows.iter().enumerate() {
            let key = (car[r as usize], starts[r as usize]);
            if seg_car
                .last()
                .copied()
                .zip(seg_window_start.last().copied())
                != Some(key)
            {
                seg_offsets.push(i as u32);
                seg_car.push(key.0);
                seg_window_start.push(key.1);
            }
        }
        seg_offsets.push(n as u32);
        Ok(SegmentLayout {
            window_ms,
            rows,
            seg_offsets,
            seg_car,
            seg_window_start,
        })
    }

    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }
    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }
    pub fn n_segments(&self) -> usize {
        self.seg_car.len()
    }
    /// Input row indices grouped by segment, ascending within each.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }
    /// `n_segments + 1` offsets into [`rows`](Self::rows).
    pub fn seg_offsets(&self) -> &[u32] {
        &self.seg_offsets
    }
    pub fn seg_car(&self) -> &[u32] {
        &self.seg_car
    }
    pub fn seg_window_start(&self) -> &[i64] {
        &self.seg_window_start
    }
    /// The input rows of segment `seg`, in input order.
    pub fn segment_rows(&self, seg: usize) -> &[u32] {
        &self.rows[self.seg_offsets[seg] as usize..self.seg_offsets[seg + 1] as usize]
    }
    /// The segment of `car`'s window starting at `window_start`, if it has rows.
    pub fn find_segment(&self, car: u32, window_start: i64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.n_segments());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match (self.seg_car[mid], self.seg_window_start[mid]).cmp(&(car, window_start)) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// The statistics of one channel in one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelStats {
    pub count: u32,
    pub sum: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// The product statistic, one entry per segment.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductOutput {
    pub spec: ProductSpec,
    /// Rows where `a · b` is not `NaN`.
    pub count: Vec<u32>,
    /// `Σ factor · (a · b)` over those rows; `NaN` where `count` is 0.
    pub sum: Vec<f64>,
}

/// The result: channel-major arrays, statistic `x` of channel `c` in segment
/// `s` at `x[c * n_segments + s]`. See the module docs for the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOutput {
    pub n_segments: usize,
    pub n_channels: usize,
    pub count: Vec<u32>,
    pub sum: Vec<f64>,
    pub mean: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub product: Option<ProductOutput>,
}

impl ReduceOutput {
    /// Index of (segment, channel) in the statistic arrays.
    pub fn index(&self, seg: usize, ch: usize) -> usize {
        assert!(
            seg < self.n_segments && ch < self.n_channels,
            "segment {seg}, channel {ch} out of range"
        );
        ch * self.n_segments + seg
    }

    pub fn stats(&self, seg: usize, ch: usize) -> ChannelStats {
        let i = self.index(seg, ch);
        ChannelStats {
            count: self.count[i],
            sum: self.sum[i],
            mean: self.mean[i],
            min: self.min[i],
            max: self.max[i],
        }
    }
}

/// Checks that `channels` and `product` fit `layout` (both paths call it).
pub fn validate(
    layout: &SegmentLayout,
    channels: &[&[f64]],
    product: Option<ProductSpec>,
) -> Result<(), ReduceError> {
    let n_rows = layout.n_rows();
    for (c, col) in channels.iter().enumerate() {
        if col.len() != n_rows {
            return Err(Length {
                what: format!("channel {c}"),
                expected: n_rows,
                got: col.len(),
            });
        }
    }
    if let Some(p) = product {
        for index in [p.a, p.b] {
            if index >= channels.len() {
                return Err(ProductChannel {
                    index,
                    channels: channels.len(),
                });
            }
        }
        if !p.factor.is_finite() {
            return Err(ProductFactor { factor: p.factor });
        }
    }
    Ok(())
}

/// Reduces `channels` (each one value per row of `layout`) per segment.
pub fn segmented_reduce(
    layout: &SegmentLayout,
    channels: &[&[f64]],
    product: Option<ProductSpec>,
) -> Result<ReduceOutput, ReduceError> {
    validate(layout, channels, product)?;
    let _span = tracing::debug_span!(
        "reduce_cpu",
        rows = layout.n_rows(),
        segments = layout.n_segments(),
        channels = channels.len()
    )
    .entered();
    let n_segments = layout.n_segments();
    let cells = n_segments * channels.len();
    let mut out = ReduceOutput {
        n_segments,
        n_channels: channels.len(),
        count: Vec::with_capacity(cells),
        sum: Vec::with_capacity(cells),
        mean: Vec::with_capacity(cells),
        min: Vec::with_capacity(cells),
        max: Vec::with_capacity(cells),
        product: None,
    };
    // One "thread" per (channel, segment), in output order.
    for col in channels {
        for seg in 0..n_segments {
            let (mut n, mut s) = (0u32, 0.0f64);
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &r in layout.segment_rows(seg) {
                let v = col[r as usize];
                if v.is_nan() {
                    continue;
                }
                n += 1;
                s += v;
                if v < lo {
                    lo = v;
                }
                if v > hi {
                    hi = v;
                }
            }
            let empty = n == 0;
            out.count.push(n);
            out.sum.push(if empty { f64::NAN } else { s });
            out.mean
                .push(if empty { f64::NAN } else { s / f64::from(n) });
            out.min.push(if empty { f64::NAN } else { lo });
            out.max.push(if empty { f64::NAN } else { hi });
        }
    }
    if let Some(spec) = product {
        let (a, b) = (channels[spec.a], channels[spec.b]);
        let mut count = Vec::with_capacity(n_segments);
        let mut sum = Vec::with_capacity(n_segments);
        for seg in 0..n_segments {
            let (mut n, mut s) = (0u32, 0.0f64);
            for &r in layout.segment_rows(seg) {
                let p = a[r as usize] * b[r as usize];
                if !p.is_nan() {
                    n += 1;
                    s += spec.factor * p;
                }
            }
            count.push(n);
            sum.push(if n == 0 { f64::NAN } else { s });
        }
        out.product = Some(ProductOutput { spec, count, sum });
    }
    Ok(out)
}

/// Columnar input for [`reduce`]: one timestamp and car id per row, one
/// column per channel.
#[derive(Debug, Clone, Copy)]
pub struct ReduceInput<'a> {
    /// Event time of each row, ms.
    pub ts_ms: &'a [i64],
    /// Dense car id of each row (the engine's key id).
    pub car: &'a [u32],
    /// One column per channel, one value per row; `NaN` = missing.
    pub channels: &'a [&'a [f64]],
}

/// Builds the layout and reduces in one call; returns both, since the layout
/// names the segments the output is indexed by.
pub fn reduce(
    input: &ReduceInput<'_>,
    window_ms: i64,
    product: Option<ProductSpec>,
) -> Result<(SegmentLayout, ReduceOutput), ReduceError> {
    let layout = SegmentLayout::build(input.ts_ms, input.car, window_ms)?;
    let out = segmented_reduce(&layout, input.channels, product)?;
    Ok((layout, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const NAN: f64 = f64::NAN;

    #[test]
    fn worked_example() {
        // Two cars interleaved, windows of 1 s, one row before time zero.
        let ts = [-1, 0, 500, 999, 1000, 10, 20];
        let car = [0, 0, 0, 0, 0, 1, 1];
        let speed = [5.0, 100.0, NAN, 300.0, 50.0, 7.0, 9.0];
        let throttle = [NAN, 0.5, 1.0, 1.0, NAN, NAN, NAN];
        let input = ReduceInput {
            ts_ms: &ts,
            car: &car,
            channels: &[&speed, &throttle],
        };
        let product = ProductSpec {
            a: 0,
            b: 1,
            factor: 2.0,
        };
        let (layout, out) = reduce(&input, 1000, Some(product)).unwrap();
        assert_eq!(layout.seg_car(), [0, 0, 0, 1]);
        assert_eq!(layout.seg_window_start(), [-1000, 0, 1000, 0]);
        assert_eq!(layout.seg_offsets(), [0, 1, 4, 5, 7]);
        assert_eq!(
            layout.rows(),
            [0, 1, 2, 3, 4, 5, 6],
            "already sorted: identity"
        );
        let s = out.stats(1, 0);
        assert_eq!(
            (s.count, s.sum, s.mean, s.min, s.max),
            (2, 400.0, 200.0, 100.0, 300.0)
        );
        let t = out.stats(0, 1);
        assert_eq!(t.count, 0);
        assert!(t.sum.is_nan() && t.mean.is_nan() && t.min.is_nan() && t.max.is_nan());
        assert_eq!(out.stats(3, 0).sum, 16.0);
        let p = out.product.unwrap();
        assert_eq!(p.count, [0, 2, 0, 0]);
        assert_eq!(p.sum[1], 2.0 * (100.0 * 0.5) + 2.0 * (300.0 * 1.0));
        assert!(p.sum[0].is_nan());
        assert_eq!(layout.find_segment(0, 1000), Some(2));
        assert_eq!(layout.find_segment(1, 1000), None);
    }

    #[test]
    fn unsorted_rows_fold_in_input_order() {
        let ts = [1500, 100, 1200, 200, 50];
        let car = [0, 1, 0, 0, 1];
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        let layout = SegmentLayout::build(&ts, &car, 1000).unwrap();
        assert_eq!(layout.seg_car(), [0, 0, 1]);
        assert_eq!(layout.seg_window_start(), [0, 1000, 0]);
        assert_eq!(layout.rows(), [3, 0, 2, 1, 4]);
        let out = segmented_reduce(&layout, &[&v], None).unwrap();
        assert_eq!(out.sum, [4.0, 4.0, 7.0]);
        // Input order, not time order: (1 + 1e16) + -1e16 is 0 (1e16 + 1 rounds
        // back to 1e16); in time order, (1e16 + -1e16) + 1 would be 1.
        let ts = [30, 10, 20];
        let big = [1.0, 1e16, -1e16];
        let out = reduce(
            &ReduceInput {
                ts_ms: &ts,
                car: &[0, 0, 0],
                channels: &[&big],
            },
            1000,
            None,
        )
        .unwrap()
        .1;
        assert_eq!(out.sum, [0.0]);
    }

    #[test]
    fn equal_extremes_keep_the_first() {
        let out = reduce(
            &ReduceInput {
                ts_ms: &[0, 1],
                car: &[0, 0],
                channels: &[&[-0.0, 0.0], &[0.0, -0.0]],
            },
            10,
            None,
        )
        .unwrap()
        .1;
        assert!(out.min[0].is_sign_negative() && out.max[0].is_sign_negative());
        assert!(out.min[1].is_sign_positive() && out.max[1].is_sign_positive());
        // Infinite values are values, not "empty".
        let out = reduce(
            &ReduceInput {
                ts_ms: &[0],
                car: &[0],
                channels: &[&[f64::INFINITY]],
            },
            10,
            None,
        )
        .unwrap()
        .1;
        assert_eq!(
            (out.min[0], out.max[0], out.count[0]),
            (f64::INFINITY, f64::INFINITY, 1)
        );
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let e = SegmentLayout::build(&[0], &[0], 0).unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
        let e = SegmentLayout::build(&[0, 1], &[0], 10).unwrap_err();
        assert!(e.to_string().contains("car id column has 1 rows"), "{e}");
        let e = SegmentLayout::build(&[5, i64::MIN], &[0, 0], 1000).unwrap_err();
        assert_eq!(
            e,
            WindowOverflow {
                row: 1,
                ts: i64::MIN,
                window_ms: 1000
            }
        );
        assert!(SegmentLayout::build(&[i64::MIN, i64::MAX], &[0, 0], 1).is_ok());
        assert_eq!(
            window_start(i64::MAX, 1000),
            Some(i64::MAX - i64::MAX % 1000)
        );
        let layout = SegmentLayout::build(&[0, 1], &[0, 0], 10).unwrap();
        let e = segmented_reduce(&layout, &[&[1.0, 2.0], &[1.0]], None).unwrap_err();
        assert!(e.to_string().starts_with("channel 1 has 1 rows"), "{e}");
        let p = |a, b, factor| Some(ProductSpec { a, b, factor });
        let col: &[f64] = &[1.0, 2.0];
        assert!(matches!(
            segmented_reduce(&layout, &[col], p(0, 1, 1.0)),
            Err(ProductChannel {
                index: 1,
                channels: 1
            })
        ));
        assert!(matches!(
            segmented_reduce(&layout, &[col], p(0, 0, NAN)),
            Err(ProductFactor { .. })
        ));
    }

    #[test]
    fn empty_input_has_no_segments() {
        let (layout, out) = reduce(
            &ReduceInput {
                ts_ms: &[],
                car: &[],
                channels: &[&[]],
            },
            1000,
            None,
        )
        .unwrap();
        assert_eq!(layout.n_segments(), 0);
        assert_eq!(layout.seg_offsets(), [0]);
        assert!(out.count.is_empty());
    }

    // ---- naive per-row reference ----------------------------------------

    #[derive(Default, Clone)]
    struct Naive {
        count: u32,
        sum: f64,
        min: Option<f64>,
        max: Option<f64>,
    }

    /// Floor division written with truncating `/` and a correction, so it
    /// does not share `div_euclid` with the kernel.
    fn floor_start(ts: i64, w: i64) -> i64 {
        let q = ts / w;
        let q = if ts % w != 0 && ts < 0 { q - 1 } else { q };
        q * w
    }

    type NaiveOut = BTreeMap<(u32, i64), (Vec<Naive>, (u32, f64))>;

    /// One pass over the rows in input order, accumulating into a map.
    fn naive(
        ts: &[i64],
        car: &[u32],
        chans: &[Vec<f64>],
        w: i64,
        product: Option<ProductSpec>,
    ) -> NaiveOut {
        let mut map: NaiveOut = BTreeMap::new();
        for i in 0..ts.len() {
            let e = map
                .entry((car[i], floor_start(ts[i], w)))
                .or_insert_with(|| (vec![Naive::default(); chans.len()], (0, 0.0)));
            for (c, col) in chans.iter().enumerate() {
                let v = col[i];
                if v.is_nan() {
                    continue;
                }
                let acc = &mut e.0[c];
                acc.count += 1;
                acc.sum += v;
                acc.min = Some(acc.min.map_or(v, |m| if v < m { v } else { m }));
                acc.max = Some(acc.max.map_or(v, |m| if v > m { v } else { m }));
            }
            if let Some(p) = product {
                let x = chans[p.a][i] * chans[p.b][i];
                if !x.is_nan() {
                    e.1.0 += 1;
                    e.1.1 += p.factor * x;
                }
            }
        }
        map
    }

    fn same(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            3 => -1e6f64..1e6,
            1 => Just(NAN),
            1 => Just(0.0),
            1 => Just(-0.0),
            1 => (-5i32..5).prop_map(f64::from),
            1 => prop::num::f64::NORMAL,
        ]
    }

    prop_compose! {
        fn telemetry()(n in 0usize..300, n_ch in 1usize..4)
            (ts in prop::collection::vec(-20_000i64..20_000, n),
             car in prop::collection::vec(0u32..4, n),
             chans in prop::collection::vec(prop::collection::vec(value(), n), n_ch),
             w in 1i64..3000,
             product in prop::option::of((0..n_ch, 0..n_ch, -10.0f64..10.0)),
             sort in any::<bool>())
            -> (Vec<i64>, Vec<u32>, Vec<Vec<f64>>, i64, Option<ProductSpec>)
        {
            let (mut ts, mut car) = (ts, car);
            if sort {
                // Exercise the already-sorted path: by car, then time.
                let mut keyed: Vec<_> = car.iter().copied().zip(ts.iter().copied()).collect();
                keyed.sort();
                (car, ts) = keyed.into_iter().unzip();
            }
            let product = product.map(|(a, b, factor)| ProductSpec { a, b, factor });
            (ts, car, chans, w, product)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn matches_the_naive_per_row_reference((ts, car, chans, w, product) in telemetry()) {
            let cols: Vec<&[f64]> = chans.iter().map(Vec::as_slice).collect();
            let (layout, out) = reduce(
                &ReduceInput { ts_ms: &ts, car: &car, channels: &cols }, w, product,
            ).unwrap();
            let want = naive(&ts, &car, &chans, w, product);

            // Same segments, in (car, window) order, covering every row once.
            let keys: Vec<(u32, i64)> = want.keys().copied().collect();
            let got: Vec<(u32, i64)> = layout.seg_car().iter().copied()
                .zip(layout.seg_window_start().iter().copied()).collect();
            prop_assert_eq!(&got, &keys);
            let mut seen = layout.rows().to_vec();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..ts.len() as u32).collect::<Vec<_>>());
            for seg in 0..layout.n_segments() {
                let rows = layout.segment_rows(seg);
                prop_assert!(rows.windows(2).all(|p| p[0] < p[1]), "input order within a segment");
                prop_assert!(rows.iter().all(|&r| car[r as usize] == layout.seg_car()[seg]));
            }

            for (seg, (key, (accs, prod))) in want.iter().enumerate() {
                prop_assert_eq!(layout.find_segment(key.0, key.1), Some(seg));
                for (c, acc) in accs.iter().enumerate() {
                    let s = out.stats(seg, c);
                    prop_assert_eq!(s.count, acc.count);
                    if acc.count == 0 {
                        prop_assert!(s.sum.is_nan() && s.mean.is_nan() && s.min.is_nan() && s.max.is_nan());
                    } else {
                        prop_assert!(same(s.sum, acc.sum), "sum {} vs {}", s.sum, acc.sum);
                        prop_assert!(same(s.mean, acc.sum / f64::from(acc.count)));
                        prop_assert!(same(s.min, acc.min.unwrap()));
                        prop_assert!(same(s.max, acc.max.unwrap()));
                    }
                }
                match &out.product {
                    Some(p) => {
                        prop_assert_eq!(p.count[seg], prod.0);
                        if prod.0 == 0 {
                            prop_assert!(p.sum[seg].is_nan());
                        } else {
                            prop_assert!(same(p.sum[seg], prod.1));
                        }
                    }
                    None => prop_assert!(product.is_none()),
                }
            }
        }

        /// The stated tolerance holds for a sum in another order (reversed,
        /// and pairwise as a GPU tree reduction would do it), with Σ|x| taken
        /// from the kernel itself run on absolute values.
        #[test]
        fn reordered_sums_stay_within_the_stated_tolerance(
            vals in prop::collection::vec(prop_oneof![-1e6f64..1e6, -1.0f64..1.0, Just(NAN)], 1..500),
        ) {
            let n = vals.len();
            let ts = vec![0i64; n];
            let car = vec![0u32; n];
            let abs: Vec<f64> = vals.iter().map(|v| v.abs()).collect();
            let (_, out) = reduce(
                &ReduceInput { ts_ms: &ts, car: &car, channels: &[&vals, &abs] }, 1, None,
            ).unwrap();
            prop_assume!(out.count[0] > 0);
            let present: Vec<f64> = vals.iter().copied().filter(|v| !v.is_nan()).collect();
            fn pairwise(x: &[f64]) -> f64 {
                match x.len() {
                    0 => 0.0,
                    1 => x[0],
                    n => pairwise(&x[..n / 2]) + pairwise(&x[n / 2..]),
                }
            }
            let reversed: f64 = present.iter().rev().sum();
            let tol = sum_tolerance(out.count[0], out.sum[1]);
            prop_assert!((reversed - out.sum[0]).abs() <= tol);
            prop_assert!((pairwise(&present) - out.sum[0]).abs() <= tol);
        }
    }
}
