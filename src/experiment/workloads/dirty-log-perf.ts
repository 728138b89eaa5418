/**
 * dirty-log-perf: KVM's dirty_log_perf_test, line for line. vCPUs populate their memory (in order,
 * 100% writes), the host enables dirty logging, then each iteration the vCPUs dirty memory
 * (memstress passes with `-w` percent writes, in order or at random with `-a`) while the host times
 * the pass, then gets (and with manual protect, clears) the dirty log of every memslot. Finally
 * logging is disabled (with `-e` while the vCPUs keep running; they also finish one pass after it,
 * untimed, so that with huge-page backings their write faults map blocks again and unlink the 4K
 * tables under shared walks).
 *
 * Every iteration's dirty log is checked against the pages the guest really wrote, replayed from the
 * same Park-Miller draws on the host: with manual protect the log of iteration 1 is all ones
 * (KVM_DIRTY_LOG_INITIALLY_SET), and from then on, and every iteration without it (`-g`), the log
 * must equal the set of pages written in that iteration exactly.
 */
import { GuestReplay, AccessMode } from "../../sim/memstress.js";
import { parseInt32, parseSeed, parseSize } from "../args.js";
import { ConfigError } from "../errors.js";
import { hostOp, type RunContext, type Workload } from "../runner.js";
import { divTs, formatTs } from "../timespec.js";
import { type BackingName, countBits, IA_BITS, memstressLayout, PAGE, parseBacking } from "./memstress-vm.js";

export interface DirtyLogPerfParams {
  vcpus: number;
  bytesPerVcpu: number;
  iterations: number;
  writePercent: number;
  backing: BackingName;
  slots: number;
  random: boolean;
  overlap: boolean;
  seed: number;
  /** -e: vCPUs keep running while logging is disabled. */
  runWhileDisabling: boolean;
  /** Not -g: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with KVM_DIRTY_LOG_INITIALLY_SET. */
  manualProtect: boolean;
}

const HELP = `  -v N     vCPUs (default 1, 1..64)
  -b SIZE  memory each vCPU dirties, [0-9]+[kmgt] (default 1G)
  -i N     iterations, at least 2 (default 2)
  -w PCT   percentage of accesses that write (default 100)
  -s TYPE  backing: anonymous, anonymous_thp, anonymous_hugetlb_2mb, anonymous_hugetlb_1gb (default anonymous)
  -x N     memslots the region is split over (default 1)
  -a       random access order (default: in order)
  -o       overlap: every vCPU walks the whole region (default: disjoint slices)
  -r SEED  random seed (default 1)
  -e       keep the vCPUs running while dirty logging is disabled
  -g       no manual protect: get-dirty-log clears the log, enabling write-protects everything`;

const NOT_MODELLED = new Map([
  ["c", "-c (pin vCPUs to physical CPUs) is not modelled: worker threads are not pinned"],
  ["m", "-m (guest mode) is not modelled: stage2 runs PA-bits:40,  VA-bits:48,  4K pages"],
  ["n", "-n (nested) is not modelled"],
  ["p", "-p (physical offset) is not modelled: the region sits at the top of the IPA space"],
]);

export const dirtyLogPerf: Workload<DirtyLogPerfParams> = {
  name: "dirty-log-perf",
  summary: "dirty_log_perf_test: populate, enable dirty logging, dirty memory, get/clear the log",
  getopt: "ab:c:eghi:m:nop:r:s:v:x:w:",
  help: HELP,
  parse(f) {
    for (const [flag, why] of NOT_MODELLED) if (f.has(flag)) throw new ConfigError(why);
    const get = (k: string) => f.get(k) as string;
    const p: DirtyLogPerfParams = {
      vcpus: f.has("v") ? parseInt32(get("v"), "-v (vCPUs)", 1, 64) : 1,
      bytesPerVcpu: f.has("b") ? parseSize(get("b"), "-b (bytes per vCPU)") : 1024 ** 3,
      iterations: f.has("i") ? parseInt32(get("i"), "-i (iterations)", 2, 100000) : 2,
      writePercent: f.has("w") ? parseInt32(get("w"), "-w (write percentage)", 0, 100) : 100,
      backing: f.has("s") ? parseBacking(get("s"), "-s (backing)") : "anonymous",
      slots: f.has("x") ? parseInt32(get("x"), "-x (memslots)", 1, 512) : 1,
      random: f.has("a"),
      overlap: f.has("o"),
      seed: f.has("r") ? parseSeed(get("r"), "-r (seed)") : 1,
      runWhileDisabling: f.has("e"),
      manualProtect: !f.has("g"),
    };
    layoutOf(p); // refuse sizes that cannot work before anything starts
    return p;
  },
  vcpus: (p) => p.vcpus,
  seed: (p) => p.seed,
  params: (p) => ({ ...p }),
  layout(p) {
    const l = layoutOf(p);
    return { granule: PAGE, iaBits: IA_BITS, memslots: l.slots, poolPages: l.poolPages };
  },
  run,
};

function layoutOf(p: DirtyLogPerfParams) {
  return memstressLayout({
    vcpus: p.vcpus,
    bytesPerVcpu: p.bytesPerVcpu,
    slots: p.slots,
    backing: p.backing,
    overlap: p.overlap,
    seed: p.seed,
  });
}

