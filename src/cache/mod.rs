//! The bounded cache. The module's guide follows (it is `docs/cache.md`, and its examples run as
//! doctests).
//!
#![doc = include_str!("../../docs/cache.md")]

#[cfg(feature = "async")]
mod future;
mod load;
mod loaded;
mod stats;
mod time;

pub use loaded::Loaded;
pub use stats::CacheStats;
pub use time::{Clock, ManualClock, SystemClock};

use crate::clock::{Ring, Q};
use crate::sync::{pin, spin_hint, AtomicU64, Guard, Ordering};
use crate::table::{Entry, Op, RawTable};
use crate::DefaultHashBuilder;
use crossbeam_utils::CachePadded;
use stats::{Stat, Stats};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;
use time::NEVER;

/// Why an entry left the cache, as told to the eviction listener.
///
/// ```
/// use linemap::cache::RemovalCause;
/// use std::sync::{Arc, Mutex};
///
/// let causes = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&causes);
/// let cache = linemap::Cache::builder(10)
///     .eviction_listener(move |k: &u32, _: &u32, cause| log.lock().unwrap().push((*k, cause)))
///     .build();
/// cache.insert(1, 10);
/// cache.insert(1, 11);
/// cache.remove(&1);
/// assert_eq!(
///     *causes.lock().unwrap(),
///     [(1, RemovalCause::Replaced), (1, RemovalCause::Removed)]
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RemovalCause {
    /// Evicted (S3-FIFO) to keep the cache within its capacity (or refused because the cache
    /// could not make room, see [`Cache::insert`]).
    Capacity,
    /// Its time-to-live passed.
    Expired,
    /// Removed by [`Cache::remove`], [`Cache::clear`] or [`Cache::retain`].
    Removed,
    /// Replaced by an insert of the same key.
    Replaced,
}

/// The eviction listener's type: called with the key, the value and the cause.
type Listener<K, V> = Box<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// The user's weight function.
type WeighFn<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync>;

/// A weigher and the budget of total weight it is charged against.
struct Weigher<K, V> {
    weigh: WeighFn<K, V>,
    budget: u64,
}

/// Entries one insert's hand spares in main (and, separately, promotes from small) before it
/// evicts the next one regardless: bounds the work of one insert when every entry is hot.
const MAX_SWEEP: usize = 64;

/// The frequency counter: bits 0..3 of [`Node::meta`]. Its value is the number of bits set
/// (0 to 3), so that a hit sets one clear bit and the hand clears one set bit, each with a
/// single RMW whatever races it (two hits setting one bit merge, as a saturating count
/// would).
const FREQ: u64 = 0b111;

/// The counter's value.
#[inline]
fn freq(meta: u64) -> u32 {
    (meta & FREQ).count_ones()
}

/// The counter bits after one more use (saturating at 3).
#[inline]
fn bumped(meta: u64) -> u64 {
    let f = meta & FREQ;
    f | (!f & (f + 1) & FREQ)
}

/// [`Node::pos`] of a placeholder: a load in flight of the key (see `load.rs`). Positions
/// are below the capacity, itself below `u32::MAX`.
const LOADING: u32 = u32::MAX;

/// [`Node::pos`] of a node not placed yet (not in the table, or not a placeholder).
const UNPLACED: u32 = u32::MAX - 1;

/// A value with its cache metadata, or a placeholder for a load in flight of its key
/// (`pos == LOADING`: no value, no position, no weight; it holds the load's
/// [`load::PendingRef`] instead of a version). Immutable once published except for `meta`.
///
/// For `u64` values the node is 32 bytes: value, deadline, version, `meta`, position and
/// weight. A placeholder takes no more room: the version's word holds its `PendingRef`.
pub(crate) struct Node<V> {
    /// Initialised unless this is a placeholder; read only through [`Node::value`].
    value: MaybeUninit<V>,
    /// Deadline in nanoseconds on the cache's clock; [`NEVER`] for none.
    expires: u64,
    /// The version ([`Cache::insert_versioned`]; 0 for plain inserts), or a placeholder's
    /// load. Read only through [`Node::version`] and [`Node::pending`].
    aux: Aux<V>,
    /// Bits 0..3: the frequency counter ([`FREQ`]). Bits 3..64: the idle deadline with a
    /// time-to-idle (nanoseconds, bits 0..3 dropped), pushed forward by hits at most once per
    /// 1/16 of the time-to-idle; all ones without one. One word, so that a hit tests one
    /// word.
    meta: AtomicU64,
    /// Position held by this key (see `crate::clock`); it moves between the queues with the
    /// entry, so it never changes once the node is published. [`LOADING`] for a placeholder.
    pos: u32,
    /// Weight charged against the budget (0 without a weigher, and for a placeholder).
    weight: u32,
}

/// The version word of a [`Node`], or a placeholder's load (which of the two: `pos`).
union Aux<V> {
    version: u64,
    pending: ManuallyDrop<load::PendingRef<V>>,
}

impl<V> Node<V> {
    fn new(value: V, expires: u64, version: u64) -> Self {
        Node {
            value: MaybeUninit::new(value),
            expires,
            aux: Aux { version },
            meta: AtomicU64::new(NEVER & !FREQ),
            pos: UNPLACED,
            weight: 0,
        }
    }

    /// A placeholder for the load `pending` of its key.
    fn loading(pending: load::PendingRef<V>) -> Self {
        Node {
            value: MaybeUninit::uninit(),
            expires: NEVER,
            aux: Aux {
                pending: ManuallyDrop::new(pending),
            },
            meta: AtomicU64::new(NEVER & !FREQ),
            pos: LOADING,
            weight: 0,
        }
    }

    /// Whether this is a placeholder for a load in flight (no value).
    #[inline(always)]
    fn is_loading(&self) -> bool {
        self.pos == LOADING
    }

    /// The value; `None` for a placeholder. The one access to [`Node::value`].
    #[inline(always)]
    fn get(&self) -> Option<&V> {
        // SAFETY: only a placeholder has an uninitialised value, and only a placeholder has
        // `pos == LOADING`: `Node::loading` sets it, nothing changes a placeholder's `pos`,
        // and `put` gives a value node (made by `Node::new`, `UNPLACED`) a ring position,
        // below the capacity and so below `UNPLACED`, before publishing it.
        (!self.is_loading()).then(|| unsafe { self.value.assume_init_ref() })
    }

    /// The value of a node known not to be a placeholder.
    ///
    /// # Panics
    /// On a placeholder (every path that may meet one checks first: a bug otherwise).
    #[inline(always)]
    fn value(&self) -> &V {
        self.get()
            .expect("linemap::Cache: a placeholder has no value")
    }

    /// The version (0 for a placeholder, which stands for an absent key).
    #[inline]
    fn version(&self) -> u64 {
        if self.is_loading() {
            return 0;
        }
        // SAFETY: not a placeholder, so `aux` holds the version (see `Aux`).
        unsafe { self.aux.version }
    }

    /// A placeholder's load (`None` for a value).
    #[inline]
    fn pending(&self) -> Option<&load::PendingRef<V>> {
        // SAFETY: a placeholder's `aux` holds its `PendingRef` (see `Aux`).
        self.is_loading().then(|| unsafe { &*self.aux.pending })
    }

    /// Counts a use: sets one clear counter bit, only if the counter is below 3 (test before
    /// set: a hot entry's line stays shared across cores instead of bouncing on writes).
    #[inline]
    fn touch(&self) {
        // Relaxed: the counter is a hint for eviction; no data is published through it.
        let m = self.meta.load(Ordering::Relaxed);
        if m & FREQ != FREQ {
            // Relaxed: as above. An RMW, so a concurrent idle refresh is not lost.
            self.meta.fetch_or(bumped(m) & !m, Ordering::Relaxed);
        }
    }

    /// The counter's value.
    fn freq(&self) -> u32 {
        // Relaxed: as in `touch`.
        freq(self.meta.load(Ordering::Relaxed))
    }

    /// Takes one from the counter (clears its highest set bit); returns whether it was
    /// above 0.
    fn take_one(&self) -> bool {
        // Relaxed: as in `touch`.
        let f = self.meta.load(Ordering::Relaxed) & FREQ;
        if f == 0 {
            return false;
        }
        let top = 1 << (63 - f.leading_zeros());
        // Relaxed: as in `touch`. A hit racing us sets another bit: counted.
        self.meta.fetch_and(!top, Ordering::Relaxed);
        true
    }

    /// Sets the counter to 0 (a promotion to main).
    fn reset(&self) {
        // Relaxed: as in `touch`.
        if self.meta.load(Ordering::Relaxed) & FREQ != 0 {
            self.meta.fetch_and(!FREQ, Ordering::Relaxed);
        }
    }

