/**
 * The controlled scheduler: worker threads that share a stage-2 run one at a time, and a seeded
 * strategy in shared memory decides which one runs next at every labelled point
 * (`common/race-points.ts`). A failing interleaving then replays exactly from its seed, or from the
 * recorded schedule.
 *
 * Each participant installs the scheduler as its race hook (`ControlledScheduler.attach`). At every
 * point it passes, the running thread (the one holding the token) picks the next thread with the
 * strategy, hands the token over and waits until the token comes back. Between two points exactly
 * one participant runs, so what each thread reads of shared memory depends only on the sequence
 * of decisions: the run is a function of the seed, as long as no thread outside the participants
 * changes the shared state while it lasts. The caller's contract: every thread that touches the
 * shared state during the run is a participant (the vCPUs, a host thread, and the RCU callback
 * worker, which joins as a daemon: `sim/controlled-rcu.ts`), and nothing a participant does depends
 * on the clock (no timeouts that fire, no time-budgeted batches).
 *
 * A participant is cooperative while it takes part (`setCooperative`): its wait loops pass
 * `RacePoint.WAIT_LOOP` and skip their timed sleeps, which would keep the token. A daemon
 * participant (the callback engine: it never ends by itself) leaves the run on its own once every
 * other participant has finished.
 *
 * A thread at `RacePoint.WAIT_LOOP` is waiting for another one; it is marked BLOCKED, so that the
 * strategy runs others first. Strategies:
 * - random: every live thread equally likely at each step;
 * - PCT (probabilistic concurrency testing, Burckhardt et al. 2010): distinct random priorities,
 *   the highest-priority live thread runs; at `depth - 1` random steps within `stepsHint`, the
 *   running thread's priority drops below all others. A thread that yields at a wait loop drops
 *   to the lowest priority too (else a spinning waiter would starve the thread it waits for).
 *
 * Shared layout (Int32Array over one SharedArrayBuffer; `ControlledScheduler.create`):
 *   word 0  TOKEN      participant allowed to run; -2 until all have attached, -1 after all finished.
 *                      Written only by the token holder (or the last thread to attach); every write
 *                      is an Atomics.store followed by Atomics.notify, and pairs with the waiters'
 *                      Atomics.load / Atomics.wait on it.
 *   word 1  STEP       decisions taken so far (written by the token holder only).
 *   word 2  THREADS    number of participants (set at creation).
 *   word 3  ATTACHED   participants attached so far (Atomics.add by each; the last one starts the run).
 *   word 4  RNG        xorshift32 state of the strategy (token holder only).
 *   word 5  STRATEGY   0 random, 1 PCT.
 *   word 6  DEPTH      PCT depth d (d - 1 change points).
 *   word 7  ABANDONED  1 once a participant waited longer than the stall limit for the token: from
 *                      then on nobody waits (the run goes on uncontrolled and says so).
 *   word 8  REPLAY_LEN recorded decisions to follow before the strategy takes over (replay).
 *   word 9  NEXT_PRIO  next (lower) priority to hand out when a thread is demoted (PCT).
 *   word 10 LOG_LEN    decisions recorded in LOG (at most LOG_CAP).
 *   word 11            unused (participants that finished are counted from their STATE words).
 *   words 16 + t          STATE of participant t: 0 new, 1 ready, 2 running, 3 blocked, 4 finished.
 *   words 16 + T + t      PRIORITY of participant t (PCT; larger runs first).
 *   words 16 + 2T + i     CHANGE[i]: the step of PCT change point i (i < DEPTH - 1).
 *   words 16 + 2T + D .. LOG: the chosen participant of decision s (s < LOG_CAP); in a replay, the
 *                      decisions to follow are written here before the run.
 * Decisions are taken only while two or more participants are live. No labelled point sits inside
 * the page pool's mutex, so a participant never waits there for another participant; waits that
 * only a thread outside the run can end (the RCU callback worker freeing pages) pass no point.
 * Every word except TOKEN and ATTACHED is touched only by the token holder, and a token hand-over
 * (store + load of TOKEN, both sequentially consistent) orders one holder's writes before the next
 * holder's reads.
 */
import { type RaceHook, RacePoint, raceHook, setCooperative, setRaceHook } from "../common/race-points.js";
import { xorshift32, xorshiftSeed } from "../common/rng.js";

