// The reconcile tick against in-memory ports: the decisions of a deploy (prepare, cutover,
// health-gated rollback, bad commits, drift repair, interrupted cutovers) without a process.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock, systemClock, type Clock } from "../../agent/core/clock.ts";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { Config, Manifest, Role } from "../../agent/manifest/schema.ts";
import type { Ports, ReleaseInfo } from "../../agent/loop/ports.ts";
import { newMemory, tick, type TickResult } from "../../agent/loop/tick.ts";
import { MAX_CONFIRM_ATTEMPTS } from "../../agent/plan/release.ts";
import { createDaemon } from "../../agent/loop/daemon.ts";
import { layout } from "../../agent/state/layout.ts";
import { StateStore } from "../../agent/state/store.ts";
import type { ProcessStatus } from "../../agent/status/types.ts";

const A = "a".repeat(40), B = "b".repeat(40), C = "c".repeat(40);

class World {
  tip = "1".repeat(40);
  manifestCommit = A;
  manifestOk = true;
  poll = "30s";
  sourceDown = false;
  roles: Record<string, unknown> = { [A]: { processes: { web: { run: "app" } } }, [B]: { processes: { web: { run: "app" } } }, [C]: { processes: { web: { run: "app" } }, hooks: { before_cutover: ["fail"] } } };
  releases = new Map<string, ReleaseInfo>();
  current: string | null = null;
  running = new Map<string, { commit: string; healthy: boolean }>();
  unhealthyCommits = new Set<string>();
  prepared: string[] = [];
  hooks: string[] = [];
  started: string[] = [];     // `${process}@${commit[0]}` for every process an ensure() started
}

