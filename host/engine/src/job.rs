//! Running a job: a source, the window engine and a sink, joined by a bounded queue.
//!
//! ```text
//! [reader thread] Source::next_chunk ──bounded queue──► [job thread] WindowEngine ──► JobSink
//!                                                          │ every `interval` of event time
//!                                                          └► CheckpointStore
//! ```
//!
//! Back-pressure: the queue holds at most `queue_capacity` chunks; when the engine
//! is slower than the source, the reader blocks on the full queue and the source
//! stops reading (a file source's parse workers stop too). Nothing is buffered
//! without bound. The queue depth is exported as `pitwall_queue_depth{stage="engine_input"}`.
//!
//! Checkpoints are taken between chunks — a consistent cut of source position,
//! engine state and sink state — whenever the watermark passes the next multiple
//! of the checkpoint interval, when the job is asked to stop, and at the end.
//! On start, the newest checkpoint in the directory is restored and the source
//! resumes after its position.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::batch::RowChunk;
use crate::checkpoint::{CheckpointRef, CheckpointStore};
use crate::config::JobPlan;
use crate::engine::{Collector, EngineStats, WindowEngine};
use crate::error::{EngineError, SourceError};
use crate::source::Source;
use crate::time::EventTime;

/// What the reader thread hands the job thread.
enum SourceItem {
    Chunk(RowChunk),
    /// The source said its input ended.
    End,
    Failed(SourceError),
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    format!("the source panicked: {msg}")
}

/// A job's output: a collector whose state can be checkpointed with the engine's.
pub trait JobSink: Collector {
    /// The sink's state at this point (flush files first).
    fn snapshot(&mut self) -> Result<Vec<u8>, EngineError> {
        Ok(Vec::new())
    }
    /// Continues from a checkpointed state.
    fn restore(&mut self, _state: &[u8]) -> Result<(), EngineError> {
        Ok(())
    }
}

/// How to run a job.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Where checkpoints are written and restored from; `None`: no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Chunks between the source and the engine.
    pub queue_capacity: usize,
    /// Stop (with a checkpoint) at the first chunk boundary at or after this many rows.
    pub stop_after_rows: Option<u64>,
    /// Set to stop at the next chunk boundary (with a checkpoint), e.g. on Ctrl-C.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            checkpoint_dir: None,
            queue_capacity: 4,
            stop_after_rows: None,
            stop: None,
        }
    }
}

/// Progress, reported after each chunk.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Rows processed by this run (not counting rows before a restored checkpoint).
    pub rows: u64,
    /// Source position after the last chunk.
    pub position: u64,
    pub watermark: Option<EventTime>,
}

/// What a job did.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// Counters over the whole job, including the part before a restored checkpoint.
    pub stats: EngineStats,
    /// Rows processed by this run.
    pub rows_this_run: u64,
    /// Wall-clock time of this run (reporting only; never used by operators).
    pub elapsed: Duration,
    /// The checkpoint this run resumed from.
    pub resumed_from: Option<u64>,
    pub checkpoints_written: u64,
    /// The job stopped before the end of input (asked to); a checkpoint holds its state.
    pub stopped_early: bool,
    /// The watermark at the end.
    pub watermark: Option<EventTime>,
}

