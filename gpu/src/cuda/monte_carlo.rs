//! The race-strategy Monte Carlo on the GPU (`kernels/monte_carlo.cu`): one
//! thread per (scenario, run), same input and output as
//! [`crate::cpu::monte_carlo`], and — same counter-based draws, same
//! operations, `--fmad=false` — the same bits.

use cudarc::driver::PushKernelArg;

use super::{CudaRuntime, DeviceBuf, download, launch_config};
use crate::backend::GpuError;
use crate::cpu::monte_carlo::{McInput, McOutput, ScenarioArrays};
use crate::rng;

#[derive(Debug, Default)]
pub(crate) struct Buffers {
    base: DeviceBuf<f64>,
    start: DeviceBuf<f64>,
    compound: DeviceBuf<u32>,
    age: DeviceBuf<u32>,
    flags: DeviceBuf<u32>,
    focus: DeviceBuf<i32>,
    stop1: DeviceBuf<i32>,
    stop2: DeviceBuf<i32>,
    params: DeviceBuf<f64>,
    focus_pos: DeviceBuf<u32>,
    focus_time: DeviceBuf<f64>,
    base_pos: DeviceBuf<u32>,
}

impl CudaRuntime {
    /// [`crate::cpu::monte_carlo::simulate`] on the device.
    pub fn monte_carlo(&mut self, input: &McInput) -> Result<McOutput, GpuError> {
        input.validate()?;
        let _span = tracing::debug_span!(
            "mc_cuda",
            cars = input.cars.len(),
            scenarios = input.scenarios.len(),
            runs = input.runs
        )
        .entered();
        let n = input.cars.len();
        let mut out = McOutput::zeroed(input.scenarios.len(), input.runs, n);
        let sc = ScenarioArrays::from_scenarios(&input.scenarios);
        let threads = (input.scenarios.len() as u64) * u64::from(input.runs);
        let stream = self.stream.clone();
        let b = &mut self.mc_bufs;
        super::guarded("Monte Carlo on the GPU", || {
            let base = b.base.upload(&stream, &input.cars.base_s)?;
            let start = b.start.upload(&stream, &input.cars.start_s)?;
            let comp = b.compound.upload(&stream, &input.cars.compound)?;
            let age = b.age.upload(&stream, &input.cars.tyre_age)?;
            let flags = b.flags.upload(&stream, &input.cars.flags)?;
            let focus = b.focus.upload(&stream, &sc.focus)?;
            let stop1 = b.stop1.upload(&stream, &sc.stop1)?;
            let stop2 = b.stop2.upload(&stream, &sc.stop2)?;
            let prm = b.params.upload(&stream, &input.params)?;
            let focus_pos = b.focus_pos.ensure(&stream, out.focus_pos.len())?;
            let focus_time = b.focus_time.ensure(&stream, out.focus_time.len())?;
            let base_pos = b.base_pos.ensure(&stream, out.base_pos.len())?;
            let [seed_lo, seed_hi] = rng::seed_key(input.seed);
            let (n_u, n_sc) = (n as u32, input.scenarios.len() as u32);
            let cfg = launch_config(threads)?;
            let mut l = stream.launch_builder(&self.f.monte_carlo);
            l.arg(&*base)
                .arg(&*start)
                .arg(&*comp)
                .arg(&*age)
                .arg(&*flags)
                .arg(&n_u)
                .arg(&*focus)
                .arg(&*stop1)
                .arg(&*stop2)
                .arg(&n_sc)
                .arg(&*prm)
                .arg(&input.lap)
                .arg(&input.total_laps)
                .arg(&input.sc_laps_left)
                .arg(&input.vsc_laps_left)
                .arg(&seed_lo)
                .arg(&seed_hi)
                .arg(&input.runs)
                .arg(&mut *focus_pos)
                .arg(&mut *focus_time)
                .arg(&mut *base_pos);
            // SAFETY: matches `monte_carlo` in monte_carlo.cu; validate()
            // bounds n by MC_MAX_CARS and the focus indices by n; outputs hold
            // scenarios * runs and runs * n elements.
            unsafe { l.launch(cfg) }.map_err(|e| e.to_string())?;
            download(&stream, focus_pos, &mut out.focus_pos)?;
            download(&stream, focus_time, &mut out.focus_time)?;
            download(&stream, base_pos, &mut out.base_pos)?;
            stream.synchronize().map_err(|e| e.to_string())
        })?;
        Ok(out)
    }
}