function ports(w: World, dir: string, clock: Clock = new ManualClock(1_000_000)): Ports {
  const L = layout(dir);
  return {
    config: Config.parse({ repo: "http://127.0.0.1:1/ops.git", stateDir: dir, identity: { role: "web", environment: "staging", instanceId: "dev-1" } }),
    layout: L, store: new StateStore(L.stateFile), clock, log: memoryLogger(),
    identity: { resolve: async () => ({ identity: { instanceId: "dev-1", region: "local", zone: "local-1a", role: "web", environment: "staging" } }) },
    source: {
      poll: async () => { if (w.sourceDown) throw new AgentError("SourceUnreachable", "git server down"); return { tip: w.tip, moved: true }; },
      readManifest: async (tip) => w.manifestOk
        ? { ok: true, value: Manifest.parse({ commit: w.manifestCommit, poll: w.poll }), file: "manifests/staging.yaml" }
        : { ok: false, problems: [{ file: "manifests/staging.yaml", line: 1, column: 9, path: "commit", message: "must be a full 40-character hex commit id" }], file: "manifests/staging.yaml" },
      ensureCommit: async (c) => { if (!w.roles[c]) throw AgentError.terminal("CommitNotFound", `no commit ${c}`); return { subject: `subject of ${c.slice(0, 4)}` }; },
      readRole: async (c) => Role.parse(w.roles[c]),
    },
    releases: {
      info: (c) => w.releases.get(c) ?? { state: "missing" },
      current: () => w.current,
      prepare: async (c) => { w.prepared.push(c); w.releases.set(c, { state: "ready" }); },
      switchCurrent: (c) => { w.current = c; },
      mark: (c, state, reason) => { w.releases.set(c, { ...w.releases.get(c), state, reason, failedAt: state === "failed" ? clock.now() : null }); },
      runHook: async (c, _r, cmd) => { w.hooks.push(`${c.slice(0, 1)}:${cmd}`); if (cmd === "fail") throw new Error("exit 1"); },
      prune: () => {},
    },
    processes: {
      // level-based, like the real port: exactly the role's processes run afterwards
      ensure: async (commit, role) => {
        for (const name of Object.keys(role.processes)) if (w.running.get(name)?.commit !== commit) w.started.push(`${name}@${commit[0]}`);
        w.running = new Map(Object.keys(role.processes).map((name) => [name, { commit, healthy: !w.unhealthyCommits.has(commit) }]));
      },
      replace: async (commit, role) => {
        if (w.unhealthyCommits.has(commit)) return { ok: false, reason: "HealthCheckFailed", message: "web never became healthy" };
        w.running = new Map(Object.keys(role.processes).map((name) => [name, { commit, healthy: true }]));
        return { ok: true };
      },
      stopAll: async () => { w.running.clear(); },
      status: () => [...w.running].map(([name, r]): ProcessStatus => ({ name, state: "running", pid: 1, commit: r.commit, restarts: 0, healthy: r.healthy })),
      healthy: (c) => [...w.running.values()].every((r) => r.commit === c && r.healthy),
    },
    cloud: null,
  };
}

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), "tick-")); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("tick", () => {
  test("an empty node prepares, cuts over and converges; the second tick does nothing", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    const first = await tick(p, mem, { mode: "once" });
    expect(first.error).toBeNull();
    expect(first.converged).toBe(true);
    expect(w.current).toBe(A);
    expect(w.releases.get(A)?.state).toBe("good");
    expect(p.store.get().lastGoodCommit).toBe(A);
    const second = await tick(p, mem, { mode: "once" });
    expect(second.actions).toEqual([]);
    expect(w.prepared).toEqual([A]);
    const onDisk = JSON.parse(readFileSync(join(dir, "status.json"), "utf8"));
    expect(onDisk).toMatchObject({ phase: "converged", desired: { commit: A }, current: { commit: A }, lastTick: { ok: true } });
  });

  test("a new pinned commit restarts in place onto it", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestCommit = B; w.tip = "2".repeat(40);
    const r = await tick(p, mem, { mode: "once" });
    expect(r.converged).toBe(true);
    expect(w.current).toBe(B);
    expect(w.running.get("web")?.commit).toBe(B);
  });

  test("an unhealthy release is rolled back and marked bad, and not tried again", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestCommit = B; w.tip = "2".repeat(40); w.unhealthyCommits.add(B);
    const r = await tick(p, mem, { mode: "once" });
    expect(r.error?.reason).toBe("HealthCheckFailed");
    expect(w.current).toBe(A);
    expect(w.running.get("web")?.commit).toBe(A);
    expect(r.status.badCommits).toEqual([B]);
    expect(r.status.phase).toBe("degraded");
    const again = await tick(p, mem, { mode: "once" });
    expect(again.error?.reason).toBe("CommitMarkedBad");
    expect(w.prepared).toEqual([A, B]);
    expect(w.current).toBe(A);
  });

  test("a failing before_cutover hook leaves the old release running, never switched", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestCommit = C; w.tip = "3".repeat(40);
    const r = await tick(p, mem, { mode: "once" });
    expect(r.error?.reason).toBe("HookFailed");
    expect(w.current).toBe(A);
    expect(w.hooks).toEqual(["c:fail"]);
    expect(p.store.get().badCommits).toEqual([C]);
  });

  test("an invalid manifest at the tip keeps the last good desired state", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestOk = false; w.tip = "4".repeat(40);
    const r = await tick(p, mem, { mode: "once" });
    expect(r.error?.reason).toBe("ManifestInvalid");
    expect(r.error?.message).toContain("manifests/staging.yaml:1:9: commit:");
    expect(r.status.desired.commit).toBe(A);
    expect(w.current).toBe(A);
  });

  test("a pinned commit that does not exist fails clearly and changes nothing", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestCommit = "d".repeat(40); w.tip = "5".repeat(40);
    const r = await tick(p, mem, { mode: "once" });
    expect(r.error?.reason).toBe("CommitNotFound");
    expect(w.current).toBe(A);
    expect(r.status.phase).toBe("degraded");
  });

  test("a pinned commit that does not exist: the current release is still kept running (drift repaired)", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestCommit = "d".repeat(40); w.tip = "8".repeat(40);
    w.running.clear();
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(r.error?.reason).toBe("CommitNotFound");
    expect(w.running.get("web")?.commit).toBe(A);
    expect(r.status.current.commit).toBe(A);
  });

  test("the git server down: the node keeps running what it runs", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.sourceDown = true;
    const r = await tick(p, mem, { mode: "once" });
    expect(r.error?.reason).toBe("SourceUnreachable");
    expect(w.current).toBe(A);
    expect(r.status.current.commit).toBe(A);
  });

  test("an agent restarted while the git server is down still repairs drift, from the remembered manifest", async () => {
    const w = new World(), p = ports(w, dir);
    await tick(p, newMemory(), { mode: "once" });
    w.sourceDown = true;
    w.running.clear();                        // a process died while no agent was watching
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(r.error?.reason).toBe("SourceUnreachable");
    expect(w.running.get("web")?.commit).toBe(A);
    expect(r.status.desired.commit).toBe(A);
    expect(r.status.notices.join("\n")).toContain("remembered");
  });

  test("drift: a process that vanished is started again", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.running.clear();
    await tick(p, mem, { mode: "once" });
    expect(w.running.get("web")?.commit).toBe(A);
  });

  test("a cutover interrupted during the health wait is confirmed by the next agent", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    // the previous agent switched to B and died before confirming
    w.manifestCommit = B; w.tip = "6".repeat(40); w.current = B; w.releases.set(B, { state: "active" });
    p.store.update((s) => { s.deploying = { commit: B, from: A, startedAt: p.clock.now() }; });
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(r.converged).toBe(true);
    expect(w.releases.get(B)?.state).toBe("good");
    expect(p.store.get().deploying).toBeNull();
  });

  test("an interrupted cutover whose release stays unhealthy is rolled back after the deadline", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestCommit = B; w.tip = "7".repeat(40); w.current = B; w.releases.set(B, { state: "active" }); w.unhealthyCommits.add(B);
    p.store.update((s) => { s.deploying = { commit: B, from: A, startedAt: p.clock.now() }; });
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(r.error?.reason).toBe("HealthCheckFailed");
    expect(w.current).toBe(A);
    expect(p.store.get().badCommits).toContain(B);
  });

  test("an interrupted cutover that cannot be confirmed: failed attempts are counted in state.json, then it is rolled back", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.manifestCommit = B; w.tip = "8".repeat(40); w.current = B; w.releases.set(B, { state: "active" });
    p.store.update((s) => { s.deploying = { commit: B, from: A, startedAt: p.clock.now() }; });
    const mark = p.releases.mark;
    p.releases.mark = (c, state, ...rest) => { if (state === "good") throw new Error("disk full"); mark(c, state, ...rest); };
    for (let i = 1; i < MAX_CONFIRM_ATTEMPTS; i++) {
      const r = await tick(p, newMemory(), { mode: "once" });
      expect(r.error?.message).toContain("disk full");
      expect(new StateStore(p.layout.stateFile).get().deploying?.failures).toBe(i);     // persisted
    }
    // an interrupted attempt (the agent stops) does not count
    const stop = new AbortController(); stop.abort();
    w.unhealthyCommits.add(B);
    await tick(p, newMemory(), { mode: "run", signal: stop.signal });
    expect(p.store.get().deploying?.failures).toBe(MAX_CONFIRM_ATTEMPTS - 1);
    w.unhealthyCommits.delete(B);
    await tick(p, newMemory(), { mode: "once" });
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(r.error?.reason).toBe("ConfirmFailed");
    expect(w.current).toBe(A);
    expect(p.store.get().badCommits).toContain(B);
    expect(p.store.get().deploying).toBeNull();
  });

  test("paused: nothing changes, status says paused", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    p.store.update((s) => { s.paused = true; });
    const r = await tick(p, mem, { mode: "once" });
    expect(w.current).toBeNull();
    expect(r.status.phase).toBe("paused");
  });

  test("plan (dry run) lists the actions and changes nothing", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    const r = await tick(p, mem, { mode: "once", dryRun: true });
    expect(r.actions.map((a) => a.kind)).toEqual(["release.prepare", "release.cutover"]);
    expect(w.current).toBeNull();
    expect(w.prepared).toEqual([]);
  });
});

