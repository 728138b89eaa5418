/**
 * Fault-handling benchmark: N vCPU workers populate disjoint regions with pages (one write fault
 * per page, dirty_log_perf_test's populate phase), in shared mode (read lock, RCU,
 * compare-and-swap) and in the exclusive baseline (every fault takes the write lock), for every
 * vCPU count of the sweep (default 1, 2, 8), all in one process so the figures are ratios measured
 * side by side. The default VM is KVM's default: 40-bit IPA, 4K granule.
 *
 * These configurations run with the MMU model off (the fault handler is called directly). One more
 * runs shared, 1 vCPU, with the model on: every page is a guest write through the vCPU's TLB and
 * hardware walker (miss, translation fault, handler, retried access). `mmuOverhead1v` is its
 * populate time over the shared 1-vCPU time without the model; `mmuOverheadSameVcpu1v` is the
 * same over populates of the same vCPU thread, just before and after, that call the handler
 * directly.
 *
 * Shared over exclusive in one thread: one more worker is vCPU 0 of a shared and of an exclusive
 * 1-vCPU VM (pair-worker.ts) and, in every round, populates eight slices through each, alternating;
 * `sharedOverExclusiveSameThread1v` is the ratio of their times. `sharedOverExclusive1v` divides
 * two threads' times (the shared and the exclusive VMs' own workers).
 *
 * The floor: each round also runs a bare single-threaded populate of the same geometry and size in
 * this thread (bare-populate.ts: tables from a bump pointer, one atomic load per level, one CAS per
 * leaf); `rawNsPerPage` is its time per page, `faultOverRaw1v` the shared 1-vCPU fault over it.
 *
 * The control for scaling: one more configuration is two VMs of 1 vCPU each, populating at once
 * (each its own mmu_lock, page pool, RCU and memslots: nothing shared but the machine and the
 * runtime). Its speedup over one such VM, `independentSpeedup2v`, is what 2 vCPUs could get at
 * best on this machine in these rounds; `sharedScaling2v`, the shared 2-vCPU VM's speedup over it
 * round by round, is what sharing one VM costs. The two VMs release their vCPUs each as soon as
 * its own are ready (a skew of well under a millisecond in rounds of tens of milliseconds).
 *
 * The same threads, alone and together: in every round the shared 2-vCPU VM also populates with
 * each of its vCPUs alone (the other idle), right after the pair, and so do the two 1-vCPU VMs of
 * the control. `sharedEfficiency2v` is the pair's throughput over the sum of the two vCPUs'
 * throughputs alone (1 is perfect scaling); `independentEfficiency2v` is the same for the
 * control. Each thread of this machine runs at one of two speeds for seconds at a time
 * (BENCHMARKS.md), and a speedup over another VM's thread inherits both threads' luck; an
 * efficiency compares threads only with themselves, tens of milliseconds apart.
 *
 * Rounds: every configuration gets its own VM and workers; a round runs all of them one after the
 * other (a noisy moment hits them all alike); the first round warms the JIT up and is not counted.
 * Every figure is the median of the counted rounds, with the spread (min-max) beside it, and every
 * ratio is taken within a round before its median is.
 */
import type { Granule } from "../arch/geometry.js";
import { type InliningBudget, raiseInliningBudget } from "../common/v8-budget.js";
import type { FaultMode } from "../kvm/fault.js";
import type { MemslotSpec } from "../kvm/memslot.js";
import type { RcuFlavor } from "../kvm/reclaim/rcu-glue.js";
import { Worker } from "node:worker_threads";
import { Vm } from "../kvm/vm.js";
import { VcpuPool } from "../sim/host.js";
import { timeBarePopulate } from "./bare-populate.js";
import type { PairCommand, PairReply } from "./pair-worker.js";
import type { BenchOptions } from "./options.js";

/** What the faults benchmark can vary (`stage2 bench faults` flags). */
export interface FaultBenchParams {
  /** Default 4096. */
  granule?: Granule;
  /** Default 40 (KVM's default IPA size). */
  iaBits?: number;
  /** vCPU counts of the sweep; 1 and 2 are always added (the ratios need them). Default 1, 2, 8. */
  vcpus?: number[];
  /** Counted rounds (default 7; quick 2). */
  reps?: number;
  /** Bytes each vCPU populates per round (default 512 MiB; quick 16 MiB). */
  bytesPerVcpu?: number;
  /**
   * RCU flavor of every configuration's VM (default qsbr: like the kernel's RCU, whose read side
   * costs a non-preemptible fault nothing, the vCPU reports a quiescent state between faults).
   * One more configuration runs shared, 1 vCPU, under the other flavor, for its cost.
   */
  rcu?: RcuFlavor;
}

