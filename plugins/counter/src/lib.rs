//! `counter` 1.0.0: a stateful story generator that counts frames across hot
//! swaps. The code lives in `counter.rs`, shared with `counter-v2` (2.0.0).

include!("counter.rs");
