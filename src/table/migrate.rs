//! Cooperative, lock-free migration of a table into a bigger (or same-size, cleaned) one.
//!
//! Protocol for one old slot (every step is a CAS that any thread may perform, so a thread
//! that stalls anywhere cannot stop the others):
//!
//! ```text
//! old: LIVE p --freeze--> FROZEN p --commit--> COPIED(j)
//! new:           EMPTY --reserve--> RESERVED p --publish--> LIVE p (tag set)
//! old: EMPTY | TOMBSTONE | RESERVED(orphan) --freeze--> COPIED
//! ```
//!
//! * *freeze*: no writer can change a frozen slot (their CAS expects LIVE p), so p's value
//!   is the key's current value until the migration completes; readers may return it.
//! * *reserve*: a copier claims the first EMPTY slot of p's probe sequence in the new table
//!   (or finds p already reserved or published there: invariant 3 makes that the only place).
//! * *commit*: the CAS FROZEN p -> COPIED(j) names the one reservation that counts. A copier
//!   whose reservation lost (it stalled and woke after someone else finished) turns it into a
//!   TOMBSTONE; RESERVED slots are invisible to lookups, so nobody saw it.
//! * *publish*: RESERVED p -> LIVE p and the tag is set. The thread whose publish CAS wins
//!   counts the slot as done; an old slot with nothing to carry is counted by its freezer.
//!
//! The migration completes when every old slot is counted, or when a thread that waited too
//! long has swept every slot itself (finishing any step a stalled thread left). Only then does
//! the map's current pointer move to the new table, and only then do writers touch it.

use super::slot::Slot;
use super::tag::{tag_at, tag_bits, tag_of, OVERFLOW, SLOTS};
use super::{Entry, RawTable, Rehash, Table};
use crate::sync::{spin_hint, AtomicPtr, Guard, Ordering};

/// Buckets a migrating thread claims at a time.
const CHUNK: usize = 64;

/// Old tables of at least this many buckets (256 KiB) are flushed to the global garbage
/// queue when their migration completes (see `complete`); smaller ones wait in the bag.
#[cfg(not(loom))]
const FLUSH_BUCKETS: usize = 1 << 12;

/// Rounds of waiting for other migrators before sweeping the whole table.
#[cfg(not(loom))]
const PATIENCE: u32 = 1 << 12;
/// Under loom every wait round yields to the scheduler, so wait little before sweeping.
#[cfg(loom)]
const PATIENCE: u32 = 2;

