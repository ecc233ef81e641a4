// The demo: three nodes (web, worker, db) converge from a git repository on local stand-ins for
// git, IMDS and EC2; a new commit restarts them in place (the web node's front on :8080 switches
// to the new release under a stream of requests, none failed); a broken commit is rolled back.
// Run it with scripts/demo (which installs and builds first). --keep leaves the files behind.
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { makeRepo } from "../test/fixtures/repo.ts";
import { startGitServer } from "../test/servers/git.ts";
import { startImds, type ImdsServer } from "../test/servers/imds.ts";
import { startEc2 } from "../test/servers/ec2.ts";

const ROOT = resolve(import.meta.dir, "..");
const AGENT = join(ROOT, "dist/agent");
const keep = process.argv.includes("--keep");
const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => console.log(`\n${bold("==> " + s)}`);
const root = process.getuid?.() === 0;

const dir = mkdtempSync(join(tmpdir(), "agent-demo-"));
chmodSync(dir, 0o755);                 // the roles' user must reach the releases
const agents: { name: string; config: string; state: string; proc: Subprocess | null; imds: ImdsServer }[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

async function main() {
  say(`Setting up in ${dir}`);
  // 1. the ops repository: this checkout's manifests/, roles/ and app/, on a smart-HTTP git server
  const files: Record<string, string> = {};
  for (const sub of ["manifests", "roles", "app"]) {
    for (const f of new Bun.Glob("**/*").scanSync({ cwd: join(ROOT, sub) })) files[`${sub}/${f}`] = readFileSync(join(ROOT, sub, f), "utf8");
  }
  const repo = await makeRepo(join(dir, "git"), "ops", files, { message: "sample app and manifests" });
  const git = await startGitServer({ root: join(dir, "git") });
  cleanups.push(() => git.stop());
  const pin = async (commit: string, message: string) => {
    const text = readFileSync(join(repo.work, "manifests/staging.yaml"), "utf8").replace(/^commit: .*$/m, `commit: ${commit}`).replace(/^poll: .*$/m, "poll: 2s");
    return repo.commit({ "manifests/staging.yaml": text }, message);
  };
  const first = repo.head;
  await pin(first, `staging: deploy ${first.slice(0, 7)}`);
  console.log(`git:  ${git.url}/ops.git  (manifests/staging.yaml pins ${first.slice(0, 12)})`);

  // 2. EC2: three instances, the db's volume (found by tag), the web pool's address
  const staging = readFileSync(join(repo.work, "manifests/staging.yaml"), "utf8");
  const pool = [...staging.matchAll(/eipalloc-[0-9a-f]+/g)].map((m) => m[0]);
  const volTag = /Name: ([\w-]+)/.exec(staging)?.[1] ?? "staging-db-data";
  const ec2 = await startEc2({ dataDir: join(dir, "ebs"), byIdDir: join(dir, "by-id") });
  cleanups.push(() => ec2.stop());
  const nodes = [
    { name: "web", id: "i-0000000000000a001" }, { name: "worker", id: "i-0000000000000a002" }, { name: "db", id: "i-0000000000000a003" },
  ];
  for (const n of nodes) ec2.addInstance({ id: n.id, zone: "us-east-1a", tags: { Role: n.name, Environment: "staging" } });
  if (root) ec2.addVolume({ id: "vol-0d0000000000000001", zone: "us-east-1a", sizeMiB: 64, tags: { Name: volTag } });
  pool.forEach((id, i) => ec2.addAddress({ allocationId: id, publicIp: `198.51.100.${10 + i}` }));
  console.log(`ec2:  ${ec2.url}  (volume tagged Name=${volTag}${root ? "" : ": skipped, not root"}; addresses ${pool.join(", ")})`);

  // 3. one IMDS per node and one agent per node, each with its own state dir
  for (const [i, n] of nodes.entries()) {
    if (n.name === "db" && !root) { console.log("db:   skipped: attaching a volume needs root (loop devices)"); continue; }
    const imds = await startImds({ instanceId: n.id, region: "us-east-1", zone: "us-east-1a", tags: { Role: n.name, Environment: "staging" } });
    cleanups.push(() => imds.stop());
    const state = join(dir, "nodes", n.name);
    mkdirSync(state, { recursive: true });
    const config = join(dir, "nodes", `${n.name}.yaml`);
    writeFileSync(config, [
      `repo: ${git.url}/ops.git`, "branch: main", `stateDir: ${state}`, "identity: imds",
      `imds: { endpoint: "${imds.url}", timeout: 2s }`, `aws: { endpoint: "${ec2.url}" }`,
      `devices: { byIdDir: ${join(dir, "by-id")} }`, `control: { metrics: "127.0.0.1:${19464 + i}" }`, "",
    ].join("\n"));
    agents.push({ name: n.name, config, state, proc: null, imds });
  }
  for (const a of agents) start(a);
  console.log(`nodes: ${agents.map((a) => a.name).join(", ")}: each runs \`dist/agent run --config ${join(dir, "nodes", "<node>.yaml")}\``);

  say("Waiting for the nodes to converge on the first release");
  await converged(first);
  await show("web");
  console.log(await curl("http://127.0.0.1:8080/"));

  say("Deploy: change the app, pin the new commit in manifests/staging.yaml, merge");
  const server = readFileSync(join(repo.work, "app/server.ts"), "utf8");
  const v2 = await repo.commit({ "app/server.ts": server.replace("sample app\\n", "sample app, second release\\n") }, "app: say which release this is");
  await pin(v2, `staging: deploy ${v2.slice(0, 7)}`);
  const pidsBefore = pids();
  const traffic = keepAliveLoad("http://127.0.0.1:8080/");
  for (const a of agents) await agent(a, ["sync"]);
  await converged(v2);
  const served = await traffic.stop();
  const pidsAfter = pids();
  for (const a of agents) console.log(`${a.name.padEnd(7)} pid ${pidsBefore[a.name]} -> ${pidsAfter[a.name]} (restarted in place, no reboot)`);
  console.log(`web     ${served.ok + served.failed} requests to :8080 through the front during the deploy, ${served.failed} failed` +
    `${served.failed ? ` (first: ${served.firstError})` : ""}; answered by ${served.releases.map((r) => r.slice(0, 12)).join(" then ")}`);
  if (served.failed) throw new Error(`${served.failed} requests failed through the front during the deploy; the web node's log is ${dir}/nodes/web.log`);
  await show("web");
  console.log(await curl("http://127.0.0.1:8080/"));

  say("A broken release: the worker crashes on start; the nodes roll back by themselves");
  const bad = await repo.commit({ "app/worker.ts": `console.error("worker: cannot start: missing configuration"); process.exit(1);\n` }, "worker: a broken change");
  await pin(bad, `staging: deploy ${bad.slice(0, 7)} (broken)`);
  for (const a of agents) await agent(a, ["sync"]);
  await until("the worker node to roll back", () => status(agents.find((a) => a.name === "worker")!)?.badCommits?.includes(bad));
  await converged(bad, ["web", "db"]);
  await show("worker");
  console.log((await agent(agents.find((a) => a.name === "worker")!, ["history"])).stdout);

  say("Roll forward: revert the breakage and pin the fix");
  const fixed = await repo.commit({ "app/worker.ts": files["app/worker.ts"]! }, "worker: revert the broken change");
  await pin(fixed, `staging: deploy ${fixed.slice(0, 7)}`);
  for (const a of agents) await agent(a, ["sync"]);
  await converged(fixed);
  await show("db");
  say("Done: every node runs " + fixed.slice(0, 12));
}

function start(a: (typeof agents)[number]) {
  const log = Bun.file(join(dir, "nodes", `${a.name}.log`));
  a.proc = Bun.spawn([AGENT, "run", "--config", a.config], {
    env: { ...process.env, NO_COLOR: "1" },           // no bun needed on PATH: the agent carries one
    stdout: log, stderr: log,
  });
}

async function agent(a: (typeof agents)[number], args: string[]) {
  const p = Bun.spawn([AGENT, ...args, "--config", a.config], { env: { ...process.env, NO_COLOR: tty ? "" : "1" }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code: await p.exited, stdout, stderr };
}

function status(a: (typeof agents)[number]): any {
  try { return JSON.parse(readFileSync(join(a.state, "status.json"), "utf8")); } catch { return null; }
}

function pids(): Record<string, string> {
  return Object.fromEntries(agents.map((a) => [a.name, (status(a)?.processes ?? []).map((p: any) => p.pid).join(",")]));
}

async function until(what: string, ok: () => boolean, ms = 120_000) {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) {
      for (const a of agents) console.log(`--- ${a.name}\n${(await agent(a, ["status"])).stdout}`);
      throw new Error(`timed out waiting for ${what}; node logs are in ${dir}/nodes`);
    }
    await Bun.sleep(250);
  }
}

