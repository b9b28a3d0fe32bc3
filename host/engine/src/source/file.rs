//! [`FileSource`]: telemetry files (CSV or NDJSON) read by the schema, in parallel,
//! delivered in file order.
//!
//! **In:** a file path, the job's [`Schema`] and [`SourceOptions`].
//! **Out:** [`RowChunk`]s of about `chunk_rows` rows, in file order, with absolute
//! 1-based physical line numbers and `end_position` = the byte offset just after
//! the chunk (what a checkpoint stores and [`Source::seek`] takes back).
//!
//! **How, and why this way:** a replay file is parsed far faster than one core can
//! manage, so the file is memory-mapped and this module — the *consumer*, running
//! on the engine's thread — cuts it into blocks at newline boundaries (block size
//! estimated from the first lines' average length) and hands them to
//! `parse_threads` worker threads. Every block gets its own single-slot reply
//! channel, and the consumer keeps those channels in file order, so chunks come
//! out in order whatever order the workers finish in. At most `2 × threads + 1`
//! blocks are in flight: a slow consumer stalls the workers instead of letting
//! parsed chunks pile up in memory.
//!
//! Workers number lines relative to their block (they cannot know how many lines
//! the blocks before theirs hold); the consumer, which sees blocks in order, adds
//! the block's first line number. Malformed records are handled the same way: the
//! worker records the first error (under [`OnError::Fail`]) or counts the skipped
//! rows and keeps the first few reasons (under [`OnError::Skip`]); the consumer
//! reports them in file order, so the outcome is deterministic however many
//! threads parse.
//!
//! The format-specific parsing lives in [`super::csv`] and [`super::ndjson`]; what
//! both share — the resolved schema (`RowSpec`), the per-block output
//! (`BlockWriter`, with key interning) and the number parsers — is here.
//!
//! The file must not be truncated while it is being read (it is memory-mapped).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use memchr::memchr;

use crate::batch::RowChunk;
use crate::error::{RecordError, RecordLocation, SourceError};
use crate::schema::{ChannelType, KeyType, Schema};
use crate::source::{OnError, Source, SourceOptions};
use crate::time::EventTime;

/// Malformed-record reasons logged per source before going quiet.
const MAX_LOGGED_SKIPS: usize = 10;

/// Upper bound on parse threads picked by default.
const DEFAULT_MAX_THREADS: usize = 4;

/// Bytes sampled at the start of the data to estimate the average line length.
const SAMPLE_BYTES: usize = 64 * 1024;

/// The text format of a telemetry file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated values with a header row naming the columns.
    Csv,
    /// One flat JSON object per line.
    Ndjson,
}

impl FileFormat {
    /// The format implied by the file extension: `.csv`; `.ndjson`, `.jsonl`, `.json`.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(FileFormat::Csv),
            "ndjson" | "jsonl" | "json" => Some(FileFormat::Ndjson),
            _ => None,
        }
    }
}

