// Nothing in a release reaches outside it, on the compiled binary: the agent's records live in
// meta/ (root's), a tree with .agent is refused, shared paths and setup outputs never follow a
// committed symlink, a forged process group in the tree is never killed, an upgraded node keeps
// its records, and a reused setup step leaves the release as running it would have.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isRoot, lookupUser, type UnixUser } from "../../agent/host/users.ts";
import { startTimeOf } from "../../agent/host/proc.ts";
import { alive, BUN, makeKit, type Kit } from "./kit.ts";

const ROLE = `
shared: [log]
setup:
  - run: sh -c 'mkdir -p build/out && cat deps.lock > build/out/dep.txt'
    inputs: [deps.lock]
    outputs: [build/out]
  - run: sh -c 'mkdir -p node_modules && echo ok > node_modules/dep.js'
    inputs: [package.json]
processes:
  web:
    run: sh -c 'test -f node_modules/dep.js && exec ${BUN} app.ts'
    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 4s }
    stop: { timeout: 3s }
`;

let k: Kit, user: UnixUser;
const bystanders: number[] = [];
if (!isRoot()) console.log("skipping release-safety: not root (the role's user cannot be created)");

beforeAll(async () => { if (isRoot()) k = await makeKit("safety", ROLE); });
afterAll(async () => {
  for (const p of bystanders) { try { process.kill(-p, "SIGKILL"); } catch {} }
  await k?.stop();
});

const web = () => k.status().processes.find((p: any) => p.name === "web");
const record = (c: string) => JSON.parse(readFileSync(join(k.state, "meta", c, "release.json"), "utf8"));
/** A process in its own group, as `uid` (root when omitted), that nothing of the agent's started. */
async function bystander(as?: UnixUser): Promise<{ pid: number; startTime: number }> {
  const p = Bun.spawn(["sleep", "300"], { detached: true, stdout: "ignore", stderr: "ignore", uid: as?.uid, gid: as?.gid });
  bystanders.push(p.pid);
  let st = startTimeOf(p.pid);
  while (st === null) { await Bun.sleep(10); st = startTimeOf(p.pid); }
  return { pid: p.pid, startTime: st };
}
/** Write a file as the role's user: what a process or setup step of the role could do. */
async function writeAsUser(path: string, text: string): Promise<number> {
  const p = Bun.spawn(["sh", "-c", `mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1"`, "sh", path, text],
    { uid: user.uid, gid: user.gid, stdout: "ignore", stderr: "ignore" });
  return p.exited;
}
/** Commit a symlink `link -> target` together with `files`, and pin it. */
async function releaseWithLink(link: string, target: string, files: Record<string, string | null>, message: string): Promise<string> {
  rmSync(join(k.repo.work, link), { recursive: true, force: true });
  mkdirSync(join(k.repo.work, link, ".."), { recursive: true });
  symlinkSync(target, join(k.repo.work, link));
  const c = await k.release(files, message);
  rmSync(join(k.repo.work, link), { force: true });    // the next commits drop it again
  return c;
}

