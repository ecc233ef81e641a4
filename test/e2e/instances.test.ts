// Process instances and ports on the compiled binary: every copy has its own log file, and a
// PORT set in the manifest's roles.<role>.env is a fixed port (stop-then-start, never two copies).
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BUN, get, makeKit, role, type Kit } from "./kit.ts";

const kits: Kit[] = [];
afterAll(async () => { for (const k of kits) await k.stop(); });
const proc = (s: any, name: string) => s.processes.find((p: any) => p.name === name);

describe("instances", () => {
  test("`agent logs 'web#1'` prints that copy's output, and `agent logs web` only the first copy's", async () => {
    const k = await makeKit("instances", role().replace("    stop: { timeout: 3s }", "    stop: { timeout: 3s }\n    instances: 2"));
    kits.push(k);
    await k.release({ VERSION: "v1\n" }, "v1");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    const s = k.status();
    const [p0, p1] = [proc(s, "web"), proc(s, "web#1")];
    expect(p0).toMatchObject({ state: "running", healthy: true });
    expect(p1).toMatchObject({ state: "running", healthy: true });
    expect(existsSync(join(k.state, "logs", "web#1.log"))).toBe(true);

    const ports = (await k.agent(["status", "--json"])).stdout;
    const state = JSON.parse(await Bun.file(join(k.state, "state.json")).text());
    const portOf = (name: string) => state.processes.find((p: any) => p.name === name).port as number;
    expect(portOf("web")).not.toBe(portOf("web#1"));
    expect(ports).toContain("web#1");

    const one = await k.agent(["logs", "web#1"]);
    expect(one.stderr).toBe("");
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(`app listening on ${portOf("web#1")}`);
    expect(one.stdout).not.toContain(`app listening on ${portOf("web")}`);
    const zero = await k.agent(["logs", "web"]);
    expect(zero.stdout).toContain(`app listening on ${portOf("web")}`);
    expect(zero.stdout).not.toContain(`app listening on ${portOf("web#1")}`);
  });
});

describe("a PORT in the manifest's env", () => {
  test("is a fixed port: a new release restarts stop-then-start and serves on it, instead of a second copy failing to bind", async () => {
    const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = s.port;
    s.stop(true);
    // No health check: a copy that stays up 2 s is healthy; one that cannot bind the port dies at once.
    const k = await makeKit("fixed-port", `processes:\n  web:\n    run: ${BUN} app.ts\n    minUptime: 2s\n    stop: { timeout: 3s }\n`);
    kits.push(k);
    const env = `roles:\n  web:\n    env: { PORT: ${port} }\n`;
    await k.release({ VERSION: "v1\n" }, "v1", env);
    expect((await k.agent(["once"])).code).toBe(0);
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v1");
    const v1 = proc(k.status(), "web").pid;

    const second = await k.release({ VERSION: "v2\n" }, "v2", env);
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("EADDRINUSE");
    expect(r.code).toBe(0);
    const st = k.status();
    expect(st.current.commit).toBe(second);
    expect(st.badCommits).toEqual([]);
    expect(proc(st, "web")).toMatchObject({ commit: second, state: "running" });
    expect(proc(st, "web").pid).not.toBe(v1);
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v2");
    const logs = await k.agent(["logs", "web"]);
    expect(logs.stdout).not.toContain("EADDRINUSE");
  });
});
