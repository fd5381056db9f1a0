//! Where entries' memory comes from and goes back to: epoch retirement, and a small
//! per-thread cache of freed entry blocks.
//!
//! Every insert allocates one entry and every replace or remove retires one; the epoch
//! collector frees retired entries in bursts (a bag of up to 64 at a time). glibc's malloc
//! keeps only 7 freed blocks per size in its per-thread cache, so most of such a burst went
//! to its slower bins and the next inserts paid for that: `malloc` + `free` were about a
//! third of the instructions of a cache miss (see docs/cache-benchmarks.md). Here a retired
//! entry is dropped in place and its block kept in the collecting thread's pool; the
//! next entry of the same layout that thread allocates takes it back.
//!
//! Invariants:
//! 1. A pooled block was allocated by the global allocator with exactly the layout of its
//!    class (`pool::class_of` maps a layout to one class and back), and nothing refers to it.
//! 2. A thread pools at most `POOL_BLOCKS` blocks per class; the rest go back to the
//!    global allocator, as does everything a thread pooled when it exits.
//!
//! So every `Box` this module hands out is an ordinary global-allocator `Box`: it may be
//! dropped anywhere, by any code. Under loom, and with `--cfg linemap_no_pool` (used by the
//! sanitizer runs, so that AddressSanitizer sees every free), the pool is off.

use crate::sync::Guard;
use std::alloc::Layout;

/// Hands an unlinked entry to the epoch collector, which drops it and pools its block.
///
/// # Safety
/// `p` must come from [`boxed`] or `Box::into_raw`, and must have been unlinked from every
/// table by a successful CAS, never to be linked again.
pub(crate) unsafe fn retire<T>(p: *mut T, guard: &Guard) {
    pace(guard);
    let p = SendPtr(p);
    // SAFETY: per the contract no new reference to p can be created; those that exist are
    // held under guards, and the collector runs this only after all of them are dropped.
    unsafe {
        guard.defer_unchecked(move || {
            let p = p;
            // SAFETY: `p` is unreachable now (see above) and owned by this closure.
            free(p.0)
        })
    };
}

/// Retirements between two collections this thread asks for (see [`pace`]).
#[cfg(not(loom))]
const RETIRES_PER_COLLECT: u32 = 256;

/// Makes freeing keep pace with this thread's retirements. crossbeam-epoch collects on
/// every 128th pin of a thread, and a collection frees at most 8 bags of 64. A thread that
/// holds one guard across many writes (a `HashMapRef` used for a batch) retires hundreds of
/// entries per pin, so without help its garbage grows for as long as it writes that way and
/// the block pool stays empty. Every `RETIRES_PER_COLLECT` retirements this flushes the
/// thread's bag and collects, which frees what the thread's earlier pins retired (what the
/// current guard retired must wait for it to be dropped). At 256, two collections per 512
/// retirements can free up to twice what was retired, so a backlog drains; at 512 the rates
/// were equal and a thread that fell behind stayed behind (`tests/reclaim_pace.rs`: 7,352
/// values waiting after 64 batches at 512, 1,024 at 256, 32,768 without pacing).
#[inline]
fn pace(guard: &Guard) {
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        thread_local! {
            static RETIRED: Cell<u32> = const { Cell::new(0) };
        }
        let due = RETIRED
            .try_with(|r| {
                let n = r.get() + 1;
                r.set(if n >= RETIRES_PER_COLLECT { 0 } else { n });
                n >= RETIRES_PER_COLLECT
            })
            .unwrap_or(false);
        if due {
            guard.flush();
        }
    }
    #[cfg(loom)]
    let _ = guard;
}

/// `Box::new(value)`, taking a block this thread pooled when it has one of `T`'s layout.
#[inline]
pub(crate) fn boxed<T>(value: T) -> Box<T> {
    if let Some(block) = take(Layout::new::<T>()) {
        let p = block.cast::<T>();
        // SAFETY: the block is unaliased, and was allocated by the global allocator with
        // `T`'s exact layout (invariant 1), which is what `Box::from_raw` requires.
        unsafe {
            p.write(value);
            return Box::from_raw(p);
        }
    }
    Box::new(value)
}

