//! Pitwall GPU kernels.
