// The front: listens on each route's public port and forwards to the role's instances on
// loopback, switching new requests atomically when the table changes and counting in-flight
// requests per upstream so the agent stops an old instance only once it has drained.
// Controlled over a unix socket (0600). Decides nothing itself: routes.ts plans, the agent asks.
import { chmodSync, rmSync } from "node:fs";
import type { Server } from "bun";
import type { Logger } from "../core/log.ts";
import { EMPTY_TABLE, pickUpstream, planRoutes, settleDrains, type DesiredRoute, type Drain, type Route, type Table, type Upstream } from "./routes.ts";
import { parseTable, type RouteRequest } from "./control.ts";

export interface FrontOptions {
  /** The control socket; created with mode 0600. */
  socket: string;
  log: Logger;
  /** How often each upstream's readiness is probed (default 1000 ms). */
  probeMs?: number;
  now?: () => number;
}

// Hop-by-hop headers (RFC 9110 7.6.1) never cross the front.
const HOP = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"];
/** Consecutive failed probes that take a ready upstream out of rotation (one success puts it back). */
const FAILS_TO_UNREADY = 2;
const KEEP_DRAINED = 100;
const SMALL_BODY = 64 * 1024;

class TooLarge extends Error {}

interface Health { healthy: boolean; fails: number; probing: boolean }

export class Front {
  private table: Table = EMPTY_TABLE;
  private desired: RouteRequest[] = [];
  private readonly health = new Map<number, Health>();
  private readonly listeners = new Map<number, { server: Server<undefined>; listen: string }>();
  private readonly inflight = new Map<number, number>();
  private readonly requests = new Map<number, number>();
  private readonly drained: (Drain & { reason: string; at: number })[] = [];
  private waiters = new Set<() => void>();
  private held = 0;
  private rejected = { tooLarge: 0, holdTimeout: 0, upstreamFailed: 0, clientAborted: 0 };
  private turn = 0;
  private control: Server<undefined> | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: FrontOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Opens the control socket and starts probing. The public ports open with the first table. */
  start(): void {
    rmSync(this.opts.socket, { force: true });
    const umask = process.umask(0o177);
    try {
      this.control = Bun.serve({ unix: this.opts.socket, fetch: (req) => this.onControl(req) });
    } finally {
      process.umask(umask);
    }
    chmodSync(this.opts.socket, 0o600);
    this.timer = setInterval(() => { void this.probeAll(); this.settle(); }, this.opts.probeMs ?? 1000);
  }

