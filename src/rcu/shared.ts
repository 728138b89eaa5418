/**
 * The shared memory of one RCU domain and a thread-local view of it.
 *
 * `RcuShared.create(options)` allocates the regions (layouts in layout.ts, heads.ts, stats.ts);
 * `shared.handle` is a plain structured-cloneable object (SharedArrayBuffers + resolved options) to
 * post to other threads; `RcuShared.attach(handle)` builds another view on the same memory.
 */
import { Ctl, MB_ACTIVE, NIL, Slot } from "./layout.js";
import { Head, initHeads } from "./heads.js";
import { type RcuOptions, type ResolvedRcuOptions, resolveRcuOptions } from "./options.js";
import { Stat } from "./stats.js";

/**
 * Everything a thread needs to reach an RCU domain: post it to a worker (`rcu.handle`) and pass it
 * to `Rcu.attach()` there. Treat it as opaque.
 */
export interface RcuHandle {
  readonly ctl: SharedArrayBuffer;
  readonly slots: SharedArrayBuffer;
  readonly link: SharedArrayBuffer;
  readonly args: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  /** Uint8 per callback kind (see `kinds` below). */
  readonly kinds: SharedArrayBuffer;
  readonly options: ResolvedRcuOptions;
}

/**
 * One thread's typed-array views of a domain's shared memory. Internal to the RCU layer and its
 * tests (engines stepped by hand); applications use `Rcu`.
 */
export class RcuShared {
  readonly handle: RcuHandle;
  readonly options: ResolvedRcuOptions;
  readonly ctl: Int32Array;
  /** 64-bit view of the control block (free-chunk stack top). */
  readonly ctl64: BigUint64Array;
  readonly slots: Int32Array;
  readonly slotsF64: Float64Array;
  readonly link: Int32Array;
  readonly args: Float64Array;
  readonly stats: Float64Array;
  /**
   * Defined callback kinds: kinds[k] = 1 once the running callback engine's registry defines k.
   * Writer: RcuCallbackRegistry (Atomics.store, in the engine's thread, before the callback worker
   * reports ready). Readers: call(), callHead(), callAndWait() (plain loads; see callbacks.ts).
   */
  readonly kinds: Uint8Array;
  /** First barrier-marker head; first callAndWait() head; first head reserveHeads() hands out; total. */
  readonly markerBase: number;
  readonly waitBase: number;
  readonly staticBase: number;
  readonly totalHeads: number;

  private constructor(handle: RcuHandle) {
    this.handle = handle;
    this.options = handle.options;
    this.ctl = new Int32Array(handle.ctl);
    this.ctl64 = new BigUint64Array(handle.ctl);
    this.slots = new Int32Array(handle.slots);
    this.slotsF64 = new Float64Array(handle.slots);
    this.link = new Int32Array(handle.link);
    this.args = new Float64Array(handle.args);
    this.stats = new Float64Array(handle.stats);
    this.kinds = new Uint8Array(handle.kinds);
    this.markerBase = this.options.poolHeads;
    this.waitBase = this.markerBase + this.options.maxThreads;
    this.staticBase = this.waitBase + this.options.maxThreads;
    this.totalHeads = this.staticBase + this.options.staticHeads;
  }

  /** Allocates and initializes the shared memory of a new domain. */
  static create(opts: RcuOptions = {}): RcuShared {
    const options = resolveRcuOptions(opts);
    const heads = options.poolHeads + 2 * options.maxThreads + options.staticHeads;
    const shared = new RcuShared({
      ctl: new SharedArrayBuffer(Ctl.WORDS * 4),
      slots: new SharedArrayBuffer(options.maxThreads * Slot.STRIDE * 4),
      link: new SharedArrayBuffer(Math.max(1, heads) * Head.STRIDE * 4),
      args: new SharedArrayBuffer(Math.max(1, heads) * Head.ARGS * 8),
      stats: new SharedArrayBuffer(Stat.WORDS * 8),
      kinds: new SharedArrayBuffer(options.maxKinds),
      options,
    });
    shared.init();
    return shared;
  }

  /** Builds a view of a domain created in another thread. */
  static attach(handle: RcuHandle): RcuShared {
    if (handle === null || typeof handle !== "object" || !(handle.kinds instanceof SharedArrayBuffer)) {
      throw new TypeError("Cannot attach RCU domain: the handle is not an RcuHandle (post `rcu.handle`)");
    }
    return new RcuShared(handle);
  }

  private init(): void {
    const ctl = this.ctl;
    // mb: bit 0 always set, phase bit clear. qsbr: the counter starts odd (0 means offline).
    ctl[Ctl.GP_CTR] = MB_ACTIVE;
    ctl[Ctl.RUNNING_KIND] = -1;
    ctl[Ctl.CB_TOP] = NIL;
    // GP_REQUESTED stays 0: the request of a domain nobody has polled (grace-period.ts).
    ctl[Ctl.GP_STARTED] = this.options.initialGracePeriod;
    ctl[Ctl.GP_COMPLETED] = this.options.initialGracePeriod;
    initHeads(this.ctl64, this.link, this.options.poolHeads, this.totalHeads);
    ctl[Ctl.STATIC_NEXT] = this.staticBase;
    ctl[Ctl.DOMAIN_ID] = (Math.random() * 0x7ffffffe + 1) | 0;
    for (let s = 0; s < this.options.maxThreads; s++) this.slots[s * Slot.STRIDE + Slot.CACHE_TOP] = -1;
  }

  /** Slots worth scanning: one past the highest slot ever registered. */
  slotHwm(): number {
    return Atomics.load(this.ctl, Ctl.SLOT_HWM);
  }
}
