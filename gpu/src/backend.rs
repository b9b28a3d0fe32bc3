//! Choosing where kernels run: the CPU reference or a CUDA device.
//!
//! The user's setting (`gpu = "auto" | "on" | "off"` in a config, `--gpu` on
//! the command line) meets what the machine has. [`select_backend`] is the
//! rule with availability as a parameter (testable anywhere);
//! [`detect_backend`] asks the machine ([`crate::cuda::probe`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuSetting {
    /// Use a CUDA device when there is one, the CPU otherwise. The default:
    /// the CPU path is the reference, so falling back changes speed, not results
    /// (beyond the tolerance each kernel states).
    #[default]
    Auto,
    /// Require a CUDA device; refuse to start without one. For benchmarks and
    /// deployments where silently running on the CPU would be a surprise.
    On,
    /// Never use a GPU.
    Off,
}

impl GpuSetting {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuSetting::Auto => "auto",
            GpuSetting::On => "on",
            GpuSetting::Off => "off",
        }
    }
}

impl fmt::Display for GpuSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A GPU setting that is none of `auto`, `on`, `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid gpu setting {input:?}: expected \"auto\", \"on\" or \"off\"")]
pub struct ParseGpuSettingError {
    pub input: String,
}

impl FromStr for GpuSetting {
    type Err = ParseGpuSettingError;
    /// Parses `auto`, `on` or `off`, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(GpuSetting::Auto),
            "on" => Ok(GpuSetting::On),
            "off" => Ok(GpuSetting::Off),
            _ => Err(ParseGpuSettingError {
                input: s.to_string(),
            }),
        }
    }
}

/// Where kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The CPU reference implementations in [`crate::cpu`].
    Cpu,
    /// CUDA device number `device` (as CUDA numbers them).
    Cuda { device: usize },
}

impl Backend {
    pub fn is_gpu(self) -> bool {
        matches!(self, Backend::Cuda { .. })
    }
}

impl fmt::Display for Backend {
    /// `cpu` or `cuda:N`, as logs and reports write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => f.write_str("cpu"),
            Backend::Cuda { device } => write!(f, "cuda:{device}"),
        }
    }
}

/// Backend selection or a kernel call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpuError {
    #[error(
        "gpu = \"on\" but no CUDA device is available (no NVIDIA driver or GPU found); \
         use gpu = \"auto\" to fall back to the CPU reference, or gpu = \"off\""
    )]
    NoCudaDevice,
    #[error("CUDA failed while {context}: {message}")]
    Cuda { context: String, message: String },
    #[error("NVRTC could not compile Pitwall's kernels: {log}")]
    Compile { log: String },
    #[error("segmented reduction: {0}")]
    Reduce(#[from] crate::cpu::segmented_reduce::ReduceError),
    #[error("Monte Carlo: {0}")]
    MonteCarlo(#[from] crate::cpu::monte_carlo::McError),
    #[error("lap-time prediction: {0}")]
    LapPredict(#[from] crate::cpu::lap_predict::LapPredictError),
}

/// Picks the backend for `setting` on a machine where a CUDA device is
/// (`cuda_available`) or is not present. A GPU, when used, is device 0.
pub fn select_backend(setting: GpuSetting, cuda_available: bool) -> Result<Backend, GpuError> {
    match (setting, cuda_available) {
        (GpuSetting::Off, _) | (GpuSetting::Auto, false) => Ok(Backend::Cpu),
        (GpuSetting::Auto | GpuSetting::On, true) => Ok(Backend::Cuda { device: 0 }),
        (GpuSetting::On, false) => Err(GpuError::NoCudaDevice),
    }
}

/// Picks the backend for `setting` on this machine: probes for a usable CUDA
/// device (driver, NVRTC, a device) without panicking.
pub fn detect_backend(setting: GpuSetting) -> Result<Backend, GpuError> {
    if setting == GpuSetting::Off {
        return Ok(Backend::Cpu);
    }
    let probe = crate::cuda::probe();
    let backend = select_backend(setting, probe.usable());
    tracing::info!(%setting, usable = probe.usable(), problem = ?probe.problem, "gpu backend");
    backend
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_forgivingly_and_refuse_clearly() {
        assert_eq!("auto".parse::<GpuSetting>().unwrap(), GpuSetting::Auto);
        assert_eq!(" ON ".parse::<GpuSetting>().unwrap(), GpuSetting::On);
        assert_eq!("Off".parse::<GpuSetting>().unwrap(), GpuSetting::Off);
        for bad in ["", "yes", "true", "1", "cuda", "o n"] {
            let err = bad.parse::<GpuSetting>().unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("\"auto\", \"on\" or \"off\""), "{err}");
        }
        for s in [GpuSetting::Auto, GpuSetting::On, GpuSetting::Off] {
            assert_eq!(s.to_string().parse::<GpuSetting>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(GpuSetting::default(), GpuSetting::Auto);
    }

    #[test]
    fn selection_table() {
        use GpuSetting::*;
        let cuda = Backend::Cuda { device: 0 };
        assert_eq!(select_backend(Auto, true), Ok(cuda));
        assert_eq!(select_backend(Auto, false), Ok(Backend::Cpu));
        assert_eq!(select_backend(On, true), Ok(cuda));
        assert_eq!(select_backend(On, false), Err(GpuError::NoCudaDevice));
        assert_eq!(select_backend(Off, true), Ok(Backend::Cpu));
        assert_eq!(select_backend(Off, false), Ok(Backend::Cpu));
    }

    #[test]
    fn no_device_error_says_what_to_do() {
        let msg = select_backend(GpuSetting::On, false)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no CUDA device"), "{msg}");
        assert!(msg.contains("gpu = \"auto\""), "{msg}");
    }

    #[test]
    fn backends_print_like_logs_write_them() {
        assert_eq!(Backend::Cpu.to_string(), "cpu");
        assert_eq!(Backend::Cuda { device: 1 }.to_string(), "cuda:1");
        assert!(!Backend::Cpu.is_gpu());
        assert_eq!(
            serde_json::to_string(&Backend::Cuda { device: 1 }).unwrap(),
            r#"{"cuda":{"device":1}}"#
        );
    }
}
