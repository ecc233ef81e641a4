// The front against real Bun HTTP upstreams: a table switch under load loses no request and lets
// the old instance's slow requests finish; 413, X-Forwarded-*, hold then 503, streaming both
// ways, a client's disconnect aborting the upstream request; the control socket and `agent front`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { memoryLogger } from "../../agent/core/log.ts";
import { Front } from "../../agent/front/server.ts";
import { freePort } from "../fixtures/supervisor-kit.ts";

const root = mkdtempSync(join(tmpdir(), "agent-front-"));
const SOCK = join(root, "front.sock");
const front = new Front({ socket: SOCK, log: memoryLogger(), probeMs: 20 });

type Gate = { promise: Promise<void>; open: () => void };
function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((r) => { open = r; });
  return { promise, open };
}

/** A role's instance: answers its name, /up, /slow (held until released), /hang, /echo, /stream. */
function instance(name: string) {
  const seen = { requests: 0, slow: 0, aborted: 0, hang: 0, headers: [] as Record<string, string>[] };
  let slowGate = gate();
  let streamGate = gate();
  let bodyGate = gate();
  const server = Bun.serve({
    port: 0, hostname: "127.0.0.1", idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/up") return new Response("ok");
      seen.requests++;
      if (path === "/slow") { seen.slow++; await slowGate.promise; return new Response(`slow ${name}`); }
      if (path === "/hang") {
        seen.hang++;
        req.signal.addEventListener("abort", () => seen.aborted++);
        await new Promise((r) => req.signal.addEventListener("abort", r));
        return new Response("never read");
      }
      if (path === "/headers") { seen.headers.push(Object.fromEntries(req.headers)); return new Response("ok"); }
      if (path === "/echo") {
        // answers the first chunk before the client sends the rest: only works if the front streams
        const reader = req.body!.getReader();
        let n = (await reader.read()).value?.byteLength ?? 0;
        bodyGate.open();
        for (;;) { const x = await reader.read(); if (x.done) break; n += x.value.byteLength; }
        return new Response(String(n));
      }
      if (path === "/stream") {
        return new Response(new ReadableStream({
          async start(c) { c.enqueue(new TextEncoder().encode("first;")); await streamGate.promise; c.enqueue(new TextEncoder().encode("last")); c.close(); },
        }));
      }
      return new Response(name);
    },
  });
  return {
    name, server, seen, port: server.port!,
    releaseSlow: () => { slowGate.open(); slowGate = gate(); },
    releaseStream: () => { streamGate.open(); streamGate = gate(); },
    bodyRead: () => bodyGate.promise,
  };
}

const A = instance("A"), B = instance("B"), C = instance("C");
let PORT = 0;

