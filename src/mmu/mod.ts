/**
 * The vCPU MMU model: per-vCPU TLBs and walk caches in shared memory, the lockless hardware
 * walker, and broadcast TLB invalidation with completion.
 */
export { Access, decodeVtcr, VcpuMmu } from "./hardware-walker.js";
export {
  formatViolation,
  Mmu,
  type MmuHandle,
  type MmuOptions,
  MmuTlbi,
  type Violation,
  violationTotal,
} from "./mmu.js";
export { TlbiKind, TTL_NONE, VIOLATION_NAMES, ViolationKind } from "./layout.js";
export { VcpuTlb } from "./tlb.js";
