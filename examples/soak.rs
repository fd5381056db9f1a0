//! Soak run: mixed operations on a `linemap::HashMap` and a `linemap::Cache` (eviction
//! listener, time-to-live, weigher) for a given time, with the number of threads changing
//! from phase to phase, checking invariants at the end of every phase and memory at the end.
//!
//! ```text
//! cargo run --release --example soak -- --seconds 120          # what CI runs (.ci/soak)
//! cargo run --release --example soak -- --seconds 3600         # an hour
//! cargo run --release --example soak -- --seconds 600 --phase-seconds 2
//! ```
//!
//! Phases run 1, 2, 4, 8, 2, 1, 8, 4 threads (then again), `--phase-seconds` each (default:
//! a tenth of the run, between 1 and 10 s). Threads start and stop with their phase, so
//! crossbeam-epoch participants come and go. At the end of each phase, with every thread
//! joined (quiescence), the run checks:
//!
//! * map, keys owned by one of 8 slots (a thread of the phase works for some slots): the
//!   map holds exactly what the slots' private models say (every insert, remove, update and
//!   compute of the phase applied, none lost, none resurrected);
//! * map, 64 shared counters incremented by every thread (`update_or_insert`): their sum is
//!   the number of increments the threads made;
//! * map, shared churn keys (insert, remove, `get_or_insert_with`, `retain` by all threads):
//!   every value belongs to its key, iteration and `len` agree;
//! * cache: `len() <= capacity`, `weight() <= budget` and equal to the sum of the stored
//!   values' weights; every value handed to the cache is either still there or was reported
//!   to the listener, once (`handed - reported - live` is 0, or at most the number of
//!   versioned inserts that were refused: those values are dropped without a report, as
//!   documented); no value that the listener reported is returned again;
//! * cache, during the phase: a value returned by `get` is never past its deadline (each
//!   value with a time-to-live records an upper bound of its deadline once its insert
//!   returned; a lookup that began after that bound must not return it).
//!
//! At the end the map and the cache are cleared, crossbeam-epoch is flushed (a pin/flush loop,
//! since retired entries are freed later), and the run checks that no value instance is
//! left (instances are counted on creation, clone and drop: a leak or a double drop shows)
//! and prints the live bytes and allocations (a counting global allocator) at the baseline,
//! the peak, after `clear()` and after dropping both. After the drop, live bytes must be back
//! at the baseline within `EPOCH_SLACK` bytes; after `clear()` the map keeps its table
//! (documented) and the cache its table and ring, so what they retain is compared with fresh
//! containers of the same capacity.
//!
//! Exits with status 1 on any violation (printing each), 0 otherwise.

use linemap::cache::{Clock, RemovalCause, SystemClock};
use linemap::{Cache, HashMap};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap as StdMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Counting allocator

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);
static TOTAL_ALLOCS: AtomicU64 = AtomicU64::new(0);

fn on_alloc(n: usize) {
    let live = LIVE_BYTES.fetch_add(n, Relaxed) + n;
    PEAK_BYTES.fetch_max(live, Relaxed);
    LIVE_ALLOCS.fetch_add(1, Relaxed);
    TOTAL_ALLOCS.fetch_add(1, Relaxed);
}