async function control(method: string, path: string, body?: unknown) {
  const res = await fetch(`http://front${path}`, { unix: SOCK, method, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);
  return { status: res.status, json: (await res.json()) as any };
}

async function put(upstreams: { name: string; port: number }[], over: Record<string, unknown> = {}) {
  const r = await control("PUT", "/v1/table", {
    routes: [{ port: PORT, listen: "127.0.0.1", health: "/up", drainMs: 60_000, holdMs: 10_000, maxBody: 1000, ...over, upstreams: upstreams.map((u) => ({ id: u.name, port: u.port })) }],
  });
  expect(r.status).toBe(200);
  return r.json;
}

/** Polls the front's state until `ok` holds (bounded by a count of polls, not asserted on time). */
async function until(ok: (s: any) => boolean, what: string) {
  for (let i = 0; i < 2000; i++) {
    const s = (await control("GET", "/v1/state")).json;
    if (ok(s)) return s;
    await Bun.sleep(5);
  }
  throw new Error(`front: never ${what}`);
}
const rotation = (s: any) => s.routes[0]?.rotation ?? [];
const url = (p: string) => `http://127.0.0.1:${PORT}${p}`;

beforeAll(async () => {
  PORT = await freePort();
  front.start();
});
afterAll(async () => {
  await front.stop(true);
  for (const i of [A, B, C]) await i.server.stop(true);
  rmSync(root, { recursive: true, force: true });
});

describe("front", () => {
  test("the control socket is mode 0600 and a bad table is refused naming its field", async () => {
    expect(statSync(SOCK).mode & 0o777).toBe(0o600);
    const bad = await control("PUT", "/v1/table", { routes: [{ port: 8080, upstreams: [{ id: "x", port: 70000 }] }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toContain("routes[0].upstreams[0]");
    expect((await control("GET", "/v1/nope")).status).toBe(404);
  });

  test("a table switch under 2,000 keep-alive requests fails none; the old instance's slow requests finish", async () => {
    await put([A]);
    await until((s) => rotation(s).includes(A.port), "put A in rotation");
    const slow = [1, 2, 3].map(() => fetch(url("/slow")).then(async (r) => [r.status, await r.text()] as const));
    await until((s) => s.routes[0].upstreams[0].inflight === 3, "counted 3 slow requests on A");

    let done = 0, failed = 0, switched = false, afterSwitch: string[] = [];
    const served = { A: 0, B: 0 } as Record<string, number>;
    const client = async () => {
      for (let i = 0; i < 500; i++) {
        const started = switched;
        try {
          const r = await fetch(url("/"));
          const body = await r.text();
          if (r.status !== 200) failed++; else served[body] = (served[body] ?? 0) + 1;
          if (started) afterSwitch.push(body);
        } catch { failed++; }
        done++;
      }
    };
    const load = Promise.all([client(), client(), client(), client()]);
    while (done < 400) await Bun.sleep(1);
    await put([B]);
    const s = await until((s) => rotation(s).length === 1 && rotation(s)[0] === B.port, "switched to B");
    switched = true;
    expect(s.draining.map((d: any) => d.upstream.port)).toEqual([A.port]);
    expect(s.draining[0].inflight).toBeGreaterThanOrEqual(3);   // the slow ones, and load requests still on A
    await load;

    expect(done).toBe(2000);
    expect(failed).toBe(0);
    expect(served.A).toBeGreaterThan(0);
    expect(served.B).toBeGreaterThan(0);
    expect(afterSwitch.length).toBeGreaterThan(0);
    expect(afterSwitch.filter((b) => b !== "B")).toEqual([]);   // the next request on a kept connection goes to B

    expect((await control("GET", "/v1/state")).json.draining.length).toBe(1);   // still held open by the slow ones
    A.releaseSlow();
    expect(await Promise.all(slow)).toEqual([[200, "slow A"], [200, "slow A"], [200, "slow A"]]);
    const end = await until((s) => s.draining.length === 0, "finished draining A");
    expect(end.drained.map((d: any) => [d.upstream.port, d.reason])).toEqual([[A.port, "idle"]]);
  });

  test("a request body over http.maxBody gets 413, with a Content-Length or chunked", async () => {
    await put([B]);
    const before = B.seen.requests;
    const r = await fetch(url("/echo"), { method: "POST", body: "x".repeat(1001) });
    expect(r.status).toBe(413);
    expect(await r.text()).toContain("http.maxBody");
    expect(B.seen.requests).toBe(before);   // the Content-Length one never reached the instance
    const chunks = new ReadableStream({ start(c) { for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(300)); c.close(); } });
    const chunked = await fetch(url("/headers"), { method: "POST", body: chunks, duplex: "half" } as RequestInit);
    const ok = await fetch(url("/echo"), { method: "POST", body: "x".repeat(1000) });
    expect([ok.status, await ok.text()]).toEqual([200, "1000"]);
    // /headers does not read the body, so it may answer before the limit is hit; /echo reads it
    expect([200, 413]).toContain(chunked.status);
    const chunks2 = new ReadableStream({ start(c) { for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(300)); c.close(); } });
    const chunked2 = await fetch(url("/echo"), { method: "POST", body: chunks2, duplex: "half" } as RequestInit);
    expect(chunked2.status).toBe(413);
  });

  test("X-Forwarded-For is appended to, -Proto and -Host are set", async () => {
    await put([B]);
    B.seen.headers.length = 0;
    expect((await fetch(url("/headers"), { headers: { host: "shop.example.com", "x-forwarded-for": "203.0.113.7" } })).status).toBe(200);
    expect((await fetch(url("/headers"))).status).toBe(200);
    const [h1, h2] = B.seen.headers;
    expect(h1!["x-forwarded-for"]).toBe("203.0.113.7, 127.0.0.1");
    expect(h1!["x-forwarded-host"]).toBe("shop.example.com");
    expect(h1!["x-forwarded-proto"]).toBe("http");
    expect(h2!["x-forwarded-for"]).toBe("127.0.0.1");
  });

  test("responses stream: the first chunk arrives before the instance sends the last", async () => {
    await put([B]);
    const r = await fetch(url("/stream"));
    const reader = r.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("first;");
    B.releaseStream();
    let rest = "";
    for (;;) { const x = await reader.read(); if (x.done) break; rest += new TextDecoder().decode(x.value); }
    expect(rest).toBe("last");
  });

  test("request bodies stream: the instance reads the first chunk before the client sends the rest", async () => {
    await put([B], { maxBody: 1_000_000 });
    const body = new ReadableStream({
      async start(c) { c.enqueue(new Uint8Array(100)); await B.bodyRead(); c.enqueue(new Uint8Array(200)); c.close(); },
    });
    const r = await fetch(url("/echo"), { method: "POST", body, duplex: "half" } as RequestInit);
    expect([r.status, await r.text()]).toEqual([200, "300"]);
  });

  test("with no instance ready, a request is held and served when one is; past http.hold it gets 503 with Retry-After", async () => {
    await put([], { holdMs: 60_000 });
    await until((s) => rotation(s).length === 0 && s.draining.length === 0, "emptied the rotation");
    const held = fetch(url("/")).then(async (r) => [r.status, await r.text()]);
    await until((s) => s.held === 1, "held the request");
    await put([C], { holdMs: 60_000 });
    expect(await held).toEqual([200, "C"]);

    await put([], { holdMs: 50 });
    const before = (await control("GET", "/v1/state")).json.rejected.holdTimeout;
    const r = await fetch(url("/"));
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("1");
    expect((await control("GET", "/v1/state")).json.rejected.holdTimeout).toBe(before + 1);
  });

  test("a client that disconnects mid-request aborts the upstream request", async () => {
    await put([C]);
    await until((s) => rotation(s).includes(C.port), "put C in rotation");
    const ac = new AbortController();
    const p = fetch(url("/hang"), { signal: ac.signal }).then(() => "answered", (e) => (e as Error).name);
    while (C.seen.hang === 0) await Bun.sleep(2);
    ac.abort();
    expect(await p).toBe("AbortError");
    const s = await until((s) => s.routes[0].upstreams[0].inflight === 0, "forgot the aborted request");
    expect(C.seen.aborted).toBe(1);
    expect(s.rejected.clientAborted).toBeGreaterThanOrEqual(1);
  });

  test("instances: N behind one port share the requests", async () => {
    await put([B, C]);
    await until((s) => rotation(s).length === 2, "put B and C in rotation");
    const bodies = await Promise.all(Array.from({ length: 40 }, () => fetch(url("/")).then((r) => r.text())));
    expect(bodies.filter((b) => b === "B").length).toBeGreaterThan(0);
    expect(bodies.filter((b) => b === "C").length).toBeGreaterThan(0);
  });
});

test("`agent front --state-dir DIR` opens DIR/front.sock (0600), answers GET /v1/state, stops on SIGTERM", async () => {
  const dir = mkdtempSync(join(tmpdir(), "agent-front-cli-"));
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "../../agent/main.ts"), "front", "--state-dir", dir],
    { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  try {
    const sock = join(dir, "front.sock");
    let s: any = null;
    for (let i = 0; i < 2000 && !s; i++) {
      s = await fetch("http://front/v1/state", { unix: sock } as RequestInit).then((r) => r.json(), () => null);
      if (!s) await Bun.sleep(5);
    }
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(s.pid).toBe(p.pid);
    expect(s.routes).toEqual([]);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(existsSync(sock)).toBe(false);
  } finally {
    p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a request without a body whose instance refuses the connection goes to another instance once", async () => {
  // probes every minute: the dead instance stays in rotation, as between two probes on a node
  const sock = join(root, "slow-probe.sock");
  const f = new Front({ socket: sock, log: memoryLogger(), probeMs: 60_000 });
  f.start();
  const live = instance("live"), dead = instance("dead");
  const port = await freePort();
  try {
    await f.setTable([{ port, listen: "127.0.0.1", health: "/up", drainMs: 1000, holdMs: 1000, maxBody: 1000,
      upstreams: [{ id: "live", port: live.port }, { id: "dead", port: dead.port }] }]);
    expect(f.state().routes[0]!.rotation.sort()).toEqual([live.port, dead.port].sort());
    await dead.server.stop(true);
    const answers = await Promise.all(Array.from({ length: 10 }, () => fetch(`http://127.0.0.1:${port}/`).then(async (r) => `${r.status} ${await r.text()}`)));
    expect(answers).toEqual(Array(10).fill("200 live"));
    expect(f.state().rejected.upstreamFailed).toBe(0);
  } finally {
    await f.stop(true);
    await live.server.stop(true);
  }
});
