/**
 * The runner: one workload, one configuration, start to finish. It builds the VM and its vCPU
 * workers, samples the reclaim figures while the workload's host script runs, tears everything
 * down (barrier, audit, leak check) and returns one RunResult.
 *
 * Front ends (the CLI, tests, a user's script) call `runWorkload`; workloads (./workloads/*.ts)
 * only see the RunContext below.
 */
import { cpus } from "node:os";
import {
  TraceBuffer,
  TraceEvent,
  type TraceCollection,
  type TraceWriter,
  traceNowUs,
} from "../common/trace.js";
import type { FaultMode } from "../kvm/fault.js";
import type { MemslotSpec } from "../kvm/memslot.js";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import { RStat } from "../kvm/reclaim/stats.js";
import { type StrategySpec, strategyLabel } from "../kvm/reclaim/strategy.js";
import { formatViolation } from "../mmu/mod.js";
import { Vm } from "../kvm/vm.js";
import { auditTable } from "../pgtable/audit.js";
import { VcpuPool } from "../sim/host.js";
import { createMemstress, MemstressHost, type MemstressSlice, MsFig } from "../sim/memstress.js";
import type { VcpuCommand } from "../sim/protocol.js";
import { sanitize } from "../common/text.js";
import { ConfigError } from "./errors.js";
import { RESULT_SCHEMA_VERSION, type RunResult, type Sample, type WorkloadName } from "./result.js";

/** The part of a run's configuration every workload shares. */
export interface CommonConfig {
  strategy: StrategySpec;
  mode: FaultMode;
  rcu: RcuFlavor;
  /** Debug pool: poison freed tables and check every walk (use-after-free detection). */
  check: boolean;
  /** Guest accesses through the vCPU MMU model, its checkers on with `check` (default on). */
  mmu?: boolean;
  /** Seed of workloads without a seed flag of their own. */
  seed: number;
  /** The arguments that replay the run (`stage2 run ...`). */
  command: string[];
}

/** What a workload declares about the VM it needs. */
export interface VmLayout {
  granule: 4096;
  iaBits: number;
  memslots: MemslotSpec[];
  poolPages: number;
  /** Memslots the workload may create at once (default: the VM's default capacity). */
  maxMemslots?: number;
}

/** A workload: a host script that drives vCPU workers, printing the selftest's lines. */
export interface Workload<P> {
  readonly name: WorkloadName;
  /** One line for help listings. */
  readonly summary: string;
  /** The selftest's getopt string (flags this workload accepts). */
  readonly getopt: string;
  /** Usage lines for the workload's own flags. */
  readonly help: string;
  /** Parses the workload's short flags; throws ConfigError naming the flag and its range. */
  parse(short: ReadonlyMap<string, string>): P;
  vcpus(p: P): number;
  /** The workload's own seed flag (dirty_log_perf_test -r), when it has one and it was given. */
  seed?(p: P): number | undefined;
  /** Parameters as recorded in the result (plain values). */
  params(p: P): Record<string, number | string | boolean>;
  /** The VM the workload needs; throws ConfigError when it cannot fit. */
  layout(p: P): VmLayout;
  run(ctx: RunContext, p: P): Promise<void>;
}

/** What a front end observes while a run goes: its lines, its progress, its trace. */
export interface RunHooks {
  /** Each selftest line as it is printed (streamed text output). */
  onLine?(line: string): void;
  /** Progress of long phases: `done` of `total` units of `label`. */
  onProgress?(label: string, done: number, total: number): void;
  /** Record a trace (`--trace`): the run's collection is appended to `runs` when it ends. */
  trace?: { runs: { label: string; trace: TraceCollection; phaseNames: string[] }[] };
}

const SAMPLE_MS = 10;
/** Largest page-table pool a run may allocate (shared memory is not swappable). */
export const MAX_POOL_BYTES = 4 * 2 ** 30;
const MAX_SAMPLES = 2000;

