//! `fuel` (work in progress; see issue 5).

use pitwall_plugin_sdk::{Car, CarModel, Context, Frame, Output, PluginResult};

#[derive(Default)]
pub struct Fuel;

impl CarModel for Fuel {
    fn on_car(
        &mut self,
        _car: &Car<'_>,
        _frame: &Frame<'_>,
        _ctx: &mut Context,
        _out: &mut Output,
    ) -> PluginResult {
        Ok(())
    }
}

pitwall_plugin_sdk::export_plugin!(Fuel, name = "fuel", version = "1.0.0", kind = car_model);
