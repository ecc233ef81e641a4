// The processes port: turns a role's `processes:` at a commit into supervisor specs (argv, cwd,
// env, port, user) and moves them between releases. Ports are stable per (commit, process) so a
// level-based ensure() never restarts a process just because a tick ran again.
import { join } from "node:path";
import type { Logger } from "../core/log.ts";
import { AgentError } from "../core/errors.ts";
import { splitArgs } from "../core/argv.ts";
import { SystemUsers, isRoot, type UnixUser } from "../host/users.ts";
import type { Role } from "../manifest/schema.ts";
import type { Layout } from "../state/layout.ts";
import type { StateStore } from "../state/store.ts";
import type { ProcessSpec, Supervisor } from "../supervisor/index.ts";
import type { ProcessesPort } from "./ports.ts";
import type { Secrets } from "../secrets/keeper.ts";
import { plainEnv } from "../secrets/plan.ts";
import { routesFor, type FrontKeeper } from "./front.ts";

/** Variables of the agent's own environment that processes inherit; everything else comes from the role. */
const INHERITED = ["PATH", "LANG", "LC_ALL", "TZ"];

export class ProcessesAdapter implements ProcessesPort {
  private ports = new Map<string, number>();          // `${commit}:${name}` -> port
  private users = new Map<string, UnixUser | null>();

  constructor(private sup: Supervisor, private layout: Layout, private store: StateStore, private log: Logger, private secrets: Secrets | null = null, private front: FrontKeeper | null = null) {
    for (const r of store.get().processes) if (r.port) this.ports.set(`${r.commit}:${r.name}`, r.port);
  }

  async specs(commit: string, role: Role, bindingEnv: Record<string, string>): Promise<ProcessSpec[]> {
    const releaseDir = this.layout.release(commit);
    const base: Record<string, string> = {};
    for (const k of INHERITED) if (process.env[k]) base[k] = process.env[k]!;
    const out: ProcessSpec[] = [];
    for (const [pname, proc] of Object.entries(role.processes)) {
      const user = await this.userFor(proc.user ?? role.user);
      const secret = this.secrets?.forProcess(commit, role, pname) ?? null;
      for (let i = 0; i < proc.instances; i++) {
        const name = i === 0 ? pname : `${pname}#${i}`;
        const fixed = envPort(proc, bindingEnv);
        // An http: process is behind the front: each instance gets a loopback port of its own.
        const port = fixed ?? (proc.http || needsPort(proc) ? await this.portFor(commit, name) : undefined);
        out.push({
          name, process: pname, instance: i, commit, releaseDir,
          argv: splitArgs(proc.run),
          cwd: proc.cwd ? join(releaseDir, proc.cwd) : releaseDir,
          env: { ...base, HOME: releaseDir, ...bindingEnv, ...plainEnv(proc.env), ...secret?.env, ...(port ? { PORT: String(port) } : {}) },
          ...(secret ? { secrets: { names: secret.names, fingerprint: secret.fingerprint, pending: secret.pending } } : {}),
          port, user: user ?? undefined,
          restart: proc.restart, stop: { signal: proc.stop.signal, timeoutMs: proc.stop.timeout },
          // One log per instance (web.log, web#1.log): `agent logs 'web#1'` reads that copy's output.
          health: proc.health, minUptimeMs: proc.minUptime, logFile: this.layout.processLog(name),
        });
      }
    }
    return out;
  }

  async ensure(commit: string, role: Role, env: Record<string, string>): Promise<void> {
    // Behind the front, an instance of another commit that still serves (an agent killed during
    // a cutover, a rollback after the old ones were stopped) is replaced with overlap, through
    // the front, rather than stopped first: the front never routes to a stopped instance.
    const moving = this.front ? Object.keys(role.processes).filter((n) => role.processes[n]!.http &&
      this.sup.status().some((s) => (s.name === n || s.name.startsWith(`${n}#`)) && s.commit !== commit && s.state === "running")) : [];
    if (moving.length) {
      const r = await this.replace(commit, role, env, moving);
      if (!r.ok) throw new AgentError(r.reason, r.message);
    }
    const specs = await this.specs(commit, role, env);
    this.sup.ensure(specs);
    await this.sup.firstChecks();   // just-adopted processes: their first health check, so status says healthy at once
    await this.front?.apply(routesFor(role, specs, this.layout.release(commit)));
  }

