/**
 * The reviewers' two questions, measured: a collapse storm per reclaim strategy.
 *
 * Two vCPUs each populate 1 GiB with 4K pages (512 table pages each; 64 MiB in quick mode), then
 * collapse it into blocks
 * as fast as they can: either 2 MiB blocks (512 unlinks of one table page each, back to back) or
 * one 1 GiB block (one unlink of a 513-page subtree). Reported per strategy and storm: wall time
 * of the storm, callbacks queued, peak pending callbacks and pages, callback slice durations
 * (p50/p99/max), synchronous fallbacks, and the teardown barrier.
 */
import type { ReclaimStatsSnapshot } from "../kvm/reclaim/stats.js";
import { STRATEGIES, type StrategyName } from "../kvm/reclaim/strategy.js";
import { Vm } from "../kvm/vm.js";
import { VcpuPool } from "../sim/host.js";
import type { BenchOptions } from "./options.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

export interface StormResult {
  strategy: StrategyName;
  blockSize: number;
  stormMs: number;
  callbacksQueued: number;
  peakPendingCallbacks: number;
  peakPendingPages: number;
  peakPendingKiB: number;
  callbackP50Ns: number;
  callbackP99Ns: number;
  callbackMaxNs: number;
  syncFallbacks: number;
  barrierMs: number;
  pagesReclaimed: number;
  gracePeriods: number;
}

/** Each vCPU owns 1 GiB; it populates the first `populated` bytes, then collapses them. */
async function storm(strategy: StrategyName, blockSize: number, populated: number): Promise<StormResult> {
  const vcpus = 2;
  const bytesPerVcpu = GIB;
  const vm = await Vm.create({
    granule: 4096,
    iaBits: 40,
    poolPages: (vcpus * populated) / 4096 / 512 + 256,
    mode: "shared",
    vcpus,
    memslots: [{ ipa: GIB, size: vcpus * bytesPerVcpu, hostPa: 0x40_0000_0000, backing: "anonymous" }],
    reclaim: { strategy, boundedCapPages: 128 },
  });
  const pool = new VcpuPool(vm);
  let stormMs = 0;
  try {
    const regions = Array.from({ length: vcpus }, (_, i) => GIB + i * bytesPerVcpu);
    await pool.runPhase(regions.map((start) => ({ type: "populate" as const, start, size: populated })));
    const size = Math.max(populated, blockSize);
    const phase = await pool.runPhase(
      regions.map((start) => ({ type: "collapse" as const, start, size, blockSize })),
    );
    stormMs = phase.wallMs;
    await pool.close();
  } catch (e) {
    await pool.terminate();
    throw e;
  }
  const destroy = await vm.destroy();
  if (destroy.leakedPages.length > 0)
    throw new Error(`reclaim study leaked ${destroy.leakedPages.length} pages`);
  const r: ReclaimStatsSnapshot = vm.reclaimSnapshot();
  return {
    strategy,
    blockSize,
    stormMs,
    callbacksQueued: r.callbacksQueued,
    peakPendingCallbacks: r.peakPendingCallbacks,
    peakPendingPages: r.peakPendingPages,
    peakPendingKiB: r.peakPendingBytes / 1024,
    callbackP50Ns: r.callbackNs.p50,
    callbackP99Ns: r.callbackNs.p99,
    callbackMaxNs: r.callbackNs.max,
    syncFallbacks: r.syncFallbacks,
    barrierMs: destroy.barrierMs,
    pagesReclaimed: r.pagesReclaimed,
    gracePeriods: destroy.gracePeriods,
  };
}

export async function runReclaimStudy(opts: BenchOptions = {}): Promise<{ storms: StormResult[] }> {
  const populated = opts.quick ? 64 * MIB : GIB;
  const storms: StormResult[] = [];
  const total = 2 * STRATEGIES.length;
  for (const blockSize of [2 * MIB, GIB]) {
    for (const strategy of STRATEGIES) {
      opts.progress?.(storms.length, total, `${blockSize === GIB ? "1G" : "2M"} storm, ${strategy}`);
      storms.push(await storm(strategy, blockSize, populated));
    }
  }
  return { storms };
}
