/**
 * The VM that memstress_create_vm() builds, shared by the perf workloads: a 40-bit IPA with 4K
 * pages (KVM's default guest mode on arm64), the test region at the top of guest-physical space
 * aligned down to the backing page size, split evenly over `-x` memslots, one slice per vCPU (or
 * one shared region with `-o`).
 */
import { type Backing, BACKINGS, type MemslotSpec } from "../../kvm/memslot.js";
import { parseChoice } from "../args.js";
import { ConfigError } from "../errors.js";
import type { MemstressSlice } from "../../sim/memstress.js";

export const PAGE = 4096;
export const IA_BITS = 40;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** The selftests' backing source names stage2 models (vm_mem_backing_src_alias), as memslots take them. */
export const BACKING_NAMES: readonly Backing[] = BACKINGS;
export type BackingName = Backing;

/** get_backing_src_pagesz(): the page size each backing maps guest memory with. */
const PAGE_SIZES = new Map<Backing, number>([
  ["anonymous", PAGE],
  ["anonymous_thp", 2 * MIB],
  ["anonymous_hugetlb_2mb", 2 * MIB],
  ["anonymous_hugetlb_1gb", GIB],
]);

export function parseBacking(text: string, what: string): BackingName {
  return parseChoice(text, what, BACKING_NAMES);
}

/** The backing's page size (get_backing_src_pagesz). */
export function backingPageSize(name: BackingName): number {
  return PAGE_SIZES.get(name) as number;
}

export interface MemstressLayout {
  /** First byte of the test region and its size. */
  gpa: number;
  size: number;
  pages: number;
  slots: MemslotSpec[];
  pagesPerSlot: number;
  slices: MemstressSlice[];
  poolPages: number;
}

/** Most memory a run may ask for (every guest page is only a descriptor here, but tables are not). */
export const MAX_TEST_BYTES = 256 * GIB;

/**
 * memstress_create_vm(): places `vcpus * bytesPerVcpu` at the top of the IPA space, aligned down
 * to the backing page size, over `slots` memslots. Throws ConfigError for sizes that cannot work.
 */
export function memstressLayout(o: {
  vcpus: number;
  bytesPerVcpu: number;
  slots: number;
  backing: BackingName;
  overlap: boolean;
  seed: number;
}): MemstressLayout {
  if (o.bytesPerVcpu <= 0 || o.bytesPerVcpu % PAGE !== 0) {
    throw new ConfigError(
      `-b: ${o.bytesPerVcpu} bytes is not a positive multiple of the 4096-byte guest page`,
    );
  }
  const size = o.vcpus * o.bytesPerVcpu;
  if (size > MAX_TEST_BYTES) {
    throw new ConfigError(
      `-b: ${o.vcpus} vCPUs x ${o.bytesPerVcpu} bytes exceeds the ${MAX_TEST_BYTES / GIB} GiB a run may map`,
    );
  }
  const pages = size / PAGE;
  if (pages % o.slots !== 0) {
    throw new ConfigError(`-x: guest memory cannot be evenly divided into ${o.slots} slots`);
  }
  const regionEndGfn = 2 ** (IA_BITS - 12);
  if (pages >= regionEndGfn) {
    throw new ConfigError(`-b: ${size} bytes do not fit in the ${IA_BITS}-bit IPA space`);
  }
  const align = backingPageSize(o.backing);
  const gpa = Math.floor(((regionEndGfn - pages - 1) * PAGE) / align) * align;
  const pagesPerSlot = pages / o.slots;
  const slots: MemslotSpec[] = Array.from({ length: o.slots }, (_, i) => {
    const ipa = gpa + i * pagesPerSlot * PAGE;
    // Host memory at the same address: IPA and PA congruent modulo every block size.
    return { ipa, size: pagesPerSlot * PAGE, hostPa: ipa, backing: o.backing };
  });
  const slicePages = o.overlap ? pages : o.bytesPerVcpu / PAGE;
  const slices = Array.from({ length: o.vcpus }, (_, v) => ({
    gpa: o.overlap ? gpa : gpa + v * o.bytesPerVcpu,
    pages: slicePages,
    pageSize: PAGE,
    seed: o.seed,
    vcpu: v,
  }));
  // Every level-3 table twice over (a split subtree may wait for its grace period while the
  // replacement is built), the upper levels, and each vCPU's memory cache.
  const l3 = Math.ceil(size / (2 * MIB)) + o.slots;
  const poolPages = 2 * l3 + 2 * Math.ceil(size / GIB) + 64 * o.vcpus + 1024;
  return { gpa, size, pages, slots, pagesPerSlot, slices, poolPages };
}

/** Counts the set bits of a dirty bitmap. */
export function countBits(bitmap: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < bitmap.length; i++) {
    let w = bitmap[i] as number;
    w -= (w >>> 1) & 0x55555555;
    w = (w & 0x33333333) + ((w >>> 2) & 0x33333333);
    n += (((w + (w >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  }
  return n;
}
