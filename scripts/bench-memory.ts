// Benchmark of the idle agent's memory: `agent run` on a converged node with a static identity and
// no processes (poll 2s), RSS after its first release and after a restart on the same node, beside
// references built in the same run: a compiled Bun program that only waits, and one that also loads
// isomorphic-git, yaml and zod (the agent's floor). Optionally a second binary (e.g. an older build)
// measured in the same run, and extra environment for the agent (e.g. BUN_OPTIONS=--smol).
// With --ec2 (root: loop devices), each agent also runs as an EC2 node (identity: imds) whose role
// has a volume and an address, against the IMDS and EC2 stand-ins (the AWS SDK clients loaded).
//   bun scripts/bench-memory.ts [--idle 20s] [--samples 4] [--agent dist/agent] [--compare OTHER] [--env K=V] [--ec2]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { AGENT, ROOT, footprint, makeNode, median, ms, rssMB, type Node } from "./bench-node.ts";

const { values: o } = parseArgs({ options: {
  idle: { type: "string", default: "20s" }, samples: { type: "string", default: "4" },
  agent: { type: "string" }, compare: { type: "string" }, env: { type: "string", multiple: true, default: [] }, ec2: { type: "boolean" },
} });
const IDLE_MS = ms(o.idle!), SAMPLES = Number(o.samples);
const extraEnv = Object.fromEntries(o.env!.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const BUN = process.execPath;

/** Compile `source` like scripts/build does and return the binary's path. */
async function compile(dir: string, name: string, source: string): Promise<string> {
  const src = join(ROOT, "scripts", `.bench-${name}.ts`), out = join(dir, name);
  writeFileSync(src, source);
  try {
    const p = Bun.spawn([BUN, "build", src, "--compile", "--minify", "--bytecode", "--format=esm", "--outfile", out], { stdout: "ignore", stderr: "pipe" });
    if ((await p.exited) !== 0) throw new Error(`compiling ${name}: ${await new Response(p.stderr).text()}`);
  } finally { rmSync(src, { force: true }); }
  return out;
}

async function idleOf(argv: string[]): Promise<number> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  await Bun.sleep(2000);
  const f = await footprint(p.pid, IDLE_MS / 2, Math.max(1, SAMPLES / 2));
  p.kill("SIGKILL");
  await p.exited;
  return median(f.rss);
}

/** Anonymous (heap) and file-backed (the binary's pages) RSS of a process, in MB. */
async function split(pid: number): Promise<string> {
  const t = await Bun.file(`/proc/${pid}/smaps_rollup`).text();
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(t)?.[1] ?? 0);
  return `anonymous ${(kb("Anonymous") / 1024).toFixed(1)} MB, file ${((kb("Rss") - kb("Anonymous")) / 1024).toFixed(1)} MB`;
}

/** An EC2 node's settings: identity from the IMDS stand-in, a volume and an address from the EC2 one. */
async function ec2Node(label: string) {
  const { startEc2 } = await import("../test/servers/ec2.ts");
  const { startImds } = await import("../test/servers/imds.ts");
  const d = mkdtempSync(join(tmpdir(), `bench-memory-ec2-${label}-`));
  const id = `i-0bec00000000000${label}`, vol = `vol-0bec00000000000${label}`, eip = `eipalloc-0bec000${label}`;
  const ec2 = await startEc2({ dataDir: join(d, "ebs"), byIdDir: join(d, "by-id") });
  ec2.addInstance({ id, zone: "us-east-1a", tags: { Role: "web", Environment: "bench" } });
  ec2.addVolume({ id: vol, zone: "us-east-1a", sizeMiB: 64, tags: {} });
  ec2.addAddress({ allocationId: eip, publicIp: `203.0.113.${Number(label) + 10}` });
  const imds = await startImds({ instanceId: id, region: "us-east-1", zone: "us-east-1a", tags: { Role: "web", Environment: "bench" } });
  const mnt = join(d, "volume");
  return {
    role: `processes: {}\naddress: true\nvolumes:\n  data: { mount: ${mnt}, fs: ext4, format: if-blank }\n`,
    manifest: `roles:\n  web:\n    volumes:\n      data: { id: ${vol} }\n    addresses: [${eip}]\n`,
    identity: ["identity: imds", `imds: { endpoint: "${imds.url}", timeout: 500ms }`, `aws: { endpoint: "${ec2.url}" }`, `devices: { byIdDir: ${join(d, "by-id")} }`],
    // no keys in the environment: the agent uses the instance role's, as on EC2
    env: { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined } as unknown as Record<string, string>,
    async stop() { Bun.spawnSync(["umount", mnt]); await ec2.stop(); await imds.stop(); rmSync(d, { recursive: true, force: true }); },
  };
}

