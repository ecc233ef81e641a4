// Restart in place for a new release: overlap (new healthy before the old stops), no overlap
// (old stopped before the new starts), and a new release that never becomes healthy.
import { afterEach, expect, test } from "bun:test";
import { alive, childSpec, COMMIT_B, freePort, sandbox, supervisor, until, type Sandbox } from "../fixtures/supervisor-kit.ts";
import type { SupervisorEvent } from "../../agent/supervisor/types.ts";

let sb: Sandbox;
let sup: ReturnType<typeof supervisor> | undefined;
afterEach(async () => { await sup?.stopAll(); sup = undefined; sb?.cleanup(); });
const health = { interval: 40, timeout: 500, pass: 2, fail: 2, window: 3, deadline: 1500 };

async function running(events: SupervisorEvent[], withPort: boolean) {
  const port = withPort ? await freePort() : undefined;
  const old = childSpec(sb, "web", withPort ? ["--http"] : [], { port, health: withPort ? { http: "/up", ...health } : undefined });
  sup!.ensure([old]);
  const pid = await until(() => sup!.healthy(["web"]) && sup!.status()[0]!.pid, "old healthy");
  events.length = 0;
  return { old, pid, port };
}

test("overlap: the new process is healthy before the old one is stopped; both ran at once", async () => {
  sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
  const { pid: oldPid } = await running(events, false);
  const port = await freePort();   // the new release serves on its own port, so overlap is allowed
  const next = childSpec(sb, "web", ["--http"], { commit: COMMIT_B, port, health: { http: "/up", ...health } });
  const res = await sup.replace(["web"], [next], { overlap: true });
  expect(res).toEqual({ ok: true });
  const order = events.map((e) => `${e.kind}:${"pid" in e ? (e.pid === oldPid ? "old" : "new") : ""}`);
  expect(order.indexOf("healthy:new")).toBeGreaterThanOrEqual(0);
  expect(order.indexOf("healthy:new")).toBeLessThan(order.indexOf("exit:old"));
  expect(order.indexOf("start:new")).toBeLessThan(order.indexOf("exit:old"));   // co-existed
  expect(alive(oldPid)).toBe(false);
  expect(sup.status()).toHaveLength(1);
  expect(sup.status()[0]).toMatchObject({ name: "web", commit: COMMIT_B, state: "running", healthy: true });
  expect(sb.store().get().processes.map((r) => r.commit)).toEqual([COMMIT_B]);
});

test("no overlap: the old process is stopped before the new one starts", async () => {
  sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
  const { old, pid: oldPid, port } = await running(events, true);
  const next = { ...old, commit: COMMIT_B, argv: [...old.argv] };
  const res = await sup.replace(["web"], [next], { overlap: false });
  expect(res).toEqual({ ok: true });
  const order = events.map((e) => `${e.kind}:${"pid" in e ? (e.pid === oldPid ? "old" : "new") : ""}`);
  expect(order.indexOf("exit:old")).toBeLessThan(order.indexOf("start:new"));
  expect(sup.status()[0]).toMatchObject({ commit: COMMIT_B, healthy: true });
  expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe(`hello from ${sup.status()[0]!.pid}`);
});

test("a new release that never becomes healthy: overlap keeps the old running and says why", async () => {
  sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
  const { pid: oldPid } = await running(events, false);
  const port = await freePort();
  const sick = `${sb.dir}/sick`;
  await Bun.write(sick, "");
  const next = childSpec(sb, "web", ["--http", "--unhealthy-file", sick], { commit: COMMIT_B, port, health: { http: "/up", ...health } });
  const res = await sup.replace(["web"], [next], { overlap: true });
  expect(res.ok).toBe(false);
  if (res.ok) return;
  expect(res.reason).toBe("ProcessNotHealthy");
  expect(res.message).toContain("bbbbbbb");
  expect(res.message).toContain("answered 503");
  const newPid = events.find((e) => e.kind === "start")!.pid;
  expect(alive(newPid)).toBe(false);
  expect(alive(oldPid)).toBe(true);
  expect(sup.status()).toEqual([expect.objectContaining({ pid: oldPid, commit: "a".repeat(40), healthy: true })]);
  expect(sb.store().get().processes.map((r) => r.pid)).toEqual([oldPid]);
});

test("no overlap and never healthy: reports failure, and replacing back to the old spec rolls back", async () => {
  sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
  const { old } = await running(events, true);
  const next = childSpec(sb, "web", ["--exit", "1"], { commit: COMMIT_B, port: old.port, health: old.health });
  const res = await sup.replace(["web"], [next], { overlap: false });
  expect(res).toMatchObject({ ok: false, reason: "ProcessNotHealthy" });
  const back = await sup.replace(["web"], [old], { overlap: false });
  expect(back).toEqual({ ok: true });
  expect(sup.status()).toEqual([expect.objectContaining({ commit: old.commit, healthy: true, state: "running" })]);
});

test("a new release whose program cannot start fails the replace at once (no wait for the deadline); the old keeps running", async () => {
  sb = sandbox(); const events: SupervisorEvent[] = []; sup = supervisor(sb, events);
  const { pid: oldPid } = await running(events, false);
  const next = childSpec(sb, "web", [], { commit: COMMIT_B, argv: [`${sb.dir}/no-such-program`] });
  const res = await sup.replace(["web"], [next], { overlap: true });
  expect(res).toMatchObject({ ok: false, reason: "ProcessNotHealthy" });
  if (res.ok) return;
  expect(res.message).toContain("cannot start");
  expect(res.message).not.toContain("within");   // decided on the failed start, not on the deadline
  expect(alive(oldPid)).toBe(true);
  expect(sup.status()).toEqual([expect.objectContaining({ pid: oldPid, commit: "a".repeat(40) })]);
});
