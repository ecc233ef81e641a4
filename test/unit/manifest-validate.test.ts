// Rules between files of one checkout: roles exist, volumes are bound, address pools are there.
import { describe, expect, test } from "bun:test";
import { formatProblem } from "../../agent/manifest/parse.ts";
import { validateRepo, type RepoFile } from "../../agent/manifest/validate.ts";

const C = "9fceb02d0ae598e95dc970b74767f19372d61af8";
const WEB = "address: true\nprocesses:\n  web: { run: bun app/server.ts }\n";
const DB = "volumes:\n  data: { mount: /data }\nprocesses:\n  db: { run: bun app/db.ts }\n";
const WORKER = "processes:\n  worker: { run: bun app/worker.ts }\n";
const ROLES: RepoFile[] = [
  { path: "roles/web.yaml", text: WEB },
  { path: "roles/db.yaml", text: DB },
  { path: "roles/worker.yaml", text: WORKER },
];
const manifest = (roles: string): RepoFile => ({ path: "manifests/production.yaml", text: `commit: ${C}\nroles:\n${roles}` });
const lines = (files: RepoFile[]) => validateRepo(files).map(formatProblem);

const CASES: [string, RepoFile[], string[]][] = [
  ["a consistent checkout", [...ROLES, manifest("  web: { addresses: [eipalloc-0a1b2c3d] }\n  db:\n    volumes: { data: { id: vol-0123456789abcdef0 } }\n  worker: {}\n")], []],
  ["a role with no file, with a suggestion", [...ROLES, manifest("  wbe: {}\n")],
    ["manifests/production.yaml:3:3: roles.wbe: role 'wbe' has no file roles/wbe.yaml; did you mean 'web'?"]],
  ["a declared volume left unbound (no volumes: at all)", [...ROLES, manifest("  db: {}\n")],
    ["manifests/production.yaml:3:3: roles.db.volumes.data: role 'db' declares volume 'data' (roles/db.yaml) but this environment does not bind it: add volumes: { data: { id: vol-... } } or { data: { tag: { Name: ... } } } under roles.db"]],
  ["a bound volume the role does not declare", [...ROLES, manifest("  db:\n    volumes:\n      data: { id: vol-0123456789abcdef0 }\n      dta: { tag: { Name: x } }\n")],
    ["manifests/production.yaml:6:7: roles.db.volumes.dta: role 'db' declares no volume 'dta' in roles/db.yaml; did you mean 'data'?"]],
  ["a volume bound for a role without volumes", [...ROLES, manifest("  worker:\n    volumes: { scratch: { id: vol-0123456789abcdef0 } }\n")],
    ["manifests/production.yaml:4:16: roles.worker.volumes.scratch: role 'worker' declares no volume 'scratch' in roles/worker.yaml; it declares no volumes"]],
  ["address: true without a pool", [...ROLES, manifest("  web: { env: { A: b } }\n")],
    ["manifests/production.yaml:3:3: roles.web.addresses: role 'web' takes an Elastic IP (address: true in roles/web.yaml) but this environment has no pool: add addresses: [eipalloc-...] under roles.web"]],
  ["address: true with an empty pool", [...ROLES, manifest("  web:\n    addresses: []\n")],
    ["manifests/production.yaml:4:5: roles.web.addresses: role 'web' takes an Elastic IP (address: true in roles/web.yaml) but this environment has no pool: add addresses: [eipalloc-...] under roles.web"]],
  ["a pool for a role that takes no address", [...ROLES, manifest("  worker:\n    addresses: [eipalloc-0a1b2c3d]\n")],
    ["manifests/production.yaml:4:5: roles.worker.addresses: role 'worker' does not take an Elastic IP: set address: true in roles/worker.yaml, or remove these addresses"]],
  ["an invalid environment name", [...ROLES, { path: "manifests/Prod.yaml", text: `commit: ${C}\n` }],
    ["manifests/Prod.yaml: 'Prod' is not a valid environment name (the file name is the environment's name): use lowercase letters, digits and '-', starting with a letter, at most 63 characters"]],
  ["an invalid role file name", [{ path: "roles/web_server.yaml", text: WEB }],
    ["roles/web_server.yaml: 'web_server' is not a valid role name (the file name is the role's name): use lowercase letters, digits and '-', starting with a letter, at most 63 characters"]],
  [".yml is not read by the agent", [{ path: "roles/web.yml", text: WEB }],
    ["roles/web.yml: the agent reads only roles/<role>.yaml: rename this file to roles/web.yaml"]],
  ["a broken role is reported once, and does not hide the binding checks of others", [
    { path: "roles/db.yaml", text: "volumes: { data: { mount: data } }\n" }, { path: "roles/web.yaml", text: WEB }, manifest("  db: {}\n  web: {}\n")], [
    "manifests/production.yaml:4:3: roles.web.addresses: role 'web' takes an Elastic IP (address: true in roles/web.yaml) but this environment has no pool: add addresses: [eipalloc-...] under roles.web",
    'roles/db.yaml:1:27: volumes.data.mount: must be an absolute path (got "data")']],
  ["two processes fronting one port", [{ path: "roles/web.yaml", text: "processes:\n  a: { run: x, http: { port: 8080 } }\n  b: { run: y, http: { port: 8080 } }\n" }],
    ["roles/web.yaml:3:30: processes.b.http.port: port 8080 is already fronted for process 'a': give each process its own port (instances: N for copies)"]],
  ["copies of a fronted process share its public port, each on a loopback port of its own", [{ path: "roles/web.yaml", text:
    "processes:\n  a: { run: x, http: { port: 8080 }, instances: 2 }\n  b: { run: y, http: { port: 8081 }, instances: 3 }\n  c: { run: z, http: { port: 65535 }, instances: 2 }\n" }], []],
  ["copies of a process with a fixed PORT in its env", [{ path: "roles/web.yaml", text: "processes:\n  a: { run: x, env: { PORT: 8080 }, instances: 2 }\n  b: { run: y, env: { PORT: 9000 } }\n" }],
    ["roles/web.yaml:2:48: processes.a.instances: 2 copies would all get PORT=8080 from env and only one can bind it: use instances: 1, or remove PORT from env (each copy then gets its own $PORT when it has an HTTP check)"]],
  ["a bake shorter than a process's health deadline", [{ path: "roles/web.yaml", text: "processes:\n  web: { run: x, health: { http: /up, deadline: 90s } }\n" },
    { path: "manifests/production.yaml", text: `commit: ${C}\nrollout:\n  waves: [1, 100%]\n  bake: 30s\n` }],
    ["manifests/production.yaml:4:9: rollout.bake: bake 30s is shorter than the health deadline 90s of process 'web' of roles/web.yaml: the next wave would start before that health check can fail; use bake: 90s or more"]],
  ["the default bake (2m) against a longer health deadline, pointed at rollout", [{ path: "roles/web.yaml", text: "processes:\n  web: { run: x, health: { tcp: 9000, deadline: 5m } }\n" },
    { path: "manifests/production.yaml", text: `commit: ${C}\nrollout: { waves: [1, 100%] }\n` }],
    ["manifests/production.yaml:2:1: rollout.bake: bake 2m is shorter than the health deadline 5m of process 'web' of roles/web.yaml: the next wave would start before that health check can fail; use bake: 5m or more"]],
  ["a bake as long as the health deadline, or no rollout at all, is fine", [{ path: "roles/web.yaml", text: "processes:\n  web: { run: x, health: { http: /up, deadline: 2m } }\n" },
    { path: "manifests/production.yaml", text: `commit: ${C}\nrollout: { waves: [1, 100%] }\n` }, { path: "manifests/staging.yaml", text: `commit: ${C}\n` }], []],
  ["waves that do not increase, and a wave after 100%", [{ path: "manifests/production.yaml", text: `commit: ${C}\nrollout:\n  waves: [2, 2, 50%, 25%, 100%, 5]\n` }], [
    "manifests/production.yaml:3:14: rollout.waves.1: waves are cumulative and must increase: 2 is not larger than the 2 before it (got the number 2)",
    'manifests/production.yaml:3:22: rollout.waves.3: waves are cumulative and must increase: "25%" is not larger than the 50% before it',
    "manifests/production.yaml:3:33: rollout.waves.5: a wave after 100% never starts (100% is every node): remove 5 or lower the wave before it (got the number 5)"]],
  ["files elsewhere are ignored", [{ path: "README.md", text: "\0" }, { path: "app/x.yaml", text: "- broken: [" }], []],
];

