// The control socket end to end: a real unix-socket HTTP server, the real client.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { controlRequest } from "../../agent/control/client.ts";
import { coalesce } from "../../agent/control/coalesce.ts";
import { startControlServer, type ControlHandlers, type ControlServer } from "../../agent/control/server.ts";
import { sampleStatus, C2 } from "../unit/status-sample.ts";

const dir = mkdtempSync(join(tmpdir(), "agent-control-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sockPath = () => join(dir, `s${++n}.sock`);
const servers: ControlServer[] = [];
afterEach(async () => { for (const s of servers.splice(0)) await s.stop(); });

function handlers(over: Partial<ControlHandlers> = {}): ControlHandlers & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    status: () => sampleStatus(),
    sync: async () => { calls.push("sync"); return { accepted: true, message: "polling now" }; },
    pause: async () => { calls.push("pause"); return { accepted: true, message: "paused" }; },
    resume: async () => { calls.push("resume"); return { accepted: true, message: "resumed" }; },
    rollback: async (c) => { calls.push(`rollback:${c}`); return { ok: true, commit: c ?? "prev", message: "rolled back" }; },
    ...over,
  };
}

async function start(h: ControlHandlers, socketPath = sockPath()) {
  const s = await startControlServer({ socketPath, handlers: h, log: memoryLogger() });
  servers.push(s);
  return s;
}

async function errorOf(p: Promise<unknown>): Promise<AgentError> {
  try { await p; } catch (e) { if (e instanceof AgentError) return e; throw e; }
  throw new Error("expected an AgentError");
}