describe("tick: review findings", () => {
  test("a first deploy that fails health leaves nothing running, and later ticks do not start it again", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    w.unhealthyCommits.add(A);
    const r = await tick(p, mem, { mode: "run" });
    expect(r.error?.reason).toBe("HealthCheckFailed");
    expect(p.store.get().badCommits).toEqual([A]);
    expect([...w.running.keys()]).toEqual([]);
    const again = await tick(p, mem, { mode: "run" });
    expect(again.error?.reason).toBe("CommitMarkedBad");
    expect([...w.running.keys()]).toEqual([]);
  });

  test("a cutover killed in its before_cutover hook (never switched) does not block convergence or drift repair", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    // the previous agent began a cutover to B and died in a hook; the manifest still pins A
    w.releases.set(B, { state: "ready" });
    p.store.update((s) => { s.deploying = { commit: B, from: A, startedAt: p.clock.now() }; });
    w.running.clear();
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(w.running.get("web")?.commit).toBe(A);
    expect(p.store.get().deploying).toBeNull();
    expect(r.converged).toBe(true);
    expect(r.status.phase).toBe("converged");
  });

  test("an interrupted cutover is confirmed with its own role, even when the manifest moved on meanwhile", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    w.roles[C] = { processes: { worker: { run: "work" } } };
    await tick(p, mem, { mode: "once" });
    w.current = B; w.releases.set(B, { state: "active" });
    w.running.clear(); w.running.set("web", { commit: B, healthy: true });
    p.store.update((s) => { s.deploying = { commit: B, from: A, startedAt: p.clock.now() }; });
    w.manifestCommit = C; w.tip = "9".repeat(40);
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(w.releases.get(B)?.state).toBe("good");
    // B was confirmed as B (its process web, not C's worker) ...
    expect([...w.running].map(([n, x]) => `${n}@${x.commit[0]}`)).toEqual(["web@b"]);
    expect(w.started).not.toContain("worker@b");
    expect(r.error).toBeNull();
    // ... then the node moves on to C
    const next = await tick(p, newMemory(), { mode: "once" });
    expect(next.converged).toBe(true);
    expect([...w.running].map(([n, x]) => `${n}@${x.commit[0]}`)).toEqual(["worker@c"]);
  });

  test("an interrupted cutover is finished even when the manifest now pins a commit that does not exist", async () => {
    const w = new World(), p = ports(w, dir), mem = newMemory();
    await tick(p, mem, { mode: "once" });
    w.current = B; w.releases.set(B, { state: "active" }); w.unhealthyCommits.add(B);
    w.running.set("web", { commit: B, healthy: false });
    p.store.update((s) => { s.deploying = { commit: B, from: A, startedAt: p.clock.now() }; });
    w.manifestCommit = "d".repeat(40); w.tip = "a1".repeat(20);
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(w.current).toBe(A);
    expect(p.store.get().deploying).toBeNull();
    expect(p.store.get().badCommits).toContain(B);
    expect(w.running.get("web")?.commit).toBe(A);
    expect(r.status.current.commit).toBe(A);
  });
});

