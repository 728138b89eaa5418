/**
 * memstress: the guest side of KVM's perf selftests (tools/testing/selftests/kvm/lib/memstress.c),
 * and the shared control block the host drives it with.
 *
 * Each vCPU owns a slice of pages (or, with overlap, every vCPU walks the whole region). One pass
 * visits each page once: in order, or at random (`page = rand() % pages`); each visit writes with
 * probability `writePercent`% (`rand() % 100 < writePercent`), else reads. The generator is
 * Park-Miller (`seed = seed * 48271 % (2^31 - 1)`), vCPU i starts from `seed + i`, and its state
 * carries over from pass to pass, as the selftest's guest loop does: with the same seed a run touches
 * the same pages in the same order as the selftest would. The page draw comes before the write draw,
 * and the write draw is taken on every visit, even at 0 or 100 percent.
 *
 * After a pass the vCPU publishes the iteration it completed and waits until the host moves the
 * iteration on; a negative iteration means "keep running passes" (dirty_log_perf_test -e), and
 * QUIT ends the loop.
 *
 * Control block (Int32Array over one SharedArrayBuffer, one per run):
 *
 *   word            writer            reader            meaning
 *   0  ITERATION    host (store+notify) vCPUs (load/wait) pass number to run; <0 run continuously
 *   1  QUIT         host                vCPUs             1: leave the loop after this pass
 *   2  WRITE_PCT    host                vCPUs             write percentage of the next pass
 *   3  RANDOM       host                vCPUs             1: random page order
 *   4  DONE_SEQ     vCPUs (add+notify)  host (waitAsync)  bumped after every completed pass
 *   5  ACCESS_MODE  host                vCPUs             AccessMode of the next pass
 *   6  PASS_FIRST   host                vCPUs             first page of the slice the pass visits
 *   7  PASS_PAGES   host                vCPUs             pages the pass visits (0: the whole slice)
 *   8  STRIDE       host                vCPUs             visit every STRIDE-th page (0 or 1: each)
 *   9  ALLOW_MMIO   host                vCPUs             1: an access outside every memslot is an
 *                                                         MMIO exit, not an error (slots moving)
 *   16 + v          vCPU v              host              LAST_COMPLETED: last iteration vCPU v finished
 *
 * Ordering: the host stores WRITE_PCT/RANDOM/ACCESS_MODE before the SC store of ITERATION, and the
 * vCPU loads them after its SC load of ITERATION, so a pass always sees its own parameters.
 * A vCPU stores LAST_COMPLETED (SC) before bumping DONE_SEQ; the host reads LAST_COMPLETED after
 * waking on DONE_SEQ. Per-vCPU figures (Float64Array `figs`, 8 slots per vCPU, written only by the
 * vCPU, read by the host after it saw LAST_COMPLETED move): passes, pages visited, writes, busy ns,
 * faults.
 */
import { Errno } from "../common/errno.js";
import { TraceEvent, type TraceWriter } from "../common/trace.js";
import type { FaultHandler } from "../kvm/fault.js";
import { RETRIES_UNDER_INVALIDATION, touch } from "./workloads.js";

export const enum MsCtl {
  ITERATION = 0,
  QUIT = 1,
  WRITE_PCT = 2,
  RANDOM = 3,
  DONE_SEQ = 4,
  ACCESS_MODE = 5,
  PASS_FIRST = 6,
  PASS_PAGES = 7,
  STRIDE = 8,
  ALLOW_MMIO = 9,
  LAST_COMPLETED = 16,
}

export const enum MsFig {
  PASSES = 0,
  PAGES = 1,
  WRITES = 2,
  BUSY_NS = 3,
  FAULTS = 4,
  STRIDE = 8,
}

/** How the next pass chooses between read and write. */
export const enum AccessMode {
  /** memstress: `rand() % 100 < writePercent`. */
  MIXED = 0,
  WRITE = 1,
  READ = 2,
  /** kvm_page_table_test's CREATE: even vCPUs write, odd vCPUs read. */
  WRITE_IF_EVEN_VCPU = 3,
  /** An empty pass: the vCPUs only check in (threads started, or parked before slots change). */
  NONE = 4,
}

const PARK_MILLER_MOD = 2147483647;

/** Park-Miller "minimal standard" generator, as the KVM selftests' guest_random_u32(). */
export class ParkMiller {
  private seed: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
  }

  /** Next value: seed * 48271 % (2^31 - 1) on a 64-bit product (exact in doubles: < 2^47). */
  next(): number {
    this.seed = (this.seed * 48271) % PARK_MILLER_MOD;
    return this.seed;
  }
}

