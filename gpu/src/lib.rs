//! # pitwall-gpu
//!
//! Pitwall's kernels and the choice of where they run.
//!
//! * [`GpuSetting`], [`Backend`] and [`select_backend`]: the user's
//!   `auto | on | off` meets what the machine has.
//! * [`cpu`]: the CPU reference implementation of every kernel, starting with
//!   the [segmented window reduction](cpu::segmented_reduce). The CPU path runs
//!   everywhere (CI has no GPU) and is what the CUDA path is tested against.
//!
//! CUDA kernels (CUDA C compiled at run time with NVRTC), the device probe and
//! the criterion benches that show where a GPU starts to pay come with issue 7;
//! see `gpu/README.md`.
//!
//! ## Determinism
//!
//! Like every Pitwall operator, kernels are pure functions of their input order:
//! the reference folds sums in input order, so a replay gives bit-identical
//! results, and each kernel states the tolerance within which the CUDA version
//! must agree (see [`cpu`]).

pub mod backend;
pub mod cpu;

pub use backend::{Backend, GpuError, GpuSetting, ParseGpuSettingError, select_backend};
