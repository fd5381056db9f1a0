//! Loom models of `linemap::Cache` (issue 3): CLOCK eviction, expiry, stampede-protected
//! loading, versioned writes and the eviction listener, each raced on a cache of capacity 1
//! or 2 with one to three keys. Helpers: `src/cache_support.rs`; what each model proves and
//! its cost: docs/verification.md.
//!
//! Every model asserts the set of linearizable outcomes: each thread's results, the final
//! contents and the listener's log must match some serial order of the operations. On top,
//! every model checks conservation (`check_end`: each value the cache took is in it at the
//! end or was told to the listener exactly once, never both), `len() <= capacity()`, and
//! (through `Val`'s `Tracked`) that every copy of every value is dropped exactly once.
//!
//! Each model runs its race in both thread assignments and fails unless every outcome its
//! serial orders allow was reached (`model_both_ways`): loom's DPOR can miss interleavings
//! where the main thread's operation must come first (see `cache_support`).
#![cfg(loom)]

use linemap::cache::{ManualClock, RemovalCause::*};
use linemap_loom_tests::cache_support::{
    check_end, model_both_ways, new_cache, new_weighed_cache, quiet_loader_panics, race, reached,
    Log, TestCache, Val, LOADER_PANIC,
};
use linemap_loom_tests::knobs;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The preemption bound of every cache model (the full bound of `.ci/loom`).
const BOUND: usize = 3;

/// Sorted, so that two logs compare as sets (the listener's order between threads is free).
fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A second handle on the cache, for the other thread.
fn share(cache: &Arc<TestCache>) -> Arc<TestCache> {
    Arc::clone(cache)
}

// ---------------------------------------------------------------------------------------
// 1. CLOCK eviction against get.

/// 1a. Capacity 1 holding `1 -> v10`: `insert(2, v20)` (must evict key 1) against `get(1)`.
///     The get sees v10 or nothing; key 1 is evicted exactly once, with `Capacity` (even if
///     the get marked it referenced: the hand clears the bit and comes round again); the
///     cache ends with key 2 only.
fn eviction_vs_get_1(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    cache.insert(1, Val::new(10));
    let (c1, c2) = (share(&cache), share(&cache));
    let ((), got) = race(
        swapped,
        move || c1.insert(2, Val::new(20)),
        move || c2.get(&1).map(|v| v.id),
    );
    match got {
        Some(10) => reached("get saw v10"),
        None => reached("get saw nothing"),
        _ => panic!("get(1) saw {got:?}"),
    }
    let events = check_end(&cache, &log, &[1, 2], &[(2, 20)], &[10, 20]);
    assert_eq!(events, vec![(1, 10, Capacity)]);
}

#[test]
fn clock_eviction_vs_get_capacity_1() {
    model_both_ways(
        BOUND,
        &["get saw v10", "get saw nothing"],
        eviction_vs_get_1,
    );
}

/// 1b. Capacity 2 holding keys 1 and 2 (the hand points at key 1): `insert(3, v30)` against
///     `get(1)`. Exactly one of keys 1 and 2 is evicted, once, with `Capacity`; `get(1)`
///     returns nothing only if key 1 was the one evicted; key 2 is evicted only if the get
///     referenced key 1 before the hand reached it, so the get then returned v10.
fn eviction_vs_get_2(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    cache.insert(1, Val::new(10));
    cache.insert(2, Val::new(20));
    let (c1, c2) = (share(&cache), share(&cache));
    let ((), got) = race(
        swapped,
        move || c1.insert(3, Val::new(30)),
        move || c2.get(&1).map(|v| v.id),
    );
    let events = log.events();
    match (got, events.as_slice()) {
        // The hand took key 1 (before or after the get read it).
        (None | Some(10), [(1, 10, Capacity)]) => {
            reached(if got.is_some() {
                "key 1 evicted, get saw v10"
            } else {
                "key 1 evicted, get saw nothing"
            });
            check_end(&cache, &log, &[1, 2, 3], &[(2, 20), (3, 30)], &[10, 20, 30]);
        }
        // The get referenced key 1 before the hand reached it: the hand took key 2.
        (Some(10), [(2, 20, Capacity)]) => {
            reached("key 2 evicted");
            check_end(&cache, &log, &[1, 2, 3], &[(1, 10), (3, 30)], &[10, 20, 30]);
        }
        outcome => panic!("eviction vs get not linearizable: (get(1), listener) = {outcome:?}"),
    }
}

#[test]
fn clock_eviction_vs_get_capacity_2() {
    model_both_ways(
        BOUND,
        &[
            "key 1 evicted, get saw v10",
            "key 1 evicted, get saw nothing",
            "key 2 evicted",
        ],
        eviction_vs_get_2,
    );
}

