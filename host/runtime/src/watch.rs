//! Watches a plugin directory and deploys what changes in it.
//!
//! * `NAME.wasm` — a new or changed plugin: validated, compiled and
//!   instantiated in the watcher's thread, then queued for the frame loop at
//!   the configured boundary (a load if `NAME` is new, a swap otherwise).
//!   The file must be named after the plugin it holds.
//! * `NAME.params.json` — new model parameters for plugin `NAME` (the bytes
//!   are opaque to the host; JSON is the SDK's convention).
//!
//! Editors and deploy scripts write files in several steps, and `notify`
//! reports two events for one atomic rename, so events are **debounced**
//! (nothing is read until the directory has been quiet for `debounce`) and
//! **deduplicated by content hash** (the same bytes are never deployed twice).
//! A deleted file changes nothing: unloading is an explicit operator action.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::control::{Boundary, PluginControl};
use crate::error::{ControlError, LoadError};

/// How the watcher behaves.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Quiet time after the last file event before files are read. Default 250 ms.
    pub debounce: Duration,
    /// When deployments take effect. Default: the next frame.
    pub boundary: Boundary,
    /// Deploy the files already in the directory when the watcher starts. Default true.
    pub initial_scan: bool,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            debounce: Duration::from_millis(250),
            boundary: Boundary::Next,
            initial_scan: true,
        }
    }
}

/// The watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch plugin directory {}: {source}", dir.display())]
    Notify { dir: PathBuf, source: notify::Error },
    #[error("cannot start the watcher thread: {0}")]
    Thread(std::io::Error),
}

/// What the watcher did with one file.
#[derive(Debug)]
pub enum WatchOutcome {
    /// A plugin was compiled and queued; the ticket says when it went live.
    Deployed {
        plugin: String,
        content_hash: String,
        ticket: crate::control::Ticket,
    },
    /// New parameters were queued.
    ParamsQueued {
        plugin: String,
        ticket: crate::control::Ticket,
    },
    /// The file was refused; nothing changed.
    Rejected { error: ControlError },
}

/// One file handled by the watcher.
#[derive(Debug)]
pub struct WatchEvent {
    pub path: PathBuf,
    pub outcome: WatchOutcome,
}

/// A running directory watcher. Dropping it stops it.
pub struct PluginWatcher {
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
    events: Receiver<WatchEvent>,
    dir: PathBuf,
}

impl std::fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginWatcher")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

enum FileKind {
    Wasm(String),
    Params(String),
}

fn classify(path: &Path) -> Option<FileKind> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    if let Some(name) = file.strip_suffix(".params.json") {
        return Some(FileKind::Params(name.to_string()));
    }
    file.strip_suffix(".wasm")
        .map(|name| FileKind::Wasm(name.to_string()))
}

impl PluginWatcher {
    /// Starts watching `dir` (not recursively).
    pub fn start(
        dir: impl Into<PathBuf>,
        control: PluginControl,
        config: WatchConfig,
    ) -> Result<PluginWatcher, WatchError> {
        let dir = dir.into();
        let (raw_tx, raw_rx) = crossbeam_channel::unbounded::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(event) if !matches!(event.kind, EventKind::Access(_)) => {
                    for p in event.paths {
                        let _ = raw_tx.send(p);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "plugin directory watch error"),
            })
            .map_err(|source| WatchError::Notify {
                dir: dir.clone(),
                source,
            })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Notify {
                dir: dir.clone(),
                source,
            })?;
        let (events_tx, events) = crossbeam_channel::unbounded();
        let initial: Vec<PathBuf> = if config.initial_scan {
            std::fs::read_dir(&dir)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let thread = {
            let dir = dir.clone();
            std::thread::Builder::new()
                .name("pitwall-plugin-watch".into())
                .spawn(move || run(dir, control, config, raw_rx, events_tx, initial))
                .map_err(WatchError::Thread)?
        };
        tracing::info!(dir = %dir.display(), "watching plugin directory");
        Ok(PluginWatcher {
            watcher: Some(watcher),
            thread: Some(thread),
            events,
            dir,
        })
    }

    /// What the watcher did, file by file.
    pub fn events(&self) -> &Receiver<WatchEvent> {
        &self.events
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        // Dropping the notify watcher drops its sender; the thread then sees
        // the channel disconnect and exits.
        self.watcher.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    dir: PathBuf,
    control: PluginControl,
    config: WatchConfig,
    raw: Receiver<PathBuf>,
    events: Sender<WatchEvent>,
    initial: Vec<PathBuf>,
) {
    let mut seen: HashMap<PathBuf, [u8; 32]> = HashMap::new();
    let mut dirty: BTreeSet<PathBuf> = initial.into_iter().collect();
    loop {
        if dirty.is_empty() {
            match raw.recv() {
                Ok(p) => {
                    dirty.insert(p);
                }
                Err(_) => return,
            }
        }
        // Debounce: keep collecting until the directory has been quiet.
        loop {
            match raw.recv_timeout(config.debounce) {
                Ok(p) => {
                    dirty.insert(p);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // Parameters after code, so a new plugin and its parameters dropped
        // together arrive in a sensible order (either order works).
        let mut files: Vec<PathBuf> = std::mem::take(&mut dirty).into_iter().collect();
        files.sort_by_key(|p| matches!(classify(p), Some(FileKind::Params(_))));
        for path in files {
            if path.parent() != Some(dir.as_path()) {
                continue;
            }
            let Some(kind) = classify(&path) else {
                continue;
            };
            let Ok(bytes) = std::fs::read(&path) else {
                continue; // removed or renamed away: nothing to deploy
            };
            let hash: [u8; 32] = Sha256::digest(&bytes).into();
            if seen.get(&path) == Some(&hash) {
                continue;
            }
            seen.insert(path.clone(), hash);
            let outcome = handle(&control, &config, &path, kind, bytes);
            match &outcome {
                WatchOutcome::Rejected { error } => {
                    tracing::error!(file = %path.display(), %error, "plugin file refused")
                }
                _ => tracing::info!(file = %path.display(), "plugin file queued"),
            }
            let _ = events.send(WatchEvent { path, outcome });
        }
    }
}

fn handle(
    control: &PluginControl,
    config: &WatchConfig,
    path: &Path,
    kind: FileKind,
    bytes: Vec<u8>,
) -> WatchOutcome {
    let rejected = |error: ControlError| WatchOutcome::Rejected { error };
    match kind {
        FileKind::Wasm(stem) => {
            let compiled = match control.runtime().compile(&bytes) {
                Ok(c) => c,
                Err(e) => return rejected(e.into()),
            };
            if compiled.name() != stem {
                return rejected(
                    LoadError::NameMismatch {
                        file: path.to_path_buf(),
                        declared: compiled.name().to_string(),
                    }
                    .into(),
                );
            }
            let content_hash = compiled.content_hash().to_string();
            let plugin = compiled.id().to_string();
            match control.deploy_compiled(compiled, config.boundary) {
                Ok(ticket) => WatchOutcome::Deployed {
                    plugin,
                    content_hash,
                    ticket,
                },
                Err(e) => rejected(e),
            }
        }
        FileKind::Params(name) => match control.set_params(&name, bytes, config.boundary) {
            Ok(ticket) => WatchOutcome::ParamsQueued {
                plugin: name,
                ticket,
            },
            Err(e) => rejected(e),
        },
    }
}
