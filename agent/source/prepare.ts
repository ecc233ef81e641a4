// Prepare a checked-out release beside the running one: the role's user and packages, shared
// paths linked in, setup steps run (or reused when their inputs are unchanged), then "ready".
// Touches only the new release dir, shared/ and the host's packages/users; never `current`.
// Every role path resolves inside the release (or shared/): a symlinked parent is refused.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { AgentError } from "../core/errors.ts";
import { cancelKind } from "../core/cancel.ts";
import type { Logger } from "../core/log.ts";
import { exec, splitArgs, type ExecResult } from "../host/exec.ts";
import { stepMarkers, withoutMarkers } from "../host/marker.ts";
import type { PackageManager } from "../host/packages.ts";
import { isRoot, lookupUser, type UnixUser, type UserManager } from "../host/users.ts";
import type { Role, SetupStep } from "../manifest/schema.ts";
import type { Layout } from "../state/layout.ts";
import { explainUnreachable } from "../host/runtime.ts";
import { logToRelease, markRelease, newRelease, readRelease, writeRelease, type ReleaseRecord, type StepResult } from "../state/releases.ts";

export interface PrepareOptions {
  layout: Layout;
  commit: string;
  role: Role;
  /** The last good release: a step whose inputs match its record reuses its outputs. */
  previous: string | null;
  packages: PackageManager;
  users: UserManager;
  log: Logger;
  /** A newer commit aborts this preparation: the running step's process group is killed. */
  signal?: AbortSignal;
  now?: () => number;
  /** The secret variables a step names (`secrets:`), resolved by the caller; never written anywhere. */
  stepEnv?: (step: SetupStep, index: number) => Record<string, string>;
}

/**
 * Take releases/<commit> (checked out, state "preparing") to "ready", or mark it "failed" with a
 * reason, message and log path and throw that AgentError: SetupFailed, SetupTimedOut,
 * PackagesFailed, PreparationCancelled, UnsafePath (a role path through a symlink), UserUnknown
 * (never root in place of the role's user). Idempotent per release dir: re-running redoes every step.
 */
export async function prepareRelease(o: PrepareOptions): Promise<ReleaseRecord> {
  const l = o.layout, now = o.now ?? Date.now, dir = l.release(o.commit);
  let rec = readRelease(l, o.commit);
  if (!rec) { rec = newRelease(l, o.commit, null, now()); writeRelease(l, rec); }
  const steps: StepResult[] = [];
  const say = (line: string) => logToRelease(l, o.commit, `[${new Date(now()).toISOString()}] ${line}`);
  try {
    say(`preparing ${o.commit}`);
    checkRolePaths(dir, o.role);
    const user = await runAs(o.role.user, (name) => o.users.ensure(name));
    if (!user) say(`not root: setup runs as the agent's own user, not ${o.role.user}`);
    const missing = await o.packages.missing(o.role.packages);
    if (missing.length) { say(`installing packages: ${missing.join(" ")}`); await o.packages.install(missing); }
    linkShared(l, dir, o.role.shared, say);
    if (user && user.uid !== 0) await chownAll([dir, l.shared], user);
    const prev = o.previous && o.previous !== o.commit ? readRelease(l, o.previous) : null;
    for (const [i, step] of o.role.setup.entries()) {
      if (o.signal?.aborted) throw cancelled(o.commit, o.signal);
      steps.push(await runStep(o, step, i, dir, prev, user, say));
    }
    const ready = markRelease(l, o.commit, "ready", now(), { steps });
    say("ready");
    o.log.info("release ready", { commit: o.commit, ran: steps.filter((s) => s.outcome === "ran").length, reused: steps.filter((s) => s.outcome === "reused").length });
    return ready;
  } catch (e) {
    const err = e instanceof AgentError ? e : new AgentError("SetupFailed", `preparing ${o.commit.slice(0, 12)}: ${(e as Error)?.message ?? e}; see ${l.releaseLog(o.commit)}`, { kind: "transient" }, { cause: e });
    say(`failed: ${err.reason}: ${err.message}`);
    try { markRelease(l, o.commit, "failed", now(), { steps, reason: err.reason, message: err.message }); } catch {}
    throw err;
  }
}

