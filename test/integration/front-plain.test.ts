// The front's plain-socket probe and control socket server (agent/front/plain.ts), on real sockets.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probe, serveControl } from "../../agent/front/plain.ts";

const app = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => {
  const p = new URL(req.url).pathname;
  if (p === "/ok") return new Response("ok");
  if (p === "/moved") return new Response(null, { status: 302, headers: { location: "/ok" } });
  return new Response("no", { status: 500 });
} });
const dir = mkdtempSync(join(tmpdir(), "front-plain-"));
afterAll(() => { app.stop(true); rmSync(dir, { recursive: true, force: true }); });

test("probe: a 2xx passes; a 5xx, a redirect (not followed) and a refused port fail", async () => {
  expect(await probe(app.port!, "/ok", 2000)).toBe(true);
  expect(await probe(app.port!, "/fail", 2000)).toBe(false);
  expect(await probe(app.port!, "/moved", 2000)).toBe(false);
  const free = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = free.port;
  free.stop(true);
  expect(await probe(port, "/ok", 2000)).toBe(false);
});

test("probe: an instance that accepts and never answers fails at the timeout", async () => {
  const mute = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try { expect(await probe(mute.port, "/ok", 200)).toBe(false); } finally { mute.stop(true); }
});

test("control socket: method, path (without the query) and body reach the handler, its status, type and body come back; chunked bodies are refused", async () => {
  const sock = join(dir, "c.sock");
  const seen: string[] = [];
  const srv = serveControl(sock, async (method, path, body) => {
    seen.push(`${method} ${path} ${body}`);
    return path === "/text" ? { status: 200, body: "a b", type: "text/plain" } : { status: 404, body: JSON.stringify({ error: "no" }) };
  });
  try {
    const put = await fetch("http://front/v1/table?x=1", { unix: sock, method: "PUT", body: JSON.stringify({ a: "é" }) } as RequestInit);
    expect(put.status).toBe(404);
    expect(await put.json()).toEqual({ error: "no" });
    const text = await fetch("http://front/text", { unix: sock } as RequestInit);
    expect(text.headers.get("content-type")).toBe("text/plain");
    expect(await text.text()).toBe("a b");
    expect(seen).toEqual(['PUT /v1/table {"a":"é"}', "GET /text "]);
    const chunked = await fetch("http://front/v1/table", { unix: sock, method: "PUT", body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("{}")); c.close(); } }) } as RequestInit);
    expect(chunked.status).toBe(411);
    expect(seen.length).toBe(2);
  } finally { srv.stop(true); }
});
