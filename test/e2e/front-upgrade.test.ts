// Upgrading the front with the agent: a front left running by another agent version (here: the
// agent run from source, version "0.1.0-dev", against the compiled binary's) is replaced by a
// handover when the new agent adopts it; under keep-alive load, no request fails.
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AGENT, BUN, ROOT, alive, get, makeKit, until, type Kit, freePort, stateJson } from "./kit.ts";

const kits: Kit[] = [];
afterAll(async () => { for (const k of kits) await k.stop(); });

const state = stateJson;
const frontState = async (k: Kit) =>
  (await fetch("http://front/v1/state", { unix: join(k.state, "front.sock") } as RequestInit)).json() as Promise<{ pid: number; version: string }>;

test("a front of another agent version is handed over to one from the new binary; 0 failed requests under load", async () => {
  const port = freePort();
  const k = await makeKit("front-upgrade", `
processes:
  web:
    run: ${BUN} app.ts
    http: { port: ${port}, listen: 127.0.0.1, health: /up, drain: 2s }
    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 5s }
`);
  kits.push(k);
  await k.release({ VERSION: "v1\n" }, "v1");
  const fromSource = await k.agent(["once"], { argv: [process.execPath, join(ROOT, "agent/main.ts")] });
  expect(fromSource.stderr).not.toContain("error");
  expect(fromSource.code).toBe(0);
  const old = await frontState(k);
  expect(old.version).toBe("0.1.0-dev");
  expect(state(k).front.pid).toBe(old.pid);
  const built = (await Bun.$`${AGENT} version`.text()).trim();
  expect(built).not.toContain("0.1.0-dev");

  let stop = false, ok = 0, failed = 0;
  const errors: string[] = [];
  const loops = Array.from({ length: 4 }, async (_, i) => {
    while (!stop) {
      try {
        // two keep-alive clients, two that open a new connection per request
        const r = await fetch(`http://127.0.0.1:${port}/`, i < 2 ? {} : { headers: { connection: "close" } });
        const body = await r.text();
        if (r.status === 200 && body.includes("v1")) ok++; else { failed++; errors.push(`${r.status} ${body.slice(0, 60)}`); }
      } catch (e) { failed++; errors.push(String(e)); }
    }
  });
  await Bun.sleep(300);
  const r = await k.agent(["once"]);
  expect(r.code).toBe(0);
  expect(r.stdout + r.stderr).toContain("upgraded the front");
  const now = await frontState(k);
  expect(now.pid).not.toBe(old.pid);
  expect(built).toContain(now.version);
  expect(state(k).front.pid).toBe(now.pid);
  await until("the old front exits after the handover", () => !alive(old.pid) || null, 15_000);
  await Bun.sleep(300);
  stop = true;
  await Promise.all(loops);
  expect(errors.slice(0, 5)).toEqual([]);
  expect(failed).toBe(0);
  expect(ok).toBeGreaterThan(0);
  expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v1");
}, 120_000);
