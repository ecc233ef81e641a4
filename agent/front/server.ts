// The front: listens on each route's public port and forwards to the role's instances on
// loopback, switching new requests atomically when the table changes and counting in-flight
// requests per upstream so the agent stops an old instance only once it has drained.
// Controlled over a unix socket (0600). Decides nothing itself: routes.ts plans, the agent asks.
import { chmodSync, readFileSync, rmSync, statSync } from "node:fs";
import type { Server, ServerWebSocket } from "bun";
import type { Logger } from "../core/log.ts";
import { VERSION } from "../core/version.ts";
import { CONTENT_TYPE } from "../metrics/registry.ts";
import { FrontMetrics, writeAccess } from "./metrics.ts";
import { enableMigrateReq } from "./migrate.ts";
import { EMPTY_TABLE, pickUpstream, planRoutes, settleDrains, type DesiredRoute, type Drain, type Route, type Table, type Upstream } from "./routes.ts";
import { DEFAULTS, parseTable, type RouteRequest } from "./control.ts";
import { SocketListener, type FrontCore } from "./sockets.ts";
import { closePool } from "./upstream.ts";
import { probe, serveControl, type ControlAnswer } from "./plain.ts";

/**
 * Which data path serves the public ports: "sockets" (Bun.listen/Bun.connect with the front's own
 * HTTP/1.1 framing, sockets.ts) or "serve" (Bun.serve + fetch, the first one). AGENT_FRONT_DATAPATH
 * picks it when the options do not.
 */
export type DataPath = "sockets" | "serve";
export const DEFAULT_DATA_PATH: DataPath = "sockets";

export interface FrontOptions {
  /** The control socket; created with mode 0600. */
  socket: string;
  log: Logger;
  /** How often each upstream's readiness is probed (default 1000 ms). */
  probeMs?: number;
  /** One JSON line per request on stdout for every route (a route's `accessLog` turns it on for that port). */
  accessLog?: boolean;
  now?: () => number;
  dataPath?: DataPath;
}

/** A client WebSocket relayed to one upstream's WebSocket. */
interface Relay {
  port: number;
  upstream: WebSocket;
  /** The client side once its upgrade completed; messages from the instance wait in `pending` until then. */
  client: ServerWebSocket<Relay> | null;
  pending: (string | ArrayBuffer)[];
  /** The instance closed before the client side opened. */
  closed: { code: number; reason: string } | null;
  counted: boolean;
}
type ClientSocket = ServerWebSocket<Relay>;

/** A public port's listener; `tls` names the PEM files and `stamp` their mtimes when loaded. */
interface Listener { server: Server<Relay> | SocketListener; listen: string; tls: string | null; stamp: string }
/** A WebSocket the front relays, on either data path: closed with 1001 when its instance's drain ends. */
type Closable = { close(code?: number, reason?: string): void };

// Hop-by-hop headers (RFC 9110 7.6.1) never cross the front.
const HOP = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"];
/** Consecutive failed probes that take a ready upstream out of rotation (one success puts it back). */
const FAILS_TO_UNREADY = 2;
const KEEP_DRAINED = 100;
const SMALL_BODY = 64 * 1024;
/** Seconds a kept-alive client connection may wait between requests before the front closes it. */
export const IDLE_TIMEOUT_S = 60;
/** Headers of a client's WebSocket handshake that are the client's and the front's own, per hop. */
const WS_OWN = ["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol", "host"];

class TooLarge extends Error {}

interface Health { healthy: boolean; fails: number; probing: boolean }

