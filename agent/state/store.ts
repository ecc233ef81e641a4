// state.json: what the agent must remember across restarts. Every write is atomic; a missing or
// unreadable file starts from empty (and an unreadable one is kept aside, never silently lost).
import { existsSync, readFileSync, renameSync } from "node:fs";
import { writeFileAtomic } from "../host/files.ts";
import type { Manifest } from "../manifest/schema.ts";

/** A supervised process as recorded for adoption by the next agent. */
export interface ProcessRecord {
  name: string;            // process name, with "#<n>" for instances > 0
  process: string;         // the role's process name
  instance: number;
  pid: number;
  pgid: number;
  startTime: number;       // field 22 of /proc/<pid>/stat (clock ticks since boot): guards against pid reuse
  commit: string;
  releaseDir: string;
  startedAt: number;       // epoch ms
  port?: number;
  restarts: number;
  /** Fingerprint of what the process was started with (argv, env, cwd, user, release): a changed spec restarts it. */
  specHash?: string;
}

export interface CachedIdentity {
  instanceId: string;
  region: string;
  zone: string;
  role: string | null;
  environment: string | null;
  at: number;
}

export interface AgentState {
  version: 1;
  lastGoodCommit: string | null;
  /** Commits that failed here; not tried again until the manifest pins another commit. */
  badCommits: string[];
  /** A commit pinned with `agent rollback`, until the manifest pins a different one. */
  localPin: { commit: string; manifestCommit: string; at: number } | null;
  /** The last branch tip seen (force-push detection). */
  lastTip: string | null;
  processes: ProcessRecord[];
  identity: CachedIdentity | null;
  /** Instance tags last written, so a tick writes them only when they change. */
  tags: Record<string, string>;
  paused: boolean;
  /** The last manifest that parsed, so an agent restarted while the source is down keeps converging. */
  manifest: { tip: string; environment: string; value: Manifest } | null;
  /** trust: the last tip this node verified, and the commit whose trust/allowed_signers counted for it. */
  trusted?: { tip: string; signersFrom: string | null } | null;
  /**
   * A cutover under way: `current` may already point at `commit`; confirmed or rolled back on the
   * next tick. `failures` counts the attempts to confirm it that failed (an interrupted one does
   * not count); after MAX_CONFIRM_ATTEMPTS it is rolled back.
   */
  deploying: { commit: string; from: string | null; startedAt: number; failures?: number } | null;
  /**
   * The rollout gate's memory of the pinned commit's rollout (agent/loop/gate.ts): when this node
   * first saw peers converged or due (its own clock, ms) and what it ran before it moved to the
   * commit (onFailure: rollback goes back there). Dropped when the manifest pins another commit,
   * except `nodes`: how many nodes the last read of the peers found, so a restarted agent paces its
   * first read by it (absent in files written before it was added: 1).
   */
  rollout?: { commit: string; memory: import("../fleet/types.ts").FleetMemory; from: string | null; nodes?: number } | null;
  /** Per target group ARN: this node's registration as it last left it (agent/converge/targets.ts). */
  targets?: Record<string, import("../plan/targets.ts").TargetRecord>;
  /** Per commit, the versions (never the values) of the secrets its processes run with (agent/secrets/). */
  secrets?: Record<string, import("../secrets/plan.ts").Resolution>;
  /** `agent front` (agent/loop/front.ts): adopted by the next agent like a process. */
  front?: { pid: number; startTime: number; startedAt: number; restarts: number } | null;
}

export const emptyState = (): AgentState => ({
  version: 1, lastGoodCommit: null, badCommits: [], localPin: null, lastTip: null,
  processes: [], identity: null, tags: {}, paused: false, deploying: null, manifest: null,
});

export class StateStore {
  private state: AgentState;
  constructor(private readonly path: string) {
    this.state = this.load();
  }

  private load(): AgentState {
    if (!existsSync(this.path)) return emptyState();
    try {
      return { ...emptyState(), ...JSON.parse(readFileSync(this.path, "utf8")) };
    } catch {
      renameSync(this.path, `${this.path}.corrupt-${Date.now()}`);
      return emptyState();
    }
  }

  get(): Readonly<AgentState> {
    return this.state;
  }

  /** Change the state and write it atomically before returning. */
  update(change: (s: AgentState) => void): AgentState {
    const next = structuredClone(this.state);
    change(next);
    writeFileAtomic(this.path, JSON.stringify(next, null, 2) + "\n", 0o600);
    this.state = next;
    return next;
  }
}
