/**
 * Whole-table consistency audit, for tests and after stress runs (call it with no walker running):
 * every reachable table page is live and in the TABLE state, its refcount is 1 + its counted
 * entries, no entry is left locked, and no table descriptor points outside the pool.
 */
import { decodeOa, pteIsCounted, pteIsLocked, pteIsTable } from "../arch/descriptor.js";
import { PageState } from "../mem/mod.js";
import type { Stage2 } from "./stage2.js";

/** What auditTable() found: tables and entries visited, and up to `maxProblems` problems. */
export interface AuditResult {
  tables: number;
  entries: number;
  problems: string[];
}

/**
 * Audits the whole table from the root. Only while no walker runs (plain reads of a
 * quiescent tree); returns the problems instead of throwing.
 */
export function auditTable(pgt: Stage2, maxProblems = 20): AuditResult {
  const out: AuditResult = { tables: 0, entries: 0, problems: [] };
  const root = pgt.rootPage;
  if (root < 0) return out;
  for (let i = 0; i < pgt.geo.pgdPages; i++) auditPage(pgt, root + i, pgt.geo.startLevel, out, maxProblems);
  return out;
}

function auditPage(pgt: Stage2, page: number, level: number, out: AuditResult, max: number): void {
  const problem = (text: string) => {
    if (out.problems.length < max) out.problems.push(`page ${page} (L${level}): ${text}`);
  };
  out.tables++;
  const state = pgt.pool.state(page);
  if (state !== PageState.TABLE) problem(`reachable but in state ${state}`);
  const base = page * pgt.entriesPerPage;
  let counted = 0;
  for (let i = 0; i < pgt.entriesPerPage; i++) {
    const pte = Atomics.load(pgt.ptes, base + i);
    if (pte === 0n) continue;
    out.entries++;
    if (pteIsLocked(pte)) problem(`entry ${i} left locked`);
    if (pteIsCounted(pte)) counted++;
    if (pteIsTable(pte, level)) {
      const child = pgt.pool.paToPage(decodeOa(pte, pgt.geo.granule));
      if (child < 0) problem(`entry ${i} points outside the pool`);
      else auditPage(pgt, child, level + 1, out, max);
    }
  }
  const ref = pgt.pool.refcount(page);
  if (ref !== 1 + counted) problem(`refcount ${ref}, expected 1 + ${counted} counted entries`);
}
