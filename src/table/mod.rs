//! The cache-line table: buckets of one 64-byte line, tags matched with SWAR, lock-free
//! claims, and cooperative migration to a bigger table.
//!
//! This module owns every raw-pointer protocol of the map. `map` only calls the safe-looking
//! entry points here ([`RawTable::find`], [`RawTable::rmw`], [`RawTable::for_each`]) with a
//! pinned [`Guard`].
//!
//! Invariants (see `docs/design.md` for the full argument):
//! 1. A key has at most one LIVE entry across the current table and everything reachable
//!    from it.
//! 2. Slot words only move along the transitions listed in [`slot`]; nothing returns to EMPTY.
//! 3. An inserter claims the *first* EMPTY slot of its probe sequence, so every non-EMPTY slot
//!    before a key's slot was non-EMPTY when the key was placed (this is what makes (1) hold).
//! 4. A bucket's tag byte for a slot is set only after the slot holds an entry, so a tagged
//!    slot is never EMPTY. Tags are hints: a removed entry's TOMBSTONE keeps its tag until the
//!    next migration (readers then load the slot and skip it).
//! 5. Writers act on the table they loaded as current. A writer that started before a
//!    migration may still CAS a slot of the old table; that is safe because freezing is a
//!    CAS on the same word, so either the write lands before the freeze (and is copied) or
//!    the writer's CAS fails and it retries in the new table.

pub(crate) mod slot;
pub(crate) mod tag;

mod migrate;

use crate::counter::StripedCounter;
use crate::reclaim::retire;
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Guard, Ordering};
use crossbeam_utils::CachePadded;
use slot::Slot;
use tag::{match_tag, tag_at, tag_bits, tag_of, untagged, OVERFLOW, SLOTS};

/// One key-value pair, allocated once per insert and never mutated after it is published.
///
/// Replacing a value installs a new entry; the old one is retired through the epoch.
///
/// The hash is not stored: for `u64 -> u64` that keeps an entry at 16 bytes, which glibc
/// places at a 16-byte boundary, so an entry never straddles two cache lines (a stored hash
/// made it 24 bytes and half of all entries straddled). Migration re-hashes keys instead
/// (see `migrate.rs`); lookups compare the 8-bit tag, then the key.
#[repr(align(8))]
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

/// One cache line: a control word of tags and seven slot words.
///
/// ```text
/// offset 0       8       16      24      32      40      48      56      64
///        | ctrl  | slot0 | slot1 | slot2 | slot3 | slot4 | slot5 | slot6 |
/// ```
#[repr(C, align(64))]
pub(crate) struct Bucket<K, V> {
    pub(crate) ctrl: AtomicU64,
    pub(crate) slots: [AtomicPtr<Entry<K, V>>; SLOTS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Bucket<u64, u64>>() == 64);
    assert!(std::mem::align_of::<Bucket<u64, u64>>() == 64);
};

