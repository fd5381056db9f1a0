//! The eviction state of a [`Cache`](crate::Cache): adaptive S3-FIFO over `capacity` ring
//! positions.
//!
//! **Positions are the bound.** The cache has `capacity` position tokens; every stored entry
//! holds one (its `Node::pos`), distinct from every other entry's, so the table never holds
//! more than `capacity` entries. A token is always in exactly one place (see [`queue`]):
//!
//! * not given out yet: positions `fresh..capacity` (at first all of them);
//! * in the **small** (probationary) or the **main** queue: the entry placed there holds it, or
//!   held it and was removed by the user since, or none did (a position an inserter gave back
//!   joins small): the hand then finds no entry and reuses it;
//! * in one thread's hands: an inserter that is placing its entry ([`Held`]), or the hand
//!   judging the entry there ([`Judging`]). Both guards put the token back if user code
//!   unwinds.
//!
//! **The policy** is S3-FIFO (Yang et al., SOSP'23) with an ARC-style adaptive small queue, as
//! simulated in `cachesim` (`S3-FIFO adaptive ghost 0.5x table ghost (sweep 64)`): a new key
//! joins small, or main if a ghost remembers it; the hand pops small while small holds at
//! least its target, else main. From small, an entry accessed since it was queued moves to
//! main's tail (its counter reset), any other is evicted into the small ghost. From main, an
//! entry with a non-zero 2-bit counter is spared (decremented, back to main's tail), at most
//! `MAX_SWEEP` times per insert; any other is evicted into the main ghost. A miss found in the
//! small ghost grows the small target by max(1, |main ghost| / |small ghost|), one found in the
//! main ghost shrinks it by the inverse ratio (ARC's rule), within 1 ..= capacity - 1.
//!
//! **Each position's hash** (of the key placed there) is written by the token's owner before
//! it pushes the token (Release) and read by the popper after it took it (Acquire): so the
//! hand names an entry by `(hash, position)` as before.

mod ghost;
mod queue;

use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use ghost::{Ghosts, Which};
pub(crate) use queue::Pop;
use queue::Queue;

/// Fixed-point scale of the small target (16 fractional bits: ARC's steps are ratios).
const ONE: u64 = 1 << 16;

/// Which of the two queues an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Q {
    /// The probationary FIFO of new keys.
    Small,
    /// The FIFO with reinsertion (a 2-bit CLOCK) of keys used again.
    Main,
}

impl Q {
    /// The other queue.
    pub(crate) fn other(self) -> Q {
        match self {
            Q::Small => Q::Main,
            Q::Main => Q::Small,
        }
    }
}

/// The queues, ghosts and hashes of the cache's positions (see the module docs).
pub(crate) struct Ring {
    hashes: Box<[AtomicU64]>,
    /// Positions `fresh..len` were never given out.
    fresh: AtomicUsize,
    small: Queue,
    main: Queue,
    /// Fingerprints of keys evicted from small (before they were used again) and from main.
    ghosts: Ghosts,
    /// Target length of the small queue, in units of `1 / ONE` entries.
    target: AtomicU64,
}

impl Ring {
    /// A ring of `n` free positions (`1 <= n < u32::MAX`), ghosts of `n / 2` keys each, the
    /// small target at 10 % of `n` (the paper's static size, where the adaptation starts).
    pub(crate) fn new(n: usize) -> Self {
        debug_assert!(n >= 1);
        Ring {
            hashes: (0..n).map(|_| AtomicU64::new(0)).collect(),
            fresh: AtomicUsize::new(0),
            small: Queue::new(n),
            main: Queue::new(n),
            ghosts: Ghosts::new(n.div_ceil(2)),
            target: AtomicU64::new((n as u64 * ONE / 10).max(ONE)),
        }
    }

    /// Number of positions.
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    fn queue(&self, q: Q) -> &Queue {
        match q {
            Q::Small => &self.small,
            Q::Main => &self.main,
        }
    }

    /// A position never given out, now owned by the caller (`None` once every position was
    /// given out: then the hand must evict).
    #[inline]
    pub(crate) fn take_free(&self) -> Option<usize> {
        // Relaxed: the counter hands out distinct numbers; nothing is published through it.
        let mut i = self.fresh.load(Ordering::Relaxed);
        while i < self.len() {
            // Relaxed: as above.
            match self
                .fresh
                .compare_exchange_weak(i, i + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(i),
                Err(now) => i = now,
            }
        }
        None
    }

