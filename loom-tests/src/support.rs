//! Shared pieces of the loom models (compiled only under `--cfg loom`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// The loom-only weakening knobs of the crate (see `src/sync.rs`).
pub use linemap::__loom_knobs as knobs;

/// A deterministic hasher for `u64` keys: see [`hash_of`].
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, k: u64) {
        self.0 = hash_of(k);
    }
}

/// The hash of key `k` (`k < 128`): its low bits, which pick the bucket, are `k`, and its
/// top seven bits, which make the tag, are `k` too, so distinct keys have distinct tags.
pub const fn hash_of(k: u64) -> u64 {
    k | (k << 57)
}

/// The hasher of every model's map and cache.
pub type ModelHasher = BuildHasherDefault<KeyHasher>;

/// The map every model uses: `u64` keys hashed by [`KeyHasher`].
pub type Map<V> = linemap::HashMap<u64, V, ModelHasher>;

/// An empty map with the smallest table: one bucket of seven slots.
pub fn new_map<V>() -> Map<V> {
    Map::with_capacity_and_hasher(0, BuildHasherDefault::default())
}

/// Every entry the map's iterator yields, sorted by key (duplicates kept, so a key that
/// appears twice shows up twice).
pub fn entries<V: Copy + Send + Sync + 'static>(map: &Map<V>) -> Vec<(u64, V)> {
    let mut v: Vec<(u64, V)> = map.pin().iter().map(|(k, v)| (*k, *v)).collect();
    v.sort_by_key(|e| e.0);
    v
}

// Loom runs every thread of a model as a coroutine on the OS thread that called the model,
// so std thread-locals are per model (tests run in parallel on different OS threads) and
// shared by all the model's threads.
thread_local! {
    /// The first panic of the current model, as a message.
    static FIRST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Threads spawned in the current execution and not joined yet.
    static PENDING: RefCell<Vec<Option<loom::thread::JoinHandle<()>>>> = const { RefCell::new(Vec::new()) };
    /// [`Tracked`] values created and dropped in the current execution.
    static CREATED: Cell<usize> = const { Cell::new(0) };
    static DROPPED: Cell<usize> = const { Cell::new(0) };
    /// Executions explored by the current model.
    static EXECUTIONS: Cell<usize> = const { Cell::new(0) };
    /// Executions and run time of the last [`explore_capped`] on this thread.
    static LAST_RUN: Cell<(usize, std::time::Duration)> = const { Cell::new((0, std::time::Duration::ZERO)) };
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "<non-string panic>".to_string())
}

fn record(msg: String) {
    FIRST_PANIC.with(|p| {
        p.borrow_mut().get_or_insert(msg);
    });
}

/// A value that counts its creations and drops (per execution), so that a model can check
/// that every value is dropped exactly once, including by the epoch collector.
pub struct Tracked {
    /// The payload the models compare.
    pub v: u64,
}

impl Tracked {
    /// A new tracked value.
    pub fn new(v: u64) -> Self {
        CREATED.with(|c| c.set(c.get() + 1));
        Tracked { v }
    }

    /// How many tracked values were dropped so far in this execution.
    pub fn dropped() -> usize {
        DROPPED.with(Cell::get)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.with(|c| c.set(c.get() + 1));
    }
}

/// Checks the [`Tracked`] accounting of the execution that just ended (its end includes the
/// teardown of crossbeam-epoch's collector, which runs every deferred destruction) and resets it.
fn check_drops() {
    let (created, dropped) = (
        CREATED.with(|c| c.replace(0)),
        DROPPED.with(|c| c.replace(0)),
    );
    if created != dropped {
        record(format!(
            "{created} tracked values were created but {dropped} drops ran: each must drop exactly once"
        ));
    }
}

/// A thread spawned with [`spawn`].
pub struct Spawned<T> {
    index: usize,
    out: Arc<Mutex<Option<T>>>,
}

/// Spawns a model thread and waits until it is registered with crossbeam-epoch. A panic in it is recorded (see [`explore`]) instead of unwinding
/// out of loom, which would abort the process: the crossbeam-epoch participants' thread-local
/// destructors would then run outside the execution and panic again.
pub fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Spawned<T> {
    let out = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&out);
    let ready = loom::sync::Arc::new(loom::sync::atomic::AtomicBool::new(false));
    let registered = ready.clone();
    let handle = loom::thread::spawn(move || {
        drop(crossbeam_epoch::pin());
        registered.store(true, std::sync::atomic::Ordering::Release);
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => *slot.lock().unwrap() = Some(v),
            Err(p) => record(message(&*p)),
        }
    });
    // Wait until the thread is registered with crossbeam-epoch (its first pin also runs a
    // collection): that bookkeeping racing with the model's operations multiplies loom's
    // search without touching linemap's protocols. Neither thread has started its
    // operations yet, so every interleaving of them is still explored.
    while !ready.load(std::sync::atomic::Ordering::Acquire) {
        loom::thread::yield_now();
    }
    let index = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.push(Some(handle));
        p.len() - 1
    });
    Spawned { index, out }
}