/** One point of the sweep: a mode and a vCPU count. */
export interface SweepPoint {
  mode: FaultMode;
  vcpus: number;
  /** Wall ns per fault (all vCPUs together): median, min, max over the rounds. */
  nsPerFault: number;
  nsPerFaultMin: number;
  nsPerFaultMax: number;
  /** Faults per second, from the median. */
  faultsPerSec: number;
  /** Throughput over the same mode's 1-vCPU throughput, median of the per-round ratios. */
  speedup: number;
  /** The kernel's speedup at this vCPU count (KERNEL_POPULATE_S), or null where it has none. */
  kernelSpeedup: number | null;
}

/**
 * The kernel's populate times, from the v5 cover letter of the series (REFERENCE.md section 3):
 * `dirty_log_perf_test -s anonymous_thp -m 2 -b 4G -v N`, "Populate memory time" in seconds,
 * before the series (every fault under the write lock: our exclusive mode) and after it (faults
 * under the read lock: shared), on a many-core arm64 host. Each vCPU populates its own 4 GiB, so
 * the throughput with N vCPUs over 1 is N * t(1) / t(N).
 */
export const KERNEL_POPULATE_S: Readonly<Record<number, { exclusive: number; shared: number }>> = {
  1: { exclusive: 0.21, shared: 0.17 },
  2: { exclusive: 0.26, shared: 0.23 },
  4: { exclusive: 0.39, shared: 0.31 },
  8: { exclusive: 0.68, shared: 0.39 },
  16: { exclusive: 1.26, shared: 0.53 },
  32: { exclusive: 2.51, shared: 1.04 },
  48: { exclusive: 3.94, shared: 1.55 },
};

/** The kernel's populate speedup at `vcpus` in `mode` (N * t(1) / t(N)), or null without a figure. */
export function kernelSpeedup(mode: FaultMode, vcpus: number): number | null {
  const at = KERNEL_POPULATE_S[vcpus];
  const one = KERNEL_POPULATE_S[1];
  if (at === undefined || one === undefined) return null;
  return (vcpus * one[mode]) / at[mode];
}

