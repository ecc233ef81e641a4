// Store hygiene: across many small deploys the object store stays under a bound (rebuilt from a
// depth-1 fetch when it grows), and disk full during a checkout leaves `current` untouched.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { isRoot } from "../../agent/host/users.ts";
import { Source } from "../../agent/source/source.ts";
import { readStoreStats, storeUsage } from "../../agent/source/store.ts";
import { layout } from "../../agent/state/layout.ts";
import { currentCommit, markRelease, switchCurrent } from "../../agent/state/releases.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { startGitServer, type GitServer } from "../servers/git.ts";

let dir: string, server: GitServer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "store-"));
  server = await startGitServer({ root: join(dir, "srv") });
});
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });

test("40 deploys: the store is rebuilt when it grows and stays under a bound", async () => {
  const repo = await makeRepo(join(dir, "srv"), "churn", { "data.txt": randomBytes(30_000).toString("base64") });
  const l = layout(join(dir, "churn"));
  const src = new Source({ gitdir: l.repo, url: `${server.url}/churn.git`, branch: "main", timeoutMs: 5000, log: memoryLogger(),
    allowForcePush: false, hygiene: { growthFactor: 3, minGrowthBytes: 0, maxPacks: 20 } });
  let tip = (await src.poll(null)).tip;
  const baseline = readStoreStats(l.repo)!.baselineBytes;
  expect(baseline).toBeGreaterThan(30_000);
  let rebuilds = 0, peak = 0;
  for (let i = 0; i < 40; i++) {
    await repo.commit({ "data.txt": randomBytes(30_000).toString("base64") }, `deploy ${i}`);
    const polled = await src.poll(tip);
    expect(polled.moved).toBe(true);
    tip = polled.tip;
    await src.ensureCommit(tip);
    peak = Math.max(peak, storeUsage(l.repo).bytes);
    if ((await src.maintain(tip)).rebuilt) rebuilds++;
  }
  expect(rebuilds).toBeGreaterThan(3);
  expect(peak).toBeLessThan(baseline * 4.5);
  expect(storeUsage(l.repo).packs).toBeLessThanOrEqual(20);
  expect(existsSync(`${l.repo}.new`) || existsSync(`${l.repo}.old`)).toBe(false);
  // the rebuilt store still answers an idle poll and an incremental fetch
  expect((await src.poll(tip)).moved).toBe(false);
  const next = await repo.commit({ "x.txt": "x" }, "after rebuild");
  expect((await src.poll(tip)).tip).toBe(next);
});

if (!isRoot()) console.log("skipping one test: not root, cannot mount a loop filesystem");
test.skipIf(!isRoot())("as root: disk full during checkout is DiskFull; no partial left; current untouched", async () => {
  const img = join(dir, "small.img"), mnt = join(dir, "small");
  mkdirSync(mnt);
  const sh = (...a: string[]) => { const r = Bun.spawnSync(a, { stderr: "pipe" }); if (r.exitCode !== 0) throw new Error(`${a.join(" ")}: ${r.stderr}`); };
  sh("truncate", "-s", "8M", img);
  sh("mkfs.ext4", "-q", "-F", img);
  sh("mount", "-o", "loop", img, mnt);
  try {
    const repo = await makeRepo(join(dir, "srv"), "big", { "small.txt": "small\n" });
    const good = repo.head;
    // highly compressible: a tiny pack, but 20 MB on disk once checked out
    const big = await repo.commit({ "big.txt": "0123456789abcdef\n".repeat(1_250_000) }, "big file");
    const l = layout(join(mnt, "state"));
    const src = new Source({ gitdir: l.repo, url: `${server.url}/big.git`, branch: "main", timeoutMs: 5000, log: memoryLogger(), allowForcePush: false });
    await src.poll(null);
    await src.ensureCommit(good);
    await src.checkout(good, l);
    markRelease(l, good, "ready", Date.now());
    switchCurrent(l, good);
    await src.ensureCommit(big);
    let e: unknown;
    try { await src.checkout(big, l); } catch (x) { e = x; }
    expect(e).toBeInstanceOf(AgentError);
    expect((e as AgentError).reason).toBe("DiskFull");
    expect(readdirSync(l.releases).filter((n) => n.includes("partial"))).toEqual([]);
    expect(existsSync(l.release(big))).toBe(false);
    expect(currentCommit(l)).toBe(good);
    expect(readFileSync(join(l.current, "small.txt"), "utf8")).toBe("small\n");
  } finally {
    Bun.spawnSync(["umount", "-l", mnt]);
  }
});