/** The shared part of a memstress run: control words and per-vCPU figures. */
export interface MemstressHandle {
  ctl: SharedArrayBuffer;
  figs: SharedArrayBuffer;
}

export function createMemstress(vcpus: number): MemstressHandle {
  return {
    ctl: new SharedArrayBuffer((MsCtl.LAST_COMPLETED + vcpus) * 4),
    figs: new SharedArrayBuffer(vcpus * MsFig.STRIDE * 8),
  };
}

/** What one vCPU works on. */
export interface MemstressSlice {
  /** Guest-physical address of the vCPU's first page. */
  gpa: number;
  pages: number;
  pageSize: number;
  /** Seed of the run; vCPU `vcpu` draws from `seed + vcpu`. */
  seed: number;
  vcpu: number;
}

/** Hooks a vCPU thread gives the guest loop (qsbr threads go offline while they wait). */
export interface GuestThread {
  handler: FaultHandler;
  idle(): void;
  resume(): void;
  /** Where each pass is recorded as a fault batch (`--trace`), or null. */
  trace?: TraceWriter | null;
}

/**
 * The vCPU side: runs passes as the host asks until QUIT. Returns OK, or at once the first negative
 * Errno a guest access could not resolve, without publishing the pass: the caller reports the error
 * to the host, whose wait then fails (it never waits forever).
 */
export function guestLoop(t: GuestThread, handle: MemstressHandle, s: MemstressSlice): number {
  const ctl = new Int32Array(handle.ctl);
  const figs = new Float64Array(handle.figs);
  const base = s.vcpu * MsFig.STRIDE;
  const rng = new ParkMiller(s.seed + s.vcpu);
  const h = t.handler;
  let status: number = Errno.OK;
  let last = Number.NaN;
  for (;;) {
    // Wait for a new pass: the iteration moved, or it is negative (run continuously), or quit.
    let it = Atomics.load(ctl, MsCtl.ITERATION);
    if (it === last && it >= 0 && Atomics.load(ctl, MsCtl.QUIT) === 0) {
      t.idle();
      while (it === last && Atomics.load(ctl, MsCtl.QUIT) === 0) {
        // Pairs with the host's store + notify of ITERATION (and of QUIT).
        Atomics.wait(ctl, MsCtl.ITERATION, it, 100);
        it = Atomics.load(ctl, MsCtl.ITERATION);
      }
      t.resume();
    }
    if (Atomics.load(ctl, MsCtl.QUIT) !== 0) return status;
    const writePct = ctl[MsCtl.WRITE_PCT] as number;
    const random = ctl[MsCtl.RANDOM] !== 0;
    let mode = ctl[MsCtl.ACCESS_MODE] as number;
    if (mode === AccessMode.WRITE_IF_EVEN_VCPU) mode = s.vcpu % 2 === 0 ? AccessMode.WRITE : AccessMode.READ;
    const first = ctl[MsCtl.PASS_FIRST] as number;
    const count = mode === AccessMode.NONE ? 0 : (ctl[MsCtl.PASS_PAGES] as number) || s.pages - first;
    const stride = Math.max(1, ctl[MsCtl.STRIDE] as number);
    const allowMmio = ctl[MsCtl.ALLOW_MMIO] !== 0;
    const t0 = performance.now();
    let faults = 0;
    let writes = 0;
    for (let i = 0; i < count && status === Errno.OK; i += stride) {
      const page = first + (random ? rng.next() % count : i);
      const draw = rng.next() % 100 < writePct;
      const write = mode === AccessMode.MIXED ? draw : mode === AccessMode.WRITE;
      const ret = touch(h, s.gpa + page * s.pageSize, write, RETRIES_UNDER_INVALIDATION);
      if (ret >= 0) faults += ret;
      else if (!(allowMmio && ret === Errno.NOENT)) status = ret;
      if (write) writes++;
    }
    const t1 = performance.now();
    t.trace?.complete(TraceEvent.FAULT_BATCH, (performance.timeOrigin + t0) * 1000, (t1 - t0) * 1000, faults);
    (figs[base + MsFig.PASSES] as number) += 1;
    (figs[base + MsFig.PAGES] as number) += Math.ceil(count / stride);
    (figs[base + MsFig.WRITES] as number) += writes;
    (figs[base + MsFig.BUSY_NS] as number) += (t1 - t0) * 1e6;
    (figs[base + MsFig.FAULTS] as number) += faults;
    if (status !== Errno.OK) return status;
    last = it;
    // LAST_COMPLETED before DONE_SEQ: the host reads the former after waking on the latter.
    Atomics.store(ctl, MsCtl.LAST_COMPLETED + s.vcpu, it);
    Atomics.add(ctl, MsCtl.DONE_SEQ, 1);
    Atomics.notify(ctl, MsCtl.DONE_SEQ);
  }
}

