// The agent's side of `agent front`: start or adopt the front (one per node, as root, its own
// process group, its pid in state.json), keep it running (restarted within a second when it
// dies), give it the whole table after every (re)start, and move a port's upstreams for a
// cutover: overlap (new ready in rotation, old drained, then stopped) or hold (singletons).
// The routing itself is the front's (agent/front/); this file only decides what to PUT and when.
import { existsSync } from "node:fs";
import type { Logger } from "../core/log.ts";
import { AgentError, errorMessage } from "../core/errors.ts";
import { isSameProcess, readStat } from "../host/proc.ts";
import { selfCommand } from "../host/self.ts";
import type { Role } from "../manifest/schema.ts";
import { FrontClient, frontSocket, type FrontState, type TableRoute } from "../front/client.ts";
import { handover } from "../front/handover.ts";
import { VERSION } from "../core/version.ts";
import type { StateStore } from "../state/store.ts";
import type { FrontStatus } from "../status/types.ts";
import type { ProcessSpec } from "../supervisor/index.ts";

type Proc = Role["processes"][string];

/** The upstreams a set of specs gives each http: process's port; `role` supplies the settings. */
export function routesFor(role: Role, specs: readonly Pick<ProcessSpec, "name" | "process" | "commit" | "port">[], releaseDir?: string): TableRoute[] {
  const routes: TableRoute[] = [];
  const byPort = new Map<number, string>();
  for (const [name, proc] of Object.entries(role.processes)) {
    if (!proc.http) continue;
    const other = byPort.get(proc.http.port);
    if (other) throw new AgentError("HttpPortConflict", `processes ${other} and ${name} both have http.port ${proc.http.port}; give each http: process its own port (roles/<role>.yaml processes.${name}.http.port)`);
    byPort.set(proc.http.port, name);
    routes.push(routeOf(proc, specs.filter((s) => s.process === name && s.port).map((s) => ({ id: upstreamId(s), port: s.port! })), releaseDir));
  }
  return routes;
}

export function routeOf(proc: Proc, upstreams: { id: string; port: number }[], releaseDir?: string): TableRoute {
  const h = proc.http!;
  const abs = (p: string) => (p.startsWith("/") || !releaseDir ? p : `${releaseDir}/${p}`);
  return {
    port: h.port, listen: h.listen, health: h.health ?? null, drainMs: h.drain, holdMs: h.hold, maxBody: h.maxBody,
    upstreams, ...(h.tls ? { tls: { cert: abs(h.tls.cert), key: abs(h.tls.key) } } : {}),
  };
}

/** `web#1@3f2a1c9`: what the front's state and `agent status` show for an upstream. */
export function upstreamId(s: Pick<ProcessSpec, "name" | "commit">): string {
  return `${s.name.includes("#") ? s.name : `${s.name}#0`}@${s.commit.slice(0, 7)}`;
}

export interface FrontRecord { pid: number; startTime: number; startedAt: number; restarts: number }

/** How the front is started: this program again, with `front` (compiled: the binary; from source: bun + main.ts). */
function frontArgv(stateDir: string, socket?: string): string[] {
  return [...selfCommand(), "front", "--state-dir", stateDir, ...(socket ? ["--socket", socket] : [])];
}

/** The agent's environment variables a front it starts gets too (docs/front.md). */
const FRONT_ENV = ["AGENT_FRONT_DATAPATH", "AGENT_FRONT_NICE"] as const;

/** The front's environment: PATH and the FRONT_ENV variables that are set, nothing else. */
export function frontEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = { PATH: env.PATH ?? "/usr/bin:/bin" };
  for (const k of FRONT_ENV) if (env[k] !== undefined) out[k] = env[k]!;
  return out;
}