/// A CSV or NDJSON telemetry file, parsed in parallel, yielding chunks in file order.
///
/// Worker threads start on the first [`Source::next_chunk`] (so [`Source::seek`]
/// and [`FileSource::with_parse_threads`] can come first) and stop when the file
/// is exhausted, on the first error under [`OnError::Fail`], or on drop.
pub struct FileSource {
    name: String,
    path: PathBuf,
    schema: Schema,
    format: FileFormat,
    data: Arc<FileBytes>,
    parser: Arc<dyn BlockParse>,
    chunk_rows: usize,
    threads: usize,
    /// First byte of data (after a BOM and the CSV header).
    data_start: usize,
    /// Target block length in bytes.
    block_bytes: usize,
    /// Average line length used for row-capacity estimates.
    avg_line: f64,
    /// Next byte not yet handed to a worker.
    cut: usize,
    /// Absolute line number of the first line of the next block to be consumed.
    line_base: u64,
    started: bool,
    finished: bool,
    /// An error to return on the next call (Fail: rows before it went out first).
    pending_error: Option<SourceError>,
    logged_skips: usize,
    pipeline: Option<Pipeline>,
    /// Chunks handed back by the engine for reuse.
    pool: ChunkPool,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("threads", &self.threads)
            .field("chunk_rows", &self.chunk_rows)
            .field("cut", &self.cut)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// Opens `path`, reads the CSV header if there is one and checks it against
    /// `schema`. `format` defaults to the one the extension implies.
    pub fn open(
        path: &Path,
        schema: Schema,
        opts: SourceOptions,
        format: Option<FileFormat>,
    ) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let invalid = |msg: String| SourceError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, msg),
        };
        let format = format
            .or_else(|| FileFormat::from_path(path))
            .ok_or_else(|| {
                invalid(
                    "cannot tell the file format from the extension: name the file .csv, \
                 .ndjson, .jsonl or .json, or give the format explicitly"
                        .into(),
                )
            })?;
        schema.validate().map_err(|e| invalid(e.to_string()))?;
        let data = Arc::new(FileBytes::open(path)?);
        let bytes = data.bytes();
        let mut data_start = if bytes.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        let mut line_base = 1;
        let spec = RowSpec::new(schema.clone(), &opts);
        let parser: Arc<dyn BlockParse> = match format {
            FileFormat::Csv => {
                let header_end =
                    memchr(b'\n', &bytes[data_start..]).map_or(bytes.len(), |i| data_start + i + 1);
                let header = &bytes[data_start..header_end];
                let parser =
                    super::csv::CsvParser::from_header(header, spec).map_err(|reason| {
                        SourceError::Malformed(RecordError {
                            location: RecordLocation {
                                source: name.clone(),
                                line: 1,
                            },
                            reason,
                        })
                    })?;
                data_start = header_end;
                line_base = 2;
                Arc::new(parser)
            }
            FileFormat::Ndjson => Arc::new(super::ndjson::NdjsonParser::new(spec)),
        };
        let chunk_rows = opts.chunk_rows.max(1);
        let sample = &bytes[data_start..bytes.len().min(data_start + SAMPLE_BYTES)];
        let newlines = memchr::memchr_iter(b'\n', sample).count();
        let avg_line = if newlines == 0 {
            sample.len().max(1) as f64
        } else {
            sample.len() as f64 / newlines as f64
        };
        let block_bytes = ((avg_line * chunk_rows as f64) as usize).max(1);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, DEFAULT_MAX_THREADS);
        Ok(FileSource {
            name,
            path: path.to_path_buf(),
            schema,
            format,
            data,
            parser,
            chunk_rows,
            threads,
            data_start,
            block_bytes,
            avg_line,
            cut: data_start,
            line_base,
            started: false,
            finished: false,
            pending_error: None,
            logged_skips: 0,
            pipeline: None,
            pool: ChunkPool::default(),
        })
    }

    /// Sets the number of parse worker threads (at least 1). Default: the machine's
    /// parallelism, capped at 4. Takes effect if called before the first chunk.
    pub fn with_parse_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The number of parse worker threads.
    pub fn parse_threads(&self) -> usize {
        self.threads
    }

    /// The file's format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The file's path, as given to [`FileSource::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks handed to workers but not yet taken by the consumer.
    fn max_in_flight(&self) -> usize {
        2 * self.threads + 1
    }

    fn start(&mut self) {
        self.started = true;
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        let cancel = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(AtomicUsize::new(0));
        let workers = (0..self.threads)
            .map(|i| {
                let rx = job_rx.clone();
                let data = Arc::clone(&self.data);
                let parser = Arc::clone(&self.parser);
                let cancel = Arc::clone(&cancel);
                let ready = Arc::clone(&ready);
                let pool = Arc::clone(&self.pool);
                std::thread::Builder::new()
                    .name(format!("pitwall-parse-{i}"))
                    .spawn(move || worker(rx, data, parser, cancel, ready, pool))
            })
            .filter_map(Result::ok)
            .collect::<Vec<_>>();
        self.pipeline = Some(Pipeline {
            jobs: Some(job_tx),
            pending: VecDeque::new(),
            workers,
            cancel,
            ready,
        });
    }

    /// Hands blocks to the workers until `max_in_flight` are pending.
    fn top_up(&mut self) {
        let max = self.max_in_flight();
        let len = self.data.bytes().len();
        while self
            .pipeline
            .as_ref()
            .is_some_and(|p| p.pending.len() < max)
            && self.cut < len
        {
            let start = self.cut;
            let probe = start + self.block_bytes - 1;
            let end = if probe >= len {
                len
            } else {
                memchr(b'\n', &self.data.bytes()[probe..]).map_or(len, |i| probe + i + 1)
            };
            self.cut = end;
            let est_rows = ((end - start) as f64 / self.avg_line * 1.05) as usize + 16;
            let (tx, rx) = crossbeam_channel::bounded(1);
            let Some(p) = self.pipeline.as_mut() else {
                return;
            };
            let job = Job {
                start,
                end,
                est_rows: est_rows.min(self.chunk_rows.saturating_mul(4).max(1024)),
                reply: tx,
            };
            if let Some(jobs) = &p.jobs
                && jobs.send(job).is_ok()
            {
                p.pending.push_back(rx);
            }
        }
    }

    /// Stops the workers: queued blocks are dropped, a block being parsed is finished.
    fn stop(&mut self) {
        if let Some(mut p) = self.pipeline.take() {
            p.cancel.store(true, Ordering::Relaxed);
            p.jobs = None;
            p.pending.clear();
            for h in p.workers.drain(..) {
                let _ = h.join();
            }
            queue_gauge(0);
        }
    }

    fn record_error(&self, line: u64, reason: String) -> SourceError {
        SourceError::Malformed(RecordError {
            location: RecordLocation {
                source: self.name.clone(),
                line,
            },
            reason,
        })
    }

    fn log_skips(&mut self, samples: &[(u64, String)]) {
        for (line, reason) in samples {
            if self.logged_skips >= MAX_LOGGED_SKIPS {
                return;
            }
            self.logged_skips += 1;
            tracing::warn!(source = %self.name, line = *line, "skipping malformed record: {reason}");
            if self.logged_skips == MAX_LOGGED_SKIPS {
                tracing::warn!(
                    source = %self.name,
                    "further malformed records are skipped and counted without logging"
                );
            }
        }
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn next_chunk(&mut self) -> Result<Option<RowChunk>, SourceError> {
        if let Some(e) = self.pending_error.take() {
            self.finished = true;
            self.stop();
            return Err(e);
        }
        if self.finished {
            return Ok(None);
        }
        if !self.started {
            self.start();
        }
        loop {
            self.top_up();
            let Some(rx) = self.pipeline.as_mut().and_then(|p| p.pending.pop_front()) else {
                self.finished = true;
                self.stop();
                return Ok(None);
            };
            let received = rx.recv();
            if let Some(p) = &self.pipeline {
                let left = p.ready.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
                queue_gauge(left);
            }
            let Ok(mut res) = received else {
                self.finished = true;
                self.stop();
                return Err(SourceError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other("a parse worker thread stopped unexpectedly"),
                });
            };
            // Keep the workers busy while this chunk is finished off.
            self.top_up();
            if let Some(msg) = res.panic {
                self.finished = true;
                self.stop();
                return Err(SourceError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(format!(
                        "internal error while parsing bytes {}..{}: {msg}",
                        res.start, res.end
                    )),
                });
            }
            let base = self.line_base;
            for l in &mut res.chunk.lines {
                *l += base;
            }
            self.line_base += res.lines;
            let samples: Vec<(u64, String)> = res
                .skip_samples
                .drain(..)
                .map(|(l, r)| (l + base, r))
                .collect();
            self.log_skips(&samples);
            if res.chunk.skipped > 0 {
                metrics::counter!("pitwall_source_skipped_rows_total").increment(res.chunk.skipped);
            }
            let mut chunk = res.chunk;
            chunk.end_position = res.end as u64;
            if let Some(err) = res.error {
                let e = self.record_error(base + err.line, err.reason);
                self.stop();
                if chunk.is_empty() {
                    self.finished = true;
                    return Err(e);
                }
                chunk.end_position = (res.start + err.offset) as u64;
                self.pending_error = Some(e);
                chunk.debug_assert_consistent();
                return Ok(Some(chunk));
            }
            if chunk.is_empty() && chunk.skipped == 0 {
                continue;
            }
            chunk.debug_assert_consistent();
            return Ok(Some(chunk));
        }
    }

    fn seek(&mut self, position: u64) -> Result<(), SourceError> {
        let fail = |reason: String| SourceError::Seek {
            source_name: self.name.clone(),
            position,
            reason,
        };
        if self.started {
            return Err(fail("seek must come before the first chunk is read".into()));
        }
        let bytes = self.data.bytes();
        let Ok(pos) = usize::try_from(position) else {
            return Err(fail("position is beyond the end of the file".into()));
        };
        if pos > bytes.len() {
            return Err(fail(format!(
                "position is beyond the end of the file ({} bytes); was the file replaced?",
                bytes.len()
            )));
        }
        if pos == 0 {
            return Ok(());
        }
        if pos < self.data_start {
            return Err(fail(format!(
                "position is inside the header (data starts at byte {})",
                self.data_start
            )));
        }
        if bytes[pos - 1] != b'\n' && pos != bytes.len() {
            return Err(fail(
                "position is not at the start of a line; was the file changed since the \
                 checkpoint?"
                    .into(),
            ));
        }
        self.cut = pos;
        self.line_base = 1 + memchr::memchr_iter(b'\n', &bytes[..pos]).count() as u64;
        Ok(())
    }

    fn recycle(&mut self, chunk: RowChunk) {
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() <= self.max_in_flight()
        {
            pool.push(chunk);
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.stop();
    }
}

fn queue_gauge(depth: usize) {
    metrics::gauge!("pitwall_queue_depth", "stage" => "file_parse").set(depth as f64);
}

/// The file's bytes: a read-only memory map (an empty file maps nothing).
enum FileBytes {
    Mapped(memmap2::Mmap),
    Empty,
}

impl FileBytes {
    fn open(path: &Path) -> Result<FileBytes, SourceError> {
        let io = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() == 0 {
            return Ok(FileBytes::Empty);
        }
        // SAFETY: the map is read-only and private to this source. Another process
        // truncating the file while it is mapped would fault; the module docs
        // require that replay files are not modified while being read.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        // Advice is a hint; a kernel that ignores it still reads correctly.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(FileBytes::Mapped(map))
    }

    /// Maps the pages of `start..end` in one call (`MADV_POPULATE_READ`) instead of
    /// taking a page fault every few pages while parsing them. A hint: kernels
    /// without it (before Linux 5.14) fault the pages in as usual.
    fn populate(&self, start: usize, end: usize) {
        #[cfg(target_os = "linux")]
        if let FileBytes::Mapped(m) = self {
            let _ = m.advise_range(memmap2::Advice::PopulateRead, start, end - start);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (start, end);
    }

    fn bytes(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Empty => &[],
        }
    }
}

/// Chunks the engine handed back, refilled by the workers (see [`Source::recycle`]).
type ChunkPool = Arc<std::sync::Mutex<Vec<RowChunk>>>;