export interface FaultBenchResult {
  /** Shared, 1 vCPU, MMU model off: ns per fault (median of rounds). */
  nsPerFault1v: number;
  /** The bare populate loop of the same geometry: ns per page (median). */
  rawNsPerPage: number;
  /** nsPerFault1v / rawNsPerPage (median of per-round ratios). */
  faultOverRaw1v: number;
  nsPerFaultExclusive1v: number;
  nsPerFault2v: number;
  nsPerFaultExclusive2v: number;
  sharedSpeedup2v: number;
  exclusiveSpeedup2v: number;
  sharedOverExclusive1v: number;
  /** Shared, 1 vCPU, MMU model on: wall time per page populated (median). */
  nsPerPageMmu1v: number;
  /** 1-vCPU populate time with the MMU model over the time without it (median of ratios). */
  mmuOverhead1v: number;
  /**
   * The same, both measured in the MMU VM's own vCPU thread: its populate through the model over
   * its populates with the handler called directly just before and just after (their mean).
   * Unlike mmuOverhead1v, two threads' speeds (BENCHMARKS.md) do not enter the ratio.
   */
  mmuOverheadSameVcpu1v: number;
  /** The RCU flavor of the figures above. */
  rcuFlavor: RcuFlavor;
  /** The Node.js flags of the run (`process.execArgv`). */
  nodeFlags: string[];
  /**
   * V8's inlining budget during the run, and who set it (common/v8-budget.ts): stage2 raises it,
   * unless node was given one; with V8's default the figures vary by JIT luck.
   */
  inliningBudget: InliningBudget;
  /**
   * Shared over exclusive at 1 vCPU, both timed in one thread (median of per-round ratios): one
   * worker is vCPU 0 of a shared and of an exclusive 1-vCPU VM and populates through each in
   * turn, eight slices of each per round, alternating. Unlike sharedOverExclusive1v, two
   * threads' speeds (BENCHMARKS.md) do not enter the ratio.
   */
  sharedOverExclusiveSameThread1v: number;
  /** Shared, 1 vCPU, under the other RCU flavor: ns per fault (median). */
  nsPerFaultOtherRcu1v: number;
  /** nsPerFaultOtherRcu1v / nsPerFault1v (median of per-round ratios). */
  otherRcuOverShared1v: number;
  /** Shared throughput with 8 vCPUs over 2 (only when 8 is in the sweep). */
  speedup8vOver2v?: number;
  /**
   * Two VMs of 1 vCPU each populating at once, over one (median of per-round ratios): the
   * scaling this machine and runtime give two vCPUs that share nothing, in the same rounds.
   */
  independentSpeedup2v: number;
  /** sharedSpeedup2v / independentSpeedup2v within each round: what sharing one VM costs (1 = nothing). */
  sharedScaling2v: number;
  /**
   * The shared 2-vCPU VM's throughput over the sum of its two vCPUs' throughputs each alone, in
   * the same round (median): 1 is perfect scaling, whatever speed each thread ran at.
   */
  sharedEfficiency2v: number;
  /** The same for the two 1-vCPU VMs of the control: what this machine's threads keep together. */
  independentEfficiency2v: number;
  /**
   * The 1-vCPU figures again in process CPU time per fault or page (every thread; the others
   * idle), which a machine loaded by other work does not inflate as it does wall time.
   */
  cpuNsPerFault1v: number;
  cpuRawNsPerPage: number;
  cpuFaultOverRaw1v: number;
  cpuNsPerFaultExclusive1v: number;
  cpuSharedOverExclusive1v: number;
  cpuNsPerPageMmu1v: number;
  cpuMmuOverhead1v: number;
  faultsPerVcpu: number;
  reps: number;
  granule: number;
  iaBits: number;
  /** min and max over the rounds of every figure above that has a median. */
  spread: Record<string, [number, number]>;
  /** Every (mode, vCPUs) point: the throughput curve. */
  sweep: SweepPoint[];
}

const GIB = 1024 ** 3;
const HOST_PA = 2 ** 40;

interface Config {
  mode: FaultMode;
  vcpus: number;
  mmu: boolean;
  rcu: RcuFlavor;
  /** VMs of `vcpus` vCPUs each, run at once (2 for the independent control, else 1). */
  copies: number;
}

interface Setup extends Config {
  vms: Vm[];
  pools: VcpuPool[];
  /** Wall ns per fault of each counted round. */
  ns: number[];
  /**
   * Shared 2-vCPU VM and the two 1-vCPU VMs only: per counted round, ns per fault of the first
   * vCPU alone and of the second alone.
   */
  solo: [number, number][];
  /** MMU configuration only: per counted round, ns per fault of the same vCPU with the handler called directly. */
  direct: number[];
  /** Process CPU ns per fault of each counted round (1-vCPU configurations: the vCPU's time). */
  cpu: number[];
}

/** Table pages a populate of `bytes` needs below the start level, with slack. */
function tablePages(bytes: number, granule: number): number {
  const epp = granule / 8;
  let pages = 0;
  for (let span = granule * epp; span <= 2 ** 52; span *= epp) pages += Math.ceil(bytes / span) + 1;
  return pages;
}

/** A VM of `vcpus` vCPUs with one anonymous memslot of `bytesPerVcpu` per vCPU at 1 GiB. */
function benchVm(
  p: Required<FaultBenchParams>,
  mode: FaultMode,
  vcpus: number,
  bytesPerVcpu: number,
  mmu: boolean,
  rcu: RcuFlavor,
): Promise<Vm> {
  const memslots: MemslotSpec[] = [
    { ipa: GIB, size: vcpus * bytesPerVcpu, hostPa: HOST_PA, backing: "anonymous" },
  ];
  return Vm.create({
    granule: p.granule,
    iaBits: p.iaBits,
    poolPages: vcpus * tablePages(bytesPerVcpu, p.granule) + 64 + vcpus * 32,
    mode,
    vcpus,
    memslots,
    mmu,
    rcuFlavor: rcu,
  });
}

/** Destroys the VMs, failing the benchmark on a leaked page. */
async function destroyChecked(vms: readonly Vm[]): Promise<void> {
  for (const vm of vms) {
    const report = await vm.destroy();
    if (report.leakedPages.length > 0)
      throw new Error(`populate benchmark leaked ${report.leakedPages.length} pages`);
  }
}

