/**
 * A vCPU for mmu-tlbi.test.ts: enters an access the way VcpuMmu does (CAS IDLE -> IN_ACCESS),
 * says so, waits for the host's TLBI, stays in the access a while (a slow walk), records whether
 * anyone acknowledged for it meanwhile, then leaves the access by draining and going IDLE.
 */
import { workerData } from "node:worker_threads";
import { C, H, VState } from "../src/mmu/layout.js";
import { Mmu, type MmuHandle } from "../src/mmu/mod.js";
import { drainRing } from "../src/mmu/tlbi.js";
import { Stage2, type Stage2Handle } from "../src/pgtable/stage2.js";

const data = workerData as { mmu: MmuHandle; pgt: Stage2Handle; flags: SharedArrayBuffer };
const mmu = Mmu.attach(data.mmu);
const tlb = mmu.tlbs(Stage2.attach(data.pgt))[0];
if (tlb === undefined) throw new Error("no vCPU 0");
const w = mmu.words;
const flags = new Int32Array(data.flags);
while (Atomics.compareExchange(w, tlb.ctl + C.STATE, VState.IDLE, VState.IN_ACCESS) !== VState.IDLE) {}
Atomics.store(flags, 0, 1);
Atomics.notify(flags, 0);
while (Atomics.load(w, H.RING_HEAD) === 0) {}
let x = 0;
for (let i = 0; i < 5_000_000; i++) x += i & 1;
Atomics.store(flags, 1, Atomics.load(w, tlb.ctl + C.ACKED) + (x < 0 ? 1 : 0));
Atomics.store(flags, 2, 1);
drainRing(w, tlb);
Atomics.store(w, tlb.ctl + C.STATE, VState.IDLE);
