// Benchmark of cutovers through the front under load: `wrk` (keep-alive) against the public port
// of a role with one http: process while N deploys run in a row (poll 1s, drain 2s), plus
// keep-alive clients on an endpoint that takes 1 s, so every drain has requests in flight.
// Reports failed requests (goal 0) and p50/p99 latency of the sampled requests during and
// outside cutovers; then SIGKILLs the agent under load, starts it again and counts failures.
//   bun scripts/bench-front-deploys.ts [--deploys 20] [--connections 16]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BUN, at, makeNode, type Node } from "./bench-node.ts";

const { values: o } = parseArgs({ options: { deploys: { type: "string", default: "20" }, connections: { type: "string", default: "16" }, quick: { type: "boolean", default: false } } });
const DEPLOYS = o.quick ? 2 : Number(o.deploys);

const APP = `
const port = Number(process.env.PORT);
const fs = require("node:fs");
const v = fs.readFileSync("VERSION", "utf8").trim();
Bun.serve({ hostname: "127.0.0.1", port, async fetch(req) {
  const path = new URL(req.url).pathname;
  if (path === "/slow") { await Bun.sleep(1000); return new Response("slow " + v); }
  return new Response("release " + v);
}});
`;

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

async function ensureWrk(): Promise<string> {
  const which = Bun.spawnSync(["sh", "-c", "command -v wrk"]).stdout.toString().trim();
  if (which) return which;
  console.log("installing wrk (apt-get install -y wrk)");
  const r = Bun.spawnSync(["sh", "-c", "apt-get install -y wrk >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1)"]);
  if (r.exitCode !== 0) throw new Error("wrk is missing and could not be installed: apt-get install -y wrk");
  return "wrk";
}

/** Keep-alive clients that record each request's start, latency and outcome. */
function sampler(url: string, clients: number) {
  let stop = false;
  const samples: { t: number; ms: number; ok: boolean }[] = [];
  const errors: string[] = [];
  const loops = Array.from({ length: clients }, async () => {
    while (!stop) {
      const t = performance.now() + performance.timeOrigin;
      try {
        const r = await fetch(url);
        await r.text();
        samples.push({ t, ms: performance.now() + performance.timeOrigin - t, ok: r.status === 200 });
        if (r.status !== 200) errors.push(String(r.status));
      } catch (e) {
        samples.push({ t, ms: performance.now() + performance.timeOrigin - t, ok: false });
        errors.push(String(e));
      }
    }
  });
  return { samples, errors, async done() { stop = true; await Promise.all(loops); } };
}

function wrk(bin: string, url: string, connections: number) {
  const p = Bun.spawn([bin, "-t", "2", "-c", String(connections), "-d", "3600s", "--latency", url], { stdout: "pipe", stderr: "pipe" });
  const out = new Response(p.stdout).text();
  return {
    async done() {
      p.kill("SIGINT");
      await p.exited;
      const text = await out;
      const n = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
      return {
        requests: n(/(\d+) requests in/), rps: n(/Requests\/sec:\s+([\d.]+)/),
        non2xx: n(/Non-2xx or 3xx responses: (\d+)/), socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
        p50: /50%\s+(\S+)/.exec(text)?.[1] ?? "?", p99: /99%\s+(\S+)/.exec(text)?.[1] ?? "?", text,
      };
    },
  };
}

const pct = (xs: number[], q: number) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]!; };

let node: Node | null = null;
async function cleanup() {
  const st = node ? JSON.parse(readFileSync(join(node.state, "state.json"), "utf8")) : null;
  await node?.stop();
  if (st?.front?.pid) { try { process.kill(-st.front.pid, "SIGKILL"); } catch {} }
}