async function runStep(o: PrepareOptions, step: SetupStep, i: number, dir: string, prev: ReleaseRecord | null,
  user: UnixUser | null, say: (s: string) => void): Promise<StepResult> {
  // Reuse carries the step's results into the new release; without outputs there is nothing to
  // carry (its results would be missing), so such a step always runs.
  const outputs = step.outputs ?? [];
  const reusable = !!step.inputs?.length && outputs.length > 0;
  const hash = reusable ? hashInputs(dir, step) : null;
  const before = prev?.steps[i];
  const prevDir = prev ? o.layout.release(prev.commit) : null;
  if (hash && before && before.run === step.run && before.inputsHash === hash && (before.outcome === "ran" || before.outcome === "reused")
    && prevDir && existsSync(prevDir) && outputs.every((p) => carryable(prevDir, p))) {
    const t0 = performance.now();
    for (const out of outputs) await carryOutput(prevDir, dir, out, i, user, step.timeout, prev!.commit);
    say(`$ ${step.run}  (inputs unchanged since ${prev!.commit.slice(0, 12)}: reused, copied ${outputs.join(", ")})`);
    return { run: step.run, outcome: "reused", inputsHash: hash, durationMs: Math.round(performance.now() - t0), exitCode: null };
  }
  if (step.inputs?.length && !outputs.length) say(`  (inputs without outputs: nothing to carry, so this step runs in every release)`);
  say(`$ ${step.run}`);
  const env = o.stepEnv?.(step, i);
  let r;
  try {
    r = await runInRelease(o.layout, o.commit, user, step.run, { timeoutMs: step.timeout, stopTimeoutMs: step.stop.timeout, signal: o.signal, env });
  } catch (e) {
    const denied = user && (e as { code?: string }).code === "EACCES" ? explainUnreachable(step.run.trim().split(/\s+/)[0] ?? "", user, process.env.PATH, o.layout.release(o.commit)) : null;
    throw AgentError.terminal("SetupFailed", `setup step ${i + 1} "${step.run}" could not start (${(e as Error).message}); ${denied ?? "fix the role file, or install the program (packages: in the role)"}`);
  }
  const result: StepResult = { run: step.run, outcome: "ran", inputsHash: hash, durationMs: Math.round(r.durationMs), exitCode: r.code };
  if (o.signal?.aborted) throw cancelled(o.commit, o.signal);
  if (r.timedOut) {
    throw AgentError.terminal("SetupTimedOut", `setup step ${i + 1} "${step.run}" did not finish within ${step.timeout}ms and was killed; see ${o.layout.releaseLog(o.commit)}, or raise the step's timeout: in the role`);
  }
  if (r.code !== 0) {
    throw AgentError.terminal("SetupFailed", `setup step ${i + 1} "${step.run}" exited ${r.code ?? r.signal}; see ${o.layout.releaseLog(o.commit)}`);
  }
  say(`  exit 0 in ${Math.round(r.durationMs)}ms`);
  return result;
}

/**
 * Run one of a role's commands (a setup step, a hook) in its release directory: split like a
 * shell without one, as the role's user when there is one (its HOME under <stateDir>/home),
 * output appended to the release log, its process group recorded so a later agent can reap it.
 * Throws only when the command cannot be split or started; the result says how it ended.
 */
export async function runInRelease(l: Layout, commit: string, user: UnixUser | null, command: string,
  opts: { timeoutMs: number; stopTimeoutMs?: number; signal?: AbortSignal; env?: Record<string, string> }): Promise<ExecResult> {
  // Fail closed: as root, a command runs as root only when runAs() said so (user: root).
  if (!user && isRoot()) throw new Error(`no user to run \`${command}\` as; the agent never runs a role's command as root in place of its user`);
  const argv = splitArgs(command);
  const dir = l.release(commit);
  const markers = stepMarkers(resolve(l.root), argv);   // found by the next agent even before its pgid is recorded
  const env: Record<string, string> = { ...withoutMarkers(process.env), ...opts.env, RELEASE_DIR: dir, AGENT_RELEASE: dir, AGENT_COMMIT: commit, ...markers };
  const asUser = user && user.uid !== 0 ? user : null;
  if (asUser) {
    const home = join(l.root, "home", asUser.name);
    if (!existsSync(home)) { mkdirSync(home, { recursive: true }); await chownAll([home], asUser); }
    Object.assign(env, { HOME: home, USER: asUser.name, LOGNAME: asUser.name });
  }
  return exec(argv, { cwd: dir, env, timeoutMs: opts.timeoutMs, stopTimeoutMs: opts.stopTimeoutMs, logFile: l.releaseLog(commit), signal: opts.signal,
    groupFile: l.releaseGroup(commit), spawnId: markers.AGENT_SPAWN, uid: asUser?.uid, gid: asUser?.gid });
}

