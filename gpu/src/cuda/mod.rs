//! The CUDA path: device detection, run-time compilation of the kernels with
//! NVRTC, and device buffers reused across calls.
//!
//! Everything here is loaded dynamically (`cudarc`'s `dynamic-loading`): the
//! crate builds, tests and runs on machines without the CUDA toolkit or an
//! NVIDIA driver, and finds `libcuda` / `libnvrtc` at run time. `cudarc`
//! panics when a library is missing rather than returning an error, so
//! [`probe`] checks for the libraries first and every call into the driver
//! during set-up runs under `catch_unwind` as a second line of defence.
//!
//! The kernels are CUDA C (`gpu/kernels/*.cu`, prefixed by `common.cuh`),
//! compiled once per [`CudaRuntime`] with `--fmad=false` so every `a * b + c`
//! rounds twice, as it does in Rust: with the same operations in the same
//! order the GPU gives the CPU reference's bits.

pub mod lap_predict;
pub mod monte_carlo;
pub mod segmented_reduce;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits,
};
use cudarc::nvrtc::CompileOptions;
use serde::Serialize;

use crate::backend::GpuError;

/// The shared header every kernel source starts with.
pub const COMMON_CUH: &str = include_str!("../../kernels/common.cuh");

/// The kernel sources, each without the common header, with their entry
/// points. [`full_source`] prefixes the header.
pub const KERNEL_SOURCES: [(&str, &str, &[&str]); 3] = [
    (
        "segmented_reduce.cu",
        include_str!("../../kernels/segmented_reduce.cu"),
        &["segmented_reduce", "segmented_product"],
    ),
    (
        "monte_carlo.cu",
        include_str!("../../kernels/monte_carlo.cu"),
        &["monte_carlo"],
    ),
    (
        "lap_predict.cu",
        include_str!("../../kernels/lap_predict.cu"),
        &["lap_predict"],
    ),
];

/// The common header followed by every kernel: one translation unit.
pub fn full_source() -> String {
    let mut s = String::from(COMMON_CUH);
    for (name, src, _) in KERNEL_SOURCES {
        s.push_str("\n// ---- ");
        s.push_str(name);
        s.push_str(" ----\n");
        s.push_str(src);
    }
    s
}

/// What the machine has, found without panicking. See [`probe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `libcuda` (the NVIDIA driver) could be loaded.
    pub driver_library: bool,
    /// `libnvrtc` (the run-time compiler) could be loaded.
    pub nvrtc_library: bool,
    /// CUDA devices the driver reports (0 when the driver is missing).
    pub devices: usize,
    /// Device 0: name, compute capability, memory.
    pub device0: Option<DeviceInfo>,
    /// Why no device could be used, when that is the case.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_mem_bytes: usize,
}

impl Probe {
    /// A device is usable: driver, compiler and at least one device.
    pub fn usable(&self) -> bool {
        self.driver_library && self.nvrtc_library && self.devices > 0
    }
}

impl std::fmt::Display for Probe {
    /// The `pitwall gpu info` report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yes = |b: bool| if b { "found" } else { "not found" };
        writeln!(f, "CUDA driver (libcuda):  {}", yes(self.driver_library))?;
        writeln!(f, "NVRTC (libnvrtc):       {}", yes(self.nvrtc_library))?;
        writeln!(f, "CUDA devices:           {}", self.devices)?;
        if let Some(d) = &self.device0 {
            writeln!(
                f,
                "device 0:               {} (compute {}.{}, {:.1} GiB)",
                d.name,
                d.compute_capability.0,
                d.compute_capability.1,
                d.total_mem_bytes as f64 / (1u64 << 30) as f64
            )?;
        }
        match &self.problem {
            Some(p) => write!(f, "kernels run on:         cpu ({p})"),
            None => write!(
                f,
                "kernels run on:         cuda:0 with --gpu auto|on, cpu with --gpu off"
            ),
        }
    }
}

