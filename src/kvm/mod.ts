/** The VM model: VM and vCPU/host views, memslots, the fault handler, dirty logging, reclaim strategies. */
export {
  attachHost,
  attachVcpu,
  type DestroyReport,
  type VcpuContext,
  Vm,
  type VmHandle,
  type VmOptions,
  type VmTestOnly,
} from "./vm.js";
export {
  type DirtyLogEnableResult,
  type DirtyLogOptions,
  type HostTestOnly,
  type MemslotInfo,
  VmHost,
} from "./host.js";
export { type Backing, BACKINGS, type MemslotSpec, MemslotTable, SlotRef } from "./memslot.js";
export { FaultHandler, FaultKind, type FaultMode } from "./fault.js";
export { type VcpuStatsSnapshot, VcpuStats } from "./vcpu-stats.js";
export type { RcuFlavor } from "./reclaim/rcu-glue.js";
export type { ReclaimStatsSnapshot } from "./reclaim/stats.js";
export { DEFAULT_RECLAIM, type ReclaimOptions, STRATEGIES, type StrategyName } from "./reclaim/strategy.js";
