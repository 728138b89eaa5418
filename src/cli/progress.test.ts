import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatLine, type ProgressOptions, type ProgressStream, startProgress } from "./progress.js";

/** A fake terminal and a fake clock: every test is deterministic, no wall-clock assertions. */
function fake(isTTY: boolean, columns = 80) {
  const writes: string[] = [];
  const stream: ProgressStream = {
    isTTY,
    columns,
    write(text: string) {
      writes.push(text);
      return true;
    },
  };
  let clock = 0;
  let pending: (() => void) | undefined;
  let cancelled = false;
  const options: ProgressOptions = {
    stream,
    now: () => clock,
    schedule(fn) {
      pending = fn;
      return () => {
        cancelled = true;
      };
    },
  };
  return {
    writes,
    options,
    advance(ms: number) {
      clock += ms;
    },
    fireTimer() {
      pending?.();
    },
    get cancelled() {
      return cancelled;
    },
  };
}

const ERASE = "\x1b[K";

describe("startProgress()", () => {
  test("draws nothing on a stream that is not a TTY", () => {
    const f = fake(false);
    const p = startProgress("faults", 10, f.options);
    f.advance(5000);
    f.fireTimer();
    p.update(5);
    p.done();
    assert.deepEqual(f.writes, []);
  });

  test("draws nothing when disabled (--json) even on a TTY", () => {
    const f = fake(true);
    const p = startProgress("faults", 10, { ...f.options, enabled: false });
    f.advance(5000);
    f.fireTimer();
    p.update(5);
    p.done();
    assert.deepEqual(f.writes, []);
  });

  test("a run shorter than the delay leaves no trace", () => {
    const f = fake(true);
    const p = startProgress("faults", 10, f.options);
    for (let i = 1; i <= 10; i++) {
      f.advance(50);
      p.update(i);
    }
    p.done();
    assert.deepEqual(f.writes, []);
    assert.ok(f.cancelled, "done() cancels the delayed first draw");
  });

  test("the delayed timer draws the latest state of a run stuck in one step", () => {
    const f = fake(true);
    const p = startProgress("faults", 4, f.options);
    p.update(1, "per-table");
    f.advance(1000);
    f.fireTimer();
    assert.equal(f.writes.length, 1);
    assert.equal(f.writes[0], "\rfaults  1/4 (25%)  per-table  1s\x1b[K");
    p.done();
    assert.equal(f.writes.at(-1), "\r\x1b[K", "done() erases the line");
  });

  test("redraws at most once per 100 ms however often update() is called", () => {
    const f = fake(true);
    const p = startProgress("bench", undefined, f.options);
    f.advance(1000);
    for (let i = 0; i < 1000; i++) {
      f.advance(1); // 1000 updates over one second
      p.update(i);
    }
    p.done();
    const draws = f.writes.filter((w) => w !== "\r\x1b[K").length;
    assert.ok(draws >= 9 && draws <= 11, `${draws} redraws in one second`);
    const last = f.writes.at(-2) ?? "";
    assert.ok(last.startsWith("\rbench  9") && last.endsWith("s\x1b[K"), JSON.stringify(last));
  });

  test("while no update arrives the line is redrawn each second so the elapsed time moves", () => {
    const f = fake(true);
    const p = startProgress("bench", 3, f.options);
    p.update(1, "step");
    f.advance(1000);
    f.fireTimer(); // the first draw, after the delay
    f.advance(1000);
    f.fireTimer(); // the tick one second later
    assert.deepEqual(f.writes, ["\rbench  1/3 (33%)  step  1s\x1b[K", "\rbench  1/3 (33%)  step  2s\x1b[K"]);
    p.update(2, "next", 4);
    assert.equal(f.writes.length, 2, "an update within 100 ms of a draw waits");
    f.advance(100);
    p.update(2, "next", 4);
    assert.equal(f.writes.at(-1), "\rbench  2/4 (50%)  next  2s\x1b[K", "a new total replaces the old");
    p.done();
  });

  test("calls after done() are ignored and the timer does not draw", () => {
    const f = fake(true);
    const p = startProgress("x", 2, f.options);
    f.advance(2000);
    p.update(1);
    p.done();
    const n = f.writes.length;
    p.update(2);
    f.fireTimer();
    p.done();
    assert.equal(f.writes.length, n);
  });

  test("a line longer than the terminal is cut so it cannot wrap", () => {
    const f = fake(true, 30);
    const p = startProgress("a-very-long-label-for-a-run", 1000, f.options);
    f.advance(1000);
    p.update(500, "x".repeat(100));
    const line = f.writes[0]!.slice(1, -ERASE.length);
    assert.equal(line.length, 29);
    assert.ok(line.endsWith("…"));
    p.done();
  });
});

describe("formatLine()", () => {
  test("shows count, percentage, detail and whole seconds", () => {
    assert.equal(formatLine("run", 3, 12, "bounded", 2500), "run  3/12 (25%)  bounded  2s");
    assert.equal(formatLine("run", 7, undefined, "", 0), "run  7  0s");
    assert.equal(formatLine("run", 20, 10, "", 0), "run  20/10 (100%)  0s");
  });
});