describe("daemon: review findings", () => {
  test("a status.json that cannot be written is a warning: the tick still deploys and answers", async () => {
    const w = new World(), p = ports(w, dir);
    mkdirSync(join(dir, "status.json"));          // rename(2) onto a directory fails, like a full disk
    const r = await tick(p, newMemory(), { mode: "once" });
    expect(r.converged).toBe(true);
    expect(w.current).toBe(A);
  });

  test("a tick that throws does not stop the loop", async () => {
    const w = new World(), p = ports(w, dir, new ManualClock(1_000_000));
    w.poll = "20ms";
    const status = p.processes.status;
    let calls = 0;
    p.processes.status = () => { if (++calls <= 2) throw new Error("boom"); return status(); };
    const ticks: TickResult[] = [];
    const d = createDaemon(p, { goodReleases: () => [], onTick: (r) => ticks.push(r) });
    const done = d.start();
    const until = Date.now() + 20_000;
    while (ticks.length < 1 && Date.now() < until) { d.handlers.sync(); await Bun.sleep(20); }
    d.stop();
    await done;
    expect(ticks.length).toBeGreaterThanOrEqual(1);
    expect(w.current).toBe(A);
  });
});

test("daemon: stop() answers an `agent rollback` still waiting for its tick", async () => {
  const w = new World(), p = ports(w, dir);
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const ticks: TickResult[] = [];
  const d = createDaemon(p, { goodReleases: () => [B], onTick: (r) => ticks.push(r) });
  const done = d.start();
  while (ticks.length < 1) await Bun.sleep(10);
  p.identity.resolve = async () => { await gate; throw new Error("IMDS hangs"); };   // the next tick wedges
  const answer = d.handlers.rollback(B);
  await Bun.sleep(50);
  d.stop();
  const a = await Promise.race([answer, Bun.sleep(5_000).then(() => null)]);
  release();
  await done;
  expect(a).toMatchObject({ ok: false });
  expect((a as { message: string }).message).toContain("stopped");
  expect(p.store.get().localPin?.commit).toBe(B);
});

