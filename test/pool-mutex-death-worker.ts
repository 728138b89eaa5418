/**
 * Workers of pool-mutex-death.test.ts, one script with two roles:
 *   - "victim": a vCPU that takes pages out of the pool (holding them, listed nowhere), then takes
 *     the pool's free-list mutex and dies inside the critical section, halfway through a pop: the
 *     list head already moved past the page, its links and the count not yet updated. It stops in
 *     a loop there until the parent terminates it (terminate() lands at the loop's back edge).
 *   - "probe": a plain thread that attaches the pool and allocates one page, then reports it. It
 *     stands in for "the next allocation anyone makes": when the dead holder's mutex is never
 *     released it never reports, and the parent gives up after a bound and terminates it.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { attachVcpu, type VmHandle } from "../src/kvm/vm.js";
import { metaIndex, PageMeta, PoolHeader } from "../src/mem/layout.js";
import { PagePool, type PagePoolHandle } from "../src/mem/page-pool.js";
import { mutexLock } from "../src/mem/spin-mutex.js";

export type PoolDeathData =
  | { role: "victim"; vm: VmHandle; vcpu: number; deathPort: MessagePort; held: number }
  | { role: "probe"; pool: PagePoolHandle };

/** Victim: where it stopped, with the pages it held. Probe: the page it got (-1: pool empty). */
export type PoolDeathReply = { stopped: string; held: number[]; torn: number } | { page: number };

const data = workerData as PoolDeathData;
const port = parentPort as MessagePort;

if (data.role === "probe") {
  const pool = PagePool.attach(data.pool);
  port.postMessage({ page: pool.allocPage() } satisfies PoolDeathReply);
} else {
  const ctx = attachVcpu(data.vm, data.vcpu);
  const pool = ctx.pgt.pool;
  // Pages taken out of the allocator and not yet handed over: only the quiescent sweep finds them.
  const held: number[] = [];
  for (let i = 0; i < data.held; i++) held.push(pool.allocPage());
  const meta = new Int32Array(pool.handle.meta);
  mutexLock(meta, PoolHeader.LOCK);
  // The first store of freeListUnlink(head): FREE_HEAD moves on; the page still says it is listed,
  // its successor's FREE_PREV still names it, and FREE_COUNT still counts it.
  const torn = meta[PoolHeader.FREE_HEAD]!;
  if (torn >= 0) meta[PoolHeader.FREE_HEAD] = meta[metaIndex(torn, PageMeta.FREE_NEXT)]!;
  port.postMessage({ stopped: "pool-lock", held, torn } satisfies PoolDeathReply);
  const forever = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(forever, 0, 0, 20);
}
