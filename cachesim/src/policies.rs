//! Candidate CLOCK designs.
//!
//! * [`RingClock`]: textbook CLOCK (second chance) over a ring of `capacity`
//!   positions; a new entry takes the evicted position and the hand moves
//!   past it, so the hand meets entries in insertion order (equivalent to
//!   FIFO with reinsertion, as in libCacheSim's `Clock`).
//! * [`TableClock`]: the design considered for `linemap::Cache`. Entries live
//!   in an open-addressing table of `B` buckets × 7 slots; a key takes the
//!   first free slot of its probe sequence (bucket `hash(key) mod B`, then the
//!   next buckets linearly). The hand sweeps table slots in index order, so
//!   it meets entries in hash order, not insertion order.
//!
//! Both keep a small saturating counter per entry (1 bit: max 1; 2 bits: max
//! 3): a hit increments it, the passing hand decrements it, and the hand
//! evicts an entry whose counter is already 0.

use crate::hash::{hash_key, u64_map, U64Map};
use crate::Policy;

/// Counter settings shared by the CLOCK variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Saturation value: 1 for a reference bit, 3 for a 2-bit counter.
    pub max: u8,
    /// Counter value given to a newly inserted entry (0 = unreferenced).
    pub insert: u8,
}

impl Counter {
    /// 1-bit reference, unset on insert (classic second chance).
    pub const BIT: Counter = Counter { max: 1, insert: 0 };
    /// 1-bit reference, set on insert.
    pub const BIT_SET: Counter = Counter { max: 1, insert: 1 };
    /// 2-bit counter (max 3), 0 on insert.
    pub const TWO_BIT: Counter = Counter { max: 3, insert: 0 };
    /// 2-bit counter (max 3), 1 on insert.
    pub const TWO_BIT_SET: Counter = Counter { max: 3, insert: 1 };

    #[inline]
    fn bump(self, c: &mut u8) {
        if *c < self.max {
            *c += 1;
        }
    }
}

/// Textbook CLOCK over a ring of `capacity` positions.
pub struct RingClock {
    capacity: usize,
    counter: Counter,
    keys: Vec<u64>,
    counts: Vec<u8>,
    map: U64Map<u32>,
    hand: usize,
    /// Referenced positions the hand may spare in one eviction before it
    /// evicts the next entry regardless (`usize::MAX`: unbounded).
    max_sweep: usize,
    /// Evictions of an entry whose counter was still above 0.
    forced: u64,
}

impl RingClock {
    /// Creates an empty ring CLOCK of `capacity` entries.
    pub fn new(capacity: usize, counter: Counter) -> Self {
        Self::with_max_sweep(capacity, counter, usize::MAX)
    }

    /// Like [`RingClock::new`], but one eviction spares at most `max_sweep`
    /// referenced positions (decrementing each); the next position is then
    /// evicted even if referenced. With [`Counter::BIT`] and 64 this is
    /// exactly `linemap::Cache`'s hand (`MAX_SWEEP` in `src/cache/mod.rs`)
    /// replayed on one thread.
    pub fn with_max_sweep(capacity: usize, counter: Counter, max_sweep: usize) -> Self {
        assert!(capacity > 0 && capacity < u32::MAX as usize);
        RingClock {
            capacity,
            counter,
            keys: Vec::with_capacity(capacity),
            counts: Vec::with_capacity(capacity),
            map: u64_map(capacity),
            hand: 0,
            max_sweep,
            forced: 0,
        }
    }

    /// Evictions forced by the sweep bound (the victim was still referenced).
    pub fn forced_evictions(&self) -> u64 {
        self.forced
    }
}

impl Policy for RingClock {
    fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            self.counter.bump(&mut self.counts[i as usize]);
            return true;
        }
        if self.keys.len() < self.capacity {
            // Filling up: positions in insertion order, hand stays at 0.
            self.map.insert(key, self.keys.len() as u32);
            self.keys.push(key);
            self.counts.push(self.counter.insert);
            return false;
        }
        let mut spared = 0;
        while self.counts[self.hand] > 0 {
            if spared == self.max_sweep {
                self.forced += 1;
                break;
            }
            self.counts[self.hand] -= 1;
            self.hand = (self.hand + 1) % self.capacity;
            spared += 1;
        }
        let old = std::mem::replace(&mut self.keys[self.hand], key);
        self.map.remove(&old);
        self.counts[self.hand] = self.counter.insert;
        self.map.insert(key, self.hand as u32);
        self.hand = (self.hand + 1) % self.capacity;
        false
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// Slots per bucket in the simulated table (one 64-byte line: 7 entries).
pub const WAYS: usize = 7;

/// Marks a free slot in [`TableClock`]'s counter array.
const FREE: u8 = u8::MAX;

