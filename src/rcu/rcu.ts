/**
 * An RCU domain: the object each thread holds, and the entry point of the API.
 *
 *     const rcu = await Rcu.create({ flavor: "mb", plugins: [{ url, data }] }); // main thread
 *     new Worker(url, { workerData: { rcu: rcu.handle } });                    // share it
 *     const rcu = Rcu.attach(workerData.rcu);                                   // in the worker
 *     const t = rcu.register();        // once per thread, before any read lock
 *     t.readLock(); ...Atomics.load(protected words)... t.readUnlock();
 *     t.call(KIND, a0, a1, a2);        // deferred work, after a grace period, in the callback worker
 *     t.callAndWait(KIND, a0, a1, a2); // the same, and wait until it has run
 *     t.synchronize(); t.barrier(); t.unregister();
 *     rcu.onStall = (r) => log(r.message); // the domain's stall handler, fed from every thread
 *
 * `create` also starts the callback worker (unless `callbackWorker: false`) and waits until its
 * plugins are loaded. Only the creating thread may `close()` the domain.
 *
 * Watching threads that may die (terminate(), out of memory) inside a read-side section:
 *
 *     const port = rcu.watchPort();                         // reaped on the reaper thread (watch.ts)
 *     const w = new Worker(url, { workerData: { rcu: rcu.handle, port }, transferList: [port] });
 *     rcu.watch(w, port);                                    // binds the port to w.threadId
 */
import { type MessagePort, threadId, Worker } from "node:worker_threads";
import { RcuUsageError } from "./errors.js";
import { cookieExpired, GracePeriods } from "./grace-period.js";
import { Ctl, StallWhat } from "./layout.js";
import { MbThread } from "./mb.js";
import type { RcuFlavor, RcuOptions } from "./options.js";
import { QsbrThread } from "./qsbr.js";
import { claimSlot, reapThread } from "./registry.js";
import { type RcuHandle, RcuShared } from "./shared.js";
import { type RcuStallHandler, reportStall, setDomainStallHandler } from "./stall.js";
import { type RcuStats, readStats } from "./stats.js";
import { wakeUrgent } from "./wake.js";
import { RcuReaper } from "./watch.js";

/** A registered thread: MbThread or QsbrThread, chosen by the domain's flavor. */
export type RcuThread = MbThread | QsbrThread;

/**
 * One thread's view of an RCU domain: create it once (`Rcu.create`), attach it in every other
 * thread (`Rcu.attach(handle)`), register each thread that reads or updates.
 */
export class Rcu {
  /** Post it to other threads and `Rcu.attach()` it there. */
  readonly handle: RcuHandle;
  /** The reader algorithm, fixed at creation. */
  readonly flavor: RcuFlavor;
  private readonly sh: RcuShared;
  private readonly gps: GracePeriods;
  private worker: Worker | null = null;
  private thread: RcuThread | null = null;
  /** This view's reaper thread (watch.ts), started by the first watchPort(). */
  private reaper: RcuReaper | null = null;

  private constructor(sh: RcuShared) {
    this.sh = sh;
    this.handle = sh.handle;
    this.flavor = sh.options.flavor;
    this.gps = new GracePeriods(sh, threadId);
  }

  /**
   * Creates a domain and, unless `callbackWorker` is false, starts its callback worker.
   * @throws TypeError/RangeError for bad options; Error if a plugin fails to load.
   */
  static async create(opts: RcuOptions = {}): Promise<Rcu> {
    const rcu = new Rcu(RcuShared.create(opts));
    if (rcu.sh.options.callbackWorker) await rcu.startWorker();
    return rcu;
  }

  /** Builds this thread's view of a domain from its handle. Attach once per thread. */
  static attach(handle: RcuHandle): Rcu {
    return new Rcu(RcuShared.attach(handle));
  }

