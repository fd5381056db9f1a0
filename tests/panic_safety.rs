//! Panics from user code (Hash, Eq, Clone, Drop, and the closures of update/compute/
//! get_or_insert_with/retain; for the cache also the weigher, the loader and the listener)
//! must leave the map or cache usable and consistent, leak nothing, drop nothing twice and
//! release every caller waiting for a load.

mod common;

use common::{
    panic_message, quiet_intentional_panics, touchy, BadHash, Badness, Touchy, Tracked, Tracker,
};
use linemap::{DefaultHashBuilder, HashMap};
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Runs `f`, which must panic with an intentional panic.
#[track_caller]
fn must_panic<R>(f: impl FnOnce() -> R) {
    quiet_intentional_panics();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(e) => {
            let msg = panic_message(&*e);
            assert!(msg.contains("intentional"), "unexpected panic: {msg}");
        }
    }
}

type TouchyMap<S> = HashMap<Touchy, Tracked, S>;

/// The map holds exactly `model` (key -> value), through every reading API.
#[track_caller]
fn assert_contents<S: BuildHasher>(
    map: &TouchyMap<S>,
    t: &Arc<Tracker>,
    model: &BTreeMap<u64, u64>,
) {
    let m = map.pin();
    assert_eq!(m.len(), model.len());
    let got: BTreeMap<u64, u64> = m.iter().map(|(k, v)| (k.0.val, v.val)).collect();
    assert_eq!(&got, model);
    assert_eq!(m.iter().count(), model.len());
    for (k, v) in model {
        assert_eq!(
            m.get(&Touchy::new(t, *k)).map(|v| v.val),
            Some(*v),
            "get({k})"
        );
    }
}

/// Uses the map normally after the panics: insert, get, remove, and back.
fn still_usable<S: BuildHasher>(
    map: &TouchyMap<S>,
    t: &Arc<Tracker>,
    model: &mut BTreeMap<u64, u64>,
) {
    let m = map.pin();
    for k in 5000..5040 {
        assert!(m.insert(Touchy::new(t, k), Tracked::new(t, k)).is_none());
        model.insert(k, k);
    }
    for k in 5000..5020 {
        assert_eq!(m.remove(&Touchy::new(t, k)).map(|v| v.val), Some(k));
        model.remove(&k);
    }
    drop(m);
    assert_contents(map, t, model);
}

fn filled<S: BuildHasher>(
    hasher: S,
    t: &Arc<Tracker>,
    n: u64,
) -> (TouchyMap<S>, BTreeMap<u64, u64>) {
    let map = HashMap::with_hasher(hasher);
    let mut model = BTreeMap::new();
    for k in 0..n {
        map.insert(Touchy::new(t, k), Tracked::new(t, k));
        model.insert(k, k);
    }
    (map, model)
}