/// Finds what the machine has without panicking: library presence first
/// (`is_culib_present`, which only tries to `dlopen`), then the device count
/// and device 0's properties under `catch_unwind`.
pub fn probe() -> Probe {
    let _span = tracing::debug_span!("gpu_probe").entered();
    // SAFETY: these only try to load the shared libraries and report whether
    // that worked; they call no CUDA function.
    let driver_library =
        catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false);
    let nvrtc_library =
        catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false);
    let mut probe = Probe {
        driver_library,
        nvrtc_library,
        devices: 0,
        device0: None,
        problem: None,
    };
    if !driver_library {
        probe.problem = Some("no NVIDIA driver: libcuda could not be loaded".into());
        return probe;
    }
    match guarded("counting CUDA devices", || {
        let n = CudaContext::device_count().map_err(|e| e.to_string())?;
        if n <= 0 {
            return Ok((0, None));
        }
        let ctx = CudaContext::new(0).map_err(|e| e.to_string())?;
        let info = DeviceInfo {
            name: ctx.name().map_err(|e| e.to_string())?,
            compute_capability: ctx.compute_capability().map_err(|e| e.to_string())?,
            total_mem_bytes: ctx.total_mem().map_err(|e| e.to_string())?,
        };
        Ok((n as usize, Some(info)))
    }) {
        Ok((n, info)) => {
            probe.devices = n;
            probe.device0 = info;
            if n == 0 {
                probe.problem = Some("the NVIDIA driver reports no CUDA device".into());
            }
        }
        Err(e) => probe.problem = Some(e.to_string()),
    }
    if probe.problem.is_none() && !nvrtc_library {
        probe.problem = Some(
            "no NVRTC: libnvrtc (CUDA toolkit 12.x runtime compiler) could not be loaded".into(),
        );
    }
    probe
}

/// Runs `f`, turning both its error and a panic inside it into a [`GpuError`].
pub(crate) fn guarded<T>(
    context: &str,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, GpuError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(message)) => Err(GpuError::Cuda {
            context: context.to_string(),
            message,
        }),
        Err(panic) => Err(GpuError::Cuda {
            context: context.to_string(),
            message: format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic")
            ),
        }),
    }
}

/// A device buffer that grows and is then reused: kernels called every window
/// allocate only when an input is larger than any before it.
#[derive(Debug, Default)]
pub(crate) struct DeviceBuf<T> {
    slice: Option<CudaSlice<T>>,
}

impl<T: DeviceRepr + ValidAsZeroBits> DeviceBuf<T> {
    /// A buffer of at least `len` elements (at least 1: CUDA refuses empty
    /// allocations), growing by powers of two.
    pub(crate) fn ensure(
        &mut self,
        stream: &Arc<CudaStream>,
        len: usize,
    ) -> Result<&mut CudaSlice<T>, String> {
        let want = len.max(1);
        if self.slice.as_ref().is_none_or(|s| s.len() < want) {
            let cap = want.next_power_of_two();
            tracing::debug!(bytes = cap * std::mem::size_of::<T>(), "gpu buffer grows");
            self.slice = Some(stream.alloc_zeros::<T>(cap).map_err(|e| e.to_string())?);
        }
        Ok(self.slice.as_mut().expect("allocated above"))
    }

    /// Copies `src` to the front of the buffer (growing it first).
    pub(crate) fn upload(
        &mut self,
        stream: &Arc<CudaStream>,
        src: &[T],
    ) -> Result<&mut CudaSlice<T>, String> {
        let buf = self.ensure(stream, src.len())?;
        if !src.is_empty() {
            let mut view = buf.slice_mut(0..src.len());
            stream
                .memcpy_htod(src, &mut view)
                .map_err(|e| e.to_string())?;
        }
        Ok(buf)
    }
}

/// Copies the first `dst.len()` elements of `src` to the host.
pub(crate) fn download<T: DeviceRepr>(
    stream: &Arc<CudaStream>,
    src: &CudaSlice<T>,
    dst: &mut [T],
) -> Result<(), String> {
    if dst.is_empty() {
        return Ok(());
    }
    let view = src.slice(0..dst.len());
    stream.memcpy_dtoh(&view, dst).map_err(|e| e.to_string())
}

