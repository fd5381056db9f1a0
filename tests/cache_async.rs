//! The `async` feature: runtime-agnostic cache-aside loading. Run with
//! `cargo test --features async` (the README's test command enables all features).
#![cfg(feature = "async")]

use linemap::Cache;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// A minimal executor: polls on this thread, parks until woken.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        std::thread::park();
    }
}

/// A future that stays pending until `open` is set (then wakes whoever polled it last).
#[derive(Clone, Default)]
struct Gate(Arc<(AtomicBool, Mutex<Option<Waker>>)>);

impl Gate {
    fn open(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        if let Some(w) = self.0 .1.lock().unwrap().take() {
            w.wake();
        }
    }
    fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            *self.0 .1.lock().unwrap() = Some(cx.waker().clone());
            if self.0 .0.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn futures_are_send() {
    let cache: Cache<u64, String> = Cache::new(10);
    let f = cache.get_or_insert_async(1, async { "x".to_string() });
    assert_send(&f);
    let g = cache.get_or_try_insert_async(2, async { Err::<String, u8>(1) });
    assert_send(&g);
}

#[test]
fn concurrent_async_misses_run_one_load() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(10));
    let loads = Arc::new(AtomicUsize::new(0));
    let gate = Gate::default();
    let n = 6;
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (cache, loads, gate, start) =
                (cache.clone(), loads.clone(), gate.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                block_on(cache.get_or_insert_async(9, async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    gate.wait().await;
                    99
                }))
            })
        })
        .collect();
    // Let every thread reach the load (as loader or waiter), then open the gate.
    while cache.stats().misses < n as u64 {
        std::thread::yield_now();
    }
    gate.open();
    for t in threads {
        assert_eq!(t.join().unwrap(), 99);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&9), Some(99));
}

#[test]
fn a_dropped_loader_future_hands_over() {
    let cache: Arc<Cache<u64, u64>> = Arc::new(Cache::new(10));
    let never = Gate::default();
    // Poll the first loader once: it registers the load and stops at the closed gate.
    let mut first = Box::pin(cache.get_or_insert_async(5, async {
        never.wait().await;
        1
    }));
    let waker = Waker::from(Arc::new(NoopWake));
    assert!(first
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    // A waiter on another thread blocks on that load.
    let c = cache.clone();
    let waiter = std::thread::spawn(move || block_on(c.get_or_insert_async(5, async { 2 })));
    while cache.stats().misses < 2 {
        std::thread::yield_now();
    }
    // Cancel the first caller: the waiter takes over and loads its own value.
    drop::<Pin<Box<_>>>(first);
    assert_eq!(waiter.join().unwrap(), 2);
    assert_eq!(cache.get(&5), Some(2));
    assert_eq!(cache.stats().load_errors, 1);
}

#[test]
fn async_errors_are_not_cached() {
    let cache: Cache<u64, u64> = Cache::new(10);
    let r = block_on(cache.get_or_try_insert_async(1, async { Err::<u64, _>("down") }));
    assert_eq!(r, Err("down"));
    assert!(!cache.contains_key(&1));
    let r = block_on(cache.get_or_try_insert_async(1, async { Ok::<u64, &str>(3) }));
    assert_eq!(r, Ok(3));
    // A hit does not poll the loader.
    let r = block_on(cache.get_or_insert_async(1, async { unreachable!() }));
    assert_eq!(r, 3);
}

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}
