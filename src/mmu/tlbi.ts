/**
 * Broadcast TLB invalidation with completion (TLBI ..IS; DSB ISH), over the ring in layout.ts.
 *
 * A poster claims a sequence number, writes the slot, publishes it, then completes: for every
 * vCPU it waits until that vCPU's ACKED passes its sequence. A vCPU acknowledges by draining
 * the ring into its own TLB before each access it makes and when it leaves the guest (an access
 * is a hit or a walk, never a fault: faults are handled outside the guest), so an ack also says
 * that no walk of its own begun before the TLBI is still in flight. A vCPU that is idle (in the fault handler, waiting for a
 * lock or for the host) cannot drain: the poster takes its STATE by CAS and drains on its behalf.
 * Accesses never block, so a poster's wait is bounded even while it holds mmu_lock.
 */
import { cooperative, RacePoint, racePoint } from "../common/race-points.js";
import { C, H, R, RING_BASE, RING_SLOTS, RING_STRIDE, servicedBy, TWO32, VState } from "./layout.js";
import type { VcpuTlb } from "./tlb.js";

const sleepWord = new Int32Array(new SharedArrayBuffer(4));
const PUBLISH_SPINS = 1 << 16;
/**
 * A vCPU that holds an access this long is stuck or its thread is gone: the TLBI fails loudly. So
 * does a vCPU that cannot enter the guest for this long (hardware-walker.ts).
 */
export const STUCK_MS = 10_000;

/** Applies every TLBI posted so far to `tlb` and acknowledges. Hold the vCPU's STATE. */
export function drainRing(words: Int32Array, tlb: VcpuTlb): void {
  const ctl = tlb.ctl;
  let seq = words[ctl + C.ACKED] as number;
  // Pairs with posters' Atomics.add on RING_HEAD.
  const head = Atomics.load(words, H.RING_HEAD);
  if (head - seq > RING_SLOTS) {
    tlb.flushAll();
    seq = head;
  }
  for (; seq < head; seq++) {
    const s = RING_BASE + (seq % RING_SLOTS) * RING_STRIDE;
    // Acquire: pairs with the poster's Atomics.store of PUB, after its field stores.
    let pub = Atomics.load(words, s + R.PUB);
    // Claimed, being written. A poster preempted (or killed) between claim and publish must not
    // hold us: after PUBLISH_SPINS we flush everything, which covers its TLBI too (its table
    // change came before its claim).
    for (let spin = 0; pub < seq + 1 && spin < PUBLISH_SPINS; spin++) pub = Atomics.load(words, s + R.PUB);
    if (pub !== seq + 1) {
      tlb.flushAll(); // slot reused (we were a whole ring behind), or never published
      break;
    }
    const kind = words[s + R.KIND] as number;
    const vmid = words[s + R.VMID] as number;
    const ipa = (words[s + R.IPA_HI] as number) * TWO32 + ((words[s + R.IPA_LO] as number) >>> 0);
    const size = (words[s + R.SIZE_HI] as number) * TWO32 + ((words[s + R.SIZE_LO] as number) >>> 0);
    const ttl = words[s + R.TTL] as number;
    // The fields we read belong to `seq` only if PUB still says so.
    if (Atomics.load(words, s + R.PUB) !== seq + 1) {
      tlb.flushAll();
      break;
    }
    tlb.invalidate(kind, vmid, ipa, size, ttl);
  }
  // Release: pairs with complete()'s Atomics.load of ACKED.
  Atomics.store(words, ctl + C.ACKED, head);
}

/** Posts one TLBI and returns its sequence number (not yet complete). */
export function postTlbi(
  words: Int32Array,
  kind: number,
  vmid: number,
  ipa: number,
  size: number,
  ttl: number,
  poster: number,
): number {
  const seq = Atomics.add(words, H.RING_HEAD, 1);
  const s = RING_BASE + (seq % RING_SLOTS) * RING_STRIDE;
  words[s + R.KIND] = kind;
  words[s + R.VMID] = vmid;
  words[s + R.IPA_LO] = (ipa % TWO32) | 0;
  words[s + R.IPA_HI] = Math.floor(ipa / TWO32);
  words[s + R.SIZE_LO] = (size % TWO32) | 0;
  words[s + R.SIZE_HI] = Math.floor(size / TWO32);
  words[s + R.TTL] = ttl;
  words[s + R.POSTER] = poster;
  // Release: pairs with drainRing's Atomics.load of PUB.
  Atomics.store(words, s + R.PUB, seq + 1);
  return seq;
}

/**
 * DSB ISH: waits until every vCPU's TLB has applied TLBI `seq`, draining idle vCPUs itself.
 * `poster` (a vCPU id, or -1 for a host thread) names this thread in the STATE it holds meanwhile.
 */
export function completeTlbi(words: Int32Array, tlbs: readonly VcpuTlb[], seq: number, poster: number): void {
  const held = servicedBy(poster);
  for (let v = 0; v < tlbs.length; v++) {
    const tlb = tlbs[v] as VcpuTlb;
    const ctl = tlb.ctl;
    let spins = 0;
    let since = 0;
    // Acquire: pairs with drainRing's Atomics.store of ACKED.
    while (Atomics.load(words, ctl + C.ACKED) <= seq) {
      // Pairs with the vCPU's CAS IDLE -> IN_ACCESS: exactly one of us holds its TLB.
      if (Atomics.compareExchange(words, ctl + C.STATE, VState.IDLE, held) === VState.IDLE) {
        drainRing(words, tlb);
        (words[ctl + C.SERVICED] as number)++;
        // A poster killed here leaves the vCPU locked out: the death watch hands it back.
        racePoint(RacePoint.TLBI_SERVICING);
        // Release: pairs with the vCPU's CAS, which then sees our TLB writes.
        Atomics.store(words, ctl + C.STATE, VState.IDLE);
        break;
      }
      racePoint(RacePoint.WAIT_LOOP);
      if (++spins > 256 && !cooperative) Atomics.wait(sleepWord, 0, 0, 0.01);
      if ((spins & 1023) === 0) {
        const now = performance.now();
        if (since === 0) since = now;
        else if (now - since > STUCK_MS)
          throw new Error(
            `TLBI ${seq} not acknowledged by vCPU ${v} within ${STUCK_MS / 1000} s: its thread is stuck in an access or gone`,
          );
      }
    }
  }
}