describe("validateRepo", () => {
  for (const [name, files, want] of CASES) test(name, () => expect(lines(files)).toEqual(want));
  test("problems come sorted by file, then position", () => {
    const out = validateRepo([
      { path: "roles/z.yaml", text: "processes: [a]\n" },
      { path: "manifests/a.yaml", text: "commit: x\npoll: y\n" },
    ]);
    expect(out.map((p) => `${p.file}:${p.line}`)).toEqual(["manifests/a.yaml:1", "manifests/a.yaml:2", "roles/z.yaml:1"]);
  });
});

describe("validateRepo warnings", () => {
  test("a setup step with inputs but no outputs is valid, with a warning that it cannot be reused", () => {
    const warnings: Parameters<typeof validateRepo>[1] = [];
    const role = "setup:\n  - run: npm install\n    inputs: [package.json]\n  - run: bun install\n    inputs: [bun.lock]\n    outputs: [node_modules]\nprocesses:\n  web: { run: x }\n";
    expect(validateRepo([{ path: "roles/web.yaml", text: role }], warnings)).toEqual([]);
    expect(warnings!.map(formatProblem)).toEqual([
      "roles/web.yaml:3:5: setup.0.inputs: warning: a step with inputs but no outputs cannot be reused (nothing to carry into the next release), so it runs in every release: list what it makes under outputs: (node_modules)",
    ]);
  });
});