export class FrontKeeper {
  readonly client: FrontClient;
  private routes: TableRoute[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private busy: Promise<void> | null = null;
  lastEvent: string | null = null;

  constructor(private stateDir: string, private store: StateStore, private log: Logger, private logFile: string) {
    this.client = new FrontClient(frontSocket(stateDir));
  }

  /** The table the agent wants now (what the last put() sent). */
  table(): TableRoute[] { return this.routes; }

  record(): FrontRecord | null { return this.store.get().front ?? null; }

  running(): boolean {
    const r = this.record();
    return !!r && isSameProcess(r.pid, r.startTime);
  }

  /** Level-based: the front runs iff some route is wanted, and has exactly `routes`. Throws on a table the front refuses. */
  async apply(routes: TableRoute[]): Promise<FrontState | null> {
    if (!routes.length) { this.routes = []; await this.stop(); return null; }
    await this.up();
    return this.put(routes);
  }

  /** PUT the whole table; a refused one (a port it cannot bind) puts the previous one back and throws. */
  async put(routes: TableRoute[]): Promise<FrontState> {
    const before = this.routes;
    try {
      const st = await this.client.put(routes);
      this.routes = routes;
      return st;
    } catch (e) {
      if (before.length) await this.client.put(before).catch(() => {});
      throw new AgentError("FrontRefused", `${errorMessage(e)} (ports ${routes.map((r) => r.port).join(", ")}); nothing was switched, the running release keeps serving`);
    }
  }

  /**
   * A new agent's first cutover: the table the front runs is not known to this process yet. The
   * running instances (state.json) on the ports the front serves are it, so a failed cutover
   * puts them back rather than an empty table.
   */
  async baseline(routes: TableRoute[]): Promise<void> {
    if (this.routes.length) return;
    const st = await this.client.state().catch(() => null);
    this.routes = routes.filter((r) => r.upstreams.length && st?.routes.some((x) => x.port === r.port));
  }

  /** Start or adopt the front and wait for its control socket; then watch it (restart within a second). */
  async up(): Promise<void> {
    if (!this.running()) await this.start(this.record() ? "the front exited; restarting it" : null);
    else if (!this.timer) {
      this.log.info("adopted the front", { pid: this.record()!.pid });
      await this.upgrade();
    }
    this.watch();
  }

  /**
   * An adopted front of another version (the agent was upgraded) is replaced by one from this
   * binary as a handover (agent/front/handover.ts): the new one listens beside it (SO_REUSEPORT)
   * before the old one stops accepting, so no connection is refused. A failed handover keeps the
   * old front serving (the new one is stopped) and is tried again on the next agent start.
   */
  private async upgrade(): Promise<void> {
    const st = await this.client.state().catch(() => null);
    const running = st?.version;
    if (!st || !running || running === VERSION) return;
    this.log.info("upgrading the front: it runs another agent version", { pid: st.pid, from: running, to: VERSION });
    let spawned: ReturnType<typeof Bun.spawn> | null = null;
    try {
      const r = await handover({ socket: frontSocket(this.stateDir), spawn: async (socket) => (spawned = await this.spawnFront(socket)).pid });
      const prev = this.record();
      this.store.update((s) => {
        s.front = { pid: r.pid, startTime: readStat(r.pid)?.startTime ?? 0, startedAt: Date.now(), restarts: prev?.restarts ?? 0 };
      });
      this.lastEvent = `upgraded from ${running} to ${VERSION} without a refused connection (tcp_migrate_req ${r.migrateReq}; ${new Date().toISOString()})`;
      this.log.info("upgraded the front", { pid: r.pid, old: r.oldPid, from: running, to: VERSION, migrateReq: r.migrateReq });
    } catch (e) {
      try { (spawned as ReturnType<typeof Bun.spawn> | null)?.kill("SIGTERM"); } catch { /* gone */ }
      this.log.warn("could not upgrade the front; the running one keeps serving", { error: errorMessage(e), version: running });
    }
  }

  /** `agent front` from this binary, detached (its own process group), output to the front's log. */
  private async spawnFront(socket?: string): Promise<ReturnType<typeof Bun.spawn>> {
    const { openSync, closeSync, constants } = await import("node:fs");
    const fd = openSync(this.logFile, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);
    const child = Bun.spawn(frontArgv(this.stateDir, socket), {
      stdin: "ignore", stdout: fd, stderr: fd, detached: true,   // its own process group: an agent stop leaves it running
      env: frontEnv(process.env),   // AGENT_FRONT_DATAPATH=serve, AGENT_FRONT_NICE=off pass on
    });
    child.unref();
    closeSync(fd);   // the child has its own copy
    return child;
  }

  private async start(why: string | null): Promise<void> {
    if (why) { this.log.warn(why, { restarts: (this.record()?.restarts ?? 0) + 1 }); this.lastEvent = `${why} (${new Date().toISOString()})`; }
    const child = await this.spawnFront();
    const prev = this.record();
    this.store.update((s) => {
      s.front = { pid: child.pid, startTime: readStat(child.pid)?.startTime ?? 0, startedAt: Date.now(), restarts: prev ? prev.restarts + (why ? 1 : 0) : 0 };
    });
    this.log.info("started the front", { pid: child.pid });
    for (let i = 0; i < 200; i++) {
      if (existsSync(frontSocket(this.stateDir)) && await this.client.state().then(() => true, () => false)) return;
      if (child.exitCode !== null) break;
      await Bun.sleep(10);
    }
    throw new AgentError("FrontStartFailed", `agent front did not open ${frontSocket(this.stateDir)} (see ${this.logFile})`);
  }

  /** Every 250 ms: a dead front is started again and given the table. */
  private watch(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.busy || this.running() || !this.routes.length) return;
      this.busy = (async () => {
        try {
          await this.start("the front exited; restarting it");
          await this.client.put(this.routes);
          this.log.info("the front is back with the table", { routes: this.routes.length });
        } catch (e) {
          this.log.error("could not restart the front", { error: errorMessage(e) });
        }
      })().finally(() => { this.busy = null; });
    }, 250);
    (this.timer as { unref?: () => void }).unref?.();
  }

  async stop(): Promise<void> {
    if (this.timer) { clearInterval(this.timer); this.timer = null; }
    const r = this.record();
    if (!r) return;
    if (isSameProcess(r.pid, r.startTime)) {
      this.log.info("stopping the front: no process has http: any more", { pid: r.pid });
      try { process.kill(r.pid, "SIGTERM"); } catch { /* gone */ }
      for (let i = 0; i < 300 && isSameProcess(r.pid, r.startTime); i++) await Bun.sleep(10);
    }
    this.store.update((s) => { s.front = null; });
  }

  private lastCount: { at: number; byPort: Map<number, number> } | null = null;

  /** For `agent status`: the front's state, with upstreams named and a request rate per port. */
  async status(): Promise<FrontStatus | null> {
    const rec = this.record();
    if (!rec && !this.routes.length) return null;
    const base = { pid: rec?.pid ?? null, restarts: rec?.restarts ?? 0, event: this.lastEvent };
    const st = await this.client.state().catch((e) => errorMessage(e));
    if (typeof st === "string") return { ...base, error: `the control socket did not answer: ${st}`, ports: [], held: 0, rejected: {} };
    const now = Date.now();
    const byPort = new Map(st.routes.map((r) => [r.port, r.upstreams.reduce((n, u) => n + u.requests, 0)]));
    const prev = this.lastCount;
    this.lastCount = { at: now, byPort };
    return {
      ...base, held: st.held, rejected: st.rejected,
      ports: st.routes.map((r) => {
        const before = prev?.byPort.get(r.port);
        const rate = prev && before !== undefined && now > prev.at ? Math.max(0, (byPort.get(r.port)! - before) * 1000 / (now - prev.at)) : null;
        const draining = st.draining.filter((d) => d.port === r.port);
        const ups = r.upstreams.map((u) => ({ ...u, inRotation: r.rotation.includes(u.port), draining: false }));
        for (const d of draining) if (!ups.some((u) => u.port === d.upstream.port)) ups.push({ ...d.upstream, healthy: true, inRotation: false, draining: true, inflight: d.inflight, requests: 0 });
        return {
          port: r.port, listen: r.listen, gated: r.gated, ratePerSec: rate === null ? null : Math.round(rate * 10) / 10,
          inflight: r.upstreams.reduce((n, u) => n + u.inflight, 0) + draining.reduce((n, d) => n + d.inflight, 0),
          upstreams: ups,
        };
      }),
    };
  }

  /**
   * Prometheus text for the agent's /metrics: the front's own GET /v1/metrics when it has one,
   * else its rejected counts and in-flight requests from GET /v1/state. Null when no front runs.
   */
  async metrics(): Promise<string | null> {
    if (!this.record()) return null;
    const own = await this.client.metrics();
    if (own) return own;
    const st = await this.client.state().catch(() => null);
    if (!st) return null;
    const lines = ["# HELP agent_front_rejected_total Requests the front answered itself, by reason.", "# TYPE agent_front_rejected_total counter"];
    for (const [reason, n] of Object.entries(st.rejected)) lines.push(`agent_front_rejected_total{reason="${reason}"} ${n}`);
    lines.push("# HELP agent_front_inflight Requests in flight per public port.", "# TYPE agent_front_inflight gauge");
    for (const r of st.routes) lines.push(`agent_front_inflight{port="${r.port}"} ${r.upstreams.reduce((n, u) => n + u.inflight, 0)}`);
    lines.push("# HELP agent_front_upstream_requests Requests forwarded to each current upstream (starts at 0 for a new instance).", "# TYPE agent_front_upstream_requests gauge");
    for (const r of st.routes) for (const u of r.upstreams) lines.push(`agent_front_upstream_requests{port="${r.port}",upstream="${u.id}"} ${u.requests}`);
    return lines.join("\n") + "\n";
  }

  /** Agent shutdown: the front keeps running (its sockets stay open) for the next agent. */
  detach(): void {
    if (this.timer) { clearInterval(this.timer); this.timer = null; }
  }

  /**
   * Overlap cutover of `port`: PUT the new upstreams, wait until the rotation is exactly them
   * (deadline: a release that never gets ready receives no request; the old upstreams go back),
   * then wait until the old ones drained (bounded by drainMs).
   */
  async switchTo(next: TableRoute[], deadlineMs: number): Promise<{ ok: true } | { ok: false; reason: string; message: string }> {
    const before = this.routes;
    const table = merge(before, next);
    await this.put(table);
    const since = Date.now();
    for (;;) {
      const st = await this.client.state().catch(() => null);
      const ready = st && next.every((r) => {
        const live = st.routes.find((x) => x.port === r.port);
        return live && !live.gated && sameSet(live.rotation, r.upstreams.map((u) => u.port));
      });
      if (ready) break;
      if (Date.now() - since > deadlineMs) {
        await this.put(before).catch(() => {});
        const lost = next.flatMap((r) => r.upstreams.filter((u) => !st?.routes.find((x) => x.port === r.port)?.rotation.includes(u.port)).map((u) => `${u.id} on 127.0.0.1:${u.port}`));
        return { ok: false, reason: "ProcessNotHealthy", message: `${lost.join(", ") || "the new instances"} did not become ready behind the front within ${Math.round(deadlineMs / 1000)}s (the process must listen on $PORT, not on http.port)` };
      }
      await Bun.sleep(50);
    }
    await this.drained(before, next);
    return { ok: true };
  }

  /** Singleton: hold new requests on these ports (upstreams []) and wait for the old one to drain. */
  async hold(ports: number[]): Promise<void> {
    const before = this.routes;
    const held = before.map((r) => (ports.includes(r.port) ? { ...r, upstreams: [] } : r));
    await this.put(held);
    await this.drained(before, held);
  }

  /** Wait until the upstreams that `before` had and `after` has not are no longer draining. */
  private async drained(before: TableRoute[], after: TableRoute[]): Promise<void> {
    const keep = new Set(after.flatMap((r) => r.upstreams.map((u) => u.port)));
    const gone = before.flatMap((r) => r.upstreams.filter((u) => !keep.has(u.port)).map((u) => u.port));
    const bound = Math.max(0, ...before.map((r) => r.drainMs)) + 1000;
    const since = Date.now();
    while (gone.length && Date.now() - since < bound) {
      const st = await this.client.state().catch(() => null);
      if (st && !st.draining.some((d) => gone.includes(d.upstream.port))) return;
      await Bun.sleep(50);
    }
  }
}

function merge(table: TableRoute[], next: TableRoute[]): TableRoute[] {
  const out = table.filter((r) => !next.some((n) => n.port === r.port));
  return [...out, ...next].sort((a, b) => a.port - b.port);
}

function sameSet(a: number[], b: number[]): boolean {
  return a.length === b.length && b.every((x) => a.includes(x));
}
