// One reconcile tick: identity -> source -> desired -> observe -> plan -> apply -> status.
// Level-based: every tick compares what should run with what runs and repairs drift; the status
// is written on every exit path (finally), atomically.
import { AgentError, toAgentError } from "../core/errors.ts";
import { writeFileAtomic } from "../host/files.ts";
import { isRoot } from "../host/users.ts";
import { formatProblem } from "../manifest/parse.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import { desiredCommit, pinnedCommit, planRelease, type ReleaseAction } from "../plan/release.ts";
import type { ActionBase } from "../plan/types.ts";
import type { Phase, ResourceStatus, Status } from "../status/types.ts";
import { VERSION } from "../core/version.ts";
import { confirm, cutover, deployError, rollback, type DeployOutcome, type Side } from "./deploy.ts";
import type { Identity, Ports } from "./ports.ts";
import { tagState, writeTags } from "./tags.ts";
import { plainEnv } from "../secrets/plan.ts";
import { bindSecrets, refreshSecrets, secretsForRelease } from "../secrets/stage.ts";

/** What a running agent keeps between ticks (not persisted: a restart reads it all again). */
export interface Memory {
  manifest: { value: Manifest; tip: string } | null;   // the last good desired state
  roles: Map<string, Role>;
  subjects: Map<string, string>;
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

export async function tick(p: Ports, mem: Memory, opts: TickOptions): Promise<TickResult> {
  const started = p.clock.now();
  const signal = opts.signal ?? new AbortController().signal;
  const st = p.store.get();
  const status: Status = {
    instance: { id: null, role: null, environment: null, region: null, zone: null },
    phase: "converged",
    desired: { commit: null, tip: st.lastTip, subject: null },
    current: { commit: p.releases.current(), since: null, subject: null },
    lastTick: { at: new Date(started).toISOString(), ok: true, error: null, reason: null, durationMs: 0 },
    resources: [], processes: [], badCommits: [...st.badCommits], notices: [],
    writtenAt: started, agent: { version: VERSION, pid: process.pid, mode: opts.mode },
  };
  const planned: ActionBase[] = [];
  let error: AgentError | null = null;
  let deploy: TickResult["deploy"] = null;
  const ended = (out: DeployOutcome) => { deploy = out.ok ? "success" : out.rolledBackTo ? "rolled_back" : "failed"; return out; };
  const report = (phase: Phase) => { status.phase = phase; if (!opts.dryRun) writeStatus(p, status); opts.onStatus?.(status); };

  try {
    // 1. identity
    const { identity, warning } = await p.identity.resolve(st.identity);
    Object.assign(status.instance, { id: identity.instanceId, role: identity.role, environment: identity.environment, region: identity.region, zone: identity.zone });
    if (warning) status.notices.push(warning);
    if (!opts.dryRun) cacheIdentity(p, identity);
    if (!identity.role) throw AgentError.terminal("NoRoleTag", `this instance has no role: tag it ${p.config.tags.role}=<role>; the agent does nothing else until then`);
    if (!identity.environment) throw AgentError.terminal("NoEnvironmentTag", `this instance has no environment: tag it ${p.config.tags.environment}=<environment>`);
    const roleName = identity.role, env = identity.environment;

    // 2. source: the tip, and the manifest there (the last good one is kept when the new one is bad)
    let sourceError: AgentError | null = null;
    try {
      const { tip } = await p.source.poll(st.lastTip);
      status.desired.tip = tip;
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
      if (!opts.dryRun && tip !== st.lastTip) p.store.update((s) => { s.lastTip = tip; });
    } catch (e) {
      sourceError = toAgentError(e, "SourceUnreachable");
    }
    const remembered = p.store.get().manifest;
    if (!mem.manifest && sourceError && remembered?.environment === env) {
      mem.manifest = { value: remembered.value, tip: remembered.tip };
      status.notices.push(`using the manifest remembered from ${remembered.tip.slice(0, 12)} until the source answers`);
    }
    if (!mem.manifest) throw sourceError ?? AgentError.terminal("ManifestMissing", `no manifest for environment ${env}`);
    if (sourceError) { error = sourceError; status.notices.push(`${sourceError.reason}: ${sourceError.message}`); }
    const manifest = mem.manifest.value;
    const binding = manifest.roles[roleName] ?? {};
    const bindingEnv = plainEnv(binding.env);
    bindSecrets(p, binding, env, identity.region);
    if (manifest.rollout) status.notices.push("rollout waves are accepted but not acted on yet: this node deploys as soon as the manifest changes");

    // 3. desired: the pinned commit (or a local pin from `agent rollback`)
    const manifestCommit = pinnedCommit(manifest, roleName);
    if (st.localPin && st.localPin.manifestCommit !== manifestCommit && !opts.dryRun) p.store.update((s) => { s.localPin = null; });
    const want = desiredCommit(manifestCommit, p.store.get().localPin);
    status.desired.commit = want.commit;
    if (want.pinned) status.notices.push(`pinned locally to ${want.commit.slice(0, 12)} by \`agent rollback\` until the manifest pins another commit`);
    // The desired release may be unusable (no such commit, role missing or invalid): then the
    // current release is still looked after (volumes mounted, processes kept running).
    const current = p.releases.current();
    let role: Role, desiredOk = true;
    try {
      status.desired.subject = await subjectOf(p, mem, want.commit);
      role = await roleAt(p, mem, want.commit, roleName);
    } catch (e) {
      if (!current || current === want.commit) throw e;
      error = toAgentError(e);
      desiredOk = false;
      role = await roleAt(p, mem, current, roleName);
    }
    if (!isRoot()) status.notices.push(`not running as root: setup, hooks and processes run as the agent's own user, not ${role.user}; volumes cannot be mounted`);
    for (const proc of Object.values(role.processes)) {
      if (proc.http) { status.notices.push("http: fronting is accepted but not acted on yet: processes with a fixed port restart stop-then-start"); break; }
    }

    // 4. observe + plan
    status.current.commit = current;
    if (current) status.current.subject = mem.subjects.get(current) ?? await subjectOf(p, mem, current).catch(() => null);
    // A cutover recorded but never switched (the agent died in a before_cutover hook) left nothing
    // to confirm: forget it, or it would hold back drift repair and convergence for good.
    const deploying = p.store.get().deploying;
    if (deploying && deploying.commit !== current && !opts.dryRun) p.store.update((s) => { s.deploying = null; });
    const observed = (commit: string) => ({
      current, lastGood: p.store.get().lastGoodCommit, badCommits: p.store.get().badCommits,
      desiredRelease: p.releases.info(commit), deploying: p.store.get().deploying, paused: p.store.get().paused,
    });
    // An unusable desired release still lets an interrupted cutover finish (confirm or roll back).
    const relPlan = desiredOk ? planRelease(want.commit, observed(want.commit), p.clock.now())
      : current && deploying?.commit === current ? planRelease(current, observed(current), p.clock.now())
        : { actions: [], blocked: null, converged: false };
    planned.push(...relPlan.actions);

    // volumes come first: processes start only on mounted volumes
    const volumeConditions: ResourceStatus[] = [];
    for (const vol of p.cloud?.volumes(role, manifest, identity) ?? []) {
      volumeConditions.push(await converge(vol, opts.dryRun || p.store.get().paused, planned));
    }
    status.resources.push(...volumeConditions);
    const volumesReady = volumeConditions.every((c) => c.ready);
    // The running release needs only its own volumes: one that only the next release adds (not
    // bound yet, still attaching) holds back the cutover, not the repair of what runs.
    const currentRole = current && current !== want.commit && desiredOk ? await roleAt(p, mem, current, roleName).catch(() => null) : role;
    const currentRefs = new Set((currentRole ? p.cloud?.volumes(currentRole, manifest, identity) ?? [] : []).map((v) => v.ref));
    const currentVolumesReady = currentRole ? volumeConditions.every((c) => c.ready || !currentRefs.has(c.ref)) : volumesReady;
    if (relPlan.blocked) {
      status.notices.push(relPlan.blocked.message);
      if (relPlan.blocked.reason !== "Paused") error ??= AgentError.terminal(relPlan.blocked.reason, relPlan.blocked.message);
    }
    if (opts.dryRun) return await finish();
    if (p.store.get().paused) { report("paused"); return await finish(); }

    // 5. apply: the release pipeline
    const waitForVolumes = !volumesReady && relPlan.actions.some((a) => a.kind !== "release.prepare");
    if (waitForVolumes) report("waiting");
    const sideOf = async (commit: string | null): Promise<Side | null> =>
      commit ? { commit, role: await roleAt(p, mem, commit, roleName), env: bindingEnv } : null;
    // Secrets of the release about to be prepared or switched: one that cannot be resolved holds it back.
    const secretsHeld = waitForVolumes ? null : await secretsForRelease(p, { commit: want.commit, role, env: bindingEnv }, relPlan.actions);
    if (secretsHeld) error ??= secretsHeld;
    for (const action of (waitForVolumes ? [] : relPlan.actions.filter((a) => !secretsHeld || (a.kind !== "release.prepare" && a.kind !== "release.cutover"))) as ReleaseAction[]) {
      if (action.kind === "release.prepare") {
        report("preparing");
        await p.releases.prepare(action.commit, role, bindingEnv, signal);
      } else if (action.kind === "release.cutover") {
        report("cutover");
        const out = ended(await cutover(p, { commit: action.commit, role, env: bindingEnv }, await sideOf(action.from), signal));
        if (!out.ok) { error = deployError(out); break; }
      } else if (action.kind === "release.confirm") {
        // The interrupted cutover's own release and role: the manifest may have moved on since.
        report("waiting");
        const to = (await sideOf(action.commit))!;
        const out = ended(await confirm(p, to, await sideOf(action.from), action.startedAt, healthDeadline(to.role), signal));
        if (!out.ok) { error = deployError(out); break; }
      } else if (action.kind === "release.rollback") {
        report("cutover");
        const out = ended(await rollback(p, action.commit, await sideOf(action.to), action.why, "the commit is marked bad on this node"));
        if (!out.ok) { error = deployError(out); break; }
      }
    }

    // 6. drift: the current release's processes run and are healthy
    // A bad release that `current` still names (a first deploy failed: nothing to go back to) is
    // not started again.
    const now = p.releases.current();
    if (now && (now === current ? currentVolumesReady : volumesReady) && !p.store.get().deploying && !p.store.get().badCommits.includes(now)) {
      const side = (await sideOf(now))!;
      // Rotation: a new secret version restarts the processes using it, health-gated.
      error ??= await refreshSecrets(p, side, status.notices);
      await p.processes.ensure(side.commit, side.role, side.env);
      // `agent once` answers "converged?" for processes it may have just adopted or restarted:
      // give them their health deadline before answering.
      if (opts.mode === "once") {
        const until = p.clock.now() + healthDeadline(side.role);
        while (!p.processes.healthy(side.commit) && p.clock.now() < until) await p.clock.sleep(100, signal);
      }
    }
    // 7. the address, only once the processes can serve
    const addr = p.cloud?.address(role, manifest, identity) ?? null;
    if (addr) {
      if (now && p.processes.healthy(now)) status.resources.push(await converge(addr, false, planned));
      else status.resources.push({ ref: addr.ref, ready: false, reason: "WaitingForHealthyProcesses", message: "associated once the role's processes are healthy" });
    }
    return await finish();
  } catch (e) {
    error = toAgentError(e);
    return await finish();      // status.json is written on every exit path, by finish()
  }

  async function finish(): Promise<TickResult> {
    status.processes = p.processes.status();
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
    status.lastTick = { at: new Date(started).toISOString(), ok: !error, error: error ? error.message : null, reason: error?.reason ?? null, durationMs: p.clock.now() - started };
    status.writtenAt = p.clock.now();
    if (!opts.dryRun) {
      writeStatus(p, status);
      await writeTags(p, status, tagState(converged, deploy, error));
      // After a deploy, keep the git store bounded; the status above is already out.
      if (deploy === "success" && status.desired.tip && status.desired.commit && p.source.maintain) {
        const keep = [status.desired.commit, ...(p.store.get().lastGoodCommit ? [p.store.get().lastGoodCommit!] : [])];
        await p.source.maintain(status.desired.tip, keep)
          .catch((e) => p.log.child("source").warn("store maintenance failed", { error: toAgentError(e).message }));
      }
    }
    opts.onStatus?.(status);
    return { status, converged, actions: planned, error, deploy };
  }
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
