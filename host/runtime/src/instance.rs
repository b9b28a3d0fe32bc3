//! One running instance of one plugin version, in its own store.
//!
//! Every guest call goes through here and gets the same treatment: a fresh
//! epoch deadline, the memory limiter's "refused" flag cleared, and any error
//! turned into a [`CallFailure`] of the right [`FailureKind`]. Nothing a
//! guest does can panic the host: pointers it returns are bounds-checked and
//! its reply is verified before anything is read from it.

use std::sync::Arc;

use pitwall_plugin_sdk::InsightsData;
use wasmtime::{Store, Trap};

use crate::abi::Guest;
use crate::abi::v1::range;
use crate::compiled::CompiledPlugin;
use crate::engine::Runtime;
use crate::error::{CallFailure, FailureKind};
use crate::store::{HostState, MemoryLimiter, Params};

/// A live instance. Dropping it frees its pooling slot.
pub struct PluginInstance {
    store: Store<HostState>,
    guest: Guest,
    compiled: Arc<CompiledPlugin>,
    deadline_ticks: u64,
    memory_limit: usize,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("plugin", self.compiled.id())
            .finish_non_exhaustive()
    }
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOutcome {
    Restored,
    /// `pitwall_restore` returned this non-zero code: the state was refused.
    Refused(i32),
}

impl PluginInstance {
    /// Instantiates `compiled` in a new store and runs its `pitwall_init`.
    pub fn new(
        runtime: &Runtime,
        compiled: &Arc<CompiledPlugin>,
        params: Option<Params>,
    ) -> Result<PluginInstance, CallFailure> {
        let cfg = runtime.config();
        let state = HostState {
            limiter: MemoryLimiter::new(cfg.memory_limit),
            params,
            log: cfg.log_limit.limiter(),
            plugin: compiled.id().clone(),
            window_start_ms: 0,
            log_dropped: 0,
        };
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let ticks = cfg.deadline_ticks();
        store.set_epoch_deadline(ticks);
        let instance = compiled.pre().instantiate(&mut store).map_err(|e| {
            let f = classify(&store, e, ticks, cfg.memory_limit);
            CallFailure::new(
                FailureKind::Instantiate,
                format!("instantiating {}: {}", compiled.id(), f.message),
            )
        })?;
        let guest = Guest::bind(compiled.binding(), &instance, &mut store)
            .map_err(|m| CallFailure::new(FailureKind::Instantiate, m))?;
        let mut me = PluginInstance {
            store,
            guest,
            compiled: compiled.clone(),
            deadline_ticks: ticks,
            memory_limit: cfg.memory_limit,
        };
        if let Some(init) = me.guest.v1().init.clone() {
            me.begin(0);
            let code = init.call(&mut me.store, ()).map_err(|e| me.fail(e))?;
            if code != 0 {
                return Err(CallFailure::new(
                    FailureKind::Instantiate,
                    format!(
                        "pitwall_init of {} returned {code}: the plugin refused to start \
                         (its log says why)",
                        compiled.id()
                    ),
                ));
            }
        }
        Ok(me)
    }

    pub fn compiled(&self) -> &Arc<CompiledPlugin> {
        &self.compiled
    }

    /// Replaces the model parameters the guest reads (it notices through
    /// `params_generation`).
    pub fn set_params(&mut self, params: Option<Params>) {
        self.store.data_mut().params = params;
    }

    /// The generation of the parameters this instance sees (0 = none).
    pub fn params_generation(&self) -> u64 {
        self.store
            .data()
            .params
            .as_ref()
            .map_or(0, Params::generation)
    }