  private async startWorker(): Promise<void> {
    // Watched from the start: a callback worker that dies while the creator blocks in barrier()
    // is reaped (its engine marked lost, the waiters woken) by the reaper thread.
    const watchPort = this.watchPort();
    const worker = new Worker(new URL("./worker.js", import.meta.url), {
      workerData: { handle: this.handle, watchPort },
      transferList: [watchPort],
    });
    this.watch(worker, watchPort);
    this.worker = worker;
    const tid = worker.threadId;
    await new Promise<void>((resolve, reject) => {
      worker.once("message", (m: { type: string; message?: string }) => {
        if (m.type === "ready") resolve();
        else reject(new Error(`Cannot start the RCU callback worker: ${m.message}`));
      });
      worker.once("error", reject);
      worker.once("exit", (code) =>
        reject(new Error(`Cannot start the RCU callback worker: it exited with code ${code}`)),
      );
    });
    worker.removeAllListeners();
    worker.on("error", (e) => console.error("rcu: the callback worker failed:", e));
    // The worker reaps itself from its "exit" handler (worker.ts); terminate() and OOM are reaped
    // by the reaper thread, and (should the reaper be gone) from the "exit" event here.
    worker.once("exit", () => reapThread(this.sh, tid));
    worker.unref();
  }

  /**
   * Registers this thread: mb readers start outside any section, qsbr readers start online.
   * @throws RcuUsageError if the thread is registered already or every slot is taken.
   */
  register(): RcuThread {
    const slot = claimSlot(this.sh, threadId);
    const t =
      this.flavor === "mb"
        ? new MbThread(this.sh, slot, threadId, this.gps)
        : new QsbrThread(this.sh, slot, threadId, this.gps);
    t.online();
    this.thread = t;
    return t;
  }

  /** Waits for a grace period (from any thread; a registered thread's own checks apply). */
  synchronize(): void {
    if (this.thread?.isRegistered) this.thread.synchronize();
    else this.gps.waitFor(this.gps.cookie());
  }

  /** synchronize() that gives up after `timeoutMs`: Errno.OK or Errno.TIMEDOUT. */
  trySynchronize(timeoutMs: number): number {
    if (this.thread?.isRegistered) return this.thread.trySynchronize(timeoutMs);
    return this.gps.waitFor(this.gps.cookie(), timeoutMs);
  }

  /**
   * A cookie naming the next grace period; the callback worker will drive it.
   * @throws RcuUsageError in a domain without a callback worker: use getState() there.
   */
  startPoll(): number {
    return this.gps.startPoll();
  }

  /** A cookie naming the next grace period, driven by nobody in particular (see RcuThreadBase). */
  getState(): number {
    return this.gps.cookie();
  }

  /** True once the grace period named by `cookie` has ended. Never blocks. */
  pollState(cookie: number): boolean {
    return cookieExpired(Atomics.load(this.sh.ctl, Ctl.GP_COMPLETED), cookie);
  }

  /**
   * Reserves `n` consecutive heads for callHead() (e.g. one per page) and returns the first.
   * @throws RangeError when fewer than `n` of the domain's `staticHeads` are left.
   */
  reserveHeads(n: number): number {
    if (!Number.isInteger(n) || n < 1)
      throw new RangeError(`Cannot reserve ${n} RCU heads: not a positive integer`);
    const base = Atomics.add(this.sh.ctl, Ctl.STATIC_NEXT, n);
    if (base + n > this.sh.totalHeads) {
      Atomics.sub(this.sh.ctl, Ctl.STATIC_NEXT, n);
      const left = this.sh.totalHeads - base;
      throw new RangeError(`Cannot reserve ${n} RCU heads: only ${left} of staticHeads are left`);
    }
    return base;
  }

  /** Releases the slots (and locks) of a thread that exited or died. Returns slots reaped. */
  reapThread(deadThreadId: number): number {
    return reapThread(this.sh, deadThreadId);
  }

  /**
   * Reports through the stall detector that `deadThreadId` died and was reaped (StallWhat.DIED,
   * with the number of slots released): the domain's stall handler learns of every death a
   * reaper handled, from whichever thread reaped it (a VM's death watch, say).
   */
  reportDeath(deadThreadId: number, slotsReleased: number): void {
    reportStall(
      this.sh.ctl,
      StallWhat.DIED,
      deadThreadId,
      slotsReleased,
      0,
      Atomics.load(this.sh.ctl, Ctl.GP_STARTED),
    );
  }