struct Pipeline {
    /// `None` once stopping: workers see the channel close.
    jobs: Option<Sender<Job>>,
    /// Reply channels of the blocks in flight, in file order.
    pending: VecDeque<Receiver<BlockResult>>,
    workers: Vec<JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
    /// Blocks parsed but not yet taken by the consumer.
    ready: Arc<AtomicUsize>,
}

struct Job {
    start: usize,
    end: usize,
    est_rows: usize,
    reply: Sender<BlockResult>,
}

fn worker(
    jobs: Receiver<Job>,
    data: Arc<FileBytes>,
    parser: Arc<dyn BlockParse>,
    cancel: Arc<AtomicBool>,
    ready: Arc<AtomicUsize>,
    pool: ChunkPool,
) {
    while let Ok(job) = jobs.recv() {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        data.populate(job.start, job.end);
        let block = &data.bytes()[job.start..job.end];
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let recycled = pool.lock().ok().and_then(|mut p| p.pop());
            let mut w = BlockWriter::reusing(parser.spec(), recycled, job.est_rows);
            parser.parse_block(block, &mut w);
            w
        }));
        let result = match parsed {
            Ok(w) => BlockResult {
                start: job.start,
                end: job.end,
                lines: w.line,
                chunk: w.chunk,
                skip_samples: w.skip_samples,
                error: w.error,
                panic: None,
            },
            Err(p) => BlockResult {
                start: job.start,
                end: job.end,
                lines: 0,
                chunk: RowChunk::default(),
                skip_samples: Vec::new(),
                error: None,
                panic: Some(
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "parser panicked".into()),
                ),
            },
        };
        let depth = ready.fetch_add(1, Ordering::Relaxed) + 1;
        queue_gauge(depth);
        if job.reply.send(result).is_err() {
            break;
        }
    }
}

/// One parsed block, lines numbered from 0 at the block's first line.
struct BlockResult {
    start: usize,
    end: usize,
    /// Physical lines the block holds (parsed up to the error under Fail).
    lines: u64,
    chunk: RowChunk,
    skip_samples: Vec<(u64, String)>,
    error: Option<BlockError>,
    panic: Option<String>,
}

/// The first malformed record of a block under [`OnError::Fail`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockError {
    /// Line relative to the block (0-based).
    pub(crate) line: u64,
    /// Byte offset of the line's start within the block.
    pub(crate) offset: usize,
    pub(crate) reason: String,
}

/// A format's block parser: turns whole lines of bytes into rows.
pub(crate) trait BlockParse: Send + Sync {
    fn spec(&self) -> &RowSpec;
    /// Parses every line of `block` (which ends at a line end or the end of the
    /// file) into `w`, counting physical lines in `w.line`.
    fn parse_block(&self, block: &[u8], w: &mut BlockWriter<'_>);
}

/// How one channel is checked, resolved from its [`crate::schema::ChannelSpec`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChannelPlan {
    /// Smallest accepted value (`f64::MIN` without a minimum, so infinities fail).
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) ty: ChannelType,
    pub(crate) optional: bool,
    pub(crate) projected: bool,
}

/// The schema resolved for parsing, shared read-only by the workers.
#[derive(Debug, Clone)]
pub(crate) struct RowSpec {
    pub(crate) schema: Schema,
    pub(crate) channels: Vec<ChannelPlan>,
    pub(crate) key_int: bool,
    pub(crate) on_error: OnError,
    pub(crate) projection: Vec<bool>,
}

impl RowSpec {
    pub(crate) fn new(schema: Schema, opts: &SourceOptions) -> RowSpec {
        let projection: Vec<bool> = (0..schema.channels.len())
            .map(|c| opts.projection.get(c).copied().unwrap_or(true))
            .collect();
        let channels = schema
            .channels
            .iter()
            .zip(&projection)
            .map(|(c, &projected)| ChannelPlan {
                lo: c.min.unwrap_or(f64::MIN).max(f64::MIN),
                hi: c.max.unwrap_or(f64::MAX).min(f64::MAX),
                ty: c.ty,
                optional: c.optional,
                projected,
            })
            .collect();
        RowSpec {
            key_int: schema.key.ty == KeyType::Int,
            schema,
            channels,
            on_error: opts.on_error,
            projection,
        }
    }

    /// Quick test that a parsed value is in range and of the right kind; when it
    /// fails, [`RowSpec::channel_number`] says why.
    #[inline(always)]
    pub(crate) fn accepts(&self, c: usize, v: f64) -> bool {
        let p = &self.channels[c];
        v >= p.lo && v <= p.hi && (p.ty != ChannelType::Int || is_whole(v))
    }

    pub(crate) fn channel_name(&self, c: usize) -> &str {
        &self.schema.channels[c].name
    }

    /// The value of a channel whose cell is empty, absent or `null`.
    pub(crate) fn missing(&self, c: usize) -> Result<f64, String> {
        if self.channels[c].optional {
            Ok(f64::NAN)
        } else {
            Err(format!(
                "column {:?}: value is missing (the channel is required)",
                self.channel_name(c)
            ))
        }
    }

    /// Checks a number read for channel `c` (type, range, bool spelling).
    pub(crate) fn channel_number(&self, c: usize, v: f64) -> Result<f64, String> {
        if self.channels[c].ty == ChannelType::Bool && v != 0.0 && v != 1.0 {
            return Err(format!(
                "column {:?}: expected true/false/1/0 for a bool channel, found {v}",
                self.channel_name(c)
            ));
        }
        if self.accepts(c, v) {
            return Ok(v);
        }
        self.schema.check_value(c, v).map(|()| v)
    }

    /// Parses a channel's text (a CSV cell); empty means missing.
    pub(crate) fn channel_text(&self, c: usize, text: &[u8]) -> Result<f64, String> {
        let t = text.trim_ascii();
        if t.is_empty() {
            return self.missing(c);
        }
        if self.channels[c].ty == ChannelType::Bool {
            return if t == b"1" || t.eq_ignore_ascii_case(b"true") {
                Ok(1.0)
            } else if t == b"0" || t.eq_ignore_ascii_case(b"false") {
                Ok(0.0)
            } else {
                Err(format!(
                    "column {:?}: expected true/false/1/0 for a bool channel, found {}",
                    self.channel_name(c),
                    show(t)
                ))
            };
        }
        match fast_float2::parse::<f64, _>(t) {
            Ok(v) if v.is_finite() => self.channel_number(c, v),
            Ok(_) => Err(format!(
                "column {:?}: {} is not a finite number",
                self.channel_name(c),
                show(t)
            )),
            Err(_) => Err(format!(
                "column {:?}: expected a number, found {}",
                self.channel_name(c),
                show(t)
            )),
        }
    }

    /// Parses the time column's text: an integer, optionally negative.
    pub(crate) fn time_text(&self, text: &[u8]) -> Result<EventTime, String> {
        let t = text.trim_ascii();
        if t.is_empty() {
            return Err(format!(
                "column {:?}: the timestamp is missing",
                self.schema.time.name
            ));
        }
        parse_i64_text(t).ok_or_else(|| {
            format!(
                "column {:?}: expected an integer timestamp (in {}), found {}",
                self.schema.time.name,
                self.schema.time.unit.suffix(),
                show(t)
            )
        })
    }
}

/// `v` has no fraction. Without SSE4.1 `f64::trunc` is a libm call; this is
/// exact for |v| < 2^63 and says "no" above, which only sends such rare values
/// to the slow path (whose check agrees with the schema).
#[inline(always)]
pub(crate) fn is_whole(v: f64) -> bool {
    (v as i64) as f64 == v
}

