//! A striped counter: each thread adds to its own cache-padded stripe, a read sums them.
//!
//! `len()` must not cost a shared write per insert: with one counter every insert on every
//! core would fight for the same line. Each stripe sits in its own 128-byte
//! [`CachePadded`] slot, so two threads on different stripes never share a line.
//!
//! A thread that owns a stripe (`sync::stripe`: one per live thread, up to the machine's
//! parallelism) is its only writer and adds with a plain load and store; the other threads
//! add with an atomic read-modify-write to one of as many shared stripes.

use crate::sync::{counter_stripes, stripe, AtomicUsize, Ordering, Stripe};
use crossbeam_utils::CachePadded;

/// Signed counter spread over padded stripes: one per owner slot, then the shared ones.
pub(crate) struct StripedCounter {
    stripes: Box<[CachePadded<AtomicUsize>]>,
}

impl StripedCounter {
    /// A counter with `sync::counter_stripes` stripes.
    pub(crate) fn new() -> Self {
        StripedCounter {
            stripes: (0..counter_stripes())
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
        }
    }

    /// Adds `d` (wrapping). Relaxed: the count orders nothing; it is read only as a total.
    #[inline]
    fn add(&self, d: usize) {
        match stripe() {
            Stripe::Owned(i) => {
                let s = &self.stripes[i];
                // Relaxed: this thread is the stripe's only writer (see `sync::stripe`), so
                // a load and a store lose nothing.
                s.store(s.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed);
            }
            Stripe::Shared(i) => {
                // Relaxed: as above; shared with other threads, so a read-modify-write.
                self.stripes[i].fetch_add(d, Ordering::Relaxed);
            }
        }
    }

    /// Adds one.
    #[inline]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    /// Subtracts one (wrapping; the stripes only make sense summed).
    #[inline]
    pub(crate) fn decr(&self) {
        self.add(usize::MAX);
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

    #[test]
    fn exact_with_more_threads_than_stripes_and_thread_churn() {
        let c = StripedCounter::new();
        let threads = 2 * crate::sync::owned_stripes() + 3;
        for _round in 0..3 {
            std::thread::scope(|s| {
                for t in 0..threads {
                    let c = &c;
                    s.spawn(move || {
                        for _ in 0..2000 + t {
                            c.incr();
                        }
                        for _ in 0..t {
                            c.decr();
                        }
                    });
                }
            });
        }
        assert_eq!(c.sum(), 3 * threads * 2000);
    }

    #[test]
    fn counts_made_while_threads_exit_are_kept() {
        use std::cell::RefCell;
        use std::sync::Arc;
        // Adds 10 when the thread's locals are destroyed: before or after the thread gives
        // its stripe back, in whatever order the platform runs the destructors.
        struct OnExit(Arc<StripedCounter>);
        impl Drop for OnExit {
            fn drop(&mut self) {
                for _ in 0..10 {
                    self.0.incr();
                }
            }
        }
        thread_local! {
            static ON_EXIT: RefCell<Option<OnExit>> = const { RefCell::new(None) };
        }
        let c = Arc::new(StripedCounter::new());
        for round in 0..4 {
            let c2 = Arc::clone(&c);
            std::thread::spawn(move || {
                if round % 2 == 0 {
                    // Claims a slot first; the odd rounds count only while exiting.
                    c2.incr();
                }
                ON_EXIT.with(|o| *o.borrow_mut() = Some(OnExit(c2)));
            })
            .join()
            .unwrap();
        }
        assert_eq!(c.sum(), 42);
    }
}
