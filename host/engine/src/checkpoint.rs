//! Checkpoints: the whole job state, written atomically to a directory.
//!
//! A checkpoint holds the engine's [`EngineState`] (watermark, key dictionary,
//! keyed state with open windows and sampler state, broadcast state, counters),
//! the source position to resume from, and the sink's own state, taken together
//! at a chunk boundary — a consistent cut. Restoring it and continuing gives
//! exactly the outputs of a run that never stopped.
//!
//! On disk: `checkpoint-<seq>.ckpt`, each `MAGIC | format u32 | checksum u64 |
//! postcard payload`, written to a temporary file, fsynced, then renamed into
//! place (and the directory fsynced), so a crash leaves either the old or the new
//! checkpoint, never half of one. The newest two are kept; a corrupt newest one is
//! skipped with a warning in favour of the previous.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::fnv1a;
use crate::engine::EngineState;
use crate::error::CheckpointError;

const MAGIC: &[u8; 4] = b"PWCK";
/// Bumped whenever the payload layout changes.
pub const FORMAT_VERSION: u32 = 1;
const KEEP: usize = 2;

/// Everything needed to resume a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Fingerprint of the job config that wrote it.
    pub fingerprint: u64,
    pub seq: u64,
    /// Resume the source after this position.
    pub source_position: u64,
    /// The input was fully consumed and every window fired.
    pub finished: bool,
    pub engine: EngineState,
    /// The sink's state (opaque to the engine).
    pub sink: Vec<u8>,
}

/// A [`Checkpoint`] borrowed from the running job, so writing one does not copy
/// the engine state. Serialises to exactly the bytes of the owned form.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CheckpointRef<'a> {
    pub fingerprint: u64,
    pub seq: u64,
    pub source_position: u64,
    pub finished: bool,
    pub engine: &'a EngineState,
    pub sink: &'a [u8],
}

impl<'a> From<&'a Checkpoint> for CheckpointRef<'a> {
    fn from(c: &'a Checkpoint) -> Self {
        CheckpointRef {
            fingerprint: c.fingerprint,
            seq: c.seq,
            source_position: c.source_position,
            finished: c.finished,
            engine: &c.engine,
            sink: &c.sink,
        }
    }
}

/// Writes and finds checkpoints in one directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// Uses `dir`, creating it if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| CheckpointError::Io {
            path: dir.clone(),
            source,
        })?;
        // Half-written checkpoints of a run that crashed mid-write.
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".checkpoint-") && name.ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(CheckpointStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `cp` atomically and prunes older checkpoints.
    pub fn write<'a>(&self, cp: impl Into<CheckpointRef<'a>>) -> Result<PathBuf, CheckpointError> {
        let cp: CheckpointRef<'a> = cp.into();
        let _span = tracing::debug_span!("checkpoint_write", seq = cp.seq).entered();
        let payload = postcard::to_allocvec(&cp).map_err(|e| CheckpointError::Corrupt {
            path: self.dir.clone(),
            reason: format!("cannot encode state: {e}"),
        })?;
        let mut bytes = Vec::with_capacity(payload.len() + 16);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&fnv1a(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);

        let path = self.dir.join(format!("checkpoint-{:010}.ckpt", cp.seq));
        let tmp = self.dir.join(format!(".checkpoint-{:010}.tmp", cp.seq));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| CheckpointError::Io { path: p, source }
        };
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        if let Ok(d) = fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        metrics::counter!("pitwall_checkpoints_total").increment(1);
        metrics::gauge!("pitwall_checkpoint_bytes").set(bytes.len() as f64);
        for old in self.list()?.into_iter().rev().skip(KEEP) {
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }

    /// Checkpoint files, oldest first.
    fn list(&self) -> Result<Vec<PathBuf>, CheckpointError> {
        let rd = fs::read_dir(&self.dir).map_err(|source| CheckpointError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".ckpt"))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Reads one checkpoint file, verifying magic, format and checksum.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 16 || &bytes[..4] != MAGIC {
            return Err(corrupt("not a Pitwall checkpoint (bad magic)".into()));
        }
        let format = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if format != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {format}, this build reads {FORMAT_VERSION}"
            )));
        }
        let sum = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let payload = &bytes[16..];
        if fnv1a(payload) != sum {
            return Err(corrupt("checksum mismatch (truncated or damaged)".into()));
        }
        postcard::from_bytes(payload).map_err(|e| corrupt(format!("cannot decode: {e}")))
    }

    /// The newest valid checkpoint for a job with `fingerprint`, if any.
    /// A checkpoint of another config is an error, not something to skip silently.
    pub fn latest(&self, fingerprint: u64) -> Result<Option<Checkpoint>, CheckpointError> {
        for path in self.list()?.into_iter().rev() {
            match Self::read(&path) {
                Ok(cp) if cp.fingerprint != fingerprint => {
                    return Err(CheckpointError::ConfigMismatch {
                        path,
                        expected: fingerprint,
                        found: cp.fingerprint,
                    });
                }
                Ok(cp) => return Ok(Some(cp)),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping unreadable checkpoint");
                    metrics::counter!("pitwall_checkpoints_corrupt_total").increment(1);
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(seq: u64) -> Checkpoint {
        Checkpoint {
            fingerprint: 7,
            seq,
            source_position: seq * 100,
            finished: false,
            engine: EngineState::default(),
            sink: vec![1, 2, 3],
        }
    }

    #[test]
    fn newest_valid_checkpoint_wins_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        for s in 1..=4 {
            store.write(&cp(s)).unwrap();
        }
        assert_eq!(store.list().unwrap().len(), KEEP);
        assert_eq!(store.latest(7).unwrap().unwrap().seq, 4);
        // Damage the newest: the previous one is used.
        let newest = store.list().unwrap().pop().unwrap();
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&newest, bytes).unwrap();
        assert_eq!(store.latest(7).unwrap().unwrap().seq, 3);
    }

    #[test]
    fn checkpoint_of_another_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.write(&cp(1)).unwrap();
        let err = store.latest(8).unwrap_err().to_string();
        assert!(err.contains("different job configuration"), "{err}");
    }
}