/// Strictly parses `-?[0-9]+` into an `i64` (no sign `+`, no spaces, no overflow).
pub(crate) fn parse_i64_text(t: &[u8]) -> Option<i64> {
    let (neg, digits) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        // Accumulate negatively so i64::MIN parses too.
        v = v.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

/// A value for an error message: quoted, escaped, cut to a readable length.
pub(crate) fn show(bytes: &[u8]) -> String {
    const MAX: usize = 40;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{:?}…", text)
    } else {
        format!("{text:?}")
    }
}

pub(crate) const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Integer powers of ten up to 10^8 (SWAR digit groups are at most 8 long).
pub(crate) const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Eight bytes at `p` as a little-endian word; bytes past the end read as 0
/// (which is not a digit, so digit runs stop there).
#[inline(always)]
pub(crate) fn load8(d: &[u8], p: usize) -> u64 {
    if let Some(s) = d.get(p..p + 8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        u64::from_le_bytes(b)
    } else {
        let mut b = [0u8; 8];
        if p < d.len() {
            let n = d.len() - p;
            b[..n].copy_from_slice(&d[p..]);
        }
        u64::from_le_bytes(b)
    }
}

/// The leading ASCII digits of the 8 bytes in `x` (first byte lowest): their
/// value and count (0..=8), without a branch per byte — field lengths vary from
/// row to row, and a byte loop pays a mispredicted exit on almost every field.
#[inline(always)]
pub(crate) fn digits8(x: u64) -> (u64, usize) {
    const HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    // A byte is a digit when its high nibble is 3 and adding 6 keeps it so.
    // (A carry out of a non-digit byte only disturbs the bytes after it.)
    let not_digit = ((x & HI) ^ THREES) | ((x.wrapping_add(0x0606_0606_0606_0606) & HI) ^ THREES);
    let n = (not_digit.trailing_zeros() / 8) as usize;
    if n == 0 {
        return (0, 0);
    }
    // Keep the n digits, moved to the top so the missing ones read as leading zeros.
    let mut v = (x & 0x0F0F_0F0F_0F0F_0F0F) << (8 * (8 - n));
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    v = v.wrapping_mul(10_000) + (v >> 32);
    (v & 0xFFFF_FFFF, n)
}

/// Parses `-?[0-9]*(\.[0-9]*)?` (at least one digit) at `p`, the common shape of
/// telemetry numbers, and returns the value and the position after it. `None`
/// when the text is longer than this fast path handles exactly (more than 19
/// digits or a mantissa above 2^53); callers fall back to `fast_float2`, whose
/// result is the same where both apply: `m / 10^k` with both operands exact is
/// correctly rounded (Clinger's fast path).
#[inline(always)]
pub(crate) fn fast_decimal(d: &[u8], p0: usize) -> Option<(f64, usize)> {
    let mut p = p0;
    let neg = d.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let (a, ni) = digits8(load8(d, p));
    if ni == 8 {
        return fast_decimal_long(d, p0);
    }
    p += ni;
    let (m, nf) = if d.get(p) == Some(&b'.') {
        let (f, nf) = digits8(load8(d, p + 1));
        if nf == 8 {
            return fast_decimal_long(d, p0);
        }
        p += 1 + nf;
        (a * POW10_U64[nf] + f, nf)
    } else {
        (a, 0)
    };
    if ni + nf == 0 {
        return None;
    }
    // At most 14 digits: m < 2^53, exact.
    let v = if nf == 0 {
        m as i64 as f64
    } else {
        m as i64 as f64 / POW10[nf]
    };
    Some((if neg { -v } else { v }, p))
}

/// The decimal number that fills exactly `d[s..e]` (`-?[0-9]*(\.[0-9]*)?`, at
/// least one digit), or `None` (then the caller asks `fast_float2`, which agrees
/// wherever this answers). Fields of up to 8 bytes after the sign — nearly all
/// telemetry values — take one 8-byte load: find the `.`, squeeze it out, check
/// and convert all digits at once.
#[inline(always)]
pub(crate) fn decimal_field(d: &[u8], s0: usize, e: usize) -> Option<f64> {
    const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const DOTS: u64 = 0x2E2E_2E2E_2E2E_2E2E;
    let neg = d.get(s0) == Some(&b'-');
    let s = s0 + usize::from(neg);
    let len = e.checked_sub(s)?;
    if len == 0 || len > 8 {
        // Cut at `e` so that digits after the field do not run into it.
        return match fast_decimal(&d[..e], s0) {
            Some((v, q)) if q == e => Some(v),
            _ => None,
        };
    }
    let keep = if len == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    };
    let x = load8(d, s) & keep;
    // 0x80 in each byte equal to '.' (exact: no carries between bytes).
    let t = x ^ DOTS;
    let dots = !(((t & LO7) + LO7) | t) & 0x8080_8080_8080_8080 & keep;
    let (digits, nd, nf) = if dots == 0 {
        (x, len, 0)
    } else {
        let k = (dots.trailing_zeros() / 8) as usize;
        let low = x & ((1u64 << (8 * k)) - 1);
        let high = if k == 7 { 0 } else { x >> (8 * (k + 1)) };
        (low | (high << (8 * k)), len - 1, len - 1 - k)
    };
    let (m, n) = digits8(digits);
    if n == 0 || n != nd {
        return None;
    }
    let v = if nf == 0 {
        m as i64 as f64
    } else {
        m as i64 as f64 / POW10[nf]
    };
    Some(if neg { -v } else { v })
}

/// [`fast_decimal`] for digit runs of 8 or more, a byte at a time.
#[cold]
fn fast_decimal_long(d: &[u8], p0: usize) -> Option<(f64, usize)> {
    let mut p = p0;
    let neg = d.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let ds = p;
    let mut m: u64 = 0;
    while let Some(&b) = d.get(p) {
        let x = b.wrapping_sub(b'0');
        if x > 9 {
            break;
        }
        m = m.wrapping_mul(10).wrapping_add(u64::from(x));
        p += 1;
    }
    let nint = p - ds;
    let mut nfrac = 0;
    if d.get(p) == Some(&b'.') {
        p += 1;
        let fs = p;
        while let Some(&b) = d.get(p) {
            let x = b.wrapping_sub(b'0');
            if x > 9 {
                break;
            }
            m = m.wrapping_mul(10).wrapping_add(u64::from(x));
            p += 1;
        }
        nfrac = p - fs;
    }
    let nd = nint + nfrac;
    if nd == 0 || nd > 19 || m > (1u64 << 53) {
        return None;
    }
    let v = if nfrac == 0 {
        m as i64 as f64
    } else {
        m as i64 as f64 / POW10[nfrac]
    };
    Some((if neg { -v } else { v }, p))
}

/// The digits at `p` (up to 18 of them, 8 at a time): value, count and end.
/// Counts above 18 are reported as such with a meaningless value.
#[inline(always)]
pub(crate) fn digit_run(d: &[u8], mut p: usize) -> (u64, usize, usize) {
    let (mut v, mut n) = digits8(load8(d, p));
    p += n;
    let mut total = n;
    while n == 8 && total <= 18 {
        let (w, k) = digits8(load8(d, p));
        v = v.wrapping_mul(POW10_U64[k]).wrapping_add(w);
        p += k;
        total += k;
        n = k;
    }
    (v, total, p)
}

