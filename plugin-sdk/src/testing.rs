//! The native test harness: run a plugin as a plain Rust library, through the
//! same bytes the host uses, without building WASM.
//!
//! [`Harness`] drives the plugin through [`Runtime`] exactly as the
//! `pitwall_*` exports do: each frame is encoded to its FlatBuffer, copied
//! into the plugin's input buffer, read through the verified view, and the
//! plugin's reply is decoded and validated with
//! [`InsightsData::from_flatbuffer_for_window`], the host's own check. Logs
//! are captured (unlimited, in order) and parameters can be set and swapped.
//!
//! ```
//! use pitwall_plugin_sdk::testing::{Harness, car, frame};
//! use pitwall_plugin_sdk::{Context, Frame, Output, PluginResult, StoryGenerator};
//!
//! #[derive(Default)]
//! struct Leader;
//! impl StoryGenerator for Leader {
//!     fn on_frame(&mut self, f: &Frame<'_>, _: &mut Context, out: &mut Output) -> PluginResult {
//!         if let Some(p1) = f.running_order().first() {
//!             out.story("leader", "The leader").car(p1.number()).importance(0.1).emit()?;
//!         }
//!         Ok(())
//!     }
//! }
//! pitwall_plugin_sdk::export_plugin!(Leader, name = "leader", version = "0.1.0", kind = story_generator);
//!
//! let mut h = Harness::<Leader>::new();
//! let reply = h.run(&frame(0, vec![car(44, 2, 0.5), car(1, 1, f64::NAN)])).unwrap();
//! assert_eq!(reply.stories[0].cars(), ["1"]);
//! ```
//!
//! Recorded frames: [`read_frames`] reads a `.pwrf` file (each frame a `u32`
//! little-endian length and the FlatBuffer bytes, as `pitwall replay
//! --frames-out x.pwrf` writes it) or an `.ndjson` file (one
//! [`RaceFrameData`] JSON per line).

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::frame::{CarFrameData, RaceFrameData, RaceStateData};
use crate::guest::native::{self, NativeHost};
use crate::info::PluginInfo;
use crate::insights::{InsightsData, InsightsError};
use crate::log::LogLevel;
use crate::plugin::{CallError, ExportedPlugin, Runtime};

