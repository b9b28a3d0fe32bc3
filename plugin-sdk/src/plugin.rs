//! What a plugin author implements: one trait per plugin kind, optional state
//! hand-over, and the [`Runtime`] that drives them.
//!
//! * [`StoryGenerator`]: the whole frame in, stories out;
//! * [`CarModel`]: called once per car, metrics out;
//! * [`PairModel`]: called once per consecutive pair of the running order
//!   (attacker behind, defender ahead), predictions out;
//! * [`Stateful`]: the plugin's state as a serde value, handed from the old
//!   version to the new one on a hot swap.
//!
//! [`export_plugin!`](crate::export_plugin) ties a type to its metadata
//! (implementing [`ExportedPlugin`]) and, on `wasm32`, emits the ABI exports.
//! [`Runtime`] is the one code path both the WASM exports and the native
//! [harness](crate::testing) go through: frame bytes in, `Insights` bytes out.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::PluginKind;
use crate::context::Context;
use crate::guest;
use crate::log::LogLevel;
use crate::output::Output;
use crate::view::{Car, Frame, Pair};

/// What a plugin method returns: `?` works on the SDK's errors, and a
/// `String` or `&str` converts with `.into()`. An `Err` drops the frame's
/// reply; the SDK logs the message at `error` level and the host counts a
/// failure.
pub type PluginResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Reads the whole frame and tells stories.
pub trait StoryGenerator: Default + 'static {
    /// Once, before the first frame; an `Err` refuses to start.
    fn init(&mut self, _ctx: &mut Context) -> PluginResult {
        Ok(())
    }
    /// One frame.
    fn on_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context, out: &mut Output) -> PluginResult;
}

/// Models one car at a time.
pub trait CarModel: Default + 'static {
    /// Once, before the first frame; an `Err` refuses to start.
    fn init(&mut self, _ctx: &mut Context) -> PluginResult {
        Ok(())
    }
    /// Before the cars of each frame (look up aggregate indices, read params).
    fn begin_frame(&mut self, _frame: &Frame<'_>, _ctx: &mut Context) -> PluginResult {
        Ok(())
    }
    /// Which cars to model; by default every car that has not retired.
    fn wants(&self, car: &Car<'_>) -> bool {
        !car.retired()
    }
    /// One car of the frame.
    fn on_car(
        &mut self,
        car: &Car<'_>,
        frame: &Frame<'_>,
        ctx: &mut Context,
        out: &mut Output,
    ) -> PluginResult;
}

/// Models a pair of cars next to each other on track.
pub trait PairModel: Default + 'static {
    /// Once, before the first frame; an `Err` refuses to start.
    fn init(&mut self, _ctx: &mut Context) -> PluginResult {
        Ok(())
    }
    /// Before the pairs of each frame.
    fn begin_frame(&mut self, _frame: &Frame<'_>, _ctx: &mut Context) -> PluginResult {
        Ok(())
    }
    /// One pair of [`Frame::pairs`] (consecutive cars of the running order).
    fn on_pair(
        &mut self,
        pair: &Pair<'_>,
        frame: &Frame<'_>,
        ctx: &mut Context,
        out: &mut Output,
    ) -> PluginResult;
}

/// A plugin whose state survives a hot swap to a new version.
///
/// On a swap the host takes the old instance's [`snapshot`](Self::snapshot)
/// (serialized by the SDK as JSON) at a window boundary and hands it to the
/// new instance's [`restore`](Self::restore) with the *old* version's
/// `state_version` (declared in [`export_plugin!`](crate::export_plugin)). The
/// new code decides whether it understands that format; refusing is safe (it
/// starts fresh and the host logs why).
pub trait Stateful {
    /// The state as it is written.
    type State: Serialize;
    /// The state to hand over.
    fn snapshot(&self) -> Self::State;
    /// Restores from `state`, written by a version whose state version was
    /// `old_state_version`. Decode with [`StateBytes::decode`].
    fn restore(&mut self, old_state_version: u32, state: StateBytes<'_>) -> PluginResult;
}

/// A snapshot handed to [`Stateful::restore`].
#[derive(Debug, Clone, Copy)]
pub struct StateBytes<'a>(pub &'a [u8]);

impl StateBytes<'_> {
    /// Decodes the snapshot (JSON) as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> PluginResult<T> {
        serde_json::from_slice(self.0)
            .map_err(|e| format!("cannot decode the state snapshot: {e}").into())
    }
}

