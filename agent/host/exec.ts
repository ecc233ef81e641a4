// Run a command to completion: argv (no shell), cwd, env, timeout, output to a log fd or captured.
// Used for setup steps, hooks, health commands, mkfs/mount, apt-get. Never throws for a non-zero
// exit: the result says what happened; it throws only when the binary cannot be started.
import { closeSync, constants, openSync, readFileSync, rmSync } from "node:fs";
import { cancelKind } from "../core/cancel.ts";
import { writeFileAtomic } from "./files.ts";
import { killSpawn, spawnGroup } from "./marker.ts";
import { groupMembers, ownerOf, readStat, signalGroup, startTimeOf } from "./proc.ts";

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
  /** The agent stopped: the command was left running (its group file stays for the next agent). */
  detached?: boolean;
}

export async function exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const started = performance.now();
  const fd = opts.logFile ? openSync(opts.logFile, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640) : undefined;
  let timedOut = false;
  try {
    // Recorded before the spawn: an agent killed before it learns the pgid still leaves a trace
    // (the spawn id, found in /proc/<pid>/environ); a full disk fails here, before anything runs.
    const uid = opts.uid ?? process.getuid?.() ?? 0, startedAt = Date.now(), timeoutMs = opts.timeoutMs ?? null;
    if (opts.groupFile) writeFileAtomic(opts.groupFile, JSON.stringify({ spawn: opts.spawnId, uid, argv, startedAt, timeoutMs }) + "\n", 0o600);
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
      const rec: GroupRecord = { pgid: p.pid, startTime: startTimeOf(p.pid), uid, spawn: opts.spawnId, argv, startedAt, timeoutMs };
      try { writeFileAtomic(opts.groupFile, JSON.stringify(rec) + "\n", 0o600); }
      catch {}   // the step runs: wait for it; the record written before the spawn still finds it
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

/** What exec() records about a running command's process group (`groupFile`). */
export interface GroupRecord {
  pgid: number; startTime: number | null; uid: number; argv?: string[];
  spawn?: string;                                  // the spawn id in its environment (host/marker.ts)
  startedAt?: number; timeoutMs?: number | null;   // when it started and its own timeout: how long the next agent waits
}

function readRecord(groupFile: string): Partial<GroupRecord> | null {
  try { return JSON.parse(readFileSync(groupFile, "utf8")); } catch { return null; }
}

/**
 * The group recorded in `groupFile`, when it is still the very one an agent started: pgid > 1
 * (never kill(-1), every process), its leader still leads that group, started at the recorded
 * time, and runs as the recorded owner (`fallbackUid` for records that predate the field). Any
 * other record (forged, stale, a reused pid) is null: it is never signalled. Read-only.
 */
export function recordedGroup(groupFile: string, fallbackUid?: number): GroupRecord | null {
  const rec = readRecord(groupFile);
  if (!rec) return null;
  const pgid = rec.pgid, uid = typeof rec.uid === "number" ? rec.uid : fallbackUid;
  if (typeof pgid !== "number" || !Number.isInteger(pgid) || pgid <= 1 || typeof rec.startTime !== "number" || uid === undefined) return null;
  const st = readStat(pgid);
  if (!st || st.state === "Z" || st.state === "X" || st.pgrp !== pgid || st.startTime !== rec.startTime) return null;
  const owner = ownerOf(pgid);
  if (!owner || owner.real !== uid || owner.effective !== uid) return null;
  return { pgid, startTime: rec.startTime, uid, argv: rec.argv, spawn: rec.spawn,
    startedAt: typeof rec.startedAt === "number" ? rec.startedAt : undefined, timeoutMs: typeof rec.timeoutMs === "number" ? rec.timeoutMs : null };
}

/** A record written before the spawn, whose agent died before it learnt the pgid: its spawn id. */
function unrecordedSpawn(rec: Partial<GroupRecord> | null): string | null {
  return rec && rec.pgid === undefined && typeof rec.spawn === "string" && rec.spawn ? rec.spawn : null;
}

/**
 * Kill the process group recorded in `groupFile` by an exec() whose agent died, if it passes
 * recordedGroup()'s checks (a reused or forged pid is never signalled), or, for a record written
 * before the spawn, the group that carries its spawn id. Removes the file. Returns the pgid
 * killed, or null. Idempotent.
 */
export function reapGroup(groupFile: string, fallbackUid?: number): number | null {
  const raw = readRecord(groupFile);
  const rec = recordedGroup(groupFile, fallbackUid);
  rmSync(groupFile, { force: true });
  if (!rec) {
    const spawn = unrecordedSpawn(raw);
    return spawn ? killSpawn(spawn) : null;
  }
  signalGroup(rec.pgid, "SIGKILL");
  return rec.pgid;
}

/**
 * Wait for the command recorded in `groupFile` by an agent that stopped (or died) while it ran:
 * while it is still the very group recorded and has members, until its own timeout (counted from
 * when it started) has passed, then kill what is left (reapGroup). A record without a timeout is
 * reaped at once. Returns the pgid killed, or null.
 */
export async function awaitGroup(groupFile: string, fallbackUid?: number, sleep: (ms: number) => Promise<void> = Bun.sleep, now: () => number = Date.now): Promise<number | null> {
  const raw = readRecord(groupFile);
  const spawn = unrecordedSpawn(raw);
  const same = () => spawn ? spawnGroup(spawn) : recordedGroup(groupFile, fallbackUid)?.pgid ?? null;
  const pgid = same();
  if (pgid === null) { rmSync(groupFile, { force: true }); return null; }
  const deadline = typeof raw?.startedAt === "number" && raw.timeoutMs ? raw.startedAt + raw.timeoutMs : 0;
  while (now() < deadline && same() === pgid && groupMembers(pgid).length > 0) await sleep(200);
  if (groupMembers(pgid).length === 0) { rmSync(groupFile, { force: true }); return null; }
  return reapGroup(groupFile, fallbackUid);
}

// The splitter is pure and lives in core/ (manifest/ validates with it); re-exported for exec's callers.
export { splitArgs } from "../core/argv.ts";
