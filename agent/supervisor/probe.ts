// One health check against a running process: HTTP (2xx/3xx), TCP connect, or a command that
// exits 0. Each resolves to {ok, error}; none throws, none outlives its timeout.
import type { Health } from "../manifest/schema.ts";
import { splitArgs } from "../core/argv.ts";
import { exec } from "../host/exec.ts";
import { errorMessage } from "../core/errors.ts";
import { httpStatus, socketError } from "../host/http-status.ts";

export interface ProbeTarget {
  port?: number;           // the instance's port, for an HTTP check without its own port
  cwd: string;             // command checks run in the release directory
  env: Record<string, string>;
  user?: { uid: number; gid: number };
}

export interface ProbeResult {
  ok: boolean;
  error: string | null;
}

const pass: ProbeResult = { ok: true, error: null };
const failWith = (error: string): ProbeResult => ({ ok: false, error });

export async function probe(h: Health, t: ProbeTarget): Promise<ProbeResult> {
  try {
    if ("http" in h) return await probeHttp(h.port ?? t.port, h.http, h.timeout);
    if ("tcp" in h) return await probeTcp(h.tcp, h.timeout);
    return await probeCommand(h.command, t, h.timeout);
  } catch (e) {
    return failWith(errorMessage(e));
  }
}

/** The HTTP check: 2xx and 3xx pass (a redirect is not followed); the message names the URL. */
async function probeHttp(port: number | undefined, path: string, timeoutMs: number): Promise<ProbeResult> {
  if (!port) return failWith(`http check ${path} has no port: give the process http.port or health.port`);
  const url = `http://127.0.0.1:${port}${path}`;
  const r = await httpStatus(port, path, timeoutMs);
  if ("error" in r) return failWith(`GET ${url}: ${r.error}`);
  return r.status >= 200 && r.status < 400 ? pass : failWith(`GET ${url} answered ${r.status}`);
}

function probeTcp(port: number, timeoutMs: number): Promise<ProbeResult> {
  const where = `tcp 127.0.0.1:${port}`;
  return new Promise((resolve) => {
    let settled = false, sock: { end(): void } | null = null;
    const done = (r: ProbeResult) => {
      if (settled) return;
      settled = true; clearTimeout(timer); sock?.end(); resolve(r);
    };
    const timer = setTimeout(() => done(failWith(`${where}: no connection within ${timeoutMs}ms`)), timeoutMs);
    Bun.connect({ hostname: "127.0.0.1", port, socket: {
      open(s) { sock = s; done(pass); },
      data() {},
      error(_s, e) { done(failWith(`${where}: ${socketError(e)}`)); },
      connectError(_s, e) { done(failWith(`${where}: ${socketError(e)}`)); },
    } }).catch((e) => done(failWith(`${where}: ${socketError(e)}`)));
  });
}

async function probeCommand(command: string, t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const r = await exec(splitArgs(command), { cwd: t.cwd, env: t.env, timeoutMs, uid: t.user?.uid, gid: t.user?.gid });
  if (r.code === 0) return pass;
  const why = r.timedOut ? `timed out after ${timeoutMs}ms` : `exited ${r.code ?? r.signal}`;
  const tail = (r.stderr || r.stdout).trim().split("\n").slice(-1)[0] ?? "";
  return failWith(`check '${command}' ${why}${tail ? `: ${tail}` : ""}`);
}
