// One reconcile tick, as a list of named stages sharing one signature (STAGES):
// identify -> readSource -> choose -> observe -> plan -> gate -> volumes -> apply -> repair -> address -> targets,
// then finish() writes the status on every exit path, atomically. Level-based: every tick
// compares what should run with what runs and repairs drift.
import { AgentError, toAgentError } from "../core/errors.ts";
import { writeFileAtomic } from "../host/files.ts";
import { isRoot } from "../host/users.ts";
import { formatProblem } from "../manifest/problem.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import { desiredCommit, MAX_CONFIRM_ATTEMPTS, pinnedCommit, planRelease, type ReleasePlan } from "../plan/release.ts";
import type { ActionBase } from "../plan/types.ts";
import type { Phase, ResourceStatus, Status } from "../status/types.ts";
import { VERSION } from "../core/version.ts";
import { confirm, cutover, deployError, rollback, type DeployOutcome, type Side } from "./deploy.ts";
import type { Identity, Ports } from "./ports.ts";
import { tagState, writeTags } from "./tags.ts";
import { verifyRelease, verifyTip } from "./verify.ts";
import { plainEnv } from "../secrets/plan.ts";
import { bindSecrets, refreshSecrets, secretsForRelease } from "../secrets/stage.ts";
import type { FleetState } from "./gate.ts";
import { targets } from "./targets.ts";

/** What a running agent keeps between ticks (not persisted: a restart reads it all again). */
export interface Memory {
  manifest: { value: Manifest; tip: string } | null;   // the last good desired state
  roles: Map<string, Role>;
  subjects: Map<string, string>;
  /** The rollout gate's reads of the peers (loop/gate.ts); what the planner needs of it is also in state.json. */
  fleet?: FleetState;
}
export const newMemory = (): Memory => ({ manifest: null, roles: new Map(), subjects: new Map() });

export interface TickOptions {
  mode: "run" | "once";
  dryRun?: boolean;             // `agent plan`: observe and plan, change nothing
  signal?: AbortSignal;         // a newer commit cancels a stale preparation
  onStatus?: (s: Status) => void;
}

export interface TickResult {
  status: Status;
  converged: boolean;
  actions: ActionBase[];
  error: AgentError | null;
  /** How a deploy in this tick ended, if one happened. */
  deploy: "success" | "rolled_back" | "failed" | null;
}

/** A stage asks the tick to end here (the status is still written): a dry run, a paused node. */
export const STOP = Symbol("stop");
export type Stop = typeof STOP;

/** What the stages of one tick share: the ports, the options, and what earlier stages found. */
export interface TickContext {
  p: Ports;
  mem: Memory;
  opts: TickOptions;
  signal: AbortSignal;
  started: number;
  status: Status;
  planned: ActionBase[];
  error: AgentError | null;
  deploy: TickResult["deploy"];
  // filled in by the stages, in order
  identity: Identity;
  roleName: string;
  env: string;
  manifest: Manifest;
  bindingEnv: Record<string, string>;
  want: { commit: string; pinned: boolean };
  current: string | null;
  role: Role;
  /** The desired release is usable (its commit and role could be read). */
  desiredOk: boolean;
  relPlan: ReleasePlan;
  volumesReady: boolean;
  /** The running release's own volumes are ready (one only the next release adds does not hold back its repair). */
  currentVolumesReady: boolean;
  /** The rollout gate held back the cutover (loop/gate.ts): the node waits for its wave. */
  gateHeld?: boolean;
}

export type Stage = (t: TickContext) => Promise<void | Stop>;

// The rollout gate (loop/gate.ts, fleet/) is loaded only for a manifest with rollout:; without one both are no-ops.
async function gate(t: TickContext): Promise<void> { if (t.manifest.rollout) await (await import("./gate.ts")).gate(t); }
async function barrier(t: TickContext, commit: string): Promise<boolean> { return !t.manifest.rollout || (await import("./gate.ts")).barrier(t, commit); }
/** One tick, as the ordered stages it runs; finish() writes the status on every exit path. */
export const STAGES: Stage[] = [identify, readSource, choose, observe, planStage, gate, volumes, apply, repair, address, targets];

