/**
 * The package as users get it: `npm pack` the built tree, install the tarball into a temporary
 * project, then from that project
 *
 * - import `stage2` and every subpath of the exports map (and find deep imports refused),
 * - run the two README examples (the RCU across workers, a VM driven from code),
 * - run `stage2 faults` with the example user strategy, which imports `stage2/kvm` itself,
 * - type-check a consumer file with this repository's `tsc` against the shipped declarations.
 *
 * `npm pack --ignore-scripts`: the tree is already built (`npm run build` runs before the tests),
 * and rebuilding dist/ while other test files run would race with them.
 */
import assert from "node:assert/strict";
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");
const SUBPATHS = [
  "arch",
  "common",
  "mem",
  "sync",
  "rcu",
  "pgtable",
  "kvm",
  "mmu",
  "check",
  "torture",
  "testing",
];

let project = "";

function run(cmd: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 240_000 });
  if (r.error) throw r.error;
  return r;
}

/** Runs a command that must succeed; fails loudly with everything it printed. */
function ok(cmd: string, args: string[], cwd: string): string {
  const r = run(cmd, args, cwd);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

before(async () => {
  project = await mkdtemp(join(tmpdir(), "stage2-pack-"));
  const out = ok("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", project], ROOT);
  const [info] = JSON.parse(out) as { filename: string; files: { path: string }[] }[];
  assert.ok(info, out);
  const files = info.files.map((f) => f.path);
  assert.ok(files.includes("dist/src/mod.d.ts"), "the entry's declarations are shipped");
  assert.deepEqual(
    files.filter((f) => /\.test\.|\.map$|^dist\/test\//.test(f)),
    [],
    "no compiled tests or source maps",
  );
  await writeFile(
    join(project, "package.json"),
    JSON.stringify({ name: "stage2-consumer", private: true, type: "module" }, null, 2),
  );
  ok("npm", ["install", "--no-audit", "--no-fund", join(project, info.filename)], project);
  await mkdir(join(project, "examples"));
  for (const name of await readdir(join(ROOT, "examples"))) {
    await copyFile(join(ROOT, "examples", name), join(project, "examples", name));
  }
});

after(async () => {
  if (project !== "") await rm(project, { recursive: true, force: true });
});

test("the installed package exports every layer, and only through its exports map", async () => {
  const probe = `
    const root = await import("stage2");
    const names = ${JSON.stringify(SUBPATHS)};
    for (const n of names) {
      const m = await import("stage2/" + n);
      if (Object.keys(m).length === 0) throw new Error("stage2/" + n + " exports nothing");
    }
    for (const k of ["Vm", "Rcu", "Stage2", "PagePool", "RwLock", "VcpuPool", "runStress", "kvm", "rcu"])
      if (!(k in root)) throw new Error("stage2 lacks " + k);
    try {
      await import("stage2/dist/src/kvm/vm.js");
      throw new Error("a deep import was allowed");
    } catch (e) {
      if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
    console.log("exports ok");
  `;
  await writeFile(join(project, "probe.mjs"), probe);
  assert.match(ok(process.execPath, ["probe.mjs"], project), /exports ok/);
});

test("README example: the RCU on its own across workers", () => {
  const out = ok(process.execPath, ["examples/rcu-workers.mjs"], project);
  assert.match(out, /^rcu: [1-9]\d* reads, 0 saw a retired version, [1-9]\d* grace periods$/m);
});

test("README example: a VM driven from code", () => {
  const out = ok(process.execPath, ["examples/vm-from-code.mjs"], project);
  assert.match(out, /^vm: [1-9]\d* faults .* 0 use-after-free, 0 pages leaked$/m);
});

test("the README's library examples run as written against the installed package", async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const library = readme.slice(readme.indexOf("## As a library"));
  const blocks = [...library.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  assert.equal(blocks.length, 2, "the library section shows two examples");
  for (const [i, code] of blocks.entries()) {
    await writeFile(join(project, `readme-${i}.mjs`), code);
    ok(process.execPath, [`readme-${i}.mjs`], project);
  }
});

test("the installed CLI runs the example user strategy from a path", () => {
  const bin = join(project, "node_modules/stage2/dist/src/cli/main.js");
  const out = ok(
    process.execPath,
    [bin, "faults", "--strategy", "./examples/polled-strategy.mjs", "--iterations", "2000"],
    project,
  );
  assert.match(out, /^\s*polled\b[\s\S]*^PASS/m);
});

const CONSUMER = `
import { type Granule, Rcu, type ReclaimStrategy, type ReclaimStrategyFactory, Vm, kvm } from "stage2";
import { type RcuThread, RcuUsageError } from "stage2/rcu";
import { type ReclaimStrategyEnv, RStat, freeQuiescent } from "stage2/kvm";
import type { Stage2 } from "stage2/pgtable";

const granule: Granule = 4096;

/** A strategy written against the published types: waits in the epilogue, frees there. */
class SyncEpilogue implements ReclaimStrategy {
  readonly name: string;
  private readonly held: { page: number; level: number; pages: number }[] = [];
  constructor(private readonly env: ReclaimStrategyEnv) {
    this.name = env.name;
  }
  freeUnlinked(pgt: Stage2, page: number, level: number, shared: boolean): void {
    const pages = kvm.countSubtreePages(pgt, page, level);
    if (!shared) {
      this.env.stats.add(RStat.FREED_NOW, freeQuiescent(pgt, page, level));
      return;
    }
    this.env.stats.add(RStat.SUBTREES);
    this.env.stats.addPending(RStat.PENDING_PAGES, pages);
    this.held.push({ page, level, pages });
  }
  hasEpilogueWork(): boolean {
    return this.held.length > 0;
  }
  afterUnlock(pgt: Stage2): void {
    this.env.rcu.synchronize();
    for (const h of this.held.splice(0)) {
      this.env.stats.add(RStat.PAGES_RECLAIMED, freeQuiescent(pgt, h.page, h.level));
      this.env.stats.add(RStat.PENDING_PAGES, -h.pages);
    }
  }
  drain(pgt: Stage2): void {
    this.afterUnlock(pgt);
  }
}

export const factory: ReclaimStrategyFactory = (env) => new SyncEpilogue(env);

export async function main(): Promise<number> {
  const rcu: Rcu = await Rcu.create({ flavor: "qsbr" });
  const t: RcuThread = rcu.register();
  t.synchronize();
  t.unregister();
  await rcu.close();
  const vm: Vm = await Vm.create({
    granule,
    iaBits: 40,
    poolPages: 256,
    mode: "shared",
    vcpus: 1,
    memslots: [{ ipa: 1 << 30, size: 1 << 30, hostPa: 0x40_0000_0000, backing: "anonymous" }],
  });
  const report = await vm.destroy();
  return report.leakedPages.length + (RcuUsageError.name.length > 0 ? 0 : 1);
}
`;

test("a consumer file and the example strategy type-check against the shipped declarations", async () => {
  await writeFile(join(project, "consumer.ts"), CONSUMER);
  await writeFile(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules/@types")],
        // The example strategy is JavaScript with JSDoc types: check it against the interface too.
        allowJs: true,
        checkJs: true,
      },
      files: ["consumer.ts", "examples/polled-strategy.mjs"],
    }),
  );
  ok(process.execPath, [TSC, "-p", "tsconfig.json"], project);
  // The checker can fail: a wrong type in the consumer must be reported.
  await writeFile(join(project, "consumer.ts"), `${CONSUMER}\nconst wrong: Granule = 8192;\n`);
  const r = run(process.execPath, [TSC, "-p", "tsconfig.json"], project);
  assert.notEqual(r.status, 0, "tsc accepted a granule of 8192");
  assert.match(r.stdout, /consumer\.ts.*Type '8192' is not assignable to type 'Granule'/);
});

