// Supervised processes that no record in state.json accounts for, found by their environment
// markers (host/marker.ts): started by an agent killed before it wrote the record, or with the
// disk full. The supervisor adopts them like recorded ones.
import { statSync } from "node:fs";
import { findMarked, markerEnv, MARKER, oldestPerSpawn, type Marked } from "../host/marker.ts";
import { ownerOf, startedAtMs } from "../host/proc.ts";
import { layout } from "../state/layout.ts";
import type { ProcessRecord } from "../state/store.ts";

/** The marker variables for one start of a supervised process. */
export function processMarkers(stateDir: string, name: string, specHash: string): Record<string, string> {
  return markerEnv(stateDir, { [MARKER.name]: name, [MARKER.spec]: specHash });
}

/**
 * The marked processes no record accounts for, as records to adopt. A marked process is a start of
 * the supervisor or a descendant of one that made its own group (it inherited the environment):
 * those of a recorded process's spawn id are its descendants and left alone; of the others, the
 * oldest per spawn id is the process the supervisor started. Pure, given `startedAt`.
 */
export function untracked(marked: Marked[], records: readonly ProcessRecord[], startedAt: (startTime: number) => number): ProcessRecord[] {
  const procs = marked.filter((m) => m.env[MARKER.name]);
  const recorded = new Set(records.map((r) => `${r.pid}:${r.startTime}`));
  const trackedSpawns = new Set(procs.filter((m) => recorded.has(`${m.stat.pid}:${m.stat.startTime}`)).map((m) => m.env[MARKER.spawn]));
  return oldestPerSpawn(procs.filter((m) => !trackedSpawns.has(m.env[MARKER.spawn]))).map(({ stat, env }) => {
    const name = env[MARKER.name]!;
    const [process, n] = name.split("#");
    const port = Number(env.PORT);
    return {
      name, process: process!, instance: Number(n ?? 0) || 0,
      pid: stat.pid, pgid: stat.pgrp, startTime: stat.startTime, startedAt: startedAt(stat.startTime),
      commit: env.AGENT_COMMIT ?? "", releaseDir: env.AGENT_RELEASE ?? "",
      ...(Number.isInteger(port) && port > 0 ? { port } : {}),
      restarts: 0, specHash: env[MARKER.spec],
    };
  });
}

/** The untracked processes of stateDir in /proc now, of users the agent runs processes as. */
export function findUntracked(stateDir: string, records: readonly ProcessRecord[]): ProcessRecord[] {
  return untracked(findMarked(stateDir).filter((m) => runsAsOurs(stateDir, m)), records, startedAtMs);
}

/**
 * A marker is only an environment variable, which any local user can set: a found process counts
 * only when it runs as root, as the agent, or as the owner of the release directory it names (the
 * role's user). attach() checks it against the spec's user once that is known.
 */
function runsAsOurs(stateDir: string, m: Marked): boolean {
  const uid = ownerOf(m.stat.pid)?.real ?? null;
  if (uid === null) return false;
  if (uid === 0 || uid === process.getuid?.()) return true;
  const commit = m.env.AGENT_COMMIT ?? "";
  if (!/^[0-9a-f]{40}$/.test(commit) || m.env.AGENT_RELEASE !== layout(stateDir).release(commit)) return false;
  try { return statSync(m.env.AGENT_RELEASE).uid === uid; } catch { return false; }
}
