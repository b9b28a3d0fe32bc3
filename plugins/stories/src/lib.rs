//! `stories` (work in progress; see issue 5).

use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};

#[derive(Default)]
pub struct Stories;

impl StoryGenerator for Stories {
    fn on_frame(
        &mut self,
        _frame: &Frame<'_>,
        _ctx: &mut Context,
        _out: &mut Output,
    ) -> PluginResult {
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Stories,
    name = "stories",
    version = "1.0.0",
    kind = story_generator
);
