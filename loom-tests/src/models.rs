//! The model bodies. Each is one loom execution: `tests/*.rs` explore them with
//! [`crate::model`], and `tests/teeth.rs` explores some of them again with a protocol
//! weakened, expecting loom to find the interleaving that breaks them.
//!
//! Every model asserts the set of linearizable outcomes: each thread's results and the final
//! contents must match some serial order of the operations.

use crate::{entries, new_map, spawn, Map, Spawned, Tracked};
use std::sync::Arc;

/// 1. `insert(1, 10)` against two `get(1)`s: the reader sees the key absent or holding 10,
///    never anything else, and never absent after present.
pub fn insert_vs_get() {
    let map = Arc::new(new_map::<u64>());
    let writer = {
        let map = Arc::clone(&map);
        spawn(move || map.pin().insert(1, 10).copied())
    };
    let seen = {
        let m = map.pin();
        (m.get(&1).copied(), m.get(&1).copied())
    };
    assert!(
        matches!(seen, (None, None) | (None, Some(10)) | (Some(10), Some(10))),
        "insert vs get not linearizable: the reader saw {seen:?}"
    );
    assert_eq!(writer.join(), None);
    assert_eq!(entries(&map), vec![(1, 10)]);
    assert_eq!(map.len(), 1);
}

/// 2. `insert(1, 10)` against `insert(1, 20)`: exactly one returns `None`, the other returns
///    the first one's value, the last one's value stays, and there is one entry.
pub fn insert_vs_insert() {
    let map = Arc::new(new_map::<u64>());
    let other = {
        let map = Arc::clone(&map);
        spawn(move || map.pin().insert(1, 10).copied())
    };
    let mine = map.pin().insert(1, 20).copied();
    let theirs = other.join();
    let fin = entries(&map);
    match (theirs, mine) {
        // 10 first, then 20.
        (None, Some(10)) => assert_eq!(fin, vec![(1, 20)]),
        // 20 first, then 10.
        (Some(20), None) => assert_eq!(fin, vec![(1, 10)]),
        outcome => {
            panic!("two inserts not linearizable: they returned {outcome:?}, the map holds {fin:?}")
        }
    }
    assert_eq!(map.len(), 1);
}

/// 3a. `insert(1, 10)` against `remove(1)` on an absent key.
pub fn insert_vs_remove() {
    let map = Arc::new(new_map::<u64>());
    let remover = {
        let map = Arc::clone(&map);
        spawn(move || map.pin().remove(&1).copied())
    };
    let inserted = map.pin().insert(1, 10).copied();
    let removed = remover.join();
    let fin = entries(&map);
    match (inserted, removed) {
        // Insert, then remove.
        (None, Some(10)) => assert_eq!(fin, vec![]),
        // Remove (of nothing), then insert.
        (None, None) => assert_eq!(fin, vec![(1, 10)]),
        outcome => panic!(
            "insert vs remove not linearizable: they returned {outcome:?}, the map holds {fin:?}"
        ),
    }
    assert_eq!(map.len(), fin.len());
}

/// 3b. `insert(1, 10)` (a replace) against `remove(1)` on a key holding 5.
pub fn replace_vs_remove() {
    let map = Arc::new(new_map::<u64>());
    map.pin().insert(1, 5);
    let remover = {
        let map = Arc::clone(&map);
        spawn(move || map.pin().remove(&1).copied())
    };
    let replaced = map.pin().insert(1, 10).copied();
    let removed = remover.join();
    let fin = entries(&map);
    match (replaced, removed) {
        // Replace, then remove.
        (Some(5), Some(10)) => assert_eq!(fin, vec![]),
        // Remove, then insert into the emptied key.
        (None, Some(5)) => assert_eq!(fin, vec![(1, 10)]),
        outcome => panic!(
            "replace vs remove not linearizable: they returned {outcome:?}, the map holds {fin:?}"
        ),
    }
    assert_eq!(map.len(), fin.len());
}

