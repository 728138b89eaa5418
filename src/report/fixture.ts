/**
 * Synthetic run results with the shapes real runs have (per-table queues many short callbacks,
 * per-subtree few long ones, bounded caps its backlog, batched queues none). For tests and for
 * trying the report without running a workload; never mixed into real results.
 */
import { RESULT_SCHEMA_VERSION, type RunResult, type WorkloadName } from "../experiment/result.js";
import { Rng } from "../common/rng.js";

export interface SyntheticRunOptions {
  workload?: WorkloadName;
  strategy?: string;
  mode?: "shared" | "exclusive";
  rcu?: "mb" | "qsbr";
  vcpus?: number;
  seed?: number;
  /** Multiplies the reclaim backlog (peak pending callbacks and pages). */
  backlogScale?: number;
}

const PAGE = 4096;

interface Shape {
  callbacksPerSubtree: number;
  callbackUs: number;
  cap: number;
}

const SHAPES: Record<string, Shape> = {
  "per-table": { callbacksPerSubtree: 8, callbackUs: 1.5, cap: Number.POSITIVE_INFINITY },
  "per-subtree": { callbacksPerSubtree: 1, callbackUs: 14, cap: Number.POSITIVE_INFINITY },
  bounded: { callbacksPerSubtree: 1, callbackUs: 14, cap: 64 },
  batched: { callbacksPerSubtree: 0, callbackUs: 0, cap: 256 },
};

function histogram(count: number, typicalUs: number, rng: Rng): number[] {
  const counts = new Array<number>(24).fill(0);
  if (count === 0) return counts;
  const center = Math.max(0, Math.round(Math.log2(typicalUs * 1000)));
  for (let i = 0; i < count; i++)
    counts[Math.min(23, center + rng.below(3) - 1 + (rng.below(50) === 0 ? 3 : 0))]!++;
  return counts;
}

/** Upper bound in µs of the bucket holding quantile q of a log2-ns histogram. */
function quantileUs(counts: number[], q: number): number {
  const total = counts.reduce((a, b) => a + b, 0);
  let seen = 0;
  for (let b = 0; b < counts.length; b++) {
    seen += counts[b]!;
    if (total > 0 && seen >= q * total) return 2 ** (b + 1) / 1000;
  }
  return 0;
}

export function syntheticRun(opts: SyntheticRunOptions = {}): RunResult {
  const strategy = opts.strategy ?? "per-subtree";
  const mode = opts.mode ?? "shared";
  const vcpus = opts.vcpus ?? 2;
  const seed = opts.seed ?? 1;
  const rng = new Rng(seed ^ (strategy.length * 0x9e3779b1));
  const shape = SHAPES[strategy] ?? SHAPES["per-subtree"]!;
  const shared = mode === "shared";
  const subtrees = shared ? 400 + rng.below(40) : 0;
  const pagesDeferred = subtrees * 8;
  const callbacks = subtrees * shape.callbacksPerSubtree;
  const scale = opts.backlogScale ?? 1;
  const peakPendingPages = Math.min(shape.cap, Math.round(pagesDeferred * 0.6 * scale));
  const hist = histogram(callbacks, shape.callbackUs, rng);
  const phases = [
    { name: "Populate memory", seconds: 0.2 + rng.next() * 0.05 },
    { name: "Iteration 1 dirty memory", seconds: 0.05 + rng.next() * 0.02 },
    { name: "Iteration 2 dirty memory", seconds: 0.05 + rng.next() * 0.02 },
  ];
  const samples = Array.from({ length: 40 }, (_, i) => ({
    tMs: i * 10,
    pendingPages: Math.round((peakPendingPages * Math.sin((Math.PI * i) / 39) ** 2) | 0),
    pendingCallbacks: Math.round(
      (Math.min(callbacks, peakPendingPages * shape.callbacksPerSubtree) *
        Math.sin((Math.PI * i) / 39) ** 2) /
        Math.max(1, 8 / Math.max(1, shape.callbacksPerSubtree)),
    ),
  }));
  const perVcpu = Array.from({ length: vcpus }, (_, v) => {
    const faults = 4096 + rng.below(64);
    return { vcpu: v, faults, again: rng.below(200), faultsPerSec: 150_000 + rng.below(50_000) };
  });
  const total = perVcpu.reduce((a, v) => a + v.faults, 0);
  return {
    schemaVersion: RESULT_SCHEMA_VERSION,
    workload: opts.workload ?? "dirty-log-perf",
    strategy,
    mode,
    rcu: opts.rcu ?? "mb",
    vcpus,
    seed,
    command: ["run", "dirty-log-perf", "--strategy", strategy, "--seed", String(seed)],
    params: { bytesPerVcpu: 16 << 20, iterations: 2, writePercent: 100, backing: "anonymous" },
    guestMode: "PA-bits:40,  VA-bits:48,  4K pages",
    phases,
    faults: {
      total,
      again: perVcpu.reduce((a, v) => a + v.again, 0),
      faultsPerSec: perVcpu.reduce((a, v) => a + v.faultsPerSec, 0),
    },
    perVcpu,
    reclaim: {
      callbacks,
      peakPendingCallbacks: Math.max(...samples.map((s) => s.pendingCallbacks)),
      peakPendingBytes: peakPendingPages * PAGE,
      peakPendingPages,
      callbackP50Us: quantileUs(hist, 0.5),
      callbackP99Us: quantileUs(hist, 0.99),
      callbackMaxUs: callbacks === 0 ? 0 : quantileUs(hist, 1) * 0.9,
      gracePeriods: 50 + rng.below(20),
      barrierMs: 0.5 + rng.next(),
      pagesDeferred,
      subtrees,
      syncFallbacks: shape.cap === Number.POSITIVE_INFINITY || !shared ? 0 : 30 + rng.below(10),
      callbackTotalUs: callbacks * shape.callbackUs,
    },
    // No draw from rng here: the figures above stay what they were before mmu_lock's were added.
    lock: shared
      ? {
          readLocks: total,
          readCounted: Math.round(total * 0.05),
          readWaited: Math.round(total * 0.01),
          writeLocks: 12,
          writeWaited: 3,
          writeWaitMaxUs: 150,
        }
      : {
          readLocks: 0,
          readCounted: 0,
          readWaited: 0,
          writeLocks: total + 12,
          writeWaited: 200,
          writeWaitMaxUs: 40,
        },
    callbackHistogramNs: hist,
    samples,
    dirtyPages: [total, Math.round(total * 0.9)],
    checks: { uaf: 0, leakedPages: 0, auditProblems: [], failures: [], passed: true },
    lines: ["Populate memory time: 0.200000000s"],
    machine: { node: "v20.20.2", platform: "linux", arch: "x64", cpus: 2, cpuModel: "synthetic" },
    startedAt: "2026-12-01T17:00:00.000Z",
    wallSeconds: 1.5,
  };
}
