// The front's WebSockets, TLS, operator counters and slow clients, against real Bun upstreams:
// echo through the front (text, binary, close codes); a switch while a socket is open; a drain
// that ends closing the socket with 1001; HTTPS with a self-signed certificate made by openssl
// and its renewal under load; /v1/metrics and the state's counters; a slow-header client closed.
import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "../../agent/core/log.ts";
import { Front } from "../../agent/front/server.ts";
import { freePort } from "../fixtures/supervisor-kit.ts";

const MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req";   // a TLS renewal turns it on; put back after
const migrateBefore = existsSync(MIGRATE_REQ) ? readFileSync(MIGRATE_REQ, "utf8") : null;
const root = mkdtempSync(join(tmpdir(), "agent-front-ops-"));
const SOCK = join(root, "front.sock");
const front = new Front({ socket: SOCK, log: memoryLogger(), probeMs: 20 });
front.start();

/** An instance: /up, its name on /, X-Forwarded-Proto on /proto, and a WebSocket on /ws. */
function instance(name: string) {
  const closes: { code: number; reason: string }[] = [];
  const server = Bun.serve<{ n: number }>({
    port: 0, hostname: "127.0.0.1",
    fetch(req, srv) {
      const path = new URL(req.url).pathname;
      if (path === "/up") return new Response("ok");
      if (path === "/proto") return new Response(req.headers.get("x-forwarded-proto") ?? "");
      if (path === "/ws") return srv.upgrade(req, { data: { n: 0 } }) ? undefined : new Response("no", { status: 400 });
      return new Response(name);
    },
    websocket: {
      open(ws) { ws.send(`hello from ${name}`); },
      message(ws, msg) {
        if (msg === "bye") return ws.close(4001, `bye from ${name}`);
        if (typeof msg === "string") ws.send(`${name}: ${msg}`);
        else ws.send(new Uint8Array([...msg].reverse()));
      },
      close(_ws, code, reason) { closes.push({ code, reason }); },
    },
  });
  return { name, server, port: server.port!, closes };
}

async function control(method: string, path: string, body?: unknown) {
  const res = await fetch(`http://front${path}`, { unix: SOCK, method, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);
  const text = await res.text();
  return { status: res.status, text, json: (() => { try { return JSON.parse(text); } catch { return null; } })() as any };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** A client WebSocket that queues what it receives. */
async function client(url: string) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const got: (string | number[])[] = [];
  const closed: { code: number; reason: string }[] = [];
  ws.onmessage = (e) => got.push(typeof e.data === "string" ? e.data : [...new Uint8Array(e.data as ArrayBuffer)]);
  ws.onclose = (e) => closed.push({ code: e.code, reason: e.reason });
  await new Promise<void>((resolve, reject) => { ws.onopen = () => resolve(); ws.onerror = () => reject(new Error(`cannot open ${url}`)); });
  return {
    ws, got, closed,
    async next(): Promise<string | number[]> { await until("a message", () => got.length > 0); return got.shift()!; },
  };
}

const A = instance("A"), B = instance("B");
const route = (port: number, ups: { id: string; port: number }[], extra: Record<string, unknown> = {}) =>
  ({ port, listen: "127.0.0.1", health: "/up", drainMs: 60_000, holdMs: 2000, ...extra, upstreams: ups });

afterAll(async () => {
  await front.stop(true);
  for (const i of [A, B]) await i.server.stop(true);
  try { if (migrateBefore !== null) writeFileSync(MIGRATE_REQ, migrateBefore); } catch { /* not writable */ }
  rmSync(root, { recursive: true, force: true });
});

describe("front websockets", () => {
  test("echo through the front: text, binary and close codes both ways", async () => {
    const port = await freePort();
    expect((await control("PUT", "/v1/table", { routes: [route(port, [{ id: "A", port: A.port }])] })).status).toBe(200);
    await until("A in rotation", () => front.state().routes[0]?.rotation.length === 1);
    const c = await client(`ws://127.0.0.1:${port}/ws`);
    expect(await c.next()).toBe("hello from A");
    c.ws.send("ping");
    expect(await c.next()).toBe("A: ping");
    c.ws.send(new Uint8Array([1, 2, 3]));
    expect(await c.next()).toEqual([3, 2, 1]);
    expect(front.state().routes[0]!.websockets).toBe(1);
    expect(front.state().routes[0]!.upstreams[0]!.websockets).toBe(1);
    c.ws.send("bye");   // the instance closes with 4001: the client sees 4001 and its reason
    await until("the close", () => c.closed.length > 0);
    expect(c.closed[0]).toEqual({ code: 4001, reason: "bye from A" });
    const d = await client(`ws://127.0.0.1:${port}/ws`);
    await d.next();
    const before = A.closes.length;
    d.ws.close(4000, "client leaves");   // and the client's close code reaches the instance
    await until("the instance sees the close", () => A.closes.length > before);
    expect(A.closes.at(-1)).toEqual({ code: 4000, reason: "client leaves" });
    await until("no socket left", () => front.state().routes[0]!.websockets === 0);
  });

  test("a switch while a socket is open: it stays on the old instance, new ones go to the new; the drain's end closes it with 1001", async () => {
    const port = await freePort();
    await control("PUT", "/v1/table", { routes: [route(port, [{ id: "A", port: A.port }], { drainMs: 1500 })] });
    await until("A in rotation", () => front.state().routes[0]?.rotation[0] === A.port);
    const old = await client(`ws://127.0.0.1:${port}/ws`);
    expect(await old.next()).toBe("hello from A");
    await control("PUT", "/v1/table", { routes: [route(port, [{ id: "B", port: B.port }], { drainMs: 1500 })] });
    await until("B in rotation", () => front.state().routes[0]?.rotation[0] === B.port);
    old.ws.send("still there?");
    expect(await old.next()).toBe("A: still there?");
    const fresh = await client(`ws://127.0.0.1:${port}/ws`);
    expect(await fresh.next()).toBe("hello from B");
    // A drains with a socket open: the socket counts as in flight, so the drain runs to its deadline
    expect(front.state().draining.some((d: { upstream: { port: number }; websockets: number }) => d.upstream.port === A.port && d.websockets === 1)).toBe(true);
    await until("the old socket closed", () => old.closed.length > 0);
    expect(old.closed[0]!.code).toBe(1001);
    expect(front.state().drained.some((d) => d.upstream.port === A.port && d.reason === "deadline")).toBe(true);
    fresh.ws.send("and you?");
    expect(await fresh.next()).toBe("B: and you?");
    expect(fresh.closed).toEqual([]);
    fresh.ws.close();
  });
});

describe("front operators", () => {
  test("GET /v1/state has the version, connections, rate and websockets; GET /v1/metrics is Prometheus text", async () => {
    const port = await freePort();
    await control("PUT", "/v1/table", { routes: [route(port, [{ id: "A", port: A.port }], { drainMs: 0 })] });
    await until("A in rotation", () => front.state().routes[0]?.rotation[0] === A.port);
    for (let i = 0; i < 20; i++) expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("A");
    const s = (await control("GET", "/v1/state")).json;
    expect(typeof s.version).toBe("string");
    expect(typeof s.connections).toBe("number");
    expect(s.routes[0].rate).toBeGreaterThan(0);
    expect(s.routes[0].websockets).toBe(0);
    const m = await control("GET", "/v1/metrics");
    expect(m.status).toBe(200);
    expect(m.text).toContain(`agent_front_requests_total{port="${port}",code="200"} 20`);
    expect(m.text).toContain("# TYPE agent_front_upstream_seconds histogram");
    expect(m.text).toMatch(/agent_front_upstream_seconds_count \d+/);
    expect(m.text).toContain("# TYPE agent_front_connections gauge");
    expect(m.text).toContain('agent_front_drains_total{reason="deadline"}');   // the previous test's drain
    expect(m.text).toMatch(/agent_front_drain_seconds_count \d+/);
    expect(m.text).toContain("# TYPE agent_front_rejected_total counter");
  });

  test("a client that sends its request headers slowly is closed", async () => {
    const port = await freePort();
    await control("PUT", "/v1/table", { routes: [route(port, [{ id: "A", port: A.port }])] });
    await until("A in rotation", () => front.state().routes[0]?.rotation[0] === A.port);
    let closed = false;
    let answered = "";
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data(_s, d) { answered += String(d); }, close() { closed = true; } } });
    s.write("GET / HTTP/1.1\r\nHost: x\r\n");
    const trickle = setInterval(() => { if (!closed) s.write("X-Slow: y\r\n"); }, 500);
    try {
      await until("the slow client closed", () => closed, 40_000);
    } finally {
      clearInterval(trickle);
    }
    expect(answered).not.toContain("200 OK");
  }, 60_000);
});