    /// The earlier of the deadline and the idle deadline: the node is expired from then on
    /// (unless a hit pushes the idle deadline forward).
    fn deadline(&self) -> u64 {
        self.expires.min(self.idle())
    }

    /// The idle deadline ([`NEVER`], rounded down to a multiple of 8, without a
    /// time-to-idle).
    #[inline]
    fn idle(&self) -> u64 {
        // Relaxed: a single word; a stale value errs by at most one refresh step.
        self.meta.load(Ordering::Relaxed) & !FREQ
    }

    /// Sets the idle deadline to `at` (rounded down to a multiple of 8), keeping the counter
    /// (only hits call this, after `touch`).
    #[inline]
    fn set_idle(&self, at: u64) {
        // Relaxed: see `idle`. A racing `take_one` or `reset` may be undone: the entry was
        // just hit, so it counts as used either way.
        let m = self.meta.load(Ordering::Relaxed);
        self.meta
            .store((at & !FREQ) | (m & FREQ), Ordering::Relaxed);
    }
}

impl<V> Drop for Node<V> {
    fn drop(&mut self) {
        if self.is_loading() {
            // SAFETY: a placeholder's `aux` holds its `PendingRef`, dropped once, here.
            unsafe { ManuallyDrop::drop(&mut self.aux.pending) };
        } else {
            // SAFETY: a value node's value is initialised, and dropped once, here.
            unsafe { self.value.assume_init_drop() };
        }
    }
}

/// A bounded, lock-free concurrent cache: adaptive S3-FIFO eviction, per-entry
/// time-to-live, cache-aside loading with stampede protection, versioned inserts, an
/// eviction listener and statistics.
///
/// Values are returned as clones (wrap large values in `Arc`). A hit reads the bucket line
/// and the entry line, counts a use in the entry's 2-bit counter only if it is below 3, and
/// bumps a per-thread counter: no lock and no write to a line other threads write.
///
/// Eviction is S3-FIFO with an adaptive probationary queue: a new key waits in a small FIFO
/// and is evicted from there unless it is used again, which moves it to the main FIFO (a
/// 2-bit CLOCK); keys that come back soon after eviction (remembered by fingerprint) go to
/// main directly, and the small queue's size adapts as ARC's does. One-hit wonders thus leave
/// quickly without pushing out the frequently used keys.
///
/// ```
/// use linemap::Cache;
///
/// let cache = Cache::new(2);
/// cache.insert("a", 1);
/// cache.insert("b", 2);
/// assert_eq!(cache.get("a"), Some(1)); // "a" is used again: it moves to main
/// cache.insert("c", 3); // evicts "b", used only once
/// assert_eq!(cache.get("b"), None);
/// assert_eq!(cache.len(), 2);
/// ```
///
/// # Capacity
///
/// The cache never holds more than `capacity` entries: an insert that adds a key first
/// takes one of `capacity` positions, evicting an entry to free one if needed, so the bound holds
/// whenever an insert returns. A cache of capacity 0 stores nothing (each insert's value goes
/// straight to the listener with [`RemovalCause::Capacity`]). Capacity is limited to
/// `u32::MAX - 1` entries.
///
/// # Expiry
///
/// [`Cache::insert_with_ttl`] and the builder's [`time_to_live`](CacheBuilder::time_to_live)
/// give entries a deadline. An expired entry is never returned; it is removed by the next
/// lookup that finds it, by the eviction hand, or by [`Cache::purge_expired`]. No background
/// thread is involved, and a cache whose entries have no deadline never reads the clock.
pub struct Cache<K, V, S = DefaultHashBuilder> {
    table: RawTable<K, Node<V>>,
    /// `None` for a cache of capacity 0.
    ring: Option<Ring>,
    hasher: S,
    clock: Box<dyn Clock>,
    default_ttl: Option<Duration>,
    /// Time-to-idle in nanoseconds.
    tti: Option<u64>,
    listener: Option<Listener<K, V>>,
    weigher: Option<Weigher<K, V>>,
    /// Total weight of the stored entries plus reservations of inserts in progress (only
    /// with a weigher). Written by inserts and removals, never by hits.
    weight: CachePadded<AtomicU64>,
    stats: Stats,
}

/// Builds a [`Cache`] with options: time-to-live, listener, hasher, clock.
///
/// ```
/// use linemap::cache::RemovalCause;
/// use linemap::Cache;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// let evicted = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&evicted);
/// let cache = Cache::builder(1)
///     .time_to_live(Duration::from_secs(60))
///     .eviction_listener(move |k: &u32, _v: &String, cause| {
///         log.lock().unwrap().push((*k, cause))
///     })
///     .build();
/// cache.insert(1, "one".to_string());
/// cache.insert(2, "two".to_string());
/// assert_eq!(*evicted.lock().unwrap(), vec![(1, RemovalCause::Capacity)]);
/// ```
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    capacity: usize,
    hasher: S,
    clock: Box<dyn Clock>,
    default_ttl: Option<Duration>,
    tti: Option<Duration>,
    listener: Option<Listener<K, V>>,
    weigher: Option<Weigher<K, V>>,
}

impl<K, V> CacheBuilder<K, V, DefaultHashBuilder> {
    fn new(capacity: usize) -> Self {
        CacheBuilder {
            capacity,
            hasher: DefaultHashBuilder::default(),
            clock: Box::new(SystemClock::new()),
            default_ttl: None,
            tti: None,
            listener: None,
            weigher: None,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Gives every entry inserted without an explicit time-to-live this one. A zero
    /// duration makes entries expire at once (they are never returned); a duration too
    /// large to represent means "never".
    ///
    /// ```
    /// let cache = linemap::Cache::builder(10)
    ///     .time_to_live(std::time::Duration::ZERO)
    ///     .build();
    /// cache.insert(1, 1);
    /// assert_eq!(cache.get(&1), None);
    /// ```
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Calls `f(key, value, cause)` once for every entry that leaves the cache, after it left
    /// and outside every internal critical section (it may use the cache). A panic in `f` is
    /// caught and ignored (after the panic hook reports it); the cache stays usable.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let n = Arc::new(AtomicUsize::new(0));
    /// let seen = Arc::clone(&n);
    /// let cache = linemap::Cache::builder(10)
    ///     .eviction_listener(move |_: &u8, _: &u8, _| {
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .build();
    /// cache.insert(1, 1);
    /// cache.remove(&1);
    /// assert_eq!(n.load(Ordering::Relaxed), 1);
    /// ```
    pub fn eviction_listener(
        mut self,
        f: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(f));
        self
    }

    /// Uses `clock` for time-to-live (the default is [`SystemClock`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let clock = Arc::new(linemap::cache::ManualClock::new());
    /// let cache: linemap::Cache<u8, u8> = linemap::Cache::builder(10).clock(clock).build();
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Hashes keys with `hasher` (the default is [`DefaultHashBuilder`]).
    ///
    /// ```
    /// use std::hash::RandomState;
    /// let cache: linemap::Cache<String, u8, RandomState> =
    ///     linemap::Cache::builder(10).hasher(RandomState::new()).build();
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            hasher,
            clock: self.clock,
            default_ttl: self.default_ttl,
            tti: self.tti,
            listener: self.listener,
            weigher: self.weigher,
        }
    }

    /// Expires entries not read for `tti` (on top of any time-to-live: whichever comes first).
    /// A hit pushes the idle deadline forward only when it moved by more than 1/16 of `tti`,
    /// so hot entries are not rewritten on every hit; an entry may therefore expire once it
    /// has been idle for 15/16 of `tti`, never later than `tti`. With a time-to-idle every
    /// hit reads the clock.
    ///
    /// ```
    /// use linemap::cache::ManualClock;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let cache = linemap::Cache::builder(10)
    ///     .time_to_idle(Duration::from_secs(10))
    ///     .clock(Arc::clone(&clock))
    ///     .build();
    /// cache.insert(1, "a");
    /// for _ in 0..5 {
    ///     clock.advance(Duration::from_secs(8));
    ///     assert_eq!(cache.get(&1), Some("a")); // read within every 10 s: stays
    /// }
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(cache.get(&1), None); // idle for 10 s: expired
    /// ```
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Bounds the total weight of the entries by `budget`, as measured by `weigh(key, value)`
    /// when an entry is stored (the builder's capacity still bounds the number of entries).
    ///
    /// An insert first reserves its entry's weight, evicting entries (S3-FIFO order) until it
    /// fits, so the budget holds whenever an insert returns. An entry that weighs 0 costs
    /// only its place among the `capacity` entries. An entry heavier than the whole budget is
    /// not stored: its value goes to the listener with [`RemovalCause::Capacity`]. `weigh`
    /// must be cheap and must not panic (a panic propagates to the inserting caller, with
    /// nothing stored).
    ///
    /// ```
    /// let cache = linemap::Cache::builder(1000)
    ///     .weigher(10, |_k: &u32, v: &String| v.len() as u32)
    ///     .build();
    /// cache.insert(1, "abcd".to_string());
    /// cache.insert(2, "efgh".to_string());
    /// cache.insert(3, "ijkl".to_string()); // 12 > 10: the eviction victim goes
    /// assert_eq!(cache.len(), 2);
    /// assert!(cache.weight() <= 10);
    /// cache.insert(4, "far too long for the budget".to_string()); // refused
    /// assert_eq!(cache.get(&4), None);
    /// ```
    pub fn weigher(
        mut self,
        budget: u64,
        weigh: impl Fn(&K, &V) -> u32 + Send + Sync + 'static,
    ) -> Self {
        self.weigher = Some(Weigher {
            weigh: Box::new(weigh),
            budget,
        });
        self
    }

    /// Builds the cache.
    ///
    /// # Panics
    /// Panics if the capacity is `u32::MAX` or more, or if its table cannot be allocated
    /// ("capacity overflow").
    ///
    /// ```
    /// let cache: linemap::Cache<u8, u8> = linemap::Cache::builder(100).build();
    /// assert_eq!(cache.capacity(), 100);
    /// ```
    pub fn build(self) -> Cache<K, V, S> {
        assert!(
            self.capacity < u32::MAX as usize,
            "Cache capacity must be below u32::MAX"
        );
        Cache {
            // The table's count leaves placeholders out: `len` is the number of values.
            table: RawTable::bounded(self.capacity, |n: &Node<V>| n.is_loading()),
            ring: (self.capacity > 0).then(|| Ring::new(self.capacity)),
            hasher: self.hasher,
            clock: self.clock,
            default_ttl: self.default_ttl,
            tti: self.tti.map(time::nanos),
            listener: self.listener,
            weigher: self.weigher,
            weight: CachePadded::new(AtomicU64::new(0)),
            stats: Stats::new(),
        }
    }
}