impl<K, V> Bucket<K, V> {
    #[cfg(loom)]
    fn new() -> Self {
        Bucket {
            ctrl: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }
}

/// The largest fraction of buckets allowed to overflow before the table grows, as a shift:
/// `buckets >> OVERFLOW_SHIFT`. With uniform hashes this count is reached below
/// [`GROWTH_LOAD_TENTHS`], so growth starts at a load of 0.8 (see
/// `tests::growth_happens_near_target_load`).
const OVERFLOW_SHIFT: u32 = 2;

/// Fields written during growth, kept off the line that every lookup reads.
#[derive(Default)]
struct GrowthState {
    /// Buckets whose overflow flag has been set; the growth trigger.
    overflows: AtomicUsize,
    /// Next bucket index a migrating thread claims.
    cursor: AtomicUsize,
    /// Old slots whose migration has been finished and counted.
    copied: AtomicUsize,
}

/// One array of buckets, plus the link to the table it is migrating into.
pub(crate) struct Table<K, V> {
    buckets: Box<[Bucket<K, V>]>,
    mask: usize,
    overflow_limit: usize,
    /// The table this one is migrating into; null while none. Set once, by CAS.
    next: AtomicPtr<Table<K, V>>,
    growth: CachePadded<GrowthState>,
}

/// Load (entries per slot, in tenths) that `with_capacity` sizes for, and that `capacity()`
/// reports: below [`GROWTH_LOAD_TENTHS`] and below the load at which the overflow count
/// alone can force growth in small tables, so a table made for `n` entries holds them
/// without growing.
const SIZING_LOAD_TENTHS: usize = 7;

/// Load (in tenths) a table must reach before local crowding (the overflow count) makes it
/// grow: above the sizing load, so a table made by `with_capacity(n)` holds n entries, and
/// high enough that growth from empty keeps memory near papaya's (0.8: after a doubling the
/// load is 0.4, 16-byte entries plus 64/7 bytes per slot; see docs/benchmarks.md). Buckets
/// of seven with linear probing keep most lookups in the home bucket at this load.
const GROWTH_LOAD_TENTHS: usize = 8;

/// Highest load (in tenths) a bounded table (the cache's) is sized for. Every insert of a
/// new key into a full cache takes an EMPTY slot and its eviction leaves a tombstone, so the
/// table copies itself (at the same size, dropping the tombstones) after roughly as many
/// misses as it has free slots; each copy moves every live entry (about 110 instructions
/// each). At the map's 0.7 a 10,000-entry cache had 30 % of its slots free and paid about
/// 550 instructions per miss in copies; at 0.5 or below the copies cost about a quarter of
/// that (`get_or_insert_with` on zipf 0.9 keys: 2,727 -> 1,963 instructions per operation,
/// callgrind, docs/cache-benchmarks.md). The price is memory where the power-of-two
/// rounding left the load between 0.5 and 0.7 (docs/benchmarks.md, bytes per entry).
const BOUNDED_LOAD_TENTHS: usize = 5;

/// Number of buckets needed to hold `capacity` entries at `SIZING_LOAD_TENTHS`, rounded
/// to a power of two. Panics with "capacity overflow" when that cannot be allocated.
pub(crate) fn buckets_for(capacity: usize) -> usize {
    let slots = capacity
        .checked_mul(10)
        .map(|x| x / SIZING_LOAD_TENTHS + 1)
        .expect("capacity overflow");
    let buckets = slots.div_ceil(SLOTS);
    let buckets = buckets
        .checked_next_power_of_two()
        .expect("capacity overflow");
    // A bucket is one 64-byte line; the array must fit in isize::MAX bytes.
    if buckets
        .checked_mul(64)
        .is_none_or(|b| b > isize::MAX as usize)
    {
        panic!("capacity overflow");
    }
    buckets
}

impl<K, V> Table<K, V> {
    /// A table of `buckets` empty buckets (`buckets` a power of two).
    pub(crate) fn new(buckets: usize) -> Self {
        debug_assert!(buckets.is_power_of_two());
        Table {
            buckets: alloc_buckets(buckets),
            mask: buckets - 1,
            overflow_limit: (buckets >> OVERFLOW_SHIFT).max(1),
            next: AtomicPtr::new(std::ptr::null_mut()),
            growth: CachePadded::new(GrowthState::default()),
        }
    }

    /// Number of buckets.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.mask + 1
    }

    /// Entries this table is sized for: its slots at the sizing load.
    pub(crate) fn sized_for(&self) -> usize {
        self.len() * SLOTS * SIZING_LOAD_TENTHS / 10
    }

    /// Entries above which an overflowing table grows (see [`GROWTH_LOAD_TENTHS`]).
    fn grow_at(&self) -> usize {
        self.len() * SLOTS * GROWTH_LOAD_TENTHS / 10
    }

    #[inline]
    fn bucket(&self, i: usize) -> &Bucket<K, V> {
        // SAFETY: every caller masks `i` with `self.mask`, and `buckets.len() == mask + 1`.
        unsafe { self.buckets.get_unchecked(i & self.mask) }
    }