/// Drops `*p` and pools (or frees) its block.
///
/// # Safety
/// `p` must be a `Box<T>` turned into a raw pointer, with no other reference to it.
pub(crate) unsafe fn free<T>(p: *mut T) {
    // The collector runs this on whichever thread happens to collect, where a panic from a
    // user's Drop would unwind through crossbeam-epoch's internals. Catch it: the fields not
    // yet dropped are dropped during the unwind, and the panic has already been reported by
    // the panic hook.
    // SAFETY: `p` is valid and owned here (the contract); it is dropped once.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        std::ptr::drop_in_place(p)
    }));
    let layout = Layout::new::<T>();
    if !put(p.cast(), layout) && layout.size() != 0 {
        // SAFETY: allocated by the global allocator with this layout (a `Box<T>`), its value
        // dropped above, and not pooled.
        unsafe { std::alloc::dealloc(p.cast(), layout) };
    }
}

/// A raw pointer that may be moved to the thread that runs deferred destruction.
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: only used to hand an unlinked allocation to the collector; the map's own Send/Sync
// bounds require K and V to be Send.
unsafe impl<T> Send for SendPtr<T> {}

#[cfg(not(any(loom, linemap_no_pool)))]
mod pool {
    use std::alloc::Layout;
    use std::cell::RefCell;
    use std::ptr::NonNull;

    /// Blocks a thread keeps per class: enough for one collection's burst of frees to be
    /// allocated again without the global allocator. A collection frees up to 8 bags of 64
    /// (512 blocks), and with [`super::pace`] a thread that writes through a long-held handle
    /// collects every 256 of its retirements, each time freeing about the two bags that
    /// earlier pins retired (Exchange mix through handles: 81.8 M -> 65.9 M instructions for
    /// 2^18 operations with 640 blocks; with 128 blocks the bursts went to glibc and it cost
    /// more than no pacing at all, 92.4 M). The price is memory a thread keeps for good: 640
    /// blocks per class it uses (10 KiB for `u64 -> u64` map entries, 30 KiB for a cache's
    /// 48-byte entries), freed when the thread exits.
    pub(super) const POOL_BLOCKS: usize = 640;

    /// Classes: sizes 8, 16, .. 256 bytes, each at alignment 8 or 16.
    pub(super) const CLASSES: usize = 64;

    /// The class of `layout`, if it is pooled: a non-zero size that is a multiple of 8, at most
    /// 256 bytes, with an alignment of 8 or 16 (entries are aligned to 8 at least).
    #[inline]
    pub(super) fn class_of(layout: Layout) -> Option<usize> {
        let (size, align) = (layout.size(), layout.align());
        if size == 0 || size > 256 || size % 8 != 0 || !(align == 8 || align == 16) {
            return None;
        }
        Some((size / 8 - 1) + if align == 16 { CLASSES / 2 } else { 0 })
    }

    /// One thread's pooled blocks, by class.
    struct Pool {
        classes: [Vec<NonNull<u8>>; CLASSES],
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            for (c, blocks) in self.classes.iter_mut().enumerate() {
                let layout = layout_of(c);
                for b in blocks.drain(..) {
                    // SAFETY: invariant 1: allocated with this class's layout, unreferenced.
                    unsafe { std::alloc::dealloc(b.as_ptr(), layout) };
                }
            }
        }
    }

    /// The layout of class `c` (the inverse of `class_of`).
    fn layout_of(c: usize) -> Layout {
        let half = CLASSES / 2;
        let (size, align) = if c >= half {
            ((c - half + 1) * 8, 16)
        } else {
            ((c + 1) * 8, 8)
        };
        Layout::from_size_align(size, align).expect("a valid class layout")
    }

    thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool { classes: [const { Vec::new() }; CLASSES] })
        };
    }

    /// A pooled block of `layout`, if this thread has one.
    #[inline]
    pub(super) fn take(layout: Layout) -> Option<*mut u8> {
        let c = class_of(layout)?;
        // `try_with`: during thread exit the pool may be gone; then nothing is pooled.
        POOL.try_with(|p| p.try_borrow_mut().ok()?.classes[c].pop())
            .ok()
            .flatten()
            .map(NonNull::as_ptr)
    }

    /// Pools `block` of `layout`; `false` if it is not poolable or the class is full (the
    /// caller frees it).
    #[inline]
    pub(super) fn put(block: *mut u8, layout: Layout) -> bool {
        let (Some(c), Some(block)) = (class_of(layout), NonNull::new(block)) else {
            return false;
        };
        POOL.try_with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return false;
            };
            let blocks = &mut p.classes[c];
            if blocks.len() >= POOL_BLOCKS {
                return false;
            }
            if blocks.capacity() == 0 {
                blocks.reserve_exact(POOL_BLOCKS);
            }
            blocks.push(block);
            true
        })
        .unwrap_or(false)
    }

    #[cfg(test)]
    pub(super) fn pooled(layout: Layout) -> usize {
        let c = class_of(layout).expect("a pooled layout");
        POOL.with(|p| p.borrow().classes[c].len())
    }

    #[cfg(test)]
    #[test]
    fn classes_round_trip() {
        for c in 0..CLASSES {
            assert_eq!(class_of(layout_of(c)), Some(c));
        }
    }
}

