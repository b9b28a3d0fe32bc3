//! What a plugin can ask of the host while it works: model parameters, logging.
//!
//! Parameters are an opaque blob the host supplies (a fitted model, thresholds)
//! and may replace at any time without reloading the code: a *parameter-only
//! swap*. [`Context`] caches the blob and re-reads it only when the host's
//! `params_generation()` changes, so reading parameters on every frame costs
//! one host call; [`Context::params_json`] also caches the decoded value, so a
//! plugin pays for JSON parsing once per swap, not once per frame.

use std::any::Any;

use serde::de::DeserializeOwned;

use crate::guest;
use crate::log::LogLevel;

/// Why the parameters could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model parameters (generation {generation}) are not valid JSON for this plugin: {message}")]
pub struct ParamsError {
    /// The host's parameter generation that failed.
    pub generation: i64,
    /// What serde_json said.
    pub message: String,
}

/// The plugin's view of its host during a call. One per plugin instance; the
/// SDK passes it to every trait method.
#[derive(Default)]
pub struct Context {
    /// Generation of `bytes`; `None` before the first read.
    generation: Option<i64>,
    bytes: Vec<u8>,
    /// The last `params_json` decode, for `generation`: the type it was
    /// decoded as, and the value or the error.
    decoded: Option<Result<Box<dyn Any>, ParamsError>>,
    window_start_ms: i64,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("generation", &self.generation)
            .field("params_len", &self.bytes.len())
            .field("window_start_ms", &self.window_start_ms)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Re-reads the blob if the host's generation moved; returns the generation.
    fn refresh(&mut self) -> i64 {
        let g = guest::params_generation();
        if self.generation != Some(g) {
            if g == 0 {
                self.bytes.clear();
            } else {
                guest::read_params(&mut self.bytes);
            }
            self.generation = Some(g);
            self.decoded = None;
        }
        g
    }

    /// The host's parameter generation (0 = no parameters supplied). A model
    /// can compare it with the last one it saw to notice a parameter swap.
    pub fn params_generation(&mut self) -> i64 {
        self.refresh()
    }

    /// The current parameter blob, or `None` when the host supplied none.
    pub fn params(&mut self) -> Option<&[u8]> {
        (self.refresh() != 0).then_some(self.bytes.as_slice())
    }

    /// The parameters decoded from JSON as `T`, or `Ok(None)` when the host
    /// supplied none. Decoded once per parameter generation (and type) and
    /// cached; a decoding error is cached too, so a bad blob is reported, not
    /// re-parsed, on every frame.
    pub fn params_json<T: DeserializeOwned + 'static>(
        &mut self,
    ) -> Result<Option<&T>, ParamsError> {
        let generation = self.refresh();
        if generation == 0 {
            return Ok(None);
        }
        let cached_is_t = match &self.decoded {
            Some(Ok(v)) => v.is::<T>(),
            Some(Err(_)) => true,
            None => false,
        };
        if !cached_is_t {
            self.decoded = Some(
                serde_json::from_slice::<T>(&self.bytes)
                    .map(|v| Box::new(v) as Box<dyn Any>)
                    .map_err(|e| ParamsError {
                        generation,
                        message: e.to_string(),
                    }),
            );
        }
        match self.decoded.as_ref().expect("just filled") {
            Ok(v) => Ok(v.downcast_ref::<T>()),
            Err(e) => Err(e.clone()),
        }
    }

    /// Like [`params_json`](Self::params_json), falling back to `T::default()`
    /// (and logging a warning) when there are no parameters or they do not decode.
    pub fn params_json_or_default<T: DeserializeOwned + Default + Clone + 'static>(&mut self) -> T {
        match self.params_json::<T>() {
            Ok(Some(v)) => v.clone(),
            Ok(None) => T::default(),
            Err(e) => {
                self.log(LogLevel::Warn, &format!("{e}; using the defaults"));
                T::default()
            }
        }
    }

    /// Logs one line through the host (see also the [`info!`](macro@crate::info) family of macros).
    pub fn log(&self, level: LogLevel, message: &str) {
        guest::log(level, message);
    }

    /// Start of the window being processed (event time, ms).
    pub fn window_start_ms(&self) -> i64 {
        self.window_start_ms
    }

    pub(crate) fn set_window(&mut self, window_start_ms: i64) {
        self.window_start_ms = window_start_ms;
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::guest::native;

    #[derive(serde::Deserialize, PartialEq, Debug, Clone, Default)]
    struct P {
        threshold: f64,
    }

    #[test]
    fn params_are_cached_per_generation() {
        let mut host = native::NativeHost::default();
        native::swap(&mut host);
        let mut ctx = Context::default();
        assert_eq!(ctx.params(), None);
        assert_eq!(ctx.params_json::<P>(), Ok(None));
        native::with(|h| h.set_params(Some(br#"{"threshold": 1.5}"#.to_vec())));
        assert_eq!(ctx.params_json::<P>().unwrap(), Some(&P { threshold: 1.5 }));
        // Changing the blob without bumping the generation is not seen: the cache holds.
        native::with(|h| h.params = Some(br#"{"threshold": 9}"#.to_vec()));
        assert_eq!(ctx.params_json::<P>().unwrap().unwrap().threshold, 1.5);
        native::with(|h| h.set_params(Some(br#"{"threshold": 2}"#.to_vec())));
        assert_eq!(ctx.params_generation(), 2);
        assert_eq!(ctx.params_json::<P>().unwrap().unwrap().threshold, 2.0);
        native::with(|h| h.set_params(Some(b"not json".to_vec())));
        let err = ctx.params_json::<P>().unwrap_err();
        assert_eq!(err.generation, 3);
        assert_eq!(ctx.params(), Some(&b"not json"[..]));
        assert_eq!(ctx.params_json_or_default::<P>(), P::default());
        native::with(|h| h.set_params(None));
        assert_eq!(ctx.params(), None);
        native::swap(&mut host);
        assert_eq!(host.logs.len(), 1);
        assert!(host.logs[0].1.contains("not valid JSON"), "{:?}", host.logs);
    }
}
