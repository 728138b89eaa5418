/** Messages between the host thread and vCPU workers (structured-cloneable plain objects). */
import type { MemstressHandle, MemstressSlice } from "./memstress.js";
import type { TortureVcpuOptions, TortureVcpuResult } from "./torture-vcpu.js";
import type { StressOptions, StressResult } from "./workloads.js";

/** A command for one vCPU worker (one per vCPU in `VcpuPool.runPhase`). */
export type VcpuCommand =
  /** `direct`: call the fault handler for each page even with the MMU model on (workloads.populate). */
  | { type: "populate"; start: number; size: number; direct?: boolean }
  | { type: "stress"; options: StressOptions }
  /** `stage2 torture`: a seeded op mix with injected failures and the RCU age check. */
  | { type: "torture"; options: TortureVcpuOptions }
  | { type: "collapse"; start: number; size: number; blockSize: number }
  /** Runs memstress passes as the host drives them through `ms` until it sets QUIT. */
  | { type: "memstress"; ms: MemstressHandle; slice: MemstressSlice }
  | { type: "close" };

export type VcpuReply =
  | { type: "ready"; vcpu: number }
  | {
      type: "done";
      vcpu: number;
      startMs: number;
      endMs: number;
      faults: number;
      stress?: StressResult;
      torture?: TortureVcpuResult;
    }
  | { type: "closed"; vcpu: number; uaf: number; firstFault: string | null }
  | { type: "error"; vcpu: number; message: string };

/** Go word layout (Int32Array, shared by the host and every vCPU of one run):
 *   [0] GO: the host stores the phase number and notifies; workers wait until it changes. */
export const enum Go {
  PHASE = 0,
  WORDS = 1,
}
