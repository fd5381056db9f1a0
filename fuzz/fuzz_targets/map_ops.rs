//! Differential fuzzing of `linemap::HashMap` against `std::collections::HashMap`.
//!
//! The input is decoded into a hasher choice, an initial capacity and a sequence of
//! operations. Each operation is applied to both maps and every result (the values returned
//! by insert, remove, get, get_or_insert, update, compute, ...) must be identical; the
//! contents are compared again after the whole sequence. The run is single-threaded and
//! deterministic: every hasher has a fixed seed taken from the input.
//!
//! Input layout (all fields decoded with `arbitrary`, integers little-endian; missing bytes
//! read as zero):
//!
//! ```text
//! header: hasher u8, capacity u8, seed u32          (6 bytes)
//! op:     code u8, key u8, value u16                (4 bytes, repeated to the end)
//! ```
//!
//! `hasher % 7` picks a [`HashKind`]; several of them collide on purpose so that probing,
//! bucket overflow, tag matching with many candidates and growth/cleaning migrations are
//! exercised with few keys. `code & 31` picks the operation (see [`Op::decode`]),
//! `code & 0x80` the map-level form (pins internally, returns clones) instead of the
//! pinned-handle form, and `(code >> 5) & 3` a variant where an operation has one.
//! `cargo fuzz fmt map_ops FILE` prints the decoded sequence.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hasher};

type K = u16;
type V = u32;
type Model = std::collections::HashMap<K, V, BuildHasherDefault<DefaultHasher>>;
type Map = linemap::HashMap<K, V, FuzzState>;
type Handle<'m> = linemap::HashMapRef<'m, K, V, FuzzState>;

/// Operations decoded from one input at most (4 bytes each: 4 KiB of ops).
const MAX_OPS: usize = 1024;
/// Keys of single-key operations are `0..=255`; range operations start at `key * 4`.
const RANGE_STRIDE: K = 4;
/// A range operation covers at most this many consecutive keys.
const MAX_RANGE: u16 = 64;
/// Every key an input can touch is below this.
const KEY_LIMIT: K = 255 * RANGE_STRIDE + MAX_RANGE;

// ---------------------------------------------------------------------------------------
// Hashers
// ---------------------------------------------------------------------------------------

/// How keys are hashed. The table takes the bucket index from the low bits of the hash and
/// the one-byte tag from the top seven bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashKind {
    /// foldhash (the map's default hasher) with a fixed seed: well spread.
    Foldhash,
    /// std's SipHash-1-3 with zero keys: well spread.
    Sip,
    /// Every key hashes to `seed`: one home bucket, one tag, full-hash collisions.
    Constant,
    /// Low 32 bits fixed, top bits well mixed: one home bucket, many different tags.
    SameBucket,
    /// `key + small seed`: consecutive home buckets, all with the same tag (`0x80`).
    SameTag,
    /// Only a few distinct hash values (`mix(key % n)`): full-hash collisions of unequal keys.
    FewHashes,
    /// A well-mixed hash masked to 3 tag bits and 4 bucket bits: clustered buckets and tags.
    FewBits,
}

const HASH_KINDS: [HashKind; 7] = [
    HashKind::Foldhash,
    HashKind::Sip,
    HashKind::Constant,
    HashKind::SameBucket,
    HashKind::SameTag,
    HashKind::FewHashes,
    HashKind::FewBits,
];

/// splitmix64's finaliser.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The map's `BuildHasher`: one type for every [`HashKind`], so the map type is fixed.
#[derive(Clone, Debug)]
struct FuzzState {
    kind: HashKind,
    seed: u64,
    fold: foldhash::fast::FixedState,
}

impl FuzzState {
    fn new(kind: HashKind, seed: u64) -> Self {
        FuzzState {
            kind,
            seed,
            fold: foldhash::fast::FixedState::with_seed(seed),
        }
    }
}

enum Inner {
    Fold(foldhash::fast::FoldHasher<'static>),
    Sip(DefaultHasher),
    /// The key's bytes, accumulated (a `u16` key is written as two bytes or one `u16`).
    Raw(u64),
}

struct FuzzHasher {
    kind: HashKind,
    seed: u64,
    inner: Inner,
}

impl BuildHasher for FuzzState {
    type Hasher = FuzzHasher;

