//! Guest logging: levels, and the deterministic rate limit the host applies.
//!
//! Logging is one of the few host functions a plugin gets. A plugin that logs
//! on every window (or a hostile one that logs in a loop) must not flood the
//! host, so the host limits it with a token bucket. The bucket refills from
//! **event time** (the window the plugin is processing) or from the **number
//! of calls**, never from the wall clock: the same replay then keeps and drops
//! the same messages every time, a golden test can include log output, and a
//! slow machine does not log more than a fast one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The severity of a guest log message, most severe first.
///
/// The numeric values ([`as_u32`](Self::as_u32)) are what crosses the ABI and
/// are fixed: `0` error, `1` warn, `2` info, `3` debug, `4` trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
    Trace = 4,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// The level's number on the ABI.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The level for an ABI number; `None` for a number no level has (the
    /// host treats that as a plugin error rather than guessing).
    pub fn from_u32(n: u32) -> Option<LogLevel> {
        LogLevel::ALL.get(usize::try_from(n).ok()?).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// Whether a message at `self` passes a filter set to `max` (e.g. with
    /// `max = Info`, `Warn` passes and `Debug` does not).
    pub fn enabled(self, max: LogLevel) -> bool {
        self <= max
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown log level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {input:?}: expected error, warn, info, debug or trace")]
pub struct ParseLogLevelError {
    pub input: String,
}

impl FromStr for LogLevel {
    type Err = ParseLogLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == lower)
            .ok_or_else(|| ParseLogLevelError {
                input: s.to_string(),
            })
    }
}

/// A rate limiter configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("a rate limiter's burst must be at least 1 (it was 0: nothing could ever be logged)")]
    ZeroBurst,
    #[error(
        "a rate limiter must refill one token per at least 1 {unit} (it was 0: no limit at all)"
    )]
    ZeroPeriod { unit: &'static str },
}

/// The outcome of asking a [`TokenBucket`] for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead. `suppressed` messages were dropped since the last one let
    /// through; the host can say so ("… 12 messages suppressed").
    Allow { suppressed: u64 },
    /// Drop this one.
    Suppress,
}

impl Verdict {
    pub fn allowed(self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }
}

/// A token bucket over an abstract, caller-supplied tick counter.
///
/// It holds up to `burst` tokens and gains one every `period` ticks; each
/// allowed event spends one. It starts full. Ticks are whatever the caller
/// counts (event-time milliseconds, calls): the bucket never looks at a
/// clock, so its decisions depend on its inputs only.
///
/// Ticks that go backwards (a late window, a replay of an older one) add
/// nothing and do not move the bucket's notion of "now" back, so an
/// out-of-order input cannot earn extra tokens.
///
/// It serializes (a host checkpoint can keep it, so a restored run drops the
/// same messages as an uninterrupted one); deserializing checks the same
/// rules as [`new`](Self::new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TokenBucketWire")]
pub struct TokenBucket {
    burst: u32,
    period: u64,
    tokens: u32,
    /// Tick up to which refills have been credited; `None` before the first event.
    credited_to: Option<i64>,
    suppressed: u64,
}

impl TokenBucket {
    /// A bucket of `burst` tokens refilling one token every `period` ticks.
    pub fn new(burst: u32, period: u64) -> Result<Self, RateLimitError> {
        if burst == 0 {
            return Err(RateLimitError::ZeroBurst);
        }
        if period == 0 {
            return Err(RateLimitError::ZeroPeriod { unit: "tick" });
        }
        Ok(TokenBucket {
            burst,
            period,
            tokens: burst,
            credited_to: None,
            suppressed: 0,
        })
    }

