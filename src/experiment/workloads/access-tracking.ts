/**
 * access-tracking: KVM's access_tracking_perf_test with page_idle aging. vCPUs populate, write and
 * read their memory (one in-order pass per phase); "mark memory idle" clears the young (access)
 * flag of every page under the write lock with no TLB invalidation, as page_idle does, counting
 * pages already idle; writing and reading idle memory then take access-flag faults under the read
 * lock. A vCPU whose pages are still idle for 10% or more after it touched them fails the run
 * (`-w N` with N > 0: a warning instead).
 */
import { AccessMode } from "../../sim/memstress.js";
import { parseInt32, parseSize } from "../args.js";
import { ConfigError } from "../errors.js";
import type { RunContext, Workload } from "../runner.js";
import { type BackingName, IA_BITS, memstressLayout, PAGE, parseBacking } from "./memstress-vm.js";

export interface AccessTrackingParams {
  vcpus: number;
  bytesPerVcpu: number;
  overlap: boolean;
  backing: BackingName;
  /**
   * -w: > 0 warn only, 0 fail, < 0 auto (the default): warn when the vCPU MMU model is on, whose
   * TLBs keep young translations that page_idle's clear-young does not flush (as hardware TLBs
   * do, the reason the selftest warns in a VM), fail when it is off.
   */
  warnOnly: number;
}

const HELP = `  -v N     vCPUs (default 1, 1..64)
  -b SIZE  memory each vCPU touches, [0-9]+[kmgt] (default 1G)
  -o       overlap: every vCPU walks the whole region; only vCPU 0 marks it idle
  -s TYPE  backing: anonymous, anonymous_thp, anonymous_hugetlb_2mb, anonymous_hugetlb_1gb
  -w N     10% or more pages still idle after an access: > 0 warn, 0 fail, < 0 auto (default:
           warn with the vCPU MMU model, whose TLBs page_idle does not flush; fail without it)`;

export const accessTracking: Workload<AccessTrackingParams> = {
  name: "access-tracking",
  summary: "access_tracking_perf_test: populate, write, read, mark idle (page_idle), touch idle memory",
  getopt: "hm:b:v:os:w:",
  help: HELP,
  parse(f) {
    if (f.has("m"))
      throw new ConfigError(
        "-m (guest mode) is not modelled: stage2 runs PA-bits:40,  VA-bits:48,  4K pages",
      );
    const get = (k: string) => f.get(k) as string;
    const p: AccessTrackingParams = {
      vcpus: f.has("v") ? parseInt32(get("v"), "-v (vCPUs)", 1, 64) : 1,
      bytesPerVcpu: f.has("b") ? parseSize(get("b"), "-b (bytes per vCPU)") : 1024 ** 3,
      overlap: f.has("o"),
      backing: f.has("s") ? parseBacking(get("s"), "-s (backing)") : "anonymous",
      warnOnly: f.has("w") ? parseInt32(get("w"), "-w (idle pages warning)", -1, 2 ** 31 - 1) : -1,
    };
    layoutOf(p);
    return p;
  },
  vcpus: (p) => p.vcpus,
  params: (p) => ({ ...p }),
  layout(p) {
    const l = layoutOf(p);
    return { granule: PAGE, iaBits: IA_BITS, memslots: l.slots, poolPages: l.poolPages };
  },
  run,
};

function layoutOf(p: AccessTrackingParams) {
  return memstressLayout({ ...p, slots: 1, seed: 1 });
}

async function run(ctx: RunContext, p: AccessTrackingParams): Promise<void> {
  const l = layoutOf(p);
  ctx.line(`Random seed: 0x${ctx.seed.toString(16)}`);
  ctx.line("Using page_idle for aging");
  ctx.line(`Testing guest mode: PA-bits:${IA_BITS},  VA-bits:48,  4K pages`);
  ctx.line(`guest physical test memory: [0x${l.gpa.toString(16)}, 0x${(l.gpa + l.size).toString(16)})`);
  const { host, finished } = await ctx.startMemstress(l.slices, (h) => {
    // Iteration 0 is an empty pass: the vCPUs only check in, as the selftest's threads start
    // before the first timed phase.
    h.setAccess(0, false, AccessMode.NONE);
  });
  await host.waitAll(0);
  ctx.line("");
  let iteration = 0;
  const report = (name: string, ns: bigint) => {
    ctx.phase(name, ns);
    const sec = ns / 1_000_000_000n;
    const nsec = (ns % 1_000_000_000n).toString().padStart(9, "0");
    ctx.line(`${name.padEnd(30)}: ${sec}.${nsec}s`);
  };
  const access = async (name: string, mode: AccessMode) => {
    host.setAccess(mode === AccessMode.WRITE ? 100 : 0, false, mode);
    const t0 = process.hrtime.bigint();
    host.start(++iteration);
    await host.waitAll(iteration);
    report(name, process.hrtime.bigint() - t0);
  };
  const markIdle = () => {
    const t0 = process.hrtime.bigint();
    const markers = p.overlap ? 1 : p.vcpus;
    for (let v = 0; v < markers; v++) {
      const s = l.slices[v] as { gpa: number; pages: number };
      // test-and-clear-young finds the pages accessed since the last mark; the rest were idle.
      const young = ctx.vm.testClearYoung(s.gpa, s.pages * PAGE);
      const stillIdle = s.pages - young;
      if (stillIdle >= s.pages / 10) tooManyIdle(ctx, p, v, stillIdle, s.pages);
    }
    report("Mark memory idle (page_idle)", process.hrtime.bigint() - t0);
  };
  const phases: [string, AccessMode | null][] = [
    ["Populating memory", AccessMode.WRITE],
    ["Writing to populated memory", AccessMode.WRITE],
    ["Reading from populated memory", AccessMode.READ],
    ["Mark memory idle (page_idle)", null],
    ["Writing to idle memory", AccessMode.WRITE],
    ["Mark memory idle (page_idle)", null],
    ["Reading from idle memory", AccessMode.READ],
  ];
  for (const [i, [name, mode]] of phases.entries()) {
    ctx.progress("phase", i, phases.length);
    if (mode === null) markIdle();
    else await access(name, mode);
  }
  ctx.progress("phase", phases.length, phases.length);
  host.quit();
  await finished;
}

function tooManyIdle(ctx: RunContext, p: AccessTrackingParams, v: number, idle: number, pages: number): void {
  const who = p.overlap ? "" : `vCPU${v}: `;
  const warn = p.warnOnly > 0 || (p.warnOnly < 0 && ctx.vm.options.mmu === true);
  if (warn) {
    ctx.line(
      `WARNING: ${who}Too many pages still idle (${idle} out of ${pages}), this will affect performance results.`,
    );
  } else {
    ctx.fail(`${who}Too many pages still idle (${idle} out of ${pages})`);
  }
}
