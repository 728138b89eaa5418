import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { budgetFromArgs, INLINING_BUDGET } from "./v8-budget.js";

test("budgetFromArgs() reads the flag in every spelling node accepts, the last one winning", () => {
  assert.equal(budgetFromArgs([]), undefined);
  assert.equal(budgetFromArgs(["--max-old-space-size=100", "--cpu-prof"]), undefined);
  assert.equal(budgetFromArgs(["--max-inlined-bytecode-size-cumulative=1200"]), 1200);
  assert.equal(budgetFromArgs(["--max_inlined_bytecode_size_cumulative=77"]), 77);
  assert.equal(budgetFromArgs(["--max-inlined-bytecode-size-cumulative", "500", "--cpu-prof"]), 500);
  assert.equal(
    budgetFromArgs(["--max-inlined-bytecode-size-cumulative=1", "--max-inlined-bytecode-size-cumulative=2"]),
    2,
  );
  assert.equal(budgetFromArgs(["--max-inlined-bytecode-size-cumulative=lots"]), null);
  assert.equal(budgetFromArgs(["--max-inlined-bytecode-size-cumulative"]), null);
  // A different flag that shares the prefix is not it.
  assert.equal(budgetFromArgs(["--max-inlined-bytecode-size=460"]), undefined);
});

/**
 * A child node that (optionally) calls raiseInliningBudget(), then optimizes a chain of 60 small
 * functions (65 bytes of bytecode each) under --trace-turbo-inlining. Returns the budget it
 * reported and the most functions inlined into one optimized function.
 */
function child(raise: boolean, nodeArgs: string[] = []) {
  const module = new URL("./v8-budget.js", import.meta.url).href;
  const script = `
    const { raiseInliningBudget } = await import(${JSON.stringify(module)});
    const budget = ${raise} ? raiseInliningBudget() : null;
    let src = "";
    for (let i = 0; i < 60; i++)
      src += "function f" + i + "(x) { let s = x; for (let k = 0; k < 3; k++) { s = (s * 31 + " + i +
        ") | 0; s ^= s >>> 3; s = (s + k * 7) | 0; } return " + (i < 59 ? "f" + (i + 1) + "(s)" : "s") + "; }\\n";
    const f0 = new Function(src + "return f0;")();
    let t = 0;
    for (let i = 0; i < 3e5; i++) t += f0(i);
    console.log("RESULT " + JSON.stringify({ budget, t }));
  `;
  const r = spawnSync(
    process.execPath,
    [
      ...nodeArgs,
      "--trace-turbo-inlining",
      "--no-concurrent-recompilation",
      "--input-type=module",
      "-e",
      script,
    ],
    { encoding: "utf8", maxBuffer: 64 * 2 ** 20 },
  );
  assert.equal(r.status, 0, r.stderr);
  const into = new Map<string, number>();
  for (const m of r.stdout.matchAll(
    /^Inlining \S+ \{\S+ <SharedFunctionInfo f\d+>\} into \S+ \{\S+ <SharedFunctionInfo (f\d+)>\}/gm,
  ))
    into.set(m[1] as string, (into.get(m[1] as string) ?? 0) + 1);
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT ")) as string;
  return { budget: JSON.parse(line.slice(7)).budget, most: Math.max(0, ...into.values()) };
}

test("raiseInliningBudget() takes effect in a running process, and a node flag wins over it", () => {
  // 920 bytes (V8's default) hold 14 of these functions; 3000 hold 46.
  const plain = child(false);
  const raised = child(true);
  assert.ok(
    plain.most > 0 && plain.most <= 920 / 65,
    `default budget: ${plain.most} inlined into one function`,
  );
  assert.deepEqual(raised.budget, { bytes: INLINING_BUDGET, source: "stage2" });
  assert.ok(raised.most > 920 / 65, `raised budget: only ${raised.most} inlined into one function`);
  const given = child(true, ["--max-inlined-bytecode-size-cumulative=920"]);
  assert.deepEqual(given.budget, { bytes: 920, source: "node" });
  assert.ok(given.most <= 920 / 65, `node's 920 kept: ${given.most} inlined into one function`);
});
