// Benchmark of a fleet rollout with real nodes: N compiled agents (dist/agent), each with its own
// IMDS stand-in (its instance id, zone and tags), share one EC2 stand-in (EC2's token buckets on)
// and one git server. A new commit with `rollout: { waves: [1, 25%, 100%], bake: 10s }`, poll 1s:
// how long until the whole role runs it, how many nodes deploy at once (the stand-in's tags sampled
// every 100 ms), how many EC2 calls it took. Then a commit whose health check fails: how many nodes
// ever ran it (the app appends its commit to a log when it starts), and how long until every node
// knows the rollout is halted (status.json says halted, or the node tagged agent:failed).
//   bun scripts/bench-fleet-nodes.ts [--quick] [--nodes 20]
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import type { Subprocess } from "bun";
import { startEc2, type Ec2Server } from "../test/servers/ec2.ts";
import { startImds, type ImdsServer } from "../test/servers/imds.ts";
import { AGENT, BUN, makeKit, stopApps, type Kit } from "../test/e2e/kit.ts";
import { rankOrder } from "../agent/fleet/rank.ts";

const args = process.argv.slice(2);
const flag = (name: string, def: number) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : def; };
const quick = args.includes("--quick");
const N = flag("nodes", quick ? 6 : 20);
const ROLLOUT = "rollout: { waves: [1, 25%, 100%], bake: 10s }\n";
const TAGS = { Role: "web", Environment: "staging" };   // the kit's manifest is manifests/staging.yaml
const NO_KEYS = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined };
const RAN = join(tmpdir(), `bench-fleet-nodes-ran-${process.pid}.log`);
/** Each agent's stderr, kept after the run when it failed. */
const LOGS = join(tmpdir(), `bench-fleet-nodes-logs-${process.pid}`);

// The app of the e2e kit, plus a line in RAN when it starts (its release dir names the node's state dir).
const APP = `
const fs = require("node:fs");
fs.appendFileSync(${JSON.stringify(RAN)}, (process.env.AGENT_COMMIT ?? "?") + " " + process.cwd() + "\\n");
Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.PORT ?? 0), fetch(req) {
  if (new URL(req.url).pathname === "/up") return fs.existsSync("sick") ? new Response("sick", { status: 503 }) : new Response("ok");
  return new Response("release " + (process.env.AGENT_COMMIT ?? "?"));
}});
`;
// One process per node (20 agents and 20 apps on a small machine); health deadline 4s <= bake.
const ROLE = `
processes:
  web:
    run: ${BUN} app.ts
    health: { http: /up, interval: 500ms, timeout: 1s, deadline: 4s }
    stop: { timeout: 3s }
`;

interface Node { id: string; imds: ImdsServer; state: string; config: string; daemon: Subprocess | null }
const nodes: Node[] = [];
let k: Kit | null = null, ec2: Ec2Server | null = null;

const envOf = (n: Node) => {
  const env: Record<string, string | undefined> = { ...process.env, AGENT_CONFIG: n.config, NO_COLOR: "1", ...NO_KEYS };
  for (const [key, v] of Object.entries(env)) if (v === undefined) delete env[key];
  return env as Record<string, string>;
};
const tagsOf = (n: Node) => ec2!.instances.get(n.id)!.tags;
const statusOf = (n: Node): any => { try { return JSON.parse(readFileSync(join(n.state, "status.json"), "utf8")); } catch { return null; } };
const onCommit = (n: Node, c: string) => tagsOf(n)["agent:commit"] === c && tagsOf(n)["agent:state"] === "converged";
const count = (action: string) => ec2!.calls.filter((c) => c.action === action).length;
const throttled = () => ec2!.calls.filter((c) => c.status === 503).length;
/** Which nodes' apps ever started on `commit` (RAN lines name the release dir under the node's state dir). */
const ranOn = (commit: string) => {
  const lines = existsSync(RAN) ? readFileSync(RAN, "utf8").split("\n") : [];
  return new Set(nodes.filter((n) => lines.some((l) => l.startsWith(commit + " ") && l.includes(n.state + "/"))).map((n) => n.id));
};