/** Entry points whose every export must carry TSDoc: src/mod.ts and the layers' mod.ts. */
const DOCUMENTED = [
  "mod.ts",
  "arch/mod.ts",
  "common/mod.ts",
  "mem/mod.ts",
  "pgtable/mod.ts",
  "sync/mod.ts",
  "testing/mod.ts",
  "kvm/mod.ts",
  "rcu/mod.ts",
  "experiment/mod.ts",
  "report/mod.ts",
  "mmu/mod.ts",
  "check/mod.ts",
  "torture/mod.ts",
];
const PENDING: string[] = [];

/** The TSDoc of an export: on the export statement (`export * as x`), else on what it names. */
function docOf(
  ts: typeof import("typescript"),
  checker: import("typescript").TypeChecker,
  s: import("typescript").Symbol,
): string {
  const decl = s.declarations?.[0];
  if (decl && ts.isNamespaceExport(decl)) {
    const tags = ts.getJSDocCommentsAndTags(decl.parent);
    return tags
      .map((t) => (typeof t.comment === "string" ? t.comment : ""))
      .join("")
      .trim();
  }
  const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
  return ts.displayPartsToString(target.getDocumentationComment(checker)).trim();
}

test("every export of the documented entry points carries TSDoc", async () => {
  const ts = (await import("typescript")).default;
  const files = DOCUMENTED.map((d) => join(ROOT, "src", d));
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const missing: string[] = [];
  let total = 0;
  for (const file of files) {
    const source = program.getSourceFile(file);
    assert.ok(source, file);
    const module = checker.getSymbolAtLocation(source);
    assert.ok(module, `${file} is not a module`);
    for (const exported of checker.getExportsOfModule(module)) {
      total++;
      const target = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const where = target.declarations?.[0]?.getSourceFile().fileName.slice(ROOT.length) ?? "";
      if (PENDING.some((p) => where.startsWith(p)) && !(target.flags & ts.SymbolFlags.ValueModule)) continue;
      if (docOf(ts, checker, exported) === "") missing.push(`${file.slice(ROOT.length)}: ${exported.name}`);
    }
  }
  assert.ok(total > 150, `only ${total} exports found: the checker is not looking`);
  assert.deepEqual(missing, [], `exports without TSDoc:\n${missing.join("\n")}`);
});
