/**
 * The checkers of a run, in one place: what the MMU model's checkers recorded while the vCPUs ran
 * (break-before-make, stale TLB, hardware use-after-free through tables and walk caches, dirty
 * log), what the software walkers recorded (use-after-free by poison and generation, corrupt
 * descriptors), and what teardown found (refcount audit, leaked pages).
 *
 * Each finding names the address, the level and the threads involved where the checker knows
 * them. A run passes when there is no finding.
 */
import { formatViolation, type Violation } from "../mmu/mod.js";

/** One failed check. */
export interface Finding {
  /** Which checker: "break-before-make", "stale TLB", "use after free", "dirty log", "refcount audit", "leak", "corrupt". */
  checker: string;
  count: number;
  /** Address, level, threads: one line. */
  detail: string;
}

/** What a run gives the checkers. */
export interface CheckInput {
  /** The MMU model's findings (Mmu.violations()); empty with the model off. */
  mmuViolations: readonly Violation[];
  /** Software walkers' use-after-free detections and the first one's description. */
  softwareUaf: number;
  firstFault: string | null;
  corrupt: number;
  /** Refcount audit at teardown (auditTable().problems). */
  auditProblems: readonly string[];
  /** Pages still allocated after teardown and the RCU barrier. */
  leakedPages: readonly number[];
}

/** Every finding of a run; empty means every check passed. */
export function findings(c: CheckInput): Finding[] {
  const out: Finding[] = c.mmuViolations.map((v) => ({
    checker: v.kind,
    count: v.count,
    detail: formatViolation(v),
  }));
  if (c.softwareUaf > 0)
    out.push({
      checker: "use after free",
      count: c.softwareUaf,
      detail: `software walk: ${c.firstFault ?? "?"}`,
    });
  if (c.corrupt > 0)
    out.push({ checker: "corrupt", count: c.corrupt, detail: c.firstFault ?? "corrupt descriptor" });
  if (c.auditProblems.length > 0)
    out.push({
      checker: "refcount audit",
      count: c.auditProblems.length,
      detail: c.auditProblems.slice(0, 3).join("; "),
    });
  if (c.leakedPages.length > 0)
    out.push({
      checker: "leak",
      count: c.leakedPages.length,
      detail: `pages ${c.leakedPages.slice(0, 8).join(", ")} still allocated after teardown`,
    });
  return out;
}

/** One line per finding, for reports and assertion messages. */
export function formatFindings(f: readonly Finding[]): string {
  return f.length === 0 ? "no finding" : f.map((x) => `${x.checker} (${x.count}): ${x.detail}`).join("\n");
}
