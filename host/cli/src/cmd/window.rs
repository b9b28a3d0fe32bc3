//! `pitwall window`: the smallest end-to-end job — read a file, window it, write windows.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use pitwall_engine::JobConfig;
use pitwall_engine::job::{JobOptions, run_job};
use pitwall_engine::output::{LateWriter, TableFormat, WindowJobSink};
use pitwall_engine::source::file::{FileFormat, FileSource};
use pitwall_engine::source::{OnError, SourceOptions};

#[derive(clap::Args, Debug)]
pub struct WindowArgs {
    /// Job config (schema, windows, aggregates), e.g. configs/window-bench.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Input telemetry: `.csv` (with a header row) or `.ndjson`/`.jsonl`.
    #[arg(long)]
    pub input: PathBuf,
    /// Output file: `.csv` or `.ndjson`, one row per (car, window), sorted.
    #[arg(long)]
    pub out: PathBuf,
    /// Input format, when the extension does not say.
    #[arg(long, value_parser = ["csv", "ndjson"])]
    pub format: Option<String>,
    /// Late rows go here as NDJSON (default: `<out>.late.ndjson`).
    #[arg(long)]
    pub late_out: Option<PathBuf>,
    /// Do not write late rows anywhere (they are still counted).
    #[arg(long, conflicts_with = "late_out")]
    pub no_late_out: bool,
    /// Skip malformed rows (counted and logged) instead of stopping at the first one.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Checkpoint into this directory; a later run with the same directory resumes.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Stop (with a checkpoint) after about this many rows — to test resuming.
    #[arg(long, requires = "checkpoint_dir")]
    pub stop_after_rows: Option<u64>,
    /// Parse threads (default: available cores, at most 4).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Rows per chunk.
    #[arg(long, default_value_t = 64 * 1024)]
    pub chunk_rows: usize,
}

/// What a `pitwall window` run did.
pub struct Outcome {
    pub summary: pitwall_engine::JobSummary,
    /// Config, parse, window and write, in seconds.
    pub elapsed_s: f64,
    /// The late-data file, if one was written and holds rows.
    pub late_path: Option<PathBuf>,
}

/// Runs the job and writes its outputs; prints nothing but the progress bar.
pub fn execute(args: &WindowArgs) -> anyhow::Result<Outcome> {
    // End to end: config, parse, window, write (the figure the summary reports).
    let started = std::time::Instant::now();
    let config = JobConfig::load(&args.config)?;
    let plan = Arc::new(
        config
            .plan()
            .with_context(|| format!("in {}", args.config.display()))?,
    );
    let out_format = TableFormat::from_path(&args.out).with_context(|| {
        format!(
            "cannot tell the output format of {}: use .csv or .ndjson",
            args.out.display()
        )
    })?;
    let in_format = match args.format.as_deref() {
        Some("csv") => Some(FileFormat::Csv),
        Some("ndjson") => Some(FileFormat::Ndjson),
        Some(other) => bail!("unknown input format {other}"),
        None => None,
    };
    let on_error = if args.skip_bad_rows {
        OnError::Skip
    } else {
        plan.on_error
    };
    let opts = SourceOptions {
        projection: plan.aggregates.used_channels().to_vec(),
        on_error,
        chunk_rows: args.chunk_rows.max(1),
    };
    let mut source = FileSource::open(&args.input, plan.schema.clone(), opts, in_format)?;
    if let Some(t) = args.threads {
        source = source.with_parse_threads(t);
    }
    let input_len = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);

    let late = if args.no_late_out {
        None
    } else {
        let path = args.late_out.clone().unwrap_or_else(|| {
            let mut p = args.out.clone().into_os_string();
            p.push(".late.ndjson");
            p.into()
        });
        Some(LateWriter::create(&path, &plan)?)
    };
    let mut sink = WindowJobSink::new(late);
    let job = JobOptions {
        checkpoint_dir: args.checkpoint_dir.clone(),
        stop_after_rows: args.stop_after_rows,
        stop: Some(super::stop_on_ctrl_c()),
        ..JobOptions::default()
    };
    let pb = super::progress_bar(input_len, "windowing");
    let summary = run_job(plan.clone(), Box::new(source), &mut sink, &job, &mut |p| {
        pb.set_position(p.position)
    })?;
    pb.finish_and_clear();
    if let Some(e) = sink.late_error.take() {
        bail!("writing late rows: {e}");
    }
    if let Some(late) = &mut sink.late {
        late.flush().context("writing late rows")?;
    }

    if summary.stopped_early && args.checkpoint_dir.is_none() {
        bail!(
            "stopped after {} rows, before the end of the input; no output was written \
             (give --checkpoint-dir to be able to stop and resume)",
            summary.rows_this_run
        );
    }
    if !summary.stopped_early {
        sink.table.write(&plan, &args.out, out_format)?;
    }
    let late_path = sink
        .late
        .as_ref()
        .filter(|_| summary.stats.late_rows > 0)
        .map(|l| l.path().to_path_buf());
    Ok(Outcome {
        summary,
        elapsed_s: started.elapsed().as_secs_f64(),
        late_path,
    })
}

pub fn run(args: &WindowArgs) -> anyhow::Result<()> {
    let Outcome {
        summary,
        elapsed_s,
        late_path,
    } = execute(args)?;
    let s = &summary.stats;
    if let Some(seq) = summary.resumed_from {
        eprintln!("resumed from checkpoint {seq}");
    }
    if summary.stopped_early {
        eprintln!(
            "stopped after {} rows; state checkpointed in {} — run again to resume",
            summary.rows_this_run,
            args.checkpoint_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
        return Ok(());
    }
    let late_where = late_path
        .map(|p| format!(" (in {})", p.display()))
        .unwrap_or_default();
    eprintln!(
        "rows {}  late {}{}  skipped {}  windows {}  cars {}  in {:.3} s end to end = {:.2} M rows/s",
        s.rows_in,
        s.late_rows,
        late_where,
        s.skipped_rows,
        s.windows_fired,
        s.late_rows_per_key.len(),
        elapsed_s,
        summary.rows_this_run as f64 / elapsed_s.max(1e-9) / 1e6,
    );
    Ok(())
}
