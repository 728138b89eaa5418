import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessMode, GuestReplay, ParkMiller } from "./memstress.js";

describe("ParkMiller", () => {
  test("next() is seed * 48271 mod 2^31-1, as guest_random_u32()", () => {
    const r = new ParkMiller(1);
    assert.equal(r.next(), 48271);
    assert.equal(r.next(), (48271 * 48271) % 2147483647);
    assert.equal(r.next(), 1291394886);
  });

  test("seed 0 stays 0 forever", () => {
    const r = new ParkMiller(0);
    for (let i = 0; i < 5; i++) assert.equal(r.next(), 0);
  });

  test("products stay exact in doubles for the largest state", () => {
    const r = new ParkMiller(2147483646);
    assert.equal(r.next(), Number((2147483646n * 48271n) % 2147483647n));
  });
});

describe("GuestReplay", () => {
  const slice = { gpa: 0, pages: 64, pageSize: 4096, seed: 7, vcpu: 1 };

  test("pass() at 100% writes marks every page, at 0% none", () => {
    const w = new Uint8Array(64);
    new GuestReplay(slice).pass(100, false, AccessMode.MIXED, w);
    assert.equal(
      w.reduce((a, b) => a + b, 0),
      64,
    );
    const n = new Uint8Array(64);
    new GuestReplay(slice).pass(0, false, AccessMode.MIXED, n);
    assert.equal(
      n.reduce((a, b) => a + b, 0),
      0,
    );
  });

  test("in order: one draw per page decides the write (vCPU i seeds with seed + i)", () => {
    const w = new Uint8Array(64);
    new GuestReplay(slice).pass(50, false, AccessMode.MIXED, w);
    const r = new ParkMiller(8);
    for (let i = 0; i < 64; i++) assert.equal(w[i], r.next() % 100 < 50 ? 1 : 0, `page ${i}`);
  });

  test("random access: the page draw comes before the write draw", () => {
    const w = new Uint8Array(64);
    new GuestReplay(slice).pass(50, true, AccessMode.MIXED, w);
    const r = new ParkMiller(8);
    const want = new Uint8Array(64);
    for (let i = 0; i < 64; i++) {
      const page = r.next() % 64;
      if (r.next() % 100 < 50) want[page] = 1;
    }
    assert.deepEqual(w, want);
  });

  test("the state carries over from pass to pass", () => {
    const a = new GuestReplay(slice);
    const first = new Uint8Array(64);
    const second = new Uint8Array(64);
    a.pass(50, false, AccessMode.MIXED, first);
    a.pass(50, false, AccessMode.MIXED, second);
    assert.notDeepEqual(first, second);
  });
});
