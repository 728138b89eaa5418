/**
 * The host side of a run: spawns one worker per vCPU, runs phases on all of them at once, and
 * closes them. Every phase waits for every vCPU; a worker error or exit fails the phase.
 *
 * A death watch (src/kvm/death-watch.ts) holds one end of a channel per vCPU worker; the worker
 * holds the other in its workerData. A vCPU that dies (crashes, is terminated) is reaped on the
 * watch's thread, whatever this thread is doing: its mmu_lock hold, RCU slot, locked entries,
 * memory cache and deferred reclaim come back, and its report lands in `deaths`.
 *
 * Deaths on purpose (the torture's): `kill(v)` terminates vCPU v, `expectDeath(v)` announces one
 * that will end by itself. Either way its exit fails no phase: the phase goes on with the others
 * (its reply is missing from `replies`), and later phases and `close()` leave it out.
 */
import { Worker } from "node:worker_threads";
import type { TraceBufferHandle } from "../common/trace.js";
import type { VcpuDeathReport } from "../kvm/death.js";
import type { DeathWatch } from "../kvm/death-watch.js";
import type { Vm } from "../kvm/vm.js";
import { Go, type VcpuCommand, type VcpuReply } from "./protocol.js";

/** The replies of one phase and its wall time. */
export interface PhaseResult {
  /** From the first vCPU's start to the last vCPU's end. */
  wallMs: number;
  replies: Extract<VcpuReply, { type: "done" }>[];
}

/** The host's vCPU threads: one worker per vCPU of `vm`, driven phase by phase. */
export class VcpuPool {
  private readonly workers: Worker[] = [];
  private readonly go = new Int32Array(new SharedArrayBuffer(Go.WORDS * 4));
  private phase = 0;
  /** Why each vCPU's worker is gone (null while it runs): a later phase fails at once with it. */
  private readonly gone: (string | null)[] = [];
  private readonly watch: DeathWatch;
  private watchClosed: Promise<void> | null = null;
  /** vCPUs whose death is expected (kill(), expectDeath()): their exit fails nothing. */
  private readonly mayDie = new Set<number>();
  /** Exited workers, by vCPU; each resolves its `exits` entry. */
  private readonly exited: boolean[] = [];
  private readonly exits: Promise<void>[] = [];

  /** `trace`: rings where vCPU i records into slot i (`--trace`), or none. */
  constructor(vm: Vm, trace: TraceBufferHandle | null = null) {
    const url = new URL("./vcpu-worker.js", import.meta.url);
    this.watch = vm.watchDeaths();
    for (let vcpu = 0; vcpu < vm.options.vcpus; vcpu++) {
      const deathPort = this.watch.portFor(vcpu);
      const worker = new Worker(url, {
        workerData: { vm: vm.handle, vcpu, go: this.go.buffer, trace, deathPort },
        transferList: [deathPort],
      });
      // A vCPU that dies inside a read-side section must not stall grace periods forever.
      vm.rcu.watch(worker);
      // Permanent listeners: an error with no listener would kill the process, and a worker that
      // dies between phases must fail the next phase instead of leaving it waiting.
      this.gone.push(null);
      worker.on("error", (e) => {
        this.gone[vcpu] ??= `vCPU ${vcpu} crashed: ${e.message}`;
      });
      this.exited.push(false);
      this.exits.push(
        new Promise((resolve) =>
          worker.on("exit", (code) => {
            this.exited[vcpu] = true;
            if (!this.mayDie.has(vcpu)) this.gone[vcpu] ??= `vCPU ${vcpu} exited with code ${code}`;
            resolve();
          }),
        ),
      );
      this.workers.push(worker);
    }
  }

  get threadIds(): number[] {
    return this.workers.map((w) => w.threadId);
  }

  /**
   * Announces that vCPU `vcpu` may end by itself (a crash on purpose): its exit fails no phase and
   * later phases leave it out. Call it before the death can happen.
   */
  expectDeath(vcpu: number): void {
    this.mayDie.add(vcpu);
  }

  /** Terminates vCPU `vcpu` on purpose (see expectDeath); resolves once its worker has exited. */
  async kill(vcpu: number): Promise<void> {
    this.mayDie.add(vcpu);
    await this.workers[vcpu]?.terminate();
    await this.exits[vcpu];
  }

  /** Resolves once vCPU `vcpu`'s worker has exited (however it ended). */
  exitOf(vcpu: number): Promise<void> {
    return this.exits[vcpu] ?? Promise.resolve();
  }

