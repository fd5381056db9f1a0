//! Drop accounting: every key and value the map takes is dropped exactly once, whether it
//! is replaced, removed, cleared, retained away, carried through migrations or still in the
//! map when it is dropped; single- and multi-threaded.
//!
//! Removed entries are freed through crossbeam-epoch, later; `Tracker::assert_alive_settles_to`
//! drives reclamation (see `common::reclaim_until`) before counting.

mod common;

use common::{Tracked, Tracker};
use linemap::HashMap;
use std::sync::Arc;

type Map = HashMap<Tracked, Tracked>;

fn map() -> Map {
    HashMap::new()
}

/// A lookup key: a tracked value that is dropped right after the lookup.
fn probe(t: &Arc<Tracker>, k: u64) -> Tracked {
    Tracked::new(t, k)
}

#[test]
fn replaced_entries_are_dropped_once() {
    let t = Tracker::new();
    let map = map();
    for round in 0..4 {
        for k in 0..100 {
            let old = map
                .pin()
                .insert(Tracked::new(&t, k), Tracked::new(&t, k * 10 + round))
                .map(|v| v.val);
            assert_eq!(
                old,
                if round == 0 {
                    None
                } else {
                    Some(k * 10 + round - 1)
                }
            );
        }
    }
    assert_eq!(map.len(), 100);
    // 100 keys + 100 values live; the replaced entries (old key and old value) are freed.
    t.assert_alive_settles_to(200);
    drop(map);
    t.assert_all_dropped();
    assert_eq!(t.created(), 800);
}

