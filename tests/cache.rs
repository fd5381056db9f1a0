//! Integration tests of `linemap::Cache` under concurrency: the capacity bound, exactly-once
//! listener reports and drops, stampede protection (values, errors and panics of loaders),
//! versioned inserts racing, `warm_up`, and loaders that use the cache.
//!
//! Every check is on a result that is determined despite the concurrency, or is made at
//! quiescence. No test asserts anything about time: waits for other threads are polls with a
//! generous hang guard, and expiry runs on a `ManualClock`.

mod common;

use common::{
    lock, mix, panic_message, quiet_intentional_panics, BadHash, Badness, Tracked, Tracker,
};
use linemap::cache::{Clock, ManualClock, RemovalCause};
use linemap::Cache;
use std::collections::{HashMap as StdMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// A small deterministic PRNG (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(mix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Polls `cond` until it holds. Not a timing assertion: the bound (about a minute) only turns
/// a hang (a waiter never released, a loader never reached) into a failure with a message.
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..60_000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("hang guard: still waiting for {what}");
}

/// Runs `f` on its own thread and fails (instead of hanging the test binary) if it has not
/// finished within `limit`, a very generous bound: the check for deadlocks and livelocks.
/// (A livelocked thread keeps spinning until the test binary exits.)
fn guarded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        Ok(()) => match h.join().expect("joined") {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e),
        },
        Err(_) => panic!("{what}: not finished after {limit:?} (deadlock or livelock)"),
    }
}

/// The bound for `guarded` runs of tests that take a few seconds at most.
const HANG: Duration = Duration::from_secs(120);

/// Counts the entries of a quiescent cache by iteration (`retain` keeping everything; it
/// first removes expired entries, of which these tests have none) and checks `len()` agrees.
fn quiescent_len<V: Clone + Send + Sync + 'static>(cache: &Cache<u64, V>) -> usize {
    let mut n = 0;
    let mut keys = HashSet::new();
    cache.retain(|k, _| {
        n += 1;
        assert!(keys.insert(*k), "key {k} iterated twice");
        true
    });
    assert_eq!(cache.len(), n, "len() vs iteration at quiescence");
    n
}

// ---------------------------------------------------------------------------------------
// 1. The capacity bound under concurrent inserts.
// ---------------------------------------------------------------------------------------

/// `threads` threads each insert `ops` keys (plus some lookups to set reference bits) and
/// check `len() <= capacity` right after each of their inserts returns.
///
/// What is guaranteed (from `src/clock.rs` and `src/table`): every entry in the table holds
/// a distinct ring position, so the table never holds more than `capacity` entries. `len()`
/// is a striped counter updated just after each table CAS, read stripe by stripe:
///
/// * with inserts only and no key inserted by two threads (`overlapping == false`), a stripe
///   only ever moves by "+1 for a position taken FREE" (at most `capacity` of those in the
///   cache's life) or "-1 for an eviction, then +1 for the insert into the position it
///   freed", in that order on the evicting thread's stripe; so every stripe is at most the
///   number of FREE positions its threads took, and any sum of stripe reads is at most
///   `capacity`: the per-insert check is exact;
/// * with overlapping keys a position can go back to FREE (two inserts of one absent key: the
///   loser gives its position back after its eviction), and a stripe-by-stripe read that
///   straddles "thread A evicts and releases, thread B takes that FREE position" can
///   over-count (seen once, on a loaded machine, after millions of clean reads), so there
///   the bound is checked at quiescence only, where `len()` is exact.
fn bound_run(capacity: usize, threads: usize, overlapping: bool, ops: usize) {
    let cache: Cache<u64, u64> = Cache::new(capacity);
    let key_space = 3 * capacity as u64 + 7;
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads as u64 {
            let (cache, barrier) = (&cache, &barrier);
            s.spawn(move || {
                let mut rng = Rng::new(t * 1000 + capacity as u64);
                let key = |rng: &mut Rng| {
                    let k = rng.below(key_space);
                    if overlapping {
                        k
                    } else {
                        (t << 32) | k
                    }
                };
                barrier.wait();
                for i in 0..ops {
                    let k = key(&mut rng);
                    // The value names the writer, so that reads can be checked.
                    cache.insert(k, (k << 3) | t);
                    let n = cache.len();
                    assert!(
                        overlapping || n <= capacity,
                        "len() {n} > capacity {capacity} right after an insert \
                         (thread {t}, op {i}, overlapping {overlapping})"
                    );
                    if i % 3 == 0 {
                        let k = key(&mut rng);
                        if let Some(v) = cache.get(&k) {
                            assert_eq!(v >> 3, k, "get({k}) returned another key's value");
                            assert!(v & 7 < threads as u64);
                        }
                    }
                }
            });
        }
    });
    let n = quiescent_len(&cache);
    assert!(
        n <= capacity,
        "{n} entries at quiescence, capacity {capacity}"
    );
    let s = cache.stats();
    assert_eq!((s.evicted_expired, s.removed), (0, 0));
    // Every insert call either stored its value (counted in `inserts`), which is now in the
    // cache or left it replaced or evicted, or found no room (every ring position owned by
    // another thread for the whole bounded search: possible only when capacity < threads)
    // and handed its value straight to the listener as evicted.
    assert_eq!(
        (threads * ops) as u64,
        n as u64 + s.replaced + s.evicted_capacity,
        "stats do not account for the insert calls: {s:?}"
    );
    let no_room = (threads * ops) as u64 - s.inserts;
    if capacity >= threads {
        assert_eq!(
            no_room, 0,
            "an insert found no room with capacity {capacity}: {s:?}"
        );
    }
    if n > 0 {
        // The writes stopped: a full sweep of the key space finds exactly n keys.
        let found = (0..threads as u64)
            .flat_map(|t| (0..key_space).map(move |k| if overlapping { k } else { (t << 32) | k }))
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|k| cache.contains_key(k))
            .count();
        assert_eq!(found, n);
    }
}

#[test]
fn bound_holds_under_concurrent_inserts_disjoint_keys() {
    guarded(
        "bound_holds_under_concurrent_inserts_disjoint_keys",
        HANG,
        || {
            for (cap, threads, ops) in [(8, 4, 6000), (64, 3, 6000), (1000, 2, 8000)] {
                bound_run(cap, threads, false, ops);
            }
        },
    );
}

#[test]
fn bound_holds_under_concurrent_inserts_overlapping_keys() {
    guarded(
        "bound_holds_under_concurrent_inserts_overlapping_keys",
        HANG,
        || {
            for (cap, threads, ops) in [(8, 4, 6000), (64, 4, 6000), (1000, 3, 8000), (1, 4, 4000)]
            {
                bound_run(cap, threads, true, ops);
            }
        },
    );
}