export async function tick(p: Ports, mem: Memory, opts: TickOptions): Promise<TickResult> {
  const t = newContext(p, mem, opts);
  try {
    for (const stage of STAGES) if ((await stage(t)) === STOP) break;
  } catch (e) {
    t.error = toAgentError(e);
  }
  return await finish(t);      // status.json is written on every exit path
}

function newContext(p: Ports, mem: Memory, opts: TickOptions): TickContext {
  const started = p.clock.now();
  const st = p.store.get();
  return {
    p, mem, opts, started, signal: opts.signal ?? new AbortController().signal,
    status: {
      instance: { id: null, role: null, environment: null, region: null, zone: null },
      phase: "converged",
      desired: { commit: null, tip: st.lastTip, subject: null },
      current: { commit: p.releases.current(), since: null, subject: null },
      lastTick: { at: new Date(started).toISOString(), ok: true, error: null, reason: null, durationMs: 0 },
      resources: [], processes: [], badCommits: [...st.badCommits], notices: [],
      writtenAt: started, agent: { version: VERSION, pid: process.pid, mode: opts.mode },
    },
    planned: [], error: null, deploy: null,
  } as unknown as TickContext;      // the stages fill in the rest, in order
}

/** Write the phase now (the daemon and `agent status` see a long stage as it runs). */
function report(t: TickContext, phase: Phase) {
  t.status.phase = phase;
  if (!t.opts.dryRun) writeStatus(t.p, t.status);
  t.opts.onStatus?.(t.status);
}

const ended = (t: TickContext, out: DeployOutcome) => {
  t.deploy = out.ok ? "success" : out.rolledBackTo ? "rolled_back" : "failed";
  return out;
};

/** 1. Who this node is: instance, role and environment. */
async function identify(t: TickContext): Promise<void> {
  const { p, status } = t;
  const { identity, warning } = await p.identity.resolve(p.store.get().identity);
  Object.assign(status.instance, { id: identity.instanceId, role: identity.role, environment: identity.environment, region: identity.region, zone: identity.zone });
  if (warning) status.notices.push(warning);
  if (!t.opts.dryRun) cacheIdentity(p, identity);
  if (!identity.role) throw AgentError.terminal("NoRoleTag", `this instance has no role: tag it ${p.config.tags.role}=<role>; the agent does nothing else until then`);
  if (!identity.environment) throw AgentError.terminal("NoEnvironmentTag", `this instance has no environment: tag it ${p.config.tags.environment}=<environment>`);
  t.identity = identity;
  t.roleName = identity.role;
  t.env = identity.environment;
}

/** 2. The tip, and the manifest there (the last good one is kept when the new one is bad). */
async function readSource(t: TickContext): Promise<void> {
  const { p, mem, status, opts, env } = t;
  const lastTip = p.store.get().lastTip;
  let sourceError: AgentError | null = null;
  try {
    const { tip } = await p.source.poll(lastTip);
    status.desired.tip = tip;
    await verifyTip(p, tip, { identity: t.identity, notices: status.notices, dryRun: opts.dryRun });   // trust: before anything is read from it
    if (!mem.manifest || mem.manifest.tip !== tip) {
      const parsed = await p.source.readManifest(tip, env);
      if (parsed.ok) {
        mem.manifest = { value: parsed.value, tip };
        if (!opts.dryRun) p.store.update((s) => { s.manifest = { tip, environment: env, value: parsed.value }; });
      }
      else {
        sourceError = AgentError.terminal("ManifestInvalid",
          `${parsed.file} at ${tip.slice(0, 12)} is invalid; keeping the last good manifest:\n${parsed.problems.map(formatProblem).join("\n")}`);
      }
    }
    if (!opts.dryRun && tip !== lastTip) p.store.update((s) => { s.lastTip = tip; });
  } catch (e) {
    sourceError = toAgentError(e, "SourceUnreachable");
  }
  const remembered = p.store.get().manifest;
  if (!mem.manifest && sourceError && remembered?.environment === env) {
    mem.manifest = { value: remembered.value, tip: remembered.tip };
    status.notices.push(`using the manifest remembered from ${remembered.tip.slice(0, 12)} until the source answers`);
  }
  if (!mem.manifest) throw sourceError ?? AgentError.terminal("ManifestMissing", `no manifest for environment ${env}`);
  if (sourceError) { t.error = sourceError; status.notices.push(`${sourceError.reason}: ${sourceError.message}`); }
  t.manifest = mem.manifest.value;
  const binding = t.manifest.roles[t.roleName] ?? {};
  t.bindingEnv = plainEnv(binding.env);                      // secret references are resolved apart
  bindSecrets(t.p, binding, t.env, t.identity.region);
  if (t.manifest.rollout && !t.p.cloud?.rolloutStore?.(t.manifest.rollout.store ?? "tags")) status.notices.push("rollout waves need the instance's EC2 identity (identity: imds): this node deploys as soon as the manifest changes");
}