    /// Asks for one token at tick `now`.
    pub fn take(&mut self, now: i64) -> Verdict {
        self.refill(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            Verdict::Allow {
                suppressed: std::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed += 1;
            Verdict::Suppress
        }
    }

    /// Tokens available now (after the last `take`).
    pub fn tokens(&self) -> u32 {
        self.tokens
    }

    /// Events dropped since the last one let through.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    fn refill(&mut self, now: i64) {
        let Some(from) = self.credited_to else {
            self.credited_to = Some(now);
            return;
        };
        if now <= from {
            return;
        }
        let elapsed = now.abs_diff(from);
        let earned = elapsed / self.period;
        let room = u64::from(self.burst - self.tokens);
        if earned >= room {
            // Full: the leftover fraction of a period is forfeited, as a full bucket cannot hold it.
            self.tokens = self.burst;
            self.credited_to = Some(now);
        } else {
            self.tokens += earned as u32;
            // Keep the remainder of the current period: credit only whole periods.
            // `earned * period < elapsed` fits, and `from + that <= now` cannot overflow.
            self.credited_to = Some(from.wrapping_add_unsigned(earned * self.period));
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBucketWire {
    burst: u32,
    period: u64,
    tokens: u32,
    credited_to: Option<i64>,
    suppressed: u64,
}

impl TryFrom<TokenBucketWire> for TokenBucket {
    type Error = RateLimitError;
    fn try_from(w: TokenBucketWire) -> Result<Self, RateLimitError> {
        let fresh = TokenBucket::new(w.burst, w.period)?;
        Ok(TokenBucket {
            tokens: w.tokens.min(fresh.burst),
            credited_to: w.credited_to,
            suppressed: w.suppressed,
            ..fresh
        })
    }
}

/// What refills a [`LogRateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateBasis {
    /// One token per `ms` milliseconds of event time.
    EventTime { ms: u64 },
    /// One token per `calls` calls of the limiter, allowed or not.
    Calls { calls: u64 },
}

/// The host's limit on one plugin instance's log calls.
///
/// Every level is limited alike: a plugin that fails on every window would
/// otherwise flood the log with errors just as well as with debug lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRateLimiter {
    basis: RateBasis,
    bucket: TokenBucket,
    calls: i64,
}

impl LogRateLimiter {
    /// A limiter that lets `burst` messages through at once and then one per
    /// `basis` period.
    pub fn new(burst: u32, basis: RateBasis) -> Result<Self, RateLimitError> {
        let period = match basis {
            RateBasis::EventTime { ms } => (ms, "millisecond of event time"),
            RateBasis::Calls { calls } => (calls, "call"),
        };
        if period.0 == 0 {
            return Err(RateLimitError::ZeroPeriod { unit: period.1 });
        }
        Ok(LogRateLimiter {
            basis,
            bucket: TokenBucket::new(burst, period.0)?,
            calls: 0,
        })
    }

    /// Decides one log call made while the plugin processes the window at
    /// `event_time_ms` (ignored with [`RateBasis::Calls`]).
    pub fn check(&mut self, event_time_ms: i64) -> Verdict {
        let now = match self.basis {
            RateBasis::EventTime { .. } => event_time_ms,
            RateBasis::Calls { .. } => {
                self.calls = self.calls.saturating_add(1);
                self.calls
            }
        };
        self.bucket.take(now)
    }

    pub fn basis(&self) -> RateBasis {
        self.basis
    }

