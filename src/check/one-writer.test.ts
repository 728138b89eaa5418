/**
 * "One place writes a PTE": no source file outside pte-update.ts stores into a descriptor or the
 * root, so the checkers and the MMU model that watch those helpers see every change.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../src", import.meta.url));
const STORE =
  /Atomics\.(store|exchange|compareExchange|and|or|xor|add|sub)\(\s*[\w.]*(ptes|ctl,\s*Ctl\.ROOT)/;
/** The helpers themselves; create() publishes the root before any other thread has the handle; the pool poisons free pages. */
const ALLOWED = new Set(["pgtable/pte-update.ts", "pgtable/stage2.ts", "mem/poison.ts"]);

function sources(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

/** The offending `file:line` list of a source tree. */
function strayPteStores(root: string): string[] {
  const bad: string[] = [];
  for (const file of sources(root, [])) {
    const rel = file.slice(root.length + 1).replaceAll("\\", "/");
    if (ALLOWED.has(rel)) continue;
    readFileSync(file, "utf8")
      .split("\n")
      .forEach((line, i) => {
        if (STORE.test(line)) bad.push(`${rel}:${i + 1}`);
      });
  }
  return bad;
}

test("every descriptor and root store goes through pte-update.ts", () => {
  assert.deepEqual(strayPteStores(ROOT), []);
});

test("strayPteStores() finds a stray descriptor store (the check can fail)", () => {
  assert.ok(STORE.test("    Atomics.store(pgt.ptes, ctx.ptep, pte);"));
  assert.ok(STORE.test("Atomics.store(this.pgt.ctl, Ctl.ROOT, -1);"));
  assert.ok(!STORE.test("Atomics.store(this.slots.words, at, 0);"));
});
