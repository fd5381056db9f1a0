//! Loads in flight: concurrent misses on one key run one loader; the others wait for it.
//!
//! Protocol. A caller that misses registers a [`Pending`] for the key in a small lock-free
//! table of loads (`Loads`), by an atomic insert-if-absent:
//!
//! * if it inserted its own, it is the *loader*: it runs the user's function outside every
//!   internal critical section (no table slot, no lock is held), stores the value in the
//!   cache, then publishes the outcome in the `Pending` and unregisters it;
//! * otherwise it is a *waiter* on the registered `Pending` and blocks until the outcome is
//!   published: `Done(v)` (it returns `v`) or `Abandoned` (it starts over, and one of the
//!   waiters becomes the next loader).
//!
//! A loader that returns an error, panics, or is dropped (an async loader's future) abandons:
//! the error goes only to its own caller, nothing is cached, and the waiters are released.
//! The outcome is published under the `Pending`'s mutex and waiters wait on its condition
//! variable: this is the one blocking wait in the crate, and it only ever waits for a load.

use crate::sync::{
    current_thread_id, pin, AtomicBool, AtomicUsize, Condvar, Guard, Mutex, Ordering, ThreadId,
};
use crate::table::{Entry, Op, RawTable, Rehash};
use std::hash::Hash;
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
    /// Set by a removal of the key (or `clear`) while the load is in flight: the loader may
    /// have read the source before the write that the removal announces, so its value must
    /// not be cached (see `Cache::store_loaded`). Callers that arrive after it is set start a
    /// new load instead of joining this one.
    stale: AtomicBool,
}

