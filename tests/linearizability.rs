//! Linearizability checking of recorded concurrent histories.
//!
//! Each random history runs a few threads doing a handful of single-key operations on
//! `HashMap<u64, u64>` (a small key space, so the threads collide), records every operation's
//! call, result and a time interval around it, and then searches for a linearization: a
//! sequential order of all operations that respects real time (an operation that returned
//! before another was called comes first) and in which each result is what a sequential map
//! would have returned.
//!
//! # Time stamps
//!
//! `invoke` is taken from a global counter (`fetch_add`, `SeqCst`) right before the call and
//! `response` right after it returns. The operation's real effect happens somewhere inside
//! `[invoke, response]`, so "A.response < B.invoke" implies that A finished before B started:
//! the recorded precedence order is contained in the real one, never larger. The counter adds
//! no synchronisation between the map's own operations that the map does not already owe
//! (it is a separate location; `SeqCst` on it only orders the stamps).
//!
//! # The search
//!
//! Wing & Gong's algorithm: repeatedly pick, among the operations not yet linearized, one
//! that is *minimal* (no other remaining operation returned before it was invoked), apply it
//! to the sequential model, keep it if its recorded result matches, and backtrack otherwise.
//! Lowe's improvement (also what porcupine does) memoizes the pairs (set of linearized
//! operations, model state) already explored: the rest of the search depends only on that
//! pair, so a pair met a second time is known to fail and is cut. The set is a `u64`
//! bitmask, so a checked sub-history holds at most 64 operations.
//!
//! # Locality: checking each key on its own
//!
//! Linearizability is local (Herlihy & Wing 1990, Theorem 1): a history over several objects
//! is linearizable iff its restriction to each object is. Every operation used here reads or
//! writes exactly one key, and the sequential specification of a map restricted to such
//! operations is the product of independent per-key specifications (each key is an
//! `Option<u64>` register; an operation's result and effect depend only on its own key's
//! state), so each key is an object in the sense of the theorem. Hence the whole history is
//! linearizable iff each key's sub-history is linearizable against the one-key model, and we
//! check key by key. Multi-key operations (`len`, iteration, `retain`, `clear`) would break
//! this decomposition and are not recorded. For the same reason the filler keys that the
//! growth histories insert to force migrations (disjoint from the checked keys) may be left
//! out of the check: they are other objects.
//!
//! # Teeth
//!
//! `checker_rejects_non_linearizable_histories` feeds hand-written histories that are not
//! linearizable (a read from the future, two inserts that both saw the key absent, a stale
//! read, a lost update, ...) and asserts that the checker rejects each; the accepting
//! counterparts check it is not simply rejecting everything. `broken_rmw_is_caught` records a
//! real run of a deliberately non-atomic read-modify-write (a `get` then an `insert`,
//! interleaved with a barrier) through the same recording code and asserts the checker
//! catches the lost update.

use linemap::HashMap;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;

/// The global clock for invoke/response stamps; shared by all tests of this binary (it only
/// needs to be monotonic).
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn tick() -> u64 {
    CLOCK.fetch_add(1, SeqCst)
}

// ---------------------------------------------------------------------------------------------
// Operations and the sequential model
// ---------------------------------------------------------------------------------------------

/// One single-key operation. Values and tags are unique within a history, so that a result
/// names the write it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `insert(k, v)`: returns the old value.
    Insert(u64),
    /// `remove(k)`: returns the old value.
    Remove,
    /// `get(k)`.
    Get,
    /// `get_or_insert(k, v)`: returns the value stored afterwards.
    GetOrInsert(u64),
    /// `update(k, |x| bump(x, tag))`: returns the new value, `None` if absent.
    Update(u64),
    /// `update_or_insert(k, |x| bump(x, tag), default)`: returns the new value.
    UpdateOrInsert { tag: u64, default: u64 },
    /// `compute(k, |c| compute_fn(c, tag))`: returns the value stored afterwards.
    Compute(u64),
}

