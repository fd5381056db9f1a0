//! linemap against its peers, all in one process with the same hasher.
//!
//! Two parts, selected with `LINEMAP_BENCH_PART=all|mixes|micro` (default `all`):
//!
//! * **mixes**: conc-map-bench's three workloads (ReadHeavy 98/1/1/0, Exchange 10/40/40/10,
//!   RapidGrow 5/80/5/10 read/insert/remove/update %), reproduced from bustle's description:
//!   table `with_capacity(2^scale)`, prefill 0.75/0.75/0 of it, `2^scale` operations in total,
//!   uniform `u64` keys pre-generated per thread (each thread touches only its own keys),
//!   reads and updates pick keys with a full-period LCG, inserts and removes walk the key list
//!   in order, `u32` values, update = +1 if present. Throughput = total ops / wall time.
//!   These runs are too big for criterion's repeated sampling, so they are timed here and
//!   every peer runs once per repetition, interleaved; medians are printed as a table.
//! * **micro** (criterion, `iter_custom`): growth from `new()` without pre-sizing, a hot table
//!   of 1,024 entries (reads), and zipf(0.99) keys shared by all threads (reads, and 50/50
//!   read/update) so that threads contend on the same entries.
//!
//! Environment (all optional):
//! `LINEMAP_BENCH_THREADS=1,2` thread counts (default 1 through `available_parallelism`; 1 and 2
//! in the test mode); `LINEMAP_BENCH_SCALE=25` log2 of the mixes'
//! capacity and operation count; `LINEMAP_BENCH_REPS=3` repetitions of the mixes;
//! `LINEMAP_BENCH_BATCH=1024` operations per pinned handle before it is re-pinned;
//! `LINEMAP_BENCH_PEERS=linemap-handle,dashmap,...` run only these peers;
//! `LINEMAP_BENCH_MIXES=ReadHeavy,...` run only these mixes; `LINEMAP_BENCH_GROW=20` log2 of
//! the growth benchmark's entries; `LINEMAP_BENCH_CLOCK=cpu` makes the criterion benchmarks
//! report the threads' mean on-CPU time instead of wall time (for oversubscribed machines; the
//! mixes always print both).
//!
//! `cargo test --benches` runs everything once at a tiny size (criterion's test mode).
use criterion::{BenchmarkId, Criterion, Throughput};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::{Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

mod support;
use support::{
    cpu_clock, default_threads, env_list, env_num, hasher, median, random_keys, thread_cpu_ns,
    Hasher, SplitMix, Zipf,
};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// conc-map-bench stores `u32` values.
type Value = u32;

struct Config {
    test_mode: bool,
    threads: Vec<usize>,
    scale: u32,
    reps: usize,
    batch: usize,
    peers: Option<Vec<String>>,
    mixes: Option<Vec<String>>,
    grow_log2: u32,
    part: String,
}

impl Config {
    fn from_env() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let bench = args.iter().any(|a| a == "--bench");
        let test = args.iter().any(|a| a == "--test");
        let test_mode = !bench || test;
        let threads = env_list("LINEMAP_BENCH_THREADS")
            .map(|v| {
                v.iter()
                    .map(|t| t.parse().expect("LINEMAP_BENCH_THREADS: numbers"))
                    .collect()
            })
            .unwrap_or_else(|| default_threads(test_mode));
        Config {
            test_mode,
            threads,
            scale: if test_mode {
                12
            } else {
                env_num("LINEMAP_BENCH_SCALE", 25)
            },
            reps: if test_mode {
                1
            } else {
                env_num("LINEMAP_BENCH_REPS", 3)
            },
            batch: env_num("LINEMAP_BENCH_BATCH", 1024usize).max(1),
            peers: env_list("LINEMAP_BENCH_PEERS"),
            mixes: env_list("LINEMAP_BENCH_MIXES"),
            grow_log2: if test_mode {
                12
            } else {
                env_num("LINEMAP_BENCH_GROW", 20)
            },
            part: if args.iter().any(|a| a == "--list") {
                "micro".into()
            } else {
                std::env::var("LINEMAP_BENCH_PART").unwrap_or_else(|_| "all".into())
            },
        }
    }

    fn wants_peer(&self, name: &str) -> bool {
        self.peers
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == name))
    }
}

