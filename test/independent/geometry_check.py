#!/usr/bin/env python3
"""Stage-2 geometry from first principles, for every granule and IPA size (stand-alone, stdlib).

Written independently of the stage2 project (none of its code or constants). For each granule
(4KB, 16KB, 64KB) and IPA size it derives:

  - levels: the fewest lookup levels (KVM's policy: at least 2) such that the start level, with at
    most 16 concatenated tables (an Arm ARM stage-2 feature), resolves every IPA bit above the
    page offset. One table resolves log2(granule) - 3 bits; concatenation adds up to 4 more.
  - startLevel = 4 - levels (level 3 holds pages);
  - pgdPages: 2^(bits resolved at the start level) entries, in tables of granule/8 entries;
  - blockSizes: sizes mapped by one entry at the levels that allow block descriptors (Arm ARM:
    4KB levels 1-2, 16KB level 2, 64KB level 2; 64KB level 1 only with FEAT_LPA, not used here),
    not above the start level, largest first;
  - vtcr: VTCR_EL2 with T0SZ = 64 - IPA bits, SL0 encoding the start level (the Arm ARM's SL0 table
    read backwards), IRGN0 = ORGN0 = 0b01 (write-back, read/write-allocate), SH0 = 0b11 (inner
    shareable), TG0 (4KB 0b00, 64KB 0b01, 16KB 0b10), PS from the PA size, bit 31 RES1.

Then it re-derives the walk parameters from that VTCR the way a walker would (start level from
SL0/TG0, bits at the start level from T0SZ) and checks they agree.

Usage: geometry_check.py [--pa-bits N]   (default: 48 for IPA sizes up to 48, else 52)
Output: a JSON array with one object per (granule, iaBits).
"""

import json
import sys

GRANULES = [4096, 16384, 65536]
TG0 = {4096: 0b00, 16384: 0b10, 65536: 0b01}
PS = {32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5, 52: 6}
# VTCR_EL2.SL0 -> start level, per granule (Arm ARM), without FEAT_TTST / FEAT_LPA2 encodings.
SL0_TO_LEVEL = {
    4096: {0: 2, 1: 1, 2: 0},
    16384: {0: 3, 1: 2, 2: 1},
    65536: {0: 3, 1: 2, 2: 1},
}
BLOCK_LEVELS = {4096: (1, 2), 16384: (2,), 65536: (2,)}
MAX_IA = {4096: 48, 16384: 48, 65536: 52}
MIN_LEVELS = 2  # KVM never uses a single-level stage 2


def lsb_of(page_shift, level):
    """Lowest address bit resolved at `level`, log2 of what one of its entries maps."""
    return page_shift + (page_shift - 3) * (3 - level)


def geometry(granule, ia_bits, pa_bits):
    page_shift = granule.bit_length() - 1
    stride = page_shift - 3
    levels = MIN_LEVELS
    while page_shift + levels * stride + 4 < ia_bits:
        levels += 1
    start = 4 - levels
    start_bits = ia_bits - lsb_of(page_shift, start)
    assert 1 <= start_bits <= stride + 4, (granule, ia_bits, start_bits)
    pgd_pages = 2 ** max(0, start_bits - stride)  # a start table may be smaller than a page
    block_levels = [l for l in BLOCK_LEVELS[granule] if l >= start]
    block_sizes = [2 ** lsb_of(page_shift, l) for l in sorted(block_levels)]
    sl0 = {lvl: code for code, lvl in SL0_TO_LEVEL[granule].items()}[start]
    vtcr = (
        (64 - ia_bits)
        | sl0 << 6
        | 0b01 << 8
        | 0b01 << 10
        | 0b11 << 12
        | TG0[granule] << 14
        | PS[pa_bits] << 16
        | 1 << 31
    )
    check_walk_parameters(vtcr, granule, ia_bits, start, pgd_pages)
    return {
        "granule": granule,
        "iaBits": ia_bits,
        "paBits": pa_bits,
        "levels": levels,
        "startLevel": start,
        "pgdPages": pgd_pages,
        "blockSizes": block_sizes,
        "vtcr": "0x%x" % vtcr,
    }


def check_walk_parameters(vtcr, granule, ia_bits, start, pgd_pages):
    """Reads the VTCR back as a walker would and checks it describes the same walk."""
    tg0 = (vtcr >> 14) & 3
    g = {v: k for k, v in TG0.items()}[tg0]
    assert g == granule
    t0sz = vtcr & 0x3F
    assert 64 - t0sz == ia_bits
    s = SL0_TO_LEVEL[g][(vtcr >> 6) & 3]
    assert s == start
    page_shift = g.bit_length() - 1
    start_bits = (64 - t0sz) - lsb_of(page_shift, s)
    assert 2 ** max(0, start_bits - (page_shift - 3)) == pgd_pages


def main(argv):
    fixed_pa = None
    if argv[1:2] == ["--pa-bits"]:
        fixed_pa = int(argv[2])
    out = []
    for granule in GRANULES:
        for ia in range(32, MAX_IA[granule] + 1):
            pa = fixed_pa if fixed_pa is not None else (48 if ia <= 48 else 52)
            if ia > pa:
                continue
            out.append(geometry(granule, ia, pa))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
