// Log rotation on a really full disk (a small tmpfs; needs root to mount): the copy fails, the
// live log is truncated anyway, the rotations already kept stay as they were, and the warning
// comes once, not at every check.
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isRoot } from "../../agent/host/users.ts";
import { rotateIfNeeded } from "../../agent/supervisor/rotate.ts";
import { childSpec, sandbox, supervisor, TEST_TUNING, until, type Sandbox } from "../fixtures/supervisor-kit.ts";

const root = isRoot();
if (!root) console.log("skip: mounting a small tmpfs for a full disk needs root");

let sb: Sandbox | undefined;
let mounted: string | null = null;
let sup: ReturnType<typeof supervisor> | undefined;
afterEach(async () => {
  await sup?.stopAll(); sup = undefined;
  if (mounted) Bun.spawnSync(["umount", "-l", mounted]);
  mounted = null;
  sb?.cleanup(); sb = undefined;
});

/** A `mib` MiB tmpfs at dir: a disk that really fills up. */
function smallDisk(dir: string, mib: number): void {
  mkdirSync(dir, { recursive: true });
  const p = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`mount tmpfs: ${p.stderr}`);
  mounted = dir;
}
const fill = (path: string, kib: number, ch: string) => writeFileSync(path, Buffer.alloc(kib * 1024, ch));

test.skipIf(!root)("a copy that fails on a full disk truncates the live log, keeps .1 and .2, and warns once", () => {
  sb = sandbox();
  const logs = join(sb.dir, "logs");
  smallDisk(logs, 1);
  const live = join(logs, "web.log");
  fill(`${live}.1`, 200, "1");
  fill(`${live}.2`, 200, "2");
  fill(live, 500, "L");                                     // 900 KiB used: no room for a 500 KiB copy
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);

  expect(rotateIfNeeded(live, { maxBytes: 400 * 1024, keep: 2 }, warn)).toBe(true);
  expect(statSync(live).size).toBe(0);                     // the live log shrank: the disk stops filling
  expect(readFileSync(`${live}.1`).every((b) => b === "1".charCodeAt(0))).toBe(true);
  expect(readFileSync(`${live}.2`).every((b) => b === "2".charCodeAt(0))).toBe(true);
  expect(statSync(`${live}.1`).size).toBe(200 * 1024);
  expect(readdirSync(logs).sort()).toEqual(["web.log", "web.log.1", "web.log.2"]);   // no temp copy left
  expect(warnings.length).toBe(1);
  expect(warnings[0]).toContain("could not copy");

  // the same condition again: the same outcome, no second warning
  fill(live, 500, "M");
  expect(rotateIfNeeded(live, { maxBytes: 400 * 1024, keep: 2 }, warn)).toBe(true);
  expect(statSync(live).size).toBe(0);
  expect(statSync(`${live}.2`).size).toBe(200 * 1024);
  expect(warnings.length).toBe(1);

  // room again (a smaller log fits): a normal rotation, .1 shifts to .2
  fill(live, 250, "N");
  expect(rotateIfNeeded(live, { maxBytes: 200 * 1024, keep: 2 }, warn)).toBe(true);
  expect(readFileSync(`${live}.1`).every((b) => b === "N".charCodeAt(0))).toBe(true);
  expect(statSync(`${live}.1`).size).toBe(250 * 1024);
  expect(readFileSync(`${live}.2`).every((b) => b === "1".charCodeAt(0))).toBe(true);
  expect(warnings.length).toBe(1);
});

test.skipIf(!root)("a supervised child logging onto a full disk: the log stays bounded and the agent warns once", async () => {
  sb = sandbox();
  smallDisk(sb.layout.logs, 4);
  const file = sb.layout.processLog("loud");
  fill(`${file}.1`, 1536, "1");
  fill(`${file}.2`, 1536, "2");                           // 3 MiB kept of 4: a 600 KiB copy never fits
  const max = 600 * 1024;
  sup = supervisor(sb, [], TEST_TUNING, max, 2);
  const done = join(sb.dir, "done");
  sup.ensure([childSpec(sb, "loud", ["--log-mb", "12", "--rate-mb-s", "4", "--done-file", done])]);
  let truncations = 0, last = 0;
  await until(() => {
    const size = existsSync(file) ? statSync(file).size : 0;
    if (size < last) truncations++;
    last = size;
    return existsSync(done);
  }, "12 MB written", 60_000);
  expect(truncations).toBeGreaterThan(3);                  // the live log shrank again and again
  expect(statSync(`${file}.1`).size).toBe(1536 * 1024);    // the rotations were never shifted or deleted
  expect(readFileSync(`${file}.2`).every((b) => b === "2".charCodeAt(0))).toBe(true);
  const warns = sup.lines.filter((l) => l.includes("could not copy"));
  expect(warns.length).toBe(1);
  expect(warns[0]).toContain(file);
});