/// 1c. Capacity 1 holding `1 -> v10`: `insert(2, v20)` against `insert(3, v30)`, two new
///     keys competing for the one ring position. The bound holds: one of them ends in the
///     cache; key 1 and the other one are evicted, each told once.
fn two_new_keys(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    cache.insert(1, Val::new(10));
    let (c1, c2) = (share(&cache), share(&cache));
    race(
        swapped,
        move || c1.insert(2, Val::new(20)),
        move || c2.insert(3, Val::new(30)),
    );
    let (kept, evicted) = if cache.contains_key(&2) {
        reached("key 2 kept");
        ((2, 20), (3, 30, Capacity))
    } else {
        reached("key 3 kept");
        ((3, 30), (2, 20, Capacity))
    };
    let events = check_end(&cache, &log, &[1, 2, 3], &[kept], &[10, 20, 30]);
    assert_eq!(sorted(events), vec![(1, 10, Capacity), evicted]);
}

#[test]
fn clock_two_new_keys_capacity_1() {
    model_both_ways(BOUND, &["key 2 kept", "key 3 kept"], two_new_keys);
}

/// 1d. An empty cache of capacity 1: `insert(1, v10)` against `insert(2, v20)`, both
///     claiming the one free ring position. One claims it, the other evicts the first one's
///     entry: the cache ends with one key, the other told once as `Capacity`.
fn two_keys_empty(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    let (c1, c2) = (share(&cache), share(&cache));
    race(
        swapped,
        move || c1.insert(1, Val::new(10)),
        move || c2.insert(2, Val::new(20)),
    );
    let (kept, evicted) = if cache.contains_key(&1) {
        reached("key 1 kept");
        ((1, 10), (2, 20, Capacity))
    } else {
        reached("key 2 kept");
        ((2, 20), (1, 10, Capacity))
    };
    let events = check_end(&cache, &log, &[1, 2], &[kept], &[10, 20]);
    assert_eq!(events, vec![evicted]);
}

#[test]
fn clock_two_keys_empty_capacity_1() {
    model_both_ways(BOUND, &["key 1 kept", "key 2 kept"], two_keys_empty);
}

// ---------------------------------------------------------------------------------------
// 2. Expiry against insert.
//
// The ManualClock's counter is a std atomic (loom does not see it): each execution makes
// its own clock and moves it only before the threads start, so every thread reads the same
// time.

/// A capacity-1 cache whose key 1 holds v10 with a deadline that has passed.
fn expired_cache() -> (Arc<TestCache>, Log) {
    let clock = Arc::new(ManualClock::new());
    let (cache, log) = new_cache(1, Some(Arc::clone(&clock)));
    cache.insert_with_ttl(1, Val::new(10), Duration::from_secs(1));
    clock.advance(Duration::from_secs(2));
    (cache, log)
}

/// 2a. Key 1 expired: `get(1)` (which removes the expired entry it finds) against
///     `insert(1, v11)`. The get returns nothing or the fresh v11, never the expired v10;
///     v10 is told to the listener exactly once, as `Expired` (by the get's removal or by
///     the insert's replacement); v11 is never lost, never told, and stays.
fn expired_get_vs_insert_body(swapped: bool) {
    let (cache, log) = expired_cache();
    let (c1, c2) = (share(&cache), share(&cache));
    let ((), got) = race(
        swapped,
        move || c1.insert(1, Val::new(11)),
        move || c2.get(&1).map(|v| v.id),
    );
    match got {
        Some(11) => reached("get saw v11"),
        None => reached("get saw nothing"),
        _ => panic!("get(1) saw {got:?}"),
    }
    let events = check_end(&cache, &log, &[1], &[(1, 11)], &[10, 11]);
    assert_eq!(events, vec![(1, 10, Expired)]);
}

#[test]
fn expired_get_vs_insert() {
    model_both_ways(
        BOUND,
        &["get saw nothing", "get saw v11"],
        expired_get_vs_insert_body,
    );
}

/// 2b. Key 1 expired: `purge_expired()` against `insert(1, v11)`. The purge removes at most
///     the expired entry, never the fresh one; v10 is told exactly once, as `Expired`; v11
///     stays.
fn expired_purge_vs_insert_body(swapped: bool) {
    let (cache, log) = expired_cache();
    let (c1, c2) = (share(&cache), share(&cache));
    let ((), purged) = race(
        swapped,
        move || c1.insert(1, Val::new(11)),
        move || c2.purge_expired(),
    );
    match purged {
        0 => reached("purged 0"),
        1 => reached("purged 1"),
        _ => panic!("purged {purged} entries"),
    }
    let events = check_end(&cache, &log, &[1], &[(1, 11)], &[10, 11]);
    assert_eq!(events, vec![(1, 10, Expired)]);
}

#[test]
fn expired_purge_vs_insert() {
    model_both_ways(
        BOUND,
        &["purged 0", "purged 1"],
        expired_purge_vs_insert_body,
    );
}

/// The outcomes of 2c: which thread removed the expired entry (the listener runs on it).
const EXPIRED_HAND: [&str; 2] = ["the hand removed v10", "the get removed v10"];

