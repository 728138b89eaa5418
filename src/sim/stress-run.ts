/**
 * A parallel-fault stress run: vCPU workers fault, collapse (install blocks over populated tables,
 * unlinking subtrees) and translate over one shared region, while the host thread unmaps and
 * write-protects parts of it under the write lock. Afterwards: use-after-free and corruption
 * counts, a refcount audit of the whole table, teardown with a barrier, and a leak check.
 */
import { RacePoint } from "../common/race-points.js";
import type { FaultMode } from "../kvm/fault.js";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import type { Violation } from "../mmu/mod.js";
import type { ReclaimStatsSnapshot } from "../kvm/reclaim/stats.js";
import type { StrategySpec } from "../kvm/reclaim/strategy.js";
import type { VcpuStatsSnapshot } from "../kvm/vcpu-stats.js";
import { type DestroyReport, Vm } from "../kvm/vm.js";
import { auditTable } from "../pgtable/audit.js";
import type { Stage2Stats } from "../pgtable/stage2.js";
import { VcpuPool } from "./host.js";
import { controlledRcu } from "./controlled-rcu.js";
import { Rng } from "../common/rng.js";
import { ControlledScheduler, type ScheduleStrategy, type ScheduleSummary } from "../sync/controlled.js";
import type { RwLockStats } from "../sync/rwlock-stats.js";
import type { VcpuCommand } from "./protocol.js";
import type { StressOptions, StressResult } from "./workloads.js";

/** Options of runStress(). */
export interface StressRunOptions {
  /** A reclaim strategy (built-in or user module), or the broken "unsafe-sync" (tests only). */
  strategy: StrategySpec;
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
  /** Share of operations that touch a page (default 0.6) and that collapse a range (0.03). */
  touchRatio?: number;
  collapseRatio?: number;
  /** Share of collapses that install a 1 GiB block over the whole region's L2 table (1/16). */
  gibCollapseShare?: number;
  /** Size of the region the vCPUs work on, in MiB (default 16). */
  regionMiB?: number;
  /** Test only: allow the "unsafe-sync" strategy (VmOptions.testOnly.unsafeReclaim). */
  testOnlyUnsafeReclaim?: boolean;
  /** Guest accesses through the vCPU MMU model, with its checkers when `debug` (default on). */
  mmu?: boolean;
  /** Test only: deliberately broken page-table variants (VmOptions.testOnly.bugs). */
  testOnlyBugs?: number;
  /**
   * Longest wait for the vCPUs, ms (default 120000): a run still going then is stopped and
   * rejects with StressStuckError (a broken variant can leave a thread waiting for ever).
   */
  stuckMs?: number;
}

/** A stress run whose vCPUs did not finish in time (their workers were terminated). */
export class StressStuckError extends Error {
  override name = "StressStuckError";
}

/** Everything a stress run measured and checked. */
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
  /** What the MMU checkers found (empty with the model off). */
  mmuViolations: Violation[];
  /** The MMU model's work, summed over vCPUs (zeros with the model off). */
  mmu: { accesses: number; hits: number; walks: number; serviced: number };
  /** mmu_lock's statistics, summed over every thread that used it (the host's, the vCPUs', ...). */
  lock: RwLockStats;
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/**
 * Runs one parallel-fault stress run (see the file comment) and reports it. Throws RangeError
 * for a bad region; rejects when a vCPU fails.
 */