/** CPU seconds and RSS (MB) of the agents (not their apps) from /proc. */
function agentUsage(): { cpuS: number; rssMB: number } {
  let ticks = 0, rssKB = 0;
  for (const n of nodes) {
    const pid = n.daemon?.pid;
    if (!pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(stat[11]) + Number(stat[12]);
      rssKB += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {}
  }
  return { cpuS: ticks / 100, rssMB: rssKB / 1024 };
}

/** Polls every 100 ms until done(), calling each() first; null on timeout. */
async function watch(done: () => boolean, ms: number, each: () => void = () => {}): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    each();
    if (done()) return performance.now() - t0;
    await Bun.sleep(100);
  }
  return null;
}

async function cleanup(): Promise<void> {
  for (const n of nodes) n.daemon?.kill("SIGTERM");
  await Promise.all(nodes.map((n) => n.daemon?.exited));
  for (const n of nodes) { await stopApps(n.state); await n.imds.stop(); }
  await ec2?.stop();
  await k?.stop();
  for (const d of ["ebs", "by-id"]) rmSync(join(tmpdir(), `bench-fleet-nodes-${d}-${process.pid}`), { recursive: true, force: true });
  rmSync(RAN, { force: true });
  if (process.exitCode) console.error(`bench-fleet-nodes: the agents' logs are in ${LOGS}`);
  else rmSync(LOGS, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => { void cleanup().then(() => process.exit(130)); });

async function main(): Promise<void> {
  ec2 = await startEc2({ dataDir: join(tmpdir(), `bench-fleet-nodes-ebs-${process.pid}`), byIdDir: join(tmpdir(), `bench-fleet-nodes-by-id-${process.pid}`), loopDevices: false });
  const ids = Array.from({ length: N }, (_, i) => `i-0be4c0000000${String(i).padStart(5, "0")}`);
  for (const [i, id] of ids.entries()) {
    const zone = `us-east-1${"abc"[i % 3]}`;
    ec2.addInstance({ id, zone, tags: { ...TAGS } });
    nodes.push({ id, imds: await startImds({ instanceId: id, region: "us-east-1", zone, tags: TAGS }), state: "", config: "", daemon: null });
  }
  writeFileSync(RAN, "");
  mkdirSync(LOGS, { recursive: true });
  chmodSync(RAN, 0o666);
  k = await makeKit("fleet-nodes", ROLE, {
    env: NO_KEYS, config: ["identity: imds", `imds: { endpoint: "${nodes[0]!.imds.url}", timeout: 1s }`, `aws: { endpoint: "${ec2.url}" }`],
  });
  const base = readFileSync(k.config, "utf8");
  for (const [i, n] of nodes.entries()) {
    n.state = i === 0 ? k.state : join(k.dir, `state-${i}`);
    n.config = i === 0 ? k.config : join(k.dir, `agent-${i}.yaml`);
    if (i > 0) writeFileSync(n.config, base.replace(`stateDir: ${k.state}`, `stateDir: ${n.state}`).replace(nodes[0]!.imds.url, n.imds.url));
  }
  const files = (v: string, over: Record<string, string> = {}) => ({ VERSION: `${v}\n`, "app.ts": APP, "roles/web.yaml": ROLE, ...over });

  // Every node converges on v1 (no rollout: at once), then the EC2 counters start from zero.
  const v1 = await k.release(files("v1"), "v1");
  for (const n of nodes) n.daemon = Bun.spawn([AGENT, "run"], { env: envOf(n), stdout: "ignore", stderr: Bun.file(join(LOGS, `${n.id}.log`)) });
  const startMs = await watch(() => nodes.every((n) => onCommit(n, v1)), 180_000);
  if (startMs === null) throw new Error(`not every node converged on v1 in 180 s: ${nodes.filter((n) => !onCommit(n, v1)).map((n) => n.id).join(", ")}`);
  console.log(`machine load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}; ${N} nodes on v1 after ${(startMs / 1000).toFixed(1)} s`);
  await Bun.sleep(3_000);

  // A good commit in waves [1, 25%, 100%].
  let calls0 = ec2.calls.length, d0 = count("DescribeInstances"), t0 = count("CreateTags"), th0 = throttled(), u0 = agentUsage();
  const v2 = await k.release(files("v2"), "v2", ROLLOUT);
  let peak = 0;
  const secs: number[] = [];
  let lastCalls = ec2.calls.length, lastAt = performance.now();
  const sample = () => {
    peak = Math.max(peak, nodes.filter((n) => tagsOf(n)["agent:state"] === "deploying").length);
    if (performance.now() - lastAt >= 1000) { secs.push(ec2!.calls.length - lastCalls); lastCalls = ec2!.calls.length; lastAt = performance.now(); }
  };
  const goodMs = await watch(() => nodes.every((n) => onCommit(n, v2)), 300_000, sample);
  const u1 = agentUsage();
  const good = {
    ms: goodMs, calls: ec2.calls.length - calls0, describe: count("DescribeInstances") - d0, createTags: count("CreateTags") - t0,
    throttled: throttled() - th0, peak, peakPerSec: Math.max(0, ...secs), cpuS: u1.cpuS - u0.cpuS, rssMB: u1.rssMB,
  };

  // A bad commit: the canary's health check fails.
  await Bun.sleep(3_000);
  calls0 = ec2.calls.length; d0 = count("DescribeInstances"); t0 = count("CreateTags");
  const bad = await k.release(files("v3", { sick: "yes\n" }), "v3 is never healthy", ROLLOUT);
  const canary = rankOrder(bad, ids)[0]!;
  const knows = (n: Node) => statusOf(n)?.rollout?.decision === "halted" || tagsOf(n)["agent:failed"] === bad;
  const everDeployed = new Set<string>();
  let failedAt: number | null = null;
  const b0 = performance.now();
  const haltMs = await watch(() => nodes.every(knows), 180_000, () => {
    for (const n of nodes) if (tagsOf(n)["agent:state"] === "deploying" && statusOf(n)?.desired?.commit === bad) everDeployed.add(n.id);
    if (failedAt === null && nodes.some((n) => tagsOf(n)["agent:failed"] === bad)) failedAt = performance.now() - b0;
  });
  await Bun.sleep(3_000);   // a few more polls: does anyone else start the bad commit?
  const ran = ranOn(bad);
  const badRun = { ms: haltMs, failedAt, ran: ran.size, deployed: everDeployed.size, canaryRan: ran.has(canary), calls: ec2.calls.length - calls0,
    describe: count("DescribeInstances") - d0, createTags: count("CreateTags") - t0 };

  const s = (ms: number | null) => (ms === null ? "timeout" : `${(ms / 1000).toFixed(1)} s`);
  const sec = (good.ms ?? 1) / 1000;
  console.log(`\nfleet with real nodes: ${N} compiled agents, waves [1, 25%, 100%], bake 10s, poll 1s, EC2 token buckets on`);
  console.log("| rollout | figure | value |\n|---|---|---|");
  console.log(`| good commit | until every node runs it | ${s(good.ms)} |`);
  console.log(`| good commit | most nodes deploying at once | ${good.peak} |`);
  console.log(`| good commit | EC2 calls (DescribeInstances / CreateTags / throttled) | ${good.calls} (${good.describe} / ${good.createTags} / ${good.throttled}) |`);
  console.log(`| good commit | EC2 calls per second (mean / busiest second) | ${(good.calls / sec).toFixed(1)} / ${good.peakPerSec} |`);
  console.log(`| good commit | agents' CPU during the rollout / their RSS after (sum of ${N}) | ${good.cpuS.toFixed(1)} s / ${good.rssMB.toFixed(0)} MB |`);
  console.log(`| bad commit | nodes that ever ran it (goal 1) / were ever deploying it | ${badRun.ran} / ${badRun.deployed}${badRun.canaryRan ? " (the canary)" : ""} |`);
  console.log(`| bad commit | until the canary tags agent:failed | ${s(badRun.failedAt)} |`);
  console.log(`| bad commit | until every node knows it is halted | ${s(badRun.ms)} |`);
  console.log(`| bad commit | EC2 calls until then + 3 s (DescribeInstances / CreateTags) | ${badRun.calls} (${badRun.describe} / ${badRun.createTags}) |`);
  console.log(`machine load after: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  if (good.ms === null || badRun.ms === null || badRun.ran > 1) process.exitCode = 1;
}

try { await main(); } catch (e) { console.error(`bench-fleet-nodes: ${(e as Error).message}`); process.exitCode = 1; } finally { await cleanup(); }
