//! Loom models of the load hand-over paths that `tests/cache.rs` does not reach: a cancelled
//! async loader (the `async` feature), and a registration left stale by an unregistration
//! that unwound, raced by a waiter that must never sleep forever (the `sleepers` flag of
//! `Pending`). What each proves and its cost: docs/verification.md.
//!
//! Like the cache models, each runs its race in both thread assignments and fails unless
//! every outcome was reached; values are `Val`s, so every copy is checked to drop once.
#![cfg(loom)]

use linemap::cache::RemovalCause;
use linemap_loom_tests::cache_support::{quiet_loader_panics, Val, LOADER_PANIC};
use linemap_loom_tests::{knobs, model_both_ways, race, reached, ModelHasher};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The preemption bound of these models.
const BOUND: usize = 3;

// ---------------------------------------------------------------------------------------
// 8. A cancelled async loader hands over.

/// A cache of `u64` keys with a recording listener.
type AsyncCache = linemap::Cache<u64, Val, ModelHasher>;

/// A load future that never finishes: its caller is cancelled while it loads. Counts its
/// polls (a std atomic: loom does not see it, and the model threads run on one OS thread).
struct Stalled(Arc<AtomicUsize>);

impl Future for Stalled {
    type Output = Val;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Val> {
        self.0.fetch_add(1, Relaxed);
        Poll::Pending
    }
}

/// Drives a `get_or_insert_async` future and cancels it (drops it) as soon as it is pending
/// with its load under way, i.e. its caller is the loader. Pending for any other reason (it
/// waits on another caller's load), it stays pending until woken. Output: the value's id,
/// or `None` if it cancelled; and how many times it was polled.
struct CancelWhileLoading<F> {
    inner: Option<Pin<Box<F>>>,
    load_polls: Arc<AtomicUsize>,
    polls: usize,
}

impl<F: Future<Output = Val>> Future for CancelWhileLoading<F> {
    type Output = (Option<u64>, usize);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.polls += 1;
        let inner = this.inner.as_mut().expect("polled after it finished");
        match inner.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready((Some(v.id), this.polls)),
            Poll::Pending if this.load_polls.load(Relaxed) > 0 => {
                // The cancellation: drops the loader's duty mid-load.
                this.inner = None;
                Poll::Ready((None, this.polls))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The outcomes of [`cancelled_async_load`].
const CANCELLED: [&str; 4] = [
    "A cancelled its load; B waited on it, was woken, and loaded",
    "A cancelled its load before B joined; B loaded",
    "A waited on B's load and was woken",
    "A found B's value without waiting",
];

/// 8. Async hand-over. A calls `get_or_insert_async(1, ..)` with a load that never finishes
///    and is cancelled (its future dropped) once its load is under way; B calls
///    `get_or_insert_async(1, ..)` loading v200 and is driven by `loom::future::block_on`,
///    whose waker parks the model thread for real: if the cancellation did not release B,
///    or a published outcome did not wake it, loom reports a deadlock. In every
///    interleaving: B gets v200 and its load runs exactly once; A either cancelled while
///    loading (its load polled once, counted as a load error, nothing of it cached) or got
///    v200 without loading; the cache ends holding v200 and the listener hears nothing.
fn cancelled_async_load(swapped: bool) {
    let cache: Arc<AsyncCache> = Arc::new(
        linemap::Cache::builder(2)
            .hasher(ModelHasher::default())
            .eviction_listener(|k: &u64, v: &Val, cause: RemovalCause| {
                panic!("the listener heard ({k}, {v:?}, {cause:?})")
            })
            .build(),
    );
    let (a_polls, b_loads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c1, c2) = (Arc::clone(&cache), Arc::clone(&cache));
    let (p1, l2) = (Arc::clone(&a_polls), Arc::clone(&b_loads));
    let ((a, a_polled), b) = race(
        swapped,
        move || {
            let f = c1.get_or_insert_async(1, Stalled(Arc::clone(&p1)));
            loom::future::block_on(CancelWhileLoading {
                inner: Some(Box::pin(f)),
                load_polls: p1,
                polls: 0,
            })
        },
        move || {
            loom::future::block_on(c2.get_or_insert_async(1, async move {
                l2.fetch_add(1, Relaxed);
                Val::new(200)
            }))
            .id
        },
    );
    assert_eq!(b, 200, "B must get its own loaded value");
    assert_eq!(b_loads.load(Relaxed), 1, "B's load must run exactly once");
    let a_loaded = a_polls.load(Relaxed);
    let stats = cache.stats();
    match (a, a_loaded) {
        (None, 1) => reached(if stats.misses == 3 {
            CANCELLED[0]
        } else {
            CANCELLED[1]
        }),
        (Some(200), 0) => reached(if a_polled > 1 {
            CANCELLED[2]
        } else {
            CANCELLED[3]
        }),
        outcome => panic!("(A's result, its load's polls) = {outcome:?}"),
    }
    let cancelled = a_loaded as u64;
    assert_eq!(
        (stats.loads, stats.load_errors),
        (1 + cancelled, cancelled),
        "a cancelled load counts as a load error"
    );
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&1).map(|v| v.id), Some(200));
}

