// Run a command to completion: argv (no shell), cwd, env, timeout, output to a log fd or captured.
// Used for setup steps, hooks, health commands, mkfs/mount, apt-get. Never throws for a non-zero
// exit: the result says what happened; it throws only when the binary cannot be started.
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { cancelKind } from "../core/cancel.ts";
import { writeFileAtomic } from "./files.ts";
import { groupMembers, isSameProcess, signalGroup, startTimeOf } from "./proc.ts";

export interface ExecOptions {
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Append stdout and stderr to this file (O_APPEND fd); otherwise they are captured. */
  logFile?: string;
  uid?: number;
  gid?: number;
  /**
   * Cancels the command. Aborted with Cancel("stop") (the agent exits), the command keeps running:
   * exec() returns at once with `detached`, its group file left for the next agent (awaitGroup).
   * Any other abort (a newer commit): SIGTERM to its group, SIGKILL after `stopTimeoutMs`.
   */
  signal?: AbortSignal;
  /** How long a cancelled command has to exit after SIGTERM (default 30 s). */
  stopTimeoutMs?: number;
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
  /** The agent stopped: the command was left running (its group file stays for the next agent). */
  detached?: boolean;
}

export async function exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const started = performance.now();
  const fd = opts.logFile ? openSync(opts.logFile, "a", 0o640) : undefined;
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
      writeFileAtomic(opts.groupFile, JSON.stringify({ pgid: p.pid, startTime: startTimeOf(p.pid), argv,
        startedAt: Date.now(), timeoutMs: opts.timeoutMs ?? null }) + "\n");
    }
    const killGroup = (sig: NodeJS.Signals) => { try { process.kill(-p.pid, sig); } catch {} };
    const timer = opts.timeoutMs ? setTimeout(() => { timedOut = true; killGroup("SIGKILL"); }, opts.timeoutMs) : undefined;
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    let detach: () => void = () => {};
    const detached = new Promise<"detached">((resolve) => { detach = () => resolve("detached"); });
    const onAbort = () => {
      if (cancelKind(opts.signal) === "stop") { detach(); return; }
      killGroup("SIGTERM");
      graceTimer = setTimeout(() => killGroup("SIGKILL"), opts.stopTimeoutMs ?? 30_000);
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
    const output = Promise.all([
      fd === undefined ? new Response(p.stdout as ReadableStream).text() : "",
      fd === undefined ? new Response(p.stderr as ReadableStream).text() : "",
      p.exited,
    ]);
    const done = await Promise.race([output, detached]);
    clearTimeout(timer);
    clearTimeout(graceTimer);
    opts.signal?.removeEventListener("abort", onAbort);
    if (done === "detached") {
      p.unref();
      return { code: null, signal: null, timedOut: false, stdout: "", stderr: "", durationMs: performance.now() - started, detached: true };
    }
    const [stdout, stderr] = done;
    if (opts.groupFile) rmSync(opts.groupFile, { force: true });
    return { code: p.exitCode, signal: p.signalCode == null ? null : String(p.signalCode), timedOut, stdout, stderr, durationMs: performance.now() - started };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Kill the process group recorded in `groupFile` by an exec() whose agent died, if that group's
 * leader is still the very process that was recorded (a reused pid is never signalled). Removes
 * the file. Returns the pgid killed, or null. Idempotent.
 */
export function reapGroup(groupFile: string): number | null {
  let rec: { pgid?: number; startTime?: number | null };
  try { rec = JSON.parse(readFileSync(groupFile, "utf8")); } catch { return null; }
  rmSync(groupFile, { force: true });
  if (!rec.pgid || rec.startTime == null || !isSameProcess(rec.pgid, rec.startTime)) return null;
  signalGroup(rec.pgid, "SIGKILL");
  return rec.pgid;
}

/**
 * Wait for the command recorded in `groupFile` by an agent that stopped (or died) while it ran:
 * until its process group is empty, or until its own timeout (counted from when it started) has
 * passed, then kill what is left (reapGroup). A record without a timeout is reaped at once.
 * Returns the pgid killed, or null.
 */
export async function awaitGroup(groupFile: string, sleep: (ms: number) => Promise<void> = Bun.sleep, now: () => number = Date.now): Promise<number | null> {
  let rec: { pgid?: number; startTime?: number | null; startedAt?: number; timeoutMs?: number | null };
  try { rec = JSON.parse(readFileSync(groupFile, "utf8")); } catch { return null; }
  const deadline = rec.startedAt != null && rec.timeoutMs ? rec.startedAt + rec.timeoutMs : 0;
  while (rec.pgid && now() < deadline && groupMembers(rec.pgid).length > 0
    && (rec.startTime == null || isSameProcess(rec.pgid, rec.startTime) || startTimeOf(rec.pgid) === null)) {
    await sleep(200);
  }
  if (rec.pgid && groupMembers(rec.pgid).length === 0) { rmSync(groupFile, { force: true }); return null; }
  return reapGroup(groupFile);
}

/** Split a command line like a shell does, without any shell features (no $, globs, pipes). */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  let cur = "", inWord = false, quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") { quote = c; inWord = true; }
    else if (c === "\\" && i + 1 < line.length) { cur += line[++i]; inWord = true; }
    else if (/\s/.test(c)) { if (inWord) { out.push(cur); cur = ""; inWord = false; } }
    else { cur += c; inWord = true; }
  }
  if (quote) throw new Error(`unterminated ${quote} quote in: ${line}`);
  if (inWord) out.push(cur);
  return out;
}
