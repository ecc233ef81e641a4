// Faults on the compiled binary: a release that crashes on start, the agent SIGKILLed mid-fetch and
// right after the switch of `current` and in a before_cutover hook, a newer pin cancelling a slow setup, a manifest that does not
// parse. Each ends with nothing lost: the last good release keeps serving, or the new one converged.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { AGENT, APP, alive, get, makeKit, manifest, role, statusHere, type Kit } from "./kit.ts";
import { groupMembers } from "../../agent/host/proc.ts";

let k: Kit;
let daemon: Subprocess | null = null;
let starts = 0;
let setupGroup = 0;

beforeAll(async () => { k = await makeKit("faults", role(), { proxy: true }); });
afterAll(async () => {
  await kill();
  if (setupGroup) try { process.kill(-setupGroup, "SIGKILL"); } catch {}   // only if the test failed before the agent killed it
  await k?.stop();
});

const web = (s: any) => s.processes.find((p: any) => p.name === "web");
const stateJson = () => JSON.parse(readFileSync(join(k.state, "state.json"), "utf8"));
const releaseJson = (c: string) => JSON.parse(readFileSync(join(k.state, "meta", c, "release.json"), "utf8"));
const currentLink = () => { try { return readlinkSync(join(k.state, "current")); } catch { return null; } };