/** 3. The desired commit (pinned, or a local pin from `agent rollback`) and its role. */
async function choose(t: TickContext): Promise<void> {
  const { p, mem, status, opts } = t;
  const manifestCommit = pinnedCommit(t.manifest, t.roleName);
  const pin = p.store.get().localPin;
  if (pin && pin.manifestCommit !== manifestCommit && !opts.dryRun) p.store.update((s) => { s.localPin = null; });
  t.want = desiredCommit(manifestCommit, p.store.get().localPin);
  status.desired.commit = t.want.commit;
  if (t.want.pinned) status.notices.push(`pinned locally to ${t.want.commit.slice(0, 12)} by \`agent rollback\` until the manifest pins another commit`);
  // The desired release may be unusable (no such commit, role missing or invalid): then the
  // current release is still looked after (volumes mounted, processes kept running).
  t.current = p.releases.current();
  t.desiredOk = true;
  try {
    await verifyRelease(p, t.want.commit);   // trust: require tip+release
    status.desired.subject = await subjectOf(p, mem, t.want.commit);
    t.role = await roleAt(p, mem, t.want.commit, t.roleName);
  } catch (e) {
    if (!t.current || t.current === t.want.commit) throw e;
    t.error = toAgentError(e);
    t.desiredOk = false;
    t.role = await roleAt(p, mem, t.current, t.roleName);
  }
  if (!isRoot()) status.notices.push(`not running as root: setup, hooks and processes run as the agent's own user, not ${t.role.user}; volumes cannot be mounted`);
}

/** 4. What runs: the current release, and a cutover recorded but never switched. */
async function observe(t: TickContext): Promise<void> {
  const { p, mem, status, current } = t;
  status.current.commit = current;
  if (current) status.current.subject = mem.subjects.get(current) ?? await subjectOf(p, mem, current).catch(() => null);
  // A cutover recorded but never switched (the agent died in a before_cutover hook) left nothing
  // to confirm: forget it, or it would hold back drift repair and convergence for good.
  const deploying = p.store.get().deploying;
  if (deploying && deploying.commit !== current && !t.opts.dryRun) p.store.update((s) => { s.deploying = null; });
}

/** 5. The release plan (pure: planRelease). */
async function planStage(t: TickContext): Promise<void> {
  const { p, current } = t;
  const observed = (commit: string) => ({
    current, lastGood: p.store.get().lastGoodCommit, badCommits: p.store.get().badCommits,
    desiredRelease: p.releases.info(commit), deploying: p.store.get().deploying, paused: p.store.get().paused,
  });
  const deploying = p.store.get().deploying;
  // An unusable desired release still lets an interrupted cutover finish (confirm or roll back).
  t.relPlan = t.desiredOk ? planRelease(t.want.commit, observed(t.want.commit), p.clock.now())
    : current && deploying?.commit === current ? planRelease(current, observed(current), p.clock.now())
      : { actions: [], blocked: null, converged: false };
  t.planned.push(...t.relPlan.actions);
}

