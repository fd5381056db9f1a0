//! Loads in flight: concurrent misses on one key run one loader; the others wait for it.
//!
//! Protocol. A caller that misses registers the load as a *placeholder* entry of the key in
//! the cache's own table (a [`Node`](super::Node) marked loading, holding a [`PendingRef`]),
//! by one atomic read-modify-write of the key's slot (`Cache::join_load`):
//!
//! * if it put its placeholder there (the key was absent or expired), it is the *loader*: it
//!   runs the user's function outside every internal critical section (no table slot, no
//!   lock is held), replaces its own placeholder with the loaded entry (or removes it), then
//!   publishes the outcome in the `Pending`;
//! * if it found another caller's placeholder, it is a *waiter* on that `Pending`: it marks
//!   the load as waited for ([`PendingRef::join`]) and blocks until the outcome is published:
//!   `Done(v)` (it returns `v`) or `Abandoned` (it starts over, and one of the waiters becomes
//!   the next loader). A loader that found no waiter marked publishes `Abandoned` instead of
//!   cloning its value for nobody; a waiter that joined just after it looked starts over and
//!   finds the stored value;
//! * if it found a value (stored since its first look), that is a hit.
//!
//! A loader that returns an error, panics, or is dropped (an async loader's future) abandons:
//! the error goes only to its own caller, nothing is cached, and the waiters are released.
//! The outcome is published under the `Pending`'s mutex and waiters wait on its condition
//! variable: this is the one blocking wait in the crate, and it only ever waits for a load.

use crate::sync::{current_thread_id, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, ThreadId};
use std::ptr::NonNull;

/// What a waiter learns.
enum State<V> {
    Loading,
    Done(V, u64),
    Abandoned,
}

/// A published value and the deadline it carries in the cache (nanoseconds on the cache's
/// clock; `u64::MAX` or near it for none). A caller that joined the load at or after the
/// deadline must not return the value: it expired before that caller began.
pub(crate) type Outcome<V> = Option<(V, u64)>;

/// The value a waiter that joined the load at `joined` (the cache clock's nanoseconds) may
/// return: `None` if the load was abandoned, or if its value's deadline had passed when the
/// waiter joined (the value expired before that caller began: it looks again).
pub(crate) fn in_time<V>(outcome: Outcome<V>, joined: u64) -> Option<V> {
    outcome
        .filter(|&(_, deadline)| joined < deadline)
        .map(|(v, _)| v)
}

/// What the mutex of a [`Pending`] guards.
struct Shared<V> {
    state: State<V>,
    /// Wakers of async waiters (woken when the outcome is published).
    wakers: Wakers,
    /// Whether a thread may be blocked on the condition variable. Notifying costs a system
    /// call even when nobody waits (std's futex condvar always wakes), and most loads have
    /// no waiter: `publish` notifies only when this is set.
    sleepers: bool,
}

/// One load in flight.
pub(crate) struct Pending<V> {
    /// The outcome and who waits for it.
    shared: Mutex<Shared<V>>,
    ready: Condvar,
    /// The loader's thread, to turn a loader that waits for itself into a clear panic.
    loader: ThreadId,
    /// Whether a waiter has joined ([`PendingRef::join`]). The loader hands its value over
    /// only then, so that a load nobody waited for (most of them) costs no clone of the
    /// value. A waiter that joins after the loader looked finds the load abandoned and looks
    /// again: the value is in the cache by then, unless it was not stored (see
    /// `Cache::store_loaded`), and then it loads. Relaxed: either order is safe.
    joined: AtomicBool,
}

impl<V: Clone> Pending<V> {
    fn new() -> Self {
        Pending {
            shared: Mutex::new(Shared {
                state: State::Loading,
                wakers: Wakers::default(),
                sleepers: false,
            }),
            ready: Condvar::new(),
            loader: current_thread_id(),
            joined: AtomicBool::new(false),
        }
    }

