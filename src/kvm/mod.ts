/**
 * The KVM layer: a VM (stage-2 table, memslots, mmu_lock, an RCU domain for deferred reclaim),
 * the vCPU fault handler, and the reclaim strategies for unlinked subtrees, including the contract
 * a user-written strategy implements (`ReclaimStrategy`, loaded with `resolveStrategy`).
 */
export { FaultHandler, FaultKind, type FaultMode, type MmuLockOps } from "./fault.js";
export { type Backing, BACKINGS, type MemslotSpec, Memslots, type MemslotsHandle } from "./memslot.js";
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
  attachVcpu,
  type DestroyReport,
  UNSAFE_RECLAIM_SWITCH,
  type VcpuContext,
  Vm,
  type VmHandle,
  type VmOptions,
} from "./vm.js";
