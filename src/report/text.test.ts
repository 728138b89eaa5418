import assert from "node:assert/strict";
import { test } from "node:test";
import { syntheticRun } from "./fixture.js";
import { renderText, wrap } from "./text.js";

test("wrap() breaks at spaces within the width and indents continuation lines", () => {
  assert.equal(wrap("aaa bbb ccc ddd", 8, 2), "aaa bbb\n  ccc\n  ddd");
  assert.equal(wrap("  one  ", 10), "one");
});

test("renderText() opens with the numbered answers, then the table", () => {
  const text = renderText(
    ["per-table", "per-subtree"].map((strategy) => syntheticRun({ strategy })),
    80,
  );
  const lines = text.split("\n");
  assert.match(lines[0]!, /^1\. Did pending callbacks grow dangerously\?/);
  assert.ok(lines.some((l) => l.startsWith("2. Per table against per subtree:")));
  const table = lines.findIndex((l) => l.startsWith("dirty-log-perf ("));
  assert.ok(table > 1);
  for (const l of lines.slice(0, table)) assert.ok(l.length <= 80, l);
});