impl<T> Spawned<T> {
    /// Waits for the thread and returns its result (panics if the thread panicked).
    pub fn join(self) -> T {
        let handle = PENDING.with(|p| p.borrow_mut()[self.index].take());
        handle.expect("joined once").join().unwrap();
        let v = self.out.lock().unwrap().take();
        v.expect("the spawned thread panicked")
    }
}

/// Explores `f` with loom: every interleaving up to the preemption bound. Returns the first
/// panic message of any execution (a failed assertion, in the model or in the crate), or
/// `None` if every execution passed.
///
/// Like `loom::model`, but the bound defaults to 3 when `LOOM_MAX_PREEMPTIONS` is unset (an
/// unbounded search of these models would not finish), and one execution may take up to
/// 20 000 scheduling decisions unless `LOOM_MAX_BRANCHES` says otherwise. Panics never
/// unwind out of an execution: they are recorded, the threads the execution spawned are
/// joined, and the search goes on.
pub fn explore<F: Fn() + Sync + Send + 'static>(f: F) -> Option<String> {
    explore_capped(usize::MAX, f)
}

/// [`explore`] with the preemption bound capped at `cap`, unless `LINEMAP_LOOM_FULL` is set
/// (the deep run of `docs/verification.md`).
pub fn explore_capped<F: Fn() + Sync + Send + 'static>(cap: usize, f: F) -> Option<String> {
    let mut b = loom::model::Builder::new();
    let requested = b.preemption_bound.unwrap_or(3);
    let bound = if std::env::var_os("LINEMAP_LOOM_FULL").is_some() {
        requested
    } else {
        requested.min(cap)
    };
    b.preemption_bound = Some(bound);
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        b.max_branches = 20_000;
    }
    FIRST_PANIC.with(|p| p.borrow_mut().take());
    EXECUTIONS.with(|n| n.set(0));
    check_drops();
    let start = std::time::Instant::now();
    b.check(move || {
        check_drops();
        EXECUTIONS.with(|n| n.set(n.get() + 1));
        // Register the main thread with crossbeam-epoch before any other thread exists, so
        // that loom does not spend its search on the registration racing with the model.
        drop(crossbeam_epoch::pin());
        PENDING.with(|p| p.borrow_mut().clear());
        if let Err(p) = catch_unwind(AssertUnwindSafe(&f)) {
            record(message(&*p));
        }
        let rest: Vec<_> = PENDING.with(|p| p.borrow_mut().drain(..).flatten().collect());
        for h in rest {
            let _ = h.join();
        }
    });
    check_drops();
    let (n, took) = (EXECUTIONS.with(Cell::get), start.elapsed());
    LAST_RUN.with(|r| r.set((n, took)));
    eprintln!("loom: {n} executions in {took:.1?} (preemption bound {bound})");
    FIRST_PANIC.with(|p| p.borrow_mut().take())
}

/// Explores `f` with [`explore`] and fails if any execution failed.
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    if let Some(msg) = explore(f) {
        panic!("loom found a failing execution: {msg}");
    }
}

/// [`model`] with the preemption bound capped at `cap` (see [`explore_capped`]).
pub fn model_capped<F: Fn() + Sync + Send + 'static>(cap: usize, f: F) {
    if let Some(msg) = explore_capped(cap, f) {
        panic!("loom found a failing execution: {msg}");
    }
}

// Outcome coverage and thread assignments.
//
// Loom's DPOR remembers only the last access to each atomic, so a thread that loads a
// location and then stores to it (test-then-set, or a probe followed by a CAS) hides its
// conflict with another thread's earlier load of that location, and the backtrack that would
// run it before that load is never taken (tokio-rs/loom#166). With `spawn`'s registration
// handshake the spawned thread runs first unless loom preempts it, so interleavings that
// need the main thread's operation before the spawned one's can go unexplored. The models
// therefore run their race in both thread assignments, label the outcome of each execution
// with [`reached`], and fail unless every outcome of the serial orders was reached: a model
// whose search never reaches a racy order would otherwise pass while proving little.
thread_local! {
    /// Outcomes reached by the executions of the current model (all its assignments).
    static SEEN: RefCell<BTreeSet<&'static str>> = const { RefCell::new(BTreeSet::new()) };
}

