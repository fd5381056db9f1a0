use super::*;
use std::sync::atomic::{AtomicUsize, Ordering as O};
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<(u64, RemovalCause)>>>;

fn logged<V: Send + Sync + Clone + 'static>(capacity: usize) -> (Cache<u64, V>, Log) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    let cache = Cache::builder(capacity)
        .eviction_listener(move |k: &u64, _: &V, c| l.lock().unwrap().push((*k, c)))
        .build();
    (cache, log)
}

#[test]
fn clock_evicts_unreferenced_first() {
    let (cache, log) = logged::<u64>(3);
    for k in 0..3 {
        cache.insert(k, k);
    }
    // Reference 0 and 2; 1 is the victim.
    assert_eq!(cache.get(&0), Some(0));
    assert_eq!(cache.get(&2), Some(2));
    cache.insert(3, 3);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.len(), 3);
    assert_eq!(*log.lock().unwrap(), vec![(1, RemovalCause::Capacity)]);
}

#[test]
fn bound_holds_after_every_insert() {
    let cache = Cache::new(50);
    for k in 0..10_000u64 {
        cache.insert(k, k);
        if k % 7 == 0 {
            cache.get(&(k / 2));
        }
        assert!(cache.len() <= 50, "len {} after inserting {k}", cache.len());
    }
    assert_eq!(cache.len(), 50);
    let s = cache.stats();
    assert_eq!(s.inserts, 10_000);
    assert_eq!(s.evicted_capacity, 10_000 - 50);
}

#[test]
fn replacing_keeps_the_position_and_tells_the_listener() {
    let (cache, log) = logged::<&str>(2);
    cache.insert(1, "a");
    cache.insert(1, "b");
    cache.insert(2, "c");
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get(&1), Some("b"));
    assert_eq!(*log.lock().unwrap(), vec![(1, RemovalCause::Replaced)]);
}

#[test]
fn removed_keys_free_their_position_for_the_hand() {
    let (cache, log) = logged::<u64>(2);
    cache.insert(1, 1);
    cache.insert(2, 2);
    assert_eq!(cache.remove(&1), Some(1));
    // The hand finds position 0 without an entry and takes it: nothing is evicted.
    cache.insert(3, 3);
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get(&2), Some(2));
    assert_eq!(*log.lock().unwrap(), vec![(1, RemovalCause::Removed)]);
}

#[test]
fn capacity_zero_stores_nothing() {
    let (cache, log) = logged::<u64>(0);
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), None);
    assert!(cache.is_empty());
    assert_eq!(cache.get_or_insert_with(2, || 5), 5);
    assert!(cache.is_empty());
    assert_eq!(
        *log.lock().unwrap(),
        vec![(1, RemovalCause::Capacity), (2, RemovalCause::Capacity)]
    );
}

#[test]
fn ttl_expiry_with_a_manual_clock() {
    let clock = Arc::new(ManualClock::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    let cache = Cache::builder(10)
        .clock(Arc::clone(&clock))
        .time_to_live(Duration::from_secs(10))
        .eviction_listener(move |k: &u64, _: &u64, c| l.lock().unwrap().push((*k, c)))
        .build();
    cache.insert(1, 1); // default ttl 10 s
    cache.insert_with_ttl(2, 2, Duration::from_secs(1));
    cache.insert_with_ttl(3, 3, Duration::MAX); // never
    cache.insert_with_ttl(4, 4, Duration::ZERO); // already expired
    assert_eq!(cache.get(&4), None);
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get(&2), None);
    assert!(!cache.contains_key(&2));
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(Duration::from_secs(9));
    assert_eq!(cache.get(&1), None);
    clock.advance(Duration::from_secs(1 << 40));
    assert_eq!(cache.get(&3), Some(3));
    let mut got = log.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, RemovalCause::Expired),
            (2, RemovalCause::Expired),
            (4, RemovalCause::Expired)
        ]
    );
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_hand_reclaims_expired_entries_first() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(2).clock(Arc::clone(&clock)).build();
    cache.insert(1, 1);
    cache.insert_with_ttl(2, 2, Duration::from_secs(1));
    cache.get(&1);
    cache.get(&2);
    clock.advance(Duration::from_secs(2));
    cache.insert(3, 3);
    // 1 was referenced, 2 expired: 2 goes even though it was referenced too.
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.stats().evicted_expired, 1);
}

