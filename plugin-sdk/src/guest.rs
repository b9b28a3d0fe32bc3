//! The host functions a plugin may call (import module `pitwall_v1`,
//! docs/plugin-abi.md §3), and logging on top of them.
//!
//! On `wasm32` these are the real imports. Everywhere else the same functions
//! are backed by a thread-local [`native::NativeHost`] (captured log lines,
//! settable parameters), so a plugin compiled as a normal Rust library runs
//! unchanged in the [native test harness](crate::testing) and in doc tests.
//! Plugin code never needs a `cfg`.

use crate::log::LogLevel;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "pitwall_v1")]
    unsafe extern "C" {
        #[link_name = "log"]
        pub fn log(level: i32, ptr: i32, len: i32);
        #[link_name = "params_generation"]
        pub fn params_generation() -> i64;
        #[link_name = "params_len"]
        pub fn params_len() -> i32;
        #[link_name = "params_read"]
        pub fn params_read(ptr: i32, len: i32) -> i32;
    }
}

/// Sends one log line to the host (`pitwall_v1.log`). The host shows it with
/// the plugin's `name@version` and rate-limits it (so a plugin that logs on
/// every frame cannot flood the log); lines past the limit are dropped.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the import reads `len` bytes at `ptr` of this module's memory,
    // which is exactly `message`; wasm32 pointers and lengths fit in i32.
    unsafe {
        imports::log(
            level.as_u32() as i32,
            message.as_ptr() as i32,
            message.len() as i32,
        );
    }
    #[cfg(not(target_arch = "wasm32"))]
    native::with(|h| h.logs.push((level, message.to_owned())));
}

/// The host's parameter generation: bumped whenever it replaces the model
/// parameters; `0` = none supplied.
pub fn params_generation() -> i64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain host call without pointers.
    unsafe {
        imports::params_generation()
    }
    #[cfg(not(target_arch = "wasm32"))]
    native::with(|h| h.generation)
}

/// Reads the current parameter blob into `buf` (replacing its contents).
pub(crate) fn read_params(buf: &mut Vec<u8>) {
    buf.clear();
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: plain host call.
        let len = unsafe { imports::params_len() }.max(0) as usize;
        buf.resize(len, 0);
        // SAFETY: `buf` owns `len` initialised bytes at its pointer; the host
        // writes at most `len` bytes there and returns how many.
        let n = unsafe { imports::params_read(buf.as_mut_ptr() as i32, len as i32) };
        buf.truncate(n.max(0) as usize);
    }
    #[cfg(not(target_arch = "wasm32"))]
    native::with(|h| buf.extend_from_slice(h.params.as_deref().unwrap_or_default()));
}

/// The native stand-in for the host: what the imports do outside WASM.
#[cfg(not(target_arch = "wasm32"))]
pub mod native {
    use std::cell::RefCell;

    use crate::log::LogLevel;

    /// Log lines and parameters of one (simulated) plugin instance.
    #[derive(Debug, Default, Clone)]
    pub struct NativeHost {
        /// Every line logged, in order (no rate limit: tests see everything).
        pub logs: Vec<(LogLevel, String)>,
        /// The parameter blob, if any.
        pub params: Option<Vec<u8>>,
        /// Bumped by [`set_params`](Self::set_params); 0 = no parameters.
        pub generation: i64,
        /// The highest generation handed out, so generations never repeat.
        pub last_generation: i64,
    }

    impl NativeHost {
        /// Replaces the parameters (or removes them with `None`) and bumps the
        /// generation, as the host does on a parameter swap.
        pub fn set_params(&mut self, params: Option<Vec<u8>>) {
            self.generation = if params.is_some() {
                self.last_generation += 1;
                self.last_generation
            } else {
                0
            };
            self.params = params;
        }
    }

    thread_local! {
        static HOST: RefCell<NativeHost> = RefCell::new(NativeHost::default());
    }

    /// Runs `f` on this thread's host.
    pub fn with<R>(f: impl FnOnce(&mut NativeHost) -> R) -> R {
        HOST.with(|h| f(&mut h.borrow_mut()))
    }

    /// Swaps `host` with this thread's host: the harness installs its
    /// plugin's host around each call, so two harnesses on one thread do not
    /// see each other's logs or parameters.
    pub fn swap(host: &mut NativeHost) {
        HOST.with(|h| std::mem::swap(&mut *h.borrow_mut(), host));
    }
}

/// Logs at `trace` level (`format!` syntax).
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::guest::log($crate::LogLevel::Trace, &::std::format!($($arg)*)) };
}
/// Logs at `debug` level (`format!` syntax).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::guest::log($crate::LogLevel::Debug, &::std::format!($($arg)*)) };
}
/// Logs at `info` level (`format!` syntax).
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::guest::log($crate::LogLevel::Info, &::std::format!($($arg)*)) };
}
/// Logs at `warn` level (`format!` syntax).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::guest::log($crate::LogLevel::Warn, &::std::format!($($arg)*)) };
}
/// Logs at `error` level (`format!` syntax).
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::guest::log($crate::LogLevel::Error, &::std::format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_host_captures_logs_and_params() {
        let mut mine = native::NativeHost::default();
        mine.set_params(Some(b"{\"k\":1}".to_vec()));
        native::swap(&mut mine);
        crate::info!("frame {}", 7);
        crate::error!("bad");
        assert_eq!(params_generation(), 1);
        let mut buf = vec![9; 3];
        read_params(&mut buf);
        assert_eq!(buf, b"{\"k\":1}");
        native::swap(&mut mine);
        assert_eq!(
            mine.logs,
            [
                (LogLevel::Info, "frame 7".to_string()),
                (LogLevel::Error, "bad".to_string())
            ]
        );
        // The thread's own host saw none of it.
        assert_eq!(params_generation(), 0);
        mine.set_params(None);
        assert_eq!(mine.generation, 0);
    }
}