/// What went wrong in a harness call.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The plugin's metadata would be refused by the host.
    #[error("plugin metadata {json}: {reason}")]
    Info { json: String, reason: String },
    /// The call returned an error code (what the host would count as a failure).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The plugin panicked (a trap in WASM).
    #[error("the plugin panicked (a trap in WASM): {0}")]
    Panic(String),
    /// The reply failed the host's verification.
    #[error("the host would reject the reply: {0}")]
    Reply(#[from] InsightsError),
    /// A frame file could not be read.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// One plugin instance under test; see the [module docs](self).
pub struct Harness<P: ExportedPlugin> {
    runtime: Runtime<P>,
    host: NativeHost,
    info: PluginInfo,
}

impl<P: ExportedPlugin> Default for Harness<P> {
    fn default() -> Self {
        Self::new()
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

impl<P: ExportedPlugin> Harness<P> {
    /// A fresh instance, its metadata checked as the host checks it.
    ///
    /// # Panics
    /// If the metadata is invalid (see [`try_new`](Self::try_new)).
    pub fn new() -> Self {
        Self::try_new().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh instance, or why the host would refuse its metadata.
    pub fn try_new() -> Result<Self, HarnessError> {
        let info_err = |reason: String| HarnessError::Info {
            json: P::INFO_JSON.to_string(),
            reason,
        };
        let info: PluginInfo =
            serde_json::from_str(P::INFO_JSON).map_err(|e| info_err(e.to_string()))?;
        crate::ABI_VERSION
            .check_plugin(info.abi())
            .map_err(|e| info_err(e.to_string()))?;
        if info.name() != P::NAME
            || info.version() != P::VERSION
            || info.kind() != P::KIND
            || info.state_version() != P::STATE_VERSION
        {
            return Err(info_err("the JSON and the constants disagree".into()));
        }
        Ok(Harness {
            runtime: Runtime::default(),
            host: NativeHost::default(),
            info,
        })
    }

    /// The metadata the host would read from `pitwall:info`.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The plugin instance (to look at its state in a test).
    pub fn plugin(&self) -> &P {
        self.runtime.plugin()
    }

    /// Runs `f` with this harness's host installed, catching panics.
    fn call<R>(&mut self, f: impl FnOnce(&mut Runtime<P>) -> R) -> Result<R, HarnessError> {
        native::swap(&mut self.host);
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut self.runtime)));
        native::swap(&mut self.host);
        r.map_err(|p| HarnessError::Panic(panic_message(p)))
    }

    /// Calls `init` (as the host does once, after instantiating). Runs
    /// implicitly before the first frame otherwise.
    pub fn init(&mut self) -> Result<(), HarnessError> {
        Ok(self.call(|rt| rt.init())??)
    }

    /// Encodes `frame`, runs it, and decodes and validates the reply.
    pub fn run(&mut self, frame: &RaceFrameData) -> Result<InsightsData, HarnessError> {
        self.run_bytes(&frame.to_flatbuffer())
    }

    /// Runs one frame given as FlatBuffer bytes.
    pub fn run_bytes(&mut self, frame: &[u8]) -> Result<InsightsData, HarnessError> {
        let window = crate::frame::read_frame(frame)
            .map(|f| f.window_start_ms())
            .map_err(|e| CallError::BadFrame(e.to_string()))?;
        let reply = self.call(|rt| rt.on_frame(frame).map(<[u8]>::to_vec))??;
        Ok(InsightsData::from_flatbuffer_for_window(&reply, window)?)
    }

    /// Runs every frame in order; stops at the first failure.
    pub fn run_all<'f>(
        &mut self,
        frames: impl IntoIterator<Item = &'f RaceFrameData>,
    ) -> Result<Vec<InsightsData>, HarnessError> {
        frames.into_iter().map(|f| self.run(f)).collect()
    }

    /// Runs every frame of a `.pwrf` or `.ndjson` file.
    pub fn run_file(&mut self, path: impl AsRef<Path>) -> Result<Vec<InsightsData>, HarnessError> {
        read_frame_bytes(path.as_ref())?
            .iter()
            .map(|b| self.run_bytes(b))
            .collect()
    }

    /// Supplies model parameters (bumping the generation, as a parameter swap does).
    pub fn set_params(&mut self, bytes: impl Into<Vec<u8>>) {
        self.host.set_params(Some(bytes.into()));
    }

    /// Supplies parameters as JSON.
    pub fn set_params_json(&mut self, value: &impl Serialize) {
        self.set_params(serde_json::to_vec(value).expect("parameters serialize to JSON"));
    }

    /// Removes the parameters.
    pub fn clear_params(&mut self) {
        self.host.set_params(None);
    }

    /// Every line logged so far.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.host.logs
    }

    /// Returns and forgets the lines logged so far.
    pub fn take_logs(&mut self) -> Vec<(LogLevel, String)> {
        std::mem::take(&mut self.host.logs)
    }

    /// The plugin's state snapshot (as `pitwall_snapshot` returns it).
    pub fn snapshot(&mut self) -> Result<Vec<u8>, HarnessError> {
        Ok(self.call(|rt| rt.snapshot().map(<[u8]>::to_vec))??)
    }

    /// Restores from a snapshot written with state version `old_state_version`.
    pub fn restore(&mut self, state: &[u8], old_state_version: u32) -> Result<(), HarnessError> {
        Ok(self.call(|rt| rt.restore(state, old_state_version))??)
    }

    /// A hot swap as the host performs it: snapshot this instance, start a
    /// fresh `Q`, and restore it from the snapshot with this version's state
    /// version. Returns the new instance and whether the state was handed
    /// over (`false`: a side is stateless, or `Q` refused; it then starts
    /// fresh, as on the host). Parameters carry over; logs do not.
    pub fn swap_to<Q: ExportedPlugin>(mut self) -> Result<(Harness<Q>, bool), HarnessError> {
        let mut next = Harness::<Q>::try_new()?;
        next.host.params = self.host.params.take();
        next.host.generation = self.host.generation;
        next.host.last_generation = self.host.last_generation;
        let handed_over = match (P::STATE_VERSION, Q::STATE_VERSION) {
            (Some(old), Some(_)) => {
                let state = self.snapshot()?;
                next.restore(&state, old).is_ok()
            }
            _ => false,
        };
        Ok((next, handed_over))
    }
}

