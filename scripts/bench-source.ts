// Benchmark of the source: first release (fetch + checkout), an incremental release (one file
// changed) and an idle poll, each beside the git CLI doing the same work, on a generated repo of
// ~2,000 files. Each operation runs in its own `agent _source` child (the daemon's git child, from
// a compiled binary: requests on its stdin) under /usr/bin/time for peak RSS. Several binaries
// (`--agent old=/path/agent --agent new=dist/agent`) run side by side, interleaved in each run.
// Then the cost of a poll and a fetch against the number of refs the server advertises (pull
// request refs and tags), beside `git ls-remote` and `git fetch` of the same repository.
//   bun scripts/bench-source.ts [--files 2000] [--runs 3] [--refs 0,1000,10000] [--agent [name=]path ...]
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

const AGENTS = (() => {
  const out: { name: string; path: string }[] = [];
  process.argv.forEach((a, i) => {
    if (a !== "--agent") return;
    const v = process.argv[i + 1]!, eq = v.indexOf("=");
    out.push(eq > 0 ? { name: v.slice(0, eq), path: v.slice(eq + 1) } : { name: "agent", path: v });
  });
  return out.length ? out : [{ name: "agent", path: "dist/agent" }];
})();

const arg = (n: string, d: number) => { const i = process.argv.indexOf(n); return i > 0 ? Number(process.argv[i + 1]) : d; };
const FILES = arg("--files", 2000), RUNS = arg("--runs", 3);
const REFS = (() => { const i = process.argv.indexOf("--refs"); return (i > 0 ? process.argv[i + 1]! : "0,1000,10000").split(",").map(Number); })();
const { startGitServer } = await import("../test/servers/git.ts");
const { makeRepo, addManyRefs } = await import("../test/fixtures/repo.ts");

