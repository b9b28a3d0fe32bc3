//! Hostile: never returns from `on_frame` (from the third frame on, so the
//! host sees it work first). The host's epoch deadline must stop it.

use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};

#[derive(Default)]
pub struct Spin {
    frames: u64,
}

impl StoryGenerator for Spin {
    fn on_frame(&mut self, _: &Frame<'_>, _: &mut Context, _: &mut Output) -> PluginResult {
        self.frames += 1;
        if self.frames >= 3 {
            let mut x = 0u64;
            loop {
                // black_box: the loop is not optimised into something else.
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Spin,
    name = "hostile-spin",
    version = "0.1.0",
    kind = story_generator
);