impl<V> Pending<V> {
    /// Marks the load stale (see [`Pending::stale`]). The caller issues a SeqCst fence after
    /// it, before it looks for the key in the cache.
    fn invalidate(&self) {
        // Relaxed: ordered by the SeqCst fences of `Cache::invalidate_loads` and
        // `Cache::store_loaded` (a store-buffering pair: see there).
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Whether a removal marked this load stale.
    pub(crate) fn is_stale(&self) -> bool {
        // Relaxed: see `invalidate`.
        self.stale.load(Ordering::Relaxed)
    }
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
            stale: AtomicBool::new(false),
        }
    }

    /// Whether an outcome was published (a registration still holding it is stale).
    fn finished(&self) -> bool {
        !matches!(
            self.shared.lock().unwrap_or_else(|e| e.into_inner()).state,
            State::Loading
        )
    }

    /// Publishes the outcome (`None`: abandoned) and wakes every waiter.
    fn publish(&self, outcome: Outcome<V>) {
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
/// dropped by the epoch collector with the loads-table entry that held it, in its bursts:
/// through glibc, as an `Arc`, that cost a miss about 250 instructions of `malloc` and
/// `free` (callgrind); from the pool it costs about 20.
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

impl<V> PendingRef<V> {
    fn new(pending: Pending<V>) -> Self {
        let block = crate::reclaim::boxed(Counted {
            refs: AtomicUsize::new(1),
            pending,
        });
        PendingRef(NonNull::from(Box::leak(block)))
    }

    /// Whether `a` and `b` refer to the same load.
    fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.0 == b.0
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

/// The caller's part in a load.
pub(crate) enum Role<V> {
    /// Run the loader, then [`Loads::finish`].
    Loader(PendingRef<V>),
    /// Wait on another caller's load.
    Waiter(PendingRef<V>),
}

/// Where a caller of a loading call stands after its first look (`Cache::begin_load`).
pub(crate) enum Step<V> {
    /// The value was cached (or a load finished meanwhile).
    Hit(V),
    /// Another caller is loading the key: wait for its outcome.
    Wait(PendingRef<V>),
    /// This caller registered the load: run the loader, then publish.
    Load(PendingRef<V>),
}

/// The loads in flight, by key.
pub(crate) struct Loads<K, V> {
    table: RawTable<K, PendingRef<V>>,
}

/// Loads in flight the table of loads is sized for. Every load inserts one entry and removes
/// it, leaving a tombstone, and a table copies itself (to drop them) when its buckets
/// overflow: a one-bucket table did so about every 7 misses, one sized for 256 loads (64
/// buckets, 4 KiB) every few hundred. Loom models keep the smallest table (each bucket is
/// eight modelled atomics).
#[cfg(not(loom))]
const LOADS_CAPACITY: usize = 256;
#[cfg(loom)]
const LOADS_CAPACITY: usize = 0;

impl<K, V> Loads<K, V> {
    pub(crate) fn new() -> Self {
        Loads {
            table: RawTable::with_capacity(LOADS_CAPACITY),
        }
    }

    /// Marks the load of the key that `eq` matches (hash `hash`), if one is in flight, stale.
    pub(crate) fn invalidate(&self, hash: u64, eq: impl FnMut(&K) -> bool, guard: &Guard) {
        if let Some(e) = self.table.find(hash, eq, guard) {
            e.value.invalidate();
        }
    }

    /// Marks every load in flight stale.
    pub(crate) fn invalidate_all(&self, guard: &Guard) {
        self.table.for_each(guard, |e| e.value.invalidate());
    }
}

impl<K, V> Loads<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// Registers a load of `key` (hash `hash`) or joins the one in flight.
    pub(crate) fn join(&self, key: &K, hash: u64, rehash: Rehash<'_, K>, guard: &Guard) -> Role<V> {
        let mine = PendingRef::new(Pending::new());
        let mut fresh = Some(crate::reclaim::boxed(Entry {
            key: key.clone(),
            value: mine.clone(),
        }));
        let (old, new) = self.table.rmw(
            hash,
            |k| k == key,
            |cur, spare| {
                let spare = spare.or_else(|| fresh.take());
                match cur {
                    // A finished load whose unregistration unwound (a panicking `Eq` or
                    // `Hash` in `finish`), or one that a removal made stale: replace the
                    // registration. (A stale load still finishes and hands its value to
                    // the callers that joined it before the removal; it unregisters only its
                    // own registration.)
                    Some(e) if e.value.is_stale() || e.value.finished() => {
                        Op::Put(spare.expect("entry"))
                    }
                    Some(_) => {
                        fresh = spare;
                        Op::Keep
                    }
                    None => Op::Put(spare.expect("entry")),
                }
            },
            rehash,
            guard,
        );
        match (old, new) {
            (_, Some(n)) if PendingRef::ptr_eq(&n.value, &mine) => Role::Loader(mine),
            (Some(e), _) => Role::Waiter(e.value.clone()),
            (None, _) => unreachable!("an absent key is always registered"),
        }
    }

    /// Publishes a load's outcome (`None`: abandoned) and unregisters it.
    pub(crate) fn finish(
        &self,
        key: &K,
        hash: u64,
        pending: &PendingRef<V>,
        outcome: Outcome<V>,
        rehash: Rehash<'_, K>,
        guard: &Guard,
    ) {
        // Unregister first: a caller that arrives after the publication must not join a
        // finished load (it finds the value in the cache, or starts a new load). If the
        // unregistration unwinds (a panicking `Eq` or `Hash`), the load is published as
        // abandoned all the same, so no waiter waits for good; the next `join` of the key
        // replaces the stale registration.
        let abandon = crate::cache::OnDrop(Some(|| pending.publish(None)));
        self.table.rmw(
            hash,
            |k| k == key,
            |cur, _| match cur {
                Some(e) if PendingRef::ptr_eq(&e.value, pending) => Op::Remove,
                _ => Op::Keep,
            },
            rehash,
            guard,
        );
        abandon.disarm();
        pending.publish(outcome);
    }
}

/// The loader's obligation: publish an outcome even if the load panics or is cancelled.
pub(crate) struct Duty<'a, K, V, F>
where
    K: Hash + Eq + Clone,
    V: Clone,
    F: Fn(&K) -> u64,
{
    pub(crate) loads: &'a Loads<K, V>,
    pub(crate) key: &'a K,
    pub(crate) hash: u64,
    pub(crate) pending: PendingRef<V>,
    /// The cache's hash function (a closure by value, so that an async loader's future is
    /// `Send` when the cache is `Sync`).
    pub(crate) rehash: F,
    pub(crate) done: bool,
}

impl<K, V, F> Duty<'_, K, V, F>
where
    K: Hash + Eq + Clone,
    V: Clone,
    F: Fn(&K) -> u64,
{
    /// Publishes `outcome` (`None`: abandoned) under the caller's `guard`.
    pub(crate) fn finish(mut self, outcome: Outcome<V>, guard: &Guard) {
        self.done = true;
        self.loads.finish(
            self.key,
            self.hash,
            &self.pending,
            outcome,
            &self.rehash,
            guard,
        );
    }
}

impl<K, V, F> Drop for Duty<'_, K, V, F>
where
    K: Hash + Eq + Clone,
    V: Clone,
    F: Fn(&K) -> u64,
{
    fn drop(&mut self) {
        if !self.done {
            // The load panicked or its future was dropped: release the waiters.
            let guard = pin();
            self.loads.finish(
                self.key,
                self.hash,
                &self.pending,
                None,
                &self.rehash,
                &guard,
            );
        }
    }
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