/// The update function of `update`/`update_or_insert`/`compute`: distinct tags give distinct
/// functions, so the value after a chain of updates records which updates were applied and
/// in which order (up to wrapping collisions, which can only weaken the check).
fn bump(x: u64, tag: u64) -> u64 {
    x.wrapping_mul(31).wrapping_add(tag)
}

/// `compute`'s function: insert when absent, remove when the value is divisible by 4,
/// otherwise bump.
fn compute_fn(cur: Option<u64>, tag: u64) -> Option<u64> {
    match cur {
        None => Some(tag),
        Some(x) if x % 4 == 0 => None,
        Some(x) => Some(bump(x, tag)),
    }
}

/// The sequential specification of one key: from `state`, `call` returns the first
/// component and leaves the key in the second.
fn apply(state: Option<u64>, call: Call) -> (Option<u64>, Option<u64>) {
    match call {
        Call::Insert(v) => (state, Some(v)),
        Call::Remove => (state, None),
        Call::Get => (state, state),
        Call::GetOrInsert(v) => {
            let now = state.unwrap_or(v);
            (Some(now), Some(now))
        }
        Call::Update(tag) => {
            let next = state.map(|x| bump(x, tag));
            (next, next)
        }
        Call::UpdateOrInsert { tag, default } => {
            let now = state.map_or(default, |x| bump(x, tag));
            (Some(now), Some(now))
        }
        Call::Compute(tag) => {
            let next = compute_fn(state, tag);
            (next, next)
        }
    }
}

/// A completed operation as recorded.
#[derive(Clone, Debug)]
struct Event {
    thread: usize,
    key: u64,
    call: Call,
    ret: Option<u64>,
    invoke: u64,
    response: u64,
}

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

/// Wing & Gong search with Lowe's memoization over one key's operations.
struct Search<'a> {
    ops: &'a [&'a Event],
    all: u64,
    /// (linearized set, state) pairs already explored without success.
    seen: HashSet<(u64, Option<u64>)>,
}

impl Search<'_> {
    fn run(&mut self, done: u64, state: Option<u64>) -> bool {
        if done == self.all {
            return true;
        }
        if !self.seen.insert((done, state)) {
            return false;
        }
        let remaining = || (0..self.ops.len()).filter(move |i| done & (1 << i) == 0);
        // An operation may be linearized next iff no remaining operation returned before it
        // was invoked (stamps are distinct, so `<` is exact).
        let first_response = remaining()
            .map(|i| self.ops[i].response)
            .min()
            .expect("some operation remains");
        for i in remaining() {
            let op = self.ops[i];
            if op.invoke > first_response {
                continue;
            }
            let (ret, next) = apply(state, op.call);
            if ret == op.ret && self.run(done | (1 << i), next) {
                return true;
            }
        }
        false
    }
}

/// Whether the operations on one key, starting from `init`, are linearizable.
fn linearizable_key(init: Option<u64>, ops: &[&Event]) -> bool {
    assert!(ops.len() <= 64, "a checked key holds at most 64 operations");
    for op in ops {
        assert!(op.invoke < op.response, "bad stamps: {op:?}");
    }
    let all = if ops.len() == 64 {
        u64::MAX
    } else {
        (1u64 << ops.len()) - 1
    };
    Search {
        ops,
        all,
        seen: HashSet::new(),
    }
    .run(0, init)
}

