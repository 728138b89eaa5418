/**
 * A parallel-fault stress run: vCPU workers fault, collapse (install blocks over populated tables,
 * unlinking subtrees) and translate over one shared region, while the host thread unmaps and
 * write-protects parts of it under the write lock. Afterwards: use-after-free and corruption
 * counts, a refcount audit of the whole table, teardown with a barrier, and a leak check.
 */
import { RacePoint } from "../common/race-points.js";
import type { FaultMode } from "../kvm/fault.js";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import type { ReclaimStatsSnapshot } from "../kvm/reclaim/stats.js";
import type { StrategyName } from "../kvm/reclaim/strategy.js";
import type { VcpuStatsSnapshot } from "../kvm/vcpu-stats.js";
import { type DestroyReport, Vm } from "../kvm/vm.js";
import { auditTable } from "../pgtable/audit.js";
import type { Stage2Stats } from "../pgtable/stage2.js";
import { VcpuPool } from "./host.js";
import { Rng } from "./rng.js";
import type { StressResult } from "./workloads.js";

export interface StressRunOptions {
  /** A reclaim strategy, or the deliberately broken "unsafe-sync" (tests only). */
  strategy: StrategyName;
  mode: FaultMode;
  vcpus: number;
  iterations: number;
  seed: number;
  rcuFlavor: RcuFlavor;
  /** Spins at walk.table-entered and bbm.locked (0 = no injected delays). */
  raceSpins: number;
  /** Host operations per millisecond of run time (unmap / wrprotect under the write lock). */
  hostOps: boolean;
  boundedCapPages?: number;
  sliceBudgetPages?: number;
  debug: boolean;
}

export interface StressRunReport {
  options: StressRunOptions;
  wallMs: number;
  vcpus: StressResult[];
  faults: VcpuStatsSnapshot;
  pgtable: Stage2Stats;
  reclaim: ReclaimStatsSnapshot;
  hostOps: number;
  auditProblems: string[];
  uafDetected: number;
  firstFault: string | null;
  destroy: DestroyReport;
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const REGION = 16 * MIB;

export async function runStress(o: StressRunOptions): Promise<StressRunReport> {
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 40,
    poolPages: 8192,
    debug: o.debug,
    mode: o.mode,
    vcpus: o.vcpus,
    memslots: [{ ipa: GIB, size: GIB, hostPa: 0x40_0000_0000, backing: "anonymous" }],
    rcuFlavor: o.rcuFlavor,
    reclaim: {
      strategy: o.strategy,
      ...(o.boundedCapPages !== undefined ? { boundedCapPages: o.boundedCapPages } : {}),
      ...(o.sliceBudgetPages !== undefined ? { sliceBudgetPages: o.sliceBudgetPages } : {}),
    },
  });
  const pool = new VcpuPool(vm);
  let hostOps = 0;
  let phase: Awaited<ReturnType<VcpuPool["runPhase"]>>;
  let closed: Awaited<ReturnType<VcpuPool["close"]>>;
  try {
    const raceDelays =
      o.raceSpins > 0
        ? { [RacePoint.WALK_TABLE_ENTERED]: o.raceSpins, [RacePoint.BBM_LOCKED]: o.raceSpins }
        : undefined;
    const cmds = Array.from({ length: o.vcpus }, (_, i) => ({
      type: "stress" as const,
      options: {
        seed: (o.seed + i * 0x9e3779b9) >>> 0,
        iterations: o.iterations,
        regionStart: GIB,
        regionSize: REGION,
        // Mostly 2 MiB collapses (one table page each), now and then a 1 GiB one (a deep subtree).
        collapseSizes: [...Array.from({ length: 15 }, () => 2 * MIB), GIB],
        touchRatio: 0.6,
        collapseRatio: 0.03,
        ...(raceDelays ? { raceDelays } : {}),
      },
    }));
    let running = true;
    const host = o.hostOps
      ? hostLoop(
          vm,
          new Rng(o.seed ^ 0xdeadbeef),
          () => running,
          () => hostOps++,
        )
      : Promise.resolve();
    phase = await pool.runPhase(cmds);
    running = false;
    await host;
    closed = await pool.close();
  } catch (e) {
    await pool.terminate();
    await vm.rcu.close();
    throw e;
  }
  vm.pgt.flushStats();
  const audit = auditTable(vm.pgt);
  const pgtable = vm.pgt.stats();
  const faults = vm.vcpuStats.snapshot();
  const destroy = await vm.destroy();
  return {
    options: o,
    wallMs: phase.wallMs,
    vcpus: phase.replies.map((r) => r.stress as StressResult),
    faults,
    pgtable,
    reclaim: vm.reclaimSnapshot(),
    hostOps,
    auditProblems: audit.problems,
    uafDetected: pgtable.uafDetected,
    firstFault: closed.map((c) => c.firstFault).find((f) => f !== null) ?? null,
    destroy,
  };
}

/**
 * The host: every millisecond, four operations on random 2 MiB chunks of the region under the
 * write lock: unmap (an MMU-notifier invalidation) or write-protect (dirty-log harvesting; a later
 * write to a protected block maps a page inside it, splitting the block).
 */
async function hostLoop(vm: Vm, rng: Rng, running: () => boolean, count: () => void): Promise<void> {
  while (running()) {
    await new Promise((r) => setTimeout(r, 1));
    for (let i = 0; i < 4; i++) {
      const chunk = GIB + rng.below(REGION / (2 * MIB)) * 2 * MIB;
      if (rng.next() < 0.5) vm.unmap(chunk, 2 * MIB);
      else vm.wrprotect(chunk, 2 * MIB);
      count();
    }
  }
}