    /// Log calls dropped since the last time this was asked.
    pub fn take_log_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.store.data_mut().log_dropped)
    }

    fn begin(&mut self, window_start_ms: i64) {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let state = self.store.data_mut();
        state.limiter.refused = None;
        state.window_start_ms = window_start_ms;
    }

    fn fail(&self, e: wasmtime::Error) -> CallFailure {
        classify(&self.store, e, self.deadline_ticks, self.memory_limit)
    }

    /// Copies `bytes` into a guest buffer from `pitwall_alloc`; returns its offset.
    fn write_in(&mut self, bytes: &[u8]) -> Result<i32, CallFailure> {
        let exports = self.guest.v1();
        let (alloc, memory) = (exports.alloc.clone(), exports.memory);
        let len = i32::try_from(bytes.len()).map_err(|_| {
            CallFailure::new(
                FailureKind::MemoryExceeded,
                format!("{} bytes cannot be passed into a 32-bit guest", bytes.len()),
            )
        })?;
        let ptr = alloc.call(&mut self.store, len).map_err(|e| self.fail(e))?;
        if ptr == 0 {
            return Err(CallFailure::new(
                FailureKind::MemoryExceeded,
                format!("pitwall_alloc({len}) returned 0: the guest is out of memory"),
            ));
        }
        let data = memory.data_mut(&mut self.store);
        let size = data.len();
        let r = range(ptr, len, size).ok_or_else(|| {
            CallFailure::new(
                FailureKind::Trap,
                format!(
                    "pitwall_alloc({len}) returned {ptr}, which is outside the guest's \
                     {size}-byte memory"
                ),
            )
        })?;
        data[r].copy_from_slice(bytes);
        Ok(ptr)
    }

    /// Decodes a `(ptr << 32) | len` return into a range of guest memory.
    fn out_range(&self, ret: i64, what: &str) -> Result<std::ops::Range<usize>, CallFailure> {
        let (ptr, len) = ((ret >> 32) as i32, (ret & 0xffff_ffff) as u32);
        let size = self.guest.v1().memory.data_size(&self.store);
        i32::try_from(len)
            .ok()
            .and_then(|len| range(ptr, len, size))
            .ok_or_else(|| {
                CallFailure::new(
                    FailureKind::BadReply,
                    format!(
                        "{what} returned {len} bytes at {ptr}, outside the guest's {size}-byte memory"
                    ),
                )
            })
    }

    /// Runs `pitwall_on_frame` on one race frame and returns its verified reply.
    pub fn call_frame(
        &mut self,
        frame: &[u8],
        window_start_ms: i64,
    ) -> Result<InsightsData, CallFailure> {
        self.begin(window_start_ms);
        let ptr = self.write_in(frame)?;
        let on_frame = self.guest.v1().on_frame.clone();
        let ret = on_frame
            .call(&mut self.store, (ptr, frame.len() as i32))
            .map_err(|e| self.fail(e))?;
        if ret < 0 {
            return Err(CallFailure::new(
                FailureKind::NegativeReturn,
                format!("pitwall_on_frame returned {ret}: the plugin reported an error"),
            ));
        }
        let r = self.out_range(ret, "pitwall_on_frame")?;
        let data = self.guest.v1().memory.data(&self.store);
        InsightsData::from_flatbuffer_for_window(&data[r], window_start_ms)
            .map_err(|e| CallFailure::new(FailureKind::BadReply, e.to_string()))
    }

    /// The guest's state as bytes (`pitwall_snapshot`), or `None` when it does
    /// not export it.
    pub fn snapshot(&mut self) -> Result<Option<Vec<u8>>, CallFailure> {
        let Some(snapshot) = self.guest.v1().snapshot.clone() else {
            return Ok(None);
        };
        self.begin(0);
        let ret = snapshot
            .call(&mut self.store, ())
            .map_err(|e| self.fail(e))?;
        if ret < 0 {
            return Err(CallFailure::new(
                FailureKind::NegativeReturn,
                format!("pitwall_snapshot returned {ret}: the plugin cannot snapshot its state"),
            ));
        }
        let r = self.out_range(ret, "pitwall_snapshot")?;
        Ok(Some(self.guest.v1().memory.data(&self.store)[r].to_vec()))
    }

    /// Hands `state` (made by a version with `state_version`) to the guest's
    /// `pitwall_restore`. `Ok(None)` when the guest does not export it.
    pub fn restore(
        &mut self,
        state: &[u8],
        state_version: u32,
    ) -> Result<Option<RestoreOutcome>, CallFailure> {
        let Some(restore) = self.guest.v1().restore.clone() else {
            return Ok(None);
        };
        self.begin(0);
        let ptr = self.write_in(state)?;
        let code = restore
            .call(
                &mut self.store,
                (ptr, state.len() as i32, state_version as i32),
            )
            .map_err(|e| self.fail(e))?;
        Ok(Some(if code == 0 {
            RestoreOutcome::Restored
        } else {
            RestoreOutcome::Refused(code)
        }))
    }
}

/// Turns a wasmtime error into the failure an operator should see.
fn classify(
    store: &Store<HostState>,
    e: wasmtime::Error,
    ticks: u64,
    memory_limit: usize,
) -> CallFailure {
    let refused = store.data().limiter.refused;
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::new(
            FailureKind::Deadline,
            format!("the call ran past its deadline ({ticks} epoch ticks) and was interrupted"),
        ),
        Some(trap) if refused.is_some() => CallFailure::new(
            FailureKind::MemoryExceeded,
            format!(
                "{trap} after its memory was refused growth to {} bytes (cap {memory_limit} bytes)",
                refused.unwrap_or(0)
            ),
        ),
        Some(trap) => CallFailure::new(FailureKind::Trap, trap.to_string()),
        None if refused.is_some() => CallFailure::new(
            FailureKind::MemoryExceeded,
            format!("{e:#} (memory cap {memory_limit} bytes)"),
        ),
        None => CallFailure::new(FailureKind::Trap, format!("{e:#}")),
    }
}