impl<K, V> RawTable<K, V> {
    /// Starts (or joins) the migration of `table`, then helps it finish.
    pub(super) fn start_migration<'g>(
        &self,
        table: &'g Table<K, V>,
        rehash: Rehash<'_, K>,
        guard: &'g Guard,
    ) {
        if table.next(guard).is_none() {
            // Never smaller than the old table: every copy must find room (see `place_copy`).
            let buckets = if table.worth_cleaning(self.len(), self.bounded) {
                table.len()
            } else {
                table.len().checked_mul(2).expect("capacity overflow")
            };
            let new = Box::into_raw(Box::new(Table::new(buckets)));
            // AcqRel: Release publishes the new table's initialised buckets; Acquire reads a
            // competitor's table on failure.
            if table
                .next
                .compare_exchange(
                    std::ptr::null_mut(),
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                // SAFETY: the CAS failed, so `new` was never shared.
                drop(unsafe { Box::from_raw(new) });
            }
        }
        self.help_migrate(table, rehash, guard);
    }

    /// Helps migrate `table` into its next table and returns once it is no longer current.
    pub(super) fn help_migrate<'g>(
        &self,
        table: &'g Table<K, V>,
        rehash: Rehash<'_, K>,
        guard: &'g Guard,
    ) {
        let next = table
            .next(guard)
            .expect("help_migrate without a next table");
        let total = table.len() * SLOTS;
        // Claim chunks until none are left.
        loop {
            // Relaxed: the cursor only divides work; every step synchronises through the
            // slot words themselves.
            let start = table.growth.cursor.fetch_add(CHUNK, Ordering::Relaxed);
            if start >= table.len() {
                break;
            }
            let end = (start + CHUNK).min(table.len());
            let mut done = 0;
            for b in start..end {
                for i in 0..SLOTS {
                    done += table.migrate_slot(b, i, next, rehash, guard);
                }
            }
            // AcqRel: our copies happen-before whoever sees the total and completes.
            let before = table.growth.copied.fetch_add(done, Ordering::AcqRel);
            if before + done == total {
                self.complete(table, next);
            }
        }
        // Wait for the others; if they take too long, finish everything ourselves.
        let mut rounds = 0u32;
        while std::ptr::eq(self.current.load(Ordering::Acquire), table) {
            // Acquire: see the fetch_add above.
            if table.growth.copied.load(Ordering::Acquire) >= total {
                self.complete(table, next);
                break;
            }
            rounds += 1;
            if rounds < PATIENCE {
                if rounds % 64 == 0 {
                    #[cfg(not(loom))]
                    std::thread::yield_now();
                }
                spin_hint();
                continue;
            }
            for b in 0..table.len() {
                for i in 0..SLOTS {
                    table.migrate_slot(b, i, next, rehash, guard);
                }
            }
            // Every slot is now final (committed and published), whoever counted it.
            self.complete(table, next);
            break;
        }
    }

    /// Makes `next` current in place of `table` (idempotent) and retires `table`.
    fn complete(&self, table: &Table<K, V>, next: &Table<K, V>) {
        let old = table as *const Table<K, V> as *mut Table<K, V>;
        let new = next as *const Table<K, V> as *mut Table<K, V>;
        // AcqRel: Release publishes every copied entry (they happen-before us through the
        // slot words or the count) to readers that Acquire the current pointer.
        if self
            .current
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let p = crate::reclaim::SendPtr(old);
            let guard = crate::sync::pin();
            // SAFETY: `old` is no longer current and is reachable only by threads already
            // pinned; the collector frees it after they unpin. Dropping a Table frees its
            // buckets only, never entries (they now belong to `next`).
            unsafe {
                guard.defer_unchecked(move || {
                    let p = p;
                    drop(Box::from_raw(p.0))
                })
            };
            // A large old table goes to the global garbage queue now rather than wait in
            // this thread's bag until 63 more retirements fill it (a map that grows and then
            // only reads would hold it for good). Small ones wait: under churn they migrate
            // often, and each flush also frees the entries retired since in one go, past the
            // per-thread block pool (143 instructions per cache miss when every migration
            // flushed; docs/cache-benchmarks.md).
            #[cfg(not(loom))]
            if table.len() >= FLUSH_BUCKETS {
                guard.flush();
            }
        }
    }
}

impl<K, V> Table<K, V> {
    /// Whether a same-size copy is the right answer to this table overflowing: only when live
    /// entries are few (under 40% of the slots) *and* tombstones hold a real share of the
    /// slots (at least an eighth), so that the copy gives that space back. Overflows can also
    /// come from clustered hashes with no tombstones at all; copying at the same size would
    /// then rebuild the same clusters and overflow again forever, so the table doubles.
    ///
    /// Counting tombstones reads every slot once; it runs once per migration (by the threads
    /// that find no migration started), next to a copy that reads every slot anyway.
    ///
    /// A `bounded` table (the cache's: its owner keeps the live count at most what the table
    /// was sized for, up to 0.7 of the slots) skips the live-share test, since doubling would
    /// only make room for more tombstones, and cleans once tombstones are 1/64 of the slots:
    /// at 0.7 live the overflow trigger typically fires with 0.12 to 0.23 of the slots
    /// tombstoned. A copy made in old-bucket order places displaced keys after keys homed
    /// later, so it can leave more buckets flagged than the same keys inserted in random order,
    /// and under long churn the count left by each copy can creep up; when live entries alone
    /// keep the trigger pulled (that, or clustered hashes), the next migration finds fewer
    /// than 1/64 tombstones and the table doubles once, to a load where this does not happen.
    /// So there is no livelock, and a cache's table ends at most twice its initial size.
    fn worth_cleaning(&self, live: usize, bounded: bool) -> bool {
        let slots = self.len() * SLOTS;
        if !bounded && live >= slots * 2 / 5 {
            return false;
        }
        let tombstones = self
            .buckets
            .iter()
            .flat_map(|b| b.slots.iter())
            // Relaxed: an estimate; the decision is only about the new table's size.
            .filter(|s| Slot::is_tombstone(s.load(Ordering::Relaxed)))
            .count();
        // At least one: a copy without tombstones to drop would rebuild the same overflows
        // and trigger again at once (a livelock in small tables, where slots / 64 is 0).
        let needed = if bounded { slots / 64 } else { slots / 8 };
        tombstones >= needed.max(1)
    }