  /** Closes the control socket and the listeners; in-flight requests finish unless `force`. */
  async stop(force = false): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const { server } of this.listeners.values()) await server.stop(force);
    this.listeners.clear();
    await this.control?.stop(true);
    rmSync(this.opts.socket, { force: true });
  }

  /** Replaces the desired routes (what PUT /v1/table does); probes new upstreams at once. */
  async setTable(routes: RouteRequest[]): Promise<void> {
    this.desired = routes;
    const ports = new Set(routes.flatMap((r) => r.upstreams.map((u) => u.port)));
    for (const p of [...this.health.keys()]) if (!ports.has(p)) this.health.delete(p);
    this.replan();
    await this.probeAll();
  }

  state() {
    const up = (u: Upstream) => ({
      ...u, healthy: this.health.get(u.port)?.healthy ?? false,
      inflight: this.inflight.get(u.port) ?? 0, requests: this.requests.get(u.port) ?? 0,
    });
    return {
      pid: process.pid,
      routes: this.table.routes.map((r) => ({
        port: r.port, listen: r.listen, health: r.health, gated: r.gated,
        drainMs: r.drainMs, holdMs: r.holdMs, maxBody: r.maxBody,
        rotation: r.rotation.map((u) => u.port), upstreams: r.upstreams.map(up),
      })),
      draining: this.table.draining.map((d) => ({ ...d, inflight: this.inflight.get(d.upstream.port) ?? 0 })),
      drained: this.drained,
      held: this.held,
      rejected: this.rejected,
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
    }
    this.drained.splice(0, Math.max(0, this.drained.length - KEEP_DRAINED));
  }

  private syncListeners(): void {
    const want = new Map(this.table.routes.map((r) => [r.port, r]));
    for (const [port, l] of this.listeners) {
      const r = want.get(port);
      if (r && r.listen === l.listen) continue;
      void l.server.stop(false);   // in-flight requests on it finish
      this.listeners.delete(port);
    }
    for (const r of want.values()) {
      if (this.listeners.has(r.port)) continue;
      const port = r.port;
      const server = Bun.serve({
        port, hostname: r.listen, reusePort: true,
        // Bun would answer a bare 413 itself past this (measured: before the handler for a
        // Content-Length, mid-stream for a chunked body); the front enforces http.maxBody itself
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
        idleTimeout: 120,
        fetch: (req, srv) => this.proxy(req, srv, port),
      });
      this.listeners.set(port, { server, listen: r.listen });
      this.opts.log.info("front: listening", { port, listen: r.listen });
    }
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

  private async proxy(req: Request, srv: Server<undefined>, port: number): Promise<Response> {
    const route = this.route(port);
    if (!route) return text(503, "no route on this port\n", { "retry-after": "1" });
    const length = Number(req.headers.get("content-length") ?? "0");
    if (length > route.maxBody) return this.tooLarge(route);
    const url = new URL(req.url);
    const headers = new Headers(req.headers);
    for (const h of HOP) headers.delete(h);
    const peer = srv.requestIP(req)?.address ?? "";
    const xff = req.headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", xff ? `${xff}, ${peer}` : peer);
    headers.set("x-forwarded-proto", "http");
    headers.set("x-forwarded-host", req.headers.get("host") ?? "");
    const bodyless = req.body === null;
    const body = bodyless ? null : limit(req.body!, route.maxBody);
    let failed: number | null = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const up = await this.pick(port, failed);
      if (!up) {
        this.rejected.holdTimeout++;
        return text(503, "no instance is ready\n", { "retry-after": "1" });
      }
      this.count(up.port, +1);
      this.requests.set(up.port, (this.requests.get(up.port) ?? 0) + 1);
      let res: Response;
      try {
        res = await fetch(`http://127.0.0.1:${up.port}${url.pathname}${url.search}`, {
          method: req.method, headers, body, signal: req.signal, redirect: "manual",
          decompress: false, duplex: "half",
        } as RequestInit);
      } catch (e) {
        this.count(up.port, -1);
        if (req.signal.aborted) { this.rejected.clientAborted++; return text(499, "client closed the request\n"); }
        if (body && (body as { tooLarge?: boolean }).tooLarge) return this.tooLarge(route);
        // A refused connection sent nothing: a request without a body may go to another instance once.
        if (bodyless && attempt === 0 && refused(e)) { failed = up.port; continue; }
        this.rejected.upstreamFailed++;
        this.opts.log.warn("front: upstream failed", { port, upstream: up.id, error: String(e) });
        return text(502, "the instance did not answer\n");
      }
      const out = new Headers(res.headers);
      for (const h of HOP) out.delete(h);
      const init = { status: res.status, statusText: res.statusText, headers: out };
      const length = Number(res.headers.get("content-length") ?? NaN);
      if (!res.body) { this.count(up.port, -1); return new Response(null, init); }
      // A small body of known length is read whole (measured: several times the requests/s of a
      // pass-through stream); anything else, chunked or large, streams through unbuffered.
      if (length <= SMALL_BODY) {
        try { return new Response(await res.arrayBuffer(), init); }
        catch (e) { this.rejected.upstreamFailed++; return text(502, "the instance did not finish its answer\n"); }
        finally { this.count(up.port, -1); }
      }
      return new Response(this.track(res.body, up.port), init);
    }
    return text(502, "the instance did not answer\n");
  }

  private tooLarge(route: Route): Response {
    this.rejected.tooLarge++;
    return text(413, `request body over ${route.maxBody} bytes (http.maxBody)\n`, { connection: "close" });
  }

  private count(port: number, delta: number): void {
    const n = (this.inflight.get(port) ?? 0) + delta;
    if (n <= 0) this.inflight.delete(port); else this.inflight.set(port, n);
    if (n <= 0 && delta < 0) this.settle();
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
        const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000), redirect: "manual" });
        await res.arrayBuffer().catch(() => {});
        ok = res.status >= 200 && res.status < 300;
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

  private async onControl(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    if (path === "/v1/state" && req.method === "GET") return Response.json(this.state());
    if (path === "/v1/table" && req.method === "PUT") {
      let raw: unknown;
      try { raw = await req.json(); } catch { return Response.json({ error: "the body is not JSON" }, { status: 400 }); }
      const parsed = parseTable(raw);
      if (!parsed.ok) return Response.json({ error: parsed.error }, { status: 400 });
      try {
        await this.setTable(parsed.routes);
      } catch (e) {
        return Response.json({ error: `front: cannot apply the table: ${e instanceof Error ? e.message : String(e)}` }, { status: 409 });
      }
      return Response.json(this.state());
    }
    return Response.json({ error: `no such endpoint: ${req.method} ${path} (GET /v1/state, PUT /v1/table)` }, { status: 404 });
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
