// Mixed agent versions: which nodes' agents may not follow the manifest's rollout: waves, and how
// `agent status --fleet` shows them.
import { describe, expect, test } from "bun:test";
import { agentCaution, olderThan, parseVersion, ROLLOUT_MIN_VERSION, type AgentCaution } from "../../agent/fleet/version.ts";
import { fleetView, type FleetPeer } from "../../agent/fleet/view.ts";
import { renderFleet } from "../../agent/cli/fleet.ts";
import { rankOrder } from "../../agent/fleet/rank.ts";

describe("olderThan (semver-ish: numbers compared, suffixes ignored)", () => {
  const rows: [string, string, boolean | null][] = [
    ["0.1.0", "0.1.0", false], ["0.1.0-dev", "0.1.0", false], ["v0.1.0", "0.1.0", false], ["0.1.0+abc", "0.1.0", false],
    ["0.0.9", "0.1.0", true], ["0.0.10", "0.1.0", true], ["0.1", "0.1.0", false], ["0", "0.1.0", true],
    ["0.10.0", "0.9.0", false], ["0.9.0", "0.10.0", true], ["1.0.0", "0.1.0", false], ["2", "1.9.9", false],
    ["1.2.3", "1.2.4", true], ["1.2.4", "1.2.3", false], ["dev", "0.1.0", null], ["", "0.1.0", null],
  ];
  for (const [v, min, want] of rows) test(`${JSON.stringify(v)} older than ${min}: ${want}`, () => expect(olderThan(v, min)).toBe(want));
  test("parseVersion", () => {
    expect(parseVersion("1.2.3-rc.1")).toEqual([1, 2, 3]);
    expect(parseVersion("x1")).toBeNull();
  });
  test("this agent's own version is not older than the minimum", async () => {
    const { VERSION } = await import("../../agent/core/version.ts");
    expect(olderThan(VERSION)).toBe(false);
  });
});

describe("agentCaution", () => {
  const rows: [string | null, boolean, AgentCaution | null][] = [
    [null, true, "predates-waves"], ["0.0.1", true, "older"], ["banana", true, "unknown-version"],
    [ROLLOUT_MIN_VERSION, true, null], ["9.0.0", true, null],
    [null, false, null], ["0.0.1", false, null],   // no rollout: every node deploys at once anyway
  ];
  for (const [v, rollout, want] of rows) test(`${v} rollout=${rollout}: ${want}`, () => expect(agentCaution(v, rollout)).toBe(want));
});

describe("fleetView and renderFleet flag agents that may deploy out of turn", () => {
  const C = "c".repeat(40), OLD = "a".repeat(40);
  const peer = (id: string, version?: string): FleetPeer => ({
    id, state: "running", role: "web", zone: "us-east-1a",
    tags: { "agent:commit": OLD, "agent:state": "converged", ...(version === undefined ? {} : { "agent:version": version }) },
  });
  const peers = [peer("i-1", "0.1.0"), peer("i-2"), peer("i-3", "0.0.7"), peer("i-4", "0.2.0-dev"), peer("i-5", "??")];
  const order = rankOrder(C, peers.map((p) => p.id));

  test("per node its caution; per role the flagged nodes in rank order", () => {
    const v = fleetView({ environment: "prod", peers, pinned: () => C, waves: [1, "25%", "100%"], maxFailures: 1 });
    const byId = Object.fromEntries(v.roles[0]!.nodes.map((n) => [n.instance, [n.version, n.caution]]));
    expect(byId).toEqual({ "i-1": ["0.1.0", null], "i-2": [null, "predates-waves"], "i-3": ["0.0.7", "older"], "i-4": ["0.2.0-dev", null], "i-5": ["??", "unknown-version"] });
    expect(v.roles[0]!.cautions).toEqual(order.filter((id) => ["i-2", "i-3", "i-5"].includes(id)));
    expect(v.minVersion).toBe(ROLLOUT_MIN_VERSION);
  });
  test("no rollout: nothing flagged", () => {
    const v = fleetView({ environment: "prod", peers, pinned: () => C, waves: null, maxFailures: 1 });
    expect(v.roles[0]!.cautions).toEqual([]);
    expect(renderFleet(v)).not.toContain("out of turn");
  });
  test("text: an AGENT column, a ! on flagged nodes, and one line per flagged node saying why", () => {
    const text = renderFleet(fleetView({ environment: "prod", peers, pinned: () => C, waves: [1, "100%"], maxFailures: 1 }));
    const lines = text.split("\n");
    expect(lines.find((l) => l.includes("INSTANCE"))).toContain("AGENT");
    expect(lines.find((l) => l.startsWith("  i-2 "))).toMatch(/-\s+- !$/);
    expect(lines.find((l) => l.startsWith("  i-3 "))).toMatch(/0\.0\.7 !$/);
    expect(lines.find((l) => l.startsWith("  i-1 "))).toMatch(/0\.1\.0$/);
    expect(text).toContain("! 3 of 5 may deploy out of turn:");
    expect(text).toContain("i-2: no agent:version tag: its agent predates waves and deploys a new pin at once");
    expect(text).toContain(`i-3: agent 0.0.7 is older than ${ROLLOUT_MIN_VERSION}, the first that follows rollout: waves`);
    expect(text).toContain(`i-5: agent:version "??" is not a version`);
  });
});
