//! Hostile: allocates 1 GiB on every frame. Past the host's memory cap the
//! allocation fails and the guest aborts (a trap); the host must survive.

use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};

#[derive(Default)]
pub struct Alloc {
    hoard: Vec<Vec<u8>>,
}

/// How much one frame asks for.
pub const BYTES: usize = 1 << 30;

impl StoryGenerator for Alloc {
    fn on_frame(&mut self, _: &Frame<'_>, _: &mut Context, _: &mut Output) -> PluginResult {
        let mut block = vec![0u8; BYTES];
        // Touch it so no optimiser can drop the allocation.
        block[BYTES - 1] = std::hint::black_box(1);
        self.hoard.push(block);
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(
    Alloc,
    name = "hostile-alloc",
    version = "0.1.0",
    kind = story_generator
);