    /// The migration target, if a migration has started.
    #[inline]
    fn next<'g>(&self, _guard: &'g Guard) -> Option<&'g Table<K, V>> {
        // Acquire: pairs with the Release CAS that installed the table, so its buckets are
        // seen initialised.
        let p = self.next.load(Ordering::Acquire);
        // SAFETY: a next table is freed only after it stopped being reachable from the map
        // and every guard that could see it is gone; we hold a guard.
        unsafe { p.as_ref() }
    }

    /// Looks `hash`/`eq` up in this table (following moved slots into later tables).
    #[inline]
    fn find<'g>(
        &'g self,
        hash: u64,
        eq: &mut impl FnMut(&Entry<K, V>) -> bool,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>> {
        // The home bucket is inlined into the caller; probing past it (rare: only when an
        // insert overflowed this bucket) continues out of line.
        let bucket = self.bucket(hash as usize);
        match self.find_in(bucket, hash, eq, guard) {
            Ok(found) => found,
            Err(()) => self.find_overflowed(hash, eq, guard),
        }
    }

    /// Searches one bucket: `Ok(Some)` found, `Ok(None)` certainly absent from the table,
    /// `Err` not here but the bucket overflowed, so the probe must go on.
    #[inline(always)]
    fn find_in<'g>(
        &'g self,
        bucket: &'g Bucket<K, V>,
        hash: u64,
        eq: &mut impl FnMut(&Entry<K, V>) -> bool,
        guard: &'g Guard,
    ) -> Result<Option<&'g Entry<K, V>>, ()> {
        // Acquire: a tag seen here was published by a Release RMW made after the slot word
        // was written, so the slot load below sees that entry (or a later state).
        let ctrl = bucket.ctrl.load(Ordering::Acquire);
        for i in match_tag(ctrl, tag_of(hash)) {
            // Acquire: pairs with the Release CAS that installed the entry, so its fields are
            // initialised.
            let raw = bucket.slots[i].load(Ordering::Acquire);
            // A tag byte is only ever set on a slot that already holds an entry, and slots
            // never return to EMPTY, so a matched slot (an exact match of a non-zero tag,
            // see tag.rs) is never null.
            debug_assert!(!raw.is_null());
            if Slot::is_tagged_live(raw) {
                // SAFETY: the slot held this entry while we are pinned; an entry is retired
                // only after being unlinked, and freed only after every guard that could
                // see it is dropped.
                let e = unsafe { &*raw };
                if eq(e) {
                    return Ok(Some(e));
                }
            } else if let Some(e) = self.find_moved(raw, eq, guard) {
                return Ok(Some(e));
            }
        }
        if ctrl & OVERFLOW == 0 {
            Ok(None)
        } else {
            Err(())
        }
    }

    /// `find` past the home bucket, bounded by the table size.
    #[cold]
    #[inline(never)]
    fn find_overflowed<'g>(
        &'g self,
        hash: u64,
        eq: &mut impl FnMut(&Entry<K, V>) -> bool,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>> {
        let mut b = hash as usize;
        for _ in 1..self.len() {
            b = b.wrapping_add(1);
            if let Ok(found) = self.find_in(self.bucket(b), hash, eq, guard) {
                return found;
            }
        }
        None
    }

    /// The slow half of `find`: a tagged slot that is not LIVE (frozen or moved by a
    /// migration, or just removed).
    #[cold]
    #[inline(never)]
    fn find_moved<'g>(
        &'g self,
        raw: *mut Entry<K, V>,
        eq: &mut impl FnMut(&Entry<K, V>) -> bool,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>> {
        match Slot::decode(raw) {
            Slot::Frozen(p) => {
                // SAFETY: as in `find`: reachable while we are pinned.
                let e = unsafe { &*p };
                eq(e).then_some(e)
            }
            Slot::Copied(Some(j)) => {
                let next = self.next(guard).expect("copied slot without next table");
                next.resolve(j, eq, guard)
            }
            _ => None,
        }
    }

    /// Reads slot `j`, where the previous table committed a copied entry; `Some` if it holds
    /// the key. If the entry copied there is gone and it held our key, the key was removed
    /// after the lookup began (a miss is a valid answer); if not, the caller keeps looking.
    fn resolve<'g>(
        &'g self,
        j: usize,
        eq: &mut impl FnMut(&Entry<K, V>) -> bool,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>> {
        self.entry_at(j, guard).filter(|e| eq(e))
    }

    /// Finds the slot a write for `hash`/`eq` must act on. With `crowded_ok` the overflow
    /// count is not a reason to stop (see [`Probe::Crowded`]).
    fn probe_write<'g>(
        &'g self,
        hash: u64,
        eq: &mut impl FnMut(&Entry<K, V>) -> bool,
        crowded_ok: bool,
    ) -> Probe<'g, K, V> {
        let tag = tag_of(hash);
        let mut b = hash as usize;
        for _ in 0..self.len() {
            let bucket = self.bucket(b);
            // Acquire: as in `find`.
            let ctrl = bucket.ctrl.load(Ordering::Acquire);
            // Slots tagged with our tag: the key, if its tag is published here. Slots with
            // another tag are skipped unread: a tagged slot is never EMPTY (invariant 4) and
            // holds another key or a tombstone. In a bounded table most tagged slots are
            // tombstones, so this is what keeps a write probe over them cheap.
            for i in match_tag(ctrl, tag) {
                // Acquire: as in `find`.
                match Slot::decode(bucket.slots[i].load(Ordering::Acquire)) {
                    Slot::Live(p) => {
                        // SAFETY: as in `find`.
                        if eq(unsafe { &*p }) {
                            return Probe::Found {
                                bucket,
                                i,
                                entry: p,
                            };
                        }
                    }
                    Slot::Frozen(_) | Slot::Copied(_) => return Probe::Moved,
                    Slot::Empty | Slot::Tombstone | Slot::Reserved(_) => {}
                }
            }
            // Untagged slots, in slot order: EMPTY, or an entry whose tag is not published
            // yet (or a migration's state). The first EMPTY one is the first of the probe
            // sequence, since every tagged slot before it is non-EMPTY.
            for i in untagged(ctrl) {
                // Acquire: as in `find`.
                match Slot::decode(bucket.slots[i].load(Ordering::Acquire)) {
                    // Invariant 3: the key cannot be beyond the first EMPTY slot.
                    Slot::Empty => return Probe::Vacant { bucket, i },
                    Slot::Live(p) => {
                        // An insert whose tag is not published yet (or was published after
                        // our read of `ctrl`): it may be our key.
                        #[cfg(loom)]
                        if crate::sync::__loom_knobs::skip_pending() {
                            continue;
                        }
                        // SAFETY: as in `find`.
                        if eq(unsafe { &*p }) {
                            // Help the inserter publish, so that this write is ordered after
                            // its insert for every reader. If it was published meanwhile the
                            // OR changes nothing (the tag is the same).
                            // Release: publishes the slot word to tag readers.
                            bucket.ctrl.fetch_or(tag_bits(i, tag), Ordering::Release);
                            return Probe::Found {
                                bucket,
                                i,
                                entry: p,
                            };
                        }
                    }
                    Slot::Tombstone | Slot::Reserved(_) => {}
                    Slot::Frozen(_) | Slot::Copied(_) => return Probe::Moved,
                }
            }
            if ctrl & OVERFLOW == 0 {
                // Relaxed: the flag only extends later lookups; any ordering with the claim
                // that follows is provided by the claim's own Release.
                let prev = bucket.ctrl.fetch_or(OVERFLOW, Ordering::Relaxed);
                if prev & OVERFLOW == 0 {
                    // Relaxed: a trigger heuristic; exactness is not needed.
                    let n = self.growth.overflows.fetch_add(1, Ordering::Relaxed) + 1;
                    if n >= self.overflow_limit && !crowded_ok {
                        return Probe::Crowded;
                    }
                }
            }
            b = b.wrapping_add(1);
        }
        Probe::Full
    }
}

