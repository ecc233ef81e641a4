// The target group planner by tables: desired registration (bound groups, health, drain) against
// the record in state.json → register / deregister + wait-drain / wait-drain / nothing.
import { describe, expect, test } from "bun:test";
import { planTargets, targetRef, type TargetRecord, type TargetsDesired } from "../../agent/plan/targets.ts";

const A = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const B = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/fedcba9876543210";
const NOW = 1_000_000;
const g = (arn: string, port = 8080, drainMs = 30_000) => ({ arn, port, drainMs });
const reg = (port = 8080, extra: Partial<TargetRecord> = {}): TargetRecord => ({ port, state: "registered", since: 1, ...extra });
const draining = (until: number, port = 8080): TargetRecord => ({ port, state: "draining", since: 1, drainUntil: until });
const want = (o: Partial<TargetsDesired>): TargetsDesired => ({ groups: [g(A)], instanceId: "i-0aaa", healthy: true, drain: false, ...o });
const kinds = (d: TargetsDesired, known: Record<string, TargetRecord>) => {
  const p = planTargets(d, known, NOW);
  return { actions: p.actions.map((a) => `${a.kind} ${targetRef(a.arn)}:${a.port}`), forget: p.forget, ready: p.conditions.map((c) => `${c.ref} ${c.ready} ${c.reason}`) };
};

describe("planTargets", () => {
  const cases: [string, TargetsDesired, Record<string, TargetRecord>, string[], string[]?][] = [
    ["healthy, not registered → register", want({}), {}, ["targets.register target-group/web:8080"]],
    ["registered and healthy → nothing (an idle tick: no call)", want({}), { [A]: reg() }, []],
    ["unhealthy, not registered → nothing yet", want({ healthy: false }), {}, []],
    ["registered, unhealthy → stays registered (the load balancer decides)", want({ healthy: false }), { [A]: reg() }, []],
    ["drain, registered → deregister then wait", want({ drain: true }), { [A]: reg() }, ["targets.deregister target-group/web:8080", "targets.wait-drain target-group/web:8080"]],
    ["drain, already draining → wait", want({ drain: true }), { [A]: draining(NOW + 5000) }, ["targets.wait-drain target-group/web:8080"]],
    ["drain, drained past its deadline → forget, no call", want({ drain: true }), { [A]: draining(NOW - 1) }, [], [A]],
    ["drain, never registered → nothing", want({ drain: true }), {}, []],
    ["draining, no longer asked (resume) and healthy → register again", want({}), { [A]: draining(NOW - 1) }, ["targets.register target-group/web:8080"]],
    ["binding removed → deregister then wait", want({ groups: [] }), { [A]: reg() }, ["targets.deregister target-group/web:8080", "targets.wait-drain target-group/web:8080"]],
    ["binding removed, drained → forget", want({ groups: [] }), { [A]: draining(NOW - 1) }, [], [A]],
    ["port changed → deregister the old, register the new", want({ groups: [g(A, 9090)] }), { [A]: reg(8080) },
      ["targets.deregister target-group/web:8080", "targets.wait-drain target-group/web:8080", "targets.register target-group/web:9090"]],
    ["two groups, one registered → register the other", want({ groups: [g(A), g(B, 81)] }), { [A]: reg() }, ["targets.register target-group/api:81"]],
    ["nothing bound, nothing known → nothing", want({ groups: [] }), {}, []],
  ];
  for (const [name, d, known, actions, forget] of cases) {
    test(name, () => {
      const p = kinds(d, known);
      expect(p.actions).toEqual(actions);
      expect(p.forget).toEqual(forget ?? []);
    });
  }

  test("conditions: registered is ready, waiting for health is not, drained is ready", () => {
    expect(kinds(want({}), { [A]: reg() }).ready).toEqual(["target-group/web true Registered"]);
    expect(kinds(want({ healthy: false }), {}).ready).toEqual(["target-group/web false WaitingForHealthyProcesses"]);
    expect(kinds(want({}), {}).ready).toEqual(["target-group/web false NotRegistered"]);
    expect(kinds(want({ drain: true }), { [A]: reg() }).ready).toEqual(["target-group/web true Deregistered"]);
  });

  test("the wait is bounded by the binding's drain, or the recorded one when the binding is gone", () => {
    const [, wait] = planTargets(want({ drain: true, groups: [g(A, 8080, 5000)] }), { [A]: reg() }, NOW).actions;
    expect(wait).toMatchObject({ kind: "targets.wait-drain", until: NOW + 5000 });
    const [, gone] = planTargets(want({ groups: [] }), { [A]: reg(8080, { drainMs: 7000 }) }, NOW).actions;
    expect(gone).toMatchObject({ kind: "targets.wait-drain", until: NOW + 7000 });
  });
});