/// 2c. Capacity 1, key 1 expired: `insert(2, v20)` (a new key: the hand finds the expired
///     entry and removes it as `Expired`) against `get(1)` (which removes it too, if it gets
///     there first). The get returns nothing; v10 is told exactly once, as `Expired`, never
///     as `Capacity`; key 2 stays. Both removers are reached (the listener runs on the
///     thread that removed the entry).
fn expired_hand_vs_get_body(swapped: bool) {
    let (cache, log) = expired_cache();
    let (c1, c2) = (share(&cache), share(&cache));
    let (inserter, (got, getter)) = race(
        swapped,
        move || {
            c1.insert(2, Val::new(20));
            loom::thread::current().id()
        },
        move || (c2.get(&1).map(|v| v.id), loom::thread::current().id()),
    );
    assert_eq!(got, None, "get(1) returned an expired value");
    let events = check_end(&cache, &log, &[1, 2], &[(2, 20)], &[10, 20]);
    assert_eq!(events, vec![(1, 10, Expired)]);
    let by = log.threads()[0];
    reached(if by == inserter {
        EXPIRED_HAND[0]
    } else {
        assert_eq!(by, getter, "the listener ran on neither racing thread");
        EXPIRED_HAND[1]
    });
}

#[test]
fn expired_hand_vs_get() {
    model_both_ways(BOUND, &EXPIRED_HAND, expired_hand_vs_get_body);
}

// ---------------------------------------------------------------------------------------
// 3–4. Stampede-protected loading.

/// Races `get_or_insert_with(keys[0], || vals[0])` against `get_or_insert_with(keys[1], ||
/// vals[1])`; returns the ids the two callers got and how often each loader ran.
fn race_two_loads(
    swapped: bool,
    cache: &Arc<TestCache>,
    keys: [u64; 2],
    vals: [u64; 2],
) -> ((u64, u64), [usize; 2]) {
    let runs = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let load = |i: usize| {
        let (c, r) = (share(cache), Arc::clone(&runs));
        move || {
            c.get_or_insert_with(keys[i], || {
                r[i].fetch_add(1, Relaxed);
                Val::new(vals[i])
            })
            .id
        }
    };
    let got = race(swapped, load(0), load(1));
    (got, [runs[0].load(Relaxed), runs[1].load(Relaxed)])
}

/// 3. Two `get_or_insert_with(1, ..)` on a miss, loading v100 and v200: exactly one loader
///    runs, both callers get its value, and the cache holds it.
fn two_loads(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    let sleeps = knobs::sleeps();
    let ((a, b), runs) = race_two_loads(swapped, &cache, [1, 1], [100, 200]);
    let v = match runs {
        [1, 0] => 100,
        [0, 1] => 200,
        runs => panic!("loaders ran {runs:?} times: exactly one must run"),
    };
    reached(if v == 100 {
        "v100 loaded"
    } else {
        "v200 loaded"
    });
    assert_eq!((a, b), (v, v), "both callers get the one loaded value");
    if knobs::sleeps() > sleeps {
        reached(SLEPT);
    }
    check_end(&cache, &log, &[1], &[(1, v)], &[v]);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (1, 0));
}

/// The outcome of the loading models in which a waiter blocked on the load's condition
/// variable (its wake-up then depends on the `sleepers` flag: loom reports a deadlock if
/// `publish` skips a notification a sleeper needs).
const SLEPT: &str = "a waiter slept on the condition variable";

#[test]
fn two_loads_one_key() {
    model_both_ways(BOUND, &["v100 loaded", "v200 loaded", SLEPT], two_loads);
}

/// The outcomes of the hand-over models (4a, 4b).
const HAND_OVER: [&str; 3] = [
    "the failing loader ran, then the good one",
    "the failing caller got the good value",
    "the good caller waited on the failing load, was released and loaded",
];

/// Labels the hand-over itself: the good caller missed, waited on the failing caller's
/// load, was released, missed again and loaded. That is the only way to three misses (the
/// failing caller misses once; the good one misses once unless it is released).
fn released(misses: u64) {
    if misses == 3 {
        reached(HAND_OVER[2]);
    }
}

/// 4a. Error hand-over: one caller's loader fails, the other's loads v200. If the failing
///     one runs, only its caller sees the error, nothing is cached, and a caller waiting on
///     it is released and loads itself; if the good one runs first, the failing caller gets
///     v200 without running its loader. Either way the good loader runs exactly once and
///     its value is cached.
fn load_error(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    let (failed, loaded) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c1, c2) = (share(&cache), share(&cache));
    let (f1, l2) = (Arc::clone(&failed), Arc::clone(&loaded));
    let (bad, good) = race(
        swapped,
        move || {
            c1.get_or_try_insert_with(1, || {
                f1.fetch_add(1, Relaxed);
                Err("down")
            })
            .map(|v| v.id)
        },
        move || {
            c2.get_or_try_insert_with(1, || {
                l2.fetch_add(1, Relaxed);
                Ok::<_, &str>(Val::new(200))
            })
            .map(|v| v.id)
        },
    );
    assert_eq!(good, Ok(200));
    assert_eq!(
        loaded.load(Relaxed),
        1,
        "the good loader must run exactly once"
    );
    let failed = failed.load(Relaxed);
    match (bad, failed) {
        (Err("down"), 1) => reached(HAND_OVER[0]),
        (Ok(200), 0) => reached(HAND_OVER[1]),
        outcome => panic!("(failing caller's result, its loader's runs) = {outcome:?}"),
    }
    check_end(&cache, &log, &[1], &[(1, 200)], &[200]);
    let stats = cache.stats();
    let failed = failed as u64;
    assert_eq!((stats.loads, stats.load_errors), (1 + failed, failed));
    released(stats.misses);
}