async function setUp(c: Config, p: Required<FaultBenchParams>): Promise<Setup> {
  const s: Setup = { ...c, vms: [], pools: [], ns: [], cpu: [], solo: [], direct: [] };
  for (let i = 0; i < c.copies; i++) {
    const vm = await benchVm(p, c.mode, c.vcpus, p.bytesPerVcpu, c.mmu, c.rcu);
    s.vms.push(vm);
    s.pools.push(new VcpuPool(vm));
  }
  return s;
}

/**
 * One round: the vCPUs (of every copy of the VM, at once) populate their regions, then the host
 * unmaps everything. Returns wall ns/fault, from the first vCPU's start to the last one's end,
 * and process CPU ns/fault (every thread: with 1 vCPU the others idle, so it is the vCPU's own
 * time, without the time it spent descheduled on a loaded machine).
 */
async function round(
  s: Setup,
  bytesPerVcpu: number,
  { only = -1, direct = false }: { only?: number; direct?: boolean } = {},
): Promise<[number, number]> {
  // `only` >= 0: that vCPU alone populates (numbered across the copies: copy c's vCPU i is
  // c * vcpus + i); the others are given nothing to do. `direct`: the handler is called for each
  // page as with the MMU model off, in a VM that has it on.
  const cmds = (copy: number) =>
    Array.from({ length: s.vcpus }, (_, i) => ({
      type: "populate" as const,
      start: GIB + i * bytesPerVcpu,
      size: only < 0 || only === copy * s.vcpus + i ? bytesPerVcpu : 0,
      direct,
    }));
  const c0 = process.cpuUsage();
  const phases = await Promise.all(s.pools.map((pool, copy) => pool.runPhase(cmds(copy))));
  const c = process.cpuUsage(c0);
  const replies = phases.flatMap((phase) => phase.replies);
  const faults = replies.reduce((sum, x) => sum + x.faults, 0);
  const wallMs = Math.max(...replies.map((x) => x.endMs)) - Math.min(...replies.map((x) => x.startMs));
  for (const vm of s.vms) vm.unmap(GIB, s.vcpus * bytesPerVcpu);
  return [(wallMs * 1e6) / faults, ((c.user + c.system) * 1e3) / faults];
}

/** The same-thread pair: a shared and an exclusive 1-vCPU VM, one worker that is vCPU 0 of both. */
interface Pair {
  vms: [Vm, Vm];
  worker: Worker;
  /** Bytes populated per slice (eight slices of each VM per round). */
  slice: number;
  /** Per counted round: shared ns over exclusive ns, summed over the slices. */
  ratios: number[];
}

const PAIR_SLICES = 8;

/** Sends one command to the pair worker and resolves with its reply (rejects on error or exit). */
function ask(worker: Worker, cmd: PairCommand | null): Promise<PairReply> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    const onMessage = (m: PairReply) => {
      done();
      if (m.type === "error") reject(new Error(`same-thread pair: ${m.message}`));
      else resolve(m);
    };
    const onError = (e: Error) => {
      done();
      reject(e);
    };
    const onExit = (code: number) => {
      done();
      reject(new Error(`same-thread pair: its worker exited with code ${code}`));
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
    if (cmd !== null) worker.postMessage(cmd);
  });
}

async function setUpPair(p: Required<FaultBenchParams>): Promise<Pair> {
  const slice = Math.max(p.granule, Math.floor(p.bytesPerVcpu / PAIR_SLICES / p.granule) * p.granule);
  const vms: Vm[] = [];
  for (const mode of ["shared", "exclusive"] as const)
    vms.push(await benchVm(p, mode, 1, slice, false, p.rcu));
  const worker = new Worker(new URL("./pair-worker.js", import.meta.url), {
    workerData: { vms: vms.map((vm) => vm.handle) },
  });
  // A worker that dies inside a read-side section must not stall grace periods.
  for (const vm of vms) vm.rcu.watch(worker);
  const pair: Pair = { vms: vms as [Vm, Vm], worker, slice, ratios: [] };
  const ready = await ask(worker, null);
  if (ready.type !== "ready") throw new Error(`same-thread pair: unexpected ${ready.type}`);
  return pair;
}

/**
 * One round of the pair: eight slices through each VM, alternating which goes first, each
 * unmapped by this thread before the next. Returns shared ns over exclusive ns. Checks that one
 * thread ran both and that each VM faulted in its own mode.
 */
