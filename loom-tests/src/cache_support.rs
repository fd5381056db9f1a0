//! What the cache models (`tests/cache.rs`) share: a cache with the deterministic hasher, a
//! value type whose every copy is counted, a recording eviction listener and the
//! conservation check ("every value that entered the cache is in it at the end or was told to
//! the listener exactly once").
//!
//! Compiled only under `--cfg loom`.
#![cfg(loom)]

use crate::{KeyHasher, Tracked};
use linemap::cache::{ManualClock, RemovalCause};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex, Once};

/// A cache value: an id that names the insert it came from (unique per model), plus a
/// [`Tracked`] so that [`crate::explore`] checks every copy (the cache hands out clones) is
/// dropped exactly once, including the entries the cache retires through the epoch.
pub struct Val {
    /// Unique per insert of a model.
    pub id: u64,
    _t: Tracked,
}

impl Val {
    /// A value with id `id`.
    pub fn new(id: u64) -> Self {
        Val {
            id,
            _t: Tracked::new(id),
        }
    }
}

impl Clone for Val {
    fn clone(&self) -> Self {
        Val::new(self.id)
    }
}

impl PartialEq for Val {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl std::fmt::Debug for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", self.id)
    }
}

/// The cache every model uses: `u64` keys hashed by [`KeyHasher`] (deterministic, distinct
/// tags), [`Val`] values.
pub type TestCache = linemap::Cache<u64, Val, BuildHasherDefault<KeyHasher>>;

/// One call of the eviction listener: key, value id, cause.
pub type Event = (u64, u64, RemovalCause);

/// The eviction listener's log (a std mutex: the listener runs no loom operation while it
/// holds it, so no loom thread can be switched out with it held).
#[derive(Clone, Default)]
pub struct Log(
    Arc<Mutex<Vec<Event>>>,
    Arc<Mutex<Vec<loom::thread::ThreadId>>>,
);

impl Log {
    /// Records an event and the (loom) thread the listener ran on.
    fn push(&self, e: Event) {
        self.0.lock().unwrap().push(e);
        self.1.lock().unwrap().push(loom::thread::current().id());
    }

    /// The threads the listener ran on, one per event, in the order of [`Log::events`].
    pub fn threads(&self) -> Vec<loom::thread::ThreadId> {
        self.1.lock().unwrap().clone()
    }

    /// Every event so far, in the order the listener saw them.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    /// The events for value `id`.
    pub fn of(&self, id: u64) -> Vec<Event> {
        self.events().into_iter().filter(|e| e.1 == id).collect()
    }
}

/// A cache of `capacity` with a recording listener, and (if given) a manual clock.
pub fn new_cache(capacity: usize, clock: Option<Arc<ManualClock>>) -> (Arc<TestCache>, Log) {
    let log = Log::default();
    let sink = log.clone();
    let mut b = linemap::Cache::builder(capacity)
        .hasher(BuildHasherDefault::<KeyHasher>::default())
        .eviction_listener(move |k: &u64, v: &Val, cause| {
            sink.push((*k, v.id, cause));
        });
    if let Some(c) = clock {
        b = b.clock(c);
    }
    (Arc::new(b.build()), log)
}

/// A cache of `capacity` entries and a weight `budget`, each value weighing its id modulo
/// 10 (so a model picks weights by picking ids), with a recording listener.
pub fn new_weighed_cache(capacity: usize, budget: u64) -> (Arc<TestCache>, Log) {
    let log = Log::default();
    let sink = log.clone();
    let b = linemap::Cache::builder(capacity)
        .hasher(BuildHasherDefault::<KeyHasher>::default())
        .weigher(budget, |_: &u64, v: &Val| (v.id % 10) as u32)
        .eviction_listener(move |k: &u64, v: &Val, cause| {
            sink.push((*k, v.id, cause));
        });
    (Arc::new(b.build()), log)
}

/// The cache's contents for `keys`, as `(key, value id)`, read with `contains_key` (which
/// neither marks an entry referenced nor removes an expired one) and `get`.
pub fn contents(cache: &TestCache, keys: &[u64]) -> Vec<(u64, u64)> {
    keys.iter()
        .filter(|k| cache.contains_key(k))
        .map(|&k| (k, cache.get(&k).expect("contains_key said present").id))
        .collect()
}

/// Checks the end state of a model, after its threads were joined:
///
/// * the cache holds exactly `expected` among `keys` (and `len()` agrees, so nothing else),
///   within its capacity;
/// * every value id in `accepted` (a value the cache took) is either held at the end or was
///   told to the listener, never both and never twice;
/// * the listener heard of nothing else.
///
/// Returns the listener's events for the model's own assertions.
pub fn check_end(
    cache: &TestCache,
    log: &Log,
    keys: &[u64],
    expected: &[(u64, u64)],
    accepted: &[u64],
) -> Vec<Event> {
    let events = log.events();
    let held = contents(cache, keys);
    assert_eq!(
        held, expected,
        "wrong final contents (listener heard {events:?})"
    );
    assert_eq!(cache.len(), held.len(), "len() disagrees with the contents");
    assert!(
        cache.len() <= cache.capacity(),
        "the cache holds {} entries, over its capacity {}",
        cache.len(),
        cache.capacity()
    );
    for &id in accepted {
        let in_cache = held.iter().filter(|e| e.1 == id).count();
        let told = events.iter().filter(|e| e.1 == id).count();
        assert_eq!(
            in_cache + told,
            1,
            "value v{id} must end in the cache or be told to the listener exactly once: \
             in the cache {in_cache}x, told {told}x (events {events:?}, contents {held:?})"
        );
    }
    for e in &events {
        assert!(
            accepted.contains(&e.1),
            "the listener heard of v{} which the cache never took: {events:?}",
            e.1
        );
    }
    // The final reads above must not have told the listener anything (no entry expired).
    assert_eq!(log.events(), events, "the final reads evicted something");
    events
}

/// The message of the loader panics the panic model raises on purpose.
pub const LOADER_PANIC: &str = "linemap-loom: the loader panics on purpose";

/// Installs (once per process) a panic hook that keeps quiet about [`LOADER_PANIC`] (loom
/// raises it in thousands of executions) and reports every other panic as before. Tests run
/// in parallel, so the hook filters by message instead of being swapped around one model.
pub fn quiet_loader_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = info.payload().downcast_ref::<&str>() == Some(&LOADER_PANIC);
            if !ours {
                previous(info);
            }
        }));
    });
}

// Outcome coverage and the two thread assignments of a race: see `crate::support`.
pub use crate::{model_both_ways, race, reached};
