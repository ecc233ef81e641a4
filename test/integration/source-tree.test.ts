// writeTree (source/tree.ts), the checkout of a release: the same files, modes and symlinks as
// `git checkout` of the same commit, from a packed store and from loose objects.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { writeTree } from "../../agent/source/tree.ts";

let dir: string, work: string, head: string;
const git = (...args: string[]) => {
  const p = Bun.spawnSync(["git", "-C", work, ...args], { env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" } });
  if (p.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${p.stderr}`);
  return p.stdout.toString().trim();
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "source-tree-"));
  work = join(dir, "work");
  mkdirSync(join(work, "app/lib/deep"), { recursive: true });
  writeFileSync(join(work, "app/main.ts"), "console.log(1)\n");
  writeFileSync(join(work, "app/lib/deep/x.bin"), Buffer.from([0, 1, 2, 255, 254]));
  writeFileSync(join(work, "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(work, "run.sh"), 0o755);
  writeFileSync(join(work, "empty"), "");
  symlinkSync("app/main.ts", join(work, "link"));
  symlinkSync("app/lib", join(work, "dirlink"));
  git("init", "-q", "-b", "main");
  git("add", "-A");
  git("commit", "-q", "-m", "tree");
  head = git("rev-parse", "HEAD");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** path -> "file <mode> <content>" | "link <target>" | "dir" for everything under `root`. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      if (d === root && name === ".git") continue;
      const p = join(d, name), st = lstatSync(p), rel = relative(root, p);
      if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(p)}`;
      else if (st.isDirectory()) { out[rel] = "dir"; walk(p); }
      else out[rel] = `file ${(st.mode & 0o111) ? "x" : "-"} ${readFileSync(p).toString("base64")}`;
    }
  };
  walk(root);
  return out;
}

test.each(["loose", "packed"])("the tree as git checks it out (%s objects)", async (store) => {
  if (store === "packed") git("gc", "-q");
  const out = join(dir, `out-${store}`);
  mkdirSync(out);
  expect(await writeTree(join(work, ".git"), head, out)).toBe(6);
  const want = snapshot(work);
  expect(Object.keys(want).length).toBe(9);
  expect(snapshot(out)).toEqual(want);
});