/// Configuration of a [`TableClock`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TableConfig {
    /// Reference counter settings.
    pub counter: Counter,
    /// Slots the hand claims at a time. Every unreferenced entry in a claimed
    /// batch is evicted (as a concurrent hand that claims a batch would), so
    /// with a batch > 1 the cache can dip below capacity.
    pub batch: usize,
    /// Maximum load (capacity / slots); `B` is the smallest power of two with
    /// `capacity <= max_load * 7 * B`.
    pub max_load: f64,
    /// Hash seed.
    pub seed: u64,
    /// Hand-aware insert: an entry placed in the half of the table the hand
    /// reaches next gets one extra count (so it survives about as long as
    /// an entry placed just behind the hand, as in ring CLOCK).
    pub hand_aware: bool,
}

impl TableConfig {
    /// 1-bit, hand batch `batch`, load ≤ 0.7, seed 0.
    pub fn new(counter: Counter, batch: usize) -> Self {
        TableConfig {
            counter,
            batch,
            max_load: 0.7,
            seed: 0,
            hand_aware: false,
        }
    }
}

/// CLOCK over the slots of an open-addressing hash table (hash-order hand).
pub struct TableClock {
    capacity: usize,
    cfg: TableConfig,
    mask: usize,
    keys: Vec<u64>,
    /// Per-slot counter, or [`FREE`].
    counts: Vec<u8>,
    map: U64Map<u32>,
    len: usize,
    hand: usize,
    evictions: u64,
    /// Buckets probed by all inserts, and the longest probe sequence.
    probed: u64,
    max_probe: u64,
    inserts: u64,
}

impl TableClock {
    /// Creates an empty table CLOCK holding at most `capacity` entries.
    pub fn new(capacity: usize, cfg: TableConfig) -> Self {
        assert!(capacity > 0 && cfg.batch > 0);
        assert!(cfg.max_load > 0.0 && cfg.max_load < 1.0);
        let need = (capacity as f64 / (cfg.max_load * WAYS as f64)).ceil() as usize;
        let buckets = need.max(1).next_power_of_two();
        let slots = buckets * WAYS;
        assert!(slots < u32::MAX as usize);
        TableClock {
            capacity,
            cfg,
            mask: buckets - 1,
            keys: vec![0; slots],
            counts: vec![FREE; slots],
            map: u64_map(capacity),
            len: 0,
            hand: 0,
            evictions: 0,
            probed: 0,
            max_probe: 0,
            inserts: 0,
        }
    }

    /// Number of buckets `B`.
    pub fn buckets(&self) -> usize {
        self.mask + 1
    }

    /// Evictions performed so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Mean and maximum number of buckets an insert probed to find a free slot.
    pub fn probe_stats(&self) -> (f64, u64) {
        let mean = if self.inserts == 0 {
            0.0
        } else {
            self.probed as f64 / self.inserts as f64
        };
        (mean, self.max_probe)
    }

    /// Advances the hand over one batch of slots.
    fn sweep(&mut self) {
        let slots = self.counts.len();
        for _ in 0..self.cfg.batch {
            let s = self.hand;
            self.hand += 1;
            if self.hand == slots {
                self.hand = 0;
            }
            match self.counts[s] {
                FREE => {}
                0 => {
                    self.counts[s] = FREE;
                    self.map.remove(&self.keys[s]);
                    self.len -= 1;
                    self.evictions += 1;
                }
                c => self.counts[s] = c - 1,
            }
        }
    }

    /// First free slot of `key`'s probe sequence.
    fn free_slot(&mut self, key: u64) -> usize {
        let mut b = hash_key(key, self.cfg.seed) as usize & self.mask;
        let mut probes = 1;
        loop {
            let base = b * WAYS;
            if let Some(w) = self.counts[base..base + WAYS]
                .iter()
                .position(|&c| c == FREE)
            {
                self.inserts += 1;
                self.probed += probes;
                self.max_probe = self.max_probe.max(probes);
                return base + w;
            }
            b = (b + 1) & self.mask;
            probes += 1;
        }
    }
}

