//! Multi-threaded stress tests on overlapping keys. Every check is made either on values
//! whose correct result is determined despite the concurrency, or at quiescence.
//! No test asserts anything about time.

mod common;

use common::{mix, BadHash, Badness};
use linemap::HashMap;
use std::collections::{HashMap as StdMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;

const THREADS: usize = 4;

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

/// Checks at quiescence that `len()`, the iterators and point lookups all agree, that no
/// key is iterated twice, and returns the contents.
fn quiescent_contents<S: BuildHasher>(map: &HashMap<u64, u64, S>) -> StdMap<u64, u64> {
    let m = map.pin();
    let pairs: Vec<(u64, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
    let contents: StdMap<u64, u64> = pairs.iter().copied().collect();
    assert_eq!(contents.len(), pairs.len(), "a key was iterated twice");
    assert_eq!(map.len(), pairs.len(), "len() vs iteration");
    assert_eq!(m.keys().count(), pairs.len());
    assert_eq!(m.values().count(), pairs.len());
    for (k, v) in &contents {
        assert_eq!(m.get(k), Some(v), "get({k}) vs iteration");
    }
    contents
}

/// Each thread owns the keys `k` with `k % THREADS == t` (so threads share buckets) and runs
/// a random mix of writes on them, checking every result against its own sequential model:
/// with exclusive ownership of a key, every operation's result is determined. At the end the
/// map must hold exactly the union of the models.
fn owned_keys_run<S: BuildHasher + Sync>(map: HashMap<u64, u64, S>, keys: u64, ops: usize) {
    let models: Vec<StdMap<u64, u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let map = &map;
                s.spawn(move || {
                    let mut rng = Rng::new(t + keys * 31);
                    let mut model = StdMap::new();
                    let per = keys / THREADS as u64;
                    for n in 0..ops {
                        let k = rng.below(per) * THREADS as u64 + t;
                        let v = rng.next() >> 1;
                        let m = map.pin();
                        match rng.below(10) {
                            0..=3 => assert_eq!(m.insert(k, v).copied(), model.insert(k, v)),
                            4 | 5 => assert_eq!(m.remove(&k).copied(), model.remove(&k)),
                            6 => assert_eq!(*m.get_or_insert(k, v), *model.entry(k).or_insert(v)),
                            7 => {
                                let want = model.get_mut(&k).map(|x| {
                                    *x += 1;
                                    *x
                                });
                                assert_eq!(m.update(&k, |x| x + 1).copied(), want);
                            }
                            8 => {
                                // Toggle presence through compute.
                                let want = match model.remove(&k) {
                                    Some(_) => None,
                                    None => {
                                        model.insert(k, v);
                                        Some(v)
                                    }
                                };
                                let got = m.compute(k, |cur| match cur {
                                    Some(_) => None,
                                    None => Some(v),
                                });
                                assert_eq!(got.copied(), want);
                            }
                            _ => {
                                let want = model.remove_entry(&k);
                                assert_eq!(m.remove_entry(&k).map(|(k, v)| (*k, *v)), want);
                            }
                        }
                        if n % 16 == 0 {
                            assert_eq!(m.get(&k), model.get(&k), "read back key {k}");
                        }
                    }
                    model
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut want = StdMap::new();
    for m in models {
        want.extend(m);
    }
    assert_eq!(quiescent_contents(&map), want);
}

/// An empty map (one bucket): every test grows it under concurrent writes.
fn small() -> HashMap<u64, u64> {
    HashMap::new()
}

#[test]
fn owned_keys_small_key_space() {
    // 64 keys from one bucket: removes leave tombstones, cleaned by same-size migrations.
    owned_keys_run(small(), 64, 6000);
}

#[test]
fn owned_keys_growth() {
    // 8000 keys from one bucket: many doublings under concurrent writes.
    owned_keys_run(small(), 8000, 6000);
}

#[test]
fn owned_keys_same_tag_hasher() {
    owned_keys_run(
        HashMap::with_capacity_and_hasher(64, BadHash(Badness::SameTag)),
        64,
        4000,
    );
}

#[test]
fn owned_keys_clustered_hashers() {
    let bad = |b| HashMap::with_capacity_and_hasher(64, BadHash(b));
    owned_keys_run(bad(Badness::Few(3)), 64, 2000);
    owned_keys_run(bad(Badness::SameBucket), 128, 2000);
    owned_keys_run(bad(Badness::Constant), 96, 1500);
}

/// Every thread inserts every key; per key, exactly one insert finds it absent, and every
/// inserted value is either returned as replaced by exactly one insert or is the final value
/// (no lost or duplicated updates).
#[test]
fn concurrent_inserts_same_keys_lose_nothing() {
    const KEYS: u64 = 512;
    const ROUNDS: u64 = 3;
    let map: HashMap<u64, u64> = small();
    let barrier = Barrier::new(THREADS);
    let returned: Vec<Vec<(u64, Option<u64>)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let (map, barrier) = (&map, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut out = Vec::new();
                    for r in 0..ROUNDS {
                        for i in 0..KEYS {
                            // Different orders per thread.
                            let k = if t % 2 == 0 { i } else { KEYS - 1 - i };
                            let v = (t << 40) | (r << 32) | k;
                            let old = if (i + t) % 2 == 0 {
                                map.pin().insert(k, v).copied()
                            } else {
                                map.insert(k, v)
                            };
                            out.push((k, old));
                        }
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let contents = quiescent_contents(&map);
    assert_eq!(contents.len(), KEYS as usize);
    let mut nones = vec![0; KEYS as usize];
    let mut seen: HashSet<u64> = HashSet::new();
    for (k, old) in returned.into_iter().flatten() {
        match old {
            None => nones[k as usize] += 1,
            Some(v) => {
                assert_eq!(v & 0xffff_ffff, k, "value of another key returned");
                assert!(seen.insert(v), "value {v:#x} replaced twice");
            }
        }
    }
    assert!(
        nones.iter().all(|&n| n == 1),
        "absent-insert counts {nones:?}"
    );
    for (k, v) in contents {
        assert_eq!(v & 0xffff_ffff, k);
        assert!(seen.insert(v), "final value {v:#x} was also replaced");
    }
    assert_eq!(seen.len() as u64, KEYS * ROUNDS * THREADS as u64);
}

/// Concurrent removes of the same keys: each present key is removed by exactly one thread,
/// while other keys are inserted to force migrations under the removes.
#[test]
fn concurrent_removes_remove_once() {
    const KEYS: u64 = 2000;
    let map: HashMap<u64, u64> = small();
    for k in 0..KEYS {
        map.insert(k, k * 3);
    }
    let barrier = Barrier::new(THREADS + 1);
    let removed: Vec<Vec<(u64, u64)>> = std::thread::scope(|s| {
        let grower = s.spawn(|| {
            barrier.wait();
            for k in KEYS..KEYS * 4 {
                map.insert(k, k * 3);
            }
        });
        let hs: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let (map, barrier) = (&map, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut out = Vec::new();
                    for i in 0..KEYS {
                        let k = (i * (2 * t + 1)) % KEYS;
                        let m = map.pin();
                        let got = match t % 3 {
                            0 => m.remove(&k).copied(),
                            1 => m.remove_entry(&k).map(|(rk, v)| {
                                assert_eq!(*rk, k);
                                *v
                            }),
                            _ => {
                                // compute removes without reporting what it removed.
                                assert!(m.compute(k, |_| None).is_none());
                                None
                            }
                        };
                        if let Some(v) = got {
                            out.push((k, v));
                        }
                    }
                    out
                })
            })
            .collect();
        grower.join().unwrap();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut per_key = vec![0; KEYS as usize];
    for (k, v) in removed.into_iter().flatten() {
        assert_eq!(v, k * 3);
        per_key[k as usize] += 1;
    }
    // Threads using compute may remove a key without seeing it; everyone else sees a key
    // at most once in total.
    assert!(per_key.iter().all(|&n| n <= 1), "a key was removed twice");
    let contents = quiescent_contents(&map);
    for k in 0..KEYS {
        assert!(!contents.contains_key(&k), "key {k} survived");
    }
    assert_eq!(contents.len() as u64, KEYS * 3);
}

/// Counters through update_or_insert (both APIs) and compute sum exactly, per key, while a
/// reader checks every counter it reads never goes down.
#[test]
fn counters_are_exact() {
    const KEYS: u64 = 64;
    const ROUNDS: u64 = 150;
    let map: HashMap<u64, u64> = small();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut last = vec![0u64; KEYS as usize];
            let mut reads = 0u64;
            while !done.load(Ordering::Acquire) || reads < 1000 {
                let k = reads % KEYS;
                if let Some(v) = map.get(&k) {
                    assert!(
                        v >= last[k as usize],
                        "counter {k} went from {} to {v}",
                        last[k as usize]
                    );
                    last[k as usize] = v;
                }
                reads += 1;
            }
        });
        let writers: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let map = &map;
                s.spawn(move || {
                    let mut rng = Rng::new(t);
                    for _ in 0..ROUNDS {
                        for i in 0..KEYS {
                            let k = (i + t * 17) % KEYS;
                            match rng.below(3) {
                                0 => {
                                    map.update_or_insert(k, |n| n + 1, 1);
                                }
                                1 => {
                                    map.pin().update_or_insert(k, |n| n + 1, 1);
                                }
                                _ => {
                                    map.pin().compute(k, |n| Some(n.map_or(1, |n| n + 1)));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        reader.join().unwrap();
    });
    let contents = quiescent_contents(&map);
    assert_eq!(contents.len() as u64, KEYS);
    for (k, v) in contents {
        assert_eq!(v, ROUNDS * THREADS as u64, "counter {k}");
    }
}

/// `update` (present keys only) and `compute` that removes at a threshold: exact per key.
#[test]
fn update_and_compute_exact() {
    const KEYS: u64 = 64;
    const ROUNDS: u64 = 100;
    let map: HashMap<u64, u64> = small();
    for k in 0..KEYS {
        map.insert(k, 0);
    }
    // Keys >= KEYS: compute counts up and removes the entry at every multiple of 10; the
    // number of removals tells the total.
    let removals = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS as u64 {
            let (map, removals) = (&map, &removals);
            s.spawn(move || {
                for r in 0..ROUNDS {
                    for i in 0..KEYS {
                        let k = (i * 7 + t) % KEYS;
                        assert!(map.pin().update(&k, |n| n + 1).is_some());
                        let ck = KEYS + (i + r) % 8;
                        // f may run several times; count the removal once, from the result.
                        let before = std::cell::Cell::new(0);
                        let after = map
                            .pin()
                            .compute(ck, |n| {
                                let n = n.copied().unwrap_or(0);
                                before.set(n);
                                if n + 1 == 10 {
                                    None
                                } else {
                                    Some(n + 1)
                                }
                            })
                            .copied();
                        if after.is_none() {
                            assert_eq!(before.get(), 9);
                            removals.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let contents = quiescent_contents(&map);
    for k in 0..KEYS {
        assert_eq!(contents[&k], ROUNDS * THREADS as u64, "update counter {k}");
    }
    let total = ROUNDS * KEYS * THREADS as u64;
    let leftover: u64 = (KEYS..KEYS + 8)
        .map(|k| contents.get(&k).copied().unwrap_or(0))
        .sum();
    assert_eq!(removals.load(Ordering::Relaxed) * 10 + leftover, total);
}

/// get_or_insert_with from all threads on the same keys: every thread observes the same
/// value per key, that value is in the map, and `make` runs at most once per call.
#[test]
fn get_or_insert_with_agrees() {
    const KEYS: u64 = 1024;
    let map: HashMap<u64, u64> = small();
    let barrier = Barrier::new(THREADS);
    let makes = AtomicUsize::new(0);
    let seen: Vec<Vec<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let (map, barrier, makes) = (&map, &barrier, &makes);
                s.spawn(move || {
                    barrier.wait();
                    let mut out = vec![0; KEYS as usize];
                    for i in 0..KEYS {
                        let k = if t % 2 == 0 { i } else { (i * 37) % KEYS };
                        let calls = std::cell::Cell::new(0);
                        let make = || {
                            calls.set(calls.get() + 1);
                            makes.fetch_add(1, Ordering::Relaxed);
                            (t << 32) | k
                        };
                        out[k as usize] = if i % 2 == 0 {
                            *map.pin().get_or_insert_with(k, make)
                        } else {
                            map.get_or_insert_with(k, make)
                        };
                        assert!(calls.get() <= 1, "make ran {} times", calls.get());
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let contents = quiescent_contents(&map);
    assert_eq!(contents.len() as u64, KEYS);
    for k in 0..KEYS {
        let v = contents[&k];
        assert_eq!(v & 0xffff_ffff, k);
        for (t, s) in seen.iter().enumerate() {
            assert_eq!(s[k as usize], v, "thread {t} saw another value for key {k}");
        }
    }
    let makes = makes.load(Ordering::Relaxed) as u64;
    assert!(makes >= KEYS && makes <= KEYS * THREADS as u64, "{makes}");
}

/// Writers store values that encode the key, the writer and a sequence number. Readers must
/// only ever see values written for that key, no newer than the writer has published, never
/// older than one they have already seen from the same single-writer key, and no entry twice
/// in one iteration.
#[test]
fn readers_only_see_written_values() {
    const KEYS: u64 = 64;
    const WRITES: u64 = 6000;
    // Writer w owns keys with k % 2 == w for inserts/updates, and both remove any key.
    let progress = [AtomicU64::new(0), AtomicU64::new(0)];
    let done = AtomicBool::new(false);
    let map: HashMap<u64, u64> = small();
    let enc = |k: u64, w: u64, seq: u64| (seq << 20) | (w << 16) | k;
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let (map, progress) = (&map, &progress);
            s.spawn(move || {
                let mut rng = Rng::new(100 + w);
                for seq in 1..=WRITES {
                    // Publish before writing, so readers never see a seq beyond progress.
                    progress[w as usize].store(seq, Ordering::SeqCst);
                    let k = rng.below(KEYS / 2) * 2 + w;
                    let m = map.pin();
                    match rng.below(8) {
                        0..=3 => {
                            m.insert(k, enc(k, w, seq));
                        }
                        4 => {
                            m.update(&k, |_| enc(k, w, seq));
                        }
                        5 => {
                            m.compute(k, |_| Some(enc(k, w, seq)));
                        }
                        6 => {
                            m.remove(&(rng.below(KEYS)));
                        }
                        _ => {
                            m.update_or_insert(k, |_| enc(k, w, seq), enc(k, w, seq));
                        }
                    }
                }
            });
        }
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (map, progress, done) = (&map, &progress, &done);
                s.spawn(move || {
                    let check = |k: u64, v: u64| {
                        assert_eq!(v & 0xffff, k, "value {v:#x} of another key under {k}");
                        let w = (v >> 16) & 0xf;
                        assert!(w < 2, "corrupt writer id in {v:#x}");
                        assert_eq!(k % 2, w, "key {k} written by the wrong writer");
                        let seq = v >> 20;
                        let p = progress[w as usize].load(Ordering::SeqCst);
                        assert!(seq >= 1 && seq <= p, "seq {seq} not written yet ({p})");
                        seq
                    };
                    let mut last = vec![0u64; KEYS as usize];
                    let mut rounds = 0u64;
                    while !done.load(Ordering::Acquire) {
                        rounds += 1;
                        let m = map.pin();
                        if rounds % 8 == r {
                            let mut values = HashSet::new();
                            for (k, v) in m.iter() {
                                check(*k, *v);
                                assert!(values.insert(*v), "entry {v:#x} iterated twice");
                            }
                        } else {
                            for k in 0..KEYS {
                                if let Some((rk, v)) = m.get_key_value(&k) {
                                    assert_eq!(*rk, k);
                                    let seq = check(k, *v);
                                    // Single writer per key, sequence numbers increase.
                                    assert!(seq >= last[k as usize], "key {k} went back in time");
                                    last[k as usize] = seq;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        // Wait for writers (they are the other scoped threads): spin on progress.
        while progress.iter().any(|p| p.load(Ordering::SeqCst) < WRITES) {
            std::thread::yield_now();
        }
        // The writers may still be finishing their last operation; readers keep going until
        // the scope joins them after `done`.
        done.store(true, Ordering::Release);
        for r in readers {
            r.join().unwrap();
        }
    });
    quiescent_contents(&map);
}

/// Keys inserted before the threads start and never touched must be found by every lookup
/// and every iteration, while other threads insert and remove enough keys to force many
/// growths and cleanup migrations, and run retain calls that keep the stable keys.
#[test]
fn stable_keys_always_visible_during_migrations() {
    const STABLE: u64 = 300;
    let map: HashMap<u64, u64> = small();
    for k in 0..STABLE {
        map.insert(k, k + 1);
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let map = &map;
                s.spawn(move || {
                    let mut rng = Rng::new(7 + t);
                    let base = STABLE + t * 1_000_000;
                    for n in 0..12_000u64 {
                        let k = base + n;
                        map.insert(k, k + 1);
                        if n % 3 != 0 {
                            map.remove(&(base + rng.below(n + 1)));
                        }
                        if t == 0 && n % 3000 == 2999 {
                            map.retain(|k, _| *k < STABLE || k % 2 == 0);
                        }
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (map, done) = (&map, &done);
                s.spawn(move || {
                    let mut round = 0u64;
                    while !done.load(Ordering::Acquire) || round < 3 {
                        round += 1;
                        let m = map.pin();
                        if (round + r) % 4 == 0 {
                            let mut found = vec![false; STABLE as usize];
                            for (k, v) in m.iter() {
                                assert_eq!(*v, k + 1);
                                if *k < STABLE {
                                    assert!(!found[*k as usize], "stable key {k} iterated twice");
                                    found[*k as usize] = true;
                                }
                            }
                            let missing: Vec<_> =
                                (0..STABLE).filter(|k| !found[*k as usize]).collect();
                            assert!(missing.is_empty(), "iteration missed {missing:?}");
                        } else {
                            for k in 0..STABLE {
                                assert_eq!(m.get(&k), Some(&(k + 1)), "lookup missed {k}");
                                assert!(m.contains_key(&k));
                            }
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for r in readers {
            r.join().unwrap();
        }
    });
    let contents = quiescent_contents(&map);
    assert!((0..STABLE).all(|k| contents[&k] == k + 1));
}

/// Free-for-all churn on 64 shared keys with every write operation, including clear and
/// retain, then a quiescent consistency check; repeated with a terrible hasher.
#[test]
fn churn_then_consistent() {
    fn churn<S: BuildHasher + Sync>(map: HashMap<u64, u64, S>, keys: u64, ops: u64) {
        std::thread::scope(|s| {
            for t in 0..THREADS as u64 {
                let map = &map;
                s.spawn(move || {
                    let mut rng = Rng::new(t * 3 + keys);
                    for n in 0..ops {
                        let k = rng.below(keys);
                        let m = map.pin();
                        match rng.below(12) {
                            0..=3 => {
                                m.insert(k, k);
                            }
                            4..=6 => {
                                m.remove(&k);
                            }
                            7 => {
                                m.update_or_insert(k, |v| *v, k);
                            }
                            8 => {
                                m.compute(k, |v| match v {
                                    Some(_) => None,
                                    None => Some(k),
                                });
                            }
                            9 => {
                                m.get_or_insert(k, k);
                            }
                            10 if n % 50 == 0 => m.retain(|k, _| k % 3 != 0),
                            11 if n % 400 == 0 => m.clear(),
                            _ => {
                                if let Some(v) = m.get(&k) {
                                    assert_eq!(*v, k);
                                }
                            }
                        }
                    }
                });
            }
        });
        let contents = quiescent_contents(&map);
        assert!(contents.iter().all(|(k, v)| k == v && *k < keys));
        // And the map still works normally.
        let m = map.pin();
        m.clear();
        assert!(m.is_empty() && m.iter().count() == 0);
        for k in 0..keys {
            assert_eq!(m.insert(k, k), None);
        }
        assert_eq!(m.len() as u64, keys);
    }
    churn(small(), 64, 6000);
    churn(small(), 4096, 6000);
    churn(
        HashMap::with_capacity_and_hasher(64, BadHash(Badness::SameTag)),
        64,
        2000,
    );
}

#[test]
fn churn_clustered_hasher() {
    let map = HashMap::with_capacity_and_hasher(64, BadHash(Badness::Few(2)));
    std::thread::scope(|s| {
        for t in 0..THREADS as u64 {
            let map = &map;
            s.spawn(move || {
                let mut rng = Rng::new(t);
                for _ in 0..2000 {
                    let k = rng.below(64);
                    if rng.below(2) == 0 {
                        map.insert(k, k);
                    } else {
                        map.remove(&k);
                    }
                }
            });
        }
    });
    quiescent_contents(&map);
}

/// Concurrent `Extend` through shared references, plus `clear_mut` after the threads end.
#[test]
fn shared_extend() {
    let mut map: HashMap<u64, u64> = small();
    std::thread::scope(|s| {
        for t in 0..THREADS as u64 {
            let map = &map;
            s.spawn(move || {
                let mut r = map;
                r.extend((0..3000).map(|i| (i * THREADS as u64 + t, t)));
            });
        }
    });
    let contents = quiescent_contents(&map);
    assert_eq!(contents.len(), 3000 * THREADS);
    assert!(contents.iter().all(|(k, v)| k % THREADS as u64 == *v));
    map.clear_mut();
    assert!(map.is_empty() && map.pin().iter().count() == 0);
}