async function main() {
  const bin = await ensureWrk();
  const port = freePort();
  const role = `processes:\n  web:\n    run: ${BUN} app.ts\n    http: { port: ${port}, listen: 127.0.0.1, drain: 2s }\n    health: { http: /, interval: 200ms, timeout: 1s, deadline: 10s }\n    stop: { timeout: 5s }\n`;
  node = await makeNode("front-deploys", role, "1s");
  const good = (c: string) => (s: any) => s.phase === "converged" && s.current?.commit === c && s.processes?.every((p: any) => p.commit === c && p.healthy);
  const first = await node.release({ "app.ts": APP, VERSION: "0\n" }, "v0");
  node.start();
  await node.until("v0", good(first.commit));

  const url = `http://127.0.0.1:${port}/`;
  const w = wrk(bin, url, Number(o.connections));
  const fast = sampler(url, 2);
  const slow = sampler(`${url}slow`, 4);
  await Bun.sleep(2000);
  const windows: [number, number][] = [];
  for (let i = 1; i <= DEPLOYS; i++) {
    const r = await node.release({ VERSION: `${i}\n` }, `v${i}`);
    await node.until(`v${i}`, good(r.commit));
    const started = at(node.logs.findLast((l) => l.msg === "cutover started" && l.commit === r.commit));
    const done = at(node.logs.findLast((l) => l.msg === "release is good" && l.commit === r.commit));
    windows.push([started, done]);
  }
  await Bun.sleep(1000);
  const wr = await w.done();
  await fast.done();
  await slow.done();
  const inside = (t: number) => windows.some(([a, b]) => t >= a && t <= b);
  const lat = (f: (t: number) => boolean) => fast.samples.filter((s) => s.ok && f(s.t)).map((s) => s.ms);
  const during = lat(inside), outside = lat((t) => !inside(t));
  const cut = windows.map(([a, b]) => b - a);
  console.log(`deploys: ${DEPLOYS} in a row (poll 1s, drain 2s), wrk -c ${o.connections} keep-alive on /, 4 clients on /slow (1 s)`);
  console.log(`  wrk: ${wr.requests} requests, ${Math.round(wr.rps)} req/s, failed ${wr.non2xx + wr.socketErrors} (non-2xx ${wr.non2xx}, socket errors ${wr.socketErrors}), p50 ${wr.p50}, p99 ${wr.p99}`);
  console.log(`  sampled /: ${fast.samples.length} requests, failed ${fast.errors.length}; p50/p99 during cutovers ${pct(during, 0.5).toFixed(1)}/${pct(during, 0.99).toFixed(1)} ms (${during.length}), outside ${pct(outside, 0.5).toFixed(1)}/${pct(outside, 0.99).toFixed(1)} ms (${outside.length})`);
  console.log(`  /slow (1 s, drained): ${slow.samples.length} requests, failed ${slow.errors.length}`);
  console.log(`  cutover (cutover started -> release is good): median ${pct(cut, 0.5)} ms, max ${Math.max(...cut)} ms`);
  if (fast.errors.length || slow.errors.length) console.log(`  first errors: ${[...fast.errors, ...slow.errors].slice(0, 3).join(" | ")}`);

  // The agent SIGKILLed under load and started again: the front keeps serving throughout.
  const w2 = wrk(bin, url, Number(o.connections));
  const slow2 = sampler(`${url}slow`, 4);
  await Bun.sleep(1500);
  node.proc!.kill("SIGKILL");
  await node.proc!.exited;
  await Bun.sleep(2000);
  node.start();
  await node.until("the restarted agent", (s) => s.agent?.pid === node!.proc!.pid && s.phase === "converged");
  await Bun.sleep(1500);
  const wr2 = await w2.done();
  await slow2.done();
  console.log(`agent SIGKILL + restart under load: wrk ${wr2.requests} requests, ${Math.round(wr2.rps)} req/s, failed ${wr2.non2xx + wr2.socketErrors}; /slow failed ${slow2.errors.length} of ${slow2.samples.length}`);
  await cleanup();
  node = null;
  await firstDeployGap();
}

/** The first deploy onto the front of a release that listened on http.port itself: the one stop-then-bind gap. */
async function firstDeployGap() {
  const port = freePort();
  const plain = `processes:\n  web:\n    run: ${BUN} app.ts\n    env: { PORT: "${port}" }\n    health: { http: /, interval: 200ms, timeout: 1s, deadline: 10s }\n    stop: { timeout: 5s }\n`;
  node = await makeNode("front-first", plain, "1s");
  const good = (c: string) => (s: any) => s.phase === "converged" && s.current?.commit === c && s.processes?.every((p: any) => p.commit === c && p.healthy);
  const v0 = await node.release({ "app.ts": APP, VERSION: "0\n" }, "v0");
  node.start();
  await node.until("v0", good(v0.commit));
  const s = sampler(`http://127.0.0.1:${port}/`, 2);
  await Bun.sleep(1000);
  await node.repo.commit({ "roles/web.yaml": plain.replace(`    env: { PORT: "${port}" }\n`, `    http: { port: ${port}, listen: 127.0.0.1, drain: 2s }\n`) }, "behind the front");
  const v1 = await node.release({ VERSION: "1\n" }, "v1");
  await node.until("v1", good(v1.commit));
  await Bun.sleep(1000);
  await s.done();
  // The gap: from the last answer before the first failure to the first answer after the last one.
  const ok = s.samples.filter((x) => x.ok).map((x) => x.t + x.ms).sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < ok.length; i++) gap = Math.max(gap, ok[i]! - ok[i - 1]!);
  console.log(`first deploy onto the front (the old release held http.port): longest time without an answer ${gap.toFixed(0)} ms, failed requests ${s.errors.length} of ${s.samples.length} (connection refused while nothing listens)`);
}

main().then(cleanup, async (e) => { console.error(e); await cleanup(); process.exit(1); });