    /// The queue the hand should pop: small while it holds at least its target (or main is
    /// empty), else main. `prefer_main`: the caller has promoted enough for one insert.
    pub(crate) fn pick(&self, prefer_main: bool) -> Q {
        let main_empty = self.main.len() == 0;
        if main_empty || (!prefer_main && self.small_at_target()) {
            Q::Small
        } else {
            Q::Main
        }
    }

    /// Whether small holds at least its target.
    fn small_at_target(&self) -> bool {
        // Relaxed: a sizing hint; a stale target only shifts one choice.
        self.small.len() as u64 * ONE >= self.target.load(Ordering::Relaxed)
    }

    /// Whether main holds more than its share (capacity minus the small target): after a
    /// promotion, the hand then evicts from main.
    pub(crate) fn main_over_target(&self) -> bool {
        // Relaxed: as in `small_at_target`.
        self.main.len() as u64 * ONE + self.target.load(Ordering::Relaxed) > self.len() as u64 * ONE
    }

    /// Pops queue `q`, or the other one if `q` is empty. `Some((position, hash, queue))`: the
    /// caller now owns the position and must give it back ([`Ring::judging`]). `None`: both
    /// were empty (every token is in other threads' hands), or the head was a gap, or another
    /// hand won the race for it: the caller looks again.
    pub(crate) fn pop(&self, q: Q) -> Option<(usize, u64, Q)> {
        let other = match q {
            Q::Small => Q::Main,
            Q::Main => Q::Small,
        };
        for q in [q, other] {
            match self.queue(q).pop() {
                Pop::Empty => continue,
                // Another hand took the head (or a read was stale): look again rather than
                // turn to the other queue, which the policy did not choose.
                Pop::Busy | Pop::Gap => return None,
                // Relaxed: ordered after the pusher's write by the pop's Acquire swap.
                Pop::Got(i) => return Some((i, self.hashes[i].load(Ordering::Relaxed), q)),
            }
        }
        None
    }

    /// The caller's position `i` now holds an entry hashing to `hash`: queue it on `q`.
    pub(crate) fn occupy(&self, i: usize, hash: u64, q: Q) {
        // Relaxed: published by the push's Release CAS.
        self.hashes[i].store(hash, Ordering::Relaxed);
        self.queue(q).push(i);
    }

    /// Queues the caller's position `i` (whose hash is unchanged) on `q`: the entry there
    /// stays, spared or promoted.
    pub(crate) fn requeue(&self, i: usize, q: Q) {
        self.queue(q).push(i);
    }

    /// The caller's position `i` holds no entry: it joins small, where the hand will find
    /// it empty and reuse it. (Rare: an insert that made room and then replaced its key
    /// instead, or unwound; or the weight path passing on a free position.)
    pub(crate) fn release(&self, i: usize) {
        self.small.push(i);
    }

    /// A new key hashing to `hash` is being inserted: the queue it joins (main if a ghost
    /// remembered it, else small), adapting the small target as ARC does.
    pub(crate) fn admit(&self, hash: u64) -> Q {
        let (in_small, in_main) = self.ghosts.take(hash);
        if !in_small && !in_main {
            return Q::Small;
        }
        let s = self.ghosts.len(Which::Small) as u64;
        let m = self.ghosts.len(Which::Main) as u64;
        // Relaxed: a racing update may be lost; that only delays the adaptation.
        let t = self.target.load(Ordering::Relaxed);
        let hi = (self.len() as u64 - 1).max(1) * ONE;
        let next = if in_small {
            let step = (m * ONE / s.max(1)).max(ONE);
            t.saturating_add(step).min(hi)
        } else {
            let step = (s * ONE / m.max(1)).max(ONE);
            t.saturating_sub(step).max(ONE)
        };
        // Relaxed: as above.
        self.target.store(next, Ordering::Relaxed);
        Q::Main
    }

    /// Remembers the key hashing to `hash`, just evicted from queue `q`.
    pub(crate) fn remember(&self, hash: u64, q: Q) {
        match q {
            Q::Small => self.ghosts.insert(hash, Which::Small),
            Q::Main => self.ghosts.insert(hash, Which::Main),
        }
    }