    /// Drives old slot (b, i) to its final state. Returns 1 if this call made the step that
    /// counts for the slot (see the module docs), else 0. The common case, a slot with
    /// nothing to carry (EMPTY or TOMBSTONE: most slots of a table), is one load and one CAS
    /// inlined into the chunk loop; everything else goes to [`Table::migrate_from`].
    #[inline(always)]
    pub(super) fn migrate_slot(
        &self,
        b: usize,
        i: usize,
        next: &Table<K, V>,
        rehash: Rehash<'_, K>,
        guard: &Guard,
    ) -> usize {
        let slot = &self.bucket(b).slots[i];
        // Acquire: we may dereference the entry it names.
        let raw = slot.load(Ordering::Acquire);
        if Slot::is_vacant(raw) {
            match freeze_vacant(slot, raw) {
                Ok(()) => return 1,
                Err(now) => return self.migrate_from(slot, now, next, rehash, guard),
            }
        }
        self.migrate_from(slot, raw, next, rehash, guard)
    }

    /// [`Table::migrate_slot`] for `slot`, last read as `raw`.
    #[inline(never)]
    fn migrate_from(
        &self,
        slot: &AtomicPtr<Entry<K, V>>,
        mut raw: *mut Entry<K, V>,
        next: &Table<K, V>,
        rehash: Rehash<'_, K>,
        guard: &Guard,
    ) -> usize {
        // Every CAS failure's value is used as a fresh read (Acquire, as the load above).
        loop {
            match Slot::decode(raw) {
                // RESERVED in a current table is an orphan (see module docs): nothing to carry.
                Slot::Empty | Slot::Tombstone | Slot::Reserved(_) => match freeze_vacant(slot, raw)
                {
                    Ok(()) => return 1,
                    Err(now) => raw = now,
                },
                Slot::Live(p) => {
                    let frozen = Slot::Frozen(p).encode();
                    // AcqRel: as above. On failure we act on what won.
                    raw = match slot.compare_exchange(
                        raw,
                        frozen,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => frozen,
                        Err(now) => now,
                    };
                }
                Slot::Frozen(p) => match next.place_copy(slot, p, rehash, guard) {
                    // Committed (by us or another copier): COPIED(j) is final, so publish
                    // straight away, with the tag of the hash the copy was placed by.
                    Some((j, tag)) => return next.publish(j, Some(tag), rehash),
                    None => raw = slot.load(Ordering::Acquire),
                },
                Slot::Copied(None) => return 0,
                Slot::Copied(Some(j)) => return next.publish(j, None, rehash),
            }
        }
    }

    /// Reserves (or finds) p's place in this (new) table and commits it in `old_slot`.
    /// Returns the committed slot of this table (ours, or the one another copier committed
    /// first) and p's tag; `None` when p was found already published, or without room
    /// (then `old_slot` is already COPIED: the caller reads it).
    fn place_copy(
        &self,
        old_slot: &AtomicPtr<Entry<K, V>>,
        p: *mut Entry<K, V>,
        rehash: Rehash<'_, K>,
        _guard: &Guard,
    ) -> Option<(usize, u8)> {
        // SAFETY: p is FROZEN in the old table and we are pinned, so it is alive. If the
        // user's Hash panics here, the slot stays FROZEN and this thread's chunk is never
        // counted: like a stalled copier, which the sweep in `help_migrate` finishes.
        let hash = rehash(unsafe { &(*p).key });
        let tag = tag_of(hash);
        let mut b = hash as usize;
        for _ in 0..self.len() {
            let bucket = self.bucket(b);
            for j in 0..SLOTS {
                let s = &bucket.slots[j];
                loop {
                    // Acquire: pairs with the reservation/publication CAS of other copiers.
                    let raw = s.load(Ordering::Acquire);
                    match Slot::decode(raw) {
                        // Already published: it was committed first.
                        Slot::Live(q) if q == p => return None,
                        Slot::Reserved(q) if q == p => {
                            let k = self.commit(old_slot, p, (b & self.mask) * SLOTS + j);
                            return Some((k, tag));
                        }
                        Slot::Empty => {
                            // AcqRel: Release makes the reservation visible with p; Acquire
                            // reads what won on failure.
                            if s.compare_exchange(
                                raw,
                                Slot::Reserved(p).encode(),
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            )
                            .is_ok()
                            {
                                let k = self.commit(old_slot, p, (b & self.mask) * SLOTS + j);
                                return Some((k, tag));
                            }
                        }
                        _ => break,
                    }
                }
            }
            // Relaxed: see `probe_write`; lookups for p's key must continue past this bucket.
            let prev = bucket.ctrl.fetch_or(OVERFLOW, Ordering::Relaxed);
            if prev & OVERFLOW == 0 {
                // Counted like an insert's overflow, so the growth trigger sees copies too.
                // Relaxed: a trigger heuristic.
                self.growth.overflows.fetch_add(1, Ordering::Relaxed);
            }
            b = b.wrapping_add(1);
        }
        // No room: only a copier that woke after the migration finished can get here, and
        // then the old slot is already committed elsewhere.
        debug_assert!(matches!(
            Slot::decode(old_slot.load(Ordering::Acquire)),
            Slot::Copied(_)
        ));
        None
    }

