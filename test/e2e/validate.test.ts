// `agent validate` and `agent schema` as a CI job runs them: a real process, real files, exit codes.
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const tmp = mkdtempSync(join(tmpdir(), "agent-validate-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function agent(args: string[], cwd = ROOT) {
  const p = Bun.spawn([BUN, join(ROOT, "agent/main.ts"), ...args], { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

function copyOfRepo(name: string): string {
  const dir = join(tmp, name);
  cpSync(join(ROOT, "manifests"), join(dir, "manifests"), { recursive: true });
  cpSync(join(ROOT, "roles"), join(dir, "roles"), { recursive: true });
  return dir;
}

describe("agent validate", () => {
  test("the project's own manifests/ and roles/ are valid: exit 0", async () => {
    const r = await agent(["validate"]);
    expect(r.stdout).toBe("5 files, 0 problems\n");
    expect(r.code).toBe(0);
  });

  test("a broken copy: exit 1, one file:line:column line per problem, then the summary", async () => {
    const dir = copyOfRepo("broken");
    const prod = join(dir, "manifests/production.yaml");
    writeFileSync(prod, readFileSync(prod, "utf8").replace(/^commit: .*$/m, "commit: 4af099a").replace("poll: 30s", "poll: 30 seconds"));
    writeFileSync(join(dir, "roles/db.yaml"), readFileSync(join(dir, "roles/db.yaml"), "utf8").replace("  data: {", "  store: {"));
    const r = await agent(["validate", dir]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split("\n");
    const m = (s: string) => `${dir}/manifests/production.yaml:${s}`;
    expect(lines).toEqual([
      m('4:9: commit: must be a full 40-character hex commit id (git rev-parse HEAD) (got "4af099a")'),
      m('5:7: poll: must be a duration like 500ms, 30s, 2m or 1h (got "30 seconds")'),
      `${dir}/manifests/staging.yaml:12:5: roles.db.volumes.store: role 'db' declares volume 'store' (roles/db.yaml) but this environment does not bind it: add volumes: { store: { id: vol-... } } or { store: { tag: { Name: ... } } } under roles.db`,
      `${dir}/manifests/staging.yaml:13:7: roles.db.volumes.data: role 'db' declares no volume 'data' in roles/db.yaml; it declares 'store'`,
      "5 files, 4 problems",
    ]);
  });

  test("an invalid rollout: is refused: waves not increasing, over 100%, empty, a bake shorter than the health deadline", async () => {
    const dir = copyOfRepo("rollout");
    const prod = join(dir, "manifests/production.yaml");
    writeFileSync(prod, readFileSync(prod, "utf8").replace("waves: [1, 50%, 100%]", "waves: [1, 50%, 40%, 150%]"));
    const staging = join(dir, "manifests/staging.yaml");
    writeFileSync(staging, readFileSync(staging, "utf8").replace(/^commit: .*$/m, (l) => `${l}\nrollout: { waves: [1, 100%], bake: 10s }`));
    writeFileSync(join(dir, "manifests/dev.yaml"), "commit: 4af099a4359cd930721057fd7ed98582135e5596\nrollout: { waves: [] }\n");
    const r = await agent(["validate", dir]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split("\n").map((l) => l.replace(`${dir}/`, ""));
    expect(lines.filter((l) => l.includes("rollout"))).toEqual([
      "manifests/dev.yaml:2:19: rollout.waves: needs at least 1 entry",
      'manifests/production.yaml:7:19: rollout.waves.2: waves are cumulative and must increase: "40%" is not larger than the 50% before it',
      'manifests/production.yaml:7:24: rollout.waves.3: must be between 1% and 100% (got "150%")',
      expect.stringMatching(/^manifests\/staging\.yaml:4:\d+: rollout\.bake: bake 10s is shorter than the health deadline 30s of process '(web|db)' of roles\/(web|db)\.yaml: .*use bake: 30s or more$/),
    ]);
  });

  test("--json: files and problems with file, line, column, path, message", async () => {
    const dir = copyOfRepo("json");
    writeFileSync(join(dir, "roles/worker.yaml"), "processes:\n  worker:\n    run: bun app/worker.ts\n    restart: sometimes\n");
    const r = await agent(["validate", "--json", dir]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      files: 5,
      problems: [{ file: `${dir}/roles/worker.yaml`, line: 4, column: 14, path: "processes.worker.restart",
        message: 'must be "always", "on-failure" or "never", got "sometimes"' }],
    });
  });

  test("a setup step with inputs but no outputs: a warning that it cannot be reused, exit 0", async () => {
    const dir = copyOfRepo("warn");
    writeFileSync(join(dir, "roles/worker.yaml"), "setup:\n  - run: npm install\n    inputs: [package.json]\nprocesses:\n  worker: { run: bun app/worker.ts }\n");
    const r = await agent(["validate", dir]);
    expect(r.stdout).toContain(`${dir}/roles/worker.yaml:3:5: setup.0.inputs: warning: a step with inputs but no outputs cannot be reused`);
    expect(r.stdout).toEndWith("5 files, 0 problems, 1 warning\n");
    expect(r.code).toBe(0);
    const j = JSON.parse((await agent(["validate", "--json", dir])).stdout);
    expect(j.warnings.map((w: { path: string }) => w.path)).toEqual(["setup.0.inputs"]);
  });

  test("a 10 MB file and a binary file are refused without parsing", async () => {
    const dir = copyOfRepo("junk");
    writeFileSync(join(dir, "manifests/huge.yaml"), Buffer.alloc(10 * 1024 * 1024, "a"));
    writeFileSync(join(dir, "roles/blob.yaml"), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]));
    const r = await agent(["validate", dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${dir}/manifests/huge.yaml: file is 10.0 MiB, over the 1 MiB limit`);
    expect(r.stdout).toContain(`${dir}/roles/blob.yaml: not a text file (it contains NUL bytes)`);
    expect(r.stdout).toEndWith("7 files, 2 problems\n");
  });

  test("commands the agent could not run are refused at file:line:column: quotes, empty, shell operators; an empty file at 1:1", async () => {
    const dir = copyOfRepo("commands");
    writeFileSync(join(dir, "roles/worker.yaml"), [
      "setup:",
      "  - run: \"bun 'install\"",
      "processes:",
      "  worker:",
      "    run: \"   \"",
      "    user: Worker",
      "    health: { command: 'check \"x' }",
      "  pipe:",
      "    run: bun app/worker.ts | tee out.log",
      "  fine:",
      "    run: sh -c 'bun app/worker.ts | tee out.log'",
      "hooks:",
      "  before_cutover: [\"\", make && make install]",
      "",
    ].join("\n"));
    writeFileSync(join(dir, "roles/db.yaml"), "");
    const r = await agent(["validate", dir]);
    expect(r.code).toBe(1);
    const w = (s: string) => `${dir}/roles/worker.yaml:${s}`;
    expect(r.stdout.trimEnd().split("\n")).toEqual([
      `${dir}/roles/db.yaml:1:1: file is empty: expected a role with at least 'processes:' or 'setup:'`,
      w(`2:10: setup.0.run: has an unterminated ' quote (opened at character 5): close it, or write a literal ' as \\' (got "bun 'install")`),
      w('5:10: processes.worker.run: is empty: write the program to run and its arguments, e.g. bun app/server.ts (got "   ")'),
      w('6:11: processes.worker.user: must be a Unix user name (lowercase, at most 32 characters) (got "Worker")'),
      w(`7:24: processes.worker.health.command: has an unterminated " quote (opened at character 7): close it, or write a literal " as \\" (got "check \\"x")`),
      w("9:10: processes.pipe.run: `bun app/worker.ts | tee out.log` uses a shell pipe (|), but commands run without a shell: " +
        "write sh -c 'bun app/worker.ts | tee out.log' to use one, or quote the | if it is meant as an argument"),
      w("13:20: hooks.before_cutover.0: must not be empty"),
      w("13:24: hooks.before_cutover.1: `make && make install` uses a shell list (&&), but commands run without a shell: " +
        "write sh -c 'make && make install' to use one, or quote the && if it is meant as an argument"),
      "5 files, 8 problems",
    ]);
  });

  test("usage errors exit 2 with a clear message on stderr", async () => {
    const missing = await agent(["validate", join(tmp, "nope")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("is not a directory: pass the root of a checkout that has manifests/ and roles/");
    mkdirSync(join(tmp, "empty"));
    const empty = await agent(["validate", join(tmp, "empty")]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("has neither manifests/ nor roles/");
    expect((await agent(["validate", "a", "b"])).code).toBe(2);
  });

  test("--help shows usage and an example", async () => {
    const r = await agent(["validate", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: agent validate [DIR]");
    expect(r.stdout).toContain("agent validate ");
  });
});

describe("agent schema", () => {
  test("no argument: one JSON object with the three schemas", async () => {
    const r = await agent(["schema"]);
    expect(r.code).toBe(0);
    const all = JSON.parse(r.stdout);
    expect(Object.keys(all)).toEqual(["manifest", "role", "config"]);
    expect(all.manifest.required).toEqual(["commit"]);
  });

  test("one format, and --out writes files an editor can point at", async () => {
    const role = JSON.parse((await agent(["schema", "role"])).stdout);
    expect(role.$id).toBe("role.json");
    const out = join(tmp, "schema");
    expect((await agent(["schema", "--out", out])).code).toBe(0);
    for (const k of ["manifest", "role", "config"]) expect(existsSync(join(out, `${k}.json`))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "role.json"), "utf8"))).toEqual(role);
  });

  test("an unknown format is a usage error", async () => {
    const r = await agent(["schema", "manifests"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown file format 'manifests': expected manifest, role, config");
  });
});
