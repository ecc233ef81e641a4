// The pure decisions of source and releases: poll jitter, retention, store rebuild, redaction,
// setup input hashing, history rendering.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderHistory } from "../../agent/cli/history.ts";
import { redact, sourceError } from "../../agent/source/errors.ts";
import { hashInputs } from "../../agent/source/prepare.ts";
import { nextPollDelay } from "../../agent/source/source.ts";
import { needsRebuild } from "../../agent/source/store.ts";
import { planPrune, type ReleaseRecord } from "../../agent/state/releases.ts";

test("nextPollDelay: ±10% around the poll interval, from the injected random", () => {
  expect(nextPollDelay(30_000, 0)).toBe(27_000);
  expect(nextPollDelay(30_000, 0.5)).toBe(30_000);
  expect(nextPollDelay(30_000, 0.999999)).toBe(33_000);
});

const rec = (commit: string, state: ReleaseRecord["state"], updatedAt: number): ReleaseRecord =>
  ({ commit, state, subject: null, createdAt: updatedAt, updatedAt, log: "", steps: [] });

test("planPrune: keeps current, in-use, N good, N failed, newest ready; never a preparing one", () => {
  const rs = [
    rec("g1", "good", 1), rec("g2", "good", 2), rec("g3", "good", 3), rec("f1", "failed", 4), rec("f2", "failed", 5),
    rec("r1", "ready", 6), rec("r2", "ready", 7), rec("p1", "preparing", 0), rec("a1", "active", 8),
  ];
  const removed = planPrune(rs, "g1", new Set(["f1"]), { keepGood: 1, keepFailed: 1, keepReady: 1 });
  expect(removed.sort()).toEqual(["g2", "r1", "r2"].sort());
  expect(planPrune(rs, null, new Set(), { keepGood: 5, keepFailed: 3, keepReady: 5 })).toEqual([]);
});

test("needsRebuild: growth past the factor and the slack, or too many packs", () => {
  const policy = { growthFactor: 3, minGrowthBytes: 1000, maxPacks: 10 };
  const stats = { baselineBytes: 1000, at: 0 };
  expect(needsRebuild({ bytes: 2999, packs: 2 }, stats, policy)).toBe(false);
  expect(needsRebuild({ bytes: 3001, packs: 2 }, stats, policy)).toBe(true);
  expect(needsRebuild({ bytes: 3001, packs: 2 }, stats, { ...policy, minGrowthBytes: 10_000 })).toBe(false);
  expect(needsRebuild({ bytes: 10, packs: 11 }, null, policy)).toBe(true);
  expect(needsRebuild({ bytes: 10 ** 9, packs: 1 }, null, policy)).toBe(false);
});

test("redact and sourceError never carry the token", () => {
  const token = "ghp_abcdef123456";
  expect(redact(`https://u:${token}@h/x ${token}`, [token])).toBe("https://u:***@h/x ***");
  const e = sourceError(new Error(`boom ${token}`), "fetching", `https://u:${token}@git.example.com/x.git`, [token]);
  expect(e.message).not.toContain(token);
  const auth = sourceError(Object.assign(new Error("HTTP Error: 401"), { code: "HttpError", data: { statusCode: 401 } }), "polling", `https://u:${token}@h/x.git`, [token]);
  expect(auth.reason).toBe("SourceAuthFailed");
  expect(auth.retry.kind).toBe("terminal");
  expect(auth.message).not.toContain(token);
  expect(sourceError(Object.assign(new Error("x"), { code: "ENOSPC" }), "checkout", "http://h/x.git", []).reason).toBe("DiskFull");
});

test("hashInputs: changes with the run string and input contents only", () => {
  const d = mkdtempSync(join(tmpdir(), "hash-"));
  try {
    writeFileSync(join(d, "package.json"), "{}");
    mkdirSync(join(d, "lib"));
    writeFileSync(join(d, "lib", "a"), "a");
    writeFileSync(join(d, "other"), "1");
    const step = { run: "bun install", inputs: ["package.json", "lib", "bun.lock"] };
    const h1 = hashInputs(d, step);
    writeFileSync(join(d, "other"), "2");
    expect(hashInputs(d, step)).toBe(h1);
    expect(hashInputs(d, { ...step, run: "bun install --production" })).not.toBe(h1);
    writeFileSync(join(d, "lib", "a"), "b");
    expect(hashInputs(d, step)).not.toBe(h1);
    writeFileSync(join(d, "bun.lock"), "");
    const h3 = hashInputs(d, step);
    rmSync(join(d, "bun.lock"));
    expect(hashInputs(d, step)).not.toBe(h3);   // absent differs from empty
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test("renderHistory: current marked, failures explained, pruned noted", () => {
  const out = renderHistory([
    { commit: "a".repeat(40), subject: "new", state: "failed", firstAt: 0, lastAt: 60_000, activatedAt: null, reason: "SetupFailed", message: "step 1 exited 2", kept: true, current: false },
    { commit: "b".repeat(40), subject: "old", state: "good", firstAt: 0, lastAt: 0, activatedAt: 0, reason: null, message: null, kept: false, current: true },
  ], 120_000, false);
  const lines = out.split("\n");
  expect(lines[0]).toContain("aaaaaaaaaaaa");
  expect(lines[0]).toContain("1m ago");
  expect(lines[1]).toContain("SetupFailed: step 1 exited 2");
  expect(lines[2]!.startsWith("* bbbbbbbbbbbb")).toBe(true);
  expect(lines[2]).toContain("(pruned)");
});
