// Preparing releases beside the running one: shared links, setup steps (run, reused, failed,
// timed out, cancelled), packages, the role's user, the `current` switch, retention, history.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { MemoryPackages } from "../../agent/host/packages.ts";
import { isRoot, lookupUser, SystemUsers, type UserManager } from "../../agent/host/users.ts";
import { parseRole } from "../../agent/manifest/parse.ts";
import { linkShared, prepareRelease, runAs, runInRelease } from "../../agent/source/prepare.ts";
import { Source } from "../../agent/source/source.ts";
import { layout, type Layout } from "../../agent/state/layout.ts";
import { currentCommit, markRelease, pruneReleases, readHistory, readRelease, switchCurrent } from "../../agent/state/releases.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { startGitServer, type GitServer } from "../servers/git.ts";

let dir: string, server: GitServer, repo: TestRepo;
// The role's user resolves to the agent's own (root when the tests run as root): no useradd.
const noUsers: UserManager = { ensure: async () => isRoot() ? { name: "root", uid: 0, gid: 0 } : null };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "release-"));
  repo = await makeRepo(join(dir, "srv"), "app", { "package.json": "{}\n", "log/keep": "seed\n", "bin/build": "#!/bin/sh\nmkdir -p out && date +%s%N > out/stamp && echo built >> $RELEASE_DIR/built.txt\n" });
  server = await startGitServer({ root: join(dir, "srv") });
});
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });

function role(yaml: string) {
  const r = parseRole(yaml, "roles/web.yaml");
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.value;
}

async function setup(name: string) {
  const l = layout(join(dir, name));
  const src = new Source({ gitdir: l.repo, url: `${server.url}/app.git`, branch: "main", timeoutMs: 5000, log: memoryLogger(), allowForcePush: false });
  const deploy = async (commit: string) => { await src.ensureCommit(commit); return src.checkout(commit, l); };
  return { l, src, deploy };
}

const BUILD = `user: app
shared: [log, tmp, .env]
setup:
  - run: bin/build
    inputs: [package.json]
    outputs: [out]
`;

test("prepare links shared paths, runs setup, reuses it when inputs are unchanged", async () => {
  const { l, deploy } = await setup("prep");
  const c1 = repo.head;
  await deploy(c1);
  const pk = new MemoryPackages(new Set(["curl"]));
  const r1 = await prepareRelease({ layout: l, commit: c1, role: role(BUILD + "packages: [curl, jq]\n"), previous: null, packages: pk, users: noUsers, log: memoryLogger() });
  expect(r1.state).toBe("ready");
  expect(r1.steps[0]).toMatchObject({ outcome: "ran", exitCode: 0 });
  expect(pk.installs).toEqual([["jq"]]);
  const rel1 = l.release(c1);
  expect(readFileSync(join(rel1, "built.txt"), "utf8")).toBe("built\n");
  expect(lstatSync(join(rel1, "log")).isSymbolicLink()).toBe(true);
  expect(readFileSync(join(l.shared, "log", "keep"), "utf8")).toBe("seed\n");   // seeded from the checkout
  expect(statSync(join(l.shared, "tmp")).isDirectory()).toBe(true);
  expect(statSync(join(l.shared, ".env")).isFile()).toBe(true);
  expect(readFileSync(l.releaseLog(c1), "utf8")).toContain("$ bin/build");
  switchCurrent(l, c1);
  markRelease(l, c1, "active", Date.now());
  markRelease(l, c1, "good", Date.now());

  // one unrelated file changes: inputs unchanged => outputs copied, step not run
  const c2 = await repo.commit({ "README.md": "two\n" }, "readme");
  await deploy(c2);
  const r2 = await prepareRelease({ layout: l, commit: c2, role: role(BUILD), previous: c1, packages: pk, users: noUsers, log: memoryLogger() });
  expect(r2.steps[0]!.outcome).toBe("reused");
  expect(existsSync(join(l.release(c2), "built.txt"))).toBe(false);
  expect(readFileSync(join(l.release(c2), "out/stamp"), "utf8")).toBe(readFileSync(join(rel1, "out/stamp"), "utf8"));
  expect(readFileSync(join(l.shared, "log", "keep"), "utf8")).toBe("seed\n");

  // package.json changes => the step runs again
  const c3 = await repo.commit({ "package.json": "{\"a\":1}\n" }, "deps");
  await deploy(c3);
  const r3 = await prepareRelease({ layout: l, commit: c3, role: role(BUILD), previous: c1, packages: pk, users: noUsers, log: memoryLogger() });
  expect(r3.steps[0]!.outcome).toBe("ran");
  expect(currentCommit(l)).toBe(c1);   // preparing never touches current
});

