//! The model bodies. Each is one loom execution of a race between two operations, `a` and
//! `b` (see [`crate::race`]); `swapped` says which runs on the spawned thread. `tests/*.rs`
//! explore them in both thread assignments with [`crate::model_both_ways`], which also fails
//! unless the executions reached every outcome the model labels with [`crate::reached`] as
//! expected; `tests/teeth.rs` explores some of them again with a protocol weakened, expecting
//! loom to find the interleaving that breaks them.
//!
//! Every model asserts the set of linearizable outcomes: each thread's results and the final
//! contents must match some serial order of the operations.

use crate::{entries, new_map, race, reached, Map, Tracked};
use std::sync::Arc;

/// The outcomes of [`insert_vs_get`].
pub const INSERT_VS_GET: [&str; 3] = [
    "both gets before the insert",
    "the insert between the gets",
    "both gets after the insert",
];

/// 1. `insert(1, 10)` against two `get(1)`s under one pin: the reader sees the key absent or
///    holding 10, never anything else, and never absent after present.
pub fn insert_vs_get(swapped: bool) {
    let map = Arc::new(new_map::<u64>());
    let (m1, m2) = (Arc::clone(&map), Arc::clone(&map));
    let (inserted, seen) = race(
        swapped,
        move || m1.pin().insert(1, 10).copied(),
        move || {
            let m = m2.pin();
            (m.get(&1).copied(), m.get(&1).copied())
        },
    );
    match seen {
        (None, None) => reached(INSERT_VS_GET[0]),
        (None, Some(10)) => reached(INSERT_VS_GET[1]),
        (Some(10), Some(10)) => reached(INSERT_VS_GET[2]),
        _ => panic!("insert vs get not linearizable: the reader saw {seen:?}"),
    }
    assert_eq!(inserted, None);
    assert_eq!(entries(&map), vec![(1, 10)]);
    assert_eq!(map.len(), 1);
}

/// The outcomes of [`insert_vs_insert`].
pub const INSERT_VS_INSERT: [&str; 2] = ["10 then 20", "20 then 10"];

/// 2. `insert(1, 10)` against `insert(1, 20)`: exactly one returns `None`, the other returns
///    the first one's value, the last one's value stays, and there is one entry.
pub fn insert_vs_insert(swapped: bool) {
    let map = Arc::new(new_map::<u64>());
    let (m1, m2) = (Arc::clone(&map), Arc::clone(&map));
    let (ten, twenty) = race(
        swapped,
        move || m1.pin().insert(1, 10).copied(),
        move || m2.pin().insert(1, 20).copied(),
    );
    let fin = entries(&map);
    match (ten, twenty) {
        (None, Some(10)) => {
            reached(INSERT_VS_INSERT[0]);
            assert_eq!(fin, vec![(1, 20)]);
        }
        (Some(20), None) => {
            reached(INSERT_VS_INSERT[1]);
            assert_eq!(fin, vec![(1, 10)]);
        }
        outcome => {
            panic!("two inserts not linearizable: they returned {outcome:?}, the map holds {fin:?}")
        }
    }
    assert_eq!(map.len(), 1);
}

/// The outcomes of [`insert_vs_remove`] and [`replace_vs_remove`].
pub const WRITE_VS_REMOVE: [&str; 2] = ["insert, then remove", "remove, then insert"];

/// 3a. `insert(1, 10)` against `remove(1)` on an absent key.
pub fn insert_vs_remove(swapped: bool) {
    let map = Arc::new(new_map::<u64>());
    let (m1, m2) = (Arc::clone(&map), Arc::clone(&map));
    let (inserted, removed) = race(
        swapped,
        move || m1.pin().insert(1, 10).copied(),
        move || m2.pin().remove(&1).copied(),
    );
    let fin = entries(&map);
    match (inserted, removed) {
        (None, Some(10)) => {
            reached(WRITE_VS_REMOVE[0]);
            assert_eq!(fin, vec![]);
        }
        // Remove (of nothing), then insert.
        (None, None) => {
            reached(WRITE_VS_REMOVE[1]);
            assert_eq!(fin, vec![(1, 10)]);
        }
        outcome => panic!(
            "insert vs remove not linearizable: they returned {outcome:?}, the map holds {fin:?}"
        ),
    }
    assert_eq!(map.len(), fin.len());
}