/// Inserts, removes and clears racing: `len()` is only a snapshot here (a remove's counter
/// decrement comes after the CAS that frees the entry's position, so another thread's insert
/// can take the position and count itself first: `len()` has been seen at capacity + 1 right
/// after an insert returned, e.g. 3 in a cache of capacity 2). The bound is checked where it
/// is exact: at barrier-separated quiescent points, every few hundred operations.
#[test]
fn bound_holds_at_quiescent_points_with_removes() {
    guarded("bound_holds_at_quiescent_points_with_removes", HANG, || {
        const THREADS: usize = 4;
        for capacity in [1usize, 8, 64] {
            let cache: Cache<u64, u64> = Cache::new(capacity);
            let barrier = Barrier::new(THREADS);
            let key_space = 2 * capacity as u64 + 3;
            let wrong = AtomicUsize::new(0);
            let over = Mutex::new(Vec::new());
            let insert_calls = std::thread::scope(|s| {
                (0..THREADS as u64)
                    .map(|t| {
                        let (cache, barrier, wrong, over) = (&cache, &barrier, &wrong, &over);
                        s.spawn(move || {
                            let mut rng = Rng::new(77 + t);
                            let mut insert_calls = 0u64;
                            for round in 0..20 {
                                for _ in 0..300 {
                                    let k = rng.below(key_space);
                                    match rng.below(10) {
                                        0..=5 => {
                                            insert_calls += 1;
                                            cache.insert(k, k)
                                        }
                                        // (No panics between barriers: a panic would leave
                                        // the other threads waiting. Mismatches are counted.)
                                        6..=8 => {
                                            if cache.remove(&k).is_some_and(|v| v != k) {
                                                wrong.fetch_add(1, Ordering::Relaxed);
                                            }
                                        }
                                        _ => {
                                            if t == 0 && rng.below(20) == 0 {
                                                cache.clear();
                                            } else if cache.get(&k).is_some_and(|v| v != k) {
                                                wrong.fetch_add(1, Ordering::Relaxed);
                                            }
                                        }
                                    }
                                }
                                barrier.wait();
                                if t == 0 {
                                    let mut n = 0;
                                    cache.retain(|_, _| {
                                        n += 1;
                                        true
                                    });
                                    if n > capacity || cache.len() != n {
                                        lock(over).push((round, n, cache.len()));
                                    }
                                }
                                barrier.wait();
                            }
                            insert_calls
                        })
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .sum::<u64>()
            });
            assert_eq!(
                wrong.into_inner(),
                0,
                "a lookup returned another key's value"
            );
            let over = over.into_inner().unwrap();
            // (round, entries iterated, len()) where the quiescent check failed.
            assert!(over.is_empty(), "capacity {capacity}: {over:?}");
            let s = cache.stats();
            let n = quiescent_len(&cache) as u64;
            // Each insert call stored its value (then still here, replaced, evicted or removed)
            // or found no room (possible with capacity 1 < 4 threads) and reported it evicted.
            assert_eq!(
                insert_calls,
                n + s.replaced + s.evicted_capacity + s.removed,
                "{s:?}"
            );
            if capacity >= THREADS {
                assert_eq!(insert_calls, s.inserts, "an insert found no room: {s:?}");
            }
        }
    });
}

/// Regression test for a livelock this test found: a cache whose table had fewer than 64
/// slots (capacity below about 40) could spin forever in back-to-back same-size table
/// migrations. For a bounded table, `worth_cleaning` (src/table/migrate.rs) asked for
/// `tombstones >= slots / 64`, which is `>= 0` for such tables, so a migration never doubled;
/// when the live entries alone keep the overflow trigger pulled, every write that met a
/// crowded bucket started the next same-size migration. Clustered hashes made it
/// deterministic (with every key in one home bucket the 15th key into a capacity-16 cache never
/// returned). Fixed by requiring at least one tombstone for a same-size copy.
#[test]
fn small_caches_with_clustered_hashes_do_not_livelock() {
    // Runs in a child process: a livelocked thread stays pinned to the epoch forever, which
    // would stop reclamation (and fail the drop-counting tests) in this whole test binary.
    const CHILD: &str = "LINEMAP_CACHE_TEST_LIVELOCK_CHILD";
    const NAME: &str = "small_caches_with_clustered_hashes_do_not_livelock";
    if std::env::var_os(CHILD).is_some() {
        return clustered_inserts();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child test");
    for _ in 0..120_000 {
        if child.try_wait().expect("child status").is_some() {
            let out = child.wait_with_output().expect("child output");
            assert!(
                out.status.success(),
                "child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("inserting into small caches with clustered hashes did not finish in 120 s (livelock)");
}

fn clustered_inserts() {
    for badness in [Badness::SameBucket, Badness::Constant, Badness::Few(3)] {
        for cap in [1usize, 4, 8, 16, 32, 40, 64] {
            let cache: Cache<u64, u64, BadHash> =
                Cache::builder(cap).hasher(BadHash(badness)).build();
            for k in 0..200u64 {
                cache.insert(k, k);
                assert!(cache.len() <= cap);
            }
            assert_eq!(cache.len(), cap, "{badness:?} capacity {cap}");
            // Every position holds a reachable key, and the newest is there. (Not insertion
            // order: with so few distinct hashes the ghosts confuse new keys with evicted
            // ones and admit them to main, so S3-FIFO's two queues interleave.)
            let present = (0..200u64).filter(|k| cache.get(k) == Some(*k)).count();
            assert_eq!(present, cap, "{badness:?} capacity {cap}");
            assert_eq!(cache.get(&199), Some(199), "{badness:?} capacity {cap}");
            for k in 0..200u64 {
                cache.remove(&k);
            }
            assert!(cache.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Exactly-once listener reports and drops, with every kind of write and TTL expiry.
// ---------------------------------------------------------------------------------------

/// How a value (named by its unique `val`) was handed to the cache.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    /// `insert_with_ttl`; clock readings (ns) just before and after the call, ttl in ns.
    Ttl {
        before: u64,
        after: u64,
        ttl: u64,
    },
    /// `insert_versioned`, with its result.
    Versioned(bool),
    /// Made by a `get_or_insert_with` loader (the cache stores a clone: same `val`).
    Loaded,
}

#[derive(Clone, Copy, Debug)]
struct Made {
    key: u64,
    /// The id of the value handed over by value (the cache stores that very value); `None`
    /// for loaded values, of which the cache stores a clone.
    id: Option<u64>,
    kind: Kind,
}

/// What a thread saw come out of the cache.
#[derive(Clone, Copy, Debug)]
enum Saw {
    /// `get` returned the value `val` for `key`; clock reading (ns) before the call.
    Got { key: u64, val: u64, clock: u64 },
    /// `remove` returned it.
    Removed { key: u64, val: u64 },
    /// `get_or_insert_with` returned it without running this caller's loader.
    Joined { key: u64, val: u64 },
}

/// What one thread of `every_value_is_reported_once_and_dropped_once` made and saw.
type PerThread = (Vec<(u64, Made)>, Vec<Saw>);

/// One listener call.
#[derive(Clone, Copy, Debug)]
struct Note {
    key: u64,
    val: u64,
    id: u64,
    cause: RemovalCause,
    /// Clock reading (ns) inside the listener.
    now: u64,
}

#[test]
fn every_value_is_reported_once_and_dropped_once() {
    guarded(
        "every_value_is_reported_once_and_dropped_once",
        HANG,
        || {
            const THREADS: u64 = 4;
            const OPS: usize = 2500;
            const KEYS: u64 = 24;
            const CAP: usize = 16;
            const TICK: Duration = Duration::from_millis(1);
            let tracker = Tracker::new();
            let clock = Arc::new(ManualClock::new());
            let log: Arc<Mutex<Vec<Note>>> = Arc::new(Mutex::new(Vec::new()));
            let cache: Cache<Tracked, Tracked> = {
                let (log, clock) = (Arc::clone(&log), Arc::clone(&clock));
                Cache::builder(CAP)
                    .clock(Arc::clone(&clock))
                    .eviction_listener(move |k: &Tracked, v: &Tracked, cause| {
                        let now = clock.now().as_nanos() as u64;
                        lock(&log).push(Note {
                            key: k.val,
                            val: v.val,
                            id: v.id,
                            cause,
                            now,
                        })
                    })
                    .build()
            };
            let next_val = AtomicU64::new(1);
            let removes_some = AtomicUsize::new(0);
            let removes_versioned = AtomicUsize::new(0);
            let barrier = Barrier::new(THREADS as usize);
            let now = || clock.now().as_nanos() as u64;

            let per_thread: Vec<PerThread> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|t| {
                        let (cache, tracker, clock, barrier) = (&cache, &tracker, &clock, &barrier);
                        let (next_val, removes_some, removes_versioned) =
                            (&next_val, &removes_some, &removes_versioned);
                        s.spawn(move || {
                            let mut rng = Rng::new(4242 + t);
                            let mut made = Vec::new();
                            let mut saw = Vec::new();
                            let fresh = |key: u64| {
                                let val = next_val.fetch_add(1, Ordering::Relaxed);
                                (Tracked::new(tracker, key), Tracked::new(tracker, val))
                            };
                            barrier.wait();
                            for i in 0..OPS {
                                if t == 0 && i % 40 == 0 {
                                    clock.advance(TICK);
                                }
                                if t == 1 && i % 500 == 250 {
                                    cache.purge_expired();
                                }
                                let key = rng.below(KEYS);
                                let probe = Tracked::new(tracker, key);
                                match rng.below(100) {
                                    0..=19 => {
                                        let (k, v) = fresh(key);
                                        made.push((
                                            v.val,
                                            Made {
                                                key,
                                                id: Some(v.id),
                                                kind: Kind::Plain,
                                            },
                                        ));
                                        cache.insert(k, v);
                                    }
                                    20..=31 => {
                                        let (k, v) = fresh(key);
                                        let ttl = TICK * (1 + rng.below(4) as u32);
                                        let (val, id) = (v.val, v.id);
                                        let before = now();
                                        cache.insert_with_ttl(k, v, ttl);
                                        let after = now();
                                        let ttl = ttl.as_nanos() as u64;
                                        let kind = Kind::Ttl { before, after, ttl };
                                        made.push((
                                            val,
                                            Made {
                                                key,
                                                id: Some(id),
                                                kind,
                                            },
                                        ));
                                    }
                                    32..=46 => {
                                        let (k, v) = fresh(key);
                                        let (val, id) = (v.val, v.id);
                                        let ok = cache.insert_versioned(k, v, 1 + rng.below(8));
                                        let kind = Kind::Versioned(ok);
                                        made.push((
                                            val,
                                            Made {
                                                key,
                                                id: Some(id),
                                                kind,
                                            },
                                        ));
                                    }
                                    47..=66 => {
                                        let clock = now();
                                        if let Some(v) = cache.get(&probe) {
                                            saw.push(Saw::Got {
                                                key,
                                                val: v.val,
                                                clock,
                                            });
                                        }
                                    }
                                    67..=74 => {
                                        if let Some(v) = cache.remove(&probe) {
                                            removes_some.fetch_add(1, Ordering::Relaxed);
                                            saw.push(Saw::Removed { key, val: v.val });
                                        }
                                    }
                                    75..=81 => {
                                        if cache.remove_versioned(&probe, rng.below(9)) {
                                            removes_versioned.fetch_add(1, Ordering::Relaxed);
                                        }
                                    }
                                    82..=94 => {
                                        let mut ran = None;
                                        let k = Tracked::new(tracker, key);
                                        let v = cache.get_or_insert_with(k, || {
                                            let (_, v) = fresh(key);
                                            ran = Some(v.val);
                                            v
                                        });
                                        match ran {
                                            Some(val) => {
                                                assert_eq!(
                                                    v.val, val,
                                                    "loader ran, another value came"
                                                );
                                                made.push((
                                                    val,
                                                    Made {
                                                        key,
                                                        id: None,
                                                        kind: Kind::Loaded,
                                                    },
                                                ));
                                            }
                                            None => saw.push(Saw::Joined { key, val: v.val }),
                                        }
                                    }
                                    _ => {
                                        cache.contains_key(&probe);
                                    }
                                }
                            }
                            (made, saw)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });

            let mut made: StdMap<u64, Made> = StdMap::new();
            let mut saw = Vec::new();
            for (m, s) in per_thread {
                made.extend(m);
                saw.extend(s);
            }
            assert_eq!(made.len() as u64, next_val.load(Ordering::Relaxed) - 1);

            // Quiescent. Enumerate the cache (`retain` first removes what expired: those are
            // reported, and belong to the log read after it).
            let mut contents: Vec<(u64, u64, u64)> = Vec::new();
            cache.retain(|k, v| {
                contents.push((k.val, v.val, v.id));
                true
            });
            assert!(contents.len() <= CAP);
            assert_eq!(cache.len(), contents.len());
            let log = lock(&log).clone();

            // Every report is of a value handed to the cache (not of a clone), under its own key;
            // expired ones had a deadline that passed.
            let mut reports: StdMap<u64, Vec<Note>> = StdMap::new();
            for n in &log {
                let m = made.get(&n.val).unwrap_or_else(|| {
                    panic!("listener saw a value never handed to the cache: {n:?}")
                });
                assert_eq!(n.key, m.key, "reported under another key: {n:?} {m:?}");
                if let Some(id) = m.id {
                    assert_eq!(
                        n.id, id,
                        "the listener saw a copy, not the stored value: {n:?}"
                    );
                }
                if n.cause == RemovalCause::Expired {
                    match m.kind {
                        Kind::Ttl { before, ttl, .. } => assert!(
                            n.now >= before + ttl,
                            "reported expired before its deadline: {n:?} {m:?}"
                        ),
                        _ => panic!("a value without a deadline was reported expired: {n:?} {m:?}"),
                    }
                }
                reports.entry(n.val).or_default().push(*n);
            }
            let mut in_cache: StdMap<u64, (u64, u64)> = StdMap::new();
            let mut keys = HashSet::new();
            for &(key, val, id) in &contents {
                assert!(keys.insert(key), "key {key} twice in the cache");
                let m = made
                    .get(&val)
                    .expect("cache holds a value never handed to it");
                assert_eq!(m.key, key);
                if let Some(mid) = m.id {
                    assert_eq!(id, mid);
                }
                assert!(
                    !matches!(m.kind, Kind::Versioned(false)),
                    "refused value stored"
                );
                in_cache.insert(val, (key, id));
            }
            // Each value handed over is now in the cache or was reported exactly once; a refused
            // versioned insert is neither (it would be reported, with Capacity, only if the cache
            // could not make room, which it always can here).
            let mut stored = 0u64;
            let mut loaded_stored = 0;
            for (val, m) in &made {
                let n = reports.get(val).map_or(0, Vec::len);
                let here = usize::from(in_cache.contains_key(val));
                match m.kind {
                    Kind::Versioned(false) => {
                        assert_eq!(here, 0);
                        assert_eq!(n, 0, "refused value {val} reported: {:?}", reports.get(val));
                    }
                    // A loader stores only over an absent entry (a value inserted while it
                    // loaded is newer and stays): a loaded value may never have entered the
                    // cache, and is then neither held nor reported; never both, never twice.
                    Kind::Loaded => {
                        assert!(
                            n + here <= 1,
                            "loaded value {val} ({m:?}): {n} reports {:?}, in cache: {}",
                            reports.get(val),
                            here == 1
                        );
                        loaded_stored += (n + here) as u64;
                    }
                    _ => {
                        stored += 1;
                        assert_eq!(
                            n + here,
                            1,
                            "value {val} ({m:?}): {n} reports {:?}, in cache: {}",
                            reports.get(val),
                            here == 1
                        );
                    }
                }
            }
            // What threads saw come out was stored for that key, and was live when read.
            for s in &saw {
                let (key, val) = match *s {
                    Saw::Got { key, val, .. }
                    | Saw::Removed { key, val }
                    | Saw::Joined { key, val } => (key, val),
                };
                let m = made
                    .get(&val)
                    .expect("read a value never handed to the cache");
                assert_eq!(m.key, key, "{s:?} {m:?}");
                assert!(
                    !matches!(m.kind, Kind::Versioned(false)),
                    "read a refused value: {s:?}"
                );
                match (*s, m.kind) {
                    (Saw::Got { clock, .. }, Kind::Ttl { after, ttl, .. }) => {
                        assert!(
                            clock < after + ttl,
                            "get returned an expired value: {s:?} {m:?}"
                        )
                    }
                    (Saw::Removed { .. }, _) => {
                        let r = &reports[&val];
                        assert_eq!(r.len(), 1);
                        assert_eq!(r[0].cause, RemovalCause::Removed, "{s:?} reported as {r:?}");
                    }
                    _ => {}
                }
            }
            // The statistics agree with the log.
            let count = |c: RemovalCause| log.iter().filter(|n| n.cause == c).count() as u64;
            let st = cache.stats();
            assert_eq!(st.replaced, count(RemovalCause::Replaced));
            assert_eq!(st.evicted_capacity, count(RemovalCause::Capacity));
            assert_eq!(st.evicted_expired, count(RemovalCause::Expired));
            assert_eq!(st.removed, count(RemovalCause::Removed));
            // `Removed` reports: every remove that returned a value, plus loaded values that a
            // loader stored just as a remove of its key marked the load stale, and took back
            // out (counted in `loads_not_stored`, like loaded values never stored).
            let user_removes = (removes_some.into_inner() + removes_versioned.into_inner()) as u64;
            assert!(
                st.removed >= user_removes && st.removed <= user_removes + st.loads_not_stored,
                "removed {} vs {user_removes} removes and {} loads not stored",
                st.removed,
                st.loads_not_stored
            );
            assert!(loaded_stored > 0, "no loaded value was ever stored");
            let stored = stored + loaded_stored;
            assert_eq!(st.inserts, stored);
            assert_eq!(log.len() + contents.len(), stored as usize);
            // The run exercised every cause.
            for c in [
                RemovalCause::Replaced,
                RemovalCause::Capacity,
                RemovalCause::Expired,
                RemovalCause::Removed,
            ] {
                assert!(count(c) > 0, "no {c:?} report: the mix did not exercise it");
            }

            drop(cache);
            tracker.assert_all_dropped();
        },
    );
}

// ---------------------------------------------------------------------------------------
// 3 and 4. Stampedes: one loader for eight callers; errors and panics hand over.
// ---------------------------------------------------------------------------------------

const CALLERS: usize = 8;

/// Runs `CALLERS` threads that, released together, each call `call(i)` once; returns their
/// results in order. The threads are not scoped, so that a caller that is never released
/// (a waiter left behind by a broken hand-over) fails the test instead of hanging it.
fn stampede<T: Send + 'static>(call: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let call = Arc::new(call);
    let barrier = Arc::new(Barrier::new(CALLERS));
    let handles: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (call, barrier) = (Arc::clone(&call), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                call(i)
            })
        })
        .collect();
    wait_until("every caller to return (a waiter never released?)", || {
        handles.iter().all(|h| h.is_finished())
    });
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Makes a loader wait until all `CALLERS` callers have missed (each caller's first step is
/// a lookup): after that, none of them can find the value without going through the load
/// coordination, so a stampede really happens.
fn until_all_missed<K, V>(cache: &Cache<K, V>)
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    wait_until("every caller to miss", || {
        cache.stats().misses >= CALLERS as u64
    });
}

#[test]
fn stampede_runs_the_loader_once() {
    let cache: Arc<Cache<u64, String>> = Arc::new(Cache::new(16));
    let calls = Arc::new(AtomicUsize::new(0));
    let got = {
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        stampede(move |i| {
            cache.get_or_insert_with(7, || {
                calls.fetch_add(1, Ordering::SeqCst);
                until_all_missed(&cache);
                format!("loaded by {i}")
            })
        })
    };
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the loader ran more than once"
    );
    assert!(
        got.iter().all(|v| *v == got[0]),
        "callers got different values: {got:?}"
    );
    assert_eq!(cache.get(&7).as_ref(), Some(&got[0]));
    let s = cache.stats();
    // Eight misses (one each), one load, one insert; the waiters' values came from the load,
    // not from lookups, and the final get above is the only hit.
    assert_eq!(
        (s.misses, s.loads, s.load_errors, s.inserts, s.hits),
        (CALLERS as u64, 1, 0, 1, 1),
        "{s:?}"
    );
}

#[test]
fn stampede_of_errors_gives_each_caller_its_own_error() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(16));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let got = {
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        stampede(move |i| {
            cache.get_or_try_insert_with(7, || {
                let first = {
                    let mut c = lock(&calls);
                    c.push(i);
                    c.len() == 1
                };
                if first {
                    until_all_missed(&cache);
                }
                Err::<u64, usize>(i)
            })
        })
    };
    // Nothing is ever stored, so no caller can get a value: each one ends up running its own
    // loader (once: it is FnOnce) and gets its own error back.
    for (i, r) in got.iter().enumerate() {
        assert_eq!(*r, Err(i), "caller {i}");
    }
    let mut calls = lock(&calls).clone();
    calls.sort();
    assert_eq!(calls, (0..CALLERS).collect::<Vec<_>>());
    assert_eq!(cache.get(&7), None);
    assert!(cache.is_empty());
    let s = cache.stats();
    assert_eq!((s.loads, s.load_errors, s.inserts), (8, 8, 0), "{s:?}");
}

#[test]
fn stampede_after_an_error_the_next_loader_serves_everyone() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(16));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let got = {
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        stampede(move |i| {
            cache.get_or_try_insert_with(7, || {
                let n = {
                    let mut c = lock(&calls);
                    c.push(i);
                    c.len()
                };
                if n == 1 {
                    until_all_missed(&cache);
                    Err(i)
                } else {
                    Ok(100 + i as u64)
                }
            })
        })
    };
    let calls = lock(&calls).clone();
    assert_eq!(calls.len(), 2, "loader calls: {calls:?}");
    let (failed, second) = (calls[0], calls[1]);
    let want = 100 + second as u64;
    for (i, r) in got.iter().enumerate() {
        if i == failed {
            assert_eq!(*r, Err(i), "the failing loader's caller");
        } else {
            assert_eq!(*r, Ok(want), "caller {i}");
        }
    }
    assert_eq!(cache.get(&7), Some(want));
    let s = cache.stats();
    assert_eq!((s.loads, s.load_errors, s.inserts), (2, 1, 1), "{s:?}");
}

#[test]
fn stampede_loader_panic_hands_over_to_a_waiter() {
    quiet_intentional_panics();
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(16));
    let calls = Arc::new(Mutex::new(Vec::new()));
    let got = {
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        stampede(move |i| {
            catch_unwind(AssertUnwindSafe(|| {
                cache.get_or_insert_with(7, || {
                    let n = {
                        let mut c = lock(&calls);
                        c.push(i);
                        c.len()
                    };
                    if n == 1 {
                        until_all_missed(&cache);
                        panic!("intentional loader panic in caller {i}");
                    }
                    100 + i as u64
                })
            }))
            .map_err(|e| panic_message(&*e))
        })
    };
    let calls = lock(&calls).clone();
    assert_eq!(calls.len(), 2, "loader calls: {calls:?}");
    let (panicked, second) = (calls[0], calls[1]);
    let want = 100 + second as u64;
    for (i, r) in got.iter().enumerate() {
        if i == panicked {
            let msg = r.as_ref().expect_err("the panicking loader's caller");
            assert!(msg.contains("intentional loader panic"), "{msg}");
        } else {
            assert_eq!(*r, Ok(want), "caller {i}");
        }
    }
    assert_eq!(cache.get(&7), Some(want), "the second load was not cached");
    let s = cache.stats();
    assert_eq!((s.loads, s.load_errors, s.inserts), (2, 1, 1), "{s:?}");
}

#[test]
fn stampede_of_panicking_loaders_releases_everyone() {
    quiet_intentional_panics();
    let tracker = Tracker::new();
    let cache: Arc<Cache<u64, Tracked>> = Arc::new(Cache::new(16));
    let calls = Arc::new(AtomicUsize::new(0));
    let got = {
        let (cache, calls, tracker) =
            (Arc::clone(&cache), Arc::clone(&calls), Arc::clone(&tracker));
        stampede(move |i| {
            catch_unwind(AssertUnwindSafe(|| {
                cache.get_or_insert_with(7, || {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        until_all_missed(&cache);
                    }
                    // Made before the panic: dropped during the unwind.
                    let _v = Tracked::new(&tracker, i as u64);
                    panic!("intentional loader panic in caller {i}");
                })
            }))
            .map_err(|e| panic_message(&*e))
        })
    };
    // Every caller ran its own loader and got its own panic.
    assert_eq!(calls.load(Ordering::SeqCst), CALLERS);
    for (i, r) in got.iter().enumerate() {
        let msg = r.as_ref().expect_err("every loader panics");
        assert!(
            msg.contains(&format!("in caller {i}")),
            "caller {i} got {msg}"
        );
    }
    assert!(cache.is_empty());
    let s = cache.stats();
    assert_eq!((s.loads, s.load_errors, s.inserts), (8, 8, 0), "{s:?}");
    // The load coordination is clean: a new load works.
    assert_eq!(
        cache
            .get_or_insert_with(7, || Tracked::new(&tracker, 99))
            .val,
        99
    );
    drop(cache);
    tracker.assert_all_dropped();
}