impl<K, V> Cache<K, V, DefaultHashBuilder> {
    /// A cache holding at most `capacity` entries, with default options.
    ///
    /// ```
    /// let cache: linemap::Cache<u64, String> = linemap::Cache::new(1000);
    /// assert_eq!(cache.capacity(), 1000);
    /// ```
    pub fn new(capacity: usize) -> Self {
        Self::builder(capacity).build()
    }

    /// A builder for a cache holding at most `capacity` entries.
    ///
    /// ```
    /// let cache: linemap::Cache<u64, u64> = linemap::Cache::builder(10).build();
    /// ```
    pub fn builder(capacity: usize) -> CacheBuilder<K, V, DefaultHashBuilder> {
        CacheBuilder::new(capacity)
    }
}

impl<K, V, S> Cache<K, V, S> {
    /// The most entries the cache holds.
    ///
    /// ```
    /// assert_eq!(linemap::Cache::<u8, u8>::new(7).capacity(), 7);
    /// ```
    pub fn capacity(&self) -> usize {
        self.ring.as_ref().map_or(0, Ring::len)
    }

    /// Number of entries, including expired ones not yet removed (loads in flight are not
    /// entries). A snapshot of striped counters: under concurrent removes and inserts it can
    /// briefly read one or two above the capacity (a remove frees its ring position just
    /// before it decrements the count), although the cache never holds more than `capacity`
    /// entries, and while a load stores its value it can read one below.
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// cache.insert(1, 1);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the cache holds no entry.
    ///
    /// ```
    /// assert!(linemap::Cache::<u8, u8>::new(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters since the cache was built.
    ///
    /// ```
    /// let cache: linemap::Cache<u8, u8> = linemap::Cache::new(1);
    /// assert_eq!(cache.stats().hits, 0);
    /// ```
    pub fn stats(&self) -> CacheStats {
        self.stats.snapshot()
    }

    /// Total weight of the stored entries (with a [`weigher`](CacheBuilder::weigher); 0
    /// without one). Includes the reservations of inserts in progress on other threads.
    ///
    /// ```
    /// let cache = linemap::Cache::builder(10).weigher(100, |_: &u8, v: &u32| *v).build();
    /// cache.insert(1, 30);
    /// cache.insert(2, 40);
    /// assert_eq!(cache.weight(), 70);
    /// ```
    pub fn weight(&self) -> u64 {
        // Relaxed: a snapshot.
        self.weight.load(Ordering::Relaxed)
    }

    /// The cache's hasher.
    ///
    /// ```
    /// let cache: linemap::Cache<u8, u8> = linemap::Cache::new(1);
    /// let _h = cache.hasher();
    /// ```
    pub fn hasher(&self) -> &S {
        &self.hasher
    }
}

/// What [`Cache::evict_at`] did at a position it popped.
enum Evicted {
    /// Removed the entry there: the position is free.
    Entry,
    /// No entry held the position any more: it is free.
    Nothing,
    /// The entry stays in its queue (main, used since the hand last passed: spared).
    No,
    /// The entry moves from small to main (used while in small).
    Promoted,
    /// The entry stays: it holds the key the caller is inserting.
    Ours,
}

/// What the caller of [`Cache::hand`] needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A position for a new entry: a free one will do.
    Position,
    /// An evicted entry (to free weight); free positions found are released.
    Eviction,
}

/// What [`Cache::claim`] found.
enum Claim {
    /// A position, now RESERVED for the caller.
    Pos(usize),
    /// An entry of the caller's key: replace it instead.
    Ours,
    /// No position could be had.
    NoRoom,
}

