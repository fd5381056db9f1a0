//! Async cache-aside loading (the `async` feature). Runtime-agnostic: waiting for another
//! caller's load registers the task's waker; no executor, timer or thread is involved.

use super::load::{Awaited, Step};
use super::stats::Stat;
use super::{Cache, LoadErrorOnUnwind, Loaded};
use std::future::Future;
use std::hash::{BuildHasher, Hash};

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// The async form of [`Cache::get_or_insert_with`]: the value for `key`, awaiting `load`
    /// on a miss. Concurrent misses on one key await one load; the others wait without
    /// blocking their threads. If the loading future is dropped before it finishes (its
    /// caller was cancelled), the waiters are released and one of them loads instead, as
    /// when a loader panics. `load` is not polled on a hit.
    ///
    /// No epoch guard or internal lock is held across an `.await`, so the returned future is
    /// `Send` when the cache, `K`, `V` and `load` are.
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct T(std::thread::Thread);
    /// #     impl Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&w)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let cache: linemap::Cache<u32, String> = linemap::Cache::new(100);
    /// let v = block_on(cache.get_or_insert_async(1, async { "loaded".to_string() }));
    /// assert_eq!(v, "loaded");
    /// ```
    pub async fn get_or_insert_async(&self, key: K, load: impl Future<Output = V>) -> V {
        let r =
            self.get_or_try_insert_async(key, async move {
                Ok::<V, std::convert::Infallible>(load.await)
            })
            .await;
        match r {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// The async form of [`Cache::get_or_try_insert_with`]: an error goes back to this
    /// caller only and is never cached; waiters are released and one of them loads again.
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct T(std::thread::Thread);
    /// #     impl Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&w)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// let cache: linemap::Cache<u32, u32> = linemap::Cache::new(100);
    /// let r = block_on(cache.get_or_try_insert_async(1, async { Err::<u32, _>("db down") }));
    /// assert_eq!(r, Err("db down"));
    /// assert_eq!(cache.get(&1), None);
    /// ```
    pub async fn get_or_try_insert_async<E>(
        &self,
        key: K,
        load: impl Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        self.get_or_try_load_async(key, async move { load.await.map(Loaded::new) })
            .await
    }

    /// The async form of [`Cache::get_or_try_load`]: the loader's value comes with its own
    /// time-to-live or source version (see [`Loaded`]).
    ///
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Wake, Waker};
    /// #     struct T(std::thread::Thread);
    /// #     impl Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let w = Waker::from(std::sync::Arc::new(T(std::thread::current())));
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&w)) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// use linemap::cache::Loaded;
    ///
    /// let cache: linemap::Cache<u32, u32> = linemap::Cache::new(100);
    /// let r = block_on(cache.get_or_try_load_async(1, async {
    ///     Ok::<_, ()>(Loaded::new(10).with_version(4))
    /// }));
    /// assert_eq!(r, Ok(10));
    /// assert!(!cache.insert_versioned(1, 9, 3)); // stored at version 4
    /// ```
    pub async fn get_or_try_load_async<E>(
        &self,
        key: K,
        load: impl Future<Output = Result<Loaded<V>, E>>,
    ) -> Result<V, E> {
        let mut load = Some(load);
        let hash = self.hash(&key);
        loop {
            // `begin_load` pins and unpins inside: no guard lives across an `.await` (a guard
            // is not `Send`).
            let pending = match self.begin_load(&key, hash) {
                Step::Hit(v) => return Ok(v),
                Step::Wait(p) => {
                    let joined = self.now();
                    match super::load::in_time(Awaited(&p).await, joined) {
                        Some(v) => return Ok(v),
                        None => continue,
                    }
                }
                Step::Load(p) => p,
            };
            // Dropped with the future if the caller is cancelled mid-load: that releases the
            // waiters.
            let duty = self.duty(&key, hash, pending);
            self.stats.add(Stat::Load);
            let f = load.take().expect("a caller loads at most once");
            // Counts a load error if the load panics or is cancelled.
            let counted = LoadErrorOnUnwind(&self.stats);
            let r = f.await;
            std::mem::forget(counted);
            return self.end_load(duty, r);
        }
    }
}
