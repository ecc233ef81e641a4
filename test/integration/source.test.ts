// Source against the real git http-backend: polls, incremental fetches, pinned commits, checkout,
// force-push refusal, and every server fault mapped to the right AgentError.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { Source } from "../../agent/source/source.ts";
import { layout } from "../../agent/state/layout.ts";
import { readRelease } from "../../agent/state/releases.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { startGitServer, type GitServer } from "../servers/git.ts";

let dir: string, server: GitServer, repo: TestRepo, appCommit: string;
const ROLE = "user: app\nsetup:\n  - run: echo ok\n";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "source-"));
  repo = await makeRepo(join(dir, "srv"), "ops", { "app/main.ts": "console.log(1)\n", "roles/web.yaml": ROLE, "big.txt": "x".repeat(200_000) + Math.random() });
  appCommit = repo.head;
  await repo.commit({ "manifests/production.yaml": `commit: ${appCommit}\n` }, "deploy 1");
  server = await startGitServer({ root: join(dir, "srv") });
});
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });

const err = async (p: Promise<unknown>): Promise<AgentError> => {
  try { await p; } catch (e) { expect(e).toBeInstanceOf(AgentError); return e as AgentError; }
  throw new Error("expected an AgentError");
};

function newSource(name: string, over: Partial<ConstructorParameters<typeof Source>[0]> = {}) {
  const log = memoryLogger();
  const src = new Source({ gitdir: join(dir, name, "repo"), url: `${server.url}/ops.git`, branch: "main", timeoutMs: 5000, log, allowForcePush: false, ...over });
  return { src, log, l: layout(join(dir, name)) };
}

test("an idle poll is two small requests (protocol v2 ls-refs); a moved tip fetches only the new objects", async () => {
  const { src } = newSource("poll");
  const first = await src.poll(null);
  expect(first).toEqual({ tip: repo.head, moved: true });
  const n = server.requests.length;
  const idle = await src.poll(first.tip);
  expect(idle.moved).toBe(false);
  const idleReqs = server.requests.slice(n);
  expect(idleReqs.map((r) => r.method)).toEqual(["GET", "POST"]);
  expect(idleReqs[0]!.path).toEndWith("/info/refs");
  expect(idleReqs.reduce((a, r) => a + r.bytesOut, 0)).toBeLessThan(1000);

  const tip2 = await repo.commit({ "app/main.ts": "console.log(2)\n" }, "change one file");
  const m = server.requests.length;
  const moved = await src.poll(first.tip);
  expect(moved).toEqual({ tip: tip2, moved: true });
  const bytes = server.requests.slice(m).reduce((a, r) => a + r.bytesOut, 0);
  expect(bytes).toBeLessThan(5000);   // the 200 KB file is not sent again
  const mf = await src.readManifest(tip2, "production");
  expect(mf.ok && mf.value.commit).toBe(appCommit);
});

test("a pinned older commit is fetched, verified, checked out atomically with its subject", async () => {
  const { src, l } = newSource("pin");
  const { tip } = await src.poll(null);
  const mf = await src.readManifest(tip, "production");
  if (!mf.ok) throw new Error("manifest should parse");
  const { subject } = await src.ensureCommit(mf.value.commit);
  expect(subject).toBe("initial");
  const role = await src.readRole(mf.value.commit, "web");
  expect(role.user).toBe("app");
  const rel = await src.checkout(mf.value.commit, l);
  expect(readFileSync(join(rel, "app/main.ts"), "utf8")).toBe("console.log(1)\n");
  expect(readRelease(l, mf.value.commit)?.state).toBe("preparing");
  expect(existsSync(join(l.releases, `.${mf.value.commit}.partial-${process.pid}`))).toBe(false);
});

test("an unknown commit is CommitNotFound, a missing role RoleMissing, a missing manifest ManifestMissing", async () => {
  const { src } = newSource("missing");
  const { tip } = await src.poll(null);
  const e1 = await err(src.ensureCommit("0123456789abcdef0123456789abcdef01234567"));
  expect(e1.reason).toBe("CommitNotFound");
  expect(e1.retry.kind).toBe("terminal");
  expect(e1.message).toContain("commit:");
  const e2 = await err(src.readRole(tip, "db"));
  expect(e2.reason).toBe("RoleMissing");
  expect(e2.message).toContain("roles/db.yaml");
  expect(e2.message).toContain(tip.slice(0, 12));
  expect((await err(src.readManifest(tip, "staging"))).reason).toBe("ManifestMissing");
});