const dir = mkdtempSync(join(tmpdir(), "bench-source-"));
try {
  const files: Record<string, string> = {};
  for (let i = 0; i < FILES; i++) files[`src/m${Math.floor(i / 100)}/f${i}.ts`] = `export const v${i} = ${JSON.stringify(randomBytes(3000).toString("base64"))};\n` + "// padding line\n".repeat(200);
  const repo = await makeRepo(join(dir, "srv"), "app", files);
  const server = await startGitServer({ root: join(dir, "srv") });
  const url = `${server.url}/app.git`;
  const packBytes = Number(Bun.spawnSync(["git", "-C", repo.bare, "count-objects", "-v"]).stdout.toString().match(/size-pack: (\d+)/)?.[1] ?? 0) * 1024;

  // argv under /usr/bin/time; `requests`: lines for its stdin (then closed), each answered ok.
  const timed = async (argv: string[], requests: unknown[] = []) => {
    const n = server.requests.length;
    const t0 = performance.now();
    const p = Bun.spawn(["/usr/bin/time", "-f", "RSSKB=%M", ...argv], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...process.env, BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" } });
    p.stdin.write(requests.map((r) => JSON.stringify(r) + "\n").join(""));
    await p.stdin.end();
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    const ms = performance.now() - t0;
    if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err}`);
    for (const line of requests.length ? out.split("\n").filter(Boolean) : []) {
      const a = JSON.parse(line) as { ok: boolean; value?: unknown; error?: { message: string } };
      if (!a.ok) throw new Error(`${argv.join(" ")}: ${a.error!.message}`);
    }
    const reqs = server.requests.slice(n);
    return { ms, rssMB: Number(/RSSKB=(\d+)/.exec(err)?.[1] ?? 0) / 1024, requests: reqs.length, bytes: reqs.reduce((a, r) => a + r.bytesOut, 0) };
  };
  const sh = (script: string) => ["sh", "-ec", script];
  type R = Awaited<ReturnType<typeof timed>>;
  const ops = ["first", "incremental", "idle"] as const;
  const rows = Object.fromEntries(ops.map((o) => [o, { git: [] as R[], ...Object.fromEntries(AGENTS.map((a) => [a.name, [] as R[]])) }])) as Record<string, Record<string, R[]>>;
  // One `agent _source` session: poll (and fetch), then ensure and check out `commit` (not for idle).
  const source = (bin: string, op: string, st: string, commit: string, lastTip: string | null) => {
    const options = { gitdir: join(st, "repo"), url, branch: "main", timeoutMs: 30_000, allowForcePush: false };
    const reqs: unknown[] = [{ options }, { id: 1, method: "poll", args: [lastTip] }];
    if (op !== "idle") reqs.push({ id: 2, method: "ensureCommit", args: [commit] }, { id: 3, method: "checkout", args: [commit, st, {}] });
    return timed([bin, "_source"], reqs);
  };
  for (let r = 0; r < RUNS; r++) {
    const g = join(dir, `git-${r}`);
    mkdirSync(g);
    const st = (a: string) => join(dir, `${a}-${r}`);
    const c1 = repo.head;
    for (const a of AGENTS) rows.first![a.name]!.push(await source(a.path, "first", st(a.name), c1, null));
    rows.first!.git!.push(await timed(sh(`git init -q --bare ${g}/repo.git && cd ${g}/repo.git && git fetch -q --depth 1 ${url} ${c1} && git update-ref refs/heads/main ${c1} && mkdir ${g}/r1 && git --work-tree=${g}/r1 checkout -q -f ${c1} -- .`)));
    const c2 = await repo.commit({ [`src/m0/f0.ts`]: `export const changed = ${r};\n` }, `change ${r}`);
    for (const a of AGENTS) rows.incremental![a.name]!.push(await source(a.path, "incremental", st(a.name), c2, c1));
    rows.incremental!.git!.push(await timed(sh(`cd ${g}/repo.git && git fetch -q ${url} ${c2} && mkdir ${g}/r2 && git --work-tree=${g}/r2 checkout -q -f ${c2} -- .`)));
    for (const a of AGENTS) rows.idle![a.name]!.push(await source(a.path, "idle", st(a.name), c2, c2));
    rows.idle!.git!.push(await timed(["git", "ls-remote", url, "refs/heads/main"]));
  }
  await server.stop();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const fmtB = (b: number) => b > 1e6 ? `${(b / 1e6).toFixed(2)} MB` : b > 1e3 ? `${(b / 1e3).toFixed(1)} KB` : `${b} B`;
  console.log(`repo: ${FILES} files, pack ${fmtB(packBytes)}; ${RUNS} runs, medians (min-max); agent = \`agent _source\` of ${AGENTS.map((a) => `${a.name} (${a.path})`).join(", ")}, a child process incl. its start-up; git = git CLI ${(await repo.git("--version")).replace("git version ", "")}`);
  console.log("| operation | binary | agent wall | agent peak RSS | git wall | git peak RSS | wall ratio | requests (agent/git) | bytes on the wire (agent/git) |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  const range = (xs: number[], unit: string) => `${med(xs).toFixed(0)} ${unit} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
  for (const [name, row] of Object.entries(rows)) {
    const git = row.git!;
    for (const a of AGENTS) {
      const agent = row[a.name]!;
      const aw = med(agent.map((x) => x.ms)), gw = med(git.map((x) => x.ms));
      const ratios = agent.map((x, i) => x.ms / git[i]!.ms);
      console.log(`| ${name} | ${a.name} | ${range(agent.map((x) => x.ms), "ms")} | ${range(agent.map((x) => x.rssMB), "MB")} | ${gw.toFixed(0)} ms | ${med(git.map((x) => x.rssMB)).toFixed(0)} MB | ${(aw / gw).toFixed(1)}× (${Math.min(...ratios).toFixed(1)}-${Math.max(...ratios).toFixed(1)}) | ${med(agent.map((x) => x.requests))}/${med(git.map((x) => x.requests))} | ${fmtB(med(agent.map((x) => x.bytes)))}/${fmtB(med(git.map((x) => x.bytes)))} |`);
    }
  }
  for (const a of AGENTS) {
    const startup = await timed([a.path, "_source"]);
    console.log(`\n${a.name}: \`agent _source\` start-up alone (stdin closed at once): ${startup.ms.toFixed(0)} ms, ${startup.rssMB.toFixed(0)} MB`);
  }
  await refsTable(dir, fmtB);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Bytes and requests per idle poll and per fetch after the tip moved, against the refs the server
 * advertises, in-process (no start-up). Same run: git ls-remote and git fetch into a clone.
 */
async function refsTable(dir: string, fmtB: (b: number) => string) {
  const { Source } = await import("../agent/source/source.ts");
  const { createLogger } = await import("../agent/core/log.ts");
  console.log("\n| refs on the server | agent idle poll: requests, bytes | git ls-remote refs/heads/main | agent first fetch | agent fetch after the tip moved | git fetch after the tip moved |");
  console.log("|---|---|---|---|---|---|");
  for (const count of REFS) {
    const root = join(dir, `refs-${count}`);
    const repo = await makeRepo(root, "ops", { "manifests/production.yaml": "commit: 0\n", "app/main.ts": "console.log(0)\n" });
    addManyRefs(repo.bare, count, repo.head);
    const server = await startGitServer({ root });
    const url = `${server.url}/ops.git`;
    const measure = async (fn: () => Promise<unknown>) => {
      const n = server.requests.length;
      await fn();
      const reqs = server.requests.slice(n);
      return { requests: reqs.length, bytes: reqs.reduce((a, r) => a + r.bytesOut, 0) };
    };
    const cmd = async (argv: string[]) => { const p = Bun.spawn(argv, { stdout: "ignore", stderr: "ignore" }); if (await p.exited !== 0) throw new Error(`${argv.join(" ")} failed`); };
    const src = new Source({ gitdir: join(root, "agent", "repo"), url, branch: "main", timeoutMs: 30_000, log: createLogger("bench", { level: "error" }), allowForcePush: false });
    const first = await measure(() => src.poll(null));
    const idle = await measure(() => src.poll(repo.head));
    const lsRemote = await measure(() => cmd(["git", "ls-remote", url, "refs/heads/main"]));
    const clone = join(root, "clone.git");
    await cmd(["git", "clone", "-q", "--bare", url, clone]);
    const from = repo.head;
    await repo.commit({ "app/main.ts": "console.log(1)\n" }, "move");
    const moved = await measure(() => src.poll(from));
    const gitFetch = await measure(() => cmd(["git", "-C", clone, "fetch", "-q", url, "main"]));
    await server.stop();
    const f = (m: { requests: number; bytes: number }) => `${m.requests}, ${fmtB(m.bytes)}`;
    console.log(`| ${count.toLocaleString("en")} | ${f(idle)} | ${f(lsRemote)} | ${f(first)} | ${f(moved)} | ${f(gitFetch)} |`);
  }
}
