// Which silent DynamoDB records to ask EC2 about, and which are dead (agent/fleet/liveness.ts), as tables.
import { describe, expect, test } from "bun:test";
import { deadIds, heldBy, idsToCheck, isInstanceId, noteRecords, type CheckInput, type Silence } from "../../agent/fleet/liveness.ts";
import type { Decision } from "../../agent/fleet/types.ts";

describe("noteRecords", () => {
  test("an unchanged record keeps when it was first seen; a changed or new one starts now; a gone one is forgotten", () => {
    const old: Silence = { "i-1": { record: "x", at: 10 }, "i-2": { record: "y", at: 10 }, "i-3": { record: "z", at: 10 } };
    expect(noteRecords(old, [{ id: "i-1", record: "x" }, { id: "i-2", record: "y2" }, { id: "i-4", record: "w" }], 50)).toEqual({
      "i-1": { record: "x", at: 10 }, "i-2": { record: "y2", at: 50 }, "i-4": { record: "w", at: 50 },
    });
  });
});

describe("heldBy", () => {
  const cases: [Decision, string[]][] = [
    [{ kind: "wait", for: ["i-2", "i-1"], until: null, reason: "EarlierWave" }, ["i-2", "i-1"]],
    [{ kind: "wait", for: ["i-3"], until: 5, reason: "WaveFull" }, ["i-3"]],
    [{ kind: "wait", for: ["i-5"], until: 5, reason: "Baking" }, []],    // a bake ends by itself; a baking peer is silent by design
    [{ kind: "halted", by: ["i-4"], reason: "PeerStuck" }, ["i-4"]],
    [{ kind: "halted", by: ["i-4"], reason: "PeerFailed" }, []],          // a failed peer is an answer, not silence
    [{ kind: "rollback", by: ["i-4"], reason: "PeerFailed" }, []],
    [{ kind: "move", commit: "c", reason: "Wave" }, []],
  ];
  for (const [d, want] of cases) test(`${d.kind} ${d.reason} -> [${want.join(", ")}]`, () => expect(heldBy(d)).toEqual(want));
});

describe("idsToCheck", () => {
  const silence: Silence = {
    "i-0a": { record: "r", at: 0 }, "i-0b": { record: "r", at: 0 }, "i-0c": { record: "r", at: 90_000 },
    "i-self": { record: "r", at: 0 }, "e2e-1": { record: "r", at: 0 }, "i-00": { record: "r", at: 0 },
  };
  const base: CheckInput = { self: "i-00", heldBy: [], silence, silentMs: 120_000, now: 200_000, nextCheckAt: 0 };
  const cases: [string, Partial<CheckInput>, string[]][] = [
    ["silent for a lease: asked, sorted, once each", { heldBy: ["i-0b", "i-0a", "i-0b"] }, ["i-0a", "i-0b"]],
    ["changed less than a lease ago: not asked", { heldBy: ["i-0c", "i-0a"] }, ["i-0a"]],
    ["exactly a lease: asked", { heldBy: ["i-0c"], now: 210_000 }, ["i-0c"]],
    ["silent but not held by: not asked", { heldBy: [] }, []],
    ["before nextCheckAt: nothing", { heldBy: ["i-0a"], nextCheckAt: 200_001 }, []],
    ["at nextCheckAt: asked", { heldBy: ["i-0a"], nextCheckAt: 200_000 }, ["i-0a"]],
    ["itself never", { heldBy: ["i-00", "i-0a"] }, ["i-0a"]],
    ["not an EC2 instance id (static identity): never", { heldBy: ["e2e-1", "i-self"] }, []],
    ["no record seen: not asked", { heldBy: ["i-0d"] }, []],
  ];
  for (const [name, over, want] of cases) test(name, () => expect(idsToCheck({ ...base, ...over })).toEqual(want));
  test("instance ids", () => {
    expect(["i-0123456789abcdef0", "i-1234abcd", "i-02", "i-peer", "e2e-1", "i-", "i-0123456789abcdef01"].map(isInstanceId)).toEqual([true, true, true, false, false, false, false]);
  });
});

describe("deadIds", () => {
  test("absent from EC2's answer or shutting-down, terminated, stopping, stopped: dead; pending and running: alive", () => {
    const states = { "i-1": "running", "i-2": "pending", "i-3": "terminated", "i-4": "shutting-down", "i-5": "stopping", "i-6": "stopped" };
    expect(deadIds(["i-1", "i-2", "i-3", "i-4", "i-5", "i-6", "i-7"], states)).toEqual(["i-3", "i-4", "i-5", "i-6", "i-7"]);
    expect(deadIds([], states)).toEqual([]);
  });
});