async function converged(commit: string, names = agents.map((a) => a.name)) {
  const started = Date.now();
  await until(`${names.join(", ")} to converge on ${commit.slice(0, 12)}`, () => names.every((n) => {
    const s = status(agents.find((a) => a.name === n)!);
    return s?.phase === "converged" && s.current.commit === commit;
  }));
  console.log(`${names.join(", ")}: converged on ${commit.slice(0, 12)} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
}

async function show(name: string) {
  const a = agents.find((x) => x.name === name);
  if (!a) return;
  console.log(`\n$ agent status    # on the ${name} node`);
  console.log((await agent(a, ["status"])).stdout.trimEnd());
}

/** Four clients sending requests back to back on kept connections until stop(); what answered. */
function keepAliveLoad(url: string) {
  let running = true, ok = 0, failed = 0, firstError = "";
  const releases: string[] = [];
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      try {
        const r = await fetch(url);
        const text = await r.text();
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        ok++;
        const rel = /release: (\w+)/.exec(text)?.[1];
        if (rel && releases[releases.length - 1] !== rel) releases.push(rel);
      } catch (e) { failed++; firstError ||= (e as Error).message; }
    }
  });
  return { stop: async () => { running = false; await Promise.all(loops); return { ok, failed, firstError, releases }; } };
}

