// The daemon's control socket: HTTP over a unix socket (mode 0600), JSON in and out. It only
// routes requests to the handlers the loop gives it; it decides nothing itself. The state dir lock
// (cli/lock.ts) keeps one agent per node; the socket still refuses to start beside a live one.
import { chmodSync, existsSync, lstatSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { AgentError, errorMessage } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { Status } from "../status/types.ts";
import { controlRequest, NOT_RUNNING } from "./client.ts";

export interface ActionResult {
  accepted: boolean;
  message: string;
}

export interface RollbackResult {
  ok: boolean;
  commit?: string;
  message: string;
}

/** What the loop answers. Handlers may coalesce concurrent calls; every call gets an answer. */
export interface ControlHandlers {
  status(): Status;
  sync(): Promise<ActionResult>;
  /** drain: leave the load balancer target groups and wait for draining first (`agent pause --drain`). */
  pause(opts?: { drain: boolean }): Promise<ActionResult>;
  resume(): Promise<ActionResult>;
  /** null: the previous good release. */
  rollback(commit: string | null): Promise<RollbackResult>;
  /** What a tick would do now, changing nothing (`agent plan`). */
  plan?(): Promise<unknown>;
}

export interface ControlServer {
  socketPath: string;
  /** Stop answering and remove the socket file. Idempotent. */
  stop(): Promise<void>;
}

const COMMIT = /^[0-9a-f]{4,40}$/;
const MAX_SOCKET_PATH = 107;   // sun_path is 108 bytes with the terminating NUL

/**
 * Listen on socketPath. A stale socket file (nothing answers on it) is removed first; when a live
 * agent answers there, throws AgentError(AlreadyRunning) and leaves the socket alone.
 */
export async function startControlServer(opts: { socketPath: string; handlers: ControlHandlers; log: Logger }): Promise<ControlServer> {
  const { socketPath, handlers } = opts;
  const log = opts.log.child("control");
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw AgentError.terminal("SocketPathTooLong",
      `the control socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes; choose a shorter stateDir`);
  }
  mkdirSync(dirname(socketPath), { recursive: true });
  await clearStaleSocket(socketPath, log);

  // umask first so the socket is never reachable by others, chmod after for good measure.
  const oldMask = process.umask(0o177);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ unix: socketPath, fetch: (req) => route(req, handlers, log) });
  } catch (e) {
    throw AgentError.terminal("ControlListenFailed", `cannot listen on ${socketPath}: ${errorMessage(e)}`, e);
  } finally {
    process.umask(oldMask);
  }
  chmodSync(socketPath, 0o600);
  const ino = statSync(socketPath).ino;
  log.info("listening", { socket: socketPath });

  let stopped = false;
  return {
    socketPath,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop(true);
      // Bun removes the file itself; make sure, but never remove a socket another agent made since.
      try { if (lstatSync(socketPath).ino === ino) unlinkSync(socketPath); } catch {}
      log.info("stopped", { socket: socketPath });
    },
  };
}

async function clearStaleSocket(socketPath: string, log: Logger): Promise<void> {
  if (!existsSync(socketPath)) return;
  const st = lstatSync(socketPath);
  if (!st.isSocket()) {
    throw AgentError.terminal("SocketPathTaken",
      `${socketPath} exists and is not a socket; move it away so the agent can create its control socket there`);
  }
  try {
    await controlRequest(socketPath, "GET", "/v1/status", undefined, { timeoutMs: 1000 });
  } catch (e) {
    if (e instanceof AgentError && e.reason === NOT_RUNNING) {
      unlinkSync(socketPath);
      log.info("removed a stale control socket", { socket: socketPath });
      return;
    }
    throw AgentError.terminal("AlreadyRunning",
      `another agent is running: something holds ${socketPath} but does not answer (${errorMessage(e)}); ` +
      "stop it (`systemctl stop agent`) before starting this one");
  }
  throw AgentError.terminal("AlreadyRunning",
    `another agent is running and answers on ${socketPath}; stop it (\`systemctl stop agent\`) or use \`agent status\``);
}

const json = (status: number, body: unknown) => Response.json(body, { status });
const fail = (status: number, reason: string, error: string) => json(status, { error, reason });

async function route(req: Request, h: ControlHandlers, log: Logger): Promise<Response> {
  const path = new URL(req.url).pathname;
  const key = `${req.method} ${path}`;
  try {
    switch (key) {
      case "GET /v1/status": return json(200, h.status());
      case "POST /v1/sync": return json(200, await h.sync());
      case "POST /v1/pause": return json(200, await h.pause({ drain: (await readBody(req)).drain === true }));
      case "POST /v1/resume": return json(200, await h.resume());
      case "GET /v1/plan": return h.plan ? json(200, await h.plan()) : fail(404, "NotFound", "this agent does not plan over the socket");
      case "POST /v1/rollback": {
        const body = await readBody(req);
        const commit = body.commit ?? null;
        if (commit !== null && (typeof commit !== "string" || !COMMIT.test(commit))) {
          return fail(400, "BadRequest", "commit must be a hexadecimal commit id (4 to 40 characters), or absent for the previous good release");
        }
        const result = await h.rollback(commit);
        return json(result.ok ? 200 : 409, result);
      }
    }
    const known = ["/v1/status", "/v1/sync", "/v1/pause", "/v1/resume", "/v1/rollback", "/v1/plan"];
    if (known.includes(path)) return fail(405, "MethodNotAllowed", `${req.method} is not allowed on ${path}`);
    return fail(404, "NotFound", `no such control endpoint: ${path}`);
  } catch (e) {
    if (e instanceof BadRequest) return fail(400, "BadRequest", e.message);
    const reason = e instanceof AgentError ? e.reason : "Internal";
    log.error("handler failed", { route: key, reason, error: errorMessage(e) });
    return fail(500, reason, errorMessage(e));
  }
}

class BadRequest extends Error {}

async function readBody(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (!text.trim()) return {};
  let value: unknown;
  try { value = JSON.parse(text); } catch { throw new BadRequest("the request body is not valid JSON"); }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new BadRequest("the request body must be a JSON object");
  return value as Record<string, unknown>;
}