/// Where a [`Cache::put`] ended.
enum Put<'g, K, V> {
    /// Stored; `Some` is the entry it replaced.
    Stored(Option<&'g Entry<K, Node<V>>>),
    /// Not stored: a version check refused it.
    Refused,
    /// Not stored: no room could be made (capacity 0, or every position busy).
    NoRoom(Box<Entry<K, Node<V>>>),
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn expired(&self, node: &Node<V>) -> bool {
        self.live_at(node).is_none()
    }

    /// `None` if `node` expired; otherwise the time it was checked at (0 if the clock was not
    /// read: no deadline applies).
    #[inline]
    fn live_at(&self, node: &Node<V>) -> Option<u64> {
        if node.expires == NEVER && self.tti.is_none() {
            return Some(0);
        }
        let now = time::nanos(self.clock.now());
        // Relaxed: the idle deadline is a single word; a stale value errs by at most the
        // refresh step.
        (now < node.expires && now < node.idle()).then_some(now)
    }

    /// After a hit at `now`: pushes the idle deadline forward if it moved by more than 1/16
    /// of the time-to-idle (test before set: a hot entry is rewritten rarely).
    #[inline]
    fn refresh_idle(&self, node: &Node<V>, now: u64) {
        if let Some(tti) = self.tti {
            let next = now.saturating_add(tti);
            // Relaxed: see `live_at`.
            if next.saturating_sub(node.idle()) > tti / 16 {
                node.set_idle(next);
            }
        }
    }

    /// The cache clock's time in nanoseconds.
    fn now(&self) -> u64 {
        time::nanos(self.clock.now())
    }

    fn deadline(&self, ttl: Option<Duration>) -> u64 {
        match ttl.or(self.default_ttl) {
            None => NEVER,
            Some(ttl) => time::deadline(self.clock.now(), ttl),
        }
    }

    /// A stored entry left the cache: give back its weight and tell the listener.
    fn gone(&self, old: &Entry<K, Node<V>>, cause: RemovalCause) {
        self.release_weight(old.value.weight);
        self.notify(&old.key, old.value.value(), cause);
    }

    fn release_weight(&self, w: u32) {
        if w != 0 {
            // Relaxed: the total orders nothing; reservations use their own CAS.
            self.weight.fetch_sub(u64::from(w), Ordering::Relaxed);
        }
    }

    /// Reserves `w` of the weight budget, evicting entries until it fits. `Err` if it
    /// cannot fit (heavier than the budget, or the bounded eviction search gave up). `Ok`
    /// holds the ring position freed by the last eviction, still owned (RESERVED) by the
    /// caller, so that the entry takes the place of its victim instead of evicting another.
    ///
    /// `credit` is the weight of the key's current entry, which this insert will replace: it
    /// may be counted as free, because the stored total (without this reservation) stays
    /// within the budget, and whatever happens next that entry leaves the cache and gives
    /// its weight back (replaced by us or by another thread, removed, or evicted).
    fn reserve_weight(
        &self,
        w: u32,
        credit: u32,
        ours: Option<&dyn Fn(&K) -> bool>,
        guard: &Guard,
    ) -> Result<Option<usize>, ()> {
        let Some(weigher) = &self.weigher else {
            return Ok(None);
        };
        let w = u64::from(w);
        if w > weigher.budget {
            return Err(());
        }
        if w == 0 {
            return Ok(None);
        }
        // Capacity 0: nothing is stored, whatever the weight.
        let Some(ring) = self.ring.as_ref() else {
            return Err(());
        };
        let mut held = ring.held(None);
        // Relaxed: the CAS below is what decides; the value only needs to be some total.
        let mut cur = self.weight.load(Ordering::Relaxed);
        loop {
            if cur.saturating_add(w) <= weigher.budget.saturating_add(u64::from(credit)) {
                // Relaxed: the weight total publishes nothing.
                match self.weight.compare_exchange_weak(
                    cur,
                    cur + w,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(held.keep()),
                    Err(now) => cur = now,
                }
            } else {
                match self.evict_one(ours, guard) {
                    Some(i) => held.replace(i),
                    // `held` releases its position.
                    None => return Err(()),
                }
                // Relaxed: as above.
                cur = self.weight.load(Ordering::Relaxed);
            }
        }
    }

    /// Evicts one entry (S3-FIFO order) and returns its position, now owned by the caller.
    /// `None` if the bounded search found nothing to evict.
    fn evict_one(&self, ours: Option<&dyn Fn(&K) -> bool>, guard: &Guard) -> Option<usize> {
        match self.hand(ours, Want::Eviction, guard) {
            Claim::Pos(i) => Some(i),
            Claim::Ours | Claim::NoRoom => None,
        }
    }

    /// Tells the listener, catching its panic.
    fn notify(&self, key: &K, value: &V, cause: RemovalCause) {
        self.stats.add(match cause {
            RemovalCause::Capacity => Stat::EvictCapacity,
            RemovalCause::Expired => Stat::EvictExpired,
            RemovalCause::Removed => Stat::EvictRemoved,
            RemovalCause::Replaced => Stat::EvictReplaced,
        });
        if let Some(f) = &self.listener {
            // The panic hook has reported it; the cache holds no state the listener could
            // have left half-done.
            let _ = catch_unwind(AssertUnwindSafe(|| f(key, value, cause)));
        }
    }

    /// The value for `key`, if present and not expired.
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// cache.insert("k".to_string(), 5);
    /// assert_eq!(cache.get("k"), Some(5));
    /// assert_eq!(cache.get("x"), None);
    /// ```
    #[inline(always)]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = pin();
        self.get_in(key, self.hash(key), &guard).cloned()
    }

    /// Looks `key` (whose hash is `hash`) up under `guard`, counting the hit or miss.
    #[inline(always)]
    fn get_in<'g, Q>(&self, key: &Q, hash: u64, guard: &'g Guard) -> Option<&'g V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(e) = self.table.find(hash, |k| k.borrow() == key, guard) {
            // `None`: a placeholder (a load in flight) is a miss.
            if let Some(v) = e.value.get() {
                match self.live_at(&e.value) {
                    Some(now) => {
                        e.value.touch();
                        self.refresh_idle(&e.value, now);
                        self.stats.add(Stat::Hit);
                        return Some(v);
                    }
                    None => {
                        self.stats.add(Stat::Miss);
                        self.remove_exact(hash, e, RemovalCause::Expired, guard);
                        return None;
                    }
                }
            }
        }
        self.stats.add(Stat::Miss);
        None
    }

    /// Whether `key` is present and not expired (does not count as a hit or a miss, and
    /// does not count as a use of the entry).
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// cache.insert(1, ());
    /// assert!(cache.contains_key(&1));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = pin();
        let hash = self.hash(key);
        self.table
            .find(hash, |k| k.borrow() == key, &guard)
            .is_some_and(|e| !e.value.is_loading() && !self.expired(&e.value))
    }

    /// Inserts `key -> value`, replacing any value for the key. If the key is new and the
    /// cache is full, an entry is evicted first (the listener hears of it with
    /// [`RemovalCause::Capacity`]).
    ///
    /// In a cache of capacity 0, or when every ring position is held by an insert in
    /// progress on another thread for longer than the hand's bounded search, the value is not
    /// stored and goes to the listener with [`RemovalCause::Capacity`].
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// cache.insert(1, "a");
    /// cache.insert(1, "b");
    /// assert_eq!(cache.get(&1), Some("b"));
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let hash = self.hash(&key);
        self.insert_inner(key, hash, value, None, Store::Always, None, &pin());
    }

    /// Inserts `key -> value` expiring `ttl` from now (overriding the builder's default).
    /// A zero `ttl` stores an entry that is already expired; a `ttl` too large to represent
    /// never expires.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = linemap::Cache::new(10);
    /// cache.insert_with_ttl(1, "a", Duration::from_secs(60));
    /// assert_eq!(cache.get(&1), Some("a"));
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        let hash = self.hash(&key);
        self.insert_inner(key, hash, value, Some(ttl), Store::Always, None, &pin());
    }

    /// Inserts `key -> value` only if `version` is greater than the version of the value
    /// stored for the key (plain inserts have version 0). Returns whether it was stored.
    ///
    /// This is the answer to out-of-order invalidations: two updates that arrive in either
    /// order leave the newer value, whatever the interleaving. The check and the store are
    /// one atomic step. A removed, evicted or expired key has no version: any version is then
    /// accepted.
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// assert!(cache.insert_versioned("user:1", "v2", 2));
    /// assert!(!cache.insert_versioned("user:1", "v1", 1)); // late, older: ignored
    /// assert_eq!(cache.get("user:1"), Some("v2"));
    /// ```
    pub fn insert_versioned(&self, key: K, value: V, version: u64) -> bool {
        let hash = self.hash(&key);
        self.insert_inner(key, hash, value, None, Store::Newer(version), None, &pin())
            .is_some()
    }

    /// Stores `key -> value` as `store` says. `hash` is the key's hash (callers have it: a
    /// loader from its first look, so a key is hashed once per insert). `own`: the caller is
    /// a loader, storing over its own placeholder (see [`Cache::store_loaded`]). Returns the
    /// stored entry, if it was.
    // Eight arguments: the key with its hash, the value with how to store it, the loader's
    // placeholder and the pin are all needed, and bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn insert_inner(
        &self,
        key: K,
        hash: u64,
        value: V,
        ttl: Option<Duration>,
        store: Store,
        own: Option<&load::PendingRef<V>>,
        guard: &Guard,
    ) -> Option<*const Entry<K, Node<V>>> {
        let expires = self.deadline(ttl);
        let weight = self.weigher.as_ref().map_or(0, |w| (w.weigh)(&key, &value));
        let mut entry = crate::reclaim::boxed(Entry {
            key,
            value: Node::new(value, expires, store.version()),
        });
        entry.value.weight = weight;
        if let Some(tti) = self.tti {
            let idle = time::nanos(self.clock.now()).saturating_add(tti);
            entry.value.meta = AtomicU64::new(idle & !FREQ);
        }
        let key: *const K = &entry.key;
        // SAFETY: the key is in the heap allocation of `entry`, owned here until `put` takes
        // it, after the last use of `ours`.
        let ours = |k: &K| k == unsafe { &*key };
        let credit = if weight == 0 {
            0
        } else {
            self.table
                .find(hash, ours, guard)
                .map_or(0, |e| e.value.weight)
        };
        let Ok(held) = self.reserve_weight(weight, credit, Some(&ours), guard) else {
            self.notify(&entry.key, entry.value.value(), RemovalCause::Capacity);
            return None;
        };
        // The allocation `put` installs if it stores (it moves no entry out of its box).
        let stored: *const Entry<K, Node<V>> = &*entry;
        // Gives the reservation back unless the entry is stored, also when `put` unwinds (a
        // panicking `Eq` or `Hash`, or the `Drop` of a refused value).
        let reservation = OnDrop(Some(|| self.release_weight(weight)));
        match self.put(entry, hash, store, own, held, guard) {
            Put::Stored(old) => {
                reservation.disarm();
                self.stats.add(Stat::Insert);
                match old {
                    // A placeholder (ours or another load's) holds no value: nobody hears
                    // of it. Its load, if still running, finds a value in its place.
                    Some(old) if old.value.is_loading() => {}
                    Some(old) => {
                        let cause = if self.expired(&old.value) {
                            RemovalCause::Expired
                        } else {
                            RemovalCause::Replaced
                        };
                        self.gone(old, cause);
                    }
                    None => {}
                }
                Some(stored)
            }
            Put::Refused => {
                if matches!(store, Store::IfAbsent | Store::LoadedNewer(_)) {
                    self.stats.add(Stat::LoadNotStored);
                }
                None
            }
            Put::NoRoom(e) => {
                drop(reservation);
                self.notify(&e.key, e.value.value(), RemovalCause::Capacity);
                None
            }
        }
    }

    /// Stores `entry` (whose key hashes to `hash`): replaces the key's entry in place (keeping its ring position), or
    /// takes a ring position (`held`, if the caller already owns one) and adds it. With
    /// `version`, stores only over an older version.
    ///
    /// A placeholder counts as absent: the new entry takes a position and replaces it. A
    /// loader (`own`) stores only over its own placeholder, or over a value by the rules of
    /// `store`: if neither is there (a removal took its placeholder out, or took out the
    /// value that replaced it), the loaded value may predate the write that the removal
    /// announces, and is refused.
    fn put<'g>(
        &self,
        entry: Box<Entry<K, Node<V>>>,
        hash: u64,
        store: Store,
        own: Option<&load::PendingRef<V>>,
        held: Option<usize>,
        guard: &'g Guard,
    ) -> Put<'g, K, V> {
        let rehash = |k: &K| self.hash(k);
        let kp: *const K = &entry.key;
        // SAFETY (for every `unsafe { &*kp }` below): the key lives in the entry's heap
        // allocation, which does not move while it is owned by `fresh`, passed to `rmw` as
        // `spare`, or installed in the table (freed only after our guard is dropped).
        let mut fresh = Some(entry);
        let mut refused = false;
        // What is there. `None`: the key counts as absent (nothing, or a placeholder we may
        // replace): take a position. `Some(op)`: replace in place, keeping the position (and
        // its queue; a write counts as a use), or keep (`refused`).
        let replace = |cur: Option<&Entry<K, Node<V>>>,
                       spare: Option<Box<Entry<K, Node<V>>>>,
                       fresh: &mut Option<Box<Entry<K, Node<V>>>>,
                       refused: &mut bool|
         -> Option<Op<K, Node<V>>> {
            if let Some(s) = spare {
                *fresh = Some(s);
            }
            *refused = false;
            let Some(c) = cur else {
                if own.is_some() {
                    // A loader whose placeholder is gone (see above).
                    *refused = true;
                    return Some(Op::Keep);
                }
                return None;
            };
            if let Some(p) = c.value.pending() {
                return match own {
                    Some(o) if !load::PendingRef::ptr_eq(p, o) => {
                        // Another load's placeholder: ours was taken out.
                        *refused = true;
                        Some(Op::Keep)
                    }
                    _ => None,
                };
            }
            // An expired entry has no version any more: it is as good as absent.
            if store.keeps(c.value.version()) && !self.expired(&c.value) {
                *refused = true;
                return Some(Op::Keep);
            }
            let mut e = fresh.take().expect("entry");
            e.value.pos = c.value.pos;
            // A write is a use: the counter goes on from the old entry's, with the fresh
            // entry's own idle deadline. Relaxed: `e` is not shared yet, and the old
            // counter is a hint.
            let used = bumped(c.value.meta.load(Ordering::Relaxed));
            e.value.meta.fetch_or(used, Ordering::Relaxed);
            Some(Op::Put(e))
        };
        let ours = |k: &K| k == unsafe { &*kp };
        // Released if this insert does not place an entry there, also when it unwinds (a
        // panicking `Eq` or `Hash` in a probe below).
        let mut held = self.ring.as_ref().map(|r| r.held(held));
        let mut queue = None;
        // A loader expects its own placeholder (the key counts as absent): it goes straight
        // to the position, and phase 2 checks what is there.
        let mut look = own.is_none();
        let pos = loop {
            if look {
                let (old, _) = self.table.rmw(
                    hash,
                    |k| k == unsafe { &*kp },
                    |cur, spare| replace(cur, spare, &mut fresh, &mut refused).unwrap_or(Op::Keep),
                    &rehash,
                    guard,
                );
                if refused {
                    drop(held);
                    return Put::Refused;
                }
                // Replaced in place (a placeholder, or nothing, is the absent case).
                if let Some(old) = old.filter(|o| !o.value.is_loading()) {
                    drop(held);
                    return Put::Stored(Some(old));
                }
            }
            look = true;
            // The key is absent: take a ring position (evicting if needed), then add the entry
            // there. If the hand meets an entry of our own key (inserted meanwhile), it leaves it
            // and we start over with the replace path (and its version check). If the key
            // appears after the claim, phase 2 replaces it instead and gives the position back.
            // The queue the new entry will join: asks the ghosts (and adapts the small target)
            // before the hand evicts, as the simulated policy does (an eviction may write
            // into the ghosts, and the target steers the hand). Once per insert.
            if queue.is_none() {
                queue = Some(self.ring.as_ref().map_or(Q::Small, |r| r.admit(hash)));
            }
            if let Some(i) = held.as_ref().and_then(|h| h.pos) {
                break i;
            }
            match self.claim(&ours, guard) {
                Claim::Pos(i) => {
                    let ring = self.ring.as_ref().expect("claimed a position");
                    held = Some(ring.held(Some(i)));
                    break i;
                }
                Claim::Ours => continue,
                Claim::NoRoom => return Put::NoRoom(fresh.take().expect("entry")),
            }
        };
        let queue = queue.unwrap_or(Q::Small);
        let mut placed = false;
        let (old, _) = self.table.rmw(
            hash,
            |k| k == unsafe { &*kp },
            |cur, spare| {
                placed = false;
                replace(cur, spare, &mut fresh, &mut refused).unwrap_or_else(|| {
                    placed = true;
                    let mut e = fresh.take().expect("entry");
                    debug_assert!(pos < UNPLACED as usize);
                    e.value.pos = pos as u32;
                    Op::Put(e)
                })
            },
            &rehash,
            guard,
        );
        let ring = self.ring.as_ref().expect("claimed a position");
        if placed {
            // The entry holds the position now (it replaced nothing, or a placeholder).
            if let Some(h) = held {
                h.keep();
            }
            ring.occupy(pos, hash, queue);
            return Put::Stored(old);
        }
        drop(held);
        if refused {
            Put::Refused
        } else {
            Put::Stored(old)
        }
    }

    /// Takes a position for a new entry: a free one, else one the hand frees by evicting
    /// (see [`Cache::hand`]). An entry whose key satisfies `ours` (the key being inserted,
    /// stored by another thread since the caller looked) is never evicted: the caller must
    /// replace it instead. `NoRoom` if the cache has capacity 0 or the bounded search met
    /// only positions owned by others.
    fn claim(&self, ours: &dyn Fn(&K) -> bool, guard: &Guard) -> Claim {
        self.hand(Some(ours), Want::Position, guard)
    }

    /// The S3-FIFO hand: pops small while it holds at least its target (else main) and
    /// judges the entry there ([`Cache::evict_at`]) until one is evicted, or (with
    /// [`Want::Position`]) a position is found free. From small, a used entry moves to main,
    /// and after a promotion main is popped next if it exceeds its share; from main, a used
    /// entry is spared. Bounded: after [`MAX_SWEEP`] promotions the hand prefers main, after
    /// `MAX_SWEEP` spared entries it evicts whatever it pops, and it gives up after
    /// `2 * capacity + 4 * MAX_SWEEP` pops (gaps and empty queues count: every position may
    /// be in other threads' hands).
    fn hand(&self, ours: Option<&dyn Fn(&K) -> bool>, want: Want, guard: &Guard) -> Claim {
        let Some(ring) = self.ring.as_ref() else {
            return Claim::NoRoom;
        };
        if want == Want::Position {
            if let Some(i) = ring.take_free() {
                return Claim::Pos(i);
            }
        }
        let limit = 2 * ring.len() + 4 * MAX_SWEEP;
        let (mut spared, mut promoted) = (0, 0);
        let mut next = None;
        for _ in 0..limit {
            let q = next
                .take()
                .unwrap_or_else(|| ring.pick(promoted >= MAX_SWEEP));
            let Some((i, hash, q)) = ring.pop(q) else {
                spin_hint();
                continue;
            };
            let force = match q {
                Q::Small => promoted >= MAX_SWEEP,
                Q::Main => spared >= MAX_SWEEP,
            };
            let judging = ring.judging(i, q);
            let verdict = self.evict_at(i, hash, q, force, ours, guard);
            judging.done();
            match verdict {
                Evicted::Entry => return Claim::Pos(i),
                Evicted::Nothing if want == Want::Position => return Claim::Pos(i),
                // A free position does not free weight: pass it on, and look in the other
                // queue next. (It joins small: a hand that needs weight and picks small again
                // would pop it back, round after round, while the entry to evict sits in
                // main; the fuzzer found such inserts refused for want of room.)
                Evicted::Nothing => {
                    ring.release(i);
                    next = Some(q.other());
                }
                Evicted::No => {
                    spared += 1;
                    ring.requeue(i, q);
                }
                Evicted::Promoted => {
                    promoted += 1;
                    ring.requeue(i, Q::Main);
                    next = Some(if ring.main_over_target() {
                        Q::Main
                    } else {
                        Q::Small
                    });
                }
                Evicted::Ours => {
                    ring.requeue(i, q);
                    if want == Want::Position {
                        return Claim::Ours;
                    }
                    // As for a free position: the other queue next, or the hand could pop
                    // our own entry back round after round.
                    next = Some(q.other());
                }
            }
        }
        Claim::NoRoom
    }

    /// Decides about the entry at position `i` (whose key hashes to `hash`), popped from
    /// queue `q`: removes it if it expired; from small, promotes it if it was used since it
    /// was queued, else evicts it (into the small ghost); from main, spares it (taking one
    /// from its counter) if the counter is above 0, else evicts it (into the main ghost).
    /// `force`: evict a used entry too. Says whether the position is now free of any entry,
    /// and whether one was evicted.
    fn evict_at(
        &self,
        i: usize,
        hash: u64,
        q: Q,
        force: bool,
        ours: Option<&dyn Fn(&K) -> bool>,
        guard: &Guard,
    ) -> Evicted {
        let pos = i as u32;
        let mut cause = RemovalCause::Capacity;
        let mut mine = false;
        let mut promote = false;
        let (old, new) = self.table.rmw_by(
            hash,
            |e| e.value.pos == pos,
            |cur, _| match cur {
                None => Op::Keep,
                Some(c) if ours.is_some_and(|o| o(&c.key)) => {
                    mine = true;
                    Op::Keep
                }
                Some(c) => {
                    mine = false;
                    promote = false;
                    if self.expired(&c.value) {
                        cause = RemovalCause::Expired;
                        return Op::Remove;
                    }
                    cause = RemovalCause::Capacity;
                    match q {
                        Q::Small if !force && c.value.freq() > 0 => {
                            promote = true;
                            Op::Keep
                        }
                        Q::Main if c.value.take_one() && !force => Op::Keep,
                        _ => Op::Remove,
                    }
                }
            },
            &|k: &K| self.hash(k),
            guard,
        );
        match (old, new) {
            (Some(old), None) => {
                if cause == RemovalCause::Capacity {
                    if let Some(ring) = &self.ring {
                        ring.remember(hash, q);
                    }
                }
                self.gone(old, cause);
                Evicted::Entry
            }
            // Nothing holds this position any more (its entry was removed by the user).
            (None, _) => Evicted::Nothing,
            (Some(_), Some(_)) if mine => Evicted::Ours,
            (Some(old), Some(_)) if promote => {
                // A hit between the judgement and this reset is lost: it counts as a hit
                // while in small, which is what promoted the entry.
                old.value.reset();
                Evicted::Promoted
            }
            (Some(_), Some(_)) => Evicted::No,
        }
    }

    /// Removes `e` (found under `guard`) if it is still the key's entry, telling the listener.
    /// Returns whether it did.
    fn remove_exact(
        &self,
        hash: u64,
        e: &Entry<K, Node<V>>,
        cause: RemovalCause,
        guard: &Guard,
    ) -> bool {
        let (old, new) = self.table.rmw(
            hash,
            |k| *k == e.key,
            |cur, _| match cur {
                Some(c) if std::ptr::eq(c, e) => Op::Remove,
                _ => Op::Keep,
            },
            &|k: &K| self.hash(k),
            guard,
        );
        if let (Some(old), None) = (old, new) {
            self.gone(old, cause);
            return true;
        }
        false
    }

    /// Removes `key`; returns its value if it was present and not expired.
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// cache.insert(1, "a");
    /// assert_eq!(cache.remove(&1), Some("a"));
    /// assert_eq!(cache.remove(&1), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = pin();
        let hash = self.hash(key);
        // A placeholder goes too: the load in flight may have read the source before the
        // write this removal announces, and finding its placeholder gone it does not store
        // (see `Cache::store_loaded`).
        let (old, _) = self.table.rmw(
            hash,
            |k| k.borrow() == key,
            |cur, _| if cur.is_some() { Op::Remove } else { Op::Keep },
            &|k: &K| self.hash(k),
            &guard,
        );
        let old = old?;
        if old.value.is_loading() {
            None
        } else if self.expired(&old.value) {
            self.gone(old, RemovalCause::Expired);
            None
        } else {
            self.gone(old, RemovalCause::Removed);
            Some(old.value.value().clone())
        }
    }

    /// Removes `key` only if its stored version is at most `version`; returns whether an
    /// entry was removed. The versioned counterpart of [`Cache::remove`] for invalidations
    /// that may arrive out of order with [`Cache::insert_versioned`] updates.
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// cache.insert_versioned(1, "v5", 5);
    /// assert!(!cache.remove_versioned(&1, 4)); // an older invalidation: ignored
    /// assert!(cache.remove_versioned(&1, 5));
    /// ```
    pub fn remove_versioned<Q>(&self, key: &Q, version: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let guard = pin();
        let hash = self.hash(key);
        // A load in flight read the source at an unknown version: its placeholder goes, so
        // that it does not store (see `Cache::store_loaded`).
        let (old, new) = self.table.rmw(
            hash,
            |k| k.borrow() == key,
            |cur, _| match cur {
                Some(c)
                    if c.value.is_loading()
                        || c.value.version() <= version
                        || self.expired(&c.value) =>
                {
                    Op::Remove
                }
                _ => Op::Keep,
            },
            &|k: &K| self.hash(k),
            &guard,
        );
        match (old, new) {
            (Some(old), None) if old.value.is_loading() => false,
            // Like `remove`: an expired entry is cleaned up and reported as expired, and does
            // not count as removed.
            (Some(old), None) if self.expired(&old.value) => {
                self.gone(old, RemovalCause::Expired);
                false
            }
            (Some(old), None) => {
                self.gone(old, RemovalCause::Removed);
                true
            }
            _ => false,
        }
    }

    /// Removes every expired entry now; returns how many. (Expired entries are also removed
    /// as lookups and the eviction hand meet them; this is for callers that want memory back
    /// at a time of their choosing.)
    ///
    /// ```
    /// use linemap::cache::ManualClock;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let cache = linemap::Cache::builder(10).clock(Arc::clone(&clock)).build();
    /// cache.insert_with_ttl(1, 1, Duration::from_secs(1));
    /// cache.insert(2, 2);
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(cache.purge_expired(), 1);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn purge_expired(&self) -> usize {
        self.remove_where(|e| self.expired(&e.value), RemovalCause::Expired, false)
    }

    /// Keeps only the entries for which `keep(key, value)` returns true (expired entries are
    /// removed regardless). Not atomic as a whole: entries inserted meanwhile may stay.
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// for i in 0..6 {
    ///     cache.insert(i, i);
    /// }
    /// cache.retain(|k, _| k % 2 == 0);
    /// assert_eq!(cache.len(), 3);
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.remove_where(|e| self.expired(&e.value), RemovalCause::Expired, false);
        self.remove_where(
            |e| !keep(&e.key, e.value.value()),
            RemovalCause::Removed,
            false,
        );
    }

    /// Removes every entry present when the call began (the listener hears of each with
    /// [`RemovalCause::Removed`]).
    ///
    /// ```
    /// let cache = linemap::Cache::new(10);
    /// cache.insert(1, 1);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// ```
    pub fn clear(&self) {
        // Placeholders too: as for `remove`, the loads in flight do not store.
        self.remove_where(|_| true, RemovalCause::Removed, true);
        // The removed entries go to the global garbage queue now (see `crate::sync::pin`).
        crate::sync::flush_local();
    }

    /// Placeholders in the table (loads in flight or left behind), counted by a scan.
    #[cfg(test)]
    pub(crate) fn placeholders(&self) -> usize {
        let guard = pin();
        let mut n = 0;
        self.table
            .for_each(&guard, |e| n += usize::from(e.value.is_loading()));
        n
    }

    /// Removes the entries `doomed` picks (values only: it never sees a placeholder), and
    /// with `loading` every placeholder (not counted, not reported). Returns how many entries
    /// it removed.
    fn remove_where(
        &self,
        mut doomed: impl FnMut(&Entry<K, Node<V>>) -> bool,
        cause: RemovalCause,
        loading: bool,
    ) -> usize {
        let guard = pin();
        let mut victims = Vec::new();
        self.table.for_each(&guard, |e| {
            if if e.value.is_loading() {
                loading
            } else {
                doomed(e)
            } {
                victims.push(e as *const Entry<K, Node<V>>);
            }
        });
        let mut n = 0;
        for p in victims {
            // SAFETY: reachable while we stay pinned, so still allocated.
            let e = unsafe { &*p };
            let hash = self.hash(&e.key);
            let (old, new) = self.table.rmw(
                hash,
                |k| *k == e.key,
                |cur, _| match cur {
                    Some(c) if std::ptr::eq(c, e) => Op::Remove,
                    _ => Op::Keep,
                },
                &|k: &K| self.hash(k),
                &guard,
            );
            match (old, new) {
                (Some(old), None) if old.value.is_loading() => {}
                (Some(old), None) => {
                    n += 1;
                    self.gone(old, cause);
                }
                _ => {}
            }
        }
        n
    }
}

