// A checkout under a directory the roles' users cannot search (root's home is 0700 on Debian):
// the agent binary lives there, yet roles still run `bun` on the agent's runtime (offered from
// <stateDir>/bin), and a program a role's user cannot reach is named with the directory in the
// way, not only EACCES. Needs root (processes run as the role's user).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot } from "../../agent/host/users.ts";
import { AGENT, makeKit, type Kit } from "./kit.ts";

const root = isRoot();
if (!root) console.log("skip: running processes as the role's user needs root");
const NO_BUN = "/usr/sbin:/usr/bin:/sbin:/bin";

let home: string;   // a 0700 directory, like /root
beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "agent-home-"));
  chmodSync(home, 0o700);
});
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe.skipIf(!root)("an agent binary under a 0700 directory", () => {
  let k: Kit;
  let agent: string;
  beforeAll(async () => {
    k = await makeKit("reach", `
setup:
  - run: bun -e "require('fs').writeFileSync('setup-ran', 'yes')"
processes:
  web:
    run: bun app.ts
    health: { http: /up, interval: 200ms, deadline: 10s }
`, { env: { PATH: NO_BUN } });
    mkdirSync(join(home, "checkout", "dist"), { recursive: true });
    agent = join(home, "checkout", "dist", "agent");
    try { linkSync(AGENT, agent); } catch { Bun.spawnSync(["cp", AGENT, agent]); }
  });
  afterAll(async () => { await k?.stop(); });

  test("setup and processes run `bun` as the role's user on a runtime offered from <stateDir>/bin", async () => {
    const commit = await k.release({ VERSION: "v1\n" }, "v1");
    const p = Bun.spawn([agent, "once"], { env: { ...process.env, PATH: NO_BUN, AGENT_CONFIG: k.config, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    expect(err).not.toContain("not converged");
    expect(code).toBe(0);
    expect(readFileSync(join(k.state, "releases", commit, "setup-ran"), "utf8")).toBe("yes");
    const web = k.status().processes.find((x: any) => x.name === "web");
    expect(web).toMatchObject({ healthy: true, commit });
    // the processes ran as the role's user, not root
    expect(statSync(`/proc/${web.pid}`).uid).not.toBe(0);
    // the shim points at the runtime in the state dir, which is the agent binary (a link or a copy)
    const runtime = join(k.state, "bin", "agent-runtime");
    expect(readFileSync(join(k.state, "bin", "bun"), "utf8")).toContain(`'${runtime}'`);
    expect(statSync(runtime).size).toBe(statSync(AGENT).size);
    expect(statSync(runtime).mode & 0o777).toBe(0o755);
  });
});

describe.skipIf(!root)("a program the role's user cannot reach", () => {
  let k: Kit;
  let prog: string;
  beforeAll(async () => {
    mkdirSync(join(home, "tools"), { recursive: true });
    chmodSync(join(home, "tools"), 0o755);     // searchable itself: the 0700 parent is the one in the way
    prog = join(home, "tools", "serve");
    writeFileSync(prog, "#!/bin/sh\nexec sleep 100\n", { mode: 0o755 });
    k = await makeKit("unreach", `
processes:
  web:
    run: ${prog}
    health: { tcp: 1, deadline: 3s }
`);
  });
  afterAll(async () => { await k?.stop(); });

  test("the error names the first directory it cannot search", async () => {
    await k.release({ VERSION: "v1\n" }, "v1");
    const r = await k.agent(["once"], { timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    const s = JSON.stringify(k.status());
    expect(s).toContain(`cannot search ${home} (mode 0700`);
    expect(s).toContain("agent-app");
    expect(s).not.toContain(`cannot search ${join(home, "tools")}`);
  });
});