const enum W {
  TOKEN = 0,
  STEP = 1,
  THREADS = 2,
  ATTACHED = 3,
  RNG = 4,
  STRATEGY = 5,
  DEPTH = 6,
  ABANDONED = 7,
  REPLAY_LEN = 8,
  NEXT_PRIO = 9,
  LOG_LEN = 10,
  BASE = 16,
}

const enum St {
  NEW = 0,
  READY = 1,
  RUNNING = 2,
  BLOCKED = 3,
  FINISHED = 4,
}

const TOKEN_WAITING = -2;
const TOKEN_DONE = -1;
/** Most participants. */
export const MAX_PARTICIPANTS = 64;
/** Most PCT change points plus one. */
export const MAX_PCT_DEPTH = 64;
/** Decisions recorded (and replayable) per run. */
export const LOG_CAP = 1 << 20;
/** A participant that waits this long for the token gives up control for everybody (a stuck run). */
const STALL_MS = 20_000;

/** How the next thread is chosen. */
export type ScheduleStrategy = "random" | "pct";

/** What a controlled run is set up with. */
export interface SchedulerOptions {
  /** Participating threads (ids 0..threads-1). */
  threads: number;
  seed: number;
  strategy: ScheduleStrategy;
  /** PCT depth d: d - 1 priority change points (default 3). */
  pctDepth?: number;
  /** PCT: the steps a run is expected to take, over which change points are spread (default 20000). */
  stepsHint?: number;
  /** Decisions to follow before the strategy takes over (a recorded schedule, for replay). */
  replay?: readonly number[];
}

/** What can be sent to a worker to attach to the scheduler. */
export interface SchedulerHandle {
  buffer: SharedArrayBuffer;
  threads: number;
  depth: number;
}

/** A controlled run's outcome, read after every participant finished. */
export interface ScheduleSummary {
  seed: number;
  strategy: ScheduleStrategy;
  pctDepth: number;
  /** Decisions taken. */
  steps: number;
  /** The decisions, in order (at most LOG_CAP of them). */
  schedule: number[];
  /** FNV-1a hash of the decisions, for comparing runs at a glance. */
  scheduleHash: string;
  /** True if a participant waited too long and the run went on uncontrolled (not replayable). */
  abandoned: boolean;
}

function logBase(threads: number, depth: number): number {
  return W.BASE + 2 * threads + depth;
}

/** The scheduler's shared state, seen from one thread. */
export class ControlledScheduler {
  private readonly w: Int32Array;
  private readonly threads: number;
  private readonly log: number;
  private id = -1;
  private daemon = false;
  private done = false;
  private prevHook: RaceHook | null = null;

  private constructor(readonly handle: SchedulerHandle) {
    this.w = new Int32Array(handle.buffer);
    this.threads = handle.threads;
    this.log = logBase(handle.threads, handle.depth);
  }

  /** Creates the shared state for a run (on the thread that starts the participants). */
  static create(o: SchedulerOptions): ControlledScheduler {
    if (!Number.isInteger(o.threads) || o.threads < 1 || o.threads > MAX_PARTICIPANTS)
      throw new RangeError(`controlled scheduling: threads ${o.threads} is not in 1..${MAX_PARTICIPANTS}`);
    const depth = o.pctDepth ?? 3;
    if (!Number.isInteger(depth) || depth < 1 || depth > MAX_PCT_DEPTH)
      throw new RangeError(`controlled scheduling: PCT depth ${depth} is not in 1..${MAX_PCT_DEPTH}`);
    const replay = o.replay ?? [];
    if (replay.length > LOG_CAP)
      throw new RangeError(`controlled scheduling: a replay holds at most ${LOG_CAP} steps`);
    for (const t of replay)
      if (!Number.isInteger(t) || t < 0 || t >= o.threads)
        throw new RangeError(`controlled scheduling: replayed step ${t} names no participant`);
    const words = logBase(o.threads, depth) + LOG_CAP;
    const handle = { buffer: new SharedArrayBuffer(words * 4), threads: o.threads, depth };
    const s = new ControlledScheduler(handle);
    const w = s.w;
    w[W.TOKEN] = TOKEN_WAITING;
    w[W.THREADS] = o.threads;
    w[W.STRATEGY] = o.strategy === "pct" ? 1 : 0;
    w[W.DEPTH] = depth;
    let rng = xorshiftSeed(o.seed);
    w[W.RNG] = rng | 0;
    // PCT: distinct priorities depth..depth+threads-1 in a seeded random order (Fisher-Yates);
    // demoted threads get depth-1, depth-2, ... (below every initial priority).
    const prio = Array.from({ length: o.threads }, (_, i) => depth + i);
    for (let i = prio.length - 1; i > 0; i--) {
      rng = xorshift32(rng);
      const j = rng % (i + 1);
      [prio[i], prio[j]] = [prio[j] as number, prio[i] as number];
    }
    for (let t = 0; t < o.threads; t++) w[W.BASE + o.threads + t] = prio[t] as number;
    const hint = Math.max(1, o.stepsHint ?? 20_000);
    for (let i = 0; i < depth - 1; i++) {
      rng = xorshift32(rng);
      w[W.BASE + 2 * o.threads + i] = 1 + (rng % hint);
    }
    w[W.RNG] = rng | 0;
    w[W.NEXT_PRIO] = depth - 1;
    w[W.REPLAY_LEN] = replay.length;
    for (let i = 0; i < replay.length; i++) w[s.log + i] = replay[i] as number;
    return s;
  }