#[cfg(any(loom, linemap_no_pool))]
mod pool {
    use std::alloc::Layout;

    #[inline]
    pub(super) fn take(_: Layout) -> Option<*mut u8> {
        None
    }

    #[inline]
    pub(super) fn put(_: *mut u8, _: Layout) -> bool {
        false
    }
}

use pool::{put, take};

#[cfg(all(test, not(any(loom, linemap_no_pool))))]
mod tests {
    use super::pool::{class_of, CLASSES, POOL_BLOCKS};
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;

    #[test]
    fn layouts_outside_the_classes_are_not_pooled() {
        assert_eq!(class_of(Layout::new::<()>()), None);
        assert_eq!(class_of(Layout::new::<[u64; 33]>()), None);
        assert_eq!(class_of(Layout::new::<u32>()), None);
        assert_eq!(class_of(Layout::new::<[u8; 12]>()), None);
        assert_eq!(class_of(Layout::new::<u64>()), Some(0));
        assert_eq!(class_of(Layout::new::<u128>()), Some(CLASSES / 2 + 1));
    }

    struct Counted(Arc<AtomicUsize>, #[allow(dead_code)] u64);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn a_freed_block_is_reused_and_its_value_dropped_once() {
        // A fresh thread: its pool starts empty whatever other tests did.
        std::thread::spawn(|| {
            let drops = Arc::new(AtomicUsize::new(0));
            let layout = Layout::new::<Counted>();
            let p = Box::into_raw(boxed(Counted(Arc::clone(&drops), 1)));
            // SAFETY: a Box's pointer, unshared.
            unsafe { free(p) };
            assert_eq!(drops.load(Relaxed), 1);
            assert_eq!(pool::pooled(layout), 1);
            let b = boxed(Counted(Arc::clone(&drops), 2));
            assert_eq!(
                std::ptr::addr_of!(*b),
                p.cast_const(),
                "the block is reused"
            );
            assert_eq!(pool::pooled(layout), 0);
            assert_eq!(b.1, 2);
            drop(b); // an ordinary Box drop: the global allocator takes it back
            assert_eq!(drops.load(Relaxed), 2);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_class_keeps_at_most_pool_blocks() {
        std::thread::spawn(|| {
            let layout = Layout::new::<[u64; 3]>();
            let boxes: Vec<*mut [u64; 3]> = (0..POOL_BLOCKS + 10)
                .map(|i| Box::into_raw(Box::new([i as u64; 3])))
                .collect();
            for p in boxes {
                // SAFETY: Box pointers, unshared, freed once.
                unsafe { free(p) };
            }
            assert_eq!(pool::pooled(layout), POOL_BLOCKS);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_panicking_drop_still_returns_the_block() {
        struct Bomb(#[allow(dead_code)] u64);
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        std::thread::spawn(|| {
            let p = Box::into_raw(Box::new(Bomb(0)));
            // SAFETY: a Box pointer, unshared.
            unsafe { free(p) };
            assert_eq!(pool::pooled(Layout::new::<Bomb>()), 1);
        })
        .join()
        .unwrap();
    }
}
