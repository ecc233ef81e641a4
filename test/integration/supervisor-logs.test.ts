// Logs: a child writing 100 MB stays within the rotation bound on disk, and `agent logs`
// prints, follows across a copy-truncate rotation, and names the known processes.
import { afterEach, expect, test } from "bun:test";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { childSpec, sandbox, supervisor, TEST_TUNING, until, type Sandbox } from "../fixtures/supervisor-kit.ts";
import { rotateIfNeeded } from "../../agent/supervisor/rotate.ts";

let sb: Sandbox;
let sup: ReturnType<typeof supervisor> | undefined;
afterEach(async () => { await sup?.stopAll(); sup = undefined; sb?.cleanup(); });
const MAIN = join(import.meta.dir, "../../agent/main.ts");

const totalLogBytes = (dir: string) =>
  readdirSync(dir).filter((f) => f.startsWith("loud.log")).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

test("a child writing 100 MB quickly: rotation keeps the disk bounded", async () => {
  sb = sandbox();
  const max = 2 << 20, keep = 2;
  sup = supervisor(sb, [], TEST_TUNING, max, keep);
  const done = `${sb.dir}/done`;
  sup.ensure([childSpec(sb, "loud", ["--log-mb", "100", "--rate-mb-s", "50", "--done-file", done])]);
  let peak = 0;
  await until(() => {
    if (existsSync(sb.layout.logs)) peak = Math.max(peak, totalLogBytes(sb.layout.logs));
    return existsSync(done);
  }, "100 MB written", 60_000);
  const files = readdirSync(sb.layout.logs).filter((f) => f.startsWith("loud.log")).sort();
  expect(files).toEqual(["loud.log", "loud.log.1", "loud.log.2"]);
  // Between two checks (20 ms) the child adds about 1 MB at 50 MB/s; a busy machine delays timers.
  const slack = 10 << 20;
  console.log(`log rotation: peak ${(peak / 1048576).toFixed(1)} MB on disk for 100 MB written (limit ${max >> 20} MB x ${keep + 1} + ${slack >> 20} MB slack)`);
  expect(peak).toBeLessThan(max * (keep + 1) + slack);
  expect(peak).toBeGreaterThan(max);                      // it did grow to the limit: the bound is real
  // not sparse: the live file holds data from offset 0 (O_APPEND continues at the new end)
  const head = readFileSync(join(sb.layout.logs, "loud.log")).subarray(0, 64);
  expect(head.includes(0)).toBe(false);
});

test("agent logs: tail, unknown process, and -f across a rotation", async () => {
  sb = sandbox();
  mkdirSync(sb.layout.logs, { recursive: true });
  const file = sb.layout.processLog("web");
  writeFileSync(file, Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\n") + "\n");
  writeFileSync(sb.layout.processLog("worker"), "w\n");

  const tail = Bun.spawnSync([process.execPath, MAIN, "logs", "web", "-n", "3", "--state-dir", sb.dir]);
  expect(tail.exitCode).toBe(0);
  expect(tail.stdout.toString()).toBe("line 27\nline 28\nline 29\n");

  const unknown = Bun.spawnSync([process.execPath, MAIN, "logs", "api", "--state-dir", sb.dir]);
  expect(unknown.exitCode).toBe(1);
  expect(unknown.stderr.toString()).toContain("known processes: web, worker");

  const help = Bun.spawnSync([process.execPath, MAIN, "logs", "--help"]);
  expect(help.stdout.toString()).toContain("agent logs web -f");

  const f = Bun.spawn([process.execPath, MAIN, "logs", "web", "-f", "-n", "1", "--state-dir", sb.dir], { stdout: "pipe", stderr: "pipe" });
  let out = "";
  const pump = (async () => { for await (const c of f.stdout) out += new TextDecoder().decode(c); })();
  await until(() => out.includes("line 29"), "initial tail");
  appendFileSync(file, "before rotation\n");
  await until(() => out.includes("before rotation"), "followed append");
  appendFileSync(file, "just before the truncate\n");
  expect(rotateIfNeeded(file, { maxBytes: 1, keep: 2 })).toBe(true);
  appendFileSync(file, "after rotation\n");
  await until(() => out.includes("after rotation"), "followed across rotation");
  f.kill("SIGTERM");
  await f.exited; await pump;
  expect(out).toBe("line 29\nbefore rotation\njust before the truncate\nafter rotation\n");
});