// ---------------------------------------------------------------------------------------------
// The peers behind one interface
// ---------------------------------------------------------------------------------------------

/// A map under test. `create(0)` is the default constructor (no pre-sizing).
trait Peer: Send + Sync + Sized + 'static {
    const NAME: &'static str;
    /// False for the single-threaded no-sync limit, which only runs at one thread.
    const CONCURRENT: bool = true;
    type Handle<'a>: Handle
    where
        Self: 'a;
    fn create(capacity: usize) -> Self;
    /// A per-thread handle; `batch` is how many operations a pinned guard is reused for.
    fn handle(&self, batch: usize) -> Self::Handle<'_>;
}

/// The operations of conc-map-bench, on `u64` keys and `u32` values.
trait Handle {
    fn get(&mut self, key: &u64) -> bool;
    /// True if the key was absent.
    fn insert(&mut self, key: u64, value: Value) -> bool;
    fn remove(&mut self, key: &u64) -> bool;
    /// `+1` if present; true if present.
    fn update(&mut self, key: &u64) -> bool;
    /// Called after every operation: handles with a guard re-pin every `batch` operations.
    #[inline(always)]
    fn tick(&mut self) {}
}

// linemap, through one pinned handle reused for `batch` operations.
type Linemap = linemap::HashMap<u64, Value, Hasher>;

struct LinemapHandle(Linemap);

struct LmPinned<'a> {
    map: &'a Linemap,
    pinned: Option<linemap::HashMapRef<'a, u64, Value, Hasher>>,
    left: usize,
    batch: usize,
}

impl<'a> LmPinned<'a> {
    #[inline(always)]
    fn r(&self) -> &linemap::HashMapRef<'a, u64, Value, Hasher> {
        match &self.pinned {
            Some(r) => r,
            None => unreachable!(),
        }
    }
}

impl Peer for LinemapHandle {
    const NAME: &'static str = "linemap-handle";
    type Handle<'a> = LmPinned<'a>;
    fn create(capacity: usize) -> Self {
        LinemapHandle(Linemap::with_capacity_and_hasher(capacity, hasher()))
    }
    fn handle(&self, batch: usize) -> LmPinned<'_> {
        LmPinned {
            map: &self.0,
            pinned: Some(self.0.pin()),
            left: batch,
            batch,
        }
    }
}

impl Handle for LmPinned<'_> {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        self.r().get(key).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        self.r().insert(key, value).is_none()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        self.r().remove(key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        self.r().update(key, |v| v + 1).is_some()
    }
    #[inline(always)]
    fn tick(&mut self) {
        self.left -= 1;
        if self.left == 0 {
            // Unpin first: a nested pin would keep the old epoch.
            self.pinned = None;
            self.pinned = Some(self.map.pin());
            self.left = self.batch;
        }
    }
}

// linemap, through the map-level one-shot methods (each call pins and unpins).
struct LinemapOneShot(Linemap);

impl Peer for LinemapOneShot {
    const NAME: &'static str = "linemap-oneshot";
    type Handle<'a> = &'a Linemap;
    fn create(capacity: usize) -> Self {
        LinemapOneShot(Linemap::with_capacity_and_hasher(capacity, hasher()))
    }
    fn handle(&self, _batch: usize) -> &Linemap {
        &self.0
    }
}

impl Handle for &Linemap {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        linemap::HashMap::get(self, key).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        linemap::HashMap::insert(self, key, value).is_none()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        linemap::HashMap::remove(self, key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        linemap::HashMap::update(self, key, |v| v + 1).is_some()
    }
}

// std HashMap behind a Mutex and behind a RwLock.
type Std = std::collections::HashMap<u64, Value, Hasher>;

struct MutexStd(Mutex<Std>);

impl Peer for MutexStd {
    const NAME: &'static str = "Mutex<std>";
    type Handle<'a> = &'a Mutex<Std>;
    fn create(capacity: usize) -> Self {
        MutexStd(Mutex::new(Std::with_capacity_and_hasher(
            capacity,
            hasher(),
        )))
    }
    fn handle(&self, _batch: usize) -> &Mutex<Std> {
        &self.0
    }
}

