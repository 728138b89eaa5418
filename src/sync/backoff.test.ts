import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "../common/errno.js";
import {
  awaitClear,
  bumpAndWake,
  DEFAULT_BACKOFF,
  makeBackoffPolicy,
  spinUntilClear,
  spinWhile,
  waitWhile,
  wakeSleepers,
} from "./backoff.js";

function words(n = 4): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * 4));
}

test("makeBackoffPolicy() fills defaults and rejects bad values", () => {
  assert.deepEqual(makeBackoffPolicy(), DEFAULT_BACKOFF);
  assert.deepEqual(makeBackoffPolicy({ spins: 0 }), { spins: 0, sleepMs: DEFAULT_BACKOFF.sleepMs });
  assert.throws(() => makeBackoffPolicy({ spins: -1 }), RangeError);
  assert.throws(() => makeBackoffPolicy({ spins: 1.5 }), RangeError);
  assert.throws(() => makeBackoffPolicy({ sleepMs: 0 }), /sleepMs 0 is not in \(0, 1000\]/);
  assert.throws(() => makeBackoffPolicy({ sleepMs: "1" as unknown as number }), TypeError);
});

test("spinWhile() reports whether the word changed", () => {
  const a = words();
  assert.equal(spinWhile(a, 0, 0, 10), false);
  assert.equal(spinWhile(a, 0, 7, 10), true);
  assert.equal(spinWhile(a, 0, 0, 0), false);
});

test("spinUntilClear() tests only the masked bits", () => {
  const a = words();
  a[0] = 0b1010;
  assert.equal(spinUntilClear(a, 0, 0b0101, 3), true);
  assert.equal(spinUntilClear(a, 0, 0b0010, 3), false);
});

test("waitWhile() returns OK at once when the word differs, TIMEDOUT when it never changes", () => {
  const a = words();
  assert.equal(waitWhile(a, 0, 1), Errno.OK);
  assert.equal(waitWhile(a, 0, 0, { spins: 4, sleepMs: 1 }, 3), Errno.TIMEDOUT);
});

test("awaitClear() returns without sleeping when the bits are clear", () => {
  const a = words();
  a[0] = 0x10;
  assert.equal(awaitClear(a, 0, 0x01, 1, 0x100), 0);
  assert.equal(a[0], 0x10, "no sleep bit is published when there is no need to sleep");
});

test("wakeSleepers() clears the sleep bit and advances the sequence word", () => {
  const a = words();
  a[0] = 0x101;
  wakeSleepers(a, 0, 0x100, 1);
  assert.equal(a[0], 0x001);
  assert.equal(a[1], 1);
  bumpAndWake(a, 1, 1);
  assert.equal(a[1], 2);
});