impl Policy for TableClock {
    fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            self.cfg.counter.bump(&mut self.counts[i as usize]);
            return true;
        }
        while self.len >= self.capacity {
            self.sweep();
        }
        let s = self.free_slot(key);
        self.keys[s] = key;
        let mut count = self.cfg.counter.insert;
        if self.cfg.hand_aware {
            let slots = self.counts.len();
            let ahead = (s + slots - self.hand) % slots;
            if ahead < slots / 2 && count < self.cfg.counter.max {
                count += 1;
            }
        }
        self.counts[s] = count;
        self.map.insert(key, s as u32);
        self.len += 1;
        false
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hits;

    fn run(p: &mut impl Policy, t: &[u64]) -> Vec<bool> {
        t.iter().map(|&k| p.access(k)).collect()
    }

    #[test]
    fn ring_second_chance() {
        // capacity 3, 1-bit unset on insert.
        // 1 2 3 fill; 1 hit (ref 1); 4: hand at 1 (ref) -> clear, 2 evicted,
        // 4 placed at pos 1, hand -> 2. 1 hit. 5: pos 2 (key 3, ref 0)
        // evicted. 2 miss: pos 0 (key 1, ref 1) cleared, pos 1 (key 4, 0)
        // evicted.
        let mut c = RingClock::new(3, Counter::BIT);
        let got = run(&mut c, &[1, 2, 3, 1, 4, 1, 5, 2, 1, 4]);
        assert_eq!(
            got,
            [false, false, false, true, false, true, false, false, true, false]
        );
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn ring_without_hits_is_fifo() {
        let t: Vec<u64> = (0..50).map(|i| (i * 7) % 11).collect();
        let mut c = RingClock::new(4, Counter::BIT);
        let mut fifo = std::collections::VecDeque::new();
        for &k in &t {
            let hit = c.access(k);
            let fhit = fifo.contains(&k);
            if !fhit {
                if fifo.len() == 4 {
                    fifo.pop_front();
                }
                fifo.push_back(k);
            }
            // Hits only happen when keys repeat within 4 distinct misses;
            // with this stride they never do.
            assert_eq!(hit, fhit);
        }
    }

    #[test]
    fn ring_sweep_bound_forces_eviction() {
        // Capacity 4, all four referenced. Unbounded: the hand clears all
        // four bits and evicts key 1 (position 0) after a full turn.
        // Bound 2: it spares keys 1 and 2 and evicts key 3 (still referenced).
        let t = [1, 2, 3, 4, 1, 2, 3, 4, 5];
        let mut free = RingClock::new(4, Counter::BIT);
        run(&mut free, &t);
        assert_eq!(run(&mut free, &[2, 3, 4, 1]), [true, true, true, false]);
        assert_eq!(free.forced_evictions(), 0);
        let mut bounded = RingClock::with_max_sweep(4, Counter::BIT, 2);
        run(&mut bounded, &t);
        assert_eq!(bounded.forced_evictions(), 1);
        assert_eq!(run(&mut bounded, &[1, 2, 4, 3]), [true, true, true, false]);
    }

    #[test]
    fn ring_two_bit_saturates() {
        let mut c = RingClock::new(2, Counter::TWO_BIT);
        // 1 hit 5 times -> count 3 (saturated). Then 2, 3, 4, 5 misses:
        // key 1 survives 3 passes.
        let t = [1, 2, 1, 1, 1, 1, 1, 3, 4, 1];
        let got = run(&mut c, &t);
        assert_eq!(got.iter().filter(|&&h| h).count(), 6);
    }

    #[test]
    fn table_never_exceeds_capacity_and_hits_when_fits() {
        for batch in [1, 8] {
            for (counter, hand_aware) in [
                (Counter::BIT, false),
                (Counter::BIT_SET, false),
                (Counter::TWO_BIT, false),
                (Counter::BIT, true),
                (Counter::TWO_BIT_SET, true),
            ] {
                let mut cfg = TableConfig::new(counter, batch);
                cfg.hand_aware = hand_aware;
                let mut c = TableClock::new(50, cfg);
                assert_eq!(c.buckets(), 16); // 50 / (0.7*7) = 10.2 -> 16
                let t: Vec<u64> = (0..1000).map(|i| (i * 31) % 40).collect();
                // 40 keys fit in 50 entries: only compulsory misses.
                assert_eq!(hits(&mut c, &t), 960);
                let t: Vec<u64> = (0..5000).map(|i| crate::hash::mix64(i) % 500).collect();
                for &k in &t {
                    c.access(k);
                    assert!(c.len() <= 50);
                }
                assert!(c.evictions() > 0);
                let (mean, max) = c.probe_stats();
                assert!(mean >= 1.0 && (1..=16).contains(&max));
            }
        }
    }

    #[test]
    fn table_evicts_unreferenced_first() {
        // Capacity 2 in one bucket (B = 1, 7 slots). Keys 1 and 2 land in
        // slots 0 and 1. Hit 1 -> referenced. Miss 3: hand at slot 0 clears
        // key 1's bit, evicts key 2 at slot 1; key 3 takes slot 1.
        let mut c = TableClock::new(2, TableConfig::new(Counter::BIT, 1));
        assert_eq!(c.buckets(), 1);
        let got = run(&mut c, &[1, 2, 1, 3, 1, 2]);
        assert_eq!(got, [false, false, true, false, true, false]);
    }

    #[test]
    fn table_batch_can_evict_several() {
        // Capacity 4, one bucket, batch 8: a single sweep evicts all 4
        // unreferenced entries.
        let mut c = TableClock::new(4, TableConfig::new(Counter::BIT, 8));
        for k in 0..4 {
            c.access(k);
        }
        c.access(99);
        assert_eq!(c.evictions(), 4);
        assert_eq!(c.len(), 1);
    }
}