test("daemon: a tip that moves without a new pin does not cancel the preparation of a locally pinned release", async () => {
  const w = new World(), p = ports(w, dir, systemClock);   // real sleeps: watch() polls on them
  w.poll = "10ms";
  await tick(p, newMemory(), { mode: "run" });
  p.store.update((s) => { s.localPin = { commit: B, manifestCommit: A, at: 0 }; });
  let aborted = false, release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let preparing = false;
  p.releases.prepare = async (c, _r, _e, signal) => {
    preparing = true;
    signal.addEventListener("abort", () => { aborted = true; release(); });
    await gate;
    if (signal.aborted) throw new AgentError("PreparationCancelled", "cancelled");
    w.releases.set(c, { state: "ready" });
  };
  const d = createDaemon(p, { goodReleases: () => [] });
  const done = d.start();
  while (!preparing) await Bun.sleep(5);
  w.tip = "e".repeat(40);                 // an unrelated commit: the manifest still pins A
  await Bun.sleep(300);                    // many watch polls
  const wasAborted = aborted;
  release();
  d.stop();
  await done;
  expect(wasAborted).toBe(false);
});

test("a new release whose role adds a volume not ready yet: the running release's processes are still repaired", async () => {
  const w = new World(), p = ports(w, dir);
  const D = "d".repeat(40);
  w.roles[D] = { processes: { web: { run: "app" } }, volumes: { data: { mount: "/data" } } };
  p.cloud = {
    volumes: (role) => Object.keys(role.volumes).map((name) => ({
      ref: `volume/${name}`, apply: async () => {},
      plan: async () => ({ actions: [], condition: { ref: `volume/${name}`, ready: false, reason: "VolumeNotBound", message: "bind it in the manifest" } }),
    })),
    address: () => null,
    syncTags: async (_i, _w, last) => last,
  };
  await tick(p, newMemory(), { mode: "once" });
  w.manifestCommit = D; w.tip = "f".repeat(40);
  w.running.clear();                         // drift: the running release's process died
  const r = await tick(p, newMemory(), { mode: "once" });
  expect(r.converged).toBe(false);
  expect(w.current).toBe(A);
  expect(w.running.get("web")?.commit).toBe(A);
});

test("trust: a refused tip is never read, lastTip stays at the accepted one, the release keeps running", async () => {
  const { Trust } = await import("../../agent/trust/trust.ts");
  const { writeFileSync } = await import("node:fs");
  const w = new World(), p = ports(w, dir);
  const mem = newMemory();
  expect((await tick(p, mem, { mode: "once" })).converged).toBe(true);
  const accepted = w.tip;
  writeFileSync(join(dir, "allowed_signers"), "ops@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ1Gv1EZ8PCpI0mHbYQ/ezc0z8nzYq2kOQ5VZ3pG+P4\n");
  p.trust = await Trust.load({ allowedSigners: join(dir, "allowed_signers"), openpgpKeys: [], require: "tip" });
  const read: string[] = [];
  const unsigned = (c: string) => new TextEncoder().encode(`tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ncommitter C <c@x> 1 +0000\n\nmove ${c.slice(0, 4)}\n`);
  Object.assign(p.source, {
    commitObject: async (c: string) => unsigned(c), readFile: async () => null, descendsFrom: async () => true,
    readManifest: async (tip: string) => { read.push(tip); return { ok: true, value: Manifest.parse({ commit: B }), file: "manifests/staging.yaml" }; },
  });
  w.tip = "2".repeat(40);
  const r = await tick(p, mem, { mode: "once" });
  expect(r.error?.reason).toBe("CommitUntrusted");
  expect(r.error?.message).toStartWith(`refusing tip 222222222222 ("move 2222"): nobody signed it`);
  expect(read).toEqual([]);                                    // its manifest was never read
  expect(p.store.get().lastTip).toBe(accepted);               // the floor did not move
  expect(w.current).toBe(A);
  expect(w.running.get("web")?.commit).toBe(A);
});