#[test]
fn load_error_hands_over() {
    model_both_ways(BOUND, &HAND_OVER, load_error);
}

/// 4b. Panic hand-over: as 4a, but the failing loader panics (caught on its thread around
///     `get_or_insert_with`). The unwind drops the loader's duty, which releases a waiting
///     caller; that caller loads itself.
fn load_panic(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    let (panicked, loaded) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c1, c2) = (share(&cache), share(&cache));
    let (p1, l2) = (Arc::clone(&panicked), Arc::clone(&loaded));
    let (bad, good) = race(
        swapped,
        move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c1.get_or_insert_with(1, || {
                    p1.fetch_add(1, Relaxed);
                    std::panic::panic_any(LOADER_PANIC)
                })
                .id
            }))
            .map_err(|p| p.downcast_ref::<&str>().copied())
        },
        move || {
            c2.get_or_insert_with(1, || {
                l2.fetch_add(1, Relaxed);
                Val::new(200)
            })
            .id
        },
    );
    assert_eq!(good, 200);
    assert_eq!(
        loaded.load(Relaxed),
        1,
        "the good loader must run exactly once"
    );
    let panicked = panicked.load(Relaxed);
    match (bad, panicked) {
        (Err(Some(LOADER_PANIC)), 1) => reached(HAND_OVER[0]),
        (Ok(200), 0) => reached(HAND_OVER[1]),
        outcome => panic!("(panicking caller's result, its loader's runs) = {outcome:?}"),
    }
    check_end(&cache, &log, &[1], &[(1, 200)], &[200]);
    let stats = cache.stats();
    let panicked = panicked as u64;
    assert_eq!((stats.loads, stats.load_errors), (1 + panicked, panicked));
    released(stats.misses);
}

#[test]
fn load_panic_hands_over() {
    quiet_loader_panics();
    model_both_ways(BOUND, &HAND_OVER, load_panic);
}

// ---------------------------------------------------------------------------------------
// 5. Versioned writes.

/// 5a. `insert_versioned(1, v1, 1)` against `insert_versioned(1, v2, 2)` on an absent key
///     of a capacity-1 cache (both take the add path through the CLOCK ring). The higher
///     version wins in every interleaving: v2 is stored and stays; v1 is stored only if it
///     came first, and then it is told to the listener once, as `Replaced`.
fn versioned_inserts_body(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    let (c1, c2) = (share(&cache), share(&cache));
    let (r1, r2) = race(
        swapped,
        move || c1.insert_versioned(1, Val::new(1), 1),
        move || c2.insert_versioned(1, Val::new(2), 2),
    );
    assert!(
        r2,
        "version 2 was refused (listener heard {:?})",
        log.events()
    );
    reached(if r1 { "v1 stored first" } else { "v1 refused" });
    let accepted: &[u64] = if r1 { &[1, 2] } else { &[2] };
    let events = check_end(&cache, &log, &[1], &[(1, 2)], accepted);
    let expected = if r1 { vec![(1, 1, Replaced)] } else { vec![] };
    assert_eq!(
        events,
        expected,
        "v1 {} stored: the listener must hear {expected:?}",
        if r1 { "was" } else { "was not" }
    );
}

#[test]
fn versioned_inserts() {
    model_both_ways(
        BOUND,
        &["v1 stored first", "v1 refused"],
        versioned_inserts_body,
    );
}

/// 5b. Key 1 holds v1 (version 1): `insert_versioned(1, v2, 2)` against
///     `remove_versioned(1, 2)`. Both succeed in either order: insert then remove leaves
///     the key absent (v1 `Replaced`, v2 `Removed`); remove then insert leaves v2 (v1
///     `Removed`).
fn versioned_insert_vs_remove_body(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    assert!(cache.insert_versioned(1, Val::new(1), 1));
    let (c1, c2) = (share(&cache), share(&cache));
    let (inserted, removed) = race(
        swapped,
        move || c1.insert_versioned(1, Val::new(2), 2),
        move || c2.remove_versioned(&1, 2),
    );
    assert_eq!((inserted, removed), (true, true));
    if cache.contains_key(&1) {
        reached("remove first");
        let events = check_end(&cache, &log, &[1], &[(1, 2)], &[1, 2]);
        assert_eq!(events, vec![(1, 1, Removed)]);
    } else {
        reached("insert first");
        let events = check_end(&cache, &log, &[1], &[], &[1, 2]);
        assert_eq!(sorted(events), vec![(1, 1, Replaced), (1, 2, Removed)]);
    }
}