impl Handle for &Mutex<Std> {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        self.lock().unwrap().get(key).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        self.lock().unwrap().insert(key, value).is_none()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        self.lock().unwrap().remove(key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        self.lock().unwrap().get_mut(key).map(|v| *v += 1).is_some()
    }
}

struct RwLockStd(RwLock<Std>);

impl Peer for RwLockStd {
    const NAME: &'static str = "RwLock<std>";
    type Handle<'a> = &'a RwLock<Std>;
    fn create(capacity: usize) -> Self {
        RwLockStd(RwLock::new(Std::with_capacity_and_hasher(
            capacity,
            hasher(),
        )))
    }
    fn handle(&self, _batch: usize) -> &RwLock<Std> {
        &self.0
    }
}

impl Handle for &RwLock<Std> {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        self.read().unwrap().get(key).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        self.write().unwrap().insert(key, value).is_none()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        self.write().unwrap().remove(key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        self.write()
            .unwrap()
            .get_mut(key)
            .map(|v| *v += 1)
            .is_some()
    }
}

// dashmap.
type Dash = dashmap::DashMap<u64, Value, Hasher>;

struct DashPeer(Dash);

impl Peer for DashPeer {
    const NAME: &'static str = "dashmap";
    type Handle<'a> = &'a Dash;
    fn create(capacity: usize) -> Self {
        DashPeer(Dash::with_capacity_and_hasher(capacity, hasher()))
    }
    fn handle(&self, _batch: usize) -> &Dash {
        &self.0
    }
}

impl Handle for &Dash {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        Dash::get(self, key).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        Dash::insert(self, key, value).is_none()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        Dash::remove(self, key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        Dash::get_mut(self, key).map(|mut v| *v += 1).is_some()
    }
}

// papaya, through one pinned handle reused for `batch` operations (as linemap-handle).
type Papaya = papaya::HashMap<u64, Value, Hasher>;

struct PapayaPeer(Papaya);

struct PapayaPinned<'a> {
    map: &'a Papaya,
    pinned: Option<papaya::HashMapRef<'a, u64, Value, Hasher, papaya::LocalGuard<'a>>>,
    left: usize,
    batch: usize,
}

impl<'a> PapayaPinned<'a> {
    #[inline(always)]
    fn r(&self) -> &papaya::HashMapRef<'a, u64, Value, Hasher, papaya::LocalGuard<'a>> {
        match &self.pinned {
            Some(r) => r,
            None => unreachable!(),
        }
    }
}

impl Peer for PapayaPeer {
    const NAME: &'static str = "papaya";
    type Handle<'a> = PapayaPinned<'a>;
    fn create(capacity: usize) -> Self {
        PapayaPeer(Papaya::with_capacity_and_hasher(capacity, hasher()))
    }
    fn handle(&self, batch: usize) -> PapayaPinned<'_> {
        PapayaPinned {
            map: &self.0,
            pinned: Some(self.0.pin()),
            left: batch,
            batch,
        }
    }
}

impl Handle for PapayaPinned<'_> {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        self.r().get(key).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        self.r().insert(key, value).is_none()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        self.r().remove(key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        self.r().update(*key, |v| v + 1).is_some()
    }
    #[inline(always)]
    fn tick(&mut self) {
        self.left -= 1;
        if self.left == 0 {
            self.pinned = None;
            self.pinned = Some(self.map.pin());
            self.left = self.batch;
        }
    }
}

// scc::HashMap.
type Scc = scc::HashMap<u64, Value, Hasher>;

struct SccPeer(Scc);

impl Peer for SccPeer {
    const NAME: &'static str = "scc";
    type Handle<'a> = &'a Scc;
    fn create(capacity: usize) -> Self {
        SccPeer(Scc::with_capacity_and_hasher(capacity, hasher()))
    }
    fn handle(&self, _batch: usize) -> &Scc {
        &self.0
    }
}

impl Handle for &Scc {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        self.read_sync(key, |_, v| *v).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        self.insert_sync(key, value).is_ok()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        self.remove_sync(key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        self.update_sync(key, |_, v| *v += 1).is_some()
    }
}

