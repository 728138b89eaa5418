/**
 * A thread that creates an RCU domain (so it owns the callback worker and its reaper), terminates
 * its own callback worker, and at once blocks in barrier() with no event-loop turn in between: only
 * the reaper thread can see the death. Posts what barrier() did.
 */
import { parentPort, type Worker, workerData } from "node:worker_threads";
import { Errno } from "../src/common/errno.js";
import { Rcu } from "../src/rcu/mod.js";
import { testPlugin } from "./rcu-helpers-worker.js";
import { TestKind } from "./rcu-test-plugin-worker.js";

const { flavor, counters } = workerData as { flavor: "mb" | "qsbr"; counters: SharedArrayBuffer };
const rcu = await Rcu.create({ flavor, plugins: [testPlugin(counters)] });
rcu.onStall = () => {}; // the reaper's DIED report: expected, not printed
const t = rcu.register();
t.offline(); // qsbr: the grace periods of the barrier must not wait for this thread
// The test reaches into the domain for its callback worker: nothing public hands it out.
const callbackWorker = (rcu as unknown as { worker: Worker }).worker;
void callbackWorker.terminate();
let outcome = "returned";
try {
  // terminate() only asks: a barrier the engine finishes before it stops returns, but a
  // terminated engine finishes no third one.
  for (let i = 0; i < 3; i++) t.barrier();
} catch (e) {
  outcome = e instanceof Error ? e.name : String(e);
}
const call = t.call(TestKind.INC, 0);
parentPort?.postMessage({ outcome, call: call === Errno.INVAL ? "EINVAL" : String(call) });
t.unregister();
