// With the state dir's disk full, a restarted process cannot be recorded in state.json. The next
// supervisor (the next agent) finds it by the marker in its environment and adopts it: one copy.
import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemClock } from "../../agent/core/clock.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { findMarked } from "../../agent/host/marker.ts";
import { isRoot } from "../../agent/host/users.ts";
import { layout } from "../../agent/state/layout.ts";
import { StateStore } from "../../agent/state/store.ts";
import { Supervisor } from "../../agent/supervisor/supervisor.ts";
import { alive, childSpec, TEST_TUNING, until, type Sandbox } from "../fixtures/supervisor-kit.ts";

const cleanups: (() => void)[] = [];
afterEach(() => { for (const c of cleanups.splice(0).reverse()) try { c(); } catch {} });

function supervisorAt(dir: string) {
  const log = memoryLogger();
  const sup = new Supervisor({ clock: systemClock, log, store: new StateStore(layout(dir).stateFile), logs: { maxBytes: 10 << 20, keep: 3 }, tuning: TEST_TUNING, stateDir: dir });
  return Object.assign(sup, { lines: log.lines });
}

test.if(isRoot())("disk full: a restart that state.json never heard of is adopted by the next agent, not started twice", async () => {
  const base = mkdtempSync(join(tmpdir(), "agent-full-"));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  const state = join(base, "state"), app = join(base, "app");
  mkdirSync(state); mkdirSync(app);
  Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", state]);
  cleanups.push(() => Bun.spawnSync(["umount", "-l", state]));
  // The release and its log live elsewhere: only state.json's disk fills up.
  const sb: Sandbox = { dir: app, layout: layout(app), store: () => new StateStore(layout(app).stateFile), cleanup() {} };
  const spec = childSpec(sb, "app", []);

  const first = supervisorAt(state);
  first.adopt();
  first.ensure([spec]);
  cleanups.push(() => { for (const m of findMarked(state)) try { process.kill(-m.stat.pid, "SIGKILL"); } catch {} });
  const old = await until(() => first.status()[0]?.state === "running" && first.status()[0]!.pid, "app running");
  expect(new StateStore(layout(state).stateFile).get().processes.map((r) => r.pid)).toEqual([old]);

  const fill = join(state, "fill");
  try { for (let i = 0; i < 1024; i++) writeFileSync(fill, Buffer.alloc(64 << 10), { flag: "a" }); } catch {}   // ENOSPC
  process.kill(old, "SIGKILL");
  const fresh = await until(() => { const p = first.status()[0]; return p?.pid !== old && p?.state === "running" && p.pid; }, "app restarted");
  first.detach();                                                  // the agent goes away; nothing could be written
  expect(first.lines.some((l) => l.includes("cannot write state.json"))).toBe(true);
  expect(new StateStore(layout(state).stateFile).get().processes.map((r) => r.pid)).toEqual([old]);

  rmSync(fill);
  const next = supervisorAt(state);
  const res = next.adopt();
  expect(res.adopted.map((r) => r.pid)).toEqual([fresh]);
  expect(res.dropped.map((d) => [d.record.pid, d.why])).toEqual([[old, "gone"]]);
  next.ensure([spec]);                                             // same fingerprint: nothing restarts
  expect(next.status().map((p) => p.pid)).toEqual([fresh]);
  expect(findMarked(state).map((m) => m.stat.pid)).toEqual([fresh]);
  expect(alive(fresh)).toBe(true);
  await next.stopAll();
  expect(alive(fresh)).toBe(false);
});
