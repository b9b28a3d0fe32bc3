//! Criterion benches live in `benches/*.rs`; this library only hosts shared fixtures.
