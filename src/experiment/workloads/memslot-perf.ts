/**
 * memslot-perf: KVM's memslot_perf_test, tests 0-4, with its lines. One vCPU; guest memory from
 * 256 MiB split over N memslots (`-s`, all of them by default); each run creates the slots (timed
 * as "slot setup"), then repeats the test's iteration for `-l` seconds:
 *   0 map:                the guest writes one half of a 32 MiB area while the host unmaps the other
 *                         (MADV_DONTNEED: an MMU-notifier unmap), then the halves swap;
 *   1 unmap:              the guest touches one page per 64 MiB half of a 128 MiB area while the host
 *                         unmaps the other half one 4 KiB page at a time;
 *   2 unmap chunked:      the same, 2 MiB at a time;
 *   3 move active area:   the guest keeps writing a 192 KiB area half inside the last slot while the
 *                         host moves that slot away and back (accesses in the hole are MMIO exits);
 *   4 move inactive area: the same moves, the area just below the moved slot.
 * Test 5 (RW) checks guest data, which stage2 does not model. Where the selftest builds a new VM
 * per run, stage2 deletes the previous run's memslots (unmapping them) and creates them anew.
 */
import { AccessMode } from "../../sim/memstress.js";
import { parseInt32 } from "../args.js";
import { ConfigError } from "../errors.js";
import { hostOp, type RunContext, type Workload } from "../runner.js";
import { divTs, formatTs } from "../timespec.js";
import { IA_BITS, PAGE } from "./memstress-vm.js";

const K = 1024;
const M = 1024 * K;
const MEM_EXTRA = 64 * K;
const MEM_GPA = 256 * M;
const MEM_SIZE = 512 * M + MEM_EXTRA;
const MEM_TEST_GPA = MEM_GPA + MEM_EXTRA;
const MOVE_SIZE = 192 * K;
/** Memslots stage2's VM offers this workload (KVM_CAP_NR_MEMSLOTS here); slot 0 stays reserved. */
export const NR_MEMSLOTS = 512;

const TESTS = [
  { name: "map", mem: 32 * M + MEM_EXTRA },
  { name: "unmap", mem: 128 * M + MEM_EXTRA },
  { name: "unmap chunked", mem: 128 * M + MEM_EXTRA },
  { name: "move active area", mem: 0 },
  { name: "move inactive area", mem: 0 },
] as const;

export interface MemslotPerfParams {
  first: number;
  last: number;
  seconds: number;
  runs: number;
  /** Memslots used (the `-s` cap minus the reserved slot 0). */
  nslots: number;
  verbose: boolean;
}

const HELP = `  -s N     memslot cap, slot 0 included: N > 1, or -1 for all ${NR_MEMSLOTS} (default -1)
  -f N     first test to run, 0..4 (default 0)
  -e N     last test to run, 0..4 (default 4; test 5, RW, is not modelled)
  -l SEC   length of each run in seconds (default 5)
  -r N     runs per test (default 1)
  -v       verbose: slot layout lines`;

export const memslotPerf: Workload<MemslotPerfParams> = {
  name: "memslot-perf",
  summary: "memslot_perf_test: map, unmap, unmap chunked, move active and inactive areas",
  getopt: "hvdqs:f:e:l:r:",
  help: HELP,
  parse(f) {
    if (f.has("d"))
      throw new ConfigError("-d (verify guest data) is not modelled: stage2 has no guest memory contents");
    if (f.has("q")) throw new ConfigError("-q (disable the x86 SLOT_ZAP_ALL quirk) does not apply to arm64");
    const get = (k: string) => f.get(k) as string;
    const cap = f.has("s") ? parseInt32(get("s"), "-s (memslot cap)", -1, NR_MEMSLOTS) : -1;
    if (cap <= 1 && cap !== -1)
      throw new ConfigError("-s: slot count cap must be larger than 1 or -1 for no cap");
    const first = f.has("f") ? parseInt32(get("f"), "-f (first test)", 0, 4) : 0;
    if (f.get("e") === "5")
      throw new ConfigError("-e: test 5 (RW) is not modelled: it checks guest data (valid: 0..4)");
    const last = f.has("e") ? parseInt32(get("e"), "-e (last test)", 0, 4) : 4;
    if (first > last)
      throw new ConfigError("-f: first test to run cannot be greater than the last test to run");
    const seconds = f.has("l") ? parseInt32(get("l"), "-l (test length, seconds)", 0, 3600) : 5;
    const runs = f.has("r") ? parseInt32(get("r"), "-r (runs per test)", 1, 1000) : 1;
    return { first, last, seconds, runs, nslots: (cap === -1 ? NR_MEMSLOTS : cap) - 1, verbose: f.has("v") };
  },
  vcpus: () => 1,
  params: (p) => ({ ...p }),
  layout: () => ({
    granule: PAGE,
    iaBits: IA_BITS,
    memslots: [],
    maxMemslots: NR_MEMSLOTS,
    // Every level-3 table of the largest area, twice over.
    poolPages: 2 * Math.ceil(MEM_SIZE / (2 * M)) + 2048,
  }),
  run,
};

interface Slots {
  ids: number[];
  gpas: number[];
}

function createSlots(ctx: RunContext, p: MemslotPerfParams, mem: number): Slots {
  const npages = mem / PAGE;
  const per = Math.floor(npages / p.nslots);
  const rem = npages % p.nslots;
  if (per === 0)
    throw new ConfigError(`-s: ${p.nslots} memslots are too many for ${npages} pages; decrease the cap`);
  const out: Slots = { ids: [], gpas: [] };
  let gpa = MEM_GPA;
  for (let i = 0; i < p.nslots; i++) {
    const pages = per + (i === p.nslots - 1 ? rem : 0);
    out.ids.push(ctx.vm.createMemslot({ ipa: gpa, size: pages * PAGE, hostPa: gpa, backing: "anonymous" }));
    out.gpas.push(gpa);
    gpa += pages * PAGE;
  }
  return out;
}

