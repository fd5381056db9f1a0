//! Fast 64-bit mixing hash used by the simulator's own hash maps and by the
//! simulated table's bucket placement.

use std::hash::{BuildHasher, Hasher};

/// splitmix64 finalizer (Stafford variant 13): a bijective, well-avalanching
/// 64-bit mixer.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Seeded hash of a key: `mix64(key + seed * golden)`.
#[inline]
pub fn hash_key(key: u64, seed: u64) -> u64 {
    mix64(key.wrapping_add(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// `BuildHasher` for `HashMap<u64, _>` that applies [`mix64`] to the key.
#[derive(Clone, Copy, Debug, Default)]
pub struct MixState;

impl BuildHasher for MixState {
    type Hasher = MixHasher;
    #[inline]
    fn build_hasher(&self) -> MixHasher {
        MixHasher(0)
    }
}

/// Hasher produced by [`MixState`]; intended for single `u64` keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.wrapping_add(n);
    }
}

/// A `HashMap` keyed by `u64` using [`MixState`].
pub type U64Map<V> = std::collections::HashMap<u64, V, MixState>;

/// Creates an empty [`U64Map`] with room for `cap` entries.
pub fn u64_map<V>(cap: usize) -> U64Map<V> {
    U64Map::with_capacity_and_hasher(cap, MixState)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_not_identity_and_spreads() {
        assert_ne!(mix64(1), 1);
        assert_ne!(mix64(1), mix64(2));
        // Sequential keys land in many distinct low-bit buckets.
        let mut seen = std::collections::HashSet::new();
        for k in 0..64u64 {
            seen.insert(mix64(k) & 63);
        }
        assert!(seen.len() > 30);
    }
}
