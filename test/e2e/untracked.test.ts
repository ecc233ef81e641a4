// Every process the agent starts is findable by the next agent, even when its record never reached
// state.json: the agent dies between spawn and write (AGENT_TEST_DIE_AFTER_SPAWN, a test hook, does
// exactly that), then the next agent finds it by its environment marker and adopts or stops it:
// exactly one copy of each process runs afterwards.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { AGENT, alive, makeKit, role, until, type Kit } from "./kit.ts";
import { groupMembers, liveProcesses, readEnviron } from "../../agent/host/proc.ts";
import { isRoot } from "../../agent/host/users.ts";

let k: Kit;
let daemon: Subprocess | null = null;
let stepGroup = 0;
let spoof: Subprocess | null = null;

beforeAll(async () => { k = await makeKit("untracked"); });
afterAll(async () => {
  daemon?.kill("SIGKILL");
  if (stepGroup) try { process.kill(-stepGroup, "SIGKILL"); } catch {}
  spoof?.kill("SIGKILL");
  for (const pid of [...copies("app.ts"), ...copies("working")]) try { process.kill(-pid, "SIGKILL"); } catch {}
  await k?.stop();
});

/** Process group leaders started from a release of this node whose command line contains `what`. */
function copies(what: string): number[] {
  return liveProcesses().filter((s) => s.pid === s.pgrp).map((s) => s.pid).filter((pid) => {
    if (!readEnviron(pid)?.AGENT_RELEASE?.startsWith(join(k.state, "releases") + "/")) return false;
    try { return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(what); } catch { return false; }
  });
}
const recorded = (name: string) =>
  (JSON.parse(readFileSync(join(k.state, "state.json"), "utf8")).processes as any[]).find((p) => p.name === name) ?? null;
const env = (dieAfter?: string) => ({ ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1", ...(dieAfter ? { AGENT_TEST_DIE_AFTER_SPAWN: dieAfter } : {}) });

async function once(dieAfter?: string): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn([AGENT, "once"], { env: env(dieAfter), stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  return { code, stderr };
}

describe("processes started just before the agent died, never recorded", () => {
  let v1: string;

  test("`agent once` killed right after starting a process: the next one adopts it (same pid, same port) instead of starting a second copy", async () => {
    v1 = await k.release({ VERSION: "v1\n" }, "v1");
    const died = await once("web");                     // web has a port the agent assigned ($PORT)
    expect(died.code).toBe(137);                        // SIGKILLed by the hook
    const [orphan] = copies("app.ts");
    expect(copies("app.ts").length).toBe(1);
    expect(recorded("web")).toBeNull();                 // the record never reached state.json
    const port = Number(readEnviron(orphan!)!.PORT);

    const r = await once();
    expect({ code: r.code, stderr: r.code ? r.stderr.slice(-600) : "" }).toEqual({ code: 0, stderr: "" });
    expect(copies("app.ts")).toEqual([orphan!]);
    expect(copies("working").length).toBe(1);
    expect(recorded("web")).toMatchObject({ pid: orphan, commit: v1, port });
    expect(k.status().processes.find((p: any) => p.name === "web")).toMatchObject({ pid: orphan, commit: v1, healthy: true });
  }, 60_000);

  test("the daemon killed right after a crash restart: the next daemon adopts the restarted process", async () => {
    const before = recorded("worker").pid as number;
    daemon = Bun.spawn([AGENT, "run"], { env: env("worker"), stdout: "ignore", stderr: "ignore" });
    for (let i = 0; i < 100; i++) {                     // the daemon answers: it has adopted worker
      const s = await k.agent(["status", "--json", "--timeout", "1s"]);
      if (s.code === 0 && JSON.parse(s.stdout).source === "daemon") break;
      await Bun.sleep(200);
    }
    process.kill(-before, "SIGKILL");                   // the hook fires on the restart of worker
    await daemon.exited;                                // restarted worker, then died before writing its record
    daemon = null;
    const restarted = await until("the restarted worker", () => copies("working").find((p) => p !== before) ?? null, 30_000, 100);
    expect(alive(before)).toBe(false);
    expect(recorded("worker")).toBeNull();              // its exit was written, the restart never was

    const r = await once();
    expect(r.code).toBe(0);
    expect(copies("working")).toEqual([restarted]);
    expect(recorded("worker").pid).toBe(restarted);
  }, 60_000);

  test("killed right after starting the new release's process in an overlapping restart: the next agent keeps one copy", async () => {
    const v2 = await k.release({ VERSION: "v2\n" }, "v2");
    const old = recorded("web").pid as number;
    const died = await once("web");
    expect(died.code).toBe(137);
    expect(copies("app.ts").length).toBe(2);            // the old one and the unrecorded new one
    expect(recorded("web").pid).toBe(old);

    const r = await once();
    expect({ code: r.code, stderr: r.code ? r.stderr.slice(-600) : "" }).toEqual({ code: 0, stderr: "" });
    expect(k.status()).toMatchObject({ phase: "converged", current: { commit: v2 } });
    expect(copies("app.ts").length).toBe(1);
    expect(copies("working").length).toBe(1);
    expect(recorded("web").commit).toBe(v2);
  }, 60_000);

  test("killed right after starting a setup step, before its group was recorded: the next agent finds it by its spawn id, waits out its timeout, kills it, then runs it again", async () => {
    const m = join(k.dir, "markers");
    mkdirSync(m, { recursive: true, mode: 0o777 }); chmodSync(m, 0o777);
    const pidFile = join(m, "step-pid"), ran = join(m, "step-ran");
    const v3 = await k.release({ VERSION: "v3\n", "roles/web.yaml": role() +
      `setup:\n  - run: /bin/sh -c "if [ -e ${ran} ]; then exit 0; fi; touch ${ran}; echo $$ > ${pidFile}; sleep 300; true"\n    timeout: 5s\n` }, "v3 with a setup step that hangs once");
    const died = await once("step");
    expect(died.code).toBe(137);
    stepGroup = await until("the setup step running", () => { try { return Number(readFileSync(pidFile, "utf8").trim()) || null; } catch { return null; } }, 30_000, 100);
    expect(groupMembers(stepGroup)).not.toEqual([]);

    const r = await once();
    expect({ code: r.code, stderr: r.code ? r.stderr.slice(-600) : "" }).toEqual({ code: 0, stderr: "" });
    expect(k.status()).toMatchObject({ phase: "converged", current: { commit: v3 } });
    expect(groupMembers(stepGroup)).toEqual([]);        // the orphaned step does not run beside its second run
  }, 60_000);

  test.if(isRoot())("a process of another user that forges the marker is neither adopted nor signalled", async () => {
    const real = recorded("worker").pid as number;
    const forged = { ...readEnviron(real)!, AGENT_SPAWN: crypto.randomUUID() };   // the very markers, fingerprint included
    process.kill(-real, "SIGKILL");                     // the recorded worker is gone, as after a crash
    spoof = Bun.spawn(["sleep", "300"], { env: forged, uid: 65534, gid: 65534, detached: true, stdout: "ignore", stderr: "ignore" });
    await until("the forged process", () => readEnviron(spoof!.pid)?.AGENT_PROCESS === "worker" || null, 30_000, 100);

    const r = await once();
    expect({ code: r.code, stderr: r.code ? r.stderr.slice(-600) : "" }).toEqual({ code: 0, stderr: "" });
    const worker = k.status().processes.find((p: any) => p.name === "worker");
    expect(worker.pid).not.toBe(spoof.pid);
    expect(copies("working")).toEqual([worker.pid]);
    expect(alive(spoof.pid)).toBe(true);
  }, 60_000);
});
