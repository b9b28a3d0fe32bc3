//! `pitwall`: the command-line entry point. Wiring and subcommands only; the
//! engine lives in `pitwall-engine`.

mod cmd;
mod plugin_scaffold;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "pitwall", version, about = "Live motorsport telemetry runtime")]
struct Cli {
    /// Log filter (e.g. `info`, `pitwall_engine=debug`); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: a race through the engine, window summaries as it goes.
    Run(cmd::run::RunArgs),
    /// Window a NDJSON or CSV telemetry file with a job config; write the windows.
    Window(cmd::window::WindowArgs),
    /// Write simulated car telemetry to a NDJSON or CSV file.
    Simulate(cmd::simulate::SimulateArgs),
    /// Replay a recorded real race (OpenF1 CSV or F1 live timing) through the engine.
    Replay(cmd::replay::ReplayArgs),
    /// Benchmarks: `bench` / `bench windows` (simulate, then window CSV and
    /// NDJSON), `bench feeds` (1,000 SSE readers on a full-speed replay).
    Bench(cmd::bench::BenchArgs),
    /// GPU kernels: `pitwall gpu info`.
    Gpu(cmd::gpu::GpuArgs),
    /// WASM plugins: scaffold, build, test over a recorded race.
    Plugin(cmd::plugin::PluginArgs),
    /// Fit a race model on recorded races: `pitwall train overtake --data DIR...`.
    Train(cmd::train::TrainArgs),
    /// Evaluate the race-intelligence plugins on a recorded race (overtake AUC,
    /// Brier, calibration vs a baseline; story recall and precision).
    Eval(cmd::eval::EvalArgs),
    /// API keys for the server: `pitwall keys create --user NAME --role admin`,
    /// `list`, `revoke ID`.
    Keys(cmd::keys::KeysArgs),
    /// Export a race's frames or a window job's aggregates for a data lake:
    /// `pitwall export parquet --data DIR --out DIR`.
    Export(cmd::export::ExportArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Window(a) => cmd::window::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Gpu(a) => cmd::gpu::run(a),
        Command::Plugin(a) => cmd::plugin::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Keys(a) => cmd::keys::run(a),
        Command::Export(a) => cmd::export::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
