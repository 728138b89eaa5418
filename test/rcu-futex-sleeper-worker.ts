/** Sleeps on one word as a grace-period driver does on GP_FUTEX; posts what Atomics.wait returned. */
import { parentPort, workerData } from "node:worker_threads";

const { ctl, index, ms } = workerData as { ctl: SharedArrayBuffer; index: number; ms: number };
const result = Atomics.wait(new Int32Array(ctl), index, -1, ms);
parentPort?.postMessage({ result });