/// 3b. `insert(1, 10)` (a replace) against `remove(1)` on a key holding 5.
pub fn replace_vs_remove(swapped: bool) {
    let map = Arc::new(new_map::<u64>());
    map.pin().insert(1, 5);
    let (m1, m2) = (Arc::clone(&map), Arc::clone(&map));
    let (replaced, removed) = race(
        swapped,
        move || m1.pin().insert(1, 10).copied(),
        move || m2.pin().remove(&1).copied(),
    );
    let fin = entries(&map);
    match (replaced, removed) {
        (Some(5), Some(10)) => {
            reached(WRITE_VS_REMOVE[0]);
            assert_eq!(fin, vec![]);
        }
        // Remove, then insert into the emptied key.
        (None, Some(5)) => {
            reached(WRITE_VS_REMOVE[1]);
            assert_eq!(fin, vec![(1, 10)]);
        }
        outcome => panic!(
            "replace vs remove not linearizable: they returned {outcome:?}, the map holds {fin:?}"
        ),
    }
    assert_eq!(map.len(), fin.len());
}

/// The outcomes of [`remove_vs_get`].
pub const REMOVE_VS_GET: [&str; 3] = [
    "the reader held v10 across the removal",
    "the reader held v10, removed after",
    "the reader found nothing",
];