/// A plugin type tied to its metadata; implemented by
/// [`export_plugin!`](crate::export_plugin), not by hand.
pub trait ExportedPlugin: Sized + 'static {
    /// Plugin name (`[a-z0-9-]`).
    const NAME: &'static str;
    /// `MAJOR.MINOR.PATCH`.
    const VERSION: &'static str;
    const KIND: PluginKind;
    /// `Some` for a [`Stateful`] plugin.
    const STATE_VERSION: Option<u32>;
    /// The exact bytes of the `pitwall:info` section.
    const INFO_JSON: &'static str;
    fn create() -> Self;
    fn init(&mut self, ctx: &mut Context) -> PluginResult;
    fn on_frame(&mut self, frame: &Frame<'_>, ctx: &mut Context, out: &mut Output) -> PluginResult;
    /// Writes the state into `buf`; `None` when the plugin is not stateful.
    fn snapshot(&self, buf: &mut Vec<u8>) -> Option<PluginResult>;
    /// `None` when the plugin is not stateful.
    fn restore(&mut self, old_state_version: u32, state: &[u8]) -> Option<PluginResult>;
}

/// Glue used by the export macro: drives each kind's trait.
#[doc(hidden)]
pub mod drive {
    use super::*;

    pub fn story<P: StoryGenerator>(
        p: &mut P,
        f: &Frame<'_>,
        c: &mut Context,
        o: &mut Output,
    ) -> PluginResult {
        p.on_frame(f, c, o)
    }

    pub fn car<P: CarModel>(
        p: &mut P,
        f: &Frame<'_>,
        c: &mut Context,
        o: &mut Output,
    ) -> PluginResult {
        p.begin_frame(f, c)?;
        for car in f.cars() {
            if p.wants(&car) {
                p.on_car(&car, f, c, o)?;
            }
        }
        Ok(())
    }

    pub fn pair<P: PairModel>(
        p: &mut P,
        f: &Frame<'_>,
        c: &mut Context,
        o: &mut Output,
    ) -> PluginResult {
        p.begin_frame(f, c)?;
        for pair in f.pairs() {
            p.on_pair(&pair, f, c, o)?;
        }
        Ok(())
    }

    pub fn init_story<P: StoryGenerator>(p: &mut P, c: &mut Context) -> PluginResult {
        StoryGenerator::init(p, c)
    }
    pub fn init_car<P: CarModel>(p: &mut P, c: &mut Context) -> PluginResult {
        CarModel::init(p, c)
    }
    pub fn init_pair<P: PairModel>(p: &mut P, c: &mut Context) -> PluginResult {
        PairModel::init(p, c)
    }

    pub fn snapshot<P: Stateful>(p: &P, buf: &mut Vec<u8>) -> PluginResult {
        buf.clear();
        serde_json::to_writer(&mut *buf, &p.snapshot())?;
        Ok(())
    }

    pub fn restore<P: Stateful>(p: &mut P, old: u32, state: &[u8]) -> PluginResult {
        p.restore(old, StateBytes(state))
    }
}

/// Why a call into the plugin failed. The numbers are what the WASM exports
/// return (negative = guest-reported error, docs/plugin-abi.md §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The frame bytes did not verify (`-1`).
    #[error("the frame was rejected: {0}")]
    BadFrame(String),
    /// The plugin returned an error (`-2`).
    #[error("the plugin failed: {0}")]
    Plugin(String),
    /// `init` failed earlier, so the plugin does not run (`-3`).
    #[error("the plugin did not initialise: {0}")]
    NotInitialised(String),
    /// Snapshot or restore asked of a plugin that is not stateful (`-4`).
    #[error("the plugin keeps no state across swaps")]
    Stateless,
}

impl CallError {
    /// The negative code the ABI exports return for this error.
    pub fn code(&self) -> i32 {
        match self {
            CallError::BadFrame(_) => -1,
            CallError::Plugin(_) => -2,
            CallError::NotInitialised(_) => -3,
            CallError::Stateless => -4,
        }
    }
}

/// One plugin instance with its context, output builder and buffers: what the
/// WASM exports call, and what the native harness calls the same way.
pub struct Runtime<P: ExportedPlugin> {
    plugin: P,
    ctx: Context,
    out: Output,
    input: Vec<u8>,
    state: Vec<u8>,
    init: Option<Result<(), String>>,
}