test("a manifest that does not parse reports file:line (the loop keeps the last good one)", async () => {
  const { src } = newSource("badmanifest");
  const t1 = (await src.poll(null)).tip;
  expect((await src.readManifest(t1, "production")).ok).toBe(true);
  const t2 = await repo.commit({ "manifests/production.yaml": "commit: nope\npoll: 30s\n" }, "broken manifest");
  await src.poll(t1);
  const bad = await src.readManifest(t2, "production");
  expect(bad.ok).toBe(false);
  if (!bad.ok) expect(bad.problems[0]).toMatchObject({ file: "manifests/production.yaml", line: 1, path: "commit" });
  await repo.commit({ "manifests/production.yaml": `commit: ${appCommit}\n` }, "fix manifest");
});

test("a force-pushed tip is refused unless allowForcePush", async () => {
  const { src } = newSource("force");
  const before = (await src.poll(null)).tip;
  const base = await repo.git("rev-parse", "HEAD~1");
  await repo.forcePush(base);
  const rewritten = await repo.commit({ "other.txt": "rewritten\n" }, "rewritten history");
  const e = await err(src.poll(before));
  expect(e.reason).toBe("ForcePushRefused");
  expect(e.message).toContain("allowForcePush");
  const { src: lenient } = newSource("force2", { allowForcePush: true });
  await lenient.poll(null);
  expect((await lenient.poll(before)).tip).toBe(rewritten);
  // a normal descendant is accepted by the strict one
  const next = await repo.commit({ "other.txt": "next\n" }, "on top");
  expect((await newSource("force3").src.poll(rewritten)).tip).toBe(next);
});

test("faults: server down, hanging, 404, 500", async () => {
  const { src } = newSource("faults", { timeoutMs: 300 });
  server.faults.down = true;
  try { expect((await err(src.poll(null))).reason).toBe("SourceUnreachable"); } finally { server.faults.down = false; }
  server.faults.delayMs = 2000;
  try {
    const e = await err(src.poll(null));
    expect(e.reason).toBe("SourceUnreachable");
    expect(e.retry.kind).toBe("transient");
  } finally { server.faults.delayMs = 0; }
  server.faults.status = 500;
  try { expect((await err(src.poll(null))).reason).toBe("SourceUnreachable"); } finally { server.faults.status = null; }
  const { src: nowhere } = newSource("faults404", { url: `${server.url}/nope.git` });
  const e404 = await err(nowhere.poll(null));
  expect(e404.reason).toBe("SourceNotFound");
  expect(e404.retry.kind).toBe("terminal");
  const closed = newSource("faultsclosed", { url: "http://127.0.0.1:9/ops.git", timeoutMs: 500 }).src;
  expect((await err(closed.poll(null))).reason).toBe("SourceUnreachable");
});

test("token auth: 401 is SourceAuthFailed and the token appears in no message or log", async () => {
  const token = "tok-3f9a7c1e55d24b8a";
  const authed = await startGitServer({ root: join(dir, "srv"), token });
  try {
    const mk = (t: string | null, name: string) => {
      const log = memoryLogger();
      const src = new Source({ gitdir: join(dir, name, "repo"), url: `${authed.url}/ops.git`, branch: "main", timeoutMs: 5000, log,
        allowForcePush: false, auth: t ? { username: "x-access-token", token: t } : null });
      return { src, log };
    };
    const none = mk(null, "auth0");
    const e = await err(none.src.poll(null));
    expect(e.reason).toBe("SourceAuthFailed");
    const wrong = mk(token + "-wrong", "auth1");
    const e2 = await err(wrong.src.poll(null));
    expect(e2.reason).toBe("SourceAuthFailed");
    expect(e2.message).not.toContain(token);
    const ok = mk(token, "auth2");
    const { tip } = await ok.src.poll(null);
    await ok.src.ensureCommit(tip);
    const e3 = await err(ok.src.ensureCommit("0123456789abcdef0123456789abcdef01234567"));
    for (const text of [e.message, e2.message, e3.message, ...wrong.log.lines, ...ok.log.lines, JSON.stringify(e2)]) {
      expect(text).not.toContain(token);
    }
  } finally { await authed.stop(); }
});
