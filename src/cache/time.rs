//! Time for expiry: an injectable monotonic clock, and deadlines as nanoseconds on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock for a [`Cache`](crate::Cache)'s time-to-live.
///
/// [`SystemClock`] is the default. Tests inject a [`ManualClock`] to move time by hand. A
/// cache reads its clock when it stores or checks an entry that has a deadline, and when a
/// caller starts to wait for another caller's load (to check the loaded value's deadline
/// against): a cache without any time-to-live reads it only then.
///
/// ```
/// use linemap::cache::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(clock.now(), Duration::from_secs(3));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Time elapsed since a fixed origin chosen by the clock. Must never decrease.
    fn now(&self) -> Duration;
}

/// The default clock: [`Instant::now`] measured from the clock's creation.
///
/// On Linux x86_64 and aarch64 `Instant::now` is a vDSO `clock_gettime(CLOCK_MONOTONIC)`
/// call, about 20 ns and no system call; see docs/cache.md for the measured cost.
///
/// ```
/// use linemap::cache::{Clock, SystemClock};
///
/// let c = SystemClock::new();
/// let a = c.now();
/// assert!(c.now() >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    ///
    /// ```
    /// use linemap::cache::{Clock, SystemClock};
    ///
    /// let clock = SystemClock::new();
    /// let cache = linemap::Cache::builder(10).clock(clock).build();
    /// cache.insert(1, "a");
    /// assert!(clock.now() < std::time::Duration::from_secs(3600));
    /// ```
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to: for tests of expiry.
///
/// Share it with the cache through an `Arc` (`Arc<ManualClock>` is a [`Clock`]).
///
/// ```
/// use linemap::cache::ManualClock;
/// use linemap::Cache;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let clock = Arc::new(ManualClock::new());
/// let cache = Cache::builder(10).clock(Arc::clone(&clock)).build();
/// cache.insert_with_ttl("k", 1, Duration::from_secs(5));
/// clock.advance(Duration::from_secs(4));
/// assert_eq!(cache.get("k"), Some(1));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get("k"), None);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at time zero.
    ///
    /// ```
    /// use linemap::cache::{Clock, ManualClock};
    ///
    /// assert_eq!(ManualClock::new().now(), std::time::Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `d` (saturating).
    ///
    /// ```
    /// use linemap::cache::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(1500));
    /// clock.advance(Duration::from_millis(500));
    /// assert_eq!(clock.now(), Duration::from_secs(2));
    /// clock.advance(Duration::MAX); // saturates instead of wrapping
    /// assert!(clock.now() >= Duration::from_secs(2));
    /// ```
    pub fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: the clock value orders nothing else; a reader sees it or an earlier one.
        let _ = self
            .nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(add))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        // Relaxed: see `advance`.
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

/// A deadline that never passes.
pub(crate) const NEVER: u64 = u64::MAX;

/// Nanoseconds of `d`, saturating at [`NEVER`].
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

/// The deadline `ttl` after `now` (nanoseconds), saturating at [`NEVER`].
pub(crate) fn deadline(now: Duration, ttl: Duration) -> u64 {
    nanos(now).saturating_add(nanos(ttl))
}
