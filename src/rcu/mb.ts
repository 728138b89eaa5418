/**
 * The mb flavor's reader: liburcu's memb/mb read side on JavaScript atomics.
 *
 * readLock (outermost): copy GP_CTR (phase | 1) into this thread's slot with Atomics.store, a
 * sequentially consistent store (an xchg on x86-64): the section's loads cannot move above it.
 * readUnlock (outermost): exchange 0 into the slot; if a driver marked it MB_WAKE, wake the driver.
 * Nesting is a thread-local counter; only the outermost pair touches shared memory.
 *
 * Why GP_CTR is read with a plain load: an Int32 read never tears, so it returns a phase some
 * driver stored, perhaps an old one; the driver's two waits cover a reader however stale its read
 * was. Take the driver's first look at this slot. If the slot was published before that look, it
 * shows either the other phase (the first wait waits until the section ends) or the current phase
 * (the flip makes it the old one, and the second wait waits). If it was published after the look,
 * the section began after the grace period did: the slot store is SC, so the section's Atomics.load
 * reads come after the driver's GP_STARTED store and see every update the period covers. A stale
 * read costs at most some extra waiting. (Atomics.load of GP_CTR would cost ~3 ns more per pair.)
 * Read RCU-protected words with Atomics.load, as liburcu code uses rcu_dereference().
 *
 * Why the unlock is an Atomics.exchange: it must not become visible before the section's protected
 * loads are done (a driver that saw the slot clear too early would end the grace period while the
 * reader still reads), and the reader must learn whether a driver went to sleep on it. A driver
 * about to sleep marks the slot MB_WAKE with a compare-exchange: either the mark lands first and the
 * exchange returns it (the reader wakes the driver), or the exchange lands first and the mark fails
 * (the driver sees the slot clear). No separate GP_FUTEX load follows the store: a plain one could
 * pass it under the JavaScript memory model and miss the wakeup, and an Atomics.load costs ~3 ns
 * here, where the exchange costs what the SC store did (an xchg on x86-64, ~8 ns).
 */
import { Ctl, MB_WAKE } from "./layout.js";
import { RacePoint, racePoint } from "../common/race-points.js";
import { RcuThreadBase, wakeWriter } from "./thread.js";

/** A registered thread of an mb domain (see above); `rcu.register()` returns it. */
export class MbThread extends RcuThreadBase {
  /** Enters a read-side section (nestable). */
  readLock(): void {
    if (this.nest++ === 0) {
      if (!this.registered) this.unregisteredUse("readLock()");
      const ctr = this.ctl[Ctl.GP_CTR] as number;
      racePoint(RacePoint.RCU_READER_LOCK_GAP);
      // SC store: pairs with the driver's Atomics.load of this slot in waitSlots().
      Atomics.store(this.slots, this.ctrIndex, ctr);
    }
  }

  /** Leaves a read-side section. @throws RcuUsageError without a matching readLock(). */
  readUnlock(): void {
    if (--this.nest === 0) {
      // SC exchange: pairs with the driver's slot load and its MB_WAKE compare-exchange (see above).
      if ((Atomics.exchange(this.slots, this.ctrIndex, 0) & MB_WAKE) !== 0) wakeWriter(this.ctl);
    } else if (this.nest < 0) {
      this.unbalancedUnlock();
    }
  }

  /** No-op: mb grace periods need no quiescent states. */
  quiescentState(): void {}

  /** No-op (mb threads are never waited for outside sections). @throws RcuUsageError inside one. */
  offline(): void {
    if (this.nest !== 0) this.checkCanWait("offline()");
  }

  /** No-op. */
  online(): void {}

  /** Always false: mb grace periods wait only for read-side sections. */
  get isOnline(): boolean {
    return false;
  }

  protected pauseForWait(): boolean {
    return false;
  }

  protected resumeAfterWait(_wasOnline: boolean): void {}
}
