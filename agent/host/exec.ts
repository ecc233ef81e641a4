// Run a command to completion: argv (no shell), cwd, env, timeout, output to a log fd or captured.
// Used for setup steps, hooks, health commands, mkfs/mount, apt-get. Never throws for a non-zero
// exit: the result says what happened; it throws only when the binary cannot be started.
import { closeSync, constants, openSync, readFileSync, rmSync } from "node:fs";
import { writeFileAtomic } from "./files.ts";
import { ownerOf, readStat, signalGroup, startTimeOf } from "./proc.ts";

export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Append stdout and stderr to this file (O_APPEND fd); otherwise they are captured. */
  logFile?: string;
  uid?: number;
  gid?: number;
  signal?: AbortSignal;
  stdin?: string;
  /**
   * Record the command's process group here while it runs, so that an agent killed meanwhile
   * leaves a trace: the next agent reaps the orphaned group with reapGroup().
   */
  groupFile?: string;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export async function exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const started = performance.now();
  const fd = opts.logFile ? openSync(opts.logFile, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640) : undefined;
  let timedOut = false;
  try {
    const p = Bun.spawn(argv, {
      cwd: opts.cwd,
      env: opts.env ?? (process.env as Record<string, string>),
      stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
      stdout: fd ?? "pipe",
      stderr: fd ?? "pipe",
      detached: true,
      uid: opts.uid,
      gid: opts.gid,
    });
    if (opts.groupFile) {
      const rec: GroupRecord = { pgid: p.pid, startTime: startTimeOf(p.pid), uid: opts.uid ?? process.getuid?.() ?? 0, argv };
      writeFileAtomic(opts.groupFile, JSON.stringify(rec) + "\n", 0o600);
    }
    const killGroup = (sig: NodeJS.Signals) => { try { process.kill(-p.pid, sig); } catch {} };
    const timer = opts.timeoutMs ? setTimeout(() => { timedOut = true; killGroup("SIGKILL"); }, opts.timeoutMs) : undefined;
    const onAbort = () => killGroup("SIGKILL");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const [stdout, stderr] = await Promise.all([
      fd === undefined ? new Response(p.stdout as ReadableStream).text() : "",
      fd === undefined ? new Response(p.stderr as ReadableStream).text() : "",
    ]);
    await p.exited;
    clearTimeout(timer);
    if (opts.groupFile) rmSync(opts.groupFile, { force: true });
    opts.signal?.removeEventListener("abort", onAbort);
    return { code: p.exitCode, signal: p.signalCode == null ? null : String(p.signalCode), timedOut, stdout, stderr, durationMs: performance.now() - started };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** What exec() records about a running command's process group (`groupFile`). */
export interface GroupRecord { pgid: number; startTime: number | null; uid: number; argv?: string[] }

/**
 * The group recorded in `groupFile`, when it is still the very one an agent started: pgid > 1
 * (never kill(-1), every process), its leader still leads that group, started at the recorded
 * time, and runs as the recorded owner (`fallbackUid` for records that predate the field). Any
 * other record (forged, stale, a reused pid) is null: it is never signalled. Read-only.
 */
export function recordedGroup(groupFile: string, fallbackUid?: number): GroupRecord | null {
  let rec: Partial<GroupRecord>;
  try { rec = JSON.parse(readFileSync(groupFile, "utf8")); } catch { return null; }
  const pgid = rec.pgid, uid = typeof rec.uid === "number" ? rec.uid : fallbackUid;
  if (typeof pgid !== "number" || !Number.isInteger(pgid) || pgid <= 1 || typeof rec.startTime !== "number" || uid === undefined) return null;
  const st = readStat(pgid);
  if (!st || st.state === "Z" || st.state === "X" || st.pgrp !== pgid || st.startTime !== rec.startTime) return null;
  const owner = ownerOf(pgid);
  if (!owner || owner.real !== uid || owner.effective !== uid) return null;
  return { pgid, startTime: rec.startTime, uid, argv: rec.argv };
}

/**
 * Kill the process group recorded in `groupFile` by an exec() whose agent died, if it passes
 * recordedGroup()'s checks (a reused or forged pid is never signalled). Removes the file.
 * Returns the pgid killed, or null. Idempotent.
 */
export function reapGroup(groupFile: string, fallbackUid?: number): number | null {
  const rec = recordedGroup(groupFile, fallbackUid);
  rmSync(groupFile, { force: true });
  if (!rec) return null;
  signalGroup(rec.pgid, "SIGKILL");
  return rec.pgid;
}

// The splitter is pure and lives in core/ (manifest/ validates with it); re-exported for exec's callers.
export { splitArgs } from "../core/argv.ts";
