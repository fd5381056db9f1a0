//! Exact reference policies used as test oracles: LRU and Bélády's offline
//! optimum (OPT), both with capacity counted in entries.

use crate::hash::{u64_map, U64Map};
use crate::Policy;
use std::collections::BinaryHeap;

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    key: u64,
    prev: u32,
    next: u32,
}

/// Exact LRU: a hash map from key to node index plus an index-based doubly
/// linked list (head = most recent). O(1) per access.
pub struct Lru {
    capacity: usize,
    map: U64Map<u32>,
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
}

impl Lru {
    /// Creates an empty LRU cache holding at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0 && capacity < NIL as usize);
        Lru {
            capacity,
            map: u64_map(capacity),
            nodes: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
        }
    }

    fn unlink(&mut self, i: u32) {
        let Node { prev, next, .. } = self.nodes[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        self.nodes[i as usize].prev = NIL;
        self.nodes[i as usize].next = self.head;
        if self.head != NIL {
            self.nodes[self.head as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    /// Keys from most to least recently used (for tests).
    pub fn keys_mru(&self) -> Vec<u64> {
        let mut v = Vec::with_capacity(self.map.len());
        let mut i = self.head;
        while i != NIL {
            v.push(self.nodes[i as usize].key);
            i = self.nodes[i as usize].next;
        }
        v
    }
}

impl Policy for Lru {
    fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.map.get(&key) {
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return true;
        }
        let i = if self.nodes.len() < self.capacity {
            self.nodes.push(Node {
                key,
                prev: NIL,
                next: NIL,
            });
            (self.nodes.len() - 1) as u32
        } else {
            let victim = self.tail;
            self.unlink(victim);
            let old = std::mem::replace(&mut self.nodes[victim as usize].key, key);
            self.map.remove(&old);
            victim
        };
        self.map.insert(key, i);
        self.push_front(i);
        false
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// "Never used again".
pub const NEVER: u64 = u64::MAX;

/// For every request `i`, the index of the next request for the same key, or
/// [`NEVER`].
pub fn next_use(trace: &[u64]) -> Vec<u64> {
    let mut next = vec![NEVER; trace.len()];
    let mut last: U64Map<u64> = u64_map(trace.len() / 4);
    for (i, &k) in trace.iter().enumerate().rev() {
        if let Some(n) = last.insert(k, i as u64) {
            next[i] = n;
        }
    }
    next
}

/// What Bélády does with a missed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Always admit: evict the resident key used farthest in the future,
    /// then insert the new key (even if it is never used again).
    Always,
    /// Bypass keys that are never requested again; otherwise as `Always`.
    BypassNever,
    /// Bypass whenever the new key's next use is at least as far as every
    /// resident's (the true optimum when admission is optional).
    BypassFarthest,
}

/// Request hits of Bélády's offline optimum over `trace` with `capacity`
/// entries. `next` must be [`next_use`]`(trace)`.
///
/// Residents are kept in a max-heap of (next use, key) with lazy deletion: a
/// heap entry is live iff the key's recorded next use still equals it.
pub fn belady_hits(trace: &[u64], next: &[u64], capacity: usize, admission: Admission) -> u64 {
    belady_hits_from(trace, next, capacity, admission, 0)
}

/// Like [`belady_hits`], but counts only the hits of requests at index
/// `from` or later (the earlier requests warm the cache up).
pub fn belady_hits_from(
    trace: &[u64],
    next: &[u64],
    capacity: usize,
    admission: Admission,
    from: usize,
) -> u64 {
    assert_eq!(trace.len(), next.len());
    assert!(capacity > 0);
    // key -> its next use while resident
    let mut resident: U64Map<u64> = u64_map(capacity * 2);
    let mut heap: BinaryHeap<(u64, u64)> = BinaryHeap::with_capacity(capacity * 4);
    let mut hits = 0u64;
    for (i, (&key, &nu)) in trace.iter().zip(next).enumerate() {
        if let Some(slot) = resident.get_mut(&key) {
            debug_assert_eq!(*slot, i as u64);
            hits += u64::from(i >= from);
            *slot = nu;
            heap.push((nu, key));
        } else {
            if admission != Admission::Always && nu == NEVER {
                continue;
            }
            if resident.len() == capacity {
                // Pop stale entries until the top is live.
                let (far, victim) = loop {
                    let &(n, k) = heap.peek().expect("heap holds every resident");
                    if resident.get(&k) == Some(&n) {
                        break (n, k);
                    }
                    heap.pop();
                };
                if admission == Admission::BypassFarthest && nu >= far {
                    continue;
                }
                heap.pop();
                resident.remove(&victim);
            }
            resident.insert(key, nu);
            heap.push((nu, key));
        }
        // Stale entries (whose next use has passed) never reach the top but
        // take memory: rebuild from the live set now and then.
        if heap.len() > 4 * capacity + 1024 {
            heap = resident.iter().map(|(&k, &n)| (n, k)).collect();
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hits;

    #[test]
    fn lru_textbook() {
        // capacity 2: a b a c b a
        // a miss, b miss, a hit, c miss (evict b), b miss (evict a), a miss (evict c)
        let mut lru = Lru::new(2);
        let trace = [1, 2, 1, 3, 2, 1];
        let got: Vec<bool> = trace.iter().map(|&k| lru.access(k)).collect();
        assert_eq!(got, [false, false, true, false, false, false]);
        assert_eq!(lru.keys_mru(), vec![1, 2]);
    }

    #[test]
    fn lru_capacity_one_and_loop() {
        assert_eq!(hits(&mut Lru::new(1), &[5, 5, 5, 6, 6, 5]), 3);
        // Cyclic loop larger than the cache: LRU never hits.
        let t: Vec<u64> = (0..100).map(|i| i % 4).collect();
        assert_eq!(hits(&mut Lru::new(3), &t), 0);
        assert_eq!(hits(&mut Lru::new(4), &t), 96);
    }

    #[test]
    fn next_use_indices() {
        assert_eq!(next_use(&[1, 2, 1, 1, 3]), vec![2, NEVER, 3, NEVER, NEVER]);
    }

    fn opt(t: &[u64], c: usize, a: Admission) -> u64 {
        belady_hits(t, &next_use(t), c, a)
    }

    #[test]
    fn belady_textbook() {
        // Classic example, 3 frames: 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1
        // has 9 faults under OPT (with every page admitted) -> 11 hits.
        let t = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1];
        assert_eq!(opt(&t, 3, Admission::Always), 11);
        assert!(opt(&t, 3, Admission::BypassFarthest) >= 11);
    }

    #[test]
    fn belady_loop() {
        // Loop of 4 keys, cache 3: OPT keeps 2 keys pinned and hits
        // substantially; LRU hits nothing.
        let t: Vec<u64> = (0..400).map(|i| i % 4).collect();
        let o = opt(&t, 3, Admission::Always);
        assert!(o > 0);
        // Bypassing can only help.
        assert!(opt(&t, 3, Admission::BypassFarthest) >= o);
        // With room for everything only the compulsory misses remain.
        assert_eq!(opt(&t, 4, Admission::Always), 396);
    }

    #[test]
    fn belady_bypass_never() {
        // cache 1: a b a — admitting b (never reused) evicts a and loses a hit.
        assert_eq!(opt(&[1, 2, 1], 1, Admission::Always), 0);
        assert_eq!(opt(&[1, 2, 1], 1, Admission::BypassNever), 1);
        // cache 1: a b a b a — bypassing b when a is nearer keeps a.
        let t = [1, 2, 1, 2, 1];
        assert_eq!(opt(&t, 1, Admission::Always), 0);
        assert_eq!(opt(&t, 1, Admission::BypassNever), 1);
        assert_eq!(opt(&t, 1, Admission::BypassFarthest), 2);
    }

    #[test]
    fn belady_from_counts_only_the_measured_part() {
        let t: Vec<u64> = (0..3000).map(|i| crate::hash::mix64(i) % 50).collect();
        let next = next_use(&t);
        for a in [Admission::Always, Admission::BypassFarthest] {
            let all = belady_hits(&t, &next, 10, a);
            assert_eq!(belady_hits_from(&t, &next, 10, a, 0), all);
            assert_eq!(belady_hits_from(&t, &next, 10, a, t.len()), 0);
            let half = belady_hits_from(&t, &next, 10, a, 1500);
            assert!(half > 0 && half < all);
        }
        // Warm-up matters: 1 2 1 2 with capacity 2, measured from index 2:
        // both measured requests hit.
        assert_eq!(
            belady_hits_from(
                &[1, 2, 1, 2],
                &next_use(&[1, 2, 1, 2]),
                2,
                Admission::Always,
                2
            ),
            2
        );
    }

    #[test]
    fn belady_never_below_lru() {
        let mut x = 12345u64;
        let t: Vec<u64> = (0..5000)
            .map(|_| {
                x = crate::hash::mix64(x);
                (x % 97) * (x % 3) // skewed
            })
            .collect();
        for c in [1, 5, 20, 60] {
            let l = hits(&mut Lru::new(c), &t);
            let o = opt(&t, c, Admission::Always);
            assert!(o >= l, "cap {c}: OPT {o} < LRU {l}");
        }
    }
}
