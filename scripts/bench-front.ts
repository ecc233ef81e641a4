// Benchmark of the HTTP front (`agent front`, the compiled binary, or the source without one):
// requests/s and p99 latency through the front, through nginx (Debian's, one worker, upstream
// keepalive) and directly to the same upstream, side by side in one run with each proxy pinned
// to one core (taskset -c 0; the upstream and wrk on the other cores), as ratios; a load run
// while the table switches between two upstreams every 500 ms (failed requests counted); the
// front's idle RSS. Installs nginx and wrk with apt-get when they are missing (root, Debian).
// The added latency is measured at a fixed rate (open loop, scripts/fixed-rate.ts, default 1,000
// requests/s over 16 connections), since p99 at full throughput mostly measures queueing.
//   bun scripts/bench-front.ts [--duration 10s] [--connections 32] [--latency-connections 8] [--rate 1000]
//                              [--rounds 5] [--paced-only] [--env K=V] [--ab-env K=V]
//   (--env: for the front, e.g. AGENT_FRONT_NICE=off; --paced-only: only the added-latency rounds;
//   --ab-env: a second front with these variables on the same core, a fourth path in each paced
//   round, so that a setting is compared with the default in the same rounds)
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg as osLoad, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AGENT, BUN, footprint, median, ms, rssMB } from "./bench-node.ts";

const { values: o } = parseArgs({ options: { duration: { type: "string", default: "10s" }, connections: { type: "string", default: "32" },
  "latency-connections": { type: "string", default: "8" }, rate: { type: "string", default: "1000" },
  env: { type: "string", multiple: true, default: [] }, "ab-env": { type: "string", multiple: true, default: [] }, rounds: { type: "string", default: "5" }, "paced-only": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false } } });
