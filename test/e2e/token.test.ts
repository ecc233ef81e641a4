// The git token on the compiled binary: read from auth.tokenFile for every fetch, so a rotated
// token works without a restart, and a missing file is an error of the tick (SourceAuthFailed
// naming the path) while the daemon keeps running and keeps supervising.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { startGitServer, type GitServer } from "../servers/git.ts";
import { AGENT, alive, daemonStatus, makeKit, untilStatus, type Kit } from "./kit.ts";

let k: Kit, authed: GitServer, tokenFile: string;
let daemon: Subprocess | null = null;

const status = () => daemonStatus(k);
const until = (what: string, ok: (s: any) => boolean, ms?: number) => untilStatus(k, what, ok, { ms, check: () => {
  if (daemon?.exitCode !== null && daemon?.exitCode !== undefined) throw new Error(`agent run exited ${daemon.exitCode} while waiting for ${what}`);
} });
const web = (s: any) => s.processes.find((p: any) => p.name === "web");

beforeAll(async () => {
  k = await makeKit("token");
  // the same repositories behind a server that wants a token; the node's config points there
  authed = await startGitServer({ root: join(k.dir, "git"), token: "token-one-5f2a" });
  tokenFile = join(k.dir, "git-token");
  const config = readFileSync(k.config, "utf8").replace(/^repo: .*$/m, `repo: ${authed.url}/ops.git`);
  writeFileSync(k.config, `${config}auth: { tokenFile: ${tokenFile} }\n`);
});
afterAll(async () => {
  if (daemon) { daemon.kill("SIGKILL"); await daemon.exited; }
  await authed?.stop();
  await k?.stop();
});

test("a token file missing at boot: `agent run` stays up, the tick fails naming the file, processes keep running", async () => {
  writeFileSync(tokenFile, "token-one-5f2a\n", { mode: 0o600 });
  const v1 = await k.release({ VERSION: "v1\n" }, "v1");
  const once = await k.agent(["once"]);
  expect(once.code).toBe(0);
  const pid = web(k.status()).pid;
  expect(alive(pid)).toBe(true);

  rmSync(tokenFile);
  daemon = Bun.spawn([AGENT, "run"], { env: { ...process.env, AGENT_CONFIG: k.config }, stdout: "ignore", stderr: "pipe" });
  const s = await until("a tick that failed on the token", (s) => s.lastTick?.ok === false);
  expect(s.lastTick.error).toContain(tokenFile);
  expect(s.lastTick.reason).toBe("SourceAuthFailed");
  expect(s.current.commit).toBe(v1);
  expect(web(s)).toMatchObject({ pid, state: "running" });
  expect(daemon.exitCode).toBeNull();
  expect(alive(pid)).toBe(true);
});

test("a token rotated on the server and in the file is used at the next fetch, with no restart", async () => {
  authed.token = "token-two-9c1d";
  writeFileSync(tokenFile, "token-two-9c1d\n", { mode: 0o600 });
  const v2 = await k.release({ VERSION: "v2\n" }, "v2");
  expect((await k.agent(["sync"])).code).toBe(0);
  const s = await until("v2 converged on the rotated token", (s) => s.phase === "converged" && s.current.commit === v2);
  expect(s.lastTick.ok).toBe(true);
  expect(daemon!.exitCode).toBeNull();
  const text = JSON.stringify(s);
  expect(text).not.toContain("token-one-5f2a");
  expect(text).not.toContain("token-two-9c1d");
});
