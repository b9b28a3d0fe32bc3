//! Hostile: traps. Odd frames panic (an abort, i.e. `unreachable`, in WASM);
//! even frames execute `unreachable` directly on wasm32 (a panic natively).
//! The first frame succeeds, so the host sees a working plugin turn bad.

use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};

#[derive(Default)]
pub struct Trap {
    frames: u64,
}

impl StoryGenerator for Trap {
    fn on_frame(&mut self, _: &Frame<'_>, _: &mut Context, _: &mut Output) -> PluginResult {
        self.frames += 1;
        match self.frames {
            1 => Ok(()),
            n if n % 2 == 1 => panic!("hostile-trap panics on frame {n}"),
            _ => {
                #[cfg(target_arch = "wasm32")]
                core::arch::wasm32::unreachable();
                #[cfg(not(target_arch = "wasm32"))]
                panic!("unreachable");
            }
        }
    }
}

pitwall_plugin_sdk::export_plugin!(
    Trap,
    name = "hostile-trap",
    version = "0.1.0",
    kind = story_generator
);