// ---------------------------------------------------------------------------------------
// 5. Versioned inserts racing on one key.
// ---------------------------------------------------------------------------------------

/// The orders in which the writers insert versions 1..=n: ascending, descending, and
/// alternating from both ends.
fn version_orders(n: u64) -> Vec<Vec<u64>> {
    let asc: Vec<u64> = (1..=n).collect();
    let desc: Vec<u64> = (1..=n).rev().collect();
    let mut zig = Vec::new();
    let (mut lo, mut hi) = (1, n);
    while lo <= hi {
        zig.push(lo);
        if lo != hi {
            zig.push(hi);
        }
        lo += 1;
        hi -= 1;
    }
    vec![asc, desc, zig]
}

#[test]
fn versioned_inserts_race_to_the_max() {
    guarded("versioned_inserts_race_to_the_max", HANG, || {
        const N: u64 = 3000;
        let replaced = Arc::new(Mutex::new(Vec::new()));
        let cache: Cache<u8, (u64, usize)> = {
            let r = Arc::clone(&replaced);
            Cache::builder(4)
                .eviction_listener(move |_: &u8, v: &(u64, usize), c| {
                    assert_eq!(c, RemovalCause::Replaced);
                    lock(&r).push(*v);
                })
                .build()
        };
        let wins: Vec<AtomicU32> = (0..=N).map(|_| AtomicU32::new(0)).collect();
        let orders = version_orders(N);
        let writers_left = AtomicUsize::new(orders.len());
        let stored = std::thread::scope(|s| {
            let handles: Vec<_> = orders
                .iter()
                .enumerate()
                .map(|(w, order)| {
                    let (cache, wins, writers_left) = (&cache, &wins, &writers_left);
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for &v in order {
                            if cache.insert_versioned(0, (v, w), v) {
                                wins[v as usize].fetch_add(1, Ordering::Relaxed);
                                mine.push((v, w));
                            }
                        }
                        writers_left.fetch_sub(1, Ordering::SeqCst);
                        mine
                    })
                })
                .collect();
            // A reader: with versioned inserts only, the stored version never goes down.
            let mut last = 0;
            let mut reads = 0u64;
            while writers_left.load(Ordering::SeqCst) > 0 || reads == 0 {
                if let Some((v, _)) = cache.get(&0) {
                    assert!(v >= last, "read version {v} after {last}");
                    last = v;
                }
                reads += 1;
            }
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(cache.get(&0).map(|(v, _)| v), Some(N));
        // Each version is stored at most once (the check and the store are one step), the max
        // exactly once.
        for (v, w) in wins.iter().enumerate() {
            assert!(w.load(Ordering::Relaxed) <= 1, "version {v} stored twice");
        }
        assert_eq!(wins[N as usize].load(Ordering::Relaxed), 1);
        // Every stored value but the last was replaced, once.
        let mut replaced = lock(&replaced).clone();
        replaced.push(cache.get(&0).unwrap());
        replaced.sort();
        let mut stored = stored;
        stored.sort();
        assert_eq!(replaced, stored);
        let s = cache.stats();
        assert_eq!(s.inserts, stored.len() as u64);
        assert_eq!(s.replaced, s.inserts - 1);
        assert_eq!(cache.len(), 1);
    });
}

