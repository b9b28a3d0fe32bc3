//! # pitwall-gpu
//!
//! Pitwall's kernels and the choice of where they run.
//!
//! * [`GpuSetting`], [`Backend`], [`select_backend`] and [`detect_backend`]:
//!   the user's `auto | on | off` meets what the machine has
//!   ([`cuda::probe`], also the `pitwall gpu info` report).
//! * [`cpu`]: the CPU reference implementation of every kernel — the
//!   [segmented window reduction](cpu::segmented_reduce), the
//!   [race-strategy Monte Carlo](cpu::monte_carlo) and the
//!   [lap-time prediction](cpu::lap_predict). It runs everywhere (CI has no
//!   GPU) and is what the CUDA path is tested against.
//! * [`cuda`]: the same kernels in CUDA C (`gpu/kernels/`), compiled at run
//!   time with NVRTC and loaded dynamically through `cudarc`, so nothing of
//!   CUDA is needed to build or test.
//! * [`model`]: the lap-time model, fitted from real races (`gpu/models/`),
//!   and [`fit`], the least-squares fit and its held-out evaluation.
//! * [`predict`]: the host hook — a [`RaceSnapshot`] in, per-car P(win),
//!   P(podium), expected position, best pit lap and gain, next-lap time out,
//!   as frame `KernelResult`s.
//! * [`rng`]: Philox4x32-10, identical in Rust and CUDA C.
//!
//! ## Determinism
//!
//! Like every Pitwall operator, kernels are pure functions of their input:
//! sums fold in a fixed order, random draws are a function of
//! `(seed, run, lap, car)`, and the CUDA kernels perform the same IEEE
//! operations in the same order (NVRTC with `--fmad=false`), so CPU and GPU
//! agree bit for bit. Each kernel module states its tolerance.

pub mod backend;
pub mod cpu;
pub mod cuda;
pub mod fit;
pub mod model;
pub mod predict;
pub mod rng;

pub use backend::{
    Backend, GpuError, GpuSetting, ParseGpuSettingError, detect_backend, select_backend,
};
pub use cuda::{Probe, probe};
pub use model::{Compound, LapModel};
pub use predict::{
    CarPrediction, CarSnapshot, KernelResult, PredictorConfig, RacePrediction, RacePredictor,
    RaceSnapshot, Strategy,
};

/// The `pitwall gpu info` report: what the machine has and where kernels
/// will run. Never panics, also without any NVIDIA software installed.
pub fn gpu_info() -> String {
    probe().to_string()
}
