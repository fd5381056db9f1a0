//! Hash tags and the bucket control word, matched with SWAR (eight bytes at once in a `u64`).
//!
//! Control word of a bucket, little-endian byte order:
//!
//! ```text
//! byte:  0     1     2     3     4     5     6     7
//!       tag0  tag1  tag2  tag3  tag4  tag5  tag6  meta
//! ```
//!
//! `tagN` is `0` when slot N has held no published entry, otherwise the top 8 hash bits of
//! the entry published there, with 0 mapped to 1 (so never zero; kept after the entry is
//! removed). `meta` bit 0 is the sticky *overflow* flag: some insert walked past this bucket
//! because it was full, so a lookup that misses here must look at the next bucket.
//!
//! Matching is exact: a slot whose tag differs is never reported, so a lookup dereferences a
//! wrong entry (an extra cache miss) only for a true 8-bit tag collision, about 1 in 255 per
//! other occupied slot of the bucket.

/// Number of slots in a bucket (bytes 0..7 of the control word are their tags).
pub(crate) const SLOTS: usize = 7;

/// `meta` bit: an insert probed past this bucket.
pub(crate) const OVERFLOW: u64 = 1 << 56;

const LSB: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
/// The high bit of each tag byte (bytes 0..7), excluding the meta byte.
const TAG_MSBS: u64 = 0x0080_8080_8080_8080;

/// The tag stored for `hash`: its top eight bits, with 0 mapped to 1 so a tag is never zero.
#[inline]
pub(crate) fn tag_of(hash: u64) -> u8 {
    ((hash >> 56) as u8).max(1)
}

/// The control-word bits that hold `tag` in slot `i`.
#[inline]
pub(crate) fn tag_bits(i: usize, tag: u8) -> u64 {
    (tag as u64) << (8 * i)
}

/// The tag byte of slot `i`.
#[inline]
pub(crate) fn tag_at(ctrl: u64, i: usize) -> u8 {
    (ctrl >> (8 * i)) as u8
}

/// Slots whose tag byte equals `tag`, as a bit set of byte high bits (exactly those: the
/// zero-byte test below has no borrow between bytes). Callers confirm each by its key.
#[inline]
pub(crate) fn match_tag(ctrl: u64, tag: u8) -> BitIter {
    let x = ctrl ^ (LSB.wrapping_mul(tag as u64));
    // A byte of x is zero iff adding 0x7f to its low seven bits leaves the high bit clear and
    // its own high bit is clear; the addition cannot carry into the next byte.
    BitIter(!(((x & LOW7).wrapping_add(LOW7)) | x) & TAG_MSBS)
}

/// Slots whose tag byte is zero (no entry published there yet), in slot order.
#[inline]
pub(crate) fn untagged(ctrl: u64) -> BitIter {
    // `match_tag` is exact for any byte value, zero included.
    match_tag(ctrl, 0)
}

/// Iterator over slot indices in a byte-high-bit mask.
#[derive(Clone, Copy)]
pub(crate) struct BitIter(u64);

impl Iterator for BitIter {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize / 8;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_never_zero() {
        assert_eq!(tag_of(0), 1);
        assert_eq!(tag_of(1 << 56), 1);
        assert_eq!(tag_of(0x80 << 56), 0x80);
        assert_eq!(tag_of(u64::MAX), 0xff);
    }

    #[test]
    fn match_is_exact() {
        // Every tag against every neighbour value, including tag ^ 1 above a true match
        // (where the plain has-zero-byte trick borrows and reports a false positive).
        for tag in 1..=255u8 {
            for other in 0..=255u8 {
                let ctrl = tag_bits(0, tag) | tag_bits(1, other) | tag_bits(3, tag) | OVERFLOW;
                let got: Vec<usize> = match_tag(ctrl, tag).collect();
                let mut expect = vec![0, 3];
                if other == tag {
                    expect.insert(1, 1);
                }
                assert_eq!(got, expect, "tag {tag:#x} other {other:#x}");
            }
        }
    }

    #[test]
    fn match_finds_every_true_match() {
        for tag in [0x01u8, 0x7f, 0x80, 0x81, 0xc3, 0xff] {
            for pattern in 0u32..128 {
                let mut ctrl = OVERFLOW;
                let mut expect = vec![];
                for i in 0..SLOTS {
                    if pattern & (1 << i) != 0 {
                        ctrl |= tag_bits(i, tag);
                        expect.push(i);
                    } else if i % 2 == 0 {
                        ctrl |= tag_bits(i, tag ^ 0x01);
                    }
                }
                let got: Vec<usize> = match_tag(ctrl, tag).collect();
                for e in &expect {
                    assert!(got.contains(e), "tag {tag:#x} pattern {pattern:#b}");
                }
                assert!(got.iter().all(|&i| i < SLOTS));
            }
        }
    }

    #[test]
    fn untagged_lists_zero_bytes_in_order() {
        let ctrl = tag_bits(1, 0x80) | tag_bits(2, 0x01) | tag_bits(5, 0xff) | OVERFLOW;
        assert_eq!(untagged(ctrl).collect::<Vec<_>>(), vec![0, 3, 4, 6]);
        assert_eq!(untagged(OVERFLOW).count(), SLOTS);
        assert_eq!(untagged(u64::MAX).count(), 0);
    }

    #[test]
    fn match_ignores_meta_byte_and_empty_slots() {
        let ctrl = !TAG_MSBS; // every tag byte 0x7f, meta 0xff
        assert_eq!(match_tag(ctrl, 0xff).count(), 0);
        assert_eq!(match_tag(u64::MAX, 0xff).count(), 7);
        assert_eq!(match_tag(0, 0x80).count(), 0);
    }
}
