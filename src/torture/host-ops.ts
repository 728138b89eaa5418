/**
 * The host side of a torture round: while the vCPUs run their op mix, the host thread draws
 * operations from a seeded mix and applies them to the VM under the write lock, as KVM's ioctls
 * and MMU notifiers would: unmaps (MMU notifier), write-protects, dirty logging on (with or without
 * manual protect, with or without eager splitting) and off, dirty-log get and clear, access
 * tracking (test-and-clear-young), and memslot changes (a slot moving between two addresses, or
 * deleted and created again). Every operation goes into the round's op log.
 *
 * The host keeps its own idea of each slot's state (logging, manual protect, where the moving slot
 * is), so every call is legal: a host operation that throws is a violation, ENOMEM included (no
 * host operation may fail for want of pages: eager splitting is best effort, as in Linux). An
 * eager split that stopped early for want of tables (failures injected) is counted in `nomem`
 * and marked in the op log; logging is on all the same.
 */
import type { Rng } from "../common/rng.js";
import type { VmHost } from "../kvm/host.js";
import type { MemslotSpec } from "../kvm/memslot.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Where the round's memory lives: two fixed slots and one that moves. */
export const LAYOUT = {
  /**
   * Slot 0: 4 KiB pages over a whole 1 GiB (so that a collapse may install a 1 GiB block and
   * unlink a deep subtree); the vCPUs touch its first `mainWindow` bytes.
   */
  main: { ipa: GIB, size: GIB, hostPa: 0x40_0000_0000, backing: "anonymous" } satisfies MemslotSpec,
  mainWindow: 16 * MIB,
  /**
   * Slot 1: transparent huge pages, the slot dirty logging watches: faults map 2 MiB blocks,
   * logging splits them (eagerly or by write faults), and after logging they collapse again.
   */
  thp: {
    ipa: 2 * GIB,
    size: 16 * MIB,
    hostPa: 0x80_0000_0000,
    backing: "anonymous_thp",
  } satisfies MemslotSpec,
  /** Slot 2: 4 KiB pages, moved between two places or deleted and re-created. */
  moving: {
    ipa: 2 * GIB + 64 * MIB,
    size: 8 * MIB,
    hostPa: 0x80_0400_0000,
    backing: "anonymous",
  } satisfies MemslotSpec,
  /** The moving slot's other place. */
  movedIpa: 2 * GIB + 128 * MIB,
} as const;

const LOGGED_SLOT = 1;

/** One line of the op log. */
export interface HostOpRecord {
  /** ms since the round started. */
  t: number;
  op: string;
  args: number[];
  /** Set when an eager split stopped early for want of tables (the operation itself succeeded). */
  nomem?: true;
}

/** Host operation kinds, in the order of `HOST_OP_NAMES`. */
export const HOST_OP_NAMES = [
  "unmap",
  "wrprotect",
  "dirty-log-enable",
  "dirty-log-disable",
  "dirty-log-get",
  "dirty-log-clear",
  "test-clear-young",
  "memslot-move",
  "memslot-recreate",
] as const;
export type HostOpName = (typeof HOST_OP_NAMES)[number];

/**
 * What the host mix calls: a VM (`Vm`, on the thread that created it) or a host view attached in
 * another thread (`attachHost`, the host participant of a controlled round).
 */
export type HostTarget = Pick<
  VmHost,
  | "unmap"
  | "wrprotect"
  | "testClearYoung"
  | "enableDirtyLogging"
  | "disableDirtyLogging"
  | "getDirtyLog"
  | "clearDirtyLog"
  | "createMemslot"
  | "deleteMemslot"
  | "moveMemslot"
>;

/** The host's view of the VM while a round runs. */
export class HostMix {
  readonly log: HostOpRecord[] = [];
  readonly counts: Record<string, number> = {};
  /** Eager splits that stopped early for want of tables. */
  nomem = 0;
  private logging = false;
  private manual = false;
  private movingId = 2;
  private movingAt: number = LAYOUT.moving.ipa;
  private readonly t0 = performance.now();
  /** Log lines that are events, not host operations (a vCPU death). */
  private notes = 0;

