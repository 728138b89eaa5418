/**
 * The reaper thread of an RCU domain view (see watch.ts): holds one end of each watched thread's
 * channel and, when the other end closes, releases the dead thread's slots and roles and reports
 * the death through the stall detector (StallWhat.DIED). It registers nothing itself.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { Ctl, StallWhat } from "./layout.js";
import { diedHolding, reapThreadRoles } from "./registry.js";
import { type RcuHandle, RcuShared } from "./shared.js";
import { reportStall } from "./stall.js";
import type { ReaperMessage } from "./watch.js";

const sh = RcuShared.attach((workerData as { handle: RcuHandle }).handle);
const port = parentPort as MessagePort;

/** One watched channel: its thread (-1 until bound) and whether its end has closed. */
interface Watched {
  threadId: number;
  closed: boolean;
}
const watched = new Map<number, Watched>();

/** Reaps the thread of channel `id` once it is both bound and closed. */
function settle(id: number): void {
  const w = watched.get(id);
  if (w === undefined || !w.closed || w.threadId < 0) return;
  watched.delete(id);
  try {
    const r = reapThreadRoles(sh, w.threadId);
    // Nothing released: the thread unregistered, or released itself on exit, or another reaper won.
    if (!diedHolding(r)) return;
    reportStall(sh.ctl, StallWhat.DIED, w.threadId, r.slots, 0, Atomics.load(sh.ctl, Ctl.GP_STARTED));
  } catch (e) {
    port.postMessage({
      type: "error",
      message: `thread ${w.threadId}: ${(e as Error).message}`,
    } satisfies ReaperMessage);
  }
}

port.on("message", (msg: ReaperMessage) => {
  if (msg.type === "watch") {
    const w: Watched = { threadId: -1, closed: false };
    watched.set(msg.id, w);
    // A listener starts the port; 'close' then fires when the watched thread's end goes with it.
    msg.port.on("message", () => {});
    msg.port.on("close", () => {
      w.closed = true;
      settle(msg.id);
    });
  } else if (msg.type === "bind") {
    const w = watched.get(msg.id);
    if (w === undefined) return;
    w.threadId = msg.threadId;
    settle(msg.id);
  } else if (msg.type === "close") {
    process.exit(0);
  }
});
