// Release directories and the agent's record of each (meta/<commit>/: release.json, the release
// log, a running step's group), the atomic `current` switch, retention, and the history of
// releases this node ran (meta/history.jsonl, which outlives pruned directories). The records live
// outside the tree, which the repository and the role's user control; meta/ is root's (0700).
// Never deletes the active release or one a process runs from.
import { chmodSync, closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, join } from "node:path";
import { switchSymlink, writeFileAtomic } from "../host/files.ts";
import { awaitGroup } from "../host/exec.ts";
import type { Layout } from "./layout.ts";

export type ReleaseState = "preparing" | "ready" | "active" | "good" | "failed";

export interface StepResult {
  run: string;
  outcome: "ran" | "reused" | "failed" | "timed-out" | "cancelled";
  inputsHash: string | null;
  durationMs: number;
  exitCode: number | null;
}

export interface ReleaseRecord {
  commit: string;
  state: ReleaseState;
  subject: string | null;
  createdAt: number;
  updatedAt: number;
  readyAt?: number;
  activatedAt?: number;
  endedAt?: number;
  /** PascalCase reason and one sentence, when failed. */
  reason?: string;
  message?: string;
  log: string;
  steps: StepResult[];
}

const HISTORY_MAX_LINES = 2000;
const COMMIT_RE = /^[0-9a-f]{40}$/;
/** Where history lived before meta/ (read until the first start of this version moves it). */
const legacyHistory = (l: Layout) => join(l.releases, ".history.jsonl");

/** Append to a file the agent owns; never through a symlink (O_NOFOLLOW), created 0600. */
export function appendOwnFile(path: string, data: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try { writeSync(fd, data); } finally { closeSync(fd); }
}

/**
 * meta/ and meta/<commit>/ exist, are real directories (not symlinks) and mode 0700; returns the
 * commit's. Idempotent. Throws when something else holds the name.
 */
export function ensureMetaDir(l: Layout, commit?: string): string {
  mkdirSync(l.root, { recursive: true });
  const dirs = commit ? [l.meta, l.releaseMetaDir(commit)] : [l.meta];
  for (const d of dirs) {
    try { mkdirSync(d, { mode: 0o700 }); } catch (e) { if ((e as { code?: string }).code !== "EEXIST") throw e; }
    const st = lstatSync(d);
    if (!st.isDirectory()) throw new Error(`${d} is not a directory; move it away: the agent keeps its release records there`);
    if ((st.mode & 0o777) !== 0o700) chmodSync(d, 0o700);
  }
  return dirs.at(-1)!;
}

/** The release's state file, or null when missing or unreadable (=> not a usable release). */
export function readRelease(l: Layout, commit: string): ReleaseRecord | null {
  try { return JSON.parse(readFileSync(l.releaseMeta(commit), "utf8")) as ReleaseRecord; } catch { return null; }
}

/** A release dir counts only when its state file says it finished preparing. */
export function isUsable(rec: ReleaseRecord | null): boolean {
  return !!rec && (rec.state === "ready" || rec.state === "active" || rec.state === "good");
}

/** Write the release's record atomically to meta/<commit>/release.json (root's, 0600). */
export function writeRelease(l: Layout, rec: ReleaseRecord): void {
  ensureMetaDir(l, rec.commit);
  writeFileAtomic(l.releaseMeta(rec.commit), JSON.stringify(rec, null, 2) + "\n", 0o600);
}

export function newRelease(l: Layout, commit: string, subject: string | null, now: number): ReleaseRecord {
  return { commit, state: "preparing", subject, createdAt: now, updatedAt: now, log: l.releaseLog(commit), steps: [] };
}

/**
 * Move a release to `state`, with optional fields (reason/message for failed), and append the
 * transition to the history. Throws when the release has no state file.
 */
export function markRelease(l: Layout, commit: string, state: ReleaseState, now: number,
  extra: Partial<Pick<ReleaseRecord, "reason" | "message" | "steps" | "subject">> = {}): ReleaseRecord {
  const rec = readRelease(l, commit);
  if (!rec) throw new Error(`release ${commit} has no state file; prepare it first`);
  const next: ReleaseRecord = { ...rec, ...extra, state, updatedAt: now };
  if (state === "ready") next.readyAt = now;
  if (state === "active") next.activatedAt = now;
  if (state === "good" || state === "failed") next.endedAt = now;
  writeRelease(l, next);
  appendHistory(l, { commit, state, at: now, subject: next.subject, reason: next.reason, message: next.message });
  return next;
}

