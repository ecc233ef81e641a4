// Restart decisions as tables: no processes, no timers, times given explicitly.
import { describe, expect, test } from "bun:test";
import { DEFAULT_BACKOFF, backoffDelay, decideRestart, wantsRestart, type BackoffPolicy, type BackoffState, type ExitFacts } from "../../agent/supervisor/backoff.ts";
import { ManualClock } from "../../agent/core/clock.ts";

const bp: BackoffPolicy = { baseMs: 1000, capMs: 60_000, resetAfterMs: 30_000, crashLoopAfter: 3 };
const exit = (ranMs: number, code: number | null = 1, extra: Partial<ExitFacts> = {}): ExitFacts =>
  ({ startedAt: 1_000_000, exitedAt: 1_000_000 + ranMs, code, signal: null, requested: false, ...extra });

describe("the default backoff", () => {
  test.each([
    [1, 50], [2, 1000], [3, 2000], [4, 4000], [5, 8000], [7, 32_000], [8, 60_000], [500, 60_000],
  ])("start %d of a series waits %dms: the first within 100 ms of the exit (50 ms + the spawn), then doubling from 1 s", (n, ms) =>
    expect(backoffDelay(DEFAULT_BACKOFF, n)).toBe(ms));
  test("a crash after a stable run is restarted within 100 ms again", () => {
    const d = decideRestart(DEFAULT_BACKOFF, { quickExits: 6 }, "always", exit(DEFAULT_BACKOFF.resetAfterMs));
    expect(d.delayMs).toBe(50);
    expect(decideRestart(DEFAULT_BACKOFF, d.state, "always", exit(50)).delayMs).toBe(1000);
  });
});

describe("backoffDelay", () => {
  test.each([
    [0, 0], [1, 1000], [2, 2000], [3, 4000], [4, 8000], [6, 32_000], [7, 60_000], [8, 60_000], [500, 60_000],
  ])("start %d of a series waits %dms", (n, ms) => expect(backoffDelay(bp, n)).toBe(ms));
});

describe("wantsRestart", () => {
  test.each([
    ["always", 0, null, false, true],
    ["always", 1, null, false, true],
    ["on-failure", 0, null, false, false],
    ["on-failure", 3, null, false, true],
    ["on-failure", null, "SIGKILL", false, true],
    ["never", 1, null, false, false],
    ["always", 1, null, true, false],          // the agent asked it to stop
  ] as const)("%s, code %p, signal %p, requested %p => %p", (policy, code, signal, requested, want) => {
    expect(wantsRestart(policy, { ...exit(10, code), signal, requested })).toBe(want);
  });
  test("an unhealthy kill restarts unless the policy is never", () => {
    expect(wantsRestart("on-failure", exit(10, 0, { unhealthy: true }))).toBe(true);
    expect(wantsRestart("never", exit(10, 0, { unhealthy: true }))).toBe(false);
  });
});

describe("decideRestart over a series of exits", () => {
  test("quick exits double the delay up to the cap and are reported as a crash loop; retries never stop", () => {
    let s: BackoffState = { quickExits: 0 };
    const seen: [number, boolean, boolean][] = [];
    for (let i = 0; i < 9; i++) {
      const d = decideRestart(bp, s, "always", exit(200));
      seen.push([d.delayMs, d.crashLooping, d.restart]);
      s = d.state;
    }
    expect(seen).toEqual([
      [1000, false, true], [2000, false, true], [4000, true, true], [8000, true, true], [16_000, true, true],
      [32_000, true, true], [60_000, true, true], [60_000, true, true], [60_000, true, true],
    ]);
  });
  test("a stable run resets the series: the next delay is the base again", () => {
    const d = decideRestart(bp, { quickExits: 7 }, "always", exit(30_000));
    expect(d).toEqual({ restart: true, delayMs: 1000, state: { quickExits: 1 }, crashLooping: false });
  });
  test("a run just short of stable still counts as quick", () => {
    expect(decideRestart(bp, { quickExits: 2 }, "always", exit(29_999)).state.quickExits).toBe(3);
  });
  test("no restart => no delay, but the count still moves", () => {
    const d = decideRestart(bp, { quickExits: 1 }, "on-failure", exit(100, 0));
    expect(d).toEqual({ restart: false, delayMs: 0, state: { quickExits: 2 }, crashLooping: false });
  });
  test("driven by an injected clock: the same history gives the same answer", () => {
    const c = new ManualClock(5_000);
    const started = c.now(); c.advance(100);
    const a = decideRestart(bp, { quickExits: 0 }, "always", { startedAt: started, exitedAt: c.now(), code: 2, signal: null, requested: false });
    const b = decideRestart(bp, { quickExits: 0 }, "always", { startedAt: started, exitedAt: c.now(), code: 2, signal: null, requested: false });
    expect(a).toEqual(b);
    expect(a.delayMs).toBe(1000);
  });
});
