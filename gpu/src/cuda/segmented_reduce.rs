//! The segmented window reduction on the GPU (`kernels/segmented_reduce.cu`).
//! Same input and output types as [`crate::cpu::segmented_reduce`]; one
//! thread per (channel, segment) folding rows in input order, so the result
//! is bit-identical to the CPU reference (tested whenever a GPU is present).

use cudarc::driver::PushKernelArg;

use super::{CudaRuntime, DeviceBuf, download, launch_config};
use crate::backend::GpuError;
use crate::cpu::segmented_reduce::{
    ProductOutput, ProductSpec, ReduceOutput, SegmentLayout, validate,
};

#[derive(Debug, Default)]
pub(crate) struct Buffers {
    rows: DeviceBuf<u32>,
    offsets: DeviceBuf<u32>,
    channels: DeviceBuf<f64>,
    count: DeviceBuf<u32>,
    sum: DeviceBuf<f64>,
    mean: DeviceBuf<f64>,
    min: DeviceBuf<f64>,
    max: DeviceBuf<f64>,
    p_count: DeviceBuf<u32>,
    p_sum: DeviceBuf<f64>,
    /// Host staging for the column-major channel block, reused.
    staging: Vec<f64>,
}

impl CudaRuntime {
    /// [`crate::cpu::segmented_reduce::segmented_reduce`] on the device.
    pub fn segmented_reduce(
        &mut self,
        layout: &SegmentLayout,
        channels: &[&[f64]],
        product: Option<ProductSpec>,
    ) -> Result<ReduceOutput, GpuError> {
        validate(layout, channels, product)?;
        let _span = tracing::debug_span!(
            "reduce_cuda",
            rows = layout.n_rows(),
            segments = layout.n_segments(),
            channels = channels.len()
        )
        .entered();
        let n_rows = layout.n_rows();
        let n_seg = layout.n_segments();
        let n_ch = channels.len();
        let cells = n_seg * n_ch;
        let mut out = ReduceOutput {
            n_segments: n_seg,
            n_channels: n_ch,
            count: vec![0; cells],
            sum: vec![0.0; cells],
            mean: vec![0.0; cells],
            min: vec![0.0; cells],
            max: vec![0.0; cells],
            product: None,
        };
        if let Some(spec) = product {
            out.product = Some(ProductOutput {
                spec,
                count: vec![0; n_seg],
                sum: vec![0.0; n_seg],
            });
        }
        if n_seg == 0 {
            return Ok(out);
        }
        let stream = self.stream.clone();
        let b = &mut self.reduce_bufs;
        b.staging.clear();
        for col in channels {
            b.staging.extend_from_slice(col);
        }
        super::guarded("segmented reduction on the GPU", || {
            let rows = b.rows.upload(&stream, layout.rows())?;
            let offsets = b.offsets.upload(&stream, layout.seg_offsets())?;
            let chans = b.channels.upload(&stream, &b.staging)?;
            let count = b.count.ensure(&stream, cells)?;
            let sum = b.sum.ensure(&stream, cells)?;
            let mean = b.mean.ensure(&stream, cells)?;
            let min = b.min.ensure(&stream, cells)?;
            let max = b.max.ensure(&stream, cells)?;
            let (n_seg_u, n_ch_u, n_rows_u) = (n_seg as u32, n_ch as u32, n_rows as u64);
            if cells > 0 {
                let cfg = launch_config(cells as u64)?;
                let mut l = stream.launch_builder(&self.f.segmented_reduce);
                l.arg(&*rows)
                    .arg(&*offsets)
                    .arg(&n_seg_u)
                    .arg(&*chans)
                    .arg(&n_ch_u)
                    .arg(&n_rows_u)
                    .arg(&mut *count)
                    .arg(&mut *sum)
                    .arg(&mut *mean)
                    .arg(&mut *min)
                    .arg(&mut *max);
                // SAFETY: the argument list matches `segmented_reduce` in
                // segmented_reduce.cu; every buffer holds at least the
                // elements the kernel indexes (rows n_rows, offsets n_seg + 1,
                // channels n_ch * n_rows, outputs cells).
                unsafe { l.launch(cfg) }.map_err(|e| e.to_string())?;
            }
            let p_count = b.p_count.ensure(&stream, n_seg)?;
            let p_sum = b.p_sum.ensure(&stream, n_seg)?;
            if let Some(spec) = product {
                let a = chans.slice(spec.a * n_rows..(spec.a + 1) * n_rows);
                let bb = chans.slice(spec.b * n_rows..(spec.b + 1) * n_rows);
                let cfg = launch_config(n_seg as u64)?;
                let mut l = stream.launch_builder(&self.f.segmented_product);
                l.arg(&*rows)
                    .arg(&*offsets)
                    .arg(&n_seg_u)
                    .arg(&a)
                    .arg(&bb)
                    .arg(&spec.factor)
                    .arg(&mut *p_count)
                    .arg(&mut *p_sum);
                // SAFETY: matches `segmented_product`; a and b are n_rows long.
                unsafe { l.launch(cfg) }.map_err(|e| e.to_string())?;
            }
            download(&stream, count, &mut out.count)?;
            download(&stream, sum, &mut out.sum)?;
            download(&stream, mean, &mut out.mean)?;
            download(&stream, min, &mut out.min)?;
            download(&stream, max, &mut out.max)?;
            if let Some(p) = out.product.as_mut() {
                download(&stream, p_count, &mut p.count)?;
                download(&stream, p_sum, &mut p.sum)?;
            }
            stream.synchronize().map_err(|e| e.to_string())
        })?;
        Ok(out)
    }
}
