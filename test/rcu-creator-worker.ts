/**
 * A thread that creates an RCU domain (and so owns its callback worker) for the worker-death tests,
 * then blocks in synchronous RCU waits with no event loop turn in between. Posts what happened.
 * Here: queue a callback that kills the callback worker (process.exit inside it), then barrier()
 * at once; the worker's "exit" event cannot reach this thread while barrier() waits.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Errno } from "../src/common/errno.js";
import { Rcu } from "../src/rcu/mod.js";
import { testPlugin } from "./rcu-helpers-worker.js";
import { TestKind } from "./rcu-test-plugin-worker.js";

const { flavor, counters } = workerData as { flavor: "mb" | "qsbr"; counters: SharedArrayBuffer };
const rcu = await Rcu.create({ flavor, plugins: [testPlugin(counters)] });
const t = rcu.register();
t.call(TestKind.INC, 0);
t.call(TestKind.EXIT, 0);
let outcome = "returned";
try {
  t.barrier();
} catch (e) {
  outcome = e instanceof Error ? e.name : String(e);
}
const call = t.call(TestKind.INC, 0);
parentPort?.postMessage({ outcome, call: call === Errno.INVAL ? "EINVAL" : String(call) });
t.unregister();
