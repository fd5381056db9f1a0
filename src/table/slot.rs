//! What a slot word can hold, and the transitions between those states.
//!
//! A slot is one `AtomicPtr<Entry>`. Entries are aligned to 8 bytes, so the three low bits
//! of a pointer are free to mark states:
//!
//! ```text
//! value                      state      meaning
//! 0                          EMPTY      never claimed in this table
//! p                          LIVE       holds entry p (its tag may still be unpublished)
//! 0b001                      TOMBSTONE  held an entry that was removed; never reused
//! p | 0b010                  FROZEN     entry p is being moved to the next table; read-only
//! p | 0b100                  RESERVED   a copy of p placed by a migration, not yet committed
//! ((i + 1) << 3) | 0b110     COPIED(i)  moved: the entry is in slot i of the next table
//! 0b110                      COPIED     moved, nothing to carry (was empty or removed)
//! ```
//!
//! Transitions (no others exist):
//!
//! ```text
//! EMPTY    -> LIVE (insert)  | RESERVED (migration copy into a new table) | COPIED (freeze)
//! LIVE p   -> LIVE q (replace, same key) | TOMBSTONE (remove) | FROZEN p (freeze)
//! FROZEN p -> COPIED(i) (copy committed)
//! RESERVED -> LIVE p (copy published) | TOMBSTONE (orphan copy undone) | COPIED (freeze)
//! TOMBSTONE -> COPIED (freeze)
//! ```
//!
//! Because nothing ever returns to EMPTY, the first EMPTY slot of a probe sequence is the
//! same for every thread that sees it, which is what keeps keys unique without locks.

use super::Entry;

const TOMB: usize = 0b001;
const FROZEN_BIT: usize = 0b010;
const RESERVED_BIT: usize = 0b100;
const COPIED_BITS: usize = 0b110;
const LOW: usize = 0b111;

/// A decoded slot word.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Slot<K, V> {
    Empty,
    Live(*mut Entry<K, V>),
    Tombstone,
    Frozen(*mut Entry<K, V>),
    Reserved(*mut Entry<K, V>),
    /// Moved; `Some(i)` when the entry now lives in slot `i` of the next table.
    Copied(Option<usize>),
}

impl<K, V> Slot<K, V> {
    /// Decodes a raw slot word.
    #[inline]
    pub(crate) fn decode(raw: *mut Entry<K, V>) -> Self {
        let addr = raw.addr();
        match addr & LOW {
            0 if addr == 0 => Slot::Empty,
            0 => Slot::Live(raw),
            TOMB => Slot::Tombstone,
            FROZEN_BIT => Slot::Frozen(raw.map_addr(|a| a & !LOW)),
            RESERVED_BIT => Slot::Reserved(raw.map_addr(|a| a & !LOW)),
            COPIED_BITS if addr == COPIED_BITS => Slot::Copied(None),
            COPIED_BITS => Slot::Copied(Some((addr >> 3) - 1)),
            _ => unreachable!("invalid slot word {addr:#x}"),
        }
    }

    /// Whether `raw` is EMPTY or TOMBSTONE: a slot with no entry (without decoding the rest).
    #[inline(always)]
    pub(crate) fn is_vacant(raw: *mut Entry<K, V>) -> bool {
        raw.addr() <= TOMB
    }

    /// Whether `raw` is the TOMBSTONE word (without decoding the rest).
    #[inline(always)]
    pub(crate) fn is_tombstone(raw: *mut Entry<K, V>) -> bool {
        raw.addr() == TOMB
    }

    /// Whether `raw`, read from a slot whose tag is set (hence never EMPTY), is a LIVE entry
    /// pointer. The lookup fast path: no full decoding.
    #[inline(always)]
    pub(crate) fn is_tagged_live(raw: *mut Entry<K, V>) -> bool {
        raw.addr() & LOW == 0
    }

    /// Encodes this state as a slot word.
    #[inline]
    pub(crate) fn encode(&self) -> *mut Entry<K, V> {
        match *self {
            Slot::Empty => std::ptr::null_mut(),
            Slot::Live(p) => p,
            Slot::Tombstone => std::ptr::without_provenance_mut(TOMB),
            Slot::Frozen(p) => p.map_addr(|a| a | FROZEN_BIT),
            Slot::Reserved(p) => p.map_addr(|a| a | RESERVED_BIT),
            Slot::Copied(None) => std::ptr::without_provenance_mut(COPIED_BITS),
            Slot::Copied(Some(i)) => std::ptr::without_provenance_mut(((i + 1) << 3) | COPIED_BITS),
        }
    }
}

// Entries must leave the three low bits free.
const _: () = assert!(std::mem::align_of::<Entry<u8, u8>>() >= 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut e = Entry {
            key: 2u8,
            value: 3u8,
        };
        let p: *mut Entry<u8, u8> = &mut e;
        for s in [
            Slot::Empty,
            Slot::Live(p),
            Slot::Tombstone,
            Slot::Frozen(p),
            Slot::Reserved(p),
            Slot::Copied(None),
            Slot::Copied(Some(0)),
            Slot::Copied(Some(123_456)),
        ] {
            assert_eq!(Slot::decode(s.encode()), s);
        }
    }
}
