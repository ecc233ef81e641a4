// Crash safety: a driver process (fetch -> checkout -> setup) is SIGKILLed mid-fetch, mid-checkout
// and mid-setup; the next run recovers without manual cleanup and never takes a half-prepared
// release for a ready one.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { layout } from "../../agent/state/layout.ts";
import { readRelease } from "../../agent/state/releases.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { startGitServer, type GitServer } from "../servers/git.ts";

let dir: string, server: GitServer, repo: TestRepo, driver: string;
const BUN = process.execPath;
const AGENT = resolve(import.meta.dir, "../../agent");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crash-"));
  const files: Record<string, string> = {};
  for (let i = 0; i < 400; i++) files[`src/f${i}.txt`] = randomBytes(6000).toString("base64");
  repo = await makeRepo(join(dir, "srv"), "app", files);
  server = await startGitServer({ root: join(dir, "srv") });
  driver = join(dir, "driver.ts");
  writeFileSync(driver, `
import { Source } from ${JSON.stringify(join(AGENT, "source/source.ts"))};
import { prepareRelease } from ${JSON.stringify(join(AGENT, "source/prepare.ts"))};
import { MemoryPackages } from ${JSON.stringify(join(AGENT, "host/packages.ts"))};
import { parseRole } from ${JSON.stringify(join(AGENT, "manifest/parse.ts"))};
import { layout } from ${JSON.stringify(join(AGENT, "state/layout.ts"))};
import { removePartials } from ${JSON.stringify(join(AGENT, "state/releases.ts"))};
import { createLogger } from ${JSON.stringify(join(AGENT, "core/log.ts"))};
const [stateDir, url, commit, roleYaml] = process.argv.slice(2);
const l = layout(stateDir!);
const log = createLogger("driver", { json: true });
removePartials(l);
const src = new Source({ gitdir: l.repo, url: url!, branch: "main", timeoutMs: 10000, log, allowForcePush: false });
await src.poll(null);
await src.ensureCommit(commit!);
await src.checkout(commit!, l);
const role = parseRole(roleYaml!, "roles/web.yaml");
if (!role.ok) throw new Error("bad role");
const rec = await prepareRelease({ layout: l, commit: commit!, role: role.value, previous: null, packages: new MemoryPackages(), users: { ensure: async () => process.getuid?.() === 0 ? { name: "root", uid: 0, gid: 0 } : null }, log });
console.log(rec.state);
`);
});
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });

function run(state: string, role: string) {
  return Bun.spawn([BUN, driver, state, `${server.url}/app.git`, repo.head, role], { stdout: "pipe", stderr: "pipe" });
}

async function killWhen(state: string, role: string, cond: () => boolean): Promise<void> {
  const p = run(state, role);
  while (!cond()) {
    if (p.exitCode !== null) throw new Error(`driver finished before the kill point: ${await new Response(p.stderr).text()}`);
    await Bun.sleep(2);
  }
  p.kill("SIGKILL");
  await p.exited;
}

async function finish(state: string, role: string): Promise<string> {
  const p = run(state, role);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`driver exited ${code}: ${err}`);
  return out.trim();
}

const partials = (state: string) => existsSync(join(state, "releases")) ? readdirSync(join(state, "releases")).filter((n) => n.includes(".partial-")) : [];
const ROLE = "setup:\n  - run: sh -c 'echo ran >> setup-ran.txt'\n";

test("killed mid-fetch: the next run repairs the store and completes", async () => {
  const state = join(dir, "s-fetch");
  const packDir = join(state, "repo", "objects", "pack");
  await killWhen(state, ROLE, () => existsSync(packDir) && readdirSync(packDir).length > 0);
  expect(await finish(state, ROLE)).toBe("ready");
  expect(readFileSync(join(state, "releases", repo.head, "src/f7.txt"), "utf8").length).toBe(8000);
});

test("killed mid-checkout: no release dir appears, the partial is removed, the next run completes", async () => {
  const state = join(dir, "s-checkout");
  await finish(state, "setup: []\n");   // warm the store so the kill lands in checkout
  rmSync(join(state, "releases"), { recursive: true, force: true });
  await killWhen(state, ROLE, () => partials(state).length > 0 && readdirSync(join(state, "releases", partials(state)[0]!)).length > 0);
  expect(existsSync(join(state, "releases", repo.head))).toBe(false);
  expect(partials(state).length).toBe(1);
  expect(await finish(state, ROLE)).toBe("ready");
  expect(partials(state)).toEqual([]);
  expect(readdirSync(join(state, "releases", repo.head, "src")).length).toBe(400);
});

test("killed mid-setup: the half-prepared release is never ready and is re-prepared from scratch", async () => {
  const state = join(dir, "s-setup");
  const l = layout(state);
  const pidFile = join(dir, "setup.pid");
  const role = `setup:\n  - run: sh -c 'echo ran >> setup-ran.txt; echo $$ > ${pidFile}; exec sleep 30'\n    timeout: 60s\n`;
  try {
    await killWhen(state, role, () => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n"));
    expect(readRelease(l, repo.head)?.state).toBe("preparing");
  } finally {
    try { process.kill(-Number(readFileSync(pidFile, "utf8")), "SIGKILL"); } catch {}
  }
  expect(await finish(state, ROLE)).toBe("ready");
  expect(readRelease(l, repo.head)?.state).toBe("ready");
  // re-checked out from scratch: the killed run's file is gone, the new run's step ran once
  expect(readFileSync(join(l.release(repo.head), "setup-ran.txt"), "utf8")).toBe("ran\n");
});