    fn build_hasher(&self) -> FuzzHasher {
        let inner = match self.kind {
            HashKind::Foldhash => Inner::Fold(self.fold.build_hasher()),
            HashKind::Sip => Inner::Sip(DefaultHasher::new()),
            _ => Inner::Raw(0),
        };
        FuzzHasher {
            kind: self.kind,
            seed: self.seed,
            inner,
        }
    }
}

impl Hasher for FuzzHasher {
    fn write(&mut self, bytes: &[u8]) {
        match &mut self.inner {
            Inner::Fold(h) => h.write(bytes),
            Inner::Sip(h) => h.write(bytes),
            Inner::Raw(acc) => {
                for &b in bytes {
                    *acc = acc.rotate_left(8) ^ u64::from(b);
                }
            }
        }
    }

    fn write_u16(&mut self, i: u16) {
        match &mut self.inner {
            Inner::Fold(h) => h.write_u16(i),
            Inner::Sip(h) => h.write_u16(i),
            Inner::Raw(acc) => *acc = acc.rotate_left(16) ^ u64::from(i),
        }
    }

    fn finish(&self) -> u64 {
        let acc = match &self.inner {
            Inner::Fold(h) => return h.finish(),
            Inner::Sip(h) => return h.finish(),
            Inner::Raw(acc) => *acc,
        };
        let seed = self.seed;
        match self.kind {
            HashKind::Foldhash | HashKind::Sip => unreachable!(),
            HashKind::Constant => seed,
            HashKind::SameBucket => (mix(acc ^ seed) & !0xFFFF_FFFF) | (seed & 0xFFFF_FFFF),
            HashKind::SameTag => acc.wrapping_add(seed & 0xFF),
            HashKind::FewHashes => mix((acc % (2 + (seed >> 8) % 7)) ^ seed),
            HashKind::FewBits => mix(acc ^ seed) & 0xE000_0000_0000_000F,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Input decoding
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary)]
struct RawHeader {
    hasher: u8,
    capacity: u8,
    seed: u32,
}

#[derive(Arbitrary)]
struct RawOp {
    code: u8,
    key: u8,
    value: u16,
}

/// One operation, applied to both maps. `map` selects the map-level method (pins
/// internally, returns clones) over the pinned handle's.
#[derive(Clone, Copy, Debug)]
enum Op {
    Insert {
        k: K,
        v: V,
        map: bool,
    },
    Get {
        k: K,
        map: bool,
    },
    GetKeyValue {
        k: K,
    },
    ContainsKey {
        k: K,
        map: bool,
    },
    Remove {
        k: K,
        map: bool,
    },
    RemoveEntry {
        k: K,
    },
    GetOrInsert {
        k: K,
        v: V,
    },
    GetOrInsertWith {
        k: K,
        v: V,
        map: bool,
    },
    /// `v -> v * 3 + d`.
    Update {
        k: K,
        d: V,
        map: bool,
    },
    /// `v -> v * 3 + d`, or `default` when absent.
    UpdateOrInsert {
        k: K,
        d: V,
        default: V,
        map: bool,
    },
    /// `mode` 0: remove; 1: set `v`; 2: `old + v` if present, else absent;
    /// 3: absent -> `v`, even -> remove, odd -> `old + v`.
    Compute {
        k: K,
        v: V,
        mode: u8,
    },
    /// Keep the entries where `(k * 7 + v + salt) % modulus != 0`.
    Retain {
        modulus: u8,
        salt: u16,
        map: bool,
    },
    Clear {
        map: bool,
    },
    /// Compare `len()` and `is_empty()`.
    Len,
    /// Compare the whole contents (iter, keys, values, len).
    Check,
    /// Insert keys `start..start + n`, value `key + v`.
    InsertRange {
        start: K,
        n: u16,
        v: V,
    },
    /// Remove keys `start..start + n`.
    RemoveRange {
        start: K,
        n: u16,
    },
    /// `Extend` with keys `start..start + n`, value `key ^ v`.
    ExtendRange {
        start: K,
        n: u16,
        v: V,
    },
    /// Replace the map by its `Clone` (checking `==` first).
    CloneMap,
    /// `clear_mut` (needs `&mut`).
    ClearMut,
    /// Replace the map by a new one with capacity `capacity`, filled with `Extend`.
    Rebuild {
        capacity: u16,
    },
    /// Drop the long-lived handle and pin again (lets the epoch free removed entries).
    Repin,
    /// Keep the reference `get(k)` returns until the handle is dropped; it must still read
    /// the same value then, whatever the operations in between removed or replaced
    /// (AddressSanitizer reports it if the entry was freed early).
    Hold {
        k: K,
    },
}

impl Op {
    fn decode(raw: RawOp) -> Op {
        let k = K::from(raw.key);
        let v = V::from(raw.value);
        let map = raw.code & 0x80 != 0;
        let variant = (raw.code >> 5) & 3;
        let start = k * RANGE_STRIDE;
        let n = raw.value % MAX_RANGE;
        match raw.code & 31 {
            0..=2 => Op::Insert { k, v, map },
            3 | 4 => Op::Get { k, map },
            5 => Op::GetKeyValue { k },
            6 => Op::ContainsKey { k, map },
            7 | 8 | 31 => Op::Remove { k, map },
            9 => Op::RemoveEntry { k },
            10 => Op::GetOrInsert { k, v },
            11 => Op::GetOrInsertWith { k, v, map },
            12 => Op::Update { k, d: v, map },
            13 | 14 => Op::UpdateOrInsert {
                k,
                d: v,
                default: v.rotate_left(7),
                map,
            },
            15 | 16 => Op::Compute {
                k,
                v,
                mode: variant,
            },
            17 => Op::Retain {
                modulus: 2 + raw.key % 5,
                salt: raw.value,
                map,
            },
            18 => Op::Clear { map },
            19 => Op::Len,
            20 => Op::Check,
            21 | 22 => Op::InsertRange { start, n, v },
            23 | 24 => Op::RemoveRange { start, n },
            25 => Op::ExtendRange { start, n, v },
            26 => Op::CloneMap,
            27 => Op::ClearMut,
            28 => Op::Rebuild {
                capacity: raw.value % 1024,
            },
            29 => Op::Repin,
            30 => Op::Hold { k },
            _ => unreachable!(),
        }
    }

