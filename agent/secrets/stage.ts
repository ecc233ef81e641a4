// The two moments of a tick that touch secrets. Before a release is prepared or switched, its
// secrets are fetched fresh: a missing or denied one holds the release back (nothing switches,
// what runs keeps its values). After drift repair, the running release's secrets are refreshed
// when due: a new version restarts the processes using it in place, health-gated, and a failure
// puts the old values back. A refresh that fails (SSM down) never restarts anything.
import { AgentError, errorMessage, toAgentError } from "../core/errors.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import type { ActionBase } from "../plan/types.ts";
import type { Ports } from "../loop/ports.ts";
import { changedSecrets, materialize, pickNamed, type SecretNeeds } from "./plan.ts";

export interface SecretsSide { commit: string; role: Role; env: Record<string, string> }

/** Every tick, before processes are touched: which binding and region the references resolve in. */
export function bindSecrets(p: Ports, binding: Manifest["roles"][string] | undefined, environment: string, region: string): void {
  p.secrets?.bind(binding, environment, region);
}

/**
 * When `actions` prepare or switch to `to.commit`: fetch its secrets now and check that every
 * process, setup step and hook gets what it names. Returns the error that holds the release, or
 * null (also when the role uses no secrets).
 */
export async function secretsForRelease(p: Ports, to: SecretsSide, actions: readonly ActionBase[]): Promise<AgentError | null> {
  const s = p.secrets;
  if (!s || !actions.some((a) => a.kind === "release.prepare" || a.kind === "release.cutover")) return null;
  const needs = s.needs(to.role);
  if (!needs) return null;
  try {
    const res = await s.fetch(needs);
    check(needs, to.role, res);
    s.install(to.commit, res, needs.refreshMs);
    return null;
  } catch (e) {
    const err = toAgentError(e, "SecretsUnavailable");
    p.log.child("secrets").warn("release held back: its secrets could not be resolved", { commit: to.commit, reason: err.reason, error: err.message });
    return new AgentError(err.reason, `release ${to.commit.slice(0, 12)} is not switched: ${err.message}; the running processes keep the values they started with`, err.retry);
  }
}

function check(needs: SecretNeeds, role: Role, res: Parameters<typeof materialize>[1]): void {
  for (const [name, n] of Object.entries(needs.processes)) {
    const r = materialize(n, res);
    if (!r.ok) throw new AgentError(r.problem.reason, `process ${name}: ${r.problem.message}`, { kind: "terminal" });
  }
  const all = materialize(needs.role, res);
  if (!all.ok) throw new AgentError(all.problem.reason, all.problem.message, { kind: "terminal" });
  const named: [string, readonly string[] | undefined][] = [
    ...role.setup.map((st, i): [string, string[] | undefined] => [`setup step ${i + 1} "${st.run}"`, st.secrets]),
    ["hooks", role.hooks.secrets],
  ];
  for (const [what, names] of named) {
    const r = pickNamed(all.value, names ?? [], what);
    if (!r.ok) throw new AgentError(r.problem.reason, r.problem.message, { kind: "terminal" });
  }
}

/**
 * The running release: refresh its secrets when due. Unchanged versions only fill in values (after
 * an agent restart only versions are known); a changed one restarts just the processes using it,
 * health-gated; a failure restores the old values and is not retried until a newer version appears.
 * Returns an error for the tick's status, or null.
 */
export async function refreshSecrets(p: Ports, side: SecretsSide, notices: string[]): Promise<AgentError | null> {
  const s = p.secrets;
  const needs = s?.needs(side.role);
  if (!s || !needs || !s.due(side.commit, needs)) return null;
  const log = p.log.child("secrets");
  const before = s.current(side.commit);
  let fresh;
  try {
    fresh = await s.fetch(needs);
    check(needs, side.role, fresh);
  } catch (e) {
    const err = toAgentError(e, "SecretsUnavailable");
    // Nothing restarts: the processes keep what they started with. Look again soon when values
    // are unknown (a process that exits could not start again without them).
    s.retryIn(side.commit, before?.live ? needs.refreshMs : 30_000);
    notices.push(`secrets could not be refreshed (${err.reason}: ${err.message}); the running processes keep the values they started with`);
    log.warn("refresh failed; nothing restarted", { reason: err.reason, error: err.message });
    return null;
  }
  const changed: string[] = [];
  const what: string[] = [];
  for (const [name, n] of Object.entries(needs.processes)) {
    if (!n.fetches.length) continue;
    const a = materialize(n, before?.resolution ?? {}), b = materialize(n, fresh);
    if (!b.ok) continue;
    if (a.ok && a.value.fingerprint === b.value.fingerprint) continue;
    changed.push(name);
    if (a.ok) for (const c of changedSecrets(a.value.entries, b.value.entries)) what.push(`${c.name} (${c.source}) ${c.from ?? "none"} -> ${c.to ?? "none"}`);
  }
  const fingerprintOf = (): string => changed.map((n) => { const m = materialize(needs.processes[n]!, fresh); return m.ok ? m.value.fingerprint : ""; }).join("|");
  if (!changed.length) { s.install(side.commit, fresh, needs.refreshMs); return null; }
  if (s.rejected(side.commit) === fingerprintOf()) {
    s.retryIn(side.commit, needs.refreshMs);
    notices.push(`new secret versions failed their health gate before: ${changed.join(", ")} keep the old values until a newer version appears`);
    return null;
  }
  log.info("secrets changed: restarting the processes using them", { processes: changed, changes: [...new Set(what)] });
  const rejected = fingerprintOf();
  s.install(side.commit, fresh, needs.refreshMs);
  let out: Awaited<ReturnType<Ports["processes"]["replace"]>>;
  try {
    out = await p.processes.replace(side.commit, side.role, side.env, changed);
  } catch (e) {
    out = { ok: false, reason: "ProcessNotHealthy", message: errorMessage(e) };
  }
  if (out.ok) return null;
  // Roll back to the old values: processes that overlapped still run them; the others restart with them.
  if (before) s.restore(side.commit, before);
  s.reject(side.commit, rejected);
  await p.processes.ensure(side.commit, side.role, side.env).catch((e) => log.error("could not restart with the old secrets", { error: errorMessage(e) }));
  log.warn("secret rotation rolled back", { processes: changed, reason: out.reason, message: out.message });
  return AgentError.terminal("SecretRotationFailed", `new secret versions (${[...new Set(what)].join("; ") || changed.join(", ")}) were rolled back: ${out.message}; the processes keep the old values until a newer version appears`);
}
