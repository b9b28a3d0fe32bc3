//! `pitwall gpu info`: what the machine has for the prediction kernels and
//! where they will run.

#[derive(clap::Args, Debug)]
pub struct GpuArgs {
    #[command(subcommand)]
    pub command: GpuCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum GpuCommand {
    /// CUDA driver, NVRTC and devices found (never fails without them).
    Info {
        /// The `--gpu` setting to resolve: `auto`, `on` or `off`.
        #[arg(long, default_value = "auto")]
        gpu: pitwall_gpu::GpuSetting,
    },
}

pub fn run(args: &GpuArgs) -> anyhow::Result<()> {
    match &args.command {
        GpuCommand::Info { gpu } => {
            println!("{}", pitwall_gpu::gpu_info());
            match pitwall_gpu::detect_backend(*gpu) {
                Ok(b) => println!("kernels run on: {b:?} (--gpu {gpu:?})"),
                Err(e) => anyhow::bail!("{e}"),
            }
            Ok(())
        }
    }
}
