// The front's planner as tables: (desired routes, current table, now) -> next table and drains.
import { describe, expect, test } from "bun:test";
import { EMPTY_TABLE, pickUpstream, planRoutes, settleDrains, type DesiredRoute, type Table } from "../../agent/front/routes.ts";

const up = (port: number, healthy = true) => ({ id: `web@${port}`, port, healthy });
const route = (port: number, upstreams: ReturnType<typeof up>[], over: Partial<DesiredRoute> = {}): DesiredRoute =>
  ({ port, listen: "0.0.0.0", health: "/up", drainMs: 30_000, holdMs: 10_000, maxBody: 100, upstreams, ...over });
const ports = (t: Table, port = 8080) => t.routes.find((r) => r.port === port)!.rotation.map((u) => u.port);

describe("front routes", () => {
  test("a first table puts the ready instances in rotation, drains nothing", () => {
    const t = planRoutes([route(8080, [up(9001), up(9002, false)])], EMPTY_TABLE, 0);
    expect(ports(t)).toEqual([9001]);
    expect(t.routes[0]!.upstreams.map((u) => u.port)).toEqual([9001, 9002]);
    expect(t.draining).toEqual([]);
  });

  test("planning the result again changes nothing (idempotent)", () => {
    const d = [route(8080, [up(9001)]), route(8443, [up(9101)])];
    const t = planRoutes(d, EMPTY_TABLE, 0);
    expect(planRoutes(d, t, 5)).toEqual(t);
  });

  test("a cutover is gated until every new instance is ready; the old ones keep serving", () => {
    const old = planRoutes([route(8080, [up(9001)])], EMPTY_TABLE, 0);
    const gated = planRoutes([route(8080, [up(9002), up(9003, false)])], old, 10);
    expect(ports(gated)).toEqual([9001]);
    expect(gated.routes[0]!.gated).toBe(true);
    expect(gated.draining).toEqual([]);
    const switched = planRoutes([route(8080, [up(9002), up(9003)])], gated, 20);
    expect(ports(switched)).toEqual([9002, 9003]);
    expect(switched.routes[0]!.gated).toBe(false);
    expect(switched.draining).toEqual([{ port: 8080, upstream: { id: "web@9001", port: 9001 }, since: 20, deadline: 30_020 }]);
  });

  test("the drain deadline is the route's drainMs from the switch", () => {
    const old = planRoutes([route(8080, [up(9001)], { drainMs: 5000 })], EMPTY_TABLE, 0);
    const t = planRoutes([route(8080, [up(9002)], { drainMs: 5000 })], old, 1000);
    expect(t.draining[0]!.deadline).toBe(6000);
  });

  test("a drain already under way keeps its start when planned again", () => {
    const old = planRoutes([route(8080, [up(9001)])], EMPTY_TABLE, 0);
    const t1 = planRoutes([route(8080, [up(9002)])], old, 100);
    const t2 = planRoutes([route(8080, [up(9002)])], t1, 900);
    expect(t2.draining).toEqual(t1.draining);
  });

  test("a singleton: an empty upstream list empties the rotation at once (requests are held) and drains the old", () => {
    const old = planRoutes([route(8080, [up(9001)])], EMPTY_TABLE, 0);
    const stopping = planRoutes([route(8080, [])], old, 10);
    expect(ports(stopping)).toEqual([]);
    expect(stopping.routes[0]!.gated).toBe(false);
    expect(stopping.draining.map((d) => d.upstream.port)).toEqual([9001]);
    const starting = planRoutes([route(8080, [up(9002, false)])], stopping, 20);
    expect(ports(starting)).toEqual([]);
    expect(ports(planRoutes([route(8080, [up(9002)])], starting, 30))).toEqual([9002]);
  });

  test("an instance that stops being ready leaves rotation without draining; it comes back when ready", () => {
    const t = planRoutes([route(8080, [up(9001), up(9002)])], EMPTY_TABLE, 0);
    const sick = planRoutes([route(8080, [up(9001), up(9002, false)])], t, 10);
    expect(ports(sick)).toEqual([9001]);
    expect(sick.draining).toEqual([]);
    expect(ports(planRoutes([route(8080, [up(9001), up(9002)])], sick, 20))).toEqual([9001, 9002]);
  });

  test("no instance ready at all on a port with no rotation: the rotation stays empty", () => {
    expect(ports(planRoutes([route(8080, [up(9001, false)])], EMPTY_TABLE, 0))).toEqual([]);
  });

  test("a port no longer desired drains all of its upstreams", () => {
    const t = planRoutes([route(8080, [up(9001)]), route(8443, [up(9101), up(9102)])], EMPTY_TABLE, 0);
    const next = planRoutes([route(8080, [up(9001)])], t, 50);
    expect(next.routes.map((r) => r.port)).toEqual([8080]);
    expect(next.draining.map((d) => [d.port, d.upstream.port])).toEqual([[8443, 9101], [8443, 9102]]);
  });

  test("an upstream desired again while draining (a rollback) stops draining", () => {
    const t1 = planRoutes([route(8080, [up(9001)])], EMPTY_TABLE, 0);
    const t2 = planRoutes([route(8080, [up(9002)])], t1, 10);
    expect(t2.draining.map((d) => d.upstream.port)).toEqual([9001]);
    const back = planRoutes([route(8080, [up(9001)])], t2, 20);
    expect(ports(back)).toEqual([9001]);
    expect(back.draining.map((d) => d.upstream.port)).toEqual([9002]);
  });

  test("settleDrains: idle drains are done, busy ones wait until their deadline", () => {
    const d = (port: number) => ({ port: 8080, upstream: { id: `u${port}`, port }, since: 0, deadline: 100 });
    const inflight = new Map([[9002, 3]]);
    const early = settleDrains([d(9001), d(9002)], inflight, 50);
    expect(early.done.map((x) => [x.upstream.port, x.reason])).toEqual([[9001, "idle"]]);
    expect(early.remaining.map((x) => x.upstream.port)).toEqual([9002]);
    expect(settleDrains([d(9002)], inflight, 100).done.map((x) => x.reason)).toEqual(["deadline"]);
  });

  test("pickUpstream: fewest in flight, ties round-robin, none when the rotation is empty", () => {
    const rot = [{ id: "a", port: 1 }, { id: "b", port: 2 }, { id: "c", port: 3 }];
    expect([0, 1, 2, 3].map((turn) => pickUpstream(rot, new Map(), turn)!.port)).toEqual([1, 2, 3, 1]);
    expect(pickUpstream(rot, new Map([[1, 2], [2, 1], [3, 2]]), 0)!.port).toBe(2);
    expect(pickUpstream([], new Map(), 0)).toBeNull();
  });
});
