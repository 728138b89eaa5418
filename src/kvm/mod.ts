/**
 * The KVM layer: a VM (stage-2 table, memslot table, mmu_lock, an RCU domain for deferred reclaim),
 * its vCPU and host views, the fault handler, dirty logging, access tracking, and the reclaim
 * strategies for unlinked subtrees, including the contract a user-written strategy implements
 * (`ReclaimStrategy`, loaded with `resolveStrategy`).
 */
export type { VcpuDeathReport } from "./death.js";
export { DeathWatch } from "./death-watch.js";
export { FaultHandler, FaultKind, type FaultMode, type MmuLockOps } from "./fault.js";
export {
  type DirtyLogEnableResult,
  type DirtyLogOptions,
  type HostTestOnly,
  type MemslotInfo,
  VmHost,
} from "./host.js";
export { type Backing, BACKINGS, type MemslotSpec, MemslotTable, SlotRef } from "./memslot.js";
export { BatchedStrategy } from "./reclaim/batched.js";
export type { RcuFlavor, VcpuRcu, VmRcu, VmRcuHandle } from "./reclaim/rcu-glue.js";
export { ReclaimStats, type ReclaimStatsSnapshot, RStat } from "./reclaim/stats.js";
export {
  BaseReclaimStrategy,
  BoundedStrategy,
  countSubtreePages,
  DEFAULT_RECLAIM,
  freeQuiescent,
  PerSubtreeStrategy,
  PerTableStrategy,
  ReclaimKind,
  type ReclaimOptions,
  type ReclaimRcu,
  type ReclaimStrategy,
  type ReclaimStrategyEnv,
  type ReclaimStrategyFactory,
  STRATEGIES,
  type StrategyName,
  type StrategySpec,
  strategyLabel,
  type UserStrategyRef,
} from "./reclaim/strategy.js";
export {
  isBuiltinStrategy,
  loadStrategyFactory,
  resolveStrategy,
  StrategyLoadError,
} from "./reclaim/user-strategy.js";
export { VcpuStats, type VcpuStatsSnapshot, VStat } from "./vcpu-stats.js";
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
