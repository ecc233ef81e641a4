// Shared set-up for end-to-end tests of the compiled binary: a git server holding an ops repo,
// a state dir, a config, and helpers to run `dist/agent`.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startGitServer, type GitServer } from "../servers/git.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { startTimeOf } from "../../agent/host/proc.ts";
import { reachableRuntime } from "../../agent/host/runtime.ts";
import { layout } from "../../agent/state/layout.ts";
import { readStatus } from "../../agent/status/read.ts";

export const ROOT = resolve(import.meta.dir, "../..");
export const AGENT = join(ROOT, "dist/agent");
/**
 * The bun that role processes run as the role's user: the test's own, or, when the checkout lives
 * where that user cannot reach it (root's 0700 home), a link to it in a root-owned 0755 dir.
 */
export const BUN = reachableRuntime(process.execPath, runtimeDir());

function runtimeDir(): string {
  const d = join(tmpdir(), `agent-e2e-runtime-${process.getuid?.() ?? 0}`);
  mkdirSync(d, { recursive: true, mode: 0o755 });
  chmodSync(d, 0o755);
  return d;
}

/** Build dist/agent when it is missing or older than the source (scripts/test builds it first). */
export async function ensureBinary(): Promise<void> {
  if (existsSync(AGENT) && newestSource(join(ROOT, "agent")) <= statSync(AGENT).mtimeMs) return;
  const p = Bun.spawn([join(ROOT, "scripts/build")], { stdout: "inherit", stderr: "inherit" });
  if ((await p.exited) !== 0) throw new Error("scripts/build failed");
}

/** A small HTTP app: GET /up is 200 unless the file `sick` exists in its release; GET / says which release. */
export const APP = `
const port = Number(process.env.PORT ?? 0);
const fs = require("node:fs");
Bun.serve({ hostname: "127.0.0.1", port, fetch(req) {
  const path = new URL(req.url).pathname;
  if (path === "/up") return fs.existsSync("sick") ? new Response("sick", { status: 503 }) : new Response("ok");
  return new Response("release " + (process.env.AGENT_COMMIT ?? "?") + " " + (fs.existsSync("VERSION") ? fs.readFileSync("VERSION", "utf8").trim() : ""));
}});
console.log("app listening on", port);
`;

export const role = (extra = "") => `
processes:
  web:
    run: ${BUN} app.ts
    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 4s }
    stop: { timeout: 3s }
  worker:
    run: ${BUN} -e "setInterval(() => console.log('working'), 1000)"
    minUptime: 300ms
${extra}`;

export const manifest = (commit: string, extra = "") => `commit: ${commit}\npoll: 1s\n${extra}`;

export interface Kit {
  dir: string;
  state: string;
  config: string;
  git: GitServer;
  repo: TestRepo;
  /** Held fetches, when made with `proxy: true` (the config's repo then points at it). */
  proxy: GitProxy | null;
  /** Commit app files, then a manifest pinning that commit (plus `manifestExtra`); returns the app commit. */
  release(files: Record<string, string | null>, message: string, manifestExtra?: string): Promise<string>;
  /** Runs dist/agent (or `opts.argv`, e.g. the agent from source: [bun, agent/main.ts]) with the kit's config. */
  agent(args: string[], opts?: { timeoutMs?: number; argv?: string[] }): Promise<{ code: number; stdout: string; stderr: string }>;
  status(): any;
  stop(): Promise<void>;
}

export interface KitOptions {
  /** Config lines that replace the static identity (e.g. `identity: imds` with its endpoints). */
  config?: string[];
  /** Put a GitProxy in front of the git server, so a test can hold fetches mid-flight. */
  proxy?: boolean;
  /** Environment changes for every agent run; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Serve Prometheus metrics here (host:port); default off. */
  metrics?: string;
}