#[test]
fn versioned_insert_vs_remove() {
    model_both_ways(
        BOUND,
        &["remove first", "insert first"],
        versioned_insert_vs_remove_body,
    );
}

/// 5c. Key 1 holds v1 (version 1): `insert_versioned(1, v2, 2)` against a late invalidation
///     `remove_versioned(1, 1)`. v2 always stays; the remove succeeds only if it came first
///     (v1 `Removed`); otherwise v1 is `Replaced` and the remove refuses v2.
fn versioned_insert_vs_stale_remove_body(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    assert!(cache.insert_versioned(1, Val::new(1), 1));
    let (c1, c2) = (share(&cache), share(&cache));
    let (inserted, removed) = race(
        swapped,
        move || c1.insert_versioned(1, Val::new(2), 2),
        move || c2.remove_versioned(&1, 1),
    );
    assert!(inserted, "version 2 was refused");
    reached(if removed {
        "remove first"
    } else {
        "insert first"
    });
    let events = check_end(&cache, &log, &[1], &[(1, 2)], &[1, 2]);
    let cause = if removed { Removed } else { Replaced };
    assert_eq!(events, vec![(1, 1, cause)]);
}

#[test]
fn versioned_insert_vs_stale_remove() {
    model_both_ways(
        BOUND,
        &["remove first", "insert first"],
        versioned_insert_vs_stale_remove_body,
    );
}

// ---------------------------------------------------------------------------------------
// 6. The listener hears of each departure exactly once.

/// 6a. Capacity 1 holding `1 -> v10`: `insert(2, v20)` (evicts key 1) against `remove(1)`.
///     v10 leaves once: `remove` returns it and the listener hears `Removed`, or `remove`
///     finds nothing and the listener hears `Capacity`.
fn remove_vs_eviction_body(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    cache.insert(1, Val::new(10));
    let (c1, c2) = (share(&cache), share(&cache));
    let ((), removed) = race(
        swapped,
        move || c1.insert(2, Val::new(20)),
        move || c2.remove(&1).map(|v| v.id),
    );
    let events = check_end(&cache, &log, &[1, 2], &[(2, 20)], &[10, 20]);
    let cause = match removed {
        Some(10) => {
            reached("removed by remove");
            Removed
        }
        None => {
            reached("evicted");
            Capacity
        }
        other => panic!("remove(1) returned {other:?}"),
    };
    assert_eq!(events, vec![(1, 10, cause)]);
}

#[test]
fn remove_vs_eviction() {
    model_both_ways(
        BOUND,
        &["removed by remove", "evicted"],
        remove_vs_eviction_body,
    );
}

/// 6b. Capacity 1 holding `1 -> v10`: `insert(2, v20)` (a new key: evicts) against
///     `insert(1, v11)` (a replace, or an add if key 1 is gone). Serial orders: the replace
///     first (v10 `Replaced`, then the hand evicts v11 although the replace referenced it:
///     it clears the bit and comes round), or the new key first (v10 evicted, then key 1 is
///     new and evicts key 2).
fn replace_vs_eviction_body(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    cache.insert(1, Val::new(10));
    let (c1, c2) = (share(&cache), share(&cache));
    race(
        swapped,
        move || c1.insert(2, Val::new(20)),
        move || c2.insert(1, Val::new(11)),
    );
    if cache.contains_key(&2) {
        reached("replace first");
        let events = check_end(&cache, &log, &[1, 2], &[(2, 20)], &[10, 11, 20]);
        assert_eq!(sorted(events), vec![(1, 10, Replaced), (1, 11, Capacity)]);
    } else {
        reached("new key first");
        let events = check_end(&cache, &log, &[1, 2], &[(1, 11)], &[10, 11, 20]);
        assert_eq!(sorted(events), vec![(1, 10, Capacity), (2, 20, Capacity)]);
    }
}

#[test]
fn replace_vs_eviction() {
    model_both_ways(
        BOUND,
        &["replace first", "new key first"],
        replace_vs_eviction_body,
    );
}

/// 6c. Capacity 2 holding `2 -> v20`, one position free: `insert(1, v11)` against
///     `insert(1, v12)`, both adding the same new key. In every serial order the first add
///     takes the free position and the second replaces it: key 2 stays, the first value is
///     told once as `Replaced`, and the cache ends with keys 1 and 2. One more outcome is
///     allowed, documented in docs/cache.md ("Concurrent inserts of one new key"): both saw
///     the key absent, so both made room for it, and the second then replaced the first;
///     key 2 was evicted (`Capacity`, exactly once) although the cache ends half full.
///     Everything else is as strict: one value of key 1 survives, each value is told once.
fn same_new_key_body(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    cache.insert(2, Val::new(20));
    let (c1, c2) = (share(&cache), share(&cache));
    race(
        swapped,
        move || c1.insert(1, Val::new(11)),
        move || c2.insert(1, Val::new(12)),
    );
    let (last, first) = match cache.get(&1).map(|v| v.id) {
        Some(12) => (12, 11),
        Some(11) => (11, 12),
        other => panic!("key 1 holds {other:?} (listener heard {:?})", log.events()),
    };
    reached(if last == 12 {
        "v11 then v12"
    } else {
        "v12 then v11"
    });
    if cache.contains_key(&2) {
        let events = check_end(&cache, &log, &[1, 2], &[(1, last), (2, 20)], &[11, 12, 20]);
        assert_eq!(events, vec![(1, first, Replaced)]);
    } else {
        let mut events = check_end(&cache, &log, &[1], &[(1, last)], &[11, 12, 20]);
        events.sort();
        let mut want = vec![(1, first, Replaced), (2, 20, Capacity)];
        want.sort();
        assert_eq!(events, want);
    }
}

