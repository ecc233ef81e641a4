// Every process the supervisor starts carries markers in its environment (the state dir, its name,
// its fingerprint, a spawn id), so the next agent finds it in /proc even when its record never
// reached state.json: the agent was killed between spawn and write, or the disk was full.
import { randomUUID } from "node:crypto";
import { liveProcesses, readEnviron, startedAtMs, type ProcStat } from "../host/proc.ts";
import type { ProcessRecord } from "../state/store.ts";

export const MARKER = {
  stateDir: "AGENT_STATE_DIR",   // the agent's state directory: which agent the process belongs to
  name: "AGENT_PROCESS",         // "web", "web#1"
  spec: "AGENT_SPEC",            // the spec fingerprint it was started with
  spawn: "AGENT_SPAWN",          // unique per start; children inherit it, which tells them apart
} as const;

/** The marker variables for one start of a process. */
export function markerEnv(stateDir: string, name: string, specHash: string): Record<string, string> {
  return { [MARKER.stateDir]: stateDir, [MARKER.name]: name, [MARKER.spec]: specHash, [MARKER.spawn]: randomUUID() };
}

/** A process group leader in /proc whose environment is marked with a state dir. */
export interface Marked {
  stat: ProcStat;
  env: Record<string, string>;
}

/** The marked group leaders of stateDir now in /proc (the supervisor starts each in its own group). */
export function findMarked(stateDir: string): Marked[] {
  const out: Marked[] = [];
  for (const stat of liveProcesses()) {
    if (stat.pid !== stat.pgrp || stat.pid === process.pid) continue;
    const env = readEnviron(stat.pid);
    if (env?.[MARKER.stateDir] === stateDir && env[MARKER.name] && env[MARKER.spawn]) out.push({ stat, env });
  }
  return out;
}

/**
 * The marked processes no record accounts for, as records to adopt. A marked process is a start of
 * the supervisor or a descendant of one that made its own group (it inherited the environment):
 * those of a recorded process's spawn id are its descendants and left alone; of the others, the
 * oldest per spawn id is the process the supervisor started. Pure, given `startedAt`.
 */
export function untracked(marked: Marked[], records: readonly ProcessRecord[], startedAt: (startTime: number) => number): ProcessRecord[] {
  const recorded = new Set(records.map((r) => `${r.pid}:${r.startTime}`));
  const trackedSpawns = new Set(marked.filter((m) => recorded.has(`${m.stat.pid}:${m.stat.startTime}`)).map((m) => m.env[MARKER.spawn]));
  const oldest = new Map<string, Marked>();
  for (const m of marked) {
    const id = m.env[MARKER.spawn]!;
    if (trackedSpawns.has(id)) continue;
    const o = oldest.get(id);
    if (!o || m.stat.startTime < o.stat.startTime) oldest.set(id, m);
  }
  return [...oldest.values()].map(({ stat, env }) => {
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

/** The untracked processes of stateDir in /proc now. */
export function findUntracked(stateDir: string, records: readonly ProcessRecord[]): ProcessRecord[] {
  return untracked(findMarked(stateDir), records, startedAtMs);
}