export async function makeKit(name: string, roleText = role(), kitOpts: KitOptions = {}): Promise<Kit> {
  await ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), `agent-e2e-${name}-`));
  chmodSync(dir, 0o755);            // the role's user must reach the release directories
  const repo = await makeRepo(join(dir, "git"), "ops", {
    "app.ts": APP, "VERSION": "v1\n", "roles/web.yaml": roleText, "manifests/staging.yaml": manifest("0".repeat(40)),
  });
  const git = await startGitServer({ root: join(dir, "git") });
  const proxy = kitOpts.proxy ? await startGitProxy(git.url) : null;
  const state = join(dir, "state");
  const config = join(dir, "agent.yaml");
  writeFileSync(config, [
    `repo: ${(proxy ?? git).url}/ops.git`, "branch: main", `stateDir: ${state}`,
    ...(kitOpts.config ?? ["identity: { role: web, environment: staging, instanceId: e2e-1 }"]),
    `control: { metrics: ${kitOpts.metrics ? JSON.stringify(kitOpts.metrics) : "null"} }`, "",
  ].join("\n"));
  const kit: Kit = {
    dir, state, config, git, repo, proxy,
    async release(files, message, manifestExtra = "") {
      const commit = await repo.commit(files, message);
      await repo.commit({ "manifests/staging.yaml": manifest(commit, manifestExtra) }, `deploy ${commit.slice(0, 7)}`);
      return commit;
    },
    async agent(args, opts = {}) {
      const env: Record<string, string | undefined> = { ...process.env, AGENT_CONFIG: config, NO_COLOR: "1", ...kitOpts.env };
      for (const [key, v] of Object.entries(env)) if (v === undefined) delete env[key];
      const p = Bun.spawn([...(opts.argv ?? [AGENT]), ...args], { env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      clearTimeout(timer);
      return { code, stdout, stderr };
    },
    status: () => JSON.parse(readFileSync(join(state, "status.json"), "utf8")),
    async stop() {
      await stopApps(state);
      await proxy?.stop();
      await git.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return kit;
}

/**
 * A pass-through in front of the git server that can hold fetches: while `holdFetches` is set, a
 * POST to git-upload-pack (the pack download of a fetch; polls are GETs) waits; `held` counts the
 * requests waiting now. Listens on 127.0.0.1 only.
 */
export interface GitProxy {
  url: string;
  holdFetches: boolean;
  held: number;
  stop(): Promise<void>;
}

export async function startGitProxy(target: string): Promise<GitProxy> {
  const proxy: GitProxy = { url: "", holdFetches: false, held: 0, stop: async () => {} };
  const server = Bun.serve({
    hostname: "127.0.0.1", port: 0, idleTimeout: 0,
    async fetch(req) {
      const u = new URL(req.url);
      const body = req.method === "POST" ? await req.arrayBuffer() : undefined;
      if (req.method === "POST" && u.pathname.endsWith("/git-upload-pack") && proxy.holdFetches) {
        proxy.held++;
        try { while (proxy.holdFetches && !req.signal.aborted) await Bun.sleep(20); } finally { proxy.held--; }
      }
      const headers = new Headers(req.headers);
      headers.delete("host");
      const r = await fetch(target + u.pathname + u.search, { method: req.method, headers, body });
      const out = new Headers(r.headers);
      for (const h of ["content-length", "transfer-encoding", "content-encoding"]) out.delete(h);
      return new Response(await r.arrayBuffer(), { status: r.status, headers: out });
    },
  });
  proxy.url = `http://127.0.0.1:${server.port}`;
  proxy.stop = async () => { proxy.holdFetches = false; await server.stop(true); };
  return proxy;
}

/** Stop every process group recorded in state.json (the agent leaves applications running). */
export async function stopApps(state: string): Promise<void> {
  try {
    const s = JSON.parse(readFileSync(join(state, "state.json"), "utf8"));
    for (const p of s.processes ?? []) { try { process.kill(-p.pgid, "SIGKILL"); } catch {} }
    if (s.front?.pid) { try { process.kill(-s.front.pid, "SIGKILL"); } catch {} }   // agent front: its own group
  } catch {}
  await Bun.sleep(50);
}

/** Alive and not a zombie (an orphan's zombie may linger where nothing reaps it). */
export function alive(pid: number): boolean {
  return startTimeOf(pid) !== null;
}

export async function get(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** The node's status as `agent status --json` answers it (the daemon, else status.json), or null. */
export async function daemonStatus(k: Kit): Promise<any> {
  const r = await k.agent(["status", "--json", "--timeout", "1s"]);
  try { return JSON.parse(r.stdout); } catch { return null; }
}

/**
 * The node's status as `agent status --json` reads it (the daemon over its control socket, else
 * status.json; with `source` and `ageMs`), read in this process by the same code: for polls, where
 * a run of the binary per poll (about 0.1 s of CPU) takes the CPU from the agents under test.
 * null when neither answers.
 */
export async function statusHere(k: { state: string }): Promise<any> {
  const l = layout(k.state);
  try {
    const r = await readStatus({ socket: l.socket, statusFile: l.statusFile }, { timeoutMs: 1000, now: Date.now });
    return { ...r.status, source: r.source, ageMs: r.ageMs };
  } catch { return null; }
}

/**
 * Poll the status (statusHere: what `agent status --json` reads) until ok(status) holds; returns
 * that status. `check` runs before each poll and may throw to stop early (a daemon that exited).
 */
export async function untilStatus(k: Kit, what: string, ok: (s: any) => boolean, opts: { ms?: number; check?: () => void } = {}): Promise<any> {
  const end = Date.now() + (opts.ms ?? 30_000);
  let s: any = null;
  while (Date.now() < end) {
    opts.check?.();
    s = await statusHere(k);
    if (s && ok(s)) return s;
    await Bun.sleep(200);
  }
  throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(s)?.slice(0, 600)}`);
}

/** Poll a synchronous probe until it gives a value. */
export async function until<T>(what: string, ok: () => T | null, ms = 30_000, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = ok();
    if (v) return v;
    await Bun.sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A loopback port free right now (for a public http.port or a metrics listener in a test). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** The node's state.json, parsed. */
export const stateJson = (k: Kit): any => JSON.parse(readFileSync(join(k.state, "state.json"), "utf8"));

/**
 * Keep-alive clients hitting `url` until `done()`: counts of answers and failures (not timings),
 * the first errors, and the last word of each 200 body (the release's VERSION in the test app).
 */
export function httpLoad(url: string, clients = 4) {
  let stop = false;
  const counts = { ok: 0, failed: 0, errors: [] as string[], bodies: new Set<string>() };
  const loops = Array.from({ length: clients }, async () => {
    while (!stop) {
      try {
        const r = await fetch(url);
        const body = await r.text();
        if (r.status === 200) { counts.ok++; counts.bodies.add(body.split(" ").pop()!); } else { counts.failed++; counts.errors.push(`${r.status} ${body.slice(0, 80)}`); }
      } catch (e) {
        counts.failed++; counts.errors.push(String(e));
      }
    }
  });
  return { counts, async done() { stop = true; await Promise.all(loops); return counts; } };
}
