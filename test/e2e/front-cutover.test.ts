// Cutovers through the front beyond the plain overlap: a singleton (overlap: false) whose
// requests are held while it restarts, and the first deploy onto the front of a node whose
// running release still listens on http.port itself.
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, get, makeKit, type Kit, freePort, httpLoad, stateJson } from "./kit.ts";

const kits: Kit[] = [];
afterAll(async () => { for (const k of kits) await k.stop(); });


const state = stateJson;


describe("front cutovers", () => {
  test("a singleton (overlap: false): the front holds requests while the old one drains and the new one starts; 0 failed", async () => {
    const port = freePort();
    const k = await makeKit("front-single", `
processes:
  web:
    run: ${BUN} app.ts
    overlap: false
    http: { port: ${port}, listen: 127.0.0.1, health: /up, drain: 2s, hold: 10s }
    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 5s }
    stop: { timeout: 3s }
`);
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    expect((await k.agent(["once"])).code).toBe(0);
    const l = httpLoad(`http://127.0.0.1:${port}/`, 3);
    for (const v of ["v2", "v3"]) {
      await k.release({ VERSION: `${v}\n` }, v);
      const r = await k.agent(["once"]);
      expect(r.code).toBe(0);
      expect(state(k).processes.map((p: any) => p.name)).toEqual(["web"]);
    }
    const c = await l.done();
    expect(c.errors.slice(0, 5)).toEqual([]);
    expect(c.failed).toBe(0);
    expect([...c.bodies]).toContain("v3");
  }, 120_000);

  test("the agent SIGKILLed during a cutover: the front keeps serving the old release, and the next agent finishes the switch through the front; 0 failed", async () => {
    const port = freePort();
    const k = await makeKit("front-agentkill", `processes:\n  web:\n    run: ${BUN} app.ts\n    http: { port: ${port}, listen: 127.0.0.1, health: /up, drain: 2s }\n    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 5s }\n    stop: { timeout: 3s }\n`);
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    expect((await k.agent(["once"])).code).toBe(0);
    const l = httpLoad(`http://127.0.0.1:${port}/`, 3);
    const v2 = await k.release({ VERSION: "v2\n" }, "v2");
    process.env.AGENT_TEST_DIE_AFTER_SPAWN = "web";
    let killed;
    try { killed = await k.agent(["once"]); } finally { delete process.env.AGENT_TEST_DIE_AFTER_SPAWN; }
    expect(killed.code).not.toBe(0);
    expect(state(k).deploying?.commit).toBe(v2);
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v1");     // the front still serves the old release
    const next = await k.agent(["once"]);
    expect(next.code).toBe(0);
    expect(state(k).deploying).toBeNull();
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v2");
    const c = await l.done();
    expect(c.errors.slice(0, 5)).toEqual([]);
    expect(c.failed).toBe(0);
  }, 120_000);

  test("the first deploy onto the front: the running release listens on http.port itself; it is stopped, then the front binds the port and serves the new release", async () => {
    const port = freePort();
    const plain = `processes:\n  web:\n    run: ${BUN} app.ts\n    env: { PORT: "${port}" }\n    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 5s }\n    stop: { timeout: 3s }\n`;
    const k = await makeKit("front-first", plain);
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    expect((await k.agent(["once"])).code).toBe(0);
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v1");
    expect(state(k).front ?? null).toBeNull();
    await k.repo.commit({ "roles/web.yaml": `processes:\n  web:\n    run: ${BUN} app.ts\n    http: { port: ${port}, listen: 127.0.0.1, health: /up, drain: 2s }\n    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 5s }\n    stop: { timeout: 3s }\n` }, "web behind the front");
    await k.release({ VERSION: "v2\n" }, "v2");
    const r = await k.agent(["once"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("stopping it before the front binds the port");
    const st = state(k);
    expect(st.front.pid).toBeGreaterThan(0);
    expect(st.processes[0].port).not.toBe(port);
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v2");
  }, 120_000);
});
