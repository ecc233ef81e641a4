// A cutover and its way back: hooks, the atomic switch of `current`, the health-gated restart in
// place, and the rollback when any of it fails. Every step is recorded in state.json first, so an
// agent killed at any point finishes or undoes the cutover on its next tick (see planRelease).
// From the switch until the release is confirmed good, anything that goes wrong ends in a
// rollback with the commit marked bad; an agent that stops (SIGTERM) is not something going
// wrong: the cutover is left recorded for the next agent, and no commit is marked bad.
import { cancelKind } from "../core/cancel.ts";
import { AgentError, errorMessage, toAgentError } from "../core/errors.ts";
import type { Role } from "../manifest/schema.ts";
import type { Ports } from "./ports.ts";
import { drainBeforeRestart } from "./targets.ts";

export interface Side {
  commit: string;
  role: Role;
  env: Record<string, string>;
}

export type DeployOutcome =
  | { ok: true; commit: string }
  | { ok: false; commit: string; reason: string; message: string; rolledBackTo: string | null };

const interrupted = (what: string) =>
  new AgentError("Interrupted", `the agent stopped ${what}; the next agent finishes the cutover (no commit is marked bad)`);

/** Prepare is done; switch to `to`, restart in place, confirm health, or go back to `from`. */
export async function cutover(p: Ports, to: Side, from: Side | null, signal: AbortSignal): Promise<DeployOutcome> {
  const log = p.log.child("deploy");
  if (cancelKind(signal) === "stop") throw interrupted("before the cutover began");
  p.store.update((s) => { s.deploying = { commit: to.commit, from: from?.commit ?? null, startedAt: p.clock.now(), failures: 0 }; });
  log.info("cutover started", { commit: to.commit, from: from?.commit ?? null });

  for (const hook of to.role.hooks.before_cutover) {
    try {
      await p.releases.runHook(to.commit, to.role, hook, "before_cutover", signal);
    } catch (e) {
      // Stopped mid-hook: the hook keeps running and the next agent waits for it, then cuts over again.
      if (signal.aborted) throw interrupted(`during the before_cutover hook \`${hook}\``);
      // The host's fault, not the commit's (the role's user cannot be looked up right now): the
      // hook never ran; nothing is switched or marked bad, and the next tick tries again.
      if (e instanceof AgentError && e.reason === "UserUnknown") { p.store.update((s) => { s.deploying = null; }); throw e; }
      // Nothing has been switched yet: the old release never stopped serving.
      return markBad(p, to.commit, null, "HookFailed", `before_cutover hook \`${hook}\` failed: ${errorMessage(e)}`, false);
    }
  }

  p.releases.switchCurrent(to.commit);
  try {
    p.releases.mark(to.commit, "active");
    await drainBeforeRestart(p, to.role, to.env, signal);   // targets: no front, leave the target groups first
    const moved = await p.processes.replace(to.commit, to.role, to.env);
    if (!moved.ok) return rollback(p, to.commit, from, moved.reason, moved.message);
    for (const hook of to.role.hooks.after_cutover) {
      try {
        await p.releases.runHook(to.commit, to.role, hook, "after_cutover", signal);
      } catch (e) {
        if (signal.aborted) throw interrupted(`during the after_cutover hook \`${hook}\``);
        return rollback(p, to.commit, from, "HookFailed", `after_cutover hook \`${hook}\` failed: ${errorMessage(e)}`);
      }
    }
    return confirmGood(p, to.commit);
  } catch (e) {
    // Anything else between the switch and "good" (a process that cannot even be specified, a
    // user that cannot be created, a disk error) must not leave the node half-switched.
    if (e instanceof AgentError && e.reason === "Interrupted") throw e;
    const err = toAgentError(e, "CutoverFailed");
    return rollback(p, to.commit, from, err.reason, `the cutover to ${to.commit.slice(0, 12)} failed after the switch: ${err.message}`);
  }
}

