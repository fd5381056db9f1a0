//! Differential tests: random operation sequences run against `linemap::HashMap` and
//! `std::collections::HashMap`, comparing every result, the length after every step and the
//! full contents at checkpoints and at the end.

mod common;

use common::{BadHash, Badness};
use linemap::HashMap;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::cell::Cell;
use std::collections::HashMap as StdMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

#[derive(Clone, Debug)]
enum Compute {
    /// Store this value whatever the current state.
    Set(u32),
    /// Add to the value if present; keep absent otherwise.
    Add(u32),
    /// Remove (or keep absent).
    Remove,
    /// Remove if present, insert this value if absent.
    Toggle(u32),
}

#[derive(Clone, Debug)]
enum Op {
    /// `HashMapRef::insert`.
    Insert(u16, u32),
    /// `HashMap::insert`.
    InsertOwned(u16, u32),
    Get(u16),
    GetOwned(u16),
    GetKeyValue(u16),
    ContainsKey(u16),
    ContainsKeyOwned(u16),
    Remove(u16),
    RemoveOwned(u16),
    RemoveEntry(u16),
    GetOrInsert(u16, u32),
    GetOrInsertWith(u16, u32),
    GetOrInsertWithOwned(u16, u32),
    Update(u16, u32),
    UpdateOwned(u16, u32),
    UpdateOrInsert(u16, u32, u32),
    UpdateOrInsertOwned(u16, u32, u32),
    Compute(u16, Compute),
    /// Keep the entries for which `(key + value) % modulus != residue`.
    Retain(u8, u8),
    RetainOwned(u8, u8),
    Clear,
    ClearOwned,
    ClearMut,
    /// Compare the full contents.
    Check,
}

fn compute_strategy() -> impl Strategy<Value = Compute> {
    prop_oneof![
        any::<u32>().prop_map(Compute::Set),
        any::<u32>().prop_map(Compute::Add),
        Just(Compute::Remove),
        any::<u32>().prop_map(Compute::Toggle),
    ]
}

/// Operations on keys `0..keys`. `churn` weights removals up (tombstones, cleanup copies);
/// `clears` enables the whole-map operations.
fn op_strategy(keys: u16, churn: u32, clears: bool) -> BoxedStrategy<Op> {
    let k = 0..keys;
    let v = any::<u32>();
    // Without clears, their slots become extra checks (a weight may not be zero).
    let or_check = move |op: Op| if clears { op } else { Op::Check };
    prop_oneof![
        12 => (k.clone(), v).prop_map(|(k, v)| Op::Insert(k, v)),
        6 => (k.clone(), v).prop_map(|(k, v)| Op::InsertOwned(k, v)),
        4 => k.clone().prop_map(Op::Get),
        2 => k.clone().prop_map(Op::GetOwned),
        2 => k.clone().prop_map(Op::GetKeyValue),
        2 => k.clone().prop_map(Op::ContainsKey),
        1 => k.clone().prop_map(Op::ContainsKeyOwned),
        2 + 2 * churn => k.clone().prop_map(Op::Remove),
        1 + churn => k.clone().prop_map(Op::RemoveOwned),
        1 + churn => k.clone().prop_map(Op::RemoveEntry),
        3 => (k.clone(), v).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        3 => (k.clone(), v).prop_map(|(k, v)| Op::GetOrInsertWith(k, v)),
        1 => (k.clone(), v).prop_map(|(k, v)| Op::GetOrInsertWithOwned(k, v)),
        3 => (k.clone(), v).prop_map(|(k, v)| Op::Update(k, v)),
        1 => (k.clone(), v).prop_map(|(k, v)| Op::UpdateOwned(k, v)),
        3 => (k.clone(), v, v).prop_map(|(k, d, v)| Op::UpdateOrInsert(k, d, v)),
        1 => (k.clone(), v, v)
            .prop_map(|(k, d, v)| Op::UpdateOrInsertOwned(k, d, v)),
        4 + churn => (k.clone(), compute_strategy()).prop_map(|(k, c)| Op::Compute(k, c)),
        1 => (2u8..8, 0u8..8).prop_map(|(m, r)| Op::Retain(m, r % m)),
        1 => (2u8..8, 0u8..8).prop_map(|(m, r)| Op::RetainOwned(m, r % m)),
        1 => Just(or_check(Op::Clear)),
        1 => Just(or_check(Op::ClearOwned)),
        1 => Just(or_check(Op::ClearMut)),
        2 => Just(Op::Check),
    ]
    .boxed()
}