    /// Commits reservation `j` for p; undoes it if another reservation was committed first.
    /// Returns the committed slot (`j`, or the other one).
    fn commit(&self, old_slot: &AtomicPtr<Entry<K, V>>, p: *mut Entry<K, V>, j: usize) -> usize {
        // AcqRel: Release makes the reservation (and p) visible to readers that follow the
        // COPIED word; Acquire reads the winner on failure.
        let won = old_slot.compare_exchange(
            Slot::Frozen(p).encode(),
            Slot::Copied(Some(j)).encode(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let committed = match won {
            Ok(_) => j,
            Err(actual) => match Slot::decode(actual) {
                Slot::Copied(Some(k)) => k,
                _ => unreachable!("a frozen slot only moves to COPIED(j)"),
            },
        };
        if committed != j {
            // An orphan: nobody can reach it through a COPIED word, and RESERVED is invisible
            // to lookups, so it was never seen. Turn it into a tombstone. Failure means the
            // slot was frozen by a later migration, which treats it as empty: fine.
            let _ = self.bucket(j / SLOTS).slots[j % SLOTS].compare_exchange(
                Slot::Reserved(p).encode(),
                Slot::Tombstone.encode(),
                // Relaxed: the orphan carries nothing anyone reads.
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        committed
    }

    /// Makes the committed copy in slot `j` visible (idempotent). Returns 1 if this call's
    /// CAS published it. `tag`: the copy's tag, if the caller has it (else it is rehashed).
    fn publish(&self, j: usize, tag: Option<u8>, rehash: Rehash<'_, K>) -> usize {
        let bucket = self.bucket(j / SLOTS);
        let i = j % SLOTS;
        let s = &bucket.slots[i];
        // Acquire: we may read the entry's key below.
        let raw = s.load(Ordering::Acquire);
        let (p, won) = match Slot::decode(raw) {
            Slot::Reserved(p) => {
                // AcqRel: Release publishes p to readers of the slot; Acquire for failure.
                let won = s
                    .compare_exchange(
                        raw,
                        Slot::Live(p).encode(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
                (p, won)
            }
            Slot::Live(p) => (p, false),
            // Already replaced, removed or moved again: the migration that published it is
            // long complete.
            _ => return 0,
        };
        // Acquire: a tag already set needs no write (keeps the line shared).
        if tag_at(bucket.ctrl.load(Ordering::Acquire), i) == 0 {
            // SAFETY: p is committed in this table and we are pinned (callers hold a guard),
            // so it is alive. A panicking Hash leaves the copy LIVE without its tag: writers
            // treat that as a pending insert and publish it (see `probe_write`).
            let tag = tag.unwrap_or_else(|| tag_of(rehash(unsafe { &(*p).key })));
            // Release: a reader that sees the tag sees the LIVE word written above.
            bucket.ctrl.fetch_or(tag_bits(i, tag), Ordering::Release);
        }
        won as usize
    }
}

/// Freezes a slot with nothing to carry, last read as `raw` (EMPTY, TOMBSTONE or an orphan
/// RESERVED), to COPIED-none. `Err` holds the word another thread left there instead.
#[inline(always)]
fn freeze_vacant<K, V>(
    slot: &AtomicPtr<Entry<K, V>>,
    raw: *mut Entry<K, V>,
) -> Result<(), *mut Entry<K, V>> {
    // AcqRel: orders the freeze after every earlier write of the slot; Acquire on failure,
    // since the word found serves as the next read.
    slot.compare_exchange(
        raw,
        Slot::Copied(None).encode(),
        Ordering::AcqRel,
        Ordering::Acquire,
    )
    .map(|_| ())
}
