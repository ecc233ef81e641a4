// Deploy safety on the compiled binary: no failure wedges a node, and no stop, restart or newer
// pin condemns a good commit. An error after the switch of `current` rolls back; a SIGTERM leaves
// a running hook or setup step running and the next agent waits for it; a newer pin stops a setup
// step with SIGTERM and never cuts off a cutover; a reboot mid-cutover gets a fresh health
// deadline; a failed first deploy fails once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { AGENT, APP, alive, makeKit, role, statusHere, stopApps, type Kit } from "./kit.ts";
import { groupMembers } from "../../agent/host/proc.ts";
import { isRoot } from "../../agent/host/users.ts";

/** A daemon per kit, with the helpers the tests below share. */
function node(k: () => Kit) {
  let daemon: Subprocess | null = null;
  let starts = 0;
  const h = {
    start() {
      const log = Bun.file(join(k().dir, `daemon-${++starts}.log`));
      daemon = Bun.spawn([AGENT, "run"], { env: { ...process.env, AGENT_CONFIG: k().config, NO_COLOR: "1" }, stdout: log, stderr: log });
    },
    /** A daemon that has ticked (started when none runs). */
    async running() {
      if (daemon) return;
      h.start();
      await h.until("the daemon's first tick", async () => (await h.status())?.source === "daemon");
    },
    async stop(signal: "SIGKILL" | "SIGTERM") {
      if (!daemon) return;
      daemon.kill(signal);
      await daemon.exited;
      daemon = null;
    },
    /** The daemon's status (else status.json's), as `agent status --json` reads it; see kit's statusHere. */
    status: (): Promise<any> => statusHere(k()),
    async until<T>(what: string, ok: () => T | Promise<T>, ms = 40_000): Promise<NonNullable<T>> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const v = await ok();
        if (v) return v as NonNullable<T>;
        await Bun.sleep(100);
      }
      // the status for the message is read once, at the end: each read is a run of the binary
      const last = await h.status().catch(() => null);
      throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last)?.slice(0, 800)}`);
    },
    convergedOn: (commit: string) => h.until(`converged on ${commit.slice(0, 7)}`, async () => {
      const s = await h.status();
      return s?.phase === "converged" && s.current.commit === commit ? s : null;
    }),
    stateJson: () => JSON.parse(readFileSync(join(k().state, "state.json"), "utf8")),
    currentLink: () => { try { return readlinkSync(join(k().state, "current")); } catch { return null; } },
  };
  return h;
}

/** A directory the role's user may write into, and a log the test's commands append to. */
function markerLog(k: Kit, name: string): { path: string; lines: () => string[] } {
  const m = join(k.dir, "markers");
  mkdirSync(m, { recursive: true, mode: 0o777 });
  chmodSync(m, 0o777);
  const path = join(m, name);
  writeFileSync(path, "");
  chmodSync(path, 0o666);
  return { path, lines: () => readFileSync(path, "utf8").split("\n").filter(Boolean) };
}

/** pids that logged "start" (in order) */
const starters = (lines: string[]) => lines.filter((l) => l.startsWith("start ")).map((l) => Number(l.split(" ")[1]));

const files = (version: string, over: Record<string, string> = {}) => ({ VERSION: `${version}\n`, "app.ts": APP, "roles/web.yaml": role(), ...over });
const web = (s: any) => s.processes.find((p: any) => p.name === "web");

describe("deploy safety", () => {
  let k: Kit;
  const n = node(() => k);
  let good: string;

  beforeAll(async () => { k = await makeKit("safety", role()); });
  afterAll(async () => { await n.stop("SIGKILL"); await k?.stop(); });

  test("a first release converges", async () => {
    good = await k.release(files("v1"), "v1");
    expect((await k.agent(["once"])).code).toBe(0);
  });

  test.skipIf(!isRoot())("an error after the switch of `current` rolls back to the last good release and marks the commit bad; the node is never left half-switched", async () => {
    const before = web(k.status()).pid;
    // The host cannot create this process user (a group of that name exists): `agent validate`
    // cannot know, and the error comes only after `current` switched.
    const unstartable = role().replace("    minUptime: 300ms\n", "    minUptime: 300ms\n    user: staff\n");
    const bad = await k.release(files("v2", { "roles/web.yaml": unstartable }), "v2 with a process user the host cannot create");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("rolled back");
    const s = k.status();
    expect(s.current.commit).toBe(good);
    expect(n.currentLink()).toBe(`releases/${good}`);
    expect(s.badCommits).toContain(bad);
    expect(n.stateJson().deploying).toBeNull();
    expect(web(s)).toMatchObject({ commit: good, healthy: true, pid: before });
    // the next tick is not stuck confirming it: the commit is refused, the good release runs on
    const again = await k.agent(["once"]);
    expect(again.stderr).toContain("CommitMarkedBad");
    expect(k.status().current.commit).toBe(good);
  }, 60_000);

  test("after a reboot during a cutover, the resumed processes get a fresh health deadline: a healthy commit is not marked bad", async () => {
    await n.running();
    // takes 4 s to answer its health check, within a 30 s deadline: a wide window for the "reboot"
    const slowRole = role().replace("deadline: 4s", "deadline: 30s");
    const slow = await k.release(files("v3", { "app.ts": `await Bun.sleep(4000);\n${APP}`, "roles/web.yaml": slowRole }), "v3 starts slowly");
    await k.agent(["sync"]);
    const end = Date.now() + 40_000;
    const switched = () => { try { return n.stateJson().deploying?.commit === slow && n.currentLink() === `releases/${slow}`; } catch { return false; } };
    while (!switched() && Date.now() < end) await Bun.sleep(20);
    expect(switched()).toBe(true);
    // the machine goes down: the agent and every application with it, for an hour
    await n.stop("SIGKILL");
    await stopApps(k.state);
    const st = n.stateJson();
    st.deploying.startedAt -= 3_600_000;
    writeFileSync(join(k.state, "state.json"), JSON.stringify(st, null, 2));
    n.start();
    const s = await n.convergedOn(slow);
    expect(s.badCommits).not.toContain(slow);
    expect(web(s)).toMatchObject({ commit: slow, healthy: true });
    expect(n.stateJson().lastGoodCommit).toBe(slow);
  }, 60_000);

  test("SIGTERM during a before_cutover hook: the hook runs to its end, no commit is marked bad, and the next agent waits for it before cutting over", async () => {
    await n.running();
    const log = markerLog(k, "hook-stop.log");
    const hooked = await k.release(files("v4", { "roles/web.yaml": role() + `hooks:\n  before_cutover: ['/bin/sh -c "echo start $$ >> ${log.path}; sleep 3; echo end $$ >> ${log.path}"']\n` }), "v4 with a slow before_cutover hook");
    await k.agent(["sync"]);
    const first = await n.until("the hook running", () => starters(log.lines())[0]);
    await n.stop("SIGTERM");
    expect(groupMembers(first).length).toBeGreaterThan(0);      // left running, not killed
    expect(n.stateJson().badCommits).not.toContain(hooked);
    n.start();
    const s = await n.convergedOn(hooked);
    expect(s.badCommits).not.toContain(hooked);
    const lines = log.lines();
    // the first run ended by itself, and the next agent ran the hook again only after it
    expect(lines.slice(0, 2)).toEqual([`start ${first}`, `end ${first}`]);
    expect(lines.length).toBe(4);
  }, 60_000);

  test("SIGTERM during a setup step: the step runs to its end and the next agent waits for its group before preparing again", async () => {
    await n.running();
    const log = markerLog(k, "step-stop.log");
    const stepped = await k.release(files("v5", { "roles/web.yaml": role() + `setup:\n  - run: /bin/sh -c "echo start $$ >> ${log.path}; sleep 3; echo end $$ >> ${log.path}"\n` }), "v5 with a slow setup step");
    await k.agent(["sync"]);
    const first = await n.until("the setup step running", () => starters(log.lines())[0]);
    await n.stop("SIGTERM");
    expect(groupMembers(first).length).toBeGreaterThan(0);
    n.start();
    const s = await n.convergedOn(stepped);
    expect(s.badCommits).not.toContain(stepped);
    const lines = log.lines();
    expect(lines.slice(0, 2)).toEqual([`start ${first}`, `end ${first}`]);
    expect(lines.length).toBe(4);
  }, 60_000);

  test("a newer pin during a setup step stops it with SIGTERM (it may clean up), not SIGKILL, and marks nothing bad", async () => {
    await n.running();
    const log = markerLog(k, "step-pin.log");
    const stale = await k.release(files("v6", { "roles/web.yaml": role() + `setup:\n  - run: /bin/sh -c "trap 'echo term $$ >> ${log.path}; exit 1' TERM; echo start $$ >> ${log.path}; sleep 300 & wait"\n` }), "v6 with a setup step that hangs");
    await k.agent(["sync"]);
    const pgid = await n.until("the setup step running", () => starters(log.lines())[0]);
    const newer = await k.release(files("v7"), "v7");
    const s = await n.convergedOn(newer);
    expect(log.lines()).toContain(`term ${pgid}`);
    expect(groupMembers(pgid)).toEqual([]);
    expect(s.badCommits).not.toContain(stale);
  }, 60_000);

  test("a newer pin during a before_cutover hook does not cut the cutover off: the hook ends, the commit is not marked bad, then the newer one deploys", async () => {
    await n.running();
    const log = markerLog(k, "hook-pin.log");
    const hooked = await k.release(files("v8", { "roles/web.yaml": role() + `hooks:\n  before_cutover: ['/bin/sh -c "echo start $$ >> ${log.path}; sleep 8; echo end $$ >> ${log.path}"']\n` }), "v8 with a slow before_cutover hook");
    await k.agent(["sync"]);
    const first = await n.until("the hook running", () => starters(log.lines())[0]);
    const newer = await k.release(files("v9"), "v9");
    const s = await n.convergedOn(newer);
    expect(log.lines()).toContain(`end ${first}`);
    expect(s.badCommits).not.toContain(hooked);
    expect(alive(web(s).pid)).toBe(true);
  }, 60_000);
});

describe("a failed first deploy", () => {
  let k: Kit;
  const n = node(() => k);
  let url = "";

  beforeAll(async () => {
    const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    url = `http://127.0.0.1:${s.port}`;
    const metrics = `127.0.0.1:${s.port}`;
    s.stop(true);
    k = await makeKit("first-fail", role(), { metrics });
  });
  afterAll(async () => { await n.stop("SIGKILL"); await k?.stop(); });

  const sample = (text: string, series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(series + " "));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };

  test("is one failure: it is not rolled back again on every poll (metrics count one)", async () => {
    const bad = await k.release(files("v1", { "app.ts": `console.error("boom"); process.exit(1);\n` }), "v1 crashes on start");
    n.start();
    await n.until("the first deploy failed", async () => (await n.status())?.badCommits?.includes(bad));
    // several more ticks (poll: 1s)
    const seen = new Set<string>();
    await n.until("four more ticks", async () => {
      const s = await n.status();
      if (s) seen.add(s.lastTick.at);
      return seen.size >= 5;
    });
    const text = await (await fetch(`${url}/metrics`)).text();
    const failures = sample(text, 'agent_deploys_total{result="failed"}') + sample(text, 'agent_deploys_total{result="rolled_back"}');
    expect(failures).toBe(1);
    const s = await n.status();
    expect(s.lastTick.reason).toBe("CommitMarkedBad");
    expect(s.processes.filter((p: any) => p.state === "running")).toEqual([]);
  }, 60_000);
});
