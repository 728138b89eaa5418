/**
 * Worker of mem-allocator.test.ts: allocates and frees pages at random through every allocator entry
 * point, and checks that no page is handed to it while another worker owns it.
 *
 * Ownership is tracked in a shared Int32Array `owners` (one word per page, 0 = nobody, id+1 = worker id):
 * a worker claims each page it receives with a CAS 0 -> id+1, which fails if the allocator handed the
 * same page out twice. It also stamps a tag into the page and checks the tag is intact before freeing,
 * which catches a page zeroed or stamped by someone else while we owned it.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Errno } from "../src/common/errno.js";
import { Rng } from "../src/common/rng.js";
import { MemCache, PagePool, PageState } from "../src/mem/mod.js";

export interface AllocatorWorkerData {
  handle: PagePool["handle"];
  owners: SharedArrayBuffer;
  /** Counts arrivals; workers start together once it reaches `workers`. */
  start: SharedArrayBuffer;
  workers: number;
  id: number;
  seed: number;
  ops: number;
  /** Above this many owned pages the worker only frees. */
  maxOwned: number;
}

export interface AllocatorWorkerResult {
  errors: string[];
  allocated: number;
  freed: number;
  exhausted: number;
  /** Pages still in the memory cache at the end, returned by drain() without ever being claimed. */
  drained: number;
}

const data = workerData as AllocatorWorkerData;
const pool = PagePool.attach(data.handle);
const owners = new Int32Array(data.owners);
const cache = new MemCache(pool, 8);
const owned: number[] = [];
const errors: string[] = [];
const batch = new Int32Array(16);
const me = data.id + 1;
let allocated = 0;
let freed = 0;
let exhausted = 0;
let drained = 0;
let stamp = 0;

const rng = new Rng(data.seed);
function below(n: number): number {
  return rng.below(n);
}

function fail(message: string): void {
  if (errors.length < 20) errors.push(`worker ${data.id}: ${message}`);
}

/** Takes ownership of a page the allocator just gave us and stamps it. */
function claim(page: number): void {
  const prev = Atomics.compareExchange(owners, page, 0, me);
  if (prev !== 0) fail(`page ${page} handed out while worker ${prev - 1} owns it`);
  const first = page * pool.entriesPerPage * 2;
  const last = first + pool.entriesPerPage * 2 - 1;
  if (pool.words[first] !== 0 || pool.words[last] !== 0) fail(`page ${page} handed out not zeroed`);
  if (pool.state(page) !== PageState.TABLE || pool.refcount(page) !== 1) {
    fail(`page ${page} handed out with state ${pool.state(page)} refcount ${pool.refcount(page)}`);
  }
  stamp = (stamp + 1) & 0xffff;
  pool.words[first] = (me << 16) | stamp;
  pool.words[last] = (me << 16) | stamp;
  owned.push(page);
  allocated++;
}

/** Checks the stamp and gives up ownership; the caller frees the page right after. */
function release(index: number): number {
  const page = owned[index]!;
  owned[index] = owned[owned.length - 1]!;
  owned.pop();
  const first = page * pool.entriesPerPage * 2;
  const last = first + pool.entriesPerPage * 2 - 1;
  if (pool.words[first] >>> 16 !== me || pool.words[first] !== pool.words[last]) {
    fail(`page ${page} was overwritten while owned (0x${(pool.words[first]! >>> 0).toString(16)})`);
  }
  if (Atomics.compareExchange(owners, page, me, 0) !== me) fail(`page ${page} lost its owner mark`);
  freed++;
  return page;
}

function step(): void {
  const r = below(100);
  if (owned.length <= data.maxOwned && r < 54) allocStep(r);
  else if (owned.length > 0) freeStep(r);
}

function allocStep(r: number): void {
  if (r < 25) {
    const page = pool.allocPage();
    if (page < 0) exhausted++;
    else claim(page);
  } else if (r < 40) {
    if (cache.topup(1 + below(4)) === Errno.NOMEM) exhausted++;
    for (let k = below(cache.count + 1); k > 0; k--) claim(cache.alloc());
  } else if (r < 50) {
    const n = 1 + below(6);
    const got = pool.allocBatch(batch, n);
    if (got < n) exhausted++;
    for (let i = 0; i < got; i++) claim(batch[i]!);
  } else {
    const n = 1 + below(4);
    const first = pool.allocContiguous(n);
    if (first < 0) exhausted++;
    else for (let p = first; p < first + n; p++) claim(p);
  }
}

function freeStep(r: number): void {
  if (r < 75) {
    pool.freePage(release(below(owned.length)));
  } else if (r < 88) {
    // Reference-counted release: extra references, then puts; only the last put may free.
    const page = release(below(owned.length));
    const extra = below(3);
    for (let i = 0; i < extra; i++) pool.getPage(page);
    for (let i = extra; i > 0; i--) if (pool.putPage(page) !== i) fail(`page ${page}: putPage miscounted`);
    if (pool.putPage(page) !== 0) fail(`page ${page}: last putPage did not reach 0`);
  } else {
    const n = Math.min(owned.length, 1 + below(8));
    for (let i = 0; i < n; i++) batch[i] = release(below(owned.length));
    pool.freeBatch(batch, n);
  }
}

function waitForAll(): void {
  const start = new Int32Array(data.start);
  Atomics.add(start, 0, 1);
  while (Atomics.load(start, 0) < data.workers) Atomics.wait(start, 0, Atomics.load(start, 0), 1);
}

waitForAll();
try {
  for (let i = 0; i < data.ops; i++) step();
  while (owned.length > 0) pool.freePage(release(owned.length - 1));
  drained = cache.count;
  cache.drain();
} catch (err) {
  fail(`threw ${(err as Error).stack ?? String(err)}`);
}
const result: AllocatorWorkerResult = { errors, allocated, freed, exhausted, drained };
parentPort!.postMessage(result);