/// What [`Cache::warm_up`] did.
///
/// ```
/// let cache: linemap::Cache<u32, u32> = linemap::Cache::new(100);
/// let done = cache.warm_up(0..4, 2, |k| if *k == 0 { Err("no row") } else { Ok(k * 10) });
/// assert_eq!(done, linemap::cache::WarmUp { loaded: 3, failed: 1 });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmUp {
    /// Keys whose value was loaded and stored (or already present).
    pub loaded: usize,
    /// Keys whose loader returned an error (nothing was stored for them).
    pub failed: usize,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// The value for `key`, loading it with `load()` on a miss (the cache-aside pattern).
    ///
    /// Concurrent misses on one key run `load` once: the other callers wait for its value
    /// (stampede protection). If the loading caller panics, the waiters are released and one
    /// of them loads instead. `load` runs outside every internal critical section, so it may
    /// use this cache, except to ask for the key it is loading: that would wait for itself,
    /// and panics instead (see Panics).
    ///
    /// The loaded value is stored only if the key is still absent when the load finishes: a
    /// value that [`Cache::insert`] (or `insert_versioned`) stored while the load ran is newer
    /// than what the loader read, and stays. The loading caller and its waiters get the
    /// loaded value either way.
    ///
    /// # Panics
    /// If `load` panics (the panic goes on to this caller, after the waiters were released),
    /// and if `load` asks this cache, on the same thread, for the key it is loading (through
    /// any of the loading calls): it would wait for itself forever.
    ///
    /// ```
    /// let cache = linemap::Cache::new(100);
    /// let v = cache.get_or_insert_with(7, || 7 * 6);
    /// assert_eq!(v, 42);
    /// assert_eq!(cache.get_or_insert_with(7, || unreachable!()), 42);
    /// ```
    #[inline(always)]
    pub fn get_or_insert_with(&self, key: K, load: impl FnOnce() -> V) -> V {
        match self.get_or_try_insert_with(key, || Ok::<V, std::convert::Infallible>(load())) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// Like [`Cache::get_or_insert_with`] with a fallible loader. An error goes back to this
    /// caller only and is never cached; callers that were waiting on this load are released
    /// and one of them loads again.
    ///
    /// ```
    /// let cache: linemap::Cache<u32, String> = linemap::Cache::new(100);
    /// let r: Result<String, &str> = cache.get_or_try_insert_with(1, || Err("db down"));
    /// assert_eq!(r, Err("db down"));
    /// assert!(cache.get(&1).is_none()); // the error was not cached
    /// let r: Result<String, &str> = cache.get_or_try_insert_with(1, || Ok("row".into()));
    /// assert_eq!(r.as_deref(), Ok("row"));
    /// ```
    #[inline(always)]
    pub fn get_or_try_insert_with<E>(
        &self,
        key: K,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        self.get_or_try_load(key, || load().map(Loaded::new))
    }

    /// Like [`Cache::get_or_try_insert_with`], with a loader that also says how to store its
    /// value: with its own time-to-live, and with the source version it was read at (stored
    /// then only over an absent entry or a lower version). See [`Loaded`].
    ///
    /// ```
    /// use linemap::cache::Loaded;
    ///
    /// let cache: linemap::Cache<u32, &str> = linemap::Cache::new(100);
    /// let v = cache.get_or_try_load(1, || Ok::<_, ()>(Loaded::new("row at v3").with_version(3)));
    /// assert_eq!(v, Ok("row at v3"));
    /// assert!(!cache.insert_versioned(1, "older write", 2)); // v3 is stored with its version
    /// ```
    #[inline(always)]
    pub fn get_or_try_load<E>(
        &self,
        key: K,
        load: impl FnOnce() -> Result<Loaded<V>, E>,
    ) -> Result<V, E> {
        let hash = self.hash(&key);
        // The hit is all that is inlined into the caller; the miss path is out of line, so
        // that a hit does not pay for its stack frame.
        let guard = pin();
        if let Some(n) = self.get_in(&key, hash, &guard) {
            return Ok(n.clone());
        }
        self.load_after_miss(key, hash, guard, load)
    }

    /// The rest of [`Cache::get_or_try_load`] after its first look missed, under the same
    /// pin (`guard`) for the registration.
    #[inline(never)]
    fn load_after_miss<E>(
        &self,
        key: K,
        hash: u64,
        guard: Guard,
        load: impl FnOnce() -> Result<Loaded<V>, E>,
    ) -> Result<V, E> {
        let mut load = Some(load);
        let mut step = self.join_load(&key, hash, &guard);
        // The loader or waiter runs unpinned (see `begin_load`).
        drop(guard);
        loop {
            let pending = match step {
                load::Step::Hit(v) => return Ok(v),
                load::Step::Wait(p) => {
                    let joined = self.now();
                    match load::in_time(p.wait(), joined) {
                        Some(v) => return Ok(v),
                        None => {
                            step = self.begin_load(&key, hash);
                            continue;
                        }
                    }
                }
                load::Step::Load(p) => p,
            };
            let duty = self.duty(&key, hash, pending);
            self.stats.add(Stat::Load);
            let f = load.take().expect("a caller loads at most once");
            // If `f` panics, `duty` is dropped during the unwind and releases the waiters
            // (counted as a load error there).
            let counted = LoadErrorOnUnwind(&self.stats);
            let r = f();
            std::mem::forget(counted);
            return self.end_load(duty, r);
        }
    }

    /// The first step of a load of `key` (whose hash is `hash`), under one pin: a hit, or
    /// the caller's part in the load (it then runs unpinned: a loader or a waiter may take
    /// long, and a held guard would hold back reclamation for every thread).
    #[inline(always)]
    fn begin_load(&self, key: &K, hash: u64) -> load::Step<V> {
        let guard = pin();
        if let Some(n) = self.get_in(key, hash, &guard) {
            return load::Step::Hit(n.clone());
        }
        self.join_load(key, hash, &guard)
    }

    /// The miss half of [`Cache::begin_load`], out of line so that the hit stays small: one
    /// read-modify-write of the key's slot. Absent (or expired, or a placeholder whose
    /// loader published and then failed to take it out: its removal unwound): put our
    /// placeholder there, and load. Another load's placeholder: wait for it. A value
    /// (stored since the caller's first look): a hit, without counting one (the first look
    /// counted the miss).
    #[inline(never)]
    fn join_load(&self, key: &K, hash: u64, guard: &Guard) -> load::Step<V> {
        // Made only to be put (a retry gets it back as `spare`).
        let placeholder = |spare: Option<Box<Entry<K, Node<V>>>>| {
            spare.unwrap_or_else(|| {
                crate::reclaim::boxed(Entry {
                    key: key.clone(),
                    value: Node::loading(load::PendingRef::fresh()),
                })
            })
        };
        let (old, new) = self.table.rmw(
            hash,
            |k| k == key,
            |cur, spare| match cur {
                Some(c) => {
                    let take = match c.value.pending() {
                        Some(p) => p.finished(),
                        None => self.expired(&c.value),
                    };
                    if take {
                        Op::Put(placeholder(spare))
                    } else {
                        Op::Keep
                    }
                }
                None => Op::Put(placeholder(spare)),
            },
            &|k: &K| self.hash(k),
            guard,
        );
        match (old, new) {
            (old, Some(n)) if !old.is_some_and(|o| std::ptr::eq(o, n)) => {
                // A finished load's placeholder, or nothing: ours takes its place.
                if let Some(o) = old.filter(|o| !o.value.is_loading()) {
                    self.gone(o, RemovalCause::Expired);
                }
                let p = n.value.pending().expect("our placeholder");
                load::Step::Load(p.clone())
            }
            (Some(o), _) => match o.value.pending() {
                Some(p) => load::Step::Wait(p.join()),
                None => load::Step::Hit(o.value.value().clone()),
            },
            (None, _) => unreachable!("an absent key gets a placeholder"),
        }
    }

    /// The loader's obligation to take its placeholder out and publish an outcome, also if
    /// the load panics or is cancelled.
    fn duty<'a>(
        &'a self,
        key: &'a K,
        hash: u64,
        pending: load::PendingRef<V>,
    ) -> Duty<'a, K, V, S> {
        Duty {
            cache: self,
            key,
            hash,
            pending,
            done: false,
        }
    }

    /// The last step of a load: stores a loaded value and hands it to the waiters, or
    /// releases them after an error (nothing is cached). One pin for both.
    fn end_load<E>(&self, duty: Duty<'_, K, V, S>, r: Result<Loaded<V>, E>) -> Result<V, E> {
        let guard = pin();
        match r {
            Ok(loaded) => {
                let store = match loaded.version {
                    Some(v) => Store::LoadedNewer(v),
                    None => Store::IfAbsent,
                };
                let v = loaded.value;
                let (deadline, stored) = self.store_loaded(&duty, &v, loaded.ttl, store, &guard);
                // The value goes to the waiters only if one joined: most loads have none,
                // and then the clone is saved (see `load::Pending::joined`).
                let handed = duty.pending.joined().then(|| (v.clone(), deadline));
                duty.finish(handed, stored, &guard);
                Ok(v)
            }
            Err(e) => {
                self.stats.add(Stat::LoadError);
                duty.finish(None, false, &guard);
                Err(e)
            }
        }
    }

    /// Stores a loaded value over the loader's own placeholder. Returns the deadline it was
    /// stored with ([`NEVER`] if it was not stored: it never expires from the cache then),
    /// which the waiters check against the time they joined the load, and whether it was
    /// stored (then the placeholder is gone: replaced by the value, or earlier by an insert).
    ///
    /// Over its own placeholder, or over a value inserted while it loaded by the rules of
    /// `store` (`IfAbsent` keeps it: it is newer than what we read; `LoadedNewer` replaces
    /// only a lower version). Not if the placeholder is gone with no value in its place: a
    /// removal of the key (or `clear`) took it out, or took out the value that replaced it.
    /// The removal announces a write to the source that the loader may have missed.
    ///
    /// The removal and this store are read-modify-writes of the same key's slot (the table
    /// orders them: each is one CAS on the slot word, and a migration moves the entry, not a
    /// copy, so "our placeholder" is the same pointer in any table). If the removal comes
    /// first, the store finds no placeholder of ours and refuses; if the store comes first,
    /// the removal takes the value out. So a value loaded across a removal never stays, with
    /// no fence: before placeholders, the removal marked a flag in a separate table of loads
    /// and the store read it after storing, a store-buffering pair that needed two SeqCst
    /// fences (loom model 7d).
    fn store_loaded(
        &self,
        duty: &Duty<'_, K, V, S>,
        v: &V,
        ttl: Option<Duration>,
        store: Store,
        guard: &Guard,
    ) -> (u64, bool) {
        let Some(e) = self.insert_inner(
            duty.key.clone(),
            duty.hash,
            v.clone(),
            ttl,
            store,
            Some(&duty.pending),
            guard,
        ) else {
            return (NEVER, false);
        };
        // SAFETY: `e` was installed under `guard`, so it is not freed before we unpin (it
        // may have been replaced or removed since; its fields never change but `meta`).
        let e = unsafe { &*e };
        (e.value.deadline(), true)
    }

    /// Takes the placeholder of `pending` out of the table, if it is still there.
    fn remove_placeholder(&self, key: &K, hash: u64, pending: &load::PendingRef<V>, guard: &Guard) {
        self.table.rmw(
            hash,
            |k| k == key,
            |cur, _| match cur.and_then(|c| c.value.pending()) {
                Some(p) if load::PendingRef::ptr_eq(p, pending) => Op::Remove,
                _ => Op::Keep,
            },
            &|k: &K| self.hash(k),
            guard,
        );
    }

    /// Loads `keys` through `load`, at most `concurrency` loads at a time (on scoped
    /// threads; `concurrency` 0 is taken as 1), skipping keys already cached. Returns how
    /// many keys were loaded or present and how many loads failed. Loads go through
    /// [`Cache::get_or_try_insert_with`], so they join loads already in flight.
    ///
    /// ```
    /// let cache: linemap::Cache<u32, u32> = linemap::Cache::new(100);
    /// let r = cache.warm_up(0..10, 4, |k| if *k == 3 { Err(()) } else { Ok(k * 2) });
    /// assert_eq!((r.loaded, r.failed), (9, 1));
    /// assert_eq!(cache.get(&4), Some(8));
    /// ```
    pub fn warm_up<E>(
        &self,
        keys: impl IntoIterator<Item = K, IntoIter: Send>,
        concurrency: usize,
        load: impl Fn(&K) -> Result<V, E> + Sync,
    ) -> WarmUp
    where
        S: Sync,
    {
        let keys = std::sync::Mutex::new(keys.into_iter());
        let loaded = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicUsize::new(0);
        let work = || loop {
            let Some(k) = keys.lock().unwrap_or_else(|e| e.into_inner()).next() else {
                break;
            };
            let r = self.get_or_try_insert_with(k.clone(), || load(&k));
            // Relaxed: totals read after the threads are joined.
            match r {
                Ok(_) => loaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                Err(_) => failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            };
        };
        std::thread::scope(|s| {
            for _ in 1..concurrency.max(1) {
                s.spawn(work);
            }
            work();
        });
        WarmUp {
            loaded: loaded.into_inner(),
            failed: failed.into_inner(),
        }
    }
}

