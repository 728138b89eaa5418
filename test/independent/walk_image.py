#!/usr/bin/env python3
"""Stand-alone ARMv8-A (VMSAv8-64) stage-2 translation walker for exported stage-2 images.

Written from the Arm Architecture Reference Manual rules (D8, "The AArch64 Virtual Memory System
Architecture"), independently of the stage2 project: it uses none of its code or constants. It
needs only the architectural registers that describe a stage 2 (VTCR_EL2, VTTBR_EL2) and the bytes
of physical memory holding the tables.

Input:  DIR/tables.json (vtcr, vttbr, poolBasePa, plus redundant keys it cross-checks) and
        DIR/tables.bin (physical memory from poolBasePa onwards, 64-bit little-endian descriptors).
Usage:  walk_image.py DIR IPA [IPA...]       IPAs in hex or decimal
        walk_image.py DIR --ipas-file FILE   one IPA per line
Output: one JSON object on stdout:
  {"config": {derived from VTCR/VTTBR}, "mismatches": [tables.json keys that disagree],
   "results": [{"ipa", "fault", "level", "descriptor", "pa", "s2ap", "xn", "af", "memAttr", "sh",
                "dbm", "contiguous", "res0"} ...]}
  fault: null (translated), "translation", "access-flag", "address-size" (architectural faults),
  "res0" (a table descriptor with RES0 bits set: CONSTRAINED UNPREDICTABLE, flagged instead), or
  "external" (a descriptor outside the image). Leaves always report their fields and pa, also
  with an access-flag or address-size fault; "res0" lists set RES0 bits of a leaf ("0x0" = none).
Exit status 0, or 2 when the image or the registers cannot describe a stage 2 at all.

Not modelled (none is enabled by a VTCR without optional feature bits): FEAT_LPA2, FEAT_TTST,
hardware access flag/dirty state (FEAT_HAFDBS; so AF == 0 is an Access flag fault), FEAT_S2FWB,
FEAT_XNX beyond reporting XN[1:0]. 52-bit output addresses with the 64KB granule (FEAT_LPA, PS=0b110)
are modelled.
"""

import json
import os
import struct
import sys

# VTCR_EL2.TG0: granule size.
TG0_GRANULE = {0b00: 4096, 0b01: 65536, 0b10: 16384}
# VTCR_EL2.PS: physical address size in bits.
PS_BITS = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}
# Start level of a stage-2 walk, from SL0 and the granule (Arm ARM, VTCR_EL2.SL0). Encodings that
# need FEAT_TTST (4KB SL0=0b11) or FEAT_LPA2 (16KB SL0=0b11) are treated as reserved.
SL0_START_LEVEL = {
    4096: {0b00: 2, 0b01: 1, 0b10: 0},
    16384: {0b00: 3, 0b01: 2, 0b10: 1},
    65536: {0b00: 3, 0b01: 2, 0b10: 1},
}


class ConfigError(Exception):
    pass


def bits(value, hi, lo):
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


