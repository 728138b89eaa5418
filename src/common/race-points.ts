/**
 * Labelled race points: places where a delay widens a race window, for stress and torture runs.
 *
 * Code calls `racePoint(RacePoint.X)` at the labelled spot. By default `raceDelayEnabled` is false
 * and the call is one well-predicted branch. A test or torture run calls `setRaceDelays()` in a
 * thread to make chosen points spin for a pseudo-random number of iterations drawn from a seeded
 * generator (xorshift32), so a run can be replayed from its seed. State is per thread (module
 * variables are thread-local in worker_threads).
 */
import { XORSHIFT_ZERO_SEED, xorshift32, xorshiftSeed } from "./rng.js";

/** The labelled windows where an injected delay exposes a race. */
export const enum RacePoint {
  /** A walker has just entered a table page (it holds a pointer that may be unlinked now). */
  WALK_TABLE_ENTERED = 0,
  /** Between the break (locked marker) and the make of break-before-make. */
  BBM_LOCKED = 1,
  /** An unlinked subtree is about to be handed to the reclaim strategy. */
  RECLAIM_UNLINKED = 2,
  /** A reclaim callback is about to free pages. */
  RECLAIM_FREE = 3,
  /** A fault has read its memslot (logging state, mapping size) and not yet taken mmu_lock. */
  FAULT_SLOT_READ = 4,
  COUNT = 5,
}

/** Printable names of the race points, indexed by RacePoint. */
export const RACE_POINT_NAMES: readonly string[] = [
  "walk.table-entered",
  "bbm.locked",
  "reclaim.unlinked",
  "reclaim.free",
  "fault.slot-read",
];

/** Whether any delay is enabled in this thread (racePoint() returns at once when not). */
export let raceDelayEnabled = false;
const maxSpins = new Int32Array(RacePoint.COUNT);
let rng = XORSHIFT_ZERO_SEED;
let sink = 0;

/** Enables delays of up to `spins[point]` iterations at each point, drawn from `seed`. */
export function setRaceDelays(spins: Partial<Record<RacePoint, number>>, seed: number): void {
  maxSpins.fill(0);
  for (const [k, v] of Object.entries(spins)) maxSpins[Number(k)] = v ?? 0;
  rng = xorshiftSeed(seed);
  raceDelayEnabled = hook !== null || maxSpins.some((v) => v > 0);
}

/** Disables every race-point delay in this thread. */
export function clearRaceDelays(): void {
  maxSpins.fill(0);
  raceDelayEnabled = hook !== null;
}

/** A function run at every race point of this thread (deterministic race tests), before any delay. */
export type RaceHook = (point: RacePoint) => void;
let hook: RaceHook | null = null;

/**
 * Installs (or with null removes) this thread's race hook. A deterministic test uses it to stop a
 * thread inside a window and let another thread act there.
 */
export function setRaceHook(h: RaceHook | null): void {
  hook = h;
  raceDelayEnabled = h !== null || maxSpins.some((v) => v > 0);
}

function next(): number {
  rng = xorshift32(rng);
  return rng;
}

/** Spins at `point` if delays are enabled for it. */
export function racePoint(point: RacePoint): void {
  if (!raceDelayEnabled) return;
  if (hook !== null) hook(point);
  const max = maxSpins[point] as number;
  if (max <= 0) return;
  const n = next() % (max + 1);
  for (let i = 0; i < n; i++) sink = (sink + i) | 0;
}

/** Parses "walk.table-entered=2000,bbm.locked=500" into a spins map (throws RangeError on unknown names). */
export function parseRaceDelays(text: string): Partial<Record<RacePoint, number>> {
  const out: Partial<Record<RacePoint, number>> = {};
  for (const part of text.split(",").filter((p) => p.trim() !== "")) {
    const [name, value] = part.split("=");
    const idx = RACE_POINT_NAMES.indexOf((name ?? "").trim());
    const spins = Number(value);
    if (idx < 0) throw new RangeError(`Unknown race point "${name}": use ${RACE_POINT_NAMES.join(", ")}`);
    if (!Number.isInteger(spins) || spins < 0)
      throw new RangeError(`Race point ${name}: "${value}" is not a spin count`);
    out[idx as RacePoint] = spins;
  }
  return out;
}