#[test]
fn a_cache_without_ttl_never_reads_the_clock() {
    struct Forbidden;
    impl Clock for Forbidden {
        fn now(&self) -> Duration {
            panic!("the clock was read")
        }
    }
    let cache = Cache::builder(4).clock(Forbidden).build();
    for k in 0..20u64 {
        cache.insert(k, k);
        cache.get(&k);
        cache.get(&(k + 100));
    }
    cache.purge_expired();
    cache.retain(|_, _| true);
    assert_eq!(cache.len(), 4);
}

#[test]
fn versions_only_move_forward() {
    let cache = Cache::new(10);
    assert!(cache.insert_versioned(1, "v3", 3));
    assert!(!cache.insert_versioned(1, "v2", 2));
    assert!(!cache.insert_versioned(1, "v3b", 3));
    assert!(cache.insert_versioned(1, "v4", 4));
    assert_eq!(cache.get(&1), Some("v4"));
    assert!(!cache.remove_versioned(&1, 3));
    assert!(cache.remove_versioned(&1, 4));
    assert_eq!(cache.get(&1), None);
    // A plain insert has version 0 and is overwritten by any versioned one.
    cache.insert(2, "plain");
    assert!(cache.insert_versioned(2, "v1", 1));
}

#[test]
fn loader_errors_are_not_cached() {
    let cache: Cache<u64, u64> = Cache::new(10);
    let calls = AtomicUsize::new(0);
    let r: Result<u64, &str> = cache.get_or_try_insert_with(1, || {
        calls.fetch_add(1, O::Relaxed);
        Err("boom")
    });
    assert_eq!(r, Err("boom"));
    assert_eq!(cache.get(&1), None);
    let r: Result<u64, &str> = cache.get_or_try_insert_with(1, || {
        calls.fetch_add(1, O::Relaxed);
        Ok(11)
    });
    assert_eq!(r, Ok(11));
    assert_eq!(calls.load(O::Relaxed), 2);
    let s = cache.stats();
    assert_eq!((s.loads, s.load_errors), (2, 1));
}

#[test]
fn a_panicking_listener_leaves_the_cache_usable() {
    let cache = Cache::builder(1)
        .eviction_listener(|_: &u64, _: &u64, _| panic!("intentional listener panic"))
        .build();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for k in 0..10 {
        cache.insert(k, k);
    }
    std::panic::set_hook(hook);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&9), Some(9));
    assert_eq!(cache.stats().evicted_capacity, 9);
}

#[test]
fn a_loader_asking_for_its_own_key_panics_instead_of_hanging() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(10));
    let c = Arc::clone(&cache);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_or_insert_with(1, || c.get_or_insert_with(1, || 1))
    }));
    assert!(r.is_err());
    // The abandoned load released the key: a new load works.
    assert_eq!(cache.get_or_insert_with(1, || 2), 2);
}

#[test]
fn eviction_churn_cleans_the_table_instead_of_growing_it() {
    // Each eviction leaves a tombstone; without same-size cleaning the table would double
    // again and again. It may double once (see `worth_cleaning`), never more.
    for cap in [1usize, 7, 100, 5000] {
        let cache = Cache::new(cap);
        let before = cache.table.capacity(&pin());
        for k in 0..(40 * cap as u64 + 2000) {
            cache.insert(k, k);
        }
        assert_eq!(cache.len(), cap);
        let after = cache.table.capacity(&pin());
        assert!(
            after <= 2 * before + 1,
            "capacity {cap}: {before} -> {after}"
        );
    }
}

#[test]
fn weight_budget_holds_and_accounts_exactly() {
    let log_tx = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log_tx);
    let cache = Cache::builder(1000)
        .weigher(500, |_: &u64, v: &u64| (*v % 37) as u32)
        .eviction_listener(move |k: &u64, _: &u64, c| l.lock().unwrap().push((*k, c)))
        .build();
    let mut x = 12345u64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = x % 3000;
        cache.insert(k, x);
        assert!(cache.weight() <= 500);
    }
    // The total is exactly the sum of what is stored.
    let guard = pin();
    let mut sum = 0u64;
    let mut n = 0;
    cache.table.for_each(&guard, |e| {
        sum += u64::from(e.value.weight);
        n += 1;
    });
    assert_eq!(sum, cache.weight());
    assert_eq!(n, cache.len());
    assert!(log_tx
        .lock()
        .unwrap()
        .iter()
        .all(|(_, c)| *c != RemovalCause::Expired));
}

