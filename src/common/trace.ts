/**
 * Trace rings: bounded per-thread event buffers in shared memory, for `--trace FILE`.
 *
 * Every thread that traces (each vCPU worker, the host, the RCU callback worker) owns one slot and
 * is its only writer. Recording an event is four plain Float64 stores and one Atomics.store of the
 * slot's count: no strings, no allocation, no lock. Event names are a fixed `const enum` with a
 * name table used only when the trace is collected and formatted (src/report/perfetto.ts).
 *
 * Layout (one SharedArrayBuffer; T = threads, N = eventsPerThread):
 *
 * ```
 * bytes 0 .. 64T           control: Int32, one 64-byte line per slot s at word 16s
 *   +0  COUNT       records written; owner stores (Atomics.store, after the record's stores),
 *                   collect() loads (Atomics.load, pairs with that store)
 *   +1  DROPPED     events refused because the ring was full; owner stores, collect() loads
 *   +2  UNBALANCED  end() calls with no open begin(); owner stores, collect() loads
 *   +3  OWNER       0 free, 1 claimed by a writer (CAS in writer(), store 0 in close())
 *   +4  NAME_LEN    UTF-16 length of the thread name; writer() stores it (Atomics.store) after the
 *                   name's units, collect() loads it (Atomics.load, pairs with that store)
 * bytes 64T .. 128T        names: Uint16, 32 code units per slot (thread name, truncated)
 * bytes 128T ..            records: Float64, slot s owns records [sN, (s+1)N), 4 words each:
 *   +0  TS     microseconds since the epoch: (performance.timeOrigin + performance.now()) * 1000
 *   +1  VALUE  duration in µs (COMPLETE), counter value (COUNTER), else 0
 *   +2  ARG    numeric argument (phase index, batch size, ...)
 *   +3  TAG    kind | event << 8
 * ```
 *
 * Overflow drops the newest event and counts it; the ring never wraps, so what was recorded stays a
 * consistent prefix of the thread's history. So that slices still nest, a begin() is recorded only
 * when room remains for its end(): one record per open begin is held in reserve, and an end()
 * whose begin() was dropped is dropped too.
 *
 * Timestamps of different threads agree: each worker's `performance.timeOrigin` is its own start
 * time, and timeOrigin + now() is wall-clock time in every thread (sub-microsecond resolution).
 */

/** Event names; the numeric argument of each is described beside it. Append only. */
export const enum TraceEvent {
  /** A timed phase of the workload (slice on every thread that runs it); arg = phase index. */
  PHASE = 0,
  /** A batch of faults handled by a vCPU; arg = faults in the batch. */
  FAULT_BATCH = 1,
  /** One grace period, from start to completion, on the thread that drove or waited it. */
  GRACE_PERIOD = 2,
  /** One batch of RCU callbacks on the callback worker; arg = callbacks run. */
  CALLBACK_BATCH = 3,
  /** mmu_lock held for write (host unmap/wrprotect/split/destroy); arg = pages touched. */
  WRITE_LOCK = 4,
  /** Counter: table pages waiting for a grace period. */
  PENDING_PAGES = 5,
  /** Counter: RCU callbacks queued and not yet run. */
  PENDING_CALLBACKS = 6,
  /** rcu_barrier() at destroy. */
  BARRIER = 7,
  /** A vCPU waiting for a grace period itself (bounded/batched fallback); arg = pages freed. */
  SYNC_FALLBACK = 8,
  /** VM teardown under the write lock; arg = pages freed. */
  DESTROY = 9,
  /** Instant: an AGAIN retry storm or any other mark; arg is free. */
  MARK = 10,
  /** Number of events (not an event). */
  COUNT = 11,
}

/** Display names, indexed by `TraceEvent`. */
export const TRACE_EVENT_NAMES: readonly string[] = [
  "phase",
  "fault batch",
  "grace period",
  "callback batch",
  "write lock",
  "pending pages",
  "pending callbacks",
  "rcu barrier",
  "sync fallback",
  "destroy",
  "mark",
];

/** What a record is. */
export const enum TraceKind {
  BEGIN = 0,
  END = 1,
  COMPLETE = 2,
  INSTANT = 3,
  COUNTER = 4,
}

/** Control words of a slot (see the layout above). */
export const enum TraceCtl {
  COUNT = 0,
  DROPPED = 1,
  UNBALANCED = 2,
  OWNER = 3,
  NAME_LEN = 4,
  STRIDE = 16,
}

/** Words of a record. */
export const enum TraceRec {
  TS = 0,
  VALUE = 1,
  ARG = 2,
  TAG = 3,
  WORDS = 4,
}

const NAME_UNITS = 32;
const MAX_THREADS = 4096;
const MAX_EVENTS_PER_THREAD = 1 << 22;