    /// Whether the operation needs the map itself (not a pinned handle).
    fn needs_owner(&self) -> bool {
        matches!(
            self,
            Op::CloneMap | Op::ClearMut | Op::Rebuild { .. } | Op::Repin
        )
    }
}

#[derive(Debug)]
struct Input {
    hasher: HashKind,
    seed: u64,
    /// `None`: `with_hasher` (the smallest table); `Some(n)`: `with_capacity_and_hasher(n)`.
    capacity: Option<usize>,
    ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let header = RawHeader::arbitrary(u)?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::decode(RawOp::arbitrary(u)?));
        }
        Ok(Input {
            hasher: HASH_KINDS[usize::from(header.hasher) % HASH_KINDS.len()],
            seed: mix(u64::from(header.seed)),
            capacity: match header.capacity {
                0 => None,
                // Mostly tiny tables (1..=31 entries: one to eight buckets), some larger.
                c => Some(if c < 128 {
                    usize::from(c % 32)
                } else {
                    usize::from(c)
                }),
            },
            ops,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------

fn retain_keeps(k: K, v: V, modulus: u8, salt: u16) -> bool {
    (u32::from(k) * 7)
        .wrapping_add(v)
        .wrapping_add(u32::from(salt))
        % u32::from(modulus)
        != 0
}

fn update_fn(d: V) -> impl Fn(&V) -> V {
    move |old| old.wrapping_mul(3).wrapping_add(d)
}

fn compute_fn(mode: u8, v: V) -> impl Fn(Option<&V>) -> Option<V> {
    move |cur| match (mode, cur) {
        (0, _) => None,
        (1, _) => Some(v),
        (2, c) => c.map(|c| c.wrapping_add(v)),
        (_, None) => Some(v),
        (_, Some(c)) if c % 2 == 0 => None,
        (_, Some(c)) => Some(c.wrapping_add(v)),
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort_unstable();
    v
}

/// The whole contents must agree: len, is_empty, iter, keys and values.
fn check_contents(h: &Handle<'_>, model: &Model) {
    let want = sorted(model.iter().map(|(k, v)| (*k, *v)).collect());
    assert_eq!(h.len(), model.len(), "len");
    assert_eq!(h.is_empty(), model.is_empty(), "is_empty");
    assert_eq!(
        sorted(h.iter().map(|(k, v)| (*k, *v)).collect()),
        want,
        "iter"
    );
    let want_keys: Vec<K> = want.iter().map(|(k, _)| *k).collect();
    assert_eq!(sorted(h.keys().copied().collect()), want_keys, "keys");
    let want_values = sorted(want.iter().map(|(_, v)| *v).collect());
    assert_eq!(sorted(h.values().copied().collect()), want_values, "values");
}

/// At most this many references held per handle ([`Op::Hold`]).
const MAX_HELD: usize = 256;

/// Applies one handle-level operation to both maps and compares the results. `held`
/// collects the references of [`Op::Hold`] with the value each read when taken.
fn apply<'h>(h: &'h Handle<'_>, model: &mut Model, op: Op, held: &mut Vec<(&'h V, V)>) {
    let map = h.map();
    match op {
        Op::Insert { k, v, map: false } => {
            assert_eq!(h.insert(k, v).copied(), model.insert(k, v), "{op:?}")
        }
        Op::Insert { k, v, map: true } => {
            assert_eq!(map.insert(k, v), model.insert(k, v), "{op:?}")
        }
        Op::Get { k, map: false } => assert_eq!(h.get(&k), model.get(&k), "{op:?}"),
        Op::Get { k, map: true } => assert_eq!(map.get(&k).as_ref(), model.get(&k), "{op:?}"),
        Op::GetKeyValue { k } => {
            assert_eq!(h.get_key_value(&k), model.get_key_value(&k), "{op:?}")
        }
        Op::ContainsKey { k, map: false } => {
            assert_eq!(h.contains_key(&k), model.contains_key(&k), "{op:?}")
        }
        Op::ContainsKey { k, map: true } => {
            assert_eq!(map.contains_key(&k), model.contains_key(&k), "{op:?}")
        }
        Op::Remove { k, map: false } => {
            assert_eq!(h.remove(&k).copied(), model.remove(&k), "{op:?}")
        }
        Op::Remove { k, map: true } => assert_eq!(map.remove(&k), model.remove(&k), "{op:?}"),
        Op::RemoveEntry { k } => assert_eq!(
            h.remove_entry(&k).map(|(k, v)| (*k, *v)),
            model.remove_entry(&k),
            "{op:?}"
        ),
        Op::GetOrInsert { k, v } => {
            assert_eq!(
                *h.get_or_insert(k, v),
                *model.entry(k).or_insert(v),
                "{op:?}"
            )
        }
        Op::GetOrInsertWith { k, v, map: as_map } => {
            let absent = !model.contains_key(&k);
            let calls = Cell::new(0u32);
            let make = || {
                calls.set(calls.get() + 1);
                v
            };
            let got = if as_map {
                map.get_or_insert_with(k, make)
            } else {
                *h.get_or_insert_with(k, make)
            };
            assert_eq!(got, *model.entry(k).or_insert(v), "{op:?}");
            // Single-threaded, `make` runs exactly when the key was absent.
            assert_eq!(calls.get(), u32::from(absent), "{op:?}: calls of make");
        }
        Op::Update { k, d, map: as_map } => {
            let want = model.get_mut(&k).map(|old| {
                *old = update_fn(d)(old);
                *old
            });
            let got = if as_map {
                map.update(&k, update_fn(d))
            } else {
                h.update(&k, update_fn(d)).copied()
            };
            assert_eq!(got, want, "{op:?}");
        }
        Op::UpdateOrInsert {
            k,
            d,
            default,
            map: as_map,
        } => {
            let want = match model.get_mut(&k) {
                Some(old) => {
                    *old = update_fn(d)(old);
                    *old
                }
                None => {
                    model.insert(k, default);
                    default
                }
            };
            let got = if as_map {
                map.update_or_insert(k, update_fn(d), default)
            } else {
                *h.update_or_insert(k, update_fn(d), default)
            };
            assert_eq!(got, want, "{op:?}");
        }
        Op::Compute { k, v, mode } => {
            let f = compute_fn(mode, v);
            let want = f(model.get(&k));
            match want {
                Some(new) => model.insert(k, new),
                None => model.remove(&k),
            };
            assert_eq!(h.compute(k, &f).copied(), want, "{op:?}");
        }
        Op::Retain {
            modulus,
            salt,
            map: as_map,
        } => {
            let mut seen = Vec::new();
            let keep = |k: &K, v: &V| {
                seen.push(*k);
                retain_keeps(*k, *v, modulus, salt)
            };
            if as_map {
                map.retain(keep);
            } else {
                h.retain(keep);
            }
            // Single-threaded, every entry is tested exactly once.
            let mut want_seen: Vec<K> = model.keys().copied().collect();
            want_seen.sort_unstable();
            assert_eq!(sorted(seen), want_seen, "{op:?}: entries visited");
            model.retain(|k, v| retain_keeps(*k, *v, modulus, salt));
        }
        Op::Clear { map: as_map } => {
            if as_map {
                map.clear();
            } else {
                h.clear();
            }
            model.clear();
            assert!(h.is_empty(), "{op:?}");
        }
        Op::Len => {
            assert_eq!(h.len(), model.len(), "{op:?}");
            assert_eq!(map.len(), model.len(), "{op:?}");
            assert_eq!(h.is_empty(), model.is_empty(), "{op:?}");
        }
        Op::Check => check_contents(h, model),
        Op::Hold { k } => {
            let got = h.get(&k);
            assert_eq!(got, model.get(&k), "{op:?}");
            if let (Some(r), true) = (got, held.len() < MAX_HELD) {
                held.push((r, *r));
            }
        }
        Op::InsertRange { start, n, v } => {
            for k in start..start + n {
                let v = V::from(k).wrapping_add(v);
                assert_eq!(h.insert(k, v).copied(), model.insert(k, v), "{op:?} at {k}");
            }
        }
        Op::RemoveRange { start, n } => {
            for k in start..start + n {
                assert_eq!(h.remove(&k).copied(), model.remove(&k), "{op:?} at {k}");
            }
        }
        Op::ExtendRange { start, n, v } => {
            let items: Vec<(K, V)> = (start..start + n).map(|k| (k, V::from(k) ^ v)).collect();
            let mut target = map;
            target.extend(items.iter().copied());
            model.extend(items);
        }
        Op::CloneMap | Op::ClearMut | Op::Rebuild { .. } | Op::Repin => {
            unreachable!("owner operations are applied by apply_owner")
        }
    }
}

/// Applies an operation that needs the map itself (no handle may be alive).
fn apply_owner(map: &mut Map, model: &mut Model, op: Op) {
    match op {
        Op::CloneMap => {
            let copy = map.clone();
            assert!(copy == *map, "{op:?}: clone differs");
            assert_eq!(copy.len(), model.len(), "{op:?}");
            *map = copy;
        }
        Op::ClearMut => {
            map.clear_mut();
            model.clear();
            assert!(map.is_empty(), "{op:?}");
        }
        Op::Rebuild { capacity } => {
            let capacity = usize::from(capacity);
            let mut fresh = Map::with_capacity_and_hasher(capacity, map.hasher().clone());
            assert!(fresh.capacity() >= capacity, "{op:?}: capacity");
            fresh.extend(model.iter().map(|(k, v)| (*k, *v)));
            *map = fresh;
        }
        Op::Repin => {}
        _ => unreachable!("handle operations are applied by apply"),
    }
}

fn run(input: Input) {
    let state = FuzzState::new(input.hasher, input.seed);
    let mut map = match input.capacity {
        None => Map::with_hasher(state),
        Some(n) => {
            let map = Map::with_capacity_and_hasher(n, state);
            assert!(map.capacity() >= n, "with_capacity({n})");
            map
        }
    };
    let mut model = Model::default();

    // Handle operations run under one long-lived pin, as a batch does in real use; an
    // owner operation ends the batch.
    let mut ops = input.ops.into_iter().peekable();
    while ops.peek().is_some() {
        {
            let h = map.pin();
            let mut held = Vec::new();
            while let Some(op) = ops.next_if(|op| !op.needs_owner()) {
                apply(&h, &mut model, op, &mut held);
            }
            for (r, v) in held {
                assert_eq!(*r, v, "a reference held by the handle changed or was freed");
            }
        }
        if let Some(op) = ops.next() {
            apply_owner(&mut map, &mut model, op);
        }
    }

    {
        let h = map.pin();
        check_contents(&h, &model);
        // Every present key, and the absent ones among the single-key operations' keys and
        // a sample of the range operations' keys.
        let absent = (0..256).chain((256..KEY_LIMIT).step_by(7));
        for k in model.keys().copied().chain(absent) {
            assert_eq!(h.get(&k), model.get(&k), "final get({k})");
        }
    }
    drop(map);
    // Removed entries and old tables are freed by the epoch collector, later. Push the
    // global epoch forward until this run's garbage is freed, so that every run frees about
    // what it allocated: otherwise libFuzzer sees more mallocs than frees in every run and
    // runs a full LeakSanitizer scan after each (about 6x slower here).
    for _ in 0..EPOCH_FLUSHES {
        crossbeam_epoch::pin().flush();
    }
}

/// Pin-and-flush rounds after each run: each can advance the global epoch by one and free
/// a few bags of garbage that are two epochs old.
const EPOCH_FLUSHES: usize = 128;

fuzz_target!(|input: Input| run(input));
