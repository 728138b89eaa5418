import assert from "node:assert/strict";
import { test } from "node:test";
import { log2Bucket, log2Quantile, summarizeLog2 } from "./log2-histogram.js";

test("log2Bucket() puts [2^b, 2^(b+1)) ns in bucket b and clamps both ends", () => {
  assert.equal(log2Bucket(Number.NaN), 0);
  assert.equal(log2Bucket(0), 0);
  assert.equal(log2Bucket(1.9), 0);
  assert.equal(log2Bucket(2), 1);
  assert.equal(log2Bucket(3.99), 1);
  assert.equal(log2Bucket(4), 2);
  assert.equal(log2Bucket(1023), 9);
  assert.equal(log2Bucket(1024), 10);
  assert.equal(log2Bucket(2 ** 70), 63);
  assert.equal(log2Bucket(2 ** 50, 40), 39);
});

test("summarizeLog2() gives bucket upper bounds for p50, p99 and max", () => {
  const counts = new Int32Array(40);
  for (let i = 0; i < 98; i++) counts[log2Bucket(100, 40)]++; // bucket 6: [64, 128)
  counts[log2Bucket(5000, 40)]++; // bucket 12
  counts[log2Bucket(1e6, 40)]++; // bucket 19
  const h = summarizeLog2(counts);
  assert.equal(h.samples, 100);
  assert.equal(h.p50Ns, 128);
  assert.equal(h.p99Ns, 8192);
  assert.equal(h.maxNs, 2 ** 20);
  assert.equal(h.counts.length, 40);
  counts[0] = 5;
  assert.equal(h.counts[0], 0, "the summary holds a copy, not the live counts");
});

test("summarizeLog2() of an empty histogram is all zero", () => {
  const h = summarizeLog2(new Float64Array(64));
  assert.deepEqual([h.samples, h.p50Ns, h.p99Ns, h.maxNs], [0, 0, 0, 0]);
  assert.equal(log2Quantile([], 0.5), 0);
});
