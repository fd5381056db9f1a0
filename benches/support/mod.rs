//! What both benchmark binaries (`benches/map.rs`, `benches/cache.rs`) share: the fixed
//! hasher, the `LINEMAP_BENCH_*` environment knobs, the on-CPU clock, the key generator and the
//! zipf sampler. Included by each with `mod support;`; each uses a part of it.
#![allow(dead_code)]

/// The one hasher every peer uses, so that hashing costs the same everywhere (linemap's,
/// hashbrown's and quick_cache's defaults are foldhash too; moka's and mini-moka's default is
/// SipHash).
pub(crate) type Hasher = foldhash::fast::FixedState;

pub(crate) const HASH_SEED: u64 = 0x5eed_1234_abcd_0042;

pub(crate) fn hasher() -> Hasher {
    Hasher::with_seed(HASH_SEED)
}

pub(crate) fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name).ok().map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    })
}

pub(crate) fn env_nums<T: std::str::FromStr + Clone>(name: &str, default: &[T]) -> Vec<T> {
    env_list(name)
        .map(|v| {
            v.iter()
                .map(|x| {
                    x.parse()
                        .unwrap_or_else(|_| panic!("{name}: {x:?} is not a number"))
                })
                .collect()
        })
        .unwrap_or_else(|| default.to_vec())
}

/// Thread counts when `LINEMAP_BENCH_THREADS` is not set: 1 through the machine's parallelism
/// (`std::thread::available_parallelism`), or 1 and 2 in the quick test mode.
pub(crate) fn default_threads(test_mode: bool) -> Vec<usize> {
    if test_mode {
        return vec![1, 2];
    }
    let n = std::thread::available_parallelism().map_or(2, |n| n.get());
    (1..=n).collect()
}

pub(crate) fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(s) => s
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s:?} is not a number")),
        Err(_) => default,
    }
}

/// Nanoseconds this thread has spent on a CPU (`CLOCK_THREAD_CPUTIME_ID`); `None` elsewhere.
///
/// On a shared, oversubscribed machine wall time includes the time other processes held the
/// cores; on-CPU time does not, so it is reported beside wall time.
#[cfg(target_os = "linux")]
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    if !cfg!(target_pointer_width = "64") {
        return None;
    }
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: glibc's and musl's clock_gettime on 64-bit Linux take a clockid_t (i32) and a
    // pointer to a struct timespec of two 64-bit fields, which `Timespec` mirrors.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Which clock the criterion benchmarks report: `wall` (default) or `cpu` (the threads' mean
/// on-CPU time, from `LINEMAP_BENCH_CLOCK=cpu`).
pub(crate) fn cpu_clock() -> bool {
    static CPU: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CPU.get_or_init(|| std::env::var("LINEMAP_BENCH_CLOCK").is_ok_and(|v| v == "cpu"))
}

/// SplitMix64: small, fast, full-period; good enough to generate keys and shuffles.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

pub(crate) fn random_keys(seed: u64, n: usize) -> Vec<u64> {
    let mut rng = SplitMix(seed);
    (0..n).map(|_| rng.next()).collect()
}

/// Zipf(s) over ranks `0..n` by inverting a precomputed CDF (rank 0 is the most popular):
/// exact for any `s`, 8 bytes per rank, one binary search per sample.
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    pub(crate) fn sample(&self, rng: &mut SplitMix) -> usize {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
