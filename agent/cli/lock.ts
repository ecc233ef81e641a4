// `run`, `once` and a daemon-less `plan` hold the state directory's lock for their whole life,
// taken before anything is adopted, reaped or written. A second one says who holds it and exits 75.
import { mkdirSync } from "node:fs";
import { formatDuration } from "../core/duration.ts";
import { AgentError, errorMessage } from "../core/errors.ts";
import { tryLock, type LockHolder, type StateLock } from "../host/lock.ts";
import { layout } from "../state/layout.ts";

/** The lock, or null after writing to stderr which agent holds it (the caller exits EXIT.busy). */
export function holdStateDir(command: "run" | "once" | "plan", stateDir: string): StateLock | null {
  const path = layout(stateDir).lock;
  let r;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o755 });
    r = tryLock(path);
  } catch (e) {
    throw new AgentError("StateLockFailed", `cannot take the state directory's lock ${path}: ${errorMessage(e)}; run as the agent's user (root: sudo), or check stateDir in the config`);
  }
  if (r.ok) return r.lock;
  process.stderr.write(`agent ${command}: ${describeHolder(stateDir, r.holder)}; ${advice(command, r.holder)}\n`);
  return null;
}

export function describeHolder(stateDir: string, h: LockHolder): string {
  const who = h.pid === null ? "an unknown process" : `pid ${h.pid}${h.command ? ` (${h.command})` : ""}`;
  const since = h.since ? `, since ${h.since} (${formatDuration(Math.max(0, Date.now() - Date.parse(h.since)))} ago)` : "";
  return `another agent is using the state directory ${stateDir}: ${who}${since}`;
}

function advice(command: string, h: LockHolder): string {
  const daemon = / run( |$)/.test(h.command ?? "");
  if (daemon && command === "plan") return "it did not answer on the control socket (starting, or wedged): try again in a moment, or see `journalctl -u agent`";
  if (daemon && command === "once") return "ask it to poll now with `agent sync`, or stop it first (`systemctl stop agent`)";
  if (daemon) return "stop it first (`systemctl stop agent`)";
  return "wait for it to finish, or stop it first";
}
