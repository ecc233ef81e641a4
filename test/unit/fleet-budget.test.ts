// The EC2 budget of a rollout as arithmetic: one DescribeInstances per max(poll, N/5 s), jittered
// longer, never shorter, so N nodes stay under 5 calls/s of the Describe bucket's 20/s refill.
import { describe, expect, test } from "bun:test";
import { backoffMs, describeIntervalMs, ITEM_BYTES, pagesPerRead, PARTITION_RRU_PER_SEC, queryIntervalMs, READ_BUDGET_RRU_PER_SEC, rruPerRead } from "../../agent/fleet/budget.ts";
import { waveSizes, waveOf, hash53 } from "../../agent/fleet/rank.ts";

describe("describeIntervalMs", () => {
  const cases: [poll: number, nodes: number, jitter: number, want: number][] = [
    [30_000, 1, 0, 30_000],
    [30_000, 150, 0, 30_000],          // 150/5 = 30 s: the poll still rules
    [30_000, 1000, 0, 200_000],        // 1000 nodes: one read each 200 s, 5 calls/s in all
    [30_000, 10_000, 0, 2_000_000],
    [30_000, 1000, 0.5, 250_000],      // jitter lengthens, up to 1.5×
    [30_000, 1000, 1, 300_000],    // jitter clamped below 1
    [30_000, 1000, -3, 200_000],
    [30_000, 0, 0, 30_000],
  ];
  for (const [poll, nodes, jitter, want] of cases) {
    test(`poll ${poll} ms, ${nodes} nodes, jitter ${jitter} -> ${want} ms`, () => {
      expect(describeIntervalMs(poll, nodes, jitter)).toBe(want);
    });
  }
  test("N nodes at their shortest interval make at most 5 calls/s", () => {
    for (const n of [10, 100, 1000, 10_000, 50_000]) {
      const perSecond = n / (describeIntervalMs(1000, n, 0) / 1000);
      expect(perSecond).toBeLessThanOrEqual(5);
    }
  });
  test("pages: a read of N > 1000 instances is ceil(N/1000) calls; counting them keeps N nodes under 5 calls/s", () => {
    expect([1, 1000, 1001, 10_000].map(pagesPerRead)).toEqual([1, 1, 2, 10]);
    expect(describeIntervalMs(30_000, 10_000, 0, pagesPerRead(10_000))).toBe(20_000_000);
    for (const n of [999, 1001, 4000, 10_000]) {
      const pages = pagesPerRead(n);
      expect((n * pages) / (describeIntervalMs(1000, n, 0, pages) / 1000)).toBeLessThanOrEqual(5);
    }
    // without counting pages the rate is 5 × pages calls/s: 50/s at 10,000 nodes, over the 20/s refill
    expect((10_000 * pagesPerRead(10_000)) / (describeIntervalMs(1000, 10_000, 0) / 1000)).toBe(50);
  });
  test("backoff doubles and stops at 10× the interval", () => {
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffMs(1000, a, 0))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
});

describe("queryIntervalMs (store: dynamodb, one partition per role)", () => {
  test("rruPerRead: ceil(records × 160 B / 4 KB) per 1 MB page", () => {
    expect(ITEM_BYTES).toBe(160);
    expect([0, 1, 25, 26, 1000, 6553, 6554, 10_000].map(rruPerRead)).toEqual([1, 1, 1, 2, 40, 256, 257, 391]);
  });
  const cases: [poll: number, nodes: number, jitter: number, want: number][] = [
    [30_000, 1, 0, 30_000],
    [30_000, 0, 0, 30_000],
    [30_000, 100, 0, 30_000],          // 100 × 4 RRU / 1500 = 0.27 s: every poll
    [30_000, 1000, 0, 30_000],         // 1000 × 40 / 1500 = 26.7 s: still every poll
    [30_000, 2000, 0, 105_334],        // 2000 × 79 / 1500 = 105.33 s
    [30_000, 10_000, 0, 2_606_667],    // 10,000 × 391 / 1500 = 2606.67 s (43 min)
    [30_000, 10_000, 0.5, 3_258_334],  // jitter lengthens, up to 1.5×
    [30_000, 10_000, 1, 3_909_999],    // clamped below 1
    [30_000, 10_000, -2, 2_606_667],
    [30_000, 100, 0.5, 37_500],
  ];
  for (const [poll, nodes, jitter, want] of cases) {
    test(`poll ${poll} ms, ${nodes} nodes, jitter ${jitter} -> ${want} ms`, () => {
      expect(queryIntervalMs(poll, nodes, jitter)).toBe(want);
    });
  }
  test("the budget is half the partition's 3,000 RRU/s", () => {
    expect(READ_BUDGET_RRU_PER_SEC).toBe(PARTITION_RRU_PER_SEC / 2);
  });
  test("N nodes at their shortest interval ask for at most the budget, for any N", () => {
    for (const n of [1, 10, 100, 999, 1000, 1100, 1500, 2000, 4096, 6553, 6554, 10_000, 25_000, 50_000]) {
      const rruPerSec = (n / (queryIntervalMs(1000, n, 0) / 1000)) * rruPerRead(n);
      expect(rruPerSec).toBeLessThanOrEqual(READ_BUDGET_RRU_PER_SEC);
      expect((n / (queryIntervalMs(1000, n, 0, 3000) / 1000)) * rruPerRead(n)).toBeLessThanOrEqual(PARTITION_RRU_PER_SEC);
    }
  });
  test("reading every poll, as before, is over the partition's limit at 10,000 nodes", () => {
    expect((10_000 / 30) * rruPerRead(10_000)).toBeGreaterThan(PARTITION_RRU_PER_SEC * 40);
  });
});

describe("waveSizes", () => {
  const cases: [waves: (number | string)[], n: number, want: number[]][] = [
    [[1, "25%", "100%"], 8, [1, 2, 8]],
    [[1, "25%", "100%"], 4, [1, 4]],        // 25% of 4 is 1: an empty wave is skipped
    [[1, "25%", "100%"], 1, [1]],
    [[1, "25%", "100%"], 0, []],
    [[1, "25%", "100%"], 10_000, [1, 2500, 10_000]],
    [["10%"], 15, [2, 15]],                  // a last wave below 100% is followed by one of all
    [[5], 3, [3]],
    [[1, "1%", "10%", "100%"], 1000, [1, 10, 100, 1000]],
  ];
  for (const [waves, n, want] of cases) test(`${JSON.stringify(waves)} of ${n} -> ${JSON.stringify(want)}`, () => expect(waveSizes(waves, n)).toEqual(want));
  test("waveOf", () => {
    expect([0, 1, 2, 7, 99].map((r) => waveOf([1, 2, 8], r))).toEqual([0, 1, 2, 2, 2]);
  });
  test("hash53 is fixed (every agent version must rank alike) and spreads", () => {
    expect([hash53("a"), hash53("c:i-0abc")]).toEqual([7929297801672961, 6460541859100004]);
    const hs = new Set(Array.from({ length: 1000 }, (_, i) => hash53(`c:i-${i}`)));
    expect(hs.size).toBe(1000);
  });
});