if (o.help) {
  const text = await Bun.file(import.meta.path).text();
  console.log(text.split("\n").filter((l) => l.startsWith("//")).map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
  process.exit(0);
}
const envOf = (kvs: string[]) => Object.fromEntries(kvs.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const frontEnv = envOf(o.env!), abEnv = o["ab-env"]!.length ? envOf(o["ab-env"]!) : null;
const DURATION = ms(o.duration!), CONNS = Number(o.connections), LAT_CONNS = Number(o["latency-connections"]), RATE = Number(o.rate);
/** Paced wrk runs: connections, and rounds of direct / nginx / front interleaved. */
const PACED_CONNS = 10, ROUNDS = Number(o.rounds);
if (!Bun.which("wrk") || !Bun.which("nginx", { PATH: `${process.env.PATH}:/usr/sbin` })) {
  console.log("installing nginx and wrk (apt-get)");
  Bun.spawnSync(["apt-get", "install", "-y", "nginx", "wrk"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, stdout: "ignore", stderr: "inherit" });
}
const WRK = Bun.which("wrk");
const NGINX = Bun.which("nginx", { PATH: `${process.env.PATH}:/usr/sbin` });
const TASKSET = Bun.which("taskset");
/** The proxy under test on core 0; the upstream and the load generator on the others. */
const PROXY_CORE = TASKSET ? [TASKSET, "-c", "0"] : [];
const OTHER_CORES = TASKSET && navigator.hardwareConcurrency > 1 ? [TASKSET, "-c", `1-${navigator.hardwareConcurrency - 1}`] : [];
const FRONT = existsSync(AGENT) ? [AGENT] : [BUN, join(import.meta.dir, "../agent/main.ts")];
const dir = mkdtempSync(join(tmpdir(), "bench-front-"));
const SOCK = join(dir, "front.sock");
/** The second front of --ab-env: its own state dir and control socket. */
const dirB = join(dir, "b"), SOCK_B = join(dirB, "front.sock");
const loadavg = () => osLoad().map((x) => x.toFixed(2)).join(" ");
const procs: { kill(sig?: string | number): void; exited: Promise<number> }[] = [];

const UPSTREAM = `const s = Bun.serve({ port: Number(process.env.PORT), hostname: "127.0.0.1",
  fetch: (req) => new URL(req.url).pathname === "/up" ? new Response("ok") : new Response("hello " + process.env.NAME + "\\n") });
setInterval(() => {}, 1000);`;

async function freePort(): Promise<number> {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const p = s.port!;
  await s.stop(true);
  return p;
}

async function upstream(name: string, cores = OTHER_CORES): Promise<number> {
  const port = await freePort();
  procs.push(Bun.spawn([...cores, BUN, "-e", UPSTREAM], { env: { ...process.env, PORT: String(port), NAME: name }, stdout: "ignore", stderr: "inherit" }));
  for (let i = 0; i < 500; i++) { if (await fetch(`http://127.0.0.1:${port}/up`).then((r) => r.ok, () => false)) return port; await Bun.sleep(10); }
  throw new Error(`upstream ${name} did not start`);
}

async function put(port: number, upstreams: { id: string; port: number }[], drainMs = 2000, more: { port: number; upstreams: { id: string; port: number }[] }[] = [], sock = SOCK) {
  const routes = [{ port, upstreams }, ...more].map((r) => ({ ...r, listen: "127.0.0.1", health: "/up", drainMs }));
  const r = await fetch("http://front/v1/table", { unix: sock, method: "PUT", body: JSON.stringify({ routes }) } as RequestInit);
  if (!r.ok) throw new Error(`PUT /v1/table: ${r.status} ${await r.text()}`);
}

async function state(sock = SOCK): Promise<any> {
  return (await fetch("http://front/v1/state", { unix: sock } as RequestInit)).json();
}

/** A histogram of the front's GET /v1/metrics: cumulative counts by upper bound (seconds). */
async function hist(name: string): Promise<Map<number, number>> {
  const text = await (await fetch("http://front/v1/metrics", { unix: SOCK } as RequestInit)).text();
  const m = new Map<number, number>();
  for (const x of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)$`, "gm"))) m.set(x[1] === "+Inf" ? Infinity : Number(x[1]), Number(x[2]));
  return m;
}
/** The bound under which quantile `q` of the observations between two snapshots fell ("≤ x ms"). */
function histQ(before: Map<number, number>, after: Map<number, number>, q: number): string {
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  for (const [le, n] of after) if (n - (before.get(le) ?? 0) >= q * total) return le === Infinity ? "> the largest bucket" : `≤ ${le * 1000} ms`;
  return "-";
}

interface Load { rps: number; p50: number; p99: number; requests: number; errors: number }

async function load(url: string, durationMs: number, conns = CONNS): Promise<Load> {
  if (WRK) {
    const p = Bun.spawn([...OTHER_CORES, WRK, "-t1", `-c${conns}`, `-d${Math.round(durationMs / 1000)}s`, "--latency", url], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(p.stdout).text();
    await p.exited;
    const lat = (q: string) => { const m = new RegExp(`^\\s*${q}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out); return m ? Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[m[2]!]! : NaN; };
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    return {
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), p50: lat("50"), p99: lat("99"),
      requests: Number(/(\d+) requests in/.exec(out)?.[1]),
      errors: non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
    };
  }
  const times: number[] = [];
  let errors = 0;
  const end = performance.now() + durationMs;
  await Promise.all(Array.from({ length: conns }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try { const r = await fetch(url); await r.arrayBuffer(); if (!r.ok) errors++; } catch { errors++; }
      times.push(performance.now() - t);
    }
  }));
  times.sort((a, b) => a - b);
  return { rps: times.length / (durationMs / 1000), p50: times[Math.floor(times.length * 0.5)]!, p99: times[Math.floor(times.length * 0.99)]!, requests: times.length, errors };
}

