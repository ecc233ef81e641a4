// When the daemon ticks again: after a retryable failure it backs off, 5 s doubling up to `poll`.
import { describe, expect, test } from "bun:test";
import { retryDelay } from "../../agent/loop/daemon.ts";

describe("retryDelay", () => {
  test.each([
    [30_000, 0, 5_000], [30_000, 1, 5_000], [30_000, 2, 10_000], [30_000, 3, 20_000], [30_000, 4, 30_000], [30_000, 10, 30_000],
    [2_000, 1, 2_000],
  ])("poll %i ms, %i failures in a row -> %i ms", (poll, n, want) => {
    expect(retryDelay(poll, n)).toBe(want);
  });
});
