/**
 * What each vCPU holds, published in shared memory so that a reaper can give it back when the
 * vCPU's worker dies mid-fault (death.ts): its lock slot and thread id, its memory cache, the
 * reclaim work it deferred to itself (the epilogue list, the batched strategy's arrays), and, once
 * it died, what the reaper found and did.
 *
 * Shared memory (one SharedArrayBuffer, Int32, all vCPUs):
 *
 *     words 0..31            header
 *       [0] DEATHS           vCPU deaths reaped             reapers (Atomics.add)       any thread
 *       [1] REPAIRS          OWNER_DEAD repairs run         the repairing writer        any thread
 *       [2] LOCKED_REPAIRED  locked entries zapped          the repairing writer        any thread
 *       [3] LOST_RECOVERED   orphan pages freed at the end  recoverLostPages()          any thread
 *     words 32 + 32v ..      vCPU v's record, 128 bytes (two cache lines, written by v alone
 *                            while it lives):
 *       [0] STATE            NONE -> ALIVE (attachVcpu) -> CLOSED (close(), clean exit), or
 *                            ALIVE -> DEAD (the reaper's CAS claims the death) -> REAPED;
 *                            CLOSED or REAPED -> ALIVE when a new thread attaches the id
 *       [1] TID              threadId of v's worker          v, before ALIVE            reaper
 *       [2] LOCK_SLOT        v's mmu_lock view slot          v, before ALIVE            reaper
 *       [3] MC_COUNT         pages in v's memory cache       v (plain)                  reaper
 *       [4] EPI_HEAD         head of v's epilogue list (-1)  v's strategy (plain)        reaper
 *       [5] BATCH_CURRENT    batched: the open array (-1)    v's strategy (plain)        reaper
 *       [6] BATCH_SPARE      batched: the spare page (-1)    v's strategy (plain)        reaper
 *       [7] BATCH_SEALED     batched: oldest sealed array    v's strategy (plain)        reaper
 *       [8] R_HELD           report: mmu_lock Hold flags     reaper                     any thread
 *       [9] R_RCU_SLOTS      report: RCU slots released      reaper
 *       [10] R_MC_PAGES      report: memory-cache pages back reaper
 *       [11] R_SUBTREES      report: subtrees queued for a grace period (epilogue + arrays)
 *       [12] R_ARRAYS        report: array pages freed       reaper
 *       [13] R_LOCKED        report: locked entries zapped   the repairing writer
 *       [14] R_LOCKED_IPA_LO / [15] R_LOCKED_IPA_HI: IPA of the first one (hi * 2^32 + lo)
 *       [16] R_IN_FAULT      report: FAULT_SEQ was odd (the fault never left)
 *       [17] NEEDS_REPAIR    1 from the reaper's claim until a writer's repair ran
 *       [18] R_POOL_LOCK     report: 1 when v died holding the page pool's mutex, which the
 *                            reaper took back (PagePool.reapDeadHolder)   reaper       any thread
 *       [19..31] spare
 *       then MC_PAGES: capacity page indices (v's memory cache, entries [0, MC_COUNT))
 *
 * Ordering. The owner writes its words with plain stores (no atomic on the fault path). A reaper
 * reads them only after the owner is dead: its worker's MessagePort closed (death-worker.ts), which
 * Node signals after the thread stopped running, so every store it made is done. STATE moves by
 * CAS (ALIVE -> DEAD, so one reaper claims a death) and by Atomics.store; the owner's
 * Atomics.store of ALIVE releases TID and LOCK_SLOT, paired with the reaper's Atomics.load of STATE.
 * Owners note a handed-off page in their record *before* giving it away (a memory cache's count
 * before its pages go to the pool, a list head before its pages are freed), so a death in between
 * leaves a page unaccounted (found by `recoverLostPages()`), never one given back twice.
 */
import { Errno } from "../common/errno.js";
import { MemCache, type PagePool } from "../mem/mod.js";

/** Memory-cache capacity of every vCPU (KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE, as MemCache's default). */
export const RECORD_MEMCACHE_PAGES = 16;

/** Words of the header and of one record. */
export const enum Rec {
  HEADER = 32,
  DEATHS = 0,
  REPAIRS = 1,
  LOCKED_REPAIRED = 2,
  LOST_RECOVERED = 3,
  STRIDE = 32,
  STATE = 0,
  TID = 1,
  LOCK_SLOT = 2,
  MC_COUNT = 3,
  EPI_HEAD = 4,
  BATCH_CURRENT = 5,
  BATCH_SPARE = 6,
  BATCH_SEALED = 7,
  R_HELD = 8,
  R_RCU_SLOTS = 9,
  R_MC_PAGES = 10,
  R_SUBTREES = 11,
  R_ARRAYS = 12,
  R_LOCKED = 13,
  R_LOCKED_IPA_LO = 14,
  R_LOCKED_IPA_HI = 15,
  R_IN_FAULT = 16,
  NEEDS_REPAIR = 17,
  R_POOL_LOCK = 18,
}

