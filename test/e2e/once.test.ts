// `agent once` on the compiled binary: a first deploy, a restart in place onto a new commit,
// an unhealthy release rolled back, a failing hook, a pinned commit that does not exist.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { alive, get, makeKit, role, type Kit } from "./kit.ts";

let k: Kit;
beforeAll(async () => { k = await makeKit("once"); });
afterAll(async () => { await k?.stop(); });

const proc = (s: any, name: string) => s.processes.find((p: any) => p.name === name);

describe("agent once", () => {
  let first: string, firstPid: number;

  test("an empty node fetches, prepares, switches and starts the role's processes", async () => {
    first = await k.release({ "VERSION": "v1\n" }, "v1");
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);
    expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${first}`);
    const s = k.status();
    expect(s.phase).toBe("converged");
    expect(s.current.commit).toBe(first);
    const web = proc(s, "web");
    expect(web).toMatchObject({ state: "running", healthy: true, commit: first });
    firstPid = web.pid;
    expect(alive(firstPid)).toBe(true);
    const rel = JSON.parse(readFileSync(join(k.state, "meta", first, "release.json"), "utf8"));
    expect(rel.state).toBe("good");
  });

  test("a second run with nothing new changes nothing", async () => {
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(proc(k.status(), "web").pid).toBe(firstPid);
  });

  let second: string;
  test("a new pinned commit restarts in place: new pid from the new release, old one gone", async () => {
    second = await k.release({ "VERSION": "v2\n" }, "v2");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    const s = k.status();
    expect(s.current.commit).toBe(second);
    const web = proc(s, "web");
    expect(web.commit).toBe(second);
    expect(web.pid).not.toBe(firstPid);
    expect(alive(firstPid)).toBe(false);
    const state = JSON.parse(readFileSync(join(k.state, "state.json"), "utf8"));
    const port = state.processes.find((p: any) => p.name === "web").port;
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v2");
  });

  test("an unhealthy release is rolled back, marked bad, and the old one keeps serving", async () => {
    const bad = await k.release({ "VERSION": "v3\n", "sick": "yes\n" }, "v3 (sick)");
    const before = proc(k.status(), "web").pid;
    const r = await k.agent(["once"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ProcessNotHealthy");
    const s = k.status();
    expect(s.current.commit).toBe(second);
    expect(s.badCommits).toContain(bad);
    expect(proc(s, "web")).toMatchObject({ commit: second, healthy: true, pid: before });
    expect(alive(before)).toBe(true);
    const again = await k.agent(["once"]);
    expect(again.code).toBe(1);
    expect(k.status().lastTick.reason).toBe("CommitMarkedBad");
    const hist = await k.agent(["history", "--json"]);
    expect(hist.stdout).toContain(bad);
    expect(hist.stdout).toContain("failed");
  });

  test("a pinned commit that does not exist fails clearly; the current release keeps running", async () => {
    await k.repo.commit({ "manifests/staging.yaml": `commit: ${"e".repeat(40)}\n` }, "pin a commit that does not exist");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("CommitNotFound");
    expect(k.status().current.commit).toBe(second);
    expect(proc(k.status(), "web").healthy).toBe(true);
  });

  test("a failing before_cutover hook: never switched, old processes untouched", async () => {
    const before = proc(k.status(), "web").pid;
    const hooked = await k.release({ "roles/web.yaml": role("hooks:\n  before_cutover: [\"false\"]\n"), "VERSION": "v4\n" }, "v4 with a failing hook");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("HookFailed");
    expect(k.status().current.commit).toBe(second);
    expect(k.status().badCommits).toContain(hooked);
    expect(alive(before)).toBe(true);
    expect(existsSync(join(k.state, "meta", hooked, "release.log"))).toBe(true);
  });
});
