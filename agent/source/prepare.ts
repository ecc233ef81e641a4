// Prepare a checked-out release beside the running one: the role's user and packages, shared
// paths linked in, setup steps run (or reused when their inputs are unchanged), then "ready".
// Touches only the new release dir, shared/ and the host's packages/users; never `current`.
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { AgentError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { exec, splitArgs, type ExecResult } from "../host/exec.ts";
import type { PackageManager } from "../host/packages.ts";
import { isRoot, type UnixUser, type UserManager } from "../host/users.ts";
import type { Role, SetupStep } from "../manifest/schema.ts";
import type { Layout } from "../state/layout.ts";
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
 * PackagesFailed, PreparationCancelled. Idempotent per release dir: re-running redoes every step.
 */
export async function prepareRelease(o: PrepareOptions): Promise<ReleaseRecord> {
  const l = o.layout, now = o.now ?? Date.now, dir = l.release(o.commit);
  let rec = readRelease(l, o.commit);
  if (!rec) { rec = newRelease(l, o.commit, null, now()); writeRelease(l, rec); }
  const steps: StepResult[] = [];
  const say = (line: string) => logToRelease(l, o.commit, `[${new Date(now()).toISOString()}] ${line}`);
  try {
    say(`preparing ${o.commit}`);
    const user = o.role.user === "root" ? (isRoot() ? { name: "root", uid: 0, gid: 0 } : null) : await o.users.ensure(o.role.user);
    if (!user) say(`not root: setup runs as the agent's own user, not ${o.role.user}`);
    const missing = await o.packages.missing(o.role.packages);
    if (missing.length) { say(`installing packages: ${missing.join(" ")}`); await o.packages.install(missing); }
    linkShared(l, dir, o.role.shared, say);
    if (user && user.uid !== 0) await chownAll([dir, l.shared], user);
    const prev = o.previous && o.previous !== o.commit ? readRelease(l, o.previous) : null;
    for (const [i, step] of o.role.setup.entries()) {
      if (o.signal?.aborted) throw cancelled(o.commit);
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
  const hash = step.inputs ? hashInputs(dir, step) : null;
  const before = prev?.steps[i];
  const prevDir = prev ? o.layout.release(prev.commit) : null;
  if (hash && before && before.run === step.run && before.inputsHash === hash && (before.outcome === "ran" || before.outcome === "reused")
    && prevDir && existsSync(prevDir) && (step.outputs ?? []).every((p) => existsSync(join(prevDir, p)))) {
    const t0 = performance.now();
    for (const out of step.outputs ?? []) {
      rmSync(join(dir, out), { recursive: true, force: true });
      mkdirSync(dirname(join(dir, out)), { recursive: true });
      const r = await exec(["cp", "-al", join(prevDir, out), join(dir, out)], { timeoutMs: step.timeout });
      if (r.code !== 0) throw new AgentError("SetupFailed", `copying ${out} from release ${prev!.commit.slice(0, 12)} failed: ${r.stderr.trim()}`);
    }
    say(`$ ${step.run}  (inputs unchanged since ${prev!.commit.slice(0, 12)}: reused${step.outputs?.length ? " " + step.outputs.join(", ") : ""})`);
    return { run: step.run, outcome: "reused", inputsHash: hash, durationMs: Math.round(performance.now() - t0), exitCode: null };
  }
  say(`$ ${step.run}`);
  const env = o.stepEnv?.(step, i);
  let r;
  try {
    r = await runInRelease(o.layout, o.commit, user, step.run, { timeoutMs: step.timeout, signal: o.signal, env });
  } catch (e) {
    throw AgentError.terminal("SetupFailed", `setup step ${i + 1} "${step.run}" could not start (${(e as Error).message}); fix the role file, or install the program (packages: in the role)`);
  }
  const result: StepResult = { run: step.run, outcome: "ran", inputsHash: hash, durationMs: Math.round(r.durationMs), exitCode: r.code };
  if (o.signal?.aborted) throw cancelled(o.commit);
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
  opts: { timeoutMs: number; signal?: AbortSignal; env?: Record<string, string> }): Promise<ExecResult> {
  const argv = splitArgs(command);
  const dir = l.release(commit);
  const env: Record<string, string> = { ...(process.env as Record<string, string>), ...opts.env, RELEASE_DIR: dir, AGENT_RELEASE: dir, AGENT_COMMIT: commit };
  const asUser = user && user.uid !== 0 ? user : null;
  if (asUser) {
    const home = join(l.root, "home", asUser.name);
    if (!existsSync(home)) { mkdirSync(home, { recursive: true }); await chownAll([home], asUser); }
    Object.assign(env, { HOME: home, USER: asUser.name, LOGNAME: asUser.name });
  }
  return exec(argv, { cwd: dir, env, timeoutMs: opts.timeoutMs, logFile: l.releaseLog(commit), signal: opts.signal,
    groupFile: l.releaseGroup(commit), uid: asUser?.uid, gid: asUser?.gid });
}

const cancelled = (commit: string) =>
  new AgentError("PreparationCancelled", `preparation of ${commit.slice(0, 12)} was cancelled (a newer commit is wanted)`, { kind: "transient" });

/** sha256 over the step's run string and its inputs' contents (directories walked in order). Read-only. */
export function hashInputs(dir: string, step: Pick<SetupStep, "run" | "inputs">): string {
  const h = createHash("sha256").update(step.run).update("\0");
  const add = (abs: string) => {
    const rel = relative(dir, abs);
    let st;
    try { st = lstatSync(abs); } catch { h.update(`${rel}\0<absent>\0`); return; }
    if (st.isDirectory()) { for (const n of readdirSync(abs).sort()) add(join(abs, n)); return; }
    h.update(`${rel}\0`).update(st.isSymbolicLink() ? `link` : readFileSync(abs)).update("\0");
  };
  for (const p of [...(step.inputs ?? [])].sort()) add(join(dir, p));
  return h.digest("hex");
}

/**
 * Link each shared path into the release: <stateDir>/shared/<path> <- releases/<commit>/<path>.
 * The first time, a path the checkout has seeds shared/ (moved there); a path neither has is
 * created, as a directory when its name has no dot (log, tmp) and as an empty file otherwise (.env).
 */
export function linkShared(l: Layout, dir: string, paths: string[], say: (s: string) => void = () => {}): void {
  for (const p of paths) {
    const target = join(l.shared, p), link = join(dir, p);
    mkdirSync(dirname(target), { recursive: true });
    const inRelease = existsSync(link) || isLink(link);
    if (!existsSync(target)) {
      if (inRelease && !isLink(link)) { renameSync(link, target); say(`shared ${p}: seeded from the release`); }
      else if (basename(p).includes(".")) writeFileSync(target, "");
      else mkdirSync(target, { recursive: true });
    }
    rmSync(link, { recursive: true, force: true });
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(target, link);
  }
}

function isLink(p: string): boolean {
  try { return lstatSync(p).isSymbolicLink(); } catch { return false; }
}

async function chownAll(paths: string[], user: UnixUser): Promise<void> {
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const r = await exec(["chown", "-R", "-h", `${user.uid}:${user.gid}`, p], { timeoutMs: 120_000 });
    if (r.code !== 0) throw new AgentError("SetupFailed", `chown ${user.name} ${p} failed: ${r.stderr.trim()}`);
  }
}