export async function runStress(o: StressRunOptions): Promise<StressRunReport> {
  const region = (o.regionMiB ?? 16) * MIB;
  if (!(region >= 2 * MIB && region <= GIB && region % (2 * MIB) === 0)) {
    throw new RangeError(
      `Cannot run the stress: region of ${o.regionMiB} MiB must be a multiple of 2 MiB up to 1 GiB`,
    );
  }
  const gibShare = o.gibCollapseShare ?? 1 / 16;
  const collapseSizes = Array.from({ length: 64 }, (_, i) => (i < Math.round(gibShare * 64) ? GIB : 2 * MIB));
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 40,
    poolPages: 8192,
    debug: o.debug,
    mode: o.mode,
    vcpus: o.vcpus,
    memslots: [{ ipa: GIB, size: GIB, hostPa: 0x40_0000_0000, backing: "anonymous" }],
    rcuFlavor: o.rcuFlavor,
    testOnly: { unsafeReclaim: o.testOnlyUnsafeReclaim ?? false, bugs: o.testOnlyBugs ?? 0 },
    mmu: o.mmu ?? true,
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
  // Declared out here so that a failed run stops the host loop too instead of hanging on its timer.
  let running = true;
  let host: Promise<void> = Promise.resolve();
  try {
    const raceDelays =
      o.raceSpins > 0
        ? { [RacePoint.WALK_TABLE_ENTERED]: o.raceSpins, [RacePoint.BBM_LOCKED]: o.raceSpins }
        : undefined;
    // Mostly 2 MiB collapses (one table page each), now and then a 1 GiB one (a deep subtree).
    const cmds = stressCommands(o, region, collapseSizes, o.collapseRatio ?? 0.03, () =>
      raceDelays ? { raceDelays } : {},
    );
    host = o.hostOps
      ? hostLoop(
          vm,
          region,
          new Rng(o.seed ^ 0xdeadbeef),
          () => running,
          () => hostOps++,
        )
      : Promise.resolve();
    // Handled now, rethrown by the await below: a host failure while runPhase is pending (a TLBI
    // that a dying vCPU never acknowledges) must not surface as an unhandled rejection.
    host.catch(() => {});
    // The phase ends when the vCPUs do, or fails as soon as the host fails (a host that died in
    // a TLBI wait holding mmu_lock would leave the vCPUs waiting for ever), or when it overruns.
    let timer: NodeJS.Timeout | undefined;
    const stuckMs = o.stuckMs ?? 120_000;
    const overrun = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new StressStuckError(`the vCPUs did not finish within ${stuckMs / 1000} s (seed ${o.seed})`),
          ),
        stuckMs,
      );
    });
    const hostFailed = host.then(() => new Promise<never>(() => {}));
    try {
      phase = await Promise.race([pool.runPhase(cmds), hostFailed, overrun]);
    } finally {
      clearTimeout(timer);
    }
    running = false;
    await host;
    closed = await pool.close();
  } catch (e) {
    running = false;
    await pool.terminate();
    await host.catch(() => {});
    await vm.rcu.close();
    throw e;
  }
  vm.pgt.flushStats();
  const lock = vm.lock.stats();
  const audit = auditTable(vm.pgt);
  const pgtable = vm.pgt.stats();
  const faults = vm.vcpuStats.snapshot();
  const destroy = await vm.destroy();
  const mmuViolations = vm.mmu?.violations() ?? [];
  const mmu = { accesses: 0, hits: 0, walks: 0, serviced: 0 };
  for (const s of vm.mmu?.vcpuStats(vm.pgt) ?? []) {
    mmu.accesses += s.accesses;
    mmu.hits += s.hits;
    mmu.walks += s.walks;
    mmu.serviced += s.serviced;
  }
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
    mmuViolations,
    mmu,
    lock,
  };
}

/** One stress command per vCPU over the region; vCPU i's seed is derived from the run's seed. */
function stressCommands(
  o: { vcpus: number; seed: number; iterations: number; touchRatio?: number },
  region: number,
  collapseSizes: number[],
  collapseRatio: number,
  extra: (vcpu: number) => Partial<StressOptions>,
): VcpuCommand[] {
  return Array.from({ length: o.vcpus }, (_, i) => ({
    type: "stress" as const,
    options: {
      seed: (o.seed + i * 0x9e3779b9) >>> 0,
      iterations: o.iterations,
      regionStart: GIB,
      regionSize: region,
      collapseSizes,
      touchRatio: o.touchRatio ?? 0.6,
      collapseRatio,
      ...extra(i),
    },
  }));
}

/**
 * The host: every millisecond, four operations on random 2 MiB chunks of the region under the
 * write lock: unmap (an MMU-notifier invalidation) or write-protect (dirty-log harvesting; a later
 * write to a protected block maps a page inside it, splitting the block).
 */
async function hostLoop(
  vm: Vm,
  region: number,
  rng: Rng,
  running: () => boolean,
  count: () => void,
): Promise<void> {
  while (running()) {
    await new Promise((r) => setTimeout(r, 1));
    for (let i = 0; i < 4; i++) {
      const chunk = GIB + rng.below(region / (2 * MIB)) * 2 * MIB;
      if (rng.next() < 0.5) vm.unmap(chunk, 2 * MIB);
      else vm.wrprotect(chunk, 2 * MIB);
      count();
    }
  }
}

