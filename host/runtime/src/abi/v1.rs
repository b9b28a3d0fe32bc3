//! ABI 1.x: the `pitwall_v1` host functions and the guest exports of
//! `docs/plugin-abi.md` §2–3.
//!
//! Host functions never trap because of what the guest passes them: a bad
//! pointer or level makes `log` drop the message (counted) and `params_read`
//! return `-1`. Only the host's own invariants could fail, and they do not.

use pitwall_plugin_sdk::{AbiVersion, LogLevel};
use wasmtime::{AsContextMut, Caller, Extern, Instance, Linker, Memory, TypedFunc};

use super::{Binding, ExportSpec, Sig, Ty};
use crate::store::HostState;

/// The import module name of ABI 1.
pub const MODULE: &str = "pitwall_v1";

/// ABI 1.0.
pub static BINDING: Binding = Binding {
    abi: AbiVersion::new(1, 0),
    import_module: MODULE,
    imports: &[
        (
            "log",
            Sig {
                params: &[Ty::I32, Ty::I32, Ty::I32],
                results: &[],
            },
        ),
        (
            "params_generation",
            Sig {
                params: &[],
                results: &[Ty::I64],
            },
        ),
        (
            "params_len",
            Sig {
                params: &[],
                results: &[Ty::I32],
            },
        ),
        (
            "params_read",
            Sig {
                params: &[Ty::I32, Ty::I32],
                results: &[Ty::I32],
            },
        ),
    ],
    exports: &[
        ExportSpec {
            name: "memory",
            sig: None,
            required: true,
        },
        ExportSpec {
            name: "pitwall_alloc",
            sig: Some(Sig {
                params: &[Ty::I32],
                results: &[Ty::I32],
            }),
            required: true,
        },
        ExportSpec {
            name: "pitwall_on_frame",
            sig: Some(Sig {
                params: &[Ty::I32, Ty::I32],
                results: &[Ty::I64],
            }),
            required: true,
        },
        ExportSpec {
            name: "pitwall_init",
            sig: Some(Sig {
                params: &[],
                results: &[Ty::I32],
            }),
            required: false,
        },
        ExportSpec {
            name: "pitwall_snapshot",
            sig: Some(Sig {
                params: &[],
                results: &[Ty::I64],
            }),
            required: false,
        },
        ExportSpec {
            name: "pitwall_restore",
            sig: Some(Sig {
                params: &[Ty::I32, Ty::I32, Ty::I32],
                results: &[Ty::I32],
            }),
            required: false,
        },
    ],
    link,
};

fn guest_memory(caller: &mut Caller<'_, HostState>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

/// `start..start+len` as a range inside a memory of `size` bytes, if it fits.
pub(crate) fn range(start: i32, len: i32, size: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= size).then_some(start..end)
}

fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "log",
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let Some(memory) = guest_memory(&mut caller) else {
                caller.data_mut().log_dropped += 1;
                return;
            };
            let (data, state) = memory.data_and_store_mut(caller.as_context_mut());
            let level = u32::try_from(level).ok().and_then(LogLevel::from_u32);
            let text = range(ptr, len, data.len()).and_then(|r| std::str::from_utf8(&data[r]).ok());
            let (Some(level), Some(text)) = (level, text) else {
                state.log_dropped += 1;
                return;
            };
            let suppressed = match state.log.check(state.window_start_ms) {
                pitwall_plugin_sdk::Verdict::Allow { suppressed } => suppressed,
                pitwall_plugin_sdk::Verdict::Suppress => {
                    state.log_dropped += 1;
                    return;
                }
            };
            let plugin = &*state.plugin;
            let window = state.window_start_ms;
            match level {
                LogLevel::Error => {
                    tracing::error!(target: "pitwall::plugin", plugin, window, suppressed, "{text}")
                }
                LogLevel::Warn => {
                    tracing::warn!(target: "pitwall::plugin", plugin, window, suppressed, "{text}")
                }
                LogLevel::Info => {
                    tracing::info!(target: "pitwall::plugin", plugin, window, suppressed, "{text}")
                }
                LogLevel::Debug => {
                    tracing::debug!(target: "pitwall::plugin", plugin, window, suppressed, "{text}")
                }
                LogLevel::Trace => {
                    tracing::trace!(target: "pitwall::plugin", plugin, window, suppressed, "{text}")
                }
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "params_generation",
        |caller: Caller<'_, HostState>| {
            caller
                .data()
                .params
                .as_ref()
                .map_or(0, |p| i64::try_from(p.generation()).unwrap_or(i64::MAX))
        },
    )?;
    linker.func_wrap(MODULE, "params_len", |caller: Caller<'_, HostState>| {
        caller
            .data()
            .params
            .as_ref()
            .map_or(0, |p| i32::try_from(p.bytes().len()).unwrap_or(i32::MAX))
    })?;
    linker.func_wrap(
        MODULE,
        "params_read",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> i32 {
            let Some(memory) = guest_memory(&mut caller) else {
                return -1;
            };
            let (data, state) = memory.data_and_store_mut(caller.as_context_mut());
            let blob = state.params.as_ref().map_or(&[][..], |p| p.bytes());
            let Ok(wanted) = usize::try_from(len) else {
                return -1;
            };
            let n = wanted.min(blob.len());
            let Some(r) = range(ptr, n as i32, data.len()) else {
                return -1;
            };
            data[r].copy_from_slice(&blob[..n]);
            n as i32
        },
    )?;
    Ok(())
}

/// The guest's ABI 1 exports, looked up once per instance.
pub(crate) struct Exports {
    pub(crate) memory: Memory,
    pub(crate) alloc: TypedFunc<i32, i32>,
    pub(crate) on_frame: TypedFunc<(i32, i32), i64>,
    pub(crate) init: Option<TypedFunc<(), i32>>,
    pub(crate) snapshot: Option<TypedFunc<(), i64>>,
    pub(crate) restore: Option<TypedFunc<(i32, i32, i32), i32>>,
}

impl Exports {
    /// Looks the exports up. Their presence and types were checked at load
    /// time, so a failure here is a host bug, reported as a string.
    pub(crate) fn bind(
        instance: &Instance,
        mut store: impl AsContextMut<Data = HostState>,
    ) -> Result<Exports, String> {
        let mut store = store.as_context_mut();
        let e = |what: &str, err: wasmtime::Error| format!("export `{what}`: {err}");
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or("export `memory` missing")?;
        Ok(Exports {
            memory,
            alloc: instance
                .get_typed_func(&mut store, "pitwall_alloc")
                .map_err(|err| e("pitwall_alloc", err))?,
            on_frame: instance
                .get_typed_func(&mut store, "pitwall_on_frame")
                .map_err(|err| e("pitwall_on_frame", err))?,
            init: instance.get_typed_func(&mut store, "pitwall_init").ok(),
            snapshot: instance.get_typed_func(&mut store, "pitwall_snapshot").ok(),
            restore: instance.get_typed_func(&mut store, "pitwall_restore").ok(),
        })
    }
}
