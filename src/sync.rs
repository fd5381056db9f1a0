//! The one switch between real and model-checked synchronisation.
//!
//! Every atomic, fence and spin hint the crate uses is imported from here, so that building
//! with `--cfg loom` swaps in loom's instrumented versions and the loom models in
//! `loom-tests/` explore every interleaving of the real protocols. crossbeam-epoch follows the
//! same switch through its own `crossbeam_loom` cfg (set together with `loom` by `.ci/loom`).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};

pub(crate) use std::sync::atomic::Ordering;

/// Blocking primitives, used only where a thread must wait for another's result (a cache
/// load in flight), never on a lookup or write path of the table.
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex};

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex};

/// The calling thread's id (loom's model thread under loom, where every model thread runs on
/// one OS thread). Outside loom it is [`thread_index`], unique per thread: a thread-local
/// read, where `std::thread::current().id()` cloned and dropped the thread's `Arc` handle
/// (two locked instructions and ~20 instructions on every cache miss).
#[cfg(not(loom))]
#[inline]
pub(crate) fn current_thread_id() -> ThreadId {
    thread_index()
}

/// The calling thread's id (loom's model thread under loom, where every model thread runs on
/// one OS thread).
#[cfg(loom)]
pub(crate) fn current_thread_id() -> loom::thread::ThreadId {
    loom::thread::current().id()
}

/// The type [`current_thread_id`] returns.
#[cfg(not(loom))]
pub(crate) type ThreadId = usize;
/// The type [`current_thread_id`] returns.
#[cfg(loom)]
pub(crate) type ThreadId = loom::thread::ThreadId;

/// Tells the processor (or loom's scheduler) that this thread is waiting for another one.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Loom-only "weakening knobs": each one, when a loom model turns it on, weakens one step of
/// a protocol, so that the models in `loom-tests/tests/teeth.rs` can show loom rejects the
/// weakened protocol. Compiled only under `--cfg loom`; every knob is off unless a model sets
/// it (plain std atomics: loom does not see them, a model sets them before it starts).
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom_knobs {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// `rmw` publishes a freshly inserted entry's tag with `Relaxed` instead of `Release`.
    pub static RELAXED_TAG_PUBLISH: AtomicBool = AtomicBool::new(false);
    /// `probe_write` skips LIVE slots whose tag is still unpublished (tag 0) instead of
    /// checking whether they hold the key.
    pub static SKIP_PENDING_CHECK: AtomicBool = AtomicBool::new(false);

    /// A waiter for a cache load does not set the `sleepers` flag before it blocks on the
    /// load's condition variable (so `publish` does not notify it).
    pub static SKIP_SLEEPERS_FLAG: AtomicBool = AtomicBool::new(false);

    std::thread_local! {
        /// Times a waiter blocked on a load's condition variable, on this OS thread (loom
        /// runs all of a model's threads on the test's thread): the models' coverage check.
        static SLEEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// How many times a waiter blocked on a load's condition variable in this test's
    /// executions so far.
    pub fn sleeps() -> usize {
        SLEEPS.with(std::cell::Cell::get)
    }

    /// Called by a waiter that set `sleepers` and is about to block: counts the sleep, and
    /// clears the flag again if `SKIP_SLEEPERS_FLAG` is on.
    pub(crate) fn before_sleep(sleepers: &mut bool) {
        SLEEPS.with(|n| n.set(n.get() + 1));
        if SKIP_SLEEPERS_FLAG.load(Ordering::Relaxed) {
            *sleepers = false;
        }
    }

    /// The ordering of an insert's tag publication.
    pub(crate) fn tag_publish() -> Ordering {
        if RELAXED_TAG_PUBLISH.load(Ordering::Relaxed) {
            Ordering::Relaxed
        } else {
            Ordering::Release
        }
    }

    /// Whether `probe_write` skips entries whose tag is not published yet (the check that
    /// keeps two racing inserts of one key from both inserting).
    pub(crate) fn skip_pending() -> bool {
        SKIP_PENDING_CHECK.load(Ordering::Relaxed)
    }
}

/// The epoch-based reclamation the crate uses: a guard keeps every entry and table it can
/// reach alive until it is dropped.
pub(crate) use crossbeam_epoch::Guard;

#[cfg(loom)]
pub(crate) use crossbeam_epoch::pin;

/// Pins the current thread, through linemap's own registration with crossbeam-epoch's
/// default collector (one per thread, made on first use).
///
/// `crossbeam_epoch::pin()` reaches its per-thread handle through `with_handle`, which the
/// compiler keeps out of line (it carries the registration fallback): ~31 instructions per
/// pin, a third of a one-shot `map.get`. Here the thread-local access and `Local::pin`
/// inline into the caller (108.7 -> 99.8 instructions per one-shot get, 145 -> 135 per cache
/// hit; docs/benchmarks.md). Garbage is the same collector's: it is freed by the same epochs,
/// and a thread's bag goes to the global queue when it fills, when the thread exits, or when
/// [`flush_local`] runs (maps and caches call it when dropped or cleared, since
/// `crossbeam_epoch::pin().flush()` flushes crossbeam's own handle, not this one).
#[cfg(not(loom))]
#[inline]
pub(crate) fn pin() -> Guard {
    thread_local! {
        static HANDLE: crossbeam_epoch::LocalHandle =
            crossbeam_epoch::default_collector().register();
    }
    // During thread exit, after this handle is gone, crossbeam's own (with its fallback).
    HANDLE
        .try_with(|h| h.pin())
        .unwrap_or_else(|_| crossbeam_epoch::pin())
}

/// Hands this thread's deferred garbage (its bag in linemap's registration) to the global
/// queue and collects what is old enough, so that dropped and cleared containers' entries
/// are not held back by a thread that goes quiet. Not under loom (the models flush the epoch
/// themselves, and an extra flush would only add interleavings).
#[inline]
pub(crate) fn flush_local() {
    #[cfg(not(loom))]
    pin().flush();
}

/// Stripes that threads can own in every striped counter (`crate::counter`, the cache's
/// stats): the machine's parallelism rounded up to a power of two, at most 64. The same for
/// every counter, so that a thread's slot (from [`stripe`]) is its own in all of them.
pub(crate) fn owned_stripes() -> usize {
    #[cfg(loom)]
    {
        0
    }
    #[cfg(not(loom))]
    {
        static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *N.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
            cores.next_power_of_two().clamp(1, 64)
        })
    }
}

