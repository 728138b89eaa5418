import assert from "node:assert/strict";
import { test } from "node:test";
import {
  chainLength,
  FREE_CHUNK,
  Head,
  HeadKind,
  initHeads,
  popFreeChunk,
  pushCallback,
  pushFreeChunk,
  takeCallbacks,
} from "./heads.js";
import { Ctl, NIL } from "./layout.js";

function region(heads: number) {
  const ctlSab = new SharedArrayBuffer(Ctl.WORDS * 4);
  const ctl = new Int32Array(ctlSab);
  ctl[Ctl.CB_TOP] = NIL;
  return { ctl, top64: new BigUint64Array(ctlSab), link: new Int32Array(heads * Head.STRIDE) };
}

test("initHeads() puts the whole pool on the free stack in chunks of FREE_CHUNK", () => {
  const { top64, link } = region(200);
  initHeads(top64, link, 150, 200);
  const sizes: number[] = [];
  for (let c = popFreeChunk(top64, link); c !== NIL; c = popFreeChunk(top64, link))
    sizes.push(chainLength(link, c));
  assert.deepEqual(
    sizes.sort((a, b) => a - b),
    [22, FREE_CHUNK, FREE_CHUNK],
  );
  assert.equal(link[160 * Head.STRIDE + Head.KIND], HeadKind.IDLE);
  assert.equal(link[10 * Head.STRIDE + Head.KIND], HeadKind.FREE);
});

test("popFreeChunk() sees a chunk pushed back after a pop (the tag moves on)", () => {
  const { top64, link } = region(FREE_CHUNK * 2);
  initHeads(top64, link, FREE_CHUNK * 2, FREE_CHUNK * 2);
  const tag0 = Atomics.load(top64, Ctl.FREE_TOP_64) >> 32n;
  const a = popFreeChunk(top64, link);
  pushFreeChunk(top64, link, a);
  assert.equal(Atomics.load(top64, Ctl.FREE_TOP_64) >> 32n, tag0 + 2n);
  assert.equal(popFreeChunk(top64, link), a);
});

test("takeCallbacks() takes every pushed head, newest first", () => {
  const { ctl, link } = region(8);
  for (const h of [3, 5, 1]) pushCallback(ctl, link, h);
  const order: number[] = [];
  for (let h = takeCallbacks(ctl); h !== NIL; h = link[h * Head.STRIDE + Head.NEXT] as number) order.push(h);
  assert.deepEqual(order, [1, 5, 3]);
  assert.equal(takeCallbacks(ctl), NIL);
});
