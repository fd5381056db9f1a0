//! Cache statistics in striped counters: a thread adds to its own padded stripe, so a hit
//! writes no line that another core's hits write.

use crate::sync::{counter_stripes, stripe, AtomicU64, Ordering, Stripe};
use crossbeam_utils::CachePadded;

/// Indices into a stripe.
#[derive(Clone, Copy)]
pub(crate) enum Stat {
    Hit = 0,
    Miss,
    Insert,
    EvictCapacity,
    EvictExpired,
    EvictRemoved,
    EvictReplaced,
    Load,
    LoadError,
    LoadNotStored,
}

const N: usize = 10;

/// One set of counters per stripe.
pub(crate) struct Stats {
    stripes: Box<[CachePadded<[AtomicU64; N]>]>,
}

impl Stats {
    /// `sync::counter_stripes` stripes, as a `StripedCounter` has.
    pub(crate) fn new() -> Self {
        Stats {
            stripes: (0..counter_stripes())
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }

    /// Adds one to `s`. Relaxed: counters order nothing and are read only as totals.
    #[inline]
    pub(crate) fn add(&self, s: Stat) {
        match stripe() {
            Stripe::Owned(i) => {
                let c = &self.stripes[i][s as usize];
                // Relaxed: this thread is the stripe's only writer (see `sync::stripe`), so
                // a load and a store lose nothing, and a hit pays no locked instruction for
                // its count.
                c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
            }
            Stripe::Shared(i) => {
                // Relaxed: as above; shared with other threads, so a read-modify-write.
                self.stripes[i][s as usize].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn sum(&self, s: Stat) -> u64 {
        self.stripes
            .iter()
            // Relaxed: a snapshot of independent counters.
            .map(|st| st[s as usize].load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.sum(Stat::Hit),
            misses: self.sum(Stat::Miss),
            inserts: self.sum(Stat::Insert),
            evicted_capacity: self.sum(Stat::EvictCapacity),
            evicted_expired: self.sum(Stat::EvictExpired),
            removed: self.sum(Stat::EvictRemoved),
            replaced: self.sum(Stat::EvictReplaced),
            loads: self.sum(Stat::Load),
            load_errors: self.sum(Stat::LoadError),
            loads_not_stored: self.sum(Stat::LoadNotStored),
        }
    }
}

/// A snapshot of a [`Cache`](crate::Cache)'s counters since it was built.
///
/// Each counter is exact once the cache is quiescent; under concurrent use the fields are
/// read one after another, so they need not add up at an instant.
///
/// ```
/// let cache = linemap::Cache::new(10);
/// cache.insert(1, "a");
/// assert_eq!(cache.get(&1), Some("a"));
/// assert_eq!(cache.get(&2), None);
/// let s = cache.stats();
/// assert_eq!((s.hits, s.misses, s.inserts), (1, 1, 1));
/// assert_eq!(s.hit_ratio(), 0.5);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found none (absent or expired).
    pub misses: u64,
    /// Entries stored by an insert or a load (including replacements).
    pub inserts: u64,
    /// Entries evicted to respect the capacity ([`RemovalCause::Capacity`](crate::cache::RemovalCause::Capacity)).
    pub evicted_capacity: u64,
    /// Entries removed because their time-to-live passed.
    pub evicted_expired: u64,
    /// Entries removed by `remove`, `clear` or `retain`.
    pub removed: u64,
    /// Entries replaced by an insert of the same key.
    pub replaced: u64,
    /// Loader calls made by `get_or_insert_with` and friends.
    pub loads: u64,
    /// Loader calls that returned an error or panicked.
    pub load_errors: u64,
    /// Loaded values not stored (they went only to the callers): a write stored a value for
    /// the key while the load ran (the written value is newer), or a `remove`,
    /// `remove_versioned` or `clear` during the load announced a change the loader may have
    /// missed.
    pub loads_not_stored: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 before any lookup.
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// assert_eq!(cache.stats().hit_ratio(), 0.0);
    /// cache.insert(1, 1);
    /// for k in [1, 1, 1, 2] {
    ///     cache.get(&k);
    /// }
    /// assert_eq!(cache.stats().hit_ratio(), 0.75);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}
