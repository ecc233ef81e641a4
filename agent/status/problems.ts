// What is wrong with a node, in plain words, read from its Status. Pure: the caller passes the
// time and where the status came from. `agent status` shows these first and exits 1 on any.
import { formatDuration } from "../core/duration.ts";
import type { Status } from "./types.ts";

export type Source = "daemon" | "file";

export interface StatusView {
  now: number;
  source: Source;
  ageMs: number;
}

/** A status is stale when the daemon should have written a newer one by now. */
export const STALE_GRACE_MS = 60_000;
export const STALE_DEFAULT_MS = 5 * 60_000;

/**
 * How long after writtenAt a status may go without a newer one: twice the poll interval (read
 * from nextPollAt) plus a minute of grace; five minutes when the status says nothing of polling.
 */
export function staleAfterMs(s: Status): number {
  const next = s.nextPollAt ? Date.parse(s.nextPollAt) : NaN;
  if (!Number.isFinite(next)) return STALE_DEFAULT_MS;
  return Math.max(0, next - s.writtenAt) * 2 + STALE_GRACE_MS;
}

export const shortSha = (c: string | null | undefined): string => (c ? c.slice(0, 12) : "none");

/** Problems, most important first. Empty means "nothing to worry about". */
export function findProblems(s: Status, view: StatusView): string[] {
  const out: string[] = [];
  const ago = (ms: number) => `${formatDuration(Math.max(0, ms))} ago`;

  if (view.source === "file") {
    out.push(`the daemon is not answering; showing status written ${ago(view.ageMs)}`);
  } else if (view.ageMs > staleAfterMs(s)) {
    out.push(`status is stale: written ${ago(view.ageMs)}; the loop may be stuck (see \`journalctl -u agent\`)`);
  }

  if (!s.lastTick.ok) {
    const reason = s.lastTick.reason ? `${s.lastTick.reason}: ` : "";
    out.push(`the last tick failed ${ago(view.now - Date.parse(s.lastTick.at))}: ${reason}${s.lastTick.error ?? "no error message"}`);
  }

  const desired = s.desired.commit;
  if (desired && s.badCommits.includes(desired) && s.current.commit !== desired) {
    out.push(`rolled back: the manifest pins ${shortSha(desired)}, which failed here; running ${shortSha(s.current.commit)} ` +
      "until the manifest pins another commit");
  }
  for (const c of s.badCommits) {
    if (c === desired) continue;
    out.push(`commit ${shortSha(c)} failed here and will not be tried again until the manifest pins another commit`);
  }

  for (const r of s.resources) {
    if (!r.ready) out.push(`${r.ref} is not ready: ${r.reason}${r.message ? ` (${r.message})` : ""}`);
  }

  for (const p of s.processes) {
    const problem = processProblem(p);
    if (problem) out.push(problem);
  }

  if (s.phase === "failed" && out.length === 0) out.push("the node is in phase failed");
  if (s.phase === "degraded" && out.length === 0) out.push("the node is degraded");
  return out;
}

function processProblem(p: Status["processes"][number]): string | null {
  const exit = p.lastExit
    ? `, last exit ${p.lastExit.signal ? `by ${p.lastExit.signal}` : `code ${p.lastExit.code}`}`
    : "";
  const why = p.message ? `: ${p.message}` : "";
  if (p.reason === "ProcessCrashLooping" || p.state === "backoff") {
    return `process ${p.name} is crash-looping: ${p.restarts} restart${p.restarts === 1 ? "" : "s"}${exit}${why}`;
  }
  if (p.state === "failed" || p.state === "exited") {
    return `process ${p.name} is not running (${p.state}${exit})${why}`;
  }
  if (p.state === "running" && !p.healthy) {
    return `process ${p.name} is running but failing its health check${why}`;
  }
  return null;
}

/** Exit code of `agent status`: 0 when converged with no problem, 1 otherwise (in progress, paused, degraded, failed). */
export function statusExitCode(s: Status, view: StatusView): 0 | 1 {
  return s.phase === "converged" && findProblems(s, view).length === 0 ? 0 : 1;
}
