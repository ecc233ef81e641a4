// Benchmark of a deploy as an operator sees it: from the push that pins a new commit to the node
// reporting it converged and healthy, split into phases from the agent's own log lines; the
// rollback of a release whose health check fails; and the idle agent with three processes.
//   bun scripts/bench-deploy.ts [--deploys 10] [--rollbacks 3] [--idle 60s] [--samples 6]
//                               [--poll 2s] [--health-interval 1s] [--deadline 5s] [--min-uptime 3s] [--quick]
import { parseArgs } from "node:util";
import { at, benchRole, findLog, footprint, makeNode, median, ms, stats, type Node } from "./bench-node.ts";

const { values: o } = parseArgs({ options: {
  deploys: { type: "string" }, rollbacks: { type: "string" }, idle: { type: "string" }, samples: { type: "string" },
  poll: { type: "string", default: "2s" }, "health-interval": { type: "string", default: "1s" },
  deadline: { type: "string" }, "min-uptime": { type: "string" }, quick: { type: "boolean", default: false },
} });
// --quick is a smoke run: fewer rounds, and shorter minUptime/deadline than the defaults measured in full runs.
o["min-uptime"] ??= o.quick ? "500ms" : "3s";
o.deadline ??= o.quick ? "2s" : "5s";
const DEPLOYS = Number(o.deploys ?? (o.quick ? 2 : 10)), ROLLBACKS = Number(o.rollbacks ?? (o.quick ? 1 : 3));
const IDLE_MS = ms(o.idle ?? (o.quick ? "4s" : "60s")), SAMPLES = Number(o.samples ?? (o.quick ? 2 : 6));
const PROCS = ["web", "worker", "clock"];
const POLL_MS = ms(o.poll!);

let node = null as Node | null;
const onSignal = async () => { await node?.stop(); process.exit(130); };
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

/** Times (ms since epoch) at which the git server answered each request, sampled every 5 ms. */
function watchRequests(n: Node): { times: number[]; stop(): void } {
  const times: number[] = [];
  const t = setInterval(() => { while (times.length < n.git.requests.length) times.push(Date.now()); }, 5);
  return { times, stop: () => clearInterval(t) };
}

const healthyOn = (commit: string) => (s: any) =>
  s.phase === "converged" && s.current?.commit === commit && s.processes?.length === PROCS.length &&
  s.processes.every((p: any) => p.commit === commit && p.healthy && p.state === "running");

type Phases = Record<string, number>;

