/**
 * Entry of the callback worker thread (started by `Rcu.create`): attaches the domain, loads the
 * plugins that define callback kinds, reports "ready", then runs the callback engine until
 * `Rcu.close()`. All later traffic goes through shared memory; the thread sleeps when idle.
 */
import { parentPort, threadId, workerData } from "node:worker_threads";
import { loadRcuPlugins, RcuCallbackRegistry } from "./callbacks.js";
import { CallbackEngine } from "./engine.js";
import { type RcuHandle, RcuShared } from "./shared.js";

const handle = (workerData as { handle: RcuHandle }).handle;
const sh = RcuShared.attach(handle);
const registry = new RcuCallbackRegistry(sh.options.maxKinds, handle);
try {
  await loadRcuPlugins(registry, sh.options.plugins);
} catch (e) {
  parentPort?.postMessage({ type: "error", message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
}
const engine = new CallbackEngine(sh, registry, threadId);
parentPort?.postMessage({ type: "ready" });
engine.run();