describe.skipIf(!isRoot())("release safety (compiled binary)", () => {
  let v1: string, v2: string;

  test("the agent's records live in meta/<commit>/ (root's, 0700), none in the tree", async () => {
    v1 = await k.release({ "deps.lock": "lock1\n", "package.json": "{}\n", "VERSION": "v1\n" }, "v1");
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);
    user = (await lookupUser("agent-app"))!;
    expect(user).not.toBeNull();
    for (const d of [join(k.state, "meta"), join(k.state, "meta", v1)]) {
      const st = statSync(d);
      expect(st.mode & 0o777).toBe(0o700);
      expect(st.uid).toBe(0);
    }
    expect(record(v1).state).toBe("good");
    expect(readFileSync(join(k.state, "meta", v1, "release.log"), "utf8")).toContain("$ sh -c");
    expect(existsSync(join(k.state, "meta", "history.jsonl"))).toBe(true);
    expect(existsSync(join(k.state, "releases", v1, ".agent"))).toBe(false);
    expect(statSync(join(k.state, "releases", v1)).uid).toBe(user.uid);      // the tree is the role's
    // the role's user cannot write the agent's records
    expect(await writeAsUser(join(k.state, "meta", v1, "running.group"), "{}")).not.toBe(0);
    expect(existsSync(join(k.state, "meta", v1, "running.group"))).toBe(false);
  });

  test("a reused step's outputs are copies the new release owns; a step with inputs and no outputs runs again", async () => {
    const v1dep = join(k.state, "releases", v1, "build/out/dep.txt");
    v2 = await k.release({ "VERSION": "v2\n" }, "v2: inputs of both steps unchanged");
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);                                   // before: node_modules missing, rolled back, marked bad
    expect(k.status().current.commit).toBe(v2);
    expect(web()).toMatchObject({ commit: v2, healthy: true });
    expect(record(v2).steps.map((s: any) => s.outcome)).toEqual(["reused", "ran"]);
    expect(readFileSync(join(k.state, "releases", v2, "node_modules/dep.js"), "utf8")).toBe("ok\n");
    const v2dep = join(k.state, "releases", v2, "build/out/dep.txt");
    expect(readFileSync(v2dep, "utf8")).toBe("lock1\n");
    expect(statSync(v2dep).ino).not.toBe(statSync(v1dep).ino);   // a copy, not a link to the old release's file
    expect(statSync(v2dep).uid).toBe(user.uid);
    expect(await writeAsUser(v2dep, "changed\n")).toBe(0);
    expect(readFileSync(v1dep, "utf8")).toBe("lock1\n");         // the old release's file is untouched
  });

  test("a process group recorded in the tree by the role's user is never killed", async () => {
    const victim = await bystander();
    const cur = k.status().current.commit;
    // where agents before meta/ looked for a running step's group
    expect(await writeAsUser(join(k.state, "releases", cur, ".agent", "running.group"),
      JSON.stringify({ pgid: victim.pid, startTime: victim.startTime, uid: 0 }))).toBe(0);
    const r = await k.agent(["once"]);
    expect(alive(victim.pid)).toBe(true);                       // before: SIGKILLed by the next agent
    expect(r.code).toBe(0);
    expect(existsSync(join(k.state, "releases", cur, ".agent"))).toBe(false);
  });

  test("a node upgraded in place keeps its history and release records, and reaps its recorded orphans", async () => {
    const pid = web().pid;
    const orphan = await bystander(user);                       // a setup step a killed old agent left running
    // the layout of agents before meta/: records in the tree, history in releases/
    for (const c of readdirSync(join(k.state, "meta"))) {
      if (!/^[0-9a-f]{40}$/.test(c)) continue;
      const old = join(k.state, "releases", c, ".agent");
      if (!existsSync(join(k.state, "releases", c))) continue;
      mkdirSync(old, { recursive: true });
      for (const f of readdirSync(join(k.state, "meta", c))) renameSync(join(k.state, "meta", c, f), join(old, f));
    }
    writeFileSync(join(k.state, "releases", v2, ".agent", "running.group"), JSON.stringify({ pgid: orphan.pid, startTime: orphan.startTime, argv: ["sleep", "300"] }));
    renameSync(join(k.state, "meta", "history.jsonl"), join(k.state, "releases", ".history.jsonl"));
    rmSync(join(k.state, "meta"), { recursive: true });

    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);
    expect(web().pid).toBe(pid);                                // nothing redeployed
    expect(record(v1).state).toBe("good");
    expect(record(v2).state).toBe("good");
    expect(readFileSync(join(k.state, "meta", v2, "release.log"), "utf8")).toContain("reused");
    expect(existsSync(join(k.state, "releases", v2, ".agent"))).toBe(false);
    expect(existsSync(join(k.state, "releases", ".history.jsonl"))).toBe(false);
    const hist = JSON.parse((await k.agent(["history", "--json"])).stdout);
    expect(hist.map((e: any) => e.commit)).toEqual([v2, v1]);
    for (let i = 0; i < 100 && alive(orphan.pid); i++) await Bun.sleep(20);
    expect(alive(orphan.pid)).toBe(false);                      // the recorded group was carried and reaped
  });

  test("a committed .agent is refused with a clear error, and nothing is written where it points", async () => {
    const outside = join(k.dir, "outside-agent");
    mkdirSync(outside);
    const pid = web().pid;
    const bad = await releaseWithLink(".agent", outside, { "VERSION": "v3\n" }, "v3: ships .agent");
    const r = await k.agent(["once"]);
    expect(readdirSync(outside)).toEqual([]);                   // before: release.json and the log landed here
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ReleaseRefused");
    expect(r.stderr).toContain("remove .agent from the repository");
    expect(existsSync(join(k.state, "releases", bad))).toBe(false);
    expect(record(bad)).toMatchObject({ state: "failed", reason: "ReleaseRefused" });
    const hist = JSON.parse((await k.agent(["history", "--json"])).stdout);
    expect(hist.find((e: any) => e.commit === bad)).toMatchObject({ state: "failed", reason: "ReleaseRefused", kept: false });
    expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${v2}`);
    expect(web().pid).toBe(pid);
  });

  test("shared: through a committed directory symlink is refused; the file it points at is neither moved nor chowned", async () => {
    const outside = join(k.dir, "outside-etc");
    mkdirSync(outside);
    writeFileSync(join(outside, "passwd"), "precious\n");
    const bad = await releaseWithLink("conf", outside, { "VERSION": "v4\n", "roles/web.yaml": ROLE.replace("shared: [log]", "shared: [log, conf/passwd]") }, "v4: conf -> outside");
    const r = await k.agent(["once"]);
    expect(existsSync(join(outside, "passwd")) && readFileSync(join(outside, "passwd"), "utf8")).toBe("precious\n");   // before: moved into shared/
    expect(statSync(join(outside, "passwd")).uid).toBe(0);                      // before: chowned to the role's user
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("UnsafePath");
    expect(r.stderr).toContain("conf is a symbolic link");
    expect(existsSync(join(k.state, "shared", "conf"))).toBe(false);
    expect(record(bad).state).toBe("failed");
    expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${v2}`);
  });

  test("a reused output under a committed directory symlink is refused; nothing outside is removed or replaced", async () => {
    const outside = join(k.dir, "outside-build");
    mkdirSync(join(outside, "out"), { recursive: true });
    writeFileSync(join(outside, "out", "precious.txt"), "precious\n");
    await releaseWithLink("build", outside, { "VERSION": "v5\n" }, "v5: build -> outside");
    const r = await k.agent(["once"]);
    expect(existsSync(join(outside, "out", "precious.txt"))).toBe(true);                      // before: deleted
    expect(existsSync(join(outside, "out", "dep.txt"))).toBe(false);                          // before: linked in
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("UnsafePath");
    expect(lstatSync(outside).isDirectory()).toBe(true);
    expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${v2}`);
  });

  test("a hook whose user cannot be looked up any more fails closed: it never runs as root", async () => {
    const name = `agtgone${process.pid % 100000}`;
    const roleText = `user: ${name}
setup:
  - run: sh -c 'touch started; while [ ! -e go ]; do sleep 0.05; done'
    timeout: 1m
hooks:
  before_cutover: ["sh -c 'id -u > hook-uid.txt'"]
processes:
  web: { run: ${BUN} app.ts }
`;
    try {
      const c = await k.release({ "VERSION": "v6\n", "roles/web.yaml": roleText }, "v6: its own user");
      const rel = join(k.state, "releases", c);
      const run = k.agent(["once"]);
      for (let i = 0; i < 1000 && !existsSync(join(rel, "started")); i++) await Bun.sleep(20);
      expect(existsSync(join(rel, "started"))).toBe(true);       // setup runs as the user, which exists
      expect(Bun.spawnSync(["userdel", "-f", name]).exitCode).toBe(0);
      writeFileSync(join(rel, "go"), "");
      const r = await run;
      expect(existsSync(join(rel, "hook-uid.txt"))).toBe(false);   // before: the hook ran, as root (uid 0)
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`the role's user ${name} cannot be looked up`);
      expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${v2}`);
      // the host's fault, not the commit's: not marked bad, tried again once the user is back
      expect(JSON.parse(readFileSync(join(k.state, "state.json"), "utf8")).badCommits).not.toContain(c);
    } finally {
      Bun.spawnSync(["userdel", "-f", name]);
      Bun.spawnSync(["groupdel", name]);
    }
  });
});
