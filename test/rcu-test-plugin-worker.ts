/**
 * RCU plugin for the multi-worker tests, loaded by the callback worker. Kinds:
 *   INC          counters[a0] += 1 after spinning a1 microseconds (a slow callback if a1 > 0)
 *   SLICED       a0 slices left, counter a1: run a0 + 1 times (RCU_AGAIN), then counters[a1] += 1
 *   TRY_BARRIER  calls barrier() from inside a callback; counters[a0] = 1 if that threw RcuUsageError
 *   EXIT         process.exit(1): the callback worker dies inside a callback
 *   GATE         waits until counters[a0] != 0: holds the callback worker until the test opens it
 */
import { Rcu, RCU_AGAIN, type RcuCallbackRegistry, type RcuHandle, RcuUsageError } from "../src/rcu/mod.js";

export const enum TestKind {
  INC = 0,
  SLICED = 1,
  TRY_BARRIER = 2,
  EXIT = 3,
  GATE = 4,
}

function spinUs(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // a slow callback on purpose
  }
}

export function registerRcuCallbacks(registry: RcuCallbackRegistry, data: unknown): void {
  const { counters: sab } = data as { counters: SharedArrayBuffer };
  const handle = registry.handle as RcuHandle;
  const counters = new Int32Array(sab);
  registry.define(TestKind.INC, (index, us) => {
    if (us > 0) spinUs(us);
    Atomics.add(counters, index, 1);
  });
  registry.define(TestKind.SLICED, (left, index, _a2, ctx) => {
    spinUs(50);
    if (left > 0) {
      ctx.setArgs(left - 1, index, 0);
      return RCU_AGAIN;
    }
    Atomics.add(counters, index, 1);
  });
  registry.define(TestKind.EXIT, () => {
    process.exit(1);
  });
  registry.define(TestKind.GATE, (index) => {
    // Pairs with the test's Atomics.store + notify that opens the gate.
    while (Atomics.load(counters, index) === 0) Atomics.wait(counters, index, 0, 50);
  });
  registry.define(TestKind.TRY_BARRIER, (index) => {
    const t = Rcu.attach(handle).register();
    t.offline(); // qsbr: a registered callback worker must not hold up grace periods
    try {
      t.barrier();
    } catch (e) {
      if (e instanceof RcuUsageError) Atomics.store(counters, index, 1);
    } finally {
      t.unregister();
    }
  });
}