async function run(ctx: RunContext, p: MemslotPerfParams): Promise<void> {
  // One vCPU whose slice is the whole slot area; each pass's range is set per step.
  const slice = { gpa: MEM_GPA, pages: MEM_SIZE / PAGE, pageSize: PAGE, seed: 1, vcpu: 0 };
  const { host, finished } = await ctx.startMemstress([slice], (h) => h.setAccess(0, false, AccessMode.NONE));
  await host.waitAll(0);
  let it = 0;
  const pageOf = (gpa: number) => (gpa - MEM_GPA) / PAGE;
  /** One guest pass writing `pages` pages from `gpa`, while `hostWork` runs. */
  const pass = async (gpa: number, pages: number, hostWork: () => void) => {
    host.setAccess(100, false, AccessMode.WRITE);
    host.setRange(pageOf(gpa), pages, 1);
    host.start(++it);
    hostWork();
    await host.waitAll(it);
  };
  const unmapChunks = (gpa: number, size: number, chunk: number) => {
    for (let a = gpa; a < gpa + size; a += chunk) ctx.vm.unmap(a, chunk);
  };
  ctx.line(`Random seed: 0x${ctx.seed.toString(16)}`);
  let bestSetup: bigint | null = null;
  for (let t = p.first; t <= p.last; t++) {
    const test = TESTS[t] as (typeof TESTS)[number];
    const mem = test.mem || MEM_SIZE;
    if (t !== p.first) ctx.line("");
    ctx.line(`Testing ${test.name} performance with ${p.runs} runs, ${p.seconds} seconds each`);
    let best: { avg: bigint; loops: number } | null = null;
    for (let r = 0; r < p.runs; r++) {
      ctx.progress(`test ${t} run`, r, p.runs);
      if (p.verbose) {
        const per = Math.floor(mem / PAGE / p.nslots);
        ctx.line(
          `Adding slots 1..${p.nslots}, each slot with ${per} pages + ${(mem / PAGE) % p.nslots} extra pages last`,
        );
      }
      let slots: Slots = { ids: [], gpas: [] };
      const setup = hostOp(ctx, () => {
        slots = createSlots(ctx, p, mem);
      });
      if (test.mem === 0 && (bestSetup === null || setup < bestSetup)) bestSetup = setup;
      const lastGpa = slots.gpas[slots.gpas.length - 1] as number;
      const lastId = slots.ids[slots.ids.length - 1] as number;
      if (t >= 3 && MEM_GPA + mem - lastGpa < MOVE_SIZE / 2) {
        throw new ConfigError("-s: memslot count too high for this test, decrease the cap");
      }
      const area = t === 3 ? lastGpa - MOVE_SIZE / 2 : lastGpa - MOVE_SIZE;
      if (t >= 3) {
        // The guest writes its area back to back; accesses into the moved slot's hole are MMIO.
        host.setAccess(100, false, AccessMode.WRITE);
        host.setRange(pageOf(area), MOVE_SIZE / PAGE, 1);
        host.allowMmio(true);
        host.start(-1);
      }
      const t0 = process.hrtime.bigint();
      const limit = BigInt(Math.round(p.seconds * 1e9));
      let loops = 0;
      let runtime = 0n;
      for (;;) {
        runtime = process.hrtime.bigint() - t0;
        if (runtime >= limit) break;
        if (t === 0) {
          const half = 16 * M;
          await pass(MEM_TEST_GPA, half / PAGE, () => ctx.vm.unmap(MEM_TEST_GPA + half, half));
          await pass(MEM_TEST_GPA + half, half / PAGE, () => ctx.vm.unmap(MEM_TEST_GPA, half));
        } else if (t === 1 || t === 2) {
          const half = 64 * M;
          const chunk = t === 1 ? PAGE : 2 * M;
          await pass(MEM_TEST_GPA, 1, () => unmapChunks(MEM_TEST_GPA + half, half, chunk));
          await pass(MEM_TEST_GPA + half, 1, () => unmapChunks(MEM_TEST_GPA, half, chunk));
        } else {
          ctx.vm.moveMemslot(lastId, MEM_GPA + MEM_SIZE);
          ctx.vm.moveMemslot(lastId, lastGpa);
          // Let the event loop breathe (sampling, vCPU failure reports) between moves.
          if (loops % 64 === 63) await new Promise((res) => setImmediate(res));
        }
        loops++;
      }
      if (t >= 3) {
        // Park the guest on an empty pass before the slots go away.
        host.setAccess(0, false, AccessMode.NONE);
        host.start(++it);
        await host.waitAll(it);
        host.allowMmio(false);
      }
      for (const id of slots.ids) ctx.vm.deleteMemslot(id);
      ctx.phase(`${test.name} run ${r + 1}`, runtime);
      ctx.line(`Test took ${formatTs(setup)} for slot setup + ${formatTs(runtime)} all iterations`);
      if (loops === 0) {
        ctx.line("No full loops done - too short test time or system too loaded?");
        continue;
      }
      const avg = divTs(runtime, loops);
      ctx.line(`Done ${loops} iterations, avg ${formatTs(avg)} each`);
      if (best === null || avg < best.avg) best = { avg, loops };
    }
    if (best !== null) {
      ctx.line(`Best runtime result was ${formatTs(best.avg)} per iteration (with ${best.loops} iterations)`);
    }
  }
  if (bestSetup !== null) ctx.line(`Best slot setup time for the whole test area was ${formatTs(bestSetup)}`);
  host.quit();
  await finished;
}