  /**
   * Waits until the death watch has reported `n` deaths in all: true, or false after `ms` (a
   * death not reaped) or when a reap failed (`watchErrors`).
   */
  async untilReaped(n: number, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const reaped = this.watch.untilDeaths(n).then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([reaped, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Errors of the death watch's reaps (a reap that threw), as messages. */
  get watchErrors(): readonly string[] {
    return this.watch.errors;
  }

  /** A vCPU that ended on purpose and is gone: phases and close() leave it out. */
  private isDeadOnPurpose(vcpu: number): boolean {
    return this.mayDie.has(vcpu) && this.exited[vcpu] === true;
  }

  /** Sends `commands[i]` to vCPU i, starts them together, and waits for all replies. */
  async runPhase(commands: VcpuCommand[]): Promise<PhaseResult> {
    const { done } = this.startPhase(commands);
    return done;
  }

  /**
   * Sends `commands[i]` to vCPU i and starts them together once all are ready. `started` resolves
   * with the time (performance.now()) the host released them; `done` once every vCPU replied.
   * A phase whose workers run until told to stop through shared memory (memstress) runs the host's
   * script between the two.
   */
  startPhase(commands: VcpuCommand[]): { started: Promise<number>; done: Promise<PhaseResult> } {
    const ready = this.collect("ready");
    const replies = this.collect("done");
    // If a worker fails before it is ready, `ready` rejects and `done` is never awaited.
    replies.catch(() => {});
    for (const [i, w] of this.workers.entries()) if (!this.isDeadOnPurpose(i)) w.postMessage(commands[i]);
    const started = ready.then(() => {
      this.phase++;
      const t = performance.now();
      // Pairs with waitForGo() in the workers.
      Atomics.store(this.go, Go.PHASE, this.phase);
      Atomics.notify(this.go, Go.PHASE);
      return t;
    });
    const done = started.then(async () => {
      // A vCPU that died on purpose during the phase left a hole: the others' replies.
      const got = (await replies).filter((r) => r !== undefined) as Extract<VcpuReply, { type: "done" }>[];
      if (got.length === 0) return { wallMs: 0, replies: got }; // every vCPU died on purpose
      const start = Math.min(...got.map((r) => r.startMs));
      const end = Math.max(...got.map((r) => r.endMs));
      return { wallMs: end - start, replies: got };
    });
    return { started, done };
  }

  /** vCPUs that died and were reaped so far (the death watch's reports, in order). */
  get deaths(): readonly VcpuDeathReport[] {
    return this.watch.deaths;
  }

  /** Why a vCPU is gone, or null while every one runs. */
  get failure(): string | null {
    return this.gone.find((g) => g !== null) ?? null;
  }

  /** Drains and closes every vCPU; returns their final reports. */
  async close(): Promise<Extract<VcpuReply, { type: "closed" }>[]> {
    const closed = this.collect("closed");
    // Listen for the exits before asking: a worker may exit before the others have replied.
    const exited = Promise.all(this.exits);
    for (const [i, w] of this.workers.entries())
      if (!this.isDeadOnPurpose(i)) w.postMessage({ type: "close" } satisfies VcpuCommand);
    const replies = (await closed).filter((r) => r !== undefined) as Extract<VcpuReply, { type: "closed" }>[];
    await exited;
    await this.closeWatch();
    return replies;
  }

  /**
   * Terminates every worker (after a failure), and waits until the death watch has reaped each
   * one that had not closed, so that the VM can be torn down with nothing of theirs held.
   */
  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    await this.closeWatch();
  }

  /** Once every worker is gone: waits for the reaps, then stops the watch (once). */
  private closeWatch(): Promise<void> {
    this.watchClosed ??= (async () => {
      await this.watch.ready;
      await this.watch.untilSettled();
      await this.watch.close();
    })();
    return this.watchClosed;
  }

  private collect(type: VcpuReply["type"]): Promise<VcpuReply[]> {
    return new Promise((resolve, reject) => {
      const got: VcpuReply[] = new Array(this.workers.length);
      let left = this.workers.length;
      const cleanups: (() => void)[] = [];
      // A worker already gone can send nothing more, nor an exit event: fail now, never wait.
      const dead = this.gone.find((g) => g !== null);
      if (dead) {
        reject(new Error(dead));
        return;
      }
      const finish = (err?: Error) => {
        for (const c of cleanups) c();
        if (err) reject(err);
        else resolve(got);
      };
      this.workers.forEach((w, i) => {
        if (this.isDeadOnPurpose(i)) {
          left--;
          return;
        }
        const onMessage = (msg: VcpuReply) => {
          if (msg.type === "error") finish(new Error(`vCPU ${msg.vcpu}: ${msg.message}`));
          else if (msg.type === type) {
            got[i] = msg;
            if (--left === 0) finish();
          }
        };
        const onExit = (code: number) => {
          if (got[i] !== undefined) return; // replied, then exited (after "closed")
          if (this.mayDie.has(i)) {
            // Died on purpose before replying: the phase goes on without it.
            if (--left === 0) finish();
          } else finish(new Error(`vCPU ${i} exited with code ${code}`));
        };
        const onError = (e: Error) => {
          if (!this.mayDie.has(i)) finish(new Error(`vCPU ${i} crashed: ${e.message}`));
        };
        w.on("message", onMessage);
        w.on("exit", onExit);
        w.on("error", onError);
        cleanups.push(() => {
          w.off("message", onMessage);
          w.off("exit", onExit);
          w.off("error", onError);
        });
      });
      if (left === 0) finish(); // every vCPU died on purpose
    });
  }
}