#[test]
fn weightless_and_overweight_entries() {
    let (cache, log) = {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&log);
        let c = Cache::builder(3)
            .weigher(10, |_: &u64, v: &u32| *v)
            .eviction_listener(move |k: &u64, _: &u32, c| l.lock().unwrap().push((*k, c)))
            .build();
        (c, log)
    };
    // Weight 0: only the entry count bounds them.
    for k in 0..5 {
        cache.insert(k, 0);
    }
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.weight(), 0);
    // Heavier than the whole budget: refused, reported, nothing evicted for it.
    log.lock().unwrap().clear();
    cache.insert(100, 11);
    assert_eq!(cache.get(&100), None);
    assert_eq!(*log.lock().unwrap(), vec![(100, RemovalCause::Capacity)]);
    assert_eq!(cache.len(), 3);
    // Exactly the budget fits (after evicting as needed).
    cache.insert(200, 10);
    assert_eq!(cache.get(&200), Some(10));
    assert_eq!(cache.weight(), 10);
    // Replacing changes the charge.
    cache.insert(200, 4);
    assert_eq!(cache.weight(), 4);
    cache.remove(&200);
    assert_eq!(cache.weight(), 0);
}

#[test]
fn time_to_idle_and_time_to_live_combine() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(10)
        .clock(Arc::clone(&clock))
        .time_to_live(Duration::from_secs(100))
        .time_to_idle(Duration::from_secs(16))
        .build();
    cache.insert(1, 1);
    cache.insert(2, 2);
    // Key 1 is read every 10 s; key 2 never.
    for _ in 0..9 {
        clock.advance(Duration::from_secs(10));
        assert_eq!(cache.get(&1), Some(1));
    }
    assert!(!cache.contains_key(&2), "idle for 90 s");
    // The time-to-live still ends key 1, however often it is read.
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.get(&1), None);
    // Idle expiry never comes late: idle for exactly the time-to-idle is expired.
    cache.insert(3, 3);
    clock.advance(Duration::from_secs(16));
    assert_eq!(cache.get(&3), None);
    // A hit just after the insert refreshes nothing (less than 1/16 moved), and the entry
    // still lives until 16 s after the insert.
    cache.insert(4, 4);
    clock.advance(Duration::from_millis(500));
    assert_eq!(cache.get(&4), Some(4));
    clock.advance(Duration::from_millis(15_400));
    assert_eq!(cache.get(&4), Some(4));
}

#[test]
fn expired_entries_have_no_version() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(10)
        .clock(Arc::clone(&clock))
        .time_to_live(Duration::from_secs(10))
        .build();
    assert!(cache.insert_versioned(1, "v5", 5));
    clock.advance(Duration::from_secs(11));
    // Expired: an older version is accepted, as for an evicted key.
    assert!(cache.insert_versioned(1, "v3", 3));
    assert_eq!(cache.get(&1), Some("v3"));
    assert!(cache.insert_versioned(2, "v9", 9));
    clock.advance(Duration::from_secs(11));
    // remove_versioned of an expired entry cleans it up but does not count as a removal.
    assert!(!cache.remove_versioned(&2, 9));
    assert!(!cache.contains_key(&2));
    let s = cache.stats();
    assert_eq!((s.removed, s.evicted_expired), (0, 2));
}

/// Runs `get_or_insert_with(key, ..)` on a thread whose loader waits until released, and
/// returns once the loader runs (its placeholder is in the table). Join the handle after
/// sending on the sender.
fn load_in_flight(
    cache: &Arc<Cache<u64, u64>>,
    key: u64,
    value: u64,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<u64>) {
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let c = Arc::clone(cache);
    let h = std::thread::spawn(move || {
        c.get_or_insert_with(key, || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            value
        })
    });
    started_rx.recv().unwrap();
    (go_tx, h)
}

fn logged_arc(capacity: usize) -> (Arc<Cache<u64, u64>>, Log) {
    let (cache, log) = logged::<u64>(capacity);
    (Arc::new(cache), log)
}

#[test]
fn a_load_in_flight_is_not_an_entry() {
    let (cache, log) = logged_arc(4);
    let (go, h) = load_in_flight(&cache, 1, 10);
    // The placeholder is in the table, but no read path sees it, and the count leaves it out.
    assert_eq!(cache.placeholders(), 1);
    assert_eq!(cache.table.len(), 0);
    assert_eq!(cache.len(), 0);
    assert!(cache.is_empty());
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.purge_expired(), 0);
    let mut seen = 0;
    cache.retain(|_, _| {
        seen += 1;
        false
    });
    assert_eq!(seen, 0, "retain must not see a placeholder");
    // Other keys fill the cache to its capacity around the placeholder; the hand never
    // picks the placeholder.
    for k in 2..20 {
        cache.insert(k, k);
        assert!(cache.len() <= 4);
    }
    go.send(()).unwrap();
    assert_eq!(h.join().unwrap(), 10);
    assert_eq!(cache.get(&1), Some(10));
    assert_eq!(cache.len(), 4);
    assert_eq!(cache.placeholders(), 0);
    // Only real entries were ever reported (evicted to make room).
    assert!(log.lock().unwrap().iter().all(|&(k, _)| k != 1));
}

