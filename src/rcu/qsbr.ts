/**
 * The qsbr flavor's reader: read-side sections cost nothing; threads announce quiescent states.
 *
 * A slot holds 0 while its thread is offline, else the GP_CTR value it last saw at a quiescent
 * state. quiescentState() copies GP_CTR into the slot when it changed (an SC store: every read the
 * thread made before it is done before a driver sees the new value), then wakes a driver sleeping
 * on GP_FUTEX. A stale plain read of GP_CTR only makes the driver wait for the next report.
 *
 * Contract: an online thread must call quiescentState() regularly, outside read-side sections (a
 * vCPU loop: once per fault or every few dozen iterations), and must go offline() before it blocks
 * or idles, online() after. synchronize() and barrier() take the thread offline while they wait.
 * readLock()/readUnlock() only count nesting, for the debug checks.
 */
import { Ctl } from "./layout.js";
import { RacePoint, racePoint } from "../common/race-points.js";
import { RcuUsageError } from "./errors.js";
import { RcuThreadBase, wakeWriter } from "./thread.js";

/** A registered thread of a qsbr domain (see above); `rcu.register()` returns it. */
export class QsbrThread extends RcuThreadBase {
  private on = false;

  /** Enters a read-side section (nestable, free). */
  readLock(): void {
    if (this.nest++ === 0 && !this.on) this.lockedOffline();
  }

  /** Leaves a read-side section. @throws RcuUsageError without a matching readLock(). */
  readUnlock(): void {
    if (--this.nest < 0) this.unbalancedUnlock();
  }

  /** Reports a quiescent state. @throws RcuUsageError inside a read-side section. */
  quiescentState(): void {
    if (this.nest !== 0) this.quiescentInSection();
    const ctr = this.ctl[Ctl.GP_CTR] as number;
    if (this.slots[this.ctrIndex] === ctr || !this.on) return;
    racePoint(RacePoint.RCU_QSBR_QS_GAP);
    // SC store: pairs with the driver's Atomics.load of this slot in waitSlots().
    Atomics.store(this.slots, this.ctrIndex, ctr);
    // Atomics.load: a plain load may pass the SC store above and miss a driver going to sleep
    // (mb.ts). Pairs with the driver's GP_FUTEX store in waitSlot().
    if (Atomics.load(this.ctl, Ctl.GP_FUTEX) !== 0) wakeWriter(this.ctl);
  }

  /** Stops being waited for. @throws RcuUsageError inside a read-side section. */
  offline(): void {
    if (this.nest !== 0) this.checkCanWait("offline()");
    if (!this.on) return;
    this.on = false;
    // SC store: pairs with the driver's slot load; this thread's earlier reads are done.
    Atomics.store(this.slots, this.ctrIndex, 0);
    // Atomics.load, as in quiescentState(): pairs with the driver's GP_FUTEX store.
    if (Atomics.load(this.ctl, Ctl.GP_FUTEX) !== 0) wakeWriter(this.ctl);
  }

  /** Becomes a reader that grace periods wait for again. */
  online(): void {
    if (!this.registered) this.unregisteredUse("online()");
    if (this.on) return;
    this.on = true;
    // SC store (full fence): reads made after it see every update a completed period covered.
    Atomics.store(this.slots, this.ctrIndex, this.ctl[Ctl.GP_CTR] as number);
  }

  override unregister(): void {
    super.unregister();
    this.on = false;
  }

  /** True between online() and offline() (threads register online). */
  get isOnline(): boolean {
    return this.on;
  }

  protected pauseForWait(): boolean {
    const was = this.on;
    this.offline();
    return was;
  }

  protected resumeAfterWait(wasOnline: boolean): void {
    if (wasOnline) this.online();
  }

  private quiescentInSection(): never {
    throw new RcuUsageError(
      `Cannot report a quiescent state inside a read-side section (thread ${this.threadId})`,
    );
  }

  private lockedOffline(): void {
    this.nest--;
    throw new RcuUsageError(
      `Cannot readLock() on thread ${this.threadId} while it is offline: call online() first`,
    );
  }
}