/// Reads a recorded frames file: `.pwrf` (length-prefixed FlatBuffers) or
/// `.ndjson` (one frame per line).
pub fn read_frames(path: impl AsRef<Path>) -> Result<Vec<RaceFrameData>, HarnessError> {
    let path = path.as_ref();
    read_frame_bytes(path)?
        .iter()
        .enumerate()
        .map(|(i, b)| {
            RaceFrameData::from_flatbuffer(b).map_err(|e| HarnessError::File {
                path: path.to_owned(),
                message: format!("frame {i}: {e}"),
            })
        })
        .collect()
}

/// Reads a recorded frames file as FlatBuffer bytes, one entry per frame
/// (`.ndjson` frames are encoded).
pub fn read_frame_bytes(path: &Path) -> Result<Vec<Vec<u8>>, HarnessError> {
    let err = |message: String| HarnessError::File {
        path: path.to_owned(),
        message,
    };
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| err(e.to_string()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("pwrf") => {
            let mut frames = Vec::new();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err(err(format!(
                        "frame {}: truncated length prefix",
                        frames.len()
                    )));
                };
                let len = u32::from_le_bytes(*len) as usize;
                let Some((frame, tail)) = tail.split_at_checked(len) else {
                    return Err(err(format!(
                        "frame {}: {len} bytes announced, {} left",
                        frames.len(),
                        tail.len()
                    )));
                };
                frames.push(frame.to_vec());
                rest = tail;
            }
            Ok(frames)
        }
        Some("ndjson") | Some("jsonl") => {
            let text = String::from_utf8(data).map_err(|e| err(e.to_string()))?;
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    RaceFrameData::from_ndjson_line(l)
                        .map(|f| f.to_flatbuffer())
                        .map_err(|e| err(format!("line {}: {e}", i + 1)))
                })
                .collect()
        }
        _ => Err(err("expected a .pwrf or .ndjson frames file".into())),
    }
}