#[test]
fn a_remove_during_a_load_keeps_the_value_out_and_reports_nothing() {
    for clear in [false, true] {
        let (cache, log) = logged_arc(4);
        let (go, h) = load_in_flight(&cache, 1, 10);
        if clear {
            cache.clear();
        } else {
            assert_eq!(cache.remove(&1), None);
        }
        assert_eq!(
            cache.placeholders(),
            0,
            "the placeholder went with the remove"
        );
        go.send(()).unwrap();
        // The loader's caller still gets its value; the cache does not keep it.
        assert_eq!(h.join().unwrap(), 10);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.stats().loads_not_stored, 1);
        assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
        assert_eq!((cache.len(), cache.placeholders()), (0, 0));
    }
}

#[test]
fn remove_versioned_during_a_load_keeps_the_value_out() {
    let (cache, log) = logged_arc(4);
    let (go, h) = load_in_flight(&cache, 1, 10);
    assert!(
        !cache.remove_versioned(&1, 0),
        "a placeholder is not an entry"
    );
    go.send(()).unwrap();
    assert_eq!(h.join().unwrap(), 10);
    assert_eq!(cache.get(&1), None);
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn an_insert_over_a_placeholder_wins_and_the_load_does_not_store() {
    let (cache, log) = logged_arc(4);
    let (go, h) = load_in_flight(&cache, 1, 10);
    cache.insert(1, 20);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&1), Some(20));
    go.send(()).unwrap();
    assert_eq!(h.join().unwrap(), 10);
    // The insert is newer than what the loader read: it stays.
    assert_eq!(cache.get(&1), Some(20));
    assert_eq!(cache.stats().loads_not_stored, 1);
    // The placeholder it replaced is nobody's business.
    assert!(log.lock().unwrap().is_empty());
    assert_eq!((cache.len(), cache.placeholders()), (1, 0));
}

#[test]
fn a_versioned_load_replaces_an_older_insert_made_during_it() {
    let cache = Arc::new(Cache::new(4));
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let c = Arc::clone(&cache);
    let h = std::thread::spawn(move || {
        c.get_or_try_load(1, || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            Ok::<_, ()>(Loaded::new(30).with_version(3))
        })
    });
    started_rx.recv().unwrap();
    assert!(cache.insert_versioned(1, 20, 2));
    go_tx.send(()).unwrap();
    assert_eq!(h.join().unwrap(), Ok(30));
    assert_eq!(cache.get(&1), Some(30));
    assert!(!cache.insert_versioned(1, 25, 2));
}

#[test]
fn waiters_join_the_placeholder_and_get_the_loaded_value() {
    let (cache, _log) = logged_arc(4);
    let (go, h) = load_in_flight(&cache, 1, 10);
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let c = Arc::clone(&cache);
            std::thread::spawn(move || c.get_or_insert_with(1, || unreachable!("one load")))
        })
        .collect();
    // Let the waiters reach the placeholder (not required for correctness: a late one hits).
    std::thread::sleep(std::time::Duration::from_millis(20));
    go.send(()).unwrap();
    assert_eq!(h.join().unwrap(), 10);
    for w in waiters {
        assert_eq!(w.join().unwrap(), 10);
    }
    assert_eq!(cache.stats().loads, 1);
}

#[test]
fn a_failed_load_takes_its_placeholder_out() {
    let cache: Cache<u64, u64> = Cache::new(4);
    assert_eq!(cache.get_or_try_insert_with(1, || Err(())), Err(()));
    assert_eq!((cache.table.len(), cache.placeholders()), (0, 0));
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        cache.get_or_insert_with(2, || panic!("loader"));
    }));
    assert!(r.is_err());
    assert_eq!((cache.table.len(), cache.placeholders()), (0, 0));
}