/** A converged node on `agent`: idle RSS after its first release, then after an agent restart. */
async function agentIdle(agent: string, label: string, ec2 = false) {
  const aws = ec2 ? await ec2Node(label) : null;
  const node: Node = await makeNode(`memory-${label}${ec2 ? "-ec2" : ""}`, aws?.role ?? "processes: {}\n", "2s",
    { agent, env: { ...aws?.env, ...extraEnv }, identity: aws?.identity, manifest: aws?.manifest });
  try {
    const { commit } = await node.release({ VERSION: "1\n" }, "release");
    node.start();
    await node.until("convergence", (s) => s.phase === "converged" && s.current?.commit === commit);
    await Bun.sleep(1000);
    const first = await footprint(node.proc!.pid, IDLE_MS, SAMPLES);
    const parts = await split(node.proc!.pid);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(await Bun.file(`/proc/${node.proc!.pid}/status`).text())?.[1] ?? 0) / 1024;
    node.proc!.kill("SIGTERM");
    await node.proc!.exited;
    node.start();
    await Bun.sleep(3000);
    await node.until("convergence after restart", (s) => s.phase === "converged" && s.current?.commit === commit);
    const restarted = await footprint(node.proc!.pid, IDLE_MS, SAMPLES);
    return { first: median(first.rss), parts, hwm, restarted: median(restarted.rss), now: rssMB(node.proc!.pid) };
  } finally { await node.stop(); await aws?.stop(); }
}

const dir = mkdtempSync(join(tmpdir(), "bench-memory-"));
try {
  const wait = await compile(dir, "wait", "setInterval(() => {}, 1000);\n");
  const floor = await compile(dir, "floor", `import git from "isomorphic-git"; import YAML from "yaml"; import { z } from "zod";\n` +
    `if (process.env.NEVER) console.log(git, YAML, z);\nsetInterval(() => {}, 1000);\n`);
  const agents = [resolve(o.agent ?? AGENT), ...(o.compare ? [resolve(o.compare)] : [])];
  console.log(`idle RSS, medians of ${SAMPLES} windows over ${IDLE_MS / 1000} s${Object.keys(extraEnv).length ? `; agent env ${JSON.stringify(extraEnv)}` : ""}`);
  console.log("| what | idle RSS | notes |\n|---|---|---|");
  console.log(`| compiled Bun program that only waits (reference) | ${(await idleOf([wait])).toFixed(1)} MB | |`);
  console.log(`| + isomorphic-git, yaml, zod loaded (reference) | ${(await idleOf([floor])).toFixed(1)} MB | |`);
  for (const [i, a] of agents.entries()) {
    const name = a.startsWith(ROOT) ? a.slice(ROOT.length + 1) : a;
    const r = await agentIdle(a, String(i));
    console.log(`| \`${name} run\`, static identity, no processes, after its first release | ${r.first.toFixed(1)} MB | peak ${r.hwm.toFixed(0)} MB during the release; ${r.parts} |`);
    console.log(`| same node, agent restarted (converged, nothing to fetch) | ${r.restarted.toFixed(1)} MB | |`);
    if (!o.ec2) continue;
    const e = await agentIdle(a, String(i), true);
    console.log(`| \`${name} run\`, EC2 node (identity: imds) with a volume and an address, after its first release | ${e.first.toFixed(1)} MB | peak ${e.hwm.toFixed(0)} MB during the release; ${e.parts} |`);
    console.log(`| same EC2 node, agent restarted | ${e.restarted.toFixed(1)} MB | |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