#[test]
fn same_new_key_twice() {
    model_both_ways(BOUND, &["v11 then v12", "v12 then v11"], same_new_key_body);
}

// ---------------------------------------------------------------------------------------
// 7. Loading against writes, and the weight budget.

/// 7a. Key 1 absent: `get_or_insert_with(1, || v100)` against `insert(1, v200)`. The insert
///     is a newer value than anything the loader read, so it is never overwritten: the cache
///     ends with v200 in every interleaving. Serial orders: the insert first (the caller
///     hits v200, no load runs), or the load first (the caller gets v100, which the insert
///     then replaces: v100 told once as `Replaced`). One more outcome is allowed, documented
///     on `get_or_insert_with`: the insert lands while the load runs, the loader does not
///     store over it, and its caller gets v100, which never entered the cache.
fn load_vs_insert_body(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    let runs = Arc::new(AtomicUsize::new(0));
    let (c1, c2, r) = (share(&cache), share(&cache), Arc::clone(&runs));
    let (got, ()) = race(
        swapped,
        move || {
            c1.get_or_insert_with(1, || {
                r.fetch_add(1, Relaxed);
                Val::new(100)
            })
            .id
        },
        move || c2.insert(1, Val::new(200)),
    );
    let ran = runs.load(Relaxed);
    match (got, ran) {
        (200, 0) => {
            reached("insert first: the caller hit v200");
            let events = check_end(&cache, &log, &[1], &[(1, 200)], &[200]);
            assert!(events.is_empty(), "{events:?}");
        }
        (100, 1) => {
            if log.of(100).is_empty() {
                reached("insert during the load: v100 not stored");
                let events = check_end(&cache, &log, &[1], &[(1, 200)], &[200]);
                assert!(events.is_empty(), "{events:?}");
            } else {
                reached("load first: v100 stored, then replaced");
                let events = check_end(&cache, &log, &[1], &[(1, 200)], &[100, 200]);
                assert_eq!(events, vec![(1, 100, Replaced)]);
            }
        }
        other => panic!("caller got v{} after {} loads", other.0, other.1),
    }
}

#[test]
fn load_vs_insert() {
    model_both_ways(
        BOUND,
        &[
            "insert first: the caller hit v200",
            "insert during the load: v100 not stored",
            "load first: v100 stored, then replaced",
        ],
        load_vs_insert_body,
    );
}

/// 7b. Key 1 absent: `get_or_insert_with(1, || v100)` against `remove(1)`. The load always
///     runs (nothing else stores key 1) and its caller gets v100. Linearizable outcomes:
///     * the remove first (it finds nothing, and no load is registered yet): v100 is loaded
///       and stays;
///     * the load first (stored before the remove's probe): the remove takes v100 out, told
///       once as `Removed`, and returns it;
///     * the remove during the load (registered, not yet stored): the remove takes the load's
///       placeholder out (nobody is told), so the loader, storing only over its own
///       placeholder, does not store v100. (Before loads were placeholders in the cache's
///       table, the remove marked the load stale in a separate table, and a loader that had
///       already stored took its entry back out, told as `Removed`: "taken back". The remove
///       and the store now CAS the same slot, so that outcome cannot happen, and this model
///       checks that it does not.)
fn load_vs_remove_body(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    let (c1, c2) = (share(&cache), share(&cache));
    let (got, removed) = race(
        swapped,
        move || c1.get_or_insert_with(1, || Val::new(100)).id,
        move || c2.remove(&1).map(|v| v.id),
    );
    assert_eq!(got, 100);
    let stale = cache.stats().loads_not_stored;
    match (removed, stale) {
        (None, 0) => {
            reached("remove first");
            let events = check_end(&cache, &log, &[1], &[(1, 100)], &[100]);
            assert!(events.is_empty(), "{events:?}");
        }
        (None, 1) => {
            // Never stored, so never told.
            let events = check_end(&cache, &log, &[1], &[], &[]);
            assert!(events.is_empty(), "{events:?}");
            reached("remove during the load: not stored");
        }
        (Some(100), 0) => {
            reached("load first");
            let events = check_end(&cache, &log, &[1], &[], &[100]);
            assert_eq!(events, vec![(1, 100, Removed)]);
        }
        other => panic!("remove returned / loads not stored: {other:?}"),
    }
}

