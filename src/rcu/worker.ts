/**
 * Entry of the callback worker thread (started by `Rcu.create`): attaches the domain, loads the
 * plugins that define callback kinds, reports "ready", then runs the callback engine until
 * `Rcu.close()`. All later traffic goes through shared memory; the thread sleeps when idle.
 */
import { parentPort, threadId, workerData } from "node:worker_threads";
import { loadRcuPlugins, RcuCallbackRegistry } from "./callbacks.js";
import { CallbackEngine } from "./engine.js";
import { reapThread } from "./registry.js";
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
// A callback that calls process.exit(), or an error escaping the engine: the thread still runs its
// "exit" handlers, so it gives up its role itself (the engine is lost unless run() returned).
// Terminated or out of memory, it runs none: its creator reaps it from the "exit" event.
process.on("exit", () => reapThread(sh, threadId));
parentPort?.postMessage({ type: "ready" });
for (const fn of registry.startHooks) {
  try {
    fn();
  } catch (e) {
    console.error("rcu: a plugin's engine-start hook failed:", e);
  }
}
engine.run();