/**
 * The rollout gate's launch (loop/gate.ts): this tick deploys `commit` (what the node's converged
 * peers run) instead of the pinned one, verified like any release. Throws when it cannot be used.
 */
export async function retarget(t: TickContext, commit: string): Promise<void> {
  await verifyRelease(t.p, commit);      // trust: require tip+release
  t.role = await roleAt(t.p, t.mem, commit, t.roleName);
  t.want = { commit, pinned: false };
  t.planned = t.planned.filter((a) => !a.kind.startsWith("release."));
  await planStage(t);
}

/** 6. Volumes come first: processes start only on mounted volumes. */
async function volumes(t: TickContext): Promise<void | Stop> {
  const { p, mem, status, opts, current, role } = t;
  const conditions: ResourceStatus[] = [];
  for (const vol of p.cloud?.volumes(role, t.manifest, t.identity) ?? []) {
    conditions.push(await converge(vol, opts.dryRun || p.store.get().paused, t.planned));
  }
  status.resources.push(...conditions);
  t.volumesReady = conditions.every((c) => c.ready);
  // The running release needs only its own volumes: one that only the next release adds (not
  // bound yet, still attaching) holds back the cutover, not the repair of what runs.
  const currentRole = current && current !== t.want.commit && t.desiredOk ? await roleAt(p, mem, current, t.roleName).catch(() => null) : role;
  const currentRefs = new Set((currentRole ? p.cloud?.volumes(currentRole, t.manifest, t.identity) ?? [] : []).map((v) => v.ref));
  t.currentVolumesReady = currentRole ? conditions.every((c) => c.ready || !currentRefs.has(c.ref)) : t.volumesReady;
  const blocked = t.relPlan.blocked;
  if (blocked) {
    status.notices.push(blocked.message);
    if (blocked.reason !== "Paused") t.error ??= AgentError.terminal(blocked.reason, blocked.message);
  }
  if (opts.dryRun) return STOP;
  if (p.store.get().paused) { report(t, "paused"); return STOP; }
}

/** The commit with its role and the manifest's env for the role: one side of a cutover. */
async function sideOf(t: TickContext, commit: string | null): Promise<Side | null> {
  return commit ? { commit, role: await roleAt(t.p, t.mem, commit, t.roleName), env: t.bindingEnv } : null;
}

/** 7. The release pipeline: prepare, cut over, confirm an interrupted cutover, roll back. */
async function apply(t: TickContext): Promise<void> {
  const { p, signal, role, bindingEnv } = t;
  const waitForVolumes = !t.volumesReady && t.relPlan.actions.some((a) => a.kind !== "release.prepare");
  if (waitForVolumes) report(t, "waiting");
  // Secrets of the release about to be prepared or switched: one that cannot be resolved holds it
  // back (not switched, not marked bad); confirm and rollback still run.
  const held = waitForVolumes ? null : await secretsForRelease(p, { commit: t.want.commit, role, env: bindingEnv }, t.relPlan.actions);
  if (held) t.error ??= held;
  const actions = t.relPlan.actions.filter((a) => !held || (a.kind !== "release.prepare" && a.kind !== "release.cutover"));
  for (const action of waitForVolumes ? [] : actions) {
    let out: DeployOutcome | null = null;
    if (action.kind === "release.prepare") {
      report(t, "preparing");
      await p.releases.prepare(action.commit, role, bindingEnv, signal);
    } else if (action.kind === "release.cutover") {
      if (!(await barrier(t, action.commit))) break;      // rollout: the wave closed since the gate looked
      if (t.manifest.rollout && !t.gateHeld && !t.opts.dryRun) await writeTags(p, t.status, "deploying");   // peers count it in flight (not a launch onto their commit)
      report(t, "cutover");
      out = ended(t, await cutover(p, { commit: action.commit, role, env: bindingEnv }, await sideOf(t, action.from), signal));
    } else if (action.kind === "release.confirm") {
      report(t, "waiting");
      out = ended(t, await confirmCounted(t, action.commit, action.from));
    } else if (action.kind === "release.rollback") {
      report(t, "cutover");
      const back = await rollback(p, action.commit, await sideOf(t, action.to), action.why,
        action.message ?? "the commit is marked bad on this node", { markBad: action.markBad });
      // Giving up an unconfirmed cutover for the commit the manifest pins again is no failed deploy.
      if (action.markBad !== false) out = ended(t, back);
    }
    if (out && !out.ok) { t.error = deployError(out); break; }
  }
}

