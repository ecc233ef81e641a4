// Health decisions as tables: sequences of check results in, healthy/unhealthy out.
import { describe, expect, test } from "bun:test";
import { initialHealth, livenessFailed, pastDeadline, recordCheck, upLongEnough, type HealthThresholds } from "../../agent/supervisor/health-policy.ts";

const run = (t: HealthThresholds, results: string) => {
  let s = initialHealth();
  const out: string[] = [];
  for (const r of results) { s = recordCheck(t, s, r === "+", r === "+" ? null : "boom"); out.push(s.healthy ? "H" : "."); }
  return { trace: out.join(""), state: s };
};

describe("recordCheck", () => {
  test.each([
    // pass, fail, window, results, healthy after each check
    [1, 3, 3, "+", "H"],
    [2, 3, 3, "+-++", "...H"],
    [3, 1, 1, "++-+++", ".....H"],
    [1, 3, 3, "+--", "HHH"],                 // two failures of three: still healthy
    [1, 3, 3, "+---", "HHH."],               // three of the last three: unhealthy
    [1, 2, 4, "+-+-", "HHH."],               // N of M, not consecutive
    [1, 2, 4, "+-+++-", "HHHHHH"],           // the first failure left the window
    [2, 1, 1, "++-+", ".H.."],           // one pass after a failure is not enough
  ] as const)("pass %d, fail %d of %d: %s => %s", (pass, fail, window, results, want) => {
    expect(run({ pass, fail, window }, results).trace).toBe(want.slice(0, results.length));
  });

  test("liveness fails only after having been healthy", () => {
    expect(livenessFailed(run({ pass: 1, fail: 1, window: 1 }, "---").state)).toBe(false);
    expect(livenessFailed(run({ pass: 1, fail: 1, window: 1 }, "+-").state)).toBe(true);
    expect(livenessFailed(run({ pass: 1, fail: 1, window: 1 }, "+-+").state)).toBe(false);
  });

  test("keeps the last error and never mutates its input", () => {
    const s0 = initialHealth();
    const s1 = recordCheck({ pass: 1, fail: 1, window: 2 }, s0, false, "GET /up answered 503");
    expect(s0).toEqual(initialHealth());
    expect(s1.lastError).toBe("GET /up answered 503");
    expect(recordCheck({ pass: 1, fail: 1, window: 2 }, s1, true).lastError).toBeNull();
  });
});

describe("time rules", () => {
  test.each([
    [null, 10_000, 3000, false], [0, 2999, 3000, false], [0, 3000, 3000, true],
  ] as const)("up since %p, now %d, minUptime %d => %p", (since, now, min, want) => expect(upLongEnough(since, now, min)).toBe(want));
  test("deadline", () => {
    expect(pastDeadline(1000, 60_999, 60_000)).toBe(false);
    expect(pastDeadline(1000, 61_000, 60_000)).toBe(true);
  });
});