impl JobSummary {
    /// Rows per second of this run.
    pub fn rows_per_second(&self) -> f64 {
        self.rows_this_run as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `source` through the window engine into `sink` until the end of input
/// (or a stop request), checkpointing as configured.
pub fn run_job(
    plan: Arc<JobPlan>,
    mut source: Box<dyn Source>,
    sink: &mut dyn JobSink,
    opts: &JobOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<JobSummary, EngineError> {
    let started = Instant::now();
    let source_name = source.name().to_string();
    let span = tracing::info_span!("job", source = %source_name);
    let _enter = span.enter();

    let store = opts
        .checkpoint_dir
        .as_ref()
        .map(CheckpointStore::open)
        .transpose()?;
    let mut engine = WindowEngine::new(plan.clone());
    let mut seq = 0;
    let mut position = 0;
    let mut resumed_from = None;
    if let Some(store) = &store
        && let Some(cp) = store.latest(plan.fingerprint)?
    {
        tracing::info!(
            seq = cp.seq,
            position = cp.source_position,
            "restoring checkpoint"
        );
        engine = WindowEngine::from_state(plan.clone(), cp.engine);
        sink.restore(&cp.sink)?;
        source.seek(cp.source_position)?;
        source.resume_after(engine.max_event_time());
        seq = cp.seq;
        position = cp.source_position;
        resumed_from = Some(cp.seq);
    }
    let interval = plan.checkpoint_interval;
    // The first multiple of the interval after `wm`: checkpoints fall on the same
    // event times in every run, whatever the chunking.
    let next_after = |wm: EventTime| -> EventTime {
        wm.div_euclid(interval)
            .saturating_add(1)
            .saturating_mul(interval)
    };
    let mut next_checkpoint = engine.watermark().map(next_after);
    let mut checkpoints_written = 0;
    let mut write_checkpoint = |engine: &WindowEngine,
                                sink: &mut dyn JobSink,
                                position: u64,
                                finished: bool,
                                seq: &mut u64|
     -> Result<(), EngineError> {
        if let Some(store) = &store {
            *seq += 1;
            let sink_state = sink.snapshot()?;
            let cp = CheckpointRef {
                fingerprint: plan.fingerprint,
                seq: *seq,
                source_position: position,
                finished,
                engine: engine.state(),
                sink: &sink_state,
            };
            let path = store.write(cp)?;
            tracing::debug!(path = %path.display(), "checkpoint written");
            checkpoints_written += 1;
        }
        Ok(())
    };

    let (tx, rx) = bounded::<SourceItem>(opts.queue_capacity.max(1));
    // Processed chunks go back to the source for reuse (bounded; extras are dropped).
    let (done_tx, done_rx) = bounded::<RowChunk>(opts.queue_capacity.max(1) + 2);
    let reader = std::thread::Builder::new()
        .name("pitwall-source".into())
        .spawn(move || {
            loop {
                while let Ok(used) = done_rx.try_recv() {
                    source.recycle(used);
                }
                let item = source.next_chunk();
                let done = !matches!(item, Ok(Some(_)));
                let sent = match item {
                    Ok(Some(chunk)) => tx.send(SourceItem::Chunk(chunk)),
                    Ok(None) => tx.send(SourceItem::End),
                    Err(e) => tx.send(SourceItem::Failed(e)),
                };
                if sent.is_err() || done {
                    break;
                }
            }
        })
        .map_err(|e| EngineError::Stage {
            stage: "source",
            reason: format!("cannot start the reader thread: {e}"),
        })?;

    let mut rows_this_run = 0u64;
    let mut stopped_early = false;
    let stop_requested = || {
        opts.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    };
    loop {
        metrics::gauge!("pitwall_queue_depth", "stage" => "engine_input").set(rx.len() as f64);
        let chunk = match rx.recv() {
            Ok(SourceItem::Chunk(chunk)) => chunk,
            Ok(SourceItem::End) => break,
            Ok(SourceItem::Failed(e)) => return Err(e.into()),
            Err(_) => {
                // The reader vanished without saying the input ended: it panicked.
                // Never mistake that for the end of input (that would fire every
                // window and mark the job finished on partial data).
                let reason = match reader.join() {
                    Err(p) => panic_message(p.as_ref()),
                    Ok(()) => "the reader thread stopped without a reason".into(),
                };
                return Err(EngineError::Stage {
                    stage: "source",
                    reason,
                });
            }
        };
        engine.process_chunk(&chunk, sink).map_err(|mut e| {
            e.location.source = source_name.clone();
            SourceError::Malformed(e)
        })?;
        rows_this_run += chunk.len() as u64;
        position = chunk.end_position;
        let _ = done_tx.try_send(chunk);
        let wm = engine.watermark();
        progress(&Progress {
            rows: rows_this_run,
            position,
            watermark: wm,
        });
        match (wm, next_checkpoint) {
            (Some(wm), Some(next)) if wm >= next => {
                write_checkpoint(&engine, sink, position, false, &mut seq)?;
                next_checkpoint = Some(next_after(wm));
            }
            (Some(wm), None) => next_checkpoint = Some(next_after(wm)),
            _ => {}
        }
        if opts.stop_after_rows.is_some_and(|n| rows_this_run >= n) || stop_requested() {
            write_checkpoint(&engine, sink, position, false, &mut seq)?;
            stopped_early = true;
            break;
        }
    }
    drop(rx);
    if !stopped_early {
        let _ = reader.join();
        // The last checkpoint is taken *before* the end-of-input flush: a rerun
        // (perhaps after the file grew) restores the open windows, reads on and
        // flushes them itself, instead of firing the last windows twice.
        write_checkpoint(&engine, sink, position, true, &mut seq)?;
        engine.finish(sink);
    }
    let summary = JobSummary {
        stats: engine.stats().clone(),
        rows_this_run,
        elapsed: started.elapsed(),
        resumed_from,
        checkpoints_written,
        stopped_early,
        watermark: engine.watermark(),
    };
    tracing::info!(
        rows = summary.rows_this_run,
        late = summary.stats.late_rows,
        windows = summary.stats.windows_fired,
        "job {}",
        if stopped_early { "stopped" } else { "finished" }
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::broadcast::BroadcastEvent;
    use crate::config::JobConfig;
    use crate::engine::{LateRow, WindowResult};
    use crate::schema::Schema;
    use crate::source::memory::{MemorySource, Row};

    const CONFIG: &str = include_str!("../../../configs/window-bench.toml");

    /// Counts the chunks its inner source hands out.
    struct Counting {
        inner: MemorySource,
        produced: Arc<AtomicUsize>,
    }

    impl Source for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn schema(&self) -> &Schema {
            self.inner.schema()
        }
        fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
            let c = self.inner.next_chunk()?;
            if c.is_some() {
                self.produced.fetch_add(1, Ordering::SeqCst);
            }
            Ok(c)
        }
        fn seek(&mut self, position: u64) -> Result<(), SourceError> {
            self.inner.seek(position)
        }
    }

    /// Blocks on its first window until released: a consumer that has stalled.
    struct Stalled {
        blocked: crossbeam_channel::Sender<()>,
        release: crossbeam_channel::Receiver<()>,
        windows: usize,
    }

    impl Collector for Stalled {
        fn window(&mut self, _w: WindowResult) {
            if self.windows == 0 {
                let _ = self.blocked.send(());
                let _ = self.release.recv();
            }
            self.windows += 1;
        }
        fn late(&mut self, _row: LateRow<'_>) {}
    }
    impl JobSink for Stalled {}

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                ts: (i as i64 / 2) * 10,
                key: (i % 2).to_string(),
                values: vec![100.0, 10000.0, 50.0, 0.0, 5.0, 0.0],
            })
            .collect()
    }

