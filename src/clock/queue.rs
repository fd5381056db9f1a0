//! A lock-free FIFO of ring positions: one of the cache's queues (free, small, main).
//!
//! A queue is an array of cells and two ticket counters. A cell is [`EMPTY`] or holds one
//! position (stored as `position + 1`). A **position token** is always in exactly one place:
//! in one cell of one queue, or in the hands of one thread (the one that popped it, or the
//! inserter that owns it). Push and pop move it with one atomic step each:
//!
//! ```text
//!   push(p): t = tail++ ; CAS cells[t % n]: EMPTY -> p+1   (fails: take the next ticket)
//!   pop():   h = head, h < tail ; CAS head: h -> h+1 ; swap cells[h % n] -> EMPTY
//! ```
//!
//! * A push whose cell is still full (a token stranded by the race below, or a pop of the
//!   previous lap not finished) leaves that ticket empty and takes the next one. While no
//!   other thread moves, at most `positions` cells are full, so a push takes at most
//!   `positions + 1` tickets: the push is lock-free, and wait-free in isolation.
//! * A pop whose cell is still EMPTY (a **gap**: a push that failed, or one that took its
//!   ticket and has not written yet) returns [`Pop::Gap`]. A token written after its ticket
//!   was passed is **stranded**: it sits outside `head..tail` until the head comes round to its
//!   cell again (a push there fails and moves on, the pop there takes it). Stranding only
//!   reorders; no token is lost or duplicated, because a token enters a cell only by a CAS
//!   from EMPTY and leaves it only by a swap to EMPTY.
//!
//! So the order is FIFO except around races, which is all an eviction order needs; what must
//! be exact is that each token is in one place, which holds at every step.

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// A cell holding no position.
const EMPTY: u32 = 0;

/// What [`Queue::pop`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pop {
    /// `head == tail`: nothing queued.
    Empty,
    /// The cell at the head held no token (see the module docs); the head moved on.
    Gap,
    /// This position, now owned by the caller.
    Got(usize),
}

/// A FIFO of positions `0..positions` (see the module docs).
pub(crate) struct Queue {
    cells: Box<[AtomicU32]>,
    /// Next ticket to pop. Padded: every evicting thread moves it.
    head: CachePadded<AtomicU64>,
    /// Next ticket to push. Padded: every insert moves some queue's tail.
    tail: CachePadded<AtomicU64>,
}

impl Queue {
    /// An empty queue for up to `positions` tokens (`positions < u32::MAX`). Slack cells
    /// keep a push from meeting a full cell except after a race.
    pub(crate) fn new(positions: usize) -> Self {
        debug_assert!(positions < u32::MAX as usize);
        let n = positions + positions / 8 + 8;
        Queue {
            cells: (0..n).map(|_| AtomicU32::new(EMPTY)).collect(),
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// A queue holding `0..positions` in order.
    pub(crate) fn full(positions: usize) -> Self {
        let q = Queue::new(positions);
        for i in 0..positions {
            q.push(i);
        }
        q
    }

    #[inline]
    fn cell(&self, ticket: u64) -> &AtomicU32 {
        // The remainder is below `cells.len()`, a usize.
        &self.cells[(ticket % self.cells.len() as u64) as usize]
    }

    /// Appends position `p`, which the caller owns and gives up.
    pub(crate) fn push(&self, p: usize) {
        debug_assert!(p < u32::MAX as usize);
        let v = p as u32 + 1;
        loop {
            // Relaxed: the ticket only spreads pushes over cells; the CAS below decides.
            let t = self.tail.fetch_add(1, Ordering::Relaxed);
            // Release: the popper's Acquire swap then sees everything the owner wrote before
            // giving the token up (the position's hash). Relaxed on failure: we read nothing.
            if self
                .cell(t)
                .compare_exchange(EMPTY, v, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Takes the token at the head, if any.
    pub(crate) fn pop(&self) -> Pop {
        // Relaxed: the head and tail only pick a ticket; the token moves by the swap below.
        let mut h = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: as above; a stale tail reads as empty or as a gap, both harmless.
            if h >= self.tail.load(Ordering::Relaxed) {
                return Pop::Empty;
            }
            // Relaxed: the CAS makes the ticket ours; it publishes nothing.
            match self
                .head
                .compare_exchange_weak(h, h + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => h = now,
            }
        }
        // Acquire: pairs with the Release CAS of the push that put the token here.
        match self.cell(h).swap(EMPTY, Ordering::Acquire) {
            EMPTY => Pop::Gap,
            v => Pop::Got(v as usize - 1),
        }
    }

    /// Tickets between head and tail: the queued tokens plus gaps (a snapshot).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a sizing hint for the eviction choice.
        let t = self.tail.load(Ordering::Relaxed);
        let h = self.head.load(Ordering::Relaxed);
        t.saturating_sub(h) as usize
    }

    /// Tokens in the queue's cells (a snapshot; counts stranded ones).
    #[cfg(test)]
    pub(crate) fn tokens(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) != EMPTY)
            .count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_order() {
        let q = Queue::new(4);
        assert_eq!(q.pop(), Pop::Empty);
        for p in [3, 1, 2] {
            q.push(p);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Pop::Got(3));
        q.push(0);
        assert_eq!(q.pop(), Pop::Got(1));
        assert_eq!(q.pop(), Pop::Got(2));
        assert_eq!(q.pop(), Pop::Got(0));
        assert_eq!(q.pop(), Pop::Empty);
    }

    #[test]
    fn wraps_around_many_laps() {
        let q = Queue::full(5);
        for round in 0..100 {
            match q.pop() {
                Pop::Got(p) => {
                    assert_eq!(p, round % 5);
                    q.push(p);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(q.tokens(), 5);
    }

    #[test]
    fn gap_and_stranded_token_is_found_a_lap_later() {
        let q = Queue::new(2);
        let n = q.cells.len() as u64;
        // A push that took ticket 0 but has not written yet: the pop finds a gap.
        q.tail.fetch_add(1, Ordering::Relaxed);
        assert_eq!(q.pop(), Pop::Gap);
        // The late write strands token 1 in cell 0.
        q.cells[0].store(2, Ordering::Relaxed);
        assert_eq!(q.pop(), Pop::Empty);
        // Pushes walk the tail round; the one meeting cell 0 skips it.
        for _ in 0..n {
            q.push(0);
            match q.pop() {
                Pop::Got(0) => {}
                Pop::Got(1) => {
                    // The stranded token came back; the skipped ticket is a gap or ours.
                    assert_eq!(q.tokens(), 1);
                    return;
                }
                Pop::Gap => {}
                other => panic!("{other:?}"),
            }
        }
        panic!("the stranded token was never popped");
    }
}
