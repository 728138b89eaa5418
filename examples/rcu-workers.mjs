/**
 * The RCU on its own, across worker threads: two reader workers read the current version of a
 * shared record inside read-side sections, while the main thread publishes new versions and
 * retires each old one only after a grace period. No reader may ever see a retired version.
 *
 *   node examples/rcu-workers.mjs
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { Rcu } from "stage2/rcu";

const VERSIONS = 64;
// Shared words: [0] index of the current version, [1 + v] payload of version v (-1 once retired),
// [1 + VERSIONS] stop flag (updater writes), [2 + VERSIONS] reads done (readers add).
const CURRENT = 0;
const STOP = 1 + VERSIONS;
const READS = 2 + VERSIONS;

if (isMainThread) {
  const rcu = await Rcu.create({ flavor: "mb" });
  const updater = rcu.register();
  const words = new Int32Array(new SharedArrayBuffer(4 * (3 + VERSIONS)));
  Atomics.store(words, 1, 0); // version 0, payload 0, is current
  const readers = [0, 1].map(
    () => new Worker(new URL(import.meta.url), { workerData: { rcu: rcu.handle, words: words.buffer } }),
  );
  for (const r of readers) rcu.watch(r); // a reader that dies must not hold up grace periods
  const next = (r) => new Promise((resolve) => r.once("message", resolve));
  await Promise.all(readers.map(next)); // each reader has registered and is reading
  const results = readers.map(next);
  for (let gen = 1; gen <= 500 || Atomics.load(words, READS) < 20_000; gen++) {
    const old = Atomics.load(words, CURRENT);
    const fresh = gen % VERSIONS;
    Atomics.store(words, 1 + fresh, gen); // initialize the new version, then publish it
    Atomics.store(words, CURRENT, fresh);
    updater.synchronize(); // every reader that could still see `old` has left its section
    Atomics.store(words, 1 + old, -1); // retire it
  }
  Atomics.store(words, STOP, 1);
  const totals = await Promise.all(results);
  const reads = totals.reduce((n, t) => n + t.reads, 0);
  const retired = totals.reduce((n, t) => n + t.retired, 0);
  console.log(
    `rcu: ${reads} reads, ${retired} saw a retired version, ${rcu.stats().gracePeriods} grace periods`,
  );
  updater.unregister();
  await rcu.close();
  if (retired > 0) process.exitCode = 1;
} else {
  const words = new Int32Array(workerData.words);
  const reader = Rcu.attach(workerData.rcu).register();
  let reads = 0;
  let retired = 0;
  let sink = 0;
  parentPort?.postMessage("ready");
  while (Atomics.load(words, STOP) === 0) {
    reader.readLock();
    const v = Atomics.load(words, CURRENT);
    for (let i = 0; i < 500; i++) sink ^= i; // a slow reader: the window a missing grace period opens
    const payload = Atomics.load(words, 1 + v);
    reader.readUnlock();
    if (payload < 0) retired++;
    reads++;
    Atomics.add(words, READS, 1);
  }
  reader.unregister();
  parentPort?.postMessage({ reads, retired, sink });
}
