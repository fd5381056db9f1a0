//! Panics from user code (Hash, Eq, Drop, and the closures of update/compute/
//! get_or_insert_with/retain) must leave the map usable and consistent, leak nothing and
//! drop nothing twice.

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
