// The supervisor's contract with the loop: the desired process instance (ProcessSpec), the
// options that tune it, and what its calls return. Types only.
import type { Health } from "../manifest/schema.ts";
import type { ProcessRecord } from "../state/store.ts";
import type { BackoffPolicy, RestartPolicy } from "./backoff.ts";

/** One desired process instance, built by the loop from the role file and the release. */
export interface ProcessSpec {
  name: string;            // "web" for instance 0, "web#1" for instance 1 ...
  process: string;         // the role's process name
  instance: number;
  commit: string;
  releaseDir: string;      // releases/<commit>, never the `current` link
  argv: string[];          // splitArgs(process.run)
  cwd: string;             // releaseDir joined with process.cwd
  env: Record<string, string>;  // merged by the loop; the supervisor adds AGENT_COMMIT, AGENT_RELEASE and its markers (marker.ts)
  /** The variables of env that hold secrets: their values stay out of the fingerprint, their name + version go in. */
  secrets?: { names: string[]; fingerprint: string; pending: boolean };
  port?: number;
  user?: { uid: number; gid: number; name: string };  // undefined: the agent's own user
  restart: RestartPolicy;
  stop: { signal: string; timeoutMs: number };
  health?: Health;
  minUptimeMs: number;
  logFile: string;         // layout.processLog(name)
}

export type SupervisorEvent =
  | { kind: "start"; name: string; pid: number; commit: string; at: number }
  | { kind: "start-failed"; name: string; message: string; at: number }
  | { kind: "exit"; name: string; pid: number; code: number | null; signal: string | null; requested: boolean; at: number }
  | { kind: "healthy" | "unhealthy"; name: string; pid: number; at: number };

/** Tuning; every field has a production default. Tests shrink the times. */
export interface SupervisorTuning {
  backoff?: Partial<BackoffPolicy>;
  /** How often exits of adopted processes (not our children) are looked for in /proc. */
  pollMs?: number;
  /** How often log sizes are checked for rotation. */
  logCheckMs?: number;
  /** How long a replacement without a health check may take to stay up for minUptime. */
  readyDeadlineMs?: number;
}

export interface AdoptResult {
  adopted: ProcessRecord[];
  /** Records left alone and dropped from state: the process is gone or its pid now belongs to another program. */
  dropped: { record: ProcessRecord; why: "gone" | "pid-reused" | "duplicate" }[];
}

export type ReplaceResult = { ok: true } | { ok: false; reason: string; message: string };
