/**
 * One torture round: a fresh VM (debug pool, MMU model with its checkers), the vCPUs' op mix
 * (`sim/torture-vcpu.ts`) against the host's op mix (`host-ops.ts`), then every checker: the MMU
 * checkers (break-before-make, stale TLB, use after free, dirty log), the software walkers'
 * use-after-free and corruption counts, the RCU age check, the refcount audit, and teardown with
 * the RCU barrier and the leak check. The VM is destroyed at the end of every round (teardown and
 * recreate between rounds). With `deathRate`, a round may kill one vCPU mid-run (deaths.ts): the
 * others and the host go on, and the death watch must recover what it held.
 *
 * A round is a function of its spec (seed, round number, strategy, flavor, ...) up to thread
 * timing: replaying the spec replays the same vCPU operations and the same host operations, in an
 * interleaving that timing decides. A controlled round (`spec.controlled`) takes timing out: the
 * vCPUs, a host thread (host-worker.ts, a fixed number of host operations) and the RCU callback
 * worker take turns as the seeded schedule decides (sync/controlled.ts), so the whole round,
 * injected failures and RCU ages included, replays exactly from its seed or its recorded schedule.
 */
import { findings } from "../check/mod.js";
import {
  clearFailures,
  FAILURE_POINTS,
  injectedCounts,
  resetInjectedCounts,
  setFailureRates,
} from "../common/race-points.js";
import { Rng } from "../common/rng.js";
import type { RcuFlavor, VmRcuExtra } from "../kvm/reclaim/rcu-glue.js";
import type { StrategyName } from "../kvm/reclaim/strategy.js";
import { Vm } from "../kvm/vm.js";
import { auditTable } from "../pgtable/audit.js";
import { VcpuPool } from "../sim/host.js";
import type { VcpuCommand } from "../sim/protocol.js";
import { type AgeHandle, createAgeTable } from "../sim/rcu-age.js";
import { AGE_STRATEGY_URL } from "../sim/rcu-age-strategy.js";
import type { TortureVcpuResult } from "../sim/torture-vcpu.js";
import { controlledRcu } from "../sim/controlled-rcu.js";
import {
  ControlledScheduler,
  type SchedulerHandle,
  type ScheduleStrategy,
  type ScheduleSummary,
} from "../sync/controlled.js";
import { type DeathPlan, describeDeath, planDeath, RoundDeaths, vcpuDeathPlan } from "./deaths.js";
import { HostMix, type HostOpRecord, LAYOUT } from "./host-ops.js";
import { runHostParticipant } from "./host-participant.js";

const MIB = 1024 * 1024;

/** Everything that determines a round. */
export interface RoundSpec {
  /** The run's seed; the round's own seed derives from it and `round`. */
  seed: number;
  round: number;
  strategy: StrategyName;
  rcu: RcuFlavor;
  vcpus: number;
  /** Operations per vCPU. */
  ops: number;
  /** Failure rate at alloc.page and memcache.topup. */
  allocFail: number;
  /** Most delay spins at walk.table-entered and bbm.locked. */
  raceSpins: number;
  /** Test only: deliberately broken variants (VmOptions.testOnly.bugs); no CLI flag sets it. */
  testOnlyBugs?: number;
  /** Probability that the round kills one vCPU mid-run (deaths.ts); absent: 0. */
  deathRate?: number;
  /** Deaths may also be "terminate at a random moment" (deaths.ts); absent: parked deaths only. */
  deathAnytime?: boolean;
  /** Test only: VmOptions.testOnly.noDeathRecovery (the deaths' negative control). */
  testOnlyNoDeathRecovery?: boolean;
  /** Run the round under the controlled scheduler (participants: vCPUs, then host, then RCU). */
  controlled?: RoundControl;
}

/** Host operations of a controlled round with `ops` operations per vCPU: ops / 8, at least 8. */
export function controlledHostOps(ops: number): number {
  return Math.max(8, ops >> 3);
}

/** How a controlled round is scheduled. */
export interface RoundControl {
  schedule: ScheduleStrategy;
  /** PCT depth (schedule "pct"). */
  pctDepth?: number;
  /** A recorded schedule to follow first (a replay). */
  replay?: readonly number[];
  /** Host operations the host participant runs (default: ops / 8, at least 8). */
  hostOps?: number;
}

