//! linemap's `Cache` against its peers (quick_cache, moka, mini-moka), all in one process with
//! the same hasher and the same key streams.
//!
//! Three parts, selected with `LINEMAP_BENCH_PART=all|zipf|micro|cost` (default `all` = zipf
//! then micro):
//!
//! * **zipf** (custom-timed, the numbers to quote): `get_or_insert_with(key, loader)` on zipf(s)
//!   keys over 1,000,000 distinct keys, at capacities of 1 % and 10 % of the key space, at 1 and
//!   2 threads. Every thread has its own pre-generated key streams (deterministic seeds, the
//!   threads share the key space and so the hot keys). Each run builds a fresh cache, warms it
//!   with one untimed pass of every thread's warm-up stream, then times every thread's timed
//!   stream (an independent draw of the same length). The loader is cheap and deterministic (`u64 -> u64`, value = key × 2) and counts
//!   its calls, so that the hit ratio of every peer is measured the same way: `1 − loader
//!   calls / operations` of the timed pass (a caller that waited for another thread's load of
//!   the same key counts as a hit, as it did not load). Every returned value is checked.
//!   These runs are too big for criterion's repeated sampling, so they are timed here: every
//!   peer runs once per repetition and configuration, interleaved, the starting peer rotating;
//!   medians are printed as tables. Throughput = total timed operations / wall time from the
//!   moment all threads are released until the last one finishes; the threads' on-CPU time is
//!   reported beside it, as in `benches/map.rs`.
//! * **micro** (criterion, `iter_custom`): the two paths separately. `hit`: 16,384 resident keys
//!   in a cache of 65,536, uniform `get_or_insert_with` (every call a hit, shared by all
//!   threads); `miss`: a full cache of 1,024 entries and keys never seen before (every call a
//!   miss: load, insert, evict).
//! * **cost** (for callgrind, not for timing): one peer at a time runs one path single-threaded
//!   in a non-inlined loop `cost_loop`, after an untimed setup, so that
//!   `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*cost_loop*'` counts only
//!   the operations; `LINEMAP_BENCH_COST=hit|miss|zipf` picks the path (zipf: the first of
//!   `LINEMAP_BENCH_ZIPF` and of `LINEMAP_BENCH_CAPS`, by default s = 0.9 at 1 %, warmed by an
//!   independent stream); `LINEMAP_BENCH_OPS` is the number of measured operations.
//!   `loop-only` is the driver loop without a cache (the loader on every key).
//!
//! Peers: `linemap` (`linemap::Cache::get_or_insert_with`), `quick_cache`
//! (`sync::Cache::get_or_insert_with` with an infallible loader; unit weights, capacity =
//! entries), `moka` (`sync::Cache::get_with`, `max_capacity` = entries), `mini-moka`
//! (`sync::Cache::get`, then `insert` on a miss: it has no loading API, so no stampede
//! protection), and, on request only, `linemap-get-insert` (`get`, then `insert`, the same
//! pattern as mini-moka: the cost of linemap's load coordination is the difference).
//!
//! Environment (all optional):
//! `LINEMAP_BENCH_THREADS=1,2` thread counts (default 1 through `available_parallelism`; 1 and 2
//! in the test mode); `LINEMAP_BENCH_ZIPF=0.9,1.1` zipf exponents;
//! `LINEMAP_BENCH_CAPS=1,10` capacities in percent of the key space; `LINEMAP_BENCH_KEYS=1000000`
//! distinct keys; `LINEMAP_BENCH_OPS=2000000` timed operations per thread (the warm-up pass is
//! as long; scale it down for a quick run); `LINEMAP_BENCH_REPS=3` repetitions of the zipf part;
//! `LINEMAP_BENCH_PEERS=linemap,quick_cache,...` run only these peers (add `linemap-get-insert`
//! to include it); `LINEMAP_BENCH_COST=zipf` the cost part's path; `LINEMAP_BENCH_CLOCK=cpu`
//! makes the criterion benchmarks report the threads' mean on-CPU time instead of wall time.
//!
//! `cargo test --benches` runs everything once at a tiny size (criterion's test mode).
use criterion::{BenchmarkId, Criterion, Throughput};
use std::cell::Cell;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

mod support;
use support::{
    cpu_clock, default_threads, env_list, env_num, env_nums, hasher, median, random_keys,
    thread_cpu_ns, Hasher, SplitMix, Zipf,
};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The loader: cheap and deterministic, so that the benchmark measures the caches.
#[inline(always)]
fn load_value(key: u64) -> u64 {
    key.wrapping_mul(2)
}