  constructor(
    private readonly vm: HostTarget,
    private readonly rng: Rng,
    private readonly granule: number,
  ) {}

  /** One operation drawn from the mix (throws what the VM throws). */
  step(): void {
    const rng = this.rng;
    const main = rng.below(2) === 0;
    const base = main ? LAYOUT.main.ipa : LAYOUT.thp.ipa;
    const chunk = base + rng.below((main ? LAYOUT.mainWindow : LAYOUT.thp.size) / (2 * MIB)) * 2 * MIB;
    const dice = rng.below(100);
    if (dice < 30) this.run("unmap", [chunk, 2 * MIB], () => this.vm.unmap(chunk, 2 * MIB));
    else if (dice < 45) this.run("wrprotect", [chunk, 2 * MIB], () => this.vm.wrprotect(chunk, 2 * MIB));
    else if (dice < 60)
      this.run("test-clear-young", [chunk, 2 * MIB], () => this.vm.testClearYoung(chunk, 2 * MIB));
    else if (dice < 85) this.dirtyLogOp();
    else this.memslotOp();
  }

  private dirtyLogOp(): void {
    const rng = this.rng;
    if (!this.logging) {
      const manual = rng.below(2) === 0;
      const eager = rng.below(2) === 0 ? 2 * MIB : 0;
      this.logging = true;
      this.manual = manual;
      let partial = false;
      const rec = this.run("dirty-log-enable", [LOGGED_SLOT, manual ? 1 : 0, eager], () => {
        partial = !this.vm.enableDirtyLogging(LOGGED_SLOT, { manualProtect: manual, eagerSplitChunk: eager })
          .splitComplete;
      });
      // The eager split ran out of tables: logging is on all the same, faults split the rest.
      if (partial) {
        rec.nomem = true;
        this.nomem++;
      }
      return;
    }
    const dice = rng.below(10);
    if (dice < 2) {
      this.logging = false;
      this.run("dirty-log-disable", [LOGGED_SLOT], () => this.vm.disableDirtyLogging(LOGGED_SLOT));
    } else if (dice < 6 || !this.manual)
      this.run("dirty-log-get", [LOGGED_SLOT], () => this.vm.getDirtyLog(LOGGED_SLOT));
    else {
      const pages = LAYOUT.thp.size / this.granule;
      const first = rng.below(pages / 64) * 64;
      const n = Math.min(pages - first, 64 * (1 + rng.below(8)));
      this.run("dirty-log-clear", [LOGGED_SLOT, first, n], () =>
        this.vm.clearDirtyLog(LOGGED_SLOT, first, n),
      );
    }
  }

  private memslotOp(): void {
    if (this.rng.below(2) === 0) {
      const to = this.movingAt === LAYOUT.moving.ipa ? LAYOUT.movedIpa : LAYOUT.moving.ipa;
      this.run("memslot-move", [this.movingId, to], () => this.vm.moveMemslot(this.movingId, to));
      this.movingAt = to;
    } else {
      const spec = { ...LAYOUT.moving, ipa: this.movingAt };
      this.run("memslot-recreate", [this.movingId, this.movingAt], () => {
        this.vm.deleteMemslot(this.movingId);
        this.movingId = this.vm.createMemslot(spec);
      });
    }
  }

  private run(op: HostOpName, args: number[], fn: () => unknown): HostOpRecord {
    const rec: HostOpRecord = { t: Math.round((performance.now() - this.t0) * 1000) / 1000, op, args };
    this.log.push(rec);
    this.counts[op] = (this.counts[op] ?? 0) + 1;
    fn();
    return rec;
  }

  /** Notes an event that is not a host operation (a vCPU death) in the op log, in time order. */
  note(op: string, args: number[]): void {
    this.log.push({ t: Math.round((performance.now() - this.t0) * 1000) / 1000, op, args });
    this.notes++;
  }

  /** Host operations so far. */
  get ops(): number {
    return this.log.length - this.notes;
  }
}