/** What the host did in a round (the host mix itself, or the host participant's report). */
export interface HostSummary {
  readonly ops: number;
  readonly counts: Record<string, number>;
  readonly nomem: number;
  readonly log: HostOpRecord[];
}

/** One failed check. */
export interface TortureViolation {
  checker: string;
  detail: string;
}

/** What a round did and found. */
export interface RoundResult {
  spec: RoundSpec;
  wallMs: number;
  vcpuOps: number;
  hostOps: number;
  hostCounts: Record<string, number>;
  faults: number;
  /** AGAIN retries (faults and walks that lost a race or met a locked entry) and lost CAS. */
  again: number;
  casFailures: number;
  /** Guest accesses that ended in ENOMEM (reported to the guest) and in MMIO (no slot there). */
  nomem: number;
  /** Eager splits that stopped early for want of tables (logging went on; faults split the rest). */
  hostNomem: number;
  mmio: number;
  /** Guest accesses that gave up after the retry budget (AGAIN each time: the host kept invalidating). */
  gaveUp: number;
  gracePeriods: number;
  /** Injected failures and delays by point name, summed over vCPUs. */
  injected: Record<string, number>;
  /** RCU age histogram of the pages readers entered: ages 0, 1, 2, >2 grace periods. */
  rcuAge: [number, number, number, number];
  /** How many checks ran (each passed unless it is in `violations`). */
  checks: number;
  /** vCPUs killed on purpose (0 or 1), named as "vCPU 1 exit@bbm.locked#3". */
  deaths: string[];
  /** Pages `recoverLostPages()` freed after the deaths (in dead vCPUs' hands, listed nowhere). */
  lostRecovered: number;
  violations: TortureViolation[];
  /** The round's op log: the host's operations, and each vCPU's last operations. */
  hostLog: HostOpRecord[];
  vcpuLastOps: string[][];
  /** Controlled rounds: the schedule taken (null otherwise). */
  schedule: ScheduleSummary | null;
}

/** The checkers a round runs (each counts as one check when it passes). */
export const ROUND_CHECKERS = [
  "break-before-make",
  "stale TLB",
  "use after free",
  "dirty log",
  "corrupt",
  "rcu age",
  "refcount audit",
  "leak",
  "vcpu status",
  "host ops",
  "vcpu death",
] as const;

