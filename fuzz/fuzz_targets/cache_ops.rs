//! Fuzzing of `linemap::Cache` against an exact model kept in step by the eviction listener.
//!
//! Which entry CLOCK evicts is the cache's business; everything else is checkable. The
//! model holds, for every key, the value the cache should hold (with its version, weight,
//! deadline and last hit). Every value that leaves the cache is reported by the listener,
//! and the model drops it then, after checking that it was there and that the cause fits
//! (`Expired` only for an entry that may have expired, `Capacity`/`Replaced` only for one
//! that may still be live). Everything the cache answers is then predicted exactly: `get`,
//! `contains_key`, `remove(_versioned)`, `insert_versioned`'s verdict, whether a loader runs,
//! `len`, `weight`, `purge_expired`'s count, `retain`'s visits. The run is single-threaded
//! and deterministic (a [`ManualClock`] that only the input moves).
//!
//! Checked after every operation:
//! * `len() <= capacity`, `len()` equals the model's count, and with a weigher
//!   `weight() <= budget` and equals the model's total;
//! * an expired entry is never returned (`get`, loaders, `remove`, `retain`'s visits);
//! * for a key, the version `get` returns never goes backwards, unless the key left the
//!   cache or was overwritten by a plain (version 0) insert in between;
//! * every value that leaves is reported to the listener exactly once, with a fitting cause;
//!   a value is refused (reported `Capacity` by its own insert) only when the cache has
//!   capacity 0 or the value is heavier than the whole budget.
//!
//! At the end (after `clear()`, or after dropping the cache), every value ever handed to the
//! cache is accounted for exactly once: reported gone, refused by a version check (dropped
//! silently, as documented), or still present when the cache was dropped; and, once the
//! epoch collector has run, every value clone the cache made has been dropped (no leak, no
//! double drop).
//!
//! Input layout (`arbitrary`, integers little-endian, missing bytes read as zero):
//!
//! ```text
//! header: capacity u8, flags u8, budget u8, ttl u8, tti u8, keys u8, hasher u8   (7 bytes)
//! op:     code u8, key u8, a u8, b u8                                          (4 bytes each)
//! ```
//!
//! `cargo fuzz fmt cache_ops FILE` prints the decoded configuration and operations.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use linemap::cache::{ManualClock, RemovalCause};
use linemap::Cache;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type K = u16;

/// Operations decoded from one input at most.
const MAX_OPS: usize = 1024;
/// Nanoseconds per clock unit: the clock moves in whole milliseconds.
const MS: u64 = 1_000_000;
/// "No deadline".
const NEVER: u64 = u64::MAX;
/// Time-to-live choices of `insert_with_ttl` and the builder (in ms; `u64::MAX`: never).
const TTLS: [u64; 8] = [0, 1, 2, 5, 16, 50, 400, u64::MAX];

// ---------------------------------------------------------------------------------------
// Values: an id unique per insert, a version and a weight; live instances are counted.
// ---------------------------------------------------------------------------------------

/// Value instances alive (created or cloned, not yet dropped). Goes back to 0 at the end
/// of a run once the epoch collector has freed what the cache retired.
static LIVE: AtomicI64 = AtomicI64::new(0);

#[derive(Debug, PartialEq, Eq)]
struct Val {
    id: u32,
    ver: u16,
    w: u8,
}

impl Val {
    fn new(id: u32, ver: u16, w: u8) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Val { id, ver, w }
    }
}

impl Clone for Val {
    fn clone(&self) -> Self {
        Val::new(self.id, self.ver, self.w)
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        let before = LIVE.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "a value was dropped more often than created");
    }
}

// ---------------------------------------------------------------------------------------
// Hashers: the default one, and colliding ones for long probe chains in the bounded table.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashKind {
    Foldhash,
    /// Every key hashes to the same value.
    Constant,
    /// `mix(key % 3)`: full-hash collisions of unequal keys.
    Few,
    /// The key itself: consecutive buckets, one tag.
    Identity,
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Clone, Debug)]
struct FuzzState {
    kind: HashKind,
    fold: foldhash::fast::FixedState,
}

