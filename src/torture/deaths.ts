/**
 * vCPU deaths on purpose in a torture round (`--deaths RATE`): with probability RATE a round kills
 * one vCPU mid-run, and checks that the VM's death watch recovered everything it held.
 *
 * How it dies (drawn from the round's seed):
 *   - "terminate@POINT" / "exit@POINT": the victim parks at the Nth pass of a race point
 *     (sim/torture-vcpu.ts: inside an RCU read-side section holding mmu_lock for read at
 *     walk.table-entered and pte.before-cas, between break and make at bbm.locked, inside a fault
 *     before mmu_lock at fault.slot-read, holding another vCPU's TLB while it completes a TLBI at
 *     tlbi.servicing) and the host takes the death between two of its own operations: it
 *     terminates the worker, or lets it call process.exit() where it stands;
 *   - "terminate@T ms" (only with `anytime`, `--deaths-anytime`): the host terminates it T ms into
 *     the op mix, wherever it is. Off by default: the gaps it found are fixed and 120 runs since
 *     were clean (RELIABILITY.md), but turning it on would change every seed's death plan.
 * The host takes a death only between its operations, so none of them is blocked behind the dead
 * vCPU's read hold: without recovery (`VmTestOnly.noDeathRecovery`, the negative control) the round
 * then reports a violation instead of hanging.
 *
 * What is checked, each failure a "vcpu death" violation:
 *   - at once (before the host's next operation): the death watch claimed the death, and the dead
 *     vCPU's mmu_lock hold is gone and its fault (if it died inside one) is closed;
 *   - at the end of the phase: the death watch reported it (Vm.deaths() has it) within REAP_MS;
 *   - at teardown (round.ts): nothing holds mmu_lock once every vCPU closed or was reaped,
 *     `recoverLostPages()` runs, then the refcount audit and the leak check as in every round.
 */
import { RacePoint, RACE_POINT_NAMES } from "../common/race-points.js";
import { Rng } from "../common/rng.js";
import { SlotWord } from "../kvm/memslot.js";
import { Rec, VcpuState } from "../kvm/vcpu-record.js";
import type { Vm } from "../kvm/vm.js";
import type { VcpuPool } from "../sim/host.js";
import { DeathKind, DeathState, DeathWord, type VcpuDeathPlan } from "../sim/torture-vcpu.js";
import { Hold } from "../sync/mod.js";
import type { HostMix } from "./host-ops.js";
import type { TortureViolation } from "./round.js";

/** How long the death watch may take to claim, recover and report a death. */
export const REAP_MS = 20_000;

/** Points a victim may park at, and the most passes before it does (bbm.locked is rarer). */
const DEATH_POINTS: readonly [RacePoint, number][] = [
  [RacePoint.WALK_TABLE_ENTERED, 200],
  [RacePoint.BEFORE_CAS, 50],
  [RacePoint.BBM_LOCKED, 4],
  [RacePoint.FAULT_SLOT_READ, 50],
  [RacePoint.TLBI_SERVICING, 3],
];

/** One round's planned death. */
export interface DeathPlan {
  victim: number;
  how: "terminate" | "exit" | "anytime";
  /** Where it parks ("anytime": none). */
  point: RacePoint;
  hit: number;
  /** "anytime": ms into the round. */
  afterMs: number;
  /** DeathWord.WORDS Int32 words (torture-vcpu.ts). */
  ctl: SharedArrayBuffer;
}

/**
 * The round's death, drawn from its seed: null with probability 1 - rate. Parked deaths only,
 * unless `anytime` (then a third of them are "terminate at a random moment").
 */
export function planDeath(rate: number, vcpus: number, seed: number, anytime = false): DeathPlan | null {
  const rng = new Rng(seed ^ 0x1b873593);
  if (!(rng.next() < rate)) return null;
  const [point, most] = DEATH_POINTS[rng.below(DEATH_POINTS.length)] as [RacePoint, number];
  const how = (["terminate", "exit", "anytime"] as const)[rng.below(anytime ? 3 : 2)] as DeathPlan["how"];
  const ctl = new SharedArrayBuffer(DeathWord.WORDS * 4);
  if (how !== "anytime") Atomics.store(new Int32Array(ctl), DeathWord.STATE, DeathState.ARMED);
  return { victim: rng.below(vcpus), how, point, hit: 1 + rng.below(most), afterMs: rng.below(200), ctl };
}

/** The plan's part for vCPU `v`'s command (only the victim, and only for a parked death). */
export function vcpuDeathPlan(plan: DeathPlan | null, v: number): VcpuDeathPlan | null {
  if (plan === null || plan.victim !== v || plan.how === "anytime") return null;
  const kind = plan.how === "exit" ? DeathKind.EXIT : DeathKind.TERMINATE;
  return { ctl: plan.ctl, point: plan.point, hit: plan.hit, kind };
}

/** "vCPU 1 terminate@bbm.locked#3": how a death is named in violations and the op log. */
export function describeDeath(p: DeathPlan): string {
  const where =
    p.how === "anytime" ? `terminate@${p.afterMs}ms` : `${p.how}@${RACE_POINT_NAMES[p.point]}#${p.hit}`;
  return `vCPU ${p.victim} ${where}`;
}

