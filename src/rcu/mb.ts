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
 * Why the unlock store is Atomics.store everywhere: it must not become visible before the section's
 * protected loads are done (a driver that saw the slot clear too early would end the grace period
 * while the reader still reads), and it must not pass the following GP_FUTEX load (a driver that
 * set GP_FUTEX and then read the stale slot would sleep with no wakeup coming). A plain store gives
 * neither guarantee under the JavaScript memory model, nor the second one even on x86-64 TSO, where
 * a store may pass a later load. The SC store pairs with the driver's Atomics.store of GP_FUTEX and
 * its Atomics.load of this slot in waitSlots(); it costs ~8 ns here, about half the pair. The
 * GP_FUTEX load that follows is an Atomics.load for the same reason: the JavaScript memory model
 * lets a plain load be reordered before an earlier SC store (on x86-64 it compiles to the same mov).
 */
import { Ctl } from "./layout.js";
import { RcuRacePoint, rcuRaceHook } from "./race.js";
import { RcuThreadBase, wakeWriter } from "./thread.js";

/** A registered thread of an mb domain (see above); `rcu.register()` returns it. */
export class MbThread extends RcuThreadBase {
  /** Enters a read-side section (nestable). */
  readLock(): void {
    if (this.nest++ === 0) {
      if (!this.registered) this.unregisteredUse("readLock()");
      const ctr = this.ctl[Ctl.GP_CTR] as number;
      if (rcuRaceHook !== null) rcuRaceHook(RcuRacePoint.READER_LOCK_GAP);
      // SC store: pairs with the driver's Atomics.load of this slot in waitSlots().
      Atomics.store(this.slots, this.ctrIndex, ctr);
    }
  }

  /** Leaves a read-side section. @throws RcuUsageError without a matching readLock(). */
  readUnlock(): void {
    if (--this.nest === 0) {
      // SC store: pairs with the driver's GP_FUTEX store and slot load (see above).
      Atomics.store(this.slots, this.ctrIndex, 0);
      // Atomics.load, not a plain read: a plain load may pass the SC store above, read GP_FUTEX
      // before a driver set it and miss the wakeup. Pairs with the driver's GP_FUTEX store.
      if (Atomics.load(this.ctl, Ctl.GP_FUTEX) !== 0) wakeWriter(this.ctl);
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
