//! A lock-free FIFO of ring positions: one of the cache's two queues (small, main).
//!
//! A queue is an array of `n` cells and two ticket counters, `head` and `tail`. Ticket `t`
//! uses cell `t % n` in lap `t / n`. A cell is one `AtomicU64`: the lap it serves (`lap`, 32
//! bits, wrapping) and a value, [`EMPTY`] or a position + 1. A **position token** is always in
//! exactly one place: in one cell, or in the hands of one thread (the one that popped it, or
//! the inserter that owns it). The protocol is a bounded ring queue in the style of Morrison
//! and Afek's CRQ, where a pop that meets an unfinished push *closes* that ticket instead of
//! waiting for it. For ticket `t` of lap `L`:
//!
//! ```text
//!   push(p):  t = tail++ ; cell (lap <= L, EMPTY) --CAS--> (L, p)       else: next ticket
//!   pop():    h = head < tail ; cell at h is
//!               (L, p)          -> take: CAS to (L+1, EMPTY); p is ours; move the head
//!               (l <= L, EMPTY) -> close: CAS to (L+1, EMPTY); move the head: a gap
//!               (l > L, _)      -> taken, closed or lapped: move the head: a gap
//!               (l < L, p)      -> a stale read: busy, look again
//!   move the head: CAS h -> h+1 (any pop may do it for another)
//! ```
//!
//! * A token is written only by a CAS from EMPTY with `lap <= L`, so into a cell whose ticket
//!   no pop has passed (the head passes ticket `t` only after its cell moved to a later lap,
//!   and a cell's lap only grows). So a token is never **stranded** behind the head: it is
//!   taken by the pop of its own ticket, which comes as pops move the head on, pushes or not.
//! * A token leaves a cell only through the one CAS that empties it: one owner. So no token
//!   is lost or duplicated.
//! * Lock-free: a push's CAS fails only if a pop closed its ticket (progress) or the cell holds
//!   a token (while no other thread moves, at most `positions` cells do, so a push takes at
//!   most `positions + 1` tickets); a pop's CAS fails only if another thread changed the cell.
//!   A pop that empties a cell and stalls before moving the head holds up no one: the next
//!   pop sees the emptied cell and moves the head for it.
//!
//! Laps are compared with wrapping arithmetic, exact while the laps in use are less than 2^31
//! apart; they are at most a few apart (tickets in use span about one lap of `n`).

use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// A cell's value when it holds no position.
const EMPTY: u64 = 0;

/// What [`Queue::pop`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pop {
    /// `head == tail`: nothing queued.
    Empty,
    /// The head ticket held no token (its push failed, or was closed); the head moved on.
    Gap,
    /// A CAS on the head cell lost a race, or the read was stale; nothing moved: look again.
    Busy,
    /// This position, now owned by the caller.
    Got(usize),
}

/// `a <= b` for 32-bit lap numbers that wrap.
#[inline]
fn lap_le(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) as i32 >= 0
}

#[inline]
fn cell_word(lap: u32, value: u64) -> u64 {
    (u64::from(lap) << 32) | value
}

/// A FIFO of positions `0..positions` (see the module docs).
pub(crate) struct Queue {
    cells: Box<[AtomicU64]>,
    /// Next ticket to pop. Padded: every evicting thread moves it.
    head: CachePadded<AtomicU64>,
    /// Next ticket to push. Padded: every insert moves some queue's tail.
    tail: CachePadded<AtomicU64>,
}

