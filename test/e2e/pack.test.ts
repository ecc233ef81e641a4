// The compiled binary's git child (`dist/agent _source`), whose isomorphic-git inflates with
// node:zlib (scripts/native-inflate.ts patches it at build time): a first release and an
// incremental one, from packs with deltas (near-identical files, a changed big file), written
// byte for byte as the git CLI checks them out, executable bits and symlinks included.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { randomBytes } from "node:crypto";
import { AGENT, ensureBinary } from "./kit.ts";
import { startGitServer, type GitServer } from "../servers/git.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";

let dir: string, server: GitServer, repo: TestRepo;
const big = randomBytes(60_000).toString("base64");
beforeAll(async () => {
  await ensureBinary();
  dir = mkdtempSync(join(tmpdir(), "agent-pack-"));
  const files: Record<string, string> = { "big.txt": big, "run.sh": "#!/bin/sh\necho hi\n" };
  for (let i = 0; i < 40; i++) files[`lib/m${i % 4}/f${i}.ts`] = `${big.slice(0, 20_000)}\n// file ${i}\n`;   // deltas of each other
  repo = await makeRepo(join(dir, "srv"), "app", files);
  symlinkSync("big.txt", join(repo.work, "link"));
  await repo.commit({}, "a symlink");
  server = await startGitServer({ root: join(dir, "srv") });
});
afterAll(async () => { await server?.stop(); rmSync(dir, { recursive: true, force: true }); });

/** One `agent _source` session: poll, ensure and check out `commit`; returns the release dir. */
async function release(state: string, commit: string, lastTip: string | null): Promise<string> {
  const p = Bun.spawn([AGENT, "_source"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const lines = [{ options: { gitdir: join(state, "repo"), url: `${server.url}/app.git`, branch: "main", timeoutMs: 30_000, allowForcePush: false } },
    { id: 1, method: "poll", args: [lastTip] }, { id: 2, method: "ensureCommit", args: [commit] }, { id: 3, method: "checkout", args: [commit, state, {}] }];
  p.stdin.write(lines.map((l) => JSON.stringify(l) + "\n").join(""));
  await p.stdin.end();
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(code, err).toBe(0);
  const answers = out.trim().split("\n").map((l) => JSON.parse(l) as { id: number; ok: boolean; value: unknown; error?: { message: string } });
  expect(answers.map((a) => a.error?.message ?? a.ok)).toEqual([true, true, true]);
  return answers[2]!.value as string;
}

/** Objects stored as deltas in the store's packs (`git verify-pack -v`: 7 columns). */
function deltas(gitdir: string): number {
  const packs = readdirSync(join(gitdir, "objects", "pack")).filter((n) => n.endsWith(".idx"));
  return packs.reduce((n, idx) => n + Bun.spawnSync(["git", "verify-pack", "-v", join(gitdir, "objects", "pack", idx)]).stdout.toString()
    .split("\n").filter((l) => /^[0-9a-f]{40} /.test(l) && l.trim().split(/\s+/).length === 7).length, 0);
}

/** Every file under `root` (not .git): path -> content, mode bits or link target. */
function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name), rel = relative(root, p);
      if (rel === ".git") continue;
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) out[rel] = `link -> ${readlinkSync(p)}`;
      else out[rel] = `${(lstatSync(p).mode & 0o111) ? "x" : "-"} ${readFileSync(p, "utf8")}`;
    }
  };
  walk(root);
  return out;
}

describe("dist/agent _source", () => {
  test("a first release and an incremental one are the commits' trees, byte for byte", async () => {
    const state = join(dir, "state");
    const first = repo.head;
    const dir1 = await release(state, first, null);
    const want1 = tree(repo.work);
    expect(Object.keys(want1).length).toBe(43);
    expect(tree(dir1)).toEqual(want1);
    expect(deltas(join(state, "repo"))).toBeGreaterThan(10);   // the reader resolved deltas

    const second = await repo.commit({ "big.txt": big.slice(0, 30_000) + "changed" + big.slice(30_000), "lib/m0/f0.ts": null }, "change");
    const dir2 = await release(state, second, first);
    expect(dir2).not.toBe(dir1);
    expect(tree(dir2)).toEqual(tree(repo.work));
    expect(tree(dir2)["big.txt"]).toContain("changed");
  });
});
