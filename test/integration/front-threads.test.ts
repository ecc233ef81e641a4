// The front's runtime helper threads run at nice 19 and its request loop at 0, on a real
// `agent front` (run from source) after it has served requests, so that the compiler threads the
// load starts are lowered too. Also guards the thread names: if the runtime renames its compiler
// threads, the lowering finds nothing and this test says so.
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { HELPER_THREADS } from "../../agent/front/threads.ts";
import { readStat, threadsOf } from "../../agent/host/proc.ts";
import { freePort, until } from "../fixtures/supervisor-kit.ts";

const repo = resolve(import.meta.dir, "../..");
const bun = join(repo, "node_modules/.bin/bun");
const root = mkdtempSync(join(tmpdir(), "agent-front-threads-"));
const procs: ReturnType<typeof Bun.spawn>[] = [];
// idleTimeout 0: the app never closes an idle connection itself, so the front must close its own to exit
const app = Bun.serve({ port: 0, hostname: "127.0.0.1", idleTimeout: 0, fetch: () => new Response("ok") });

afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await app.stop(true);
  rmSync(root, { recursive: true, force: true });
});

/** Each thread of `pid`: its name and nice value. */
const threads = (pid: number) =>
  threadsOf(pid).flatMap((t) => { const s = readStat(t.tid); return s ? [{ ...t, nice: s.nice }] : []; });
const isHelper = (name: string) => HELPER_THREADS.some((h) => name.startsWith(h));

async function servedFront(name: string, env: Record<string, string>) {
  const dir = join(root, name);
  const sock = join(dir, "front.sock");
  const p = Bun.spawn([bun, "agent/main.ts", "front", "--state-dir", dir, "--probe", "50"], {
    cwd: repo, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env },
  });
  procs.push(p);
  const control = async (method: string, path: string, body?: unknown) =>
    (await (await fetch(`http://front${path}`, { unix: sock, method, body: body === undefined ? undefined : JSON.stringify(body) } as RequestInit)).json()) as any;
  const state = () => control("GET", "/v1/state").catch(() => null);   // null until the socket answers
  await until(async () => existsSync(sock) && (await state())?.pid === p.pid, "the front's control socket");
  const port = await freePort();
  await control("PUT", "/v1/table", { routes: [{ port, listen: "127.0.0.1", health: "/up", upstreams: [{ id: "app", port: app.port }] }] });
  await until(async () => (await state())?.routes[0]?.rotation.length === 1, "the app in rotation");
  let ok = 0;
  for (let i = 0; i < 40; i++) {   // 2,000 requests, 50 at a time: enough for the compiler to start its threads
    const rs = await Promise.all(Array.from({ length: 50 }, () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text())));
    ok += rs.filter((t) => t === "ok").length;
  }
  expect(ok).toBe(2000);
  return p;
}

test("after 2,000 requests, every compiler and allocator thread of the front is at nice 19; the request loop and the collector stay at 0; SIGTERM ends it with its instance connections open", async () => {
  const p = await servedFront("lowered", {});
  await until(() => {
    const hs = threads(p.pid).filter((t) => isHelper(t.name));
    return hs.some((t) => t.name.startsWith("JITWorker")) && hs.every((t) => t.nice === 19);
  }, "every helper thread at nice 19");
  const all = threads(p.pid);
  expect(all.find((t) => t.tid === p.pid)?.nice).toBe(0);
  const others = all.filter((t) => t.tid !== p.pid && !isHelper(t.name));
  expect(others.length).toBeGreaterThan(0);
  expect(others.filter((t) => t.nice !== 0)).toEqual([]);
  p.kill("SIGTERM");
  expect(await p.exited).toBe(0);
  const log = await new Response(p.stdout as ReadableStream).text() + await new Response(p.stderr as ReadableStream).text();
  expect(log).toContain("helper threads run at nice 19");
}, 60_000);

test("AGENT_FRONT_NICE=off leaves every thread at 0", async () => {
  const p = await servedFront("off", { AGENT_FRONT_NICE: "off" });
  await Bun.sleep(1500);   // past the front's 1 s check, had it run
  const all = threads(p.pid);
  expect(all.some((t) => t.name.startsWith("JITWorker"))).toBe(true);
  expect(all.filter((t) => t.nice !== 0)).toEqual([]);
}, 60_000);