impl Queue {
    /// An empty queue for up to `positions` tokens (`positions < u32::MAX`). Slack cells
    /// keep a push from meeting a full cell while pushes are in flight.
    pub(crate) fn new(positions: usize) -> Self {
        debug_assert!(positions < u32::MAX as usize);
        let n = positions + positions / 8 + 8;
        Queue {
            // Every cell first serves a ticket of lap 0.
            cells: (0..n)
                .map(|_| AtomicU64::new(cell_word(0, EMPTY)))
                .collect(),
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// The cell of `ticket` and the ticket's lap (32 bits of `ticket / n`: it wraps).
    #[inline]
    fn cell(&self, ticket: u64) -> (&AtomicU64, u32) {
        let n = self.cells.len() as u64;
        // The remainder is below `n`, a usize; the lap is kept modulo 2^32 on purpose.
        (&self.cells[(ticket % n) as usize], (ticket / n) as u32)
    }

    /// Appends position `p`, which the caller owns and gives up.
    pub(crate) fn push(&self, p: usize) {
        debug_assert!(p < u32::MAX as usize);
        let v = p as u64 + 1;
        loop {
            // Relaxed: the ticket only spreads pushes over cells; the CAS below decides.
            let t = self.tail.fetch_add(1, Ordering::Relaxed);
            let (cell, lap) = self.cell(t);
            // The usual state of a cell whose ticket comes up: emptied by the pop of the
            // previous lap, which set it to this lap. Tried first, without a load.
            let mut cur = cell_word(lap, EMPTY);
            while cur & u64::from(u32::MAX) == EMPTY && lap_le((cur >> 32) as u32, lap) {
                // Release: the popper's Acquire take then sees everything the owner wrote
                // before giving the token up (the position's hash). Relaxed on failure: we
                // look again.
                match cell.compare_exchange_weak(
                    cur,
                    cell_word(lap, v),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => cur = now,
                }
            }
            // The ticket was closed by a pop, or the cell holds a token: take another.
        }
    }

    /// Takes the token at the head, if any.
    pub(crate) fn pop(&self) -> Pop {
        // Relaxed: the head only picks a ticket; the cell CASes below decide.
        let h = self.head.load(Ordering::Relaxed);
        // Relaxed: a stale tail reads as empty, which the caller treats as "try elsewhere".
        if h >= self.tail.load(Ordering::Relaxed) {
            return Pop::Empty;
        }
        let (cell, hs) = self.cell(h);
        let next = cell_word(hs.wrapping_add(1), EMPTY);
        // Relaxed: the CASes below re-check the word; the take's CAS is the Acquire.
        let cur = cell.load(Ordering::Relaxed);
        let (lap, value) = ((cur >> 32) as u32, cur & u64::from(u32::MAX));
        if lap == hs && value != EMPTY {
            // Take: the CAS that empties the cell makes the token ours. Acquire: pairs with
            // the Release CAS of the push that put it here, so the position's hash read
            // after the pop is that push's. Relaxed on failure: another pop took it.
            if cell
                .compare_exchange(cur, next, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return Pop::Busy;
            }
            self.advance(h);
            return Pop::Got(value as usize - 1);
        }
        if value == EMPTY && lap_le(lap, hs) {
            // Close ticket h: its push (in flight, or never to come) now fails and retries
            // at the tail. Relaxed: the close publishes nothing; on failure the cell changed.
            if cell
                .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                return Pop::Busy;
            }
        } else if !lap_le(hs.wrapping_add(1), lap) {
            // A token with an older ticket: a stale read (its pop took it, or will, before
            // moving the head past it). Look again.
            return Pop::Busy;
        }
        // Ticket h is taken, closed or skipped by a push of a later lap: move the head past
        // it (helping a pop that emptied the cell and has not moved the head yet).
        self.advance(h);
        Pop::Gap
    }

    /// Moves the head from `h` to `h + 1` unless another pop did.
    #[inline]
    fn advance(&self, h: u64) {
        // Relaxed: the head only picks tickets; a failure means it already moved.
        let _ = self
            .head
            .compare_exchange(h, h + 1, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Tickets between head and tail: the queued tokens plus pushes in flight (a snapshot).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a sizing hint for the eviction choice.
        let t = self.tail.load(Ordering::Relaxed);
        let h = self.head.load(Ordering::Relaxed);
        t.saturating_sub(h) as usize
    }

    /// Tokens in the queue's cells (a snapshot).
    #[cfg(test)]
    pub(crate) fn tokens(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) & u64::from(u32::MAX) != EMPTY)
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
        let q = Queue::new(5);
        for p in 0..5 {
            q.push(p);
        }
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
    fn a_pop_closes_an_unfinished_push_which_retries_at_the_tail() {
        let q = Queue::new(2);
        // A push that took ticket 0 but has not written yet: the pop closes the ticket.
        q.tail.fetch_add(1, Ordering::Relaxed);
        assert_eq!(q.pop(), Pop::Gap);
        assert_eq!(q.pop(), Pop::Empty);
        // The late write (lap 0) fails on the closed cell (as `push`'s CAS would).
        let cur = q.cells[0].load(Ordering::Relaxed);
        assert!(!lap_le((cur >> 32) as u32, 0));
        // The retried push takes a fresh ticket and is popped normally.
        q.push(1);
        assert_eq!(q.pop(), Pop::Got(1));
        assert_eq!(q.tokens(), 0);
    }

    #[test]
    fn laps_wrap() {
        assert!(lap_le(u32::MAX, 0));
        assert!(lap_le(5, 5));
        assert!(!lap_le(6, 5));
        assert!(!lap_le(0, u32::MAX));
    }
}