export class Front {
  private table: Table = EMPTY_TABLE;
  private desired: RouteRequest[] = [];
  private readonly health = new Map<number, Health>();
  private readonly listeners = new Map<number, Listener>();
  /** Open client WebSockets per upstream port (they count as in flight on it). */
  private readonly sockets = new Map<number, Set<Closable>>();
  readonly metrics = new FrontMetrics();
  private globalAccessLog = false;
  private socketIno = 0;
  private retiring = false;
  private retireDone!: () => void;
  /** Resolves once a retire has finished (POST /v1/retire). */
  readonly retired = new Promise<void>((r) => { this.retireDone = r; });
  private tableAccessLog = false;
  private readonly inflight = new Map<number, number>();
  private readonly requests = new Map<number, number>();
  private readonly drained: (Drain & { reason: string; at: number })[] = [];
  private waiters = new Set<() => void>();
  private held = 0;
  private rejected = { tooLarge: 0, holdTimeout: 0, upstreamFailed: 0, clientAborted: 0 };
  private turn = 0;
  private control: { stop(closeActive?: boolean): void } | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly now: () => number;
  private readonly dataPath: DataPath;
  private readonly core: FrontCore;

  constructor(private readonly opts: FrontOptions) {
    this.now = opts.now ?? Date.now;
    this.globalAccessLog = opts.accessLog ?? false;
    const env = process.env.AGENT_FRONT_DATAPATH;
    this.dataPath = opts.dataPath ?? (env === "sockets" || env === "serve" ? env : DEFAULT_DATA_PATH);
    this.core = this.makeCore();
  }

  /** What the socket data path asks of the front: the same routing, counting and logging as serve(). */
  private makeCore(): FrontCore {
    const f = this;
    return {
      route: (port) => f.route(port),
      pickNow: (port, exclude) => {
        const r = f.route(port);
        if (!r) return null;
        return pickUpstream(exclude === null ? r.rotation : r.rotation.filter((u) => u.port !== exclude), f.inflight, f.turn++);
      },
      pick: (port, exclude) => f.pick(port, exclude),
      engage: (up) => { f.count(up.port, +1); f.requests.set(up.port, (f.requests.get(up.port) ?? 0) + 1); },
      release: (port) => f.count(port, -1),
      hit: (port) => f.metrics.hit(port, f.now()),
      answered: (a) => {
        f.metrics.answer(a.port, a.status);
        if (f.globalAccessLog || f.tableAccessLog || f.desiredRoute(a.port)?.accessLog) {
          writeAccess({
            time: new Date().toISOString(), port: a.port, method: a.method, path: a.path, status: a.status,
            upstream: a.upstream, ms: Math.round((performance.now() - a.started) * 100) / 100, bytes: a.bytes,
          });
        }
      },
      reject: (reason) => f.reject(reason),
      upstreamSeconds: (sec) => f.metrics.upstreamSeconds.observe(sec),
      ownSeconds: (sec) => f.metrics.ownSeconds.observe(sec),
      warn: (msg, fields) => f.opts.log.warn(msg, fields),
      addSocket: (port, ws) => {
        let set = f.sockets.get(port);
        if (!set) { set = new Set(); f.sockets.set(port, set); }
        set.add(ws);
      },
      removeSocket: (port, ws) => {
        const set = f.sockets.get(port);
        set?.delete(ws);
        if (set?.size === 0) f.sockets.delete(port);
      },
      get retiring() { return f.retiring; },
    };
  }

  /** Opens the control socket and starts probing. The public ports open with the first table. */
  start(): void {
    rmSync(this.opts.socket, { force: true });
    const umask = process.umask(0o177);
    try {
      this.control = serveControl(this.opts.socket, (method, path, body) => this.onControl(method, path, body));
    } finally {
      process.umask(umask);
    }
    chmodSync(this.opts.socket, 0o600);
    this.socketIno = statSync(this.opts.socket).ino;
    this.timer = setInterval(() => { void this.probeAll(); this.settle(); this.checkTls(); }, this.opts.probeMs ?? 1000);
  }