// hashbrown with no synchronisation at all: the single-threaded limit.
type Brown = hashbrown::HashMap<u64, Value, Hasher>;

struct Hashbrown(UnsafeCell<Brown>);

// SAFETY: `CONCURRENT = false`: the drivers never hand this map to more than one thread at
// once (they skip it when running with more than one thread), so the cell is never shared.
unsafe impl Sync for Hashbrown {}

impl Peer for Hashbrown {
    const NAME: &'static str = "hashbrown(1T)";
    const CONCURRENT: bool = false;
    type Handle<'a> = &'a mut Brown;
    fn create(capacity: usize) -> Self {
        Hashbrown(UnsafeCell::new(Brown::with_capacity_and_hasher(
            capacity,
            hasher(),
        )))
    }
    fn handle(&self, _batch: usize) -> &mut Brown {
        // SAFETY: single-threaded use only (see the `Sync` impl); each driver takes one handle
        // at a time and drops it before taking the next.
        unsafe { &mut *self.0.get() }
    }
}

impl Handle for &mut Brown {
    #[inline(always)]
    fn get(&mut self, key: &u64) -> bool {
        Brown::get(self, key).is_some()
    }
    #[inline(always)]
    fn insert(&mut self, key: u64, value: Value) -> bool {
        Brown::insert(self, key, value).is_none()
    }
    #[inline(always)]
    fn remove(&mut self, key: &u64) -> bool {
        Brown::remove(self, key).is_some()
    }
    #[inline(always)]
    fn update(&mut self, key: &u64) -> bool {
        Brown::get_mut(self, key).map(|v| *v += 1).is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: conc-map-bench's mixes
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Insert,
    Remove,
    Update,
}

struct MixSpec {
    name: &'static str,
    /// read, insert, remove, update percentages.
    pct: [u8; 4],
    prefill: f64,
}

const MIXES: [MixSpec; 3] = [
    MixSpec {
        name: "ReadHeavy",
        pct: [98, 1, 1, 0],
        prefill: 0.75,
    },
    MixSpec {
        name: "Exchange",
        pct: [10, 40, 40, 10],
        prefill: 0.75,
    },
    MixSpec {
        name: "RapidGrow",
        pct: [5, 80, 5, 10],
        prefill: 0.0,
    },
];

/// Everything a mix needs that does not depend on the peer: generated once, shared by all.
struct MixSetup {
    capacity: usize,
    keys: Vec<Vec<u64>>,
    ops: Vec<Op>,
    prefill_per_thread: usize,
    ops_per_thread: usize,
}

impl MixSetup {
    fn new(spec: &MixSpec, scale: u32, threads: usize) -> Self {
        let capacity = 1usize << scale;
        let total_ops = capacity;
        let mut rng = SplitMix(0xc0ff_ee00 ^ (scale as u64) << 8 ^ threads as u64);
        let mut ops = Vec::with_capacity(100);
        for (op, &n) in [Op::Read, Op::Insert, Op::Remove, Op::Update]
            .iter()
            .zip(&spec.pct)
        {
            ops.extend(std::iter::repeat_n(*op, n as usize));
        }
        assert_eq!(ops.len(), 100);
        for i in (1..ops.len()).rev() {
            ops.swap(i, rng.below(i + 1));
        }
        let prefill = (capacity as f64 * spec.prefill) as usize;
        // Enough keys for the prefill and every insert, per thread, rounded up to a power of
        // two so that an LCG can visit them all (as bustle does).
        let max_inserts = total_ops.div_ceil(100) * spec.pct[1] as usize;
        let needed = capacity.max(max_inserts) + prefill;
        let per_thread = needed.div_ceil(threads).next_power_of_two();
        let seeds: Vec<u64> = (0..threads).map(|_| rng.next()).collect();
        let keys = std::thread::scope(|s| {
            let hs: Vec<_> = seeds
                .iter()
                .map(|&seed| s.spawn(move || random_keys(seed, per_thread)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        MixSetup {
            capacity,
            keys,
            ops,
            prefill_per_thread: prefill / threads,
            ops_per_thread: total_ops / threads,
        }
    }
}

/// One thread's share of a mix. Asserts the same invariants as bustle, so a map that loses or
/// invents keys fails the benchmark.
fn run_ops<H: Handle>(h: &mut H, keys: &[u64], mix: &[Op], ops: usize, prefilled: usize) {
    let n = keys.len();
    assert!(n.is_power_of_two() && n > 4);
    // Full-period LCG over 0..n (Hull–Dobell: c odd, a-1 divisible by 4).
    let (a, c, mask) = (n / 2 + 1, n / 4 - 1, n - 1);
    let (mut erase, mut insert, mut find) = (0usize, prefilled, 0usize);
    for i in 0..ops {
        match mix[i % mix.len()] {
            Op::Read => {
                let should = find >= erase && find < insert;
                let found = h.get(&keys[find]);
                assert_eq!(should, found, "get");
                find = (a * find + c) & mask;
            }
            Op::Insert => {
                assert!(h.insert(keys[insert], 0), "insert of a new key");
                insert += 1;
            }
            Op::Remove => {
                if erase == insert {
                    assert!(!h.remove(&keys[find]), "remove from an empty table");
                    find = (a * find + c) & mask;
                } else {
                    assert!(h.remove(&keys[erase]), "remove of a present key");
                    erase += 1;
                }
            }
            Op::Update => {
                let should = find >= erase && find < insert;
                let found = h.update(&keys[find]);
                assert_eq!(should, found, "update");
                find = (a * find + c) & mask;
            }
        }
        h.tick();
    }
}

/// Wall time of a timed section and the participating threads' mean on-CPU time.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Builds the table, prefills it from all threads, then times the mix. Returns None for a
/// single-threaded peer asked to run on several threads.
fn run_mix<P: Peer>(s: &MixSetup, batch: usize) -> Option<Timing> {
    let threads = s.keys.len();
    if !P::CONCURRENT && threads > 1 {
        return None;
    }
    let map = P::create(s.capacity);
    let barrier = Barrier::new(threads + 1);
    let mut start = Instant::now();
    let cpu: Vec<Option<u64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = s
            .keys
            .iter()
            .map(|keys| {
                let (map, barrier) = (&map, &barrier);
                sc.spawn(move || {
                    {
                        let mut h = map.handle(batch);
                        for &k in &keys[..s.prefill_per_thread] {
                            assert!(h.insert(k, 0));
                            h.tick();
                        }
                    }
                    barrier.wait(); // prefill done
                    barrier.wait(); // clock started
                    let c0 = thread_cpu_ns();
                    let mut h = map.handle(batch);
                    run_ops(&mut h, keys, &s.ops, s.ops_per_thread, s.prefill_per_thread);
                    drop(h);
                    Some(thread_cpu_ns()? - c0?)
                })
            })
            .collect();
        barrier.wait();
        start = Instant::now();
        barrier.wait();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    drop(black_box(map));
    let cpu = cpu
        .iter()
        .copied()
        .sum::<Option<u64>>()
        .map(|ns| Duration::from_nanos(ns / threads as u64));
    Some(Timing { wall, cpu })
}

type MixRunner = fn(&MixSetup, usize) -> Option<Timing>;

fn mix_peers() -> Vec<(&'static str, MixRunner)> {
    vec![
        (LinemapHandle::NAME, run_mix::<LinemapHandle>),
        (LinemapOneShot::NAME, run_mix::<LinemapOneShot>),
        (MutexStd::NAME, run_mix::<MutexStd>),
        (RwLockStd::NAME, run_mix::<RwLockStd>),
        (DashPeer::NAME, run_mix::<DashPeer>),
        (PapayaPeer::NAME, run_mix::<PapayaPeer>),
        (SccPeer::NAME, run_mix::<SccPeer>),
        (Hashbrown::NAME, run_mix::<Hashbrown>),
    ]
}

fn mixes(cfg: &Config) {
    let peers: Vec<_> = mix_peers()
        .into_iter()
        .filter(|(n, _)| cfg.wants_peer(n))
        .collect();
    let specs: Vec<&MixSpec> = MIXES
        .iter()
        .filter(|m| {
            cfg.mixes
                .as_ref()
                .is_none_or(|v| v.iter().any(|x| x == m.name))
        })
        .collect();
    println!(
        "conc-map-bench mixes: capacity 2^{s}, 2^{s} ops, threads {:?}, {} rep(s), handle batch {}",
        cfg.threads,
        cfg.reps,
        cfg.batch,
        s = cfg.scale
    );
    // results[(mix, threads)][peer] = (wall Mops/s, cpu-normalised Mops/s) per rep
    let cells = specs.len() * cfg.threads.len();
    let mut wall: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); peers.len()]; cells];
    let mut cpu: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); peers.len()]; cells];
    for rep in 0..cfg.reps {
        for (mi, spec) in specs.iter().enumerate() {
            for (ti, &threads) in cfg.threads.iter().enumerate() {
                let setup = MixSetup::new(spec, cfg.scale, threads);
                let total = (setup.ops_per_thread * threads) as f64;
                // Rotate the starting peer each repetition so no peer always runs first.
                for k in 0..peers.len() {
                    let pi = (k + rep) % peers.len();
                    let (name, run) = peers[pi];
                    if let Some(t) = run(&setup, cfg.batch) {
                        let mops = total / t.wall.as_secs_f64() / 1e6;
                        let cmops = t.cpu.map(|c| total / c.as_secs_f64() / 1e6);
                        println!(
                            "rep {rep} {:<9} {threads}T {name:<16} {mops:8.2} Mops/s wall ({:.3} s), \
                             {:8.2} Mops/s per on-CPU time",
                            spec.name,
                            t.wall.as_secs_f64(),
                            cmops.unwrap_or(f64::NAN),
                        );
                        let cell = mi * cfg.threads.len() + ti;
                        wall[cell][pi].push(mops);
                        if let Some(c) = cmops {
                            cpu[cell][pi].push(c);
                        }
                    }
                }
            }
        }
    }
    let names: Vec<&str> = peers.iter().map(|(n, _)| *n).collect();
    let rows: Vec<(String, usize)> = specs
        .iter()
        .flat_map(|s| cfg.threads.iter().map(move |&t| (s.name.to_string(), t)))
        .collect();
    let med = |r: &mut Vec<Vec<Vec<f64>>>| -> Vec<Vec<Option<f64>>> {
        r.iter_mut()
            .map(|row| {
                row.iter_mut()
                    .map(|v| (!v.is_empty()).then(|| median(v)))
                    .collect()
            })
            .collect()
    };
    let best = |r: &Vec<Vec<Vec<f64>>>| -> Vec<Vec<Option<f64>>> {
        r.iter()
            .map(|row| {
                row.iter()
                    .map(|v| v.iter().copied().reduce(f64::max))
                    .collect()
            })
            .collect()
    };
    let wall_best = best(&wall);
    let wall_med = med(&mut wall);
    let cpu_med = med(&mut cpu);
    let reps = cfg.reps;
    print_table(
        &format!("Wall-clock throughput (ops / wall time), median of {reps}, Mops/s"),
        &names,
        &rows,
        &wall_med,
        false,
    );
    print_table(
        "Wall-clock throughput, best repetition, Mops/s",
        &names,
        &rows,
        &wall_best,
        false,
    );
    print_table(
        &format!(
            "Throughput per on-CPU time (ops / mean thread CPU time), median of {reps}, Mops/s"
        ),
        &names,
        &rows,
        &cpu_med,
        false,
    );
    print_table(
        "linemap-handle / peer, wall-clock medians (>1: linemap faster)",
        &names,
        &rows,
        &wall_med,
        true,
    );
    print_table(
        "linemap-handle / peer, on-CPU medians (>1: linemap faster)",
        &names,
        &rows,
        &cpu_med,
        true,
    );
}

