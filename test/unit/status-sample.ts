// Statuses for tests: a converged web node, and small changes of it.
import type { Status } from "../../agent/status/types.ts";

export const NOW = Date.parse("2026-11-26T12:00:00Z");
export const C1 = "9fceb02d0ae598e95dc970b74767f19372d61af8";
export const C2 = "5e1d3a7b9c0f1e2d3c4b5a69788776655443322a";
export const TIP = "77aa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f70";

/** A converged node, status written 5s before NOW. */
export function sampleStatus(change: (s: Status) => void = () => {}): Status {
  const s: Status = {
    instance: { id: "i-0abc123", role: "web", environment: "production", region: "us-east-1", zone: "us-east-1a" },
    phase: "converged",
    desired: { commit: C1, tip: TIP, subject: "Ship the new checkout page" },
    current: { commit: C1, since: "2026-11-26T10:00:00Z", subject: "Ship the new checkout page" },
    lastTick: { at: "2026-11-26T11:59:55Z", ok: true, error: null, reason: null, durationMs: 41 },
    nextPollAt: "2026-11-26T12:00:25Z",
    resources: [
      { ref: "packages", ready: true, reason: "Installed", message: "nginx, libpq-dev" },
      { ref: "volume/data", ready: true, reason: "Mounted", message: "/data (ext4)" },
    ],
    processes: [
      { name: "web", state: "running", pid: 4242, commit: C1, restarts: 0, healthy: true, uptimeMs: 7_200_000 },
    ],
    badCommits: [],
    notices: [],
    writtenAt: NOW - 5000,
    agent: { version: "0.1.0", pid: 100, mode: "run" },
  };
  change(s);
  return s;
}