#[test]
fn many_loads_in_flight_on_a_small_cache_all_finish_within_the_bound() {
    // More loads in flight than the cache holds: their placeholders may make the table grow,
    // but every load finishes and the bound on entries holds.
    let cache = Arc::new(Cache::new(2));
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let (c, b) = (Arc::clone(&cache), Arc::clone(&barrier));
            std::thread::spawn(move || {
                for i in 0..200 {
                    let k = t * 1000 + i;
                    let v = c.get_or_insert_with(k, || {
                        if i == 0 {
                            b.wait();
                        }
                        k
                    });
                    assert_eq!(v, k);
                    assert!(c.len() <= 2 + 2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(cache.len() <= 2);
    assert_eq!(cache.placeholders(), 0);
    let mut values = 0;
    cache.table.for_each(&pin(), |_| values += 1);
    assert_eq!(values, cache.len());
}

/// A key whose `Eq` panics once its trap is armed; its clones (the ones the cache stores)
/// carry no trap.
struct TrapKey(u64, Option<Arc<std::sync::atomic::AtomicBool>>);

impl Clone for TrapKey {
    fn clone(&self) -> Self {
        TrapKey(self.0, None)
    }
}

impl PartialEq for TrapKey {
    fn eq(&self, other: &Self) -> bool {
        let armed = |k: &TrapKey| k.1.as_ref().is_some_and(|t| t.load(O::Relaxed));
        assert!(!armed(self) && !armed(other), "trapped Eq");
        self.0 == other.0
    }
}

impl Eq for TrapKey {}

impl std::hash::Hash for TrapKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

#[test]
fn a_placeholder_left_behind_is_replaced_and_dropped_with_the_cache() {
    // A failed load whose placeholder removal unwinds (a panicking `Eq`) leaves a finished
    // placeholder: the next miss replaces it, and dropping the cache drops one without
    // touching a value.
    let leave_one = |cache: &Cache<TrapKey, String>, k: u64| {
        let trap = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let key = TrapKey(k, Some(Arc::clone(&trap)));
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            cache.get_or_try_insert_with(key, || {
                trap.store(true, O::Relaxed);
                Err::<String, _>("down")
            })
        }));
        assert!(
            r.is_err(),
            "the trapped Eq panics in the placeholder's removal"
        );
    };
    let cache: Cache<TrapKey, String> = Cache::new(4);
    leave_one(&cache, 1);
    assert_eq!((cache.placeholders(), cache.len()), (1, 0));
    assert_eq!(cache.get(&TrapKey(1, None)), None);
    let v = cache.get_or_insert_with(TrapKey(1, None), || "one".to_string());
    assert_eq!(v, "one");
    assert_eq!((cache.len(), cache.placeholders()), (1, 0));
    leave_one(&cache, 2);
    cache.insert(TrapKey(3, None), "three".to_string());
    assert_eq!((cache.len(), cache.placeholders()), (2, 1));
    drop(cache);
}

#[test]
fn a_placeholder_costs_no_memory_per_entry() {
    // The placeholder's `PendingRef` shares the version's word: the entry stays 48 bytes.
    assert_eq!(std::mem::size_of::<Entry<u64, Node<u64>>>(), 48);
    assert_eq!(
        std::mem::size_of::<Node<u64>>(),
        std::mem::size_of::<load::PendingRef<u64>>() + 32
    );
}

/// A value that counts its clones.
struct Clones(Arc<AtomicUsize>);

impl Clone for Clones {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, O::Relaxed);
        Clones(Arc::clone(&self.0))
    }
}

#[test]
fn a_load_nobody_waited_for_clones_its_value_once() {
    let clones = Arc::new(AtomicUsize::new(0));
    let cache: Cache<u64, Clones> = Cache::new(4);
    let c = Arc::clone(&clones);
    let v = cache.get_or_insert_with(1, move || Clones(c));
    // One clone went into the cache; the caller has the loaded value itself, and no clone
    // was made for waiters, since none joined.
    assert_eq!(clones.load(O::Relaxed), 1);
    drop(v);
    // A hit clones the cached value for the caller.
    let _hit = cache.get_or_insert_with(1, || unreachable!());
    assert_eq!(clones.load(O::Relaxed), 2);
}

#[test]
fn a_waiter_that_joined_gets_the_loaded_value() {
    let cache: Cache<u64, u64> = Cache::new(4);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let cache = &cache;
    std::thread::scope(|s| {
        let loader = s.spawn(move || {
            cache.get_or_insert_with(1, move || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                41
            })
        });
        started_rx.recv().unwrap();
        let waiter = s.spawn(move || cache.get_or_insert_with(1, || 99));
        // Let the waiter miss and join the load in flight before the load ends. Should it
        // be descheduled past the end instead, it finds the stored value: the assertions
        // hold either way (loom model 3 covers every interleaving).
        while cache.stats().misses < 2 {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        go_tx.send(()).unwrap();
        assert_eq!(loader.join().unwrap(), 41);
        assert_eq!(waiter.join().unwrap(), 41, "a second load ran");
    });
    assert_eq!(cache.stats().loads, 1);
}
