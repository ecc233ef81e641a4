// RemoteSource, the daemon's source: the poll over plain HTTP, every git operation in a child
// (`agent _source`) whose errors keep their reason and retry class, one child for all the
// requests of a tick (it exits when released, or idle), answers about a commit remembered (an idle tick
// starts no child), and a cancelled checkout kills its child.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { RemoteSource, runningChildren } from "../../agent/source/remote.ts";
import { layout } from "../../agent/state/layout.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { startGitServer, type GitServer } from "../servers/git.ts";

let dir: string, server: GitServer, repo: TestRepo, appCommit: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "source-remote-"));
  repo = await makeRepo(join(dir, "srv"), "ops", { "app/main.ts": "console.log(1)\n", "roles/web.yaml": "user: app\n" });
  appCommit = repo.head;
  await repo.commit({ "manifests/production.yaml": `commit: ${appCommit}\n` }, "deploy 1");
  server = await startGitServer({ root: join(dir, "srv") });
});
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });

const make = (name: string, url = `${server.url}/ops.git`) =>
  new RemoteSource({ gitdir: join(dir, name, "repo"), url, branch: "main", timeoutMs: 5000, log: memoryLogger(), allowForcePush: false });

test("a moved tip goes to the child; an idle poll and a second read of the same commit start none", async () => {
  const src = make("idle");
  expect(await src.poll(null)).toEqual({ tip: repo.head, moved: true });
  const m = await src.readManifest(repo.head, "production");
  expect(m.ok && m.value.commit).toBe(appCommit);
  expect((await src.ensureCommit(appCommit)).subject).toBeString();
  const children = src.children;
  const n = server.requests.length;
  expect(await src.poll(repo.head)).toEqual({ tip: repo.head, moved: false });
  expect(server.requests.slice(n).map((r) => r.method)).toEqual(["GET", "POST"]);   // protocol v2 ls-refs
  await src.readManifest(repo.head, "production");
  expect(src.children).toBe(children);
  expect((await src.commitObject(appCommit)).length).toBeGreaterThan(100);
  expect(await src.readFile(appCommit, "app/main.ts")).toBe("console.log(1)\n");
  expect(await src.checkout(appCommit, layout(join(dir, "idle")))).toBe(layout(join(dir, "idle")).release(appCommit));
  expect(src.children).toBe(1);          // one child answered the whole "tick"
  expect(src.requests).toBe(6);
  const [pid] = runningChildren();
  src.release();
  while (runningChildren().includes(pid!)) await Bun.sleep(5);
  expect(src.peakRssMB).toBeGreaterThan(0);
  expect(await src.readFile(appCommit, "roles/web.yaml")).toBe("user: app\n");   // the next tick starts another
  expect(src.children).toBe(2);
  src.release();
});

test("errors from the child keep their AgentError reason and retry class", async () => {
  const src = make("errors");
  await src.poll(null);
  const missing = await src.readManifest(repo.head, "staging").catch((e) => e);
  expect(missing).toBeInstanceOf(AgentError);
  expect(missing.reason).toBe("ManifestMissing");
  expect(missing.retry).toEqual({ kind: "terminal" });
  const down = await make("down", "http://127.0.0.1:1/ops.git").poll(null).catch((e) => e);
  expect(down).toBeInstanceOf(AgentError);
  expect(down.reason).toBe("SourceUnreachable");
  expect(down.retry.kind).not.toBe("terminal");
});

test("a cancelled checkout kills its child and leaves no release behind", async () => {
  const src = make("cancel");
  await src.poll(null);
  await src.ensureCommit(appCommit);
  const l = layout(join(dir, "cancel"));
  const ac = new AbortController();
  src.release();                          // the checkout starts a child of its own: cancelled while it starts
  const started = src.children;
  const p = src.checkout(appCommit, l, {}, ac.signal).catch((e) => e);
  while (src.children === started) await Bun.sleep(5);   // the child is running
  const [pid] = runningChildren();
  expect(pid).toBeNumber();
  ac.abort();
  expect(await p).toBeInstanceOf(Error);
  while (runningChildren().includes(pid!)) await Bun.sleep(5);
  expect(() => process.kill(pid!, 0)).toThrow();   // gone, not left behind
  expect(existsSync(l.release(appCommit))).toBe(false);
  expect(existsSync(l.releases) ? readdirSync(l.releases).filter((f) => !f.startsWith(".")) : []).toEqual([]);
  expect(await src.checkout(appCommit, l)).toBe(l.release(appCommit));   // a new child serves the next request
  src.release();
});
