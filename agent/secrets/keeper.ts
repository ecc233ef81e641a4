// The secrets a node holds: per commit, the last resolution (values in memory only) and when to
// look again. state.json remembers versions, never values, so an agent restarted beside running
// processes computes the same fingerprints and adopts them without asking SSM.
import { AgentError } from "../core/errors.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import type { StateStore } from "../state/store.ts";
import type { SecretsClient } from "../cloud/secrets.ts";
import { fetchAll, type FetchStats } from "./fetch.ts";
import {
  materialize, nextRefreshAt, pickNamed, secretNeeds, versionsOnly,
  type ProcessSecrets, type Resolution, type SecretEntry, type SecretNeeds,
} from "./plan.ts";

export interface SecretStatus extends SecretEntry { processes: string[] }

interface Held {
  resolution: Resolution;
  /** Values are known (fetched by this agent), not only versions remembered in state.json. */
  live: boolean;
  nextAt: number;
  /** The fingerprint of a rotation that failed its health gate: not tried again until a newer version. */
  rejected: string | null;
}

export interface SecretsDeps {
  store: StateStore;
  clock: Clock;
  log: Logger;
  /** The clients for a region, made (and the SDK loaded) on first use. */
  client: (region: string) => Promise<SecretsClient>;
}

/** How many releases' versions state.json keeps (the ones processes may still run from). */
const KEEP = 6;

export class Secrets {
  private held = new Map<string, Held>();
  private ctx: { binding: Manifest["roles"][string] | undefined; environment: string; region: string } | null = null;
  /** Calls made since the agent started (metrics, benchmarks). */
  readonly stats: FetchStats = { calls: 0, throttled: 0 };

  constructor(private deps: SecretsDeps) {}

  /** The environment's binding and the node's region: every tick, before processes are touched. Pure bookkeeping. */
  bind(binding: Manifest["roles"][string] | undefined, environment: string, region: string): void {
    this.ctx = { binding, environment, region };
  }

  needs(role: Role): SecretNeeds | null {
    if (!this.ctx) return null;
    const n = secretNeeds(role, this.ctx.binding, this.ctx.environment);
    return n.fetches.length ? n : null;
  }

  /** Fetch every reference of the role now (no cache). Throws AgentError; changes nothing held. */
  async fetch(needs: SecretNeeds): Promise<Resolution> {
    if (!this.ctx) throw new AgentError("Internal", "secrets: bind() before fetch()");
    const client = await this.deps.client(this.ctx.region);
    const { resolution, stats } = await fetchAll(client, needs.fetches, { sleep: (ms) => this.deps.clock.sleep(ms), random: () => this.deps.clock.random() });
    this.stats.calls += stats.calls; this.stats.throttled += stats.throttled;
    return resolution;
  }

  /** What the processes of `commit` run with from now on; versions (never values) go to state.json. */
  install(commit: string, resolution: Resolution, refreshMs: number): void {
    const was = this.held.get(commit);
    this.held.set(commit, { resolution, live: true, nextAt: nextRefreshAt(this.deps.clock.now(), refreshMs, this.deps.clock.random()), rejected: was?.rejected ?? null });
    const versions = versionsOnly(resolution);
    try {
      this.deps.store.update((s) => {
        const all = { ...(s.secrets ?? {}), [commit]: versions };
        const keep = Object.keys(all).slice(-KEEP);
        s.secrets = Object.fromEntries(keep.map((k) => [k, all[k]!]));
      });
    } catch (e) {
      this.deps.log.warn("cannot remember secret versions in state.json: an agent restarted now would restart processes that use secrets", { error: String(e) });
    }
  }

  /** Put back what ran before a rotation that failed (values and versions as they were). */
  restore(commit: string, prev: { resolution: Resolution; live: boolean }): void {
    const h = this.held.get(commit);
    this.held.set(commit, { resolution: prev.resolution, live: prev.live, nextAt: h?.nextAt ?? this.deps.clock.now(), rejected: h?.rejected ?? null });
    try { this.deps.store.update((s) => { s.secrets = { ...(s.secrets ?? {}), [commit]: versionsOnly(prev.resolution) }; }); } catch {}
  }

  /** The resolution processes of `commit` run with: held, else the versions state.json remembers. */
  current(commit: string): { resolution: Resolution; live: boolean } | null {
    const h = this.held.get(commit);
    if (h) return h;
    const remembered = this.deps.store.get().secrets?.[commit];
    return remembered ? { resolution: remembered, live: false } : null;
  }

  /** Fetch again: never fetched by this agent, the refresh is due, or the references changed (a key not held). */
  due(commit: string, needs: SecretNeeds): boolean {
    const h = this.held.get(commit);
    return !h || !h.live || this.deps.clock.now() >= h.nextAt || needs.fetches.some((k) => !(k in h.resolution));
  }

  /** Look again in `ms` (after a failed refresh). */
  retryIn(commit: string, ms: number): void {
    const h = this.held.get(commit);
    if (h) h.nextAt = this.deps.clock.now() + ms;
  }

  reject(commit: string, fingerprint: string): void {
    const h = this.held.get(commit);
    if (h) h.rejected = fingerprint;
  }

  rejected(commit: string): string | null {
    return this.held.get(commit)?.rejected ?? null;
  }

  /**
   * The secret variables of one process of `role` at `commit`, or null when it uses none. Before
   * anything was fetched or remembered, versions are "?" and the result is pending.
   */
  forProcess(commit: string, role: Role, process: string): ProcessSecrets | null {
    const needs = this.needs(role)?.processes[process];
    if (!needs || !needs.fetches.length) return null;
    const r = materialize(needs, this.current(commit)?.resolution ?? {});
    if (!r.ok) throw new AgentError(r.problem.reason, r.problem.message, { kind: "terminal" });
    return r.value;
  }

  /** The variables a setup step or hook names (`names`), from what `commit` holds. Throws when one is unknown or not fetched. */
  forCommand(commit: string, role: Role, names: readonly string[] | undefined, what: string): Record<string, string> {
    if (!names?.length) return {};
    const needs = this.needs(role);
    const held = this.current(commit);
    const all = needs ? materialize(needs.role, held?.resolution ?? {}) : { ok: true as const, value: { env: {}, names: [], entries: [], fingerprint: "", pending: false } };
    if (!all.ok) throw new AgentError(all.problem.reason, all.problem.message, { kind: "terminal" });
    const picked = pickNamed(all.value, names, what);
    if (!picked.ok) throw new AgentError(picked.problem.reason, picked.problem.message, { kind: "terminal" });
    if (Object.keys(picked.env).length < names.length) throw new AgentError("SecretsUnavailable", `${what} needs ${names.join(", ")}, which are not fetched yet; retried on the next tick`);
    return picked.env;
  }

  /** Name, source and version of each secret variable of `commit`, with the processes using it. Never a value. */
  status(commit: string | null, role: Role | null): SecretStatus[] {
    if (!commit || !role) return [];
    const byName = new Map<string, SecretStatus>();
    for (const name of Object.keys(role.processes)) {
      let s: ProcessSecrets | null = null;
      try { s = this.forProcess(commit, role, name); } catch { continue; }
      for (const e of s?.entries ?? []) {
        const key = `${e.name}\0${e.source}\0${e.version}`;
        const seen = byName.get(key) ?? { ...e, processes: [] };
        seen.processes.push(name);
        byName.set(key, seen);
      }
    }
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}