/// Parses `-?[0-9]{1,18}` at `p` (no overflow possible); longer numbers are left
/// to the slow path.
#[inline(always)]
pub(crate) fn fast_int(d: &[u8], p0: usize) -> Option<(i64, usize)> {
    let mut p = p0;
    let neg = d.get(p) == Some(&b'-');
    if neg {
        p += 1;
    }
    let (v, n, p) = digit_run(d, p);
    if n == 0 || n > 18 {
        return None;
    }
    let v = v as i64;
    Some((if neg { -v } else { v }, p))
}

/// Rows a [`Stage`] holds before they are appended to the chunk.
pub(crate) const STAGE_ROWS: usize = 256;

/// Fast-path rows staged in small fixed arrays, appended to the chunk's columns
/// [`STAGE_ROWS`] at a time: a value is one store (no capacity check, no length
/// update per push), and a row that turns out to be malformed is dropped by not
/// committing it, with nothing to roll back.
pub(crate) struct Stage {
    n: usize,
    pub(crate) ts: Box<[i64; STAGE_ROWS]>,
    pub(crate) keys: Box<[u32; STAGE_ROWS]>,
    pub(crate) lines: Box<[u64; STAGE_ROWS]>,
    /// One array per channel; only projected channels are written and appended.
    pub(crate) cols: Vec<[f64; STAGE_ROWS]>,
    projected: Vec<usize>,
}

impl Stage {
    pub(crate) fn new(spec: &RowSpec) -> Stage {
        Stage {
            n: 0,
            ts: Box::new([0; STAGE_ROWS]),
            keys: Box::new([0; STAGE_ROWS]),
            lines: Box::new([0; STAGE_ROWS]),
            cols: vec![[0.0; STAGE_ROWS]; spec.channels.len()],
            projected: (0..spec.channels.len())
                .filter(|&c| spec.channels[c].projected)
                .collect(),
        }
    }

    /// The slot of the row being written (always in bounds).
    #[inline(always)]
    pub(crate) fn row(&self) -> usize {
        self.n & (STAGE_ROWS - 1)
    }

    /// Keeps the row written at [`Stage::row`]; appends the staged rows when full.
    #[inline(always)]
    pub(crate) fn commit(&mut self, chunk: &mut RowChunk) {
        self.n += 1;
        if self.n == STAGE_ROWS {
            self.flush(chunk);
        }
    }

    /// Appends the staged rows to `chunk`.
    pub(crate) fn flush(&mut self, chunk: &mut RowChunk) {
        let n = self.n;
        if n == 0 {
            return;
        }
        chunk.ts.extend_from_slice(&self.ts[..n]);
        chunk.keys.extend_from_slice(&self.keys[..n]);
        chunk.lines.extend_from_slice(&self.lines[..n]);
        for &c in &self.projected {
            chunk.columns[c].extend_from_slice(&self.cols[c][..n]);
        }
        self.n = 0;
    }
}

const NO_KEY: u32 = u32::MAX;
/// Integer keys below this are looked up by direct index (car numbers are small).
const DIRECT_KEYS: usize = 1024;

/// The rows of one block as they are parsed, with the block's key table.
///
/// Parsers push the time, key and channel values of a row straight into the
/// chunk's columns and call [`BlockWriter::end_row`]; a row that turns out to be
/// malformed is undone with [`BlockWriter::rollback`], so rows are all-or-nothing
/// without staging.
pub(crate) struct BlockWriter<'a> {
    pub(crate) spec: &'a RowSpec,
    pub(crate) chunk: RowChunk,
    /// Current line, relative to the block (0-based).
    pub(crate) line: u64,
    skip_samples: Vec<(u64, String)>,
    error: Option<BlockError>,
    int_direct: Vec<u32>,
    int_other: HashMap<i64, u32>,
    /// The integer of each key id (integer keys), to undo interning.
    int_vals: Vec<i64>,
    str_index: HashMap<Box<[u8]>, u32>,
    str_bytes: Vec<Box<[u8]>>,
    /// `succ[id]`: the key that followed key `id` last time (keys repeat in a cycle).
    succ: Vec<u32>,
    prev: u32,
}

/// A saved size of a [`BlockWriter`] to roll back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    rows: usize,
    keys: usize,
}

impl<'a> BlockWriter<'a> {
    #[cfg(test)]
    pub(crate) fn new(spec: &'a RowSpec, rows: usize) -> Self {
        Self::reusing(spec, None, rows)
    }

    /// Like [`BlockWriter::new`], refilling a recycled chunk's buffers when given one.
    pub(crate) fn reusing(spec: &'a RowSpec, recycled: Option<RowChunk>, rows: usize) -> Self {
        let chunk = match recycled {
            Some(mut c) => {
                c.reset(spec.channels.len(), rows, &spec.projection);
                c
            }
            None => RowChunk::with_capacity(spec.channels.len(), rows, &spec.projection),
        };
        BlockWriter {
            spec,
            chunk,
            line: 0,
            skip_samples: Vec::new(),
            error: None,
            int_direct: if spec.key_int {
                vec![NO_KEY; DIRECT_KEYS]
            } else {
                Vec::new()
            },
            int_other: HashMap::new(),
            int_vals: Vec::new(),
            str_index: HashMap::new(),
            str_bytes: Vec::new(),
            succ: Vec::new(),
            prev: NO_KEY,
        }
    }