export interface HistoryEvent { commit: string; state: ReleaseState; at: number; subject?: string | null; reason?: string; message?: string }

export function appendHistory(l: Layout, ev: HistoryEvent): void {
  const f = l.history;
  ensureMetaDir(l);
  appendOwnFile(f, JSON.stringify(ev) + "\n");
  try {
    if (statSync(f).size > HISTORY_MAX_LINES * 400) {
      const lines = readFileSync(f, "utf8").trimEnd().split("\n");
      writeFileAtomic(f, lines.slice(-HISTORY_MAX_LINES / 2).join("\n") + "\n", 0o600);
    }
  } catch {}
}

export interface HistoryEntry {
  commit: string;
  subject: string | null;
  state: ReleaseState;
  firstAt: number;
  lastAt: number;
  activatedAt: number | null;
  reason: string | null;
  message: string | null;
  /** Directory still on disk. */
  kept: boolean;
  current: boolean;
}

/** Releases this node ran, newest first (by first appearance); read-only. */
export function readHistory(l: Layout): HistoryEntry[] {
  const byCommit = new Map<string, HistoryEntry>();
  let text = "";
  try { text = readFileSync(existsSync(l.history) ? l.history : legacyHistory(l), "utf8"); } catch {}
  const cur = currentCommit(l);
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let ev: HistoryEvent;
    try { ev = JSON.parse(line); } catch { continue; }
    const e = byCommit.get(ev.commit) ?? {
      commit: ev.commit, subject: null, state: ev.state, firstAt: ev.at, lastAt: ev.at, activatedAt: null,
      reason: null, message: null, kept: false, current: false,
    };
    // A new preparation of a commit that ended before starts a new run of it.
    e.state = ev.state; e.lastAt = ev.at;
    if (ev.subject) e.subject = ev.subject;
    if (ev.state === "active") e.activatedAt = ev.at;
    if (ev.state === "failed") { e.reason = ev.reason ?? null; e.message = ev.message ?? null; }
    else if (ev.state !== "good") { e.reason = null; e.message = null; }
    byCommit.delete(ev.commit);
    byCommit.set(ev.commit, e);
  }
  for (const e of byCommit.values()) { e.kept = existsSync(l.release(e.commit)); e.current = e.commit === cur; }
  return [...byCommit.values()].sort((a, b) => b.lastAt - a.lastAt);
}

/** Point `current` at releases/<commit> atomically (symlink to a temp name + rename(2)). */
export function switchCurrent(l: Layout, commit: string): void {
  if (!existsSync(l.release(commit))) throw new Error(`release ${commit} is not on disk; check it out first`);
  switchSymlink(l.current, join("releases", commit));
}

/** The commit `current` points at, or null. */
export function currentCommit(l: Layout): string | null {
  try {
    const c = basename(readlinkSync(l.current));
    return COMMIT_RE.test(c) ? c : null;
  } catch { return null; }
}

/** Commits with a release directory (partials excluded), newest state file first. */
export function listReleases(l: Layout): ReleaseRecord[] {
  const out: ReleaseRecord[] = [];
  for (const name of existsSync(l.releases) ? readdirSync(l.releases) : []) {
    if (!COMMIT_RE.test(name)) continue;
    out.push(readRelease(l, name) ?? {
      commit: name, state: "failed", subject: null, createdAt: 0, updatedAt: 0, log: l.releaseLog(name), steps: [],
      reason: "NoStateFile", message: "release directory without a state file (interrupted)",
    });
  }
  // A commit refused before it had a tree (ReleaseRefused) is a failed release with its record only.
  for (const name of existsSync(l.meta) ? readdirSync(l.meta) : []) {
    if (!COMMIT_RE.test(name) || existsSync(l.release(name))) continue;
    const rec = readRelease(l, name);
    if (rec?.state === "failed") out.push(rec);
  }
  return out.sort((a, b) => b.updatedAt - a.updatedAt);
}

export interface Retention { keepGood: number; keepFailed: number; keepReady: number }
export const DEFAULT_RETENTION: Retention = { keepGood: 5, keepFailed: 3, keepReady: 1 };