  /** Per process: overlap (start new, then stop old) unless it has a fixed port or says overlap: false. */
  async replace(commit: string, role: Role, env: Record<string, string>, only?: string[]) {
    // Within one commit (a secret rotation) the new instance overlaps the old: it needs a port of its own.
    const kept = only ? [...this.ports].filter(([k]) => only.some((n) => k === `${commit}:${n}` || k.startsWith(`${commit}:${n}#`))) : [];
    for (const [k] of kept) { this.ports.delete(k); this.fresh.add(k); }
    const specs = await this.specs(commit, role, env);
    const running = this.sup.status();
    // Two groups move at once. Those that may overlap start together and the old ones stop only
    // when every new one is healthy (all or nothing: a failed cutover leaves the old ones untouched);
    // those on a fixed port (or overlap: false) stop, then start. A role's cutover takes as long
    // as its slowest process, not the sum.
    const groups = [true, false].map((overlap) => {
      const names = Object.entries(role.processes).filter(([n, proc]) => (proc.overlap && !fixedPort(proc, env)) === overlap && (!only || only.includes(n))).map(([n]) => n);
      const mine = specs.filter((s) => names.includes(s.process));
      const old = running.filter((s) => names.some((n) => s.name === n || s.name.startsWith(`${n}#`))).map((s) => s.name);
      return { overlap, names, mine, old };
    }).filter((g) => g.names.length);
    const routes = routesFor(role, specs, this.layout.release(commit));   // throws on two processes with one http.port
    if (routes.length && this.front) {
      await this.front.up();
      const records = this.store.get().processes.filter((r) => r.port !== undefined && running.some((x) => x.name === r.name && x.commit === r.commit));
      await this.front.baseline(routesFor(role, records, this.layout.release(commit)));
    }
    const results = await Promise.all(groups.map(async (g) => {
      this.log.info("restarting in place", { processes: g.names, commit: commit.slice(0, 12), mode: g.overlap ? "start-new-then-stop-old" : "stop-then-start" });
      const fronted = this.front ? g.names.filter((n) => role.processes[n]!.http) : [];
      if (!fronted.length || !this.front) return this.sup.replace(g.old, g.mine, { overlap: g.overlap });
      const mine = routes.filter((r) => fronted.some((n) => role.processes[n]!.http!.port === r.port));
      if (g.overlap) return this.sup.replace(g.old, g.mine, { overlap: true, beforeRetire: (stopOld) => this.cutFront(mine, g.names, role, stopOld) });
      // Singletons: the front holds new requests while the old one drains, stops and the new one starts.
      await this.front.hold(mine.map((r) => r.port));
      const r = await this.sup.replace(g.old, g.mine, { overlap: false });
      if (r.ok) await this.front.put(mergeRoutes(this.front.table(), mine));
      return r;
    }));
    const failed = results.find((r) => !r.ok);
    this.fresh.clear();
    if (failed) { for (const [k, port] of kept) this.ports.set(k, port); return failed; }
    this.sup.ensure(specs);   // processes the new role no longer has are stopped
    return { ok: true as const };
  }

  /** Overlap behind the front: move the rotation to the new instances, drain the old (then the supervisor stops them). */
  private async cutFront(mine: ReturnType<typeof routesFor>, names: string[], role: Role, stopOld: () => Promise<void>) {
    const front = this.front!;
    const deadline = Math.max(...names.map((n) => role.processes[n]!.health?.deadline ?? 60_000));
    // A first deploy onto the front: the running release may hold http.port itself. Stop it,
    // then bind: the one gap (stop-then-bind) a node has when it moves onto the front.
    const fresh = mine.filter((r) => !front.table().some((t) => t.port === r.port));
    const ownOld = (port: number) => this.store.get().processes.some((r) => names.includes(r.process) && r.port === port);
    if (fresh.some((r) => ownOld(r.port) && portTaken(r.listen, r.port))) {
      this.log.warn("the running release listens on http.port itself: stopping it before the front binds the port (one gap)", { ports: fresh.map((r) => r.port) });
      await stopOld();
    }
    return front.switchTo(mine, deadline);
  }

  stopAll() { return this.sup.stopAll(); }
  async frontStatus() { return (await this.front?.status()) ?? null; }
  status() { return this.sup.status(); }

  healthy(commit: string): boolean {
    const st = this.sup.status();
    return st.every((s) => s.commit === commit && s.healthy) && this.sup.healthy();
  }

  private async userFor(name: string): Promise<UnixUser | null> {
    if (!isRoot()) return null;              // not root: everything runs as the agent (status says so)
    if (!this.users.has(name)) this.users.set(name, name === "root" ? { name, uid: 0, gid: 0 } : await new SystemUsers().ensure(name));
    return this.users.get(name)!;
  }

  /** Instances being replaced within their own commit: they get a new port, not the recorded one. */
  private readonly fresh = new Set<string>();

  private async portFor(commit: string, name: string): Promise<number> {
    const key = `${commit}:${name}`;
    // Records adopted after this adapter was made (found by marker) keep their port too; an
    // instance that must overlap its own predecessor (a secret rotation) never takes its port.
    let port = this.ports.get(key) ?? (this.fresh.has(key) ? undefined : this.store.get().processes.find((r) => r.commit === commit && r.name === name)?.port);
    if (!port) {
      port = freePort();
      this.ports.set(key, port);
    }
    return port;
  }
}

/**
 * A process on a fixed port cannot overlap with its successor (the new one could not bind, and
 * its health check would reach the old one): it restarts stop-then-start. `bindingEnv` is the
 * manifest's roles.<role>.env, which the process gets too: a PORT there is as fixed as one in
 * the process's own env.
 */
export function fixedPort(proc: Role["processes"][string], bindingEnv: Record<string, string>): boolean {
  const h = proc.health;
  return proc.env.PORT !== undefined || bindingEnv.PORT !== undefined ||
    (!!h && ("tcp" in h || ("http" in h && h.port !== undefined)));
}

/**
 * The PORT the role sets for a process, in its own env or the manifest's roles.<role>.env (the
 * process's wins, as in the merged env): the process's port, which its HTTP health check
 * reaches, instead of one the agent assigns. Undefined when neither sets a port number.
 */
function envPort(proc: Role["processes"][string], bindingEnv: Record<string, string>): number | undefined {
  const v = proc.env.PORT ?? bindingEnv.PORT;
  const n = Number(v);
  return v !== undefined && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/** A health check over HTTP or TCP without a fixed port needs a port the agent assigns ($PORT). */
function needsPort(proc: Role["processes"][string]): boolean {
  return !!proc.health && ("http" in proc.health ? proc.health.port === undefined : false);
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

function mergeRoutes<T extends { port: number }>(table: T[], next: T[]): T[] {
  return [...table.filter((r) => !next.some((n) => n.port === r.port)), ...next].sort((a, b) => a.port - b.port);
}

/** Is something already listening on this port (a release that binds http.port itself)? */
function portTaken(listen: string, port: number): boolean {
  try {
    const s = Bun.listen({ hostname: listen, port, socket: { data() {} } });
    s.stop(true);
    return false;
  } catch {
    return true;
  }
}
