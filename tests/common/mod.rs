//! Helpers shared by the integration tests: drop tracking, a reclamation driver and
//! deliberately bad hashers.
//!
//! Every test binary includes this module with `mod common;` and uses only part of it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks a mutex, ignoring poisoning (a test that panicked on purpose may have poisoned it).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts creations and drops of [`Tracked`] values and detects double drops.
///
/// Each test makes its own tracker (tests run in parallel in one process).
#[derive(Default)]
pub struct Tracker {
    next_id: AtomicU64,
    created: AtomicUsize,
    dropped: AtomicUsize,
    live: Mutex<HashSet<u64>>,
    errors: Mutex<Vec<String>>,
}

impl Tracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Values created so far (including clones).
    pub fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }

    /// Values dropped so far.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Values created and not yet dropped.
    pub fn alive(&self) -> usize {
        lock(&self.live).len()
    }

    /// Whether the value with this id has been created and not dropped.
    pub fn is_alive(&self, id: u64) -> bool {
        lock(&self.live).contains(&id)
    }

    /// Double drops and other protocol errors seen so far.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Drives epoch reclamation until exactly `n` tracked values are alive, then checks that
    /// every drop so far was of a live value, exactly once.
    #[track_caller]
    pub fn assert_alive_settles_to(&self, n: usize) {
        // Both counts: another thread's collection may be inside a value's `Drop`, between
        // removing it from `live` and counting it in `dropped`.
        let reached = reclaim_until(|| self.alive() == n && self.dropped() + n == self.created());
        let errors = self.errors();
        assert!(errors.is_empty(), "drop errors: {errors:?}");
        assert!(
            reached,
            "alive values never settled to {n}: alive {}, created {}, dropped {}",
            self.alive(),
            self.created(),
            self.dropped()
        );
        assert_eq!(self.created() - self.dropped(), n);
    }

    /// Drives reclamation until nothing is alive; checks no value was dropped twice.
    #[track_caller]
    pub fn assert_all_dropped(&self) {
        self.assert_alive_settles_to(0);
    }
}

/// A value (usable as a key: it hashes and compares by `val`) whose creations and drops are
/// recorded in a [`Tracker`]. Clones are new values with new ids.
pub struct Tracked {
    pub id: u64,
    pub val: u64,
    /// When set, `drop` panics (after recording the drop).
    pub bomb: bool,
    tracker: Arc<Tracker>,
}

impl Tracked {
    pub fn new(tracker: &Arc<Tracker>, val: u64) -> Self {
        Self::make(tracker, val, false)
    }

    /// A value whose `Drop` panics.
    pub fn bomb(tracker: &Arc<Tracker>, val: u64) -> Self {
        Self::make(tracker, val, true)
    }

    /// A second value with the same id, not registered: only for testing the detector.
    pub fn forge_twin(&self) -> Self {
        Tracked {
            id: self.id,
            val: self.val,
            bomb: false,
            tracker: Arc::clone(&self.tracker),
        }
    }

    fn make(tracker: &Arc<Tracker>, val: u64, bomb: bool) -> Self {
        let id = tracker.next_id.fetch_add(1, Ordering::SeqCst);
        assert!(lock(&tracker.live).insert(id));
        tracker.created.fetch_add(1, Ordering::SeqCst);
        Tracked {
            id,
            val,
            bomb,
            tracker: Arc::clone(tracker),
        }
    }
}

impl Clone for Tracked {
    /// Panics (before creating anything) when [`touchy::clone_panics_in`] says so.
    fn clone(&self) -> Self {
        touchy::count_clone();
        Self::make(&self.tracker, self.val, self.bomb)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !lock(&self.tracker.live).remove(&self.id) {
            lock(&self.tracker.errors).push(format!("value id {} dropped twice", self.id));
        }
        self.tracker.dropped.fetch_add(1, Ordering::SeqCst);
        if self.bomb && !std::thread::panicking() {
            panic!("intentional panic in Drop of value {}", self.val);
        }
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.val == other.val
    }
}

impl Eq for Tracked {}

impl Hash for Tracked {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.val.hash(state)
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked({} #{})", self.val, self.id)
    }
}

/// Drives crossbeam-epoch's default collector (the one linemap uses) until `done()` holds,
/// for a bounded number of rounds; returns whether it held.
///
/// The test crate cannot name `crossbeam_epoch` (it is not a dev-dependency), so it cannot
/// call `Guard::flush`. Instead each round retires > 64 entries of a scratch map (filling this
/// thread's deferred bag, which pushes the earlier garbage to the global queue) and then pins
/// more than 128 times (every 128th pin of a thread advances the epoch and collects).
///
/// The epoch advances only when every pinned thread of the process has caught up, so another
/// test's thread that is descheduled while pinned holds everything back for as long as it
/// does not run. After 4,000 quick rounds the rest (up to 5,000) sleep a millisecond each, so
/// that such a thread gets the CPU back on a loaded machine: the bound is on patience, not on
/// speed (the quick rounds alone take well under a second here).
pub fn reclaim_until(mut done: impl FnMut() -> bool) -> bool {
    let scratch: linemap::HashMap<u64, u64> = linemap::HashMap::new();
    for round in 0..9000u64 {
        if done() {
            return true;
        }
        {
            let m = scratch.pin();
            for i in 0..80 {
                m.insert(0, round * 100 + i);
            }
        }
        for _ in 0..260 {
            drop(scratch.pin());
        }
        if round < 4000 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    done()
}

/// How a [`BadHasher`] maps the hashed bytes to a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Badness {
    /// Every key hashes to the same value: one probe chain, one tag.
    Constant,
    /// Only `n` distinct, well-mixed hashes.
    Few(u64),
    /// The hash is the key's bytes: distinct home buckets, but the top seven bits (the tag)
    /// are the same for all small keys.
    SameTag,
    /// Every key's home bucket is 0; the tag (top seven bits) varies with the key.
    SameBucket,
}

