// Decides what the release pipeline does next: prepare, cut over, confirm an interrupted
// cutover, or roll back. Pure: the caller observes, this decides, the loop applies.
import type { ActionBase, Blocked } from "./types.ts";

export type ReleaseState = "missing" | "preparing" | "ready" | "active" | "good" | "failed";

export interface ReleaseObserved {
  current: string | null;             // where the `current` link points
  lastGood: string | null;
  badCommits: readonly string[];
  desiredRelease: { state: ReleaseState; failedAt?: number | null; reason?: string | null };
  /** A cutover recorded in state.json that has not been confirmed or rolled back. */
  deploying: { commit: string; from: string | null; startedAt: number; failures?: number } | null;
  paused: boolean;
}

export type ReleaseAction =
  | (ActionBase & { kind: "release.prepare"; commit: string })
  | (ActionBase & { kind: "release.cutover"; commit: string; from: string | null })
  | (ActionBase & { kind: "release.confirm"; commit: string; from: string | null; startedAt: number })
  | (ActionBase & { kind: "release.rollback"; commit: string; to: string | null; why: string;
      /** One sentence for the release's record; false `markBad`: an unconfirmed cutover given up for a newer pin. */
      message?: string; markBad?: boolean });

export interface ReleasePlan {
  actions: ReleaseAction[];
  blocked: Blocked | null;
  /** Nothing to do for the release: the desired commit runs and is confirmed. */
  converged: boolean;
}

/** Failed attempts to confirm an interrupted cutover before it is rolled back (interruptions do not count). */
export const MAX_CONFIRM_ATTEMPTS = 3;

/** How long a release whose preparation failed waits before it is prepared again. */
export const SETUP_RETRY_MS = 5 * 60_000;

const short = (c: string | null) => (c ? c.slice(0, 12) : "nothing");

export function planRelease(desired: string, o: ReleaseObserved, now: number): ReleasePlan {
  const none = (blocked: Blocked | null = null, converged = false): ReleasePlan => ({ actions: [], blocked, converged });
  if (o.paused) return none({ reason: "Paused", message: "converging is paused; run `agent resume` to continue" });

  // A cutover that was cut short (the agent died while waiting for health) is finished first:
  // the node must end converged or rolled back, never half-switched.
  const d = o.deploying;
  if (d && d.commit === o.current) {
    const ref = `release/${d.commit.slice(0, 12)}`;
    if ((d.failures ?? 0) >= MAX_CONFIRM_ATTEMPTS) {
      return {
        actions: [{ kind: "release.rollback", ref, commit: d.commit, to: d.from, why: "ConfirmFailed",
          message: `the cutover to ${short(d.commit)} could not be confirmed in ${d.failures} attempts`,
          description: `roll back from ${short(d.commit)} (not confirmed after ${d.failures} attempts) to ${short(d.from)}` }],
        blocked: null, converged: false,
      };
    }
    // A cutover is confirmed (or undone) before the node moves on. But once an attempt to confirm
    // it failed, a newer pin gets the node moving again: the unconfirmed cutover is given up (not a
    // verdict on its commit) and the pinned commit deployed as if the last good release still ran.
    if ((d.failures ?? 0) > 0 && desired !== d.commit && !o.badCommits.includes(desired)) {
      if (desired === d.from) {
        return {
          actions: [{ kind: "release.rollback", ref, commit: d.commit, to: d.from, why: "Superseded", markBad: false,
            message: `the manifest pins ${short(d.from)} again before the cutover to ${short(d.commit)} was confirmed`,
            description: `go back from ${short(d.commit)} (not confirmed) to ${short(d.from)}, which the manifest pins` }],
          blocked: null, converged: false,
        };
      }
      const next = planRelease(desired, { ...o, current: d.from, deploying: null }, now);
      if (next.actions.length) return next;
    }
    return {
      actions: [{ kind: "release.confirm", ref, commit: d.commit, from: d.from, startedAt: d.startedAt,
        description: `confirm the cutover to ${short(d.commit)}: wait for health, else roll back to ${short(d.from)}` }],
      blocked: null, converged: false,
    };
  }

  if (o.badCommits.includes(desired)) {
    // A failed first deploy was rolled back once (its processes stopped): there is nothing to go
    // back to, so it is not "rolled back" again every tick. One failure is one failure.
    const nothingToGoBackTo = !o.lastGood || o.lastGood === desired;
    if (o.current === desired && !(nothingToGoBackTo && o.desiredRelease.state === "failed")) {
      return {
        actions: [{ kind: "release.rollback", ref: `release/${desired.slice(0, 12)}`, commit: desired, to: o.lastGood,
          why: "CommitMarkedBad", description: `roll back from ${short(desired)} (marked bad) to ${short(o.lastGood)}` }],
        blocked: null, converged: false,
      };
    }
    return none({ reason: "CommitMarkedBad",
      message: `commit ${short(desired)} failed on this node and will not be tried again; pin another commit in the manifest (running ${short(o.current)})` });
  }

  if (o.current === desired && (o.desiredRelease.state === "good" || o.desiredRelease.state === "active")) {
    return none(null, true);
  }

  const ref = `release/${desired.slice(0, 12)}`;
  // A failed cutover goes back to `from`: never to a release that failed here itself.
  const from = o.current && !o.badCommits.includes(o.current) ? o.current : null;
  switch (o.desiredRelease.state) {
    case "failed":
      if (o.desiredRelease.failedAt != null && now - o.desiredRelease.failedAt < SETUP_RETRY_MS) {
        return none({ reason: o.desiredRelease.reason ?? "SetupFailed",
          message: `preparing ${short(desired)} failed; it is tried again ${Math.ceil((SETUP_RETRY_MS - (now - o.desiredRelease.failedAt)) / 1000)}s from now (see agent history)` });
      }
      return { actions: [{ kind: "release.prepare", ref, commit: desired, description: `prepare ${short(desired)} again (the last attempt failed)` }], blocked: null, converged: false };
    case "missing":
    case "preparing":
      return {
        actions: [
          { kind: "release.prepare", ref, commit: desired, description: `fetch, check out and set up ${short(desired)} beside the running release` },
          { kind: "release.cutover", ref, commit: desired, from, description: `switch current from ${short(o.current)} to ${short(desired)} and restart in place, health-gated` },
        ],
        blocked: null, converged: false,
      };
    case "ready":
    case "good":
    case "active":
      return {
        actions: [{ kind: "release.cutover", ref, commit: desired, from, description: `switch current from ${short(o.current)} to ${short(desired)} and restart in place, health-gated` }],
        blocked: null, converged: false,
      };
  }
}

/** The commit a manifest pins for a role: the role's own `commit:` (a canary), else the manifest's. */
export function pinnedCommit(manifest: { commit: string; roles: Record<string, { commit?: string }> }, role: string): string {
  return manifest.roles[role]?.commit ?? manifest.commit;
}

/** The commit this node should run: a local pin (agent rollback) wins while the manifest still pins what it pinned then. */
export function desiredCommit(manifestCommit: string, localPin: { commit: string; manifestCommit: string } | null): { commit: string; pinned: boolean } {
  if (localPin && localPin.manifestCommit === manifestCommit) return { commit: localPin.commit, pinned: true };
  return { commit: manifestCommit, pinned: false };
}
