/**
 * Starts the host participant of a controlled torture round (host-worker.ts) and collects what it
 * did. The worker runs `ops` host operations drawn from `seed`, with allocation failures injected
 * at `allocFail`, taking turns with the vCPUs and the RCU callback worker.
 */
import { Worker } from "node:worker_threads";
import type { VmHandle } from "../kvm/vm.js";
import type { SchedulerHandle } from "../sync/controlled.js";
import type { HostOpRecord } from "./host-ops.js";

/** The host worker's workerData. */
export interface HostParticipantData {
  vm: VmHandle;
  seed: number;
  ops: number;
  allocFail: number;
  controlled: { handle: SchedulerHandle; id: number };
}

/** What the host participant did. */
export interface HostParticipantResult {
  ops: number;
  counts: Record<string, number>;
  /** Host operations that failed with ENOMEM. */
  nomem: number;
  log: HostOpRecord[];
  /** Failures injected in the host thread, by point name. */
  injected: Record<string, number>;
  /** The first line of what a host operation threw (a violation), or null. */
  error: string | null;
}

/** Runs the host participant to its end; rejects if its thread dies before it reports. */
export function runHostParticipant(data: HostParticipantData): Promise<HostParticipantResult> {
  const worker = new Worker(new URL("./host-worker.js", import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    let result: HostParticipantResult | null = null;
    worker.once("message", (m: HostParticipantResult) => {
      result = m;
    });
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (result !== null) resolve(result);
      else reject(new Error(`the host participant exited with code ${code} before it reported`));
    });
  });
}