/** Events per thread when the caller does not say: ~512 KiB of ring and ~1 MiB of JSON per thread. */
export const TRACE_DEFAULT_EVENTS_PER_THREAD = 16384;

export interface TraceBufferOptions {
  /** Slots (threads that trace). */
  threads: number;
  /** Capacity of each slot's ring, in events. */
  eventsPerThread?: number;
}

/** Structured-cloneable; post it to a worker and `TraceBuffer.attach` it there. */
export interface TraceBufferHandle {
  buffer: SharedArrayBuffer;
  threads: number;
  eventsPerThread: number;
}

/** One collected event (allocated only by collect()). */
export interface TraceRecord {
  kind: TraceKind;
  ev: TraceEvent;
  /** Microseconds since the epoch. */
  tsUs: number;
  /** Duration (COMPLETE) or value (COUNTER), else 0. */
  value: number;
  arg: number;
}

export interface TraceThread {
  slot: number;
  name: string;
  events: TraceRecord[];
  dropped: number;
  unbalanced: number;
}

export interface TraceCollection {
  threads: TraceThread[];
  events: number;
  dropped: number;
}

/** The trace clock: microseconds since the epoch, agreeing across worker threads. */
export function traceNowUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

export class TraceBuffer {
  readonly handle: TraceBufferHandle;
  private readonly ctl: Int32Array;
  private readonly names: Uint16Array;
  private readonly recs: Float64Array;

  private constructor(handle: TraceBufferHandle) {
    this.handle = handle;
    const t = handle.threads;
    this.ctl = new Int32Array(handle.buffer, 0, t * TraceCtl.STRIDE);
    this.names = new Uint16Array(handle.buffer, 64 * t, t * NAME_UNITS);
    this.recs = new Float64Array(handle.buffer, 128 * t, t * handle.eventsPerThread * TraceRec.WORDS);
  }

  static create(opts: TraceBufferOptions): TraceBuffer {
    const threads = opts.threads;
    const n = opts.eventsPerThread ?? TRACE_DEFAULT_EVENTS_PER_THREAD;
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS)
      throw new RangeError(`Cannot create a trace buffer: threads=${threads} is not in 1..${MAX_THREADS}`);
    if (!Number.isInteger(n) || n < 2 || n > MAX_EVENTS_PER_THREAD)
      throw new RangeError(
        `Cannot create a trace buffer: eventsPerThread=${n} is not in 2..${MAX_EVENTS_PER_THREAD}`,
      );
    const bytes = 128 * threads + threads * n * TraceRec.WORDS * 8;
    return new TraceBuffer({ buffer: new SharedArrayBuffer(bytes), threads, eventsPerThread: n });
  }

  static attach(handle: TraceBufferHandle): TraceBuffer {
    if (!(handle?.buffer instanceof SharedArrayBuffer))
      throw new TypeError("Cannot attach a trace buffer: handle.buffer is not a SharedArrayBuffer");
    return new TraceBuffer(handle);
  }

  /**
   * Claims `slot` for the calling thread and names it (the track name in the trace). Each slot must
   * have one writer at a time: a second claim throws until the first writer's close().
   */
  writer(slot: number, name: string): TraceWriter {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.handle.threads)
      throw new RangeError(`Cannot trace on slot ${slot}: the buffer has ${this.handle.threads} slots`);
    const base = slot * TraceCtl.STRIDE;
    // Pairs with the Atomics.store(OWNER, 0) of the previous writer's close().
    if (Atomics.compareExchange(this.ctl, base + TraceCtl.OWNER, 0, 1) !== 0)
      throw new Error(`Cannot trace on slot ${slot}: another writer holds it`);
    const len = Math.min(name.length, NAME_UNITS);
    for (let i = 0; i < len; i++) this.names[slot * NAME_UNITS + i] = name.charCodeAt(i);
    // Publishes the name units above; pairs with the Atomics.load in collect().
    Atomics.store(this.ctl, base + TraceCtl.NAME_LEN, len);
    return new TraceWriter(this.ctl, this.recs, slot, this.handle.eventsPerThread);
  }

  /** Every slot's events so far, in recording order, with overflow counts. */
  collect(): TraceCollection {
    const threads: TraceThread[] = [];
    let events = 0;
    let dropped = 0;
    const n = this.handle.eventsPerThread;
    for (let s = 0; s < this.handle.threads; s++) {
      const base = s * TraceCtl.STRIDE;
      // Pairs with the writer's Atomics.store of COUNT: records [0, count) are complete.
      const count = Atomics.load(this.ctl, base + TraceCtl.COUNT);
      const nameLen = Atomics.load(this.ctl, base + TraceCtl.NAME_LEN);
      const thread: TraceThread = {
        slot: s,
        name: String.fromCharCode(...this.names.subarray(s * NAME_UNITS, s * NAME_UNITS + nameLen)),
        events: [],
        dropped: Atomics.load(this.ctl, base + TraceCtl.DROPPED),
        unbalanced: Atomics.load(this.ctl, base + TraceCtl.UNBALANCED),
      };
      for (let i = 0; i < count; i++) {
        const r = (s * n + i) * TraceRec.WORDS;
        const tag = this.recs[r + TraceRec.TAG];
        thread.events.push({
          kind: (tag & 0xff) as TraceKind,
          ev: (tag >> 8) as TraceEvent,
          tsUs: this.recs[r + TraceRec.TS],
          value: this.recs[r + TraceRec.VALUE],
          arg: this.recs[r + TraceRec.ARG],
        });
      }
      if (count > 0 || nameLen > 0 || thread.dropped > 0) threads.push(thread);
      events += count;
      dropped += thread.dropped;
    }
    return { threads, events, dropped };
  }
}