#[test]
fn load_vs_remove() {
    model_both_ways(
        BOUND,
        &[
            "remove first",
            "load first",
            "remove during the load: not stored",
        ],
        load_vs_remove_body,
    );
}

/// 7d. As 7b, but the remove starts only once the loader runs (it waits for a flag the
///     loader raises): the remove announces a change that the load may have missed, so v100
///     must not stay unless the load stored it before the remove's probe (then the remove
///     takes it out). Linearizable outcomes: "load first" (the remove returns v100), or the
///     load is kept out: the remove took its placeholder, and the loader, storing only over
///     its own placeholder, does not store. ("Stored and taken back by the loader", an
///     outcome of the earlier design with a separate table of loads and a store-buffering
///     pair of fences, cannot happen any more: see 7b.) If the store did not check that its
///     placeholder is still there, loom would find v100 left after the remove returned `None`.
fn remove_during_load_body(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    let (c1, c2) = (share(&cache), share(&cache));
    let loading = Arc::new(loom::sync::atomic::AtomicBool::new(false));
    let (l1, l2) = (Arc::clone(&loading), Arc::clone(&loading));
    let (got, removed) = race(
        swapped,
        move || {
            c1.get_or_insert_with(1, || {
                l1.store(true, loom::sync::atomic::Ordering::Release);
                Val::new(100)
            })
            .id
        },
        move || {
            while !l2.load(loom::sync::atomic::Ordering::Acquire) {
                loom::thread::yield_now();
            }
            c2.remove(&1).map(|v| v.id)
        },
    );
    assert_eq!(got, 100);
    match removed {
        Some(100) => {
            reached("load first");
            let events = check_end(&cache, &log, &[1], &[], &[100]);
            assert_eq!(events, vec![(1, 100, Removed)]);
        }
        None => {
            let events = check_end(&cache, &log, &[1], &[], &[]);
            assert_eq!(cache.stats().loads_not_stored, 1);
            assert!(events.is_empty(), "{events:?}");
            reached("not stored");
        }
        Some(other) => panic!("remove returned v{other}"),
    }
}

#[test]
fn remove_during_load() {
    model_both_ways(
        BOUND,
        &["load first", "not stored"],
        remove_during_load_body,
    );
}

/// 7e. An empty cache of capacity 1: `get_or_insert_with(1, || v100)` against
///     `get_or_insert_with(2, || v200)`, two loads of different keys competing for the one
///     ring position. A placeholder holds no position (it is never evicted), so both loads
///     run, each caller gets its own value, and each loader stores over its own placeholder:
///     the cache ends with one of the two keys and the other's value is told once as
///     `Capacity` (evicted by the second store, or refused by it for want of a free position
///     while the first store held it: the same end either way). No placeholder is left
///     behind, and nothing is dropped twice.
fn two_loads_two_keys_body(swapped: bool) {
    let (cache, log) = new_cache(1, None);
    let ((a, b), runs) = race_two_loads(swapped, &cache, [1, 2], [100, 200]);
    assert_eq!((a, b), (100, 200), "each caller gets its own key's value");
    assert_eq!(runs, [1, 1], "each key is loaded once");
    let (kept, told) = if cache.contains_key(&1) {
        reached("key 1 kept");
        ((1, 100), (2, 200, Capacity))
    } else {
        reached("key 2 kept");
        ((2, 200), (1, 100, Capacity))
    };
    let events = check_end(&cache, &log, &[1, 2], &[kept], &[100, 200]);
    assert_eq!(events, vec![told]);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (2, 0));
}

#[test]
fn two_loads_two_keys_capacity_1() {
    model_both_ways(
        BOUND,
        &["key 1 kept", "key 2 kept"],
        two_loads_two_keys_body,
    );
}

/// 7c. An empty cache of capacity 2 with a weight budget of 10: `insert(1, v16)` against
///     `insert(2, v26)`, each weighing 6, so only one fits. Serial orders: either first, and
///     the second evicts it to make room (told once as `Capacity`). The budget holds in every
///     interleaving: the cache ends with one key and `weight()` 6.
fn weighed_inserts_body(swapped: bool) {
    let (cache, log) = new_weighed_cache(2, 10);
    let (c1, c2) = (share(&cache), share(&cache));
    race(
        swapped,
        move || c1.insert(1, Val::new(16)),
        move || c2.insert(2, Val::new(26)),
    );
    assert_eq!(
        cache.weight(),
        6,
        "the budget of 10 holds one value of weight 6"
    );
    if cache.contains_key(&2) {
        reached("v16 then v26");
        let events = check_end(&cache, &log, &[1, 2], &[(2, 26)], &[16, 26]);
        assert_eq!(events, vec![(1, 16, Capacity)]);
    } else {
        reached("v26 then v16");
        let events = check_end(&cache, &log, &[1, 2], &[(1, 16)], &[16, 26]);
        assert_eq!(events, vec![(2, 26, Capacity)]);
    }
}

