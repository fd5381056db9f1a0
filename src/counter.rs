//! A striped counter: each thread adds to its own cache-padded stripe, a read sums them.
//!
//! `len()` must not cost a shared write per insert: with one counter every insert on every
//! core would fight for the same line. Each stripe sits in its own 128-byte
//! [`CachePadded`] slot, so two threads on different stripes never share a line.

use crate::sync::{thread_index, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

/// Signed counter spread over a power-of-two number of padded stripes.
pub(crate) struct StripedCounter {
    stripes: Box<[CachePadded<AtomicUsize>]>,
}

impl StripedCounter {
    /// A counter with one stripe per available core (rounded up to a power of two, at most 64).
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let n = cores.next_power_of_two().clamp(1, 64);
        // Under loom every stripe is a modelled atomic that `sum` loads: keep one.
        #[cfg(loom)]
        let n = n.min(1);
        StripedCounter {
            stripes: (0..n)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
        }
    }

    #[inline]
    fn stripe(&self) -> &AtomicUsize {
        &self.stripes[thread_index() & (self.stripes.len() - 1)]
    }

    /// Adds one. Relaxed: the count orders nothing; it is read only as a total.
    #[inline]
    pub(crate) fn incr(&self) {
        self.stripe().fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one (wrapping; the stripes only make sense summed).
    #[inline]
    pub(crate) fn decr(&self) {
        self.stripe().fetch_sub(1, Ordering::Relaxed);
    }

    /// The sum of all stripes, clamped at zero. Exact when no update is in flight; under
    /// concurrent updates it is some value the count passed through or close to it.
    pub(crate) fn sum(&self) -> usize {
        let total = self
            .stripes
            .iter()
            // Relaxed: a snapshot of independent counters; nothing is published through them.
            .fold(0usize, |acc, s| acc.wrapping_add(s.load(Ordering::Relaxed)));
        if (total as isize) < 0 {
            0
        } else {
            total
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sums_across_threads() {
        let c = StripedCounter::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.incr();
                    }
                    for _ in 0..250 {
                        c.decr();
                    }
                });
            }
        });
        assert_eq!(c.sum(), 3000);
    }

    #[test]
    fn negative_stripes_clamp_to_zero() {
        let c = StripedCounter::new();
        c.decr();
        assert_eq!(c.sum(), 0);
        c.incr();
        c.incr();
        assert_eq!(c.sum(), 1);
    }
}