/// Prints one markdown table; with `ratio`, each cell is linemap-handle's value over the peer's.
fn print_table(
    title: &str,
    names: &[&str],
    rows: &[(String, usize)],
    cells: &[Vec<Option<f64>>],
    ratio: bool,
) {
    println!("\n### {title}\n");
    let mut header = String::from("| mix | threads |");
    let mut rule = String::from("|---|---:|");
    for n in names {
        header += &format!(" {n} |");
        rule += "---:|";
    }
    println!("{header}\n{rule}");
    let base = names.iter().position(|n| *n == LinemapHandle::NAME);
    for ((mix, t), row) in rows.iter().zip(cells) {
        let mut line = format!("| {mix} | {t} |");
        let b = base.and_then(|i| row[i]);
        for v in row {
            line += &match (v, ratio, b) {
                (Some(v), false, _) => format!(" {v:.2} |"),
                (Some(v), true, Some(b)) => format!(" {:.2}× |", b / v),
                _ => " – |".into(),
            };
        }
        println!("{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Part 2: criterion micro workloads
// ---------------------------------------------------------------------------------------------

/// Operations each thread performs per criterion iteration.
const OPS_PER_ITER: usize = 1000;

/// Runs `body(thread_index, handle)` on `threads` threads at once and returns the wall time
/// from the moment all of them are ready until the last one finishes.
fn timed_threads<P: Peer>(
    map: &P,
    threads: usize,
    batch: usize,
    body: impl Fn(usize, &mut P::Handle<'_>) + Sync,
) -> Duration {
    let barrier = Barrier::new(threads + 1);
    let mut start = Instant::now();
    let cpu: Vec<Option<u64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, body) = (&barrier, &body);
                sc.spawn(move || {
                    let mut h = map.handle(batch);
                    barrier.wait();
                    let c0 = thread_cpu_ns();
                    body(t, &mut h);
                    Some(thread_cpu_ns()? - c0?)
                })
            })
            .collect();
        barrier.wait();
        start = Instant::now();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    if cpu_clock() {
        if let Some(ns) = cpu.iter().copied().sum::<Option<u64>>() {
            return Duration::from_nanos(ns / threads as u64);
        }
    }
    wall
}

/// Shared inputs of the micro workloads.
struct Micro {
    /// 1,024 keys of the hot table.
    hot: Vec<u64>,
    /// Keys of the zipf table (rank order).
    zipf_keys: Vec<u64>,
    /// Per thread: a stream of zipf ranks, cycled.
    zipf_stream: Vec<Vec<u32>>,
    /// The keys inserted by the growth benchmark (split between the threads).
    grow: Vec<u64>,
}

const ZIPF_STREAM: usize = 1 << 16;

fn micro_inputs(cfg: &Config) -> Micro {
    let max_t = cfg.threads.iter().copied().max().unwrap_or(1);
    let zipf_n = if cfg.test_mode { 1 << 10 } else { 1 << 20 };
    let zipf = Zipf::new(zipf_n, 0.99);
    let mut rng = SplitMix(0x21bf);
    let zipf_stream = (0..max_t)
        .map(|_| {
            (0..ZIPF_STREAM)
                .map(|_| zipf.sample(&mut rng) as u32)
                .collect()
        })
        .collect();
    Micro {
        hot: random_keys(0x407, 1024),
        zipf_keys: random_keys(0x21f, zipf_n),
        zipf_stream,
        grow: random_keys(0x6709, 1usize << cfg.grow_log2),
    }
}

/// The thread counts a peer runs at.
fn peer_threads<P: Peer>(cfg: &Config) -> Vec<usize> {
    if !cfg.wants_peer(P::NAME) {
        return Vec::new();
    }
    cfg.threads
        .iter()
        .copied()
        .filter(|&t| P::CONCURRENT || t == 1)
        .collect()
}

fn filled<P: Peer>(keys: &[u64], batch: usize) -> P {
    let map = P::create(0);
    {
        let mut h = map.handle(batch);
        for &k in keys {
            h.insert(k, 1);
            h.tick();
        }
    }
    map
}

/// Hot table: 1,024 entries, uniform reads from every thread.
fn hot<P: Peer>(c: &mut Criterion, cfg: &Config, inp: &Micro) {
    let threads = peer_threads::<P>(cfg);
    if threads.is_empty() {
        return;
    }
    let batch = cfg.batch;
    let map: P = filled(&inp.hot, batch);
    let mut g = c.benchmark_group("hot1024_read");
    for &t in &threads {
        g.throughput(Throughput::Elements((t * OPS_PER_ITER) as u64));
        g.bench_function(BenchmarkId::new(P::NAME, format!("{t}T")), |b| {
            b.iter_custom(|iters| {
                timed_threads(&map, t, batch, |ti, h| {
                    let keys = &inp.hot;
                    let mut i = ti * 397;
                    for _ in 0..iters as usize * OPS_PER_ITER {
                        // Full-period LCG over 0..1024.
                        i = (i * 513 + 255) & 1023;
                        black_box(h.get(black_box(&keys[i])));
                        h.tick();
                    }
                })
            })
        });
    }
    g.finish();
}

/// Zipf(0.99) over a shared key set: all threads hammer the same hot entries. Every
/// `write_every`-th operation is an update (+1); 0 means reads only.
fn zipf<P: Peer>(c: &mut Criterion, cfg: &Config, inp: &Micro, group: &str, write_every: usize) {
    let threads = peer_threads::<P>(cfg);
    if threads.is_empty() {
        return;
    }
    let batch = cfg.batch;
    let map: P = filled(&inp.zipf_keys, batch);
    let mut g = c.benchmark_group(group);
    for &t in &threads {
        g.throughput(Throughput::Elements((t * OPS_PER_ITER) as u64));
        g.bench_function(BenchmarkId::new(P::NAME, format!("{t}T")), |b| {
            b.iter_custom(|iters| {
                timed_threads(&map, t, batch, |ti, h| {
                    let stream = &inp.zipf_stream[ti];
                    let keys = &inp.zipf_keys;
                    let mut j = 0usize;
                    for i in 0..iters as usize * OPS_PER_ITER {
                        let k = &keys[stream[j] as usize];
                        j = (j + 1) & (ZIPF_STREAM - 1);
                        if write_every != 0 && i % write_every == 0 {
                            black_box(h.update(black_box(k)));
                        } else {
                            black_box(h.get(black_box(k)));
                        }
                        h.tick();
                    }
                })
            })
        });
    }
    g.finish();
}

/// Growth from empty: insert N distinct keys into `new()`, split between the threads.
fn grow<P: Peer>(c: &mut Criterion, cfg: &Config, inp: &Micro) {
    let threads = peer_threads::<P>(cfg);
    if threads.is_empty() {
        return;
    }
    let batch = cfg.batch;
    let keys = &inp.grow;
    let mut g = c.benchmark_group(format!("grow_from_empty_2^{}", cfg.grow_log2));
    g.throughput(Throughput::Elements(keys.len() as u64));
    for &t in &threads {
        g.bench_function(BenchmarkId::new(P::NAME, format!("{t}T")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let map = P::create(0);
                    let chunk = keys.len().div_ceil(t);
                    total += timed_threads(&map, t, batch, |ti, h| {
                        for &k in keys.iter().skip(ti * chunk).take(chunk) {
                            h.insert(k, 1);
                            h.tick();
                        }
                    });
                    drop(black_box(map));
                }
                total
            })
        });
    }
    g.finish();
}

