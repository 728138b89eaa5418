/**
 * Callback kinds: what a queued head means, and how the callback worker learns it.
 *
 * Deferred work crosses threads as data: `call(kind, a0, a1, a2)`. The thread that runs callbacks
 * (the callback worker) maps each kind to a function with a registry. The worker is started with a
 * list of plugins `{ url, data }`; it imports each module and calls its export
 *
 *     export function registerRcuCallbacks(registry: RcuCallbackRegistry, data: unknown): void | Promise<void>
 *
 * which defines kinds (`registry.define(KIND, fn)`) and attaches whatever shared memory they need
 * from `data` (e.g. a page pool's SharedArrayBuffers); `registry.handle` is the domain's handle.
 * Plugins run before the worker reports ready. A plugin that must join something from the engine's
 * own thread (a controlled scheduler, say) registers `registry.onEngineStart(fn)`: the worker runs
 * each such function after it reported ready, just before its engine starts.
 *
 * Callback contract:
 * - `fn(a0, a1, a2, ctx)` runs after a grace period that began after the call, in the callback
 *   worker, outside any read-side section. Keep it short: the worker runs callbacks in batches.
 * - Return nothing (or 0) when done. Return RCU_AGAIN to be run again later without another grace
 *   period (a slice of a long job: free part of a subtree, then yield); the callback may first store
 *   its progress with `ctx.setArgs()`. `ctx.deadline` is the performance.now() time at which the
 *   current batch's budget ends: a sliced callback should stop by then.
 * - A callback on a reserved (intrusive) head may free the memory that holds the head before it
 *   returns: the head is already idle and may be queued again at once. A callback that returns
 *   RCU_AGAIN must keep that memory until its last slice.
 * - A callback that throws is counted in `stats().errors`, reported on stderr and treated as done.
 * - barrier() waits for sliced callbacks until their last slice.
 *
 * Defined kinds are published in shared memory (`RcuShared.kinds`) so that call() refuses an
 * undefined kind at once (Errno.INVAL) instead of queueing work the worker cannot run. The registry
 * publishes when a callback engine adopts it (the engine's constructor), and every later define()
 * at once. The stores are Atomics.store; callers read with plain loads: the callback worker adopts
 * its registry before it posts "ready", `Rcu.create` resolves after that message, and every other
 * thread learns of the domain (its handle) from the creator afterwards.
 */

import type { RcuHandle } from "./shared.js";

/** Return it from a callback to be run again later (no new grace period needed). */
export const RCU_AGAIN = 1;

/** What a callback learns about its run besides its three arguments. */
export interface RcuCallbackContext {
  /** The head being run (reserved heads: the value reserveHeads() handed out plus the offset). */
  readonly head: number;
  /** performance.now() time at which this batch's time budget ends. */
  readonly deadline: number;
  /** True while the callback worker is in flood mode. */
  readonly flooding: boolean;
  /**
   * Arguments for the next run of this callback, if it returns RCU_AGAIN (ignored otherwise). They
   * reach the head only after the engine has claimed it back, never the head of a newer call.
   */
  setArgs(a0: number, a1: number, a2: number): void;
}

/**
 * Deferred work of one kind: runs in the callback worker with the arguments given to call().
 * Return nothing (done) or RCU_AGAIN (run me again); see the callback contract above.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a callback may return nothing to say "done"
export type RcuCallback = (a0: number, a1: number, a2: number, ctx: RcuCallbackContext) => number | void;

/** What a plugin module exports under the name `registerRcuCallbacks`. */
export type RegisterRcuCallbacks = (registry: RcuCallbackRegistry, data: unknown) => void | Promise<void>;

/**
 * The callback worker's table from kind to function. Plugins fill it with define() before the
 * worker reports ready; define every kind before any thread queues it.
 */
export class RcuCallbackRegistry {
  /** Indexed by kind; undefined where nothing is defined. */
  readonly fns: (RcuCallback | undefined)[];
  /** Kinds are integers in 0..maxKinds-1 (the domain's `maxKinds` option). */
  readonly maxKinds: number;
  /** The domain the callbacks belong to, for plugins that attach it (`Rcu.attach(registry.handle)`). */
  readonly handle: RcuHandle | null;

  constructor(maxKinds: number, handle: RcuHandle | null = null) {
    this.maxKinds = maxKinds;
    this.handle = handle;
    this.fns = new Array<RcuCallback | undefined>(maxKinds).fill(undefined);
  }

  /** Functions the callback worker runs just before its engine starts (`onEngineStart`). */
  readonly startHooks: (() => void)[] = [];

  /**
   * Runs `fn` on the callback worker's thread after the worker reported ready, just before its
   * engine starts: for a plugin that must do something from the engine's thread that may block
   * (join a controlled scheduler, which waits for the other participants).
   */
  onEngineStart(fn: () => void): void {
    if (typeof fn !== "function") throw new TypeError("onEngineStart: not a function");
    this.startHooks.push(fn);
  }

  /** The domain's defined-kinds map once an engine adopted this registry, else null. */
  private published: Uint8Array | null = null;

  /**
   * Publishes every kind defined so far, and every later one, in `kinds` (RcuShared.kinds).
   * Called by the CallbackEngine that adopts this registry; not for plugins.
   */
  publishTo(kinds: Uint8Array): void {
    this.published = kinds;
    for (let k = 0; k < this.maxKinds && k < kinds.length; k++) {
      // Pairs with the plain load in call(): see "Defined kinds" above.
      if (this.fns[k] !== undefined) Atomics.store(kinds, k, 1);
    }
  }

  /**
   * Defines what callback `kind` does.
   * @throws RangeError for a kind outside 0..maxKinds-1 or one defined already; TypeError for a non-function.
   */
  define(kind: number, fn: RcuCallback): void {
    if (!Number.isInteger(kind) || kind < 0 || kind >= this.maxKinds) {
      throw new RangeError(
        `Cannot define RCU callback kind ${kind}: kinds are integers in 0..${this.maxKinds - 1}`,
      );
    }
    if (typeof fn !== "function")
      throw new TypeError(`Cannot define RCU callback kind ${kind}: not a function`);
    if (this.fns[kind] !== undefined)
      throw new RangeError(`Cannot define RCU callback kind ${kind}: defined already`);
    this.fns[kind] = fn;
    // Pairs with the plain load in call(): see "Defined kinds" above.
    if (this.published !== null && kind < this.published.length) Atomics.store(this.published, kind, 1);
  }
}

/** Imports each plugin and lets it define kinds. @throws TypeError if a module lacks the export. */
export async function loadRcuPlugins(
  registry: RcuCallbackRegistry,
  plugins: readonly { url: string; data?: unknown }[],
): Promise<void> {
  for (const p of plugins) {
    const mod = (await import(p.url)) as { registerRcuCallbacks?: RegisterRcuCallbacks };
    if (typeof mod.registerRcuCallbacks !== "function") {
      throw new TypeError(
        `Cannot load RCU plugin ${p.url}: it does not export registerRcuCallbacks(registry, data)`,
      );
    }
    await mod.registerRcuCallbacks(registry, p.data);
  }
}
