// The control commands as an operator runs them: `agent status|sync|pause|resume|rollback` in a
// child process, talking to a real control server over its unix socket.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Socket } from "node:net";
import { memoryLogger } from "../../agent/core/log.ts";
import { startControlServer, type ControlServer } from "../../agent/control/server.ts";
import { layout } from "../../agent/state/layout.ts";
import type { Status } from "../../agent/status/types.ts";
import { sampleStatus, C1, C2 } from "../unit/status-sample.ts";

const MAIN = join(import.meta.dir, "../../agent/main.ts");
const BUN = process.execPath;

async function agent(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn([BUN, MAIN, ...args], {
    env: { ...process.env, NO_COLOR: "1", AGENT_CONFIG: "/nonexistent/agent.yaml", ...env },
    stdout: "pipe", stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

const root = mkdtempSync(join(tmpdir(), "agent-ctlcli-"));
const live = join(root, "live");
const L = layout(live);
let server: ControlServer;
let current: Status = sampleStatus((s) => { s.writtenAt = Date.now(); s.nextPollAt = new Date(Date.now() + 30_000).toISOString(); });
const calls: string[] = [];

beforeAll(async () => {
  server = await startControlServer({
    socketPath: L.socket, log: memoryLogger(),
    handlers: {
      status: () => current,
      sync: async () => { calls.push("sync"); return { accepted: true, message: "polling the repository now" }; },
      pause: async () => { calls.push("pause"); return { accepted: true, message: "paused: processes keep running" }; },
      resume: async () => { calls.push("resume"); return { accepted: false, message: "not paused" }; },
      rollback: async (c) => {
        calls.push(`rollback:${c}`);
        return c === null ? { ok: false, message: "no previous good release on this node" } : { ok: true, commit: c, message: `running ${c}` };
      },
    },
  });
});
afterAll(async () => { await server.stop(); rmSync(root, { recursive: true, force: true }); });

describe("control commands", () => {
  test("status from the daemon: text and JSON, exit 0 when converged", async () => {
    const text = await agent(["status", "--state-dir", live]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("web @ production");
    expect(text.stdout).toContain("from the daemon");
    const json = await agent(["status", "--json", "--state-dir", live]);
    expect(json.code).toBe(0);
    const body = JSON.parse(json.stdout);
    expect(body.source).toBe("daemon");
    expect(body.current.commit).toBe(C1);
    expect(body.problems).toEqual([]);
    expect(typeof body.ageMs).toBe("number");
  });

  test("status exits 1 when the node is degraded", async () => {
    const saved = current;
    current = sampleStatus((s) => { s.writtenAt = Date.now(); s.phase = "degraded"; s.processes[0]!.healthy = false; });
    try {
      const r = await agent(["status", "--state-dir", live]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain("process web is running but failing its health check");
    } finally { current = saved; }
  });

  test("status with the daemon down reads status.json and says how old it is", async () => {
    const dead = join(root, "dead");
    const written = Date.now() - 192_000;
    mkdirSync(dead, { recursive: true });
    writeFileSync(layout(dead).statusFile, JSON.stringify(sampleStatus((s) => { s.writtenAt = written; })));
    const r = await agent(["status", "--state-dir", dead]);
    expect(r.code).toBe(1);
    // 3m12s old when written, plus however long the command takes on a loaded machine
    expect(r.stdout).toMatch(/daemon is not answering; showing status written 3m[1-5][0-9]s ago/);
    const j = JSON.parse((await agent(["status", "--json", "--state-dir", dead])).stdout);
    expect(j.source).toBe("file");
    expect(j.ageMs).toBeGreaterThanOrEqual(192_000);
  });

  test("status with a wedged daemon (accepts, never answers) falls back to status.json", async () => {
    const wedged = join(root, "wedged");
    mkdirSync(wedged, { recursive: true });
    writeFileSync(layout(wedged).statusFile, JSON.stringify(sampleStatus((s) => { s.writtenAt = Date.now() - 60_000; })));
    const held: Socket[] = [];
    const srv = createServer((c) => { held.push(c); });
    await new Promise<void>((r) => srv.listen(layout(wedged).socket, r));
    try {
      const r = await agent(["status", "--json", "--timeout", "300ms", "--state-dir", wedged]);
      expect(r.code).toBe(1);
      const j = JSON.parse(r.stdout);
      expect(j.source).toBe("file");
      expect(j.problems[0]).toMatch(/^the daemon is not answering; showing status written 1m(\d+s)? ago$/);
      expect(held.length).toBe(1);
    } finally {
      for (const c of held) c.destroy();
      await new Promise((r) => srv.close(r));
    }
  });

  test("status with neither daemon nor status.json exits 69 and says what to do", async () => {
    const r = await agent(["status", "--state-dir", join(root, "empty")]);
    expect(r.code).toBe(69);
    expect(r.stderr).toContain("the agent is not running");
    expect(r.stderr).toContain("systemctl start agent");
    expect(r.stdout).toBe("");
  });

  test("status finds the state dir through --config", async () => {
    const cfg = join(root, "agent.yaml");
    writeFileSync(cfg, `repo: https://git.example.com/acme/ops.git\nstateDir: ${live}\n`);
    const r = await agent(["status", "--json", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).source).toBe("daemon");
  });

  test("sync and pause print the daemon's message; resume refused exits 1", async () => {
    calls.length = 0;
    const s = await agent(["sync", "--state-dir", live]);
    expect([s.code, s.stdout]).toEqual([0, "polling the repository now\n"]);
    const p = await agent(["pause", "--json", "--state-dir", live]);
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout)).toEqual({ accepted: true, message: "paused: processes keep running" });
    const r = await agent(["resume", "--state-dir", live]);
    expect([r.code, r.stderr]).toEqual([1, "not paused\n"]);
    expect(calls).toEqual(["sync", "pause", "resume"]);
  });

  test("rollback passes the commit; a refused rollback exits 1 with the reason", async () => {
    calls.length = 0;
    const ok = await agent(["rollback", C2.toUpperCase(), "--state-dir", live]);
    expect([ok.code, ok.stdout]).toEqual([0, `running ${C2}\n`]);
    const no = await agent(["rollback", "--state-dir", live]);
    expect([no.code, no.stderr]).toEqual([1, "no previous good release on this node\n"]);
    const bad = await agent(["rollback", "HEAD~1", "--state-dir", live]);
    expect(bad.code).toBe(2);
    expect(calls).toEqual([`rollback:${C2}`, "rollback:null"]);
  });

  test("actions with no daemon exit 69 and say how to start it", async () => {
    for (const cmd of ["sync", "pause", "resume", "rollback"]) {
      const r = await agent([cmd, "--state-dir", join(root, "empty")]);
      expect(r.code).toBe(69);
      expect(r.stderr).toContain(`agent ${cmd}: the agent is not running (no socket at ${join(root, "empty", "agent.sock")})`);
    }
  });

  test("--help shows an example and exits 0", async () => {
    for (const cmd of ["status", "sync", "pause", "resume", "rollback"]) {
      const r = await agent([cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: agent ${cmd}`);
      expect(r.stdout).toMatch(/Examples?:\n {2}agent /);
    }
  });
});
