/**
 * Configuration of an RCU domain: sizes, flood control, waiting and stall detection.
 *
 * Flood control follows Linux (kernel/rcu/tree.c): the callback worker runs at most `batchLimit`
 * callbacks per batch; once more than `highWater` callbacks are pending it enters flood mode, where
 * a batch may run `max(floodBatchLimit, pending >> floodShift)` callbacks and grace periods start
 * back to back (no batching delay, counted as forced); below `lowWater` it returns to normal. In
 * both modes a batch also stops once it has run for `batchTimeMs`.
 */

/** Reader algorithm: "mb" (readers publish each section) or "qsbr" (readers report quiescent states). */
export type RcuFlavor = "mb" | "qsbr";

/** A module the callback worker imports to learn callback kinds (see callbacks.ts). */
export interface RcuPluginSpec {
  /** Module URL (e.g. `new URL("./my-callbacks.js", import.meta.url).href`). */
  readonly url: string;
  /** Structured-cloneable data handed to the module's `registerRcuCallbacks(registry, data)`. */
  readonly data?: unknown;
}

/** Options of `Rcu.create()`; every field is optional and checked (defaults below). */
export interface RcuOptions {
  /** Reader algorithm, fixed for the life of the domain. Default "mb". */
  flavor?: RcuFlavor;
  /** Threads that can be registered at once. Default 64. */
  maxThreads?: number;
  /** Heads in the dynamic pool used by call(). Default 65536. */
  poolHeads?: number;
  /** Heads set aside for reserveHeads() (intrusive, per-object heads). Default 0. */
  staticHeads?: number;
  /** Callback kinds are integers in 0..maxKinds-1. Default 256. */
  maxKinds?: number;
  /** Start the callback worker thread. Default true. */
  callbackWorker?: boolean;
  /** Modules that register callback kinds in the callback worker. */
  plugins?: RcuPluginSpec[];
  /** Callbacks per batch in normal mode (Linux blimit). Default 10. */
  batchLimit?: number;
  /** Pending callbacks above which flood mode starts (Linux qhimark). Default 10000. */
  highWater?: number;
  /** Pending callbacks below which flood mode ends (Linux qlowmark). Default 100. */
  lowWater?: number;
  /** Least callbacks per batch in flood mode. Default 10000. */
  floodBatchLimit?: number;
  /** In flood mode a batch may also run pending >> floodShift callbacks. Default 7. */
  floodShift?: number;
  /** Time budget of one batch, in ms. Default 3. */
  batchTimeMs?: number;
  /** Normal mode: how long the worker collects callbacks before it starts a grace period (ms). Default 1. */
  gpDelayMs?: number;
  /** Report a reader, qsbr thread or stuck waiter after this many ms. Default 2000. */
  stallTimeoutMs?: number;
  /** Atomics.load iterations a waiter spins before it sleeps. Default 1000. */
  spinLimit?: number;
  /** Longest single Atomics.wait of a waiter in ms (a lost wakeup costs at most this). Default 2. */
  maxSleepMs?: number;
  /**
   * Grace-period sequence number the domain starts at, as if that many periods had run with
   * nobody polling. Default 0. Tests set it near 2^31 - 1 to cross the Int32 wrap in a few
   * periods (Linux starts its gp_seq near its own wrap for the same reason).
   */
  initialGracePeriod?: number;
}

/** Every option filled in: plain numbers, safe to post to other threads. */
export interface ResolvedRcuOptions {
  readonly flavor: RcuFlavor;
  readonly maxThreads: number;
  readonly poolHeads: number;
  readonly staticHeads: number;
  readonly maxKinds: number;
  readonly callbackWorker: boolean;
  readonly plugins: RcuPluginSpec[];
  readonly batchLimit: number;
  readonly highWater: number;
  readonly lowWater: number;
  readonly floodBatchLimit: number;
  readonly floodShift: number;
  readonly batchTimeMs: number;
  readonly gpDelayMs: number;
  readonly stallTimeoutMs: number;
  readonly spinLimit: number;
  readonly maxSleepMs: number;
  readonly initialGracePeriod: number;
}

const INT_LIMITS: [keyof RcuOptions, number, number, number][] = [
  ["maxThreads", 64, 1, 4096],
  ["poolHeads", 65536, 0, 1 << 26],
  ["staticHeads", 0, 0, 1 << 26],
  ["maxKinds", 256, 1, 1 << 16],
  ["batchLimit", 10, 1, 1 << 30],
  ["highWater", 10000, 1, 1 << 30],
  ["lowWater", 100, 0, 1 << 30],
  ["floodBatchLimit", 10000, 1, 1 << 30],
  ["floodShift", 7, 0, 30],
  ["spinLimit", 1000, 0, 1 << 24],
  ["initialGracePeriod", 0, 0, 0x7fffffff],
];

const MS_LIMITS: [keyof RcuOptions, number, number, number][] = [
  ["batchTimeMs", 3, 0.001, 60_000],
  ["gpDelayMs", 1, 0, 60_000],
  ["stallTimeoutMs", 2000, 1, 3_600_000],
  ["maxSleepMs", 2, 0.01, 1000],
];

/**
 * Fills in defaults and checks every value.
 * @throws TypeError for a value of the wrong type; RangeError for one out of range.
 */
export function resolveRcuOptions(opts: RcuOptions = {}): ResolvedRcuOptions {
  const out: Record<string, unknown> = {};
  const flavor = opts.flavor ?? "mb";
  if (flavor !== "mb" && flavor !== "qsbr") {
    throw new RangeError(`Cannot create RCU domain: flavor "${String(flavor)}" is not "mb" or "qsbr"`);
  }
  out.flavor = flavor;
  for (const [key, def, min, max] of INT_LIMITS) out[key] = checkNumber(opts, key, def, min, max, true);
  for (const [key, def, min, max] of MS_LIMITS) out[key] = checkNumber(opts, key, def, min, max, false);
  out.callbackWorker = opts.callbackWorker ?? true;
  out.plugins = (opts.plugins ?? []).map(checkPlugin);
  const r = out as unknown as ResolvedRcuOptions;
  if (r.lowWater >= r.highWater) {
    throw new RangeError(
      `Cannot create RCU domain: lowWater ${r.lowWater} must be below highWater ${r.highWater}`,
    );
  }
  return Object.freeze(r);
}

function checkNumber(
  opts: RcuOptions,
  key: keyof RcuOptions,
  def: number,
  min: number,
  max: number,
  int: boolean,
) {
  const v = opts[key] ?? def;
  if (typeof v !== "number") throw new TypeError(`Cannot create RCU domain: ${key} must be a number`);
  if ((int && !Number.isInteger(v)) || !(v >= min && v <= max)) {
    const what = int ? "an integer" : "a number";
    throw new RangeError(`Cannot create RCU domain: ${key} ${v} is not ${what} in ${min}..${max}`);
  }
  return v;
}

function checkPlugin(p: RcuPluginSpec): RcuPluginSpec {
  if (p === null || typeof p !== "object" || typeof p.url !== "string") {
    throw new TypeError("Cannot create RCU domain: each plugin must be { url: string, data?: unknown }");
  }
  return { url: p.url, data: p.data };
}
