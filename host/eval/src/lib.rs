//! # pitwall-eval
//!
//! How good the race-intelligence plugins are, measured on recorded races.
//!
//! * [`truth`]: the ground truth of a race from its OpenF1 tables and frames —
//!   on-track overtakes (pit-related position changes excluded), pit stops,
//!   SC/VSC periods;
//! * [`stories`]: story recall and precision against that truth;
//! * [`overtake`]: overtake-model samples, labels and metrics (AUC with a
//!   bootstrap interval, Brier score, calibration bins).

pub mod fit;
pub mod overtake;
pub mod race;
pub mod stories;
pub mod truth;