const DEFAULT_PEERS: [&str; 4] = ["linemap", "quick_cache", "moka", "mini-moka"];

struct Config {
    test_mode: bool,
    threads: Vec<usize>,
    zipf: Vec<f64>,
    caps_pct: Vec<f64>,
    keys: usize,
    ops: usize,
    reps: usize,
    peers: Vec<String>,
    cost: String,
    part: String,
}

impl Config {
    fn from_env() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let bench = args.iter().any(|a| a == "--bench");
        let test = args.iter().any(|a| a == "--test");
        let test_mode = !bench || test;
        Config {
            test_mode,
            threads: env_nums("LINEMAP_BENCH_THREADS", &default_threads(test_mode)),
            zipf: env_nums("LINEMAP_BENCH_ZIPF", &[0.9, 1.1]),
            caps_pct: env_nums("LINEMAP_BENCH_CAPS", &[1.0, 10.0]),
            keys: if test_mode {
                10_000
            } else {
                env_num("LINEMAP_BENCH_KEYS", 1_000_000)
            },
            ops: if test_mode {
                20_000
            } else {
                env_num("LINEMAP_BENCH_OPS", 2_000_000)
            },
            reps: if test_mode {
                1
            } else {
                env_num("LINEMAP_BENCH_REPS", 3)
            },
            peers: env_list("LINEMAP_BENCH_PEERS")
                .unwrap_or_else(|| DEFAULT_PEERS.iter().map(|s| s.to_string()).collect()),
            cost: std::env::var("LINEMAP_BENCH_COST").unwrap_or_else(|_| "zipf".into()),
            part: if args.iter().any(|a| a == "--list") {
                "micro".into()
            } else {
                std::env::var("LINEMAP_BENCH_PART").unwrap_or_else(|_| "all".into())
            },
        }
    }

    fn wants_peer(&self, name: &str) -> bool {
        self.peers.iter().any(|x| x == name)
    }

    fn capacity(&self, pct: f64) -> usize {
        ((self.keys as f64 * pct / 100.0).round() as usize).max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// Key streams (random numbers and the zipf sampler: `support`)
// ---------------------------------------------------------------------------------------------

/// One thread's key stream and the sum of the values it must get back.
struct Stream {
    keys: Vec<u64>,
    expected: u64,
}

/// Per thread: `ops` keys drawn from zipf(s) over `keys` (random `u64` keys in rank order, the
/// same for every thread). Thread `t`'s stream depends only on (s, key count, ops, t, pass):
/// pass 0 warms the cache, pass 1 is timed (an independent draw, so that the timed pass does
/// not replay the exact keys the warm-up left in the cache).
fn zipf_streams(s: f64, n_keys: usize, ops: usize, threads: usize, pass: u64) -> Vec<Stream> {
    let keys = random_keys(0x4b45_5953 ^ n_keys as u64, n_keys);
    let zipf = Zipf::new(n_keys, s);
    let (keys, zipf) = (&keys, &zipf);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                sc.spawn(move || {
                    let mut rng = SplitMix(
                        0x5a1f_0000 ^ (s.to_bits() << 8) ^ ((t as u64) << 40) ^ (pass << 52),
                    );
                    let keys: Vec<u64> = (0..ops).map(|_| keys[zipf.sample(&mut rng)]).collect();
                    let expected = keys
                        .iter()
                        .fold(0u64, |a, &k| a.wrapping_add(load_value(k)));
                    Stream { keys, expected }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Distinct keys in a set of streams (printed to describe them).
fn distinct(streams: &[Stream]) -> usize {
    let mut all: Vec<u64> = streams
        .iter()
        .flat_map(|s| s.keys.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

/// Exact LRU's hit ratio on `timed` after `warm` at `capacity` entries, single-threaded: the
/// reference that CLOCK approximates, printed beside the peers (not a peer: no concurrency).
fn lru_hit_ratio(warm: &[u64], timed: &[u64], capacity: usize) -> f64 {
    const NIL: u32 = u32::MAX;
    let mut index: std::collections::HashMap<u64, u32, Hasher> =
        std::collections::HashMap::with_capacity_and_hasher(capacity * 2, hasher());
    let (mut keys, mut prev, mut next) = (
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
    );
    // `head` is the most recently used position, `tail` the least.
    let (mut head, mut tail) = (NIL, NIL);
    let mut hits = 0u64;
    for (pass, stream) in [warm, timed].into_iter().enumerate() {
        for &k in stream {
            let i = match index.get(&k) {
                Some(&i) => {
                    hits += pass as u64;
                    if i == head {
                        continue;
                    }
                    // Unlink i (not the head, so it has a predecessor).
                    let (p, n) = (prev[i as usize], next[i as usize]);
                    next[p as usize] = n;
                    if n == NIL {
                        tail = p;
                    } else {
                        prev[n as usize] = p;
                    }
                    i
                }
                None if keys.len() < capacity => {
                    keys.push(k);
                    prev.push(NIL);
                    next.push(NIL);
                    let i = (keys.len() - 1) as u32;
                    index.insert(k, i);
                    if tail == NIL {
                        tail = i;
                    }
                    i
                }
                None => {
                    // Evict the tail and reuse its position.
                    let i = tail;
                    index.remove(&keys[i as usize]);
                    keys[i as usize] = k;
                    index.insert(k, i);
                    let p = prev[i as usize];
                    if p == NIL {
                        head = NIL;
                        tail = NIL;
                    } else {
                        next[p as usize] = NIL;
                        tail = p;
                    }
                    if tail == NIL {
                        tail = i;
                    }
                    i
                }
            };
            // Push i at the head.
            prev[i as usize] = NIL;
            next[i as usize] = head;
            if head != NIL {
                prev[head as usize] = i;
            }
            head = i;
        }
    }
    hits as f64 / timed.len() as f64
}

// ---------------------------------------------------------------------------------------------
// The peers behind one interface
// ---------------------------------------------------------------------------------------------

/// A cache under test, holding `u64 -> u64`.
trait Peer: Send + Sync + Sized + 'static {
    const NAME: &'static str;
    /// A cache holding at most (about) `capacity` entries.
    fn create(capacity: usize) -> Self;
    /// The value for `key`, calling `load` on a miss (and caching its value).
    fn get_or_load(&self, key: u64, load: impl FnOnce() -> u64) -> u64;
    /// Entries held now (for the report's sanity line).
    fn entries(&self) -> usize;
}

struct Linemap(linemap::Cache<u64, u64, Hasher>);

impl Peer for Linemap {
    const NAME: &'static str = "linemap";
    fn create(capacity: usize) -> Self {
        Linemap(linemap::Cache::builder(capacity).hasher(hasher()).build())
    }
    #[inline(always)]
    fn get_or_load(&self, key: u64, load: impl FnOnce() -> u64) -> u64 {
        self.0.get_or_insert_with(key, load)
    }
    fn entries(&self) -> usize {
        self.0.len()
    }
}

/// linemap through `get` then `insert` (no load coordination), for comparison only.
struct LinemapGetInsert(linemap::Cache<u64, u64, Hasher>);

impl Peer for LinemapGetInsert {
    const NAME: &'static str = "linemap-get-insert";
    fn create(capacity: usize) -> Self {
        LinemapGetInsert(linemap::Cache::builder(capacity).hasher(hasher()).build())
    }
    #[inline(always)]
    fn get_or_load(&self, key: u64, load: impl FnOnce() -> u64) -> u64 {
        match self.0.get(&key) {
            Some(v) => v,
            None => {
                let v = load();
                self.0.insert(key, v);
                v
            }
        }
    }
    fn entries(&self) -> usize {
        self.0.len()
    }
}

type Quick = quick_cache::sync::Cache<
    u64,
    u64,
    quick_cache::UnitWeighter,
    Hasher,
    quick_cache::sync::DefaultLifecycle<u64, u64>,
>;

struct QuickCache(Quick);

impl Peer for QuickCache {
    const NAME: &'static str = "quick_cache";
    fn create(capacity: usize) -> Self {
        QuickCache(Quick::with(
            capacity,
            capacity as u64,
            quick_cache::UnitWeighter,
            hasher(),
            Default::default(),
        ))
    }
    #[inline(always)]
    fn get_or_load(&self, key: u64, load: impl FnOnce() -> u64) -> u64 {
        match self
            .0
            .get_or_insert_with(&key, || Ok::<u64, Infallible>(load()))
        {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }
    fn entries(&self) -> usize {
        self.0.len()
    }
}

struct Moka(moka::sync::Cache<u64, u64, Hasher>);

impl Peer for Moka {
    const NAME: &'static str = "moka";
    fn create(capacity: usize) -> Self {
        Moka(
            moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(hasher()),
        )
    }
    #[inline(always)]
    fn get_or_load(&self, key: u64, load: impl FnOnce() -> u64) -> u64 {
        self.0.get_with(key, load)
    }
    fn entries(&self) -> usize {
        self.0.run_pending_tasks();
        self.0.entry_count() as usize
    }
}

struct MiniMoka(mini_moka::sync::Cache<u64, u64, Hasher>);

impl Peer for MiniMoka {
    const NAME: &'static str = "mini-moka";
    fn create(capacity: usize) -> Self {
        MiniMoka(
            mini_moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(hasher()),
        )
    }
    #[inline(always)]
    fn get_or_load(&self, key: u64, load: impl FnOnce() -> u64) -> u64 {
        match self.0.get(&key) {
            Some(v) => v,
            None => {
                let v = load();
                self.0.insert(key, v);
                v
            }
        }
    }
    fn entries(&self) -> usize {
        mini_moka::sync::ConcurrentCacheExt::sync(&self.0);
        self.0.entry_count() as usize
    }
}

/// No cache: the driver loop and the loader alone (the cost part's baseline).
struct LoopOnly;

impl Peer for LoopOnly {
    const NAME: &'static str = "loop-only";
    fn create(_capacity: usize) -> Self {
        LoopOnly
    }
    #[inline(always)]
    fn get_or_load(&self, _key: u64, load: impl FnOnce() -> u64) -> u64 {
        load()
    }
    fn entries(&self) -> usize {
        0
    }
}

/// Calls `$f::<Peer>($args)` for every peer (the ones not asked for return at once).
macro_rules! for_each_peer {
    ($f:ident($($arg:expr),*)) => {
        $f::<Linemap>($($arg),*);
        $f::<QuickCache>($($arg),*);
        $f::<Moka>($($arg),*);
        $f::<MiniMoka>($($arg),*);
        $f::<LinemapGetInsert>($($arg),*);
    };
}

// ---------------------------------------------------------------------------------------------
// The driver loop
// ---------------------------------------------------------------------------------------------

/// Runs `get_or_load` over `keys`; returns (sum of the values, loader calls).
#[inline(always)]
fn run_stream<P: Peer>(cache: &P, keys: &[u64]) -> (u64, u64) {
    let loads = Cell::new(0u64);
    let mut sum = 0u64;
    for &k in keys {
        let v = cache.get_or_load(black_box(k), || {
            loads.set(loads.get() + 1);
            load_value(k)
        });
        sum = sum.wrapping_add(black_box(v));
    }
    (sum, loads.get())
}

/// Results of one timed pass.
#[derive(Clone, Copy)]
struct Run {
    wall: Duration,
    /// Mean on-CPU time of the threads.
    cpu: Option<Duration>,
    ops: u64,
    loads: u64,
    entries: usize,
}

/// Builds the cache, warms it with one pass of every thread's warm-up stream (in parallel,
/// untimed), then times a pass of every thread's timed stream.
fn run_zipf<P: Peer>(warm: &[Stream], streams: &[Stream], capacity: usize) -> Run {
    let threads = streams.len();
    assert_eq!(warm.len(), threads);
    let cache = P::create(capacity);
    let barrier = Barrier::new(threads + 1);
    let mut start = Instant::now();
    let per_thread: Vec<(Option<u64>, u64)> = std::thread::scope(|sc| {
        let hs: Vec<_> = streams
            .iter()
            .zip(warm)
            .map(|(s, w)| {
                let (cache, barrier) = (&cache, &barrier);
                sc.spawn(move || {
                    let (sum, _) = run_stream(cache, &w.keys);
                    assert_eq!(sum, w.expected, "{}: wrong values (warm-up)", P::NAME);
                    barrier.wait(); // warm-up done
                    barrier.wait(); // clock started
                    let c0 = thread_cpu_ns();
                    let (sum, loads) = run_stream(cache, &s.keys);
                    let cpu = thread_cpu_ns().zip(c0).map(|(b, a)| b - a);
                    assert_eq!(sum, s.expected, "{}: wrong values", P::NAME);
                    (cpu, loads)
                })
            })
            .collect();
        barrier.wait();
        start = Instant::now();
        barrier.wait();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    let cpu = per_thread
        .iter()
        .map(|r| r.0)
        .sum::<Option<u64>>()
        .map(|ns| Duration::from_nanos(ns / threads as u64));
    let entries = cache.entries();
    drop(black_box(cache));
    Run {
        wall,
        cpu,
        ops: streams.iter().map(|s| s.keys.len() as u64).sum(),
        loads: per_thread.iter().map(|r| r.1).sum(),
        entries,
    }
}

type ZipfRunner = fn(&[Stream], &[Stream], usize) -> Run;

fn zipf_peers(cfg: &Config) -> Vec<(&'static str, ZipfRunner)> {
    let all: [(&'static str, ZipfRunner); 5] = [
        (Linemap::NAME, run_zipf::<Linemap>),
        (QuickCache::NAME, run_zipf::<QuickCache>),
        (Moka::NAME, run_zipf::<Moka>),
        (MiniMoka::NAME, run_zipf::<MiniMoka>),
        (LinemapGetInsert::NAME, run_zipf::<LinemapGetInsert>),
    ];
    all.into_iter().filter(|(n, _)| cfg.wants_peer(n)).collect()
}

/// One row of the zipf tables.
struct Row {
    s: f64,
    pct: f64,
    capacity: usize,
    threads: usize,
}

fn zipf_part(cfg: &Config) {
    let peers = zipf_peers(cfg);
    if peers.is_empty() {
        return;
    }
    let names: Vec<&str> = peers.iter().map(|p| p.0).collect();
    let max_t = cfg.threads.iter().copied().max().unwrap_or(1);
    println!(
        "zipf get_or_insert_with: {} keys, s {:?}, capacities {:?} % , threads {:?}, {} timed ops \
         per thread after a warm-up pass of as many (independent draw), {} rep(s), peers {:?}",
        cfg.keys, cfg.zipf, cfg.caps_pct, cfg.threads, cfg.ops, cfg.reps, names
    );
    // The streams of the most threads; a run at t threads uses the first t of them.
    let streams: Vec<(Vec<Stream>, Vec<Stream>)> = cfg
        .zipf
        .iter()
        .map(|&s| {
            let warm = zipf_streams(s, cfg.keys, cfg.ops, max_t, 0);
            let timed = zipf_streams(s, cfg.keys, cfg.ops, max_t, 1);
            println!(
                "  s = {s}: {} distinct keys in the {max_t} timed stream(s) of {} ops",
                distinct(&timed),
                cfg.ops
            );
            (warm, timed)
        })
        .collect();
    let mut rows = Vec::new();
    for &s in &cfg.zipf {
        for &pct in &cfg.caps_pct {
            for &threads in &cfg.threads {
                rows.push(Row {
                    s,
                    pct,
                    capacity: cfg.capacity(pct),
                    threads,
                });
            }
        }
    }
    // Exact LRU on thread 0's streams, per (s, capacity): the policy reference.
    let lru: Vec<f64> = rows
        .iter()
        .map(|r| {
            let si = cfg.zipf.iter().position(|&s| s == r.s).unwrap();
            let (w, t) = (&streams[si].0[0], &streams[si].1[0]);
            lru_hit_ratio(&w.keys, &t.keys, r.capacity)
        })
        .collect();
    // [row][peer] -> per-rep values
    let mut wall = vec![vec![Vec::new(); peers.len()]; rows.len()];
    let mut cpu = vec![vec![Vec::new(); peers.len()]; rows.len()];
    let mut hit = vec![vec![Vec::new(); peers.len()]; rows.len()];
    for rep in 0..cfg.reps {
        for (ri, row) in rows.iter().enumerate() {
            let si = cfg.zipf.iter().position(|&s| s == row.s).unwrap();
            let (warm, timed) = (&streams[si].0[..row.threads], &streams[si].1[..row.threads]);
            // Rotate the starting peer each repetition so no peer always runs first.
            for k in 0..peers.len() {
                let pi = (k + rep + ri) % peers.len();
                let (name, run) = peers[pi];
                let r = run(warm, timed, row.capacity);
                let mops = r.ops as f64 / r.wall.as_secs_f64() / 1e6;
                let cmops = r.cpu.map(|c| r.ops as f64 / c.as_secs_f64() / 1e6);
                let h = 1.0 - r.loads as f64 / r.ops as f64;
                println!(
                    "rep {rep} s={} cap={} ({}%) {}T {name:<18} {mops:8.3} Mops/s wall ({:.3} s), \
                     {:8.3} Mops/s per on-CPU time, hit {:6.2} %, {} entries after",
                    row.s,
                    row.capacity,
                    row.pct,
                    row.threads,
                    r.wall.as_secs_f64(),
                    cmops.unwrap_or(f64::NAN),
                    h * 100.0,
                    r.entries,
                );
                wall[ri][pi].push(mops);
                if let Some(c) = cmops {
                    cpu[ri][pi].push(c);
                }
                hit[ri][pi].push(h);
            }
        }
    }
    let med = |r: &mut Vec<Vec<Vec<f64>>>| -> Vec<Vec<Option<f64>>> {
        r.iter_mut()
            .map(|row| {
                row.iter_mut()
                    .map(|v| (!v.is_empty()).then(|| median(v)))
                    .collect()
            })
            .collect()
    };
    let spread = |r: &Vec<Vec<Vec<f64>>>| -> Vec<Vec<Option<(f64, f64)>>> {
        r.iter()
            .map(|row| {
                row.iter()
                    .map(|v| {
                        let lo = v.iter().copied().reduce(f64::min)?;
                        let hi = v.iter().copied().reduce(f64::max)?;
                        Some((lo, hi))
                    })
                    .collect()
            })
            .collect()
    };
    let wall_spread = spread(&wall);
    let wall_med = med(&mut wall);
    let cpu_med = med(&mut cpu);
    let hit_med = med(&mut hit);
    let reps = cfg.reps;
    print_side_by_side(
        &format!(
            "Throughput (ops / wall time, median of {reps}, Mops/s) and hit ratio (median, %)"
        ),
        &names,
        &rows,
        &wall_med,
        &hit_med,
        &lru,
    );
    print_side_by_side(
        &format!("Throughput per on-CPU time (median of {reps}, Mops/s) and hit ratio (%)"),
        &names,
        &rows,
        &cpu_med,
        &hit_med,
        &lru,
    );
    print_spread(&names, &rows, &wall_spread);
    print_ratios(
        "linemap / peer, wall-clock medians (throughput ×; hit ratio difference in points)",
        &names,
        &rows,
        &wall_med,
        &hit_med,
    );
    print_ratios(
        "linemap / peer, on-CPU medians (throughput ×; hit ratio difference in points)",
        &names,
        &rows,
        &cpu_med,
        &hit_med,
    );
    print_targets(&names, &rows, &wall_med, &cpu_med, &hit_med);
}

fn row_label(r: &Row) -> String {
    format!("| {} | {} % ({}) | {} |", r.s, r.pct, r.capacity, r.threads)
}

fn print_side_by_side(
    title: &str,
    names: &[&str],
    rows: &[Row],
    tput: &[Vec<Option<f64>>],
    hit: &[Vec<Option<f64>>],
    lru: &[f64],
) {
    println!("\n### {title}\n");
    let mut header = String::from("| s | capacity | threads |");
    let mut rule = String::from("|---:|---:|---:|");
    for n in names {
        header += &format!(" {n} Mops/s | {n} hit % |");
        rule += "---:|---:|";
    }
    header += " exact LRU hit % (1T streams) |";
    rule += "---:|";
    println!("{header}\n{rule}");
    for (ri, r) in rows.iter().enumerate() {
        let mut line = row_label(r);
        for pi in 0..names.len() {
            line += &match tput[ri][pi] {
                Some(v) => format!(" {v:.2} |"),
                None => " – |".into(),
            };
            line += &match hit[ri][pi] {
                Some(v) => format!(" {:.2} |", v * 100.0),
                None => " – |".into(),
            };
        }
        line += &format!(" {:.2} |", lru[ri] * 100.0);
        println!("{line}");
    }
}

fn print_spread(names: &[&str], rows: &[Row], spread: &[Vec<Option<(f64, f64)>>]) {
    println!("\n### Wall-clock throughput, min–max over the repetitions, Mops/s\n");
    let mut header = String::from("| s | capacity | threads |");
    let mut rule = String::from("|---:|---:|---:|");
    for n in names {
        header += &format!(" {n} |");
        rule += "---:|";
    }
    println!("{header}\n{rule}");
    for (ri, r) in rows.iter().enumerate() {
        let mut line = row_label(r);
        for v in &spread[ri] {
            line += &match v {
                Some((lo, hi)) => format!(" {lo:.2}–{hi:.2} |"),
                None => " – |".into(),
            };
        }
        println!("{line}");
    }
}

fn print_ratios(
    title: &str,
    names: &[&str],
    rows: &[Row],
    tput: &[Vec<Option<f64>>],
    hit: &[Vec<Option<f64>>],
) {
    let Some(base) = names.iter().position(|n| *n == Linemap::NAME) else {
        return;
    };
    println!("\n### {title}\n");
    let mut header = String::from("| s | capacity | threads |");
    let mut rule = String::from("|---:|---:|---:|");
    for n in names.iter().filter(|n| **n != Linemap::NAME) {
        header += &format!(" vs {n} | hit Δ |");
        rule += "---:|---:|";
    }
    println!("{header}\n{rule}");
    for (ri, r) in rows.iter().enumerate() {
        let mut line = row_label(r);
        for pi in (0..names.len()).filter(|&p| p != base) {
            line += &match (tput[ri][base], tput[ri][pi]) {
                (Some(b), Some(v)) => format!(" {:.2}× |", b / v),
                _ => " – |".into(),
            };
            line += &match (hit[ri][base], hit[ri][pi]) {
                (Some(b), Some(v)) => format!(" {:+.2} |", (b - v) * 100.0),
                _ => " – |".into(),
            };
        }
        println!("{line}");
    }
}

/// The targets, per configuration: more throughput than quick_cache at an equal or
/// better hit ratio, and at least 5× moka's throughput.
fn print_targets(
    names: &[&str],
    rows: &[Row],
    wall: &[Vec<Option<f64>>],
    cpu: &[Vec<Option<f64>>],
    hit: &[Vec<Option<f64>>],
) {
    let idx = |n: &str| names.iter().position(|x| *x == n);
    let (Some(l), q, m) = (idx(Linemap::NAME), idx(QuickCache::NAME), idx(Moka::NAME)) else {
        return;
    };
    println!("\n### Targets (wall-clock medians; on-CPU in parentheses)\n");
    println!(
        "| s | capacity | threads | linemap / quick_cache | hit linemap − quick_cache (points) | \
         > quick_cache at ≥ hit? | linemap / moka | ≥ 5× moka? |"
    );
    println!("|---:|---:|---:|---:|---:|---|---:|---|");
    let yes = |b: bool| if b { "yes" } else { "**no**" };
    for (ri, r) in rows.iter().enumerate() {
        let mut line = row_label(r);
        let ratio = |p: Option<usize>, t: &[Vec<Option<f64>>]| -> Option<f64> {
            Some(t[ri][l]? / t[ri][p?]?)
        };
        match (
            ratio(q, wall),
            ratio(q, cpu),
            q.and_then(|q| Some(hit[ri][l]? - hit[ri][q]?)),
        ) {
            (Some(w), c, Some(dh)) => {
                line += &format!(
                    " {w:.2}× ({}) | {:+.2} | {} |",
                    c.map_or("–".into(), |c| format!("{c:.2}×")),
                    dh * 100.0,
                    // Hit ratios within 0.05 points count as equal (thread timing moves them).
                    yes(w > 1.0 && dh >= -0.0005)
                )
            }
            _ => line += " – | – | – |",
        }
        match (ratio(m, wall), ratio(m, cpu)) {
            (Some(w), c) => {
                line += &format!(
                    " {w:.2}× ({}) | {} |",
                    c.map_or("–".into(), |c| format!("{c:.2}×")),
                    yes(w >= 5.0)
                )
            }
            _ => line += " – | – |",
        }
        println!("{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Part 2: criterion micro workloads (hit path, miss path)
// ---------------------------------------------------------------------------------------------

/// Operations each thread performs per criterion iteration.
const OPS_PER_ITER: usize = 1000;
/// Resident keys of the hit workload, and its cache's capacity.
const HIT_KEYS: usize = 1 << 14;
const HIT_CAPACITY: usize = 1 << 16;
/// Capacity of the miss workload's cache.
const MISS_CAPACITY: usize = 1 << 10;

/// Runs `body(thread_index)` on `threads` threads at once and returns the wall time from the
/// moment all of them are ready until the last one finishes (or, with
/// `LINEMAP_BENCH_CLOCK=cpu`, their mean on-CPU time).
fn timed_threads(threads: usize, body: impl Fn(usize) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    let mut start = Instant::now();
    let cpu: Vec<Option<u64>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, body) = (&barrier, &body);
                sc.spawn(move || {
                    barrier.wait();
                    let c0 = thread_cpu_ns();
                    body(t);
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

/// Every call a hit: 16,384 resident keys, uniform, all threads on the same keys.
fn hit<P: Peer>(c: &mut Criterion, cfg: &Config, keys: &[u64]) {
    if !cfg.wants_peer(P::NAME) {
        return;
    }
    let cache = P::create(HIT_CAPACITY);
    for &k in keys {
        cache.get_or_load(k, || load_value(k));
    }
    let mut g = c.benchmark_group("hit");
    for &t in &cfg.threads {
        g.throughput(Throughput::Elements((t * OPS_PER_ITER) as u64));
        g.bench_function(BenchmarkId::new(P::NAME, format!("{t}T")), |b| {
            b.iter_custom(|iters| {
                timed_threads(t, |ti| {
                    let mask = keys.len() - 1;
                    let mut i = ti * 4099;
                    for _ in 0..iters as usize * OPS_PER_ITER {
                        // Full-period LCG over the keys.
                        i = (i.wrapping_mul(4 * 1021 + 1).wrapping_add(2 * 777 + 1)) & mask;
                        let k = keys[i];
                        black_box(cache.get_or_load(black_box(k), || load_value(k)));
                    }
                })
            })
        });
    }
    g.finish();
}

/// Every call a miss: keys never seen before into a full cache (load, insert, evict).
fn miss<P: Peer>(c: &mut Criterion, cfg: &Config, _keys: &[u64]) {
    if !cfg.wants_peer(P::NAME) {
        return;
    }
    let cache = P::create(MISS_CAPACITY);
    let next: Vec<std::sync::atomic::AtomicU64> =
        (0..cfg.threads.iter().max().copied().unwrap_or(1))
            .map(|t| std::sync::atomic::AtomicU64::new((t as u64 + 1) << 48))
            .collect();
    let mut g = c.benchmark_group("miss");
    for &t in &cfg.threads {
        g.throughput(Throughput::Elements((t * OPS_PER_ITER) as u64));
        g.bench_function(BenchmarkId::new(P::NAME, format!("{t}T")), |b| {
            b.iter_custom(|iters| {
                timed_threads(t, |ti| {
                    let n = (iters as usize * OPS_PER_ITER) as u64;
                    // Relaxed: each thread owns its counter; it only carries on between runs.
                    let first = next[ti].fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    for j in 0..n {
                        // Spread the sequence over the key space (a bijection).
                        let k = (first + j).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        black_box(cache.get_or_load(black_box(k), || load_value(k)));
                    }
                })
            })
        });
    }
    g.finish();
}

fn micro(cfg: &Config) {
    let keys = random_keys(0x4817, HIT_KEYS);
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // Workload by workload, so that the peers of one table run close together in time.
    for_each_peer!(hit(&mut c, cfg, &keys));
    for_each_peer!(miss(&mut c, cfg, &keys));
    c.final_summary();
}

// ---------------------------------------------------------------------------------------------
// Part 3: instruction counts (run under callgrind)
// ---------------------------------------------------------------------------------------------

/// The measured loop of the cost part; callgrind collects only inside it.
#[inline(never)]
fn cost_loop<P: Peer>(cache: &P, keys: &[u64]) -> (u64, u64) {
    run_stream(cache, keys)
}

fn cost_one<P: Peer>(cfg: &Config) {
    if !cfg.wants_peer(P::NAME) && P::NAME != LoopOnly::NAME {
        return;
    }
    let n = cfg.ops;
    let (cache, keys): (P, Vec<u64>) = match cfg.cost.as_str() {
        "hit" => {
            let resident = random_keys(0x4817, HIT_KEYS);
            let cache = P::create(HIT_CAPACITY);
            run_stream(&cache, &resident);
            let mut rng = SplitMix(0x1717);
            let keys = (0..n).map(|_| resident[rng.below(HIT_KEYS)]).collect();
            (cache, keys)
        }
        "miss" => {
            let cache = P::create(MISS_CAPACITY);
            // Fill the cache first, so that the measured misses evict.
            run_stream(&cache, &random_keys(0x3131, 4 * MISS_CAPACITY));
            (cache, random_keys(0x5151, n))
        }
        "zipf" => {
            // The first exponent and capacity asked for (0.9 and 1 % by default).
            let (s, pct) = (cfg.zipf[0], cfg.caps_pct[0]);
            let cache = P::create(cfg.capacity(pct));
            let warm = zipf_streams(s, cfg.keys, n, 1, 0).pop().unwrap();
            run_stream(&cache, &warm.keys);
            let st = zipf_streams(s, cfg.keys, n, 1, 1).pop().unwrap();
            (cache, st.keys)
        }
        other => panic!("LINEMAP_BENCH_COST={other}: hit, miss or zipf"),
    };
    let (sum, loads) = cost_loop(&cache, &keys);
    black_box(sum);
    println!(
        "cost {} {}: {n} ops, {loads} loads (hit {:.2} %)",
        cfg.cost,
        P::NAME,
        100.0 * (1.0 - loads as f64 / n as f64)
    );
}

fn cost(cfg: &Config) {
    cost_one::<LoopOnly>(cfg);
    for_each_peer!(cost_one(cfg));
}

fn main() {
    let cfg = Config::from_env();
    if matches!(cfg.part.as_str(), "all" | "zipf") {
        zipf_part(&cfg);
    }
    if matches!(cfg.part.as_str(), "all" | "micro") {
        micro(&cfg);
    }
    if cfg.part == "cost" || (cfg.test_mode && cfg.part == "all") {
        cost(&cfg);
    }
}
