// Shared by the deploy and binary benchmarks: one simulated node (a git server on 127.0.0.1, an ops
// repo with a small HTTP app, a static identity) running `dist/agent run`, its JSON log lines, and
// sampling of a process's RSS and CPU from /proc. Not a test helper: benchmarks only.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { makeRepo, type TestRepo } from "../test/fixtures/repo.ts";
import { startGitServer, type GitServer } from "../test/servers/git.ts";

export const ROOT = resolve(import.meta.dir, "..");
export const AGENT = join(ROOT, "dist/agent");
/** The bun that role processes run as the role's user (a root-owned 0755 link when the checkout is out of their reach). */
import { BUN } from "../test/e2e/kit.ts";
export { BUN };
const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** GET /up is 200 unless the file `sick` exists in the release; GET / names the release. */
export const APP = `
const fs = require("node:fs");
Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.PORT ?? 0), fetch(req) {
  if (new URL(req.url).pathname === "/up") return fs.existsSync("sick") ? new Response("sick", { status: 503 }) : new Response("ok");
  return new Response("release " + (process.env.AGENT_COMMIT ?? "?"));
}});
`;
export const WORKER = `setInterval(() => {}, 1000);\n`;

/** Three processes: web (HTTP health check), worker and clock (no check: up `minUptime` counts as healthy). */
export function benchRole(o: { healthInterval?: string; deadline?: string; minUptime?: string } = {}): string {
  const up = o.minUptime ? `\n    minUptime: ${o.minUptime}` : "";
  return `processes:
  web:
    run: ${BUN} app.ts
    health: { http: /up, interval: ${o.healthInterval ?? "1s"}, deadline: ${o.deadline ?? "10s"} }
    stop: { timeout: 3s }
  worker:
    run: ${BUN} worker.ts${up}
  clock:
    run: ${BUN} worker.ts${up}
`;
}

export interface LogLine { time: string; level: string; component: string; msg: string; [k: string]: unknown }

export interface Node {
  dir: string;
  state: string;
  config: string;
  git: GitServer;
  repo: TestRepo;
  proc: Subprocess<"ignore", "pipe", "pipe"> | null;
  logs: LogLine[];
  /** Commit `files`, then a manifest pinning that commit; returns the app commit and when the pin was pushed. Pin the first release before start(): the initial manifest pins no real commit. */
  release(files: Record<string, string | null>, message: string): Promise<{ commit: string; pinnedAt: number }>;
  start(): void;
  status(): any;
  /** Poll status.json every 20 ms until `ok`; returns when it first held (ms since epoch). `trace` gets each new phase seen. */
  until(what: string, ok: (s: any) => boolean, timeoutMs?: number, trace?: string[]): Promise<number>;
  /** Stop the agent (SIGTERM), then every process group it left running; remove the temp dir. */
  stop(): Promise<void>;
}

