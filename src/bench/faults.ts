/**
 * Fault-handling benchmark: N vCPU workers populate disjoint regions with 4K pages, in shared
 * mode (read lock, RCU, compare-and-swap) and in the exclusive baseline (every fault takes the
 * write lock), with 1 and 2 vCPUs, all in one process so the figures are ratios measured side by
 * side. Each configuration runs `reps` times; the best (shortest) wall time counts.
 */
import { Vm } from "../kvm/vm.js";
import type { FaultMode } from "../kvm/fault.js";
import type { MemslotSpec } from "../kvm/memslot.js";
import { VcpuPool } from "../sim/host.js";

export interface FaultBenchResult {
  nsPerFault1v: number;
  nsPerFaultExclusive1v: number;
  nsPerFault2v: number;
  nsPerFaultExclusive2v: number;
  sharedSpeedup2v: number;
  exclusiveSpeedup2v: number;
  sharedOverExclusive1v: number;
  faultsPerVcpu: number;
  reps: number;
}

const GIB = 1024 ** 3;

/**
 * Wall time per fault (ns): the vCPUs populate their regions, the host unmaps everything, and
 * again, `reps` times on the same workers; the first round warms the JIT up and is not counted,
 * the best of the others is.
 */
export async function measurePopulate(
  mode: FaultMode,
  vcpus: number,
  bytesPerVcpu: number,
  reps: number,
): Promise<number> {
  const memslots: MemslotSpec[] = [
    { ipa: GIB, size: vcpus * bytesPerVcpu, hostPa: 0x100_0000_0000, backing: "anonymous" },
  ];
  const pagesPerVcpu = bytesPerVcpu / 4096;
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 44,
    poolPages: vcpus * Math.ceil(pagesPerVcpu / 512) + 64 + vcpus * 32,
    mode,
    vcpus,
    memslots,
  });
  const pool = new VcpuPool(vm);
  let best = Number.POSITIVE_INFINITY;
  try {
    const cmds = Array.from({ length: vcpus }, (_, i) => ({
      type: "populate" as const,
      start: GIB + i * bytesPerVcpu,
      size: bytesPerVcpu,
    }));
    for (let r = 0; r <= reps; r++) {
      const phase = await pool.runPhase(cmds);
      const faults = phase.replies.reduce((s, x) => s + x.faults, 0);
      if (r > 0) best = Math.min(best, (phase.wallMs * 1e6) / faults);
      vm.unmap(GIB, vcpus * bytesPerVcpu);
    }
    await pool.close();
  } catch (e) {
    await pool.terminate();
    throw e;
  }
  const report = await vm.destroy();
  if (report.leakedPages.length > 0)
    throw new Error(`populate benchmark leaked ${report.leakedPages.length} pages`);
  return best;
}

export async function runFaultBench(opts: { quick?: boolean } = {}): Promise<FaultBenchResult> {
  const bytesPerVcpu = opts.quick ? 16 * 1024 * 1024 : 256 * 1024 * 1024;
  const reps = opts.quick ? 1 : 5;
  const s1 = await measurePopulate("shared", 1, bytesPerVcpu, reps);
  const e1 = await measurePopulate("exclusive", 1, bytesPerVcpu, reps);
  const s2 = await measurePopulate("shared", 2, bytesPerVcpu, reps);
  const e2 = await measurePopulate("exclusive", 2, bytesPerVcpu, reps);
  // Throughput with 2 vCPUs over throughput with 1: (1/ns2) / (1/ns1).
  return {
    nsPerFault1v: s1,
    nsPerFaultExclusive1v: e1,
    nsPerFault2v: s2,
    nsPerFaultExclusive2v: e2,
    sharedSpeedup2v: s1 / s2,
    exclusiveSpeedup2v: e1 / e2,
    sharedOverExclusive1v: s1 / e1,
    faultsPerVcpu: bytesPerVcpu / 4096,
    reps,
  };
}
