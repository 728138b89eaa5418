/**
 * The result of one `stage2 run`: what `--json` prints (one object per line), what `stage2 report`
 * reads back, and what the HTML report and the comparison table are computed from.
 *
 * This is the contract between the runner (src/experiment), the front ends (src/cli) and the
 * formatters (src/report). `schema/run-result.schema.json` describes the same shape for other
 * tools; `RESULT_SCHEMA_VERSION` bumps on any incompatible change.
 */

/** Version of the JSON shape below; `stage2 report` refuses other versions. */
export const RESULT_SCHEMA_VERSION = 1;

/** The workloads `stage2 run` offers. */
export type WorkloadName =
  | "dirty-log-perf"
  | "access-tracking"
  | "memslot-perf"
  | "page-table-stress"
  | "collapse-storm";

/** Every workload name, in the order help lists them. */
export const WORKLOADS: readonly WorkloadName[] = [
  "dirty-log-perf",
  "access-tracking",
  "memslot-perf",
  "page-table-stress",
  "collapse-storm",
];

/** One timed phase, named as the selftest names it ("Populate memory", "Iteration 1 dirty memory"). */
export interface PhaseTime {
  name: string;
  seconds: number;
}

/**
 * mmu_lock over one run: how faults (read) and host operations (write) took it. With the reader
 * bias on, a read lock touches only the reader's own line; `readCounted` are those that went
 * through the word every core shares (the bias was off, after a writer revoked it).
 */
export interface LockFigures {
  readLocks: number;
  readCounted: number;
  /** Read locks that waited for a writer. */
  readWaited: number;
  writeLocks: number;
  /** Write locks that waited (for another writer or for readers to leave). */
  writeWaited: number;
  /** Longest single writer wait, in microseconds. */
  writeWaitMaxUs: number;
}

/** Reclaim figures of one run (the review's questions). Durations in microseconds or milliseconds. */
export interface ReclaimFigures {
  /** RCU callbacks queued over the run (0 for batched, which polls instead). */
  callbacks: number;
  peakPendingCallbacks: number;
  /** Peak table memory waiting for a grace period, in bytes. */
  peakPendingBytes: number;
  peakPendingPages: number;
  /** Callback (slice) durations from a log2 histogram: p50/p99 are bucket upper bounds, max exact. */
  callbackP50Us: number;
  callbackP99Us: number;
  callbackMaxUs: number;
  /** Grace periods completed by the VM's RCU domain over its life. */
  gracePeriods: number;
  /** rcu_barrier() time at destroy. */
  barrierMs: number;
  /** Table pages handed to the strategy after a shared-walk unlink. */
  pagesDeferred: number;
  /** Unlinked subtrees. */
  subtrees: number;
  /** Times a vCPU waited for a grace period itself (bounded and batched fallbacks). */
  syncFallbacks: number;
  /** Total time spent in reclaim callbacks, in microseconds (sum of slice durations). */
  callbackTotalUs: number;
}

/** One point of the time series sampled by the host while the run goes (every ~10 ms). */
export interface Sample {
  /** Milliseconds since the run started. */
  tMs: number;
  pendingPages: number;
  pendingCallbacks: number;
}

/** Fault counters of one vCPU over the whole run. */
export interface VcpuFigures {
  vcpu: number;
  faults: number;
  again: number;
  /** Faults handled per second of the vCPU's busy time (every guest pass or phase it ran). */
  faultsPerSec: number;
}

/** What the run checked and found: a run passes only when every check is clean. */
export interface CheckFigures {
  /** Table pages entered after they were freed (debug pool poison/generation). */
  uaf: number;
  leakedPages: number;
  auditProblems: string[];
  /** Workload-specific checks (the dirty log matches the accesses, idle pages, ...). */
  failures: string[];
  passed: boolean;
}

/** One run of one workload under one configuration: the `--json` object. */
export interface RunResult {
  schemaVersion: typeof RESULT_SCHEMA_VERSION;
  workload: WorkloadName;
  strategy: string;
  mode: "shared" | "exclusive";
  rcu: "mb" | "qsbr";
  vcpus: number;
  seed: number;
  /** The `stage2 run ...` arguments that replay this run exactly. */
  command: string[];
  /** Workload parameters as given (bytes per vCPU, iterations, write percent, backing, ...). */
  params: Record<string, number | string | boolean>;
  /** "PA-bits:40,  VA-bits:48,  4K pages" style, as the selftests print it. */
  guestMode: string;
  phases: PhaseTime[];
  /** Every fault and AGAIN retry over the run, and the rate over the vCPUs' busy time. */
  faults: { total: number; again: number; faultsPerSec: number };
  perVcpu: VcpuFigures[];
  reclaim: ReclaimFigures;
  /** mmu_lock's figures (absent from results written before they were recorded). */
  lock?: LockFigures;
  /** Callback durations as a log2 histogram: `counts[b]` callbacks took [2^b, 2^(b+1)) ns. */
  callbackHistogramNs: number[];
  samples: Sample[];
  /** dirty-log-perf: pages in the dirty log at each iteration (index 0 is iteration 1). */
  dirtyPages?: number[];
  checks: CheckFigures;
  /** The human output, in the selftest's format, one entry per line. */
  lines: string[];
  /** Trace ring figures, when `--trace` was given. */
  trace?: { events: number; dropped: number };
  machine: { node: string; platform: string; arch: string; cpus: number; cpuModel: string };
  startedAt: string;
  wallSeconds: number;
}