/// Where a write lands.
enum Probe<'g, K, V> {
    Found {
        bucket: &'g Bucket<K, V>,
        i: usize,
        entry: *mut Entry<K, V>,
    },
    Vacant {
        bucket: &'g Bucket<K, V>,
        i: usize,
    },
    /// The table is migrating: help, then retry in the new one.
    Moved,
    /// The overflow count reached its limit (the growth trigger): the caller decides whether
    /// the table is really full or the overflows are local crowding.
    Crowded,
    /// Every bucket was probed without finding room: start a migration.
    Full,
}

/// What a read-modify-write does with the entry it found.
pub(crate) enum Op<K, V> {
    /// Leave the map as it is.
    Keep,
    /// Install this entry (its key must equal the probed key).
    Put(Box<Entry<K, V>>),
    /// Remove the entry found.
    Remove,
}

/// The map's hash function, for writers that help a migration re-place entries.
pub(crate) type Rehash<'a, K> = &'a dyn Fn(&K) -> u64;

/// What [`RawTable::rmw`] returns: the key's entry before and after the operation.
pub(crate) type Outcome<'g, K, V> = (Option<&'g Entry<K, V>>, Option<&'g Entry<K, V>>);

/// The map's state: the current table and the live count.
pub(crate) struct RawTable<K, V> {
    current: AtomicPtr<Table<K, V>>,
    len: StripedCounter,
    /// The owner bounds the number of live entries below the table's sizing (the cache):
    /// migrations then clean tombstones at the same size instead of doubling.
    bounded: bool,
    /// Entries that `len` does not count (the cache's placeholders for loads in flight), or
    /// `None` when every entry counts (the map). A write that installs, replaces or removes
    /// an entry adjusts `len` by the difference of counted entries, once, after its CAS, so
    /// a placeholder that becomes a value counts from the CAS that stored the value on.
    uncounted: Option<fn(&V) -> bool>,
}