/** Options of runControlledStress(): a stress run whose vCPUs take turns under the controlled scheduler. */
export interface ControlledStressOptions {
  strategy: StrategySpec;
  vcpus: number;
  iterations: number;
  /** Seeds the vCPUs' operations (and the schedule, unless `scheduleSeed` is given). */
  seed: number;
  /** Seeds the schedule's strategy (default: `seed`). */
  scheduleSeed?: number;
  schedule: ScheduleStrategy;
  /** PCT depth (default 3). */
  pctDepth?: number;
  /** A recorded schedule to follow (replay); the seed's strategy takes over after it. */
  replay?: readonly number[];
  rcuFlavor?: RcuFlavor;
  mmu?: boolean;
  /** Test only: deliberately broken page-table variants (VmOptions.testOnly.bugs). */
  testOnlyBugs?: number;
  testOnlyUnsafeReclaim?: boolean;
  regionMiB?: number;
  touchRatio?: number;
  collapseRatio?: number;
}

/** What a controlled stress run found, with the schedule that found it. */
export interface ControlledStressReport {
  schedule: ScheduleSummary;
  /** The first violation (lowest scheduler step), or null. */
  violation: { vcpu: number; step: number; op: number; what: string } | null;
  /** What the MMU checkers found (empty with the model off). */
  mmuViolations: Violation[];
  vcpus: StressResult[];
  /** Clean runs only (no violation): the refcount audit and the teardown's leak check. */
  auditProblems: string[];
  leakedPages: number[];
}

/**
 * Runs the stress with shared faults and no host thread, the vCPUs taking turns at every labelled
 * point as the seeded schedule decides (src/sync/controlled.ts). The same options give the same
 * run: the same schedule, and the same violation at the same step. A run with a violation is torn
 * down by terminating its workers (a vCPU stopped mid-walk holds locks); a clean one is audited and
 * destroyed with the leak check.
 */
export async function runControlledStress(o: ControlledStressOptions): Promise<ControlledStressReport> {
  const region = (o.regionMiB ?? 16) * MIB;
  if (!(region >= 2 * MIB && region <= GIB && region % (2 * MIB) === 0))
    throw new RangeError(
      `Cannot run the stress: region of ${o.regionMiB} MiB must be a multiple of 2 MiB up to 1 GiB`,
    );
  // Participants: the vCPUs (0..vcpus-1) and the RCU callback worker (vcpus), which frees pages.
  const sched = ControlledScheduler.create({
    threads: o.vcpus + 1,
    seed: o.scheduleSeed ?? o.seed,
    strategy: o.schedule,
    pctDepth: o.pctDepth ?? 3,
    stepsHint: o.iterations * o.vcpus,
    ...(o.replay ? { replay: o.replay } : {}),
  });
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 40,
    poolPages: 4096,
    debug: true,
    mode: "shared",
    vcpus: o.vcpus,
    memslots: [{ ipa: GIB, size: GIB, hostPa: 0x40_0000_0000, backing: "anonymous" }],
    rcuFlavor: o.rcuFlavor ?? "mb",
    testOnly: { unsafeReclaim: o.testOnlyUnsafeReclaim ?? false, bugs: o.testOnlyBugs ?? 0 },
    mmu: o.mmu ?? true,
    // batched arrays age by fault exits, not by the clock: the run depends on the schedule alone.
    reclaim: { strategy: o.strategy, batchMaxAgeExits: 8 },
    rcuExtra: controlledRcu(sched.handle, o.vcpus),
  });
  const pool = new VcpuPool(vm);
  const cmds = stressCommands(o, region, [2 * MIB], o.collapseRatio ?? 0.05, (i) => ({
    controlled: { handle: sched.handle, id: i },
  }));
  let phase: Awaited<ReturnType<VcpuPool["runPhase"]>>;
  try {
    phase = await pool.runPhase(cmds);
  } catch (e) {
    await pool.terminate();
    await vm.rcu.close();
    throw e;
  }
  const results = phase.replies.map((r) => r.stress as StressResult);
  let violation: ControlledStressReport["violation"] = null;
  results.forEach((r, vcpu) => {
    const v = r.violation;
    if (v && (violation === null || v.step < violation.step)) violation = { vcpu, ...v };
  });
  const mmuViolations = vm.mmu?.violations() ?? [];
  const summary = sched.summary(o.scheduleSeed ?? o.seed, o.schedule);
  if (violation !== null || mmuViolations.length > 0) {
    await pool.terminate();
    await vm.rcu.close();
    return {
      schedule: summary,
      violation,
      mmuViolations,
      vcpus: results,
      auditProblems: [],
      leakedPages: [],
    };
  }
  await pool.close();
  vm.pgt.flushStats();
  const audit = auditTable(vm.pgt);
  const destroy = await vm.destroy();
  return {
    schedule: summary,
    violation,
    mmuViolations,
    vcpus: results,
    auditProblems: audit.problems,
    leakedPages: destroy.leakedPages,
  };
}
