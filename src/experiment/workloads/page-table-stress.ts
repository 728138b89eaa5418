/**
 * page-table-stress: KVM's kvm_page_table_test, the arm64 stage-2 stress. Every vCPU walks the
 * whole region (the same region for all):
 *  - CREATE: one access per large page, even vCPUs writing and odd vCPUs reading: mappings (blocks
 *    with a huge-page backing) are created concurrently;
 *  - the host enables dirty logging (everything write-protected), then UPDATE: every vCPU writes
 *    every page, breaking blocks into pages and relaxing read-only pages;
 *  - the host disables logging, then ADJUST: every vCPU reads every page, and the first access of
 *    each large page is a write so that the split mappings coalesce into blocks again (in KVM the
 *    reads fault on the holes a split leaves; stage2 keeps a split block's other pages mapped, so
 *    reads alone would never fault: see ARCHITECTURE.md, map).
 * Each stage prints `KVM_<STAGE>_MAPPINGS: total execution time: %ld.%.9lds` and an empty line.
 */
import { AccessMode } from "../../sim/memstress.js";
import { parseInt32, parseSize } from "../args.js";
import { ConfigError } from "../errors.js";
import { hostOp, type RunContext, type Workload } from "../runner.js";
import { formatTs } from "../timespec.js";
import { type BackingName, backingPageSize, IA_BITS, PAGE, parseBacking } from "./memstress-vm.js";

export interface PageTableStressParams {
  vcpus: number;
  bytes: number;
  backing: BackingName;
}

const HELP = `  -v N     vCPUs (default 1, 1..64); even vCPUs write, odd vCPUs read in CREATE
  -b SIZE  size of the region every vCPU walks, [0-9]+[kmgt] (default 128M)
  -s TYPE  backing: anonymous, anonymous_thp, anonymous_hugetlb_2mb, anonymous_hugetlb_1gb`;

const GIB = 1024 ** 3;

export const pageTableStress: Workload<PageTableStressParams> = {
  name: "page-table-stress",
  summary: "kvm_page_table_test: CREATE, UPDATE (dirty logging) and ADJUST stages over one region",
  getopt: "hp:m:b:v:s:",
  help: HELP,
  parse(f) {
    if (f.has("m"))
      throw new ConfigError(
        "-m (guest mode) is not modelled: stage2 runs PA-bits:40,  VA-bits:48,  4K pages",
      );
    if (f.has("p"))
      throw new ConfigError(
        "-p (physical offset) is not modelled: the region sits at the top of the IPA space",
      );
    const get = (k: string) => f.get(k) as string;
    const p = {
      vcpus: f.has("v") ? parseInt32(get("v"), "-v (vCPUs)", 1, 64) : 1,
      bytes: f.has("b") ? parseSize(get("b"), "-b (test memory size)") : 128 * 1024 ** 2,
      backing: f.has("s") ? parseBacking(get("s"), "-s (backing)") : ("anonymous" as BackingName),
    };
    if (p.bytes <= 0 || p.bytes > 256 * GIB) throw new ConfigError(`-b: ${p.bytes} bytes is not in 1..256G`);
    return p;
  },
  vcpus: (p) => p.vcpus,
  params: (p) => ({ ...p }),
  layout(p) {
    const l = layoutOf(p);
    return {
      granule: PAGE,
      iaBits: IA_BITS,
      memslots: [{ ipa: l.gpa, size: l.size, hostPa: l.gpa, backing: p.backing }],
      poolPages: 2 * Math.ceil(l.size / (2 * 1024 ** 2)) + 4 * Math.ceil(l.size / GIB) + 64 * p.vcpus + 1024,
    };
  },
  run,
};

function layoutOf(p: PageTableStressParams) {
  const large = Math.max(backingPageSize(p.backing), PAGE);
  const size = Math.ceil(p.bytes / large) * large;
  const maxGfn = 2 ** (IA_BITS - 12) - 1;
  const gpa = Math.floor(((maxGfn - size / PAGE) * PAGE) / large) * large;
  return { large, size, gpa };
}

async function run(ctx: RunContext, p: PageTableStressParams): Promise<void> {
  const l = layoutOf(p);
  const pages = l.size / PAGE;
  const lpagePages = l.large / PAGE;
  ctx.line(`Random seed: 0x${ctx.seed.toString(16)}`);
  ctx.line(`Testing guest mode: PA-bits:${IA_BITS},  VA-bits:48,  4K pages`);
  ctx.line(`Testing memory backing src type: ${p.backing}`);
  ctx.line(`Testing memory backing src granularity: 0x${l.large.toString(16)}`);
  ctx.line(`Testing memory size(aligned): 0x${l.size.toString(16)}`);
  ctx.line(`Guest physical test memory offset: 0x${l.gpa.toString(16)}`);
  ctx.line(`Host  virtual  test memory offset: 0x${l.gpa.toString(16)}`);
  ctx.line(`Number of testing vCPUs: ${p.vcpus}`);
  const slices = Array.from({ length: p.vcpus }, (_, v) => ({
    gpa: l.gpa,
    pages,
    pageSize: PAGE,
    seed: 1,
    vcpu: v,
  }));
  // KVM_BEFORE_MAPPINGS: the vCPUs check in with an empty pass.
  const { host, finished } = await ctx.startMemstress(slices, (h) => h.setAccess(0, false, AccessMode.NONE));
  await host.waitAll(0);
  ctx.line("Started all vCPUs successfully");
  const slot = 0;
  let it = 0;
  /** One stage: its passes back to back (each set up by a function), timed together. */
  const stage = async (name: string, ...passes: (() => void)[]) => {
    const t0 = process.hrtime.bigint();
    for (const setup of passes) {
      setup();
      host.start(++it);
      await host.waitAll(it);
    }
    const ns = process.hrtime.bigint() - t0;
    ctx.phase(name, ns);
    ctx.line(`${name}: total execution time: ${formatTs(ns)}`);
    ctx.line("");
  };
  ctx.progress("stage", 0, 3);
  await stage("KVM_CREATE_MAPPINGS", () => {
    host.setAccess(0, false, AccessMode.WRITE_IF_EVEN_VCPU);
    host.setRange(0, 0, lpagePages);
  });
  // Untimed in the selftest: not a phase here either (the trace still shows the write-lock hold).
  hostOp(ctx, () => ctx.vm.enableDirtyLogging(slot, { manualProtect: false }));
  ctx.progress("stage", 1, 3);
  await stage("KVM_UPDATE_MAPPINGS", () => {
    host.setAccess(100, false, AccessMode.WRITE);
    host.setRange(0, 0, 1);
  });
  hostOp(ctx, () => ctx.vm.disableDirtyLogging(slot));
  ctx.progress("stage", 2, 3);
  await stage(
    "KVM_ADJUST_MAPPINGS",
    () => {
      host.setAccess(100, false, AccessMode.WRITE);
      host.setRange(0, 0, lpagePages);
    },
    () => {
      host.setAccess(0, false, AccessMode.READ);
      host.setRange(0, 0, 1);
    },
  );
  ctx.progress("stage", 3, 3);
  host.quit();
  await finished;
}