test("a failing step, a hanging step and a cancelled one leave current and its files untouched", async () => {
  const { l, deploy } = await setup("fail");
  const good = repo.head;
  await deploy(good);
  await prepareRelease({ layout: l, commit: good, role: role("setup: []\n"), previous: null, packages: new MemoryPackages(), users: noUsers, log: memoryLogger() });
  switchCurrent(l, good);
  const before = readFileSync(join(l.current, "package.json"), "utf8");
  const prep = async (commit: string, yaml: string, signal?: AbortSignal) => {
    await deploy(commit);
    try { await prepareRelease({ layout: l, commit, role: role(yaml), previous: good, packages: new MemoryPackages(), users: noUsers, log: memoryLogger(), signal }); }
    catch (e) { expect(e).toBeInstanceOf(AgentError); return e as AgentError; }
    throw new Error("expected failure");
  };
  const c1 = await repo.commit({ "f1": "1" }, "fails");
  const e1 = await prep(c1, "setup:\n  - run: sh -c 'echo boom >&2; exit 3'\n");
  expect(e1.reason).toBe("SetupFailed");
  expect(e1.message).toContain(l.releaseLog(c1));
  expect(readRelease(l, c1)).toMatchObject({ state: "failed", reason: "SetupFailed" });
  expect(readFileSync(l.releaseLog(c1), "utf8")).toContain("boom");

  const c2 = await repo.commit({ "f2": "2" }, "hangs");
  const e2 = await prep(c2, "setup:\n  - run: sleep 30\n    timeout: 300ms\n");
  expect(e2.reason).toBe("SetupTimedOut");
  expect(readRelease(l, c2)?.steps).toEqual([]);

  const c3 = await repo.commit({ "f3": "3" }, "cancelled");
  const ac = new AbortController();
  const marker = join(dir, "cancel-marker");
  const p = prep(c3, `setup:\n  - run: sh -c 'touch ${marker}; exec sleep 30'\n`, ac.signal);
  while (!existsSync(marker)) await Bun.sleep(20);
  ac.abort();
  expect((await p).reason).toBe("PreparationCancelled");
  expect(readRelease(l, c3)?.state).toBe("failed");

  expect(currentCommit(l)).toBe(good);
  expect(readFileSync(join(l.current, "package.json"), "utf8")).toBe(before);
});

test("retention keeps five good, three failed, the active and in-use releases; history outlives them", async () => {
  const { l } = await setup("retain");
  const fake = (i: number) => (i.toString(16).padStart(2, "0")).repeat(20);
  const { mkdirSync } = await import("node:fs");
  const { newRelease, writeRelease } = await import("../../agent/state/releases.ts");
  for (let i = 1; i <= 12; i++) {
    const c = fake(i);
    mkdirSync(l.release(c), { recursive: true });
    writeRelease(l, newRelease(l, c, `release ${i}`, i * 1000));
    markRelease(l, c, i % 3 === 0 ? "failed" : "good", i * 1000 + 1, i % 3 === 0 ? { reason: "SetupFailed", message: "x" } : {});
  }
  switchCurrent(l, fake(1));
  const removed = pruneReleases(l, [fake(2)]);
  const kept = [1, 2, 12, 11, 10, 8, 7, 9, 6, 5].map(fake);   // current, in use, 5 newest good, 3 newest failed
  for (const c of kept) expect(existsSync(l.release(c))).toBe(true);
  expect(removed.sort()).toEqual([3, 4].map(fake).sort());
  for (const c of removed) expect(existsSync(l.releaseMetaDir(c))).toBe(false);   // records go with their release
  for (const c of kept) expect(readRelease(l, c)).not.toBeNull();
  const h = readHistory(l);
  expect(h.length).toBe(12);
  expect(h[0]!.commit).toBe(fake(12));
  expect(h.find((e) => e.commit === fake(3))).toMatchObject({ state: "failed", reason: "SetupFailed", kept: false });
  expect(h.find((e) => e.commit === fake(1))?.current).toBe(true);
  expect(readlinkSync(l.current)).toBe(join("releases", fake(1)));
});

