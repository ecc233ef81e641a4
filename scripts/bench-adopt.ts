// Benchmark of an agent start on a busy node: `agent run` where N processes already run (started
// by an earlier agent), until status.json shows every one adopted (same pid) and healthy. The
// reference, in the same run: the same start on the same node's twin with no processes.
// --http H: H of the N processes are a Bun HTTP server with `health: { http: /up }`; an adopted
// one reads as healthy only after its first check passes.
//   bun scripts/bench-adopt.ts [--processes 20] [--http 0] [--runs 3]
import { parseArgs } from "node:util";
import { BUN, makeNode, median, type Node } from "./bench-node.ts";

const { values: o } = parseArgs({ options: { processes: { type: "string", default: "20" }, http: { type: "string", default: "0" }, runs: { type: "string", default: "3" } } });
const N = Number(o.processes), H = Math.min(N, Number(o.http)), RUNS = Number(o.runs);

/** Converge `node` once, then restart its agent RUNS times: spawn → status shows `count` processes adopted and healthy. */
async function restarts(node: Node, count: number): Promise<number[]> {
  const { commit } = await node.release({ VERSION: "1\n" }, "release");
  node.start();
  const ready = (s: any) => s.phase === "converged" && s.current?.commit === commit && (s.processes?.length ?? 0) === count && s.processes.every((p: any) => p.healthy);
  await node.until("first convergence", ready);
  const pids = (s: any) => (s.processes ?? []).map((p: any) => p.pid).sort().join(",");
  const out: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const before = pids(node.status());
    node.proc!.kill("SIGTERM");
    await node.proc!.exited;
    const stale = node.status()?.lastTick?.at;
    const t0 = Date.now();
    node.start();
    await node.until("adoption", (s) => s.lastTick?.at !== stale && ready(s) && pids(s) === before);
    out.push(Date.now() - t0);
  }
  return out;
}

const role = (n: number, h = 0) => !n ? "processes: {}\n" : "processes:\n"
  + (n > h ? `  worker:\n    run: sleep 100000\n    instances: ${n - h}\n    minUptime: 300ms\n` : "")
  + (h ? `  web:\n    run: ${BUN} app.ts\n    instances: ${h}\n    health: { http: /up, interval: 1s, deadline: 10s }\n` : "");
const busy = await makeNode("adopt", role(N, H));
let withN: number[], none: number[];
try { withN = await restarts(busy, N); } finally { await busy.stop(); }
const empty = await makeNode("adopt-0", role(0));
try { none = await restarts(empty, 0); } finally { await empty.stop(); }
const f = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs)}, max ${Math.max(...xs)}, n=${xs.length})`;
console.log(`| agent start until status shows ... | time |\n|---|---|`);
console.log(`| ${N} running processes${H ? ` (${H} with HTTP checks)` : ""} adopted and healthy | ${f(withN)} |`);
console.log(`| no processes, converged (reference) | ${f(none)} |`);
console.log(`ratio: ${(median(withN) / median(none)).toFixed(2)}×`);
