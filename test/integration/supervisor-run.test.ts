// The supervisor against real child processes: start, ensure, exits, crash loops, missing
// binaries, stop escalation to SIGKILL with grandchildren, health checks and liveness restarts.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { alive, childSpec, freePort, sandbox, supervisor, until, type Sandbox } from "../fixtures/supervisor-kit.ts";
import type { SupervisorEvent } from "../../agent/supervisor/types.ts";
import { groupMembers } from "../../agent/host/proc.ts";

let sb: Sandbox;
let sup: ReturnType<typeof supervisor> | undefined;
afterEach(async () => { await sup?.stopAll(); sup = undefined; sb?.cleanup(); });
const root = process.getuid?.() === 0;
const one = (name = "web") => sup!.status().find((p) => p.name === name)!;

describe("supervisor: running processes", () => {
  test("starts a process in its own group, logs to its file, records it; ensure is idempotent; ensure([]) stops it", async () => {
    sb = sandbox(); sup = supervisor(sb);
    const spec = childSpec(sb, "web", []);
    sup.ensure([spec]);
    const pid = (await until(() => one().state === "running" && one().pid, "web running"))!;
    expect(one()).toMatchObject({ commit: spec.commit, restarts: 0, healthy: true });
    expect(groupMembers(pid)).toContain(pid);                       // leader of its own group
    await until(() => existsSync(spec.logFile) && readFileSync(spec.logFile, "utf8").includes(`child ${pid} up`), "log line");
    expect(readFileSync(spec.logFile, "utf8")).toContain(`AGENT_COMMIT=${spec.commit}`);
    expect(sb.store().get().processes.map((r) => r.pid)).toEqual([pid]);
    sup.ensure([spec]); sup.ensure([spec]);
    expect(one().pid).toBe(pid);
    sup.ensure([]);
    await sup.settled();
    expect(alive(pid)).toBe(false);
    expect(sb.store().get().processes).toEqual([]);
  });

  test("ensure: a changed spec is stopped before its successor starts; a finished restart:never job is not re-run", async () => {
    sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
    const job = childSpec(sb, "job", ["--exit", "0"], { restart: "never" });
    const v1 = childSpec(sb, "web", []);
    sup.ensure([v1, job]);
    const pid1 = (await until(() => one().state === "running" && one().pid, "v1 running"))!;
    await until(() => one("job").state === "exited", "job done");
    const v2 = { ...v1, env: { ...v1.env, LOG_LEVEL: "debug" } };
    sup.ensure([v2, job]); sup.ensure([v2, job]);
    const pid2 = (await until(() => one().state === "running" && one().pid !== pid1 && one().pid, "v2 running"))!;
    const order = events.filter((e) => e.kind === "start" || e.kind === "exit").map((e) => `${e.kind}:${e.name}:${"pid" in e ? e.pid : ""}`);
    expect(order.indexOf(`exit:web:${pid1}`)).toBeLessThan(order.indexOf(`start:web:${pid2}`));
    expect(order.filter((x) => x.startsWith("start:web:"))).toHaveLength(2);   // the second ensure started nothing
    expect(order.filter((x) => x.startsWith("start:job:"))).toHaveLength(1);
  });

  test("a process that exits at once: on-failure leaves a clean exit alone, always restarts it", async () => {
    sb = sandbox(); sup = supervisor(sb);
    sup.ensure([childSpec(sb, "job", ["--exit", "0"], { restart: "on-failure" }), childSpec(sb, "loop", ["--exit", "0"])]);
    await until(() => one("job").state === "exited", "job exited");
    expect(one("job")).toMatchObject({ restarts: 0, pid: null, lastExit: { code: 0, signal: null } });
    await until(() => one("loop").restarts >= 3, "loop restarted three times");
  });

  test("a crash loop backs off to the cap, says ProcessCrashLooping, and recovers once fixed", async () => {
    sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
    const fix = `${sb.dir}/fixed`;
    const port = await freePort();
    sup.ensure([childSpec(sb, "web", ["--exit", "3", "--unless-file", fix, "--http"], {
      port, health: { http: "/up", interval: 50, timeout: 500, pass: 1, fail: 2, window: 3, deadline: 5000 },
    })]);
    await until(() => one().reason === "ProcessCrashLooping" && one().message?.includes("next start in 400ms"), "backoff at the 400ms cap");
    expect(one()).toMatchObject({ healthy: false, lastExit: { code: 3 } });
    expect(["backoff", "starting"]).toContain(one().state);
    // reaching the 400ms cap took four quick exits in a row: 50, 100, 200, 400
    expect(events.filter((e) => e.kind === "exit").length).toBeGreaterThanOrEqual(4);
    writeFileSync(fix, "");
    await until(() => one().state === "running" && one().healthy, "running and healthy after the fix");
    expect(one().reason).toBeUndefined();
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(await res.text()).toContain(`hello from ${one().pid}`);
  });

  test("a missing binary is a clear ProcessStartFailed; retries continue and other processes run", async () => {
    sb = sandbox(); sup = supervisor(sb);
    sup.ensure([
      childSpec(sb, "ghost", [], { argv: [`${sb.dir}/no-such-binary`, "--flag"] }),
      childSpec(sb, "web", []),
    ]);
    await until(() => one("ghost").restarts >= 2, "ghost retried");
    expect(one("ghost")).toMatchObject({ state: "failed", pid: null, reason: "ProcessStartFailed", healthy: false });
    expect(one("ghost").message).toContain("no-such-binary");
    await until(() => one("web").state === "running", "web runs beside it");
    expect(sup.healthy(["web"])).toBe(true);
    expect(sup.healthy()).toBe(false);
  });

  test("a process that ignores SIGTERM is SIGKILLed after the stop timeout, grandchildren too", async () => {
    sb = sandbox(); sup = supervisor(sb);
    const spec = childSpec(sb, "stubborn", ["--ignore-term", "--grandchildren", "2", "--pids-file", `${sb.dir}/gc`],
      { stop: { signal: "SIGTERM", timeoutMs: 300 } });
    sup.ensure([spec]);
    const pid = (await until(() => one("stubborn").pid, "started"))!;
    const gc = (await until(() => existsSync(`${sb.dir}/gc`) && readFileSync(`${sb.dir}/gc`, "utf8"), "grandchildren")).split("\n").map(Number);
    expect(gc.every(alive)).toBe(true);
    expect(groupMembers(pid).sort()).toEqual([pid, ...gc].sort());
    await sup.stopAll();
    expect([pid, ...gc].filter(alive)).toEqual([]);
    expect(readFileSync(spec.logFile, "utf8")).toContain("ignoring SIGTERM");       // it got SIGTERM first
    expect(sup.lines.some((l) => l.includes("did not stop in time"))).toBe(true);   // then SIGKILL
    expect(one("stubborn")).toBeUndefined();
  });

  test("grandchildren of a well-behaved process die with it on stop, and with it when it crashes", async () => {
    sb = sandbox(); sup = supervisor(sb);
    sup.ensure([childSpec(sb, "fork", ["--grandchildren", "3", "--pids-file", `${sb.dir}/gc`])]);
    const pid = (await until(() => one("fork").pid, "started"))!;
    let gc = (await until(() => existsSync(`${sb.dir}/gc`) && readFileSync(`${sb.dir}/gc`, "utf8"), "gc")).split("\n").map(Number);
    rmSync(`${sb.dir}/gc`);
    process.kill(pid, "SIGKILL");                   // the leader crashes: its group goes with it
    await until(() => gc.every((p) => !alive(p)), "orphaned grandchildren killed");
    const pid2 = (await until(() => one("fork").pid !== pid && one("fork").pid, "restarted"))!;
    gc = (await until(() => existsSync(`${sb.dir}/gc`) && readFileSync(`${sb.dir}/gc`, "utf8"), "gc2")).split("\n").map(Number);
    await sup.stopAll();
    expect([pid2, ...gc].filter(alive)).toEqual([]);
  });

  test("liveness: a process that turns unhealthy is restarted with reason ProcessUnhealthy", async () => {
    sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
    const sick = `${sb.dir}/sick`;
    const port = await freePort();
    sup.ensure([childSpec(sb, "web", ["--http", "--unhealthy-file", sick], {
      port, health: { http: "/up", interval: 40, timeout: 500, pass: 2, fail: 2, window: 3, deadline: 5000 },
    })]);
    const pid = (await until(() => one().healthy && one().pid, "healthy"))!;
    writeFileSync(sick, "");
    await until(() => events.some((e) => e.kind === "unhealthy" && e.pid === pid), "unhealthy event");
    await until(() => one().pid !== pid && one().reason === "ProcessUnhealthy", "restarted, reason kept until healthy");
    expect(alive(pid)).toBe(false);
    rmSync(sick);
    await until(() => one().healthy && one().state === "running", "healthy again");
    expect(one().restarts).toBeGreaterThanOrEqual(1);
  });

  if (!root) console.log("supervisor: not root, skipping the run-as-user test");
  test.skipIf(!root)("runs as the spec's user when the agent is root", async () => {
    sb = sandbox(); sup = supervisor(sb);
    sup.ensure([childSpec(sb, "nobody", [], { argv: ["sleep", "100"], cwd: "/", user: { uid: 65534, gid: 65534, name: "nobody" } })]);
    const pid = (await until(() => one("nobody").state === "running" && one("nobody").pid, "running as nobody"))!;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(/^Uid:\s+65534\s/m);
    expect(status).toMatch(/^Gid:\s+65534\s/m);
  });

  test("tcp and command health checks", async () => {
    sb = sandbox(); sup = supervisor(sb);
    const port = await freePort();
    writeFileSync(`${sb.dir}/check`, "#!/bin/sh\ntest -f \"$(dirname \"$0\")/ok\"\n", { mode: 0o755 });
    const h = { interval: 40, timeout: 1000, pass: 1, fail: 1, window: 1, deadline: 5000 };
    sup.ensure([
      childSpec(sb, "tcp", ["--tcp"], { port, health: { tcp: port, ...h } }),
      childSpec(sb, "cmd", [], { health: { command: "./check", ...h } }),
    ]);
    await until(() => one("tcp").healthy, "tcp healthy");
    await Bun.sleep(200);
    expect(one("cmd")).toMatchObject({ healthy: false, state: "starting" });
    writeFileSync(`${sb.dir}/ok`, "");
    await until(() => one("cmd").healthy && one("cmd").state === "running", "command healthy");
  });

  test("state.json that cannot be written (disk full) is logged; the process still runs, is watched and stops", async () => {
    sb = sandbox(); sup = supervisor(sb);
    mkdirSync(sb.layout.stateFile, { recursive: true });            // rename(2) onto a directory fails
    writeFileSync(`${sb.layout.stateFile}/keep`, "");
    const spec = childSpec(sb, "web", []);
    sup.ensure([spec]);
    const pid = (await until(() => one().state === "running" && one().pid, "web running"))!;
    expect(one()).toMatchObject({ restarts: 0, healthy: true });
    expect(sup.lines.some((l) => l.includes("state.json") && l.includes('"warn"'))).toBe(true);
    await sup.stopAll();
    expect(alive(pid)).toBe(false);
    expect(one()).toBeUndefined();
    expect(readdirSync(sb.dir).filter((n) => n.includes(".tmp-"))).toEqual([]);   // failed writes leave no temp files
  });
});