    #[test]
    fn a_stalled_consumer_stops_the_source_instead_of_buffering() {
        let plan = Arc::new(JobConfig::parse(CONFIG).unwrap().plan().unwrap());
        let produced = Arc::new(AtomicUsize::new(0));
        let total_chunks = 200;
        let source = Counting {
            inner: MemorySource::new(plan.schema.clone(), rows(total_chunks * 100), 100),
            produced: produced.clone(),
        };
        let (blocked_tx, blocked_rx) = crossbeam_channel::bounded(1);
        let (release_tx, release_rx) = crossbeam_channel::bounded(1);
        let opts = JobOptions {
            queue_capacity: 3,
            ..JobOptions::default()
        };
        let job = std::thread::spawn(move || {
            let mut sink = Stalled {
                blocked: blocked_tx,
                release: release_rx,
                windows: 0,
            };
            let summary = run_job(plan, Box::new(source), &mut sink, &opts, &mut |_| {});
            (summary.map(|s| s.stats.rows_in), sink.windows)
        });
        blocked_rx.recv().unwrap();
        // Give the reader every chance to run ahead if the queue were unbounded;
        // the bound below holds however long this takes.
        std::thread::sleep(Duration::from_millis(200));
        let while_stalled = produced.load(Ordering::SeqCst);
        // The first window fires in chunk 7 (when a row reaches 3000 ms: window
        // [0, 1000) + the 2 s bound); then at most the queue (3) and the chunk in
        // the reader's hands (1) can have been produced.
        assert!(
            while_stalled <= 7 + 3 + 1,
            "the source ran ahead of a stalled engine: {while_stalled} chunks produced"
        );
        release_tx.send(()).unwrap();
        let (rows, windows) = job.join().unwrap();
        assert_eq!(rows.unwrap(), (total_chunks * 100) as u64);
        assert_eq!(produced.load(Ordering::SeqCst), total_chunks);
        assert!(windows > 0);
    }

    /// Panics on its third chunk.
    struct Panicking(MemorySource, usize);

    impl Source for Panicking {
        fn name(&self) -> &str {
            "panicking"
        }
        fn schema(&self) -> &Schema {
            self.0.schema()
        }
        fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
            self.1 += 1;
            assert!(self.1 < 3, "decoder bug");
            self.0.next_chunk()
        }
        fn seek(&mut self, position: u64) -> Result<(), SourceError> {
            self.0.seek(position)
        }
    }

    #[test]
    fn a_panicking_source_fails_the_job_instead_of_ending_it() {
        let plan = Arc::new(JobConfig::parse(CONFIG).unwrap().plan().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let source = Panicking(MemorySource::new(plan.schema.clone(), rows(1000), 100), 0);
        let mut sink = crate::output::WindowJobSink::new(None);
        let opts = JobOptions {
            checkpoint_dir: Some(dir.path().to_path_buf()),
            ..JobOptions::default()
        };
        let err = run_job(
            plan.clone(),
            Box::new(source),
            &mut sink,
            &opts,
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("panicked") && err.contains("decoder bug"),
            "{err}"
        );
        // No checkpoint claims the job finished.
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert!(
            store
                .latest(plan.fingerprint)
                .unwrap()
                .is_none_or(|cp| !cp.finished)
        );
    }

    #[test]
    fn broadcast_events_reach_windows_through_a_job() {
        let plan = Arc::new(JobConfig::parse(CONFIG).unwrap().plan().unwrap());
        let event = BroadcastEvent {
            ts: 1500,
            kind: crate::broadcast::EventKind::SafetyCar,
            car: None,
            value: "DEPLOYED".into(),
        };
        let source =
            MemorySource::new(plan.schema.clone(), rows(2000), 64).with_events(vec![(10, event)]);
        let mut sink = crate::engine::VecCollector::default();
        struct Sink<'a>(&'a mut crate::engine::VecCollector);
        impl Collector for Sink<'_> {
            fn window(&mut self, w: WindowResult) {
                self.0.window(w)
            }
        }
        impl JobSink for Sink<'_> {}
        run_job(
            plan,
            Box::new(source),
            &mut Sink(&mut sink),
            &JobOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        for w in &sink.windows {
            assert_eq!(
                w.broadcast.safety_car,
                w.start >= 1000,
                "window {}",
                w.start
            );
        }
    }
}
