// exec() records a running command's process group; reapGroup() kills what a dead agent left,
// and never signals a pid that now belongs to another program.
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec, reapGroup } from "../../agent/host/exec.ts";
import { startTimeOf } from "../../agent/host/proc.ts";

const dir = mkdtempSync(join(tmpdir(), "exec-reap-"));
const spawned: number[] = [];
afterEach(() => { for (const p of spawned) { try { process.kill(-p, "SIGKILL"); } catch {} } });
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

test("the group file exists while the command runs and is gone after it", async () => {
  const f = join(dir, "a.group");
  const run = exec(["sleep", "0.3"], { groupFile: f });
  await Bun.sleep(100);
  const rec = JSON.parse(readFileSync(f, "utf8"));
  expect(rec.pgid).toBeGreaterThan(1);
  expect(rec.startTime).toBe(startTimeOf(rec.pgid));
  await run;
  expect(existsSync(f)).toBe(false);
});

test("reapGroup kills the whole recorded group of a command whose agent died", async () => {
  const p = Bun.spawn(["/bin/sh", "-c", "sleep 30 & sleep 30"], { detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(p.pid);
  await Bun.sleep(50);
  const f = join(dir, "b.group");
  writeFileSync(f, JSON.stringify({ pgid: p.pid, startTime: startTimeOf(p.pid) }));
  expect(reapGroup(f)).toBe(p.pid);
  await p.exited;
  expect(p.signalCode).toBe("SIGKILL");
  expect(existsSync(f)).toBe(false);
});

test("a recorded pid that now belongs to another program is left alone", async () => {
  const p = Bun.spawn(["sleep", "30"], { detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(p.pid);
  await Bun.sleep(50);
  const f = join(dir, "c.group");
  writeFileSync(f, JSON.stringify({ pgid: p.pid, startTime: (startTimeOf(p.pid) ?? 0) - 1 }));
  expect(reapGroup(f)).toBeNull();
  await Bun.sleep(50);
  expect(startTimeOf(p.pid)).not.toBeNull();
});

test("a record with the spawn id but no pgid yet (the agent died during the spawn): the step started with that id is killed, nothing else", async () => {
  const id = crypto.randomUUID();
  const env = { ...process.env, AGENT_SPAWN: id } as Record<string, string>;
  const step = Bun.spawn(["/bin/sh", "-c", "sleep 30 & sleep 30"], { env, detached: true, stdout: "ignore", stderr: "ignore" });
  const other = Bun.spawn(["sleep", "30"], { env: { ...env, AGENT_SPAWN: crypto.randomUUID() }, detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(step.pid, other.pid);
  await Bun.sleep(50);
  const f = join(dir, "d.group");
  writeFileSync(f, JSON.stringify({ spawn: id, argv: ["/bin/sh"] }));
  expect(reapGroup(f)).toBe(step.pid);
  await step.exited;
  expect(step.signalCode).toBe("SIGKILL");
  expect(startTimeOf(other.pid)).not.toBeNull();
  expect(existsSync(f)).toBe(false);
});

test("the group file names the spawn id before the command starts", async () => {
  const f = join(dir, "e.group");
  const run = exec(["sleep", "0.3"], { groupFile: f, spawnId: "spawn-1" });
  await Bun.sleep(100);
  expect(JSON.parse(readFileSync(f, "utf8"))).toMatchObject({ spawn: "spawn-1", argv: ["sleep", "0.3"] });
  await run;
});
