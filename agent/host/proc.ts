// What /proc says about a pid: its start time (field 22 of /proc/<pid>/stat, which tells a
// reused pid from the process we started), its nice value and threads, the members of a process
// group, the environment it was started with. Read-only.
import { readdirSync, readFileSync } from "node:fs";

export interface ProcStat {
  pid: number;
  state: string;           // R, S, D, Z, T ...
  ppid: number;
  pgrp: number;
  nice: number;            // field 19: -20 (first) to 19 (last); per thread in /proc/<tid>/stat
  startTime: number;       // clock ticks since boot
}

/** Parse /proc/<pid>/stat; null when the pid does not exist. The comm field may hold spaces and ')'. */
export function readStat(pid: number): ProcStat | null {
  let text: string;
  try { text = readFileSync(`/proc/${pid}/stat`, "utf8"); } catch { return null; }
  return parseStat(text);
}

export function parseStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const pid = Number(text.slice(0, text.indexOf(" ")));
  const f = text.slice(close + 2).split(" ");  // f[0] is field 3 (state)
  if (f.length < 20) return null;
  return { pid, state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), nice: Number(f[16]), startTime: Number(f[19]) };
}

/** The threads of a process (/proc/<pid>/task) with their names (comm, at most 15 bytes); empty when it is gone. */
export function threadsOf(pid: number | "self" = "self"): { tid: number; name: string }[] {
  let tids: string[];
  try { tids = readdirSync(`/proc/${pid}/task`); } catch { return []; }
  return tids.flatMap((t) => {
    try { return [{ tid: Number(t), name: readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim() }]; } catch { return []; }   // it exited
  });
}

/** The start time of a live (non-zombie) pid, or null. */
export function startTimeOf(pid: number): number | null {
  const s = readStat(pid);
  return s && s.state !== "Z" && s.state !== "X" ? s.startTime : null;
}

/** True when pid is alive and still the process that started at startTime (never a reused pid). */
export function isSameProcess(pid: number, startTime: number): boolean {
  return startTimeOf(pid) === startTime;
}

/** The real and effective uid of a pid (from /proc/<pid>/status), or null when it is gone. */
export function ownerOf(pid: number): { real: number; effective: number } | null {
  let text: string;
  try { text = readFileSync(`/proc/${pid}/status`, "utf8"); } catch { return null; }
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(text);
  return m ? { real: Number(m[1]), effective: Number(m[2]) } : null;
}

/** Live (non-zombie) processes, from a scan of /proc. Use at start-up or for stops, not in hot loops. */
export function liveProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync("/proc")) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const s = readStat(Number(name));
    if (s && s.state !== "Z" && s.state !== "X") out.push(s);
  }
  return out;
}

/**
 * The environment a process was started with (/proc/<pid>/environ); null when it is gone or not
 * readable (another user's process, for an agent that is not root).
 */
export function readEnviron(pid: number): Record<string, string> | null {
  let text: string;
  try { text = readFileSync(`/proc/${pid}/environ`, "utf8"); } catch { return null; }
  const env: Record<string, string> = {};
  for (const kv of text.split("\0")) {
    const i = kv.indexOf("=");
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux the agent runs on). */
const USER_HZ = 100;

/** When a start time (clock ticks since boot) was, in epoch ms, from /proc/stat's btime. */
export function startedAtMs(startTime: number): number {
  let btime = 0;
  try { btime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1] ?? 0); } catch {}
  return btime * 1000 + Math.round(startTime * 1000 / USER_HZ);
}

/** Live (non-zombie) pids whose process group is pgid. Scans /proc: use for stops, not hot loops. */
export function groupMembers(pgid: number): number[] {
  return liveProcesses().filter((s) => s.pgrp === pgid).map((s) => s.pid);
}

/** Signal a whole process group; false when it no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try { process.kill(-pgid, signal); return true; } catch { return false; }
}
