/**
 * A thread of the multi-worker RCU tests that runs a small script of steps given in workerData,
 * then unregisters and reports. Steps:
 *   {op:"call", kind, a0, a1, n}   queue n callbacks (a0 += i if `spread`)
 *   {op:"barrier"} {op:"sync"} {op:"lock"} {op:"unlock"} {op:"qs"} {op:"offline"} {op:"online"}
 *   {op:"post", msg}               postMessage(msg)
 *   {op:"waitFlag", index}         sleep until flags[index] !== 0 (without quiescent states)
 *   {op:"waitStalls"}              spin until some thread reported a stall
 *   {op:"exit"}                    end the thread now, whatever its state
 *   {op:"spin"}                    loop until terminated
 *   {op:"callAndWait", kind, a0, a1}  queue one callback and wait until it has run
 *   {op:"pollWait"}                startPoll(), then condSynchronize() on that cookie
 *   {op:"setFlag", index}          flags[index] = 1 (and notify)
 *   {op:"postOnline"}              postMessage(`online:${t.isOnline}`)
 *   {op:"takeStalls"}              become the domain's stall handler thread (rcu.onStall)
 *   {op:"snapshotFlag", from, to}  flags[to] = flags[from] + 1 (and notify): "done, and what I saw"
 */
import { parentPort, workerData } from "node:worker_threads";
import { Rcu, type RcuHandle } from "../src/rcu/mod.js";

export type Step =
  | { op: "call"; kind: number; a0: number; a1?: number; n: number; spread?: boolean }
  | {
      op:
        | "barrier"
        | "sync"
        | "lock"
        | "unlock"
        | "qs"
        | "offline"
        | "online"
        | "waitStalls"
        | "exit"
        | "spin";
    }
  | { op: "post"; msg: string }
  | { op: "waitFlag" | "setFlag"; index: number }
  | { op: "callAndWait"; kind: number; a0: number; a1?: number }
  | { op: "pollWait" | "postOnline" | "takeStalls" }
  | { op: "snapshotFlag"; from: number; to: number };

const {
  handle,
  flags: flagSab,
  steps,
} = workerData as { handle: RcuHandle; flags: SharedArrayBuffer; steps: Step[] };
const flags = new Int32Array(flagSab);
const rcu = Rcu.attach(handle);
const t = rcu.register();
const nap = new Int32Array(new SharedArrayBuffer(4));

function run(step: Step): void {
  switch (step.op) {
    case "call":
      for (let i = 0; i < step.n; i++) {
        if (t.call(step.kind, step.a0 + (step.spread ? i : 0), step.a1 ?? 0) !== 0)
          throw new Error("call() failed");
      }
      return;
    case "barrier":
      t.barrier();
      return;
    case "sync":
      t.synchronize();
      return;
    case "lock":
      t.readLock();
      return;
    case "unlock":
      t.readUnlock();
      return;
    case "qs":
      t.quiescentState();
      return;
    case "offline":
      t.offline();
      return;
    case "online":
      t.online();
      return;
    case "post":
      parentPort?.postMessage(step.msg);
      return;
    case "waitFlag":
      while (Atomics.load(flags, step.index) === 0) Atomics.wait(flags, step.index, 0, 5);
      return;
    case "waitStalls":
      while (rcu.stats().stalls === 0) Atomics.wait(nap, 0, 0, 1);
      return;
    case "setFlag":
      Atomics.store(flags, step.index, 1);
      Atomics.notify(flags, step.index);
      return;
    case "callAndWait":
      if (t.callAndWait(step.kind, step.a0, step.a1 ?? 0) !== 0) throw new Error("callAndWait() failed");
      return;
    case "pollWait":
      t.condSynchronize(t.startPoll());
      return;
    case "takeStalls":
      rcu.onStall = () => {};
      return;
    case "snapshotFlag":
      Atomics.store(flags, step.to, Atomics.load(flags, step.from) + 1);
      Atomics.notify(flags, step.to);
      return;
    case "postOnline":
      parentPort?.postMessage(`online:${t.isOnline}`);
      return;
    case "exit":
      process.exit(0);
      return;
    case "spin":
      for (;;) Atomics.wait(nap, 0, 0, 1);
  }
}

for (const step of steps) run(step);
t.unregister();
parentPort?.postMessage("done");
