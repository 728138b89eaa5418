/**
 * The RCU callback worker as a participant of a controlled run (`sync/controlled.ts`): an RCU
 * plugin that joins the scheduler from the callback worker's thread, as a daemon, just before the
 * engine starts. From then on the engine runs only when the scheduler picks it, and its idle sleeps
 * become yields; once every other participant has finished, it leaves the run and works as usual
 * (the VM's teardown needs it).
 *
 * Use `controlledRcu(handle, id)` for the VM's RCU options: it adds this plugin and takes the clock
 * out of the engine (no batching delay, no batch time budget), so that what the engine does
 * depends only on the schedule.
 */
import type { RcuCallbackRegistry } from "../rcu/callbacks.js";
import { ControlledScheduler, type SchedulerHandle } from "../sync/controlled.js";

/** The plugin's data: the scheduler and the engine's participant id. */
export interface ControlledRcuData {
  handle: SchedulerHandle;
  id: number;
}

/** RCU plugin entry (loaded in the callback worker). */
export function registerRcuCallbacks(registry: RcuCallbackRegistry, data: unknown): void {
  const d = data as ControlledRcuData;
  const sched = ControlledScheduler.attach(d.handle, d.id);
  registry.onEngineStart(() => sched.begin({ daemon: true }));
}

/** RCU options that make a VM's callback worker participant `id` of the scheduler of `handle`. */
export function controlledRcu(
  handle: SchedulerHandle,
  id: number,
): { plugins: { url: string; data: ControlledRcuData }[]; gpDelayMs: number; batchTimeMs: number } {
  return {
    plugins: [{ url: new URL("./controlled-rcu.js", import.meta.url).href, data: { handle, id } }],
    gpDelayMs: 0,
    batchTimeMs: 60_000,
  };
}