pub(crate) struct Functions {
    pub segmented_reduce: CudaFunction,
    pub segmented_product: CudaFunction,
    pub monte_carlo: CudaFunction,
    pub lap_predict: CudaFunction,
}

/// A CUDA device with the kernels compiled and loaded, and the buffers each
/// kernel reuses. Not `Sync`: one runtime per thread that launches kernels.
pub struct CudaRuntime {
    device: usize,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) f: Functions,
    pub(crate) reduce_bufs: segmented_reduce::Buffers,
    pub(crate) mc_bufs: monte_carlo::Buffers,
    pub(crate) lap_bufs: lap_predict::Buffers,
    info: DeviceInfo,
}

impl std::fmt::Debug for CudaRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaRuntime")
            .field("device", &self.device)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The NVRTC options: no fused multiply-add (CPU parity), IEEE division and
/// square root, no flush-to-zero.
pub fn compile_options() -> CompileOptions {
    CompileOptions {
        fmad: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        ftz: Some(false),
        name: Some("pitwall_kernels.cu".into()),
        ..Default::default()
    }
}

impl CudaRuntime {
    /// Opens `device`, compiles every kernel with NVRTC and loads them.
    /// Errors (no driver, no NVRTC, no such device, a compile error with its
    /// log) say what is missing; nothing panics.
    pub fn new(device: usize) -> Result<Self, GpuError> {
        let _span = tracing::info_span!("gpu_init", device).entered();
        let p = probe();
        if !p.driver_library || p.devices == 0 {
            return Err(GpuError::NoCudaDevice);
        }
        if !p.nvrtc_library {
            return Err(GpuError::Cuda {
                context: "loading NVRTC".into(),
                message: p.problem.unwrap_or_else(|| "libnvrtc not found".into()),
            });
        }
        if device >= p.devices {
            return Err(GpuError::Cuda {
                context: format!("opening CUDA device {device}"),
                message: format!("the driver reports {} device(s)", p.devices),
            });
        }
        let src = full_source();
        let ptx = match catch_unwind(AssertUnwindSafe(|| {
            cudarc::nvrtc::compile_ptx_with_opts(&src, compile_options())
        })) {
            Ok(Ok(ptx)) => ptx,
            Ok(Err(e)) => {
                return Err(GpuError::Compile { log: e.to_string() });
            }
            Err(_) => {
                return Err(GpuError::Compile {
                    log: "NVRTC panicked".into(),
                });
            }
        };
        let (stream, f, info) = guarded("loading the kernels", || {
            let ctx = CudaContext::new(device).map_err(|e| e.to_string())?;
            let module = ctx.load_module(ptx).map_err(|e| e.to_string())?;
            let load = |name: &str| {
                module
                    .load_function(name)
                    .map_err(|e| format!("{name}: {e}"))
            };
            let f = Functions {
                segmented_reduce: load("segmented_reduce")?,
                segmented_product: load("segmented_product")?,
                monte_carlo: load("monte_carlo")?,
                lap_predict: load("lap_predict")?,
            };
            let info = DeviceInfo {
                name: ctx.name().map_err(|e| e.to_string())?,
                compute_capability: ctx.compute_capability().map_err(|e| e.to_string())?,
                total_mem_bytes: ctx.total_mem().map_err(|e| e.to_string())?,
            };
            Ok((ctx.default_stream(), f, info))
        })?;
        tracing::info!(device, name = %info.name, "CUDA kernels compiled and loaded");
        Ok(CudaRuntime {
            device,
            stream,
            f,
            reduce_bufs: Default::default(),
            mc_bufs: Default::default(),
            lap_bufs: Default::default(),
            info,
        })
    }

    pub fn device(&self) -> usize {
        self.device
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }
}

/// Threads per block for the element-wise kernels.
pub(crate) const BLOCK: u32 = 128;

