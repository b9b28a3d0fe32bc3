//! The wasmtime engine every plugin runs in, its epoch ticker, the linkers
//! (one per ABI binding) and the compiled-module cache.
//!
//! * **Epoch interruption** bounds every call: a ticker thread bumps the
//!   engine's epoch every `epoch_tick`, and each call is given
//!   `deadline_ticks` ticks before wasmtime interrupts it with a trap. It costs
//!   one load and compare at loop back-edges and function entries, much less
//!   than fuel metering, and it needs no cooperation from the guest.
//! * **Pooling allocator**: instance slots and memories are reserved up
//!   front, so instantiation takes a few µs (a copy-on-write remap), which is
//!   what lets the loader prepare a new version while frames keep flowing.
//! * **No WASI**: the linkers hold only the binding's host functions.
//!
//! The ticker stops when the last [`Runtime`] clone is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, OptLevel, PoolingAllocationConfig,
};

use crate::abi::{self, Binding};
use crate::compiled::{CompiledPlugin, ContentHash};
use crate::config::RuntimeConfig;
use crate::error::LoadError;
use crate::sections;
use crate::store::HostState;

/// The engine could not be set up (e.g. the pooling allocator could not
/// reserve its address space).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot start the WebAssembly engine: {0} (if the host limits virtual memory, \
     set RuntimeConfig::pooling = false or lower max_instances)"
)]
pub struct EngineError(String);

/// A shared handle on the plugin engine. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: RuntimeConfig,
    linkers: Vec<(&'static Binding, Linker<HostState>)>,
    /// Compiled plugins by content hash, so rolling back to (or re-deploying)
    /// a version compiled before costs nothing. Weak: a version nobody holds
    /// any more is not kept alive by the cache.
    cache: Mutex<HashMap<ContentHash, Weak<CompiledPlugin>>>,
    ticker: Ticker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Runtime {
    /// Builds the engine and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, EngineError> {
        let mut wc = Config::new();
        wc.epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true)
            .max_wasm_stack(512 << 10);
        if config.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(config.max_instances)
                .total_memories(config.max_instances)
                .total_tables(config.max_instances)
                .max_memories_per_module(1)
                .max_memory_size(config.memory_limit);
            wc.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wc).map_err(|e| EngineError(format!("{e:#}")))?;
        let mut linkers = Vec::new();
        for binding in abi::BINDINGS {
            let mut linker = Linker::new(&engine);
            binding
                .link(&mut linker)
                .map_err(|e| EngineError(format!("linking ABI {}: {e:#}", binding.abi)))?;
            linkers.push((*binding, linker));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (engine, stop, tick) = (engine.clone(), stop.clone(), config.epoch_tick);
            std::thread::Builder::new()
                .name("pitwall-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| EngineError(format!("cannot start the epoch ticker: {e}")))?
        };
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                config,
                linkers,
                cache: Mutex::new(HashMap::new()),
                ticker: Ticker {
                    stop,
                    thread: Some(thread),
                },
            }),
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Validates and compiles a plugin: sections, ABI binding, compile,
    /// import/export check, `InstancePre`. Nothing of the plugin runs here.
    /// A plugin compiled before (same SHA-256) is returned from the cache.
    pub fn compile(&self, wasm: &[u8]) -> Result<Arc<CompiledPlugin>, LoadError> {
        let started = Instant::now();
        let declared = sections::read_declared(wasm)?;
        let binding = abi::binding_for(declared.abi)?;
        let hash = ContentHash(Sha256::digest(wasm).into());
        if let Some(hit) = self.cached(&hash) {
            return Ok(hit);
        }
        let module = Module::new(&self.inner.engine, wasm)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        binding.check_module(&module)?;
        let linker = self
            .inner
            .linkers
            .iter()
            .find(|(b, _)| std::ptr::eq(*b, binding))
            .map(|(_, l)| l)
            .expect("a linker per binding");
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Compile(format!("linking: {e:#}")))?;
        let compiled = Arc::new(CompiledPlugin::new(
            declared,
            binding,
            hash,
            wasm.len(),
            module,
            pre,
            started.elapsed(),
        ));
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, w| w.strong_count() > 0);
        cache.insert(hash, Arc::downgrade(&compiled));
        tracing::info!(
            plugin = %compiled.info().id(),
            hash = %hash,
            compile_ms = started.elapsed().as_secs_f64() * 1e3,
            "plugin compiled"
        );
        Ok(compiled)
    }

    /// Reads and compiles a plugin file.
    pub fn compile_file(&self, path: &std::path::Path) -> Result<Arc<CompiledPlugin>, LoadError> {
        let wasm = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.compile(&wasm)
    }

    fn cached(&self, hash: &ContentHash) -> Option<Arc<CompiledPlugin>> {
        let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(hash).and_then(Weak::upgrade)
    }

    /// Whether the ticker is running (for diagnostics).
    pub fn ticking(&self) -> bool {
        self.inner.ticker.thread.is_some()
    }
}
