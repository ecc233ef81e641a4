// planRelease as a table: (desired, observed, now) -> actions / blocked / converged.
import { describe, expect, test } from "bun:test";
import { desiredCommit, MAX_CONFIRM_ATTEMPTS, pinnedCommit, planRelease, SETUP_RETRY_MS, type ReleaseObserved } from "../../agent/plan/release.ts";

const A = "a".repeat(40), B = "b".repeat(40), C = "c".repeat(40);
const base: ReleaseObserved = {
  current: A, lastGood: A, badCommits: [], desiredRelease: { state: "good" }, deploying: null, paused: false,
};
const kinds = (o: Partial<ReleaseObserved>, desired = A, now = 1_000_000) =>
  planRelease(desired, { ...base, ...o }, now).actions.map((a): string => a.kind);

describe("planRelease", () => {
  test("converged: the desired commit runs and is good => no actions", () => {
    const p = planRelease(A, base, 0);
    expect(p).toEqual({ actions: [], blocked: null, converged: true });
  });
  test.each([
    ["a new commit not on disk", { desiredRelease: { state: "missing" as const } }, ["release.prepare", "release.cutover"]],
    ["a half-prepared release is prepared again, never trusted", { desiredRelease: { state: "preparing" as const } }, ["release.prepare", "release.cutover"]],
    ["a prepared release is cut over", { desiredRelease: { state: "ready" as const } }, ["release.cutover"]],
    ["an older good release (rollback by manifest) is cut over without preparing", { desiredRelease: { state: "good" as const } }, ["release.cutover"]],
  ])("%s", (_, o, want) => {
    expect(kinds(o, B)).toEqual(want);
  });
  test("first deploy on an empty node cuts over from nothing", () => {
    const p = planRelease(B, { ...base, current: null, lastGood: null, desiredRelease: { state: "missing" } }, 0);
    expect(p.actions[1]).toMatchObject({ kind: "release.cutover", commit: B, from: null });
  });
  test("paused => nothing, says how to resume", () => {
    const p = planRelease(B, { ...base, paused: true, desiredRelease: { state: "missing" } }, 0);
    expect(p.actions).toEqual([]);
    expect(p.blocked?.reason).toBe("Paused");
    expect(p.blocked?.message).toContain("agent resume");
  });
  test("a bad commit is not tried again", () => {
    const p = planRelease(B, { ...base, badCommits: [B], desiredRelease: { state: "failed" } }, 0);
    expect(p.actions).toEqual([]);
    expect(p.blocked?.reason).toBe("CommitMarkedBad");
  });
  test("a bad commit that is somehow current is rolled back to the last good", () => {
    const p = planRelease(B, { ...base, current: B, lastGood: A, badCommits: [B], desiredRelease: { state: "active" } }, 0);
    expect(p.actions).toEqual([expect.objectContaining({ kind: "release.rollback", commit: B, to: A })]);
  });
  test("an interrupted cutover (current already switched) is confirmed first", () => {
    const p = planRelease(B, { ...base, current: B, deploying: { commit: B, from: A, startedAt: 5 }, desiredRelease: { state: "active" } }, 10);
    expect(p.actions).toEqual([expect.objectContaining({ kind: "release.confirm", commit: B, from: A, startedAt: 5 })]);
  });
  test("an interrupted cutover that cannot be confirmed is rolled back after a bounded number of failed attempts", () => {
    const deploying = (failures: number) => ({ commit: B, from: A, startedAt: 5, failures });
    const o = { ...base, current: B, desiredRelease: { state: "active" as const } };
    expect(planRelease(B, { ...o, deploying: deploying(MAX_CONFIRM_ATTEMPTS - 1) }, 10).actions.map((a) => a.kind)).toEqual(["release.confirm"]);
    expect(planRelease(B, { ...o, deploying: deploying(MAX_CONFIRM_ATTEMPTS) }, 10).actions)
      .toEqual([expect.objectContaining({ kind: "release.rollback", commit: B, to: A, why: "ConfirmFailed" })]);
  });
  test("a newer pin gets a node moving again once confirming its unconfirmed cutover failed", () => {
    const o = { ...base, current: B, desiredRelease: { state: "missing" as const } };
    // not failed yet: the cutover is confirmed first
    expect(planRelease(C, { ...o, deploying: { commit: B, from: A, startedAt: 5 } }, 10).actions.map((a) => a.kind)).toEqual(["release.confirm"]);
    // failed once: the pinned commit is deployed from the last good release
    const p = planRelease(C, { ...o, deploying: { commit: B, from: A, startedAt: 5, failures: 1 } }, 10);
    expect(p.actions).toEqual([expect.objectContaining({ kind: "release.prepare", commit: C }), expect.objectContaining({ kind: "release.cutover", commit: C, from: A })]);
    // pinned back to the last good release: go back to it, without a verdict on B
    const back = planRelease(A, { ...o, desiredRelease: { state: "good" }, deploying: { commit: B, from: A, startedAt: 5, failures: 1 } }, 10);
    expect(back.actions).toEqual([expect.objectContaining({ kind: "release.rollback", commit: B, to: A, markBad: false })]);
  });
  test("a failed first deploy (nothing to go back to) is not rolled back again: blocked, one failure", () => {
    const p = planRelease(B, { ...base, current: B, lastGood: null, badCommits: [B], desiredRelease: { state: "failed" } }, 0);
    expect(p.actions).toEqual([]);
    expect(p.blocked?.reason).toBe("CommitMarkedBad");
  });
  test("an interrupted cutover that never switched is simply cut over again", () => {
    expect(kinds({ current: A, deploying: { commit: B, from: A, startedAt: 5 }, desiredRelease: { state: "ready" } }, B)).toEqual(["release.cutover"]);
  });
  test("a cutover away from a bad current release never rolls back onto it", () => {
    const p = planRelease(C, { ...base, current: B, lastGood: null, badCommits: [B], desiredRelease: { state: "ready" } }, 0);
    expect(p.actions).toEqual([expect.objectContaining({ kind: "release.cutover", commit: C, from: null })]);
  });
  test("a failed preparation waits before it is tried again", () => {
    const failedAt = 1_000;
    const soon = planRelease(B, { ...base, desiredRelease: { state: "failed", failedAt, reason: "SetupFailed" } }, failedAt + 1000);
    expect(soon.actions).toEqual([]);
    expect(soon.blocked?.reason).toBe("SetupFailed");
    const later = planRelease(B, { ...base, desiredRelease: { state: "failed", failedAt, reason: "SetupFailed" } }, failedAt + SETUP_RETRY_MS + 1);
    expect(later.actions.map((a) => a.kind)).toEqual(["release.prepare"]);
  });
  test("every action names its resource and says what it does", () => {
    for (const a of planRelease(B, { ...base, desiredRelease: { state: "missing" } }, 0).actions) {
      expect(a.ref).toBe(`release/${B.slice(0, 12)}`);
      expect(a.description.length).toBeGreaterThan(10);
    }
  });
});

describe("desiredCommit", () => {
  test("the manifest's commit, without a local pin", () => expect(desiredCommit(A, null)).toEqual({ commit: A, pinned: false }));
  test("a local pin wins while the manifest pins what it pinned then", () =>
    expect(desiredCommit(A, { commit: C, manifestCommit: A })).toEqual({ commit: C, pinned: true }));
  test("a local pin ends when the manifest moves", () =>
    expect(desiredCommit(B, { commit: C, manifestCommit: A })).toEqual({ commit: B, pinned: false }));
});

describe("pinnedCommit", () => {
  const m = { commit: A, roles: { web: {}, db: { commit: C } } };
  test("the manifest's commit for a role without its own", () => expect(pinnedCommit(m, "web")).toBe(A));
  test("a role's own commit (a canary) wins", () => expect(pinnedCommit(m, "db")).toBe(C));
  test("a role the manifest does not name runs the manifest's commit", () => expect(pinnedCommit(m, "worker")).toBe(A));
});