  /** Closes the control socket and the listeners; in-flight requests finish unless `force`. */
  async stop(force = false): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const servers = [...this.listeners.values()].map((l) => l.server);
    this.listeners.clear();
    for (const srv of servers) void srv.stop(force);
    if (!force) {
      // requests in flight finish (at most the longest drain); then the kept-alive connections
      // that sit idle are cut, or the process would wait for its clients to close them
      const limit = this.now() + Math.max(DEFAULTS.drainMs, ...this.desired.map((r) => r.drainMs));
      while (servers.some((srv) => srv.pendingRequests > 0) && this.now() < limit) await Bun.sleep(20);
      for (const srv of servers) void srv.stop(true);
    }
    this.closeControl();   // after a handover the path is the new front's socket (renamed over ours): left alone
    closePool();
  }

  /**
   * POST /v1/retire (a handover to a new front that already listens on every port): stop
   * accepting, let the requests in flight finish (their responses say `Connection: close`),
   * close the WebSockets with 1001, then resolve `retired` (the command exits).
   */
  async retire(): Promise<void> {
    if (this.retiring) return;
    this.retiring = true;
    this.opts.log.info("front: retiring; the new front has the ports");
    // The control socket goes first: its path is unlinked, and the new front's socket takes that
    // path once it is gone (handover.ts waits for that).
    this.closeControl();
    const servers = [...this.listeners.values()].map((l) => l.server);
    this.listeners.clear();
    for (const srv of servers) void srv.stop(false);
    const limit = this.now() + Math.max(DEFAULTS.drainMs, ...this.desired.map((r) => r.drainMs));
    while (servers.some((srv) => srv.pendingRequests > 0) && this.now() < limit) await Bun.sleep(20);
    for (const set of this.sockets.values()) for (const ws of set) ws.close(1001, "the front is being replaced");
    while (servers.some((srv) => srv.pendingWebSockets > 0) && this.now() < limit) await Bun.sleep(20);
    this.retireDone();
  }

  /** Closes the control socket and unlinks its path (unless a new front's socket was renamed over it). */
  private closeControl(): void {
    this.control?.stop(true);
    this.control = null;
    try { if (statSync(this.opts.socket).ino === this.socketIno) rmSync(this.opts.socket, { force: true }); } catch { /* gone */ }
  }

  /** Replaces the desired routes (what PUT /v1/table does); probes new upstreams at once. */
  async setTable(routes: RouteRequest[], accessLog = false): Promise<void> {
    this.desired = routes;
    this.tableAccessLog = accessLog;
    const ports = new Set(routes.flatMap((r) => r.upstreams.map((u) => u.port)));
    for (const p of [...this.health.keys()]) if (!ports.has(p)) this.health.delete(p);
    this.replan();
    await this.probeAll();
  }

  state() {
    const up = (u: Upstream) => ({
      ...u, healthy: this.health.get(u.port)?.healthy ?? false,
      inflight: this.inflight.get(u.port) ?? 0, requests: this.requests.get(u.port) ?? 0,
      websockets: this.sockets.get(u.port)?.size ?? 0,
    });
    const now = this.now();
    return {
      pid: process.pid,
      version: VERSION,
      connections: this.connections(),
      routes: this.table.routes.map((r) => ({
        port: r.port, listen: r.listen, health: r.health, gated: r.gated,
        drainMs: r.drainMs, holdMs: r.holdMs, maxBody: r.maxBody,
        rate: this.metrics.rate(r.port, now),
        websockets: r.upstreams.reduce((n, u) => n + (this.sockets.get(u.port)?.size ?? 0), 0)
          + this.table.draining.filter((d) => d.port === r.port).reduce((n, d) => n + (this.sockets.get(d.upstream.port)?.size ?? 0), 0),
        rotation: r.rotation.map((u) => u.port), upstreams: r.upstreams.map(up),
      })),
      draining: this.table.draining.map((d) => ({ ...d, inflight: this.inflight.get(d.upstream.port) ?? 0, websockets: this.sockets.get(d.upstream.port)?.size ?? 0 })),
      drained: this.drained,
      held: this.held,
      rejected: this.rejected,
      /** Public ports with an open listener (a handover waits for all of them). */
      listening: [...this.listeners.keys()].sort((a, b) => a - b),
      retiring: this.retiring,
    };
  }

  private replan(): void {
    const desired: DesiredRoute[] = this.desired.map((r) => ({
      ...r, upstreams: r.upstreams.map((u) => ({ ...u, healthy: this.health.get(u.port)?.healthy ?? false })),
    }));
    this.table = planRoutes(desired, this.table, this.now());
    this.settle();
    this.syncListeners();
    const w = this.waiters;
    this.waiters = new Set();
    for (const wake of w) wake();
  }

  private settle(): void {
    const { done, remaining } = settleDrains(this.table.draining, this.inflight, this.now());
    if (done.length === 0) return;
    this.table = { ...this.table, draining: remaining };
    for (const d of done) {
      this.opts.log.info("front: drained", { port: d.port, upstream: d.upstream.id, upstreamPort: d.upstream.port, reason: d.reason });
      this.drained.push({ ...d, at: this.now() });
      this.requests.delete(d.upstream.port);
      this.metrics.drains.inc({ reason: d.reason });
      this.metrics.drainSeconds.observe(Math.max(0, this.now() - d.since) / 1000);
      // The drain is over: a WebSocket still open on that instance goes away now (the agent stops it next).
      for (const ws of this.sockets.get(d.upstream.port) ?? []) ws.close(1001, "the instance is going away");
    }
    this.drained.splice(0, Math.max(0, this.drained.length - KEEP_DRAINED));
  }

  private syncListeners(): void {
    if (this.retiring) return;   // the ports are the new front's now
    const want = new Map(this.table.routes.map((r) => [r.port, r]));
    for (const [port, l] of this.listeners) {
      const r = want.get(port);
      if (r) continue;   // a changed address or TLS is re-listened below
      void l.server.stop(false);   // in-flight requests on it finish
      this.listeners.delete(port);
    }
    for (const r of want.values()) {
      const l = this.listeners.get(r.port);
      const tls = this.desiredRoute(r.port)?.tls ?? null;
      if (l && l.listen === r.listen && l.tls === tlsKey(this.desiredRoute(r.port))) continue;
      this.listen(r, tls, l);
    }
  }

  /**
   * Opens the listener of a route, or replaces `old` (new TLS files, another address): the new
   * socket listens first (SO_REUSEPORT), then the old one stops accepting and its requests finish.
   */
  private listen(r: Route, tls: { cert: string; key: string } | null, old?: Listener): void {
    const port = r.port;
    let loaded: { cert: string; key: string } | undefined;
    let stamp = "";
    if (tls) {
      try {
        stamp = mtimes(tls);
        loaded = { cert: readFileSync(tls.cert, "utf8"), key: readFileSync(tls.key, "utf8") };
      } catch (e) {
        this.opts.log.error("front: cannot read the TLS files; the port keeps its current listener", { port, cert: tls.cert, key: tls.key, error: String(e) });
        return;
      }
    }
    if (old && old.listen !== r.listen) {   // another address: the old one cannot share the port
      void old.server.stop(false);
      old = undefined;
    }
    let server: Server<Relay> | SocketListener;
    try {
      server = this.dataPath === "sockets" ? new SocketListener(this.core, port, r.listen, loaded, IDLE_TIMEOUT_S) : Bun.serve<Relay>({
        port, hostname: r.listen, reusePort: true, tls: loaded,
        // Bun would answer a bare 413 itself past this (measured: before the handler for a
        // Content-Length, mid-stream for a chunked body); the front enforces http.maxBody itself
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        // Seconds a kept-alive connection may sit idle between requests. A client whose request
        // headers are not complete is closed by Bun itself after about 10 s whatever this says
        // (measured with Bun 1.4.5: a stalled and a trickling client were both closed at 12 s).
        idleTimeout: IDLE_TIMEOUT_S,
        fetch: (req, srv) => this.serve(req, srv, port),
        websocket: {
          open: (ws) => this.wsOpen(ws),
          message: (ws, msg) => { ws.data.upstream.send(msg); },
          close: (ws, code, reason) => this.wsClose(ws, code, reason),
        },
      });
    } catch (e) {
      if (!old) throw e;
      this.opts.log.error("front: cannot re-listen; the port keeps its current listener", { port, error: String(e) });
      return;
    }
    if (old) {
      // with tcp_migrate_req on, connections in the old listener's accept queue move to the new one
      const migrateReq = enableMigrateReq();
      if (migrateReq === "unavailable") this.opts.log.warn("front: net.ipv4.tcp_migrate_req is not available; connections queued on the old listener are reset", { port });
      void old.server.stop(false);   // stops accepting; its requests in flight finish
    }
    this.listeners.set(port, { server, listen: r.listen, tls: tls ? `${tls.cert}\n${tls.key}` : null, stamp });
    this.opts.log.info(old ? "front: listening again" : "front: listening", { port, listen: r.listen, tls: tls !== null });
  }

  /** On the probe tick: a port whose certificate or key file changed (a renewal) is re-listened. */
  private checkTls(): void {
    for (const r of this.table.routes) {
      const l = this.listeners.get(r.port);
      const tls = this.desiredRoute(r.port)?.tls;
      if (!l || !tls || l.tls === null) continue;
      let stamp: string;
      try { stamp = mtimes(tls); } catch { continue; }
      if (stamp !== l.stamp) this.listen(r, tls, l);
    }
  }

  private desiredRoute(port: number): RouteRequest | undefined {
    return this.desired.find((r) => r.port === port);
  }

  private proto(port: number): "http" | "https" {
    return this.listeners.get(port)?.tls ? "https" : "http";
  }

  private route(port: number): Route | undefined {
    return this.table.routes.find((r) => r.port === port);
  }

  /** Waits for an upstream while the rotation is empty, up to the route's hold. */
  private async pick(port: number, exclude: number | null): Promise<Upstream | null> {
    const deadline = this.now() + (this.route(port)?.holdMs ?? 0);
    for (;;) {
      const r = this.route(port);
      const rotation = (r?.rotation ?? []).filter((u) => u.port !== exclude);
      const u = pickUpstream(rotation, this.inflight, this.turn++);
      if (u || !r) return u;
      const left = deadline - this.now();
      if (left <= 0) return null;
      this.held++;
      try {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => { this.waiters.delete(wake); resolve(); }, left);
          const wake = () => { clearTimeout(t); resolve(); };
          this.waiters.add(wake);
        });
      } finally {
        this.held--;
      }
    }
  }

  /** Every request on a public port: the proxy, then the counters and the access log. */
  private async serve(req: Request, srv: Server<Relay>, port: number): Promise<Response | undefined> {
    const started = performance.now();
    this.metrics.hit(port, this.now());
    // After its headers, a request lasts as long as its instance takes (the idle timeout is for
    // connections waiting between requests, not for slow answers).
    srv.timeout(req, 0);
    const upstream: { id: string | null } = { id: null };
    const res = await this.proxy(req, srv, port, upstream);
    const status = res ? res.status : 101;
    if (res && this.retiring) res.headers.set("connection", "close");
    this.metrics.answer(port, status);
    if (this.globalAccessLog || this.tableAccessLog || this.desiredRoute(port)?.accessLog) {
      const url = new URL(req.url);
      const len = res?.headers.get("content-length");
      writeAccess({
        time: new Date().toISOString(), port, method: req.method, path: url.pathname + url.search, status,
        upstream: upstream.id, ms: Math.round((performance.now() - started) * 100) / 100, bytes: len == null ? null : Number(len),
      });
    }
    return res;
  }

  private reject(reason: keyof Front["rejected"]): void {
    this.rejected[reason]++;
    this.metrics.rejected.inc({ reason });
  }

  /** Client requests in progress and WebSockets open on the public ports. */
  private connections(): number {
    let n = 0;
    for (const { server } of this.listeners.values()) n += server.pendingRequests + server.pendingWebSockets;
    this.metrics.connections.set(n);
    return n;
  }

  /** The Prometheus text of GET /v1/metrics. */
  renderMetrics(): string {
    this.connections();
    return this.metrics.render();
  }

  private async proxy(req: Request, srv: Server<Relay>, port: number, picked: { id: string | null }): Promise<Response | undefined> {
    const route = this.route(port);
    if (!route) return text(503, "no route on this port\n", { "retry-after": "1" });
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") return this.upgrade(req, srv, port, picked);
    const length = Number(req.headers.get("content-length") ?? "0");
    if (length > route.maxBody) return this.tooLarge(route);
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    for (const h of HOP) headers.delete(h);
    const peer = srv.requestIP(req)?.address ?? "";
    const xff = req.headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", xff ? `${xff}, ${peer}` : peer);
    headers.set("x-forwarded-proto", this.proto(port));
    headers.set("x-forwarded-host", req.headers.get("host") ?? "");
    const bodyless = req.body === null;
    const body = bodyless ? null : limit(req.body!, route.maxBody);
    let failed: number | null = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const up = await this.pick(port, failed);
      if (!up) {
        this.reject("holdTimeout");
        return text(503, "no instance is ready\n", { "retry-after": "1" });
      }
      this.count(up.port, +1);
      this.requests.set(up.port, (this.requests.get(up.port) ?? 0) + 1);
      picked.id = up.id;
      let res: Response;
      const sent = performance.now();
      try {
        res = await fetch(`http://127.0.0.1:${up.port}${url.pathname}${url.search}`, {
          method: req.method, headers, body, signal: req.signal, redirect: "manual",
          decompress: false, duplex: "half",
        } as RequestInit);
      } catch (e) {
        this.count(up.port, -1);
        if (req.signal.aborted) { this.reject("clientAborted"); return text(499, "client closed the request\n"); }
        if (body && (body as { tooLarge?: boolean }).tooLarge) return this.tooLarge(route);
        // A refused connection sent nothing: a request without a body may go to another instance once.
        if (bodyless && attempt === 0 && refused(e)) { failed = up.port; continue; }
        this.reject("upstreamFailed");
        this.opts.log.warn("front: upstream failed", { port, upstream: up.id, error: String(e) });
        return text(502, "the instance did not answer\n");
      }
      this.metrics.upstreamSeconds.observe((performance.now() - sent) / 1000);
      const out = new Headers(res.headers);
      for (const h of HOP) out.delete(h);
      const init = { status: res.status, statusText: res.statusText, headers: out };
      const length = Number(res.headers.get("content-length") ?? NaN);
      if (!res.body) { this.count(up.port, -1); return new Response(null, init); }
      // A small body of known length is read whole (measured: several times the requests/s of a
      // pass-through stream); anything else, chunked or large, streams through unbuffered.
      if (length <= SMALL_BODY) {
        try { return new Response(await res.arrayBuffer(), init); }
        catch (e) { this.reject("upstreamFailed"); return text(502, "the instance did not finish its answer\n"); }
        finally { this.count(up.port, -1); }
      }
      return new Response(this.track(res.body, up.port), init);
    }
    return text(502, "the instance did not answer\n");
  }

  private tooLarge(route: Route): Response {
    this.reject("tooLarge");
    return text(413, `request body over ${route.maxBody} bytes (http.maxBody)\n`, { connection: "close" });
  }

  private count(port: number, delta: number): void {
    const n = (this.inflight.get(port) ?? 0) + delta;
    if (n <= 0) this.inflight.delete(port); else this.inflight.set(port, n);
    if (n <= 0 && delta < 0) this.settle();
  }

  /**
   * A WebSocket handshake: opens a WebSocket to the picked instance first (so a refusal is a 502
   * the client can see), then upgrades the client and relays frames both ways, text as text and
   * binary as binary, and the close code and reason. The socket counts as in flight on its
   * instance, so a drain waits for it up to drainMs; when the drain ends it closes with 1001.
   */
  private async upgrade(req: Request, srv: Server<Relay>, port: number, picked: { id: string | null }): Promise<Response | undefined> {
    const up = await this.pick(port, null);
    if (!up) { this.reject("holdTimeout"); return text(503, "no instance is ready\n", { "retry-after": "1" }); }
    picked.id = up.id;
    const url = new URL(req.url);
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => { if (!HOP.includes(k) && !WS_OWN.includes(k)) headers[k] = v; });
    const peer = srv.requestIP(req)?.address ?? "";
    const xff = req.headers.get("x-forwarded-for");
    headers["x-forwarded-for"] = xff ? `${xff}, ${peer}` : peer;
    headers["x-forwarded-proto"] = this.proto(port) === "https" ? "https" : "http";
    headers["x-forwarded-host"] = req.headers.get("host") ?? "";
    const protocols = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
    this.count(up.port, +1);
    this.requests.set(up.port, (this.requests.get(up.port) ?? 0) + 1);
    const upstream = new WebSocket(`ws://127.0.0.1:${up.port}${url.pathname}${url.search}`, { headers, protocols } as unknown as string[]);
    upstream.binaryType = "arraybuffer";
    const relay: Relay = { port: up.port, upstream, client: null, pending: [], closed: null, counted: true };
    const sent = performance.now();
    const opened = await new Promise<boolean>((resolve) => {
      upstream.onopen = () => resolve(true);
      upstream.onerror = () => resolve(false);
      upstream.onclose = () => resolve(false);
    });
    if (!opened) {
      this.uncount(relay);
      this.reject("upstreamFailed");
      this.opts.log.warn("front: upstream refused a WebSocket", { port, upstream: up.id });
      return text(502, "the instance did not accept the WebSocket\n");
    }
    this.metrics.upstreamSeconds.observe((performance.now() - sent) / 1000);
    upstream.onmessage = (ev) => { if (relay.client) relay.client.send(ev.data as string | ArrayBuffer); else relay.pending.push(ev.data as string | ArrayBuffer); };
    upstream.onclose = (ev) => {
      if (relay.client) closeWith(relay.client, ev.code, ev.reason); else relay.closed = { code: ev.code, reason: ev.reason };
    };
    const extra = upstream.protocol ? { "sec-websocket-protocol": upstream.protocol } : undefined;
    if (!srv.upgrade(req, { data: relay, headers: extra })) {
      upstream.close();
      this.uncount(relay);
      return text(400, "not a WebSocket handshake\n");
    }
    return undefined;
  }

  private wsOpen(ws: ClientSocket): void {
    const r = ws.data;
    r.client = ws;
    let set = this.sockets.get(r.port);
    if (!set) { set = new Set(); this.sockets.set(r.port, set); }
    set.add(ws);
    for (const m of r.pending) ws.send(m);
    r.pending = [];
    if (r.closed) closeWith(ws, r.closed.code, r.closed.reason);
  }

  private wsClose(ws: ClientSocket, code: number, reason: string): void {
    const r = ws.data;
    const set = this.sockets.get(r.port);
    set?.delete(ws);
    if (set?.size === 0) this.sockets.delete(r.port);
    if (r.upstream.readyState === WebSocket.OPEN || r.upstream.readyState === WebSocket.CONNECTING) closeWith(r.upstream, code, reason);
    this.uncount(r);
  }

  private uncount(r: Relay): void {
    if (!r.counted) return;
    r.counted = false;
    this.count(r.port, -1);
  }

  /** Passes the response body through unbuffered; the request counts as in flight until it ends. */
  private track(body: ReadableStream<Uint8Array>, port: number): ReadableStream<Uint8Array> {
    const reader = body.getReader();
    let open = true;
    const close = () => { if (open) { open = false; this.count(port, -1); } };
    return new ReadableStream<Uint8Array>({
      async pull(c) {
        try {
          const { done, value } = await reader.read();
          if (done) { close(); c.close(); } else c.enqueue(value);
        } catch (e) { close(); c.error(e); }
      },
      cancel(reason) { close(); return reader.cancel(reason); },
    }, { highWaterMark: 0 });
  }

  private async probeAll(): Promise<void> {
    await Promise.all(this.desired.flatMap((r) => r.upstreams.map((u) => this.probe(u.port, r.health))));
  }

  private async probe(port: number, path: string | null): Promise<void> {
    const h = this.health.get(port) ?? { healthy: false, fails: 0, probing: false };
    this.health.set(port, h);
    if (h.probing) return;
    h.probing = true;
    let ok = false;
    try {
      if (path) {
        ok = await probe(port, path, 2000);
      } else {
        const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
        s.end();
        ok = true;
      }
    } catch { ok = false; }
    h.probing = false;
    if (this.health.get(port) !== h) return;   // the upstream left the table meanwhile
    const was = h.healthy;
    if (ok) { h.healthy = true; h.fails = 0; } else if (++h.fails >= FAILS_TO_UNREADY || !was) h.healthy = false;
    if (h.healthy !== was) {
      this.opts.log.info(h.healthy ? "front: upstream ready" : "front: upstream not ready", { upstreamPort: port });
      this.replan();
    }
  }

  private async onControl(method: string, path: string, body: string): Promise<ControlAnswer> {
    const json = (v: unknown, status = 200): ControlAnswer => ({ status, body: JSON.stringify(v) });
    if (path === "/v1/state" && method === "GET") return json(this.state());
    if (path === "/v1/table" && method === "GET") return json({ accessLog: this.tableAccessLog, routes: this.desired });
    if (path === "/v1/retire" && method === "POST") {
      if (this.retiring) return json({ retiring: true }, 202);
      setTimeout(() => void this.retire(), 10);
      return json({ retiring: true }, 202);
    }
    if (path === "/v1/metrics" && method === "GET") return { status: 200, body: this.renderMetrics(), type: CONTENT_TYPE };
    if (path === "/v1/table" && method === "PUT") {
      let raw: unknown;
      try { raw = JSON.parse(body); } catch { return json({ error: "the body is not JSON" }, 400); }
      const parsed = parseTable(raw);
      if (!parsed.ok) return json({ error: parsed.error }, 400);
      try {
        await this.setTable(parsed.routes, parsed.accessLog);
      } catch (e) {
        return json({ error: `front: cannot apply the table: ${e instanceof Error ? e.message : String(e)}` }, 409);
      }
      return json(this.state());
    }
    return json({ error: `no such endpoint: ${method} ${path} (GET /v1/state, GET /v1/metrics, GET|PUT /v1/table, POST /v1/retire)` }, 404);
  }
}

