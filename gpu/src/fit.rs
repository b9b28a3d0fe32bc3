//! Fitting the lap-time model ([`crate::model`]) to real laps, and judging it
//! on a race it was not fitted on.
//!
//! In: plain [`LapRow`]s (driver, lap, time, compound, tyre age, gap to the car
//! ahead at the line, flags), whatever reader produced them (the
//! `fit_lap_model` example reads OpenF1 tables with `pitwall-race`). Out: the
//! fitted shape parameters ([`FitResult`]) and an [`EvalReport`].
//!
//! The fit is ordinary least squares over green-flag racing laps (not lap 1,
//! no pit in/out lap, no SC/VSC), with one intercept per driver (its pace at
//! this circuit), compound offsets, a degradation slope per compound, a fuel
//! slope per race lap and a traffic term. It runs twice: the second pass
//! drops laps more than 3σ off the first (a spin, a damaged wing, blue flags)
//! so that they do not bend the slopes. The normal equations are solved by
//! Gaussian elimination with partial pivoting — 30-odd unknowns, no linear
//! algebra crate needed.
//!
//! The evaluation replays a held-out race lap by lap as the host would: the
//! prediction for lap `L` uses the fitted shape plus each car's pace
//! estimated ([`PaceEstimator`]) from its own green laps before `L` only.

use serde::Serialize;

use crate::model::{Compound, LapModel};
use crate::predict::PaceEstimator;

/// One real lap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LapRow {
    pub driver: u32,
    pub lap: u32,
    pub lap_s: f64,
    pub compound: Compound,
    /// Tyre age during the lap (0 on the out-lap of a new set).
    pub age: u32,
    /// Time to the car ahead on track when this lap started (any car, lapped
    /// or not), if known.
    pub gap_ahead_s: Option<f64>,
    /// No safety car or VSC during the lap.
    pub green: bool,
    pub pit_in: bool,
    pub pit_out: bool,
}

impl LapRow {
    /// A green-flag racing lap: what the model describes and is judged on.
    pub fn is_racing_lap(&self) -> bool {
        self.green && !self.pit_in && !self.pit_out && self.lap > 1 && self.lap_s.is_finite()
    }

    fn in_traffic(&self, gap_s: f64) -> bool {
        self.gap_ahead_s.is_some_and(|g| g < gap_s)
    }
}

/// A fit that could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error(
        "only {laps} green-flag racing laps; at least {need} are needed for {params} parameters"
    )]
    TooFewLaps {
        laps: usize,
        need: usize,
        params: usize,
    },
    #[error(
        "the normal equations are singular (column {column}): a parameter is not identified by these laps"
    )]
    Singular { column: usize },
}

/// The fitted parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitResult {
    pub deg_s_per_lap: [f64; 3],
    pub compound_offset_s: [f64; 3],
    pub fuel_s_per_lap: f64,
    pub traffic_s: f64,
    /// Residual standard deviation after the outlier pass.
    pub noise_s: f64,
    /// Per driver intercept (pace at the fitting circuit).
    pub base_s: Vec<(u32, f64)>,
    pub laps_used: usize,
    pub laps_dropped_as_outliers: usize,
    /// Laps per compound in the fit.
    pub laps_per_compound: [usize; 3],
}

impl FitResult {
    pub fn base(&self, driver: u32) -> Option<f64> {
        self.base_s
            .iter()
            .find(|(d, _)| *d == driver)
            .map(|(_, b)| *b)
    }

    /// The model's prediction for `row` with the fitted driver intercept.
    pub fn predict(&self, row: &LapRow, traffic_gap_s: f64) -> Option<f64> {
        let b = self.base(row.driver)?;
        let c = row.compound.index();
        let mut t = b
            + self.compound_offset_s[c]
            + self.deg_s_per_lap[c] * f64::from(row.age)
            + self.fuel_s_per_lap * f64::from(row.lap);
        if row.in_traffic(traffic_gap_s) {
            t += self.traffic_s;
        }
        Some(t)
    }
}

/// Least squares on the racing laps of `rows` (see the module docs).
pub fn fit(rows: &[LapRow], traffic_gap_s: f64) -> Result<FitResult, FitError> {
    let _span = tracing::info_span!("fit_lap_model", rows = rows.len()).entered();
    let racing: Vec<&LapRow> = rows.iter().filter(|r| r.is_racing_lap()).collect();
    let first = solve(&racing, traffic_gap_s)?;
    let kept: Vec<&LapRow> = racing
        .iter()
        .copied()
        .filter(|r| {
            first
                .predict(r, traffic_gap_s)
                .is_some_and(|p| (r.lap_s - p).abs() <= 3.0 * first.noise_s)
        })
        .collect();
    let mut second = solve(&kept, traffic_gap_s)?;
    second.laps_dropped_as_outliers = racing.len() - kept.len();
    Ok(second)
}

