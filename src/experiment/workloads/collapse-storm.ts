/**
 * collapse-storm: the seed's question in its sharpest form. Each round, every vCPU populates its
 * slice with 4K pages and then collapses it into 2 MiB blocks (each collapse unlinks one level-3
 * table under a shared walk); the host unmaps the region (an MMU notifier); the vCPUs populate
 * again and collapse whole 1 GiB blocks (each collapse unlinks a level-2 table and every level-3
 * table below it: one deep subtree). Every unlinked subtree goes to the reclaim strategy.
 *
 * Lines in the selftests' style: `Round %d <phase> time: %ld.%.9lds`.
 */
import { parseInt32, parseSize } from "../args.js";
import { ConfigError } from "../errors.js";
import { hostOp, type RunContext, type Workload } from "../runner.js";
import { formatTs } from "../timespec.js";
import type { VcpuCommand } from "../../sim/protocol.js";
import { IA_BITS, MAX_TEST_BYTES, PAGE } from "./memstress-vm.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

export interface CollapseStormParams {
  vcpus: number;
  bytesPerVcpu: number;
  rounds: number;
}

const HELP = `  -v N   vCPUs (default 2, 1..64)
  -b SIZE bytes each vCPU populates and collapses, a multiple of 2M (default 256M)
  -i N   rounds (default 2, 1..1000)`;

function layout(p: CollapseStormParams) {
  const size = p.vcpus * p.bytesPerVcpu;
  const slotSize = Math.ceil(size / GIB) * GIB;
  // A GiB-aligned slot at 512 GiB: every 1 GiB block of the region lies inside it.
  const ipa = 512 * GIB;
  return { size, slotSize, ipa };
}

export const collapseStorm: Workload<CollapseStormParams> = {
  name: "collapse-storm",
  summary: "populate 4K pages, collapse into 2M and 1G blocks, again and again (unlinked subtrees)",
  getopt: "v:b:i:",
  help: HELP,
  parse(short) {
    const vcpus = short.has("v") ? parseInt32(short.get("v") as string, "-v", 1, 64) : 2;
    const bytesPerVcpu = short.has("b") ? parseSize(short.get("b") as string, "-b") : 256 * MIB;
    if (bytesPerVcpu <= 0 || bytesPerVcpu % (2 * MIB) !== 0 || bytesPerVcpu > 64 * GIB) {
      throw new ConfigError(`-b: ${bytesPerVcpu} bytes is not a multiple of 2M from 2M to 64G`);
    }
    if (vcpus * bytesPerVcpu > MAX_TEST_BYTES) {
      throw new ConfigError(
        `-b: ${vcpus} vCPUs x ${bytesPerVcpu} bytes exceeds the ${MAX_TEST_BYTES / GIB} GiB a run may map`,
      );
    }
    const rounds = short.has("i") ? parseInt32(short.get("i") as string, "-i", 1, 1000) : 2;
    return { vcpus, bytesPerVcpu, rounds };
  },
  vcpus: (p) => p.vcpus,
  params: (p) => ({ vcpus: p.vcpus, bytesPerVcpu: p.bytesPerVcpu, rounds: p.rounds }),
  layout(p) {
    const { size, slotSize, ipa } = layout(p);
    const l3 = size / (2 * MIB);
    return {
      granule: PAGE,
      iaBits: IA_BITS,
      memslots: [{ ipa, size: slotSize, hostPa: ipa, backing: "anonymous" }],
      // Two full populations may be in flight: the one being unlinked and the next.
      poolPages: 2 * (l3 + slotSize / GIB) + 64 * p.vcpus + 1024,
    };
  },
  async run(ctx: RunContext, p: CollapseStormParams) {
    const { size, ipa } = layout(p);
    const slice = (v: number) => ({ start: ipa + v * p.bytesPerVcpu, size: p.bytesPerVcpu });
    ctx.line(`Testing guest mode: PA-bits:${IA_BITS},  VA-bits:48,  4K pages`);
    ctx.line(`guest physical test memory: [0x${ipa.toString(16)}, 0x${(ipa + size).toString(16)})`);
    const populate = () =>
      ctx.vcpuPhase(
        Array.from({ length: p.vcpus }, (_, v): VcpuCommand => ({ type: "populate", ...slice(v) })),
      );
    const collapse2M = () =>
      ctx.vcpuPhase(
        Array.from(
          { length: p.vcpus },
          (_, v): VcpuCommand => ({ type: "collapse", ...slice(v), blockSize: 2 * MIB }),
        ),
      );
    // The region's 1 GiB blocks split into contiguous runs, one per vCPU (possibly empty).
    const gibs = Math.ceil(size / GIB);
    const collapse1G = () =>
      ctx.vcpuPhase(
        Array.from({ length: p.vcpus }, (_, v): VcpuCommand => {
          const from = Math.floor((v * gibs) / p.vcpus);
          const to = Math.floor(((v + 1) * gibs) / p.vcpus);
          return { type: "collapse", start: ipa + from * GIB, size: (to - from) * GIB, blockSize: GIB };
        }),
      );
    const unmapAll = () => hostOp(ctx, () => ctx.vm.unmap(ipa, gibs * GIB));
    for (let r = 1; r <= p.rounds; r++) {
      ctx.progress("round", r - 1, p.rounds);
      const steps: [string, () => Promise<bigint> | bigint][] = [
        ["populate memory", populate],
        ["collapse 2M", collapse2M],
        ["unmap", unmapAll],
        ["populate memory again", populate],
        ["collapse 1G", collapse1G],
        ["unmap", unmapAll],
      ];
      for (const [name, step] of steps) {
        const ns = await step();
        ctx.phase(`Round ${r} ${name}`, ns);
        ctx.line(`Round ${r} ${name} time: ${formatTs(ns)}`);
      }
    }
    ctx.progress("round", p.rounds, p.rounds);
  },
};
