// PackReader (source/pack.ts), which reads a release's blobs straight from the store's packs: every
// object of packs the git CLI wrote (whole objects, ofs-deltas, ref-deltas, a thin pack's deltas
// against another pack) as `git cat-file` shows it; null for what is in no pack; a corrupt pack is
// an error, never wrong bytes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs, { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import isogit from "isomorphic-git";
import { applyDelta, PackReader } from "../../agent/source/pack.ts";

let dir: string, work: string;
const run = (cwd: string, args: string[], input?: string) => {
  const p = Bun.spawnSync(["git", ...args], { cwd, stdin: input === undefined ? "ignore" : Buffer.from(input), env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@example.com", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@example.com" } });
  if (p.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${p.stderr}`);
  return p.stdout.toString().trim();
};
const git = (...args: string[]) => run(work, args);
const base = randomBytes(30_000).toString("base64");

/** A bare store holding one pack of `objects` (pack-objects: ofs-deltas with --delta-base-offset, else ref-deltas). */
function store(name: string, objects: string[], flags: string[]): string {
  const gitdir = join(dir, name);
  run(dir, ["init", "-q", "--bare", gitdir]);
  const packDir = join(gitdir, "objects", "pack");
  const id = run(work, ["pack-objects", ...flags, join(packDir, "pack")], objects.join("\n") + "\n");
  expect(id).toMatch(/^[0-9a-f]{40}$/);
  return gitdir;
}
/** Objects stored as deltas in `gitdir`'s packs (`git verify-pack -v`: 7 columns). */
function deltas(gitdir: string): number {
  const packDir = join(gitdir, "objects", "pack");
  return readdirSync(packDir).filter((n) => n.endsWith(".idx")).reduce((n, idx) => n + run(dir, ["verify-pack", "-v", join(packDir, idx)])
    .split("\n").filter((l) => /^[0-9a-f]{40} /.test(l) && l.trim().split(/\s+/).length === 7).length, 0);
}
let objects: string[];
const catFile = (oid: string) => ({ type: git("cat-file", "-t", oid), content: Bun.spawnSync(["git", "-C", work, "cat-file", git("cat-file", "-t", oid), oid]).stdout });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "source-pack-"));
  work = join(dir, "work");
  mkdirSync(join(work, "lib"), { recursive: true });
  run(dir, ["init", "-q", "-b", "main", work]);
  for (let i = 0; i < 12; i++) writeFileSync(join(work, "lib", `f${i}.txt`), `${base}\nfile ${i}\n${"x".repeat(i * 100)}`);   // near copies: deltas
  writeFileSync(join(work, "empty"), "");
  git("add", "-A"); git("commit", "-q", "-m", "one");
  writeFileSync(join(work, "lib", "f0.txt"), `${base}\nchanged\n`);
  git("add", "-A"); git("commit", "-q", "-m", "two");
  objects = git("rev-list", "--objects", "main").split("\n").map((l) => l.split(" ")[0]!);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("PackReader", () => {
  test.each([["ofs-deltas", ["--delta-base-offset"]], ["ref-deltas", []]])("reads every object of a pack with %s as git does", (name, flags) => {
    const gitdir = store(name, objects, flags);
    expect(deltas(gitdir)).toBeGreaterThan(5);
    const packs = PackReader.open(gitdir);
    for (const oid of objects) {
      const o = packs.read(oid)!;
      const want = catFile(oid);
      expect(o.type).toBe(want.type as never);
      expect(o.content.equals(want.content)).toBe(true);
    }
  });

  test("reads a thin pack's deltas against objects in another pack", async () => {
    const gitdir = store("thin", git("rev-list", "--objects", "main~1").split("\n").map((l) => l.split(" ")[0]!), ["--delta-base-offset"]);
    const second = git("rev-list", "--objects", "main~1..main").split("\n").map((l) => l.split(" ")[0]!);
    // the second commit's objects as a thin pack (deltas against the first commit's), beside the first pack
    const thin = Bun.spawnSync(["git", "-C", work, "pack-objects", "--thin", "--stdout", "--revs"], { stdin: Buffer.from("main\n^main~1\n") }).stdout;
    const file = `objects/pack/pack-${Buffer.from(thin.subarray(-20)).toString("hex")}.pack`;
    writeFileSync(join(gitdir, file), thin);
    await isogit.indexPack({ fs, dir: gitdir, gitdir, filepath: file });   // as a fetch stores it: the bases stay in the other pack
    expect(() => deltas(gitdir)).toThrow(/unresolved deltas/);   // git itself cannot read it alone: it is thin
    const packs = PackReader.open(gitdir);
    for (const oid of second) expect(packs.read(oid)!.content.equals(catFile(oid).content)).toBe(true);
  });

  test("null for an object in no pack, and for a store without packs", () => {
    const gitdir = store("some", objects.slice(0, 3), []);
    expect(PackReader.open(gitdir).read(objects[5]!)).toBeNull();
    expect(PackReader.open(gitdir).read("0".repeat(40))).toBeNull();
    expect(PackReader.open(join(dir, "nowhere")).read(objects[0]!)).toBeNull();
  });

  test("a corrupt pack is an error naming it, never other bytes", () => {
    const gitdir = store("corrupt", objects, []);
    const packDir = join(gitdir, "objects", "pack");
    const pack = join(packDir, readdirSync(packDir).find((n) => n.endsWith(".pack"))!);
    const bytes = readFileSync(pack);
    // a byte inside each object's compressed data: an inflate error, a wrong size, or content that hashes to another id
    const offsets = run(dir, ["verify-pack", "-v", pack.replace(/pack$/, "idx")]).split("\n").filter((l) => /^[0-9a-f]{40} /.test(l))
      .map((l) => { const f = l.trim().split(/\s+/); return { oid: f[0]!, offset: Number(f[4]), size: Number(f[3]) }; });
    const whole = offsets.find((o) => catFile(o.oid).type === "blob" && o.size > 100)!;
    bytes[whole.offset + Math.floor(whole.size / 2)]! ^= 0x55;
    writeFileSync(pack, bytes);
    expect(() => PackReader.open(gitdir).read(whole.oid)).toThrow(/pack-[0-9a-f]{40}\.pack/);
  });
});

describe("applyDelta", () => {
  test("copies and inserts; a delta for another base is refused", () => {
    const baseBuf = Buffer.from("hello, world");
    // base size 12, result size 11: copy 7 bytes at 0 ("hello, "), insert "git!"
    const delta = Buffer.from([12, 11, 0x80 | 0x10, 7, 4, ...Buffer.from("git!")]);
    expect(applyDelta(delta, baseBuf).toString()).toBe("hello, git!");
    expect(() => applyDelta(delta, Buffer.from("short"))).toThrow(/base of 12 bytes/);
    expect(() => applyDelta(Buffer.from([12, 11, 0]), baseBuf)).toThrow(/reserved instruction/);
  });
});
