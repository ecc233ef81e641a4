// Agent restarts do not restart applications: a SIGKILLed agent's processes are adopted by the
// next one (same pids), and a recorded pid now used by another program is never signalled.
import { afterEach, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { alive, sandbox, supervisor, until, type Sandbox } from "../fixtures/supervisor-kit.ts";
import { threeSpecs } from "../fixtures/supervisor-agent-specs.ts";
import { readStat } from "../../agent/host/proc.ts";
import { StateStore } from "../../agent/state/store.ts";

let sb: Sandbox;
let sup: ReturnType<typeof supervisor> | undefined;
const extra: number[] = [];
afterEach(async () => {
  await sup?.stopAll(); sup = undefined;
  for (const pid of extra.splice(0)) try { process.kill(pid, "SIGKILL"); } catch {}
  sb?.cleanup();
});

test("the agent is SIGKILLed while three processes run; the next agent adopts the same pids and restarts one that dies", async () => {
  sb = sandbox();
  const agent = Bun.spawn([process.execPath, join(import.meta.dir, "../fixtures/supervisor-agent.ts"), sb.dir],
    { stdout: "pipe", stderr: "inherit", stdin: "ignore" });
  const reader = agent.stdout.getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stand-in agent exited early: ${out}`);
    out += new TextDecoder().decode(value);
  }
  const pids = out.trim().replace(/^ready /, "").split(" ").map(Number);
  expect(pids).toHaveLength(3);
  for (const p of pids) extra.push(p);
  agent.kill("SIGKILL");
  await agent.exited;
  expect(pids.every(alive)).toBe(true);                            // the apps outlived their agent

  sup = supervisor(sb);
  const res = sup.adopt();
  expect(res.adopted.map((r) => r.pid).sort()).toEqual([...pids].sort());
  expect(res.dropped).toEqual([]);
  expect(sup.status().map((p) => [p.pid, p.state])).toEqual(
    expect.arrayContaining(pids.map((p) => [p, "running"])));
  sup.ensure(threeSpecs(sb));                                       // the loop's first tick: same specs, no restart
  expect(sup.status().map((p) => p.pid).sort()).toEqual([...pids].sort());

  const victim = sup.status().find((p) => p.name === "two")!.pid!;
  const gcFile = `${sb.dir}/two.gc`;
  // The child writes its grandchild's pid once it has forked it, which under load can come after
  // the stand-in agent said "ready".
  await until(() => existsSync(gcFile) && readFileSync(gcFile, "utf8").trim() !== "", "two's grandchild pid file");
  const oldGc = Number(readFileSync(gcFile, "utf8"));
  process.kill(victim, "SIGKILL");                                  // not our child: found by polling /proc
  const fresh = await until(() => { const p = sup!.status().find((s) => s.name === "two")!; return p.pid !== victim && p.state === "running" && p.pid; }, "two restarted");
  expect(alive(fresh)).toBe(true);
  expect(sup.status().find((s) => s.name === "two")).toMatchObject({ restarts: 1, lastExit: { code: null, signal: null } });
  await until(() => !alive(oldGc), "the dead leader's grandchild is gone");
  expect(new StateStore(sb.layout.stateFile).get().processes.map((r) => r.pid).sort()).toEqual(
    [...pids.filter((p) => p !== victim), fresh].sort());

  await sup.stopAll();
  expect([...pids, fresh].filter(alive)).toEqual([]);
  expect(existsSync(sb.layout.stateFile)).toBe(true);
});

test("a recorded pid that now belongs to another program is left alone and dropped from state", async () => {
  sb = sandbox();
  const other = Bun.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  extra.push(other.pid);
  const st = readStat(other.pid)!;
  new StateStore(sb.layout.stateFile).update((s) => {
    s.processes = [{ name: "web", process: "web", instance: 0, pid: other.pid, pgid: other.pid, startTime: st.startTime - 1,
      commit: "a".repeat(40), releaseDir: sb.dir, startedAt: Date.now() - 60_000, restarts: 0 },
    { name: "gone", process: "gone", instance: 0, pid: 2 ** 22 + 7, pgid: 2 ** 22 + 7, startTime: 1,
      commit: "a".repeat(40), releaseDir: sb.dir, startedAt: Date.now() - 60_000, restarts: 0 }];
  });
  sup = supervisor(sb);
  const res = sup.adopt();
  expect(res.adopted).toEqual([]);
  expect(res.dropped.map((d) => [d.record.name, d.why]).sort()).toEqual([["gone", "gone"], ["web", "pid-reused"]]);
  expect(sup.status()).toEqual([]);
  expect(new StateStore(sb.layout.stateFile).get().processes).toEqual([]);
  await sup.stopAll();
  sup.ensure([]);
  await Bun.sleep(100);
  expect(alive(other.pid)).toBe(true);                              // never signalled
  expect(other.exitCode).toBeNull();
  other.kill("SIGKILL");
});

test("a supervisor that never adopted (agent plan beside a running daemon) leaves state.json's records alone", async () => {
  sb = sandbox();
  const app = Bun.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  extra.push(app.pid);
  const record = { name: "web", process: "web", instance: 0, pid: app.pid, pgid: app.pid, startTime: readStat(app.pid)!.startTime,
    commit: "a".repeat(40), releaseDir: sb.dir, startedAt: Date.now(), restarts: 0 };
  new StateStore(sb.layout.stateFile).update((s) => { s.processes = [record]; });
  const bystander = supervisor(sb);
  expect(bystander.status()).toEqual([]);
  bystander.detach();
  expect(new StateStore(sb.layout.stateFile).get().processes).toEqual([record]);
  const stopper = supervisor(sb);
  await stopper.stopAll();                                          // owns nothing: stops nothing, forgets nothing
  expect(new StateStore(sb.layout.stateFile).get().processes).toEqual([record]);
  expect(alive(app.pid)).toBe(true);
});
