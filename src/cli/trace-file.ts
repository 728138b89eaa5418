/**
 * `--trace FILE`: every run of a command becomes one process of a Chrome/Perfetto JSON trace (its
 * vCPU, host and RCU-callback-worker threads as named tracks), written atomically at the end.
 */
import type { TraceCollection } from "../common/trace.js";
import { type ChromeTraceEvent, toChromeTrace } from "../report/perfetto.js";
import { writeAtomic } from "./report-files.js";

/** Where the trace goes and what the runs recorded so far. */
export interface TraceRequest {
  path: string;
  runs: { label: string; trace: TraceCollection; phaseNames: string[] }[];
}

export async function writeTraceFile(req: TraceRequest): Promise<void> {
  const traceEvents: ChromeTraceEvent[] = [];
  let dropped = 0;
  for (const [i, run] of req.runs.entries()) {
    const t = toChromeTrace(run.trace, { processName: run.label, phaseNames: run.phaseNames });
    for (const e of t.traceEvents) traceEvents.push({ ...e, pid: i + 1 });
    dropped += t.otherData.droppedEvents;
  }
  await writeAtomic(
    req.path,
    JSON.stringify({
      traceEvents,
      displayTimeUnit: "ms",
      otherData: { runs: req.runs.length, droppedEvents: dropped },
    }),
  );
}
