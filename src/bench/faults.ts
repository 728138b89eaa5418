/**
 * Fault-handling benchmark: N vCPU workers populate disjoint regions with 4K pages, in shared
 * mode (read lock, RCU, compare-and-swap) and in the exclusive baseline (every fault takes the
 * write lock), with 1 and 2 vCPUs, all in one process so the figures are ratios measured side by
 * side. Each configuration runs `reps` times; the best (shortest) wall time counts.
 *
 * The four configurations above run with the MMU model off (the fault handler is called directly,
 * as before the model). A fifth runs shared, 1 vCPU, with the model on: every page is a guest
 * write through the vCPU's TLB and hardware walker (miss, translation fault, handler, retried
 * access). `mmuOverhead1v` is its populate time over the shared 1-vCPU time without the model.
 */
import { Vm } from "../kvm/vm.js";
import type { FaultMode } from "../kvm/fault.js";
import type { MemslotSpec } from "../kvm/memslot.js";
import { VcpuPool } from "../sim/host.js";
import type { BenchOptions } from "./options.js";

export interface FaultBenchResult {
  nsPerFault1v: number;
  nsPerFaultExclusive1v: number;
  nsPerFault2v: number;
  nsPerFaultExclusive2v: number;
  sharedSpeedup2v: number;
  exclusiveSpeedup2v: number;
  sharedOverExclusive1v: number;
  /** Shared, 1 vCPU, MMU model on: wall time per page populated. */
  nsPerPageMmu1v: number;
  /** 1-vCPU populate time with the MMU model over the time without it. */
  mmuOverhead1v: number;
  faultsPerVcpu: number;
  reps: number;
}

const GIB = 1024 ** 3;

interface Setup {
  vm: Vm;
  pool: VcpuPool;
  vcpus: number;
  bytesPerVcpu: number;
  best: number;
  /** Best wall time of a round, ms. */
  bestMs: number;
}

async function setUp(mode: FaultMode, vcpus: number, bytesPerVcpu: number, mmu: boolean): Promise<Setup> {
  const memslots: MemslotSpec[] = [
    { ipa: GIB, size: vcpus * bytesPerVcpu, hostPa: 0x100_0000_0000, backing: "anonymous" },
  ];
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 44,
    poolPages: vcpus * Math.ceil(bytesPerVcpu / 4096 / 512) + 64 + vcpus * 32,
    mode,
    vcpus,
    memslots,
    mmu,
  });
  return {
    vm,
    pool: new VcpuPool(vm),
    vcpus,
    bytesPerVcpu,
    best: Number.POSITIVE_INFINITY,
    bestMs: Number.POSITIVE_INFINITY,
  };
}

/** One round: the vCPUs populate their regions, then the host unmaps everything. Returns ns/fault and wall ms. */
async function round(s: Setup): Promise<[number, number]> {
  const cmds = Array.from({ length: s.vcpus }, (_, i) => ({
    type: "populate" as const,
    start: GIB + i * s.bytesPerVcpu,
    size: s.bytesPerVcpu,
  }));
  const phase = await s.pool.runPhase(cmds);
  const faults = phase.replies.reduce((sum, x) => sum + x.faults, 0);
  s.vm.unmap(GIB, s.vcpus * s.bytesPerVcpu);
  return [(phase.wallMs * 1e6) / faults, phase.wallMs];
}

async function tearDown(s: Setup): Promise<void> {
  await s.pool.close();
  const report = await s.vm.destroy();
  if (report.leakedPages.length > 0)
    throw new Error(`populate benchmark leaked ${report.leakedPages.length} pages`);
}

/**
 * Every configuration gets its own VM and workers; rounds run the configurations one after the
 * other (so a noisy moment hits them all alike), a first round warms the JIT up and is not
 * counted, and the best of the other `reps` rounds counts for each configuration.
 */
export async function runFaultBench(opts: BenchOptions = {}): Promise<FaultBenchResult> {
  const bytesPerVcpu = opts.quick ? 16 * 1024 * 1024 : 512 * 1024 * 1024;
  const reps = opts.quick ? 1 : 7;
  const configs: [FaultMode, number, boolean][] = [
    ["shared", 1, false],
    ["exclusive", 1, false],
    ["shared", 2, false],
    ["exclusive", 2, false],
    ["shared", 1, true],
  ];
  const setups: Setup[] = [];
  try {
    for (const [mode, vcpus, mmu] of configs) setups.push(await setUp(mode, vcpus, bytesPerVcpu, mmu));
    for (let r = 0; r <= reps; r++) {
      for (const [i, s] of setups.entries()) {
        const [mode, vcpus, mmu] = configs[i] as [FaultMode, number, boolean];
        opts.progress?.(
          r * setups.length + i,
          (reps + 1) * setups.length,
          `round ${r}: ${mode}, ${vcpus} vCPU${mmu ? ", MMU model" : ""}`,
        );
        const [ns, ms] = await round(s);
        if (r > 0) {
          s.best = Math.min(s.best, ns);
          s.bestMs = Math.min(s.bestMs, ms);
        }
      }
    }
    for (const s of setups) await tearDown(s);
  } catch (e) {
    for (const s of setups) await s.pool.terminate();
    throw e;
  }
  const [s1, e1, s2, e2] = setups.map((s) => s.best) as [number, number, number, number];
  const [shared1, , , , mmu1] = setups as [Setup, Setup, Setup, Setup, Setup];
  // Throughput with 2 vCPUs over throughput with 1: (1/ns2) / (1/ns1).
  return {
    nsPerFault1v: s1,
    nsPerFaultExclusive1v: e1,
    nsPerFault2v: s2,
    nsPerFaultExclusive2v: e2,
    sharedSpeedup2v: s1 / s2,
    exclusiveSpeedup2v: e1 / e2,
    sharedOverExclusive1v: s1 / e1,
    nsPerPageMmu1v: (mmu1.bestMs * 1e6) / (bytesPerVcpu / 4096),
    mmuOverhead1v: mmu1.bestMs / shared1.bestMs,
    faultsPerVcpu: bytesPerVcpu / 4096,
    reps,
  };
}