#[test]
fn cancelled_async_load_hands_over() {
    model_both_ways(BOUND, &CANCELLED, cancelled_async_load);
}

// ---------------------------------------------------------------------------------------
// 9. A stale registration, and a waiter that must not sleep forever.

/// What a trapped key's `Eq` panics with.
const EQ_PANIC: &str = LOADER_PANIC;

/// A key whose `Eq` panics once its trap is armed (a user type with a panicking `Eq`). Its
/// clones (the ones the cache stores) carry no trap: only comparisons with the caller's own
/// key panic.
struct TrapKey {
    k: u64,
    trap: Option<Arc<AtomicBool>>,
}

impl TrapKey {
    fn armed(&self) -> bool {
        self.trap.as_ref().is_some_and(|t| t.load(Relaxed))
    }
}

impl Clone for TrapKey {
    fn clone(&self) -> Self {
        TrapKey {
            k: self.k,
            trap: None,
        }
    }
}

impl PartialEq for TrapKey {
    fn eq(&self, other: &Self) -> bool {
        if self.armed() || other.armed() {
            std::panic::panic_any(EQ_PANIC);
        }
        self.k == other.k
    }
}

impl Eq for TrapKey {}

impl Hash for TrapKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.k);
    }
}

type TrapCache = linemap::Cache<TrapKey, Val, ModelHasher>;

/// The outcomes of [`stale_registration`].
const STALE: [&str; 4] = [
    "B waited on A's load, was released by the unwind, and replaced the stale registration",
    "B replaced the stale registration without waiting",
    "B loaded first; A got v200",
    "a waiter slept on the condition variable",
];

/// 9. Stale registration and the `sleepers` flag. A calls `get_or_try_insert_with(1, ..)`
///    whose loader fails and arms A's key, so that the removal of its placeholder (`Duty::finish`)
///    unwinds (a user `Eq` panicking): the registration stays, its `Pending` published as
///    abandoned by the unwind guard. B calls `get_or_insert_with(1, || v200)`. A waiter sets
///    `sleepers` under the mutex before blocking and `publish` notifies only if it is set:
///    loom reports a deadlock if B ever sleeps through the publication. A later `join` must
///    replace the finished registration (joining it would return "abandoned" forever: loom
///    fails the run on its branch limit). In every interleaving: B gets v200, its loader
///    runs once; A either loaded (its call panics with the `Eq` panic, nothing of it is
///    cached) or got v200 without loading; the cache ends with v200.
fn stale_registration(swapped: bool) {
    let cache: Arc<TrapCache> = Arc::new(
        linemap::Cache::builder(2)
            .hasher(ModelHasher::default())
            .build(),
    );
    let sleeps = knobs::sleeps();
    let (a_loads, b_loads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c1, c2) = (Arc::clone(&cache), Arc::clone(&cache));
    let (l1, l2) = (Arc::clone(&a_loads), Arc::clone(&b_loads));
    let (a, b) = race(
        swapped,
        move || {
            let trap = Arc::new(AtomicBool::new(false));
            let key = TrapKey {
                k: 1,
                trap: Some(Arc::clone(&trap)),
            };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                c1.get_or_try_insert_with(key, || {
                    l1.fetch_add(1, Relaxed);
                    trap.store(true, Relaxed);
                    Err("down")
                })
                .map(|v| v.id)
            }))
            .map_err(|p| p.downcast_ref::<&str>().copied())
        },
        move || {
            let key = TrapKey { k: 1, trap: None };
            c2.get_or_insert_with(key, || {
                l2.fetch_add(1, Relaxed);
                Val::new(200)
            })
            .id
        },
    );
    assert_eq!(b, 200, "B must get its own loaded value");
    assert_eq!(b_loads.load(Relaxed), 1, "B's loader must run exactly once");
    let stats = cache.stats();
    match (a, a_loads.load(Relaxed)) {
        (Err(Some(EQ_PANIC)), 1) => reached(if stats.misses == 3 {
            STALE[0]
        } else {
            STALE[1]
        }),
        (Ok(Ok(200)), 0) => reached(STALE[2]),
        outcome => panic!("(A's result, its loader's runs) = {outcome:?}"),
    }
    if knobs::sleeps() > sleeps {
        reached(STALE[3]);
    }
    let key = TrapKey { k: 1, trap: None };
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get(&key).map(|v| v.id), Some(200));
}

#[test]
fn stale_registration_is_replaced() {
    quiet_loader_panics();
    model_both_ways(BOUND, &STALE, stale_registration);
}