#[test]
fn versioned_inserts_and_removes_race() {
    guarded("versioned_inserts_and_removes_race", HANG, || {
        const N: u64 = 3000;
        let log = Arc::new(Mutex::new(Vec::new()));
        let cache: Cache<u8, (u64, usize)> = {
            let l = Arc::clone(&log);
            Cache::builder(4)
                .eviction_listener(move |_: &u8, v: &(u64, usize), c| lock(&l).push((*v, c)))
                .build()
        };
        let orders = version_orders(N);
        let writers_left = AtomicUsize::new(orders.len());
        let (stored, removed) = std::thread::scope(|s| {
            let handles: Vec<_> = orders
                .iter()
                .enumerate()
                .map(|(w, order)| {
                    let (cache, writers_left) = (&cache, &writers_left);
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        for &v in order {
                            if cache.insert_versioned(0, (v, w), v) {
                                mine.push((v, w));
                            }
                        }
                        writers_left.fetch_sub(1, Ordering::SeqCst);
                        mine
                    })
                })
                .collect();
            // An invalidator: out-of-order removes of versions below N only, so they can never
            // remove version N once it is stored (and nothing can replace it).
            let mut rng = Rng::new(5);
            let mut removed = 0u64;
            while writers_left.load(Ordering::SeqCst) > 0 {
                let r = rng.below(N);
                if cache.remove_versioned(&0, r) {
                    removed += 1;
                }
                if let Some((v, _)) = cache.get(&0) {
                    assert!((1..=N).contains(&v));
                }
            }
            let stored = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect::<Vec<_>>();
            (stored, removed)
        });
        let last = cache.get(&0);
        assert_eq!(
            last.map(|(v, _)| v),
            Some(N),
            "the max version is not the one stored"
        );
        // Every stored value left exactly once (replaced or removed) except the one stored last.
        let log = lock(&log).clone();
        let mut gone: Vec<(u64, usize)> = log.iter().map(|(v, _)| *v).collect();
        gone.push(last.unwrap());
        gone.sort();
        let mut stored = stored;
        stored.sort();
        assert_eq!(gone, stored);
        let n_removed = log
            .iter()
            .filter(|(_, c)| *c == RemovalCause::Removed)
            .count() as u64;
        assert_eq!(n_removed, removed);
        assert!(log
            .iter()
            .all(|(_, c)| matches!(c, RemovalCause::Removed | RemovalCause::Replaced)));
        let s = cache.stats();
        assert_eq!(s.inserts, stored.len() as u64);
        assert_eq!(
            (s.removed, s.replaced + s.removed),
            (removed, s.inserts - 1)
        );
    });
}