const ROOT: UnixUser = { name: "root", uid: 0, gid: 0 };

/**
 * Who runs a role's setup steps and hooks: null when the agent is not root (everything runs as
 * the agent's own user); root only when the role says `user: root`; otherwise the role's user as
 * `find` returns it. Fails closed: a user that cannot be looked up is UserUnknown, never root.
 */
export async function runAs(roleUser: string, find: (name: string) => Promise<UnixUser | null> = lookupUser): Promise<UnixUser | null> {
  if (!isRoot()) return null;
  if (roleUser === "root") return ROOT;
  const u = await find(roleUser);
  if (!u) {
    throw new AgentError("UserUnknown",
      `the role's user ${roleUser} cannot be looked up (getent passwd ${roleUser} found nothing); its commands never run as root instead: create the user or fix the name service, and the agent retries`,
      { kind: "transient" });
  }
  return u;
}

// Not a verdict on the commit: a stop leaves the running step to the next agent, which waits for it.
const cancelled = (commit: string, signal?: AbortSignal) =>
  new AgentError("PreparationCancelled", cancelKind(signal) === "stop"
    ? `preparation of ${commit.slice(0, 12)} was interrupted: the agent stopped (a running step keeps running; the next agent waits for it and prepares again)`
    : `preparation of ${commit.slice(0, 12)} was cancelled (a newer commit is wanted)`, { kind: "transient" });

/** sha256 over the step's run string and its inputs' contents (directories walked in order). Read-only. */
export function hashInputs(dir: string, step: Pick<SetupStep, "run" | "inputs">): string {
  const h = new Bun.CryptoHasher("sha256").update(step.run).update("\0");
  const add = (abs: string) => {
    const rel = relative(dir, abs);
    let st;
    try { st = lstatSync(abs); } catch { h.update(`${rel}\0<absent>\0`); return; }
    if (st.isDirectory()) { for (const n of readdirSync(abs).sort()) add(join(abs, n)); return; }
    h.update(`${rel}\0`).update(st.isSymbolicLink() ? `link` : readFileSync(abs)).update("\0");
  };
  for (const p of [...(step.inputs ?? [])].sort()) add(resolveInside(dir, p, "setup inputs"));
  return h.digest("hex");
}

/**
 * Link each shared path into the release: <stateDir>/shared/<path> <- releases/<commit>/<path>.
 * The first time, a path the checkout has seeds shared/ (moved there); a path neither has is
 * created, as a directory when its name has no dot (log, tmp) and as an empty file otherwise (.env).
 * Both sides resolve inside their directory: a symlinked parent, or a symlink in shared/ where
 * the path should be, is refused (UnsafePath), never followed.
 */
export function linkShared(l: Layout, dir: string, paths: string[], say: (s: string) => void = () => {}): void {
  for (const p of paths) {
    const link = resolveInside(dir, p, "shared"), target = resolveInside(l.shared, p, "shared", "the shared directory");
    const there = lstatSync(target, { throwIfNoEntry: false });
    if (there?.isSymbolicLink()) {
      throw unsafe(`shared: ${p}: ${target} is a symbolic link; shared paths are kept as real files and directories: remove the link (as root) and the agent recreates the path`);
    }
    mkdirSync(dirname(target), { recursive: true });
    const inRelease = lstatSync(link, { throwIfNoEntry: false });
    if (!there) {
      if (inRelease && !inRelease.isSymbolicLink()) { renameSync(link, target); say(`shared ${p}: seeded from the release`); }
      else if (basename(p).includes(".")) writeFileSync(target, "", { flag: "wx" });
      else mkdirSync(target, { recursive: true });
    }
    rmSync(link, { recursive: true, force: true });
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(target, link);
  }
}