/** What a running workload sees: the VM, its vCPUs, and the recorders. */
export class RunContext {
  readonly lines: string[] = [];
  readonly phases: { name: string; seconds: number }[] = [];
  readonly failures: string[] = [];
  dirtyPages: number[] | undefined;
  /** Busy milliseconds per vCPU in timed phases (for faults/s). */
  readonly busyMs: number[];
  private ms: MemstressHost | null = null;

  constructor(
    readonly vm: Vm,
    readonly pool: VcpuPool,
    readonly seed: number,
    private readonly hooks: RunHooks,
    /** The host thread's trace slot (`--trace`), or null. */
    readonly trace: TraceWriter | null = null,
  ) {
    this.busyMs = new Array(vm.options.vcpus).fill(0);
  }

  get vcpus(): number {
    return this.vm.options.vcpus;
  }

  /** Prints one line in the selftest's format. */
  line(text: string): void {
    this.lines.push(text);
    this.hooks.onLine?.(text);
  }

  /** Records a timed phase (nanoseconds) under the selftest's name for it. */
  phase(name: string, ns: bigint): void {
    this.phases.push({ name, seconds: Number(ns) / 1e9 });
    const us = Number(ns) / 1000;
    this.trace?.complete(TraceEvent.PHASE, traceNowUs() - us, us, this.phases.length - 1);
  }

  fail(message: string): void {
    this.failures.push(message);
  }

  progress(label: string, done: number, total: number): void {
    this.hooks.onProgress?.(label, done, total);
  }

  /**
   * Starts memstress on every vCPU (`slices[i]` for vCPU i) with the access parameters already set
   * through `setup`; pass 0 begins as soon as the workers are released. Returns the host side and
   * the time the vCPUs were released (for the populate time).
   */
  async startMemstress(
    slices: MemstressSlice[],
    setup: (host: MemstressHost) => void,
  ): Promise<{ host: MemstressHost; releasedNs: bigint; finished: Promise<void> }> {
    const handle = createMemstress(this.vcpus);
    let failure: string | null = null;
    const host = new MemstressHost(handle, this.vcpus, () => failure ?? this.pool.failure);
    setup(host);
    const cmds: VcpuCommand[] = slices.map((slice) => ({ type: "memstress", ms: handle, slice }));
    const { started, done } = this.pool.startPhase(cmds);
    done.catch((e: Error) => {
      failure = e.message;
    });
    await started;
    const releasedNs = process.hrtime.bigint();
    this.ms = host;
    const finished = done.then(() => {
      for (let v = 0; v < this.vcpus; v++) (this.busyMs[v] as number) += host.fig(v, MsFig.BUSY_NS) / 1e6;
    });
    // A vCPU failure reaches the workload through waitAll(); a workload that throws before it
    // awaits `finished` must not leave that rejection unhandled (the process would die).
    finished.catch(() => {});
    return { host, releasedNs, finished };
  }

  /** Runs one classic phase (populate, collapse) on every vCPU and returns its wall time in ns. */
  async vcpuPhase(cmds: VcpuCommand[]): Promise<bigint> {
    const { started, done } = this.pool.startPhase(cmds);
    // If the vCPUs never start, `started` rejects and `done` (derived from it) is never awaited.
    done.catch(() => {});
    await started;
    const t0 = process.hrtime.bigint();
    const r = await done;
    const ns = process.hrtime.bigint() - t0;
    for (const rep of r.replies) (this.busyMs[rep.vcpu] as number) += rep.endMs - rep.startMs;
    return ns;
  }

  get memstress(): MemstressHost | null {
    return this.ms;
  }
}

/** Times a synchronous host operation in nanoseconds. */
export function timeNs(fn: () => void): bigint {
  const t0 = process.hrtime.bigint();
  fn();
  return process.hrtime.bigint() - t0;
}

/** A host operation under the write lock, recorded as a write-lock slice when tracing. */
export function hostOp(ctx: RunContext, fn: () => void, pages = 0): bigint {
  const startUs = traceNowUs();
  const ns = timeNs(fn);
  ctx.trace?.complete(TraceEvent.WRITE_LOCK, startUs, Number(ns) / 1000, pages);
  return ns;
}