/// The loader's obligation: take its placeholder out (unless its value replaced it) and
/// publish an outcome, even if the load panics or is cancelled.
pub(crate) struct Duty<'a, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    cache: &'a Cache<K, V, S>,
    key: &'a K,
    hash: u64,
    pending: load::PendingRef<V>,
    done: bool,
}

impl<K, V, S> Duty<'_, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Publishes `outcome` (`None`: abandoned) under the caller's `guard`, first taking the
    /// placeholder out unless `stored` (the value replaced it, or an insert did).
    ///
    /// The placeholder goes first: a caller that arrives after the publication must not join
    /// a finished load (it finds the value, or starts a new load). If the removal unwinds (a
    /// panicking `Eq` or `Hash`), the load is published as abandoned all the same, so no
    /// waiter waits for good; the next miss on the key replaces the finished placeholder.
    fn finish(mut self, outcome: load::Outcome<V>, stored: bool, guard: &Guard) {
        self.done = true;
        let pending = &self.pending;
        let abandon = OnDrop(Some(|| pending.publish(None)));
        if !stored {
            self.cache
                .remove_placeholder(self.key, self.hash, pending, guard);
        }
        abandon.disarm();
        pending.publish(outcome);
    }
}

impl<K, V, S> Drop for Duty<'_, K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if !self.done {
            // The load panicked or its future was dropped: release the waiters.
            let guard = pin();
            let pending = &self.pending;
            let abandon = OnDrop(Some(|| pending.publish(None)));
            self.cache
                .remove_placeholder(self.key, self.hash, pending, &guard);
            abandon.disarm();
            pending.publish(None);
        }
    }
}

