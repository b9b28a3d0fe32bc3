//! One module per subcommand.

pub mod archive;
pub mod bench;
pub mod bench_feeds;
pub mod eval;
pub mod export;
pub mod gpu;
pub mod keys;
pub mod plugin;
pub mod replay;
pub mod run;
pub mod server_opts;
pub mod simulate;
pub mod train;
pub mod window;

use std::io::IsTerminal;

/// `[MMMM:SS.t]` of event time since `origin` (the first frame), for printed lines.
pub fn race_clock(origin: Option<i64>, ts: i64) -> String {
    let ms = (ts - origin.unwrap_or(ts)).max(0);
    format!(
        "[{:>4}:{:02}.{}]",
        ms / 60_000,
        ms % 60_000 / 1000,
        ms % 1000 / 100
    )
}

/// A progress bar on a terminal, hidden otherwise (CI logs, pipes).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// The process's Ctrl-C flag: installs the handler once; a job stops at the next
/// chunk boundary (with a checkpoint, when it has a directory) once it is set.
pub fn stop_on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    static STOP: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
        std::sync::OnceLock::new();
    STOP.get_or_init(|| {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        if let Err(e) =
            ctrlc::set_handler(move || s.store(true, std::sync::atomic::Ordering::Relaxed))
        {
            tracing::warn!("cannot install the Ctrl-C handler: {e}");
        }
        stop
    })
    .clone()
}

/// The process's Prometheus recorder, installed on first use (the `metrics`
/// facade has one global recorder). Call it before anything records: a
/// metric handle made earlier stays bound to the no-op recorder, and its
/// values never reach `/metrics`. `None` (with a warning) if another
/// recorder was installed first.
pub fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| match pitwall_server::install_prometheus() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("no Prometheus recorder, /metrics answers 503: {e}");
                None
            }
        })
        .clone()
}
