/**
 * Callback heads: the data that describes one deferred call, in shared memory.
 *
 * A head is the JavaScript stand-in for a `struct rcu_head`: a callback kind and three numeric
 * arguments that any thread can read, since closures cannot cross threads.
 *
 *   link (Int32Array, 4 words per head)       args (Float64Array, 3 per head)
 *   +--------+--------+--------+--------+     +-----------+-----------+-----------+
 *   | NEXT   | KIND   | AUX    | spare  |     | A0        | A1        | A2        |
 *   +--------+--------+--------+--------+     +-----------+-----------+-----------+
 *
 *   NEXT  chain link: callback queue, the engine's private lists, free chains. Written by whoever
 *         owns the head at that moment (the caller before the push, then the engine).
 *   KIND  >= 0: user kind; IDLE: a static head not queued; FREE: a dynamic head in a free chain;
 *         MARKER: a barrier marker. Written by the owner of the head.
 *   AUX   on the first head of a free chunk: first head of the next chunk in the free stack.
 *   A0-2  arguments, float64: any integer up to 2^53 is exact (page addresses included).
 *
 * Index space: [0, poolHeads) is the dynamic pool of call(); [poolHeads, poolHeads + maxThreads)
 * holds one barrier marker per reader slot, the next maxThreads one callAndWait() head per slot
 * (its AUX holds the CALL_DONE value to publish); the rest is handed out by reserveHeads().
 *
 * Queues, all lock-free and free of ABA:
 * - The callback queue (Ctl.CB_TOP) is a Treiber stack: many threads push with CAS, the one
 *   callback engine takes everything with one exchange. Nobody pops single heads, so no ABA.
 * - The free stack holds chunks of up to FREE_CHUNK heads. Threads pop a whole chunk into a
 *   private cache (the slot's CACHE_TOP); several threads pop, so its top word is 64 bits wide
 *   with a tag that every change increments, which defeats ABA.
 */
import { Ctl, NIL } from "./layout.js";

export const enum Head {
  NEXT = 0,
  KIND = 1,
  AUX = 2,
  STRIDE = 4,
  ARGS = 3,
}

export const enum HeadKind {
  IDLE = -1,
  FREE = -2,
  MARKER = -3,
}

/** Heads per free chunk: a thread's cache refills this many at a time. */
export const FREE_CHUNK = 64;

const LOW32 = 0xffffffffn;

/** Pushes head `h` on the callback queue. The CAS is a full fence: it publishes the head's words. */
export function pushCallback(ctl: Int32Array, link: Int32Array, h: number): void {
  const at = h * Head.STRIDE;
  for (;;) {
    const top = Atomics.load(ctl, Ctl.CB_TOP);
    link[at] = top;
    // Pairs with the engine's Atomics.exchange in takeCallbacks(): whoever takes the stack sees NEXT.
    if (Atomics.compareExchange(ctl, Ctl.CB_TOP, top, h) === top) return;
  }
}

/** Takes the whole callback queue (newest first), or NIL. */
export function takeCallbacks(ctl: Int32Array): number {
  // Pairs with the CAS in pushCallback(): the heads' words written before the push are visible.
  return Atomics.exchange(ctl, Ctl.CB_TOP, NIL);
}

/** Pushes a NIL-terminated chain starting at `first` as one chunk on the free stack. */
export function pushFreeChunk(top64: BigUint64Array, link: Int32Array, first: number): void {
  for (;;) {
    const old = Atomics.load(top64, Ctl.FREE_TOP_64);
    link[first * Head.STRIDE + Head.AUX] = Number(old & LOW32) - 1;
    const next = (((old >> 32n) + 1n) << 32n) | BigInt(first + 1);
    // Pairs with popFreeChunk()'s CAS: the chain's NEXT and AUX words are published with the top.
    if (Atomics.compareExchange(top64, Ctl.FREE_TOP_64, old, next) === old) return;
  }
}

/** Pops one chunk (a NIL-terminated chain) off the free stack; NIL if it is empty. */
export function popFreeChunk(top64: BigUint64Array, link: Int32Array): number {
  for (;;) {
    const old = Atomics.load(top64, Ctl.FREE_TOP_64);
    const first = Number(old & LOW32) - 1;
    if (first < 0) return NIL;
    // May read a stale AUX if the chunk was popped meanwhile; the tag then makes the CAS fail.
    const nextChunk = link[first * Head.STRIDE + Head.AUX] as number;
    const next = (((old >> 32n) + 1n) << 32n) | BigInt(nextChunk + 1);
    if (Atomics.compareExchange(top64, Ctl.FREE_TOP_64, old, next) === old) return first;
  }
}

/** Builds the initial free stack of the dynamic pool and marks every other head IDLE. Single-threaded. */
export function initHeads(
  top64: BigUint64Array,
  link: Int32Array,
  poolHeads: number,
  totalHeads: number,
): void {
  for (let h = 0; h < totalHeads; h++) {
    link[h * Head.STRIDE + Head.NEXT] = NIL;
    link[h * Head.STRIDE + Head.KIND] = h < poolHeads ? HeadKind.FREE : HeadKind.IDLE;
  }
  for (let first = 0; first < poolHeads; first += FREE_CHUNK) {
    const end = Math.min(first + FREE_CHUNK, poolHeads);
    for (let h = first; h < end - 1; h++) link[h * Head.STRIDE + Head.NEXT] = h + 1;
    pushFreeChunk(top64, link, first);
  }
}

/** Counts the heads of a NIL-terminated chain (diagnostics and tests). */
export function chainLength(link: Int32Array, first: number): number {
  let n = 0;
  for (let h = first; h !== NIL; h = link[h * Head.STRIDE + Head.NEXT] as number) n++;
  return n;
}