async function run(ctx: RunContext, p: DirtyLogPerfParams): Promise<void> {
  const l = layoutOf(p);
  const vm = ctx.vm;
  const slotIds = l.slots.map((_, i) => i);
  ctx.line(`Test iterations: ${p.iterations}`);
  ctx.line(`Testing guest mode: PA-bits:${IA_BITS},  VA-bits:48,  4K pages`);
  ctx.line(`Random seed: 0x${p.seed.toString(16)}`);
  ctx.line(`guest physical test memory: [0x${l.gpa.toString(16)}, 0x${(l.gpa + l.size).toString(16)})`);

  // The host's mirror of every vCPU's draws, for the dirty-log check.
  const replays = l.slices.map((s) => new GuestReplay(s));
  const scratch = new Uint8Array(l.slices[0]?.pages ?? 0);
  const mirror = (writePct: number, random: boolean): Uint8Array => {
    const written = new Uint8Array(l.pages);
    replays.forEach((r, v) => {
      scratch.fill(0);
      r.pass(writePct, random, AccessMode.MIXED, scratch);
      const first = (((l.slices[v] as { gpa: number }).gpa - l.gpa) / PAGE) | 0;
      for (let i = 0; i < scratch.length; i++) if (scratch[i]) written[first + i] = 1;
    });
    return written;
  };

  // Populate: 100% writes, in order; timed from the vCPUs' release to the last one's pass.
  const { host, releasedNs, finished } = await ctx.startMemstress(l.slices, (h) => h.setAccess(100, false));
  await host.waitAll(0);
  const populate = process.hrtime.bigint() - releasedNs;
  ctx.phase("Populate memory", populate);
  ctx.line(`Populate memory time: ${formatTs(populate)}`);
  mirror(100, false);

  const enable = hostOp(ctx, () => {
    for (const id of slotIds) {
      vm.enableDirtyLogging(id, { manualProtect: p.manualProtect, initiallySet: p.manualProtect });
    }
  });
  ctx.phase("Enabling dirty logging", enable);
  ctx.line(`Enabling dirty logging time: ${formatTs(enable)}`);
  ctx.line("");
  host.setAccess(p.writePercent, p.random);

  let getTotal = 0n;
  let clearTotal = 0n;
  const dirtyPages: number[] = [];
  ctx.dirtyPages = dirtyPages;
  for (let it = 1; it <= p.iterations; it++) {
    ctx.progress("iteration", it - 1, p.iterations);
    const t0 = process.hrtime.bigint();
    host.start(it);
    await host.waitAll(it);
    const dirty = process.hrtime.bigint() - t0;
    ctx.phase(`Iteration ${it} dirty memory`, dirty);
    ctx.line(`Iteration ${it} dirty memory time: ${formatTs(dirty)}`);

    let logs: Uint32Array[] = [];
    const get = hostOp(ctx, () => {
      logs = slotIds.map((id) => vm.getDirtyLog(id));
    });
    getTotal += get;
    ctx.phase(`Iteration ${it} get dirty log`, get);
    ctx.line(`Iteration ${it} get dirty log time: ${formatTs(get)}`);
    dirtyPages.push(logs.reduce((n, b) => n + countBits(b), 0));
    // The replay runs every iteration (its generator must keep pace with the guest's); the first
    // log with manual protect is all ones whatever was written (KVM_DIRTY_LOG_INITIALLY_SET).
    const written = mirror(p.writePercent, p.random);
    checkLog(ctx, it, logs, l.pagesPerSlot, p.manualProtect && it === 1 ? null : written);

    if (p.manualProtect) {
      const clear = hostOp(ctx, () => {
        for (const id of slotIds) vm.clearDirtyLog(id, 0, l.pagesPerSlot);
      });
      clearTotal += clear;
      ctx.phase(`Iteration ${it} clear dirty log`, clear);
      ctx.line(`Iteration ${it} clear dirty log time: ${formatTs(clear)}`);
    }
  }
  ctx.progress("iteration", p.iterations, p.iterations);

  if (p.runWhileDisabling) host.start(-1);
  const disable = hostOp(ctx, () => {
    for (const id of slotIds) vm.disableDirtyLogging(id);
  });
  ctx.phase("Disabling dirty logging", disable);
  ctx.line(`Disabling dirty logging time: ${formatTs(disable)}`);
  if (p.runWhileDisabling) {
    // Let every vCPU finish a pass that began after logging was off (untimed): its write faults on
    // write-protected pages map blocks again, unlinking the 4K tables under shared walks.
    host.start(p.iterations + 1);
    await host.waitAll(p.iterations + 1);
  }
  host.quit();
  await finished;

  const n = p.iterations;
  ctx.line(
    `Get dirty log over ${n} iterations took ${formatTs(getTotal)}. (Avg ${formatTs(divTs(getTotal, n))}/iteration)`,
  );
  if (p.manualProtect) {
    ctx.line(
      `Clear dirty log over ${n} iterations took ${formatTs(clearTotal)}. (Avg ${formatTs(divTs(clearTotal, n))}/iteration)`,
    );
  }
}

/**
 * The log of one iteration against the pages the guest wrote (`expected`; null: every page, the
 * initially-set log). Records at most the first mismatch per iteration as a failure.
 */
function checkLog(
  ctx: RunContext,
  it: number,
  logs: Uint32Array[],
  pagesPerSlot: number,
  expected: Uint8Array | null,
): void {
  for (let s = 0; s < logs.length; s++) {
    const log = logs[s] as Uint32Array;
    for (let i = 0; i < pagesPerSlot; i++) {
      const inLog = ((log[i >>> 5] as number) >>> (i & 31)) & 1;
      const want = expected === null ? 1 : (expected[s * pagesPerSlot + i] as number);
      if (inLog !== want) {
        ctx.fail(
          `iteration ${it}: page ${s * pagesPerSlot + i} (memslot ${s}) is ${inLog ? "" : "not "}in the dirty log, ` +
            `but the guest ${want ? "wrote" : "did not write"} it`,
        );
        return;
      }
    }
  }
}
