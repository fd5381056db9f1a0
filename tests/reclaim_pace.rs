//! Freeing keeps pace with retiring when a thread writes through long-held handles.
//!
//! crossbeam-epoch collects garbage every 128 pins. A thread that pins once per batch of
//! writes (a `HashMapRef` kept for 1,024 operations, as the benchmarks' handle style does)
//! retires hundreds of entries per pin, so without help it would free a few bags per 128
//! batches and its garbage would grow for as long as it runs. linemap asks for a collection
//! every 256 retirements of a thread (`reclaim::pace`).
//!
//! This file holds one test so that no other test's thread shares the process's collector:
//! another thread pinned in an old epoch would hold back every free and make the bound below
//! meaningless. Without the pacing all 32,768 removed values were still waiting after the 64
//! batches; with it, 1,024 (the last two batches'), every run.
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Relaxed);
    }
}

#[test]
fn garbage_stays_bounded_under_batched_handles() {
    const BATCHES: usize = 64;
    const PAIRS: usize = 512; // an insert and a remove each: 1,024 writes per handle
    let map = linemap::HashMap::new();
    let mut next = 0u64;
    let mut removed = 0usize;
    let mut worst = 0usize;
    for _ in 0..BATCHES {
        let h = map.pin();
        for _ in 0..PAIRS {
            h.insert(next, Counted);
            assert!(h.remove(&next).is_some());
            next += 1;
            removed += 1;
        }
        drop(h);
        // Values removed but not yet dropped: the garbage this thread is carrying.
        worst = worst.max(removed - DROPPED.load(Relaxed));
    }
    // What the last two pins retired cannot be freed yet (their epochs are too recent), and a
    // collection frees at most 8 bags of 64; allow four batches' worth.
    assert!(
        worst <= 4 * PAIRS,
        "{worst} removed values were still waiting to be dropped (bound {})",
        4 * PAIRS
    );
    assert!(map.is_empty());
}
