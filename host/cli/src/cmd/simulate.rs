//! `pitwall simulate`: write simulated car telemetry to a CSV or NDJSON file.
//!
//! In: simulator settings from the command line. Out: a file of
//! `ts_ms,car,speed,rpm,throttle,brake,gear,drs[,…]` rows in delivery order (a
//! configurable share of them out of order, some beyond the window benchmark's 2 s
//! bound), plus a one-line summary on stderr. The defaults produce the window
//! benchmark's input: 20 cars × 240 Hz × 1000 s = 4.8 M rows.
//!
//! The same seed and settings always give a byte-identical file, so benchmark
//! inputs never need to be shipped.

use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use pitwall_engine::row_writer::{RowFormat, RowWriter};
use pitwall_engine::source::sim::{SimConfig, Simulator};
use pitwall_engine::source::{Source, SourceOptions};
use pitwall_engine::time::{ConfigDuration, TimeUnit};

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Output file: `.csv`, or `.ndjson`/`.jsonl`.
    #[arg(long)]
    pub out: PathBuf,
    /// Output format, when the extension does not say.
    #[arg(long, value_parser = ["csv", "ndjson"])]
    pub format: Option<String>,
    /// Cars on track (1–99), numbered like the F1 grid.
    #[arg(long, default_value_t = 20)]
    pub cars: usize,
    /// Samples per car per second (1–1000).
    #[arg(long, default_value_t = 240)]
    pub rate_hz: u32,
    /// Event time to simulate (e.g. `1000s`, `10m`).
    #[arg(long, default_value = "1000s")]
    pub duration: String,
    /// Channels per row (≥ 6): speed, rpm, throttle, brake, gear, drs, then extra
    /// channels (tyre/brake temperatures, suspension, ERS, fuel, g, … sensor_NNN).
    #[arg(long, default_value_t = 6)]
    pub channels: usize,
    /// Seed: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Fraction of rows delivered out of order (0–1).
    #[arg(long = "out-of-order", default_value_t = 0.02)]
    pub out_of_order: f64,
    /// Largest delay of an out-of-order row, in event time (e.g. `3s`).
    #[arg(long, default_value = "3s")]
    pub max_delay: String,
    /// Event time of the first sample, in ms.
    #[arg(long, default_value_t = 0)]
    pub start_ts_ms: i64,
}

/// Values per chunk: keeps chunks around 32 MiB whatever the channel count.
const CHUNK_VALUES: usize = 4 << 20;

pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let duration = ConfigDuration::try_from(args.duration.clone()).map_err(anyhow::Error::msg)?;
    let max_delay = ConfigDuration::try_from(args.max_delay.clone()).map_err(anyhow::Error::msg)?;
    let max_delay_ms = TimeUnit::Ms.ticks(max_delay.0, "--max-delay")? as u64;
    let cfg = SimConfig {
        cars: args.cars,
        rate_hz: args.rate_hz,
        duration,
        channels: args.channels,
        seed: args.seed,
        out_of_order_fraction: args.out_of_order,
        max_delay_ms,
        start_ts_ms: args.start_ts_ms,
        pace: None,
        ..SimConfig::default()
    };
    let format = match &args.format {
        Some(f) => f.parse::<RowFormat>().map_err(anyhow::Error::msg)?,
        None => match RowFormat::from_path(&args.out) {
            Some(f) => f,
            None => bail!(
                "cannot tell the format of {} from its extension; use .csv or .ndjson, or pass --format",
                args.out.display()
            ),
        },
    };

    let schema = cfg.schema();
    let mut opts = SourceOptions::all(&schema);
    opts.chunk_rows = (CHUNK_VALUES / cfg.channels.max(1)).clamp(1024, 64 * 1024);
    let channels = cfg.channels as u64;
    let mut sim = Simulator::new(cfg, opts)?;
    let total = sim.total_rows();

    let file =
        File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut writer = RowWriter::new(BufWriter::with_capacity(8 << 20, file), &schema, format);
    let _span = tracing::info_span!("simulate", rows = total, out = %args.out.display()).entered();

    let pb = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulate [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };

    let t0 = Instant::now();
    let write_err =
        |e| anyhow::Error::new(e).context(format!("cannot write {}", args.out.display()));
    while let Some(chunk) = sim.next_chunk()? {
        writer.write_chunk(&chunk).map_err(write_err)?;
        pb.inc(chunk.len() as u64);
    }
    let rows = writer.rows_written();
    let bytes = writer.bytes_written();
    let out = writer.finish().map_err(write_err)?;
    // Hands the last buffered bytes to the OS (no fsync: this is a benchmark input).
    out.into_inner().map_err(|e| write_err(e.into_error()))?;
    pb.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "wrote {rows} rows ({} values, {:.1} MB) to {} in {secs:.2} s ({:.2} M rows/s)",
        rows * channels,
        bytes as f64 / 1e6,
        args.out.display(),
        rows as f64 / secs.max(1e-9) / 1e6,
    );
    Ok(())
}