/**
 * Pure: which releases to delete. Keeps the active one (current), every commit in `inUse` (a
 * running process started from it), the newest `keepGood` good, `keepFailed` failed and
 * `keepReady` ready/active releases; a release still preparing is left to its preparer.
 */
export function planPrune(releases: ReleaseRecord[], current: string | null, inUse: Set<string>, r: Retention): string[] {
  const sorted = [...releases].sort((a, b) => b.updatedAt - a.updatedAt);
  const seen: Record<string, number> = { good: 0, failed: 0, ready: 0 };
  const remove: string[] = [];
  for (const rec of sorted) {
    if (rec.commit === current || inUse.has(rec.commit) || rec.state === "preparing") continue;
    const kind = rec.state === "good" ? "good" : rec.state === "failed" ? "failed" : "ready";
    const limit = kind === "good" ? r.keepGood : kind === "failed" ? r.keepFailed : r.keepReady;
    if (seen[kind]! < limit) seen[kind]!++;
    else remove.push(rec.commit);
  }
  return remove;
}

/** Delete releases past retention and partial checkouts of dead processes; returns removed commits. */
export function pruneReleases(l: Layout, inUse: Iterable<string>, r: Retention = DEFAULT_RETENTION): string[] {
  removePartials(l);
  const remove = planPrune(listReleases(l), currentCommit(l), new Set(inUse), r);
  for (const c of remove) {
    rmSync(l.release(c), { recursive: true, force: true });
    rmSync(l.releaseMetaDir(c), { recursive: true, force: true });
  }
  removeOrphanMeta(l);
  return remove;
}

/**
 * Remove meta/<commit>/ records whose release directory is gone (pruned by an older agent,
 * deleted by hand), unless a live process is still checking that commit out. Failed records are
 * left to retention (planPrune counts them).
 */
function removeOrphanMeta(l: Layout): void {
  if (!existsSync(l.meta)) return;
  const partials = existsSync(l.releases) ? readdirSync(l.releases) : [];
  for (const c of readdirSync(l.meta)) {
    if (!COMMIT_RE.test(c) || existsSync(l.release(c))) continue;
    if (partials.some((n) => { const m = /^\.([0-9a-f]{40})\.partial-(\d+)$/.exec(n); return m?.[1] === c && isAlive(Number(m[2])); })) continue;
    if (existsSync(l.releaseGroup(c))) continue;   // a step may still run from it: the reaper decides
    if (readRelease(l, c)?.state === "failed") continue;
    rmSync(l.releaseMetaDir(c), { recursive: true, force: true });
  }
}

/** Remove releases/.<commit>.partial-<pid> left by processes that are gone (all but our own). */
export function removePartials(l: Layout): string[] {
  if (!existsSync(l.releases)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(l.releases)) {
    const m = /^\.[0-9a-f]{40}\.partial-(\d+)$/.exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    rmSync(join(l.releases, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** Append a line to the release's log, meta/<commit>/release.log (setup output goes there too). */
export function logToRelease(l: Layout, commit: string, line: string): void {
  ensureMetaDir(l, commit);
  appendOwnFile(l.releaseLog(commit), line.endsWith("\n") ? line : line + "\n");
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try { process.kill(pid, 0); return true; } catch (e) { return (e as { code?: string }).code === "EPERM"; }
}

/**
 * The setup steps and hooks that a stopped (or killed) agent left running (their process groups
 * are recorded in meta/<commit>/running.group): wait for each to finish, up to its own timeout
 * counted from when it started, then kill what is left. A step cut off halfway (a migration) is
 * worse than a slower start. Call once at start, as the only agent, before a tick.
 */
export async function reapOrphans(l: Layout): Promise<number[]> {
  if (!existsSync(l.meta)) return [];
  const killed: number[] = [];
  for (const name of readdirSync(l.meta)) {
    if (!COMMIT_RE.test(name)) continue;
    // Records moved from an older layout carry no owner: the step ran as the tree's owner.
    const treeOwner = statSync(l.release(name), { throwIfNoEntry: false })?.uid;
    const pgid = await awaitGroup(l.releaseGroup(name), treeOwner);
    if (pgid !== null) killed.push(pgid);
  }
  return killed;
}