#[test]
fn removed_entries_are_dropped_once() {
    let t = Tracker::new();
    let map = map();
    for k in 0..300 {
        map.insert(Tracked::new(&t, k), Tracked::new(&t, k));
    }
    {
        let m = map.pin();
        for k in 0..100 {
            assert_eq!(m.remove(&probe(&t, k)).map(|v| v.val), Some(k));
        }
        for k in 100..200 {
            let (rk, rv) = m.remove_entry(&probe(&t, k)).expect("present");
            assert_eq!((rk.val, rv.val), (k, k));
        }
        assert!(m.remove(&probe(&t, 5)).is_none());
    }
    // The owned API returns clones, which are new values that we drop here.
    for k in 200..250 {
        assert_eq!(map.remove(&probe(&t, k)).map(|v| v.val), Some(k));
    }
    assert_eq!(map.len(), 50);
    t.assert_alive_settles_to(100);
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn clear_retain_and_clear_mut_drop_everything_once() {
    let t = Tracker::new();
    let mut map = map();
    let fill = |map: &Map, n: u64| {
        for k in 0..n {
            map.insert(Tracked::new(&t, k), Tracked::new(&t, k));
        }
    };
    fill(&map, 500);
    map.retain(|k, _| k.val % 3 == 0);
    assert_eq!(map.len(), 167);
    t.assert_alive_settles_to(2 * 167);

    map.pin().clear();
    assert!(map.is_empty());
    t.assert_all_dropped();

    fill(&map, 400);
    map.clear();
    t.assert_all_dropped();

    fill(&map, 400);
    // clear_mut drops at once, without the epoch.
    map.clear_mut();
    assert!(map.is_empty());
    assert_eq!(t.alive(), 0);

    fill(&map, 50);
    t.assert_alive_settles_to(100);
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn growth_neither_drops_nor_leaks() {
    let t = Tracker::new();
    let map = map();
    let before = map.capacity();
    for k in 0..5000 {
        map.insert(Tracked::new(&t, k), Tracked::new(&t, k));
        if k % 4 == 0 {
            map.pin().remove(&probe(&t, k / 2));
        }
    }
    assert!(map.capacity() > before * 16, "the map grew many times");
    let len = map.len();
    // Migrations move entries by pointer: only the removed entries were dropped.
    t.assert_alive_settles_to(2 * len);
    let m = map.pin();
    assert_eq!(m.iter().count(), len);
    assert!(m.iter().all(|(k, v)| k.val == v.val));
    drop(m);
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn rmw_operations_drop_what_they_do_not_keep() {
    let t = Tracker::new();
    let map = map();
    let m = map.pin();
    for k in 0..50 {
        m.insert(Tracked::new(&t, k), Tracked::new(&t, k));
    }
    for k in 0..50 {
        // Present: the offered value and key are dropped, the stored ones kept.
        assert_eq!(
            m.get_or_insert(Tracked::new(&t, k), Tracked::new(&t, 999))
                .val,
            k
        );
        // Present: make is not called at all.
        m.get_or_insert_with(Tracked::new(&t, k), || unreachable!());
        // Present: the default is dropped; the old entry is retired.
        assert_eq!(
            m.update_or_insert(
                Tracked::new(&t, k),
                |v| Tracked::new(&t, v.val + 1),
                Tracked::new(&t, 0)
            )
            .val,
            k + 1
        );
        assert_eq!(
            m.update(&probe(&t, k), |v| Tracked::new(&t, v.val + 1))
                .map(|v| v.val),
            Some(k + 2)
        );
        // compute: modify, then remove every other key.
        m.compute(Tracked::new(&t, k), |v| {
            v.map(|v| Tracked::new(&t, v.val + 1))
        });
        if k % 2 == 0 {
            assert!(m.compute(Tracked::new(&t, k), |_| None).is_none());
        }
    }
    for k in 50..60 {
        // Absent: inserted by each API.
        m.get_or_insert(Tracked::new(&t, k), Tracked::new(&t, k));
        m.get_or_insert_with(Tracked::new(&t, k + 100), || Tracked::new(&t, k));
        m.update_or_insert(
            Tracked::new(&t, k + 200),
            |_| unreachable!(),
            Tracked::new(&t, k),
        );
        m.compute(Tracked::new(&t, k + 300), |_| Some(Tracked::new(&t, k)));
        // Absent: nothing stored, the closure's result never made.
        assert!(m.update(&probe(&t, k + 400), |_| unreachable!()).is_none());
        assert!(m.compute(Tracked::new(&t, k + 500), |_| None).is_none());
    }
    assert_eq!(m.len(), 25 + 40);
    drop(m);
    t.assert_alive_settles_to(2 * 65);
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn retired_entries_outlive_the_map() {
    let t = Tracker::new();
    let map = map();
    {
        let m = map.pin();
        for k in 0..200 {
            m.insert(Tracked::new(&t, k), Tracked::new(&t, k));
            m.insert(Tracked::new(&t, k), Tracked::new(&t, k + 1));
        }
        for k in 0..100 {
            m.remove(&probe(&t, k));
        }
        // The map is dropped while its removed entries are still waiting for the epoch.
    }
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn clones_and_collections_are_accounted() {
    let t = Tracker::new();
    let a: Map = (0..200)
        .map(|k| (Tracked::new(&t, k), Tracked::new(&t, k)))
        .collect();
    let b = a.clone();
    assert!(a == b);
    assert_eq!(t.alive(), 800);
    let mut c = map();
    // Duplicates: the later pair replaces the earlier (the earlier pair is retired).
    c.extend((0..100).map(|k| (Tracked::new(&t, k % 10), Tracked::new(&t, k))));
    assert_eq!(c.len(), 10);
    drop(a);
    t.assert_alive_settles_to(400 + 20);
    drop(b);
    drop(c);
    t.assert_all_dropped();
}

#[test]
fn concurrent_churn_drops_everything_once() {
    let t = Tracker::new();
    let map = map();
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let (t, map) = (&t, &map);
            s.spawn(move || {
                let mut x = common::mix(th) | 1;
                for n in 0..4000u64 {
                    x = common::mix(x);
                    let k = x % 64;
                    let m = map.pin();
                    match (x >> 8) % 10 {
                        0..=2 => {
                            m.insert(Tracked::new(t, k), Tracked::new(t, n));
                        }
                        3 | 4 => {
                            m.remove(&probe(t, k));
                        }
                        5 => {
                            m.update_or_insert(
                                Tracked::new(t, k),
                                |v| Tracked::new(t, v.val + 1),
                                Tracked::new(t, 0),
                            );
                        }
                        6 => {
                            m.compute(Tracked::new(t, k), |v| match v {
                                Some(_) => None,
                                None => Some(Tracked::new(t, n)),
                            });
                        }
                        7 => {
                            m.get_or_insert_with(Tracked::new(t, k), || Tracked::new(t, n));
                        }
                        8 => {
                            m.update(&probe(t, k), |v| Tracked::new(t, v.val + 1));
                        }
                        _ if n % 500 == 0 => m.clear(),
                        _ if n % 100 == 0 => m.retain(|k, _| k.val % 2 == 0),
                        _ => {
                            if let Some((rk, _)) = m.get_key_value(&probe(t, k)) {
                                assert_eq!(rk.val, k);
                            }
                        }
                    }
                }
            });
        }
        // Grow from the side too, so migrations run under the churn.
        s.spawn(|| {
            for k in 1000..4000 {
                map.insert(Tracked::new(&t, k), Tracked::new(&t, k));
            }
        });
    });
    let len = map.len();
    assert_eq!(map.pin().iter().count(), len);
    t.assert_alive_settles_to(2 * len);
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn contended_update_or_insert_recovers_defaults() {
    // All threads fight over 4 keys: failed attempts hand their entries back, and the
    // default is moved out of them; nothing may leak or be dropped twice.
    let t = Tracker::new();
    let map = map();
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let (t, map) = (&t, &map);
            s.spawn(move || {
                for n in 0..3000u64 {
                    let k = (n + th) % 4;
                    let m = map.pin();
                    if n % 50 == 0 {
                        m.remove(&probe(t, k));
                    }
                    m.update_or_insert(
                        Tracked::new(t, k),
                        |v| Tracked::new(t, v.val + 1),
                        Tracked::new(t, 1),
                    );
                    m.get_or_insert(Tracked::new(t, k), Tracked::new(t, 1));
                }
            });
        }
    });
    assert_eq!(map.len(), 4);
    t.assert_alive_settles_to(8);
    drop(map);
    t.assert_all_dropped();
}

#[test]
fn double_drop_detector_works() {
    // The detector itself: a value dropped once is fine, and a forged second drop of the
    // same id is reported.
    let t = Tracker::new();
    let a = Tracked::new(&t, 1);
    let forged = a.forge_twin();
    drop(a);
    assert!(t.errors().is_empty());
    drop(forged);
    assert_eq!(t.errors().len(), 1);
}
