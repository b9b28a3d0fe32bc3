//! `pitwall export parquet`: a race or a window job as Parquet files for a
//! data lake (issue 6), written by `pitwall-lake`.
//!
//! * `--data DIR [--window 1s]`: replays the race folder into race frames
//!   exactly as `pitwall replay --frames-out` and `pitwall eval` do
//!   (`pitwall_race::session::race_frames_into`: OpenF1 positions or timing
//!   tables, race control and pit events, tyre stints, race distance) and
//!   writes `OUT/frames.parquet`, one row per car per window.
//! * `--config JOB.toml --input FILE`: runs the `pitwall window` job and
//!   writes its fired windows to `OUT/windows.parquet`, one row per key per
//!   window (late rows are counted, not exported).
//!
//! Both may be given at once. Each file streams in bounded row groups and
//! appears under its name only when complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use pitwall_engine::JobConfig;
use pitwall_engine::job::{JobOptions, run_job};
use pitwall_engine::source::SourceOptions;
use pitwall_engine::source::file::{FileFormat, FileSource};
use pitwall_engine::time::ConfigDuration;
use pitwall_lake::{
    AggregateColumns, AggregatesSink, AggregatesWriter, FramesWriter, LakeError, Stats,
    WriterOptions,
};
use pitwall_plugin_sdk::frame::RaceFrameData;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub format: ExportFormat,
}

#[derive(clap::Subcommand, Debug)]
pub enum ExportFormat {
    /// Race frames (`--data`) and/or window aggregates (`--config`, `--input`)
    /// as Parquet files in `--out`.
    Parquet(ParquetArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("what").args(["data", "config"]).required(true).multiple(true)
))]
pub struct ParquetArgs {
    /// A race folder, as `pitwall replay --data` reads it (OpenF1 positions or
    /// timing tables): writes `OUT/frames.parquet`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Window size of the race frames.
    #[arg(long, default_value = "1s")]
    pub window: String,
    /// A `pitwall window` job config (e.g. configs/window-bench.toml): with
    /// `--input`, writes its windows to `OUT/windows.parquet`.
    #[arg(long, requires = "input")]
    pub config: Option<PathBuf>,
    /// The job's input telemetry: `.csv` (with a header row) or `.ndjson`/`.jsonl`.
    #[arg(long, requires = "config")]
    pub input: Option<PathBuf>,
    /// Input format, when the extension does not say.
    #[arg(long, value_parser = ["csv", "ndjson"], requires = "input")]
    pub input_format: Option<String>,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Rows per Parquet row group (memory holds one group while writing).
    #[arg(long, default_value_t = pitwall_lake::DEFAULT_ROW_GROUP_ROWS)]
    pub row_group_rows: usize,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    match &args.format {
        ExportFormat::Parquet(a) => parquet(a),
    }
}

fn parquet(args: &ParquetArgs) -> anyhow::Result<()> {
    if args.row_group_rows == 0 {
        bail!("--row-group-rows must be at least 1");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output folder {}", args.out.display()))?;
    let options = WriterOptions {
        row_group_rows: args.row_group_rows,
    };
    if let Some(data) = &args.data {
        export_frames(
            data,
            &args.window,
            &args.out.join("frames.parquet"),
            options,
        )?;
    }
    if let (Some(config), Some(input)) = (&args.config, &args.input) {
        export_windows(
            config,
            input,
            args.input_format.as_deref(),
            &args.out.join("windows.parquet"),
            options,
        )?;
    }
    Ok(())
}

/// Race frames into a [`FramesWriter`]. The frame assembler cannot stop on
/// a sink error, so the first one is kept here and later frames are skipped.
struct ParquetFrames {
    writer: FramesWriter,
    error: Option<LakeError>,
}

impl pitwall_race::frames::FrameSink for ParquetFrames {
    fn frame(&mut self, f: &RaceFrameData) -> std::io::Result<()> {
        if self.error.is_none()
            && let Err(e) = self.writer.write(f)
        {
            self.error = Some(e);
        }
        Ok(())
    }
}

fn export_frames(
    data: &Path,
    window: &str,
    path: &Path,
    options: WriterOptions,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let window = ConfigDuration::try_from(window.to_string()).map_err(anyhow::Error::msg)?;
    let window_ms = i64::try_from(window.0.as_millis()).unwrap_or(i64::MAX);
    if window_ms < 1 {
        bail!("--window must be at least 1ms");
    }
    let sink = ParquetFrames {
        writer: FramesWriter::create_with(path, options)?,
        error: None,
    };
    let (sink, _) = pitwall_race::session::race_frames_into(data, window_ms, sink)
        .with_context(|| format!("replaying {}", data.display()))?;
    if let Some(e) = sink.error {
        return Err(e.into());
    }
    let stats = sink.writer.finish()?;
    report(
        &stats.file,
        &format!("{} frames", stats.frames),
        started.elapsed().as_secs_f64(),
    );
    if stats.frames_without_cars > 0 {
        eprintln!(
            "note: {} frames had no car and have no row",
            stats.frames_without_cars
        );
    }
    if stats.pit_events_without_car > 0 {
        eprintln!(
            "note: {} pit events were of cars absent from their frame and are not in the file",
            stats.pit_events_without_car
        );
    }
    Ok(())
}

fn export_windows(
    config: &Path,
    input: &Path,
    format: Option<&str>,
    path: &Path,
    options: WriterOptions,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Arc::new(
        JobConfig::load(config)?
            .plan()
            .with_context(|| format!("in {}", config.display()))?,
    );
    let format = match format {
        Some("csv") => Some(FileFormat::Csv),
        Some("ndjson") => Some(FileFormat::Ndjson),
        Some(other) => bail!("unknown input format {other}"),
        None => None,
    };
    let opts = SourceOptions {
        projection: plan.aggregates.used_channels().to_vec(),
        on_error: plan.on_error,
        chunk_rows: 64 * 1024,
    };
    let source = FileSource::open(input, plan.schema.clone(), opts, format)?;
    let input_len = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    let writer = AggregatesWriter::create_with(path, AggregateColumns::from_plan(&plan), options)?;
    let mut sink = AggregatesSink::new(writer);
    let job = JobOptions {
        stop: Some(super::stop_on_ctrl_c()),
        ..JobOptions::default()
    };
    let pb = super::progress_bar(input_len, "windowing");
    let summary = run_job(plan, Box::new(source), &mut sink, &job, &mut |p| {
        pb.set_position(p.position)
    })?;
    pb.finish_and_clear();
    if summary.stopped_early {
        // Dropping the sink removes the unfinished file.
        bail!(
            "stopped after {} rows, before the end of the input; no file was written",
            summary.rows_this_run
        );
    }
    let stats = sink.finish()?;
    let s = &summary.stats;
    report(
        &stats,
        &format!(
            "{} windows of {} rows ({} late rows not exported)",
            s.windows_fired, s.rows_in, s.late_rows
        ),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn report(stats: &Stats, what: &str, elapsed_s: f64) {
    eprintln!(
        "wrote {what} to {}: {} rows in {} row groups, {:.2} MiB, in {elapsed_s:.2} s",
        stats.path.display(),
        stats.rows,
        stats.row_groups,
        stats.bytes as f64 / (1024.0 * 1024.0),
    );
}
