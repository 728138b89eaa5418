/**
 * A vCPU worker that dies mid-fault, terminated or by an uncaught error, inside an RCU read-side
 * section, holding mmu_lock for read, or between break and make: the death watch reaps it while
 * the host is blocked in a synchronous wait, the next writer gets the lock, the locked entry is
 * repaired, the memory cache and the batched strategy's arrays come back, another vCPU keeps
 * faulting, and teardown finds no leak. Each scenario also runs with recovery switched off
 * (VmTestOnly.noDeathRecovery), and its checks must then fail.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { RacePoint } from "../src/common/race-points.js";
import { unreachablePages, type VcpuDeathReport } from "../src/kvm/death.js";
import type { DeathWatch } from "../src/kvm/death-watch.js";
import type { RcuFlavor } from "../src/kvm/reclaim/rcu-glue.js";
import { STRATEGIES, type StrategyName } from "../src/kvm/reclaim/strategy.js";
import { Rng, seedFromEnv } from "../src/common/rng.js";
import { Vm, type VmOptions } from "../src/kvm/vm.js";
import { StallWhat } from "../src/rcu/layout.js";
import { Rcu, type RcuStallReport } from "../src/rcu/mod.js";
import { auditTree } from "../src/testing/mod.js";
import type { DeathKind, DeathVcpuCommand, DeathVcpuData, DeathVcpuReply } from "./vcpu-death-worker.js";

const MB = 2 ** 20;
const PAGE = 4096;

/** A death-test vCPU in a worker, driven one command at a time. */
class Vcpu {
  readonly worker: Worker;
  private readonly inbox: DeathVcpuReply[] = [];
  private waiter: (() => void) | null = null;
  error: Error | null = null;