/// Checks a whole history key by key (see "Locality" in the module docs). `init` gives each
/// key's value when the history started. On failure, returns the offending key's history.
fn check_history(init: &BTreeMap<u64, u64>, events: &[Event]) -> Result<(), String> {
    let mut by_key: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_key.entry(e.key).or_default().push(e);
    }
    for (key, mut ops) in by_key {
        let start = init.get(&key).copied();
        if !linearizable_key(start, &ops) {
            ops.sort_by_key(|e| e.invoke);
            let mut msg =
                format!("key {key} (initially {start:?}) is not linearizable; its operations:\n");
            for e in ops {
                msg += &format!(
                    "  thread {} [{:>8} .. {:>8}] {:?} -> {:?}\n",
                    e.thread, e.invoke, e.response, e.call, e.ret
                );
            }
            return Err(msg);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running histories against the real map
// ---------------------------------------------------------------------------------------------

/// splitmix64: a tiny seeded generator (no new dependencies).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A uniform value in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Which calling style executes an operation.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// Through a fresh pinned handle (`map.pin().op(..)`), results copied out.
    Pinned,
    /// Through the map-level methods that return clones.
    MapLevel,
}

/// One planned step of a checked thread.
#[derive(Clone, Copy, Debug)]
struct Step {
    key: u64,
    call: Call,
    style: Style,
    /// An unrecorded filler insert made right before the operation (growth histories), so
    /// that migrations start while the checked operations run.
    filler: Option<u64>,
    /// Spin iterations before the operation, to vary the interleavings.
    delay: u32,
}

fn exec(map: &HashMap<u64, u64>, key: u64, call: Call, style: Style) -> Option<u64> {
    match style {
        Style::Pinned => {
            let m = map.pin();
            match call {
                Call::Insert(v) => m.insert(key, v).copied(),
                Call::Remove => m.remove(&key).copied(),
                Call::Get => m.get(&key).copied(),
                Call::GetOrInsert(v) => Some(*m.get_or_insert(key, v)),
                Call::Update(tag) => m.update(&key, |x| bump(*x, tag)).copied(),
                Call::UpdateOrInsert { tag, default } => {
                    Some(*m.update_or_insert(key, |x| bump(*x, tag), default))
                }
                Call::Compute(tag) => m.compute(key, |c| compute_fn(c.copied(), tag)).copied(),
            }
        }
        Style::MapLevel => match call {
            Call::Insert(v) => map.insert(key, v),
            Call::Remove => map.remove(&key),
            Call::Get => map.get(&key),
            Call::GetOrInsert(v) => Some(map.get_or_insert_with(key, || v)),
            Call::Update(tag) => map.update(&key, |x| bump(*x, tag)),
            Call::UpdateOrInsert { tag, default } => {
                Some(map.update_or_insert(key, |x| bump(*x, tag), default))
            }
            // `compute` has no map-level form.
            Call::Compute(tag) => map
                .pin()
                .compute(key, |c| compute_fn(c.copied(), tag))
                .copied(),
        },
    }
}

/// Runs `call` on `map` and records it with its stamps.
fn record(map: &HashMap<u64, u64>, thread: usize, key: u64, call: Call, style: Style) -> Event {
    let invoke = tick();
    let ret = exec(map, key, call, style);
    let response = tick();
    Event {
        thread,
        key,
        call,
        ret,
        invoke,
        response,
    }
}

/// A reusable spinning barrier (it yields now and then: threads may outnumber cores).
struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(parties: usize) -> Self {
        SpinBarrier {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    fn wait(&self) {
        let generation = self.generation.load(SeqCst);
        if self.arrived.fetch_add(1, SeqCst) + 1 == self.parties {
            self.arrived.store(0, SeqCst);
            self.generation.fetch_add(1, SeqCst);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(SeqCst) == generation {
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Parameters of a family of random histories.
#[derive(Clone, Copy, Debug)]
struct Shape {
    threads: (u64, u64),
    keys: (u64, u64),
    ops_per_thread: (u64, u64),
    /// Percentage of histories that start from a one-bucket `HashMap::new()` and race filler
    /// inserts against the checked operations, so that the table migrates during the run.
    growth_percent: u64,
}

/// Totals over a batch of histories, for the summary line and a few sanity assertions.
#[derive(Default, Debug)]
struct Totals {
    histories: u64,
    ops: u64,
    /// Pairs of operations on the same key whose intervals overlap (concurrent pairs).
    overlapping_pairs: u64,
    /// Histories with at least one overlapping same-key pair.
    histories_with_overlap: u64,
    growth_histories: u64,
    /// Growth histories whose table capacity grew during the run.
    grew: u64,
}

/// The call for one random operation. `fresh` hands out history-unique values and tags.
fn random_call(rng: &mut Rng, fresh: &mut impl FnMut() -> u64) -> Call {
    match rng.below(100) {
        0..=24 => Call::Insert(fresh()),
        25..=39 => Call::Remove,
        40..=59 => Call::Get,
        60..=69 => Call::GetOrInsert(fresh()),
        70..=79 => Call::Update(fresh()),
        80..=89 => Call::UpdateOrInsert {
            tag: fresh(),
            default: fresh(),
        },
        _ => Call::Compute(fresh()),
    }
}

/// Generates, runs and checks one random history; panics with the history on failure.
fn one_history(seed: u64, shape: Shape, totals: &mut Totals) {
    let mut rng = Rng::new(seed);
    let threads = rng.range(shape.threads.0, shape.threads.1) as usize;
    let keys = rng.range(shape.keys.0, shape.keys.1);
    let per_thread = rng.range(shape.ops_per_thread.0, shape.ops_per_thread.1) as usize;
    let growth = rng.chance(shape.growth_percent);
    let mut counter = 0u64;
    let mut fresh = || {
        counter += 1;
        counter
    };

    // Filler keys live far above the checked keys 0..keys.
    const FILLER: u64 = 1 << 32;
    let mut filler_next = FILLER;
    let plans: Vec<Vec<Step>> = (0..threads)
        .map(|_| {
            (0..per_thread)
                .map(|_| Step {
                    key: rng.below(keys),
                    call: random_call(&mut rng, &mut fresh),
                    style: if rng.chance(50) {
                        Style::Pinned
                    } else {
                        Style::MapLevel
                    },
                    filler: (growth && rng.chance(50)).then(|| {
                        filler_next += 1;
                        filler_next
                    }),
                    delay: if rng.chance(50) {
                        0
                    } else {
                        rng.below(8) as u32
                    },
                })
                .collect()
        })
        .collect();
    // The filler thread of a growth history: enough inserts to grow a one-bucket table a few
    // times, and some removes, whose tombstones trigger cleaning migrations.
    // It removes only keys it inserted itself, so every filler key has one writer.
    let mut filler_ops: Vec<(u64, bool)> = Vec::new();
    if growth {
        let (mut own, mut removes) = (Vec::new(), 0);
        for _ in 0..rng.range(20, 60) {
            // At most one remove per four inserts: at least 12 filler keys stay, more than
            // the seven slots of a one-bucket table, so the table must grow.
            if removes * 4 < own.len() && rng.chance(20) {
                removes += 1;
                filler_ops.push((own[rng.below(own.len() as u64) as usize], false));
            } else {
                filler_next += 1;
                own.push(filler_next);
                filler_ops.push((filler_next, true));
            }
        }
    }

    let map: HashMap<u64, u64> = if growth || rng.chance(50) {
        HashMap::new()
    } else {
        HashMap::with_capacity(rng.range(8, 64) as usize)
    };
    let mut init = BTreeMap::new();
    for k in 0..keys {
        if rng.chance(50) {
            let v = fresh();
            map.insert(k, v);
            init.insert(k, v);
        }
    }
    let capacity_before = map.capacity();

    // All threads start together; in lockstep histories the checked threads also meet at a
    // barrier before every operation, which roughly doubles the share of histories with
    // overlapping operations on a busy two-core machine (threads only overlap when they
    // happen to hold both cores at once).
    let lockstep = rng.chance(50);
    let gate = SpinBarrier::new(threads + usize::from(growth));
    let rounds = SpinBarrier::new(threads);
    let mut events: Vec<Event> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(t, plan)| {
                let (map, gate, rounds) = (&map, &gate, &rounds);
                s.spawn(move || {
                    gate.wait();
                    plan.iter()
                        .map(|step| {
                            if lockstep {
                                rounds.wait();
                            }
                            if let Some(f) = step.filler {
                                map.insert(f, f);
                            }
                            for _ in 0..step.delay {
                                std::hint::spin_loop();
                            }
                            record(map, t, step.key, step.call, step.style)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        if growth {
            let (map, gate, filler_ops) = (&map, &gate, &filler_ops);
            s.spawn(move || {
                gate.wait();
                for &(k, insert) in filler_ops {
                    if insert {
                        map.insert(k, k);
                    } else {
                        map.remove(&k);
                    }
                }
            });
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    // A final read of every checked key, after everything: the final contents must be
    // consistent with the same linearization.
    for k in 0..keys {
        events.push(record(&map, threads, k, Call::Get, Style::Pinned));
    }

    if let Err(msg) = check_history(&init, &events) {
        panic!("seed {seed:#x}, {threads} threads, {keys} keys, growth {growth}: {msg}");
    }

    // Filler keys must all be where the filler operations left them (each filler key is
    // written by one thread only, so its final state is determined).
    if growth {
        let mut expect: BTreeMap<u64, bool> = BTreeMap::new();
        for &(k, insert) in &filler_ops {
            expect.insert(k, insert);
        }
        for step in plans.iter().flatten() {
            if let Some(f) = step.filler {
                expect.insert(f, true);
            }
        }
        let m = map.pin();
        for (k, present) in expect {
            assert_eq!(
                m.get(&k).is_some(),
                present,
                "seed {seed:#x}: filler key {k}"
            );
        }
        totals.growth_histories += 1;
        if map.capacity() > capacity_before {
            totals.grew += 1;
        }
    }

    totals.histories += 1;
    totals.ops += events.len() as u64;
    let mut pairs = 0;
    for (i, a) in events.iter().enumerate() {
        for b in &events[i + 1..] {
            if a.key == b.key && a.invoke < b.response && b.invoke < a.response {
                pairs += 1;
            }
        }
    }
    totals.overlapping_pairs += pairs;
    totals.histories_with_overlap += u64::from(pairs > 0);
}

/// `n` scaled by `LINEMAP_LIN_PERCENT` (default 100): the sanitizer runs turn it down.
fn scaled(n: u64) -> u64 {
    let percent = std::env::var("LINEMAP_LIN_PERCENT")
        .ok()
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(100);
    (n * percent / 100).max(1)
}

fn run_family(name: &str, base_seed: u64, histories: u64, shape: Shape) -> Totals {
    let histories = scaled(histories);
    let mut totals = Totals::default();
    for i in 0..histories {
        one_history(
            base_seed.wrapping_add(i.wrapping_mul(0x1_0000_0001)),
            shape,
            &mut totals,
        );
    }
    eprintln!(
        "linearizability {name}: {} histories checked, {} ops, {} overlapping same-key pairs \
         ({} histories with overlap), {} growth histories ({} grew)",
        totals.histories,
        totals.ops,
        totals.overlapping_pairs,
        totals.histories_with_overlap,
        totals.growth_histories,
        totals.grew
    );
    totals
}

#[test]
fn random_histories() {
    let shape = Shape {
        threads: (2, 4),
        keys: (2, 4),
        ops_per_thread: (3, 6),
        growth_percent: 0,
    };
    let t = run_family("random", 0x11AE_A12F, 2000, shape);
    assert_eq!(t.histories, scaled(2000));
}

#[test]
fn random_histories_with_growth() {
    let shape = Shape {
        threads: (2, 4),
        keys: (2, 4),
        ops_per_thread: (3, 6),
        growth_percent: 100,
    };
    let t = run_family("growth", 0x6A0E_7411, 2000, shape);
    // Deterministic: at least 12 filler keys stay in a table that started with 7 slots.
    assert_eq!(t.grew, t.growth_histories);
}

#[test]
fn contended_histories() {
    // Two keys, four threads, six operations each: the most same-key overlap.
    let shape = Shape {
        threads: (4, 4),
        keys: (2, 2),
        ops_per_thread: (6, 6),
        growth_percent: 50,
    };
    run_family("contended", 0xC0_27E7, 800, shape);
}

// ---------------------------------------------------------------------------------------------
// Teeth: the checker must reject what is not linearizable
// ---------------------------------------------------------------------------------------------

/// Builds an event by hand: `(thread, invoke, response, call, result)` on `key`.
fn ev(thread: usize, key: u64, invoke: u64, response: u64, call: Call, ret: Option<u64>) -> Event {
    Event {
        thread,
        key,
        call,
        ret,
        invoke,
        response,
    }
}

/// A hand-written case: what it shows, the initial contents, the history.
type Case = (&'static str, Vec<(u64, u64)>, Vec<Event>);

fn accepts(init: &[(u64, u64)], events: &[Event]) -> bool {
    check_history(&init.iter().copied().collect(), events).is_ok()
}

#[test]
fn checker_rejects_non_linearizable_histories() {
    use Call::*;
    let rejected: Vec<Case> = vec![
        (
            "a get returns a value before any insert of it was invoked",
            vec![],
            vec![
                ev(0, 1, 0, 1, Get, Some(5)),
                ev(1, 1, 2, 3, Insert(5), None),
            ],
        ),
        (
            "two concurrent inserts both see the key absent",
            vec![],
            vec![
                ev(0, 1, 0, 3, Insert(1), None),
                ev(1, 1, 1, 2, Insert(2), None),
            ],
        ),
        (
            "two sequential inserts both see the key absent, no remove between",
            vec![],
            vec![
                ev(0, 1, 0, 1, Insert(1), None),
                ev(1, 1, 2, 3, Insert(2), None),
            ],
        ),
        (
            "a stale read after a completed overwrite",
            vec![],
            vec![
                ev(0, 1, 0, 1, Insert(1), None),
                ev(0, 1, 2, 3, Insert(2), Some(1)),
                ev(1, 1, 4, 5, Get, Some(1)),
            ],
        ),
        (
            "a read sees the new value, a later read the old one",
            vec![(1, 1)],
            vec![
                ev(0, 1, 0, 10, Insert(2), Some(1)),
                ev(1, 1, 1, 2, Get, Some(2)),
                ev(1, 1, 3, 4, Get, Some(1)),
            ],
        ),
        (
            "a lost update: two update_or_insert both apply to the same old value",
            vec![(1, 10)],
            vec![
                ev(
                    0,
                    1,
                    0,
                    3,
                    UpdateOrInsert { tag: 1, default: 7 },
                    Some(bump(10, 1)),
                ),
                ev(
                    1,
                    1,
                    1,
                    2,
                    UpdateOrInsert { tag: 2, default: 8 },
                    Some(bump(10, 2)),
                ),
            ],
        ),
        (
            "a lost update seen by a later read",
            vec![(1, 10)],
            vec![
                ev(0, 1, 0, 3, Update(1), Some(bump(10, 1))),
                ev(1, 1, 1, 2, Update(2), Some(bump(bump(10, 1), 2))),
                ev(1, 1, 4, 5, Get, Some(bump(10, 1))),
            ],
        ),
        (
            "two get_or_insert both install their own value",
            vec![],
            vec![
                ev(0, 1, 0, 3, GetOrInsert(1), Some(1)),
                ev(1, 1, 1, 2, GetOrInsert(2), Some(2)),
            ],
        ),
        (
            "a value removed twice",
            vec![(1, 4)],
            vec![
                ev(0, 1, 0, 3, Remove, Some(4)),
                ev(1, 1, 1, 2, Remove, Some(4)),
            ],
        ),
        (
            "a removed key is read after the remove completed",
            vec![(1, 4)],
            vec![
                ev(0, 1, 0, 1, Remove, Some(4)),
                ev(1, 1, 2, 3, Get, Some(4)),
            ],
        ),
        (
            "compute removes (4 % 4 == 0) but a later get still sees 4",
            vec![(1, 4)],
            vec![
                ev(0, 1, 0, 1, Compute(9), None),
                ev(1, 1, 2, 3, Get, Some(4)),
            ],
        ),
        (
            "update returns a value on an absent key",
            vec![],
            vec![ev(0, 1, 0, 1, Update(3), Some(3))],
        ),
        (
            "a resurrected value after a remove on another thread",
            vec![(1, 4)],
            vec![
                ev(0, 1, 0, 1, Insert(5), Some(4)),
                ev(1, 1, 2, 3, Remove, Some(5)),
                ev(0, 1, 4, 5, Get, Some(5)),
            ],
        ),
        (
            "key 1 is fine, key 2 is not: the per-key split must not hide it",
            vec![],
            vec![
                ev(0, 1, 0, 1, Insert(1), None),
                ev(1, 2, 2, 3, Insert(2), None),
                ev(0, 1, 4, 5, Get, Some(1)),
                ev(1, 2, 6, 7, Get, None),
            ],
        ),
    ];
    for (what, init, events) in &rejected {
        assert!(!accepts(init, events), "checker accepted: {what}");
    }

    let accepted: Vec<Case> = vec![
        (
            "a get concurrent with the insert may see the new value",
            vec![],
            vec![
                ev(0, 1, 0, 3, Insert(5), None),
                ev(1, 1, 1, 2, Get, Some(5)),
            ],
        ),
        (
            "a get concurrent with the insert may see the old value",
            vec![],
            vec![ev(0, 1, 0, 3, Insert(5), None), ev(1, 1, 1, 2, Get, None)],
        ),
        (
            "two concurrent inserts, one sees the other",
            vec![],
            vec![
                ev(0, 1, 0, 3, Insert(1), None),
                ev(1, 1, 1, 2, Insert(2), Some(1)),
                ev(1, 1, 4, 5, Get, Some(2)),
            ],
        ),
        (
            // A was invoked first but must be linearized second: the checker must not
            // simply follow invocation order.
            "a later-invoked overlapping op linearized first",
            vec![],
            vec![
                ev(0, 1, 0, 5, Insert(1), Some(2)),
                ev(1, 1, 1, 2, Insert(2), None),
                ev(1, 1, 3, 4, Get, Some(2)),
                ev(1, 1, 6, 7, Get, Some(1)),
            ],
        ),
        (
            "a chain of atomic updates",
            vec![(1, 10)],
            vec![
                ev(0, 1, 0, 3, Update(1), Some(bump(bump(10, 2), 1))),
                ev(1, 1, 1, 2, Update(2), Some(bump(10, 2))),
                ev(
                    1,
                    1,
                    4,
                    5,
                    UpdateOrInsert { tag: 3, default: 0 },
                    Some(bump(bump(bump(10, 2), 1), 3)),
                ),
            ],
        ),
        (
            "get_or_insert racing remove and insert",
            vec![(1, 4)],
            vec![
                ev(0, 1, 0, 9, GetOrInsert(7), Some(7)),
                ev(1, 1, 1, 2, Remove, Some(4)),
                ev(1, 1, 3, 4, Insert(8), Some(7)),
                ev(1, 1, 10, 11, Get, Some(8)),
            ],
        ),
        (
            "compute removes, inserts, bumps",
            vec![(1, 4)],
            vec![
                ev(0, 1, 0, 1, Compute(9), None),
                ev(0, 1, 2, 3, Compute(9), Some(9)),
                ev(0, 1, 4, 5, Compute(2), Some(bump(9, 2))),
            ],
        ),
    ];
    for (what, init, events) in &accepted {
        assert!(accepts(init, events), "checker rejected: {what}");
    }
}

/// A deliberately non-atomic read-modify-write, `get` then `insert`, run for real on two
/// threads with a barrier between the two halves (so both read before either writes) and
/// recorded as `update` calls: the checker must find the lost update.
#[test]
fn broken_rmw_is_caught() {
    let map: HashMap<u64, u64> = HashMap::new();
    map.insert(1, 10);
    let barrier = Barrier::new(2);
    let events: Vec<Event> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let (map, barrier) = (&map, &barrier);
                s.spawn(move || {
                    let tag = t + 1;
                    let invoke = tick();
                    let old = map.get(&1);
                    barrier.wait();
                    let new = old.map(|x| bump(x, tag));
                    if let Some(v) = new {
                        map.insert(1, v);
                    }
                    let response = tick();
                    ev(t as usize, 1, invoke, response, Call::Update(tag), new)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let init = BTreeMap::from([(1, 10)]);
    assert!(
        check_history(&init, &events).is_err(),
        "lost update accepted: {events:?}"
    );
    // The same two updates through the map's atomic `update` are accepted.
    let map: HashMap<u64, u64> = HashMap::new();
    map.insert(1, 10);
    let events: Vec<Event> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let (map, barrier) = (&map, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    record(map, t as usize, 1, Call::Update(t + 1), Style::MapLevel)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    check_history(&init, &events).unwrap();
}