async function curl(url: string) {
  try { return `$ curl ${url}\n${(await (await fetch(url)).text()).trimEnd()}`; } catch (e) { return `$ curl ${url}\n(${(e as Error).message})`; }
}

async function stop() {
  say("Stopping: agents (SIGTERM), then the applications they leave running, then the stand-ins");
  for (const a of agents) { a.proc?.kill("SIGTERM"); await a.proc?.exited; }
  // each left-running process group: the applications, and the web node's front (it owns :8080
  // and outlives its agent by design); each is the leader of its own group
  const groups = agents.flatMap((a) => {
    const st = JSON.parse(readFileSync(join(a.state, "state.json"), "utf8"));
    return [...(st.processes ?? []).map((p: { pgid: number }) => p.pgid), ...(st.front?.pid ? [st.front.pid] : [])];
  });
  const signal = (sig: NodeJS.Signals) => { for (const g of groups) { try { process.kill(-g, sig); } catch {} } };
  signal("SIGTERM");
  await Bun.sleep(500);
  signal("SIGKILL");
  if (root) Bun.spawnSync(["umount", "/data"]);       // the db role's volume, mounted by the agent
  for (const c of cleanups.reverse()) await c();
  if (!keep) rmSync(dir, { recursive: true, force: true });
  else console.log(`kept: ${dir}`);
}

let code = 0;
try { await main(); } catch (e) { console.error(`demo failed: ${(e as Error).message}`); code = 1; }
finally { await stop(); }
process.exit(code);
