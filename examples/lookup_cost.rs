//! Per-get cost of linemap and its peers, meant to run under cachegrind:
//!
//! ```text
//! valgrind --tool=cachegrind --cache-sim=yes target/release/examples/lookup_cost MAP SIZE DIST GETS
//! ```
//!
//! * MAP: `loop-only` (the driver loop without a lookup: its cost is subtracted),
//!   `linemap-layout` (diagnostic: histogram of where values sit within their cache line),
//!   `linemap-pinned-handle`, `linemap-map-level-get`, `hashbrown`, `mutex`, `rwlock`,
//!   `dashmap`, `papaya-guard-reused`, `papaya-pin-per-op`, `scc`; and the literal drop-in
//!   pair with each type's default hasher: `mutex-default-hasher` (`Mutex<HashMap<u64, u64>>`,
//!   SipHash 1-3) and `linemap-map-level-get-default-hasher` (`linemap::HashMap<u64, u64>`,
//!   foldhash). Both are randomly seeded, so their N and 2N runs build different but
//!   equivalent tables.
//! * SIZE: entries in the table (e.g. 1024, 100000, 1048576, 4194304).
//! * DIST: `uniform` or `zipf` (s = 0.99 over the SIZE keys).
//! * GETS: lookups to perform, all hits.
//!
//! Setup (building the table and the zipf stream) does not depend on GETS, so running with N and
//! 2N gets and differencing cachegrind's totals leaves the cost of N gets:
//! `bench-tools/lookup_cost.sh` does that for every map. Key `i` is `mix(i)`, a bijection, so the
//! loop computes keys instead of reading them from an array (which would add its own misses).
//! Everything else is deterministic: the hasher has a fixed seed, so both runs build identical
//! tables.
use std::hint::black_box;
use std::sync::{Mutex, RwLock};

type Hasher = foldhash::fast::FixedState;
fn hasher() -> Hasher {
    Hasher::with_seed(0x5eed_1234_abcd_0042)
}

/// The key of index `i`: a bijective mix (splitmix64's finalizer), so keys look random.
#[inline(always)]
fn key_of(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Length of the precomputed zipf index stream (cycled); fixed so setup does not depend on GETS.
const ZIPF_STREAM: usize = 1 << 16;

/// Yields the index of the next key to look up.
enum Indices {
    /// xorshift64 reduced to 0..n with a multiply-high: no memory traffic.
    Uniform { state: u64, n: u64 },
    /// A precomputed stream of zipf ranks mapped to indices.
    Zipf { stream: Vec<u32>, pos: usize },
}

impl Indices {
    fn new(dist: &str, n: usize) -> Self {
        match dist {
            "uniform" => Indices::Uniform {
                state: 0x2545_f491_4f6c_dd1d,
                n: n as u64,
            },
            "zipf" => {
                let s = 0.99f64;
                let mut cdf = Vec::with_capacity(n);
                let mut sum = 0.0;
                for k in 1..=n {
                    sum += 1.0 / (k as f64).powf(s);
                    cdf.push(sum);
                }
                // Rank r is key index r: `key_of` already scatters the keys over the table.
                let mut x = 0x9e37_79b9u64;
                let stream = (0..ZIPF_STREAM)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let u = (x >> 11) as f64 / (1u64 << 53) as f64 * sum;
                        cdf.partition_point(|&c| c < u).min(n - 1) as u32
                    })
                    .collect();
                Indices::Zipf { stream, pos: 0 }
            }
            other => panic!("unknown distribution {other:?}: uniform or zipf"),
        }
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        match self {
            Indices::Uniform { state, n } => {
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                ((*state as u128 * *n as u128) >> 64) as u64
            }
            Indices::Zipf { stream, pos } => {
                let i = stream[*pos];
                *pos = (*pos + 1) & (ZIPF_STREAM - 1);
                i as u64
            }
        }
    }
}

