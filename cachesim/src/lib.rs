//! Cache-policy simulator for linemap's `Cache`: trace readers ([`trace`]),
//! exact reference policies used as oracles ([`oracle`]), candidate CLOCK
//! designs ([`policies`]), the published reference numbers of
//! `shared/traces/README.md` ([`reference`]) and replay through the real
//! concurrent caches (`linemap`, `quick_cache`, `moka`) on 1 or more threads
//! ([`replay`]), and the benchmark's zipf request streams ([`zipf`]).

pub mod hash;
pub mod oracle;
pub mod policies;
pub mod reference;
pub mod replay;
pub mod trace;
pub mod zipf;

/// An online cache replacement policy with capacity counted in entries.
pub trait Policy {
    /// Requests `key`; returns whether it was a hit. On a miss the key is
    /// admitted (evicting as needed).
    fn access(&mut self, key: u64) -> bool;
    /// Number of resident keys.
    fn len(&self) -> usize;
    /// Whether no key is resident.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Replays `trace` through `policy` and returns the number of hits.
pub fn hits(policy: &mut (impl Policy + ?Sized), trace: &[u64]) -> u64 {
    trace.iter().filter(|&&k| policy.access(k)).count() as u64
}

/// `hits / requests` in percent.
pub fn pct(hits: u64, requests: usize) -> f64 {
    if requests == 0 {
        0.0
    } else {
        100.0 * hits as f64 / requests as f64
    }
}
