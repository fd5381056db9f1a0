//! Zipf request streams, identical to the zipf part of `benches/cache.rs`
//! (thread 0's streams): 1,000,000 random `u64` keys ranked by popularity,
//! zipf(s) ranks drawn by inverting a precomputed CDF with a binary search,
//! SplitMix64 random numbers with the benchmark's seeds. The warm-up stream
//! (pass 0) and the measured stream (pass 1) are independent draws.

/// SplitMix64 (the benchmark's generator).
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::hash::mix64(self.0)
    }
}

/// Zipf(s) over ranks `0..n` (rank 0 the most popular): `P(rank k) ∝ 1 / (k + 1)^s`.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Precomputes the CDF of zipf(`s`) over `n` ranks.
    pub fn new(n: usize, s: f64) -> Self {
        assert!(n > 0);
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

    /// Probability of rank `k`.
    pub fn pmf(&self, k: usize) -> f64 {
        if k == 0 {
            self.cdf[0]
        } else {
            self.cdf[k] - self.cdf[k - 1]
        }
    }

    /// Draws a rank: the first whose CDF is at least a uniform `u` in [0, 1).
    #[inline]
    pub fn sample(&self, rng: &mut SplitMix) -> usize {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// The benchmark's key space: `n` random `u64` keys in rank order.
pub fn bench_keys(n: usize) -> Vec<u64> {
    let mut rng = SplitMix(0x4b45_5953 ^ n as u64);
    (0..n).map(|_| rng.next_u64()).collect()
}

/// Thread `t`'s stream of pass `pass` (0 = warm-up, 1 = timed) in
/// `benches/cache.rs`: `ops` keys drawn from zipf(`s`) over [`bench_keys`]`(n)`.
pub fn bench_stream(s: f64, n: usize, ops: usize, t: u64, pass: u64) -> Vec<u64> {
    let keys = bench_keys(n);
    let zipf = Zipf::new(n, s);
    let mut rng = SplitMix(0x5a1f_0000 ^ (s.to_bits() << 8) ^ (t << 40) ^ (pass << 52));
    (0..ops).map(|_| keys[zipf.sample(&mut rng)]).collect()
}

/// One zipf workload: the warm-up stream followed by the measured stream
/// (hit ratios are counted on the requests from index `measured_from`).
pub struct Workload {
    /// Zipf exponent.
    pub s: f64,
    /// Distinct keys in the key space.
    pub keys: usize,
    /// Warm-up then measured requests.
    pub requests: Vec<u64>,
    /// Index of the first measured request.
    pub measured_from: usize,
}

impl Workload {
    /// The benchmark's workload: thread 0's warm-up (pass 0) then timed
    /// (pass 1) stream, `ops` requests each.
    pub fn bench(s: f64, keys: usize, ops: usize) -> Self {
        Self::bench_thread(s, keys, ops, 0)
    }

    /// Like [`Workload::bench`] with thread `t`'s streams (another sample of
    /// the same law, for checking how much a comparison depends on the draw).
    pub fn bench_thread(s: f64, keys: usize, ops: usize, t: u64) -> Self {
        let mut requests = bench_stream(s, keys, ops, t, 0);
        requests.extend(bench_stream(s, keys, ops, t, 1));
        Workload {
            s,
            keys,
            requests,
            measured_from: ops,
        }
    }

    /// Measured requests.
    pub fn measured(&self) -> usize {
        self.requests.len() - self.measured_from
    }

    /// Hits of `policy` on the measured requests (the warm-up is replayed
    /// first through the same policy).
    pub fn hits(&self, policy: &mut impl crate::Policy) -> u64 {
        for &k in &self.requests[..self.measured_from] {
            policy.access(k);
        }
        crate::hits(policy, &self.requests[self.measured_from..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_frequencies_follow_the_law() {
        // 1,000 ranks, s = 0.9 and 1.1, 400,000 draws: the counts of the 20
        // most popular ranks, and of every block of 100 ranks, are within 5
        // standard deviations of n * p (binomial).
        for s in [0.9, 1.1] {
            let z = Zipf::new(1_000, s);
            let mut rng = SplitMix(42);
            let n = 400_000usize;
            let mut count = vec![0u64; 1_000];
            for _ in 0..n {
                count[z.sample(&mut rng)] += 1;
            }
            let check = |obs: u64, p: f64, what: &str| {
                let mean = n as f64 * p;
                let sd = (n as f64 * p * (1.0 - p)).sqrt();
                assert!(
                    (obs as f64 - mean).abs() <= 5.0 * sd,
                    "s {s} {what}: {obs} draws, expected {mean:.0} ± {sd:.0}"
                );
            };
            for (k, &c) in count.iter().enumerate().take(20) {
                check(c, z.pmf(k), &format!("rank {k}"));
            }
            for b in 0..10 {
                let obs = count[b * 100..(b + 1) * 100].iter().sum();
                let p: f64 = (b * 100..(b + 1) * 100).map(|k| z.pmf(k)).sum();
                check(obs, p, &format!("ranks {}..{}", b * 100, (b + 1) * 100));
            }
            // The law itself: p(k) / p(0) = (k + 1)^-s.
            for k in [1usize, 9, 99, 999] {
                let r = z.pmf(k) / z.pmf(0);
                assert!((r - ((k + 1) as f64).powf(-s)).abs() < 1e-9 * r.max(1.0));
            }
        }
    }

    #[test]
    fn streams_are_deterministic_and_independent() {
        let a = bench_stream(0.9, 10_000, 1_000, 0, 0);
        assert_eq!(a, bench_stream(0.9, 10_000, 1_000, 0, 0));
        let b = bench_stream(0.9, 10_000, 1_000, 0, 1);
        assert_ne!(a, b);
        let keys = bench_keys(10_000);
        assert!(a.iter().all(|k| keys.contains(k)));
        let w = Workload::bench(1.1, 10_000, 1_000);
        assert_eq!(w.requests.len(), 2_000);
        assert_eq!(w.measured(), 1_000);
        assert_eq!(
            &w.requests[1_000..],
            &bench_stream(1.1, 10_000, 1_000, 0, 1)[..]
        );
    }
}