if (!isRoot()) console.log("skipping one test: not root, cannot create users");
test.skipIf(!isRoot())("as root: the role's user is created and setup runs as it", async () => {
  const name = `agt${process.pid % 100000}`;
  try {
    const { l, deploy } = await setup("user");
    const c = repo.head;
    await deploy(c);
    const marker = "whoami.txt";
    await prepareRelease({ layout: l, commit: c, role: role(`user: ${name}\nsetup:\n  - run: sh -c 'id -un > ${marker}'\n`), previous: null, packages: new MemoryPackages(), users: new SystemUsers(), log: memoryLogger() });
    const u = await lookupUser(name);
    expect(u).not.toBeNull();
    expect(readFileSync(join(l.release(c), marker), "utf8").trim()).toBe(name);
    expect(statSync(l.release(c)).uid).toBe(u!.uid);
  } finally {
    Bun.spawnSync(["userdel", name]);
  }
});

test.skipIf(!isRoot())("as root: a role's user that cannot be looked up fails closed; setup never runs as root instead", async () => {
  const { l, deploy } = await setup("nouser");
  const c = await repo.commit({ "f-nouser": "1" }, "no user");
  await deploy(c);
  const unknown: UserManager = { ensure: async () => null };
  const r = prepareRelease({ layout: l, commit: c, role: role("user: ghost\nsetup:\n  - run: sh -c 'id -u > whoami.txt'\n"), previous: null, packages: new MemoryPackages(), users: unknown, log: memoryLogger() });
  await expect(r).rejects.toMatchObject({ reason: "UserUnknown" });
  expect(existsSync(join(l.release(c), "whoami.txt"))).toBe(false);
  expect(readRelease(l, c)).toMatchObject({ state: "failed", reason: "UserUnknown" });
  // hooks resolve their user the same way; root only when the role says so
  await expect(runAs(`agt-nosuch-${process.pid}`)).rejects.toMatchObject({ reason: "UserUnknown" });
  expect(await runAs("root")).toMatchObject({ uid: 0 });
  await expect(runInRelease(l, c, null, "true", { timeoutMs: 5000 })).rejects.toThrow("never runs a role's command as root");
});

test("a symlinked parent of a role path is refused, never followed", async () => {
  const { l, deploy } = await setup("links");
  const c = await repo.commit({ "f-links": "1" }, "links");
  await deploy(c);
  const outside = join(dir, "links-outside");
  const { mkdirSync, symlinkSync } = await import("node:fs");
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, "secret"), "s\n");
  symlinkSync(outside, join(l.release(c), "conf"));
  for (const yaml of ["shared: [conf/secret]\n", "processes:\n  web: { run: x, cwd: conf }\n", "processes:\n  web: { run: x, cwd: conf/sub }\n", "setup:\n  - run: 'true'\n    inputs: [conf/secret]\n    outputs: [out]\n", "setup:\n  - run: 'true'\n    inputs: [a]\n    outputs: [conf/x]\n"]) {
    const r = prepareRelease({ layout: l, commit: c, role: role(yaml), previous: null, packages: new MemoryPackages(), users: noUsers, log: memoryLogger() });
    await expect(r).rejects.toMatchObject({ reason: "UnsafePath" });
  }
  expect(readFileSync(join(outside, "secret"), "utf8")).toBe("s\n");
  // shared/ is the role's user's: a link planted there is refused too
  mkdirSync(l.shared, { recursive: true });
  symlinkSync(outside, join(l.shared, "cfg"));
  expect(() => linkShared(l, l.release(c), ["cfg/secret"])).toThrow("cfg is a symbolic link in the shared directory");
  expect(existsSync(join(outside, "secret"))).toBe(true);
});

test("agent history lists the releases newest first, as text and JSON", async () => {
  const state = join(dir, "retain");   // written by the retention test
  const main = join(import.meta.dir, "../../agent/main.ts");
  const run = (...args: string[]) => Bun.spawnSync([process.execPath, main, "history", ...args], { stdout: "pipe", stderr: "pipe" });
  const json = run("--json", "--state-dir", state);
  expect(json.exitCode).toBe(0);
  const list = JSON.parse(json.stdout.toString());
  expect(list.length).toBe(12);
  expect(list[0].commit).toBe("0c".repeat(20));
  expect(list.filter((e: { state: string }) => e.state === "failed").length).toBe(4);
  const text = run("--state-dir", state);
  expect(text.stdout.toString()).toContain("SetupFailed");
  expect(text.stdout.toString().split("\n")[0]).toContain("0c0c0c0c0c0c");
  expect(run("--help").stdout.toString()).toContain("Example");
  expect(run("--state-dir", join(dir, "nowhere")).exitCode).toBe(1);
});
