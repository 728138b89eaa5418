/**
 * The mb flavor's reader: liburcu's memb/mb read side on JavaScript atomics.
 *
 * readLock (outermost): copy GP_CTR (phase | 1) into this thread's slot with Atomics.store, a
 * sequentially consistent store (an xchg on x86-64): the section's loads cannot move above it.
 * readUnlock (outermost): store 0 into the slot, then wake a driver that sleeps on GP_FUTEX.
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
 * Why the unlock store is plain on x86-64: TSO never moves a store above earlier loads, and V8
 * keeps typed-array accesses in program order, so the section's reads are done before the slot
 * reads 0. What TSO allows, the store passing the following GP_FUTEX load, only delays a wakeup,
 * which the driver's timed sleep bounds. Elsewhere (ARM64 may reorder loads after a later plain
 * store) the unlock is Atomics.store. An SC store costs ~8 ns here, half of the whole pair.
 */
import { Ctl } from "./layout.js";
import { RcuRacePoint, rcuRaceHook } from "./race.js";
import { RcuThreadBase, wakeWriter } from "./thread.js";

/** The unlock store may be plain: the platform keeps loads ordered before later stores (TSO). */
const TSO = process.arch === "x64" || process.arch === "ia32";

export class MbThread extends RcuThreadBase {
  /** Enters a read-side section (nestable). */
  readLock(): void {
    if (this.nest++ === 0) {
      const ctr = this.ctl[Ctl.GP_CTR] as number;
      if (rcuRaceHook !== null) rcuRaceHook(RcuRacePoint.READER_LOCK_GAP);
      // SC store: pairs with the driver's Atomics.load of this slot in waitSlots().
      Atomics.store(this.slots, this.ctrIndex, ctr);
    }
  }

  /** Leaves a read-side section. @throws RcuUsageError without a matching readLock(). */
  readUnlock(): void {
    if (--this.nest === 0) {
      // Pairs with the driver's Atomics.load of this slot (see the TSO note above).
      if (TSO) this.slots[this.ctrIndex] = 0;
      else Atomics.store(this.slots, this.ctrIndex, 0);
      if (this.ctl[Ctl.GP_FUTEX] !== 0) wakeWriter(this.ctl);
    } else if (this.nest < 0) {
      this.unbalancedUnlock();
    }
  }

  quiescentState(): void {}

  offline(): void {
    if (this.nest !== 0) this.checkCanWait("offline()");
  }

  online(): void {}

  protected pauseForWait(): boolean {
    return false;
  }

  protected resumeAfterWait(_wasOnline: boolean): void {}
}
