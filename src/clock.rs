//! The CLOCK ring of a [`Cache`](crate::Cache): one position per entry the cache may hold.
//!
//! Eviction order is the order of positions on the ring, which is insertion order (a new key
//! takes the position the hand just freed). That is the classic CLOCK of Corbató: with the
//! reference bit kept in each entry (see `cache::Node`), it approximates LRU; a simulation
//! on the project's traces (`cachesim/RESULTS.md`) kept it within 0.5 points of exact LRU,
//! where a hand sweeping the hash table's own slots was not.
//!
//! A position is a state byte plus the hash of the key placed there:
//!
//! ```text
//!            claim (CAS)                    occupy (store)
//!   FREE ---------------> RESERVED ------------------------> OCCUPIED(hash)
//!    ^                     |   ^                                |     ^
//!    '---- release --------'   '---- take (victim gone) ----.   |     |
//!                                                           |   | CAS | restore (victim
//!                                                        EVICTING <---'     was referenced)
//! ```
//!
//! RESERVED and EVICTING are owned by one thread: no one else changes such a position, and
//! its hash word is written only by its owner before the Release store that makes it
//! OCCUPIED. An OCCUPIED position names its entry by `(hash, position)`: the entry with that
//! position in its node. An entry removed by the user leaves its position OCCUPIED with no
//! entry behind it; the hand finds nothing there and takes the position. So every entry in
//! the table holds a distinct position and the table never holds more entries than the ring
//! has positions: that is the cache's bound.

use crate::sync::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

/// No entry and no owner.
const FREE: u8 = 0;
/// Owned by an inserter that is placing its entry here.
const RESERVED: u8 = 1;
/// Holds the hash of the entry placed here (which may have been removed since).
const OCCUPIED: u8 = 2;
/// Owned by an evictor that is deciding about the entry placed here.
const EVICTING: u8 = 3;

/// What the hand found at a position it now owns.
pub(crate) enum Found {
    /// The position was free: it is now RESERVED for the caller.
    Free(usize),
    /// The position held an entry with this hash: it is now EVICTING, and the caller must
    /// finish with [`Ring::take`] or [`Ring::restore`].
    Occupied(usize, u64),
}

/// The ring: state bytes and hashes, in two arrays so that the hand's scan reads dense bytes.
pub(crate) struct Ring {
    states: Box<[AtomicU8]>,
    hashes: Box<[AtomicU64]>,
    /// Next position to examine (taken modulo the length). Padded: every evicting thread
    /// advances it.
    hand: CachePadded<AtomicUsize>,
}

