//! Lap-time prediction: for each car, the expected time of each of its next
//! `horizon` laps from the lap-time model, with an error estimate.
//!
//! In: [`LapPredictInput`] — per car (struct of arrays) the estimated base
//! pace and its variance, compound, tyre age and race lap of the next lap,
//! and a horizon. Out: [`LapPredictOutput`] — `mean[car * horizon + h]` and
//! `err[car * horizon + h]` for lap `lap + h`. State: none.
//!
//! `mean` is [`LapModel::mean_lap_s`](crate::model::LapModel::mean_lap_s)
//! with the tyre `h` laps older and the race `h` laps on (the car stays out);
//! `err = √(noise² + var(base))`: the lap-to-lap noise of the model plus the
//! uncertainty of the car's pace estimate. The host uses `h = 0` (next lap);
//! longer horizons are the stint projection a strategy screen draws. Only
//! `+ × √` in a fixed order: the CUDA path is bit-identical.

use crate::model::param as p;

/// Struct-of-arrays input, one entry per car.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LapPredictInput {
    pub base_s: Vec<f64>,
    pub base_var: Vec<f64>,
    pub compound: Vec<u32>,
    /// Tyre age on the next lap (laps already run on the set).
    pub tyre_age: Vec<u32>,
    /// Race lap number of the next lap.
    pub lap: Vec<u32>,
    pub horizon: u32,
}

/// `n_cars * horizon` predictions, car-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LapPredictOutput {
    pub horizon: u32,
    pub mean: Vec<f64>,
    pub err: Vec<f64>,
}

/// An input the kernel cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LapPredictError {
    #[error("column {what} has {got} entries for {n} cars")]
    Column {
        what: &'static str,
        n: usize,
        got: usize,
    },
    #[error("compound index {compound} of car {car} is not a dry compound (0..3)")]
    Compound { car: usize, compound: u32 },
    #[error("{n} cars x horizon {horizon} is more outputs than this kernel indexes (u32)")]
    TooLarge { n: usize, horizon: u32 },
}

impl LapPredictInput {
    pub fn len(&self) -> usize {
        self.base_s.len()
    }
    pub fn is_empty(&self) -> bool {
        self.base_s.is_empty()
    }
    pub fn validate(&self) -> Result<(), LapPredictError> {
        let n = self.len();
        for (what, got) in [
            ("base_var", self.base_var.len()),
            ("compound", self.compound.len()),
            ("tyre_age", self.tyre_age.len()),
            ("lap", self.lap.len()),
        ] {
            if got != n {
                return Err(LapPredictError::Column { what, n, got });
            }
        }
        if let Some((car, &compound)) = self.compound.iter().enumerate().find(|(_, c)| **c > 2) {
            return Err(LapPredictError::Compound { car, compound });
        }
        if (n as u64) * u64::from(self.horizon) > u64::from(u32::MAX) {
            return Err(LapPredictError::TooLarge {
                n,
                horizon: self.horizon,
            });
        }
        Ok(())
    }
}

/// The CPU reference.
pub fn predict(
    input: &LapPredictInput,
    params: &[f64; p::LEN],
) -> Result<LapPredictOutput, LapPredictError> {
    input.validate()?;
    let h_n = input.horizon as usize;
    let cells = input.len() * h_n;
    let mut out = LapPredictOutput {
        horizon: input.horizon,
        mean: Vec::with_capacity(cells),
        err: Vec::with_capacity(cells),
    };
    for car in 0..input.len() {
        let c = input.compound[car] as usize;
        let err = (params[p::NOISE] * params[p::NOISE] + input.base_var[car]).sqrt();
        for h in 0..input.horizon {
            let age = f64::from(input.tyre_age[car]) + f64::from(h);
            let lap = f64::from(input.lap[car]) + f64::from(h);
            let over = age - params[p::LIFE + c];
            let cliff = if over > 0.0 {
                params[p::CLIFF] * over
            } else {
                0.0
            };
            let mean = (((input.base_s[car] + params[p::OFFSET + c]) + params[p::DEG + c] * age)
                + cliff)
                + params[p::FUEL] * lap;
            out.mean.push(mean);
            out.err.push(err);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Compound, LapModel};
    use proptest::prelude::*;

    proptest! {
        /// The kernel is the model's `mean_lap_s`, lap after lap.
        #[test]
        fn matches_the_model_lap_by_lap(
            cars in prop::collection::vec((80.0f64..110.0, 0.0f64..1.0, 0u32..3, 0u32..40, 1u32..70), 0..25),
            horizon in 0u32..30,
        ) {
            let m = LapModel::fitted();
            let input = LapPredictInput {
                base_s: cars.iter().map(|c| c.0).collect(),
                base_var: cars.iter().map(|c| c.1).collect(),
                compound: cars.iter().map(|c| c.2).collect(),
                tyre_age: cars.iter().map(|c| c.3).collect(),
                lap: cars.iter().map(|c| c.4).collect(),
                horizon,
            };
            let out = predict(&input, &m.params()).unwrap();
            prop_assert_eq!(out.mean.len(), cars.len() * horizon as usize);
            for (i, c) in cars.iter().enumerate() {
                for h in 0..horizon {
                    let k = i * horizon as usize + h as usize;
                    let want = m.mean_lap_s(c.0, Compound::from_index(c.2).unwrap(), f64::from(c.3 + h), f64::from(c.4 + h));
                    prop_assert_eq!(out.mean[k].to_bits(), want.to_bits());
                    prop_assert!((out.err[k] - (m.noise_s.powi(2) + c.1).sqrt()).abs() < 1e-12);
                    prop_assert!(out.err[k] >= m.noise_s);
                }
            }
        }
    }

    #[test]
    fn bad_columns_are_named() {
        let input = LapPredictInput {
            base_s: vec![90.0],
            compound: vec![4],
            base_var: vec![0.0],
            tyre_age: vec![0],
            lap: vec![],
            horizon: 1,
        };
        let e = predict(&input, &LapModel::fitted().params()).unwrap_err();
        assert!(
            e.to_string()
                .contains("column lap has 0 entries for 1 cars"),
            "{e}"
        );
    }
}