fn on_dealloc(n: usize) {
    LIVE_BYTES.fetch_sub(n, Relaxed);
    LIVE_ALLOCS.fetch_sub(1, Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        on_dealloc(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            on_dealloc(layout.size());
            on_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy, Debug)]
struct Mem {
    bytes: usize,
    allocs: usize,
}

fn mem() -> Mem {
    Mem {
        bytes: LIVE_BYTES.load(Relaxed),
        allocs: LIVE_ALLOCS.load(Relaxed),
    }
}

/// What crossbeam-epoch may still hold after the flush loop, beyond the baseline: the
/// participant records (`Local`, about 2 KiB each with its bag of 64 deferred functions) of
/// threads that exited but are not yet unlinked from the participant list, and a node or two
/// of the global garbage queue. Eight such records are 16 KiB; the measured remainder is
/// printed (it has been 0 in every run so far).
const EPOCH_SLACK: usize = 32 * 1024;

/// Pins and flushes until `done()` holds (at least `min` rounds); returns whether it held.
/// Each round can advance the global epoch by one and free the garbage two epochs old;
/// exited threads' bags are collected on the way.
fn flush_epoch(min: usize, mut done: impl FnMut() -> bool) -> bool {
    for i in 0..100_000 {
        if i >= min && done() {
            return true;
        }
        crossbeam_epoch::pin().flush();
        if i % 64 == 63 {
            std::thread::yield_now();
        }
    }
    done()
}

// ---------------------------------------------------------------------------------------------
// Values: instances counted, contents checkable

/// Listener reports of a value under another key than its own.
static FOREIGN_REPORTS: AtomicU64 = AtomicU64::new(0);

/// Map value instances alive.
static MAP_VALUES: AtomicI64 = AtomicI64::new(0);
/// Cache value instances alive.
static CACHE_VALUES: AtomicI64 = AtomicI64::new(0);

/// A map value: `tag` identifies the write; the payload makes entries allocate.
struct MVal {
    tag: u64,
    payload: Vec<u8>,
}

impl MVal {
    fn new(tag: u64, len: usize) -> Self {
        MAP_VALUES.fetch_add(1, Relaxed);
        MVal {
            tag,
            payload: vec![tag as u8; len],
        }
    }
    fn ok(&self) -> bool {
        self.payload.iter().all(|b| *b == self.tag as u8)
    }
}

impl Clone for MVal {
    fn clone(&self) -> Self {
        MAP_VALUES.fetch_add(1, Relaxed);
        MVal {
            tag: self.tag,
            payload: self.payload.clone(),
        }
    }
}

impl Drop for MVal {
    fn drop(&mut self) {
        MAP_VALUES.fetch_sub(1, Relaxed);
    }
}

/// A cache value: `key` it was stored under, a unique `id`, a payload (its length is the
/// weight), and, for values with a time-to-live, an upper bound of the deadline (clock
/// nanoseconds + 1) set once the insert returned (0 until then, and for values without one).
struct CVal {
    key: u64,
    id: u64,
    payload: Vec<u8>,
    deadline_hi: Arc<AtomicU64>,
}

impl CVal {
    fn new(key: u64, id: u64, len: usize) -> Self {
        CACHE_VALUES.fetch_add(1, Relaxed);
        CVal {
            key,
            id,
            payload: vec![key as u8; len],
            deadline_hi: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Clone for CVal {
    fn clone(&self) -> Self {
        CACHE_VALUES.fetch_add(1, Relaxed);
        CVal {
            key: self.key,
            id: self.id,
            payload: self.payload.clone(),
            deadline_hi: Arc::clone(&self.deadline_hi),
        }
    }
}

impl Drop for CVal {
    fn drop(&mut self) {
        CACHE_VALUES.fetch_sub(1, Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Workload

const SLOTS: usize = 8;
/// Owned keys per slot: key = slot + SLOTS * i.
const OWNED_PER_SLOT: u64 = 512;
const COUNTER_BASE: u64 = 1 << 20;
const COUNTERS: u64 = 64;
const CHURN_BASE: u64 = 2 << 20;
const CHURN_KEYS: u64 = 1024;

const CACHE_CAPACITY: usize = 2048;
const CACHE_KEYS: u64 = 8192;
/// Payloads are 0..=96 bytes: the budget holds about 2/3 of the capacity's worth.
const CACHE_BUDGET: u64 = 2048 * 32;
const PATTERN: [usize; 8] = [1, 2, 4, 8, 2, 1, 8, 4];

/// A slot's private model of its owned keys (tag per present key) and counter increments.
#[derive(Default)]
struct Slot {
    model: StdMap<u64, u64>,
    increments: u64,
}

struct Shared {
    map: HashMap<u64, MVal>,
    cache: Cache<u64, CVal>,
    clock: SystemClock,
    next_id: AtomicU64,
    next_version: AtomicU64,
    /// Values handed to the cache (insert calls and loader runs).
    handed: AtomicU64,
    /// Versioned inserts that returned false.
    versioned_false: AtomicU64,
    /// Listener reports, per cause (shared with the listener closure).
    reported: Arc<[AtomicU64; 4]>,
    violations: Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, s: String) {
        let mut v = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 100 {
            eprintln!("VIOLATION: {s}");
            v.push(s);
        }
    }
    fn reported_total(&self) -> u64 {
        self.reported.iter().map(|c| c.load(Relaxed)).sum()
    }
    fn now_nanos(&self) -> u64 {
        self.clock.now().as_nanos() as u64
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One worker of a phase: runs until `end`, on the slots it was given. Returns its op count.
fn worker(sh: &Shared, slots: &mut [(usize, &mut Slot)], seed: u64, end: Instant) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut ops = 0u64;
    let mut seq = 0u64;
    loop {
        if ops % 256 == 0 && Instant::now() >= end {
            return ops;
        }
        ops += 1;
        seq += 1;
        let r = rng.below(100);
        if r < 45 {
            map_op(sh, slots, &mut rng, seq);
        } else {
            cache_op(sh, &mut rng);
        }
    }
}

fn map_op(sh: &Shared, slots: &mut [(usize, &mut Slot)], rng: &mut Rng, seq: u64) {
    let m = sh.map.pin();
    let r = rng.below(100);
    if r < 50 {
        // An owned key of one of our slots: checked against the slot's model.
        let i = rng.below(slots.len() as u64) as usize;
        let (slot_no, slot) = &mut slots[i];
        let k = *slot_no as u64 + SLOTS as u64 * rng.below(OWNED_PER_SLOT);
        let tag = (*slot_no as u64) << 56 | seq;
        let want = slot.model.get(&k).copied();
        match rng.below(6) {
            0 | 1 => {
                let old = m
                    .insert(k, MVal::new(tag, (seq % 48) as usize))
                    .map(|v| v.tag);
                if old != want {
                    sh.violation(format!("map insert({k}): old {old:?}, model {want:?}"));
                }
                slot.model.insert(k, tag);
            }
            2 => {
                let old = m.remove(&k).map(|v| v.tag);
                if old != want {
                    sh.violation(format!("map remove({k}): {old:?}, model {want:?}"));
                }
                slot.model.remove(&k);
            }
            3 => {
                let got = m.get(&k);
                if got.map(|v| v.tag) != want || got.is_some_and(|v| !v.ok()) {
                    let got = got.map(|v| v.tag);
                    sh.violation(format!("map get({k}): {got:?}, model {want:?}"));
                }
            }
            4 => {
                let got = m
                    .update(&k, |v| MVal::new(v.tag + 1, v.payload.len()))
                    .map(|v| v.tag);
                let want = want.map(|t| t + 1);
                if got != want {
                    sh.violation(format!("map update({k}): {got:?}, model {want:?}"));
                }
                if let Some(t) = want {
                    slot.model.insert(k, t);
                }
            }
            _ => {
                // Toggle: remove if present, insert if absent.
                let got = m
                    .compute(k, |cur| match cur {
                        Some(_) => None,
                        None => Some(MVal::new(tag, 8)),
                    })
                    .map(|v| v.tag);
                let want = if want.is_some() { None } else { Some(tag) };
                if got != want {
                    sh.violation(format!("map compute({k}): {got:?}, model {want:?}"));
                }
                match want {
                    Some(t) => slot.model.insert(k, t),
                    None => slot.model.remove(&k),
                };
            }
        }
    } else if r < 70 {
        let k = COUNTER_BASE + rng.below(COUNTERS);
        m.update_or_insert(k, |v| MVal::new(v.tag + 1, 0), MVal::new(1, 0));
        let i = rng.below(slots.len() as u64) as usize;
        slots[i].1.increments += 1;
    } else {
        let k = CHURN_BASE + rng.below(CHURN_KEYS);
        let tag = k << 20 | (seq & 0xFFFFF);
        let check = |v: Option<&MVal>, what: &str| {
            if let Some(v) = v {
                if v.tag >> 20 != k || !v.ok() {
                    sh.violation(format!("map {what}({k}): foreign value {:#x}", v.tag));
                }
            }
        };
        match rng.below(20) {
            0..=5 => check(m.insert(k, MVal::new(tag, (seq % 64) as usize)), "insert"),
            6..=10 => check(m.remove(&k), "remove"),
            11..=16 => check(m.get(&k), "get"),
            17 | 18 => check(Some(m.get_or_insert_with(k, || MVal::new(tag, 4))), "goi"),
            _ => {
                if rng.below(200) == 0 {
                    // Rarely: a whole-map retain that only ever drops churn keys.
                    let salt = rng.below(7);
                    m.retain(|k, _| !(*k >= CHURN_BASE && (k + salt) % 7 == 0));
                } else {
                    check(m.get(&k), "get");
                }
            }
        }
    }
}

fn cache_op(sh: &Shared, rng: &mut Rng) {
    let c = &sh.cache;
    let k = rng.below(CACHE_KEYS);
    let fresh = |rng: &mut Rng| {
        let id = sh.next_id.fetch_add(1, Relaxed);
        CVal::new(k, id, rng.below(97) as usize)
    };
    let check = |v: &CVal, t0: u64, what: &str| {
        if v.key != k || v.payload.len() > 96 || v.payload.iter().any(|b| *b != k as u8) {
            sh.violation(format!("cache {what}({k}): foreign value of key {}", v.key));
        }
        let hi = v.deadline_hi.load(Relaxed);
        if hi != 0 && t0 >= hi - 1 {
            sh.violation(format!(
                "cache {what}({k}): value {} returned {} ns past its deadline",
                v.id,
                t0 - (hi - 1)
            ));
        }
    };
    match rng.below(100) {
        0..=39 => {
            let t0 = sh.now_nanos();
            if let Some(v) = c.get(&k) {
                check(&v, t0, "get");
            }
        }
        40..=59 => {
            sh.handed.fetch_add(1, Relaxed);
            c.insert(k, fresh(rng));
        }
        60..=69 => {
            let ttl = Duration::from_micros(100 + rng.below(20_000));
            let v = fresh(rng);
            let hi = Arc::clone(&v.deadline_hi);
            sh.handed.fetch_add(1, Relaxed);
            c.insert_with_ttl(k, v, ttl);
            hi.store(sh.now_nanos() + ttl.as_nanos() as u64 + 1, Relaxed);
        }
        70..=74 => {
            let version = sh.next_version.fetch_add(1, Relaxed);
            sh.handed.fetch_add(1, Relaxed);
            if !c.insert_versioned(k, fresh(rng), version) {
                sh.versioned_false.fetch_add(1, Relaxed);
            }
        }
        75..=79 => {
            let t0 = sh.now_nanos();
            if let Some(v) = c.remove(&k) {
                check(&v, t0, "remove");
            }
        }
        80..=93 => {
            let t0 = sh.now_nanos();
            let v = c.get_or_insert_with(k, || {
                sh.handed.fetch_add(1, Relaxed);
                fresh(rng)
            });
            check(&v, t0, "get_or_insert_with");
        }
        94..=97 => {
            let t0 = sh.now_nanos();
            if let Ok(v) = c.get_or_try_insert_with(k, || Err::<CVal, ()>(())) {
                check(&v, t0, "get_or_try_insert_with");
            }
        }
        98 => {
            c.remove_versioned(&k, sh.next_version.load(Relaxed) / 2);
        }
        _ => {
            if rng.below(50) == 0 {
                c.purge_expired();
            } else {
                c.contains_key(&k);
            }
        }
    }
}

/// Checks at quiescence (every worker joined).
fn check_phase(sh: &Shared, slots: &[Slot], increments_total: u64) {
    // Map: owned keys exactly as the models say.
    let m = sh.map.pin();
    for (s, slot) in slots.iter().enumerate() {
        for i in 0..OWNED_PER_SLOT {
            let k = s as u64 + SLOTS as u64 * i;
            let got = m.get(&k).map(|v| v.tag);
            let want = slot.model.get(&k).copied();
            if got != want {
                sh.violation(format!("phase end: map[{k}] = {got:?}, model {want:?}"));
            }
        }
    }
    // Counters.
    let sum: u64 = (0..COUNTERS)
        .filter_map(|i| m.get(&(COUNTER_BASE + i)).map(|v| v.tag))
        .sum();
    if sum != increments_total {
        sh.violation(format!(
            "phase end: counters sum to {sum}, threads made {increments_total} increments"
        ));
    }
    // Whole map: every entry belongs to a known key range and is well-formed; len agrees.
    let mut n = 0usize;
    for (k, v) in m.iter() {
        n += 1;
        let ok = if *k >= CHURN_BASE {
            *k < CHURN_BASE + CHURN_KEYS && v.tag >> 20 == *k && v.ok()
        } else if *k >= COUNTER_BASE {
            *k < COUNTER_BASE + COUNTERS
        } else {
            *k < SLOTS as u64 * OWNED_PER_SLOT && v.ok()
        };
        if !ok {
            sh.violation(format!("phase end: bad map entry {k} -> {:#x}", v.tag));
        }
    }
    if n != m.len() {
        sh.violation(format!(
            "phase end: map iterates {n} entries, len {}",
            m.len()
        ));
    }
    drop(m);

    // Cache: bound, weight, accounting.
    let c = &sh.cache;
    let (mut live, mut weight) = (0u64, 0u64);
    c.retain(|k, v| {
        if v.key != *k {
            sh.violation(format!(
                "phase end: cache[{k}] holds a value of key {}",
                v.key
            ));
        }
        live += 1;
        weight += v.payload.len() as u64;
        true
    });
    if c.len() > CACHE_CAPACITY || live as usize != c.len() {
        sh.violation(format!(
            "phase end: cache len {} (visited {live}), capacity {CACHE_CAPACITY}",
            c.len()
        ));
    }
    if c.weight() != weight || weight > CACHE_BUDGET {
        sh.violation(format!(
            "phase end: cache weight {} (entries weigh {weight}), budget {CACHE_BUDGET}",
            c.weight()
        ));
    }
    let foreign = FOREIGN_REPORTS.load(Relaxed);
    if foreign != 0 {
        sh.violation(format!(
            "the listener was given {foreign} values under another key"
        ));
    }
    let handed = sh.handed.load(Relaxed);
    let reported = sh.reported_total();
    // Dropped without a report: refused versioned inserts, and loaded values that a write
    // made while their load ran kept out of the cache (`CacheStats::loads_not_stored`).
    let refused = sh.versioned_false.load(Relaxed) + c.stats().loads_not_stored;
    let silent = handed as i128 - reported as i128 - live as i128;
    if silent < 0 || silent > refused as i128 {
        sh.violation(format!(
            "phase end: handed {handed} values, listener reported {reported}, {live} live: \
             {silent} unaccounted (allowed 0..={refused}, the refused versioned inserts and \
             loads not stored)"
        ));
    }
}

fn parse_args() -> (u64, Option<u64>) {
    let mut seconds = 120;
    let mut phase = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match a.as_str() {
            "--seconds" => seconds = val("--seconds"),
            "--phase-seconds" => phase = Some(val("--phase-seconds")),
            "-h" | "--help" => {
                println!("soak [--seconds N (120)] [--phase-seconds P (N/10, 1..=10)]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    (seconds, phase)
}

fn main() {
    let (seconds, phase_arg) = parse_args();
    let phase_len = Duration::from_secs(phase_arg.unwrap_or((seconds / 10).clamp(1, 10)).max(1));
    println!(
        "soak: {seconds} s, phases of {} s, threads {PATTERN:?} repeated",
        phase_len.as_secs()
    );
    // Warm up what the process keeps for good (this thread's epoch records: crossbeam's and
    // linemap's own, its pool of freed blocks, stdout's buffer, the thread machinery) before
    // taking the baseline.
    std::thread::spawn(|| crossbeam_epoch::pin().flush())
        .join()
        .unwrap();
    {
        // Also fill this thread's block pools for the run's entry sizes to their cap (freed
        // entries of a map and a cache of the run's types): a pool keeps up to 640 freed
        // blocks per size for good, so after the run the main thread's pools are at most
        // what they are here.
        // Every block is allocated before any is freed, so that the frees fill the pools:
        // the guard held across the warm-up keeps everything it retires (entries, the loads'
        // placeholders and through them their `Pending` blocks) until the flush below.
        const WARM: u64 = 4_000;
        let hold = crossbeam_epoch::pin();
        let warm = linemap::HashMap::new();
        let warm_cache: Cache<u64, CVal> = Cache::new(WARM as usize);
        for k in 0..WARM {
            warm.insert(k, MVal::new(k, 4));
            warm_cache.get_or_insert_with(k, || CVal::new(k, k, 4));
        }
        for k in 0..WARM {
            warm.remove(&k);
        }
        warm_cache.clear();
        drop(warm_cache);
        drop(warm);
        drop(hold);
    }
    flush_epoch(256, || {
        MAP_VALUES.load(Relaxed) == 0 && CACHE_VALUES.load(Relaxed) == 0
    });
    let base = mem();
    let total_allocs_start = TOTAL_ALLOCS.load(Relaxed);

    let reported: Arc<[AtomicU64; 4]> = Arc::default();
    let log = Arc::clone(&reported);
    let clock = SystemClock::new();
    let sh = Shared {
        map: HashMap::new(),
        cache: Cache::builder(CACHE_CAPACITY)
            .clock(clock)
            .weigher(CACHE_BUDGET, |_: &u64, v: &CVal| v.payload.len() as u32)
            .eviction_listener(move |k: &u64, v: &CVal, cause| {
                // Not an assert: the cache catches a listener's panic.
                if *k != v.key {
                    FOREIGN_REPORTS.fetch_add(1, Relaxed);
                }
                let i = match cause {
                    RemovalCause::Capacity => 0,
                    RemovalCause::Expired => 1,
                    RemovalCause::Removed => 2,
                    RemovalCause::Replaced => 3,
                };
                log[i].fetch_add(1, Relaxed);
            })
            .build(),
        clock,
        next_id: AtomicU64::new(0),
        next_version: AtomicU64::new(1),
        handed: AtomicU64::new(0),
        versioned_false: AtomicU64::new(0),
        reported: Arc::clone(&reported),
        violations: Mutex::new(Vec::new()),
    };
    let built = mem();

    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut slots: Vec<Slot> = (0..SLOTS).map(|_| Slot::default()).collect();
    let mut total_ops = 0u64;
    let mut phase = 0usize;
    println!(
        "{:>5} {:>7} {:>12} {:>10} {:>9} {:>9} {:>11}",
        "phase", "threads", "ops", "ops/s", "map len", "cache len", "live bytes"
    );
    while Instant::now() < deadline {
        let threads = PATTERN[phase % PATTERN.len()];
        let end = (Instant::now() + phase_len).min(deadline);
        let t = Instant::now();
        // Worker i of n works for slots i, i + n, ...
        let mut groups: Vec<Vec<(usize, &mut Slot)>> = (0..threads).map(|_| Vec::new()).collect();
        for (s, slot) in slots.iter_mut().enumerate() {
            groups[s % threads].push((s, slot));
        }
        let ops: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .into_iter()
                .enumerate()
                .map(|(i, mut g)| {
                    let sh = &sh;
                    let seed = (phase as u64) << 32 | i as u64;
                    scope.spawn(move || worker(sh, &mut g, seed.wrapping_mul(0x9E37_79B9), end))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let secs = t.elapsed().as_secs_f64();
        let increments: u64 = slots.iter().map(|s| s.increments).sum();
        check_phase(&sh, &slots, increments);
        total_ops += ops;
        println!(
            "{phase:>5} {threads:>7} {ops:>12} {:>10.0} {:>9} {:>9} {:>11}",
            ops as f64 / secs,
            sh.map.len(),
            sh.cache.len(),
            mem().bytes
        );
        phase += 1;
    }
    let peak = PEAK_BYTES.load(Relaxed);
    // The slots' models are the harness's, not the containers': not part of what must go.
    drop(slots);

    // Clear both, flush the epoch: every value instance must be gone.
    sh.map.clear();
    sh.cache.clear();
    let reported_after_clear: u64 = reported.iter().map(|r| r.load(Relaxed)).sum();
    let handed = sh.handed.load(Relaxed);
    let refused = sh.versioned_false.load(Relaxed) + sh.cache.stats().loads_not_stored;
    let silent = handed as i128 - reported_after_clear as i128;
    if silent < 0 || silent > refused as i128 {
        sh.violation(format!(
            "after clear: handed {handed} values, listener reported {reported_after_clear}: \
             {silent} unaccounted (allowed 0..={refused})"
        ));
    }
    let settled = flush_epoch(256, || {
        MAP_VALUES.load(Relaxed) == 0 && CACHE_VALUES.load(Relaxed) == 0
    });
    if !settled {
        sh.violation(format!(
            "after clear and epoch flush: {} map values and {} cache values still alive",
            MAP_VALUES.load(Relaxed),
            CACHE_VALUES.load(Relaxed)
        ));
    }
    let after_clear = mem();
    let map_capacity = sh.map.capacity();
    let violations = std::mem::take(&mut *sh.violations.lock().unwrap());
    let stats = sh.cache.stats();
    drop(sh);
    drop(reported);
    flush_epoch(1024, || mem().bytes <= base.bytes);
    let after_drop = mem();

    // What fresh, empty containers of the same capacities take (the tables clear() keeps).
    let before_ref = mem();
    let fresh_map: HashMap<u64, MVal> = HashMap::with_capacity(map_capacity);
    let fresh_cache: Cache<u64, CVal> = Cache::builder(CACHE_CAPACITY)
        .weigher(CACHE_BUDGET, |_: &u64, v: &CVal| v.payload.len() as u32)
        .eviction_listener(|_: &u64, _: &CVal, _| {})
        .build();
    let fresh = mem().bytes - before_ref.bytes;
    drop((fresh_map, fresh_cache));

    let mut violations = violations;
    let retained = after_clear.bytes.saturating_sub(after_drop.bytes);
    if retained > 2 * fresh + EPOCH_SLACK {
        violations.push(format!(
            "after clear: the empty map and cache still hold {retained} bytes; fresh ones of \
             the same capacity take {fresh}"
        ));
    }
    if after_drop.bytes > base.bytes + EPOCH_SLACK {
        violations.push(format!(
            "after drop: {} live bytes, baseline {} (+{EPOCH_SLACK} allowed)",
            after_drop.bytes, base.bytes
        ));
    }

    println!(
        "ops executed: {total_ops} in {phase} phases, {:.0} s",
        start.elapsed().as_secs_f64()
    );
    println!(
        "cache: {handed} values handed, listener: {} capacity, {} expired, {} removed, {} replaced; {refused} versioned inserts refused; hits {} misses {}",
        reported_counts(&stats).0,
        reported_counts(&stats).1,
        reported_counts(&stats).2,
        reported_counts(&stats).3,
        stats.hits,
        stats.misses
    );
    println!(
        "allocations: {} in all",
        TOTAL_ALLOCS.load(Relaxed) - total_allocs_start
    );
    println!("memory (live bytes / live allocations):");
    println!("  baseline        {:>11} / {}", base.bytes, base.allocs);
    println!("  containers built{:>11} / {}", built.bytes, built.allocs);
    println!("  peak            {:>11}", peak);
    println!(
        "  after clear     {:>11} / {}   (the empty containers keep {retained} bytes; fresh ones of the same capacity: {fresh})",
        after_clear.bytes, after_clear.allocs
    );
    println!(
        "  after drop      {:>11} / {}   ({:+} bytes vs baseline; allowed +{EPOCH_SLACK})",
        after_drop.bytes,
        after_drop.allocs,
        after_drop.bytes as i64 - base.bytes as i64
    );
    if violations.is_empty() {
        println!("soak: OK, no violation");
    } else {
        println!("soak: FAILED, {} violation(s):", violations.len());
        for v in &violations {
            println!("  {v}");
        }
        std::process::exit(1);
    }
}

fn reported_counts(s: &linemap::cache::CacheStats) -> (u64, u64, u64, u64) {
    (s.evicted_capacity, s.evicted_expired, s.removed, s.replaced)
}