#[test]
fn panicking_hash() {
    let t = Tracker::new();
    let (map, mut model) = filled(DefaultHashBuilder::default(), &t, 100);
    touchy::hash_panics_for(Some(7));
    let key = || Touchy::new(&t, 7);
    must_panic(|| map.pin().insert(key(), Tracked::new(&t, 70)).map(|v| v.val));
    must_panic(|| map.pin().get(&key()).map(|v| v.val));
    must_panic(|| map.pin().contains_key(&key()));
    must_panic(|| map.pin().remove(&key()).map(|v| v.val));
    must_panic(|| map.pin().remove_entry(&key()).map(|(k, _)| k.0.val));
    must_panic(|| map.pin().get_or_insert(key(), Tracked::new(&t, 70)).val);
    must_panic(|| map.pin().get_or_insert_with(key(), || unreachable!()).val);
    must_panic(|| map.pin().update(&key(), |_| unreachable!()).map(|v| v.val));
    must_panic(|| {
        map.pin()
            .update_or_insert(key(), |_| unreachable!(), Tracked::new(&t, 70))
            .val
    });
    must_panic(|| map.pin().compute(key(), |_| unreachable!()).map(|v| v.val));
    must_panic(|| map.get(&key()).map(|v| v.val));
    must_panic(|| map.remove(&key()).map(|v| v.val));
    touchy::hash_panics_for(None);
    // Nothing changed.
    assert_contents(&map, &t, &model);
    still_usable(&map, &t, &mut model);
    t.assert_alive_settles_to(2 * model.len());
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn panicking_eq_mid_probe() {
    // A constant hash: one probe chain with one tag, so every operation compares its key
    // with many others and the panic strikes mid-chain.
    let t = Tracker::new();
    let (map, mut model) = filled(BadHash(Badness::Constant), &t, 60);
    let run = |f: &dyn Fn()| {
        for n in [1, 2, 3] {
            touchy::eq_panics_in(n);
            let before = touchy::eq_calls();
            let r = catch_unwind(AssertUnwindSafe(f));
            touchy::eq_panics_in(0);
            // If this operation made fewer than n comparisons it did not panic.
            assert_eq!(r.is_err(), touchy::eq_calls() - before >= n as u64);
        }
    };
    quiet_intentional_panics();
    // Same tag everywhere: each lookup compares the probe key with every entry of its
    // bucket before finding it (or not).
    for k in [5u64, 33, 59, 1000] {
        run(&|| {
            map.pin().get(&Touchy::new(&t, k));
        });
        run(&|| {
            map.pin().insert(Touchy::new(&t, k), Tracked::new(&t, k));
        });
        run(&|| {
            map.pin().remove(&Touchy::new(&t, k));
        });
        run(&|| {
            map.pin()
                .update(&Touchy::new(&t, k), |v| Tracked::new(&t, v.val));
        });
        run(&|| {
            map.pin()
                .compute(Touchy::new(&t, k), |v| v.map(|v| Tracked::new(&t, v.val)));
        });
        run(&|| {
            map.pin()
                .get_or_insert_with(Touchy::new(&t, k), || Tracked::new(&t, k));
        });
        // Whatever happened, the key maps to itself or is absent: re-sync the model.
        match map.pin().get(&Touchy::new(&t, k)) {
            Some(v) => {
                assert_eq!(v.val, k);
                model.insert(k, k);
            }
            None => {
                model.remove(&k);
            }
        }
    }
    // retain compares keys while removing the doomed entries.
    touchy::eq_panics_in(3);
    let r = catch_unwind(AssertUnwindSafe(|| map.retain(|k, _| k.0.val % 2 == 0)));
    touchy::eq_panics_in(0);
    if r.is_err() {
        // Some odd keys may be gone, others not: re-sync from the map.
        let m = map.pin();
        model.retain(|k, _| k % 2 == 0 || m.contains_key(&Touchy::new(&t, *k)));
    } else {
        model.retain(|k, _| k % 2 == 0);
    }
    assert_contents(&map, &t, &model);
    still_usable(&map, &t, &mut model);
    t.assert_alive_settles_to(2 * model.len());
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn panicking_closures_change_nothing() {
    let t = Tracker::new();
    let (map, mut model) = filled(DefaultHashBuilder::default(), &t, 50);
    let boom = |_: &Tracked| -> Tracked { panic!("intentional panic in f") };
    for k in [3u64, 4, 49] {
        must_panic(|| map.pin().update(&Touchy::new(&t, k), boom).map(|v| v.val));
        must_panic(|| map.update(&Touchy::new(&t, k), boom).map(|v| v.val));
        must_panic(|| {
            map.pin()
                .update_or_insert(Touchy::new(&t, k), boom, Tracked::new(&t, 0))
                .val
        });
        must_panic(|| {
            map.update_or_insert(Touchy::new(&t, k), boom, Tracked::new(&t, 0))
                .val
        });
        must_panic(|| {
            map.pin()
                .compute(Touchy::new(&t, k), |_| {
                    panic!("intentional panic in compute")
                })
                .map(|v| v.val)
        });
    }
    for k in [100u64, 101] {
        // Absent keys: the closures that would create the value panic.
        must_panic(|| {
            map.pin()
                .get_or_insert_with(Touchy::new(&t, k), || panic!("intentional panic in make"))
                .val
        });
        must_panic(|| {
            map.get_or_insert_with(Touchy::new(&t, k), || panic!("intentional panic in make"))
                .val
        });
        must_panic(|| {
            map.pin()
                .compute(Touchy::new(&t, k), |_| {
                    panic!("intentional panic in compute")
                })
                .map(|v| v.val)
        });
    }
    // retain's predicate panics part-way: retain tests every entry before removing any.
    let mut seen = 0;
    must_panic(|| {
        map.retain(|_, _| {
            seen += 1;
            if seen == 20 {
                panic!("intentional panic in retain");
            }
            false
        })
    });
    assert_contents(&map, &t, &model);
    still_usable(&map, &t, &mut model);
    t.assert_alive_settles_to(2 * model.len());
    drop(map);
    t.assert_all_dropped();
}

/// Values whose Drop panics: the map must stay usable, every value must still be dropped
/// exactly once (the panicking drops included), and the panic must not abort the process.
#[test]
fn panicking_value_drop() {
    quiet_intentional_panics();
    let t = Tracker::new();
    let mut map: HashMap<u64, Tracked> = HashMap::new();
    for k in 0..40 {
        map.insert(k, Tracked::bomb(&t, k));
    }
    {
        let m = map.pin();
        // Replaced and removed bombs explode later, in the epoch collector, which catches
        // the panic.
        for k in 0..10 {
            assert!(m.insert(k, Tracked::new(&t, k)).is_some());
        }
        for k in 10..20 {
            assert!(m.remove(&k).is_some());
        }
        // A bomb offered for a present key is dropped (and explodes) inside the call.
    }
    must_panic(|| map.pin().get_or_insert(0, Tracked::bomb(&t, 0)).val);
    must_panic(|| {
        map.pin()
            .update_or_insert(1, |v| Tracked::new(&t, v.val), Tracked::bomb(&t, 1))
            .val
    });
    // update_or_insert replaced key 1 before dropping the default.
    assert_eq!(map.get(&1).map(|v| v.val), Some(1));
    assert_eq!(map.len(), 30);
    // The collector runs the exploding drops (up to 20 of them); all are accounted for.
    t.assert_alive_settles_to(30);

    // clear_mut with bombs: every entry is dropped, the first panic resumes, and the map is
    // empty and usable afterwards.
    must_panic(|| map.clear_mut());
    assert!(map.is_empty());
    assert_eq!(map.pin().iter().count(), 0);
    assert_eq!(t.alive(), 0);
    for k in 0..30 {
        map.insert(k, Tracked::bomb(&t, k));
    }
    for k in 0..10 {
        // (The owned `map.insert` would return a clone of the old bomb.)
        map.pin().insert(k, Tracked::new(&t, k));
    }
    assert_eq!(map.len(), 30);
    t.assert_alive_settles_to(30);
    // Dropping the map: all 30 values are dropped although 20 of them panic.
    must_panic(move || drop(map));
    t.assert_all_dropped();
}

#[test]
fn panicking_value_drop_during_clear_and_retain() {
    quiet_intentional_panics();
    let t = Tracker::new();
    let map: HashMap<u64, Tracked> = HashMap::new();
    for k in 0..50 {
        map.insert(k, Tracked::bomb(&t, k));
    }
    map.retain(|k, _| k % 2 == 0);
    assert_eq!(map.len(), 25);
    map.pin().clear();
    assert!(map.is_empty());
    t.assert_all_dropped();
    map.insert(1, Tracked::new(&t, 1));
    assert_eq!(map.get(&1).map(|v| v.val), Some(1));
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn panics_under_concurrency() {
    // Threads hit panicking closures and hashes while others write; at the end the map is
    // consistent, and every value is dropped once.
    quiet_intentional_panics();
    let t = Tracker::new();
    let map: TouchyMap<DefaultHashBuilder> = HashMap::new();
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let (t, map) = (&t, &map);
            s.spawn(move || {
                if th == 0 {
                    touchy::hash_panics_for(Some(13));
                }
                let mut x = common::mix(th) | 1;
                for n in 0..3000u64 {
                    x = common::mix(x);
                    let k = x % 64;
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        let m = map.pin();
                        match n % 5 {
                            0 => {
                                m.insert(Touchy::new(t, k), Tracked::new(t, k));
                            }
                            1 => {
                                m.remove(&Touchy::new(t, k));
                            }
                            2 => {
                                m.update(&Touchy::new(t, k), |v| {
                                    if v.val % 7 == 0 {
                                        panic!("intentional panic in update");
                                    }
                                    Tracked::new(t, v.val)
                                });
                            }
                            3 => {
                                m.compute(Touchy::new(t, k), |v| match v {
                                    Some(v) if n % 3 == 0 => {
                                        panic!("intentional panic in compute {}", v.val)
                                    }
                                    Some(_) => None,
                                    None => Some(Tracked::new(t, k)),
                                });
                            }
                            _ => {
                                m.get_or_insert_with(Touchy::new(t, k), || {
                                    if n % 2 == 0 {
                                        panic!("intentional panic in make");
                                    }
                                    Tracked::new(t, k)
                                });
                            }
                        }
                    }));
                    if let Err(e) = r {
                        assert!(panic_message(&*e).contains("intentional"));
                    }
                }
            });
        }
    });
    let m = map.pin();
    let len = m.len();
    assert_eq!(m.iter().count(), len);
    assert!(m.iter().all(|(k, v)| k.0.val == v.val && k.0.val < 64));
    drop(m);
    t.assert_alive_settles_to(2 * len);
    drop(map);
    t.assert_all_dropped();
}