struct FuzzHasher {
    kind: HashKind,
    fold: foldhash::fast::FoldHasher<'static>,
    acc: u64,
}

impl BuildHasher for FuzzState {
    type Hasher = FuzzHasher;
    fn build_hasher(&self) -> FuzzHasher {
        FuzzHasher {
            kind: self.kind,
            fold: self.fold.build_hasher(),
            acc: 0,
        }
    }
}

impl Hasher for FuzzHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.fold.write(bytes);
        for &b in bytes {
            self.acc = self.acc.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u16(&mut self, i: u16) {
        self.fold.write_u16(i);
        self.acc = self.acc.rotate_left(16) ^ u64::from(i);
    }
    fn finish(&self) -> u64 {
        match self.kind {
            HashKind::Foldhash => self.fold.finish(),
            HashKind::Constant => 0x9E37_79B9_7F4A_7C15,
            HashKind::Few => mix(self.acc % 3),
            HashKind::Identity => self.acc,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------

#[derive(Arbitrary)]
struct RawHeader {
    capacity: u8,
    flags: u8,
    budget: u8,
    ttl: u8,
    tti: u8,
    keys: u8,
    hasher: u8,
}

#[derive(Arbitrary)]
struct RawOp {
    code: u8,
    key: u8,
    a: u8,
    b: u8,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Weight `w` (ignored without a weigher).
    Insert {
        k: K,
        w: u8,
    },
    InsertWithTtl {
        k: K,
        w: u8,
        ttl_ms: u64,
    },
    InsertVersioned {
        k: K,
        w: u8,
        ver: u16,
    },
    Remove {
        k: K,
    },
    RemoveVersioned {
        k: K,
        ver: u16,
    },
    Get {
        k: K,
    },
    ContainsKey {
        k: K,
    },
    GetOrInsertWith {
        k: K,
        w: u8,
    },
    /// The loader returns `Err`.
    GetOrTryInsertErr {
        k: K,
    },
    /// The loader returns `Ok`.
    GetOrTryInsertOk {
        k: K,
        w: u8,
    },
    PurgeExpired,
    /// Keeps the entries where `(k * 7 + id + salt) % modulus != 0`.
    Retain {
        modulus: u8,
        salt: u8,
    },
    Clear,
    Advance {
        ms: u64,
    },
    /// `contains_key` of every key, `len`, `weight`.
    Check,
    /// Inserts keys `k..k + n` (fills the cache: eviction).
    InsertRange {
        k: K,
        n: u8,
        w: u8,
    },
    /// `get` of keys `k..k + n` (sets reference bits).
    GetRange {
        k: K,
        n: u8,
    },
}

#[derive(Debug)]
struct Config {
    capacity: usize,
    /// `Some(budget)`: a weigher (weight = the value's `w`).
    budget: Option<u64>,
    /// Builder's time-to-live in ms (`u64::MAX`: never).
    ttl_ms: Option<u64>,
    /// Builder's time-to-idle in ms (a multiple of 16).
    tti_ms: Option<u64>,
    /// Keys are `0..keys`.
    keys: u16,
    hasher: HashKind,
    /// End by dropping the cache (`true`) or by `clear()` first.
    end_by_drop: bool,
}

#[derive(Debug)]
struct Input {
    config: Config,
    ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let h = RawHeader::arbitrary(u)?;
        let keys = 1 + u16::from(h.keys % 96);
        let config = Config {
            capacity: usize::from(h.capacity % 65),
            // Capacity 0 with a weigher included: it panicked once (a bug this target found;
            // tests/cache.rs `capacity_zero_with_a_weigher_stores_nothing`).
            budget: (h.flags & 1 != 0).then_some(u64::from(h.budget)),
            ttl_ms: (h.flags & 2 != 0).then_some(TTLS[usize::from(h.ttl % 8)]),
            tti_ms: (h.flags & 4 != 0).then_some(16 * (1 + u64::from(h.tti % 16))),
            keys,
            hasher: [
                HashKind::Foldhash,
                HashKind::Constant,
                HashKind::Few,
                HashKind::Identity,
            ][usize::from(h.hasher % 4)],
            end_by_drop: h.flags & 8 != 0,
        };
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            let r = RawOp::arbitrary(u)?;
            let k = K::from(r.key) % keys;
            let w = r.a % 16;
            ops.push(match r.code % 32 {
                0..=3 => Op::Insert { k, w },
                4 | 5 => Op::InsertWithTtl {
                    k,
                    w,
                    ttl_ms: TTLS[usize::from(r.b % 8)],
                },
                6..=8 => Op::InsertVersioned {
                    k,
                    w,
                    ver: u16::from(r.b % 16),
                },
                9 => Op::Remove { k },
                10 => Op::RemoveVersioned {
                    k,
                    ver: u16::from(r.b % 16),
                },
                11..=13 => Op::Get { k },
                14 => Op::ContainsKey { k },
                15 | 16 => Op::GetOrInsertWith { k, w },
                17 => Op::GetOrTryInsertErr { k },
                18 => Op::GetOrTryInsertOk { k, w },
                19 => Op::PurgeExpired,
                20 => Op::Retain {
                    modulus: 2 + r.a % 4,
                    salt: r.b,
                },
                21 => Op::Clear,
                22..=24 => Op::Advance {
                    ms: u64::from(r.a % 32) * [1, 1, 4, 25][usize::from(r.b % 4)],
                },
                25 => Op::Check,
                26 | 27 => Op::InsertRange { k, n: r.b % 80, w },
                28 | 29 => Op::GetRange { k, n: r.b % 80 },
                _ => Op::Get { k },
            });
        }
        Ok(Input { config, ops })
    }
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Slot {
    id: u32,
    ver: u16,
    w: u8,
    /// TTL deadline (ns on the clock), [`NEVER`] for none.
    expires: u64,
    /// Last insert or hit (ns): the idle deadline is between `touched + tti * 15/16` and
    /// `touched + tti` (documented: an entry may expire once idle for 15/16 of its
    /// time-to-idle, never later than the time-to-idle).
    touched: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Live,
    Expired,
    /// Only with a time-to-idle: idle for between 15/16 and all of it.
    Either,
}

type Event = (K, u32, u16, RemovalCause);

struct Harness {
    cfg: Config,
    cache: Option<Cache<K, Val, FuzzState>>,
    clock: Arc<ManualClock>,
    events: Arc<Mutex<Vec<Event>>>,
    model: BTreeMap<K, Slot>,
    /// Highest version `get` returned per key since the key last changed hands.
    seen_ver: BTreeMap<K, u16>,
    next_id: u32,
    /// Every id handed to the cache, and how each ended.
    handed: BTreeSet<u32>,
    reported: BTreeSet<u32>,
    refused_version: BTreeSet<u32>,
}

impl Harness {
    fn new(cfg: Config) -> Self {
        let clock = Arc::new(ManualClock::new());
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let log = Arc::clone(&events);
        let mut b = Cache::builder(cfg.capacity)
            .hasher(FuzzState {
                kind: cfg.hasher,
                fold: foldhash::fast::FixedState::with_seed(7),
            })
            .clock(Arc::clone(&clock))
            .eviction_listener(move |k: &K, v: &Val, cause| {
                log.lock().unwrap().push((*k, v.id, v.ver, cause))
            });
        if let Some(ms) = cfg.ttl_ms {
            b = b.time_to_live(ttl_duration(ms));
        }
        if let Some(ms) = cfg.tti_ms {
            b = b.time_to_idle(Duration::from_millis(ms));
        }
        if let Some(budget) = cfg.budget {
            b = b.weigher(budget, |_: &K, v: &Val| u32::from(v.w));
        }
        let cache = b.build();
        assert_eq!(cache.capacity(), cfg.capacity);
        Harness {
            cfg,
            cache: Some(cache),
            clock,
            events,
            model: BTreeMap::new(),
            seen_ver: BTreeMap::new(),
            next_id: 0,
            handed: BTreeSet::new(),
            reported: BTreeSet::new(),
            refused_version: BTreeSet::new(),
        }
    }

    fn cache(&self) -> &Cache<K, Val, FuzzState> {
        self.cache.as_ref().expect("cache")
    }

    fn now(&self) -> u64 {
        u64::try_from(linemap::cache::Clock::now(&*self.clock).as_nanos()).unwrap()
    }

    fn life(&self, s: &Slot) -> Life {
        let now = self.now();
        if now >= s.expires {
            return Life::Expired;
        }
        match self.cfg.tti_ms {
            None => Life::Live,
            Some(ms) => {
                let tti = ms * MS;
                let idle = now - s.touched;
                if idle >= tti {
                    Life::Expired
                } else if idle < tti - tti / 16 {
                    Life::Live
                } else {
                    Life::Either
                }
            }
        }
    }

    fn life_of(&self, k: K) -> Option<Life> {
        self.model.get(&k).map(|s| self.life(s))
    }

    /// A fresh value for `k`; its deadline is that of an insert now with `ttl_ms`.
    fn fresh(&mut self, w: u8, ver: u16) -> Val {
        self.next_id += 1;
        self.handed.insert(self.next_id);
        Val::new(self.next_id, ver, w)
    }

    fn deadline(&self, ttl_ms: Option<u64>) -> u64 {
        match ttl_ms.or(self.cfg.ttl_ms) {
            None | Some(u64::MAX) => NEVER,
            Some(ms) => self.now().saturating_add(ms * MS),
        }
    }

    /// Whether the cache must refuse a value of weight `w` for want of room.
    fn too_big(&self, w: u8) -> bool {
        self.cfg.capacity == 0 || self.cfg.budget.is_some_and(|b| u64::from(w) > b)
    }

    /// Applies the listener's reports since the last call to the model. `new` is the id of
    /// the value the current operation handed to the cache (it may be refused: reported
    /// `Capacity` at once); `clearing` allows `Removed` for expired entries. Returns the
    /// events.
    fn drain(&mut self, op: &Op, new: Option<u32>, clearing: bool) -> Vec<Event> {
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        for &(k, id, ver, cause) in &events {
            assert!(
                self.reported.insert(id),
                "{op:?}: value {id} of key {k} reported twice ({cause:?})"
            );
            if Some(id) == new && self.model.get(&k).is_none_or(|s| s.id != id) {
                assert_eq!(cause, RemovalCause::Capacity, "{op:?}: new value {id}");
                let w = self.weight_of_new(op);
                assert!(
                    self.too_big(w),
                    "{op:?}: value {id} (weight {w}) refused although the cache has capacity {} and budget {:?}",
                    self.cfg.capacity,
                    self.cfg.budget
                );
                continue;
            }
            let slot = self.model.get(&k);
            assert!(
                slot.is_some_and(|s| s.id == id),
                "{op:?}: listener reported value {id} (v{ver}) of key {k} ({cause:?}), but the cache holds {slot:?}"
            );
            let slot = slot.unwrap();
            assert_eq!(slot.ver, ver, "{op:?}: version of the reported value");
            let life = self.life(slot);
            match cause {
                RemovalCause::Expired => assert_ne!(
                    life,
                    Life::Live,
                    "{op:?}: live value {id} of key {k} reported expired"
                ),
                RemovalCause::Capacity | RemovalCause::Replaced => assert_ne!(
                    life,
                    Life::Expired,
                    "{op:?}: expired value {id} of key {k} reported {cause:?}"
                ),
                RemovalCause::Removed => assert!(
                    clearing || life != Life::Expired,
                    "{op:?}: expired value {id} of key {k} reported removed"
                ),
            }
            self.model.remove(&k);
            self.seen_ver.remove(&k);
        }
        events
    }

    fn weight_of_new(&self, op: &Op) -> u8 {
        match *op {
            Op::Insert { w, .. }
            | Op::InsertWithTtl { w, .. }
            | Op::InsertVersioned { w, .. }
            | Op::GetOrInsertWith { w, .. }
            | Op::GetOrTryInsertOk { w, .. }
            | Op::InsertRange { w, .. } => w,
            _ => 0,
        }
    }

    /// After an operation that handed value `id` (weight `w`) to the cache for key `k`,
    /// and whose reports were drained: the model stores it unless it was refused.
    fn stored(&mut self, k: K, id: u32, ver: u16, w: u8, expires: u64) {
        if self.reported.contains(&id) {
            return;
        }
        let now = self.now();
        self.model.insert(
            k,
            Slot {
                id,
                ver,
                w,
                expires,
                touched: now,
            },
        );
    }

    /// A hit at `k` (a returned value): check it and record the touch.
    fn hit(&mut self, op: &Op, k: K, got: &Val) {
        let now = self.now();
        let slot = self
            .model
            .get(&k)
            .unwrap_or_else(|| panic!("{op:?}: returned {got:?} for key {k}, which is absent"));
        assert_eq!(
            (slot.id, slot.ver, slot.w),
            (got.id, got.ver, got.w),
            "{op:?}: wrong value for key {k}"
        );
        assert_ne!(
            self.life(slot),
            Life::Expired,
            "{op:?}: expired value returned"
        );
        self.model.get_mut(&k).expect("present").touched = now;
        let seen = self.seen_ver.entry(k).or_insert(got.ver);
        assert!(
            got.ver >= *seen,
            "{op:?}: version of key {k} went back from {seen} to {}",
            got.ver
        );
        *seen = got.ver;
    }

    /// A miss at `k` (`None` returned): the model must agree; an expired entry was reported.
    fn miss(&self, op: &Op, k: K, life_before: Option<Life>) {
        assert!(
            matches!(life_before, None | Some(Life::Expired) | Some(Life::Either)),
            "{op:?}: live key {k} not found"
        );
        assert!(
            !self.model.contains_key(&k),
            "{op:?}: key {k} missed but not reported gone"
        );
    }

    fn insert_one(&mut self, op: &Op, k: K, w: u8, ttl_ms: Option<u64>) {
        let v = self.fresh(w, 0);
        let id = v.id;
        let expires = self.deadline(ttl_ms);
        match ttl_ms {
            None => self.cache().insert(k, v),
            Some(ms) => self.cache().insert_with_ttl(k, v, ttl_duration(ms)),
        }
        let events = self.drain(op, Some(id), false);
        // The key's old value (if any) left as Replaced or Expired, nothing else of it.
        for &(ek, _, _, cause) in &events {
            if ek == k && cause != RemovalCause::Expired {
                assert!(
                    cause == RemovalCause::Replaced || self.reported.contains(&id),
                    "{op:?}: old value of key {k} reported {cause:?}"
                );
            }
        }
        self.stored(k, id, 0, w, expires);
        // A plain insert resets the version.
        self.seen_ver.remove(&k);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Insert { k, w } => self.insert_one(&op, k, w, None),
            Op::InsertWithTtl { k, w, ttl_ms } => self.insert_one(&op, k, w, Some(ttl_ms)),
            Op::InsertRange { k, n, w } => {
                for i in 0..u16::from(n) {
                    let key = (k + i) % self.cfg.keys;
                    self.insert_one(&op, key, w, None);
                    self.check_counts(&op);
                }
            }
            Op::InsertVersioned { k, w, ver } => {
                let life = self.life_of(k);
                let old_ver = self.model.get(&k).map(|s| s.ver);
                let v = self.fresh(w, ver);
                let id = v.id;
                let expires = self.deadline(None);
                let ok = self.cache().insert_versioned(k, v, u64::from(ver));
                self.drain(&op, Some(id), false);
                let refused_for_room = self.reported.contains(&id);
                if ok {
                    assert!(!refused_for_room, "{op:?}: stored and refused");
                    // Stored over an older version, an expired entry or nothing.
                    match (life, old_ver) {
                        (Some(Life::Live), Some(old)) => assert!(
                            ver > old,
                            "{op:?}: version {ver} stored over live version {old}"
                        ),
                        _ => {}
                    }
                    self.stored(k, id, ver, w, expires);
                } else if !refused_for_room {
                    // Refused by the version check: the live entry is as new or newer, and
                    // is still there; the value was dropped without a report.
                    let s = self
                        .model
                        .get(&k)
                        .unwrap_or_else(|| panic!("{op:?}: refused, but key {k} is absent"));
                    assert!(
                        ver <= s.ver,
                        "{op:?}: version {ver} refused over version {}",
                        s.ver
                    );
                    assert_ne!(self.life(s), Life::Expired, "{op:?}: refused by expired");
                    self.refused_version.insert(id);
                }
            }
            Op::Remove { k } => {
                let life = self.life_of(k);
                let want = self.model.get(&k).map(|s| (s.id, s.ver, s.w));
                let got = self.cache().remove(&k);
                let events = self.drain(&op, None, false);
                match got {
                    Some(v) => {
                        assert_eq!(Some((v.id, v.ver, v.w)), want, "{op:?}");
                        assert_ne!(life, Some(Life::Expired), "{op:?}: expired value returned");
                        assert_eq!(events.len(), 1, "{op:?}: {events:?}");
                        assert_eq!(events[0].3, RemovalCause::Removed, "{op:?}");
                    }
                    None => {
                        assert!(
                            matches!(life, None | Some(Life::Expired) | Some(Life::Either)),
                            "{op:?}: live key not removed"
                        );
                        if want.is_some() {
                            assert_eq!(events.len(), 1, "{op:?}: {events:?}");
                            assert_eq!(events[0].3, RemovalCause::Expired, "{op:?}");
                        }
                    }
                }
                assert!(!self.model.contains_key(&k), "{op:?}: still in the model");
            }
            Op::RemoveVersioned { k, ver } => {
                let life = self.life_of(k);
                let old_ver = self.model.get(&k).map(|s| s.ver);
                let removed = self.cache().remove_versioned(&k, u64::from(ver));
                let events = self.drain(&op, None, false);
                match (life, old_ver) {
                    (None, _) => assert!(!removed && events.is_empty(), "{op:?}"),
                    (Some(Life::Live), Some(old)) => {
                        assert_eq!(removed, old <= ver, "{op:?}: stored version {old}");
                        assert_eq!(self.model.contains_key(&k), !removed, "{op:?}");
                    }
                    (Some(Life::Expired), _) => {
                        assert!(!removed, "{op:?}: an expired entry counts as not removed");
                        assert!(!self.model.contains_key(&k), "{op:?}: expired stays");
                    }
                    _ => {}
                }
            }
            Op::Get { k } => self.get(&op, k),
            Op::GetRange { k, n } => {
                for i in 0..u16::from(n) {
                    self.get(&op, (k + i) % self.cfg.keys);
                }
            }
            Op::ContainsKey { k } => {
                let life = self.life_of(k);
                let got = self.cache().contains_key(&k);
                match life {
                    None | Some(Life::Expired) => assert!(!got, "{op:?}"),
                    Some(Life::Live) => assert!(got, "{op:?}"),
                    Some(Life::Either) => {}
                }
                assert!(self.drain(&op, None, false).is_empty(), "{op:?}: reports");
            }
            Op::GetOrInsertWith { k, w } => {
                let life = self.life_of(k);
                let v = self.fresh(w, 0);
                let id = v.id;
                let expires = self.deadline(None);
                let mut called = false;
                let got = self.cache().get_or_insert_with(k, || {
                    called = true;
                    v
                });
                self.drain(&op, Some(id), false);
                if called {
                    assert_eq!(got.id, id, "{op:?}: the loaded value is returned");
                    self.miss(&op, k, life);
                    self.stored(k, id, 0, w, expires);
                    self.seen_ver.remove(&k);
                } else {
                    // The unused value never reached the cache.
                    self.handed.remove(&id);
                    self.hit(&op, k, &got);
                }
            }
            Op::GetOrTryInsertErr { k } => {
                let life = self.life_of(k);
                let mut called = false;
                let r: Result<Val, ()> = self.cache().get_or_try_insert_with(k, || {
                    called = true;
                    Err(())
                });
                self.drain(&op, None, false);
                match r {
                    Ok(got) => {
                        assert!(!called, "{op:?}");
                        self.hit(&op, k, &got);
                    }
                    Err(()) => {
                        assert!(called, "{op:?}");
                        self.miss(&op, k, life);
                    }
                }
            }
            Op::GetOrTryInsertOk { k, w } => {
                let life = self.life_of(k);
                let v = self.fresh(w, 0);
                let id = v.id;
                let expires = self.deadline(None);
                let mut called = false;
                let r: Result<Val, ()> = self.cache().get_or_try_insert_with(k, || {
                    called = true;
                    Ok(v)
                });
                self.drain(&op, Some(id), false);
                let got = r.expect("the loader cannot fail");
                if called {
                    assert_eq!(got.id, id, "{op:?}");
                    self.miss(&op, k, life);
                    self.stored(k, id, 0, w, expires);
                } else {
                    self.handed.remove(&id);
                    self.hit(&op, k, &got);
                }
            }
            Op::PurgeExpired => {
                let must: Vec<K> = self
                    .model
                    .iter()
                    .filter(|(_, s)| self.life(s) == Life::Expired)
                    .map(|(k, _)| *k)
                    .collect();
                let n = self.cache().purge_expired();
                let events = self.drain(&op, None, false);
                assert_eq!(n, events.len(), "{op:?}: count vs reports");
                assert!(
                    events.iter().all(|e| e.3 == RemovalCause::Expired),
                    "{op:?}: {events:?}"
                );
                for k in must {
                    assert!(!self.model.contains_key(&k), "{op:?}: key {k} stays");
                }
            }
            Op::Retain { modulus, salt } => {
                let keeps = move |k: K, id: u32| {
                    (u32::from(k) * 7 + id + u32::from(salt)) % u32::from(modulus) != 0
                };
                let mut visited = Vec::new();
                self.cache().retain(|k, v| {
                    visited.push((*k, v.id));
                    keeps(*k, v.id)
                });
                // Expired entries go first (reported Expired) and are not visited.
                self.drain(&op, None, false);
                visited.sort_unstable();
                for &(k, id) in &visited {
                    assert!(
                        self.reported.contains(&id)
                            || self.model.get(&k).is_some_and(|s| s.id == id),
                        "{op:?}: visited value {id} of key {k} that is not in the cache"
                    );
                    if keeps(k, id) {
                        assert!(self.model.contains_key(&k), "{op:?}: kept key {k} gone");
                    } else {
                        assert!(!self.model.contains_key(&k), "{op:?}: key {k} stays");
                    }
                }
                let mut want: Vec<(K, u32)> = visited
                    .iter()
                    .filter(|(k, id)| keeps(*k, *id))
                    .copied()
                    .collect();
                want.sort_unstable();
                let have: Vec<(K, u32)> = self.model.iter().map(|(k, s)| (*k, s.id)).collect();
                assert_eq!(have, want, "{op:?}: what stays");
            }
            Op::Clear => {
                self.cache().clear();
                self.drain(&op, None, true);
                assert!(self.model.is_empty(), "{op:?}: left {:?}", self.model);
                assert!(self.cache().is_empty(), "{op:?}");
            }
            Op::Advance { ms } => self.clock.advance(Duration::from_millis(ms)),
            Op::Check => {
                for k in 0..self.cfg.keys {
                    let got = self.cache().contains_key(&k);
                    match self.life_of(k) {
                        None | Some(Life::Expired) => assert!(!got, "{op:?}: key {k}"),
                        Some(Life::Live) => assert!(got, "{op:?}: key {k}"),
                        Some(Life::Either) => {}
                    }
                }
            }
        }
        self.check_counts(&op);
    }

    fn get(&mut self, op: &Op, k: K) {
        let life = self.life_of(k);
        let got = self.cache().get(&k);
        let events = self.drain(op, None, false);
        match got {
            Some(v) => {
                assert!(events.is_empty(), "{op:?}: {events:?}");
                self.hit(op, k, &v);
            }
            None => {
                self.miss(op, k, life);
                if life.is_some() {
                    assert_eq!(events.len(), 1, "{op:?}: {events:?}");
                    assert_eq!(events[0].3, RemovalCause::Expired, "{op:?}");
                }
            }
        }
    }

    fn check_counts(&self, op: &Op) {
        let cache = self.cache();
        assert!(
            cache.len() <= self.cfg.capacity,
            "{op:?}: len {} over capacity {}",
            cache.len(),
            self.cfg.capacity
        );
        assert_eq!(cache.len(), self.model.len(), "{op:?}: len");
        if let Some(budget) = self.cfg.budget {
            let want: u64 = self.model.values().map(|s| u64::from(s.w)).sum();
            assert_eq!(cache.weight(), want, "{op:?}: weight");
            assert!(cache.weight() <= budget, "{op:?}: weight over budget");
        } else {
            assert_eq!(cache.weight(), 0, "{op:?}: weight without a weigher");
        }
    }

    /// Ends the run: every value handed over is accounted for exactly once, and after the
    /// epoch collector ran no value instance is left.
    fn finish(mut self) {
        let op = Op::Check;
        if !self.cfg.end_by_drop {
            self.cache().clear();
            self.drain(&op, None, true);
            assert!(self.model.is_empty());
        }
        let present: BTreeSet<u32> = self.model.values().map(|s| s.id).collect();
        drop(self.cache.take());
        assert!(
            self.events.lock().unwrap().is_empty(),
            "dropping the cache called the listener"
        );
        let mut accounted = BTreeSet::new();
        for set in [&self.reported, &self.refused_version, &present] {
            for &id in set {
                assert!(accounted.insert(id), "value {id} accounted for twice");
            }
        }
        assert_eq!(
            accounted, self.handed,
            "values handed to the cache vs accounted for"
        );
        flush_epoch();
        assert_eq!(
            LIVE.load(Ordering::Relaxed),
            0,
            "value instances still alive after the cache was dropped and the epoch flushed"
        );
    }
}

fn ttl_duration(ms: u64) -> Duration {
    if ms == u64::MAX {
        Duration::MAX
    } else {
        Duration::from_millis(ms)
    }
}

/// Pushes the global epoch forward until the retired entries are freed (single-threaded:
/// each pin-and-flush can advance it and collect garbage two epochs old).
fn flush_epoch() {
    for i in 0..1024 {
        if i >= EPOCH_FLUSHES && LIVE.load(Ordering::Relaxed) == 0 {
            return;
        }
        crossbeam_epoch::pin().flush();
    }
}

/// Pin-and-flush rounds at least (as in map_ops: so that a run frees about what it
/// allocated and libFuzzer does not rerun every input under LeakSanitizer).
const EPOCH_FLUSHES: usize = 128;

fn run(input: Input) {
    LIVE.store(0, Ordering::Relaxed);
    let mut h = Harness::new(input.config);
    for op in input.ops {
        h.apply(op);
    }
    h.finish();
}

fuzz_target!(|input: Input| run(input));