  /**
   * A port for a worker this thread is about to start: pass it in the worker's workerData and
   * transferList, then call `watch(worker, port)`. The worker must keep it (workerData does) and
   * never close it or pass it on. Starts this view's reaper thread on first use (unref'd; stopped
   * by close()).
   */
  watchPort(): MessagePort {
    if (this.reaper === null || !this.reaper.running) this.reaper = new RcuReaper(this.handle);
    return this.reaper.port();
  }

  /**
   * Reaps `worker`'s slots and roles when it dies. A registered thread that exits by itself (end
   * of script, process.exit(), an uncaught error) has already released its slots from its own
   * "exit" handler; this catches terminate() and out-of-memory, which run no handler.
   *
   * With `port` (from watchPort(), in the worker's workerData) the reaper thread reaps it, even
   * while this thread is blocked in a synchronous wait, and reports the death to the stall handler
   * (StallWhat.DIED). Without, only the "exit" event on this thread's event loop reaps it, and
   * silently (a VM's death watch reports its vCPUs' deaths itself): a creator that blocks in
   * synchronize() behind the dead reader waits for ever. (Posting a port to the worker afterwards
   * would also work, Node closes it with the thread even unread, but it would reach the worker's
   * own "message" handler, which may take any message for a command; so the port goes in through
   * workerData.) Both reapers may run; each slot is released once.
   * @throws RangeError for a port that is not one of this view's watchPort().
   */
  watch(worker: Worker, port?: MessagePort): void {
    const tid = worker.threadId;
    if (port !== undefined) {
      if (this.reaper === null) throw new RangeError(`Cannot watch thread ${tid}: call watchPort() first`);
      this.reaper.bind(port, tid);
    }
    worker.once("exit", () => reapThread(this.sh, tid));
  }

  /**
   * Sets the domain's stall handler and makes this thread its handler thread: every stall report,
   * whichever thread found it (a synchronize() caller, the callback worker), reaches `handler`
   * here, from this thread's event loop or its RCU waits (stall.ts). Null removes it (reporters
   * print again). One handler per domain: the last thread to set it wins.
   */
  set onStall(handler: RcuStallHandler | null) {
    setDomainStallHandler(this.sh.ctl, handler);
  }

  /** True while the callback worker is in flood mode: updaters may throttle themselves. */
  get flooding(): boolean {
    return Atomics.load(this.sh.ctl, Ctl.FLOOD) !== 0;
  }

  /** A snapshot of the domain's statistics, from any thread. Allocates: not for hot paths. */
  stats(): RcuStats {
    const sh = this.sh;
    return readStats(this.flavor, sh.ctl, sh.slots, sh.slotsF64, sh.stats);
  }

  /**
   * Stops the callback worker once every callback queued so far has run, then this view's reaper
   * thread. Creator only (another thread's view stops just its reaper, then throws).
   * @throws RcuUsageError from another thread's view.
   */
  async close(): Promise<void> {
    try {
      await this.closeWorker();
    } finally {
      // Last: the callback worker stays watched while it shuts down.
      await this.reaper?.close();
      this.reaper = null;
    }
  }

  private async closeWorker(): Promise<void> {
    const worker = this.worker;
    if (worker === null) {
      if (!this.sh.options.callbackWorker) return;
      throw new RcuUsageError("Cannot close the RCU domain: only the thread that created it can");
    }
    this.worker = null;
    if (Atomics.load(this.sh.ctl, Ctl.ENGINE) === 0) return;
    worker.ref(); // an unref'd worker would let the process exit before it does
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    // The worker is unref'd while it idles; keep the event loop alive until it has exited.
    worker.ref();
    Atomics.store(this.sh.ctl, Ctl.SHUTDOWN, 1);
    wakeUrgent(this.sh.ctl);
    await exited;
  }
}