fn solve(rows: &[&LapRow], traffic_gap_s: f64) -> Result<FitResult, FitError> {
    let mut drivers: Vec<u32> = rows.iter().map(|r| r.driver).collect();
    drivers.sort_unstable();
    drivers.dedup();
    let nd = drivers.len();
    // Columns: drivers, offset MEDIUM, offset HARD, deg S/M/H, fuel, traffic.
    let np = nd + 7;
    if rows.len() < 2 * np {
        return Err(FitError::TooFewLaps {
            laps: rows.len(),
            need: 2 * np,
            params: np,
        });
    }
    let mut ata = vec![vec![0.0f64; np]; np];
    let mut atb = vec![0.0f64; np];
    let mut per_comp = [0usize; 3];
    let features = |r: &LapRow| -> Vec<(usize, f64)> {
        let d = drivers.binary_search(&r.driver).expect("driver listed");
        let c = r.compound.index();
        let mut f = vec![(d, 1.0)];
        if c > 0 {
            f.push((nd + c - 1, 1.0));
        }
        f.push((nd + 2 + c, f64::from(r.age)));
        f.push((nd + 5, f64::from(r.lap)));
        if r.in_traffic(traffic_gap_s) {
            f.push((nd + 6, 1.0));
        }
        f
    };
    for r in rows {
        per_comp[r.compound.index()] += 1;
        let f = features(r);
        for &(i, xi) in &f {
            atb[i] += xi * r.lap_s;
            for &(j, xj) in &f {
                ata[i][j] += xi * xj;
            }
        }
    }
    // A compound without laps leaves its columns empty: a tiny ridge keeps the
    // system solvable and those parameters at 0.
    for (i, row) in ata.iter_mut().enumerate() {
        row[i] += 1e-9;
    }
    let beta = gauss(ata, atb)?;
    let mut res = FitResult {
        deg_s_per_lap: [beta[nd + 2], beta[nd + 3], beta[nd + 4]],
        compound_offset_s: [0.0, beta[nd], beta[nd + 1]],
        fuel_s_per_lap: beta[nd + 5],
        traffic_s: beta[nd + 6],
        noise_s: 0.0,
        base_s: drivers
            .iter()
            .copied()
            .zip(beta[..nd].iter().copied())
            .collect(),
        laps_used: rows.len(),
        laps_dropped_as_outliers: 0,
        laps_per_compound: per_comp,
    };
    let sse: f64 = rows
        .iter()
        .map(|r| (r.lap_s - res.predict(r, traffic_gap_s).expect("fitted driver")).powi(2))
        .sum();
    res.noise_s = (sse / (rows.len() - np) as f64).sqrt();
    Ok(res)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
fn gauss(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>, FitError> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .expect("non-empty range");
        if a[piv][col].abs() < 1e-12 {
            return Err(FitError::Singular { column: col });
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..n {
            let f = a[r][col] / a[col][col];
            if f != 0.0 {
                let pivot_row = a[col].clone();
                for (x, p) in a[r][col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * p;
                }
                b[r] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Ok(x)
}

/// Race time lost per pit stop: for each in-lap followed by the same driver's
/// out-lap, `(in − predicted) + (out − predicted)`, green laps only; the
/// median (robust to a slow stop). `None` without such a pair.
pub fn pit_loss(fit: &FitResult, rows: &[LapRow], traffic_gap_s: f64) -> Option<(f64, usize)> {
    let mut losses: Vec<f64> = rows
        .iter()
        .filter(|r| r.pit_in && r.green)
        .filter_map(|i| {
            let o = rows
                .iter()
                .find(|o| o.driver == i.driver && o.lap == i.lap + 1 && o.pit_out && o.green)?;
            Some(
                (i.lap_s - fit.predict(i, traffic_gap_s)?)
                    + (o.lap_s - fit.predict(o, traffic_gap_s)?),
            )
        })
        .collect();
    if losses.is_empty() {
        return None;
    }
    losses.sort_by(f64::total_cmp);
    Some((losses[losses.len() / 2], losses.len()))
}

/// The held-out evaluation (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Racing laps predicted.
    pub laps: usize,
    /// Racing laps not predicted: no lap of any car recorded yet.
    pub laps_without_pace: usize,
    pub rmse_s: f64,
    pub mae_s: f64,
    pub median_abs_s: f64,
    /// Mean of actual − predicted.
    pub bias_s: f64,
    /// RMSE after dropping laps more than 3 s off (incidents, traffic jams).
    pub rmse_within_3s: f64,
    pub laps_within_3s: usize,
    /// Share of laps within the predicted error (±1 error estimate).
    pub within_err: f64,
    /// Share within ±0.2 s, the seed's claim.
    pub within_0_2s: f64,
}

/// Replays `rows` (one race) lap by lap with `model`, predicting each racing
/// lap from the laps before it (see the module docs).
pub fn evaluate_online(model: &LapModel, rows: &[LapRow], window: usize, prior: f64) -> EvalReport {
    let mut pace = PaceEstimator::new(window, prior);
    let max_lap = rows.iter().map(|r| r.lap).max().unwrap_or(0);
    let mut errs = Vec::new();
    let mut covered = 0usize;
    let mut without = 0usize;
    let traffic = |r: &LapRow| {
        if r.in_traffic(model.traffic_gap_s) {
            model.traffic_s
        } else {
            0.0
        }
    };
    for lap in 1..=max_lap {
        let this: Vec<&LapRow> = rows
            .iter()
            .filter(|r| r.lap == lap && r.is_racing_lap())
            .collect();
        for r in &this {
            match pace.base(r.driver, model.noise_s) {
                Some((b, var)) => {
                    let pred = model.mean_lap_s(b, r.compound, f64::from(r.age), f64::from(r.lap))
                        + traffic(r);
                    let e = r.lap_s - pred;
                    if e.abs() <= (model.noise_s * model.noise_s + var).sqrt() {
                        covered += 1;
                    }
                    errs.push(e);
                }
                None => without += 1,
            }
        }
        for r in this {
            pace.record(
                model,
                r.driver,
                r.lap_s - traffic(r),
                r.compound,
                r.age,
                r.lap,
            );
        }
    }
    let n = errs.len().max(1) as f64;
    let rmse = (errs.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    let mae = errs.iter().map(|e| e.abs()).sum::<f64>() / n;
    let bias = errs.iter().sum::<f64>() / n;
    let mut abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let in3: Vec<f64> = errs.iter().copied().filter(|e| e.abs() <= 3.0).collect();
    EvalReport {
        laps: errs.len(),
        laps_without_pace: without,
        rmse_s: rmse,
        mae_s: mae,
        median_abs_s: abs.get(abs.len() / 2).copied().unwrap_or(f64::NAN),
        bias_s: bias,
        rmse_within_3s: (in3.iter().map(|e| e * e).sum::<f64>() / in3.len().max(1) as f64).sqrt(),
        laps_within_3s: in3.len(),
        within_err: covered as f64 / n,
        within_0_2s: abs.iter().filter(|e| **e <= 0.2).count() as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    /// Laps generated from known parameters (with the crate's own noise) are
    /// fitted back to those parameters.
    #[test]
    fn recovers_known_parameters() {
        let truth = ([0.08, 0.05, 0.03], [0.0, 0.4, 0.9], -0.06, 0.5);
        let mut rows = vec![];
        for d in 0..10u32 {
            for lap in 1..=60u32 {
                let (compound, age) = match lap {
                    1..=15 => (Compound::Soft, lap - 1),
                    16..=38 => (Compound::Medium, lap - 16),
                    _ => (Compound::Hard, lap - 39),
                };
                let (compound, age) = if d % 2 == 0 && lap > 15 {
                    (Compound::Hard, lap - 16)
                } else {
                    (compound, age)
                };
                let c = compound.index();
                let gap = if (d + lap) % 4 == 0 {
                    Some(0.5)
                } else {
                    Some(3.0)
                };
                let z = rng::approx_normal(rng::draw(1, d, lap, 0, 0));
                let t = 95.0
                    + 0.1 * f64::from(d)
                    + truth.1[c]
                    + truth.0[c] * f64::from(age)
                    + truth.2 * f64::from(lap)
                    + if gap == Some(0.5) { truth.3 } else { 0.0 }
                    + 0.2 * z;
                rows.push(LapRow {
                    driver: d,
                    lap,
                    lap_s: t,
                    compound,
                    age,
                    gap_ahead_s: gap,
                    green: true,
                    pit_in: false,
                    pit_out: false,
                });
            }
        }
        let f = fit(&rows, 1.0).unwrap();
        for c in 0..3 {
            assert!((f.deg_s_per_lap[c] - truth.0[c]).abs() < 0.01, "{f:?}");
            assert!((f.compound_offset_s[c] - truth.1[c]).abs() < 0.15, "{f:?}");
        }
        assert!((f.fuel_s_per_lap - truth.2).abs() < 0.01, "{f:?}");
        assert!((f.traffic_s - truth.3).abs() < 0.05, "{f:?}");
        assert!((f.noise_s - 0.2).abs() < 0.03, "{f:?}");
        assert!((f.base(3).unwrap() - 95.3).abs() < 0.3, "{f:?}");
    }

    #[test]
    fn too_few_laps_is_an_error() {
        let e = fit(&[], 1.0).unwrap_err();
        assert!(
            e.to_string().contains("only 0 green-flag racing laps"),
            "{e}"
        );
    }
}