async function main() {
  node = await makeNode("deploy", benchRole({ healthInterval: o["health-interval"], deadline: o.deadline, minUptime: o["min-uptime"] }), o.poll);
  const n = node;
  const reqs = watchRequests(n);
  const first = await n.release({ "VERSION": "1\n" }, "first release");
  n.start();
  await n.until("the first release", healthyOn(first.commit));
  console.log(`node converged on its first release in ${((Date.now() - first.pinnedAt) / 1000).toFixed(1)} s (fresh state dir, first fetch)`);

  const rows: Phases[] = [];
  for (let i = 0; i < DEPLOYS; i++) {
    await Bun.sleep(Math.random() * POLL_MS);        // merges land at any point of the poll cycle
    const before = Date.now();
    const { commit, pinnedAt } = await n.release({ "VERSION": `${i + 2}\n` }, `release ${i + 2}`);
    const tip = n.repo.head;
    const trace: string[] = [];
    const seen = await n.until(`deploy ${i + 1}`, healthyOn(commit), undefined, trace);
    const firstReq = n.git.requests.findIndex((r, k) => k < reqs.times.length && reqs.times[k]! >= pinnedAt && r.method === "GET");
    const detected = firstReq >= 0 ? reqs.times[firstReq]! : NaN;
    const fetched = at(findLog(n.logs, "fetched tip", before, { tip }));
    const cut = at(findLog(n.logs, "cutover started", before, { commit }));
    const restart = at(findLog(n.logs, "restarting in place", before, { commit: commit.slice(0, 12) }));
    const good = at(findLog(n.logs, "release is good", before, { commit }));
    rows.push({
      total: seen - pinnedAt, detect: detected - pinnedAt, fetch: fetched - detected, prepare: cut - fetched,
      restart: good - restart,
      report: seen - good,
    });
    console.log(`deploy ${i + 1}/${DEPLOYS}: ${(rows.at(-1)!.total! / 1000).toFixed(2)} s (poll wait ${(rows.at(-1)!.detect! / 1000).toFixed(2)} s)`);
    if (rows.at(-1)!.report! > 500) console.log(`  status.json only said so ${rows.at(-1)!.report} ms after \`release is good\`; phases seen: ${trace.join(" | ")}`);
  }

  const agentPid = n.proc!.pid;
  console.log(`idle: sampling the agent (pid ${agentPid}) for ${IDLE_MS / 1000} s with ${PROCS.length} processes supervised`);
  const idle = await footprint(agentPid, IDLE_MS, SAMPLES);

  const rb: Phases[] = [];
  for (let i = 0; i < ROLLBACKS; i++) {
    const good = n.status().current.commit;
    await Bun.sleep(Math.random() * POLL_MS);
    const before = Date.now();
    const { commit, pinnedAt } = await n.release({ "sick": "1\n", "VERSION": `sick ${i}\n` }, `a release whose /up answers 503 (${i + 1})`);
    const seen = await n.until(`rollback ${i + 1}`, (s) => s.badCommits?.includes(commit) && s.current?.commit === good &&
      s.processes?.every((p: any) => p.commit === good && p.healthy));
    const cut = at(findLog(n.logs, "cutover started", before, { commit }));
    const back = at(findLog(n.logs, "rolling back", before, { commit }));
    rb.push({ total: seen - pinnedAt, "to cutover": cut - pinnedAt, "health deadline": back - cut, "roll back + report": seen - back });
    console.log(`rollback ${i + 1}/${ROLLBACKS}: ${(rb.at(-1)!.total! / 1000).toFixed(2)} s`);
  }
  const hwm = /VmHWM:\s+(\d+) kB/.exec(await Bun.file(`/proc/${agentPid}/status`).text())?.[1];
  reqs.stop();

  const table = (title: string, xs: Phases[], notes: Record<string, string>) => {
    console.log(`\n${title}\n| phase | median | min | max | what it is |\n|---|---|---|---|---|`);
    for (const k of Object.keys(xs[0] ?? {})) {
      const v = xs.map((r) => r[k]!).filter((x) => Number.isFinite(x));
      const f = (x: number) => `${(x / 1000).toFixed(2)} s`;
      console.log(`| ${k} | ${v.length ? f(median(v)) : "n/a"} | ${v.length ? f(Math.min(...v)) : "n/a"} | ${v.length ? f(Math.max(...v)) : "n/a"} | ${notes[k] ?? ""} |`);
    }
  };
  console.log(`\nsettings: poll ${o.poll}; web health { http: /up, interval: ${o["health-interval"]} }; worker and clock minUptime ${o["min-uptime"]}; health deadline ${o.deadline}`);
  table(`merge to converged (${rows.length} deploys)`, rows, {
    total: "pin pushed -> status.json: converged, all processes healthy on the new commit",
    detect: "pin pushed (at a random point of the poll cycle) -> the agent's next poll reaches the git server",
    fetch: "-> `fetched tip` (ref advertisement + incremental pack)",
    prepare: "-> `cutover started` (manifest, role, checkout, setup, plan)",
    restart: "web, worker, clock together: start new, healthy (web: /up; others: up minUptime), stop old -> `release is good`",
    report: "-> status.json says so",
  });
  table(`rollback after a failed health check (${rb.length} runs)`, rb, {
    total: "pin of a release whose /up answers 503 -> status: bad commit recorded, previous release running and healthy",
    "to cutover": "poll wait + fetch + prepare",
    "health deadline": "-> `rolling back` (the new web never passes within the deadline)",
    "roll back + report": "switch back, old processes kept running -> status.json",
  });
  console.log(`\nidle agent, ${PROCS.length} processes supervised (web checked every ${o["health-interval"]}), ${SAMPLES} windows over ${IDLE_MS / 1000} s:`);
  console.log(`  RSS ${stats(idle.rss, "MB", 1)}; CPU ${stats(idle.cpuPerMin, "s/min", 2)}; peak RSS over the whole run (VmHWM) ${hwm ? (Number(hwm) / 1024).toFixed(1) : "?"} MB`);
}

let code = 0;
try { await main(); } catch (e) { console.error(`bench-deploy failed: ${(e as Error).message}`); code = 1; }
finally { await node?.stop(); }
process.exit(code);
