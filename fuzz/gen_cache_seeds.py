#!/usr/bin/env python3
"""Writes the hand-written seed inputs of fuzz/corpus/cache_ops/ (the seed-* files).

The encoding mirrors fuzz_targets/cache_ops.rs (arbitrary, little-endian integers):

    header: capacity u8, flags u8, budget u8, ttl u8, tti u8, keys u8, hasher u8
    op:     code u8, key u8, a u8, b u8

capacity % 65; flags: 1 weigher (budget), 2 builder time-to-live (TTLS[ttl % 8]),
4 time-to-idle (16 * (1 + tti % 16) ms), 8 end by dropping the cache (else clear first);
keys: 1 + keys % 96 distinct keys; hasher % 4: foldhash, constant, few, identity.
`code % 32` is the operation (OP below, the first code `Input::arbitrary` maps to it).
Check a file's decoding with `cargo +nightly fuzz fmt cache_ops FILE` (from fuzz/).

Usage: python3 fuzz/gen_cache_seeds.py [OUT_DIR]   (default: fuzz/corpus/cache_ops)
"""

import os
import struct
import sys

OP = {
    "insert": 0, "insert_ttl": 4, "insert_versioned": 6, "remove": 9, "remove_versioned": 10,
    "get": 11, "contains_key": 14, "get_or_insert_with": 15, "try_err": 17, "try_ok": 18,
    "purge_expired": 19, "retain": 20, "clear": 21, "advance": 22, "check": 25,
    "insert_range": 26, "get_range": 28,
}
# TTLS index (ms): 0, 1, 2, 5, 16, 50, 400, never
TTL = {0: 0, 1: 1, 2: 2, 5: 3, 16: 4, 50: 5, 400: 6, None: 7}
HASHERS = ["foldhash", "constant", "few", "identity"]


def op(kind, key=0, a=0, b=0):
    return struct.pack("<BBBB", OP[kind], key, a, b)


def header(capacity, keys, weigher=None, ttl=None, tti=None, drop_end=False, hasher="foldhash"):
    flags = (1 if weigher is not None else 0) | (2 if ttl is not None else 0)
    flags |= (4 if tti is not None else 0) | (8 if drop_end else 0)
    return struct.pack("<BBBBBBB", capacity, flags, weigher or 0,
                       TTL[ttl] if ttl is not None else 0,
                       (tti // 16 - 1) if tti else 0, keys - 1, HASHERS.index(hasher))


def advance(ms):
    # a % 32 units of 1 ms (b = 0)
    assert ms < 32
    return op("advance", 0, ms, 0)


def basic():
    ops = [op("insert", k, 1) for k in range(6)]
    ops += [op("get", k) for k in range(8)]
    ops += [op("contains_key", 3), op("remove", 3), op("remove", 3), op("check"),
            op("insert", 3, 2), op("get", 3), op("clear"), op("get", 1)]
    return ops


def eviction():
    """More keys than capacity; hits set reference bits; the hand sweeps."""
    ops = [op("insert_range", 0, 1, 40), op("get_range", 0, 0, 4), op("insert_range", 20, 1, 30)]
    ops += [op("get", k) for k in range(0, 40, 3)] + [op("check")]
    return ops


def ttl():
    ops = [op("insert_ttl", k, 1, TTL[t]) for k, t in enumerate([0, 1, 5, 16, 50, None])]
    ops += [op("get", 0), op("get", 1), advance(2), op("get", 1), op("get", 2), op("check"),
            advance(10), op("purge_expired"), op("get", 3), advance(20), op("retain", 0, 1, 3),
            op("insert_ttl", 4, 1, TTL[400]), op("insert", 4, 2), advance(31), op("check")]
    return ops


def versions():
    ops = [op("insert_versioned", 1, 1, 5), op("insert_versioned", 1, 1, 3), op("get", 1),
           op("insert_versioned", 1, 1, 9), op("get", 1), op("remove_versioned", 1, 0, 4),
           op("remove_versioned", 1, 0, 9), op("insert_versioned", 1, 1, 2), op("get", 1),
           op("insert", 1, 1), op("insert_versioned", 1, 1, 1), op("get", 1),
           op("insert_versioned", 2, 1, 7), op("insert_ttl", 2, 1, TTL[1]), advance(3),
           op("insert_versioned", 2, 1, 1), op("get", 2), op("check")]
    return ops


def loaders():
    ops = [op("get_or_insert_with", 1, 2), op("get_or_insert_with", 1, 3), op("try_err", 2),
           op("try_err", 1), op("try_ok", 2, 1), op("try_ok", 2, 4), op("get", 2),
           op("remove", 1), op("get_or_insert_with", 1, 5), op("check")]
    return ops


def weights():
    ops = [op("insert", k, w) for k, w in enumerate([3, 5, 7, 0, 15, 1, 2, 9])]
    ops += [op("get", 0), op("insert", 0, 12), op("insert", 1, 0), op("insert_range", 10, 4, 20),
            op("check"), op("retain", 0, 2, 1), op("insert_versioned", 2, 15, 4)]
    return ops


def idle():
    ops = [op("insert", k, 1) for k in range(4)]
    for _ in range(6):
        ops += [advance(10), op("get", 0), op("contains_key", 1), op("check")]
    ops += [advance(31), advance(31), op("get", 0), op("purge_expired"), op("check")]
    return ops


def seeds():
    yield "seed-basic", header(8, 10) + b"".join(basic())
    yield "seed-basic-drop", header(8, 10, drop_end=True) + b"".join(basic())
    for cap in (1, 4, 16, 64):
        for h in ("foldhash", "constant"):
            yield f"seed-eviction-{cap}-{h}", header(cap, 60, hasher=h) + b"".join(eviction())
    yield "seed-capacity-0", header(0, 8) + b"".join(basic() + loaders())
    yield "seed-ttl", header(16, 16) + b"".join(ttl())
    yield "seed-ttl-default", header(4, 12, ttl=5, hasher="few") + b"".join(ttl() + eviction())
    yield "seed-versions", header(8, 4) + b"".join(versions())
    yield "seed-versions-small", header(2, 4, hasher="identity") + b"".join(versions())
    yield "seed-loaders", header(2, 4) + b"".join(loaders())
    for budget in (0, 8, 20, 255):
        yield f"seed-weights-{budget}", header(16, 32, weigher=budget) + b"".join(weights())
    yield "seed-idle", header(8, 8, tti=32) + b"".join(idle())
    yield "seed-everything", (header(6, 20, weigher=24, ttl=50, tti=64, hasher="few")
                              + b"".join(basic() + eviction() + ttl() + versions() + loaders()
                                         + weights() + idle()))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "cache_ops")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
