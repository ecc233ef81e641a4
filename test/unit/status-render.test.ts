// `agent status` text and exit code, as a table of statuses.
import { describe, expect, test } from "bun:test";
import { renderStatus } from "../../agent/status/render.ts";
import { findProblems, staleAfterMs, statusExitCode, type StatusView } from "../../agent/status/problems.ts";
import type { Status } from "../../agent/status/types.ts";
import { sampleStatus, NOW, C1, C2 } from "./status-sample.ts";

const daemon: StatusView = { now: NOW, source: "daemon", ageMs: 5000 };
const render = (s: Status, view: StatusView = daemon, color = false) => renderStatus(s, { ...view, color });

interface Case {
  name: string;
  status: Status;
  view?: StatusView;
  exit: 0 | 1;
  has: string[];          // substrings of the text
  problems: number;
  firstProblem?: string;  // the first line under PROBLEMS contains this
}

const cases: Case[] = [
  {
    name: "converged",
    status: sampleStatus(),
    exit: 0, problems: 0,
    has: ["web @ production", "i-0abc123 (us-east-1a)", "phase converged", "9fceb02d0ae5  Ship the new checkout page",
      "since 2h ago", "last tick  5s ago, ok in 41ms; next poll in 25s", "volume/data  Mounted    /data (ext4)",
      "web   running  4242  2h      0         healthy", "from the daemon (pid 100)"],
  },
  {
    name: "deploying a new commit",
    status: sampleStatus((s) => {
      s.phase = "preparing"; s.desired.commit = C2; s.desired.subject = "Add the search page";
      s.resources.push({ ref: `release/${C2}`, ready: false, reason: "Preparing", message: "running setup: bun install" });
    }),
    exit: 1, problems: 1,
    has: ["phase preparing", "desired  5e1d3a7b9c0f  Add the search page", "current  9fceb02d0ae5  Ship the new checkout page"],
    firstProblem: `release/${C2} is not ready: Preparing (running setup: bun install)`,
  },
  {
    name: "rolled back with a bad commit",
    status: sampleStatus((s) => {
      s.phase = "degraded"; s.desired.commit = C2; s.desired.subject = "Break the health check"; s.badCommits = [C2];
    }),
    exit: 1, problems: 1,
    has: ["phase DEGRADED", "5e1d3a7b9c0f  Break the health check  FAILED HERE"],
    firstProblem: "rolled back: the manifest pins 5e1d3a7b9c0f, which failed here; running 9fceb02d0ae5",
  },
  {
    name: "crash-looping process",
    status: sampleStatus((s) => {
      s.phase = "degraded";
      s.processes.push({ name: "worker", state: "backoff", pid: null, commit: C1, restarts: 7, healthy: false,
        lastExit: { code: 1, signal: null, at: "2026-11-26T11:59:50Z" }, reason: "ProcessCrashLooping", message: "restarting in 32s" });
    }),
    exit: 1, problems: 1,
    has: ["worker  backoff  -     -       7         -"],
    firstProblem: "process worker is crash-looping: 7 restarts, last exit code 1: restarting in 32s",
  },
  {
    name: "unhealthy but running",
    status: sampleStatus((s) => { s.processes[0]!.healthy = false; s.processes[0]!.message = "GET /up: 503"; }),
    exit: 1, problems: 1,
    has: ["UNHEALTHY"],
    firstProblem: "process web is running but failing its health check: GET /up: 503",
  },
  {
    name: "stale status from a daemon whose loop is stuck",
    status: sampleStatus(),
    view: { now: NOW + 10 * 60_000, source: "daemon", ageMs: 10 * 60_000 + 5000 },
    exit: 1, problems: 1,
    has: ["next poll was due 9m35s ago"],
    firstProblem: "status is stale: written 10m5s ago",
  },
  {
    name: "daemon down: read from status.json",
    status: sampleStatus((s) => { s.lastTick.ok = false; s.lastTick.reason = "SourceFetchFailed"; s.lastTick.error = "HTTP 503"; }),
    view: { now: NOW, source: "file", ageMs: 192_000 },
    exit: 1, problems: 2,
    has: ["from status.json (the daemon is not answering)", "failed (SourceFetchFailed)",
      "! the last tick failed 5s ago: SourceFetchFailed: HTTP 503"],
    firstProblem: "the daemon is not answering; showing status written 3m12s ago",
  },
  {
    name: "paused, with a notice",
    status: sampleStatus((s) => { s.phase = "paused"; s.notices = ["not running as root: processes run as dev"]; }),
    exit: 1, problems: 0,
    has: ["NOTES", "- paused with `agent pause`", "- not running as root: processes run as dev"],
  },
];

describe("renderStatus", () => {
  for (const k of cases) {
    test(k.name, () => {
      const view = k.view ?? daemon;
      const text = render(k.status, view);
      for (const h of k.has) expect(text).toContain(h);
      expect(findProblems(k.status, view)).toHaveLength(k.problems);
      expect(statusExitCode(k.status, view)).toBe(k.exit);
      const lines = text.split("\n");
      const at = lines.findIndex((l) => l.startsWith("PROBLEMS"));
      if (k.problems === 0) {
        expect(at).toBe(-1);
      } else {
        // Problems come right after the header line, before commits and tables.
        expect(at).toBe(2);
        expect(lines[at]).toBe(`PROBLEMS (${k.problems})`);
        if (k.firstProblem) expect(lines[at + 1]).toContain(k.firstProblem);
        expect(at).toBeLessThan(lines.findIndex((l) => l.startsWith("desired")));
      }
      expect(text).not.toContain("\x1b[");
    });
  }

  test("colour only when asked", () => {
    const s = sampleStatus((x) => { x.phase = "failed"; });
    expect(render(s, daemon, true)).toContain("\x1b[31mFAILED\x1b[0m");
    expect(render(s, daemon, false)).toContain("phase FAILED");
  });

  test("secrets are listed by name, source and version, with the processes using them", () => {
    const text = render(sampleStatus((s) => { s.secrets = [{ name: "DATABASE_URL", source: "ssm:/prod/db/url", version: "3", processes: ["web", "worker"] }]; }));
    expect(text).toMatch(/SECRETS\n +NAME +SOURCE +VERSION +PROCESSES\n +DATABASE_URL +ssm:\/prod\/db\/url +3 +web,worker/);
    expect(render(sampleStatus())).not.toContain("SECRETS");
  });

  test("a process that is not running shows no uptime and no health", () => {
    const text = render(sampleStatus((s) => { s.processes[0] = { ...s.processes[0]!, state: "stopped", pid: null }; }));
    expect(text).toMatch(/web +stopped +- +- +0 +- +9fceb02d0ae5/);
  });

  test("no processes and an unknown identity still render", () => {
    const text = render(sampleStatus((s) => {
      s.processes = []; s.resources = []; s.instance = { id: null, role: null, environment: null, region: null, zone: null };
      s.desired = { commit: null, tip: null }; s.current = { commit: null, since: null };
    }));
    expect(text).toContain("(no role) @ (no environment)  (unknown instance)");
    expect(text).toContain("(none)");
    expect(text).toContain("desired  none");
  });

  test("staleness follows the poll interval", () => {
    expect(staleAfterMs(sampleStatus())).toBe(2 * 30_000 + 60_000);
    expect(staleAfterMs(sampleStatus((s) => { s.nextPollAt = null; }))).toBe(5 * 60_000);
    expect(findProblems(sampleStatus(), { now: NOW, source: "daemon", ageMs: 119_000 })).toEqual([]);
  });
});
