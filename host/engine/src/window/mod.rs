//! Event-time windows. One file per window kind; today: [`tumbling`].

pub mod tumbling;

pub use tumbling::{OpenWindow, TumblingWindows};