/// At the full bound since S3-FIFO (2,508 executions, under a second): the CLOCK ring's hand
/// spun over positions the other thread owned, and bound 3 did not finish in 10 minutes;
/// the queues' hand finds them empty instead and waits with one yield per round.
#[test]
fn weighed_inserts() {
    model_both_ways(
        BOUND,
        &["v16 then v26", "v26 then v16"],
        weighed_inserts_body,
    );
}

// ---------------------------------------------------------------------------------------
// 8. S3-FIFO: promotion from small to main, and readmission through the ghost.

/// 8a. Capacity 2 holding keys 1 and 2 in the small queue, key 1 used once (`get(1)` before
///     the race): `insert(3, v30)` against `get(1)`. The hand pops key 1 first, finds it used
///     and promotes it to main (resetting its counter, which the racing get may or may not
///     have bumped first), then pops key 2 and evicts it. In both serial orders: the get sees
///     v10, key 2 is evicted exactly once (`Capacity`), the cache ends {1, 3}. A sequential
///     `insert(4)` afterwards pops small (key 3, unused) and evicts it: key 1 was really
///     moved to main, not left in small with its counter cleared.
fn promotion_vs_get_body(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    cache.insert(1, Val::new(10));
    cache.insert(2, Val::new(20));
    assert_eq!(cache.get(&1).map(|v| v.id), Some(10));
    let (c1, c2) = (share(&cache), share(&cache));
    let ((), got) = race(
        swapped,
        move || c1.insert(3, Val::new(30)),
        move || c2.get(&1).map(|v| v.id),
    );
    assert_eq!(
        got,
        Some(10),
        "key 1 was used: it must be promoted, not evicted"
    );
    reached("promoted");
    assert_eq!(log.events(), vec![(2, 20, Capacity)]);
    cache.insert(4, Val::new(40));
    let events = check_end(
        &cache,
        &log,
        &[1, 2, 3, 4],
        &[(1, 10), (4, 40)],
        &[10, 20, 30, 40],
    );
    assert_eq!(events, vec![(2, 20, Capacity), (3, 30, Capacity)]);
}

#[test]
fn s3_promotion_vs_get() {
    model_both_ways(BOUND, &["promoted"], promotion_vs_get_body);
}

/// 8b. Capacity 2 (small target 1, its bound): keys 1, 2, 3 inserted unused, so key 1 was
///     evicted from small into the small ghost; the cache holds {2, 3}, both in small, key 2
///     at the head. Race: `insert(1, v11)` (the ghost remembers key 1: it joins main) against
///     `get(2)`. Then, sequentially, `insert(4)` and `insert(5)`. Serial orders:
///     * get first: key 2 is used, so the hand promotes it to main and evicts key 3; then
///       small is empty and `insert(4)` pops main, whose head is key 2 (promoted before key 1
///       was queued, counter reset): key 2 goes; `insert(5)` evicts key 4 from small;
///     * insert first: the hand evicts key 2 (the get sees nothing, or saw v20 just before);
///       then small holds key 3 at its target, so `insert(4)` evicts key 3 and `insert(5)`
///       key 4.
///     Either way the cache ends {1, 5}: key 1, readmitted to main, outlives two new keys. Had
///     it joined small, `insert(5)` would have evicted it.
fn ghost_readmission_vs_get_body(swapped: bool) {
    let (cache, log) = new_cache(2, None);
    cache.insert(1, Val::new(10));
    cache.insert(2, Val::new(20));
    cache.insert(3, Val::new(30));
    assert_eq!(log.events(), vec![(1, 10, Capacity)]);
    let (c1, c2) = (share(&cache), share(&cache));
    let ((), got) = race(
        swapped,
        move || c1.insert(1, Val::new(11)),
        move || c2.get(&2).map(|v| v.id),
    );
    cache.insert(4, Val::new(40));
    cache.insert(5, Val::new(50));
    let ids = [10, 11, 20, 30, 40, 50];
    let events = log.events();
    match (got, events.as_slice()) {
        (Some(20), [_, (3, 30, Capacity), (2, 20, Capacity), (4, 40, Capacity)]) => {
            reached("get first: key 3 evicted");
        }
        (None | Some(20), [_, (2, 20, Capacity), (3, 30, Capacity), (4, 40, Capacity)]) => {
            reached(if got.is_some() {
                "key 2 evicted, get saw v20"
            } else {
                "key 2 evicted, get saw nothing"
            });
        }
        outcome => panic!("readmission vs get not linearizable: (get(2), listener) = {outcome:?}"),
    }
    check_end(&cache, &log, &[1, 2, 3, 4, 5], &[(1, 11), (5, 50)], &ids);
}

#[test]
fn s3_ghost_readmission_vs_get() {
    model_both_ways(
        BOUND,
        &[
            "get first: key 3 evicted",
            "key 2 evicted, get saw v20",
            "key 2 evicted, get saw nothing",
        ],
        ghost_readmission_vs_get_body,
    );
}