fn ops(keys: u16, churn: u32, clears: bool, len: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op_strategy(keys, churn, clears), 1..len)
}

/// Keeps only the operations that build up the map (no removals or clears), so that a long
/// sequence makes the map grow through many migrations.
fn growth_ops(keys: u16, len: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            32 => (0..keys, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            8 => (0..keys, any::<u32>()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
            8 => (0..keys, any::<u32>(), any::<u32>())
                .prop_map(|(k, d, v)| Op::UpdateOrInsert(k, d, v)),
            8 => (0..keys).prop_map(Op::Get),
            4 => (0..keys).prop_map(Op::Remove),
            1 => Just(Op::Check),
        ],
        1..len,
    )
}

fn keep(k: u16, v: u32, m: u8, r: u8) -> bool {
    (u32::from(k).wrapping_add(v)) % u32::from(m) != u32::from(r)
}

/// Compares the whole contents of `map` with `model`, through every reading API.
fn check_contents<S: BuildHasher>(
    map: &HashMap<u16, u32, S>,
    model: &StdMap<u16, u32>,
) -> Result<(), TestCaseError> {
    let m = map.pin();
    let mut want: Vec<(u16, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    want.sort_unstable();

    let it = m.iter();
    prop_assert_eq!(it.len(), model.len(), "iter().len()");
    let mut got: Vec<(u16, u32)> = it.map(|(k, v)| (*k, *v)).collect();
    got.sort_unstable();
    prop_assert_eq!(&got, &want, "iter() contents");

    let mut keys: Vec<u16> = m.keys().copied().collect();
    keys.sort_unstable();
    let want_keys: Vec<u16> = want.iter().map(|(k, _)| *k).collect();
    prop_assert_eq!(keys, want_keys, "keys()");

    let mut values: Vec<u32> = m.values().copied().collect();
    values.sort_unstable();
    let mut want_values: Vec<u32> = want.iter().map(|(_, v)| *v).collect();
    want_values.sort_unstable();
    prop_assert_eq!(values, want_values, "values()");

    for (k, v) in &want {
        prop_assert_eq!(m.get(k), Some(v), "get({}) of a present key", k);
        prop_assert_eq!(m.get_key_value(k), Some((k, v)));
    }
    prop_assert_eq!(m.len(), model.len());
    prop_assert_eq!(m.is_empty(), model.is_empty());
    // Growth is triggered by probe overflows, so `len` may exceed `capacity` a little; the
    // capacity is never zero.
    prop_assert!(map.capacity() > 0);
    Ok(())
}

/// Runs `ops` on `map` (whatever its hasher) and on a std map; every result must agree.
fn run<S: BuildHasher>(map: &mut HashMap<u16, u32, S>, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model: StdMap<u16, u32> = StdMap::new();
    for (step, op) in ops.iter().enumerate() {
        let calls = Cell::new(0u32);
        match op.clone() {
            Op::Insert(k, v) => {
                prop_assert_eq!(map.pin().insert(k, v).copied(), model.insert(k, v));
            }
            Op::InsertOwned(k, v) => {
                prop_assert_eq!(map.insert(k, v), model.insert(k, v));
            }
            Op::Get(k) => {
                prop_assert_eq!(map.pin().get(&k).copied(), model.get(&k).copied());
            }
            Op::GetOwned(k) => {
                prop_assert_eq!(map.get(&k), model.get(&k).copied());
            }
            Op::GetKeyValue(k) => {
                let m = map.pin();
                prop_assert_eq!(m.get_key_value(&k), model.get_key_value(&k));
            }
            Op::ContainsKey(k) => {
                prop_assert_eq!(map.pin().contains_key(&k), model.contains_key(&k));
            }
            Op::ContainsKeyOwned(k) => {
                prop_assert_eq!(map.contains_key(&k), model.contains_key(&k));
            }
            Op::Remove(k) => {
                prop_assert_eq!(map.pin().remove(&k).copied(), model.remove(&k));
            }
            Op::RemoveOwned(k) => {
                prop_assert_eq!(map.remove(&k), model.remove(&k));
            }
            Op::RemoveEntry(k) => {
                let m = map.pin();
                let got = m.remove_entry(&k).map(|(k, v)| (*k, *v));
                prop_assert_eq!(got, model.remove_entry(&k));
            }
            Op::GetOrInsert(k, v) => {
                prop_assert_eq!(*map.pin().get_or_insert(k, v), *model.entry(k).or_insert(v));
            }
            Op::GetOrInsertWith(k, v) => {
                let absent = !model.contains_key(&k);
                let m = map.pin();
                let got = *m.get_or_insert_with(k, || {
                    calls.set(calls.get() + 1);
                    v
                });
                prop_assert_eq!(got, *model.entry(k).or_insert(v));
                prop_assert_eq!(calls.get(), u32::from(absent), "make() calls");
            }
            Op::GetOrInsertWithOwned(k, v) => {
                let absent = !model.contains_key(&k);
                let got = map.get_or_insert_with(k, || {
                    calls.set(calls.get() + 1);
                    v
                });
                prop_assert_eq!(got, *model.entry(k).or_insert(v));
                prop_assert_eq!(calls.get(), u32::from(absent), "make() calls");
            }
            Op::Update(k, d) => {
                let want = model.get_mut(&k).map(|x| {
                    *x = x.wrapping_add(d);
                    *x
                });
                let m = map.pin();
                let got = m.update(&k, |x| {
                    calls.set(calls.get() + 1);
                    x.wrapping_add(d)
                });
                prop_assert_eq!(got.copied(), want);
                prop_assert_eq!(calls.get(), u32::from(want.is_some()), "f calls");
            }
            Op::UpdateOwned(k, d) => {
                let want = model.get_mut(&k).map(|x| {
                    *x = x.wrapping_add(d);
                    *x
                });
                prop_assert_eq!(map.update(&k, |x| x.wrapping_add(d)), want);
            }
            Op::UpdateOrInsert(k, d, v) => {
                let present = model.contains_key(&k);
                let want = *model
                    .entry(k)
                    .and_modify(|x| *x = x.wrapping_add(d))
                    .or_insert(v);
                let m = map.pin();
                let got = *m.update_or_insert(
                    k,
                    |x| {
                        calls.set(calls.get() + 1);
                        x.wrapping_add(d)
                    },
                    v,
                );
                prop_assert_eq!(got, want);
                prop_assert_eq!(calls.get(), u32::from(present), "f calls");
            }
            Op::UpdateOrInsertOwned(k, d, v) => {
                let want = *model
                    .entry(k)
                    .and_modify(|x| *x = x.wrapping_add(d))
                    .or_insert(v);
                prop_assert_eq!(map.update_or_insert(k, |x| x.wrapping_add(d), v), want);
            }
            Op::Compute(k, c) => {
                let before = model.get(&k).copied();
                let after = match (&c, before) {
                    (Compute::Set(v), _) => Some(*v),
                    (Compute::Add(d), b) => b.map(|x| x.wrapping_add(*d)),
                    (Compute::Remove, _) => None,
                    (Compute::Toggle(v), b) => match b {
                        Some(_) => None,
                        None => Some(*v),
                    },
                };
                match after {
                    Some(v) => model.insert(k, v),
                    None => model.remove(&k),
                };
                let m = map.pin();
                let seen = Cell::new(None);
                let got = m.compute(k, |cur| {
                    calls.set(calls.get() + 1);
                    seen.set(Some(cur.copied()));
                    match &c {
                        Compute::Set(v) => Some(*v),
                        Compute::Add(d) => cur.map(|x| x.wrapping_add(*d)),
                        Compute::Remove => None,
                        Compute::Toggle(v) => match cur {
                            Some(_) => None,
                            None => Some(*v),
                        },
                    }
                });
                prop_assert_eq!(got.copied(), after);
                prop_assert_eq!(seen.get(), Some(before), "compute saw the current value");
                prop_assert_eq!(calls.get(), 1, "f calls");
            }
            Op::Retain(md, r) => {
                let mut visited = Vec::new();
                map.pin().retain(|k, v| {
                    visited.push((*k, *v));
                    keep(*k, *v, md, r)
                });
                visited.sort_unstable();
                let mut want: Vec<(u16, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
                want.sort_unstable();
                prop_assert_eq!(visited, want, "retain visits each entry once");
                model.retain(|k, v| keep(*k, *v, md, r));
            }
            Op::RetainOwned(md, r) => {
                map.retain(|k, v| keep(*k, *v, md, r));
                model.retain(|k, v| keep(*k, *v, md, r));
            }
            Op::Clear => {
                map.pin().clear();
                model.clear();
            }
            Op::ClearOwned => {
                map.clear();
                model.clear();
            }
            Op::ClearMut => {
                let cap = map.capacity();
                map.clear_mut();
                prop_assert_eq!(map.capacity(), cap, "clear_mut keeps the capacity");
                model.clear();
            }
            Op::Check => check_contents(map, &model)?,
        }
        prop_assert_eq!(map.len(), model.len(), "len after step {}: {:?}", step, op);
        prop_assert_eq!(map.is_empty(), model.is_empty());
    }
    check_contents(map, &model)?;

    // The derived traits agree with the contents too.
    let expect: HashMap<u16, u32> = model.iter().map(|(k, v)| (*k, *v)).collect();
    let copy: HashMap<u16, u32> = map.pin().iter().map(|(k, v)| (*k, *v)).collect();
    prop_assert!(copy == expect, "collected copy differs from the model");
    Ok(())
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// An empty map: one bucket, grown by every workload.
fn fresh() -> HashMap<u16, u32> {
    HashMap::new()
}

proptest! {
    #![proptest_config(config(64))]

    /// Eight keys and heavy remove churn: the buckets fill with tombstones and are cleaned by
    /// same-size migrations again and again.
    #[test]
    fn tiny_key_space_churn(ops in ops(8, 4, true, 250)) {
        run(&mut fresh(), &ops)?;
    }

    /// 64 keys: a few growths, plenty of replace/remove churn.
    #[test]
    fn small_key_space(ops in ops(64, 2, true, 300)) {
        run(&mut fresh(), &ops)?;
    }

    /// Every operation, including the clears, with the deterministic SipHash hasher.
    #[test]
    fn small_key_space_sip(ops in ops(40, 1, true, 300)) {
        let mut map = HashMap::with_hasher(BuildHasherDefault::<DefaultHasher>::default());
        run(&mut map, &ops)?;
    }

    /// Presized maps of any size behave the same as grown ones.
    #[test]
    fn presized(cap in 0usize..2000, ops in ops(256, 1, true, 400)) {
        let mut map = HashMap::with_capacity(cap);
        prop_assert!(map.capacity() >= cap);
        run(&mut map, &ops)?;
    }

    /// A hasher that gives every key the same tag (top seven bits) but distinct home
    /// buckets: every tag in a bucket matches, so every lookup compares keys.
    #[test]
    fn same_tag_hasher(ops in ops(200, 2, true, 400)) {
        run(&mut HashMap::with_hasher(BadHash(Badness::SameTag)), &ops)?;
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// Up to 2000 keys: many doublings (16 buckets to 512).
    #[test]
    fn large_key_space_growth(ops in growth_ops(2000, 2500)) {
        run(&mut fresh(), &ops)?;
    }

    /// A large key space with every operation mixed in.
    #[test]
    fn large_key_space_mixed(ops in ops(1000, 1, false, 1500)) {
        run(&mut fresh(), &ops)?;
    }
}

fn bad_hash() -> impl Strategy<Value = Badness> {
    prop_oneof![
        Just(Badness::Constant),
        (1u64..5).prop_map(Badness::Few),
        Just(Badness::SameTag),
        Just(Badness::SameBucket),
    ]
}

// Terrible hashers: one long probe chain (constant), a handful of chains (few), equal tags
// in distinct buckets, distinct tags in one bucket.
proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn terrible_hasher_small(bad in bad_hash(), ops in ops(48, 2, true, 400)) {
        run(&mut HashMap::with_hasher(BadHash(bad)), &ops)?;
    }

    #[test]
    fn terrible_hasher_growth(bad in bad_hash(), ops in growth_ops(300, 600)) {
        run(&mut HashMap::with_hasher(BadHash(bad)), &ops)?;
    }

    #[test]
    fn terrible_hasher_churn(bad in bad_hash(), ops in ops(150, 4, false, 600)) {
        // Presized: chains of tombstones in a bigger table.
        run(&mut HashMap::with_capacity_and_hasher(64, BadHash(bad)), &ops)?;
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// `with_capacity(n)` reports at least `n`.
    #[test]
    fn with_capacity_is_at_least_requested(cap in 0usize..100_000) {
        let map: HashMap<u8, u8> = HashMap::with_capacity(cap);
        prop_assert!(map.capacity() >= cap);
        let map: HashMap<u8, u8, _> = HashMap::with_capacity_and_hasher(cap, BadHash(Badness::Constant));
        prop_assert!(map.capacity() >= cap);
    }

    /// FromIterator and Extend agree with std (duplicates: the last value wins).
    #[test]
    fn from_iter_and_extend(
        first in prop::collection::vec((0u16..200, any::<u32>()), 0..300),
        second in prop::collection::vec((0u16..200, any::<u32>()), 0..300),
    ) {
        let mut model: StdMap<u16, u32> = first.iter().copied().collect();
        let mut map: HashMap<u16, u32> = first.iter().copied().collect();
        check_contents(&map, &model)?;
        model.extend(second.iter().copied());
        map.extend(second.iter().copied());
        check_contents(&map, &model)?;
        let mut shared = HashMap::new();
        {
            let mut r = &shared;
            r.extend(first.iter().copied());
            r.extend(second.iter().copied());
        }
        prop_assert!(shared == map);
        shared.clear_mut();
        prop_assert!(shared.is_empty());
        prop_assert_eq!(shared == map, model.is_empty());
    }

    /// References returned by one long-lived handle stay valid and unchanged while the
    /// entries they point into are replaced, removed and migrated.
    #[test]
    fn references_outlive_removal_while_pinned(
        ops in prop::collection::vec((0u16..64, any::<bool>()), 1..600),
    ) {
        let map: HashMap<u16, Box<u64>> = HashMap::new();
        let m = map.pin();
        let mut held: Vec<(&Box<u64>, u64)> = Vec::new();
        let mut next = 0u64;
        for (k, remove) in ops {
            if remove {
                if let Some(v) = m.remove(&k) {
                    held.push((v, **v));
                }
            } else {
                next += 1;
                let v = m.insert(k, Box::new(next)).map(|v| (v, **v));
                held.extend(v);
                let cur = m.get(&k).expect("just inserted");
                held.push((cur, next));
            }
        }
        for (r, v) in held {
            prop_assert_eq!(**r, v);
        }
    }
}

#[test]
fn borrowed_lookups() {
    let map: HashMap<String, Vec<u8>> = HashMap::new();
    let m = map.pin();
    m.insert("alpha".to_string(), b"a".to_vec());
    m.insert("beta".to_string(), b"b".to_vec());
    assert_eq!(m.get("alpha").map(Vec::as_slice), Some(&b"a"[..]));
    assert!(m.contains_key("beta"));
    assert!(!m.contains_key("gamma"));
    assert_eq!(
        m.get_key_value("beta"),
        Some((&"beta".to_string(), &b"b".to_vec()))
    );
    assert_eq!(map.get("beta"), Some(b"b".to_vec()));
    assert!(map.contains_key("alpha"));
    assert_eq!(
        m.remove_entry("alpha"),
        Some((&"alpha".to_string(), &b"a".to_vec()))
    );
    assert_eq!(m.remove("alpha"), None);
    assert_eq!(map.remove("beta"), Some(b"b".to_vec()));
    assert!(m.is_empty());

    // Byte-slice lookups of Vec<u8> keys, through growth.
    let map: HashMap<Vec<u8>, usize> = HashMap::new();
    for i in 0..500usize {
        map.insert(i.to_le_bytes().to_vec(), i);
    }
    let m = map.pin();
    for i in 0..500usize {
        assert_eq!(m.get(&i.to_le_bytes()[..]), Some(&i));
    }
    assert_eq!(m.get(&[1u8][..]), None);
}

#[test]
fn replacing_insert_stores_the_new_key() {
    // Equal keys that are distinguishable: the documented behaviour is that the whole
    // entry is replaced, so the stored key becomes the inserted one.
    #[derive(Debug, Clone)]
    struct K(u32, &'static str);
    impl PartialEq for K {
        fn eq(&self, o: &Self) -> bool {
            self.0 == o.0
        }
    }
    impl Eq for K {}
    impl std::hash::Hash for K {
        fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
            self.0.hash(h)
        }
    }
    let map = HashMap::new();
    let m = map.pin();
    m.insert(K(1, "first"), 1);
    assert_eq!(m.insert(K(1, "second"), 2), Some(&1));
    assert_eq!(
        m.get_key_value(&K(1, "")).map(|(k, v)| (k.1, *v)),
        Some(("second", 2))
    );
    // get_or_insert keeps the stored key.
    m.get_or_insert(K(1, "third"), 3);
    assert_eq!(m.get_key_value(&K(1, "")).map(|(k, _)| k.1), Some("second"));
}

#[test]
fn debug_output() {
    let empty: HashMap<u8, u8> = HashMap::new();
    assert_eq!(format!("{empty:?}"), "{}");
    let one: HashMap<&str, u8> = [("k", 7)].into_iter().collect();
    assert_eq!(format!("{one:?}"), r#"{"k": 7}"#);
    let map: HashMap<u32, u32> = (0..20).map(|i| (i, i * i)).collect();
    let s = format!("{map:?}");
    assert!(s.starts_with('{') && s.ends_with('}'), "{s}");
    let mut parts: Vec<&str> = s[1..s.len() - 1].split(", ").collect();
    parts.sort_unstable();
    let mut want: Vec<String> = (0..20).map(|i| format!("{i}: {}", i * i)).collect();
    want.sort_unstable();
    assert_eq!(parts, want);
}

#[test]
fn clone_is_equal_and_independent() {
    let a: HashMap<u32, String> = (0..300).map(|i| (i, i.to_string())).collect();
    a.remove(&7);
    let b = a.clone();
    assert!(a == b);
    assert_eq!(b.len(), 299);
    assert_eq!(b.get(&8).as_deref(), Some("8"));
    assert_eq!(b.get(&7), None);
    b.insert(7, "x".into());
    assert!(a != b);
    assert_eq!(a.get(&7), None);
    a.insert(7, "y".into());
    assert!(a != b, "same keys, different value");
    a.insert(7, "x".into());
    assert!(a == b);
    a.insert(1000, "z".into());
    assert!(a != b, "extra key on one side");
    assert!(b != a, "extra key on the other side");

    // The hasher is cloned too: a clone of a bad-hash map still finds everything.
    let bad: HashMap<u16, u16, BadHash> = HashMap::with_hasher(BadHash(Badness::SameTag));
    for i in 0..100 {
        bad.insert(i, i);
    }
    let bad2 = bad.clone();
    assert!(bad == bad2);
    assert!((0..100).all(|i| bad2.get(&i) == Some(i)));
}

#[test]
fn default_and_constructors() {
    let d: HashMap<u8, u8> = HashMap::default();
    assert!(d.is_empty() && d.capacity() > 0);
    let d: HashMap<u8, u8, BuildHasherDefault<DefaultHasher>> = HashMap::default();
    d.insert(1, 1);
    assert_eq!(d.get(&1), Some(1));
    let c: HashMap<u64, u64> = HashMap::with_capacity(1000);
    assert!(c.capacity() >= 1000);
    let h: HashMap<u64, u64, _> = HashMap::with_capacity_and_hasher(10, BadHash(Badness::SameTag));
    assert!(h.capacity() >= 10);
    let m = h.pin();
    assert!(std::ptr::eq(m.map(), &h));
}

#[test]
#[should_panic(expected = "capacity overflow")]
fn capacity_overflow_half_max() {
    let _m: HashMap<u64, u64> = HashMap::with_capacity(usize::MAX / 2);
}

#[test]
#[should_panic(expected = "capacity overflow")]
fn capacity_overflow_max() {
    let _m: HashMap<u64, u64> = HashMap::with_capacity(usize::MAX);
}

#[test]
#[should_panic(expected = "capacity overflow")]
fn capacity_overflow_table_bytes() {
    // 5/4 of this fits in usize, but the bucket array would exceed isize::MAX bytes.
    let _m: HashMap<u64, u64, _> =
        HashMap::with_capacity_and_hasher(1 << 59, BadHash(Badness::Constant));
}

// ---------------------------------------------------------------------------------------
// Livelock regressions. A livelocked insert spins forever inside the map, so these tests
// detect it without any clock: every retry of the insert compares keys, and the key type
// panics once one operation has made an absurd number of comparisons.

thread_local! {
    static EQ_BUDGET: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// A `u64` key (hashing exactly like `u64`) whose `eq` panics when the budget set by
/// [`with_eq_budget`] runs out.
#[derive(Debug, Clone, Copy)]
struct Budgeted(u64);

impl std::hash::Hash for Budgeted {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialEq for Budgeted {
    fn eq(&self, other: &Self) -> bool {
        EQ_BUDGET.with(|b| {
            let left = b.get();
            assert!(
                left > 0,
                "eq budget exhausted: the operation keeps retrying (livelock)"
            );
            b.set(left - 1);
        });
        self.0 == other.0
    }
}

impl Eq for Budgeted {}

fn with_eq_budget<R>(budget: u64, f: impl FnOnce() -> R) -> R {
    EQ_BUDGET.with(|b| b.set(budget));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    EQ_BUDGET.with(|b| b.set(u64::MAX));
    r.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Regression (fixed in 01a185f): inserting 8 keys that share their home bucket into a
/// table smaller than 8 buckets never returned. The 8th insert overflowed the 1-bucket table,
/// which doubled to 2 and then 4 buckets; there the 7 copies filled their home bucket again,
/// the retried insert overflowed it (limit `max(buckets >> 2, 1)` = 1) and live 7 < 40% of
/// 28 slots made `start_migration` choose a same-size "cleanup" copy, with no tombstones to
/// clean: the copy reproduced the layout and the loop never ended. The default hasher hit
/// this by chance (8 of the first ~11 keys in one of 4 buckets) in a noticeable fraction of
/// runs; a constant hash hits it always, and makes every retry compare keys (the budget).
#[test]
fn regression_livelock_small_table() {
    let map: HashMap<Budgeted, u64, BadHash> = HashMap::with_hasher(BadHash(Badness::Constant));
    for k in 0..8 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_eq_budget(100_000, || map.insert(Budgeted(k), k))
        }));
        assert!(r.is_ok(), "insert #{} never finished", k + 1);
    }
    assert_eq!(map.len(), 8);
    assert!((0..8).all(|k| map.get(&Budgeted(k)) == Some(k)));
}

/// Regression (fixed in 01a185f): with a clustered hash, inserts livelocked at any table
/// size once `place_copy` counted the overflow flags it sets: after a same-size copy of a
/// long chain the counter sat at the limit, the retried insert overflowed one more bucket,
/// live was still < 40% of the slots, and another same-size copy recreated the same state.
#[test]
fn regression_livelock_clustered_hash_presized() {
    let map: HashMap<Budgeted, u64, BadHash> =
        HashMap::with_capacity_and_hasher(64, BadHash(Badness::Constant));
    for k in 0..200 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_eq_budget(1_000_000, || map.insert(Budgeted(k), k))
        }));
        assert!(r.is_ok(), "insert of key {k} never finished");
    }
    assert_eq!(map.len(), 200);
    assert!((0..200).all(|k| map.get(&Budgeted(k)) == Some(k)));
}
