/**
 * A one-line progress reporter for long runs, drawn on stderr with `\r` redraws.
 *
 * Contract:
 * - It draws only when the stream is a TTY (and TERM is not "dumb"); a pipe, a file, CI logs and
 *   `--json` runs (pass `enabled: false`) never see a byte of it.
 * - Nothing is drawn during the first second (`delayMs`): a short run leaves no trace. A timer
 *   (unref'd, so it never keeps the process alive) draws the latest state once the delay has passed
 *   and every second after, so a run that sits in one long step still shows that it is alive.
 * - Redraws are rate-limited to one per `intervalMs` (100 ms: at most ~10 per second); updates in
 *   between only record the state.
 * - `done()` erases the line (`\r` + erase-to-end-of-line) if anything was drawn, and makes every
 *   later call a no-op. Call it before printing results on stdout or stderr.
 * - The line is cut to the terminal width so it never wraps (a wrapped line cannot be redrawn).
 *
 * The progress line is written on the caller's thread: a thread blocked in Atomics.wait draws
 * nothing until it returns, which is why long runs report from the host loop, not from workers.
 */

/** The part of a tty.WriteStream the reporter needs; tests pass a fake. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): boolean;
}

export interface ProgressOptions {
  /** Where to draw (default process.stderr). */
  stream?: ProgressStream;
  /** Force on or off; default: on when the stream is a TTY and TERM is not "dumb". */
  enabled?: boolean;
  /** Nothing is drawn before this many ms (default 1000). */
  delayMs?: number;
  /** Minimum ms between two redraws (default 100). */
  intervalMs?: number;
  /** Clock in ms (default performance.now); tests pass a fake. */
  now?: () => number;
  /** Schedules the first draw after `delayMs`; returns a cancel function. Tests pass a fake. */
  schedule?: (fn: () => void, ms: number) => () => void;
}

export interface Progress {
  /**
   * Records `done` units and an optional short detail; redraws if due. `total` replaces the total
   * given at start (for runs that learn it as they go).
   */
  update(done: number, detail?: string, total?: number): void;
  /** Erases the line if one was drawn; later calls do nothing. */
  done(): void;
}

const ERASE_LINE = "\x1b[K";
/** Redraw period while no update arrives (the elapsed time still moves). */
const TICK_MS = 1000;
const NOOP: Progress = { update() {}, done() {} };

function defaultSchedule(fn: () => void, ms: number): () => void {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
}

/** True when `stream` is an interactive terminal that can take `\r` redraws. */
export function isInteractive(stream: ProgressStream): boolean {
  return stream.isTTY === true && process.env.TERM !== "dumb";
}

/**
 * Starts a progress line for a run named `label` with `total` units of work (omit it when the
 * amount is not known: the line then shows the count alone). See the file comment for the contract.
 */
export function startProgress(label: string, total?: number, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (!(options.enabled ?? isInteractive(stream))) return NOOP;
  const now = options.now ?? (() => performance.now());
  const delayMs = options.delayMs ?? 1000;
  const intervalMs = options.intervalMs ?? 100;
  const started = now();
  let doneUnits = 0;
  let totalUnits = total;
  let detail = "";
  let drawn = false;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let finished = false;

  const draw = (): void => {
    const t = now();
    lastDraw = t;
    drawn = true;
    stream.write(
      `\r${fitToWidth(formatLine(label, doneUnits, totalUnits, detail, t - started), stream)}${ERASE_LINE}`,
    );
  };
  // The first draw after delayMs, then one a second so the elapsed time moves in a long step.
  const schedule = options.schedule ?? defaultSchedule;
  let cancel = (): void => {};
  const tick = (): void => {
    if (finished) return;
    draw();
    cancel = schedule(tick, TICK_MS);
  };
  cancel = schedule(tick, delayMs);

  return {
    update(units: number, text?: string, newTotal?: number): void {
      if (finished) return;
      doneUnits = units;
      if (newTotal !== undefined) totalUnits = newTotal;
      if (text !== undefined) detail = text;
      const t = now();
      if (t - started >= delayMs && t - lastDraw >= intervalMs) draw();
    },
    done(): void {
      if (finished) return;
      finished = true;
      cancel();
      if (drawn) stream.write(`\r${ERASE_LINE}`);
    },
  };
}

/** `label  done/total (pct%)  detail  12s`, or `label  done  detail  12s` without a total. */
export function formatLine(
  label: string,
  done: number,
  total: number | undefined,
  detail: string,
  elapsedMs: number,
): string {
  const count =
    total !== undefined && total > 0
      ? `${done}/${total} (${Math.min(100, Math.floor((done / total) * 100))}%)`
      : String(done);
  const parts = [label, count];
  if (detail !== "") parts.push(detail);
  parts.push(`${Math.floor(elapsedMs / 1000)}s`);
  return parts.join("  ");
}

function fitToWidth(line: string, stream: ProgressStream): string {
  const width = stream.columns !== undefined && stream.columns > 1 ? stream.columns - 1 : 79;
  return line.length <= width ? line : `${line.slice(0, width - 1)}…`;
}