    /// Messages dropped since the last one let through.
    pub fn suppressed(&self) -> u64 {
        self.bucket.suppressed()
    }
}

impl Default for LogRateLimiter {
    /// A burst of 20 messages, then one per second of event time.
    fn default() -> Self {
        LogRateLimiter::new(20, RateBasis::EventTime { ms: 1_000 }).expect("valid constants")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_are_ordered_and_numbered_for_the_abi() {
        assert!(LogLevel::Error < LogLevel::Trace);
        assert!(LogLevel::Warn.enabled(LogLevel::Info));
        assert!(!LogLevel::Debug.enabled(LogLevel::Info));
        for (n, l) in LogLevel::ALL.into_iter().enumerate() {
            assert_eq!(l.as_u32(), n as u32);
            assert_eq!(LogLevel::from_u32(n as u32), Some(l));
            assert_eq!(l.as_str().parse::<LogLevel>().unwrap(), l);
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
        }
        assert_eq!(LogLevel::from_u32(5), None);
        assert_eq!(LogLevel::from_u32(u32::MAX), None);
        assert_eq!(" WARN ".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        let err = "loud".parse::<LogLevel>().unwrap_err().to_string();
        assert!(err.contains("\"loud\"") && err.contains("trace"), "{err}");
    }

    #[test]
    fn bucket_allows_a_burst_then_one_per_period() {
        let mut b = TokenBucket::new(3, 1_000).unwrap();
        let at = |b: &mut TokenBucket, t| b.take(t).allowed();
        assert!(at(&mut b, 0) && at(&mut b, 0) && at(&mut b, 0));
        assert!(!at(&mut b, 0));
        assert!(!at(&mut b, 999));
        assert_eq!(b.take(1_000), Verdict::Allow { suppressed: 2 });
        assert!(!at(&mut b, 1_500));
        // The half period from 1_000 to 1_500 is kept: 2_000 earns the next token.
        assert!(at(&mut b, 2_000));
        // A long gap refills to the burst, not beyond.
        assert!(at(&mut b, 100_000) && at(&mut b, 100_000) && at(&mut b, 100_000));
        assert!(!at(&mut b, 100_000));
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let mut b = TokenBucket::new(1, 10).unwrap();
        assert!(b.take(100).allowed());
        assert!(!b.take(50).allowed());
        assert!(!b.take(105).allowed());
        assert!(b.take(110).allowed());
    }

    #[test]
    fn bucket_survives_extreme_ticks() {
        let mut b = TokenBucket::new(2, 1).unwrap();
        assert!(b.take(i64::MIN).allowed());
        assert!(b.take(i64::MIN).allowed());
        assert!(!b.take(i64::MIN).allowed());
        assert!(b.take(i64::MAX).allowed());
        assert!(b.take(i64::MAX).allowed());
        assert!(!b.take(i64::MAX).allowed());
    }

    #[test]
    fn bucket_state_survives_a_checkpoint() {
        let mut l = LogRateLimiter::new(2, RateBasis::EventTime { ms: 100 }).unwrap();
        for t in [0, 0, 0, 50] {
            l.check(t);
        }
        let json = serde_json::to_string(&l).unwrap();
        let mut restored: LogRateLimiter = serde_json::from_str(&json).unwrap();
        let ticks = [60, 100, 100, 150, 400, 400, 400];
        let a: Vec<_> = ticks.iter().map(|&t| l.check(t)).collect();
        let b: Vec<_> = ticks.iter().map(|&t| restored.check(t)).collect();
        assert_eq!(a, b);
        let bad = json.replace("\"burst\":2", "\"burst\":0");
        assert!(serde_json::from_str::<LogRateLimiter>(&bad).is_err());
    }

    #[test]
    fn zero_configurations_are_refused() {
        assert_eq!(TokenBucket::new(0, 1), Err(RateLimitError::ZeroBurst));
        let err = LogRateLimiter::new(5, RateBasis::Calls { calls: 0 }).unwrap_err();
        assert!(err.to_string().contains("1 call"), "{err}");
        let err = LogRateLimiter::new(5, RateBasis::EventTime { ms: 0 }).unwrap_err();
        assert!(err.to_string().contains("event time"), "{err}");
    }

    #[test]
    fn call_basis_ignores_event_time() {
        let mut l = LogRateLimiter::new(2, RateBasis::Calls { calls: 3 }).unwrap();
        // Calls 1, 2 use the burst; 3 and 4 are dropped; call 4 is 3 calls after
        // call 1, earning one token back.
        let got: Vec<bool> = (0..8).map(|_| l.check(42).allowed()).collect();
        assert_eq!(got, [true, true, false, true, false, false, true, false]);
    }

    #[test]
    fn event_time_basis_follows_windows() {
        let mut l = LogRateLimiter::new(1, RateBasis::EventTime { ms: 1_000 }).unwrap();
        // A plugin logging ten times per 250 ms window gets one line per second.
        let mut allowed = Vec::new();
        for w in 0..8 {
            for _ in 0..10 {
                if l.check(w * 250).allowed() {
                    allowed.push(w * 250);
                }
            }
        }
        assert_eq!(allowed, [0, 1_000]);
        // Since the line let through at 1 000: its 9 siblings and 3 more windows of 10.
        assert_eq!(l.suppressed(), 9 + 30);
        assert!(LogRateLimiter::default().check(0).allowed());
    }

    proptest! {
        /// Over any non-decreasing run of ticks, at most burst + span/period
        /// events pass, and the same input always gives the same decisions.
        #[test]
        fn never_more_than_burst_plus_refill(
            burst in 1u32..5,
            period in 1u64..50,
            steps in proptest::collection::vec(0i64..40, 1..200),
            start in -1_000_000i64..1_000_000,
        ) {
            let ticks: Vec<i64> = steps.iter().scan(start, |t, d| { *t += d; Some(*t) }).collect();
            let run = || {
                let mut b = TokenBucket::new(burst, period).unwrap();
                ticks.iter().map(|&t| b.take(t).allowed()).collect::<Vec<_>>()
            };
            let got = run();
            prop_assert_eq!(&got, &run());
            let span = (ticks[ticks.len() - 1] - ticks[0]) as u64;
            let passed = got.iter().filter(|a| **a).count() as u64;
            prop_assert!(passed <= u64::from(burst) + span / period);
            // And it is not stingier than that either: with a call per tick,
            // everything passes once the rate is at most one per period.
            if steps.iter().skip(1).all(|&d| d as u64 >= period) {
                prop_assert!(got.iter().all(|a| *a));
            }
        }
    }
}
