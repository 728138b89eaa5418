import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

const SCRIPT = new URL("../../scripts/ensure-chromium.mjs", import.meta.url);

function run(chromium: string) {
  return spawnSync(process.execPath, [SCRIPT.pathname], {
    env: { ...process.env, STAGE2_CHROMIUM: chromium },
    encoding: "utf8",
  });
}

test("ensure-chromium.mjs succeeds quietly when the browser is there", () => {
  const r = run(process.execPath);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "");
});

test("ensure-chromium.mjs fails loudly, with what to do, when the given browser is missing", () => {
  const r = run("/nonexistent/chromium");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /STAGE2_CHROMIUM=\/nonexistent\/chromium does not exist/);
});
