// Run a command to completion: argv (no shell), cwd, env, timeout, output to a log fd or captured.
// Used for setup steps, hooks, health commands, mkfs/mount, apt-get. Never throws for a non-zero
// exit: the result says what happened; it throws only when the binary cannot be started.
import { closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { writeFileAtomic } from "./files.ts";
import { killSpawn } from "./marker.ts";
import { isSameProcess, signalGroup, startTimeOf } from "./proc.ts";

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
  /** The AGENT_SPAWN marker in env (host/marker.ts): recorded in groupFile before the spawn. */
  spawnId?: string;
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
  const fd = opts.logFile ? openSync(opts.logFile, "a", 0o640) : undefined;
  let timedOut = false;
  try {
    // Recorded before the spawn: an agent killed before it learns the pgid still leaves a trace
    // (the spawn id, found in /proc/<pid>/environ); a full disk fails here, before anything runs.
    if (opts.groupFile) writeFileAtomic(opts.groupFile, JSON.stringify({ spawn: opts.spawnId, argv }) + "\n");
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
    // Test hook, inert unless set: die here as an agent SIGKILLed between spawn and record would.
    if (opts.groupFile && process.env.AGENT_TEST_DIE_AFTER_SPAWN === "step") process.kill(process.pid, "SIGKILL");
    if (opts.groupFile) {
      try { writeFileAtomic(opts.groupFile, JSON.stringify({ pgid: p.pid, startTime: startTimeOf(p.pid), spawn: opts.spawnId, argv }) + "\n"); }
      catch {}   // the step runs: wait for it; the record written before the spawn still finds it
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

/**
 * Kill the process group recorded in `groupFile` by an exec() whose agent died, if that group's
 * leader is still the very process that was recorded (a reused pid is never signalled). Removes
 * the file. Returns the pgid killed, or null. Idempotent.
 */
export function reapGroup(groupFile: string): number | null {
  let rec: { pgid?: number; startTime?: number | null; spawn?: string };
  try { rec = JSON.parse(readFileSync(groupFile, "utf8")); } catch { return null; }
  rmSync(groupFile, { force: true });
  if (!rec.pgid && rec.spawn) return killSpawn(rec.spawn);   // the agent died before it recorded the pgid
  if (!rec.pgid || rec.startTime == null || !isSameProcess(rec.pgid, rec.startTime)) return null;
  signalGroup(rec.pgid, "SIGKILL");
  return rec.pgid;
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