function tlsKey(r: RouteRequest | undefined): string | null {
  return r?.tls ? `${r.tls.cert}\n${r.tls.key}` : null;
}

function mtimes(tls: { cert: string; key: string }): string {
  return `${statSync(tls.cert).mtimeMs}:${statSync(tls.key).mtimeMs}`;
}

/** Passes a close code on; 1005 (none given) and 1006 (connection lost) cannot be sent, so they close plainly. */
function closeWith(ws: { close(code?: number, reason?: string): void }, code: number, reason: string): void {
  try {
    if (code === 1005 || code === 1006 || !code) ws.close(); else ws.close(code, reason);
  } catch {
    ws.close();
  }
}

/** Bun's fetch says ECONNREFUSED (measured, 1.4.5); "ConnectionRefused" is its older spelling. */
function refused(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code;
  return code === "ECONNREFUSED" || code === "ConnectionRefused";
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });
}

/** The request body, streamed, failing with TooLarge past `max` bytes (a chunked body has no length). */
function limit(body: ReadableStream<Uint8Array>, max: number): ReadableStream<Uint8Array> {
  let seen = 0;
  const out: ReadableStream<Uint8Array> & { tooLarge?: boolean } = body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, c) {
      seen += chunk.byteLength;
      if (seen > max) { out.tooLarge = true; c.error(new TooLarge(`over ${max} bytes`)); } else c.enqueue(chunk);
    },
  }));
  return out;
}
