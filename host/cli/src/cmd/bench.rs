//! `pitwall bench [windows|feeds]`: benchmarks reproducible with one command.
//!
//! `pitwall bench` (or `pitwall bench windows`) is the end-to-end window
//! benchmark; `pitwall bench feeds` is the feed load test through the real job
//! ([`super::bench_feeds`]).
//!
//! The window benchmark simulates the benchmark file (20 cars × 240 Hz × 1000 s
//! = 4.8 M rows, ~2 % out of order) as CSV and NDJSON into a directory, then runs
//! `pitwall window` with `configs/window-bench.toml` on each several times, in
//! this process, and reports the end-to-end time (config, parse, window, write)
//! — best and median.

use std::path::PathBuf;

use anyhow::Context;

use super::simulate::{self, SimulateArgs};
use super::window::{self, WindowArgs};

/// The benchmark job, built in.
const BENCH_CONFIG: &str = include_str!("../../../../configs/window-bench.toml");

/// `pitwall bench`: with no subcommand, the window benchmark with the flags
/// given here (what the README and docs run), so adding subcommands changed
/// nothing for existing command lines.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub windows: WindowBenchArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// The end-to-end window benchmark (the default): simulate, then window CSV
    /// and NDJSON.
    Windows(WindowBenchArgs),
    /// Feed load test through the real job: the bundled race at full speed
    /// through the shipped plugins into the server, N SSE readers and one
    /// stalled client; latency from window close to receipt, memory.
    Feeds(super::bench_feeds::FeedBenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct WindowBenchArgs {
    /// Where the input files go (kept, and reused when already there).
    #[arg(long, default_value = "target/pitwall-bench")]
    pub dir: PathBuf,
    /// Runs per format.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Event time to simulate (default: the 4.8 M-row benchmark).
    #[arg(long, default_value = "1000s")]
    pub duration: String,
    /// Formats to measure.
    #[arg(long, value_delimiter = ',', default_value = "csv,ndjson")]
    pub formats: Vec<String>,
    /// Parse threads (default: available cores, at most 4).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    match &args.command {
        None => run_windows(&args.windows),
        Some(BenchCommand::Windows(w)) => run_windows(w),
        Some(BenchCommand::Feeds(f)) => super::bench_feeds::run(f),
    }
}

/// The window benchmark.
pub fn run_windows(args: &WindowBenchArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let config = args.dir.join("window-bench.toml");
    std::fs::write(&config, BENCH_CONFIG)?;
    println!(
        "pitwall bench: window benchmark, 20 cars x 240 Hz x {}, {} run(s) per format, {} cores",
        args.duration,
        args.repeat,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<8} {:>10} {:>9} {:>9} {:>12} {:>12}",
        "format", "rows", "best s", "median s", "best Mrow/s", "median Mrow/s"
    );
    for format in &args.formats {
        let input = args.dir.join(format!("bench-{}.{format}", args.duration));
        if !input.exists() {
            let tmp = args
                .dir
                .join(format!(".bench-{}.tmp.{format}", args.duration));
            simulate::run(&SimulateArgs {
                out: tmp.clone(),
                format: Some(format.clone()),
                cars: 20,
                rate_hz: 240,
                duration: args.duration.clone(),
                channels: 6,
                seed: 1,
                out_of_order: 0.02,
                max_delay: "3s".into(),
                start_ts_ms: 0,
            })?;
            std::fs::rename(&tmp, &input)?;
        }
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..args.repeat.max(1) {
            let out = window::execute(&WindowArgs {
                config: config.clone(),
                input: input.clone(),
                out: args.dir.join("windows.csv"),
                format: None,
                late_out: None,
                no_late_out: false,
                skip_bad_rows: false,
                checkpoint_dir: None,
                stop_after_rows: None,
                threads: args.threads,
                chunk_rows: 64 * 1024,
            })?;
            rows = out.summary.rows_this_run;
            times.push(out.elapsed_s);
        }
        times.sort_by(f64::total_cmp);
        let best = times[0];
        let median = times[times.len() / 2];
        println!(
            "{:<8} {:>10} {:>9.3} {:>9.3} {:>12.2} {:>12.2}",
            format,
            rows,
            best,
            median,
            rows as f64 / best / 1e6,
            rows as f64 / median / 1e6
        );
    }
    Ok(())
}