/// Records that the current execution reached outcome `label`. (Loom runs all the
/// executions of a test on the test's OS thread, so a std thread-local collects them; loom
/// does not see it.)
pub fn reached(label: &'static str) {
    SEEN.with(|s| s.borrow_mut().insert(label));
}

/// Runs `a` and `b` concurrently, `a` on a spawned thread and `b` on the calling thread, or
/// the other way round if `swapped`; returns their results as `(a, b)`.
pub fn race<A, B>(
    swapped: bool,
    a: impl FnOnce() -> A + Send + 'static,
    b: impl FnOnce() -> B + Send + 'static,
) -> (A, B)
where
    A: Send + 'static,
    B: Send + 'static,
{
    if swapped {
        let t = spawn(b);
        let ra = a();
        (ra, t.join())
    } else {
        let t = spawn(a);
        let rb = b();
        (t.join(), rb)
    }
}

/// Explores `body(false)` and `body(true)` (the two thread assignments of its [`race`]) with
/// [`explore_capped`] at preemption bound `cap` (unless `LINEMAP_LOOM_FULL` is set), then
/// fails if either had a failing execution (reporting both) or if their executions together
/// did not reach every outcome in `expect`.
pub fn model_both_ways(cap: usize, expect: &[&'static str], body: fn(bool)) {
    model_ways(cap, &[false, true], expect, body);
}

/// [`model_both_ways`] restricted to the thread assignments in `ways` (`false`: `a` of the
/// race on the spawned thread). For models whose one assignment already reaches every
/// outcome and whose other would double a long search.
pub fn model_ways(cap: usize, ways: &[bool], expect: &[&'static str], body: fn(bool)) {
    SEEN.with(|s| s.borrow_mut().clear());
    let mut all = BTreeSet::new();
    let mut failures = Vec::new();
    let (mut executions, mut took) = (0, std::time::Duration::ZERO);
    for &swapped in ways {
        if let Some(m) = explore_capped(cap, move || body(swapped)) {
            failures.push(format!("\n  with the race swapped = {swapped}: {m}"));
        }
        let (n, t) = LAST_RUN.with(Cell::get);
        (executions, took) = (executions + n, took + t);
        let seen = SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()));
        eprintln!("  swapped = {swapped}: outcomes reached {seen:?}");
        all.extend(seen);
    }
    eprintln!("outcomes reached: {all:?}");
    eprintln!(
        "model total: {}: {executions} executions in {took:.1?} ({} assignment(s))",
        std::thread::current().name().unwrap_or("?"),
        ways.len()
    );
    if !failures.is_empty() {
        panic!("loom found failing executions:{}", failures.concat());
    }
    for e in expect {
        assert!(
            all.contains(e),
            "no execution reached the outcome {e:?} (reached: {all:?})"
        );
    }
}

/// Serialises the "teeth" models: a knob is process-wide and tests run in parallel.
static KNOBS: Mutex<()> = Mutex::new(());

/// Turns `knob` on, explores `model_fn` and asserts that loom rejects it: some execution
/// panics with a message containing `expect`. Turns the knob off again.
pub fn assert_rejected(knob: &'static AtomicBool, model_fn: fn(), expect: &str) {
    let _serial = KNOBS.lock().unwrap_or_else(|e| e.into_inner());
    // Under release builds without debug assertions a weakened ordering can make the table
    // dereference a stale null word (a segfault, not a panic): the crate's debug assertions
    // turn that into a panic. `.ci/loom` builds with them.
    if !cfg!(debug_assertions) {
        panic!("the teeth models need debug assertions: run them through .ci/loom");
    }
    struct Off(&'static AtomicBool);
    impl Drop for Off {
        fn drop(&mut self) {
            self.0.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }
    knob.store(true, std::sync::atomic::Ordering::SeqCst);
    let off = Off(knob);
    // The expected panics would print once per failing execution: keep quiet meanwhile (this
    // test binary runs only teeth models, one at a time).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = explore(model_fn);
    std::panic::set_hook(hook);
    drop(off);
    let msg = found.unwrap_or_else(|| {
        panic!("loom accepted the weakened protocol (expected a panic with {expect:?})")
    });
    assert!(
        msg.contains(expect),
        "loom rejected the weakened protocol, but not as expected: {msg:?} (expected {expect:?})"
    );
    eprintln!("rejected as expected: {msg}");
}
