// Which marked processes in /proc no record accounts for: the process the supervisor started is
// the oldest of its spawn id; a group leader a recorded process made itself is never taken over.
import { describe, expect, test } from "bun:test";
import { MARKER, type Marked } from "../../agent/host/marker.ts";
import { untracked } from "../../agent/supervisor/marker.ts";
import type { ProcessRecord } from "../../agent/state/store.ts";

const C = "a".repeat(40);
const marked = (pid: number, startTime: number, name: string, spawn: string, extra: Record<string, string> = {}): Marked => ({
  stat: { pid, pgrp: pid, ppid: 1, state: "S", nice: 0, startTime },
  env: { [MARKER.stateDir]: "/var/lib/agent", [MARKER.name]: name, [MARKER.spec]: `spec-${name}`, [MARKER.spawn]: spawn,
    AGENT_COMMIT: C, AGENT_RELEASE: `/var/lib/agent/releases/${C}`, ...extra },
});
const record = (pid: number, startTime: number, name: string): ProcessRecord =>
  ({ name, process: name, instance: 0, pid, pgid: pid, startTime, commit: C, releaseDir: "", startedAt: 0, restarts: 0 });
const at = (t: number) => 1_000_000 + t * 10;
const pids = (rs: ProcessRecord[]) => rs.map((r) => r.pid).sort();

describe("untracked", () => {
  test("an unrecorded start becomes a record with its name, instance, commit, release, port and fingerprint", () => {
    expect(untracked([marked(40, 500, "web#1", "s1", { PORT: "8081" })], [], at)).toEqual([{
      name: "web#1", process: "web", instance: 1, pid: 40, pgid: 40, startTime: 500, startedAt: at(500),
      commit: C, releaseDir: `/var/lib/agent/releases/${C}`, port: 8081, restarts: 0, specHash: "spec-web#1",
    }]);
  });

  test.each([
    ["a recorded process is not found again", [marked(40, 500, "web", "s1")], [record(40, 500, "web")], []],
    ["a leader a recorded process made (same spawn id) is left alone", [marked(40, 500, "web", "s1"), marked(41, 600, "web", "s1")], [record(40, 500, "web")], []],
    ["an unrecorded start and the leader it made: the older one is the start", [marked(51, 700, "web", "s2"), marked(50, 650, "web", "s2")], [], [50]],
    ["a pid recorded with another start time is not that record", [marked(40, 900, "web", "s3")], [record(40, 500, "web")], [40]],
    ["two unrecorded starts (an overlapping restart) are both found", [marked(60, 100, "web", "a"), marked(61, 200, "web", "b")], [], [60, 61]],
  ] as [string, Marked[], ProcessRecord[], number[]][])("%s", (_, m, r, want) => {
    expect(pids(untracked(m, r, at))).toEqual(want);
  });
});