    /// Whether a waiter has joined this load (see `joined`).
    pub(crate) fn joined(&self) -> bool {
        // Relaxed: see the field.
        self.joined.load(Ordering::Relaxed)
    }

    /// Whether an outcome was published (a placeholder still holding it is stale: its
    /// loader's removal of it unwound).
    pub(crate) fn finished(&self) -> bool {
        !matches!(
            self.shared.lock().unwrap_or_else(|e| e.into_inner()).state,
            State::Loading
        )
    }

    /// Publishes the outcome (`None`: abandoned) and wakes every waiter.
    pub(crate) fn publish(&self, outcome: Outcome<V>) {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.state = match outcome {
            Some((v, deadline)) => State::Done(v, deadline),
            None => State::Abandoned,
        };
        let wakers = std::mem::take(&mut s.wakers);
        // Read under the mutex: a waiter sets it under the mutex before it blocks, so either
        // it is set here or the waiter will see the outcome before blocking.
        let sleepers = s.sleepers;
        drop(s);
        if sleepers {
            self.ready.notify_all();
        }
        wakers.wake_all();
    }

    /// Waits for the outcome: `Some((v, deadline))` loaded, `None` abandoned.
    ///
    /// # Panics
    /// If the load is still in flight and this is the loader's own thread (a loader that asks
    /// for its own key would wait for itself forever).
    pub(crate) fn wait(&self) -> Outcome<V> {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(s.state, State::Loading) {
            assert!(
                current_thread_id() != self.loader,
                "linemap::Cache: a loader asked for the key it is loading (it would wait for itself)"
            );
        }
        loop {
            match &s.state {
                State::Loading => {
                    s.sleepers = true;
                    #[cfg(loom)]
                    crate::sync::__loom_knobs::before_sleep(&mut s.sleepers);
                    s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                State::Done(v, d) => return Some((v.clone(), *d)),
                State::Abandoned => return None,
            }
        }
    }
}

impl<V: Clone> Pending<V> {
    /// The async form of [`Pending::wait`]: `Ready(Some((v, deadline)))` loaded,
    /// `Ready(None)` abandoned, `Pending` after registering the task's waker.
    #[cfg(feature = "async")]
    pub(crate) fn poll_outcome(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome<V>> {
        let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match &s.state {
            State::Loading => {
                s.wakers.register(cx.waker());
                std::task::Poll::Pending
            }
            State::Done(v, d) => std::task::Poll::Ready(Some((v.clone(), *d))),
            State::Abandoned => std::task::Poll::Ready(None),
        }
    }
}

/// A counted reference to a [`Pending`]: `Arc`'s protocol, on a block from the entry pool
/// (`crate::reclaim`). A load's `Pending` is made and dropped once per miss, and mostly
/// dropped by the epoch collector with the placeholder entry that held it, in its bursts:
/// through glibc, as an `Arc`, that cost a miss about 250 instructions of `malloc` and
/// `free` (callgrind); from the pool it costs about 20. The placeholder entry holds one
/// reference (dropped when the epoch collector frees it), the loader one, each waiter one.
pub(crate) struct PendingRef<V>(NonNull<Counted<V>>);

/// The block behind a [`PendingRef`].
struct Counted<V> {
    refs: AtomicUsize,
    pending: Pending<V>,
}

// SAFETY: as `Arc<Pending<V>>`: the count is atomic, and `Pending<V>` is shared by reference
// across threads (it is `Sync` exactly when `V: Send`, through its mutex).
unsafe impl<V: Send> Send for PendingRef<V> where Pending<V>: Sync {}
// SAFETY: as above.
unsafe impl<V: Send> Sync for PendingRef<V> where Pending<V>: Sync {}

impl<V: Clone> PendingRef<V> {
    /// A new load in flight, loaded by the calling thread.
    pub(crate) fn fresh() -> Self {
        Self::new(Pending::new())
    }
}

impl<V> PendingRef<V> {
    fn new(pending: Pending<V>) -> Self {
        let block = crate::reclaim::boxed(Counted {
            refs: AtomicUsize::new(1),
            pending,
        });
        PendingRef(NonNull::from(Box::leak(block)))
    }

