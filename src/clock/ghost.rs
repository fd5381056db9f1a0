//! The ghosts: fixed-size, lock-free sets of fingerprints of recently evicted keys, one for
//! keys evicted from the small queue and one for keys evicted from main.
//!
//! Fingerprints are 32 bits, in buckets of four `AtomicU32` per ghost, the bucket chosen by
//! the key's hash. The two ghosts have the same geometry and share each bucket's cache line
//! (32 bytes: small's four slots, then main's four), so a miss, which asks both, reads one
//! line. An insert overwrites its bucket's slots round-robin (so each bucket forgets in FIFO
//! order, and the whole ghost approximately); a lookup that finds the fingerprint clears it.
//! This is `Ghost::table` of `cachesim/src/policies.rs`, which on the project's traces did as
//! well as an exact FIFO of whole keys. Two keys with one bucket and one fingerprint are
//! confused (2^-32 per comparison): a ghost only steers which queue a new entry joins, so a
//! false hit costs hit ratio, never correctness.
//!
//! Every access is `Relaxed`: a fingerprint publishes no data, and a lost or late update only
//! changes one admission decision. Nothing allocates after [`Ghosts::new`].

use crate::sync::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// Slots per bucket of one ghost.
const WAYS: usize = 4;

/// Which ghost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// Keys evicted from small before they were used again.
    Small = 0,
    /// Keys evicted from main.
    Main = 1,
}

/// Both ghosts (see the module docs).
pub(crate) struct Ghosts {
    /// Per bucket, `WAYS` slots of the small ghost then `WAYS` of the main ghost; 0 is an
    /// empty slot.
    slots: Box<[AtomicU32]>,
    /// Per bucket and ghost, the next slot an insert overwrites (taken modulo `WAYS`).
    next: Box<[AtomicU8]>,
    /// Per ghost, slots holding a fingerprint (approximate: updated after the slot).
    live: [AtomicUsize; 2],
}

/// Where a key's fingerprint goes: its bucket and the fingerprint (never 0).
#[derive(Clone, Copy)]
struct Spot {
    bucket: usize,
    fp: u32,
}

impl Ghosts {
    /// Two empty ghosts of about `keys` fingerprints each (0 disables them).
    pub(crate) fn new(keys: usize) -> Self {
        let buckets = keys.div_ceil(WAYS);
        Ghosts {
            slots: (0..buckets * 2 * WAYS).map(|_| AtomicU32::new(0)).collect(),
            next: (0..buckets * 2).map(|_| AtomicU8::new(0)).collect(),
            live: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    /// The bucket and fingerprint of a key hashing to `hash`, remixed so that they do not
    /// reuse the table's bits.
    #[inline]
    fn spot(&self, hash: u64) -> Option<Spot> {
        let buckets = self.next.len() / 2;
        if buckets == 0 {
            return None;
        }
        let h = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Some(Spot {
            // Below `buckets`, a usize.
            bucket: (((h >> 32) * buckets as u64) >> 32) as usize,
            fp: (h as u32).max(1),
        })
    }

    #[inline]
    fn slots(&self, s: Spot, w: Which) -> &[AtomicU32] {
        let at = (2 * s.bucket + w as usize) * WAYS;
        &self.slots[at..at + WAYS]
    }

    /// Remembers the key hashing to `hash` in ghost `w`.
    pub(crate) fn insert(&self, hash: u64, w: Which) {
        let Some(s) = self.spot(hash) else {
            return;
        };
        let slots = self.slots(s, w);
        // Relaxed (every access here): see the module docs.
        if slots.iter().any(|x| x.load(Ordering::Relaxed) == s.fp) {
            return;
        }
        let i = self.next[2 * s.bucket + w as usize].fetch_add(1, Ordering::Relaxed) as usize;
        if slots[i % WAYS].swap(s.fp, Ordering::Relaxed) == 0 {
            self.live[w as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether either ghost remembered the key hashing to `hash` (small's answer first),
    /// forgetting it in both, as the simulated policy does.
    pub(crate) fn take(&self, hash: u64) -> (bool, bool) {
        let Some(s) = self.spot(hash) else {
            return (false, false);
        };
        (self.take_in(s, Which::Small), self.take_in(s, Which::Main))
    }

    fn take_in(&self, s: Spot, w: Which) -> bool {
        for x in self.slots(s, w) {
            // Relaxed: see the module docs. A failed CAS means an insert overwrote the slot.
            if x.load(Ordering::Relaxed) == s.fp
                && x.compare_exchange(s.fp, 0, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.live[w as usize].fetch_sub(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Fingerprints held by ghost `w` (a snapshot; a decrement may briefly run ahead of its
    /// increment, which reads as 0).
    pub(crate) fn len(&self, w: Which) -> usize {
        // Relaxed: a sizing hint.
        let n = self.live[w as usize].load(Ordering::Relaxed);
        if n > self.slots.len() {
            0
        } else {
            n
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn remembers_then_forgets_on_take() {
        let g = Ghosts::new(8);
        g.insert(42, Which::Small);
        assert_eq!((g.len(Which::Small), g.len(Which::Main)), (1, 0));
        g.insert(42, Which::Small); // already there: not counted twice
        assert_eq!(g.len(Which::Small), 1);
        assert_eq!(g.take(42), (true, false));
        assert_eq!(g.take(42), (false, false));
        assert_eq!(g.len(Which::Small), 0);
        g.insert(7, Which::Main);
        assert_eq!(g.take(7), (false, true));
    }

    #[test]
    fn a_bucket_forgets_its_oldest_first() {
        let g = Ghosts::new(4); // one bucket
        for h in 1..=5u64 {
            g.insert(h * 0x9e37_79b9, Which::Main);
        }
        assert_eq!(g.len(Which::Main), 4);
        assert_eq!(
            g.take(0x9e37_79b9),
            (false, false),
            "the first was overwritten"
        );
        for h in 2..=5u64 {
            assert_eq!(g.take(h * 0x9e37_79b9), (false, true));
        }
    }

    #[test]
    fn disabled_when_empty() {
        let g = Ghosts::new(0);
        g.insert(1, Which::Small);
        assert_eq!(g.take(1), (false, false));
        assert_eq!(g.len(Which::Small), 0);
    }
}