/// Fills a map, then makes `Hash` panic for one stored key and inserts other keys until a
/// migration has to re-hash it. Returns the map (its migration left unfinished) and the model.
fn panic_mid_migration(t: &Arc<Tracker>) -> (TouchyMap<DefaultHashBuilder>, BTreeMap<u64, u64>) {
    let (map, mut model) = filled(DefaultHashBuilder::default(), t, 20);
    touchy::hash_panics_for(Some(7));
    let mut k = 1000;
    let panicked = loop {
        assert!(k < 100_000, "no migration re-hashed key 7");
        quiet_intentional_panics();
        let r = catch_unwind(AssertUnwindSafe(|| {
            map.pin().insert(Touchy::new(t, k), Tracked::new(t, k));
        }));
        if let Err(e) = r {
            assert!(panic_message(&*e).contains("intentional"));
            break k;
        }
        model.insert(k, k);
        k += 1;
    };
    touchy::hash_panics_for(None);
    // The insert that panicked was helping a migration and had not placed its own key yet.
    assert!(!map.pin().contains_key(&Touchy::new(t, panicked)));
    (map, model)
}

#[test]
fn panicking_hash_during_migration_then_use() {
    let t = Tracker::new();
    let (map, mut model) = panic_mid_migration(&t);
    // Readers see every key while the migration is stuck on the frozen entry.
    assert_contents(&map, &t, &model);
    // The next writer finishes the migration (sweeping what the panicking thread left).
    still_usable(&map, &t, &mut model);
    t.assert_alive_settles_to(2 * model.len());
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn panicking_hash_during_migration_then_drop() {
    let t = Tracker::new();
    let (map, model) = panic_mid_migration(&t);
    assert_contents(&map, &t, &model);
    // Dropping with the migration unfinished drops each entry once, wherever it sits.
    drop(map);
    t.assert_all_dropped();
}

// ---------------------------------------------------------------------------------------------
// Clone: the map-level methods return clones of values (after the operation took effect).

/// A value whose `Clone` panics (switch: [`touchy::clone_panics_in`]) in every map-level
/// method that returns a clone, and in `HashMap::clone`: the operation itself took effect
/// (the clone is made afterwards), nothing leaks, nothing is dropped twice.
#[test]
fn panicking_value_clone_in_map_level_methods() {
    let t = Tracker::new();
    let (map, mut model) = filled(DefaultHashBuilder::default(), &t, 20);
    let key = |k| Touchy::new(&t, k);
    // Runs `f` with the next clone panicking; the key's value afterwards must be `before`
    // (the panic came first: `update_or_insert` clones the key before inserting) or `after`
    // (the operation took effect, then the returned value's clone panicked).
    let mut cloning = |k: u64, after: Option<u64>, f: &mut dyn FnMut()| {
        let before = model.get(&k).copied();
        touchy::clone_panics_in(1);
        must_panic(f);
        touchy::clone_panics_in(0);
        let now = map.get(&key(k)).map(|v| v.val);
        assert!(
            now == before || now == after,
            "key {k}: {now:?}, before {before:?}, after {after:?}"
        );
        match now {
            Some(v) => model.insert(k, v),
            None => model.remove(&k),
        };
    };
    cloning(3, Some(3), &mut || drop(map.get(&key(3))));
    cloning(4, Some(400), &mut || {
        drop(map.insert(key(4), Tracked::new(&t, 400)))
    });
    cloning(5, None, &mut || drop(map.remove(&key(5))));
    cloning(6, Some(606), &mut || {
        drop(map.update(&key(6), |v| Tracked::new(&t, v.val + 600)))
    });
    cloning(7, Some(707), &mut || {
        drop(map.update_or_insert(
            key(7),
            |v| Tracked::new(&t, v.val + 700),
            Tracked::new(&t, 0),
        ))
    });
    cloning(70, Some(70), &mut || {
        drop(map.update_or_insert(key(70), |_| unreachable!(), Tracked::new(&t, 70)))
    });
    cloning(8, Some(8), &mut || {
        drop(map.get_or_insert_with(key(8), || unreachable!()))
    });
    cloning(80, Some(80), &mut || {
        drop(map.get_or_insert_with(key(80), || Tracked::new(&t, 80)))
    });
    assert_contents(&map, &t, &model);
    // `HashMap::clone` clones every key and value: a panic part-way drops what was cloned.
    for n in [1, 2, 7, 30] {
        touchy::clone_panics_in(n);
        must_panic(|| map.clone());
        touchy::clone_panics_in(0);
        t.assert_alive_settles_to(2 * model.len());
    }
    still_usable(&map, &t, &mut model);
    t.assert_alive_settles_to(2 * model.len());
    drop(map);
    t.assert_all_dropped();
}

// ---------------------------------------------------------------------------------------------
// Cache: Hash, Eq, Clone, Drop, the weigher, the loader and the listener panic.

mod cache {
    use super::*;
    use linemap::cache::{ManualClock, RemovalCause};
    use linemap::Cache;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    type Log = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

    /// The cache's entries (key -> value) as `retain` visits them, checking that each key
    /// appears once and that `len()` agrees with them, and `weight()` too (with `exact`; else
    /// only that it is not below their total).
    fn contents<S: BuildHasher>(
        cache: &Cache<Touchy, Tracked, S>,
        weigh: impl Fn(&Tracked) -> u64,
        exact: bool,
    ) -> BTreeMap<u64, u64> {
        let mut got = BTreeMap::new();
        let mut weight = 0;
        cache.retain(|k, v| {
            assert!(
                got.insert(k.0.val, v.val).is_none(),
                "key {} twice",
                k.0.val
            );
            weight += weigh(v);
            true
        });
        assert_eq!(cache.len(), got.len(), "len vs entries");
        if exact {
            assert_eq!(cache.weight(), weight, "weight vs the entries' weights");
        } else {
            assert!(
                cache.weight() >= weight,
                "weight below the entries' weights"
            );
        }
        got
    }

    /// After the panics: the cache still fills up to its capacity with new keys (weight 0:
    /// no ring position was lost), and empties.
    fn still_fills<S: BuildHasher>(
        cache: &Cache<Touchy, Tracked, S>,
        t: &Arc<Tracker>,
        weigh: impl Fn(&Tracked) -> u64 + Copy,
        exact: bool,
    ) {
        let cap = cache.capacity() as u64;
        for k in 10_000..10_000 + 3 * cap {
            cache.insert(Touchy::new(t, k), Tracked::new(t, 0));
        }
        let got = contents(cache, weigh, exact);
        assert_eq!(
            got.len() as u64,
            cap,
            "the cache no longer fills to its capacity: {got:?}"
        );
        cache.clear();
        assert!(cache.is_empty());
        if exact {
            assert_eq!(cache.weight(), 0);
        }
    }

    fn logged<S: BuildHasher>(
        b: linemap::cache::CacheBuilder<Touchy, Tracked, S>,
    ) -> (Cache<Touchy, Tracked, S>, Log) {
        let log: Log = Arc::default();
        let l = Arc::clone(&log);
        let cache = b
            .eviction_listener(move |k: &Touchy, v: &Tracked, c| {
                common::lock(&l).push((k.0.val, v.id, c))
            })
            .build();
        (cache, log)
    }

    /// Every value id reported at most once.
    fn reported_once(log: &Log) {
        let mut seen = HashSet::new();
        for (k, id, c) in common::lock(log).iter() {
            assert!(
                seen.insert(*id),
                "value {id} of key {k} reported twice ({c:?})"
            );
        }
    }

    /// `Hash` and `Eq` panic at every point of inserts, replacements, lookups and removals.
    /// Values are never dropped twice or leaked, `len()` stays right and the cache stays
    /// usable: the weight stays exact and the cache still fills to its capacity. (Three bugs
    /// this test found are pinned by the focused tests below: a leaked weight reservation, a
    /// leaked ring position, a load left registered.)
    #[test]
    fn panicking_hash_and_eq() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let weigh = |v: &Tracked| v.val % 4;
        let (cache, log) = logged(
            Cache::builder(12).weigher(20, move |_: &Touchy, v: &Tracked| (v.val % 4) as u32),
        );
        let mut panics = 0;
        for round in 0..90u64 {
            let k = 100 + round % 30;
            for n in 1..=6 {
                touchy::eq_panics_in(n);
                let r = catch_unwind(AssertUnwindSafe(|| match round % 3 {
                    0 => cache.insert(Touchy::new(&t, k), Tracked::new(&t, round)),
                    1 => drop(cache.get(&Touchy::new(&t, k))),
                    _ => drop(cache.remove(&Touchy::new(&t, k))),
                }));
                touchy::eq_panics_in(0);
                panics += usize::from(r.is_err());
                let got = contents(&cache, weigh, true);
                assert!(got.len() <= 12, "{got:?}");
            }
            touchy::hash_panics_for(Some(k));
            must_panic(|| cache.insert(Touchy::new(&t, k), Tracked::new(&t, 0)));
            must_panic(|| cache.get(&Touchy::new(&t, k)));
            must_panic(|| cache.remove(&Touchy::new(&t, k)));
            must_panic(|| cache.get_or_insert_with(Touchy::new(&t, k), || unreachable!()));
            touchy::hash_panics_for(None);
        }
        assert!(panics >= 30, "only {panics} Eq panics");
        reported_once(&log);
        // Usable: no weight and no ring position was lost.
        for k in 10_000..10_040 {
            cache.insert(Touchy::new(&t, k), Tracked::new(&t, 4 * k));
            assert_eq!(cache.get(&Touchy::new(&t, k)).map(|v| v.val), Some(4 * k));
        }
        assert!(contents(&cache, weigh, true).len() <= 12);
        still_fills(&cache, &t, weigh, true);
        cache.clear();
        assert!(cache.is_empty());
        reported_once(&log);
        drop(cache);
        t.assert_all_dropped();
    }

    /// The weigher panics: the insert propagates it, stores nothing, reserves nothing, and the
    /// value is dropped once; the key's old value stays.
    #[test]
    fn panicking_weigher() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let weigh = |v: &Tracked| v.val % 5;
        let (cache, log) = logged(Cache::builder(8).weigher(16, |_: &Touchy, v: &Tracked| {
            if v.val == 13 {
                panic!("intentional panic in the weigher");
            }
            (v.val % 5) as u32
        }));
        for k in 0..8 {
            cache.insert(Touchy::new(&t, k), Tracked::new(&t, k));
        }
        let before = contents(&cache, weigh, true);
        for k in [0, 3, 100] {
            must_panic(|| cache.insert(Touchy::new(&t, k), Tracked::new(&t, 13)));
            must_panic(|| cache.insert_versioned(Touchy::new(&t, k), Tracked::new(&t, 13), 99));
            must_panic(|| {
                cache.get_or_insert_with(Touchy::new(&t, 1000 + k), || Tracked::new(&t, 13))
            });
        }
        assert_eq!(contents(&cache, weigh, true), before);
        // The loader's panicking insert released the load: the key loads normally now.
        assert_eq!(
            cache
                .get_or_insert_with(Touchy::new(&t, 1000), || Tracked::new(&t, 4))
                .val,
            4
        );
        reported_once(&log);
        still_fills(&cache, &t, weigh, true);
        drop(cache);
        t.assert_all_dropped();
    }

    /// `Clone` of a value panics where the cache returns clones: `get`, `remove`, a hit of
    /// `get_or_insert_with`, and both clones of a load (the one stored, the one handed to
    /// waiters). The cache stays consistent, a waiting caller is released, nothing leaks.
    #[test]
    fn panicking_value_clone() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let weigh = |_: &Tracked| 0;
        let (cache, log) = logged(Cache::builder(8));
        for k in 0..4 {
            cache.insert(Touchy::new(&t, k), Tracked::new(&t, k));
        }
        let cloning = |n: u32, f: &mut dyn FnMut()| {
            touchy::clone_panics_in(n);
            must_panic(f);
            touchy::clone_panics_in(0);
        };
        cloning(1, &mut || drop(cache.get(&Touchy::new(&t, 1))));
        assert_eq!(cache.get(&Touchy::new(&t, 1)).map(|v| v.val), Some(1));
        // remove takes the entry out, then clones the value for the caller.
        cloning(1, &mut || drop(cache.remove(&Touchy::new(&t, 2))));
        assert!(cache.get(&Touchy::new(&t, 2)).is_none());
        cloning(1, &mut || {
            drop(cache.get_or_insert_with(Touchy::new(&t, 3), || unreachable!()))
        });
        // A load: the first clone (of the key, then of the value, for the insert) or the
        // second (the value for the waiters) panics, with a waiter on another thread.
        for n in 1..=4 {
            let k = 50 + u64::from(n);
            let loading = AtomicBool::new(false);
            let release = AtomicBool::new(false);
            std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    while !loading.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    let v =
                        cache.get_or_insert_with(Touchy::new(&t, k), || Tracked::new(&t, 2 * k));
                    release.store(true, Ordering::SeqCst);
                    v.val
                });
                touchy::clone_panics_in(n);
                let r = catch_unwind(AssertUnwindSafe(|| {
                    cache
                        .get_or_insert_with(Touchy::new(&t, k), || {
                            loading.store(true, Ordering::SeqCst);
                            // Give the waiter time to join the load (not needed for correctness).
                            for _ in 0..200 {
                                std::thread::yield_now();
                            }
                            Tracked::new(&t, k)
                        })
                        .val
                }));
                touchy::clone_panics_in(0);
                loading.store(true, Ordering::SeqCst);
                let w = waiter.join().expect("the waiter was released");
                assert!(release.load(Ordering::SeqCst));
                // Whatever panicked, the waiter got the stored value or loaded its own.
                let stored = cache.get(&Touchy::new(&t, k)).map(|v| v.val);
                assert_eq!(stored, Some(w), "clone #{n}: {r:?}");
                assert!(w == k || w == 2 * k);
            });
        }
        contents(&cache, weigh, true);
        reported_once(&log);
        still_fills(&cache, &t, weigh, true);
        drop(cache);
        t.assert_all_dropped();
    }

    /// Values whose `Drop` panics leave by every path: eviction, replacement, expiry,
    /// `remove`, `clear`, refusal (too heavy) and dropping the cache. Each is
    /// dropped once; the weight and the ring stay consistent.
    #[test]
    fn panicking_value_drop() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let clock = Arc::new(ManualClock::new());
        let weigh = |v: &Tracked| if v.val >= 1000 { 100 } else { v.val % 4 };
        let (cache, log) = logged(
            Cache::builder(8)
                .clock(Arc::clone(&clock))
                .weigher(24, move |_: &Touchy, v: &Tracked| weigh(v) as u32),
        );
        // Evictions and replacements: the bombs are retired and explode in the collector.
        for k in 0..40 {
            cache.insert(Touchy::new(&t, k % 13), Tracked::bomb(&t, k));
        }
        for k in 0..8 {
            cache.insert_with_ttl(
                Touchy::new(&t, 100 + k),
                Tracked::bomb(&t, k),
                Duration::from_secs(1),
            );
        }
        clock.advance(Duration::from_secs(2));
        cache.purge_expired();
        let got = contents(&cache, weigh, true);
        // `remove` hands back a clone, itself a bomb.
        if let Some(k) = got.keys().next() {
            must_panic(|| cache.remove(&Touchy::new(&t, *k)));
        }
        // Refused inserts drop their value inside the call: too heavy for the budget...
        must_panic(|| cache.insert(Touchy::new(&t, 500), Tracked::bomb(&t, 1000)));
        contents(&cache, weigh, true);
        // ...or an older version (its reservation goes back although its Drop panics).
        cache.insert_versioned(Touchy::new(&t, 600), Tracked::new(&t, 1), 10);
        must_panic(|| cache.insert_versioned(Touchy::new(&t, 600), Tracked::bomb(&t, 3), 5));
        contents(&cache, weigh, true);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(cache.weight(), 0);
        reported_once(&log);
        t.assert_alive_settles_to(0);
        still_fills(&cache, &t, weigh, true);
        for k in 0..8 {
            cache.insert(Touchy::new(&t, k), Tracked::bomb(&t, k));
        }
        // Dropping the cache drops every value although they panic, then resumes one panic.
        must_panic(move || drop(cache));
        t.assert_all_dropped();
    }

    /// Found by `panicking_hash_and_eq`: `Eq` panics in `Cache::insert` after the insert
    /// reserved its weight (in the probe of `put`); the reservation is never given back, so
    /// `weight()` stays above the entries' total for good and the usable budget shrinks by
    /// the value's weight with every such panic.
    /// (The bug is fixed: `Ring::held`, the reservation's `OnDrop` and the abandon-on-unwind
    /// of `Loads::finish` in src/cache; this test keeps it fixed.)
    #[test]
    fn eq_panic_after_the_reservation_leaks_no_weight() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let weigh = |v: &Tracked| v.val;
        let cache = Cache::builder(4)
            .hasher(BadHash(Badness::Constant))
            .weigher(100, |_: &Touchy, v: &Tracked| v.val as u32)
            .build();
        cache.insert(Touchy::new(&t, 1), Tracked::new(&t, 1));
        for n in 1..=6 {
            touchy::eq_panics_in(n);
            let _ = catch_unwind(AssertUnwindSafe(|| {
                cache.insert(Touchy::new(&t, 2), Tracked::new(&t, 2))
            }));
            touchy::eq_panics_in(0);
            contents(&cache, weigh, true);
        }
    }

    /// Found by `panicking_hash_and_eq` (with colliding keys): `Eq` panics in `Cache::insert`
    /// after the hand claimed a ring position for the new key (in the second probe of
    /// `put`); the position stays reserved for good, so the cache holds one entry fewer
    /// with every such panic (here a capacity-3 cache ends up holding 2 or fewer).
    /// (The bug is fixed: `Ring::held`, the reservation's `OnDrop` and the abandon-on-unwind
    /// of `Loads::finish` in src/cache; this test keeps it fixed.)
    #[test]
    fn eq_panic_after_the_claim_loses_no_ring_position() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let cache = Cache::builder(3).hasher(BadHash(Badness::Constant)).build();
        for round in 0..20u64 {
            for k in 0..3 {
                cache.insert(Touchy::new(&t, k), Tracked::new(&t, k));
            }
            for n in 1..=8 {
                touchy::eq_panics_in(n);
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    cache.insert(Touchy::new(&t, 100 + round), Tracked::new(&t, 0))
                }));
                touchy::eq_panics_in(0);
            }
        }
        still_fills(&cache, &t, |_| 0, true);
        drop(cache);
        t.assert_all_dropped();
    }

    /// Found by `panicking_hash_and_eq` (with a loader): `Eq` panics while a finished load
    /// unregisters itself (`Duty::finish` marks the duty done, then `Loads::finish` probes
    /// the loads table and panics before publishing). The `Pending` stays registered and
    /// loading forever: later callers for the key on other threads wait for good, and on the
    /// loader's thread they panic ("a loader asked for the key it is loading").
    /// (The bug is fixed: `Ring::held`, the reservation's `OnDrop` and the abandon-on-unwind
    /// of `Loads::finish` in src/cache; this test keeps it fixed.)
    #[test]
    fn eq_panic_while_unregistering_a_load_releases_its_waiters() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let cache: Arc<Cache<Touchy, Tracked>> = Arc::new(Cache::new(8));
        // Fresh cache, keys hash apart: the only `Eq` call of this load is the one that
        // finds its own registration when it unregisters.
        touchy::eq_panics_in(1);
        must_panic(|| {
            let r: Result<Tracked, ()> =
                cache.get_or_try_insert_with(Touchy::new(&t, 1), || Err(()));
            r
        });
        touchy::eq_panics_in(0);
        // Another thread must be able to load the key (not wait forever).
        let (tx, rx) = std::sync::mpsc::channel();
        let (c, tt) = (Arc::clone(&cache), Arc::clone(&t));
        std::thread::spawn(move || {
            let v = c
                .get_or_insert_with(Touchy::new(&tt, 1), || Tracked::new(&tt, 2))
                .val;
            let _ = tx.send(v);
        });
        let got = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(
            got,
            Ok(2),
            "a caller on another thread is still waiting for the load"
        );
        // And so must this thread.
        assert_eq!(
            cache
                .get_or_insert_with(Touchy::new(&t, 1), || Tracked::new(&t, 3))
                .val,
            2
        );
    }

    /// Found by `panicking_value_drop`: an `insert_versioned` refused by the version check
    /// drops its value inside `put`, before the insert gives back the weight it reserved; if
    /// that `Drop` panics, the reservation is never released (`weight()` stays above the
    /// entries' total for good).
    /// (The bug is fixed: `Ring::held`, the reservation's `OnDrop` and the abandon-on-unwind
    /// of `Loads::finish` in src/cache; this test keeps it fixed.)
    #[test]
    fn refused_versioned_value_with_panicking_drop_leaks_no_weight() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let weigh = |v: &Tracked| v.val;
        let cache = Cache::builder(8)
            .weigher(100, |_: &Touchy, v: &Tracked| v.val as u32)
            .build();
        assert!(cache.insert_versioned(Touchy::new(&t, 1), Tracked::new(&t, 1), 10));
        must_panic(|| cache.insert_versioned(Touchy::new(&t, 1), Tracked::bomb(&t, 3), 5));
        contents(&cache, weigh, true);
    }

    /// The listener panics on every report (all four causes): the cache catches it, stays
    /// usable, and every value is still dropped once.
    #[test]
    fn panicking_listener_drops_every_value_once() {
        quiet_intentional_panics();
        let t = Tracker::new();
        let clock = Arc::new(ManualClock::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let cache = Cache::builder(4)
            .clock(Arc::clone(&clock))
            .eviction_listener(move |_: &Touchy, _: &Tracked, cause| {
                c.fetch_add(1, Ordering::SeqCst);
                panic!("intentional listener panic ({cause:?})");
            })
            .build();
        for k in 0..10 {
            cache.insert(Touchy::new(&t, k), Tracked::new(&t, k)); // 6 Capacity
        }
        let live: Vec<u64> = contents(&cache, |_| 0, true).into_keys().collect();
        cache.insert(Touchy::new(&t, live[0]), Tracked::new(&t, 0)); // Replaced
        assert_eq!(
            cache.remove(&Touchy::new(&t, live[1])).map(|v| v.val),
            Some(live[1])
        ); // Removed
        cache.insert_with_ttl(
            Touchy::new(&t, 50),
            Tracked::new(&t, 50),
            Duration::from_secs(1),
        );
        clock.advance(Duration::from_secs(2));
        assert!(cache.get(&Touchy::new(&t, 50)).is_none()); // Expired
        assert_eq!(calls.load(Ordering::SeqCst), 9);
        let stats = cache.stats();
        assert_eq!(
            (
                stats.evicted_capacity,
                stats.replaced,
                stats.removed,
                stats.evicted_expired
            ),
            (6, 1, 1, 1)
        );
        still_fills(&cache, &t, |_| 0, true);
        drop(cache);
        t.assert_all_dropped();
    }
}
