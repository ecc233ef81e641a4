// Every process the agent starts (a supervised process, a setup step, a hook) carries markers in
// its environment: the state dir it belongs to and an id unique to that start. The next agent finds
// it in /proc by them even when no record of it was written (killed between spawn and write, disk
// full). Children inherit the markers; the spawn id tells the process the agent started from those.
import { liveProcesses, readEnviron, signalGroup, type ProcStat } from "./proc.ts";

export const MARKER = {
  stateDir: "AGENT_STATE_DIR",   // the agent's state directory (absolute, normalised)
  spawn: "AGENT_SPAWN",          // unique per start
  name: "AGENT_PROCESS",         // a supervised process: its name ("web", "web#1")
  spec: "AGENT_SPEC",            // a supervised process: the spec fingerprint it was started with
  step: "AGENT_STEP",            // a setup step or hook: its argv as JSON
} as const;

/** The marker variables for one start; `extra` adds the kind's own (name and spec, or step). */
export function markerEnv(stateDir: string, extra: Record<string, string>): Record<string, string> {
  return { [MARKER.stateDir]: stateDir, [MARKER.spawn]: crypto.randomUUID(), ...extra };
}

/** An environment to pass on, without markers the agent itself may have inherited. */
export function withoutMarkers(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  const ours = new Set<string>(Object.values(MARKER));
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !ours.has(k)) out[k] = v;
  return out;
}

/** A process group leader in /proc whose environment is marked with a state dir. */
export interface Marked {
  stat: ProcStat;
  env: Record<string, string>;
}

/** The marked group leaders of stateDir now in /proc (the agent starts everything in its own group). */
export function findMarked(stateDir: string): Marked[] {
  const out: Marked[] = [];
  for (const stat of liveProcesses()) {
    if (stat.pid !== stat.pgrp || stat.pid === process.pid) continue;
    const env = readEnviron(stat.pid);
    if (env?.[MARKER.stateDir] === stateDir && env[MARKER.spawn]) out.push({ stat, env });
  }
  return out;
}

/** The oldest leader per spawn id: the process the agent started, not a leader it made itself. */
export function oldestPerSpawn(marked: Marked[]): Marked[] {
  const oldest = new Map<string, Marked>();
  for (const m of marked) {
    const id = m.env[MARKER.spawn]!, o = oldest.get(id);
    if (!o || m.stat.startTime < o.stat.startTime) oldest.set(id, m);
  }
  return [...oldest.values()];
}

/** The marker variables for one run of a setup step or hook. */
export function stepMarkers(stateDir: string, argv: string[]): Record<string, string> {
  return markerEnv(stateDir, { [MARKER.step]: JSON.stringify(argv) });
}

/** The process group of the step started with this spawn id (the oldest live process that carries it), or null. */
export function spawnGroup(spawnId: string): number | null {
  let first: ProcStat | null = null;
  for (const stat of liveProcesses()) {
    if (stat.pid === process.pid || (first && first.startTime <= stat.startTime)) continue;
    if (readEnviron(stat.pid)?.[MARKER.spawn] === spawnId) first = stat;
  }
  return first ? first.pgrp : null;
}

/**
 * SIGKILL the process group of the step started with this spawn id, when its agent died before
 * it could record the pgid. Returns the group, or null.
 */
export function killSpawn(spawnId: string): number | null {
  const pgrp = spawnGroup(spawnId);
  if (pgrp === null || pgrp <= 1) return null;
  signalGroup(pgrp, "SIGKILL");
  return pgrp;
}
