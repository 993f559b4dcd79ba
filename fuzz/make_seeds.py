#!/usr/bin/env python3
"""Writes the hand-made seed inputs of fuzz/corpus/handle_ops/seed-*.

Each seed is an `Input` of fuzz_targets/handle_ops.rs in `arbitrary` 1.x's
encoding: an enum is a little-endian u32 `v` choosing variant
`(v * variants) >> 32`; integers are little-endian; the op list (the last
field) is "a byte with its low bit set, then an op", repeated. Keep the
variant lists below in the order of the Rust enums. Check a seed with
`cargo fuzz fmt handle_ops corpus/handle_ops/seed-...`.
"""
import os
import struct

POLICY = ["Lru", "Clock", "Fifo", "S3Fifo"]
LEN = ["Small", "Boundary", "Any"]
POS = ["At", "FromEnd", "PastEnd", "NearMax"]
DATA = ["Bytes", "Pattern", "Copy"]
AMOUNT = ["Zero", "Bytes", "Pages", "CostOf", "All"]
OP = ["New", "NewZeroed", "DropHandle", "Upgrade", "DropGuard", "UpgradeMut", "ReadGuard", "Discard",
      "Reclaim", "ReadAt", "WriteAt", "CopyWithin", "CompareAt", "Find", "Fill", "CheckAll"]
BOUNDARY = [0, 1, 15, 16, 17, 64, 65, 128, 129, 2047, 2048, 2049, 4095, 4096, 4097, 65536]


def variant(names, name):
    k, n = names.index(name), len(names)
    v = -(-k * 2**32 // n)  # smallest v with (v * n) >> 32 == k
    assert (v * n) >> 32 == k
    return struct.pack("<I", v)


def u8(x):
    return struct.pack("<B", x)


def u16(x):
    return struct.pack("<H", x)


def length(kind, x):
    if kind == "Boundary":
        return variant(LEN, kind) + u8(BOUNDARY.index(x))
    return variant(LEN, kind) + (u8(x) if kind == "Small" else u16(x))


def pos(kind, x):
    return variant(POS, kind) + (u16(x) if kind == "At" else u8(x))


def op(name, *fields):
    return u8(1) + variant(OP, name) + b"".join(fields)


def amount(kind, x=0):
    b = variant(AMOUNT, kind)
    return b + {"Bytes": u16(x), "Pages": u8(x), "CostOf": u8(x)}.get(kind, b"")


def pattern(len_kind, n, seed):
    return variant(DATA, "Pattern") + length(len_kind, n) + u8(seed)


def copy(frm, len_kind, n, tweak=None):
    t = u8(0) if tweak is None else u8(1) + u16(tweak[0]) + u8(tweak[1])
    return variant(DATA, "Copy") + frm + length(len_kind, n) + t


SEEDS = {
    # One small handle through every byte-offset op, in bounds.
    "seed-offsets": variant(POLICY, "Clock") + b"".join([
        op("New", u8(0), length("Small", 100), u8(7)),
        op("ReadAt", u8(0), pos("At", 10), length("Small", 20)),
        op("WriteAt", u8(0), pos("At", 5), pattern("Small", 10, 3)),
        op("CompareAt", u8(0), pos("At", 5), copy(pos("At", 5), "Small", 12)),
        op("CompareAt", u8(0), pos("At", 5), copy(pos("At", 5), "Small", 12, (3, 1))),
        op("Find", u8(0), u8(9), pos("At", 0), pos("FromEnd", 0)),
        op("Fill", u8(0), pos("At", 40), pos("At", 60), u8(0xEE)),
        op("CopyWithin", u8(0), pos("At", 30), pos("At", 70), pos("At", 45)),
        op("UpgradeMut", u8(0), pos("At", 99), u8(1)),
        op("ReadGuard", u8(0), pos("FromEnd", 1)),
        op("CheckAll"),
    ]),
    # Pins against discard and reclaim, small and large handles.
    "seed-pins": variant(POLICY, "Lru") + b"".join([
        op("New", u8(0), length("Boundary", 2049), u8(1)),
        op("New", u8(1), length("Small", 64), u8(2)),
        op("NewZeroed", u8(2), length("Any", 8192)),
        op("New", u8(3), length("Small", 0), u8(0)),
        op("Upgrade", u8(1)),
        op("Upgrade", u8(1)),
        op("Reclaim", amount("All")),
        op("Discard", u8(1)),
        op("DropGuard", u8(1)),
        op("Discard", u8(1)),
        op("DropGuard", u8(1)),
        op("Discard", u8(1)),
        op("Upgrade", u8(1)),
        op("ReadAt", u8(2), pos("At", 0), length("Small", 8)),
        op("DropHandle", u8(2)),
        op("CheckAll"),
    ]),
    # Out-of-range and overflowing offsets, before and after a discard.
    "seed-bounds": variant(POLICY, "Fifo") + b"".join([
        op("New", u8(3), length("Small", 16), u8(0x40)),
        op("ReadAt", u8(3), pos("NearMax", 0), length("Small", 2)),
        op("WriteAt", u8(3), pos("PastEnd", 1), pattern("Small", 1, 0)),
        op("CopyWithin", u8(3), pos("FromEnd", 0), pos("At", 0), pos("At", 0)),
        op("CopyWithin", u8(3), pos("At", 0), pos("At", 8), pos("FromEnd", 4)),
        op("Find", u8(3), u8(0x41), pos("At", 2), pos("PastEnd", 1)),
        op("Fill", u8(3), pos("NearMax", 3), pos("NearMax", 1), u8(0)),
        op("CompareAt", u8(3), pos("FromEnd", 0), pattern("Small", 1, 0)),
        op("Discard", u8(3)),
        op("ReadAt", u8(3), pos("At", 10), length("Small", 7)),
        op("ReadAt", u8(3), pos("At", 10), length("Small", 6)),
        op("Fill", u8(3), pos("At", 0), pos("At", 16), u8(1)),
        op("UpgradeMut", u8(3), pos("At", 0), u8(0)),
    ]),
    # Reclaim targets against a mix of sizes with some slots pinned.
    "seed-reclaim": variant(POLICY, "S3Fifo") + b"".join([
        op("New", u8(0), length("Boundary", 65536), u8(5)),
        op("New", u8(1), length("Boundary", 4097), u8(6)),
        op("New", u8(2), length("Boundary", 2048), u8(7)),
        op("New", u8(4), length("Boundary", 17), u8(8)),
        op("NewZeroed", u8(5), length("Boundary", 4096)),
        op("Upgrade", u8(0)),
        op("Upgrade", u8(4)),
        op("Reclaim", amount("Zero")),
        op("Reclaim", amount("Bytes", 1)),
        op("Reclaim", amount("Pages", 1)),
        op("Reclaim", amount("CostOf", 1)),
        op("DropGuard", u8(0)),
        op("Reclaim", amount("Pages", 20)),
        op("New", u8(0), length("Any", 3000), u8(9)),
        op("WriteAt", u8(0), pos("At", 2990), pattern("Small", 10, 1)),
        op("CheckAll"),
    ]),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "handle_ops")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(name, len(data), "bytes")