/// 4. `remove(1)` (then two collection attempts) against a pinned `get(1)`: a reference the
///    reader (or the remover) got stays valid, its value not dropped, until its guard is
///    dropped; every value is dropped exactly once (checked by [`crate::explore`] when the
///    execution ends, after crossbeam-epoch's teardown has run the deferred destructions).
///    "Held across the removal": the reader got v10 and, still pinned, saw it removed.
pub fn remove_vs_get(swapped: bool) {
    let map = Arc::new(new_map::<Tracked>());
    map.pin().insert(1, Tracked::new(10));
    let (m1, m2) = (Arc::clone(&map), Arc::clone(&map));
    let ((), seen) = race(
        swapped,
        move || {
            {
                let m = m1.pin();
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
        },
        move || {
            let m = m2.pin();
            let t = m.get(&1)?;
            // A scheduling point: the remover may remove and collect now.
            loom::thread::yield_now();
            let gone = !m.contains_key(&1);
            assert_eq!(Tracked::dropped(), 0, "value freed while a reader holds it");
            assert_eq!(t.v, 10);
            Some(gone)
        },
    );
    match seen {
        Some(true) => reached(REMOVE_VS_GET[0]),
        Some(false) => reached(REMOVE_VS_GET[1]),
        None => reached(REMOVE_VS_GET[2]),
    }
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

/// Where a migration model's operation fell relative to the moment the migration's new
/// table became current (the migrating insert returns only after that): the operation's
/// thread reads the map's capacity just before and just after it (under the operation's pin,
/// so the reads are plain loads of the current table). Coarse: "before the new table was
/// current" includes an operation that ran while the copy was under way.
pub const PHASES: [&str; 3] = [
    "the operation ended before the new table was current",
    "the new table became current during the operation",
    "the operation began on the new table",
];

/// The phase (see [`PHASES`]) of an operation that read the capacity `c0` just before and `c1`
/// just after it, on a map whose capacity was `before` when the model started.
fn phase(before: usize, c0: usize, c1: usize) -> &'static str {
    if c0 > before {
        PHASES[2]
    } else if c1 > before {
        PHASES[1]
    } else {
        PHASES[0]
    }
}

/// Runs `op` under a pin of `map`, labels its phase (see [`PHASES`]) and returns its result.
fn in_phase<T>(
    map: &Map<u64>,
    before: usize,
    op: impl FnOnce(&linemap::HashMapRef<'_, u64, u64, crate::ModelHasher>) -> T,
) -> T {
    let m = map.pin();
    let c0 = map.capacity();
    let r = op(&m);
    let c1 = map.capacity();
    reached(phase(before, c0, c1));
    r
}

/// The migrating insert of key 8.
fn migrating_insert(map: &Arc<Map<u64>>) -> impl FnOnce() -> Option<u64> + Send + 'static {
    let map = Arc::clone(map);
    move || map.pin().insert(8, 80).copied()
}

/// The outcomes of [`migration_vs_get`] besides its [`PHASES`].
pub const MIGRATION_VS_GET: [&str; 2] = ["get(8) saw nothing", "get(8) saw 80"];

/// 5a. A migrating insert against gets of a live key (must always be found) and of the
///     key being inserted (absent, or present with its value).
pub fn migration_vs_get(swapped: bool) {
    let (map, before) = migrating_map();
    let m2 = Arc::clone(&map);
    let (inserted, (one, eight)) = race(swapped, migrating_insert(&map), move || {
        in_phase(&m2, before, |m| (m.get(&1).copied(), m.get(&8).copied()))
    });
    assert_eq!(
        one,
        Some(10),
        "a key present throughout was not found during a migration"
    );
    match eight {
        None => reached(MIGRATION_VS_GET[0]),
        Some(80) => reached(MIGRATION_VS_GET[1]),
        _ => panic!("get of the inserted key saw {eight:?}"),
    }
    assert_eq!(inserted, None);
    check_migrated(&map, before, &[(1, 10), (2, 20), (8, 80)]);
}

/// The outcomes of [`migration_vs_remove`].
pub const MIGRATION_VS_REMOVE: [&str; 2] = [
    "the remove came before the migration was sized (same-size copy)",
    "the migration was sized with key 1 live (growing copy)",
];

/// 5b. A migrating insert against the removal of a live key being migrated. If the remove
///     comes first, one live entry is left and the migration is a same-size cleaning copy;
///     otherwise it doubles the table. (With a same-size copy the capacity does not tell the
///     phase: only the growing copies label one.)
pub fn migration_vs_remove(swapped: bool) {
    let (map, before) = migrating_map();
    let m2 = Arc::clone(&map);
    let (inserted, removed) = race(swapped, migrating_insert(&map), move || {
        let m = m2.pin();
        let c0 = m2.capacity();
        let r = m.remove(&1).copied();
        (r, c0, m2.capacity())
    });
    let (removed, c0, c1) = removed;
    // Same-size copies swap tables too, but the capacity cannot show it: only growing copies
    // are labelled with a phase.
    assert_eq!(removed, Some(10));
    assert_eq!(inserted, None);
    if map.capacity() > before {
        reached(MIGRATION_VS_REMOVE[1]);
        reached(phase(before, c0, c1));
    } else {
        reached(MIGRATION_VS_REMOVE[0]);
    }
    check_migrated(&map, before, &[(2, 20), (8, 80)]);
}

/// 5c. A migrating insert against the replacement of a live key being migrated.
pub fn migration_vs_replace(swapped: bool) {
    let (map, before) = migrating_map();
    let m2 = Arc::clone(&map);
    let (inserted, replaced) = race(swapped, migrating_insert(&map), move || {
        in_phase(&m2, before, |m| m.insert(1, 11).copied())
    });
    assert_eq!(replaced, Some(10));
    assert_eq!(inserted, None);
    check_migrated(&map, before, &[(1, 11), (2, 20), (8, 80)]);
}

/// 5d. Two inserts of new keys, both finding the table full (either may start the migration,
///     both help it).
pub fn migration_vs_insert(swapped: bool) {
    let (map, before) = migrating_map();
    let m2 = Arc::clone(&map);
    let (eight, nine) = race(swapped, migrating_insert(&map), move || {
        in_phase(&m2, before, |m| m.insert(9, 90).copied())
    });
    assert_eq!((eight, nine), (None, None));
    check_migrated(&map, before, &[(1, 10), (2, 20), (8, 80), (9, 90)]);
}