/// The measured loop: `gets` lookups of computed keys; each must hit.
#[inline(never)]
fn run(gets: usize, idx: &mut Indices, mut get: impl FnMut(&u64) -> Option<u64>) -> u64 {
    let mut sum = 0u64;
    for _ in 0..gets {
        let k = key_of(idx.next());
        match get(black_box(&k)) {
            Some(v) => sum = sum.wrapping_add(v),
            None => panic!("miss on key {k}"),
        }
    }
    sum
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: lookup_cost MAP SIZE uniform|zipf GETS");
        std::process::exit(2);
    }
    let map = args[1].as_str();
    let size: usize = args[2].parse().expect("SIZE");
    let gets: usize = args[4].parse().expect("GETS");
    let mut idx = Indices::new(&args[3], size);
    let keys = (0..size as u64).map(key_of);

    let sum = match map {
        "loop-only" => run(gets, &mut idx, |k| Some(black_box(*k))),
        "linemap-layout" => {
            // Diagnostic, not a lookup: where linemap's values sit within their cache line.
            // A value at offset 0 of a line belongs to an entry that started in the line before.
            let m = linemap::HashMap::with_capacity_and_hasher(0, hasher());
            keys.for_each(|k| {
                m.insert(k, k);
            });
            // Iterate rather than `get`: a second call site of the lookup would change how
            // LLVM inlines it into the measured loops.
            let h = m.pin();
            let mut hist = [0usize; 8];
            for (_, v) in h.iter() {
                let v: *const u64 = v;
                hist[(v as usize % 64) / 8] += 1;
            }
            for (i, n) in hist.iter().enumerate() {
                println!(
                    "value at line offset {:2}: {:5.1}%",
                    i * 8,
                    *n as f64 * 100.0 / size as f64
                );
            }
            0
        }
        "linemap-pinned-handle" => {
            let m = linemap::HashMap::with_capacity_and_hasher(0, hasher());
            keys.for_each(|k| {
                m.insert(k, k);
            });
            let h = m.pin();
            run(gets, &mut idx, |k| h.get(k).copied())
        }
        "linemap-map-level-get" => {
            let m = linemap::HashMap::with_capacity_and_hasher(0, hasher());
            keys.for_each(|k| {
                m.insert(k, k);
            });
            run(gets, &mut idx, |k| m.get(k))
        }
        "hashbrown" => {
            let mut m = hashbrown::HashMap::with_hasher(hasher());
            m.extend(keys.map(|k| (k, k)));
            run(gets, &mut idx, |k| m.get(k).copied())
        }
        "std" => {
            let mut m = std::collections::HashMap::with_hasher(hasher());
            m.extend(keys.map(|k| (k, k)));
            run(gets, &mut idx, |k| m.get(k).copied())
        }
        "mutex" => {
            let mut m = std::collections::HashMap::with_hasher(hasher());
            m.extend(keys.map(|k| (k, k)));
            let m = Mutex::new(m);
            run(gets, &mut idx, |k| m.lock().unwrap().get(k).copied())
        }
        "mutex-default-hasher" => {
            // What a user of `Mutex<HashMap<K, V>>` has: std's default `RandomState` (SipHash
            // 1-3, randomly seeded) instead of the fixed-seed foldhash every other row uses.
            let mut m = std::collections::HashMap::new();
            m.extend(keys.map(|k| (k, k)));
            let m = Mutex::new(m);
            run(gets, &mut idx, |k| m.lock().unwrap().get(k).copied())
        }
        "linemap-map-level-get-default-hasher" => {
            // The drop-in replacement of the row above: `linemap::HashMap::new()`, whose
            // default hasher is foldhash, randomly seeded per map.
            let m = linemap::HashMap::new();
            keys.for_each(|k| {
                m.insert(k, k);
            });
            run(gets, &mut idx, |k| m.get(k))
        }
        "rwlock" => {
            let mut m = std::collections::HashMap::with_hasher(hasher());
            m.extend(keys.map(|k| (k, k)));
            let m = RwLock::new(m);
            run(gets, &mut idx, |k| m.read().unwrap().get(k).copied())
        }
        "dashmap" => {
            let m = dashmap::DashMap::with_hasher(hasher());
            keys.for_each(|k| {
                m.insert(k, k);
            });
            run(gets, &mut idx, |k| m.get(k).map(|v| *v))
        }
        "papaya-guard-reused" => {
            let m = papaya::HashMap::with_hasher(hasher());
            {
                let p = m.pin();
                keys.for_each(|k| {
                    p.insert(k, k);
                });
            }
            let p = m.pin();
            run(gets, &mut idx, |k| p.get(k).copied())
        }
        "papaya-pin-per-op" => {
            let m = papaya::HashMap::with_hasher(hasher());
            {
                let p = m.pin();
                keys.for_each(|k| {
                    p.insert(k, k);
                });
            }
            run(gets, &mut idx, |k| m.pin().get(k).copied())
        }
        "scc" => {
            let m = scc::HashMap::with_hasher(hasher());
            keys.for_each(|k| {
                let _ = m.insert_sync(k, k);
            });
            run(gets, &mut idx, |k| m.read_sync(k, |_, v| *v))
        }
        other => {
            eprintln!("unknown map {other:?}");
            std::process::exit(2);
        }
    };
    println!("{map} size={size} dist={} gets={gets} sum={sum}", args[3]);
}