/// A 1-D launch covering `n` threads.
pub(crate) fn launch_config(n: u64) -> Result<cudarc::driver::LaunchConfig, String> {
    let blocks = n.div_ceil(u64::from(BLOCK)).max(1);
    let blocks =
        u32::try_from(blocks).map_err(|_| format!("{n} threads is too many for one launch"))?;
    Ok(cudarc::driver::LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a GPU nothing can compile the CUDA C here, so check what can be
    /// checked: each source's braces and parentheses balance outside comments,
    /// every entry point is declared `extern "C" __global__`, and every
    /// parameter index the kernels use is defined with the value the Rust side
    /// uses.
    #[test]
    fn kernel_sources_are_well_formed() {
        fn strip_comments(s: &str) -> String {
            s.lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n")
        }
        for (name, src) in std::iter::once(("common.cuh", COMMON_CUH))
            .chain(KERNEL_SOURCES.iter().map(|(n, s, _)| (*n, *s)))
        {
            let code = strip_comments(src);
            for (open, close) in [('{', '}'), ('(', ')'), ('[', ']')] {
                let mut depth = 0i64;
                for ch in code.chars() {
                    if ch == open {
                        depth += 1;
                    } else if ch == close {
                        depth -= 1;
                    }
                    assert!(depth >= 0, "{name}: unbalanced {close}");
                }
                assert_eq!(depth, 0, "{name}: unbalanced {open}{close}");
            }
        }
        let full = full_source();
        for (_, src, entries) in KERNEL_SOURCES {
            for e in entries {
                assert!(
                    src.contains(&format!("extern \"C\" __global__ void {e}(")),
                    "entry point {e} missing"
                );
            }
        }
        use crate::model::param as p;
        for (name, v) in [
            ("P_DEG", p::DEG),
            ("P_OFFSET", p::OFFSET),
            ("P_LIFE", p::LIFE),
            ("P_CLIFF", p::CLIFF),
            ("P_FUEL", p::FUEL),
            ("P_TRAFFIC", p::TRAFFIC),
            ("P_TRAFFIC_GAP", p::TRAFFIC_GAP),
            ("P_NOISE", p::NOISE),
            ("P_PIT_LOSS", p::PIT_LOSS),
            ("P_P_SC", p::P_SC),
            ("P_P_VSC", p::P_VSC),
            ("P_SC_LAP_S", p::SC_LAP_S),
            ("P_VSC_FACTOR", p::VSC_FACTOR),
            ("P_SC_PIT_FACTOR", p::SC_PIT_FACTOR),
            ("P_VSC_PIT_FACTOR", p::VSC_PIT_FACTOR),
            ("P_SC_GAP_S", p::SC_GAP_S),
        ] {
            assert!(
                full.contains(&format!("#define {name} {v}\n")),
                "{name} != {v}"
            );
        }
        use crate::cpu::monte_carlo as mc;
        assert!(full.contains(&format!("#define MC_MAX_CARS {}\n", mc::MAX_CARS)));
        assert!(full.contains(&format!(
            "#define MC_MIN_LAPS_LEFT_TO_STOP {}u\n",
            mc::MIN_LAPS_LEFT_TO_STOP
        )));
        assert!(full.contains(&format!(
            "#define STREAM_LAP_NOISE {}u",
            crate::rng::stream::LAP_NOISE
        )));
        assert!(full.contains(&format!(
            "#define STREAM_RACE_EVENT {}u",
            crate::rng::stream::RACE_EVENT
        )));
        assert!(full.contains(&format!("#define PW_SQRT_3 {:?}", crate::rng::SQRT_3)));
        // The CUDA literal is 2^-32 written out exactly.
        assert!(full.contains("#define PW_INV_2_32 2.3283064365386962890625e-10"));
        assert_eq!(crate::rng::INV_2_32, 2f64.powi(-32));
    }

    #[test]
    fn probe_never_panics_and_explains() {
        let p = probe();
        if !p.usable() {
            assert!(p.problem.is_some(), "{p:?}");
            let report = p.to_string();
            assert!(report.contains("kernels run on:         cpu ("), "{report}");
        }
    }
}