async function pairRound(pair: Pair): Promise<number> {
  const ns = [0, 0];
  let thread = -1;
  for (let k = 0; k < PAIR_SLICES; k++) {
    for (const vm of k % 2 === 0 ? [0, 1] : [1, 0]) {
      const r = await ask(pair.worker, { type: "populate", vm, start: GIB, size: pair.slice });
      if (r.type !== "done") throw new Error(`same-thread pair: unexpected ${r.type}`);
      if (r.mode !== (vm === 0 ? "shared" : "exclusive") || (thread >= 0 && r.threadId !== thread))
        throw new Error(`same-thread pair: VM ${vm} ran in ${r.mode} mode on thread ${r.threadId}`);
      thread = r.threadId;
      (pair.vms[vm] as Vm).unmap(GIB, pair.slice);
      ns[vm] = (ns[vm] as number) + r.ns / r.faults;
    }
  }
  return (ns[0] as number) / (ns[1] as number);
}

async function tearDownPair(pair: Pair): Promise<void> {
  const r = await ask(pair.worker, { type: "close" });
  if (r.type !== "closed") throw new Error(`same-thread pair: unexpected ${r.type}`);
  await destroyChecked(pair.vms);
}

async function tearDown(s: Setup): Promise<void> {
  for (const pool of s.pools) await pool.close();
  await destroyChecked(s.vms);
}

/** The flavor a benchmark measures beside `rcu`. */
function otherFlavor(rcu: RcuFlavor): RcuFlavor {
  return rcu === "qsbr" ? "mb" : "qsbr";
}

/**
 * Two threads' throughput together over the sum of their throughputs alone (throughput is 1 / ns
 * per fault; `pairNs` is wall time per fault of both together): 1 is perfect scaling.
 */
export function pairEfficiency(pairNs: number, aloneNsA: number, aloneNsB: number): number {
  return 1 / pairNs / (1 / aloneNsA + 1 / aloneNsB);
}