/// 4. `remove(1)` (then two collection attempts) against a pinned `get(1)`: a reference the
///    reader (or the remover) got stays valid, its value not dropped, until its guard is
///    dropped; every value is dropped exactly once (checked by [`crate::explore`] when the
///    execution ends, after crossbeam-epoch's teardown has run the deferred destructions).
pub fn remove_vs_get() {
    let map = Arc::new(new_map::<Tracked>());
    map.pin().insert(1, Tracked::new(10));
    let remover = {
        let map = Arc::clone(&map);
        spawn(move || {
            {
                let m = map.pin();
                let removed = m.remove(&1).expect("nobody else removes key 1");
                assert_eq!(
                    Tracked::dropped(),
                    0,
                    "removed value freed under its remover"
                );
                assert_eq!(removed.v, 10);
            }
            // Try to free it at once: two collections can advance the epoch twice, which
            // frees the entry unless the reader is still pinned.
            crossbeam_epoch::pin().flush();
            crossbeam_epoch::pin().flush();
        })
    };
    {
        let m = map.pin();
        if let Some(t) = m.get(&1) {
            // A scheduling point: the remover may remove and collect now.
            loom::thread::yield_now();
            assert_eq!(Tracked::dropped(), 0, "value freed while a reader holds it");
            assert_eq!(t.v, 10);
        }
    }
    remover.join();
    assert!(map.pin().get(&1).is_none());
    assert_eq!(map.len(), 0);
}

/// The map the migration models start from: one bucket whose seven slots hold keys 1 and 2
/// and five tombstones (keys 3..=7 inserted, then removed). No slot is EMPTY, so the next
/// insert of a new key finds the table full and starts a migration into two buckets (two
/// live entries are at least 2/5 of seven slots). Tombstones keep the migration short: each
/// needs only a freeze, where a live entry needs freeze, reserve, commit and publish.
///
/// Returns the map and its capacity before the migration.
fn migrating_map() -> (Arc<Map<u64>>, usize) {
    let map = new_map::<u64>();
    {
        let m = map.pin();
        for k in 1..=7 {
            m.insert(k, k * 10);
        }
        for k in 3..=7 {
            m.remove(&k);
        }
    }
    let capacity = map.capacity();
    (Arc::new(map), capacity)
}

/// Checks the end state of a migration model: the migration happened, and the iterator
/// yields exactly `expected` (no key lost, duplicated, or with a wrong value).
fn check_migrated(map: &Map<u64>, capacity_before: usize, expected: &[(u64, u64)]) {
    // With at least two live entries when it starts, the migration doubles the table.
    if expected.len() >= 3 {
        assert!(
            map.capacity() > capacity_before,
            "the migration into a bigger table must have completed"
        );
    }
    assert_eq!(entries(map), expected);
    assert_eq!(map.len(), expected.len());
    for &(k, v) in expected {
        assert_eq!(map.pin().get(&k), Some(&v));
    }
}

/// Spawns the insert of key 8 that starts the migration.
fn spawn_migrating_insert(map: &Arc<Map<u64>>) -> Spawned<Option<u64>> {
    let map = Arc::clone(map);
    spawn(move || map.pin().insert(8, 80).copied())
}

/// 5a. A migrating insert against gets of a live key (must always be found) and of the
///     key being inserted (absent, or present with its value).
pub fn migration_vs_get() {
    let (map, before) = migrating_map();
    let inserter = spawn_migrating_insert(&map);
    let (one, eight) = {
        let m = map.pin();
        (m.get(&1).copied(), m.get(&8).copied())
    };
    assert_eq!(
        one,
        Some(10),
        "a key present throughout was not found during a migration"
    );
    assert!(
        matches!(eight, None | Some(80)),
        "get of the inserted key saw {eight:?}"
    );
    assert_eq!(inserter.join(), None);
    check_migrated(&map, before, &[(1, 10), (2, 20), (8, 80)]);
}

/// 5b. A migrating insert against the removal of a live key being migrated. If the remove
///     comes first, one live entry is left and the migration is a same-size cleaning copy;
///     otherwise it doubles the table.
pub fn migration_vs_remove() {
    let (map, before) = migrating_map();
    let inserter = spawn_migrating_insert(&map);
    assert_eq!(map.pin().remove(&1).copied(), Some(10));
    assert_eq!(inserter.join(), None);
    check_migrated(&map, before, &[(2, 20), (8, 80)]);
}

/// 5c. A migrating insert against the replacement of a live key being migrated.
pub fn migration_vs_replace() {
    let (map, before) = migrating_map();
    let inserter = spawn_migrating_insert(&map);
    assert_eq!(map.pin().insert(1, 11).copied(), Some(10));
    assert_eq!(inserter.join(), None);
    check_migrated(&map, before, &[(1, 11), (2, 20), (8, 80)]);
}

/// 5d. Two inserts of new keys, both finding the table full (either may start the migration,
///     both help it).
pub fn migration_vs_insert() {
    let (map, before) = migrating_map();
    let inserter = spawn_migrating_insert(&map);
    assert_eq!(map.pin().insert(9, 90).copied(), None);
    assert_eq!(inserter.join(), None);
    check_migrated(&map, before, &[(1, 10), (2, 20), (8, 80), (9, 90)]);
}