function start() {
  const log = Bun.file(join(k.dir, `daemon-${++starts}.log`));
  daemon = Bun.spawn([AGENT, "run"], { env: { ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1" }, stdout: log, stderr: log });
}
async function kill() {
  if (!daemon) return;
  daemon.kill("SIGKILL");
  await daemon.exited;
  daemon = null;
}
/** The daemon's status (else status.json's), as `agent status --json` reads it; see kit's statusHere. */
const status = (): Promise<any> => statusHere(k);
async function until<T>(what: string, ok: () => T | Promise<T>, ms = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await ok();
    if (v) return v as NonNullable<T>;
    await Bun.sleep(100);
  }
  // the status for the message is read once, at the end: each read is a run of the binary
  const last = await status().catch(() => null);
  throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last)?.slice(0, 800)}`);
}
const convergedOn = (commit: string) => until(`converged on ${commit.slice(0, 7)}`, async () => {
  const s = await status();
  return s?.phase === "converged" && s.current.commit === commit ? s : null;
});

/** Processes whose process group is `pgid` (a setup step and everything it started). */
const group = groupMembers;

/** A directory the role's user may write markers into. */
function markers(): string {
  const m = join(k.dir, "markers");
  mkdirSync(m, { recursive: true, mode: 0o777 });
  chmodSync(m, 0o777);
  return m;
}

/** A healthy release's files: every test's changes are undone, since the repo keeps them otherwise. */
const files = (version: string, over: Record<string, string> = {}) => ({ VERSION: `${version}\n`, "app.ts": APP, "roles/web.yaml": role(), ...over });

let good: string;

describe("faults under `agent once`", () => {
  test("a first release converges", async () => {
    good = await k.release(files("v1"), "v1");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(k.status().current.commit).toBe(good);
  });

  test("a release whose process crashes on start fails fast (long deadline), is rolled back and marked bad", async () => {
    const before = web(k.status()).pid;
    // a 10-minute health deadline: only the crash-loop verdict can end this within the test's timeout
    const crashing = role().replace("deadline: 4s", "deadline: 10m");
    const bad = await k.release(files("v2", { "roles/web.yaml": crashing, "app.ts": `console.error("boom: cannot start"); process.exit(1);\n` }), "v2 crashes on start");
    const r = await k.agent(["once"], { timeoutMs: 55_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ProcessNotHealthy");
    expect(r.stderr).toContain("rolled back");
    const s = k.status();
    expect(s.current.commit).toBe(good);
    expect(s.badCommits).toContain(bad);
    expect(web(s)).toMatchObject({ commit: good, healthy: true, pid: before });
    expect(alive(before)).toBe(true);
    expect(releaseJson(bad).state).toBe("failed");
    expect(stateJson().deploying).toBeNull();
  }, 60_000);

  test("`agent logs web` shows the process output, the crashed release's included", async () => {
    const r = await k.agent(["logs", "web"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("app listening on");
    expect(r.stdout).toContain("boom: cannot start");
  });

  test("`agent history` lists the releases with how they ended", async () => {
    const r = await k.agent(["history"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    const bad = k.status().badCommits.at(-1) as string;
    expect(lines.find((l) => l.includes(good.slice(0, 7)))).toMatch(/good|active/);
    expect(lines.find((l) => l.includes(bad.slice(0, 7)))).toContain("failed");
    const json = JSON.parse((await k.agent(["history", "--json"])).stdout);
    expect(json.find((e: any) => e.commit === bad).state).toBe("failed");
  });
});

describe("faults under `agent run`", () => {
  test("the daemon adopts the running release and keeps refusing the bad commit", async () => {
    const pid = web(k.status()).pid;
    start();
    const s = await until("the daemon's first tick", async () => {
      const x = await status();
      // an adopted process counts as healthy again once its first check passes
      return x?.source === "daemon" && x.lastTick.reason === "CommitMarkedBad" && web(x)?.healthy ? x : null;
    });
    expect(web(s)).toMatchObject({ commit: good, healthy: true, pid });
  });

  let fetched: string;
  test("SIGKILLed during a fetch: nothing half-fetched is used; after a restart it converges", async () => {
    k.proxy!.holdFetches = true;
    fetched = await k.release(files("v3"), "v3");
    await k.agent(["sync"]);
    await until("a fetch held mid-flight", () => k.proxy!.held > 0);
    await kill();
    k.proxy!.holdFetches = false;
    // no release of the new commit can be taken for ready; current did not move
    const dir = join(k.state, "releases", fetched);
    if (existsSync(join(k.state, "meta", fetched, "release.json"))) expect(releaseJson(fetched).state).toBe("preparing");
    expect(currentLink()).toBe(`releases/${good}`);
    expect(alive(web(k.status()).pid)).toBe(true);
    start();
    const s = await convergedOn(fetched);
    expect(web(s)).toMatchObject({ commit: fetched, healthy: true });
    expect(releaseJson(fetched).state).toBe("good");
    const port = stateJson().processes.find((p: any) => p.name === "web").port;
    expect((await get(`http://127.0.0.1:${port}/`)).text).toContain("v3");
  }, 60_000);

  test("SIGKILLed right after the switch of `current`: the next agent ends converged or rolled back, never half-switched", async () => {
    const oldPid = web(await status()).pid;
    const slowApp = `await Bun.sleep(1500);\n${APP}`;
    const slow = await k.release(files("v4", { "app.ts": slowApp }), "v4 starts slowly");
    await k.agent(["sync"]);
    await until("current switched during the cutover", () => {
      try { return stateJson().deploying?.commit === slow && currentLink() === `releases/${slow}`; } catch { return false; }
    });
    await kill();
    start();
    const s = await until("the cutover finished or undone", async () => {
      const x = await status();
      return x && (x.phase === "converged" || x.badCommits.includes(slow)) && !stateJson().deploying ? x : null;
    });
    const now = s.current.commit as string;
    expect([slow, fetched]).toContain(now);
    expect(currentLink()).toBe(`releases/${now}`);
    expect(stateJson().deploying).toBeNull();
    const w = web(await convergedOn(now));
    expect(w).toMatchObject({ commit: now, healthy: true });
    expect(alive(w.pid)).toBe(true);
    if (now === slow) expect(alive(oldPid)).toBe(false);
    // every supervised process belongs to the release `current` points at
    expect(stateJson().processes.every((p: any) => p.commit === now)).toBe(true);
  }, 60_000);

  test("a newer pin while a slow setup step runs: the stale preparation is cancelled (its group killed) and the newer commit deployed", async () => {
    const pidFile = join(markers(), "setup-pid");
    const stale = await k.release(files("v5", { "roles/web.yaml": role() + `setup:\n  - run: /bin/sh -c "echo $$ > ${pidFile}; sleep 300; true"\n` }), "v5 with a setup step that hangs");
    await k.agent(["sync"]);
    const pgid = await until("the setup step running", () => { try { return Number(readFileSync(pidFile, "utf8").trim()) || null; } catch { return null; } });
    setupGroup = pgid;
    expect(group(pgid).length).toBeGreaterThan(0);
    const newer = await k.release(files("v6"), "v6");
    const s = await convergedOn(newer);
    expect(web(s)).toMatchObject({ commit: newer, healthy: true });
    expect(group(pgid)).toEqual([]);
    expect(s.badCommits).not.toContain(stale);
    expect(releaseJson(stale).state).not.toBe("ready");
  }, 60_000);

  // A setup step runs in its own process group (so a cancel can reach it whole), which also means
  // it outlives an agent that is SIGKILLed: its group is recorded, and the next agent waits for it
  // up to the step's timeout, then kills what is left.
  test("SIGKILLed during a setup step: the next agent waits for the orphaned step up to its timeout, then kills its process group", async () => {
    const m = markers(), pidFile = join(m, "orphan-pid"), once = join(m, "orphan-ran");
    const v = await k.release(files("v6b", { "roles/web.yaml": role() + `setup:\n  - run: /bin/sh -c "if [ -e ${once} ]; then exit 0; fi; touch ${once}; echo $$ > ${pidFile}; sleep 300; true"\n    timeout: 5s\n` }), "v6b with a setup step that hangs once");
    await k.agent(["sync"]);
    const pgid = await until("the setup step running", () => { try { return Number(readFileSync(pidFile, "utf8").trim()) || null; } catch { return null; } });
    await kill();
    start();
    await convergedOn(v);
    const left = group(pgid);
    try { process.kill(-pgid, "SIGKILL"); } catch {}
    expect(left).toEqual([]);
  }, 60_000);

  test("SIGKILLed during a before_cutover hook: nothing was switched; after a revert the next agent waits for the hook, then converges on the running release", async () => {
    const running = web(await status());
    const was = running.commit as string;
    const pidFile = join(markers(), "hook-pid");
    await k.release(files("v6c", { "roles/web.yaml": role() + `hooks:\n  before_cutover: ['/bin/sh -c "echo $$ > ${pidFile}; sleep 4; true"']\n` }), "v6c with a slow before_cutover hook");
    await k.agent(["sync"]);
    const pgid = await until("the hook running", () => { try { return Number(readFileSync(pidFile, "utf8").trim()) || null; } catch { return null; } });
    setupGroup = pgid;
    expect(currentLink()).toBe(`releases/${was}`);
    await kill();
    await k.repo.commit({ "manifests/staging.yaml": manifest(was) }, "back to the running release");
    start();
    const s = await convergedOn(was);
    expect(web(s)).toMatchObject({ pid: running.pid, commit: was, healthy: true });
    expect(alive(running.pid)).toBe(true);
    expect(stateJson().deploying).toBeNull();
    expect(group(pgid)).toEqual([]);
  }, 60_000);

  test("a manifest at the tip that does not parse: status shows ManifestInvalid at file:line, the release keeps running; a fix recovers", async () => {
    const running = web(await status());
    const head = k.repo.head;
    await k.repo.commit({ "manifests/staging.yaml": "poll: 1s\ncommit: not-a-commit\n" }, "a broken manifest");
    await k.agent(["sync"]);
    const s = await until("ManifestInvalid reported", async () => {
      const x = await status();
      return x?.lastTick.reason === "ManifestInvalid" && x.desired.tip === k.repo.head ? x : null;
    });
    expect(s.lastTick.error).toMatch(/manifests\/staging\.yaml:2:\d+/);
    const text = await k.agent(["status"]);
    expect(text.stdout + text.stderr).toContain("ManifestInvalid");
    expect(text.stdout + text.stderr).toMatch(/manifests\/staging\.yaml:2:\d+/);
    expect(web(s)).toMatchObject({ pid: running.pid, commit: running.commit, healthy: true });
    expect(alive(running.pid)).toBe(true);
    expect(head).not.toBe(k.repo.head);
    const fixed = await k.release(files("v7"), "v7 and a valid manifest");
    await k.agent(["sync"]);
    const after = await convergedOn(fixed);
    expect(after.lastTick.reason).toBeNull();
  }, 60_000);
});