/**
 * `rel` under `base`, when every directory on the way is a real directory or not there yet: a
 * symbolic link on the way could lead anywhere on the host, so it is refused (UnsafePath), never
 * followed. The last component is the caller's to look at. Read-only.
 */
export function resolveInside(base: string, rel: string, field: string, where = "the release"): string {
  const parts = rel.split("/").filter((x) => x && x !== ".");
  if (isAbsolute(rel) || parts.includes("..") || parts.length === 0) {
    throw unsafe(`${field}: ${rel} must be a path inside ${where} (relative, no '..')`);
  }
  let at = base;
  for (const part of parts.slice(0, -1)) {
    at = join(at, part);
    const st = lstatSync(at, { throwIfNoEntry: false });
    if (!st) break;
    const name = relative(base, at);
    if (st.isSymbolicLink()) {
      throw unsafe(`${field}: ${rel}: ${name} is a symbolic link in ${where}; the agent never follows a link out of it: make ${name} a real directory, or name the path it points to`);
    }
    if (!st.isDirectory()) throw unsafe(`${field}: ${rel}: ${name} is not a directory in ${where}`);
  }
  return join(base, ...parts);
}

const unsafe = (message: string) => AgentError.terminal("UnsafePath", message);

/** Refuse a release whose tree leads a role path (shared, setup inputs and outputs, a process's cwd) out of it. Read-only. */
export function checkRolePaths(dir: string, role: Role): void {
  for (const p of role.shared) resolveInside(dir, p, "shared");
  for (const [i, step] of role.setup.entries()) {
    for (const p of step.inputs ?? []) resolveInside(dir, p, `setup step ${i + 1} inputs`);
    for (const p of step.outputs ?? []) resolveInside(dir, p, `setup step ${i + 1} outputs`);
  }
  for (const [name, proc] of Object.entries(role.processes)) {
    if (!proc.cwd) continue;
    const cwd = resolveInside(dir, proc.cwd, `processes.${name}.cwd`);
    if (lstatSync(cwd, { throwIfNoEntry: false })?.isSymbolicLink()) {
      throw unsafe(`processes.${name}.cwd: ${proc.cwd} is a symbolic link in the release; a process's working directory must be a real directory inside it`);
    }
  }
}

/** The previous release has `out`, reached without a link on the way (else the step just runs). */
function carryable(prevDir: string, out: string): boolean {
  try { return !!lstatSync(resolveInside(prevDir, out, "outputs"), { throwIfNoEntry: false }); } catch { return false; }
}

/**
 * Carry a reused step's output from the previous release into the new one as a copy (reflinked
 * where the filesystem can), owned by the role's user: the new release can change its copy, never
 * the old release's files in place. Both sides resolve inside their release; links are copied as links.
 */
async function carryOutput(prevDir: string, dir: string, out: string, i: number, user: UnixUser | null, timeoutMs: number, from: string): Promise<void> {
  const field = `setup step ${i + 1} outputs`;
  const src = resolveInside(prevDir, out, field), dst = resolveInside(dir, out, field);
  rmSync(dst, { recursive: true, force: true });
  mkdirSync(dirname(dst), { recursive: true });
  const r = await exec(["cp", "-a", "--reflink=auto", "--no-target-directory", src, dst], { timeoutMs });
  if (r.code !== 0) throw new AgentError("SetupFailed", `copying ${out} from release ${from.slice(0, 12)} failed: ${r.stderr.trim()}`);
  if (user && user.uid !== 0) await chownAll([dst], user);
}

/** chown -R -h: changes links themselves and never descends through one (GNU chown's -P default with -R). */
async function chownAll(paths: string[], user: UnixUser): Promise<void> {
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const r = await exec(["chown", "-R", "-h", `${user.uid}:${user.gid}`, p], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new AgentError("SetupFailed", `chown ${user.name} ${p} failed: ${r.stderr.trim()}`);
  }
}
