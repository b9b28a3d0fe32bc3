//! `counter` 2.0.0: the same source as `plugins/counter` (1.0.0), built as a
//! second version so the host can hot-swap between the two.

include!("../../counter/src/counter.rs");
