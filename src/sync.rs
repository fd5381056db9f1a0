//! The one switch between real and model-checked synchronisation.
//!
//! Every atomic, fence and spin hint the crate uses is imported from here, so that building
//! with `--cfg loom` swaps in loom's instrumented versions and the loom models in
//! `loom-tests/` explore every interleaving of the real protocols. crossbeam-epoch follows the
//! same switch through its own `crossbeam_loom` cfg (set together with `loom` by `.ci/loom`).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};

pub(crate) use std::sync::atomic::Ordering;

/// Tells the processor (or loom's scheduler) that this thread is waiting for another one.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// The epoch-based reclamation the crate uses: a guard keeps every entry and table it can
/// reach alive until it is dropped.
pub(crate) use crossbeam_epoch::{pin, Guard};

/// A small per-thread number used to pick a counter stripe. Stable for a thread's life.
#[inline]
pub(crate) fn thread_index() -> usize {
    use std::cell::Cell;
    // Relaxed: the value is only a spreading hint; any value is correct.
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
