/**
 * `stage2 bench rcu|faults|pgtable|rwlock`: one benchmark, as a table or one JSON object.
 * `npm run bench` (bench/run-all.ts) runs them all next to the liburcu anchor and checks targets.
 */
import { runFaultBench } from "../../bench/faults.js";
import { runPgtableBench } from "../../bench/pgtable.js";
import { runRcuBench } from "../../bench/rcu.js";
import { runReclaimStudy, type StormResult } from "../../bench/reclaim.js";
import { runRwlockBench } from "../../bench/rwlock.js";
import { type CliIo, type Command, UsageError } from "../command.js";
import { parseFlags } from "../parse.js";

const USAGE = `Usage: stage2 bench <rcu|faults|pgtable|rwlock|reclaim> [--json] [--quick]

  rcu      read-side pair (mb, qsbr), synchronize latency idle and with a busy reader, call() throughput
  faults   vCPU workers populating disjoint regions with 4K pages: 1 and 2 vCPUs, shared and exclusive
  pgtable  map/unmap of 1 GiB in 4K pages and 2M blocks, get_leaf, table memory per GiB
  rwlock   mmu_lock read and write pairs, uncontended
  reclaim  collapse storms per reclaim strategy: peak pending callbacks/pages, callback durations

Options:
  --json    print one JSON object
  --quick   a short run (smoke test; figures are noisy)

Figures are wall-clock on this machine; compare them only with figures from the same run
(npm run bench prints them side by side with the liburcu anchor).`;

export const BENCHES: Record<string, (quick: boolean) => Promise<object>> = {
  rcu: (quick) => runRcuBench({ quick }),
  faults: (quick) => runFaultBench({ quick }),
  pgtable: async (quick) => runPgtableBench({ quick }),
  rwlock: async () => runRwlockBench(),
  reclaim: (quick) => runReclaimStudy({ quick }),
};

export const benchCommand: Command = {
  name: "bench",
  summary: "run one benchmark (rcu, faults, pgtable, rwlock, reclaim)",
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseFlags(
      argv,
      { json: { type: "boolean" }, quick: { type: "boolean" } },
      true,
    );
    const [name, ...extra] = positionals;
    if (name === undefined)
      throw new UsageError("missing benchmark name: rcu, faults, pgtable, rwlock or reclaim");
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const bench = BENCHES[name];
    if (!bench)
      throw new UsageError(`unknown benchmark "${name}": use rcu, faults, pgtable, rwlock or reclaim`);
    const result = await bench(values.quick === true);
    if (values.json) io.out(JSON.stringify(result));
    else if ("storms" in result) io.out(formatStorms((result as { storms: StormResult[] }).storms));
    else
      for (const [k, v] of Object.entries(result))
        io.out(`${k.padEnd(28)} ${typeof v === "number" ? round(v) : JSON.stringify(v)}`);
    return 0;
  },
};

/** The reclaim study as a table, one row per storm and strategy. */
export function formatStorms(storms: StormResult[]): string {
  const head =
    "storm        strategy     storm ms  callbacks  peak cb  peak pages  cb p50     cb p99     cb max     sync    GPs  barrier ms";
  const rows = storms.map((s) =>
    [
      `${s.blockSize >= 1024 ** 3 ? `${s.blockSize / 1024 ** 3}G` : `${s.blockSize / 1024 ** 2}M`} blocks`.padEnd(
        12,
      ),
      s.strategy.padEnd(12),
      s.stormMs.toFixed(1).padStart(8),
      String(s.callbacksQueued).padStart(9),
      String(s.peakPendingCallbacks).padStart(8),
      String(s.peakPendingPages).padStart(11),
      `${(s.callbackP50Ns / 1000).toFixed(1)}us`.padStart(9),
      `${(s.callbackP99Ns / 1000).toFixed(1)}us`.padStart(10),
      `${(s.callbackMaxNs / 1000).toFixed(1)}us`.padStart(10),
      String(s.syncFallbacks).padStart(5),
      String(s.gracePeriods).padStart(6),
      s.barrierMs.toFixed(2).padStart(11),
    ].join(" "),
  );
  return [head, ...rows].join("\n");
}

function round(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 3 : 1);
}