/// Writes frames as a `.pwrf` file (for fixtures).
pub fn write_pwrf(path: impl AsRef<Path>, frames: &[RaceFrameData]) -> std::io::Result<()> {
    let mut out = Vec::new();
    for f in frames {
        let bytes = f.to_flatbuffer();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    std::fs::write(path, out)
}

/// A car for a test frame: number, position (0 = unknown) and interval to
/// the car ahead (NaN = none); everything else at its default.
pub fn car(number: u16, position: u8, interval_s: f64) -> CarFrameData {
    CarFrameData {
        car: number,
        position,
        interval_s,
        ..Default::default()
    }
}

/// A test frame: window `seq` of 1 s (starting at `seq * 1000` ms), session
/// `test`, green flag, lap 1 of 71, the given cars (sorted by number, as the
/// host writes them).
pub fn frame(seq: u64, mut cars: Vec<CarFrameData>) -> RaceFrameData {
    cars.sort_by_key(|c| c.car);
    let start = seq as i64 * 1_000;
    RaceFrameData {
        window_start_ms: start,
        window_end_ms: start + 1_000,
        seq,
        session: "test".into(),
        race: RaceStateData {
            lap: 1,
            total_laps: 71,
            flag: crate::frame::Flag::Green,
            ..Default::default()
        },
        cars,
        aggregate_names: Vec::new(),
        kernels: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Frame, Output, PluginResult, StoryGenerator};

    #[derive(Default)]
    struct Echo {
        frames: u64,
    }
    impl StoryGenerator for Echo {
        fn on_frame(&mut self, f: &Frame<'_>, ctx: &mut Context, out: &mut Output) -> PluginResult {
            self.frames += 1;
            if f.seq() == 13 {
                return Err("unlucky".into());
            }
            if f.seq() == 14 {
                panic!("boom");
            }
            let gain = ctx.params_json::<f64>()?.copied().unwrap_or(1.0);
            crate::info!("frame {} gain {gain}", f.seq());
            out.story("echo", "Echo")
                .importance((f.car_count() as f64 * gain / 20.0).min(1.0))
                .emit()?;
            Ok(())
        }
    }
    crate::export_plugin!(
        Echo,
        name = "echo",
        version = "0.1.0",
        kind = story_generator
    );

    #[test]
    fn runs_frames_through_the_host_path() {
        let mut h = Harness::<Echo>::new();
        assert_eq!(h.info().id(), "echo@0.1.0");
        let r = h
            .run(&frame(3, vec![car(1, 1, f64::NAN), car(2, 2, 0.5)]))
            .unwrap();
        assert_eq!((r.window_start_ms, r.stories[0].importance()), (3_000, 0.1));
        h.set_params_json(&5.0);
        let r = h
            .run(&frame(4, vec![car(1, 1, f64::NAN), car(2, 2, 0.5)]))
            .unwrap();
        assert_eq!(r.stories[0].importance(), 0.5);
        h.set_params(b"nope".to_vec());
        let err = h.run(&frame(5, vec![])).unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
        h.clear_params();
        assert!(
            matches!(h.run(&frame(13, vec![])), Err(HarnessError::Call(CallError::Plugin(m))) if m == "unlucky")
        );
        assert!(matches!(h.run(&frame(14, vec![])), Err(HarnessError::Panic(m)) if m == "boom"));
        assert!(h.run_bytes(b"garbage").is_err());
        let logs = h.take_logs();
        assert_eq!(logs[0], (LogLevel::Info, "frame 3 gain 1".to_string()));
        assert!(
            logs.iter()
                .any(|(l, m)| *l == LogLevel::Error && m.contains("unlucky"))
        );
        assert!(h.logs().is_empty());
        assert_eq!(h.plugin().frames, 5);
        assert!(matches!(
            h.snapshot(),
            Err(HarnessError::Call(CallError::Stateless))
        ));
    }

    #[test]
    fn frame_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("pitwall-harness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let frames: Vec<_> = (0..3)
            .map(|s| frame(s, vec![car(1, 1, f64::NAN)]))
            .collect();
        let pwrf = dir.join("f.pwrf");
        write_pwrf(&pwrf, &frames).unwrap();
        // Debug compares NaN fields as equal text.
        assert_eq!(
            format!("{:?}", read_frames(&pwrf).unwrap()),
            format!("{frames:?}")
        );
        let nd = dir.join("f.ndjson");
        let text: String = frames.iter().map(|f| f.to_ndjson_line() + "\n").collect();
        std::fs::write(&nd, text).unwrap();
        let mut h = Harness::<Echo>::new();
        assert_eq!(h.run_file(&nd).unwrap().len(), 3);
        // A truncated file is an error that says where.
        let bytes = std::fs::read(&pwrf).unwrap();
        std::fs::write(&pwrf, &bytes[..bytes.len() - 3]).unwrap();
        let err = read_frames(&pwrf).unwrap_err().to_string();
        assert!(err.contains("frame 2"), "{err}");
        assert!(read_frames(dir.join("f.csv")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
