/**
 * stage2: ARM64 KVM-style stage-2 page tables with parallel fault handling protected by RCU, on
 * Node.js worker threads over SharedArrayBuffer.
 *
 * This entry exports the headline classes and functions, and every layer as a namespace
 * (`arch`, `common`, `mem`, `sync`, `rcu`, `pgtable`, `kvm`). Each layer is also a subpath of the
 * package (`stage2/rcu`, `stage2/kvm`, ...), which is what code that uses one layer should import.
 *
 * Shared structures follow one convention: `X.create(opts)` allocates the SharedArrayBuffers in the
 * calling thread, `x.handle` is posted to workers, and `X.attach(handle)` builds a view there.
 */
/** ARMv8 facts: descriptors, geometry, `VTCR_EL2`, maintenance hooks (also `stage2/arch`). */
export * as arch from "./arch/mod.js";
/** Errno, typed errors, seeded generators, log2 histograms, race points (`stage2/common`). */
export * as common from "./common/mod.js";
/** VM, memslots, fault handler, reclaim strategies and their contract (`stage2/kvm`). */
export * as kvm from "./kvm/mod.js";
/** The shared page pool, its allocator and memory caches (`stage2/mem`). */
export * as mem from "./mem/mod.js";
/** The walker and every stage-2 operation (`stage2/pgtable`). */
export * as pgtable from "./pgtable/mod.js";
/** Userspace RCU for worker threads, usable on its own (`stage2/rcu`). */
export * as rcu from "./rcu/mod.js";
/** mmu_lock (a reader-writer lock in shared memory) and spin-then-sleep waits (`stage2/sync`). */
export * as sync from "./sync/mod.js";

export { computeGeometry, type Geometry, type Granule } from "./arch/geometry.js";
export { Errno, errnoName, Stage2Error } from "./common/errno.js";
export {
  attachVcpu,
  type DestroyReport,
  type ReclaimStrategy,
  type ReclaimStrategyEnv,
  type ReclaimStrategyFactory,
  resolveStrategy,
  type VcpuContext,
  Vm,
  type VmHandle,
  type VmOptions,
} from "./kvm/mod.js";
export { MemCache, PagePool } from "./mem/mod.js";
export { getLeaf, LeafResult, map, Stage2, unmap } from "./pgtable/mod.js";
export { Rcu, type RcuThread } from "./rcu/mod.js";
export { type PhaseResult, VcpuPool } from "./sim/host.js";
export type { VcpuCommand } from "./sim/protocol.js";
export { runStress, type StressRunOptions, type StressRunReport } from "./sim/stress-run.js";
export type { StressOptions, StressResult } from "./sim/workloads.js";
export { RwLock } from "./sync/mod.js";