impl Ring {
    /// A ring of `n` free positions (`n >= 1`).
    pub(crate) fn new(n: usize) -> Self {
        debug_assert!(n >= 1);
        Ring {
            states: (0..n).map(|_| AtomicU8::new(FREE)).collect(),
            hashes: (0..n).map(|_| AtomicU64::new(0)).collect(),
            hand: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Number of positions.
    pub(crate) fn len(&self) -> usize {
        self.states.len()
    }

    /// Moves the hand one position and tries to own the position it passed. `None` if that
    /// position is owned by another thread (RESERVED or EVICTING) or changed under us.
    pub(crate) fn advance(&self) -> Option<Found> {
        // Relaxed: the hand only spreads threads over positions; ownership is decided by the
        // CAS on the state byte below.
        let i = self.hand.fetch_add(1, Ordering::Relaxed) % self.len();
        let state = &self.states[i];
        // Relaxed: a hint; the CAS below decides.
        match state.load(Ordering::Relaxed) {
            FREE => {
                // Acquire: orders our use of the position after its release by the last owner.
                // Relaxed on failure: we read nothing.
                state
                    .compare_exchange(FREE, RESERVED, Ordering::Acquire, Ordering::Relaxed)
                    .ok()
                    .map(|_| Found::Free(i))
            }
            OCCUPIED => {
                // Acquire: pairs with the Release store of `occupy`, so the hash read below is
                // the one written for this occupancy.
                state
                    .compare_exchange(OCCUPIED, EVICTING, Ordering::Acquire, Ordering::Relaxed)
                    .ok()
                    // Relaxed: ordered by the Acquire CAS above.
                    .map(|_| Found::Occupied(i, self.hashes[i].load(Ordering::Relaxed)))
            }
            _ => None,
        }
    }

    /// RESERVED -> OCCUPIED(hash): the caller's entry now holds position `i`.
    pub(crate) fn occupy(&self, i: usize, hash: u64) {
        // Relaxed: published by the Release store of the state.
        self.hashes[i].store(hash, Ordering::Relaxed);
        debug_assert_eq!(self.states[i].load(Ordering::Relaxed), RESERVED);
        // Release: whoever Acquires OCCUPIED reads this hash.
        self.states[i].store(OCCUPIED, Ordering::Release);
    }

    /// RESERVED -> FREE: the caller did not place an entry after all.
    pub(crate) fn release(&self, i: usize) {
        debug_assert_eq!(self.states[i].load(Ordering::Relaxed), RESERVED);
        // Release: the next owner's Acquire CAS comes after everything we did with it.
        self.states[i].store(FREE, Ordering::Release);
    }

    /// EVICTING -> RESERVED: the entry placed at `i` is gone; the caller now places its own.
    pub(crate) fn take(&self, i: usize) {
        debug_assert_eq!(self.states[i].load(Ordering::Relaxed), EVICTING);
        // Relaxed: the position stays owned by this thread; nothing is published.
        self.states[i].store(RESERVED, Ordering::Relaxed);
    }

    /// EVICTING -> OCCUPIED: the entry at `i` stays (it was referenced).
    pub(crate) fn restore(&self, i: usize) {
        debug_assert_eq!(self.states[i].load(Ordering::Relaxed), EVICTING);
        // Release: as in `occupy` (the hash word is unchanged).
        self.states[i].store(OCCUPIED, Ordering::Release);
    }

    /// Owns RESERVED position `pos` (if any) until [`Held::keep`]: dropping it releases the
    /// position, so a panic in user code (`Eq`, `Hash`, a value's `Drop`) cannot leak it.
    pub(crate) fn held(&self, pos: Option<usize>) -> Held<'_> {
        Held { ring: self, pos }
    }

    /// Owns EVICTING position `i` while the hand judges its entry: dropping the guard without
    /// [`Judging::done`] (a panic in user code during the judgement, before any entry was
    /// removed) restores the position to OCCUPIED.
    pub(crate) fn judging(&self, i: usize) -> Judging<'_> {
        Judging {
            ring: self,
            i: Some(i),
        }
    }

    /// Positions currently FREE (a snapshot).
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.states
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) == FREE)
            .count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claims_free_positions_in_order_then_evicts() {
        let r = Ring::new(3);
        for want in 0..3 {
            match r.advance() {
                Some(Found::Free(i)) => {
                    assert_eq!(i, want);
                    r.occupy(i, 100 + i as u64);
                }
                _ => panic!("expected a free position"),
            }
        }
        assert_eq!(r.free(), 0);
        // The hand wraps to position 0 and finds its hash.
        match r.advance() {
            Some(Found::Occupied(0, 100)) => r.restore(0),
            _ => panic!("expected position 0 occupied"),
        }
        match r.advance() {
            Some(Found::Occupied(1, 101)) => {
                r.take(1);
                r.release(1);
            }
            _ => panic!("expected position 1 occupied"),
        }
        assert_eq!(r.free(), 1);
    }

    #[test]
    fn owned_positions_are_skipped() {
        let r = Ring::new(2);
        let Some(Found::Free(0)) = r.advance() else {
            panic!()
        };
        // Position 0 is RESERVED: the hand passes it.
        let Some(Found::Free(1)) = r.advance() else {
            panic!()
        };
        assert!(r.advance().is_none());
        assert!(r.advance().is_none());
    }
}

/// A RESERVED position owned by the caller (see [`Ring::held`]).
pub(crate) struct Held<'a> {
    ring: &'a Ring,
    pub(crate) pos: Option<usize>,
}

impl Held<'_> {
    /// Gives up ownership without releasing: the position now holds the caller's entry, or
    /// passes to the caller's caller.
    pub(crate) fn keep(mut self) -> Option<usize> {
        self.pos.take()
    }

    /// Holds `i` instead of the position held so far, which is released.
    pub(crate) fn replace(&mut self, i: usize) {
        if let Some(prev) = self.pos.replace(i) {
            self.ring.release(prev);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.pos.take() {
            self.ring.release(i);
        }
    }
}

/// An EVICTING position being judged (see [`Ring::judging`]).
pub(crate) struct Judging<'a> {
    ring: &'a Ring,
    i: Option<usize>,
}

impl Judging<'_> {
    /// The judgement finished: the caller moves the position on itself.
    pub(crate) fn done(mut self) {
        self.i = None;
    }
}

impl Drop for Judging<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.i.take() {
            self.ring.restore(i);
        }
    }
}