export async function makeNode(name: string, roleText: string, pollText = "2s",
  opts: { agent?: string; env?: Record<string, string>; identity?: string[]; manifest?: string } = {}): Promise<Node> {
  const dir = mkdtempSync(join(tmpdir(), `agent-bench-${name}-`));
  chmodSync(dir, 0o755);                // the role's user must reach the release directories
  const manifest = (c: string) => `commit: ${c}\npoll: ${pollText}\n${opts.manifest ?? ""}`;
  const repo = await makeRepo(join(dir, "git"), "ops", {
    "app.ts": APP, "worker.ts": WORKER, "VERSION": "1\n", "roles/web.yaml": roleText, "manifests/bench.yaml": manifest("0".repeat(40)),
  });
  const git = await startGitServer({ root: join(dir, "git") });
  const state = join(dir, "state");
  mkdirSync(state);
  const config = join(dir, "agent.yaml");
  writeFileSync(config, [
    `repo: ${git.url}/ops.git`, "branch: main", `stateDir: ${state}`,
    ...(opts.identity ?? [`identity: { role: web, environment: bench, instanceId: bench-${name} }`]), "control: { metrics: null }", "",
  ].join("\n"));
  const node: Node = {
    dir, state, config, git, repo, proc: null, logs: [],
    async release(files, message) {
      const commit = await repo.commit(files, message);
      await repo.commit({ "manifests/bench.yaml": manifest(commit) }, `deploy ${commit.slice(0, 7)}`);
      return { commit, pinnedAt: Date.now() };
    },
    start() {
      const p = Bun.spawn([opts.agent ?? AGENT, "run", "--config", config], {
        env: { ...process.env, NO_COLOR: "1", BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0", ...opts.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe",
      });
      node.proc = p;
      void pump(p.stderr, node.logs);
      void new Response(p.stdout).text();
    },
    status() {
      try { return JSON.parse(readFileSync(join(state, "status.json"), "utf8")); } catch { return null; }
    },
    async until(what, ok, timeoutMs = 120_000, trace) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const s = node.status();
        const seen = s ? `${new Date().toISOString().slice(11, 23)} ${s.phase} ${s.lastTick?.reason ?? ""} healthy=${(s.processes ?? []).filter((p: any) => p.healthy).length}/${(s.processes ?? []).length}` : "";
        if (trace && s && trace.at(-1)?.slice(13) !== seen.slice(13)) trace.push(seen);
        if (s && ok(s)) return Date.now();
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(s)?.slice(0, 600)}\nlast log lines:\n${node.logs.slice(-8).map((l) => JSON.stringify(l)).join("\n")}`);
        if (node.proc?.exitCode !== null && node.proc?.exitCode !== undefined) throw new Error(`the agent exited (${node.proc.exitCode}) while waiting for ${what}`);
        await Bun.sleep(20);
      }
    },
    async stop() {
      if (node.proc && node.proc.exitCode === null) {
        node.proc.kill("SIGTERM");
        const t = setTimeout(() => node.proc?.kill("SIGKILL"), 10_000);
        await node.proc.exited;
        clearTimeout(t);
      }
      try {
        for (const p of JSON.parse(readFileSync(join(state, "state.json"), "utf8")).processes ?? []) { try { process.kill(-p.pgid, "SIGKILL"); } catch {} }
      } catch {}
      await git.stop();
      await Bun.sleep(100);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return node;
}

async function pump(stream: ReadableStream<Uint8Array>, into: LogLine[]) {
  let buf = "";
  const dec = new TextDecoder();
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { into.push(JSON.parse(line)); } catch { /* not a JSON line */ }
    }
  }
}

/** The first log line at or after `since` (ms) whose msg is `msg` and whose fields match `where`. */
export function findLog(logs: LogLine[], msg: string, since: number, where: Record<string, unknown> = {}): LogLine | undefined {
  return logs.find((l) => l.msg === msg && Date.parse(l.time) >= since && Object.entries(where).every(([k, v]) => l[k] === v));
}
export const at = (l: LogLine | undefined) => (l ? Date.parse(l.time) : NaN);

/** Resident set size in MB, from /proc/<pid>/status. */
export function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** utime + stime of `pid` in seconds, from /proc/<pid>/stat (fields 14 and 15). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/**
 * Watch `pid` for `durationMs` in `samples` equal windows: RSS at the end of each, and CPU seconds
 * per minute within each. Returns every sample (callers take medians).
 */
export async function footprint(pid: number, durationMs: number, samples: number): Promise<{ rss: number[]; cpuPerMin: number[] }> {
  const rss: number[] = [], cpuPerMin: number[] = [];
  const window = durationMs / samples;
  for (let i = 0; i < samples; i++) {
    const c0 = cpuSeconds(pid), t0 = performance.now();
    await Bun.sleep(window);
    const c1 = cpuSeconds(pid), t1 = performance.now();
    cpuPerMin.push(((c1 - c0) / (t1 - t0)) * 60_000);
    rss.push(rssMB(pid));
  }
  return { rss, cpuPerMin };
}

export const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
export const stats = (xs: number[], unit = "ms", digits = 0) =>
  xs.length ? `${median(xs).toFixed(digits)} ${unit} (min ${Math.min(...xs).toFixed(digits)}, max ${Math.max(...xs).toFixed(digits)}, n=${xs.length})` : "n/a";

/** "10s" -> 10000, "500ms" -> 500, "2m" -> 120000. */
export function ms(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: ${text} (use 500ms, 10s or 2m)`);
  return Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : 60_000);
}
