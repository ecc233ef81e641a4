// One agent per state directory, on the compiled binary: `agent run`, `agent once` and a
// daemon-less `agent plan` hold <stateDir>/agent.lock for their whole life. A second one exits 75
// naming the holder, before it adopts or reaps anything; supervised processes never inherit the lock.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { AGENT, alive, makeKit, role, until, type Kit } from "./kit.ts";
import { groupMembers } from "../../agent/host/proc.ts";

let k: Kit;
let holder: Subprocess | null = null;
let stepGroup = 0;

beforeAll(async () => { k = await makeKit("lock"); });
afterAll(async () => {
  holder?.kill("SIGKILL");
  if (stepGroup) try { process.kill(-stepGroup, "SIGKILL"); } catch {}
  await k?.stop();
});


describe("one agent per state directory", () => {
  test("while `agent once` runs a setup step, `agent run`, `agent plan` and a second `agent once` exit 75 naming it; the step is not touched", async () => {
    const m = join(k.dir, "markers");
    mkdirSync(m, { recursive: true, mode: 0o777 }); chmodSync(m, 0o777);
    const pidFile = join(m, "step-pid"), go = join(m, "go");
    const v1 = await k.release({ VERSION: "v1\n", "roles/web.yaml": role() +
      `setup:\n  - run: /bin/sh -c "echo $$ > ${pidFile}; while [ ! -e ${go} ]; do sleep 0.1; done"\n` }, "v1 with a setup step that waits");
    holder = Bun.spawn([AGENT, "once"], { env: { ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe" });
    stepGroup = await until("the setup step running", () => { try { return Number(readFileSync(pidFile, "utf8").trim()) || null; } catch { return null; } });

    for (const args of [["run"], ["plan"], ["once"]]) {
      const r = await k.agent(args, { timeoutMs: 20_000 });
      expect({ args, code: r.code }).toEqual({ args, code: 75 });
      expect(r.stderr).toContain(`another agent is using the state directory ${k.state}: pid ${holder.pid} (${AGENT} once)`);
    }
    expect(groupMembers(stepGroup)).not.toEqual([]);   // not reaped as an "orphan" of a live agent

    writeFileSync(go, "");
    const [code, stderr] = await Promise.all([holder.exited, new Response(holder.stderr as ReadableStream).text()]);
    holder = null;
    expect({ code, stderr: code ? stderr.slice(-600) : "" }).toEqual({ code: 0, stderr: "" });
    expect(k.status()).toMatchObject({ phase: "converged", current: { commit: v1 } });
  }, 90_000);

  test("supervised processes do not hold the lock (they outlive the agent): the next agent takes it at once", async () => {
    const lock = join(k.state, "agent.lock");
    const procs = JSON.parse(readFileSync(join(k.state, "state.json"), "utf8")).processes as { pid: number }[];
    expect(procs.length).toBe(2);
    for (const p of procs) {
      expect(alive(p.pid)).toBe(true);
      const fds = readdirSync(`/proc/${p.pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${p.pid}/fd/${fd}`); } catch { return ""; } });
      expect(fds).not.toContain(lock);
    }
    const r = await k.agent(["plan"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("nothing to do");
  });
});