    /// Owns position `i` (if any) until [`Held::keep`]: dropping it releases the position, so
    /// a panic in user code (`Eq`, `Hash`, a value's `Drop`) cannot leak it.
    pub(crate) fn held(&self, pos: Option<usize>) -> Held<'_> {
        Held { ring: self, pos }
    }

    /// Owns position `i`, popped from `q`, while the hand judges its entry: dropping the
    /// guard without [`Judging::done`] (a panic in user code during the judgement, before
    /// any entry was removed) queues it back on `q`.
    pub(crate) fn judging(&self, i: usize, q: Q) -> Judging<'_> {
        Judging {
            ring: self,
            i: Some((i, q)),
        }
    }

    /// Target length of the small queue, in entries (rounded down).
    #[cfg(test)]
    pub(crate) fn small_target(&self) -> usize {
        (self.target.load(Ordering::Relaxed) / ONE) as usize
    }

    /// Tokens in the queues' cells: (small, main) (a snapshot).
    #[cfg(test)]
    pub(crate) fn tokens(&self) -> (usize, usize) {
        (self.small.tokens(), self.main.tokens())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn gives_out_every_position_once_then_pops_small_first() {
        let r = Ring::new(10);
        let mut got: Vec<usize> = (0..10).map(|_| r.take_free().unwrap()).collect();
        assert!(r.take_free().is_none());
        got.sort();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        for i in 0..9 {
            r.occupy(i, 100 + i as u64, Q::Main);
        }
        r.occupy(9, 109, Q::Small);
        // Small holds its target (1 of 10): the hand pops it first.
        assert_eq!(r.pick(false), Q::Small);
        assert_eq!(r.pop(Q::Small), Some((9, 109, Q::Small)));
        // Small is now empty: main's head.
        assert_eq!(r.pick(false), Q::Main);
        assert_eq!(r.pop(Q::Small), Some((0, 100, Q::Main)));
        r.requeue(0, Q::Main);
        r.release(9);
        assert_eq!(r.tokens(), (1, 9));
    }

    #[test]
    fn ghost_hits_move_the_target_within_bounds() {
        let r = Ring::new(10);
        assert_eq!(r.small_target(), 1);
        assert_eq!(r.admit(7), Q::Small);
        r.remember(7, Q::Small);
        assert_eq!(r.admit(7), Q::Main);
        assert_eq!(r.small_target(), 2);
        for _ in 0..20 {
            r.remember(8, Q::Small);
            r.admit(8);
        }
        assert_eq!(r.small_target(), 9, "at most capacity - 1");
        for _ in 0..20 {
            r.remember(9, Q::Main);
            r.admit(9);
        }
        assert_eq!(r.small_target(), 1, "at least 1");
    }

    #[test]
    fn guards_give_positions_back() {
        let r = Ring::new(2);
        let a = r.take_free().unwrap();
        let b = r.take_free().unwrap();
        drop(r.held(Some(a)));
        r.occupy(b, 5, Q::Main);
        let (i, _, q) = r.pop(Q::Main).unwrap();
        drop(r.judging(i, q));
        assert_eq!(r.tokens(), (1, 1));
    }
}

/// A position owned by an inserter (see [`Ring::held`]).
pub(crate) struct Held<'a> {
    ring: &'a Ring,
    pub(crate) pos: Option<usize>,
}

impl Held<'_> {
    /// Gives up ownership without releasing: the position now holds the caller's entry, or
    /// passes to the caller's caller.
    pub(crate) fn keep(mut self) -> Option<usize> {
        self.pos.take()
    }

    /// Holds `i` instead of the position held so far, which is released.
    pub(crate) fn replace(&mut self, i: usize) {
        if let Some(prev) = self.pos.replace(i) {
            self.ring.release(prev);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.pos.take() {
            self.ring.release(i);
        }
    }
}

/// A position being judged by the hand (see [`Ring::judging`]).
pub(crate) struct Judging<'a> {
    ring: &'a Ring,
    i: Option<(usize, Q)>,
}

impl Judging<'_> {
    /// The judgement finished: the caller moves the position on itself.
    pub(crate) fn done(mut self) {
        self.i = None;
    }
}

impl Drop for Judging<'_> {
    fn drop(&mut self) {
        if let Some((i, q)) = self.i.take() {
            self.ring.requeue(i, q);
        }
    }
}
