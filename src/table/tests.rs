use super::*;
use crate::sync::pin;

/// splitmix64's finaliser: a well-mixed stand-in for the map's hasher.
fn mix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn raw_insert(t: &RawTable<u64, u64>, k: u64, v: u64) -> Option<u64> {
    let g = pin();
    let h = mix(k);
    let mut e = Some(Box::new(Entry { key: k, value: v }));
    let (old, _) = t.rmw(
        h,
        |x| *x == k,
        |_, spare| Op::Put(spare.or_else(|| e.take()).unwrap()),
        &|x: &u64| mix(*x),
        &g,
    );
    old.map(|e| e.value)
}

fn raw_get(t: &RawTable<u64, u64>, k: u64) -> Option<u64> {
    let g = pin();
    let h = mix(k);
    t.find(h, |x| *x == k, &g).map(|e| e.value)
}

fn raw_remove(t: &RawTable<u64, u64>, k: u64) -> Option<u64> {
    let g = pin();
    let h = mix(k);
    let (old, _) = t.rmw(
        h,
        |x| *x == k,
        |cur, _| if cur.is_some() { Op::Remove } else { Op::Keep },
        &|x: &u64| mix(*x),
        &g,
    );
    old.map(|e| e.value)
}

#[test]
fn insert_get_remove_with_growth() {
    let t = RawTable::with_capacity(0);
    for k in 0..10_000 {
        assert_eq!(raw_insert(&t, k, k + 1), None);
    }
    assert_eq!(t.len(), 10_000);
    for k in 0..10_000 {
        assert_eq!(raw_get(&t, k), Some(k + 1));
    }
    assert_eq!(raw_get(&t, 10_000), None);
    for k in 0..10_000 {
        assert_eq!(raw_insert(&t, k, k + 2), Some(k + 1));
    }
    for k in (0..10_000).step_by(2) {
        assert_eq!(raw_remove(&t, k), Some(k + 2));
    }
    assert_eq!(t.len(), 5_000);
    for k in 0..10_000 {
        assert_eq!(raw_get(&t, k), if k % 2 == 0 { None } else { Some(k + 2) });
    }
}

#[test]
fn churn_does_not_grow_without_bound() {
    // Insert and remove fresh keys forever with at most 100 live: tombstones must be cleaned
    // by same-size migrations rather than doubling the table each time.
    let t = RawTable::with_capacity(100);
    for k in 0..200_000u64 {
        raw_insert(&t, k, k);
        if k >= 100 {
            assert_eq!(raw_remove(&t, k - 100), Some(k - 100));
        }
    }
    let g = pin();
    assert!(
        t.table(&g).len() <= 64,
        "table grew to {} buckets",
        t.table(&g).len()
    );
    assert_eq!(t.len(), 100);
}

#[test]
fn growth_happens_near_target_load() {
    // Record the load at which each doubling starts.
    let t = RawTable::with_capacity(0);
    let mut loads = vec![];
    let mut buckets = {
        let g = pin();
        t.table(&g).len()
    };
    for k in 0..200_000u64 {
        raw_insert(&t, k, k);
        let g = pin();
        let now = t.table(&g).len();
        if now != buckets {
            loads.push(k as f64 / (buckets * SLOTS) as f64);
            buckets = now;
        }
    }
    eprintln!("growth loads: {loads:.3?}");
    let big: Vec<f64> = loads.iter().copied().skip(6).collect();
    assert!(!big.is_empty());
    for l in &big {
        assert!((0.6..=0.95).contains(l), "grew at load {l:.3}: {loads:?}");
    }
}

#[test]
fn concurrent_inserts_keep_keys_unique() {
    let t = RawTable::with_capacity(0);
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let t = &t;
            s.spawn(move || {
                for k in 0..20_000u64 {
                    raw_insert(t, k, th);
                }
            });
        }
    });
    assert_eq!(t.len(), 20_000);
    let g = pin();
    let mut seen = std::collections::HashSet::new();
    t.for_each(&g, |e| {
        assert!(seen.insert(e.key), "duplicate key {}", e.key)
    });
    assert_eq!(seen.len(), 20_000);
}

fn insert_keyed(t: &RawTable<u64, u64>, k: u64, seed: u64) {
    let g = pin();
    let h = mix(k ^ seed.wrapping_mul(0xA24B_AED4_963E_E407));
    let mut e = Some(Box::new(Entry { key: k, value: k }));
    t.rmw(
        h,
        |x| *x == k,
        |_, spare| Op::Put(spare.or_else(|| e.take()).unwrap()),
        &|x: &u64| mix(x ^ seed.wrapping_mul(0xA24B_AED4_963E_E407)),
        &g,
    );
}

#[test]
fn with_capacity_holds_its_capacity_without_growing() {
    // Small tables are where an overflow-count trigger is noisiest: try every size up to 400
    // and a spread of larger ones, each with several hash seeds.
    let sizes = (1..=400usize).chain((401..200_000).step_by(24_989));
    for n in sizes {
        for seed in 0..4u64 {
            let t = RawTable::with_capacity(n);
            let buckets = t.table(&pin()).len();
            assert!(t.capacity(&pin()) >= n);
            for k in 0..n as u64 {
                insert_keyed(&t, k, seed);
            }
            assert_eq!(
                t.table(&pin()).len(),
                buckets,
                "with_capacity({n}) grew (seed {seed})"
            );
        }
    }
}
