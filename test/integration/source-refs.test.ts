// The poll's cost must not grow with the repository's refs: protocol v2 asks for the branch only,
// a server without v2 (the Git-Protocol header stripped) still works and the log says so once,
// and a fetch by commit does not download the whole v1 ref advertisement again.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "../../agent/core/log.ts";
import { Source } from "../../agent/source/source.ts";
import { addManyRefs, makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { startGitServer, type GitServer } from "../servers/git.ts";

let dir: string, server: GitServer, repo: TestRepo;
const REFS = 10_000;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "source-refs-"));
  repo = await makeRepo(join(dir, "srv"), "ops", { "manifests/production.yaml": "commit: 0000000000000000000000000000000000000000\n", "big.txt": "y".repeat(100_000) + Math.random() });
  addManyRefs(repo.bare, REFS, repo.head);
  server = await startGitServer({ root: join(dir, "srv") });
});
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });

function newSource(name: string, over: Partial<ConstructorParameters<typeof Source>[0]> = {}) {
  const log = memoryLogger();
  const src = new Source({ gitdir: join(dir, name, "repo"), url: `${server.url}/ops.git`, branch: "main", timeoutMs: 10_000, log, allowForcePush: false, ...over });
  return { src, log };
}

/** Requests and response body bytes the server saw while `fn` ran. */
async function traffic<T>(fn: () => Promise<T>) {
  const n = server.requests.length;
  const value = await fn();
  const reqs = server.requests.slice(n);
  return { value, reqs, bytes: reqs.reduce((a, r) => a + r.bytesOut, 0) };
}

const v1Warnings = (lines: string[]) => lines.filter((l) => l.includes("does not speak protocol v2")).length;

test("with 10,000 refs on the server, an idle poll asks for the branch only (protocol v2), under 1 KB", async () => {
  const { src, log } = newSource("v2");
  expect((await src.poll(null)).tip).toBe(repo.head);
  for (let i = 0; i < 3; i++) {
    const idle = await traffic(() => src.poll(repo.head));
    expect(idle.value).toEqual({ tip: repo.head, moved: false });
    expect(idle.reqs.map((r) => `${r.method} ${r.path.split("/").pop()}`)).toEqual(["GET refs", "POST git-upload-pack"]);
    expect(idle.bytes).toBeLessThan(1000);
  }
  expect(v1Warnings(log.lines)).toBe(0);
});

test("a fetch after the first does not download the ref advertisement again", async () => {
  const { src } = newSource("fetch");
  const first = await traffic(() => src.poll(null));
  expect(first.bytes).toBeGreaterThan(REFS * 40);   // the first fetch learns the server's capabilities from it
  for (let i = 0; i < 2; i++) {
    const pin = repo.head;
    const tip = await repo.commit({ "manifests/production.yaml": `commit: ${pin}\n` }, `move ${i}`);
    const moved = await traffic(() => src.poll(first.value.tip));
    expect(moved.value).toEqual({ tip, moved: true });
    expect(moved.bytes).toBeLessThan(10_000);        // the poll and the new objects only: not 100 KB, not 10,000 refs
    const mf = await src.readManifest(tip, "production");
    expect(mf.ok && mf.value.commit).toBe(pin);
    first.value.tip = tip;
  }
  // a commit the server does not have is still refused, not silently "fetched"
  await expect(src.ensureCommit("2".repeat(40))).rejects.toMatchObject({ reason: "CommitNotFound" });
  // and the pinned commit that is there arrives through the same remembered advertisement
  const pinned = await traffic(() => src.ensureCommit(repo.head));
  expect(pinned.reqs.every((r) => r.method === "POST")).toBe(true);
});

test("a server without protocol v2 still answers the poll; the log says so once", async () => {
  const { src, log } = newSource("v1");
  server.faults.stripGitProtocol = true;
  try {
    expect((await src.poll(null)).tip).toBe(repo.head);
    for (let i = 0; i < 3; i++) {
      const idle = await traffic(() => src.poll(repo.head));
      expect(idle.value.moved).toBe(false);
      expect(idle.reqs.map((r) => r.method)).toEqual(["GET"]);
      expect(idle.bytes).toBeGreaterThan(REFS * 40);  // the whole v1 advertisement: why the log warns
    }
    expect(v1Warnings(log.lines)).toBe(1);
  } finally {
    server.faults.stripGitProtocol = false;
  }
  const back = await traffic(() => src.poll(repo.head));
  expect(back.bytes).toBeLessThan(1000);
  expect(log.lines.filter((l) => l.includes("speaks protocol v2 again")).length).toBe(1);
  expect(v1Warnings(log.lines)).toBe(1);
});

test("with token auth, fetches after the first still authenticate (the remembered advertisement asks for credentials)", async () => {
  const authed = await startGitServer({ root: join(dir, "srv"), token: "s3cret" });
  try {
    const { src } = newSource("auth", { url: `${authed.url}/ops.git`, auth: { username: "x-access-token", token: "s3cret" } });
    let tip = (await src.poll(null)).tip;
    for (let i = 0; i < 2; i++) {
      const next = await repo.commit({ "auth.txt": `${i}\n` }, `auth ${i}`);
      const n = authed.requests.length;
      expect(await src.poll(tip)).toEqual({ tip: next, moved: true });
      const posts = authed.requests.slice(n).filter((r) => r.method === "POST");
      expect(posts.map((r) => r.status)).toEqual([200, 200]);   // ls-refs, then the pack: both accepted
      tip = next;
    }
  } finally { await authed.stop(); }
});