/**
 * The single writer of one slot. Methods never throw and never allocate; a full ring drops the
 * event and counts it. Keep it in the thread that created it.
 */
export class TraceWriter {
  readonly slot: number;
  private readonly ctl: Int32Array;
  private readonly recs: Float64Array;
  private readonly base: number;
  private readonly first: number;
  private readonly capacity: number;
  /** Thread-local mirrors of the shared counters (this thread is their only writer). */
  private count = 0;
  private dropped = 0;
  private unbalanced = 0;
  /** begin()s recorded and not yet ended: one reserved record each for its end(). */
  private open = 0;
  /** begin()s dropped and not yet ended: their end()s are dropped too. */
  private skipped = 0;

  constructor(ctl: Int32Array, recs: Float64Array, slot: number, capacity: number) {
    this.ctl = ctl;
    this.recs = recs;
    this.slot = slot;
    this.base = slot * TraceCtl.STRIDE;
    this.first = slot * capacity;
    this.capacity = capacity;
    this.count = Atomics.load(ctl, this.base + TraceCtl.COUNT);
    this.dropped = Atomics.load(ctl, this.base + TraceCtl.DROPPED);
    this.unbalanced = Atomics.load(ctl, this.base + TraceCtl.UNBALANCED);
  }

  /** Opens a slice; must be closed by end(ev) on this thread, innermost first. */
  begin(ev: TraceEvent, tsUs = traceNowUs(), arg = 0): void {
    if (this.skipped > 0 || this.capacity - this.count - this.open < 2) {
      this.skipped++;
      this.drop();
      return;
    }
    this.open++;
    this.put(TraceKind.BEGIN, ev, tsUs, 0, arg);
  }

  /** Closes the innermost open slice (its record was reserved at begin()). */
  end(ev: TraceEvent, tsUs = traceNowUs(), arg = 0): void {
    if (this.skipped > 0) {
      this.skipped--;
      this.drop();
      return;
    }
    if (this.open === 0) {
      this.unbalanced++;
      Atomics.store(this.ctl, this.base + TraceCtl.UNBALANCED, this.unbalanced);
      return;
    }
    this.open--;
    this.put(TraceKind.END, ev, tsUs, 0, arg);
  }

  /** A slice measured by the caller; it must nest within the slices open on this thread. */
  complete(ev: TraceEvent, startUs: number, durUs: number, arg = 0): void {
    if (this.room()) this.put(TraceKind.COMPLETE, ev, startUs, durUs, arg);
  }

  instant(ev: TraceEvent, arg = 0): void {
    if (this.room()) this.put(TraceKind.INSTANT, ev, traceNowUs(), 0, arg);
  }

  /** A sample of a counter track (PENDING_PAGES, PENDING_CALLBACKS). */
  counter(ev: TraceEvent, value: number): void {
    if (this.room()) this.put(TraceKind.COUNTER, ev, traceNowUs(), value, 0);
  }

  /** Releases the slot for another writer; records stay. Open slices stay open. */
  close(): void {
    // Pairs with the compareExchange in TraceBuffer.writer().
    Atomics.store(this.ctl, this.base + TraceCtl.OWNER, 0);
  }

  private room(): boolean {
    if (this.capacity - this.count - this.open >= 1) return true;
    this.drop();
    return false;
  }

  private drop(): void {
    this.dropped++;
    Atomics.store(this.ctl, this.base + TraceCtl.DROPPED, this.dropped);
  }

  private put(kind: TraceKind, ev: TraceEvent, tsUs: number, value: number, arg: number): void {
    const r = (this.first + this.count) * TraceRec.WORDS;
    this.recs[r + TraceRec.TS] = tsUs;
    this.recs[r + TraceRec.VALUE] = value;
    this.recs[r + TraceRec.ARG] = arg;
    this.recs[r + TraceRec.TAG] = kind | (ev << 8);
    this.count++;
    // Publishes the four stores above; pairs with the Atomics.load of COUNT in collect().
    Atomics.store(this.ctl, this.base + TraceCtl.COUNT, this.count);
  }
}
