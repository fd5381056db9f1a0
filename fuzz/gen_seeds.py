#!/usr/bin/env python3
"""Writes the hand-written seed inputs of fuzz/corpus/map_ops/ (the seed-* files).

The encoding mirrors fuzz_targets/map_ops.rs (arbitrary, little-endian integers):

    header: hasher u8, capacity u8, seed u32
    op:     code u8, key u8, value u16

`code & 31` is the operation kind (KIND below, the same table as `Op::decode`),
`code & 0x80` the map-level form, `(code >> 5) & 3` the variant (compute's mode).
Check a file's decoding with `cargo +nightly fuzz fmt map_ops FILE` (from fuzz/).

Usage: python3 fuzz/gen_seeds.py [OUT_DIR]   (default: fuzz/corpus/map_ops)
"""

import os
import struct
import sys

# Kind -> code & 31 (the first code Op::decode maps to that kind).
KIND = {
    "insert": 0, "get": 3, "get_key_value": 5, "contains_key": 6, "remove": 7,
    "remove_entry": 9, "get_or_insert": 10, "get_or_insert_with": 11, "update": 12,
    "update_or_insert": 13, "compute": 15, "retain": 17, "clear": 18, "len": 19,
    "check": 20, "insert_range": 21, "remove_range": 23, "extend_range": 25,
    "clone": 26, "clear_mut": 27, "rebuild": 28, "repin": 29, "hold": 30,
}
HASHERS = ["foldhash", "sip", "constant", "same_bucket", "same_tag", "few_hashes", "few_bits"]


def op(kind, key=0, value=0, map_level=False, variant=0):
    code = KIND[kind] | (variant << 5) | (0x80 if map_level else 0)
    return struct.pack("<BBH", code, key, value)


def seed(hasher, ops, capacity=0, hseed=0):
    return struct.pack("<BBI", HASHERS.index(hasher), capacity, hseed) + b"".join(ops)


def rng(kind, start_div4, n, value=0):
    """A range op over keys start_div4*4 .. +n (n < 64)."""
    assert n < 64
    return op(kind, start_div4, n + 64 * (value // 64))


def basic():
    ops = [op("insert", k, 100 + k) for k in range(10)]
    ops += [op("get", k) for k in range(12)]
    ops += [op("insert", 3, 7), op("get_key_value", 3), op("contains_key", 3),
            op("remove", 3), op("remove", 3), op("remove_entry", 4), op("contains_key", 4),
            op("len"), op("check")]
    return ops


def every_op(map_level):
    m = map_level
    ops = [op("insert", k, k * 3, m) for k in range(20)]
    ops += [op("get", 5, 0, m), op("get", 200, 0, m), op("contains_key", 6, 0, m),
            op("remove", 7, 0, m), op("get_or_insert", 7, 70), op("get_or_insert", 7, 71),
            op("get_or_insert_with", 8, 80, m), op("get_or_insert_with", 99, 990, m),
            op("update", 9, 2, m), op("update", 250, 2, m),
            op("update_or_insert", 10, 5, m), op("update_or_insert", 251, 5, m)]
    ops += [op("compute", k, 11, variant=v) for v in range(4) for k in (11, 12, 252)]
    ops += [op("retain", 1, 3, m), op("check"), op("clear", 0, 0, m), op("len"),
            op("insert", 1, 1, m), op("check")]
    return ops


def growth():
    """Ranges large enough for several doublings, then gets across them."""
    ops = [rng("insert_range", 4 * i, 63, 64 * i) for i in range(6)]
    ops += [op("check"), rng("remove_range", 4, 40), op("get", 20), op("get", 100),
            op("update_or_insert", 30, 1), op("compute", 31, 5, variant=3), op("check")]
    return ops


def churn():
    """Insert/remove the same range again and again: tombstones, cleaning migrations."""
    ops = []
    for i in range(12):
        ops += [rng("insert_range", 8 * (i % 3), 50, i), rng("remove_range", 8 * (i % 3), 50)]
    ops += [op("len"), rng("insert_range", 0, 30), op("check")]
    return ops


def owner_ops():
    ops = [rng("insert_range", 0, 40), op("clone"), op("check"), op("remove", 5),
           op("repin"), op("get", 5), op("rebuild", 0, 3), op("check"),
           rng("extend_range", 20, 33, 9), op("rebuild", 0, 500), op("check"),
           op("clear_mut"), op("len"), op("insert", 1, 2), op("clone"), op("check")]
    return ops


def held_refs():
    """References taken by get() must survive removes, replaces, growth and clear."""
    ops = [rng("insert_range", 0, 30)] + [op("hold", k) for k in range(10)]
    ops += [op("remove", k) for k in range(5)] + [op("update", k, 1) for k in range(5, 8)]
    ops += [op("insert", 8, 1), rng("insert_range", 4, 63), rng("insert_range", 20, 63),
            op("clear"), op("check"), op("repin"), op("len")]
    return ops


def seeds():
    yield "seed-basic", seed("foldhash", basic())
    yield "seed-every-op-handle", seed("sip", every_op(False))
    yield "seed-every-op-map", seed("foldhash", every_op(True), capacity=3)
    for h in HASHERS:
        yield f"seed-growth-{h}", seed(h, growth(), hseed=0x1234)
    for h in ("foldhash", "constant", "few_bits"):
        yield f"seed-churn-{h}", seed(h, churn(), capacity=8, hseed=77)
    for cap in (1, 7, 8, 14, 200):
        yield f"seed-capacity-{cap}", seed("same_tag", [rng("insert_range", 0, 60), op("check")],
                                           capacity=cap)
    yield "seed-held-refs", seed("foldhash", held_refs())
    yield "seed-held-refs-constant", seed("constant", held_refs(), hseed=3)
    yield "seed-owner-ops", seed("few_hashes", owner_ops(), capacity=2, hseed=5)
    yield "seed-same-bucket-every-op", seed("same_bucket", every_op(False), hseed=9)
    yield "seed-constant-every-op", seed("constant", every_op(True), hseed=1)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "map_ops")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
