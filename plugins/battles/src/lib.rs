//! `battles` (work in progress; see issue 5).

use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};

#[derive(Default)]
pub struct Battles;

impl StoryGenerator for Battles {
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
    Battles,
    name = "battles",
    version = "1.0.0",
    kind = story_generator
);