    /// Whether `a` and `b` refer to the same load.
    pub(crate) fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.0 == b.0
    }

    /// A reference for a caller that will wait for this load, marking the load as waited
    /// for (see `Pending::joined`).
    pub(crate) fn join(&self) -> Self {
        // Relaxed: see `Pending::joined`.
        // SAFETY: the block lives while `self` does.
        unsafe { self.0.as_ref() }
            .pending
            .joined
            .store(true, Ordering::Relaxed);
        self.clone()
    }
}

impl<V> Clone for PendingRef<V> {
    fn clone(&self) -> Self {
        // Relaxed: a new reference is made from an existing one, which keeps the block
        // alive; nothing is published through the count (as `Arc::clone`).
        // SAFETY: the block lives while `self` does.
        unsafe { self.0.as_ref() }
            .refs
            .fetch_add(1, Ordering::Relaxed);
        PendingRef(self.0)
    }
}

impl<V> std::ops::Deref for PendingRef<V> {
    type Target = Pending<V>;
    fn deref(&self) -> &Pending<V> {
        // SAFETY: the block lives while `self` does.
        &unsafe { self.0.as_ref() }.pending
    }
}

impl<V> Drop for PendingRef<V> {
    fn drop(&mut self) {
        // Release: our uses of the `Pending` happen before whoever frees it.
        // SAFETY: the block lives while `self` does.
        if unsafe { self.0.as_ref() }
            .refs
            .fetch_sub(1, Ordering::Release)
            != 1
        {
            return;
        }
        // Acquire: pairs with every other reference's Release decrement (they form a release
        // sequence), so all their uses happen before the free. A load rather than
        // `fence(Acquire)`: the same guarantee, and ThreadSanitizer, which does not model
        // fences, sees it (std's `Arc` does the same under TSan); CI's TSan run reported the
        // fence version as a race between a decrement and the free.
        // SAFETY: we hold the last reference, so the block is still allocated.
        let _ = unsafe { self.0.as_ref() }.refs.load(Ordering::Acquire);
        // SAFETY: the last reference: the block came from `reclaim::boxed` (a `Box`) and
        // nothing else refers to it.
        unsafe { crate::reclaim::free(self.0.as_ptr()) };
    }
}

/// Wakers of async waiters (empty without the `async` feature).
#[derive(Default)]
pub(crate) struct Wakers {
    #[cfg(feature = "async")]
    list: Vec<std::task::Waker>,
}

impl Wakers {
    #[cfg(feature = "async")]
    fn register(&mut self, w: &std::task::Waker) {
        if !self.list.iter().any(|x| x.will_wake(w)) {
            self.list.push(w.clone());
        }
    }

    fn wake_all(self) {
        #[cfg(feature = "async")]
        for w in self.list {
            w.wake();
        }
    }
}

/// Where a caller of a loading call stands after its first look (`Cache::begin_load`).
pub(crate) enum Step<V> {
    /// The value was cached (or a load finished meanwhile).
    Hit(V),
    /// Another caller is loading the key: wait for its outcome.
    Wait(PendingRef<V>),
    /// This caller put its placeholder in the table: run the loader, then store and publish
    /// (`Cache::end_load`).
    Load(PendingRef<V>),
}

/// Waits for a load in flight without blocking the thread (the `async` feature).
#[cfg(feature = "async")]
pub(crate) struct Awaited<'a, V>(pub(crate) &'a Pending<V>);

#[cfg(feature = "async")]
impl<V: Clone> std::future::Future for Awaited<'_, V> {
    type Output = Outcome<V>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome<V>> {
        self.0.poll_outcome(cx)
    }
}
