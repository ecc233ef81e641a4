// The front wired into the agent, on the compiled binary: a role with an `http:` process gets
// `agent front` started (as the agent's own child, recorded in state.json), its instances listen
// on loopback ports ($PORT), and cutovers under keep-alive load lose no request.
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AGENT, BUN, alive, get, makeKit, until, type Kit, freePort, httpLoad, stateJson } from "./kit.ts";

const kits: Kit[] = [];
afterAll(async () => { for (const k of kits) await k.stop(); });


const state = stateJson;

const fronted = (port: number, extra = "") => `
processes:
  web:
    run: ${BUN} app.ts
    http: { port: ${port}, listen: 127.0.0.1, health: /up, drain: 2s, hold: 2s }
    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 5s }
    stop: { timeout: 3s }
${extra}`;


describe("front", () => {
  test("an http: process is fronted: the front holds http.port, the instance listens on its own loopback $PORT; 3 cutovers under keep-alive load fail 0 requests", async () => {
    const port = freePort();
    const k = await makeKit("front", fronted(port));
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    const first = await k.agent(["once"]);
    expect(first.code).toBe(0);
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v1");
    const s1 = state(k);
    expect(s1.front?.pid).toBeGreaterThan(0);
    expect(alive(s1.front.pid)).toBe(true);
    expect(s1.processes.map((p: any) => p.name)).toEqual(["web"]);     // the front is not a role process
    expect(s1.processes[0].port).not.toBe(port);
    expect((await get(`http://127.0.0.1:${s1.processes[0].port}/`)).text).toContain("v1");

    const l = httpLoad(`http://127.0.0.1:${port}/`);
    const seen: number[] = [s1.processes[0].port];
    for (const v of ["v2", "v3", "v4"]) {
      await k.release({ VERSION: `${v}\n` }, v);
      const r = await k.agent(["once"]);
      expect(r.code).toBe(0);
      const st = state(k);
      expect(st.front.pid).toBe(s1.front.pid);                       // the same front across cutovers and agents
      expect(seen).not.toContain(st.processes[0].port);              // a fresh loopback port per new instance
      seen.push(st.processes[0].port);
      expect((await get(`http://127.0.0.1:${port}/`)).text).toContain(v);
    }
    const c = await l.done();
    expect(c.errors.slice(0, 5)).toEqual([]);
    expect(c.failed).toBe(0);
    expect(c.ok).toBeGreaterThan(0);
    expect([...c.bodies]).toContain("v4");
  }, 120_000);

  test("an application that ignores $PORT never gets ready behind the front: rolled back, the message says it must listen on $PORT, the old release keeps serving", async () => {
    const port = freePort();
    const k = await makeKit("front-noport", fronted(port).replace("    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 5s }\n", "    health: { command: \"true\", interval: 200ms, deadline: 3s }\n"));
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    expect((await k.agent(["once"])).code).toBe(0);
    const other = freePort();
    const deaf = `Bun.serve({ hostname: "127.0.0.1", port: ${other}, fetch: () => new Response("deaf") });\n`;
    await k.release({ "app.ts": deaf, VERSION: "v2\n" }, "v2 ignores PORT");
    const l = httpLoad(`http://127.0.0.1:${port}/`, 2);
    const r = await k.agent(["once"]);
    const c = await l.done();
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain("$PORT");
    expect(c.failed).toBe(0);
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v1");
  }, 120_000);

  test("two processes on one http.port: a clear error naming the process and field, nothing deployed", async () => {
    const port = freePort();
    const k = await makeKit("front-twice", fronted(port, `  api:\n    run: ${BUN} app.ts\n    http: { port: ${port} }\n`));
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("api");
    expect(r.stderr).toContain("http.port");
  }, 60_000);

  test("a port the front cannot bind (another program holds it): a clear error, nothing switched, the old release keeps serving", async () => {
    const port = freePort();
    const k = await makeKit("front-taken", fronted(port));
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    expect((await k.agent(["once"])).code).toBe(0);
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      await k.repo.commit({ "roles/web.yaml": fronted(taken.port) }, "web moves to a taken port");
      await k.release({ VERSION: "v2\n" }, "v2");
      const r = await k.agent(["once"]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("the front refused the table");
      expect(r.stderr).toContain(String(taken.port));
      expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v1");
    } finally {
      taken.stop(true);
    }
  }, 60_000);

  test("the front SIGKILLed under a running agent: started again with the table, and says so", async () => {
    const port = freePort();
    const metricsPort = freePort();
    const k = await makeKit("front-kill", fronted(port), { metrics: `127.0.0.1:${metricsPort}` });
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    const log = join(k.dir, "daemon.log");
    const daemon = Bun.spawn([AGENT, "run"], { env: { ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1" }, stdout: Bun.file(log), stderr: Bun.file(log) });
    try {
      const before = await until("the front up", () => { try { const s = state(k); return s.front?.pid && s.processes.length ? s.front.pid as number : null; } catch { return null; } }, 30_000);
      for (let i = 0; i < 100; i++) { if ((await get(`http://127.0.0.1:${port}/`).catch(() => ({ text: "" }))).text.includes("v1")) break; await Bun.sleep(100); }
      process.kill(before, "SIGKILL");
      const after = await until("a new front", () => { const p = state(k).front?.pid; return p && p !== before && alive(p) ? p as number : null; }, 10_000);
      expect(after).not.toBe(before);
      let text = "";
      for (let i = 0; i < 50 && !text.includes("v1"); i++) { text = (await get(`http://127.0.0.1:${port}/`).catch(() => ({ text: "" }))).text; await Bun.sleep(50); }
      expect(text).toContain("v1");
      expect(readFileSync(log, "utf8")).toContain("the front exited; restarting it");
      // status and metrics show the front: its port, the upstream serving it, the restart
      let s: any = null;
      for (let i = 0; i < 50 && !(s?.front?.restarts >= 1 && s.front.ports.length); i++) { s = JSON.parse((await k.agent(["status", "--json"])).stdout || "null"); await Bun.sleep(200); }
      expect(s.front.pid).toBe(after);
      expect(s.front.restarts).toBeGreaterThanOrEqual(1);
      expect(s.front.ports[0]).toMatchObject({ port, gated: false });
      expect(s.front.ports[0].upstreams[0]).toMatchObject({ inRotation: true, id: expect.stringMatching(/^web#0@[0-9a-f]{7}$/) });
      const shown = (await k.agent(["status"])).stdout;
      expect(shown).toContain("FRONT");
      expect(shown).toContain(`127.0.0.1:${port}`);
      const metrics = (await get(`http://127.0.0.1:${metricsPort}/metrics`)).text;
      expect(metrics).toContain("agent_front_");
    } finally {
      daemon.kill("SIGTERM");
      await daemon.exited;
    }
  }, 60_000);
});
