// The status that `agent status --json` prints and status.json holds (DESIGN.md "Status JSON").
// Others read these fields: add, never rename.

export type Phase = "converged" | "preparing" | "cutover" | "waiting" | "degraded" | "paused" | "failed";

/** A resource's condition, Flux-style: ready or not, a PascalCase reason, a sentence. */
export interface ResourceStatus {
  ref: string;             // "volume/data", "address/eipalloc-…", "release/9fce…", "packages"
  ready: boolean;
  reason: string;          // "Mounted", "Attaching", "HeldByOtherInstance", …
  message: string;
}

export interface ProcessStatus {
  name: string;
  state: "starting" | "running" | "stopping" | "stopped" | "backoff" | "exited" | "failed";
  pid: number | null;
  commit: string | null;
  restarts: number;
  healthy: boolean;
  uptimeMs?: number;
  lastExit?: { code: number | null; signal: string | null; at: string } | null;
  reason?: string;         // "ProcessCrashLooping", …
  message?: string;
}

/** `agent front` (docs/front.md): its public ports, who serves them, and what it turned away. */
export interface FrontStatus {
  pid: number | null;
  /** Times the agent started it again after it died. */
  restarts: number;
  /** The last thing that happened to it ("the front exited; restarting it (…)"), or null. */
  event: string | null;
  /** Set when the control socket did not answer. */
  error?: string;
  ports: {
    port: number; listen: string; gated: boolean; inflight: number;
    /** Requests per second since the previous status (null on the first). */
    ratePerSec: number | null;
    upstreams: { id: string; port: number; healthy: boolean; inRotation: boolean; draining: boolean; inflight: number; requests: number }[];
  }[];
  held: number;
  rejected: Record<string, number>;
}

/** The node's place in a rollout (manifest `rollout:`), as its last read of the peers decided. */
export interface RolloutStatus {
  /** 1-based wave of this node, and how many waves the role's live peers make. */
  wave: number;
  of: number;
  decision: "move" | "wait" | "halted" | "rollback";
  reason: string;
  /** Peers this node waits for (wait), ids. */
  waitingFor: string[];
  /** ISO time waiting ends by itself (a bake over) or would halt (a deadline); null when unknown. */
  until: string | null;
  /** Peers that halted the rollout (halted, rollback). */
  haltedBy: string[];
}

export interface Status {
  instance: { id: string | null; role: string | null; environment: string | null; region: string | null; zone: string | null };
  phase: Phase;
  desired: { commit: string | null; tip: string | null; subject?: string | null };
  current: { commit: string | null; since: string | null; subject?: string | null };
  lastTick: { at: string; ok: boolean; error: string | null; reason?: string | null; durationMs: number };
  nextPollAt?: string | null;
  resources: ResourceStatus[];
  processes: ProcessStatus[];
  badCommits: string[];
  /** Things the agent accepts but does not act on yet, or cannot do here (not root, …): plain sentences. */
  notices: string[];
  /** When this status was written (epoch ms), so readers can say how stale it is. */
  writtenAt: number;
  agent: { version: string; pid: number; mode: "run" | "once" };
  /** The running release's secret variables: name, where from, which version, used by which processes. Never a value. */
  secrets?: { name: string; source: string; version: string; processes: string[] }[];
  /** Present while the node takes part in a rollout (manifest `rollout:`, EC2 identity). */
  rollout?: RolloutStatus;
  /** Present while a process of the role has `http:` (the front runs). */
  front?: FrontStatus;
}
