//! Zipf-distributed keys: rank `k` (1-based) of `n` is drawn with probability proportional to
//! `1 / k^s`. Ranks are mapped to user ids by a fixed permutation, so the popular users are
//! spread over the id range (and over the database file) rather than being ids 1, 2, 3.

/// A Zipf sampler over `1..=n` (precomputed cumulative distribution, binary search).
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
    n: u64,
}

impl Zipf {
    /// A sampler over `1..=n` with exponent `s` (`s` = 0 is uniform; about 1 is typical of
    /// web traffic).
    pub fn new(n: u64, s: f64) -> Zipf {
        let n = n.max(1);
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Zipf { cdf, n }
    }

    /// The rank (1 = most popular) for a uniform `u` in `[0, 1)`.
    pub fn rank(&self, u: f64) -> u64 {
        (self.cdf.partition_point(|&c| c < u) as u64 + 1).min(self.n)
    }

    /// The user id of rank `rank`: a fixed permutation of `1..=n`.
    pub fn id_of_rank(&self, rank: u64) -> u64 {
        // Multiplication by an odd constant modulo a power of two is a bijection; walk it
        // until it lands in range (cycle-walking keeps it a permutation of 1..=n).
        let bits = 64 - (self.n - 1).max(1).leading_zeros();
        let mask = (1u64 << bits) - 1;
        let mut x = rank - 1;
        loop {
            // Each step is a bijection on `bits`-bit values: odd multiply, xorshift, odd multiply.
            x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask;
            x ^= x >> (bits / 2).max(1);
            x = x.wrapping_mul(0x2545_F491_4F6C_DD1D) & mask;
            if x < self.n {
                return x + 1;
            }
        }
    }

    /// A user id for a uniform `u` in `[0, 1)`.
    pub fn sample(&self, u: f64) -> u64 {
        self.id_of_rank(self.rank(u))
    }
}

/// A small fast generator (xorshift64*) for the load generator's workers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (a zero seed is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A uniform `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_covers_every_id_once() {
        for n in [1u64, 2, 7, 1000, 1024, 1025] {
            let z = Zipf::new(n, 1.0);
            let mut seen = vec![false; n as usize + 1];
            for r in 1..=n {
                let id = z.id_of_rank(r);
                assert!((1..=n).contains(&id));
                assert!(!seen[id as usize], "n={n}: id {id} twice");
                seen[id as usize] = true;
            }
        }
    }

    #[test]
    fn rank_one_is_most_frequent() {
        let z = Zipf::new(1000, 1.0);
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 11];
        for _ in 0..100_000 {
            let r = z.rank(rng.next_f64());
            if r <= 10 {
                counts[r as usize] += 1;
            }
        }
        assert!(counts[1] > counts[2] && counts[2] > counts[10]);
    }
}