/// Stripes shared by the threads that own none: as many as the owned ones (at least one), so
/// that a process with more threads than cores, whose slots may be held by idle threads,
/// still spreads its running threads' counts over that many lines.
fn shared_stripes() -> usize {
    owned_stripes().max(1)
}

/// Stripes of every striped counter: the owned ones, then the shared ones.
pub(crate) fn counter_stripes() -> usize {
    owned_stripes() + shared_stripes()
}

/// Where this thread adds in a striped counter of [`counter_stripes`] stripes.
pub(crate) enum Stripe {
    /// Stripe `i` is this thread's alone: add with a plain load and store. (Never under
    /// loom, which models no owned stripes.)
    #[cfg_attr(loom, allow(dead_code))]
    Owned(usize),
    /// Stripe `i` may be shared with other threads: add with a read-modify-write.
    Shared(usize),
}

/// This thread's stripe. A thread owns stripe `i` in `0..owned_stripes()` of every counter
/// while it lives: no other thread writes it, so the owner adds with a plain load and store
/// instead of a locked read-modify-write (18-20 cycles on x86_64, paid on every cache hit for
/// its statistics). The slot is claimed on first use from a process-wide bitmap and given back
/// when the thread exits. A thread gets a shared stripe, picked by its [`thread_index`], when
/// every slot is taken by live threads (more threads than the machine has cores), during
/// thread exit, and under loom (which has one shared stripe and no owned ones).
///
/// A slot freed by an exiting thread and claimed by a new one passes its stripes on: the
/// release (`fetch_and`, Release) after the old owner's last store and the claim's Acquire
/// CAS order the new owner's loads after those stores, so no count is lost.
#[inline]
pub(crate) fn stripe() -> Stripe {
    #[cfg(loom)]
    {
        Stripe::Shared(0)
    }
    #[cfg(not(loom))]
    {
        owner::stripe()
    }
}

/// A shared stripe for this thread (see [`stripe`]).
#[cfg(not(loom))]
fn shared_stripe() -> Stripe {
    Stripe::Shared(owned_stripes() + (thread_index() & (shared_stripes() - 1)))
}

#[cfg(not(loom))]
mod owner {
    use super::Stripe;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Bit i: slot i is owned by a live thread.
    static CLAIMED: AtomicU64 = AtomicU64::new(0);