/**
 * Confirm an interrupted cutover with its own release and role (the manifest may have moved on
 * since). An attempt that fails (anything thrown but a stop) is counted in state.json, so a
 * `deploying` record that cannot be confirmed is rolled back after MAX_CONFIRM_ATTEMPTS
 * (planRelease); an interrupted attempt does not count.
 */
async function confirmCounted(t: TickContext, commit: string, fromCommit: string | null): Promise<DeployOutcome> {
  const { p, signal } = t;
  try {
    const to = (await sideOf(t, commit))!;
    return await confirm(p, to, await sideOf(t, fromCommit), healthDeadline(to.role), signal);
  } catch (e) {
    if (!signal.aborted) {
      p.store.update((s) => { if (s.deploying?.commit === commit) s.deploying.failures = (s.deploying.failures ?? 0) + 1; });
      const n = p.store.get().deploying?.failures ?? 0;
      p.log.child("deploy").warn("could not confirm the cutover", { commit, attempt: n, of: MAX_CONFIRM_ATTEMPTS, error: toAgentError(e).message });
    }
    throw e;
  }
}

/**
 * 8. Drift: the current release's processes run and are healthy. A bad release that `current`
 * still names (a first deploy failed: nothing to go back to) is not started again.
 */
async function repair(t: TickContext): Promise<void> {
  const { p, opts } = t;
  const now = p.releases.current();
  const ready = now === t.current ? t.currentVolumesReady : t.volumesReady;
  if (!now || !ready || p.store.get().deploying || p.store.get().badCommits.includes(now)) return;
  const side = (await sideOf(t, now))!;
  // Rotation: a new secret version restarts the processes using it, health-gated.
  t.error ??= await refreshSecrets(p, side, t.status.notices);
  await p.processes.ensure(side.commit, side.role, side.env);
  // `agent once` answers "converged?" for processes it may have just adopted or restarted:
  // give them their health deadline before answering.
  if (opts.mode === "once") {
    const until = p.clock.now() + healthDeadline(side.role);
    while (!p.processes.healthy(side.commit) && p.clock.now() < until) await p.clock.sleep(100, t.signal);
  }
}

/** 9. The address, only once the processes can serve. */
async function address(t: TickContext): Promise<void> {
  const { p, status } = t;
  const addr = p.cloud?.address(t.role, t.manifest, t.identity) ?? null;
  if (!addr) return;
  const now = p.releases.current();
  if (now && p.processes.healthy(now)) status.resources.push(await converge(addr, false, t.planned));
  else status.resources.push({ ref: addr.ref, ready: false, reason: "WaitingForHealthyProcesses", message: "associated once the role's processes are healthy" });
}

