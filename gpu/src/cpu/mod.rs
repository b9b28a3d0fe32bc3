//! CPU reference implementations of Pitwall's kernels.
//!
//! The CPU path is the reference: it runs everywhere (CI has no GPU), it is
//! written for clarity and a fixed evaluation order rather than for speed, and
//! every CUDA kernel is tested against it.
//!
//! ## No `Kernel` trait (yet)
//!
//! Each kernel is a plain function over plain data: a struct-of-arrays input
//! and output that a CUDA kernel can take one-to-one (each `Vec` becomes one
//! device buffer). The CUDA version will be a second function with the same
//! input and output types, and the caller will pick one with a `match` on
//! [`Backend`](crate::Backend). Kernels differ too much in their inputs for a
//! shared trait to say anything useful today; one can be extracted when two
//! or three kernels exist and the common shape is known.
//!
//! ## How the CUDA path agrees with this one
//!
//! Each kernel module states its own tolerance. The general rule:
//!
//! * counts, minima and maxima are exact (they do not depend on order);
//! * sums are folded in input order here. A CUDA kernel that folds each output
//!   in the same order, with `--fmad=false` (NVRTC otherwise fuses `a*b+c`
//!   into one rounding) and IEEE division, gives bit-identical results; one
//!   that reduces in a tree (long segments) may differ by the usual bound for
//!   floating-point summation, `n · ε · Σ|xᵢ|`
//!   ([`sum_tolerance`](segmented_reduce::sum_tolerance)).

pub mod lap_predict;
pub mod monte_carlo;
pub mod segmented_reduce;