// ---------------------------------------------------------------------------------------
// 6. warm_up.
// ---------------------------------------------------------------------------------------

/// Loads keys `0..1000` (each listed `copies` times) with concurrency 4; keys divisible by 7
/// fail. Checks the counts, the number of loader calls, that at most 4 loads ran at once, and
/// that the bound held during the run (keys are distinct within a load, so the per-insert
/// bound argument of `bound_run` applies: checked from inside the loaders).
fn warm_up_run(capacity: usize, copies: usize) {
    const KEYS: u64 = 1000;
    let failing = |k: u64| k % 7 == 0;
    let n_fail = (0..KEYS).filter(|&k| failing(k)).count();
    let cache: Cache<u64, u64> = Cache::new(capacity);
    let calls = Mutex::new(StdMap::<u64, usize>::new());
    let in_flight = AtomicUsize::new(0);
    let max_in_flight = AtomicUsize::new(0);
    let keys: Vec<u64> = (0..copies).flat_map(|_| 0..KEYS).collect();
    let r = cache.warm_up(keys, 4, |&k| {
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        max_in_flight.fetch_max(now, Ordering::SeqCst);
        *lock(&calls).entry(k).or_default() += 1;
        let n = cache.len();
        // With copies > 1 a key can be loaded twice (after eviction or a failure), so the
        // strict per-insert argument needs distinct keys: check it only then.
        if copies == 1 {
            assert!(
                n <= capacity,
                "len {n} > capacity {capacity} during warm_up"
            );
        }
        std::thread::yield_now();
        in_flight.fetch_sub(1, Ordering::SeqCst);
        if failing(k) {
            Err(format!("no row {k}"))
        } else {
            Ok(k * 3)
        }
    });
    assert_eq!(r.failed, copies * n_fail);
    assert_eq!(r.loaded, copies * (KEYS as usize - n_fail));
    let max = max_in_flight.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&max),
        "{max} loads at once with concurrency 4"
    );
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.len(), KEYS as usize, "every key was loaded");
    if capacity >= KEYS as usize {
        // Nothing is evicted: a key that loaded is never loaded again, a failing one is
        // loaded once per listing (each caller runs its own loader after an error).
        for (&k, &n) in &calls {
            let want = if failing(k) { copies } else { 1 };
            assert_eq!(n, want, "key {k} loaded {n} times");
        }
        assert_eq!(cache.len(), KEYS as usize - n_fail);
    } else {
        assert_eq!(quiescent_len(&cache), capacity);
    }
    for k in 0..KEYS {
        match cache.get(&k) {
            Some(v) => {
                assert!(!failing(k), "failing key {k} cached");
                assert_eq!(v, k * 3);
            }
            None => assert!(capacity < KEYS as usize || failing(k), "key {k} missing"),
        }
    }
    let s = cache.stats();
    let total_calls: usize = calls.values().sum();
    assert_eq!(s.loads, total_calls as u64);
    assert_eq!(s.load_errors, (copies * n_fail) as u64);
    assert_eq!(s.inserts, s.loads - s.load_errors);
    assert!(quiescent_len(&cache) <= capacity);
}

#[test]
fn warm_up_counts_and_failures() {
    guarded("warm_up_counts_and_failures", HANG, || {
        warm_up_run(2000, 1);
    });
}

