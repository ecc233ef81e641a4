// The git stand-in against the real git CLI and isomorphic-git: clone, auth, faults, request log.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import git from "isomorphic-git";
import http from "isomorphic-git/http/web";
import { startGitServer, type GitServer } from "../servers/git.ts";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";

let dir: string, server: GitServer, authServer: GitServer, repo: TestRepo;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "git-server-"));
  repo = await makeRepo(join(dir, "srv"), "app", { "README.md": "hello\n", "manifests/production.yaml": "commit: x\n" });
  server = await startGitServer({ root: join(dir, "srv") });
  authServer = await startGitServer({ root: join(dir, "srv"), token: "s3cret" });
});
afterAll(async () => {
  await server.stop(); await authServer.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function gitCli(...args: string[]) {
  const p = Bun.spawn(["git", ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { out, err, code };
}

test("git CLI clones through it and sees the fixture's commits", async () => {
  const second = await repo.commit({ "b.txt": "b\n" }, "second");
  const r = await gitCli("clone", "--quiet", `${server.url}/app.git`, join(dir, "clone"));
  expect(r.code).toBe(0);
  expect(readFileSync(join(dir, "clone", "b.txt"), "utf8")).toBe("b\n");
  const head = await gitCli("-C", join(dir, "clone"), "rev-parse", "HEAD");
  expect(head.out.trim()).toBe(second);
  expect(server.requests.some((q) => q.path.endsWith("/info/refs") && q.status === 200 && q.bytesOut > 0)).toBe(true);
});

test("isomorphic-git lists refs over it", async () => {
  const refs = await git.listServerRefs({ http, url: `${server.url}/app.git`, protocolVersion: 1 });
  expect(refs.find((r) => r.ref === "refs/heads/main")?.oid).toBe(repo.head);
});

test("a token protects it: 401 without, refs with", async () => {
  const url = `${authServer.url}/app.git`;
  await expect(git.listServerRefs({ http, url, protocolVersion: 1 })).rejects.toThrow(/401/);
  await expect(git.listServerRefs({ http, url, protocolVersion: 1, onAuth: () => ({ username: "x", password: "wrong" }) })).rejects.toThrow();
  const refs = await git.listServerRefs({ http, url, protocolVersion: 1, onAuth: () => ({ username: "any", password: "s3cret" }) });
  expect(refs.length).toBeGreaterThan(0);
  expect(authServer.requests.some((q) => q.status === 401)).toBe(true);
});

test("the accepted token can change while it runs (token rotation)", async () => {
  const url = `${authServer.url}/app.git`;
  const as = (password: string) => git.listServerRefs({ http, url, protocolVersion: 1, onAuth: () => ({ username: "x", password }) });
  try {
    authServer.token = "rotated";
    await expect(as("s3cret")).rejects.toThrow(/401/);
    expect((await as("rotated")).length).toBeGreaterThan(0);
  } finally { authServer.token = "s3cret"; }
  expect((await as("s3cret")).length).toBeGreaterThan(0);
});

test("faults: down, fixed status, unknown repo", async () => {
  server.faults.down = true;
  expect((await fetch(`${server.url}/app.git/info/refs?service=git-upload-pack`)).status).toBe(503);
  server.faults.down = false;
  server.faults.status = 500;
  expect((await fetch(`${server.url}/app.git/info/refs?service=git-upload-pack`)).status).toBe(500);
  server.faults.status = null;
  expect((await fetch(`${server.url}/nope.git/info/refs?service=git-upload-pack`)).status).toBe(404);
});

test("standalone: prints its URL and stops on SIGTERM", async () => {
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "../servers/git.ts"), "--port", "0", "--root", join(dir, "srv")], { stdout: "pipe", stderr: "inherit" });
  const reader = p.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) { const { value, done } = await reader.read(); if (done) break; text += new TextDecoder().decode(value); }
  const { url } = JSON.parse(text.split("\n")[0]!);
  const r = await gitCli("ls-remote", `${url}/app.git`);
  expect(r.out).toContain("refs/heads/main");
  p.kill("SIGTERM");
  expect(await p.exited).toBe(0);
});
