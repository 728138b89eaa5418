/**
 * Busy reader of the RCU benchmark (like the anchor's reader thread): registers with the domain and
 * loops readLock / load the published node / readUnlock until told to stop. qsbr readers report a
 * quiescent state every 64 reads.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Rcu, type RcuHandle } from "../rcu/mod.js";

const { handle, node, stop } = workerData as {
  handle: RcuHandle;
  node: SharedArrayBuffer;
  stop: SharedArrayBuffer;
};
const rcu = Rcu.attach(handle);
const t = rcu.register();
const ptr = new Int32Array(node);
const halt = new Int32Array(stop);
let sum = 0;
parentPort?.postMessage("ready");
for (let i = 0; Atomics.load(halt, 0) === 0; i++) {
  t.readLock();
  sum += ptr[Atomics.load(ptr, 0)] as number;
  t.readUnlock();
  if ((i & 63) === 0) t.quiescentState();
}
t.unregister();
parentPort?.postMessage(sum & 1);