  /** Attaches this thread as participant `id` and installs the scheduler as its race hook. */
  static attach(handle: SchedulerHandle, id: number): ControlledScheduler {
    const s = new ControlledScheduler(handle);
    if (!Number.isInteger(id) || id < 0 || id >= s.threads)
      throw new RangeError(`controlled scheduling: participant ${id} is not in 0..${s.threads - 1}`);
    s.id = id;
    return s;
  }

  /**
   * Joins the run: waits until every participant has joined and this one is chosen. Installs the
   * scheduler as this thread's race hook, after the hook already there (a checker's, such as the
   * RCU age check: it looks, then the scheduler decides), and makes the thread cooperative. A `daemon` participant leaves by itself, at the first point
   * it passes once every other participant has finished; the others call `finish()`.
   */
  begin(opts: { daemon?: boolean } = {}): void {
    const w = this.w;
    this.daemon = opts.daemon === true;
    const prev = raceHook();
    this.prevHook = prev;
    setRaceHook(
      prev === null
        ? (p) => this.at(p)
        : (p) => {
            prev(p);
            this.at(p);
          },
    );
    setCooperative(true);
    w[W.BASE + this.id] = St.READY;
    // Pairs with the other participants' add: the last one to attach sees every READY state.
    if (Atomics.add(w, W.ATTACHED, 1) + 1 === this.threads) this.handOff();
    this.waitTurn();
  }

  /**
   * Leaves the run (also on errors; later calls do nothing): puts back the hook `begin()` found,
   * and the token passes to a live participant.
   */
  finish(): void {
    if (this.done) return;
    this.done = true;
    setRaceHook(this.prevHook);
    setCooperative(false);
    const w = this.w;
    if (Atomics.load(w, W.ABANDONED) === 0 && Atomics.load(w, W.TOKEN) !== this.id) this.waitTurn();
    w[W.BASE + this.id] = St.FINISHED;
    this.handOff();
  }

  /** Decisions taken so far (as seen by the running thread). */
  step(): number {
    return Atomics.load(this.w, W.STEP);
  }

  /** The hook: called at every labelled point this thread passes. */
  private at(point: RacePoint): void {
    // A place for death hooks only (race-points.ts): no decision here, so schedules, their
    // hashes and the budgets tuned to them stay what they were before the point existed.
    if (point === RacePoint.TLBI_SERVICING) return;
    const w = this.w;
    if (Atomics.load(w, W.ABANDONED) !== 0) {
      if (this.daemon) this.finish(); // nobody waits any more: a daemon must stop spinning
      return;
    }
    if (point === RacePoint.WAIT_LOOP) {
      w[W.BASE + this.id] = St.BLOCKED;
      // PCT: a waiter drops below everybody, so that the thread it waits for can run.
      if (w[W.STRATEGY] === 1) {
        w[W.BASE + this.threads + this.id] = w[W.NEXT_PRIO] as number;
        w[W.NEXT_PRIO] = (w[W.NEXT_PRIO] as number) - 1;
      }
    } else w[W.BASE + this.id] = St.READY;
    this.handOff();
    this.waitTurn();
    if (this.daemon && this.othersFinished()) this.finish();
  }