/// Calls `$f::<Peer>($args)` for every peer, in a fixed order.
macro_rules! for_each_peer {
    ($f:ident($($arg:expr),*)) => {
        $f::<LinemapHandle>($($arg),*);
        $f::<LinemapOneShot>($($arg),*);
        $f::<MutexStd>($($arg),*);
        $f::<RwLockStd>($($arg),*);
        $f::<DashPeer>($($arg),*);
        $f::<PapayaPeer>($($arg),*);
        $f::<SccPeer>($($arg),*);
        $f::<Hashbrown>($($arg),*);
    };
}

fn micro(cfg: &Config) {
    let inp = micro_inputs(cfg);
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // Workload by workload, so that the peers of one table run close together in time.
    for_each_peer!(hot(&mut c, cfg, &inp));
    for_each_peer!(zipf(&mut c, cfg, &inp, "zipf_read", 0));
    for_each_peer!(zipf(&mut c, cfg, &inp, "zipf_read50_update50", 2));
    for_each_peer!(grow(&mut c, cfg, &inp));
    c.final_summary();
}

fn main() {
    let cfg = Config::from_env();
    if matches!(cfg.part.as_str(), "all" | "mixes") {
        mixes(&cfg);
    }
    if matches!(cfg.part.as_str(), "all" | "micro") {
        micro(&cfg);
    }
}
