// The counter plugin, shared by `pitwall-plugin-counter` (1.0.0) and
// `pitwall-plugin-counter-v2` (2.0.0): the same code built as two versions,
// so the host's hot-swap tests can swap A -> B -> A and check that the count
// carries on (state hand-over) and that every reply names the version that
// made it. Included with `include!` by both crates' lib.rs; the version
// comes from each crate's Cargo.toml.

use pitwall_plugin_sdk::{
    Context, Frame, Output, PluginResult, StateBytes, Stateful, StoryGenerator,
};
use serde::{Deserialize, Serialize};

/// The version of the crate this copy was built in.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What is handed over on a swap (state version 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterState {
    /// Frames seen by this plugin across all its versions.
    pub frames: u64,
}

#[derive(Default)]
pub struct Counter {
    state: CounterState,
}

impl Counter {
    /// Frames counted so far.
    pub fn frames(&self) -> u64 {
        self.state.frames
    }
}

impl StoryGenerator for Counter {
    fn on_frame(&mut self, _frame: &Frame<'_>, _ctx: &mut Context, out: &mut Output) -> PluginResult {
        self.state.frames += 1;
        let major: f64 = VERSION.split('.').next().unwrap_or("0").parse().unwrap_or(0.0);
        let headline = format!("counter {VERSION}: {} frames", self.state.frames);
        out.story("count", &headline)
            .importance(0.0)
            .evidence("frames", self.state.frames as f64)
            .evidence("version_major", major)
            .emit()?;
        Ok(())
    }
}

impl Stateful for Counter {
    type State = CounterState;

    fn snapshot(&self) -> CounterState {
        self.state.clone()
    }

    fn restore(&mut self, old_state_version: u32, state: StateBytes<'_>) -> PluginResult {
        if old_state_version != 1 {
            return Err(format!("state version {old_state_version} is unknown (this build reads 1)").into());
        }
        self.state = state.decode()?;
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Counter,
    name = "counter",
    version = env!("CARGO_PKG_VERSION"),
    kind = story_generator,
    state_version = 1
);