/**
 * Finish a cutover that an earlier agent started: start (or adopt) its processes, wait for health,
 * then keep or undo it. The health deadline counts from now, when this agent resumed the
 * processes, never from the dead agent's start: a reboot or a long outage is not a verdict.
 * Throws only when the agent stops meanwhile (Interrupted).
 */
export async function confirm(p: Ports, to: Side, from: Side | null, deadlineMs: number, signal: AbortSignal): Promise<DeployOutcome> {
  try {
    await p.processes.ensure(to.commit, to.role, to.env);
  } catch (e) {
    const err = toAgentError(e, "CutoverFailed");
    return rollback(p, to.commit, from, err.reason, `the processes of ${to.commit.slice(0, 12)} could not be started: ${err.message}`);
  }
  const since = p.clock.now();
  while (!p.processes.healthy(to.commit)) {
    // Stopping the agent is not a verdict on the release: the next agent confirms it.
    if (signal.aborted) throw interrupted("while waiting for health");
    if (p.clock.now() - since > deadlineMs) {
      return rollback(p, to.commit, from, "HealthCheckFailed",
        `the processes of ${to.commit.slice(0, 12)} did not become healthy within ${Math.round(deadlineMs / 1000)}s of the cutover`);
    }
    await p.clock.sleep(250, signal).catch(() => {});
  }
  return confirmGood(p, to.commit);
}

function confirmGood(p: Ports, commit: string): DeployOutcome {
  p.releases.mark(commit, "good");
  p.store.update((s) => { s.lastGoodCommit = commit; s.deploying = null; });
  p.log.child("deploy").info("release is good", { commit });
  p.releases.prune(p.processes.status().map((x) => x.commit).filter((c): c is string => !!c).concat(commit));
  return { ok: true, commit };
}

/**
 * Switch back to `from` and run it; mark `bad` so it is not tried again until the manifest moves.
 * `markBad: false` gives up an unconfirmed cutover without a verdict (a newer pin wants `from`).
 */
export async function rollback(p: Ports, bad: string, from: Side | null, reason: string, message: string, opts: { markBad?: boolean } = {}): Promise<DeployOutcome> {
  const log = p.log.child("deploy");
  log.warn("rolling back", { commit: bad, to: from?.commit ?? null, reason, message });
  if (from) {
    p.releases.switchCurrent(from.commit);
    try {
      await p.processes.ensure(from.commit, from.role, from.env);
    } catch (e) {
      log.error("rollback could not restart the previous release", { commit: from.commit, error: errorMessage(e) });
    }
  } else {
    // Nothing ran before: stop the bad release's processes rather than keep a failing one.
    await p.processes.stopAll();
  }
  if (opts.markBad === false) {
    p.store.update((s) => { s.deploying = null; });
    return { ok: false, commit: bad, reason, message, rolledBackTo: from?.commit ?? null };
  }
  return markBad(p, bad, from?.commit ?? null, reason, message, true);
}

function markBad(p: Ports, commit: string, to: string | null, reason: string, message: string, rolledBack: boolean): DeployOutcome {
  // state.json first: a release record that cannot be written must not keep the cutover open.
  p.store.update((s) => {
    if (!s.badCommits.includes(commit)) s.badCommits = [...s.badCommits, commit].slice(-20);
    s.deploying = null;
  });
  try {
    p.releases.mark(commit, "failed", reason, message);
  } catch (e) {
    p.log.child("deploy").warn("could not record the failed release", { commit, error: errorMessage(e) });
  }
  return { ok: false, commit, reason, message, rolledBackTo: rolledBack ? to : null };
}

export function deployError(o: Extract<DeployOutcome, { ok: false }>): AgentError {
  const where = o.rolledBackTo ? `; rolled back to ${o.rolledBackTo.slice(0, 12)}` : "";
  return AgentError.terminal(o.reason, `${o.message}${where}`);
}
