//! Lap-time prediction on the GPU (`kernels/lap_predict.cu`): same input and
//! output as [`crate::cpu::lap_predict`], bit-identical (only `+ × √`).

use cudarc::driver::PushKernelArg;

use super::{CudaRuntime, DeviceBuf, download, launch_config};
use crate::backend::GpuError;
use crate::cpu::lap_predict::{LapPredictInput, LapPredictOutput};
use crate::model::param;

#[derive(Debug, Default)]
pub(crate) struct Buffers {
    base: DeviceBuf<f64>,
    var: DeviceBuf<f64>,
    compound: DeviceBuf<u32>,
    age: DeviceBuf<u32>,
    lap: DeviceBuf<u32>,
    params: DeviceBuf<f64>,
    mean: DeviceBuf<f64>,
    err: DeviceBuf<f64>,
}

impl CudaRuntime {
    /// [`crate::cpu::lap_predict::predict`] on the device.
    pub fn lap_predict(
        &mut self,
        input: &LapPredictInput,
        params: &[f64; param::LEN],
    ) -> Result<LapPredictOutput, GpuError> {
        input.validate()?;
        let _span = tracing::debug_span!(
            "lap_predict_cuda",
            cars = input.len(),
            horizon = input.horizon
        )
        .entered();
        let cells = input.len() * input.horizon as usize;
        let mut out = LapPredictOutput {
            horizon: input.horizon,
            mean: vec![0.0; cells],
            err: vec![0.0; cells],
        };
        if cells == 0 {
            return Ok(out);
        }
        let stream = self.stream.clone();
        let b = &mut self.lap_bufs;
        super::guarded("lap-time prediction on the GPU", || {
            let base = b.base.upload(&stream, &input.base_s)?;
            let var = b.var.upload(&stream, &input.base_var)?;
            let comp = b.compound.upload(&stream, &input.compound)?;
            let age = b.age.upload(&stream, &input.tyre_age)?;
            let lap = b.lap.upload(&stream, &input.lap)?;
            let prm = b.params.upload(&stream, params)?;
            let mean = b.mean.ensure(&stream, cells)?;
            let err = b.err.ensure(&stream, cells)?;
            let (n, h) = (input.len() as u32, input.horizon);
            let cfg = launch_config(cells as u64)?;
            let mut l = stream.launch_builder(&self.f.lap_predict);
            l.arg(&*base)
                .arg(&*var)
                .arg(&*comp)
                .arg(&*age)
                .arg(&*lap)
                .arg(&n)
                .arg(&h)
                .arg(&*prm)
                .arg(&mut *mean)
                .arg(&mut *err);
            // SAFETY: matches `lap_predict` in lap_predict.cu; inputs hold n
            // elements, params LEN, outputs n * horizon.
            unsafe { l.launch(cfg) }.map_err(|e| e.to_string())?;
            download(&stream, mean, &mut out.mean)?;
            download(&stream, err, &mut out.err)?;
            stream.synchronize().map_err(|e| e.to_string())
        })?;
        Ok(out)
    }
}