/** Always last, on every exit path: the phase, status.json, the instance tags, store upkeep. */
async function finish(t: TickContext): Promise<TickResult> {
  const { p, mem, status, opts, error, deploy } = t;
  status.processes = p.processes.status();
  const front = await p.processes.frontStatus?.().catch(() => null);
  if (front) status.front = front;
  status.current.commit = p.releases.current();
  status.current.subject = status.current.commit ? mem.subjects.get(status.current.commit) ?? status.current.subject ?? null : null;
  status.badCommits = [...p.store.get().badCommits];
  status.current.since = status.current.commit ? p.releases.info(status.current.commit).since ?? null : null;
  if (p.secrets) status.secrets = p.secrets.status(status.current.commit, mem.roles.get(`${status.current.commit}:${status.instance.role}`) ?? null);
  const unhealthy = status.processes.some((x) => !x.healthy);
  const notReady = status.resources.some((r) => !r.ready);
  const converged = !error && !notReady && !unhealthy && status.current.commit === status.desired.commit && !p.store.get().deploying;
  if (p.store.get().paused) status.phase = "paused";
  else if (converged) status.phase = "converged";
  else if (error && error.retry.kind === "terminal" && !status.current.commit) status.phase = "failed";
  else if (status.phase === "preparing" || status.phase === "cutover") status.phase = error ? "degraded" : "waiting";
  else status.phase = error || unhealthy || notReady ? "degraded" : "waiting";
  status.lastTick = { at: new Date(t.started).toISOString(), ok: !error, error: error ? error.message : null, reason: error?.reason ?? null, durationMs: p.clock.now() - t.started };
  status.writtenAt = p.clock.now();
  if (!opts.dryRun) {
    writeStatus(p, status);
    // Waiting for its wave, a node that runs its current release well is converged on it for its peers.
    // Held with nothing healthy to stand on (a new node): `waiting`, never `deploying` (peers would count it in flight).
    const settled = !!t.gateHeld && !error && !notReady && !unhealthy && !!status.current.commit && !p.store.get().deploying;
    const state = tagState(converged || settled, deploy, error);
    await writeTags(p, status, t.gateHeld && state === "deploying" ? "waiting" : state);
    // After a deploy, keep the git store bounded; the status above is already out.
    if (deploy === "success" && status.desired.tip && status.desired.commit && p.source.maintain) {
      const keep = [status.desired.commit, ...(p.store.get().lastGoodCommit ? [p.store.get().lastGoodCommit!] : [])];
      await p.source.maintain(status.desired.tip, keep)
        .catch((e) => p.log.child("source").warn("store maintenance failed", { error: toAgentError(e).message }));
    }
  }
  opts.onStatus?.(status);
  return { status, converged, actions: t.planned, error, deploy };
}

async function converge(r: { ref: string; plan(): Promise<{ actions: ActionBase[]; condition: ResourceStatus }>; apply(a: ActionBase): Promise<void> }, dryRun: boolean, planned: ActionBase[]): Promise<ResourceStatus> {
  try {
    const first = await r.plan();
    planned.push(...first.actions);
    if (dryRun || first.actions.length === 0) return first.condition;
    for (const a of first.actions) await r.apply(a);
    return (await r.plan()).condition;
  } catch (e) {
    const err = toAgentError(e);
    return { ref: r.ref, ready: false, reason: err.reason, message: err.message };
  }
}

async function roleAt(p: Ports, mem: Memory, commit: string, role: string): Promise<Role> {
  const key = `${commit}:${role}`;
  const hit = mem.roles.get(key);
  if (hit) return hit;
  await subjectOf(p, mem, commit);
  const r = await p.source.readRole(commit, role);
  mem.roles.set(key, r);
  return r;
}

async function subjectOf(p: Ports, mem: Memory, commit: string): Promise<string> {
  const hit = mem.subjects.get(commit);
  if (hit !== undefined) return hit;
  const { subject } = await p.source.ensureCommit(commit);
  mem.subjects.set(commit, subject);
  return subject;
}

/** The longest health deadline of the role's processes: how long a cutover may wait. */
export function healthDeadline(role: Role): number {
  return Math.max(10_000, ...Object.values(role.processes).map((x) => x.health?.deadline ?? x.minUptime + 10_000));
}

function cacheIdentity(p: Ports, id: Identity) {
  const c = p.store.get().identity;
  if (c && c.instanceId === id.instanceId && c.role === id.role && c.environment === id.environment && c.zone === id.zone) return;
  p.store.update((s) => { s.identity = { ...id, at: p.clock.now() }; });
}

/** Never throws: a status.json that cannot be written (disk full) must not stop a deploy or the loop. */
function writeStatus(p: Ports, s: Status) {
  s.writtenAt = p.clock.now();
  try {
    writeFileAtomic(p.layout.statusFile, JSON.stringify(s, null, 2) + "\n");
  } catch (e) {
    p.log.child("loop").warn("cannot write status.json: `agent status` shows an older tick (the socket still answers); free space in the state directory",
      { error: toAgentError(e).message });
  }
}
