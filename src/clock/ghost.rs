//! A ghost: a fixed-size, lock-free set of fingerprints of recently evicted keys.
//!
//! Fingerprints are 32 bits, in buckets of four `AtomicU32` (16 bytes), the bucket chosen by
//! the key's hash. An insert overwrites its bucket's slots round-robin (so each bucket
//! forgets in FIFO order, and the whole approximately); a lookup that finds the fingerprint
//! clears it. This is `Ghost::table` of `cachesim/src/policies.rs`, which on the project's
//! traces did as well as an exact FIFO of whole keys. Two keys with one bucket and one
//! fingerprint are confused (2^-32 per comparison): a ghost only steers which queue a new
//! entry joins, so a false hit costs hit ratio, never correctness.
//!
//! Every access is `Relaxed`: a fingerprint publishes no data, and a lost or late update only
//! changes one admission decision. Nothing allocates after [`Ghost::new`].

use crate::sync::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// Slots per bucket.
const WAYS: usize = 4;

/// A fixed-size set of fingerprints (see the module docs).
pub(crate) struct Ghost {
    /// `WAYS` slots per bucket; 0 is an empty slot.
    slots: Box<[AtomicU32]>,
    /// Per bucket, the next slot an insert overwrites (taken modulo `WAYS`).
    next: Box<[AtomicU8]>,
    /// Slots holding a fingerprint (approximate: updated after the slot).
    live: AtomicUsize,
}

impl Ghost {
    /// An empty ghost of about `keys` fingerprints (0 disables it).
    pub(crate) fn new(keys: usize) -> Self {
        let buckets = keys.div_ceil(WAYS);
        Ghost {
            slots: (0..buckets * WAYS).map(|_| AtomicU32::new(0)).collect(),
            next: (0..buckets).map(|_| AtomicU8::new(0)).collect(),
            live: AtomicUsize::new(0),
        }
    }

    /// The bucket's slots and the (non-zero) fingerprint of a key hashing to `hash`. The
    /// hash is remixed so that bucket and fingerprint do not reuse the table's bits.
    #[inline]
    fn locate(&self, hash: u64) -> Option<(usize, &[AtomicU32], u32)> {
        if self.next.is_empty() {
            return None;
        }
        let h = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        // Below `next.len()`, a usize.
        let b = (((h >> 32) * self.next.len() as u64) >> 32) as usize;
        Some((b, &self.slots[b * WAYS..(b + 1) * WAYS], (h as u32).max(1)))
    }

    /// Remembers the key hashing to `hash`.
    pub(crate) fn insert(&self, hash: u64) {
        let Some((b, bucket, fp)) = self.locate(hash) else {
            return;
        };
        // Relaxed (every access here): see the module docs.
        if bucket.iter().any(|s| s.load(Ordering::Relaxed) == fp) {
            return;
        }
        let i = self.next[b].fetch_add(1, Ordering::Relaxed) as usize % WAYS;
        if bucket[i].swap(fp, Ordering::Relaxed) == 0 {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the key hashing to `hash` was remembered; forgets it.
    pub(crate) fn take(&self, hash: u64) -> bool {
        let Some((_, bucket, fp)) = self.locate(hash) else {
            return false;
        };
        for s in bucket {
            // Relaxed: see the module docs. A failed CAS means an insert overwrote the slot.
            if s.load(Ordering::Relaxed) == fp
                && s.compare_exchange(fp, 0, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.live.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Fingerprints held (a snapshot; a decrement may briefly run ahead of its increment,
    /// which reads as 0).
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a sizing hint.
        let n = self.live.load(Ordering::Relaxed);
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
        let g = Ghost::new(8);
        g.insert(42);
        assert_eq!(g.len(), 1);
        g.insert(42); // already there: not counted twice
        assert_eq!(g.len(), 1);
        assert!(g.take(42));
        assert!(!g.take(42));
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn a_bucket_forgets_its_oldest_first() {
        let g = Ghost::new(4); // one bucket
        for h in 1..=5u64 {
            g.insert(h * 0x9e37_79b9);
        }
        assert_eq!(g.len(), 4);
        assert!(!g.take(0x9e37_79b9), "the first key was overwritten");
        for h in 2..=5u64 {
            assert!(g.take(h * 0x9e37_79b9));
        }
    }

    #[test]
    fn disabled_when_empty() {
        let g = Ghost::new(0);
        g.insert(1);
        assert!(!g.take(1));
        assert_eq!(g.len(), 0);
    }
}
