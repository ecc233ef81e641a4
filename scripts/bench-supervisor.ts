// Benchmark of the supervisor: the agent's CPU and RSS while it supervises N processes (some with
// HTTP health checks), and the time from a process's death to its restart, beside a plain shell
// `while true; do cmd; done` loop. Not a test: it prints figures.
//   bun scripts/bench-supervisor.ts [--duration 60s] [--processes 200] [--http 50] [--samples 30]
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { systemClock } from "../agent/core/clock.ts";
import { createLogger } from "../agent/core/log.ts";
import { parseDuration } from "../agent/core/duration.ts";
import { layout } from "../agent/state/layout.ts";
import { StateStore } from "../agent/state/store.ts";
import { Supervisor } from "../agent/supervisor/supervisor.ts";
import { DEFAULT_BACKOFF, type BackoffPolicy } from "../agent/supervisor/backoff.ts";
import type { ProcessSpec, SupervisorEvent } from "../agent/supervisor/types.ts";

const { values: o } = parseArgs({ options: {
  duration: { type: "string", default: "10s" }, processes: { type: "string", default: "200" },
  http: { type: "string", default: "50" }, samples: { type: "string", default: "30" },
} });
const durationMs = parseDuration(o.duration!) ?? 10_000;
const N = Number(o.processes), HTTP = Math.min(N, Number(o.http)), SAMPLES = Number(o.samples);
const CHILD = join(import.meta.dir, "../test/fixtures/child.ts");
const dir = mkdtempSync(join(tmpdir(), "agent-bench-sup-"));
const l = layout(dir);
const log = createLogger("bench", { level: "error" });
const events: { e: SupervisorEvent; t: number }[] = [];

const spec = (name: string, argv: string[], over: Partial<ProcessSpec> = {}): ProcessSpec => ({
  name, process: name, instance: 0, commit: "0".repeat(40), releaseDir: dir, argv, cwd: dir,
  env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, restart: "always", stop: { signal: "SIGTERM", timeoutMs: 2000 },
  minUptimeMs: 1000, logFile: l.processLog(name), ...over,
});

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!; };
const fmt = (xs: number[]) => `median ${pct(xs, 50).toFixed(2)} ms, p95 ${pct(xs, 95).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms (n=${xs.length})`;

/** A port nothing listens on now (a random one could be taken by another program: a crash loop, no steady state). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function steadyState() {
  const sup = new Supervisor({ clock: systemClock, log, store: new StateStore(l.stateFile), logs: { maxBytes: 50 << 20, keep: 5 } });
  const specs: ProcessSpec[] = [];
  for (let i = 0; i < N; i++) {
    if (i < HTTP) {
      const port = freePort();
      specs.push(spec(`web-${i}`, [process.execPath, CHILD, "--http"], { port, env: { PATH: process.env.PATH!, PORT: String(port) },
        health: { http: "/up", interval: 1000, timeout: 1000, pass: 1, fail: 3, window: 3, deadline: 30_000 } }));
    } else specs.push(spec(`sleep-${i}`, ["sleep", "100000"]));
  }
  sup.ensure(specs);
  while (!sup.healthy()) await Bun.sleep(100);
  Bun.gc(true);
  const cpu0 = process.cpuUsage(), t0 = performance.now();
  let rssMax = 0;
  while (performance.now() - t0 < durationMs) { await Bun.sleep(1000); rssMax = Math.max(rssMax, process.memoryUsage().rss); }
  const cpu = process.cpuUsage(cpu0), wall = performance.now() - t0;
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(`steady state: ${N} processes (${HTTP} with HTTP checks every 1s) for ${(wall / 1000).toFixed(0)}s`);
  console.log(`  agent CPU ${cpuMs.toFixed(0)} ms = ${((cpuMs / wall) * 100).toFixed(2)}% of one core; RSS now ${(process.memoryUsage().rss / 1048576).toFixed(1)} MB, max ${(rssMax / 1048576).toFixed(1)} MB`);
  await sup.stopAll();
}

/** Kill → new process spawned, SAMPLES times. `backoff` overrides DEFAULT_BACKOFF's fields. */
async function supervisorRestart(backoff: Partial<BackoffPolicy>) {
  const sup = new Supervisor({ clock: systemClock, log, store: new StateStore(l.stateFile), logs: { maxBytes: 50 << 20, keep: 5 },
    tuning: { backoff }, onEvent: (e) => events.push({ e, t: performance.now() }) });
  sup.ensure([spec("victim", ["sleep", "100000"])]);
  const lat: number[] = [];
  let pid = 0;
  while (!(pid = sup.status()[0]?.pid ?? 0)) await Bun.sleep(5);
  for (let i = 0; i < SAMPLES; i++) {
    events.length = 0;
    const t0 = performance.now();
    process.kill(pid, "SIGKILL");
    let start: { e: SupervisorEvent; t: number } | undefined;
    while (!(start = events.find((x) => x.e.kind === "start"))) await Bun.sleep(0);
    lat.push(start.t - t0);
    pid = (start.e as { pid: number }).pid;
    await Bun.sleep(20);
  }
  await sup.stopAll();
  return lat;
}

function childrenOf(pid: number): number[] {
  try { return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
}

async function shellRestart() {
  const sh = Bun.spawn(["sh", "-c", "while true; do sleep 100000; done"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  const lat: number[] = [];
  let kid: number | undefined;
  while (!(kid = childrenOf(sh.pid)[0])) await Bun.sleep(1);
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = performance.now();
    process.kill(kid, "SIGKILL");
    let next: number | undefined;
    for (;;) { next = childrenOf(sh.pid).find((p) => p !== kid); if (next) break; }  // tight poll of /proc
    lat.push(performance.now() - t0);
    kid = next;
    await Bun.sleep(20);
  }
  sh.kill("SIGKILL");
  for (const k of childrenOf(sh.pid)) try { process.kill(k, "SIGKILL"); } catch {}
  if (kid) try { process.kill(kid, "SIGKILL"); } catch {}
  return lat;
}

try {
  await steadyState();
  console.log(`restart after SIGKILL (time from kill to the new process spawned):`);
  // resetAfterMs 0: every run counts as stable, so each kill is the first crash of a series.
  console.log(`  supervisor, first crash (default backoff, first ${DEFAULT_BACKOFF.firstMs} ms): ${fmt(await supervisorRestart({ resetAfterMs: 0 }))}`);
  console.log(`  supervisor, backoff set to 0 (its own overhead): ${fmt(await supervisorRestart({ firstMs: 0, baseMs: 0, capMs: 0 }))}`);
  console.log(`  shell while-true loop (reference):               ${fmt(await shellRestart())}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
