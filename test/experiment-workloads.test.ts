/**
 * Every workload end to end, at small sizes, under every reclaim strategy, on real vCPU worker
 * threads; the dirty log against the guest's accesses; the printed lines against the selftests'
 * format strings (checked by an independent printf parser in Python); the JSON against the schema.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { executeSpec } from "../src/experiment/execute.js";
import type { RunSpec } from "../src/experiment/plan.js";
import type { RunResult, WorkloadName } from "../src/experiment/result.js";
import { STRATEGIES } from "../src/kvm/reclaim/strategy.js";
import { validateRunResult } from "../src/report/schema.js";

const FORMATS = fileURLToPath(new URL("../../test/independent/selftest_formats.txt", import.meta.url));
const CHECK = fileURLToPath(new URL("../../test/independent/selftest_lines.py", import.meta.url));

function spec(workload: WorkloadName, args: string[], strategy = "per-subtree"): RunSpec {
  return {
    workload,
    workloadArgs: args,
    strategy: strategy as RunSpec["strategy"],
    mode: "shared",
    rcu: "mb",
    seed: 1,
    check: true,
  };
}

/** The independent check: every printed line must be some selftest printf's output. */
function linesMatchSelftests(r: RunResult): void {
  const p = spawnSync("python3", [CHECK, FORMATS], { input: `${r.lines.join("\n")}\n`, encoding: "utf8" });
  assert.equal(p.error, undefined, `python3 must be installed: ${p.error}`);
  assert.equal(p.status, 0, p.stdout + p.stderr);
}

function passed(r: RunResult): void {
  assert.deepEqual(validateRunResult(JSON.parse(JSON.stringify(r))), []);
  assert.ok(r.checks.passed, JSON.stringify(r.checks));
  assert.ok(r.phases.length > 0);
  linesMatchSelftests(r);
}

const SMALL: [WorkloadName, string[]][] = [
  ["dirty-log-perf", ["-v", "2", "-b", "8M", "-s", "anonymous_thp", "-e"]],
  ["access-tracking", ["-v", "2", "-b", "4M"]],
  ["memslot-perf", ["-s", "33", "-l", "1", "-f", "3", "-e", "4"]],
  ["page-table-stress", ["-v", "2", "-b", "8M", "-s", "anonymous_thp"]],
  ["collapse-storm", ["-v", "2", "-b", "8M", "-i", "1"]],
];

describe("every workload under every strategy", () => {
  for (const [workload, args] of SMALL) {
    for (const strategy of STRATEGIES) {
      test(`${workload} ${args.join(" ")} --strategy ${strategy}`, async () => {
        passed(await executeSpec(spec(workload, args, strategy)));
      });
    }
  }
});

test("memslot-perf tests 0-2 (map, unmap, unmap chunked)", async () => {
  passed(await executeSpec(spec("memslot-perf", ["-s", "33", "-l", "1", "-f", "0", "-e", "2"])));
});

describe("dirty-log-perf: the log matches what the guest wrote", () => {
  const total = (8 * 2 ** 20 * 2) / 4096;

  test("-w 100: every page is in every iteration's log (manual protect and -g)", async () => {
    for (const g of [[], ["-g"]]) {
      const r = await executeSpec(
        spec("dirty-log-perf", ["-v", "2", "-b", "8M", "-w", "100", "-i", "3", ...g]),
      );
      passed(r);
      assert.deepEqual(r.dirtyPages, [total, total, total], g.join(""));
    }
  });

  test("-w 0: no page from the second iteration on (the first is initially set with manual protect)", async () => {
    const manual = await executeSpec(spec("dirty-log-perf", ["-v", "2", "-b", "8M", "-w", "0", "-i", "3"]));
    passed(manual);
    assert.deepEqual(manual.dirtyPages, [total, 0, 0]);
    const g = await executeSpec(spec("dirty-log-perf", ["-v", "2", "-b", "8M", "-w", "0", "-i", "3", "-g"]));
    passed(g);
    assert.deepEqual(g.dirtyPages, [0, 0, 0]);
  });

  test("a seed: the dirtied pages are exactly what the Park-Miller sequence predicts", async () => {
    const seed = 0x2a;
    const pages = (4 * 2 ** 20) / 4096;
    const r = await executeSpec(
      spec("dirty-log-perf", ["-v", "2", "-b", "4M", "-w", "30", "-a", "-i", "3", "-r", String(seed), "-g"]),
    );
    passed(r);
    // An independent model of memstress_guest_code(): BigInt arithmetic, one state per vCPU.
    const predicted = [0, 0, 0];
    const states = [BigInt(seed), BigInt(seed + 1)];
    const draw = (v: number) => {
      states[v] = ((states[v] as bigint) * 48271n) % 2147483647n;
      return Number(states[v]);
    };
    for (let v = 0; v < 2; v++) for (let i = 0; i < pages; i++) draw(v); // populate: one draw per page
    for (let it = 0; it < 3; it++) {
      const set = new Set<number>();
      for (let v = 0; v < 2; v++) {
        for (let i = 0; i < pages; i++) {
          const page = draw(v) % pages;
          if (draw(v) % 100 < 30) set.add(v * pages + page);
        }
      }
      predicted[it] = set.size;
    }
    assert.deepEqual(r.dirtyPages, predicted);
  });

  test("-x 4 -o: overlapping vCPUs over four memslots", async () => {
    const r = await executeSpec(
      spec("dirty-log-perf", ["-v", "2", "-b", "8M", "-x", "4", "-o", "-w", "50", "-a"]),
    );
    passed(r);
  });
});

describe("every workload in exclusive mode and with qsbr readers", () => {
  for (const [workload, args] of SMALL) {
    test(`${workload} --mode exclusive --rcu qsbr`, async () => {
      const r = await executeSpec({ ...spec(workload, args), mode: "exclusive", rcu: "qsbr" });
      passed(r);
      assert.equal(r.mode, "exclusive");
      assert.equal(r.reclaim.subtrees, 0, "exclusive walks free at once: nothing is deferred");
    });
    test(`${workload} --mode shared --rcu qsbr`, async () => {
      passed(await executeSpec({ ...spec(workload, args, "batched"), rcu: "qsbr" }));
    });
  }
});

describe("collapse storms reach the reclaim strategies", () => {
  test("shared collapses unlink subtrees and every page comes back", async () => {
    const r = await executeSpec(spec("collapse-storm", ["-v", "2", "-b", "16M", "-i", "1"], "per-table"));
    passed(r);
    assert.ok(r.reclaim.subtrees >= 8, `subtrees ${r.reclaim.subtrees}`);
    assert.ok(r.reclaim.callbacks >= r.reclaim.subtrees, "per-table queues a callback per page");
    assert.ok(r.samples.length > 0);
  });

  test("dirty-log-perf -e on THP collapses the split tables when logging is disabled", async () => {
    const r = await executeSpec(spec("dirty-log-perf", ["-v", "2", "-b", "8M", "-s", "anonymous_thp", "-e"]));
    passed(r);
    assert.ok(r.reclaim.subtrees > 0, "disabling logging with running vCPUs must unlink 4K tables");
  });
});
