// `agent run` on the compiled binary: the daemon converges, follows new commits on `agent sync`,
// pauses and resumes, rolls back on request, answers status while wedged, leaves applications
// running when it stops, and finishes a deploy it was SIGKILLed in the middle of.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { AGENT, alive, daemonStatus, makeKit, role, untilStatus, type Kit } from "./kit.ts";

let k: Kit;
let daemon: Subprocess | null = null;

function start(): Subprocess {
  daemon = Bun.spawn([AGENT, "run"], { env: { ...process.env, AGENT_CONFIG: k.config }, stdout: "ignore", stderr: "ignore" });
  return daemon;
}
async function kill(sig: NodeJS.Signals = "SIGKILL") {
  if (!daemon) return;
  daemon.kill(sig);
  await daemon.exited;
  daemon = null;
}
const status = () => daemonStatus(k);
const until = (what: string, ok: (s: any) => boolean, ms?: number) => untilStatus(k, what, ok, { ms });
const web = (s: any) => s.processes.find((p: any) => p.name === "web");

beforeAll(async () => { k = await makeKit("run"); });
afterAll(async () => { await kill(); await k?.stop(); });

describe("agent run", () => {
  let v1: string, v2: string;

  test("converges from an empty node and serves status over the socket", async () => {
    v1 = await k.release({ VERSION: "v1\n" }, "v1");
    start();
    const s = await until("v1 converged", (s) => s.phase === "converged" && s.current.commit === v1);
    expect(s.source).toBe("daemon");
    expect(web(s)).toMatchObject({ healthy: true, commit: v1 });
    const text = await k.agent(["status"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(v1.slice(0, 7));
  });

  test("`agent once` refuses while the daemon runs: one agent per node", async () => {
    const r = await k.agent(["once"]);
    expect(r.code).toBe(75);
    expect(r.stderr).toContain(`pid ${daemon!.pid} (${AGENT} run)`);
    expect(r.stderr).toContain("agent sync");
  });

  test("`agent plan` beside the daemon asks the daemon, which knows its processes: nothing to do", async () => {
    const r = await k.agent(["plan", "--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ actions: [], blocked: null, current: { commit: v1 } });
  });

  test("a new commit arrives with `agent sync` (two at once both answered) and restarts in place", async () => {
    const before = web(await status()).pid;
    v2 = await k.release({ VERSION: "v2\n" }, "v2");
    const [a, b] = await Promise.all([k.agent(["sync"]), k.agent(["sync"])]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const s = await until("v2 converged", (s) => s.phase === "converged" && s.current.commit === v2);
    expect(web(s).pid).not.toBe(before);
    expect(alive(before)).toBe(false);
  });

  test("pause holds a new commit back while processes keep running; resume deploys it", async () => {
    expect((await k.agent(["pause"])).code).toBe(0);
    const v3 = await k.release({ VERSION: "v3\n" }, "v3");
    await k.agent(["sync"]);
    const paused = await until("paused", (s) => s.phase === "paused");
    expect(paused.current.commit).toBe(v2);
    expect(web(paused).healthy).toBe(true);
    expect((await k.agent(["resume"])).code).toBe(0);
    await until("v3 converged", (s) => s.phase === "converged" && s.current.commit === v3);
  });

  test("`agent rollback` runs the previous good release until the manifest moves", async () => {
    const r = await k.agent(["rollback"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`rolled back: running ${v2.slice(0, 12)}`);   // it answers once done
    expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${v2}`);
    const s = await until("rolled back to v2", (s) => s.current.commit === v2 && s.phase === "converged");
    expect(s.notices.join("\n")).toContain("agent rollback");
    expect(readlinkSync(join(k.state, "current"))).toBe(`releases/${v2}`);
  });

  test("a wedged daemon: status falls back to status.json and says so", async () => {
    process.kill(daemon!.pid, "SIGSTOP");
    try {
      const r = await k.agent(["status", "--json", "--timeout", "500ms"]);
      const s = JSON.parse(r.stdout);
      expect(s.source).toBe("file");
      expect(s.current.commit).toBe(v2);
    } finally {
      process.kill(daemon!.pid, "SIGCONT");
    }
  });

  test("SIGTERM stops the agent, not the applications; the next agent adopts them", async () => {
    const before = web(await status()).pid;
    await kill("SIGTERM");
    expect(alive(before)).toBe(true);
    start();
    const s = await until("adopted and converged", (s) => s.phase === "converged" && s.source === "daemon");
    expect(web(s).pid).toBe(before);
  });

  test("SIGKILLed while waiting for a new release's health: the next agent finishes the cutover", async () => {
    // the app takes 2 s to listen, so the agent is killed in the health wait
    const slow = await k.release({ VERSION: "v5\n", "roles/web.yaml": role().replace("run: ", "run: ").replace("app.ts", "app.ts --slow"),
      "app.ts": `await Bun.sleep(process.argv.includes("--slow") ? 2000 : 0);\n` + (await Bun.file(join(k.repo.work, "app.ts")).text()) }, "v5 slow start");
    await k.agent(["sync"]);
    await until("cutover under way", (s) => s.desired.commit === slow && (s.phase === "cutover" || s.phase === "waiting"), 20_000);
    await kill("SIGKILL");
    start();
    const s = await until("v5 converged after restart", (s) => s.phase === "converged" && s.current.commit === slow);
    expect(web(s).commit).toBe(slow);
    expect(s.badCommits).not.toContain(slow);
  });

  test("SIGKILLed during a setup step: the half-prepared release is never used, and is prepared again", async () => {
    // the step runs as the role's user: the marker goes where that user may write
    const markers = join(k.dir, "markers");
    mkdirSync(markers, { mode: 0o777 }); chmodSync(markers, 0o777);
    const marker = join(markers, "setup-started");
    const text = role() + `setup:\n  - run: /bin/sh -c "touch ${marker}; sleep 3"\n`;
    const v6 = await k.release({ VERSION: "v6\n", "roles/web.yaml": text }, "v6 with a slow setup step");
    await k.agent(["sync"]);
    const end = Date.now() + 20_000;
    while (!(await Bun.file(marker).exists()) && Date.now() < end) await Bun.sleep(50);
    await kill("SIGKILL");
    const mid = JSON.parse(await Bun.file(join(k.state, "meta", v6, "release.json")).text());
    expect(mid.state).toBe("preparing");
    start();
    const s = await until("v6 converged", (s) => s.phase === "converged" && s.current.commit === v6);
    expect(web(s).commit).toBe(v6);
  });
});

describe("agent run with a bad config", () => {
  // The daemon's config is parsed in a child (`agent _config`): its problems read as before.
  test("refuses to start and names the file, the line and the field", async () => {
    const bad = join(k.dir, "bad-agent.yaml");
    await Bun.write(bad, "repo: https://example.com/ops.git\nbranch: main\nstateDir: /tmp/x\npoll: [1]\n");
    const r = await k.agent(["run", "--config", bad]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("invalid config:");
    expect(r.stderr).toContain(`${bad}:`);
    const missing = await k.agent(["run", "--config", join(k.dir, "nowhere.yaml")]);
    expect(missing.stderr).toContain("no config at");
  });
});