    /// Not claimed yet.
    const UNCLAIMED: usize = usize::MAX;
    /// No slot (all were taken when this thread asked, or it has given its slot back).
    const NONE: usize = usize::MAX - 1;

    thread_local! {
        /// This thread's slot, [`UNCLAIMED`] or [`NONE`]. No destructor, so that the hot
        /// path is one thread-local load with no registration state to check, and so that
        /// it stays readable during thread exit.
        static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
        /// Gives the slot back when the thread exits. Touched once, when a slot is claimed.
        static RELEASE: Release = const { Release };
    }

    /// Gives this thread's slot back (see `stripe`) when its thread-locals are
    /// destroyed. Counts after that go to the shared stripe: `SLOT` reads [`NONE`].
    struct Release;

    impl Drop for Release {
        fn drop(&mut self) {
            let i = SLOT.with(|s| s.replace(NONE));
            if i < 64 {
                // Release: this thread's stores to its stripes happen before the next
                // owner's claim (see `stripe`).
                CLAIMED.fetch_and(!(1u64 << i), Ordering::Release);
            }
        }
    }

    #[inline]
    pub(super) fn stripe() -> Stripe {
        let i = SLOT.with(Cell::get);
        if i < 64 {
            return Stripe::Owned(i);
        }
        not_owned(i)
    }

    /// The slow path of [`stripe`]: claims a slot on this thread's first count, else
    /// hands out a shared stripe.
    #[cold]
    #[inline(never)]
    fn not_owned(i: usize) -> Stripe {
        if i != UNCLAIMED {
            return super::shared_stripe();
        }
        // Registers the release before claiming. Fails only during thread exit, when
        // `RELEASE` is already destroyed: then no slot is claimed (it would never be given
        // back).
        if RELEASE.try_with(|_| ()).is_err() {
            SLOT.with(|s| s.set(NONE));
            return super::shared_stripe();
        }
        let c = claim();
        SLOT.with(|s| s.set(c));
        if c == NONE {
            super::shared_stripe()
        } else {
            Stripe::Owned(c)
        }
    }

    #[cold]
    fn claim() -> usize {
        let n = super::owned_stripes();
        let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        // Relaxed: only a first guess; the CAS below decides.
        let mut m = CLAIMED.load(Ordering::Relaxed);
        loop {
            let free = !m & all;
            if free == 0 {
                return NONE;
            }
            let i = free.trailing_zeros() as usize;
            // Acquire: pairs with the Release of the slot's previous owner (see
            // `stripe`). Relaxed on failure: we retry with the value read.
            match CLAIMED.compare_exchange_weak(
                m,
                m | (1u64 << i),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return i,
                Err(x) => m = x,
            }
        }
    }
}

/// A per-thread number, stable for the thread's life and never given to another thread (a
/// counter that only grows), so it identifies the thread. Readable during thread exit (a
/// `Cell` without a destructor).
#[cfg(not(loom))]
#[inline]
pub(crate) fn thread_index() -> usize {
    use std::cell::Cell;
    // Relaxed: each read-modify-write returns a distinct value whatever the ordering, and
    // nothing is published through it.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut v = i.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            i.set(v);
        }
        v
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// One more live thread than there are slots: at most `owned_stripes()` of them own one
    /// (each a different one, whatever other tests hold), and the others count on shared
    /// stripes, after the owned ones.
    #[test]
    fn slots_are_exclusive_and_the_rest_share() {
        let n = owned_stripes();
        let threads = n + 1;
        let barrier = Barrier::new(threads);
        let got: Vec<Stripe> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let st = stripe();
                        // Hold the slot until every thread has asked for one.
                        barrier.wait();
                        st
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut owned: Vec<usize> = got
            .iter()
            .filter_map(|s| match s {
                Stripe::Owned(i) => Some(*i),
                Stripe::Shared(_) => None,
            })
            .collect();
        assert!(owned.iter().all(|&i| i < n), "{owned:?}");
        let before = owned.len();
        owned.sort();
        owned.dedup();
        assert_eq!(owned.len(), before, "a slot was owned twice");
        assert!(
            before < threads,
            "n + 1 live threads cannot all own one of n slots"
        );
        for s in &got {
            if let Stripe::Shared(i) = s {
                assert!((n..counter_stripes()).contains(i), "shared stripe {i}");
            }
        }
    }
}