// SAFETY: the raw pointers are owned (tables, entries); sending the RawTable sends the keys
// and values, so they must be Send.
unsafe impl<K: Send, V: Send> Send for RawTable<K, V> {}
// SAFETY: shared access hands out `&K`/`&V` to many threads at once (needs Sync) and lets any
// thread drop entries that another inserted (needs Send).
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for RawTable<K, V> {}

impl<K, V> RawTable<K, V> {
    /// An empty table able to hold `capacity` entries without growing.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let t = Box::new(Table::new(buckets_for(capacity)));
        RawTable {
            current: AtomicPtr::new(Box::into_raw(t)),
            len: StripedCounter::new(),
            bounded: false,
            uncounted: None,
        }
    }

    /// An empty table for an owner that never keeps more than `capacity` entries live (the
    /// cache): it is sized for them at a load of at most [`BOUNDED_LOAD_TENTHS`], and a
    /// migration (forced by the tombstones that evictions leave) copies at the same size
    /// whenever tombstones are a real share of it.
    /// `uncounted` picks the entries that `len` leaves out (see the field).
    pub(crate) fn bounded(capacity: usize, uncounted: fn(&V) -> bool) -> Self {
        let at_sizing_load = capacity
            .saturating_mul(SIZING_LOAD_TENTHS)
            .div_ceil(BOUNDED_LOAD_TENTHS);
        let mut t = Self::with_capacity(at_sizing_load);
        t.bounded = true;
        t.uncounted = Some(uncounted);
        t
    }

    /// Whether `len` counts `v`.
    #[inline(always)]
    fn counts(&self, v: &V) -> bool {
        self.uncounted.is_none_or(|skip| !skip(v))
    }

    /// The current table.
    #[inline]
    fn table<'g>(&self, _guard: &'g Guard) -> &'g Table<K, V> {
        // Acquire: pairs with the Release CAS that made the table current (migration end),
        // so its buckets and every copied entry are visible.
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: the current table is never null; an old one is freed only through the
        // epoch after it stops being current, and we hold a guard.
        unsafe { &*p }
    }

    /// Number of entries (a snapshot under concurrent writes).
    pub(crate) fn len(&self) -> usize {
        self.len.sum()
    }

    /// Entries the current table is sized for (slots at the sizing load).
    pub(crate) fn capacity(&self, guard: &Guard) -> usize {
        self.table(guard).sized_for()
    }

    /// Looks up the entry for `hash` whose key satisfies `eq`.
    #[inline(always)]
    pub(crate) fn find<'g>(
        &self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
        guard: &'g Guard,
    ) -> Option<&'g Entry<K, V>> {
        self.table(guard).find(hash, &mut |e| eq(&e.key), guard)
    }

    /// Atomic read-modify-write of the entry for `hash`/`eq`.
    ///
    /// `f` sees the current entry (or `None`) and decides; it may be called again if another
    /// thread changed the entry in between, and receives back the entry it returned from the
    /// previous attempt so that allocations and user values are reused. Returns the entry
    /// before and after the operation. `rehash` is the map's hash function: a write may have
    /// to help a migration, which places entries by their keys' hashes (entries do not store
    /// them).
    #[inline]
    pub(crate) fn rmw<'g>(
        &self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
        f: impl FnMut(Option<&'g Entry<K, V>>, Option<Box<Entry<K, V>>>) -> Op<K, V>,
        rehash: Rehash<'_, K>,
        guard: &'g Guard,
    ) -> Outcome<'g, K, V> {
        self.rmw_by(hash, |e| eq(&e.key), f, rehash, guard)
    }

    /// [`RawTable::rmw`] on the entry for `hash` that satisfies `is` (a predicate on the whole
    /// entry, so that the cache can name an entry by its ring position). `is` must pick at
    /// most one key.
    pub(crate) fn rmw_by<'g>(
        &self,
        hash: u64,
        mut eq: impl FnMut(&Entry<K, V>) -> bool,
        mut f: impl FnMut(Option<&'g Entry<K, V>>, Option<Box<Entry<K, V>>>) -> Op<K, V>,
        rehash: Rehash<'_, K>,
        guard: &'g Guard,
    ) -> Outcome<'g, K, V> {
        let mut spare: Option<Box<Entry<K, V>>> = None;
        let mut crowded_ok = false;
        loop {
            let table = self.table(guard);
            if table.next(guard).is_some() {
                self.help_migrate(table, rehash, guard);
                continue;
            }
            match table.probe_write(hash, &mut eq, crowded_ok) {
                Probe::Found { bucket, i, entry } => {
                    // SAFETY: `entry` was LIVE in the table while we are pinned.
                    let cur = unsafe { &*entry };
                    match f(Some(cur), spare.take()) {
                        Op::Keep => return (Some(cur), Some(cur)),
                        Op::Put(new) => {
                            let np = Box::into_raw(new);
                            // AcqRel: Release publishes the new entry's fields; Acquire orders
                            // us after the write that installed `entry`.
                            match bucket.slots[i].compare_exchange(
                                entry,
                                np,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            ) {
                                Ok(_) => {
                                    // SAFETY: np is LIVE in the table now; entries are never
                                    // written after publication, and it is freed only
                                    // through the epoch after we unpin.
                                    let now = self.counts(unsafe { &(*np).value });
                                    match (self.counts(&cur.value), now) {
                                        (false, true) => self.len.incr(),
                                        (true, false) => self.len.decr(),
                                        _ => {}
                                    }
                                    // SAFETY: `entry` is unlinked by the CAS above; the map
                                    // never links it again (invariant 2).
                                    unsafe { retire(entry, guard) };
                                    // SAFETY: np is now LIVE in the table; freed only via
                                    // the epoch after we unpin.
                                    return (Some(cur), Some(unsafe { &*np }));
                                }
                                // SAFETY: the CAS failed, so np was never shared.
                                Err(_) => spare = Some(unsafe { Box::from_raw(np) }),
                            }
                        }
                        Op::Remove => {
                            // AcqRel: as above; the Acquire half orders the retire after
                            // every earlier write of the slot.
                            if bucket.slots[i]
                                .compare_exchange(
                                    entry,
                                    Slot::Tombstone.encode(),
                                    Ordering::AcqRel,
                                    Ordering::Acquire,
                                )
                                .is_ok()
                            {
                                // The tag stays: a TOMBSTONE is never reused, so a stale tag
                                // only makes a lookup with the same 8-bit tag load this slot
                                // (same line) and skip it, and that load synchronises with our
                                // CAS. Clearing it would cost a second locked RMW per remove.
                                if self.counts(&cur.value) {
                                    self.len.decr();
                                }
                                // SAFETY: unlinked by the CAS above, never linked again.
                                unsafe { retire(entry, guard) };
                                return (Some(cur), None);
                            }
                        }
                    }
                }
                Probe::Vacant { bucket, i } => match f(None, spare.take()) {
                    Op::Keep | Op::Remove => return (None, None),
                    Op::Put(new) => {
                        let tag = tag_of(hash);
                        let np = Box::into_raw(new);
                        // AcqRel: Release publishes the entry to anyone who reads the slot;
                        // Acquire (on failure) lets us read what won.
                        match bucket.slots[i].compare_exchange(
                            std::ptr::null_mut(),
                            np,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => {
                                // Release: a reader that sees the tag sees the slot word.
                                #[cfg(not(loom))]
                                bucket.ctrl.fetch_or(tag_bits(i, tag), Ordering::Release);
                                #[cfg(loom)]
                                bucket.ctrl.fetch_or(
                                    tag_bits(i, tag),
                                    crate::sync::__loom_knobs::tag_publish(),
                                );
                                // SAFETY: np is LIVE in the table, never written after
                                // publication, freed only through the epoch after we unpin.
                                if self.counts(unsafe { &(*np).value }) {
                                    self.len.incr();
                                }
                                // SAFETY: np is LIVE in the table; see above.
                                return (None, Some(unsafe { &*np }));
                            }
                            // SAFETY: the CAS failed, so np was never shared.
                            Err(_) => spare = Some(unsafe { Box::from_raw(np) }),
                        }
                    }
                },
                Probe::Moved => self.help_migrate(table, rehash, guard),
                Probe::Crowded => {
                    // Grow when the table reached its growth load, or when overflows are
                    // twice the trigger (clustering or tombstones: `start_migration` picks).
                    // Otherwise the overflows are local crowding in a table below its
                    // capacity (likely in small tables): keep probing, so that a table made
                    // by `with_capacity(n)` holds n entries without growing.
                    // Relaxed: a heuristic read.
                    let overflows = table.growth.overflows.load(Ordering::Relaxed);
                    if self.len() >= table.grow_at() || overflows >= 2 * table.overflow_limit {
                        self.start_migration(table, rehash, guard);
                    } else {
                        crowded_ok = true;
                    }
                }
                Probe::Full => self.start_migration(table, rehash, guard),
            }
        }
    }

    /// Calls `f` on every entry of the current table (weakly consistent: entries inserted or
    /// removed during the walk may or may not be seen; none is seen twice).
    pub(crate) fn for_each<'g>(&self, guard: &'g Guard, mut f: impl FnMut(&'g Entry<K, V>))
    where
        K: 'g,
        V: 'g,
    {
        let table = self.table(guard);
        for b in 0..table.len() {
            let bucket = table.bucket(b);
            // Acquire: see `find`.
            let ctrl = bucket.ctrl.load(Ordering::Acquire);
            for i in 0..SLOTS {
                if tag_at(ctrl, i) == 0 {
                    continue;
                }
                match Slot::decode(bucket.slots[i].load(Ordering::Acquire)) {
                    // SAFETY: reachable while pinned (see `find`).
                    Slot::Live(p) | Slot::Frozen(p) => f(unsafe { &*p }),
                    Slot::Copied(Some(j)) => {
                        let next = table.next(guard).expect("copied slot without next table");
                        if let Some(e) = next.entry_at(j, guard) {
                            f(e)
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl<K, V> Table<K, V> {
    /// The entry that a COPIED(j) word points at, following further migrations. A RESERVED
    /// slot reached this way is the committed copy (orphans are never named by a COPIED
    /// word), so it is as good as LIVE.
    fn entry_at<'g>(&'g self, j: usize, guard: &'g Guard) -> Option<&'g Entry<K, V>> {
        let bucket = self.bucket(j / SLOTS);
        // Acquire: as in `find`.
        match Slot::decode(bucket.slots[j % SLOTS].load(Ordering::Acquire)) {
            // SAFETY: reachable while pinned (see `find`).
            Slot::Live(p) | Slot::Frozen(p) | Slot::Reserved(p) => Some(unsafe { &*p }),
            Slot::Copied(Some(k)) => {
                let next = self.next(guard).expect("copied slot without next table");
                next.entry_at(k, guard)
            }
            _ => None,
        }
    }
}

impl<K, V> Drop for RawTable<K, V> {
    fn drop(&mut self) {
        let t = self.current.load(Ordering::Relaxed);
        // SAFETY: `&mut self`: no other thread can reach the map; the current table is ours.
        let table = unsafe { Box::from_raw(t) };
        let next = table.next.load(Ordering::Relaxed);
        // SAFETY: a next table is installed once and owned by the table that links to it.
        let next = (!next.is_null()).then(|| unsafe { Box::from_raw(next) });
        // Entries this thread retired earlier (of this table or another) go to the global
        // garbage queue now: see `crate::sync::pin`.
        crate::sync::flush_local();
        // Like dropping a slice: if one entry's Drop panics, still drop all the others, then
        // resume the first panic.
        let mut panic = None;
        let mut drop_entry = |p: *mut Entry<K, V>| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: see the ownership rules at the call sites: each entry is owned by
                // exactly one slot word and dropped once.
                drop(unsafe { Box::from_raw(p) })
            }));
            if let Err(e) = r {
                panic.get_or_insert(e);
            }
        };
        // Ownership: a LIVE or FROZEN entry belongs to its (current) table. A migration can be
        // left unfinished only by a user Hash that panicked while a writer helped; then an
        // old COPIED(j) word hands its entry to slot j of the next table (RESERVED or LIVE
        // there), and every other slot of the next table is an orphan reservation (its entry
        // is still FROZEN in the old table) or empty.
        for bucket in table.buckets.iter() {
            for s in bucket.slots.iter() {
                match Slot::decode(s.load(Ordering::Relaxed)) {
                    Slot::Live(p) | Slot::Frozen(p) => drop_entry(p),
                    Slot::Copied(Some(j)) => {
                        let next = next.as_ref().expect("copied slot without next table");
                        let b = &next.buckets[j / SLOTS];
                        match Slot::decode(b.slots[j % SLOTS].load(Ordering::Relaxed)) {
                            Slot::Live(p) | Slot::Reserved(p) => drop_entry(p),
                            _ => unreachable!("a next table's slots move only once it is current"),
                        }
                    }
                    _ => {}
                }
            }
        }
        drop(next);
        drop(table);
        if let Some(e) = panic {
            std::panic::resume_unwind(e);
        }
    }
}

impl<K, V> RawTable<K, V> {
    /// Removes every entry with exclusive access, resetting the count.
    pub(crate) fn clear_mut(&mut self) {
        let buckets = {
            // SAFETY: exclusive access.
            let guard = unsafe { crossbeam_epoch::unprotected() };
            self.table(guard).len()
        };
        let fresh = Box::into_raw(Box::new(Table::new(buckets)));
        let old = std::mem::replace(&mut self.current, AtomicPtr::new(fresh));
        let len = std::mem::replace(&mut self.len, StripedCounter::new());
        // The map is consistent (empty) before any user Drop runs.
        drop(RawTable {
            current: old,
            len,
            bounded: self.bounded,
            uncounted: self.uncounted,
        });
    }
}

#[cfg(not(loom))]
fn alloc_buckets<K, V>(n: usize) -> Box<[Bucket<K, V>]> {
    use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
    let layout = Layout::array::<Bucket<K, V>>(n).expect("capacity overflow");
    // SAFETY: layout has non-zero size (n >= 1 and Bucket is 64 bytes).
    let p = unsafe { alloc_zeroed(layout) } as *mut Bucket<K, V>;
    if p.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: all-zero bytes are a valid Bucket (atomics of 0 / null = EMPTY, ctrl 0), the
    // allocation has the layout of `[Bucket; n]`, and the global allocator made it.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) }
}

#[cfg(loom)]
fn alloc_buckets<K, V>(n: usize) -> Box<[Bucket<K, V>]> {
    (0..n).map(|_| Bucket::new()).collect()
}

#[cfg(all(test, not(loom)))]
mod tests;
