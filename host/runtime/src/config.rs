//! Runtime limits and policies, with the defaults `docs/plugin-abi.md` promises.
//!
//! Everything here is fixed when the [`Runtime`](crate::Runtime) is built:
//! the deadline and memory cap are compiled into how wasmtime runs a call
//! (epoch ticks, pooling slots), and the fault policy must be the same for
//! every plugin so operators can reason about it.

use std::time::Duration;

use pitwall_plugin_sdk::{LogRateLimiter, RateBasis};

/// How a plugin is allowed to run and when it is taken out of service.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Wall-clock budget of one guest call (frame, snapshot, restore, init).
    /// Enforced by epoch interruption: a ticker thread bumps the engine's
    /// epoch every [`epoch_tick`](Self::epoch_tick) and a call gets
    /// `ceil(deadline / epoch_tick)` ticks, so the real limit is up to one
    /// tick shorter. Default 5 ms.
    pub deadline: Duration,
    /// Period of the epoch ticker. Smaller ticks make the deadline sharper at
    /// the price of a thread waking more often. Default 1 ms.
    pub epoch_tick: Duration,
    /// Cap on one instance's linear memory, in bytes. A `memory.grow` past it
    /// fails (the guest sees `-1`; Rust guests then abort), which the host
    /// reports as [`FailureKind::MemoryExceeded`](crate::FailureKind). Default 64 MiB.
    pub memory_limit: usize,
    /// Instances the pooling allocator reserves slots for, across all plugins.
    /// Each plugin uses one for its live version, one while a swapped-out
    /// version stands by for rollback, one for a shadow candidate and one
    /// briefly while a new version is prepared. Default 64.
    pub max_instances: u32,
    /// Use wasmtime's pooling allocator (instantiation in a few µs, memory
    /// reserved up front). Turn off on hosts that restrict virtual memory.
    pub pooling: bool,
    /// Consecutive failed calls after which a plugin is quarantined. Default 3.
    pub failure_threshold: u32,
    /// A plugin is also quarantined when, once it has made `failure_window.1`
    /// calls, at least `failure_window.0` of the last `failure_window.1` failed.
    /// Default 5 of 20. Consecutive failures alone
    /// miss a plugin that traps (or spins to its deadline) on every other frame:
    /// each failure restarts it and its fresh instance's first call succeeds.
    pub failure_window: (u32, u32),
    /// A version counts as "swapped in recently" for this many windows after
    /// its swap (and for as long as it has not completed a single call):
    /// quarantining it then rolls back to the previous version automatically.
    /// Default 20.
    pub rollback_window: u64,
    /// Versions kept per plugin for rollback and `versions()`, the live one
    /// included. Default 8.
    pub history_len: usize,
    /// Guest log limit per instance (counted in event time or calls, never
    /// wall-clock, so replays log identically).
    pub log_limit: LogLimit,
    /// What counts as agreement between a shadow candidate and the live version.
    pub shadow_tolerance: ShadowTolerance,
}

/// The guest log rate limit: a burst, then one message per period.
#[derive(Debug, Clone, Copy)]
pub struct LogLimit {
    pub burst: u32,
    pub basis: RateBasis,
}

impl LogLimit {
    pub(crate) fn limiter(&self) -> LogRateLimiter {
        LogRateLimiter::new(self.burst, self.basis).unwrap_or_default()
    }
}

impl Default for LogLimit {
    /// 20 messages, then one per second of event time (the SDK's default).
    fn default() -> Self {
        LogLimit {
            burst: 20,
            basis: RateBasis::EventTime { ms: 1_000 },
        }
    }
}

/// When a shadow candidate's reply "agrees" with the live one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShadowTolerance {
    /// Largest absolute difference between two probabilities of the same
    /// prediction (kind, attacker, defender) that still agrees. Default 0.05.
    pub probability: f64,
    /// Largest absolute difference between two values of the same metric
    /// (name, car) that still agrees. Default 1e-6.
    pub metric: f64,
}

impl Default for ShadowTolerance {
    fn default() -> Self {
        ShadowTolerance {
            probability: 0.05,
            metric: 1e-6,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            deadline: Duration::from_millis(5),
            epoch_tick: Duration::from_millis(1),
            memory_limit: 64 << 20,
            max_instances: 64,
            pooling: true,
            failure_threshold: 3,
            failure_window: (5, 20),
            rollback_window: 20,
            history_len: 8,
            log_limit: LogLimit::default(),
            shadow_tolerance: ShadowTolerance::default(),
        }
    }
}

impl RuntimeConfig {
    /// Epoch ticks a call may run: `ceil(deadline / epoch_tick)`, at least 1.
    pub fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        let ticks = self.deadline.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ticks_round_up() {
        let mut c = RuntimeConfig::default();
        assert_eq!(c.deadline_ticks(), 5);
        c.deadline = Duration::from_micros(5_500);
        assert_eq!(c.deadline_ticks(), 6);
        c.deadline = Duration::ZERO;
        assert_eq!(c.deadline_ticks(), 1);
    }
}
