// parsePeers: every field the planner uses is checked; an answer missing one is Ec2BadAnswer
// naming the field, never a smaller fleet.
import { describe, expect, test } from "bun:test";
import { parsePeers } from "../../agent/cloud/ec2.ts";
import { AgentError } from "../../agent/core/errors.ts";

const ok = { InstanceId: "i-0a", State: { Name: "running" as const }, LaunchTime: new Date(Date.UTC(2026, 0, 1)),
  Tags: [{ Key: "Role", Value: "web" }, { Key: "Name", Value: "x" }, { Key: "agent:commit", Value: "c" }, { Key: "agent:state", Value: "converged" }] };

describe("parsePeers", () => {
  test("a full answer: id, state, launch time, role, only agent:* tags", () => {
    expect(parsePeers([{ Instances: [ok] }], "Role")).toEqual([
      { id: "i-0a", state: "running", launchedAt: Date.UTC(2026, 0, 1), role: "web", tags: { "agent:commit": "c", "agent:state": "converged" } },
    ]);
  });
  test("no launch time or role tag: null, not a failure", () => {
    expect(parsePeers([{ Instances: [{ InstanceId: "i-0b", State: { Name: "pending" as const } }] }], "Role"))
      .toEqual([{ id: "i-0b", state: "pending", launchedAt: null, role: null, tags: {} }]);
  });
  const bad: [string, Parameters<typeof parsePeers>[0], string][] = [
    ["an empty 200 (no Reservations)", undefined, "Reservations"],
    ["a reservation without Instances", [{}], "Reservations.Instances"],
    ["an instance without InstanceId", [{ Instances: [{ ...ok, InstanceId: undefined }] }], "InstanceId"],
    ["an instance without State.Name", [{ Instances: [{ ...ok, State: {} }] }], "State.Name"],
  ];
  for (const [name, reservations, field] of bad) {
    test(`${name}: Ec2BadAnswer naming ${field}`, () => {
      let e: unknown;
      try { parsePeers(reservations, "Role"); } catch (x) { e = x; }
      expect(e).toBeInstanceOf(AgentError);
      expect((e as AgentError).reason).toBe("Ec2BadAnswer");
      expect((e as AgentError).message).toContain(`without ${field};`);
    });
  }
});