/** A fixed-rate (open-loop) run of RATE requests/s over 16 connections (scripts/fixed-rate.ts). */
async function fixedRate(url: string, durationMs: number): Promise<Load> {
  const p = Bun.spawn([...OTHER_CORES, BUN, join(import.meta.dir, "fixed-rate.ts"), "--rate", String(RATE), "--connections", "16", "--duration", String(Math.round(durationMs / 1000)), url], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return JSON.parse(out) as Load;
}

/**
 * The added-latency measurement: wrk (C, epoll, latency in microseconds from the write of a
 * request to the end of its answer) with a Lua `delay()` that paces each of PACED_CONNS
 * connections to RATE / PACED_CONNS requests/s (a random pause around the mean, so that the
 * connections do not fall into step). Closed loop per connection, but at ~1/30 of capacity nothing
 * queues; unlike the Bun generator, its own timer jitter is not in the figure (wrk stamps the
 * request when it writes it, after the pause).
 */
const PACE_LUA = (meanMs: number) => `
math.randomseed(os.time())
function delay() return math.random(${Math.max(1, Math.round(meanMs / 2))}, ${Math.round(meanMs * 1.5)}) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("PACED %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
`;
interface Paced { rps: number; requests: number; errors: number; p50: number; p90: number; p99: number; p999: number; max: number; mean: number }
async function paced(url: string, durationMs: number): Promise<Paced> {
  const script = join(dir, "pace.lua");
  writeFileSync(script, PACE_LUA((PACED_CONNS * 1000) / RATE));
  const p = Bun.spawn([...OTHER_CORES, WRK!, "-t1", `-c${PACED_CONNS}`, `-d${Math.round(durationMs / 1000)}s`, "-s", script, url], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  const m = /PACED (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+)/.exec(out);
  if (!m) throw new Error(`wrk paced run: no summary in ${out}`);
  const n = m.slice(1).map(Number);
  const us = (x: number) => x / 1000;
  return { requests: n[0]!, rps: n[0]! / (n[1]! / 1e6), errors: n[2]!, p50: us(n[3]!), p90: us(n[4]!), p99: us(n[5]!), p999: us(n[6]!), max: us(n[7]!), mean: us(n[8]!) };
}

/** ROUNDS interleaved paced runs of direct / nginx / front (/ front B), printed as one table with the front's own time. */
async function pacedSet(layout: string, directUrl: string, nginxUrl: string | null, frontUrl: string, frontBUrl: string | null): Promise<void> {
  const nameB = abEnv ? `front ${Object.entries(abEnv).map(([k, v]) => `${k}=${v}`).join(" ")}` : "";
  const pacedRuns: Record<string, Paced[]> = { direct: [], nginx: [], front: [], ...(frontBUrl ? { [nameB]: [] } : {}) };
  const own0 = await hist("agent_front_own_seconds"), up0 = await hist("agent_front_upstream_seconds");
  for (let round = 0; round < ROUNDS; round++) {
    // the two fronts take turns going first, so that neither always follows the same path
    const fronts: [string, string | null][] = [["front", frontUrl], [nameB, frontBUrl]];
    if (round % 2) fronts.reverse();
    for (const [name, u] of [["direct", directUrl], ["nginx", nginxUrl], ...fronts] as const) if (u) pacedRuns[name]!.push(await paced(u, DURATION / 2));
  }
  const med = (xs: Paced[], k: keyof Paced) => median(xs.map((x) => x[k]));
  const g = (x: number) => x.toFixed(3);
  console.log(`at ~${RATE} requests/s, ${layout} (wrk -t1 -c${PACED_CONNS}, Lua delay() pacing, ${DURATION / 2000} s per run, ${ROUNDS} interleaved rounds, medians; load ${loadavg()}):`);
  console.log("| path | requests/s | p50 | p90 | p99 | p99.9 | max | added p50 | added p99 | p99 of each round | failed |\n|---|---|---|---|---|---|---|---|---|---|---|");
  const d99 = med(pacedRuns.direct!, "p99"), d50 = med(pacedRuns.direct!, "p50");
  for (const [name, xs] of Object.entries(pacedRuns)) {
    if (!xs.length) continue;
    const added = (k: "p50" | "p99", ref: number) => name === "direct" ? "-" : `${g(med(xs, k) - ref)} ms`;
    console.log(`| ${name} | ${med(xs, "rps").toFixed(0)} | ${g(med(xs, "p50"))} ms | ${g(med(xs, "p90"))} ms | ${g(med(xs, "p99"))} ms | ${g(med(xs, "p999"))} ms | ${g(med(xs, "max"))} ms | ${added("p50", d50)} | ${added("p99", d99)} | ${xs.map((x) => g(x.p99)).join(" ")} | ${xs.reduce((t, x) => t + x.errors, 0)} |`);
  }
  const fr = pacedRuns.front!, ng = pacedRuns.nginx!;
  console.log(`paced, ${layout.split(" (")[0]}: front added p99 ${g(med(fr, "p99") - d99)} ms (goal <= 1 ms)${ng.length ? `, nginx added ${g(med(ng, "p99") - d99)} ms` : ""}; ` +
    `per round, front p99 - direct p99: ${fr.map((x, i) => g(x.p99 - pacedRuns.direct![i]!.p99)).join(" ")}${ng.length ? `; nginx p99 - direct p99: ${ng.map((x, i) => g(x.p99 - pacedRuns.direct![i]!.p99)).join(" ")}` : ""}`);
  if (frontBUrl) {
    const b = pacedRuns[nameB]!;
    console.log(`paced, ${layout.split(" (")[0]}: ${nameB} added p99 ${g(med(b, "p99") - d99)} ms; front p99 - ${nameB} p99 per round: ${fr.map((x, i) => g(x.p99 - b[i]!.p99)).join(" ")} (negative: the default is quicker)`);
  }
  const own1 = await hist("agent_front_own_seconds"), up1 = await hist("agent_front_upstream_seconds");
  console.log(`in those front runs, the front's own time per request (agent_front_own_seconds, ${(own1.get(Infinity) ?? 0) - (own0.get(Infinity) ?? 0)} requests): ` +
    `p50 ${histQ(own0, own1, 0.5)}, p99 ${histQ(own0, own1, 0.99)}, p99.9 ${histQ(own0, own1, 0.999)}; ` +
    `its wait for the instance (agent_front_upstream_seconds): p50 ${histQ(up0, up1, 0.5)}, p99 ${histQ(up0, up1, 0.99)}`);
}

/** `--paced-only`: the paced rounds are all this run measures. */
class PacedOnly extends Error {}

try {
  const [a, b] = [await upstream("a"), await upstream("b")];
  /** An upstream on the proxies' core, for the paced runs' second layout. */
  const c = await upstream("c", PROXY_CORE);
  const fp = Bun.spawn([...PROXY_CORE, ...FRONT, "front", "--state-dir", dir, "--probe", "200"], { stdout: "ignore", stderr: "ignore", env: { ...process.env, ...frontEnv } });
  procs.push(fp);
  if (abEnv) {
    mkdirSync(dirB, { mode: 0o700 });
    procs.push(Bun.spawn([...PROXY_CORE, ...FRONT, "front", "--state-dir", dirB, "--probe", "200"], { stdout: "ignore", stderr: "ignore", env: { ...process.env, ...frontEnv, ...abEnv } }));
    for (let i = 0; i < 500 && !(await state(SOCK_B).then(() => true, () => false)); i++) await Bun.sleep(10);
  }
  for (let i = 0; i < 500 && !(await state().then(() => true, () => false)); i++) await Bun.sleep(10);
  const emptyRss = (await footprint(fp.pid, 3000, 3)).rss;
  const port = await freePort();
  await put(port, [{ id: "a", port: a }]);
  for (let i = 0; i < 500 && !(await state()).routes[0]?.rotation.length; i++) await Bun.sleep(10);
  const idleRss = (await footprint(fp.pid, 3000, 3)).rss;

  console.log(`front env: ${JSON.stringify(frontEnv)}${abEnv ? `; second front (paced rounds only): ${JSON.stringify({ ...frontEnv, ...abEnv })}` : ""}`);
  console.log(`load: ${WRK ? `wrk -t1 -c${CONNS}` : `a Bun keep-alive loop, ${CONNS} concurrent`}, ${DURATION / 1000} s each; upstream: Bun.serve "hello" in its own process`);
  const ngPort = await freePort(), ngPort2 = await freePort();
  let nginxUrl: string | null = null;
  if (NGINX) {
    writeFileSync(join(dir, "nginx.conf"), `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err;
events { worker_connections 4096; }
http { access_log off;
  upstream app { server 127.0.0.1:${a}; keepalive 64; }
  upstream app2 { server 127.0.0.1:${c}; keepalive 64; }
  server { listen 127.0.0.1:${ngPort};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $host; } }
  server { listen 127.0.0.1:${ngPort2};
    location / { proxy_pass http://app2; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $host; } } }
`);
    // SIGTERM, not SIGKILL, at the end: a killed master leaves its worker running
    const ngp = Bun.spawn([...PROXY_CORE, NGINX, "-p", dir, "-c", join(dir, "nginx.conf")], { stdout: "ignore", stderr: "inherit" });
    procs.push({ kill: () => ngp.kill("SIGTERM"), exited: ngp.exited });
    for (let i = 0; i < 500 && !nginxUrl; i++) { if (await fetch(`http://127.0.0.1:${ngPort}/`).then((r) => r.ok, () => false)) nginxUrl = `http://127.0.0.1:${ngPort}/`; else await Bun.sleep(10); }
  }
  const frontUrl = `http://127.0.0.1:${port}/`, directUrl = `http://127.0.0.1:${a}/`;
  // The added latency at RATE requests/s: wrk paced, direct / nginx / front interleaved ROUNDS
  // times, medians; in two layouts. "proxy apart": the proxy alone on core 0, the application and
  // wrk on the other core (the throughput runs' layout): a proxied request crosses between the
  // cores four times, a direct one never. "app beside the proxy": the application on the proxy's
  // core, wrk alone on the other: every path crosses twice (wrk to its server and back).
  const port2 = await freePort();
  await put(port, [{ id: "a", port: a }], 2000, [{ port: port2, upstreams: [{ id: "c", port: c }] }]);
  for (let i = 0; i < 500 && (await state()).routes.some((r: any) => !r.rotation.length); i++) await Bun.sleep(10);
  let bUrls: [string, string] | null = null;
  if (abEnv) {
    const [pb1, pb2] = [await freePort(), await freePort()];
    await put(pb1, [{ id: "a", port: a }], 2000, [{ port: pb2, upstreams: [{ id: "c", port: c }] }], SOCK_B);
    for (let i = 0; i < 500 && (await state(SOCK_B)).routes.some((r: any) => !r.rotation.length); i++) await Bun.sleep(10);
    bUrls = [`http://127.0.0.1:${pb1}/`, `http://127.0.0.1:${pb2}/`];
  }
  if (WRK) {
    for (const [layout, d, n, fr, fb] of [
      ["proxy apart (proxy on core 0; app and wrk on core 1)", directUrl, nginxUrl, frontUrl, bUrls?.[0] ?? null],
      ["app beside the proxy (proxy and app on core 0; wrk on core 1)", `http://127.0.0.1:${c}/`, nginxUrl && `http://127.0.0.1:${ngPort2}/`, `http://127.0.0.1:${port2}/`, bUrls?.[1] ?? null],
    ] as const) await pacedSet(layout, d, n, fr, fb);
  }
  await put(port, [{ id: "a", port: a }]);
  if (o["paced-only"]) throw new PacedOnly();
  // side by side, interleaved twice so that a neighbour's load on the machine hits all three alike
  const runs: Record<string, Load[]> = { direct: [], front: [], nginx: [] };
  const lat: Record<string, Load[]> = { direct: [], front: [], nginx: [] };
  for (let round = 0; round < 2; round++) {
    runs.direct!.push(await load(directUrl, DURATION / 2));
    runs.front!.push(await load(frontUrl, DURATION / 2));
    if (nginxUrl) runs.nginx!.push(await load(nginxUrl, DURATION / 2));
    lat.direct!.push(await load(directUrl, DURATION / 2, LAT_CONNS));
    lat.front!.push(await load(frontUrl, DURATION / 2, LAT_CONNS));
    if (nginxUrl) lat.nginx!.push(await load(nginxUrl, DURATION / 2, LAT_CONNS));
  }
  // at a fixed rate, interleaved twice too; the lower p99 of the two counts (a neighbour's burst inflates one)
  const fixed: Record<string, Load[]> = { direct: [], front: [], nginx: [] };
  for (let round = 0; round < 2; round++) {
    for (const [name, u] of [["direct", directUrl], ["front", frontUrl], ["nginx", nginxUrl]] as const) {
      if (!u) continue;
      fixed[name]!.push(await fixedRate(u, DURATION / 2));
    }
  }
  const best = (xs: Load[]): Load => xs.reduce((x, y) => (y.rps > x.rps ? y : x));
  const direct = best(runs.direct!), fronted = best(runs.front!);
  const ng = runs.nginx!.length ? best(runs.nginx!) : null;
  const p99 = (xs: Load[]) => Math.min(...xs.map((x) => x.p99));
  // the floor of any proxy built on Bun.serve + fetch: three lines that forward and track nothing
  const refPort = await freePort();
  const ref = Bun.spawn([...PROXY_CORE, BUN, "-e", `Bun.serve({ port: ${refPort}, hostname: "127.0.0.1", fetch: (req) => fetch("http://127.0.0.1:${a}" + new URL(req.url).pathname) });`], { stdout: "ignore", stderr: "inherit" });
  procs.push(ref);
  for (let i = 0; i < 500 && !(await fetch(`http://127.0.0.1:${refPort}/`).then((r) => r.ok, () => false)); i++) await Bun.sleep(10);
  const bare = await load(`http://127.0.0.1:${refPort}/`, DURATION);
  ref.kill("SIGKILL");
  const rssLoaded = rssMB(fp.pid);

  // switching every 500 ms against steady runs interleaved with it (a sequential comparison on a
  // shared machine measured the neighbours: 40-64% once, 97-136% interleaved)
  let switches = 0;
  const steadyRuns: Load[] = [], cutRuns: Load[] = [];
  for (let round = 0; round < 2; round++) {
    steadyRuns.push(await load(frontUrl, DURATION / 2));
    let stop = false;
    const flipper = (async () => {
      while (!stop) {
        await Bun.sleep(500);
        if (stop) break;
        switches++;
        await put(port, [{ id: switches % 2 ? "b" : "a", port: switches % 2 ? b : a }], 300);
      }
    })();
    cutRuns.push(await load(frontUrl, DURATION / 2));
    stop = true;
    await flipper;
    if (switches % 2) { switches++; await put(port, [{ id: "a", port: a }], 300); }
  }
  const cut: Load = { ...best(cutRuns), requests: cutRuns.reduce((t, x) => t + x.requests, 0), errors: cutRuns.reduce((t, x) => t + x.errors, 0) };
  const s = await state();
  await Bun.sleep(7000);
  const afterRss = (await footprint(fp.pid, 3000, 3)).rss;

  const f = (x: number, d = 2) => x.toFixed(d);
  console.log("| path | requests/s | p50 | p99 | failed |\n|---|---|---|---|---|");
  console.log(`| direct to the upstream | ${f(direct.rps, 0)} | ${f(direct.p50)} ms | ${f(direct.p99)} ms | ${direct.errors} |`);
  console.log(`| through a bare Bun.serve + fetch proxy (reference) | ${f(bare.rps, 0)} | ${f(bare.p50)} ms | ${f(bare.p99)} ms | ${bare.errors} |`);
  console.log(`| through \`agent front\` | ${f(fronted.rps, 0)} | ${f(fronted.p50)} ms | ${f(fronted.p99)} ms | ${fronted.errors} |`);
  console.log(`| through the front, table switched every 500 ms (${switches} switches) | ${f(cut.rps, 0)} | ${f(cut.p50)} ms | ${f(cut.p99)} ms | ${cut.errors} of ${cut.requests} |`);
  console.log(`switching / steady, interleaved (requests/s, 2 rounds of ${DURATION / 2000} s): ${cutRuns.map((x, i) => `${f(x.rps / steadyRuns[i]!.rps * 100, 0)}%`).join(", ")}`);
  if (ng) console.log(`| through nginx (1 worker, upstream keepalive) | ${f(ng.rps, 0)} | ${f(ng.p50)} ms | ${f(ng.p99)} ms | ${ng.errors} |`);
  const lp = { direct: p99(lat.direct!), front: p99(lat.front!), nginx: lat.nginx!.length ? p99(lat.nginx!) : NaN };
  console.log(`at ${LAT_CONNS} connections: p99 direct ${f(lp.direct)} ms, front ${f(lp.front)} ms (added ${f(lp.front - lp.direct)} ms), nginx ${f(lp.nginx)} ms (added ${f(lp.nginx - lp.direct)} ms); ` +
    `requests/s there: direct ${f(best(lat.direct!).rps, 0)}, front ${f(best(lat.front!).rps, 0)}, nginx ${lat.nginx!.length ? f(best(lat.nginx!).rps, 0) : "-"}`);
  {
    const low = (xs: Load[]) => xs.length ? xs.reduce((x, y) => (y.p99 < x.p99 ? y : x)) : null;
    const d = low(fixed.direct!)!, fr = low(fixed.front!)!, n = low(fixed.nginx!);
    const row = (name: string, x: Load | null) => x ? `| ${name} | ${f(x.rps, 0)} | ${f(x.p50)} ms | ${f(x.p99)} ms | ${name === "direct" ? "-" : `${f(x.p99 - d.p99)} ms`} | ${x.errors} |` : "";
    console.log(`at a fixed ${RATE} requests/s (open loop, 16 connections, ${DURATION / 2000} s, better of 2):\n| path | requests/s | p50 | p99 | added p99 | failed |\n|---|---|---|---|---|---|`);
    console.log([row("direct", d), row("front", fr), row("nginx", n)].filter(Boolean).join("\n"));
    console.log(`front added p99 at ${RATE} requests/s: ${f(fr.p99 - d.p99)} ms (goal <= 1 ms)${n ? `; nginx added ${f(n.p99 - d.p99)} ms` : ""}`);
  }
  if (ng) console.log(`front/nginx: ${f(fronted.rps / ng.rps, 2)}x the requests/s (goal >= 0.7x); proxies pinned to one core: ${TASKSET ? "yes" : "no (no taskset)"}`);
  console.log(`front/direct: ${f(fronted.rps / direct.rps * 100, 0)}% of the requests/s, p99 ${f(fronted.p99 / direct.p99, 1)}x; front/bare proxy: ${f(fronted.rps / bare.rps * 100, 0)}%; the front counted ${s.rejected.upstreamFailed} upstream failures, ${s.rejected.holdTimeout} hold timeouts`);
  console.log(`\`agent front\` RSS: ${f(median(emptyRss), 1)} MB idle with no table, ${f(median(idleRss), 1)} MB idle with one route, ${f(rssLoaded, 1)} MB right after load, ${f(median(afterRss), 1)} MB idle 7 s after the runs (budget 40 MB)`);
} catch (e) {
  if (!(e instanceof PacedOnly)) throw e;
} finally {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
}
