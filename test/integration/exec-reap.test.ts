// exec() records a running command's process group; reapGroup() kills what a dead agent left,
// and never signals a pid that now belongs to another program.
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cancel } from "../../agent/core/cancel.ts";
import { awaitGroup, exec, reapGroup, recordedGroup } from "../../agent/host/exec.ts";
import { groupMembers, startTimeOf } from "../../agent/host/proc.ts";

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
  writeFileSync(f, JSON.stringify({ pgid: p.pid, startTime: startTimeOf(p.pid), uid: process.getuid!() }));
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

test("a record with pgid 1 (kill(-1): every process on the host) or 0 is never signalled", () => {
  // Checked with recordedGroup only: reaping it with a broken check would kill the machine.
  for (const pgid of [1, 0, -1]) {
    const f = join(dir, `low-${pgid}.group`);
    writeFileSync(f, JSON.stringify({ pgid, startTime: startTimeOf(1), uid: 0 }));
    expect(recordedGroup(f)).toBeNull();
  }
});

test("a recorded group whose owner is not the recorded one is left alone", async () => {
  const p = Bun.spawn(["sleep", "30"], { detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(p.pid);
  await Bun.sleep(50);
  const f = join(dir, "d.group");
  writeFileSync(f, JSON.stringify({ pgid: p.pid, startTime: startTimeOf(p.pid), uid: 65534 }));
  expect(reapGroup(f)).toBeNull();
  writeFileSync(f, JSON.stringify({ pgid: p.pid, startTime: startTimeOf(p.pid) }));   // no owner recorded, none expected
  expect(reapGroup(f)).toBeNull();
  await Bun.sleep(50);
  expect(startTimeOf(p.pid)).not.toBeNull();
  // a record without an owner (moved from an older layout) is checked against the one the caller expects
  writeFileSync(f, JSON.stringify({ pgid: p.pid, startTime: startTimeOf(p.pid) }));
  expect(reapGroup(f, process.getuid!())).toBe(p.pid);
});

test("a recorded pid that is not its group's leader is left alone", async () => {
  const p = Bun.spawn(["/bin/sh", "-c", "sleep 30 & wait"], { detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(p.pid);
  let child: number | undefined;
  for (let i = 0; i < 100 && !child; i++) { await Bun.sleep(20); child = groupMembers(p.pid).find((x) => x !== p.pid); }
  expect(child).toBeDefined();
  const f = join(dir, "e.group");
  writeFileSync(f, JSON.stringify({ pgid: child, startTime: startTimeOf(child!), uid: process.getuid!() }));
  expect(reapGroup(f)).toBeNull();
  expect(startTimeOf(child!)).not.toBeNull();
});

test("exec records the command's owner with its group", async () => {
  const f = join(dir, "f.group");
  const run = exec(["sleep", "0.3"], { groupFile: f });
  await Bun.sleep(100);
  const rec = JSON.parse(readFileSync(f, "utf8"));
  expect(rec.uid).toBe(process.getuid!());
  expect(recordedGroup(f)?.pgid).toBe(rec.pgid);
  await run;
});

test("awaitGroup waits for a recorded command that ends by itself, and kills one only after its timeout", async () => {
  const ends = Bun.spawn(["/bin/sh", "-c", "sleep 0.3"], { detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(ends.pid);
  const f1 = join(dir, "await-ends.group");
  writeFileSync(f1, JSON.stringify({ pgid: ends.pid, startTime: startTimeOf(ends.pid), uid: process.getuid!(), startedAt: Date.now(), timeoutMs: 30_000 }));
  expect(await awaitGroup(f1)).toBeNull();
  await ends.exited;
  expect(ends.exitCode).toBe(0);                  // ran to its end, not killed
  expect(existsSync(f1)).toBe(false);

  const hangs = Bun.spawn(["/bin/sh", "-c", "sleep 30 & sleep 30"], { detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(hangs.pid);
  await Bun.sleep(50);
  const f2 = join(dir, "await-hangs.group");
  writeFileSync(f2, JSON.stringify({ pgid: hangs.pid, startTime: startTimeOf(hangs.pid), uid: process.getuid!(), startedAt: Date.now(), timeoutMs: 300 }));
  expect(await awaitGroup(f2)).toBe(hangs.pid);
  await hangs.exited;
  expect(hangs.signalCode).toBe("SIGKILL");
});

test("exec cancelled by a stop leaves the command running; cancelled by a newer commit, it gets SIGTERM first", async () => {
  const stop = new AbortController();
  const f = join(dir, "stop.group");
  const run = exec(["/bin/sh", "-c", "sleep 30"], { groupFile: f, signal: stop.signal, timeoutMs: 60_000 });
  await Bun.sleep(100);
  stop.abort(new Cancel("stop"));
  const r = await run;
  expect(r.detached).toBe(true);
  const rec = JSON.parse(readFileSync(f, "utf8"));   // left for the next agent
  spawned.push(rec.pgid);
  expect(startTimeOf(rec.pgid)).toBe(rec.startTime);

  const marker = join(dir, "term");
  const newer = new AbortController();
  const run2 = exec(["/bin/sh", "-c", `trap 'echo term > ${marker}; exit 3' TERM; sleep 30 & wait`], { signal: newer.signal, stopTimeoutMs: 5_000 });
  await Bun.sleep(100);
  newer.abort(new Cancel("superseded"));
  const r2 = await run2;
  expect(r2.code).toBe(3);
  expect(readFileSync(marker, "utf8").trim()).toBe("term");
});

test("a record with the spawn id but no pgid yet (the agent died during the spawn): the step started with that id is killed, nothing else", async () => {
  const id = crypto.randomUUID();
  const env = { ...process.env, AGENT_SPAWN: id } as Record<string, string>;
  const step = Bun.spawn(["/bin/sh", "-c", "sleep 30 & sleep 30"], { env, detached: true, stdout: "ignore", stderr: "ignore" });
  const other = Bun.spawn(["sleep", "30"], { env: { ...env, AGENT_SPAWN: crypto.randomUUID() }, detached: true, stdout: "ignore", stderr: "ignore" });
  spawned.push(step.pid, other.pid);
  await Bun.sleep(50);
  const f = join(dir, "spawn-only.group");
  writeFileSync(f, JSON.stringify({ spawn: id, argv: ["/bin/sh"] }));
  expect(reapGroup(f)).toBe(step.pid);
  await step.exited;
  expect(step.signalCode).toBe("SIGKILL");
  expect(startTimeOf(other.pid)).not.toBeNull();
  expect(existsSync(f)).toBe(false);
});

test("the group file names the spawn id before the command starts", async () => {
  const f = join(dir, "spawn-first.group");
  const run = exec(["sleep", "0.3"], { groupFile: f, spawnId: "spawn-1" });
  await Bun.sleep(100);
  expect(JSON.parse(readFileSync(f, "utf8"))).toMatchObject({ spawn: "spawn-1", argv: ["sleep", "0.3"] });
  await run;
});