const haveOpenssl = (() => { try { execFileSync("openssl", ["version"]); return true; } catch { return false; } })();

describe.skipIf(!haveOpenssl)("front TLS", () => {
  const cert = join(root, "cert.pem"), key = join(root, "key.pem");
  function makeCert(cn: string): void {
    // written beside, then renamed into place: a renewal tool replaces the files whole
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${cn}`,
      "-keyout", `${key}.new`, "-out", `${cert}.new`], { stdio: "ignore" });
    renameSync(`${key}.new`, key);
    renameSync(`${cert}.new`, cert);
  }
  /** The CN of the certificate the port serves (a new TLS connection each time). */
  function servedCN(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
        const cn = s.getPeerCertificate().subject?.CN;
        s.end();
        resolve(String(cn));
      });
      s.on("error", reject);
    });
  }

  test("HTTPS with X-Forwarded-Proto: https; a renewed certificate is served without a refused connection", async () => {
    makeCert("first");
    const port = await freePort();
    const put = await control("PUT", "/v1/table", { routes: [route(port, [{ id: "A", port: A.port }], { tls: { cert, key } })] });
    expect(put.status).toBe(200);
    await until("A in rotation", () => front.state().routes[0]?.rotation[0] === A.port);
    const get = (path: string) => fetch(`https://127.0.0.1:${port}${path}`, { tls: { rejectUnauthorized: false }, keepalive: false } as RequestInit);
    expect(await (await get("/proto")).text()).toBe("https");
    expect(await servedCN(port)).toBe("first");
    let ok = 0, failed = 0, running = true;
    const errors: string[] = [];
    const load = (async () => {
      while (running) {
        try {
          const r = await get("/");
          if (r.status === 200 && (await r.text()) === "A") ok++; else failed++;
        } catch (e) { failed++; errors.push(String(e)); }
      }
    })();
    await until("some load", () => ok > 20);
    await Bun.sleep(1100);   // a new mtime (whole seconds on some filesystems)
    makeCert("second");
    await until("the renewed certificate served", async () => (await servedCN(port)) === "second");
    const at = ok;
    await until("load after the renewal", () => ok > at + 20);
    running = false;
    await load;
    expect(errors).toEqual([]);
    expect(failed).toBe(0);
  }, 60_000);

  test("a route's tls must name both files", async () => {
    const r = await control("PUT", "/v1/table", { routes: [route(await freePort(), [], { tls: { cert } })] });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("routes[0].tls");
  });
});