  /** Every participant but this one has finished (read by the token holder). */
  private othersFinished(): boolean {
    const w = this.w;
    for (let t = 0; t < this.threads; t++) if (t !== this.id && w[W.BASE + t] !== St.FINISHED) return false;
    return true;
  }

  /** Token holder (or the last to attach): chooses the next participant and hands it the token. */
  private handOff(): void {
    const w = this.w;
    const n = this.threads;
    let live = 0;
    for (let t = 0; t < n; t++) if (w[W.BASE + t] !== St.FINISHED) live++;
    if (live === 0) {
      Atomics.store(w, W.TOKEN, TOKEN_DONE);
      Atomics.notify(w, W.TOKEN);
      return;
    }
    // A lone participant runs on without a decision: how often it passes points while the others
    // have finished (a TLBI completion spinning until a finished thread goes idle, say) depends on
    // timing outside the schedule, so it must not move STEP or the generator.
    if (live === 1 && this.id >= 0 && w[W.BASE + this.id] !== St.FINISHED) {
      Atomics.store(w, W.TOKEN, this.id);
      return;
    }
    const step = w[W.STEP] as number;
    let rng = (w[W.RNG] as number) >>> 0;
    rng = xorshift32(rng);
    w[W.RNG] = rng | 0;
    let next = -1;
    if (step < (w[W.REPLAY_LEN] as number)) {
      next = w[this.log + step] as number;
      if (w[W.BASE + next] === St.FINISHED) next = -1; // a replay that no longer fits: fall back
    }
    if (next < 0) {
      if (w[W.STRATEGY] === 1) {
        // A change point at this step demotes the thread that just ran.
        const depth = w[W.DEPTH] as number;
        for (let i = 0; i < depth - 1; i++) {
          if (w[W.BASE + 2 * n + i] === step && this.id >= 0 && w[W.BASE + this.id] !== St.FINISHED) {
            w[W.BASE + n + this.id] = w[W.NEXT_PRIO] as number;
            w[W.NEXT_PRIO] = (w[W.NEXT_PRIO] as number) - 1;
          }
        }
        let best = Number.NEGATIVE_INFINITY;
        for (let t = 0; t < n; t++) {
          if (w[W.BASE + t] === St.FINISHED) continue;
          const p = w[W.BASE + n + t] as number;
          if (p > best) {
            best = p;
            next = t;
          }
        }
      } else {
        let k = rng % live;
        for (let t = 0; t < n; t++) {
          if (w[W.BASE + t] === St.FINISHED) continue;
          if (k-- === 0) {
            next = t;
            break;
          }
        }
      }
    }
    if (step < LOG_CAP) {
      w[this.log + step] = next;
      w[W.LOG_LEN] = step + 1;
    }
    w[W.STEP] = step + 1;
    // Release: pairs with waitTurn()'s Atomics.load of TOKEN in the chosen thread.
    Atomics.store(w, W.TOKEN, next);
    Atomics.notify(w, W.TOKEN);
  }

  /** Waits until this thread holds the token (or the run was abandoned). */
  private waitTurn(): void {
    const w = this.w;
    let since = 0;
    for (;;) {
      // Acquire: pairs with handOff()'s Atomics.store of TOKEN.
      const tok = Atomics.load(w, W.TOKEN);
      if (tok === this.id || Atomics.load(w, W.ABANDONED) !== 0) break;
      Atomics.wait(w, W.TOKEN, tok, 100);
      const now = performance.now();
      if (since === 0) since = now;
      else if (now - since > STALL_MS) {
        // Another participant is stuck outside any labelled point (or its thread died).
        Atomics.store(w, W.ABANDONED, 1);
        Atomics.notify(w, W.TOKEN);
        break;
      }
    }
    w[W.BASE + this.id] = St.RUNNING;
  }

  /** The run's outcome (after every participant finished). */
  summary(seed: number, strategy: ScheduleStrategy): ScheduleSummary {
    const w = this.w;
    const len = w[W.LOG_LEN] as number;
    const schedule = Array.from(w.subarray(this.log, this.log + len));
    let h = 0x811c9dc5;
    for (const t of schedule) h = Math.imul(h ^ t, 0x01000193) >>> 0;
    return {
      seed,
      strategy,
      pctDepth: w[W.DEPTH] as number,
      steps: w[W.STEP] as number,
      schedule,
      scheduleHash: h.toString(16).padStart(8, "0"),
      abandoned: w[W.ABANDONED] !== 0,
    };
  }
}