/** "PA-bits:40,  VA-bits:48,  4K pages", as vm_guest_mode_string() prints arm64 modes. */
export function guestModeString(paBits: number, granule: number): string {
  return `PA-bits:${paBits},  VA-bits:48,  ${granule / 1024}K pages`;
}

/**
 * Runs `workload` with parameters `p` under `common` and returns its result. Throws ConfigError for
 * a configuration that cannot run (before anything starts) and Error when a vCPU fails.
 */
export async function runWorkload<P>(
  workload: Workload<P>,
  p: P,
  common: CommonConfig,
  hooks: RunHooks = {},
): Promise<RunResult> {
  const layout = workload.layout(p);
  if (layout.poolPages * layout.granule > MAX_POOL_BYTES) {
    throw new ConfigError(
      `${workload.name}: needs ${Math.ceil((layout.poolPages * layout.granule) / 2 ** 20)} MiB of page-table pages, ` +
        `more than the ${MAX_POOL_BYTES / 2 ** 20} MiB a run may take: use a smaller -b or fewer vCPUs`,
    );
  }
  const vcpus = workload.vcpus(p);
  const seed = workload.seed?.(p) ?? common.seed;
  const startedAt = new Date();
  const t0 = performance.now();
  // Trace slots: one per vCPU, then the host, then the RCU callback worker.
  const traceBuf = hooks.trace ? TraceBuffer.create({ threads: vcpus + 2 }) : null;
  const vm = await Vm.create({
    trace: traceBuf ? { handle: traceBuf.handle, slot: vcpus + 1 } : null,
    granule: layout.granule,
    iaBits: layout.iaBits,
    poolPages: layout.poolPages,
    ...(layout.maxMemslots !== undefined ? { maxMemslots: layout.maxMemslots } : {}),
    debug: common.check,
    mmu: common.mmu ?? true,
    mode: common.mode,
    vcpus,
    memslots: layout.memslots,
    rcuFlavor: common.rcu,
    reclaim: { strategy: common.strategy },
  });
  const hostTrace = traceBuf?.writer(vcpus, "host") ?? null;
  const pool = new VcpuPool(vm, traceBuf?.handle ?? null);
  const ctx = new RunContext(vm, pool, seed, hooks, hostTrace);
  const samples: Sample[] = [];
  let every = 1;
  let tick = 0;
  const sampler = setInterval(() => {
    if (tick++ % every !== 0) return;
    const sample = {
      tMs: Math.round(performance.now() - t0),
      pendingPages: vm.reclaimStats.get(RStat.PENDING_PAGES),
      pendingCallbacks: vm.reclaimStats.get(RStat.PENDING_CALLBACKS),
    };
    samples.push(sample);
    hostTrace?.counter(TraceEvent.PENDING_PAGES, sample.pendingPages);
    hostTrace?.counter(TraceEvent.PENDING_CALLBACKS, sample.pendingCallbacks);
    if (samples.length >= MAX_SAMPLES) {
      // Keep every other sample and halve the rate: bounded memory over any run length.
      for (let i = 0; i < samples.length / 2; i++) samples[i] = samples[2 * i] as Sample;
      samples.length = Math.floor(samples.length / 2);
      every *= 2;
    }
  }, SAMPLE_MS);
  let closed: Awaited<ReturnType<VcpuPool["close"]>>;
  try {
    await workload.run(ctx, p);
    closed = await pool.close();
  } catch (e) {
    clearInterval(sampler);
    ctx.memstress?.quit();
    await pool.terminate();
    await vm.rcu.close();
    throw e;
  }
  clearInterval(sampler);
  vm.pgt.flushStats();
  const audit = auditTable(vm.pgt);
  const pgt = vm.pgt.stats();
  const perVcpuStats = Array.from({ length: vcpus }, (_, v) => vm.vcpuStats.snapshot(v));
  const total = vm.vcpuStats.snapshot();
  const ls = vm.lock.stats();
  const destroyStartUs = traceNowUs();
  const destroy = await vm.destroy();
  hostTrace?.complete(TraceEvent.DESTROY, destroyStartUs, traceNowUs() - destroyStartUs, destroy.tablesFreed);
  let traceFigures: { events: number; dropped: number } | undefined;
  if (traceBuf && hooks.trace) {
    hostTrace?.close();
    const collection = traceBuf.collect();
    traceFigures = {
      events: collection.events,
      dropped: collection.dropped,
    };
    hooks.trace.runs.push({
      label: `${workload.name} ${strategyLabel(common.strategy)} ${common.mode} ${common.rcu}`,
      trace: collection,
      phaseNames: ctx.phases.map((x) => x.name),
    });
  }
  const rs = vm.reclaimSnapshot();
  const hist: number[] = [];
  for (let b = 0; b < RStat.HIST_BUCKETS; b++) hist.push(vm.reclaimStats.get(RStat.HIST + b));
  while (hist.length > 0 && hist[hist.length - 1] === 0) hist.pop();
  const busySec = ctx.busyMs.reduce((a, b) => a + b, 0) / 1000;
  const uaf = pgt.uafDetected + closed.reduce((a, c) => a + c.uaf, 0);
  // The MMU checkers' findings (break-before-make, stale TLB, use after free, dirty log) fail the run.
  for (const v of vm.mmu?.violations() ?? []) ctx.failures.push(`MMU ${formatViolation(v)}`);
  const checks = {
    uaf,
    leakedPages: destroy.leakedPages.length,
    auditProblems: audit.problems,
    failures: ctx.failures,
    passed:
      uaf === 0 &&
      destroy.leakedPages.length === 0 &&
      audit.problems.length === 0 &&
      ctx.failures.length === 0,
  };
  const cpu = cpus();
  return {
    schemaVersion: RESULT_SCHEMA_VERSION,
    workload: workload.name,
    // A user strategy names itself: printable and short in every result (the schema says so).
    strategy: sanitize(strategyLabel(common.strategy), 80),
    mode: common.mode,
    rcu: common.rcu,
    vcpus,
    seed,
    command: common.command,
    params: workload.params(p),
    guestMode: guestModeString(layout.iaBits, layout.granule),
    phases: ctx.phases,
    faults: {
      total: total.faults,
      again: total.again,
      faultsPerSec: busySec > 0 ? (total.faults * vcpus) / busySec : 0,
    },
    perVcpu: perVcpuStats.map((s, v) => ({
      vcpu: v,
      faults: s.faults,
      again: s.again,
      faultsPerSec: (ctx.busyMs[v] as number) > 0 ? s.faults / ((ctx.busyMs[v] as number) / 1000) : 0,
    })),
    reclaim: {
      callbacks: rs.callbacksQueued,
      peakPendingCallbacks: rs.peakPendingCallbacks,
      peakPendingBytes: rs.peakPendingBytes,
      peakPendingPages: rs.peakPendingPages,
      callbackP50Us: rs.callbackNs.p50 / 1000,
      callbackP99Us: rs.callbackNs.p99 / 1000,
      callbackMaxUs: rs.callbackNs.max / 1000,
      gracePeriods: destroy.gracePeriods,
      barrierMs: destroy.barrierMs,
      pagesDeferred: rs.pagesDeferred,
      subtrees: rs.subtrees,
      syncFallbacks: rs.syncFallbacks,
      callbackTotalUs: vm.reclaimStats.get(RStat.CALLBACK_100NS_TOTAL) / 10,
    },
    lock: {
      readLocks: ls.readAcquisitions,
      readCounted: ls.readCounted,
      readWaited: ls.readContended,
      writeLocks: ls.writeAcquisitions,
      writeWaited: ls.writeContended,
      writeWaitMaxUs: ls.writeWaitMaxNs / 1000,
    },
    callbackHistogramNs: hist,
    samples,
    ...(ctx.dirtyPages ? { dirtyPages: ctx.dirtyPages } : {}),
    checks,
    lines: ctx.lines,
    ...(traceFigures ? { trace: traceFigures } : {}),
    machine: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      cpus: cpu.length,
      cpuModel: cpu[0]?.model ?? "unknown",
    },
    startedAt: startedAt.toISOString(),
    wallSeconds: (performance.now() - t0) / 1000,
  };
}