  constructor(vm: Vm, watch: DeathWatch, vcpu: number) {
    const deathPort = watch.portFor(vcpu);
    const data: DeathVcpuData = { vm: vm.handle, vcpu, deathPort };
    this.worker = new Worker(new URL("./vcpu-death-worker.js", import.meta.url), {
      workerData: data,
      transferList: [deathPort],
    });
    // The old way, on this thread's event loop: it cannot help while this thread is blocked.
    vm.rcu.watch(this.worker);
    this.worker.on("message", (m: DeathVcpuReply) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    this.worker.on("error", (e) => {
      this.error = e;
      this.waiter?.();
    });
  }

  async next(): Promise<DeathVcpuReply> {
    while (this.inbox.length === 0) {
      if (this.error) throw this.error;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
      this.waiter = null;
    }
    return this.inbox.shift() as DeathVcpuReply;
  }

  async run(cmd: DeathVcpuCommand): Promise<number> {
    this.worker.postMessage(cmd);
    const r = await this.next();
    if ("closed" in r) return 0;
    if (!("result" in r)) throw new Error(`expected a result, got ${JSON.stringify(r)}`);
    return r.result;
  }
}

/** A VM with the MMU model and its death watch, ready. */
async function mmuDeathVm(recovery: boolean): Promise<{ vm: Vm; watch: DeathWatch }> {
  const vm = await deathVm(recovery, { mmu: true });
  const watch = vm.watchDeaths();
  await watch.ready;
  return { vm, watch };
}

/** Terminates a victim stopped where it died, and waits until the death watch has reaped it. */
async function terminateAndReap(victim: Vcpu, watch: DeathWatch): Promise<void> {
  const exited = new Promise((resolve) => victim.worker.once("exit", resolve));
  void victim.worker.terminate();
  await exited;
  await watch.untilDeaths(1);
}

/** Where the victim dies. */
type Where = "read-side" | "read-lock" | "bbm";

interface Scenario {
  where: Where;
  kind: DeathKind;
  recovery: boolean;
  strategy?: StrategyName;
  rcuFlavor?: RcuFlavor;
}

/** What a scenario observed; `check()` says whether that is a full recovery. */
interface Outcome {
  scenario: Scenario;
  report: VcpuDeathReport | undefined;
  /** The other vCPU's faults over the dead one's address afterwards (0 = all mapped). */
  survivor: number;
  lock: { readers: number; waitingReaders: number; writeLocked: boolean };
  lockedEntries: number;
  auditProblems: string[];
  /** Allocated pages no table reaches after everything else was drained. */
  leaked: number;
  /** Pages recoverLostPages() had to free: what the victim held in its hands, listed nowhere. */
  lost: number;
  doubleFrees: number;
}

/** The address each scenario dies at (a fresh 2 MiB region: a new level-3 table is made there). */
const DEATH_IPA = 8 * MB;

/** The death tests' VM: 2 vCPUs, 64 MiB of 4K pages, debug pool; recovery off for the controls. */
function deathVm(recovery: boolean, more: Partial<VmOptions> = {}): Promise<Vm> {
  return Vm.create({
    granule: PAGE,
    iaBits: 36,
    poolPages: 2048,
    mode: "shared",
    vcpus: 2,
    debug: true,
    memslots: [{ ipa: 0, size: 64 * MB, backing: "anonymous" }],
    testOnly: recovery ? {} : { noDeathRecovery: true },
    ...more,
  });
}

async function runScenario(s: Scenario): Promise<Outcome> {
  const vm = await deathVm(s.recovery, {
    // The open array stays open until the death: its subtree must come back through the reaper.
    reclaim: { strategy: s.strategy ?? "batched", batchMaxAgeMs: 1e9 },
    rcuFlavor: s.rcuFlavor ?? "mb",
  });
  const watch = vm.watchDeaths();
  await watch.ready;
  const victim = new Vcpu(vm, watch, 0);
  const survivor = new Vcpu(vm, watch, 1);
  // Fill the memory cache, build tables, and collapse one into a block: a deferred subtree.
  assert.equal(await victim.run({ op: "touch", start: 0, size: 16 * PAGE, write: true }), 0);
  assert.equal(await victim.run({ op: "touch", start: 2 * MB, size: 16 * PAGE, write: true }), 0);
  assert.equal(await victim.run({ op: "collapse", ipa: 2 * MB, size: 2 * MB }), 0);

  if (s.where === "read-side") victim.worker.postMessage({ op: "dieInReadSide", kind: s.kind });
  else {
    const point = s.where === "bbm" ? RacePoint.BBM_LOCKED : RacePoint.WALK_TABLE_ENTERED;
    assert.equal(await victim.run({ op: "arm", point, kind: s.kind }), 0);
    victim.worker.postMessage({ op: "touch", start: DEATH_IPA, size: PAGE, write: true });
  }
  // Not events.once(): it would reject on the worker's 'error' event, which a throw emits first.
  const exited = new Promise((resolve) => victim.worker.once("exit", resolve));
  if (s.kind === "terminate") {
    const r = await victim.next();
    assert.ok("stopped" in r, `victim stopped: ${JSON.stringify(r)}`);
    void victim.worker.terminate();
  } else await assert.rejects(victim.next(), /injected death/);
  if (s.recovery) {
    // Blocked in synchronous waits, with no event-loop turn: only the death watch can free them.
    vm.unmap(32 * MB, 2 * MB);
    vm.rcu.synchronize();
  }
  await exited;
  const [report] = await watch.untilDeaths(1);
  const survivorRet = await survivor.run({ op: "touch", start: DEATH_IPA, size: 16 * PAGE, write: true });
  await survivor.run({ op: "close" });
  await watch.close();
  const snap = vm.lock.snapshot();
  const audit = auditTree(vm.pgt);
  const outcome: Omit<Outcome, "leaked" | "lost" | "doubleFrees"> = {
    scenario: s,
    report,
    survivor: survivorRet,
    lock: { readers: snap.readers, waitingReaders: snap.waitingReaders, writeLocked: snap.writeLocked },
    lockedEntries: audit.problems.filter((p) => p.includes("left locked")).length,
    auditProblems: audit.problems,
  };
  if (s.recovery) {
    const lost = vm.recoverLostPages().length;
    const d = await vm.destroy();
    return { ...outcome, lost, leaked: d.leakedPages.length, doubleFrees: vm.pool.stats().doubleFrees };
  }
  // Recovery off: the dead reader may still hold mmu_lock, so destroy() would wait for ever.
  // Count what nothing reaches once every callback has run and the host caches are empty.
  vm.rcu.barrier();
  vm.host.memcache.drain();
  const leaked = unreachablePages(vm.pgt).length;
  const doubleFrees = vm.pool.stats().doubleFrees;
  await vm.rcu.close();
  return { ...outcome, lost: 0, leaked, doubleFrees };
}

/**
 * Whether the victim held mmu_lock for read when it died. Terminated under the lock, it did. A
 * throw at the first table entered kills it in touch()'s software translation, which holds the
 * read lock with no finally; a throw between break and make is in the fault handler, whose
 * finally drops the lock (the locked entry stays).
 */
function heldAtDeath(s: Scenario): boolean {
  return s.where === "read-lock" || (s.where === "bbm" && s.kind === "terminate");
}

/** A full recovery: every check of the file comment. */
function check(o: Outcome): void {
  const { scenario: s, report } = o;
  const what = JSON.stringify(s);
  assert.ok(report, `${what}: the death is reported`);
  assert.equal(report.vcpu, 0);
  const expectLock = heldAtDeath(s) ? "read" : "none";
  assert.equal(report.lock, expectLock, `${what}: lock hold at death`);
  assert.ok(report.memcachePages > 0, `${what}: memory-cache pages given back`);
  if ((s.strategy ?? "batched") === "batched") {
    assert.ok(report.subtreesQueued >= 1, `${what}: the open array's subtree queued`);
    assert.ok(report.arrayPages >= 1, `${what}: array pages freed`);
  }
  if (s.where === "bbm") {
    assert.equal(report.lockedEntries, 1, `${what}: one entry left locked and repaired`);
    assert.equal(report.firstLockedIpa, DEATH_IPA, `${what}: at the IPA it died at`);
  }
  assert.deepEqual(o.lock, { readers: 0, waitingReaders: 0, writeLocked: false }, `${what}: mmu_lock free`);
  assert.equal(o.lockedEntries, 0, `${what}: nothing left locked`);
  assert.deepEqual(o.auditProblems, [], `${what}: audit clean`);
  assert.equal(o.survivor, 0, `${what}: another vCPU maps the dead one's address`);
  assert.equal(o.leaked, 0, `${what}: no page leaked`);
  // Between break and make the new level-3 table was in the victim's hands, listed nowhere: the
  // one page the last resort finds. Everything else came back through the death watch.
  assert.equal(o.lost, s.where === "bbm" ? 1 : 0, `${what}: pages only the quiescent sweep found`);
  assert.equal(o.doubleFrees, 0, `${what}: no page freed twice`);
}

for (const where of ["read-side", "read-lock", "bbm"] as const) {
  for (const kind of ["terminate", "throw"] as const) {
    test(
      `a vCPU that dies (${kind}) ${where === "read-side" ? "in an RCU read-side section" : where === "bbm" ? "between break and make" : "holding mmu_lock for read"} is recovered`,
      {
        timeout: 60_000,
      },
      async () => {
        check(await runScenario({ where, kind, recovery: true }));
      },
    );
    test(
      `negative control: without recovery the ${where} ${kind} death leaves something behind`,
      {
        timeout: 60_000,
      },
      async () => {
        const o = await runScenario({ where, kind, recovery: false });
        assert.throws(() => check(o), assert.AssertionError);
        // And for the reasons each recovery exists, not only an empty report.
        assert.ok(o.leaked > 0, "the memory cache (and any array) is lost");
        if (heldAtDeath(o.scenario)) assert.equal(o.lock.readers, 1, "the dead read hold stays");
        if (where === "bbm") {
          assert.equal(o.lockedEntries, 1, "the entry stays locked");
          assert.notEqual(o.survivor, 0, "another vCPU cannot fault the address in");
        }
      },
    );
  }
}

test(
  "a vCPU terminated between break and make under per-subtree reclaim is recovered",
  { timeout: 60_000 },
  async () => {
    check(await runScenario({ where: "bbm", kind: "terminate", recovery: true, strategy: "per-subtree" }));
  },
);

test(
  "randomized deaths: where, how, strategy and RCU flavor drawn from a seed",
  { timeout: 120_000 },
  async () => {
    const seed = seedFromEnv();
    console.log(`# vCPU deaths: seed ${seed} (replay: STAGE2_SEED=${seed})`);
    const rng = new Rng(seed);
    const wheres: Where[] = ["read-side", "read-lock", "bbm"];
    const kinds: DeathKind[] = ["terminate", "throw"];
    for (let i = 0; i < 2; i++) {
      const s: Scenario = {
        where: wheres[rng.below(wheres.length)] as Where,
        kind: kinds[rng.below(kinds.length)] as DeathKind,
        recovery: true,
        strategy: STRATEGIES[rng.below(STRATEGIES.length)] as StrategyName,
        rcuFlavor: rng.below(2) === 0 ? "mb" : "qsbr",
      };
      try {
        check(await runScenario(s));
      } catch (e) {
        throw new Error(`seed ${seed}, scenario ${JSON.stringify(s)}: ${(e as Error).message}`);
      }
    }
  },
);

test(
  "two vCPUs terminated holding mmu_lock for read are both reaped while the host waits",
  { timeout: 60_000 },
  async () => {
    const vm = await Vm.create({
      granule: PAGE,
      iaBits: 36,
      poolPages: 2048,
      mode: "shared",
      vcpus: 2,
      debug: true,
      memslots: [{ ipa: 0, size: 64 * MB, backing: "anonymous" }],
    });
    const watch = vm.watchDeaths();
    await watch.ready;
    const vcpus = [new Vcpu(vm, watch, 0), new Vcpu(vm, watch, 1)];
    for (const [i, v] of vcpus.entries()) {
      assert.equal(await v.run({ op: "arm", point: RacePoint.WALK_TABLE_ENTERED, kind: "terminate" }), 0);
      v.worker.postMessage({ op: "touch", start: i * 4 * MB, size: PAGE, write: true });
      assert.ok("stopped" in (await v.next()));
    }
    assert.equal(vm.lock.snapshot().readers, 2);
    const exits = vcpus.map((v) => new Promise((resolve) => v.worker.once("exit", resolve)));
    for (const v of vcpus) void v.worker.terminate();
    // Blocked until both dead holds are gone: the watch must not wait for the lock on one reap
    // while the other reap, queued behind it on the same thread, is what would free it.
    vm.unmap(32 * MB, 2 * MB);
    await Promise.all(exits);
    const deaths = await watch.untilDeaths(2);
    assert.deepEqual(deaths.map((d) => d.lock).sort(), ["read", "read"]);
    await watch.close();
    assert.deepEqual(vm.lock.snapshot(), {
      readers: 0,
      waitingReaders: 0,
      waitingWriters: 0,
      writerDraining: false,
      writeLocked: false,
      ownerDead: false,
    });
    vm.recoverLostPages();
    assert.deepEqual((await vm.destroy()).leakedPages, []);
  },
);

test("the RCU domain's stall handler hears of a reaped vCPU death", { timeout: 60_000 }, async () => {
  const vm = await Vm.create({
    granule: PAGE,
    iaBits: 36,
    poolPages: 2048,
    mode: "shared",
    vcpus: 1,
    debug: true,
    memslots: [{ ipa: 0, size: 64 * MB, backing: "anonymous" }],
  });
  // This thread becomes the domain's handler thread: the death watch's report reaches it here.
  const rcu = Rcu.attach(vm.rcu.handle.rcu);
  const reports: RcuStallReport[] = [];
  rcu.onStall = (r) => reports.push(r);
  const watch = vm.watchDeaths();
  await watch.ready;
  const v = new Vcpu(vm, watch, 0);
  assert.equal(await v.run({ op: "arm", point: RacePoint.WALK_TABLE_ENTERED, kind: "terminate" }), 0);
  v.worker.postMessage({ op: "touch", start: 0, size: PAGE, write: true });
  assert.ok("stopped" in (await v.next()));
  const tid = v.worker.threadId;
  await v.worker.terminate();
  await watch.untilDeaths(1);
  for (let i = 0; i < 500 && !reports.some((r) => r.what === StallWhat.DIED); i++)
    await new Promise((resolve) => setTimeout(resolve, 10));
  const died = reports.find((r) => r.what === StallWhat.DIED);
  assert.ok(died, `no death report reached the handler: ${JSON.stringify(reports)}`);
  assert.equal(died.threadId, tid);
  assert.match(died.message, new RegExp(`thread ${tid} died while registered and was reaped`));
  rcu.onStall = null;
  await watch.close();
  vm.recoverLostPages();
  assert.deepEqual((await vm.destroy()).leakedPages, []);
});

test(
  "a vCPU terminated inside a guest access (MMU model) holds up no TLB invalidation once reaped",
  { timeout: 90_000 },
  async () => {
    for (const recovery of [true, false]) {
      const { vm, watch } = await mmuDeathVm(recovery);
      const victim = new Vcpu(vm, watch, 0);
      assert.equal(await victim.run({ op: "touch", start: 0, size: 16 * PAGE, write: true }), 0);
      victim.worker.postMessage({ op: "dieInAccess", ipa: 0 });
      const r = await victim.next();
      assert.ok("stopped" in r, `victim stopped: ${JSON.stringify(r)}`);
      await terminateAndReap(victim, watch);
      // The unmap posts a TLBI that every vCPU must acknowledge, the dead one included.
      if (recovery) {
        vm.unmap(0, 2 * MB);
        await watch.close();
        assert.deepEqual((await vm.destroy()).leakedPages, []);
      } else {
        // Negative control: nobody acknowledges for the dead vCPU; the poster gives up (10 s).
        assert.throws(() => vm.unmap(0, 2 * MB), /not acknowledged by vCPU 0/);
        await watch.close();
        await vm.rcu.close();
      }
    }
  },
);

test(
  "a vCPU terminated while it drains another vCPU's TLB ring as a TLBI poster locks that vCPU out only until it is reaped",
  { timeout: 90_000 },
  async () => {
    for (const recovery of [true, false]) {
      const { vm, watch } = await mmuDeathVm(recovery);
      const other = new Vcpu(vm, watch, 0);
      const victim = new Vcpu(vm, watch, 1);
      assert.equal(await other.run({ op: "touch", start: 0, size: 16 * PAGE, write: true }), 0);
      // A populated 2 MiB region: its collapse unlinks the level-3 table and posts a TLBI, which
      // the victim completes by draining the idle vCPU 0's ring itself, and dies in there.
      assert.equal(await victim.run({ op: "touch", start: DEATH_IPA, size: 2 * MB, write: true }), 0);
      assert.equal(await victim.run({ op: "arm", point: RacePoint.TLBI_SERVICING, kind: "terminate" }), 0);
      victim.worker.postMessage({ op: "collapse", ipa: DEATH_IPA, size: 2 * MB });
      const r = await victim.next();
      assert.deepEqual(r, { stopped: String(RacePoint.TLBI_SERVICING) });
      await terminateAndReap(victim, watch);
      if (recovery) {
        // vCPU 0 enters the guest again, and the TLBI its dead servicer left unacknowledged for it
        // completes: the host's next invalidation does not wait.
        assert.equal(await other.run({ op: "touch", start: 16 * PAGE, size: 16 * PAGE, write: true }), 0);
        vm.unmap(0, 2 * MB);
        assert.equal(await other.run({ op: "close" }), 0);
        await watch.close();
        assert.deepEqual(auditTree(vm.pgt).problems, []);
        // The victim died between break and make: the level-3 table it was replacing (its entry
        // now locked, then zapped by the repair) was in its hands, listed nowhere; the last
        // resort finds that one page. Nothing else is lost.
        assert.equal(vm.recoverLostPages().length, 1);
        assert.deepEqual((await vm.destroy()).leakedPages, []);
      } else {
        // Negative control: vCPU 0 can never enter again; it gives up after 10 s, naming vCPU 1.
        await assert.rejects(
          other.run({ op: "touch", start: 16 * PAGE, size: 16 * PAGE, write: true }),
          /vCPU 0 cannot enter the guest: vCPU 1 has held its TLB/,
        );
        await watch.close();
        await vm.rcu.close();
      }
    }
  },
);
