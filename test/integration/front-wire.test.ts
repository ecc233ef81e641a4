// The socket data path on the wire, with raw client sockets against a real Bun upstream:
// refused heads (400, 431), pipelined requests on one connection, each request of a kept
// connection routed by the table of its moment, a chunked answer passed on with its framing,
// HTTP/1.0 answered and closed, and the pooled upstream connections reused.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "../../agent/core/log.ts";
import { Front } from "../../agent/front/server.ts";

const root = mkdtempSync(join(tmpdir(), "agent-front-wire-"));
const SOCK = join(root, "front.sock");
const front = new Front({ socket: SOCK, log: memoryLogger(), probeMs: 20, dataPath: "sockets" });

function instance(name: string) {
  const peers = new Set<string>();
  const server = Bun.serve({
    port: 0, hostname: "127.0.0.1",
    fetch(req, srv) {
      const path = new URL(req.url).pathname;
      if (path === "/up") return new Response("ok");
      peers.add(String(srv.requestIP(req)?.port));
      if (path === "/chunked") {
        // a pause between the chunks: Bun would send a body it has whole with a Content-Length
        return new Response(new ReadableStream({ async start(c) { c.enqueue(new TextEncoder().encode("ab")); await Bun.sleep(20); c.enqueue(new TextEncoder().encode("cde")); c.close(); } }));
      }
      return new Response(`${name} ${path}`);
    },
  });
  return { server, port: server.port!, peers };
}
const A = instance("A"), B = instance("B");
let PORT = 0;

async function control(method: string, path: string, body?: unknown) {
  const res = await fetch(`http://front${path}`, { unix: SOCK, method, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit);
  return { status: res.status, json: (await res.json()) as any };
}
async function put(ups: { id: string; port: number }[]) {
  const r = await control("PUT", "/v1/table", { routes: [{ port: PORT, listen: "127.0.0.1", health: "/up", drainMs: 5000, holdMs: 2000, upstreams: ups }] });
  expect(r.status).toBe(200);
  for (let i = 0; i < 2000; i++) {
    const s = (await control("GET", "/v1/state")).json;
    if (JSON.stringify(s.routes[0]?.rotation) === JSON.stringify(ups.map((u) => u.port))) return;
    await Bun.sleep(5);
  }
  throw new Error("the rotation never became " + ups.map((u) => u.id).join(","));
}

/** A raw client connection: what it received so far, and whether the front closed it. */
async function raw() {
  const c = { text: "", closed: false, sock: null as unknown as Awaited<ReturnType<typeof Bun.connect>> };
  c.sock = await Bun.connect({ hostname: "127.0.0.1", port: PORT, socket: { data(_s, d) { c.text += d.toString("latin1"); }, close() { c.closed = true; } } });
  return c;
}
async function until(what: string, ok: () => boolean) {
  for (let i = 0; i < 2000 && !ok(); i++) await Bun.sleep(5);
  if (!ok()) throw new Error(`never ${what}`);
}
const answers = (text: string) => text.split("HTTP/1.1 ").slice(1).map((a) => a.slice(0, 3));

beforeAll(async () => {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  PORT = s.port!;
  await s.stop(true);
  front.start();
  await put([{ id: "A", port: A.port }]);
});
afterAll(async () => {
  await front.stop(true);
  for (const i of [A, B]) await i.server.stop(true);
  rmSync(root, { recursive: true, force: true });
});

describe("front on sockets", () => {
  test.each([
    ["a malformed request line", "GARBAGE\r\n\r\n", "400"],
    ["no Host", "GET / HTTP/1.1\r\n\r\n", "400"],
    ["both Content-Length and chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "400"],
    ["a head over 64 KiB", `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"y".repeat(70_000)}\r\n\r\n`, "431"],
  ])("%s: %s is answered and closed", async (_name, request, status) => {
    const c = await raw();
    c.sock.write(request);
    await until("closed", () => c.closed);
    expect(answers(c.text)).toEqual([status]);
    expect(c.text).toContain("Connection: close");
  });

  test("pipelined requests on one connection are answered in order", async () => {
    const c = await raw();
    c.sock.write("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\n\r\n");
    await until("three answers", () => c.text.includes("A /three"));
    expect(c.text.indexOf("A /one")).toBeLessThan(c.text.indexOf("A /two"));
    expect(c.text.indexOf("A /two")).toBeLessThan(c.text.indexOf("A /three"));
    expect(c.closed).toBe(false);
    c.sock.end();
  });

  test("each request on a kept connection goes where the table says at that moment", async () => {
    const c = await raw();
    c.sock.write("GET /before HTTP/1.1\r\nHost: x\r\n\r\n");
    await until("the first answer", () => c.text.includes("A /before"));
    await put([{ id: "B", port: B.port }]);
    c.sock.write("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    await until("the second answer", () => c.text.includes("/after"));
    expect(c.text).toContain("B /after");
    c.sock.end();
    await put([{ id: "A", port: A.port }]);
  });

  test("a chunked answer keeps its framing; the next answer on the connection follows it", async () => {
    const c = await raw();
    c.sock.write("GET /chunked HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    await until("both answers", () => c.text.includes("A /next"));
    expect(c.text).toMatch(/transfer-encoding: chunked/i);
    expect(c.text).toContain("\r\n0\r\n\r\nHTTP/1.1 200");
  });

  test("an HTTP/1.0 request is answered, then the connection is closed", async () => {
    const c = await raw();
    c.sock.write("GET /old HTTP/1.0\r\nHost: x\r\n\r\n");
    await until("closed", () => c.closed);
    expect(c.text).toContain("A /old");
    expect(c.text).toContain("Connection: close");
  });

  test("the front keeps its connections to an instance: 20 requests from new clients use fewer", async () => {
    A.peers.clear();
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`http://127.0.0.1:${PORT}/pooled`, { keepalive: false } as RequestInit);
      expect(await r.text()).toBe("A /pooled");
    }
    expect(A.peers.size).toBeLessThan(5);
  });
});