describe("control socket", () => {
  test("serves status and the actions, socket mode 0600", async () => {
    const h = handlers();
    const s = await start(h);
    expect(statSync(s.socketPath).mode & 0o777).toBe(0o600);
    const st = await controlRequest(s.socketPath, "GET", "/v1/status");
    expect(st.status).toBe(200);
    expect(st.body.instance.role).toBe("web");
    expect((await controlRequest(s.socketPath, "POST", "/v1/pause")).body).toEqual({ accepted: true, message: "paused" });
    expect((await controlRequest(s.socketPath, "POST", "/v1/resume")).body.message).toBe("resumed");
    const rb = await controlRequest(s.socketPath, "POST", "/v1/rollback", { commit: C2 });
    expect(rb.body).toEqual({ ok: true, commit: C2, message: "rolled back" });
    await controlRequest(s.socketPath, "POST", "/v1/rollback");
    expect(h.calls).toEqual(["pause", "resume", `rollback:${C2}`, "rollback:null"]);
  });

  test("GET /v1/plan answers with the daemon's plan; without a plan handler it is a 404", async () => {
    const withPlan = await start(handlers({ plan: async () => ({ actions: [{ kind: "release.prepare" }], blocked: null }) }));
    const r = await controlRequest(withPlan.socketPath, "GET", "/v1/plan");
    expect(r).toEqual({ status: 200, body: { actions: [{ kind: "release.prepare" }], blocked: null } });
    const without = await start(handlers());
    expect((await controlRequest(without.socketPath, "GET", "/v1/plan")).status).toBe(404);
  });

  test("errors are JSON {error, reason}", async () => {
    const s = await start(handlers({
      sync: async () => { throw new AgentError("SourceFetchFailed", "cannot reach the repository"); },
      rollback: async () => ({ ok: false, message: "no previous good release" }),
    }));
    const bad = await controlRequest(s.socketPath, "POST", "/v1/rollback", { commit: "not-a-sha; rm -rf /" });
    expect(bad.status).toBe(400);
    expect(bad.body.reason).toBe("BadRequest");
    const none = await controlRequest(s.socketPath, "POST", "/v1/rollback");
    expect(none.status).toBe(409);
    expect(none.body).toEqual({ ok: false, message: "no previous good release" });
    const thrown = await controlRequest(s.socketPath, "POST", "/v1/sync");
    expect(thrown.status).toBe(500);
    expect(thrown.body).toEqual({ error: "cannot reach the repository", reason: "SourceFetchFailed" });
    expect((await controlRequest(s.socketPath, "GET", "/v1/nope")).body.reason).toBe("NotFound");
    expect((await controlRequest(s.socketPath, "GET", "/v1/sync")).status).toBe(405);
  });

  test("two syncs at once both get an answer (the handler coalesces them)", async () => {
    let running: Promise<{ accepted: boolean; message: string }> | null = null;
    let polls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await start(handlers({
      sync: () => {
        if (running) return running.then((r) => ({ ...r, message: "a poll was already running; " + r.message }));
        running = (async () => { polls++; await gate; return { accepted: true, message: "polled" }; })();
        return running;
      },
    }));
    const a = controlRequest(s.socketPath, "POST", "/v1/sync", undefined, { timeoutMs: 10_000 });
    const b = controlRequest(s.socketPath, "POST", "/v1/sync", undefined, { timeoutMs: 10_000 });
    // Status still answers while both syncs wait.
    expect((await controlRequest(s.socketPath, "GET", "/v1/status")).status).toBe(200);
    release();
    const [ra, rb] = await Promise.all([a, b]);
    expect(polls).toBe(1);
    expect([ra.body.message, rb.body.message].sort()).toEqual(["a poll was already running; polled", "polled"]);
  });

  test("coalesce: concurrent calls share one run, a later call runs again", async () => {
    let runs = 0;
    let release!: () => void;
    const sync = coalesce(async () => { runs++; await new Promise<void>((r) => (release = r)); return runs; });
    let entered = 0;
    const s = await start(handlers({ sync: async () => { entered++; return { accepted: true, message: `poll ${await sync()}` }; } }));
    const both = Promise.all([1, 2, 3].map(() => controlRequest(s.socketPath, "POST", "/v1/sync")));
    while (entered < 3) await Bun.sleep(1);
    release();
    expect((await both).map((r) => r.body.message)).toEqual(["poll 1", "poll 1", "poll 1"]);
    const later = controlRequest(s.socketPath, "POST", "/v1/sync");
    while (runs === 1) await Bun.sleep(1);
    release();
    expect((await later).body.message).toBe("poll 2");
  });

  test("not running: a clear error naming the socket", async () => {
    const p = join(dir, "absent.sock");
    const e = await errorOf(controlRequest(p, "GET", "/v1/status"));
    expect(e.reason).toBe("DaemonNotRunning");
    expect(e.message).toContain(`no socket at ${p}`);
    expect(e.message).toContain("systemctl start agent");
  });

  test("a server that does not answer is reported as wedged", async () => {
    const s = await start(handlers({ sync: () => new Promise(() => {}) }));
    const e = await errorOf(controlRequest(s.socketPath, "POST", "/v1/sync", undefined, { timeoutMs: 200 }));
    expect(e.reason).toBe("DaemonWedged");
    expect(e.message).toContain("journalctl");
  });

  test("a second agent on the same socket is refused; the first keeps answering", async () => {
    const s = await start(handlers());
    const e = await errorOf(startControlServer({ socketPath: s.socketPath, handlers: handlers(), log: memoryLogger() }));
    expect(e.reason).toBe("AlreadyRunning");
    expect(e.message).toContain("another agent is running");
    expect((await controlRequest(s.socketPath, "GET", "/v1/status")).status).toBe(200);
  });

  test("a stale socket file is removed and replaced; stop removes the socket", async () => {
    const p = sockPath();
    // A socket file whose listener died without cleaning up.
    const py = Bun.spawnSync(["python3", "-c", `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(p)}); s.close()`]);
    if (py.exitCode !== 0) throw new Error(`cannot make a stale socket: ${py.stderr}`);
    expect(statSync(p).isSocket()).toBe(true);
    expect((await errorOf(controlRequest(p, "GET", "/v1/status"))).reason).toBe("DaemonNotRunning");
    const s = await startControlServer({ socketPath: p, handlers: handlers(), log: memoryLogger() });
    expect((await controlRequest(p, "GET", "/v1/status")).status).toBe(200);
    await s.stop();
    await s.stop();
    expect(existsSync(p)).toBe(false);
  });

  test("a regular file at the socket path is never removed", async () => {
    const p = sockPath();
    writeFileSync(p, "precious");
    const e = await errorOf(startControlServer({ socketPath: p, handlers: handlers(), log: memoryLogger() }));
    expect(e.reason).toBe("SocketPathTaken");
    expect(existsSync(p)).toBe(true);
  });
});
