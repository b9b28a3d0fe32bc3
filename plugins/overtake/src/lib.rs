//! `overtake` (work in progress; see issue 5).

use pitwall_plugin_sdk::{Context, Frame, Output, Pair, PairModel, PluginResult};

#[derive(Default)]
pub struct Overtake;

impl PairModel for Overtake {
    fn on_pair(
        &mut self,
        _pair: &Pair<'_>,
        _frame: &Frame<'_>,
        _ctx: &mut Context,
        _out: &mut Output,
    ) -> PluginResult {
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Overtake,
    name = "overtake",
    version = "1.0.0",
    kind = pair_model
);
