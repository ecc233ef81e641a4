// Benchmark of the binary itself: the size of dist/agent, how long `agent version` takes to start,
// and what `agent run` costs while idle on a converged node (RSS, CPU seconds per minute), with no
// processes and with three supervised; plus `agent status --json` against the running daemon.
//   bun scripts/bench-binary.ts [--runs 30] [--idle 60s] [--samples 6] [--quick]
import { statSync } from "node:fs";
import { parseArgs } from "node:util";
import { AGENT, benchRole, footprint, makeNode, median, ms, stats, type Node } from "./bench-node.ts";

const { values: o } = parseArgs({ options: {
  runs: { type: "string" }, idle: { type: "string" }, samples: { type: "string" }, quick: { type: "boolean", default: false },
} });
const RUNS = Number(o.runs ?? (o.quick ? 10 : 30));
const IDLE_MS = ms(o.idle ?? (o.quick ? "4s" : "60s")), SAMPLES = Number(o.samples ?? (o.quick ? 2 : 6));

let node = null as Node | null;
const onSignal = async () => { await node?.stop(); process.exit(130); };
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

/** Wall time of `argv` from spawn to exit, `runs` times after one warm-up; throws on a non-zero exit. */
async function startTimes(argv: string[], runs: number, env: Record<string, string | undefined> = process.env): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe", env });
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    const t = performance.now() - t0;
    if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err.trim()}`);
    if (i > 0) out.push(t);
  }
  return out;
}

/** A node whose role has `roleText`, converged; its agent's idle footprint over IDLE_MS. */
async function idleNode(name: string, roleText: string, processes: number) {
  node = await makeNode(name, roleText);
  const n = node;
  const { commit } = await n.release({ "VERSION": "1\n" }, "release");
  n.start();
  await n.until("convergence", (s) => s.phase === "converged" && s.current?.commit === commit &&
    (s.processes?.length ?? 0) === processes && s.processes.every((p: any) => p.healthy));
  await Bun.sleep(1000);                                  // let the first tick's garbage settle
  const f = await footprint(n.proc!.pid, IDLE_MS, SAMPLES);
  const status = processes ? await startTimes([AGENT, "status", "--json", "--config", n.config], Math.min(RUNS, 10)) : [];
  await n.stop();
  node = null;
  return { ...f, status };
}

async function main() {
  const bytes = statSync(AGENT).size;
  const version = (await new Response(Bun.spawn([AGENT, "version"], { stdout: "pipe" }).stdout).text()).trim();
  console.log(`binary: ${AGENT.replace(/.*\/(dist\/)/, "$1")}: ${(bytes / 1e6).toFixed(1)} MB (${(bytes / 1048576).toFixed(1)} MiB); ${version}`);
  const ver = await startTimes([AGENT, "version"], RUNS);
  const git = await startTimes(["git", "--version"], RUNS);
  console.log(`\nstart-up, ${RUNS} runs after a warm-up (spawn to exit):`);
  console.log(`| command | median | min | max |\n|---|---|---|---|`);
  for (const [label, xs] of [["agent version", ver], ["git --version (reference)", git]] as const) {
    console.log(`| \`${label}\` | ${median(xs).toFixed(1)} ms | ${Math.min(...xs).toFixed(1)} ms | ${Math.max(...xs).toFixed(1)} ms |`);
  }

  console.log(`\nidle \`agent run\` on a converged node, poll 2s, ${SAMPLES} windows over ${IDLE_MS / 1000} s in total:`);
  const none = await idleNode("binary-0", "processes: {}\n", 0);
  const three = await idleNode("binary-3", benchRole(), 3);
  console.log(`| processes supervised | RSS at the end (median of windows) | RSS min / max | CPU per minute (median) | CPU min / max |\n|---|---|---|---|---|`);
  for (const [label, f] of [["none", none], ["3 (web with an HTTP check every 1s, worker, clock)", three]] as const) {
    console.log(`| ${label} | ${median(f.rss).toFixed(1)} MB | ${Math.min(...f.rss).toFixed(1)} / ${Math.max(...f.rss).toFixed(1)} MB | ${median(f.cpuPerMin).toFixed(2)} s | ${Math.min(...f.cpuPerMin).toFixed(2)} / ${Math.max(...f.cpuPerMin).toFixed(2)} s |`);
  }
  console.log(`\n\`agent status --json\` against the running daemon (control socket): ${stats(three.status)}`);
}

let code = 0;
try { await main(); } catch (e) { console.error(`bench-binary failed: ${(e as Error).message}`); code = 1; }
finally { await node?.stop(); }
process.exit(code);
