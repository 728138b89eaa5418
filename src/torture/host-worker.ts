/**
 * The host participant of a controlled torture round: a worker thread that attaches a host view of
 * the round's VM (`attachHost`) and runs the host op mix (host-ops.ts) as one participant of the
 * controlled scheduler, so that its unmaps, write-protects, dirty logging and memslot changes
 * interleave with the vCPUs' operations and the RCU callback worker's frees exactly as the
 * schedule decides. Between two operations it passes `RacePoint.OP_GAP`, where others may run.
 *
 * Started by `runHostParticipant()`; posts one `HostParticipantResult` and exits.
 */
import { parentPort, workerData } from "node:worker_threads";
import {
  clearFailures,
  FAILURE_POINTS,
  injectedCounts,
  RacePoint,
  racePoint,
  resetInjectedCounts,
  setFailureRates,
} from "../common/race-points.js";
import { Rng } from "../common/rng.js";
import { attachHost } from "../kvm/vm.js";
import { ControlledScheduler } from "../sync/controlled.js";
import { HostMix } from "./host-ops.js";
import type { HostParticipantData, HostParticipantResult } from "./host-participant.js";

const d = workerData as HostParticipantData;
const mix = new HostMix(attachHost(d.vm), new Rng(d.seed), d.vm.options.granule);
resetInjectedCounts();
if (d.allocFail > 0)
  setFailureRates(Object.fromEntries(FAILURE_POINTS.map((p) => [p, d.allocFail])), d.seed ^ 0x68e31da4);
const sched = ControlledScheduler.attach(d.controlled.handle, d.controlled.id);
let error: string | null = null;
sched.begin();
try {
  for (let i = 0; i < d.ops; i++) {
    racePoint(RacePoint.OP_GAP);
    mix.step();
  }
} catch (e) {
  error = String((e as Error)?.message ?? e).split("\n")[0] as string;
} finally {
  sched.finish();
  clearFailures();
}
const result: HostParticipantResult = {
  ops: mix.ops,
  counts: mix.counts,
  nomem: mix.nomem,
  log: mix.log,
  injected: injectedCounts().failures,
  error,
};
parentPort?.postMessage(result);