/** The round's own seed: the run's seed and the round number mixed (so rounds replay alone). */
export function roundSeed(seed: number, round: number): number {
  let h = (seed ^ Math.imul(round + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

/** Runs one round; `started` gets the round's VM and host mix once they exist (live progress). */
export async function runRound(
  spec: RoundSpec,
  started?: (vm: Vm, host: HostMix) => void,
): Promise<RoundResult> {
  const seed = roundSeed(spec.seed, spec.round);
  if (spec.controlled) return controlledRun(spec, seed, spec.controlled);
  const slowUs = slowCallbackUs(seed);
  const vm = await createRoundVm(spec, undefined, slowUs);
  const plan = planDeath(spec.deathRate ?? 0, spec.vcpus, seed, spec.deathAnytime === true);
  const cmds = vcpuCommands(spec, seed, createAgeTable(vm.pool.pageCount, vm.rcu.handle.rcu.ctl), plan, null);
  const host = new HostMix(vm, new Rng(seed ^ 0xdeadbeef), vm.options.granule);
  const violations: TortureViolation[] = [];
  const pool = new VcpuPool(vm);
  const deaths = plan === null ? null : new RoundDeaths(plan, vm, pool, host, violations);
  started?.(vm, host);
  // The host thread's own allocations (eager splits) fail at the same rate as the vCPUs'.
  resetInjectedCounts();
  if (spec.allocFail > 0)
    setFailureRates(Object.fromEntries(FAILURE_POINTS.map((p) => [p, spec.allocFail])), seed ^ 0x68e31da4);
  const running = { value: true };
  const hostLoop = runHost(host, running, violations, deaths);
  let results: TortureVcpuResult[] = [];
  /** vCPU of each result (a vCPU killed mid-run has none). */
  let ids: number[] = [];
  let wallMs = 0;
  let died: string | null = null;
  try {
    const { started, done } = pool.startPhase(cmds);
    started.then((t) => deaths?.begin(t)).catch(() => {}); // a failed start: `done` rejects too
    const phase = await done;
    results = phase.replies.map((r) => r.torture as TortureVcpuResult);
    ids = phase.replies.map((r) => r.vcpu);
    wallMs = phase.wallMs;
  } catch (e) {
    died = firstLine(e);
  }
  running.value = false;
  await hostLoop;
  clearFailures();
  const hostInjected = injectedCounts().failures;
  await deaths?.checkReported();
  const dead = plan !== null && deaths !== null && deaths.deaths > 0 ? [describeDeath(plan)] : [];
  const res = await finish(
    spec,
    vm,
    pool,
    host,
    hostInjected,
    { results, ids },
    wallMs,
    died,
    violations,
    dead,
    null,
  );
  if (slowUs > 0) res.injected["slow.callback"] = vm.reclaimSnapshot().callbacksRun;
  return res;
}

/** How long each reclaim callback spins on purpose in a free round: 200 us in one round in four. */
export const SLOW_CALLBACK_US = 200;

/**
 * Slow callbacks for the free round of seed `seed` (from the seed: a replay line reproduces it):
 * the callback worker lags, grace periods and frees pile up behind it, and readers meet older
 * tables. Slow readers come from the race spins inside read-side sections (`raceSpins`).
 */
export function slowCallbackUs(seed: number): number {
  return ((seed >>> 5) & 3) === 0 ? SLOW_CALLBACK_US : 0;
}

/**
 * A controlled round: participants 0..vcpus-1 are the vCPUs, `vcpus` the host thread and
 * `vcpus + 1` the RCU callback worker. Nothing else touches the VM until every one has finished.
 * No vCPU dies on purpose here (a death is taken between host operations, by timing).
 */
async function controlledRun(spec: RoundSpec, seed: number, c: RoundControl): Promise<RoundResult> {
  const sched = ControlledScheduler.create({
    threads: spec.vcpus + 2,
    seed,
    strategy: c.schedule,
    pctDepth: c.pctDepth ?? 3,
    stepsHint: spec.ops * (spec.vcpus + 1) * 8,
    ...(c.replay ? { replay: c.replay } : {}),
  });
  const vm = await createRoundVm(spec, controlledRcu(sched.handle, spec.vcpus + 1));
  const age = createAgeTable(vm.pool.pageCount, vm.rcu.handle.rcu.ctl);
  const cmds = vcpuCommands(spec, seed, age, null, sched.handle);
  const pool = new VcpuPool(vm);
  const violations: TortureViolation[] = [];
  const hostRun = runHostParticipant({
    vm: vm.handle,
    seed: seed ^ 0xdeadbeef,
    ops: c.hostOps ?? controlledHostOps(spec.ops),
    allocFail: spec.allocFail,
    controlled: { handle: sched.handle, id: spec.vcpus },
  });
  let results: TortureVcpuResult[] = [];
  let ids: number[] = [];
  let wallMs = 0;
  let died: string | null = null;
  try {
    const phase = await pool.runPhase(cmds);
    results = phase.replies.map((r) => r.torture as TortureVcpuResult);
    ids = phase.replies.map((r) => r.vcpu);
    wallMs = phase.wallMs;
  } catch (e) {
    died = firstLine(e);
  }
  let host: HostSummary = { ops: 0, counts: {}, nomem: 0, log: [] };
  let hostInjected: Record<string, number> = {};
  try {
    const h = await hostRun;
    host = h;
    hostInjected = h.injected;
    if (h.error !== null) violations.push({ checker: "host ops", detail: h.error });
  } catch (e) {
    violations.push({ checker: "host ops", detail: `the host thread died: ${firstLine(e)}` });
  }
  const schedule = sched.summary(seed, c.schedule);
  if (schedule.abandoned)
    violations.push({ checker: "vcpu status", detail: "the schedule was abandoned (a participant stalled)" });
  return finish(spec, vm, pool, host, hostInjected, { results, ids }, wallMs, died, violations, [], schedule);
}

/** The round's VM: three memslots (host-ops.ts LAYOUT), debug pool, MMU model and its checkers. */
function createRoundVm(spec: RoundSpec, rcuExtra?: VmRcuExtra, slowCallbackUs = 0): Promise<Vm> {
  return Vm.create({
    ...(slowCallbackUs > 0 ? { slowCallbackUs } : {}),
    granule: 4096,
    iaBits: 40,
    poolPages: 8192,
    debug: true,
    mode: "shared",
    vcpus: spec.vcpus,
    memslots: [LAYOUT.main, LAYOUT.thp, LAYOUT.moving],
    rcuFlavor: spec.rcu,
    mmu: true,
    mmuCheck: true,
    testOnly: {
      bugs: spec.testOnlyBugs ?? 0,
      ...(spec.testOnlyNoDeathRecovery ? { noDeathRecovery: true } : {}),
    },
    // Controlled: batched arrays age by fault exits, not by the clock.
    reclaim: {
      strategy: { name: spec.strategy, url: AGE_STRATEGY_URL },
      ...(rcuExtra ? { batchMaxAgeExits: 8 } : {}),
    },
    ...(rcuExtra ? { rcuExtra } : {}),
  });
}

/** The vCPUs' commands: each its own seed, the same windows and mix; participants when controlled. */
function vcpuCommands(
  spec: RoundSpec,
  seed: number,
  age: AgeHandle,
  plan: DeathPlan | null,
  controlled: SchedulerHandle | null,
): VcpuCommand[] {
  // The fixed slots three and two times as often as each place the moving slot may be.
  const main = { start: LAYOUT.main.ipa, size: LAYOUT.mainWindow };
  const thp = { start: LAYOUT.thp.ipa, size: LAYOUT.thp.size };
  const windows = [
    main,
    main,
    main,
    thp,
    thp,
    { start: LAYOUT.moving.ipa, size: LAYOUT.moving.size },
    { start: LAYOUT.movedIpa, size: LAYOUT.moving.size },
  ];
  return Array.from({ length: spec.vcpus }, (_, i) => ({
    type: "torture" as const,
    options: {
      seed: (seed + i * 0x9e3779b9) >>> 0,
      iterations: spec.ops,
      windows,
      writeRatio: 0.3,
      execRatio: 0.1,
      collapseRatio: 0.04,
      walkRatio: 0.3,
      // Mostly 2 MiB (one table page unlinked), now and then 1 GiB (a deep subtree).
      collapseSizes: [...Array.from({ length: 15 }, () => 2 * MIB), 1024 * MIB],
      // Controlled: the schedule widens the windows, and spins would only cost time.
      raceSpins: controlled ? 0 : spec.raceSpins,
      allocFail: spec.allocFail,
      age,
      death: vcpuDeathPlan(plan, i),
      ...(controlled ? { controlled: { handle: controlled, id: i } } : {}),
    },
  }));
}

/**
 * The host's loop: two operations a millisecond until told to stop, or until one throws, or until
 * a vCPU death was not recovered (then an operation could wait for ever behind the dead vCPU).
 */
async function runHost(
  host: HostMix,
  running: { value: boolean },
  violations: TortureViolation[],
  deaths: RoundDeaths | null,
): Promise<void> {
  try {
    await hostOpLoop(host, running, violations, deaths);
  } finally {
    deaths?.disarm();
  }
}

async function hostOpLoop(
  host: HostMix,
  running: { value: boolean },
  violations: TortureViolation[],
  deaths: RoundDeaths | null,
): Promise<void> {
  while (running.value) {
    await new Promise((r) => setTimeout(r, 1));
    if (!running.value) break;
    if (deaths !== null && !(await deaths.poll())) return;
    try {
      host.step();
      host.step();
    } catch (e) {
      violations.push({ checker: "host ops", detail: firstLine(e) });
      return;
    }
  }
}

async function finish(
  spec: RoundSpec,
  vm: Vm,
  pool: VcpuPool,
  host: HostSummary,
  hostInjected: Record<string, number>,
  vcpus: { results: TortureVcpuResult[]; ids: number[] },
  wallMs: number,
  died: string | null,
  violations: TortureViolation[],
  deaths: string[],
  schedule: ScheduleSummary | null,
): Promise<RoundResult> {
  const { results, ids } = vcpus;
  if (died !== null) violations.push({ checker: "vcpu status", detail: `a vCPU died: ${died}` });
  results.forEach((r, k) => {
    const i = ids[k] as number;
    if (r.unexpected !== null)
      violations.push({ checker: "vcpu status", detail: `vCPU ${i}: ${r.unexpected}` });
    if (r.age !== null && r.age.violations > 0)
      violations.push({
        checker: "rcu age",
        detail: `vCPU ${i}: ${r.age.violations} observations; first: ${r.age.first}`,
      });
  });
  const mmuViolations = vm.mmu?.violations() ?? [];
  const down = await teardown(vm, pool, violations, deaths.length);
  const firstFault = results.map((r) => r.unexpected).find((u) => u !== null) ?? died ?? down.firstFault;
  const { auditProblems, leakedPages, gracePeriods } = down;
  const pgt = vm.pgt.stats();
  for (const f of findings({
    mmuViolations,
    softwareUaf: pgt.uafDetected,
    firstFault,
    corrupt: pgt.corrupt,
    auditProblems,
    leakedPages,
  }))
    violations.push({ checker: f.checker, detail: `${f.count}: ${f.detail}` });
  const faults = vm.vcpuStats.snapshot();
  const { injected, rcuAge } = sumVcpus(results, hostInjected);
  if (deaths.length > 0) injected.vcpuDeath = deaths.length;
  return {
    spec,
    wallMs,
    vcpuOps: results.reduce((n, r) => n + r.ops, 0),
    hostOps: host.ops,
    hostCounts: host.counts,
    faults: faults.faults,
    again: faults.again + pgt.again,
    casFailures: pgt.casFailures,
    nomem: results.reduce((n, r) => n + r.nomem, 0),
    hostNomem: host.nomem,
    mmio: results.reduce((n, r) => n + r.mmio, 0),
    gaveUp: results.reduce((n, r) => n + r.gaveUp, 0),
    gracePeriods,
    injected,
    rcuAge,
    checks: ROUND_CHECKERS.length,
    deaths,
    lostRecovered: down.lostRecovered,
    violations,
    hostLog: host.log,
    vcpuLastOps: results.map((r) => r.lastOps),
    schedule,
  };
}

/**
 * Ends the round's threads and VM. A failed round's vCPUs are terminated (one stopped mid-operation
 * may hold what teardown needs) and nothing is audited; a clean one is closed, audited, destroyed
 * and leak-checked. After vCPU deaths, a clean round first checks that nothing holds mmu_lock
 * (a dead hold not taken back would block teardown's writers for ever: a violation, and the round
 * ends as a failed one), then frees what the dead held in their hands (`recoverLostPages()`).
 */
async function teardown(
  vm: Vm,
  pool: VcpuPool,
  violations: TortureViolation[],
  deaths: number,
): Promise<{
  auditProblems: string[];
  leakedPages: number[];
  gracePeriods: number;
  firstFault: string | null;
  lostRecovered: number;
}> {
  const failedDown = async () => {
    await pool.terminate();
    const gracePeriods = vm.rcu.stats().gracePeriods;
    await vm.rcu.close();
    return { auditProblems: [], leakedPages: [], gracePeriods, firstFault: null, lostRecovered: 0 };
  };
  if (violations.length > 0) return failedDown();
  const closed = await pool.close();
  const firstFault = closed.map((c) => c.firstFault).find((f) => f !== null) ?? null;
  let lostRecovered = 0;
  if (deaths > 0) {
    if (vm.lock.readerCount() !== 0 || vm.lock.isWriteLocked()) {
      const held = `${vm.lock.readerCount()} reader(s)${vm.lock.isWriteLocked() ? " and a writer" : ""}`;
      violations.push({
        checker: "vcpu death",
        detail: `mmu_lock is still held by ${held} after every vCPU closed or was reaped`,
      });
      return failedDown();
    }
    lostRecovered = vm.recoverLostPages().length;
  }
  vm.pgt.flushStats();
  const auditProblems = auditTable(vm.pgt).problems;
  const destroy = await vm.destroy();
  return {
    auditProblems,
    leakedPages: destroy.leakedPages,
    gracePeriods: destroy.gracePeriods,
    firstFault,
    lostRecovered,
  };
}

/** Injected failures and delays (host ones as "host:<point>") and the RCU age histogram, summed. */
function sumVcpus(
  results: TortureVcpuResult[],
  hostInjected: Record<string, number>,
): { injected: Record<string, number>; rcuAge: [number, number, number, number] } {
  const injected: Record<string, number> = {};
  const rcuAge: [number, number, number, number] = [0, 0, 0, 0];
  for (const [k, v] of Object.entries(hostInjected)) injected[`host:${k}`] = v;
  for (const r of results) {
    for (const [k, v] of Object.entries(r.injected.failures)) injected[k] = (injected[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.injected.delays))
      injected[`delay:${k}`] = (injected[`delay:${k}`] ?? 0) + v;
    r.age?.histogram.forEach((n, i) => {
      rcuAge[i] = (rcuAge[i] as number) + n;
    });
  }
  return { injected, rcuAge };
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0] as string;
}
