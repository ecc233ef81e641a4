// The client side of the control socket: one HTTP request over the daemon's unix socket.
// It turns "nothing listens" and "nobody answers" into errors that say what to do next.
import { AgentError } from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";

export interface ControlResponse {
  status: number;
  body: any;
}

/** Reasons a control request fails before the daemon answers; the CLI maps both to exit 69. */
export const NOT_RUNNING = "DaemonNotRunning";
export const WEDGED = "DaemonWedged";

/**
 * Send one request to the daemon and return its HTTP status and parsed JSON body. Read-only on
 * the client side. Throws AgentError(DaemonNotRunning) when no daemon listens on the socket,
 * AgentError(DaemonWedged) when it accepts but does not answer within timeoutMs.
 */
export async function controlRequest(
  socketPath: string,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  opts: { timeoutMs?: number } = {},
): Promise<ControlResponse> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  let res: Response;
  try {
    res = await fetch(`http://agent${path}`, {
      method,
      unix: socketPath,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    } as RequestInit);
  } catch (e) {
    throw classify(e, socketPath, timeoutMs);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    throw classify(e, socketPath, timeoutMs);
  }
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    throw new AgentError("ControlBadAnswer", `the agent answered ${method} ${path} with something that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: parsed };
}

function classify(e: unknown, socketPath: string, timeoutMs: number): AgentError {
  const err = e as { code?: string; name?: string; message?: string };
  if (err?.name === "TimeoutError" || err?.name === "AbortError") {
    return new AgentError(WEDGED,
      `the agent did not answer on ${socketPath} within ${formatDuration(timeoutMs)}; it may be wedged: ` +
      "see `journalctl -u agent -n 100`, and `systemctl restart agent` if it stays stuck", { kind: "transient" }, { cause: e });
  }
  if (err?.code === "ENOENT" || err?.code === "ECONNREFUSED" || err?.code === "ENOTSOCK" || err?.code === "ConnectionRefused") {
    const what = err.code === "ENOENT" ? `no socket at ${socketPath}` : `nothing listens on ${socketPath}`;
    return new AgentError(NOT_RUNNING,
      `the agent is not running (${what}); start it with \`systemctl start agent\``, { kind: "transient" }, { cause: e });
  }
  if (err?.code === "EACCES" || err?.code === "EPERM") {
    return new AgentError("ControlPermissionDenied",
      `cannot open ${socketPath} (${err.code}): the control socket is for root only; run the command with sudo`,
      { kind: "terminal" }, { cause: e });
  }
  return new AgentError("ControlRequestFailed", `talking to the agent on ${socketPath} failed: ${err?.message ?? String(e)}`,
    { kind: "transient" }, { cause: e });
}

/** True when the error means "no daemon answered" (not running or wedged). */
export function isDaemonUnavailable(e: unknown): boolean {
  return e instanceof AgentError && (e.reason === NOT_RUNNING || e.reason === WEDGED);
}