/// Counts a load error if dropped during a loader's unwind (forgotten otherwise).
/// How an insert treats the entry already stored for its key (an expired entry counts as
/// absent in every case).
#[derive(Clone, Copy, Debug)]
enum Store {
    /// Replace it (`insert`).
    Always,
    /// Replace it only if its version is lower (`insert_versioned`).
    Newer(u64),
    /// Keep it (a loader's store: a value inserted while the load ran is newer).
    IfAbsent,
    /// Replace it only if its version is lower (a loader's store of a versioned value).
    LoadedNewer(u64),
}

impl Store {
    /// The version the new entry carries.
    fn version(self) -> u64 {
        match self {
            Store::Newer(v) | Store::LoadedNewer(v) => v,
            Store::Always | Store::IfAbsent => 0,
        }
    }

    /// Whether the stored entry, of version `stored`, stays.
    fn keeps(self, stored: u64) -> bool {
        match self {
            Store::Always => false,
            Store::Newer(v) | Store::LoadedNewer(v) => v <= stored,
            Store::IfAbsent => true,
        }
    }
}

/// Runs its function when dropped, unless disarmed: clean-up that must also happen when user
/// code unwinds.
pub(crate) struct OnDrop<F: FnOnce()>(pub(crate) Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    /// Drops without running the function.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

pub(crate) struct LoadErrorOnUnwind<'a>(pub(crate) &'a Stats);

impl Drop for LoadErrorOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.add(Stat::LoadError);
    }
}

impl<K, V, S> std::fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<K, V, S> Extend<(K, V)> for Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Inserts every pair (later pairs replace earlier ones; the capacity still holds).
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K, V, S> Extend<(K, V)> for &Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Inserts every pair through a shared reference.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K, V> FromIterator<(K, V)> for Cache<K, V, DefaultHashBuilder>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache whose capacity is the number of pairs (at least 1), holding all of them.
    ///
    /// ```
    /// let cache: linemap::Cache<u8, u8> = (0..4).map(|i| (i, i)).collect();
    /// assert_eq!((cache.len(), cache.capacity()), (4, 4));
    /// ```
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let pairs: Vec<(K, V)> = iter.into_iter().collect();
        let mut cache = Cache::new(pairs.len().max(1));
        cache.extend(pairs);
        cache
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