impl<P: ExportedPlugin> Default for Runtime<P> {
    fn default() -> Self {
        Runtime {
            plugin: P::create(),
            ctx: Context::default(),
            out: Output::default(),
            input: Vec::new(),
            state: Vec::new(),
            init: None,
        }
    }
}

impl<P: ExportedPlugin> Runtime<P> {
    /// A buffer of at least `len` bytes for the host to write a frame (or a
    /// snapshot) into; `None` when memory runs out. Grows only: steady-state
    /// calls neither allocate nor clear it.
    pub fn alloc(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.input.len() < len {
            self.input.try_reserve(len - self.input.len()).ok()?;
            self.input.resize(len, 0);
        }
        Some(&mut self.input[..len])
    }

    /// Where the [`alloc`](Self::alloc) buffer starts, and its length.
    pub fn input_range(&self) -> (*const u8, usize) {
        (self.input.as_ptr(), self.input.len())
    }

    /// Runs the plugin's `init` once (later calls return the first outcome).
    pub fn init(&mut self) -> Result<(), CallError> {
        if self.init.is_none() {
            let r = self.plugin.init(&mut self.ctx).map_err(|e| e.to_string());
            if let Err(e) = &r {
                guest::log(LogLevel::Error, &format!("init failed: {e}"));
            }
            self.init = Some(r);
        }
        self.init
            .clone()
            .expect("set above")
            .map_err(CallError::NotInitialised)
    }

    /// Processes the frame in the first `len` bytes of the [`alloc`](Self::alloc)
    /// buffer and returns the `Insights` reply (valid until the next call).
    pub fn on_frame_in_input(&mut self, len: usize) -> Result<&[u8], CallError> {
        self.init()?;
        let Runtime {
            plugin,
            ctx,
            out,
            input,
            ..
        } = self;
        let bytes = input.get(..len).ok_or_else(|| {
            CallError::BadFrame(format!("{len} bytes requested, {} allocated", input.len()))
        })?;
        let frame = Frame::from_bytes(bytes).map_err(|e| {
            let msg = e.to_string();
            guest::log(LogLevel::Error, &msg);
            CallError::BadFrame(msg)
        })?;
        ctx.set_window(frame.window_start_ms());
        out.begin(frame.window_start_ms());
        if let Err(e) = plugin.on_frame(&frame, ctx, out) {
            let msg = e.to_string();
            guest::log(LogLevel::Error, &format!("frame {}: {msg}", frame.seq()));
            return Err(CallError::Plugin(msg));
        }
        Ok(out.finish())
    }

    /// Copies `frame` into the input buffer and processes it.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<&[u8], CallError> {
        self.alloc(frame.len())
            .ok_or_else(|| CallError::BadFrame("out of memory for the frame".into()))?
            .copy_from_slice(frame);
        self.on_frame_in_input(frame.len())
    }

    /// The plugin's state as bytes (valid until the next call).
    pub fn snapshot(&mut self) -> Result<&[u8], CallError> {
        match self.plugin.snapshot(&mut self.state) {
            None => Err(CallError::Stateless),
            Some(Err(e)) => {
                let msg = format!("snapshot failed: {e}");
                guest::log(LogLevel::Error, &msg);
                Err(CallError::Plugin(msg))
            }
            Some(Ok(())) => Ok(&self.state),
        }
    }

    /// Restores from the snapshot in the first `len` bytes of the input buffer.
    pub fn restore_from_input(
        &mut self,
        len: usize,
        old_state_version: u32,
    ) -> Result<(), CallError> {
        let Some(state) = self.input.get(..len) else {
            return Err(CallError::Plugin(format!(
                "restore: {len} bytes requested, {} allocated",
                self.input.len()
            )));
        };
        match self.plugin.restore(old_state_version, state) {
            None => Err(CallError::Stateless),
            Some(Err(e)) => {
                let msg = format!("restore from state version {old_state_version} refused: {e}");
                guest::log(LogLevel::Warn, &msg);
                Err(CallError::Plugin(msg))
            }
            Some(Ok(())) => Ok(()),
        }
    }

    /// Copies `state` into the input buffer and restores from it.
    pub fn restore(&mut self, state: &[u8], old_state_version: u32) -> Result<(), CallError> {
        self.alloc(state.len())
            .ok_or_else(|| CallError::Plugin("out of memory for the snapshot".into()))?
            .copy_from_slice(state);
        self.restore_from_input(state.len(), old_state_version)
    }

    /// The plugin itself (for tests that look inside).
    pub fn plugin(&self) -> &P {
        &self.plugin
    }
}