/** Life of a vCPU record (word STATE). */
export const enum VcpuState {
  NONE = 0,
  ALIVE = 1,
  CLOSED = 2,
  DEAD = 3,
  REAPED = 4,
}

/** The records of a VM's vCPUs (layout above). Any thread may build a view over the buffer. */
export class VcpuRecords {
  readonly words: Int32Array;
  readonly vcpus: number;
  /** Memory-cache capacity of each record. */
  readonly mcCapacity: number;

  constructor(vcpus: number, mcCapacity = RECORD_MEMCACHE_PAGES, buffer?: SharedArrayBuffer) {
    this.vcpus = vcpus;
    this.mcCapacity = mcCapacity;
    const words = Rec.HEADER + vcpus * (Rec.STRIDE + mcCapacity);
    this.words = new Int32Array(buffer ?? new SharedArrayBuffer(words * 4));
    if (buffer === undefined) for (let v = 0; v < vcpus; v++) this.clearLists(v);
  }

  get handle(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** First word of vCPU v's record. */
  base(v: number): number {
    return Rec.HEADER + v * (Rec.STRIDE + this.mcCapacity);
  }

  get(v: number, field: Rec): number {
    return Atomics.load(this.words, this.base(v) + field);
  }

  state(v: number): VcpuState {
    return this.get(v, Rec.STATE) as VcpuState;
  }

  header(field: Rec): number {
    return Atomics.load(this.words, field);
  }

  /** The list words start at -1 (nothing held). */
  private clearLists(v: number): void {
    const b = this.base(v);
    for (const f of [Rec.EPI_HEAD, Rec.BATCH_CURRENT, Rec.BATCH_SPARE, Rec.BATCH_SEALED])
      this.words[b + f] = -1;
  }

  /** vCPU v's thread, in attachVcpu: records its thread id and lock slot, then goes ALIVE. */
  markAlive(v: number, threadId: number, lockSlot: number): void {
    const b = this.base(v);
    const st = Atomics.load(this.words, b + Rec.STATE);
    if (st === VcpuState.ALIVE || st === VcpuState.DEAD)
      throw new RangeError(`Cannot attach vCPU ${v}: a thread holds it (one thread per vCPU id)`);
    this.words[b + Rec.TID] = threadId;
    this.words[b + Rec.LOCK_SLOT] = lockSlot;
    // Release: pairs with the reaper's Atomics.load of STATE before it reads TID and LOCK_SLOT.
    Atomics.store(this.words, b + Rec.STATE, VcpuState.ALIVE);
  }

  /** vCPU v's thread, at the end of close(): nothing of it is left to reap. */
  markClosed(v: number): void {
    Atomics.compareExchange(this.words, this.base(v) + Rec.STATE, VcpuState.ALIVE, VcpuState.CLOSED);
  }
}

/**
 * A vCPU's memory cache whose pages are listed in its record, so that a reaper can give them back
 * if the vCPU dies. Same contract as MemCache (topup outside locks, alloc inside, drain before the
 * thread goes); the pages live in the record instead of a private array, and every change of the
 * count is one more plain store.
 */
export class VcpuMemCache extends MemCache {
  private readonly rec: Int32Array;
  /** Index of MC_COUNT; the pages follow the record's 32 words. */
  private readonly countAt: number;
  /** The record's page list (a view of it, made once). */
  private readonly list: Int32Array;
  private n = 0;

  constructor(pool: PagePool, records: VcpuRecords, vcpu: number) {
    super(pool, records.mcCapacity);
    this.rec = records.words;
    const b = records.base(vcpu);
    this.countAt = b + Rec.MC_COUNT;
    this.list = this.rec.subarray(b + Rec.STRIDE, b + Rec.STRIDE + records.mcCapacity);
    this.n = this.rec[this.countAt] as number;
  }

  override topup(min: number): number {
    if (this.n >= min) return Errno.OK;
    if (!(min <= this.capacity)) {
      throw new RangeError(`Cannot top up memory cache to ${min} pages: its capacity is ${this.capacity}`);
    }
    // The batch lands in the record; a death before the count is stored leaves those pages
    // unaccounted (recoverLostPages), never counted twice.
    this.n += this.pool.allocBatch(this.list, this.capacity - this.n, this.n);
    this.rec[this.countAt] = this.n;
    return this.n >= min ? Errno.OK : Errno.NOMEM;
  }

  override alloc(): number {
    if (this.n <= 0) return -1;
    this.n--;
    this.rec[this.countAt] = this.n;
    return this.list[this.n] as number;
  }

  override get count(): number {
    return this.n;
  }

  override drain(): void {
    const n = this.n;
    this.n = 0;
    this.rec[this.countAt] = 0; // noted before the pages go back (see the file comment)
    this.pool.freeBatch(this.list, n);
  }
}
