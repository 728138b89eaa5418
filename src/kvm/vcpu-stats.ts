/**
 * Per-vCPU fault statistics in shared memory.
 *
 * One Int32Array for all vCPUs; vCPU i owns words [i*STRIDE, (i+1)*STRIDE), 128 bytes, so that
 * counting never bounces a cache line between cores: SharedArrayBuffers are only 16-byte aligned
 * here (a small one starts 32 bytes into a cache line), and the words a fault bumps (FAULTS,
 * TRANSLATION, PAGES_MAPPED: the first 36 bytes) must stay a line away from the next vCPU's. Only the owning thread writes its
 * words, with plain stores; other threads read them after the owner reported a phase done over
 * postMessage (which orders the plain writes before the reads), or with Atomics.load for a live,
 * possibly slightly stale view (Int32 plain writes are tear-free).
 */
export const enum VStat {
  FAULTS = 0,
  TRANSLATION = 1,
  PERMISSION = 2,
  ACCESS_FLAG = 3,
  AGAIN = 4,
  NOMEM = 5,
  MMIO = 6,
  BLOCKS_MAPPED = 7,
  PAGES_MAPPED = 8,
  RELAXED = 9,
  DIRTIED = 10,
  EPILOGUES = 11,
  /** Faults retried because MMU_SEQ moved or an invalidation was in progress (mmu-seq.ts). */
  SEQ_RETRY = 12,
  STRIDE = 32,
}

/** Fault counters of one vCPU or of all (`VcpuStats.snapshot`). */
export interface VcpuStatsSnapshot {
  faults: number;
  translation: number;
  permission: number;
  accessFlag: number;
  again: number;
  nomem: number;
  mmio: number;
  blocksMapped: number;
  pagesMapped: number;
  relaxed: number;
  dirtied: number;
  seqRetries: number;
}

/** A view of the per-vCPU fault counters (layout above); any thread may read, vCPU i writes line i. */
export class VcpuStats {
  readonly words: Int32Array;
  readonly vcpus: number;

  constructor(vcpus: number, buffer?: SharedArrayBuffer) {
    this.vcpus = vcpus;
    this.words = new Int32Array(buffer ?? new SharedArrayBuffer(vcpus * VStat.STRIDE * 4));
  }

  get handle(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** Snapshot of one vCPU, or the sum over all when `vcpu` is omitted. */
  snapshot(vcpu?: number): VcpuStatsSnapshot {
    const g = (s: VStat): number => {
      let sum = 0;
      for (let v = 0; v < this.vcpus; v++) {
        if (vcpu === undefined || v === vcpu) sum += Atomics.load(this.words, v * VStat.STRIDE + s);
      }
      return sum;
    };
    return {
      faults: g(VStat.FAULTS),
      translation: g(VStat.TRANSLATION),
      permission: g(VStat.PERMISSION),
      accessFlag: g(VStat.ACCESS_FLAG),
      again: g(VStat.AGAIN),
      nomem: g(VStat.NOMEM),
      mmio: g(VStat.MMIO),
      blocksMapped: g(VStat.BLOCKS_MAPPED),
      pagesMapped: g(VStat.PAGES_MAPPED),
      relaxed: g(VStat.RELAXED),
      dirtied: g(VStat.DIRTIED),
      seqRetries: g(VStat.SEQ_RETRY),
    };
  }
}