#[test]
fn warm_up_smaller_cache_keeps_the_bound() {
    guarded("warm_up_smaller_cache_keeps_the_bound", HANG, || {
        warm_up_run(100, 1);
    });
}

#[test]
fn warm_up_with_each_key_listed_twice() {
    guarded("warm_up_with_each_key_listed_twice", HANG, || {
        warm_up_run(2000, 2);
        warm_up_run(50, 2);
    });
}

// ---------------------------------------------------------------------------------------
// 7. Loaders and listeners that use the cache.
// ---------------------------------------------------------------------------------------

/// `depth(k)` = 40 - k, computed recursively through the cache: the loader of key k asks
/// the cache for key k + 1 (an acyclic chain, so waits between threads cannot form a
/// cycle) and also reads, writes and removes unrelated keys. Four threads start at different
/// points of the chain at once; the cache is small, so entries are evicted and reloaded
/// during the recursion, and the listener (which also uses the cache) runs inside loaders.
#[test]
fn loaders_and_listeners_that_use_the_cache_do_not_deadlock() {
    const TOP: u64 = 40;
    fn depth(cache: &Cache<u64, u64>, k: u64, loads: &AtomicUsize) -> u64 {
        if k >= TOP {
            return 0;
        }
        cache.get_or_insert_with(k, || {
            loads.fetch_add(1, Ordering::Relaxed);
            // Unrelated traffic from inside the loader.
            cache.insert(1000 + k, k);
            let _ = cache.get(&(1000 + k / 2));
            let _ = cache.remove(&(1000 + k / 3));
            let _ = cache.contains_key(&(k + 2));
            let r: Result<u64, ()> = cache.get_or_try_insert_with(2000 + k % 5, || Ok(k % 5));
            assert_eq!(r, Ok(k % 5));
            1 + depth(cache, k + 1, loads)
        })
    }
    let out = guarded("recursive loaders", HANG, || {
        let listener_calls = Arc::new(AtomicUsize::new(0));
        let cache: Arc<Cache<u64, u64>> = Arc::new_cyclic(|weak: &std::sync::Weak<_>| {
            let (weak, calls) = (weak.clone(), Arc::clone(&listener_calls));
            Cache::builder(12)
                .eviction_listener(move |k: &u64, _: &u64, _| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = weak.upgrade() {
                        let c: Arc<Cache<u64, u64>> = c;
                        let _ = c.get(&(k + 1));
                        let _ = c.contains_key(k);
                    }
                })
                .build()
        });
        let loads = AtomicUsize::new(0);
        let barrier = Barrier::new(4);
        let results: Vec<Vec<(u64, u64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let (cache, loads, barrier) = (&cache, &loads, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        (0..30)
                            .map(|round| {
                                let k = (t * 7 + round * 3) % TOP;
                                (k, depth(cache, k, loads))
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(cache.len() <= 12);
        (results, listener_calls.load(Ordering::Relaxed))
    });
    let (results, listener_calls) = out;
    for (k, d) in results.into_iter().flatten() {
        assert_eq!(d, TOP - k, "depth({k})");
    }
    assert!(
        listener_calls > 0,
        "the small cache never evicted: the test lost its teeth"
    );
}

/// A caller that waits on another thread's load while that load itself waits on a load by a
/// third thread (a chain of waits across threads) is released in order.
#[test]
fn chained_loads_across_threads_release_in_order() {
    let cache: Cache<u64, u64> = Cache::new(16);
    let started = AtomicBool::new(false);
    let got = guarded("chained loads", HANG, move || {
        std::thread::scope(|s| {
            // Thread A loads key 1; its loader needs key 2, loaded by thread B (whose loader
            // waits until A's loader is running and then for C's key 3).
            let a = s.spawn(|| {
                cache.get_or_insert_with(1, || {
                    started.store(true, Ordering::SeqCst);
                    wait_until("key 2 to be loading", || cache.stats().loads >= 2);
                    1 + cache.get_or_insert_with(2, || unreachable!("B loads key 2"))
                })
            });
            let b = s.spawn(|| {
                wait_until("A to start", || started.load(Ordering::SeqCst));
                cache.get_or_insert_with(2, || 1 + cache.get_or_insert_with(3, || 40))
            });
            let waiter = s.spawn(|| {
                wait_until("A to start", || started.load(Ordering::SeqCst));
                cache.get_or_insert_with(1, || unreachable!("A loads key 1"))
            });
            (a.join().unwrap(), b.join().unwrap(), waiter.join().unwrap())
        })
    });
    assert_eq!(got, (42, 41, 42));
}

/// One writer (the only thread that moves the clock, so the clock does not move during its
/// inserts and each deadline is exactly "clock before the insert + ttl", carried in the
/// value) refreshes keys with short TTLs; concurrent readers must never get a value whose
/// deadline had passed when their read began. At the end, with the clock past every
/// deadline, nothing is returned and everything is reported expired exactly once.
#[test]
fn readers_never_see_expired_values() {
    guarded("readers_never_see_expired_values", HANG, || {
        const KEYS: u64 = 32;
        let clock = Arc::new(ManualClock::new());
        let expired = Arc::new(AtomicUsize::new(0));
        let cache: Cache<u64, (u64, u64)> = {
            let e = Arc::clone(&expired);
            Cache::builder(64)
                .clock(Arc::clone(&clock))
                .eviction_listener(move |_: &u64, _: &(u64, u64), c| {
                    if c == RemovalCause::Expired {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
        };
        let done = AtomicBool::new(false);
        let tick = Duration::from_micros(10);
        let nanos = |d: Duration| d.as_nanos() as u64;
        let returned = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..20_000u64 {
                    let ttl = tick * (1 + (i % 3) as u32);
                    let deadline = nanos(clock.now()) + nanos(ttl);
                    cache.insert_with_ttl(i % KEYS, (deadline, i), ttl);
                    if i % 8 == 0 {
                        clock.advance(tick);
                    }
                }
                done.store(true, Ordering::SeqCst);
            });
            for r in 0..2u64 {
                let (cache, clock, done, returned) = (&cache, &clock, &done, &returned);
                s.spawn(move || {
                    let mut rng = Rng::new(r);
                    while !done.load(Ordering::SeqCst) {
                        let k = rng.below(KEYS);
                        let began = nanos(clock.now());
                        if let Some((deadline, i)) = cache.get(&k) {
                            assert_eq!(i % KEYS, k);
                            assert!(
                            began < deadline,
                            "get({k}) began at {began} and returned a value expired at {deadline}"
                        );
                            returned.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        clock.advance(tick * 10);
        for k in 0..KEYS {
            assert_eq!(cache.get(&k), None);
        }
        assert!(cache.is_empty());
        let s = cache.stats();
        assert_eq!(s.evicted_expired, expired.load(Ordering::Relaxed) as u64);
        // Every insert's value left once: replaced (live or expired), expired, or evicted.
        // Evictions are possible although at most 32 keys live in a cache of 64: a `get` that
        // removes an expired entry leaves its position in the eviction queue without an entry,
        // and the next insert of that key takes another position; once every position has been
        // given out, the hand reuses such empty positions as it meets them, in queue order, and
        // may meet a live entry first (it then evicts it, as `Capacity`).
        assert_eq!(s.inserts, 20_000);
        assert_eq!(
            s.replaced + s.evicted_expired + s.evicted_capacity,
            20_000,
            "{s:?}"
        );
    });
}

// ---------------------------------------------------------------------------------------
// 8. The weight budget under concurrent inserts (the builder's `weigher`).
// ---------------------------------------------------------------------------------------

/// Threads insert overlapping keys with weights 0..=24 (and now and then one heavier than
/// the whole budget) into a cache with a weight budget, with some lookups and removes.
///
/// `weight()` is one atomic total that includes reservations in progress. An insert raises
/// it only by a compare-and-swap to at most `budget + credit`, where the credit is the
/// weight of the entry it is about to replace (at most 24 here); nothing else raises it. So
/// every read is at most `budget + 24` (and it is seen above `budget` now and then: a
/// replacement's reservation is counted before the replaced entry gives its weight back). At
/// quiescence it is exactly the sum of the entries' weights, within the budget, and every
/// insert call is accounted for. An entry heavier than the budget is refused without
/// evicting anything.
#[test]
fn weight_budget_holds_under_concurrent_inserts() {
    guarded("weight_budget_holds_under_concurrent_inserts", HANG, || {
        const BUDGET: u64 = 100;
        const MAX_W: u64 = 24;
        const CAP: usize = 32;
        const THREADS: u64 = 4;
        const OPS: usize = 4000;
        let heavy_reported = Arc::new(AtomicUsize::new(0));
        let cache: Cache<u64, (u32, u64)> = {
            let h = Arc::clone(&heavy_reported);
            Cache::builder(CAP)
                .weigher(BUDGET, |_: &u64, v: &(u32, u64)| v.0)
                .eviction_listener(move |_: &u64, v: &(u32, u64), c| {
                    if u64::from(v.0) > BUDGET {
                        assert_eq!(c, RemovalCause::Capacity);
                        h.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
        };
        let over = AtomicUsize::new(0);
        let per_thread: Vec<(u64, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (cache, over) = (&cache, &over);
                    s.spawn(move || {
                        let mut rng = Rng::new(900 + t);
                        let (mut calls, mut heavy) = (0, 0);
                        for i in 0..OPS as u64 {
                            let k = rng.below(3 * CAP as u64);
                            let w = if rng.below(50) == 0 {
                                heavy += 1;
                                BUDGET as u32 + 1
                            } else {
                                rng.below(MAX_W + 1) as u32
                            };
                            cache.insert(k, (w, (t << 32) | i));
                            calls += 1;
                            if cache.weight() > BUDGET + MAX_W {
                                over.fetch_add(1, Ordering::Relaxed);
                            }
                            if i % 4 == 0 {
                                let _ = cache.get(&rng.below(3 * CAP as u64));
                            }
                            if i % 16 == 0 {
                                let _ = cache.remove(&rng.below(3 * CAP as u64));
                            }
                        }
                        (calls, heavy)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            over.into_inner(),
            0,
            "weight() read above budget + max credit"
        );
        let (calls, heavy): (u64, u64) = per_thread
            .iter()
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        let mut sum = 0u64;
        let mut n = 0u64;
        cache.retain(|_, v| {
            assert!(u64::from(v.0) <= BUDGET, "an over-budget value was stored");
            sum += u64::from(v.0);
            n += 1;
            true
        });
        assert_eq!(
            cache.weight(),
            sum,
            "weight() vs the entries' weights at quiescence"
        );
        assert!(sum <= BUDGET);
        assert!(n as usize <= CAP);
        assert_eq!(cache.len() as u64, n);
        assert_eq!(heavy_reported.load(Ordering::Relaxed) as u64, heavy);
        let s = cache.stats();
        // Every insert call: stored (then here, replaced, evicted or removed) or not stored and
        // reported evicted (too heavy, or no room).
        assert_eq!(
            calls,
            n + s.replaced + s.evicted_capacity + s.removed,
            "{s:?}"
        );
        assert!(s.inserts <= calls - heavy);
        // A value heavier than the budget is refused and evicts nothing.
        let before = (cache.len(), cache.weight(), s.evicted_capacity);
        cache.insert(1_000_000, (BUDGET as u32 + 1, 0));
        let s = cache.stats();
        assert_eq!(
            (cache.len(), cache.weight(), s.evicted_capacity),
            (before.0, before.1, before.2 + 1),
            "the too-heavy insert changed the cache"
        );
        assert_eq!(cache.get(&1_000_000), None);
    });
}

// ---------------------------------------------------------------------------------------------
// Found by fuzzing (fuzz/fuzz_targets/cache_ops.rs).

/// A cache of capacity 0 stores nothing and sends every value to the listener as `Capacity`
/// (docs/cache.md), also with a weigher. Found by the cache_ops fuzz target: with a weigher
/// and capacity 0, an insert of a value that fits the budget panicked in
/// `Cache::reserve_weight` ("a weigher implies capacity > 0") before the fix.
#[test]
fn capacity_zero_with_a_weigher_stores_nothing() {
    let reported = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&reported);
    let cache = Cache::builder(0)
        .weigher(10, |_: &u64, v: &u32| *v)
        .eviction_listener(move |_: &u64, _: &u32, cause| {
            assert_eq!(cause, RemovalCause::Capacity);
            r.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    cache.insert(1, 0); // weight 0: no reservation needed
    cache.insert(2, 3); // fits the budget: reserve_weight looks for the ring
    assert_eq!(cache.get_or_insert_with(3, || 4), 4);
    assert!(cache.is_empty());
    assert_eq!(cache.weight(), 0);
    assert_eq!(reported.load(Ordering::Relaxed), 3);
}

// ---------------------------------------------------------------------------------------
// A removal during a load: the loaded value may predate the change the removal announces,
// so it is returned to its callers but not cached.

#[test]
fn a_remove_during_a_load_keeps_the_loaded_value_out() {
    let cache: Cache<u32, &str> = Cache::new(10);
    // The loader itself removes the key, as a writer on another thread would while the
    // source is read: the load is in flight (registered) when the removal lands.
    let got = cache.get_or_insert_with(1, || {
        assert_eq!(cache.remove(&1), None);
        "read before the write"
    });
    assert_eq!(
        got, "read before the write",
        "the caller still gets its value"
    );
    assert_eq!(cache.get(&1), None, "but the cache does not keep it");
    assert_eq!(cache.stats().loads_not_stored, 1);
    // A load that no removal crosses is stored as usual.
    assert_eq!(cache.get_or_insert_with(1, || "fresh"), "fresh");
    assert_eq!(cache.get(&1), Some("fresh"));
}

#[test]
fn remove_versioned_and_clear_during_a_load_keep_it_out_too() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let got = cache.get_or_insert_with(1, || {
        assert!(!cache.remove_versioned(&1, 7));
        10
    });
    assert_eq!((got, cache.get(&1)), (10, None));
    let got = cache.get_or_insert_with(2, || {
        cache.clear();
        20
    });
    assert_eq!((got, cache.get(&2)), (20, None));
    assert_eq!(cache.stats().loads_not_stored, 2);
    // A removal of another key leaves the load alone.
    let got = cache.get_or_insert_with(3, || {
        cache.remove(&4);
        30
    });
    assert_eq!((got, cache.get(&3)), (30, Some(30)));
}

#[test]
fn callers_after_a_remove_start_a_new_load_instead_of_joining_the_stale_one() {
    let cache: Arc<Cache<u32, &'static str>> = Arc::new(Cache::new(10));
    let loads = Arc::new(AtomicUsize::new(0));
    let (in_load, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let first = {
        let (cache, loads, in_load, release) = (
            Arc::clone(&cache),
            Arc::clone(&loads),
            Arc::clone(&in_load),
            Arc::clone(&release),
        );
        std::thread::spawn(move || {
            cache.get_or_insert_with(1, || {
                loads.fetch_add(1, Ordering::SeqCst);
                in_load.store(true, Ordering::SeqCst);
                wait_until("the release of the first load", || {
                    release.load(Ordering::SeqCst)
                });
                "old row"
            })
        })
    };
    wait_until("the first load to start", || in_load.load(Ordering::SeqCst));
    // The row changes; the writer invalidates while the first load is still reading.
    cache.remove(&1);
    // A caller that arrives now must not wait for (and get) the old row: it loads again,
    // while the first load is still blocked.
    let second = guarded(
        "a second load that does not join the stale one",
        Duration::from_secs(60),
        {
            let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
            move || {
                cache.get_or_insert_with(1, || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    "new row"
                })
            }
        },
    );
    assert_eq!(second, "new row");
    release.store(true, Ordering::SeqCst);
    assert_eq!(first.join().unwrap(), "old row");
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    assert_eq!(
        cache.get(&1),
        Some("new row"),
        "the old row never replaces the new one"
    );
}

#[test]
fn removes_racing_loads_never_leave_a_value_loaded_before_them() {
    // Each round: a loader reads "the source" (an epoch counter) inside its load; a writer
    // bumps the epoch and then removes the key. Whatever the interleaving, once both are
    // done the cache must not hold a value read before the last bump.
    let source = Arc::new(AtomicU64::new(0));
    for round in 0..2_000u64 {
        let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(4));
        let barrier = Arc::new(Barrier::new(2));
        let loader = {
            let (cache, source, barrier) = (
                Arc::clone(&cache),
                Arc::clone(&source),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                cache.get_or_insert_with(round, || {
                    let v = source.load(Ordering::SeqCst);
                    // Widen the window between reading the source and storing the value.
                    for _ in 0..round % 4 {
                        std::thread::yield_now();
                    }
                    v
                })
            })
        };
        barrier.wait();
        source.fetch_add(1, Ordering::SeqCst);
        cache.remove(&round);
        let now = source.load(Ordering::SeqCst);
        loader.join().unwrap();
        if let Some(v) = cache.get(&round) {
            assert_eq!(
                v, now,
                "round {round}: a value read before the remove stayed cached"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loaders that say how to store their value (`Loaded`): a version, a time-to-live.

#[test]
fn a_versioned_load_replaces_only_lower_versions_written_during_it() {
    use linemap::cache::Loaded;
    let cache: Cache<u32, &str> = Cache::new(10);
    // A write at version 2 lands during a load of version 5: the load is newer and wins.
    let got = cache.get_or_try_load(1, || {
        assert!(cache.insert_versioned(1, "write v2", 2));
        Ok::<_, ()>(Loaded::new("load v5").with_version(5))
    });
    assert_eq!(got, Ok("load v5"));
    assert_eq!(cache.get(&1), Some("load v5"));
    assert!(
        !cache.insert_versioned(1, "write v4", 4),
        "stored at version 5"
    );
    // A write at version 7 lands during a load of version 6: the write stays.
    let got = cache.get_or_try_load(2, || {
        assert!(cache.insert_versioned(2, "write v7", 7));
        Ok::<_, ()>(Loaded::new("load v6").with_version(6))
    });
    assert_eq!(got, Ok("load v6"));
    assert_eq!(cache.get(&2), Some("write v7"));
    assert_eq!(cache.stats().loads_not_stored, 1);
    // Unversioned, the same load never replaces the write, whatever its version.
    let got = cache.get_or_try_load(3, || {
        assert!(cache.insert_versioned(3, "write v1", 1));
        Ok::<_, ()>(Loaded::new("load"))
    });
    assert_eq!((got, cache.get(&3)), (Ok("load"), Some("write v1")));
    assert_eq!(cache.stats().loads_not_stored, 2);
}

#[test]
fn a_load_with_its_own_ttl_expires_on_time_and_others_keep_the_default() {
    use linemap::cache::Loaded;
    let clock = Arc::new(ManualClock::new());
    let cache: Cache<u32, u32> = Cache::builder(10)
        .time_to_live(Duration::from_secs(60))
        .clock(Arc::clone(&clock))
        .build();
    let short = cache.get_or_try_load(1, || {
        Ok::<_, ()>(Loaded::new(10).with_ttl(Duration::from_secs(5)))
    });
    let default = cache.get_or_try_load(2, || Ok::<_, ()>(Loaded::new(20)));
    assert_eq!((short, default), (Ok(10), Ok(20)));
    clock.advance(Duration::from_secs(4));
    assert_eq!((cache.get(&1), cache.get(&2)), (Some(10), Some(20)));
    clock.advance(Duration::from_secs(2));
    assert_eq!((cache.get(&1), cache.get(&2)), (None, Some(20)));
    clock.advance(Duration::from_secs(60));
    assert_eq!(cache.get(&2), None);
    // An error is still never cached.
    let err = cache.get_or_try_load(3, || Err::<Loaded<u32>, _>("down"));
    assert_eq!((err, cache.get(&3)), (Err("down"), None));
}

/// Found by the cache_ops fuzz target after S3-FIFO landed: with a weigher, an insert that had
/// to evict for weight popped the same position round after round (a free position, or its
/// own key's, put back into the small queue and picked again) while the entry to evict sat in
/// main, and gave up: its value was refused (`Capacity`) although evicting one entry would
/// have made room.
#[test]
fn weighed_inserts_that_must_evict_are_never_refused() {
    for keys in 1..8u64 {
        for pre in 0..4u64 {
            let cache: Cache<u64, u64> = Cache::builder(2)
                .weigher(19, |_, v| if *v >= 5000 { 3 } else { 10 })
                .build();
            for p in 0..pre {
                cache.insert(p % keys, 5000 + p);
                if p % 2 == 1 {
                    cache.get(&(p % keys));
                }
            }
            for i in 0..26 {
                let k = i % keys;
                let before = cache.stats().evicted_capacity;
                cache.insert(k, 1000 + i);
                let s = cache.stats();
                // The value just inserted must be the key's value now.
                assert_eq!(
                    cache.get(&k),
                    Some(1000 + i),
                    "keys {keys}, pre {pre}, insert {i}: refused ({} capacity evictions before, {} after)",
                    before,
                    s.evicted_capacity
                );
                assert!(cache.weight() <= 19);
            }
        }
    }
}

/// A waiter that joins a load after the loaded value's deadline passed (the loader was held
/// up between storing it and publishing it) must not return it: it expired before that
/// caller began. It looks again and loads. Found by the soak run (a `get_or_insert_with`
/// returned a value 4.6 ms past its deadline, with 8 threads on 2 cores).
#[test]
fn a_waiter_that_joins_after_the_loaded_value_expired_does_not_get_it() {
    use linemap::cache::Loaded;
    let clock = Arc::new(ManualClock::new());
    // The loader's thread stops in the listener (called after its store, for the expired
    // entry its value replaced) until the test releases it.
    let (in_listener, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let cache: Arc<Cache<u32, &'static str>> = {
        let (inl, rel) = (Arc::clone(&in_listener), Arc::clone(&release));
        Arc::new(
            Cache::builder(10)
                .clock(Arc::clone(&clock))
                .eviction_listener(move |_: &u32, v: &&str, c| {
                    if c == RemovalCause::Expired && *v == "old" {
                        inl.store(true, Ordering::SeqCst);
                        wait_until("the release of the loader", || rel.load(Ordering::SeqCst));
                    }
                })
                .build(),
        )
    };
    let loader = {
        let (cache, clock) = (Arc::clone(&cache), Arc::clone(&clock));
        std::thread::spawn(move || {
            cache.get_or_try_load(1, || {
                // While the load runs, a write stores "old", which then expires: the
                // loader's store replaces it and tells the listener.
                cache.insert_with_ttl(1, "old", Duration::from_secs(1));
                clock.advance(Duration::from_secs(2));
                Ok::<_, ()>(Loaded::new("loaded").with_ttl(Duration::from_secs(1)))
            })
        })
    };
    wait_until("the loader to store its value", || {
        in_listener.load(Ordering::SeqCst)
    });
    // "loaded" is stored with its deadline at 3 s; the load is still registered.
    clock.advance(Duration::from_secs(2)); // now 4 s: "loaded" expired
    let misses = cache.stats().misses;
    let waiter = {
        let cache = Arc::clone(&cache);
        std::thread::spawn(move || cache.get_or_insert_with(1, || "reloaded"))
    };
    wait_until("the waiter's miss", || cache.stats().misses > misses);
    // Time for the waiter to join the registered load (if it does not manage to, it loads
    // by itself and the check below holds all the same).
    std::thread::sleep(Duration::from_millis(100));
    release.store(true, Ordering::SeqCst);
    assert_eq!(loader.join().unwrap(), Ok("loaded"));
    assert_eq!(
        waiter.join().unwrap(),
        "reloaded",
        "a caller that began after the deadline got the expired value"
    );
}

/// A loader that asks for the key it is loading, on its own thread, would wait for itself:
/// the documented panic, and the cache stays usable (the load is abandoned, nothing cached).
#[test]
fn a_loader_that_asks_for_its_own_key_panics_clearly() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let r = catch_unwind(AssertUnwindSafe(|| {
        cache.get_or_insert_with(1, || cache.get_or_insert_with(1, || 2))
    }));
    let e = r.expect_err("a loader that waits for itself must panic");
    assert!(
        panic_message(&*e).contains("asked for the key it is loading"),
        "unexpected panic: {}",
        panic_message(&*e)
    );
    assert_eq!(cache.get(&1), None, "nothing was cached");
    assert_eq!(cache.get_or_insert_with(1, || 3), 3);
    // Other keys are fine from inside a loader.
    assert_eq!(
        cache.get_or_insert_with(2, || cache.get_or_insert_with(3, || 30) + 1),
        31
    );
}