/// A `BuildHasher` with terrible distribution, for long probe chains and overflow flags.
#[derive(Clone, Copy, Debug)]
pub struct BadHash(pub Badness);

pub struct BadHasher {
    mode: Badness,
    acc: u64,
    n: u32,
}

impl BuildHasher for BadHash {
    type Hasher = BadHasher;
    fn build_hasher(&self) -> BadHasher {
        BadHasher {
            mode: self.0,
            acc: 0,
            n: 0,
        }
    }
}

/// splitmix64's finaliser.
pub fn mix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Hasher for BadHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Little-endian accumulation: an integer key hashes to its own value (folded).
        for &b in bytes {
            self.acc ^= u64::from(b) << (8 * (self.n % 8));
            self.n += 1;
        }
    }

    fn finish(&self) -> u64 {
        match self.mode {
            Badness::Constant => 0x0123_4567_89ab_cdef,
            Badness::Few(n) => mix(self.acc % n),
            Badness::SameTag => self.acc & 0x00ff_ffff_ffff_ffff,
            Badness::SameBucket => self.acc << 57,
        }
    }
}

/// Thread-local switches that make [`Touchy`] keys panic in `hash` or `eq`.
pub mod touchy {
    use std::cell::Cell;

    thread_local! {
        /// Panic in `Hash::hash` of the key with this value.
        pub static HASH_PANICS_FOR: Cell<Option<u64>> = const { Cell::new(None) };
        /// Panic in the n-th `Eq::eq` call from now (1 = next call); 0 disables.
        pub static EQ_PANICS_IN: Cell<u32> = const { Cell::new(0) };
        /// Number of `Eq::eq` calls made on this thread.
        pub static EQ_CALLS: Cell<u64> = const { Cell::new(0) };
        /// Panic in the n-th `Tracked::clone` call from now (1 = next call); 0 disables.
        pub static CLONE_PANICS_IN: Cell<u32> = const { Cell::new(0) };
    }

    pub fn hash_panics_for(v: Option<u64>) {
        HASH_PANICS_FOR.with(|c| c.set(v));
    }

    pub fn eq_panics_in(n: u32) {
        EQ_PANICS_IN.with(|c| c.set(n));
    }

    pub fn clone_panics_in(n: u32) {
        CLONE_PANICS_IN.with(|c| c.set(n));
    }

    /// Called by `Tracked::clone`: panics if this is the clone [`clone_panics_in`] named.
    pub fn count_clone() {
        let n = CLONE_PANICS_IN.with(|c| c.get());
        if n > 0 {
            CLONE_PANICS_IN.with(|c| c.set(n - 1));
            if n == 1 {
                panic!("intentional panic in Clone");
            }
        }
    }

    pub fn eq_calls() -> u64 {
        EQ_CALLS.with(|c| c.get())
    }
}

/// A key whose `Hash` or `Eq` panics on demand (see [`touchy`]); tracked for drops.
#[derive(Debug, Clone)]
pub struct Touchy(pub Tracked);

impl Touchy {
    pub fn new(tracker: &Arc<Tracker>, val: u64) -> Self {
        Touchy(Tracked::new(tracker, val))
    }
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if touchy::HASH_PANICS_FOR.with(|c| c.get()) == Some(self.0.val) {
            panic!("intentional panic in Hash of key {}", self.0.val);
        }
        self.0.val.hash(state)
    }
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        touchy::EQ_CALLS.with(|c| c.set(c.get() + 1));
        let n = touchy::EQ_PANICS_IN.with(|c| c.get());
        if n > 0 {
            touchy::EQ_PANICS_IN.with(|c| c.set(n - 1));
            if n == 1 {
                panic!("intentional panic in Eq of key {}", self.0.val);
            }
        }
        self.0.val == other.0.val
    }
}

impl Eq for Touchy {}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Installs (once per process) a panic hook that stays silent for panics whose message
/// contains "intentional" and reports all others as the default hook does.
pub fn quiet_intentional_panics() {
    if QUIET.swap(true, Ordering::SeqCst) {
        return;
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !msg.contains("intentional") {
            default(info);
        }
    }));
}

/// The message of a caught panic payload.
pub fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