    #[inline(always)]
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            rows: self.chunk.ts.len(),
            keys: self.chunk.key_names.len(),
        }
    }

    /// Completes the row whose values were pushed, at the current line.
    #[inline(always)]
    pub(crate) fn end_row(&mut self) {
        self.chunk.lines.push(self.line);
    }

    /// Undoes everything pushed since `m`, including keys interned since.
    pub(crate) fn rollback(&mut self, m: Mark) {
        let c = &mut self.chunk;
        c.ts.truncate(m.rows);
        c.keys.truncate(m.rows);
        c.lines.truncate(m.rows);
        for col in &mut c.columns {
            col.truncate(m.rows);
        }
        while self.chunk.key_names.len() > m.keys {
            self.chunk.key_names.pop();
            if self.spec.key_int {
                if let Some(v) = self.int_vals.pop() {
                    match usize::try_from(v) {
                        Ok(i) if i < DIRECT_KEYS => self.int_direct[i] = NO_KEY,
                        _ => {
                            self.int_other.remove(&v);
                        }
                    }
                }
            } else if let Some(b) = self.str_bytes.pop() {
                self.str_index.remove(&b);
                self.succ.pop();
                for s in &mut self.succ {
                    if *s as usize >= m.keys {
                        *s = NO_KEY;
                    }
                }
                self.prev = NO_KEY;
            }
        }
    }

    /// Records a malformed line starting at byte `offset` of the block. Returns
    /// `false` when parsing must stop ([`OnError::Fail`]).
    pub(crate) fn reject(&mut self, offset: usize, reason: String) -> bool {
        match self.spec.on_error {
            OnError::Fail => {
                self.error = Some(BlockError {
                    line: self.line,
                    offset,
                    reason,
                });
                false
            }
            OnError::Skip => {
                self.chunk.skipped += 1;
                if self.skip_samples.len() < MAX_LOGGED_SKIPS {
                    self.skip_samples.push((self.line, reason));
                }
                true
            }
        }
    }

    /// The key id of an integer key (schema key type `int`).
    #[inline(always)]
    pub(crate) fn int_key(&mut self, v: i64) -> u32 {
        if let Ok(i) = usize::try_from(v)
            && i < DIRECT_KEYS
        {
            let id = self.int_direct[i];
            if id != NO_KEY {
                return id;
            }
        } else if let Some(&id) = self.int_other.get(&v) {
            return id;
        }
        self.new_int_key(v)
    }

    #[cold]
    fn new_int_key(&mut self, v: i64) -> u32 {
        let id = self.chunk.key_names.len() as u32;
        let mut buf = itoa::Buffer::new();
        self.chunk.key_names.push(Arc::from(buf.format(v)));
        self.int_vals.push(v);
        match usize::try_from(v) {
            Ok(i) if i < DIRECT_KEYS => self.int_direct[i] = id,
            _ => {
                self.int_other.insert(v, id);
            }
        }
        id
    }

    /// The key id of a text key (schema key type `string`); must be UTF-8.
    #[inline(always)]
    pub(crate) fn str_key(&mut self, b: &[u8]) -> Result<u32, String> {
        let guess = self.succ.get(self.prev as usize).copied().unwrap_or(NO_KEY);
        let id = if guess != NO_KEY && *self.str_bytes[guess as usize] == *b {
            guess
        } else {
            self.str_key_lookup(b)?
        };
        if let Some(s) = self.succ.get_mut(self.prev as usize) {
            *s = id;
        }
        self.prev = id;
        Ok(id)
    }

    fn str_key_lookup(&mut self, b: &[u8]) -> Result<u32, String> {
        if let Some(&id) = self.str_index.get(b) {
            return Ok(id);
        }
        let s = std::str::from_utf8(b).map_err(|_| {
            format!(
                "column {:?}: the key {} is not valid UTF-8",
                self.spec.schema.key.name,
                show(b)
            )
        })?;
        let id = self.chunk.key_names.len() as u32;
        self.chunk.key_names.push(Arc::from(s));
        self.str_bytes.push(b.into());
        self.str_index.insert(b.into(), id);
        self.succ.push(NO_KEY);
        Ok(id)
    }

    /// The key id of a key given as text (a CSV cell or a JSON string).
    pub(crate) fn key_text(&mut self, text: &[u8]) -> Result<u32, String> {
        let name = &self.spec.schema.key.name;
        if self.spec.key_int {
            let t = text.trim_ascii();
            if t.is_empty() {
                return Err(format!("column {name:?}: the key is missing"));
            }
            match parse_i64_text(t) {
                Some(v) => Ok(self.int_key(v)),
                None => Err(format!(
                    "column {name:?}: expected an integer key, found {}",
                    show(t)
                )),
            }
        } else if text.is_empty() {
            Err(format!("column {name:?}: the key is missing"))
        } else {
            self.str_key(text)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    /// Writes `content` to a temp file named with `ext`.
    pub(crate) fn temp_file(content: &[u8], ext: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(&format!(".{ext}"))
            .tempfile()
            .unwrap();
        f.write_all(content).unwrap();
        f.flush().unwrap();
        f
    }

    /// Everything a source yields, merged, or the error it stopped with.
    #[derive(Debug, Default, PartialEq)]
    pub(crate) struct Drained {
        pub(crate) ts: Vec<i64>,
        pub(crate) keys: Vec<String>,
        pub(crate) columns: Vec<Vec<f64>>,
        pub(crate) lines: Vec<u64>,
        pub(crate) skipped: u64,
        pub(crate) chunks: usize,
        pub(crate) ends: Vec<u64>,
        pub(crate) error: Option<RecordError>,
    }

    impl Drained {
        /// Bit patterns of the columns, so NaN compares equal.
        pub(crate) fn column_bits(&self) -> Vec<Vec<u64>> {
            self.columns
                .iter()
                .map(|c| c.iter().map(|v| v.to_bits()).collect())
                .collect()
        }
    }

    pub(crate) fn drain(src: &mut FileSource) -> Drained {
        let mut d = Drained {
            columns: vec![Vec::new(); src.schema().channels.len()],
            ..Default::default()
        };
        loop {
            match src.next_chunk() {
                Ok(Some(c)) => {
                    c.debug_assert_consistent();
                    d.chunks += 1;
                    d.ts.extend_from_slice(&c.ts);
                    d.keys
                        .extend(c.keys.iter().map(|&k| c.key_names[k as usize].to_string()));
                    for (all, col) in d.columns.iter_mut().zip(&c.columns) {
                        all.extend_from_slice(col);
                    }
                    d.lines.extend_from_slice(&c.lines);
                    d.skipped += c.skipped;
                    d.ends.push(c.end_position);
                }
                Ok(None) => break,
                Err(SourceError::Malformed(e)) => {
                    d.error = Some(e);
                    assert!(
                        matches!(src.next_chunk(), Ok(None)),
                        "source must stay failed"
                    );
                    break;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        d
    }

    pub(crate) fn opts(schema: &Schema, on_error: OnError, chunk_rows: usize) -> SourceOptions {
        SourceOptions {
            on_error,
            chunk_rows,
            ..SourceOptions::all(schema)
        }
    }

    /// Opens `content` as a file of `ext` and drains it.
    pub(crate) fn run(
        content: &[u8],
        ext: &str,
        schema: &Schema,
        on_error: OnError,
        chunk_rows: usize,
        threads: usize,
    ) -> Drained {
        let f = temp_file(content, ext);
        let mut src = FileSource::open(
            f.path(),
            schema.clone(),
            opts(schema, on_error, chunk_rows),
            None,
        )
        .unwrap()
        .with_parse_threads(threads);
        drain(&mut src)
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(
            FileFormat::from_path(Path::new("a/b.CSV")),
            Some(FileFormat::Csv)
        );
        for e in ["x.ndjson", "x.jsonl", "x.json"] {
            assert_eq!(
                FileFormat::from_path(Path::new(e)),
                Some(FileFormat::Ndjson)
            );
        }
        assert_eq!(FileFormat::from_path(Path::new("x.txt")), None);
        let f = temp_file(b"a\n", "txt");
        let s = Schema::f1_bench();
        let err = FileSource::open(f.path(), s.clone(), SourceOptions::all(&s), None).unwrap_err();
        assert!(err.to_string().contains("file format"), "{err}");
    }

    #[test]
    fn integer_text() {
        assert_eq!(parse_i64_text(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_text(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_text(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"+1", b"1.0", b"1e3", b" 1", b"a"] {
            assert_eq!(parse_i64_text(bad), None, "{bad:?}");
        }
        assert_eq!(fast_int(b"-0042,", 0), Some((-42, 5)));
        assert_eq!(fast_int(b"-", 0), None);
    }

    #[test]
    fn fast_decimal_examples() {
        assert_eq!(fast_decimal(b"287.31,", 0), Some((287.31, 6)));
        assert_eq!(fast_decimal(b"-0.5", 0), Some((-0.5, 4)));
        assert_eq!(fast_decimal(b"5.", 0), Some((5.0, 2)));
        assert_eq!(fast_decimal(b".", 0), None);
        assert_eq!(fast_decimal(b"-", 0), None);
        assert_eq!(fast_decimal(b"12345678901234567890", 0), None);
        assert_eq!(fast_decimal(b"123456789.125", 0), Some((123456789.125, 13)));
        assert_eq!(fast_decimal(b"1.12345678", 0), Some((1.12345678, 10)));
        assert_eq!(digits8(u64::from_le_bytes(*b"12345678")), (12345678, 8));
        assert_eq!(
            digits8(u64::from_le_bytes(*b"907,\xff\xff\xff\xff")),
            (907, 3)
        );
        assert_eq!(digits8(u64::from_le_bytes(*b"/0123456")), (0, 0));
        assert_eq!(digits8(u64::from_le_bytes(*b"0:123456")), (0, 1));
        assert_eq!(fast_int(b"1234567890123456789", 0), None);
        assert_eq!(
            fast_int(b"-123456789012345678", 0),
            Some((-123456789012345678, 19))
        );
    }

    proptest! {
        /// The fast path agrees bit for bit with fast_float2 wherever it answers.
        #[test]
        fn fast_decimal_matches_fast_float(
            neg in any::<bool>(), int in "[0-9]{0,12}", frac in proptest::option::of("[0-9]{0,12}"),
            tail in "[,\n\ra-z/:]?"
        ) {
            let mut s = String::new();
            if neg { s.push('-'); }
            s.push_str(&int);
            if let Some(f) = &frac { s.push('.'); s.push_str(f); }
            let len = s.len();
            s.push_str(&tail);
            if let Some((v, end)) = fast_decimal(s.as_bytes(), 0) {
                prop_assert_eq!(end, len);
                let s = &s[..len];
                let want: f64 = fast_float2::parse(s).unwrap();
                prop_assert_eq!(v.to_bits(), want.to_bits(), "{}", s);
            }
        }

        /// Whole-field parsing agrees with fast_float2 and refuses what it refuses.
        #[test]
        fn decimal_field_matches_fast_float(field in "-?[0-9.]{0,10}", pad in "[,0-9.]{0,9}") {
            let text = format!("{field}{pad}");
            let got = decimal_field(text.as_bytes(), 0, field.len());
            let want = fast_float2::parse::<f64, _>(&field).ok();
            if let Some(v) = got {
                prop_assert_eq!(Some(v.to_bits()), want.map(f64::to_bits), "{}", field);
            } else if field.bytes().filter(|&b| b == b'.').count() <= 1 && field.bytes().any(|b| b.is_ascii_digit()) && !field[1..].contains('-') {
                prop_assert!(false, "refused {}", field);
            }
        }

        #[test]
        fn fast_int_matches_std(v in any::<i64>()) {
            let s = v.to_string();
            if let Some((x, end)) = fast_int(format!("{s}:").as_bytes(), 0) {
                prop_assert_eq!(x, v);
                prop_assert_eq!(end, s.len());
            }
            prop_assert_eq!(parse_i64_text(s.as_bytes()), Some(v));
        }
    }

    fn csv_rows(rows: usize) -> Vec<u8> {
        let mut s = String::from("ts_ms,car,speed,rpm,throttle,brake,gear,drs\n");
        for i in 0..rows {
            s.push_str(&format!(
                "{},{},{}.{},{}.5,{},{},{},{}\n",
                1000 + i / 3,
                i % 3 + 1,
                100 + i % 200,
                i % 100,
                10000 + i,
                i % 100,
                i % 2 * 100,
                i % 9,
                i % 15
            ));
        }
        s.into_bytes()
    }

    #[test]
    fn parallel_equals_single_thread_and_chunks_are_ordered() {
        let s = Schema::f1_bench();
        let data = csv_rows(1000);
        let one = run(&data, "csv", &s, OnError::Fail, 7, 1);
        let four = run(&data, "csv", &s, OnError::Fail, 7, 4);
        assert!(
            one.chunks > 50,
            "tiny chunk_rows gives many blocks: {}",
            one.chunks
        );
        assert_eq!(one.ts.len(), 1000);
        assert_eq!(one.ts, four.ts);
        assert_eq!(one.keys, four.keys);
        assert_eq!(one.column_bits(), four.column_bits());
        assert_eq!(one.lines, four.lines);
        assert_eq!(one.lines, (2..1002).collect::<Vec<u64>>());
        assert_eq!(one.ends, four.ends);
        assert!(one.ends.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*one.ends.last().unwrap(), data.len() as u64);
    }

    #[test]
    fn seek_resumes_at_chunk_boundary() {
        let s = Schema::f1_bench();
        let data = csv_rows(300);
        let f = temp_file(&data, "csv");
        let full = run(&data, "csv", &s, OnError::Fail, 20, 2);
        let mut src = FileSource::open(f.path(), s.clone(), opts(&s, OnError::Fail, 20), None)
            .unwrap()
            .with_parse_threads(2);
        let first = src.next_chunk().unwrap().unwrap();
        let second = src.next_chunk().unwrap().unwrap();
        let taken = first.len() + second.len();
        let pos = second.end_position;
        assert!(src.seek(0).is_err(), "seek after reading is refused");
        drop(src);

        let mut resumed = FileSource::open(f.path(), s.clone(), opts(&s, OnError::Fail, 20), None)
            .unwrap()
            .with_parse_threads(2);
        resumed.seek(pos).unwrap();
        let rest = drain(&mut resumed);
        assert_eq!(rest.ts, full.ts[taken..]);
        assert_eq!(rest.lines, full.lines[taken..]);
        assert_eq!(rest.keys, full.keys[taken..]);
        assert_eq!(rest.lines[0], taken as u64 + 2);

        let mut bad = FileSource::open(f.path(), s.clone(), SourceOptions::all(&s), None).unwrap();
        assert!(matches!(bad.seek(pos + 1), Err(SourceError::Seek { .. })));
        assert!(
            matches!(bad.seek(5), Err(SourceError::Seek { .. })),
            "inside the header"
        );
        assert!(matches!(
            bad.seek(data.len() as u64 + 1),
            Err(SourceError::Seek { .. })
        ));
        bad.seek(data.len() as u64).unwrap();
        assert!(bad.next_chunk().unwrap().is_none());
    }

    #[test]
    fn dropping_mid_stream_stops_workers() {
        let s = Schema::f1_bench();
        let data = csv_rows(5000);
        let f = temp_file(&data, "csv");
        for _ in 0..5 {
            let mut src = FileSource::open(f.path(), s.clone(), opts(&s, OnError::Fail, 10), None)
                .unwrap()
                .with_parse_threads(3);
            assert!(src.next_chunk().unwrap().is_some());
            drop(src);
            if std::env::var_os("PITWALL_BENCH_PARSE_ONLY").is_some() {
                continue;
            }
        }
    }

    #[test]
    fn fail_reports_first_error_in_file_order_across_blocks() {
        let s = Schema::f1_bench();
        let mut text = String::from_utf8(csv_rows(400)).unwrap();
        // Corrupt lines 150 and 300 (1-based physical lines; header is line 1).
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[149] = "oops,1,1,1,1,1,1,1".into();
        lines[299] = "1,1,1,1,1,1,1".into();
        text = lines.join("\n") + "\n";
        for threads in [1, 2, 4] {
            let d = run(text.as_bytes(), "csv", &s, OnError::Fail, 9, threads);
            let e = d.error.expect("an error");
            assert_eq!(e.location.line, 150);
            assert!(e.reason.contains("ts_ms"), "{}", e.reason);
            assert_eq!(d.ts.len(), 148, "rows before the bad line are delivered");
            let d = run(text.as_bytes(), "csv", &s, OnError::Skip, 9, threads);
            assert_eq!(d.error, None);
            assert_eq!(d.skipped, 2);
            assert_eq!(d.ts.len(), 398);
            assert!(!d.lines.contains(&150) && !d.lines.contains(&300));
        }
    }

    /// Writes the benchmark workload (20 cars interleaved at 240 Hz) as CSV and
    /// NDJSON under the temp dir, unless already there.
    fn bench_files(rows: usize) -> (PathBuf, PathBuf) {
        use std::io::BufWriter;
        let dir = std::env::temp_dir();
        let csv = dir.join(format!("pitwall-bench-{rows}.csv"));
        let nd = dir.join(format!("pitwall-bench-{rows}.ndjson"));
        if csv.exists() && nd.exists() {
            return (csv, nd);
        }
        const CARS: [u32; 20] = [
            1, 4, 10, 11, 14, 16, 18, 20, 22, 23, 24, 27, 31, 44, 55, 63, 77, 81, 2, 3,
        ];
        let mut c = BufWriter::new(File::create(&csv).unwrap());
        let mut n = BufWriter::new(File::create(&nd).unwrap());
        c.write_all(b"ts_ms,car,speed,rpm,throttle,brake,gear,drs\n")
            .unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for i in 0..rows {
            let ts = 3_600_000 + (i / 20) as u64 * 1000 / 240;
            let car = CARS[i % 20];
            let speed = format!("{}.{:02}", 80 + rnd(270), rnd(100));
            let rpm = format!("{}.{}", 9000 + rnd(3000), rnd(10));
            let throttle = format!("{}.{}", rnd(100), rnd(10));
            let brake = if rnd(5) == 0 { 100 } else { 0 };
            let gear = 1 + rnd(8);
            let drs = rnd(15);
            writeln!(
                c,
                "{ts},{car},{speed},{rpm},{throttle},{brake},{gear},{drs}"
            )
            .unwrap();
            writeln!(
                n,
                r#"{{"ts_ms":{ts},"car":{car},"speed":{speed},"rpm":{rpm},"throttle":{throttle},"brake":{brake},"gear":{gear},"drs":{drs}}}"#
            )
            .unwrap();
        }
        c.flush().unwrap();
        n.flush().unwrap();
        (csv, nd)
    }

    /// CPU time of this thread (robust to other processes sharing the cores).
    fn thread_cpu_s() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
        let ns: f64 = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        ns / 1e9
    }

    /// Parse throughput on the benchmark workload. Run in release:
    /// `cargo test --release -p pitwall-engine --lib source::file::tests::throughput -- --ignored --nocapture`
    /// (`PITWALL_BENCH_ROWS` changes the row count, default 4.8 M).
    #[test]
    #[ignore]
    fn throughput() {
        let rows: usize = std::env::var("PITWALL_BENCH_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4_800_000);
        let (csv, nd) = bench_files(rows);
        let s = Schema::f1_bench();
        for path in [&csv, &nd] {
            let size = std::fs::metadata(path).unwrap().len();
            // The parser alone on this thread, block by block: the per-core cost.
            let src = FileSource::open(path, s.clone(), SourceOptions::all(&s), None).unwrap();
            let bytes = src.data.bytes();
            let reps: usize = std::env::var("PITWALL_BENCH_REPS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3);
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t = thread_cpu_s();
                let mut n = 0;
                let mut start = src.data_start;
                while start < bytes.len() {
                    let probe = (start + src.block_bytes - 1).min(bytes.len() - 1);
                    let end = memchr(b'\n', &bytes[probe..]).map_or(bytes.len(), |i| probe + i + 1);
                    let mut w = BlockWriter::new(src.parser.spec(), src.chunk_rows + 1024);
                    src.parser.parse_block(&bytes[start..end], &mut w);
                    n += w.chunk.len();
                    start = end;
                }
                assert_eq!(n, rows);
                best = best.min(thread_cpu_s() - t);
            }
            println!(
                "{:<8} parse only, CPU time of 1 core: {:>6.2} M rows/s ({:.1} ns/row)",
                format!("{:?}", src.format()),
                rows as f64 / best / 1e6,
                best * 1e9 / rows as f64
            );
            drop(src);
            if std::env::var_os("PITWALL_BENCH_PARSE_ONLY").is_some() {
                continue;
            }
            for threads in [1, 2] {
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    let mut src = FileSource::open(path, s.clone(), SourceOptions::all(&s), None)
                        .unwrap()
                        .with_parse_threads(threads);
                    let mut n = 0;
                    let mut sum = 0.0;
                    while let Some(c) = src.next_chunk().unwrap() {
                        n += c.len();
                        sum += c.columns[0].last().copied().unwrap_or(0.0);
                    }
                    assert_eq!(n, rows);
                    assert!(sum >= 0.0);
                    best = best.min(t.elapsed().as_secs_f64());
                }
                println!(
                    "{:<8} threads={threads}: {:>6.2} M rows/s, {:>7.1} MB/s ({rows} rows, {:.0} MB, best of 3: {:.3} s)",
                    format!("{:?}", FileFormat::from_path(path).unwrap()),
                    rows as f64 / best / 1e6,
                    size as f64 / best / 1e6,
                    size as f64 / 1e6,
                    best
                );
            }
        }
    }

    /// Parse CPU per row on the CLI benchmark files (`pitwall simulate --out
    /// /tmp/bench.csv` and `.ndjson`) with the window job's projection (speed, rpm,
    /// throttle, gear): `cargo test --release -p pitwall-engine --lib
    /// source::file::tests::throughput_job -- --ignored --nocapture`
    /// (`PITWALL_BENCH_DIR` changes the directory).
    #[test]
    #[ignore]
    fn throughput_job() {
        let dir = std::env::var("PITWALL_BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
        let s = Schema::f1_bench();
        for ext in ["csv", "ndjson"] {
            let path = Path::new(&dir).join(format!("bench.{ext}"));
            if !path.exists() {
                println!(
                    "{} missing: run `pitwall simulate --out` first",
                    path.display()
                );
                continue;
            }
            let mut o = SourceOptions::all(&s);
            o.projection = vec![true, true, true, false, true, false];
            let src = FileSource::open(&path, s.clone(), o.clone(), None).unwrap();
            let bytes = src.data.bytes();
            let mut best = f64::MAX;
            let mut rows = 0;
            let mut recycled = None;
            for _ in 0..5 {
                let t = thread_cpu_s();
                rows = 0;
                let mut start = src.data_start;
                while start < bytes.len() {
                    let probe = (start + src.block_bytes - 1).min(bytes.len() - 1);
                    let end = memchr(b'\n', &bytes[probe..]).map_or(bytes.len(), |i| probe + i + 1);
                    let mut w = BlockWriter::reusing(
                        src.parser.spec(),
                        recycled.take(),
                        src.chunk_rows + 1024,
                    );
                    src.parser.parse_block(&bytes[start..end], &mut w);
                    assert!(w.error.is_none());
                    rows += w.chunk.len();
                    recycled = Some(w.chunk);
                    start = end;
                }
                best = best.min(thread_cpu_s() - t);
            }
            println!(
                "{ext:<7} parse only (job projection), 1 core: {:>6.2} M rows/s ({:.1} ns/row)",
                rows as f64 / best / 1e6,
                best * 1e9 / rows as f64
            );
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                let mut src = FileSource::open(&path, s.clone(), o.clone(), None).unwrap();
                let mut n = 0;
                while let Some(c) = src.next_chunk().unwrap() {
                    n += c.len();
                    src.recycle(c);
                }
                assert_eq!(n, rows);
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{ext:<7} source drained, {} threads: {:>6.2} M rows/s",
                FileSource::open(&path, s.clone(), o.clone(), None)
                    .unwrap()
                    .parse_threads(),
                rows as f64 / best / 1e6
            );
        }
    }

    #[test]
    fn empty_and_header_only_files() {
        let s = Schema::f1_bench();
        let f = temp_file(b"", "csv");
        let e = FileSource::open(f.path(), s.clone(), SourceOptions::all(&s), None).unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        let d = run(
            b"ts_ms,car,speed,rpm,throttle,brake,gear,drs\n",
            "csv",
            &s,
            OnError::Fail,
            10,
            2,
        );
        assert_eq!(d.chunks, 0);
        let d = run(b"", "ndjson", &s, OnError::Fail, 10, 2);
        assert_eq!(d.chunks, 0);
        let d = run(b"\n\n  \n", "ndjson", &s, OnError::Fail, 1, 2);
        assert_eq!(d.chunks, 0);
    }
}
