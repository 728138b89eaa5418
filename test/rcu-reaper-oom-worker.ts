/**
 * A reader for the reaper tests that runs out of memory inside its read-side section: it registers,
 * enters a section, says so, and allocates until its heap limit (resourceLimits) kills it. An
 * out-of-memory death runs no "exit" handler: only a reaper can release its slot.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Rcu, type RcuHandle } from "../src/rcu/mod.js";

const t = Rcu.attach((workerData as { handle: RcuHandle }).handle).register();
t.readLock();
parentPort?.postMessage("locked");
const hog: number[][] = [];
for (;;) hog.push(new Array(100_000).fill(hog.length));