def derive_config(vtcr, vttbr):
    """Everything a walk needs, from the two registers alone."""
    t0sz = bits(vtcr, 5, 0)
    sl0 = bits(vtcr, 7, 6)
    tg0 = bits(vtcr, 15, 14)
    ps = bits(vtcr, 18, 16)
    if tg0 not in TG0_GRANULE:
        raise ConfigError("VTCR_EL2.TG0 = 0b11 is reserved")
    if ps not in PS_BITS:
        raise ConfigError("VTCR_EL2.PS = %d is reserved" % ps)
    granule = TG0_GRANULE[tg0]
    pa_bits = PS_BITS[ps]
    offset_bits = granule.bit_length() - 1  # 12, 14, 16
    stride = offset_bits - 3  # index bits per full table
    ia_bits = 64 - t0sz
    if sl0 not in SL0_START_LEVEL[granule]:
        raise ConfigError("VTCR_EL2.SL0 = %d is reserved for the %dKB granule" % (sl0, granule // 1024))
    start = SL0_START_LEVEL[granule][sl0]
    # Bits of the IPA that the start-level lookup resolves; up to 16 tables may be concatenated
    # there, so it may resolve up to stride + 4 bits, and must resolve at least one.
    start_lsb = offset_bits + stride * (3 - start)
    start_bits = ia_bits - start_lsb
    if start_bits < 1 or start_bits > stride + 4:
        raise ConfigError(
            "T0SZ=%d with SL0=%d (start level %d) resolves %d bits at the start level: outside 1..%d"
            % (t0sz, sl0, start, start_bits, stride + 4)
        )
    concatenated = 1 << max(0, start_bits - stride)  # a start table may also be smaller than a page
    table_bytes = (1 << start_bits) * 8
    # VTTBR_EL2.BADDR[47:1]; bits below the start-level table size are RES0 (must be zero).
    baddr = vttbr & ((1 << 48) - 2)
    if baddr % max(table_bytes, 64) != 0:
        raise ConfigError(
            "VTTBR_EL2.BADDR 0x%x is not aligned to the %d-byte start-level table" % (baddr, table_bytes)
        )
    return {
        "granule": granule,
        "iaBits": ia_bits,
        "paBits": pa_bits,
        "startLevel": start,
        "levels": 4 - start,
        "concatenatedTables": concatenated,
        "startLevelEntries": 1 << start_bits,
        "rootPa": baddr,
        "vmid": bits(vttbr, 63, 48),
        "offsetBits": offset_bits,
        "stride": stride,
        "t0sz": t0sz,
        "sl0": sl0,
        "tg0": tg0,
        "ps": ps,
    }


def level_lsb(cfg, level):
    """Lowest IPA bit a lookup at `level` resolves; also log2 of the size one entry maps."""
    return cfg["offsetBits"] + cfg["stride"] * (3 - level)


def block_allowed(cfg, level):
    """Levels with block descriptors (Arm ARM, without FEAT_LPA2)."""
    g = cfg["granule"]
    if g == 4096:
        return level in (1, 2)
    if g == 16384:
        return level == 2
    # 64KB: level 2, and level 1 only with 52-bit output addresses (FEAT_LPA).
    return level == 2 or (level == 1 and cfg["paBits"] == 52)


def output_address(cfg, desc, lsb):
    """OA[47:lsb] from the descriptor, plus OA[51:48] in bits 15:12 for 64KB with PS = 52 bits."""
    oa = desc & ((1 << 48) - 1) & ~((1 << lsb) - 1)
    if cfg["granule"] == 65536 and cfg["paBits"] == 52:
        oa |= bits(desc, 15, 12) << 48
    return oa


class Memory:
    def __init__(self, path, base):
        with open(path, "rb") as f:
            self.data = f.read()
        self.base = base

    def read64(self, pa):
        off = pa - self.base
        if off < 0 or off + 8 > len(self.data) or pa % 8 != 0:
            return None
        return struct.unpack_from("<Q", self.data, off)[0]


def res0_bits(cfg, desc, lsb):
    """Set bits among those the architecture makes RES0 in a table, block or page descriptor
    (48-bit OA): bits 50:48, and address bits below the granule or block size (e.g. 16KB: 13:12,
    a 4KB level-2 block: 20:12), except OA[51:48] in bits 15:12 with 64KB and 52-bit PA."""
    addr_lo = ((1 << lsb) - 1) & ~((1 << 12) - 1)
    if cfg["granule"] == 65536 and cfg["paBits"] == 52:
        addr_lo &= ~(0xF << 12)
    return desc & (addr_lo | (0x7 << 48))


def translate(cfg, mem, ipa):
    out = {"ipa": "0x%x" % ipa, "fault": None, "level": None}
    start = cfg["startLevel"]
    if ipa >> cfg["iaBits"]:
        out.update(fault="translation", level=start, reason="IPA beyond the input address size")
        return out
    level = start
    table = cfg["rootPa"]
    index = ipa >> level_lsb(cfg, level)  # the start level indexes the concatenated tables
    while True:
        lsb = level_lsb(cfg, level)
        desc_pa = table + index * 8
        desc = mem.read64(desc_pa)
        if desc is None:
            out.update(fault="external", level=level, reason="descriptor at PA 0x%x is outside the image" % desc_pa)
            return out
        out["level"] = level
        out["descriptor"] = "0x%016x" % desc
        if desc & 1 == 0:
            out["fault"] = "translation"
            return out
        is_table_or_page = (desc >> 1) & 1
        if level < 3 and is_table_or_page:
            next_table = output_address(cfg, desc, cfg["offsetBits"])
            if next_table >> cfg["paBits"]:
                out.update(fault="address-size", reason="next-level table beyond PS")
                return out
            rz = res0_bits(cfg, desc, cfg["offsetBits"])
            if rz:
                out.update(fault="res0", reason="RES0 bits 0x%x set in a table descriptor" % rz)
                return out
            table = next_table
            level += 1
            index = bits(ipa, lsb - 1, level_lsb(cfg, level))
            continue
        if level == 3 and not is_table_or_page:
            out.update(fault="translation", reason="reserved block encoding at level 3")
            return out
        if level < 3 and not block_allowed(cfg, level):
            out.update(fault="translation", reason="block not allowed at level %d" % level)
            return out
        oa = output_address(cfg, desc, lsb)
        out.update(
            pa="0x%x" % (oa | (ipa & ((1 << lsb) - 1))),
            memAttr=bits(desc, 5, 2),
            s2ap=bits(desc, 7, 6),
            sh=bits(desc, 9, 8),
            af=bits(desc, 10, 10),
            dbm=bits(desc, 51, 51),
            contiguous=bits(desc, 52, 52),
            xn=bits(desc, 54, 53),
            res0="0x%x" % res0_bits(cfg, desc, lsb),
        )
        if oa >> cfg["paBits"]:
            out["fault"] = "address-size"
        elif out["af"] == 0:
            out["fault"] = "access-flag"
        return out


def parse_int(text):
    return int(text, 0)


def cross_check(cfg, meta):
    """tables.json keys that disagree with what the registers say."""
    expect = {
        "granule": cfg["granule"],
        "pageSize": cfg["granule"],
        "iaBits": cfg["iaBits"],
        "paBits": cfg["paBits"],
        "startLevel": cfg["startLevel"],
        "levels": cfg["levels"],
        "pgdPages": cfg["concatenatedTables"],
        "rootPa": cfg["rootPa"],
        "vmid": cfg["vmid"],
    }
    mismatches = []
    for key, want in expect.items():
        if key not in meta:
            mismatches.append("%s: missing" % key)
            continue
        got = meta[key]
        if isinstance(got, str):
            got = parse_int(got)
        if got != want:
            mismatches.append("%s: tables.json says %s, the registers say %s" % (key, meta[key], want))
    return mismatches


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    directory = argv[1]
    rest = argv[2:]
    if rest[:1] == ["--ipas-file"]:
        with open(rest[1]) as f:
            ipas = [parse_int(l.strip()) for l in f if l.strip()]
    else:
        ipas = [parse_int(a) for a in rest]
    with open(os.path.join(directory, "tables.json")) as f:
        meta = json.load(f)
    try:
        cfg = derive_config(parse_int(meta["vtcr"]), parse_int(meta["vttbr"]))
    except ConfigError as e:
        print(json.dumps({"error": str(e)}))
        return 2
    mem = Memory(os.path.join(directory, "tables.bin"), parse_int(str(meta["poolBasePa"])))
    results = [translate(cfg, mem, ipa) for ipa in ipas]
    public = {k: v for k, v in cfg.items() if k not in ("offsetBits", "stride")}
    public["rootPa"] = "0x%x" % cfg["rootPa"]
    print(json.dumps({"config": public, "mismatches": cross_check(cfg, meta), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
