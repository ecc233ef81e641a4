// Where `agent status` gets its answer: the daemon over the control socket, else status.json
// with its age. Read-only.
import { existsSync, readFileSync } from "node:fs";
import { AgentError, errorMessage } from "../core/errors.ts";
import { controlRequest } from "../control/client.ts";
import type { Source } from "./problems.ts";
import type { Status } from "./types.ts";

export interface StatusReading {
  status: Status;
  source: Source;
  /** now - status.writtenAt, never negative. */
  ageMs: number;
  /** Why the daemon did not answer, when source is "file". */
  daemonError?: string;
}

/**
 * Ask the daemon (timeoutMs), fall back to statusFile. Throws AgentError(StatusUnavailable) when
 * neither answers, with what to do next.
 */
export async function readStatus(
  paths: { socket: string; statusFile: string },
  opts: { timeoutMs: number; now: () => number },
): Promise<StatusReading> {
  let daemonError: string;
  try {
    const res = await controlRequest(paths.socket, "GET", "/v1/status", undefined, { timeoutMs: opts.timeoutMs });
    if (res.status === 200 && isStatus(res.body)) {
      return { status: withDefaults(res.body), source: "daemon", ageMs: Math.max(0, opts.now() - res.body.writtenAt) };
    }
    daemonError = `the agent answered ${res.status}: ${res.body?.error ?? "not a status"}`;
  } catch (e) {
    daemonError = errorMessage(e);
  }
  if (!existsSync(paths.statusFile)) {
    throw new AgentError("StatusUnavailable",
      `${daemonError}. There is no status file either: ${paths.statusFile} does not exist (no tick has completed here)`);
  }
  let status: unknown;
  try {
    status = JSON.parse(readFileSync(paths.statusFile, "utf8"));
  } catch (e) {
    throw new AgentError("StatusUnavailable", `${daemonError}. The status file ${paths.statusFile} is unreadable: ${errorMessage(e)}`);
  }
  if (!isStatus(status)) {
    throw new AgentError("StatusUnavailable", `${daemonError}. The status file ${paths.statusFile} does not hold a status`);
  }
  const found = withDefaults(status);
  return { status: found, source: "file", ageMs: Math.max(0, opts.now() - found.writtenAt), daemonError };
}

/** Fields a status from another agent version may lack: filled so rendering never trips on them. */
function withDefaults(s: Status): Status {
  return {
    ...s,
    instance: s.instance ?? { id: null, role: null, environment: null, region: null, zone: null },
    desired: s.desired ?? { commit: null, tip: null },
    current: s.current ?? { commit: null, since: null },
    badCommits: s.badCommits ?? [],
    notices: s.notices ?? [],
    agent: s.agent ?? { version: "unknown", pid: 0, mode: "run" },
  };
}

function isStatus(v: unknown): v is Status {
  const s = v as Status;
  return typeof s === "object" && s !== null && typeof s.phase === "string" && typeof s.writtenAt === "number" &&
    typeof s.lastTick === "object" && Array.isArray(s.processes) && Array.isArray(s.resources);
}
