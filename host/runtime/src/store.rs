//! What the host keeps inside each wasmtime `Store`: limits, the model
//! parameters and the guest's log budget.
//!
//! One store holds exactly one instance (`StoreLimits::instances(1)`), so
//! everything here belongs to one running version of one plugin.

use std::sync::Arc;

use pitwall_plugin_sdk::LogRateLimiter;
use sha2::{Digest, Sha256};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// A model-parameter blob: opaque bytes to the host, versioned by content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    bytes: Arc<[u8]>,
    version: Arc<str>,
    generation: u64,
}

impl Params {
    /// A blob with its version (first 16 hex digits of its SHA-256) and the
    /// generation the guest sees in `params_generation` (≥ 1).
    pub fn new(bytes: impl Into<Arc<[u8]>>, generation: u64) -> Params {
        let bytes = bytes.into();
        let digest = Sha256::digest(&bytes);
        let mut version = String::with_capacity(16);
        for b in &digest[..8] {
            version.push_str(&format!("{b:02x}"));
        }
        Params {
            bytes,
            version: version.into(),
            generation: generation.max(1),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The model version written into provenance: a content hash, so the same
    /// parameters always carry the same version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Bumped on every replacement; what the guest polls to notice new parameters.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// `StoreLimits` plus a record of refused growth, so a trap that follows a
/// refused `memory.grow` is reported as "memory exceeded", not as a bare trap.
pub(crate) struct MemoryLimiter {
    inner: StoreLimits,
    /// The largest size (bytes) a refused grow asked for since the flag was cleared.
    pub(crate) refused: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(memory_limit: usize) -> Self {
        MemoryLimiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .instances(1)
                .memories(1)
                .tables(4)
                .build(),
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allow = self.inner.memory_growing(current, desired, maximum)?;
        if !allow {
            self.refused = Some(self.refused.unwrap_or(0).max(desired));
        }
        Ok(allow)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = Some(self.refused.unwrap_or(0).max(1));
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The data of one plugin store.
pub(crate) struct HostState {
    pub(crate) limiter: MemoryLimiter,
    pub(crate) params: Option<Params>,
    pub(crate) log: LogRateLimiter,
    /// `name@version`, for log lines.
    pub(crate) plugin: Arc<str>,
    /// The window being processed: the log limiter's clock.
    pub(crate) window_start_ms: i64,
    /// Log calls dropped (rate limit, bad level, bad UTF-8, out of bounds)
    /// since the owner last took the count.
    pub(crate) log_dropped: u64,
}
