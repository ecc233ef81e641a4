// A node without bun: roles still run `bun ...` (setup steps, hooks and processes), on the Bun
// runtime the agent binary carries.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { makeKit, type Kit } from "./kit.ts";

const ROLE = `
setup:
  - run: bun -e "require('fs').writeFileSync('setup-ran', process.versions.bun)"
hooks:
  before_cutover: [bun -e "process.exit(0)"]
processes:
  web:
    run: bun app.ts
    health: { http: /up, interval: 200ms, deadline: 10s }
`;

let k: Kit;
beforeAll(async () => { k = await makeKit("runtime", ROLE, { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } }); });
afterAll(async () => { await k?.stop(); });

test("with no bun on PATH, setup, hooks and processes run on the agent's own runtime", async () => {
  const Bun1 = Bun.spawnSync(["/bin/sh", "-c", "command -v bun"], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
  expect(Bun1.exitCode).not.toBe(0);                 // the premise: this PATH has no bun
  const commit = await k.release({ VERSION: "v1\n" }, "v1");
  const r = await k.agent(["once"]);
  expect(r.stderr).not.toContain("not converged");
  expect(r.code).toBe(0);
  const ran = join(k.state, "releases", commit, "setup-ran");
  expect(existsSync(ran)).toBe(true);
  expect(readFileSync(ran, "utf8")).toBe(Bun.version);
  const web = k.status().processes.find((p: any) => p.name === "web");
  expect(web).toMatchObject({ healthy: true, commit });
  expect(readFileSync(join(k.state, "bin", "bun"), "utf8")).toContain("BUN_BE_BUN=1");
});