/** The median of `xs` (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Median and spread of per-round values. */
function summary(xs: readonly number[]): { median: number; min: number; max: number } {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** Resolves the parameters: defaults, quick sizes, and 1 and 2 always in the sweep. */
export function faultBenchParams(opts: BenchOptions, p: FaultBenchParams = {}): Required<FaultBenchParams> {
  const vcpus = [...new Set([1, 2, ...(p.vcpus ?? [8])])].sort((a, b) => a - b);
  for (const v of vcpus)
    if (!Number.isInteger(v) || v < 1 || v > 64) throw new RangeError(`vCPU count ${v} is not in 1..64`);
  const reps = p.reps ?? (opts.quick ? 2 : 7);
  if (!Number.isInteger(reps) || reps < 1) throw new RangeError(`reps ${reps} is not a positive integer`);
  return {
    granule: p.granule ?? 4096,
    iaBits: p.iaBits ?? 40,
    vcpus,
    reps,
    bytesPerVcpu: p.bytesPerVcpu ?? (opts.quick ? 16 * 2 ** 20 : 512 * 2 ** 20),
    rcu: p.rcu ?? "qsbr",
  };
}

/** Runs the sweep, the MMU configuration and the bare loop, round after round. */
export async function runFaultBench(
  opts: BenchOptions = {},
  params: FaultBenchParams = {},
): Promise<FaultBenchResult> {
  const p = faultBenchParams(opts, params);
  // Before anything is optimized: the bare loop in this thread as well as the vCPU workers.
  raiseInliningBudget();
  if (GIB + Math.max(...p.vcpus) * p.bytesPerVcpu > 2 ** p.iaBits)
    throw new RangeError(
      `Cannot run the faults benchmark: ${Math.max(...p.vcpus)} vCPUs x ${p.bytesPerVcpu / 2 ** 20} MiB from 1 GiB exceed the ${p.iaBits}-bit IPA space`,
    );
  const rcu = p.rcu;
  const configs: Config[] = [];
  for (const vcpus of p.vcpus)
    for (const mode of ["shared", "exclusive"] as const)
      configs.push({ mode, vcpus, mmu: false, rcu, copies: 1 });
  configs.push({ mode: "shared", vcpus: 1, mmu: true, rcu, copies: 1 });
  configs.push({ mode: "shared", vcpus: 1, mmu: false, rcu: otherFlavor(rcu), copies: 1 });
  configs.push({ mode: "shared", vcpus: 1, mmu: false, rcu, copies: 2 });
  const setups: Setup[] = [];
  const raw: number[] = [];
  const rawCpu: number[] = [];
  const steps = (p.reps + 1) * (configs.length + 2);
  let pair: Pair | null = null;
  try {
    for (const c of configs) setups.push(await setUp(c, p));
    pair = await setUpPair(p);
    for (let r = 0; r <= p.reps; r++) {
      for (const [i, s] of setups.entries()) {
        const step = `round ${r}: ${s.copies > 1 ? `${s.copies} VMs at once, ` : ""}${s.mode}, ${s.vcpus} vCPU${s.mmu ? ", MMU model" : ""}${s.rcu === rcu ? "" : `, ${s.rcu} RCU`}`;
        opts.progress?.(r * (setups.length + 2) + i, steps, step);
        // Two vCPUs (one VM or the control's two): each also populates alone, for the efficiency.
        const solo = s.mode === "shared" && s.vcpus * s.copies === 2 && !s.mmu && s.rcu === rcu;
        // The MMU configuration's baseline in its own thread: the handler called directly.
        const [before] = s.mmu ? await round(s, p.bytesPerVcpu, { direct: true }) : [0];
        // Both vCPUs at once first: a round right after this VM's unmap would start with
        // mmu_lock's reader bias off (the inhibit after a revocation), and two vCPUs' counted read
        // locks contend where one vCPU's do not.
        const [ns, cpu] = await round(s, p.bytesPerVcpu);
        const [after] = s.mmu ? await round(s, p.bytesPerVcpu, { direct: true }) : [0];
        const [alone0] = solo ? await round(s, p.bytesPerVcpu, { only: 0 }) : [0];
        const [alone1] = solo ? await round(s, p.bytesPerVcpu, { only: 1 }) : [0];
        if (r > 0) {
          s.ns.push(ns);
          s.cpu.push(cpu);
          if (solo) s.solo.push([alone0, alone1]);
          if (s.mmu) s.direct.push((before + after) / 2);
        }
      }
      opts.progress?.(
        r * (setups.length + 2) + setups.length,
        steps,
        `round ${r}: shared and exclusive in one thread`,
      );
      const sameThread = await pairRound(pair);
      if (r > 0) pair.ratios.push(sameThread);
      opts.progress?.(r * (setups.length + 2) + setups.length + 1, steps, `round ${r}: bare populate loop`);
      const cpu: number[] = [];
      const [ns] = timeBarePopulate(p.granule, p.iaBits, p.bytesPerVcpu, GIB, 1, cpu) as [number];
      if (r > 0) {
        raw.push(ns);
        rawCpu.push(cpu[0] as number);
      }
    }
    for (const s of setups) await tearDown(s);
    await tearDownPair(pair);
  } catch (e) {
    for (const s of setups) for (const pool of s.pools) await pool.terminate();
    await pair?.worker.terminate();
    throw e;
  }
  return summarize(p, setups, raw, rawCpu, pair.ratios);
}

function summarize(
  p: Required<FaultBenchParams>,
  setups: Setup[],
  raw: number[],
  rawCpu: number[],
  sameThread: number[],
): FaultBenchResult {
  const setup = (mode: FaultMode, vcpus: number, mmu = false, rcu = p.rcu, copies = 1) =>
    setups.find(
      (s) => s.mode === mode && s.vcpus === vcpus && s.mmu === mmu && s.rcu === rcu && s.copies === copies,
    ) as Setup;
  const find = (mode: FaultMode, vcpus: number, mmu = false) => setup(mode, vcpus, mmu).ns;
  const perRound = (f: (r: number) => number) => Array.from({ length: p.reps }, (_, r) => f(r));
  const s1 = find("shared", 1);
  const e1 = find("exclusive", 1);
  const s2 = find("shared", 2);
  const e2 = find("exclusive", 2);
  const m1 = find("shared", 1, true);
  const direct1 = setup("shared", 1, true).direct;
  const o1 = setup("shared", 1, false, otherFlavor(p.rcu)).ns;
  const twin = setup("shared", 1, false, p.rcu, 2).ns;
  const efficiency = (pair: number[], solo: [number, number][]) =>
    perRound((r) => pairEfficiency(pair[r] as number, ...(solo[r] as [number, number])));
  const pages = p.bytesPerVcpu / p.granule;
  // m1 is ns per fault and the MMU path takes one fault per page: its populate time per page is
  // ns * faults / pages, and faults = pages (each first touch faults once).
  const series: Record<string, number[]> = {
    nsPerFault1v: s1,
    rawNsPerPage: raw,
    faultOverRaw1v: perRound((r) => (s1[r] as number) / (raw[r] as number)),
    nsPerFaultExclusive1v: e1,
    nsPerFault2v: s2,
    nsPerFaultExclusive2v: e2,
    // Throughput with 2 vCPUs over throughput with 1: (1/ns2) / (1/ns1).
    sharedSpeedup2v: perRound((r) => (s1[r] as number) / (s2[r] as number)),
    exclusiveSpeedup2v: perRound((r) => (e1[r] as number) / (e2[r] as number)),
    sharedOverExclusive1v: perRound((r) => (s1[r] as number) / (e1[r] as number)),
    sharedOverExclusiveSameThread1v: sameThread,
    nsPerPageMmu1v: m1,
    mmuOverhead1v: perRound((r) => (m1[r] as number) / (s1[r] as number)),
    mmuOverheadSameVcpu1v: perRound((r) => (m1[r] as number) / (direct1[r] as number)),
    nsPerFaultOtherRcu1v: o1,
    otherRcuOverShared1v: perRound((r) => (o1[r] as number) / (s1[r] as number)),
    independentSpeedup2v: perRound((r) => (s1[r] as number) / (twin[r] as number)),
    sharedScaling2v: perRound((r) => (twin[r] as number) / (s2[r] as number)),
    sharedEfficiency2v: efficiency(s2, setup("shared", 2).solo),
    independentEfficiency2v: efficiency(twin, setup("shared", 1, false, p.rcu, 2).solo),
  };
  // The same 1-vCPU figures in process CPU time: what a loaded machine cannot inflate.
  const c1 = setup("shared", 1).cpu;
  const ce1 = setup("exclusive", 1).cpu;
  const cm1 = setup("shared", 1, true).cpu;
  series.cpuNsPerFault1v = c1;
  series.cpuRawNsPerPage = rawCpu;
  series.cpuFaultOverRaw1v = perRound((r) => (c1[r] as number) / (rawCpu[r] as number));
  series.cpuNsPerFaultExclusive1v = ce1;
  series.cpuSharedOverExclusive1v = perRound((r) => (c1[r] as number) / (ce1[r] as number));
  series.cpuNsPerPageMmu1v = cm1;
  series.cpuMmuOverhead1v = perRound((r) => (cm1[r] as number) / (c1[r] as number));
  if (p.vcpus.includes(8)) {
    const s8 = find("shared", 8);
    series.speedup8vOver2v = perRound((r) => (s2[r] as number) / (s8[r] as number));
  }
  const out: Record<string, number> = {};
  const spread: Record<string, [number, number]> = {};
  for (const [k, xs] of Object.entries(series)) {
    const sm = summary(xs);
    out[k] = sm.median;
    spread[k] = [sm.min, sm.max];
  }
  const sweep: SweepPoint[] = [];
  for (const mode of ["shared", "exclusive"] as const) {
    const one = find(mode, 1);
    for (const vcpus of p.vcpus) {
      const ns = find(mode, vcpus);
      const sm = summary(ns);
      sweep.push({
        mode,
        vcpus,
        nsPerFault: sm.median,
        nsPerFaultMin: sm.min,
        nsPerFaultMax: sm.max,
        faultsPerSec: 1e9 / sm.median,
        speedup: median(perRound((r) => (one[r] as number) / (ns[r] as number))),
        kernelSpeedup: kernelSpeedup(mode, vcpus),
      });
    }
  }
  return {
    ...(out as unknown as Omit<
      FaultBenchResult,
      | "faultsPerVcpu"
      | "reps"
      | "granule"
      | "iaBits"
      | "rcuFlavor"
      | "nodeFlags"
      | "inliningBudget"
      | "spread"
      | "sweep"
    >),
    rcuFlavor: p.rcu,
    nodeFlags: [...process.execArgv],
    inliningBudget: raiseInliningBudget(),
    faultsPerVcpu: pages,
    reps: p.reps,
    granule: p.granule,
    iaBits: p.iaBits,
    spread,
    sweep,
  };
}