/** The host side of one round's death: takes it between host operations and checks the recovery. */
export class RoundDeaths {
  /** Deaths that happened (0 or 1). */
  deaths = 0;
  private taken = false;
  private ok = true;
  private readonly words: Int32Array;
  /** When the vCPUs started their op mix (every one attached), or -1 before. */
  private t0 = -1;

  constructor(
    private readonly plan: DeathPlan,
    private readonly vm: Vm,
    private readonly pool: VcpuPool,
    private readonly host: HostMix,
    private readonly violations: TortureViolation[],
  ) {
    this.words = new Int32Array(plan.ctl);
  }

  /** The phase started (`t0`: performance.now() then): "anytime" counts from here. */
  begin(t0: number): void {
    this.t0 = t0;
  }

  /**
   * Between two host operations: takes the death if it is due (the victim parked, or its time has
   * come) and waits until the death watch has recovered its lock hold and fault. False once the
   * recovery failed: the host must do no more operations (one could wait for ever).
   */
  async poll(): Promise<boolean> {
    if (this.taken) return this.ok;
    const p = this.plan;
    if (p.how === "anytime") {
      if (this.t0 < 0 || performance.now() - this.t0 < p.afterMs) return true;
    } else {
      // Pairs with the victim's CAS ARMED -> PARKED: it waits, parked, for this or its timeout.
      if (
        Atomics.compareExchange(this.words, DeathWord.STATE, DeathState.PARKED, DeathState.TAKEN) !==
        DeathState.PARKED
      )
        return true;
    }
    this.taken = true;
    this.host.note("vcpu-death", [p.victim, p.how === "exit" ? 1 : 0, p.point, p.hit]);
    if (p.how === "exit") {
      this.pool.expectDeath(p.victim);
      // Pairs with the victim's load of GO: it calls process.exit() where it is parked.
      Atomics.store(this.words, DeathWord.STATE, DeathState.GO);
      Atomics.notify(this.words, DeathWord.STATE);
      await this.pool.exitOf(p.victim);
    } else await this.pool.kill(p.victim);
    this.deaths = 1;
    this.ok = await this.checkReleased();
    return this.ok;
  }

  /**
   * The host does no more operations: a death not taken yet never will be, so the victim must stop
   * parking (each park would cost it PARK_MS for nothing). A park in progress ends at once.
   */
  disarm(): void {
    for (;;) {
      const st = Atomics.load(this.words, DeathWord.STATE);
      if (st !== DeathState.ARMED && st !== DeathState.PARKED) return; // OFF, TAKEN or GO
      // Pairs with the victim's CASes on STATE: exactly one of us moves it.
      if (Atomics.compareExchange(this.words, DeathWord.STATE, st, DeathState.OFF) === st) break;
    }
    Atomics.notify(this.words, DeathWord.STATE);
  }

  /** The death watch has claimed the death and released the hold and the fault (or says it cannot). */
  private async checkReleased(): Promise<boolean> {
    const v = this.plan.victim;
    const records = this.vm.records;
    const slot = records.get(v, Rec.LOCK_SLOT);
    const faultSeq = new Int32Array(this.vm.handle.memslots.buffer);
    const at = SlotWord.FAULT_SEQ_BASE + v * SlotWord.STRIDE;
    const released = () => this.vm.lock.holdOf(slot) === Hold.NONE && (Atomics.load(faultSeq, at) & 1) === 0;
    const start = performance.now();
    // REAPED: the watch is done with it. DEAD with everything released: the rest (the locked
    // entries' repair) waits for the next writer, which is the host's next operation.
    for (;;) {
      const st = records.state(v);
      if (st === VcpuState.REAPED || (st === VcpuState.DEAD && released())) break;
      if (performance.now() - start > REAP_MS) {
        this.fail(`was not claimed by the death watch within ${REAP_MS} ms (state ${st})`);
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const held = this.vm.lock.holdOf(slot);
    if (held !== Hold.NONE) this.fail(`still holds mmu_lock (hold flags ${held}) after its reap`);
    if ((Atomics.load(faultSeq, at) & 1) !== 0) this.fail("left its fault in flight after its reap");
    return held === Hold.NONE && (Atomics.load(faultSeq, at) & 1) === 0;
  }

  /** After the phase: the death watch reported every death taken, and Vm.deaths() lists it. */
  async checkReported(): Promise<void> {
    if (this.deaths === 0) return;
    if (!(await this.pool.untilReaped(this.deaths, REAP_MS))) {
      const errors = this.pool.watchErrors;
      this.fail(
        `was not reported reaped within ${REAP_MS} ms${errors.length > 0 ? `: ${errors.join("; ")}` : ""}`,
      );
      return;
    }
    if (!this.vm.deaths().some((d) => d.vcpu === this.plan.victim))
      this.fail("is missing from Vm.deaths() although the death watch reported it");
  }

  private fail(what: string): void {
    this.violations.push({ checker: "vcpu death", detail: `${describeDeath(this.plan)} ${what}` });
  }
}