/** Atomics.waitAsync (Node 16+; not in the ES2022 lib typings this project compiles against). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      i: number,
      v: number,
      t: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/** The host side of a memstress run. */
export class MemstressHost {
  readonly ctl: Int32Array;
  readonly figs: Float64Array;
  readonly vcpus: number;

  /** `failure()` names a dead or failed vCPU (else null): waits then fail instead of hanging. */
  constructor(
    readonly handle: MemstressHandle,
    vcpus: number,
    private readonly failure: () => string | null = () => null,
  ) {
    this.ctl = new Int32Array(handle.ctl);
    this.figs = new Float64Array(handle.figs);
    this.vcpus = vcpus;
    for (let v = 0; v < vcpus; v++) Atomics.store(this.ctl, MsCtl.LAST_COMPLETED + v, -1);
  }

  /** Parameters of the passes that follow; call before `start`. */
  setAccess(writePercent: number, random: boolean, mode: AccessMode = AccessMode.MIXED): void {
    this.ctl[MsCtl.WRITE_PCT] = writePercent;
    this.ctl[MsCtl.RANDOM] = random ? 1 : 0;
    this.ctl[MsCtl.ACCESS_MODE] = mode;
  }

  /** Which pages of each slice the next passes visit: `pages` from `first` (0: to the end), every `stride`-th. */
  setRange(first: number, pages = 0, stride = 1): void {
    this.ctl[MsCtl.PASS_FIRST] = first;
    this.ctl[MsCtl.PASS_PAGES] = pages;
    this.ctl[MsCtl.STRIDE] = stride;
  }

  /** Accesses outside every memslot count as MMIO exits (memslots are moving), not as errors. */
  allowMmio(on: boolean): void {
    this.ctl[MsCtl.ALLOW_MMIO] = on ? 1 : 0;
  }

  /** Moves every vCPU on to pass `iteration` (negative: passes back to back until the next call). */
  start(iteration: number): void {
    // SC store: orders the parameter stores above before it (pairs with the vCPU's load).
    Atomics.store(this.ctl, MsCtl.ITERATION, iteration);
    Atomics.notify(this.ctl, MsCtl.ITERATION);
  }

  /** Resolves once every vCPU has completed pass `iteration`; rejects when a vCPU failed. */
  async waitAll(iteration: number): Promise<void> {
    for (;;) {
      const seq = Atomics.load(this.ctl, MsCtl.DONE_SEQ);
      let done = true;
      for (let v = 0; v < this.vcpus && done; v++) {
        if (Atomics.load(this.ctl, MsCtl.LAST_COMPLETED + v) !== iteration) done = false;
      }
      if (done) return;
      const dead = this.failure();
      if (dead !== null) throw new Error(dead);
      // Pairs with the vCPUs' add + notify of DONE_SEQ; the timeout re-checks for dead vCPUs.
      const w = waitAsync(this.ctl, MsCtl.DONE_SEQ, seq, 200);
      if (w.async) await w.value;
    }
  }

  /** Ends every vCPU's loop after its current pass. */
  quit(): void {
    Atomics.store(this.ctl, MsCtl.QUIT, 1);
    Atomics.notify(this.ctl, MsCtl.ITERATION);
  }

  fig(vcpu: number, f: MsFig): number {
    return this.figs[vcpu * MsFig.STRIDE + f] as number;
  }
}

/**
 * Host-side replay of one vCPU's guest loop: the same generator and draws as guestLoop(), without
 * touching memory. `pass()` marks in `written` (one byte per page of the slice) the pages the
 * vCPU writes in its next pass, so a dirty log can be checked against what the guest really did.
 */
export class GuestReplay {
  private readonly rng: ParkMiller;

  constructor(private readonly slice: MemstressSlice) {
    this.rng = new ParkMiller(slice.seed + slice.vcpu);
  }

  /** Mirrors one whole-slice pass (PASS_FIRST 0, every page). */
  pass(writePct: number, random: boolean, mode: AccessMode, written: Uint8Array): void {
    const pages = this.slice.pages;
    if (mode === AccessMode.WRITE_IF_EVEN_VCPU)
      mode = this.slice.vcpu % 2 === 0 ? AccessMode.WRITE : AccessMode.READ;
    for (let i = 0; i < pages; i++) {
      const page = random ? this.rng.next() % pages : i;
      const draw = this.rng.next() % 100 < writePct;
      if (mode === AccessMode.MIXED ? draw : mode === AccessMode.WRITE) written[page] = 1;
    }
  }
}
