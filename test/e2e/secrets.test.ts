// Secrets on the compiled binary, with the real SDK clients against the SSM, Secrets Manager, IMDS
// and EC2 stand-ins (instance-role keys from IMDS): values reach the process, the setup step and
// the hook that name them and nothing else (no file of the state dir, not the agent's own
// environment); a new version restarts only the process using it, health-gated, and a bad one is
// rolled back; a missing parameter holds a release back; SSM down never restarts anything.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { IMDS_TEST_CREDENTIALS, startImds, type ImdsServer } from "../servers/imds.ts";
import { startSsm, type SsmServer } from "../servers/ssm.ts";
import { startSecretsManager, type SecretsManagerServer } from "../servers/secretsmanager.ts";
import { AGENT, BUN, alive, makeKit, type Kit } from "./kit.ts";

const ID = "i-0e2e00000000005ec", REGION = "us-east-1", ZONE = "us-east-1a";
const MARK = "Zq9SECRETVALUE";   // in every secret value: must never appear in a file the agent writes

const APP = `
const port = Number(process.env.PORT ?? 0);
Bun.serve({ hostname: "127.0.0.1", port, fetch(req) {
  if (new URL(req.url).pathname === "/up") return process.env.DB_URL?.endsWith("bad") ? new Response("sick", { status: 503 }) : new Response("ok");
  return Response.json({ DB_URL: process.env.DB_URL ?? null, API_TOKEN: process.env.API_TOKEN ?? null, FEATURE_FLAG: process.env.FEATURE_FLAG ?? null });
}});
`;
const ROLE = (extraEnv = "") => `
processes:
  web:
    run: ${BUN} app.ts
    env: { DB_URL: { ssm: "/\${environment}/db/url" }${extraEnv} }
    secrets: { ssmPath: "/\${environment}/web/" }
    health: { http: /up, interval: 200ms, timeout: 1s, deadline: 4s }
    stop: { timeout: 3s }
  worker:
    run: ${BUN} -e "setInterval(() => {}, 1000)"
    minUptime: 300ms
setup:
  - run: /bin/sh -c 'test -n "$DB_URL" && test -z "$API_TOKEN"'
    secrets: [DB_URL]
hooks:
  before_cutover: ["/bin/sh -c 'test -n \\"$API_TOKEN\\"'"]
  secrets: [API_TOKEN]
`;

let dir: string, ec2: Ec2Server, imds: ImdsServer, ssm: SsmServer, sm: SecretsManagerServer, k: Kit, arn: string;

beforeAll(async () => {
  ssm = await startSsm();
  sm = await startSecretsManager();
  ssm.put("/staging/db/url", `postgres://v1-${MARK}`, "SecureString");
  ssm.put("/staging/web/feature-flag", `on-${MARK}`);
  arn = sm.put("api", { token: `tok-${MARK}` }).arn;
  imds = await startImds({ instanceId: ID, region: REGION, zone: ZONE, tags: { Role: "web", Environment: "staging" } });
  k = await makeKit("secrets", ROLE(), {
    env: { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined },
    config: ["identity: imds", `imds: { endpoint: "${imds.url}", timeout: 500ms }`],
  });
  dir = k.dir;
  ec2 = await startEc2({ dataDir: join(dir, "ebs"), byIdDir: join(dir, "by-id"), loopDevices: false });
  ec2.addInstance({ id: ID, zone: ZONE, tags: { Role: "web", Environment: "staging" } });
  const cfg = readFileSync(k.config, "utf8") + `aws: { endpoint: "${ec2.url}", endpoints: { ssm: "${ssm.url}", secretsmanager: "${sm.url}" } }\n`;
  await Bun.write(k.config, cfg);
});
afterAll(async () => {
  await k?.stop();
  await ec2?.stop(); await imds?.stop(); await ssm?.stop(); await sm?.stop();
});

const binding = () => `roles:\n  web:\n    env:\n      API_TOKEN: { secret: "${arn}", key: token }\n`;
const files = (v: string, role = ROLE()) => ({ VERSION: `${v}\n`, "app.ts": APP, "roles/web.yaml": role });
const records = () => JSON.parse(readFileSync(join(k.state, "state.json"), "utf8")).processes as any[];
const pidOf = (name: string) => records().find((r) => r.name === name)?.pid as number;
const env = async () => (await fetch(`http://127.0.0.1:${records().find((r) => r.name === "web").port}/`)).json() as Promise<Record<string, string>>;

/** Every regular file under dir, except the application's own log (what it prints is its business). */
function filesUnder(d: string): string[] {
  return readdirSync(d).flatMap((n) => {
    const p = join(d, n), st = lstatSync(p);
    return st.isDirectory() ? filesUnder(p) : st.isFile() ? [p] : [];
  });
}

describe("secrets on the compiled binary", () => {
  let v1: string;

  test("resolved at start: the process gets its references and its path import; the setup step and the hook only what they name", async () => {
    v1 = await k.release(files("v1"), "v1", binding());
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);
    expect(await env()).toEqual({ DB_URL: `postgres://v1-${MARK}`, API_TOKEN: `tok-${MARK}`, FEATURE_FLAG: `on-${MARK}` });
    // signed with the instance role's keys, which the SDK read from IMDS; batched
    expect(ssm.calls.every((c) => c.accessKeyId === IMDS_TEST_CREDENTIALS.accessKeyId)).toBe(true);
    expect(sm.calls.length).toBeGreaterThan(0);
    expect(ssm.calls.find((c) => c.action === "GetParameters")?.body).toMatchObject({ Names: ["/staging/db/url"], WithDecryption: true });
    const s = k.status();
    expect(s.current.commit).toBe(v1);
    expect(s.secrets).toEqual([
      { name: "API_TOKEN", source: `secret:${arn}#token`, version: sm.secrets.get("api")!.versions[0]!.id, processes: ["web", "worker"] },
      { name: "DB_URL", source: "ssm:/staging/db/url", version: "1", processes: ["web"] },
      { name: "FEATURE_FLAG", source: "ssm:/staging/web/feature-flag", version: "1", processes: ["web"] },
    ]);
  });

  test("never written: no file of the state dir (status, state, releases, meta, the agent's logs) holds a value, nor `agent plan`", async () => {
    const leaks = filesUnder(k.state).filter((f) => readFileSync(f).includes(MARK));
    expect(leaks).toEqual([]);
    const plan = await k.agent(["plan", "--json"]);
    expect(plan.stdout + plan.stderr).not.toContain(MARK);
    const st = await k.agent(["status", "--json"]);
    expect(st.stdout).not.toContain(MARK);
  });

  test("a new version restarts only the process using it, in place; the one without secrets keeps running", async () => {
    const web = pidOf("web"), worker = pidOf("worker");
    ssm.put("/staging/db/url", `postgres://v2-${MARK}`, "SecureString");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect((await env()).DB_URL).toBe(`postgres://v2-${MARK}`);
    expect(pidOf("web")).not.toBe(web);
    expect(alive(web)).toBe(false);
    expect(pidOf("worker")).toBe(worker);
    expect(k.status().secrets.find((x: any) => x.name === "DB_URL").version).toBe("2");
  });

  test("a new version that fails the health gate is rolled back: the old process keeps serving the old value", async () => {
    const web = pidOf("web");
    ssm.put("/staging/db/url", `postgres://v3-${MARK}-bad`, "SecureString");
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    const s = k.status();
    expect(s.lastTick.reason).toBe("SecretRotationFailed");
    expect(s.lastTick.error).toContain("DB_URL (ssm:/staging/db/url) 2 -> 3");
    expect(pidOf("web")).toBe(web);
    expect((await env()).DB_URL).toBe(`postgres://v2-${MARK}`);
    expect(s.secrets.find((x: any) => x.name === "DB_URL").version).toBe("2");
    ssm.put("/staging/db/url", `postgres://v4-${MARK}`, "SecureString");
    expect((await k.agent(["once"])).code).toBe(0);
    expect((await env()).DB_URL).toBe(`postgres://v4-${MARK}`);
  });

  test("a missing parameter holds the new release back, naming it and the IAM action; what runs keeps its values", async () => {
    const web = pidOf("web");
    const v2 = await k.release(files("v2", ROLE(`, EXTRA: { ssm: "/\${environment}/missing" }`)), "v2 needs a missing parameter", binding());
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    const s = k.status();
    expect(s.desired.commit).toBe(v2);
    expect(s.current.commit).toBe(v1);
    expect(s.lastTick.reason).toBe("SecretNotFound");
    expect(s.lastTick.error).toContain("/staging/missing");
    expect(s.lastTick.error).toContain("ssm:GetParameters");
    expect(s.badCommits).not.toContain(v2);
    expect(pidOf("web")).toBe(web);
    expect((await env()).DB_URL).toBe(`postgres://v4-${MARK}`);
    // a denied call holds it back the same way, naming the action to grant
    ssm.put("/staging/missing", `x-${MARK}`);
    ssm.faults.deny.add("/staging/missing");
    try {
      expect((await k.agent(["once"])).code).not.toBe(0);
      expect(k.status().lastTick).toMatchObject({ reason: "SecretAccessDenied" });
      expect(k.status().lastTick.error).toContain("ssm:GetParameters");
      expect(k.status().current.commit).toBe(v1);
      expect(pidOf("web")).toBe(web);
    } finally {
      ssm.faults.deny.clear();
    }
    // once the parameter can be read, the same release goes out
    const ok = await k.agent(["once"]);
    expect(ok.code).toBe(0);
    expect(k.status().current.commit).toBe(v2);
  });

  test("SSM down: an agent restarted beside running processes adopts them without restarting any", async () => {
    const web = pidOf("web"), worker = pidOf("worker");
    ssm.faults.down = true; sm.faults.down = true;
    try {
      const r = await k.agent(["once"]);
      expect(r.code).toBe(0);
      expect(pidOf("web")).toBe(web);
      expect(pidOf("worker")).toBe(worker);
      expect(k.status().notices.join("\n")).toContain("secrets could not be refreshed");
    } finally {
      ssm.faults.down = false; sm.faults.down = false;
    }
  });

  test("`agent run`: the values are not in the agent's own environment (/proc/<agent>/environ)", async () => {
    const daemon = Bun.spawn([AGENT, "run"], { env: { ...process.env, AGENT_CONFIG: k.config, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" }, stdout: "ignore", stderr: "ignore" });
    try {
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        try { if (JSON.parse(readFileSync(join(k.state, "status.json"), "utf8")).agent.pid === daemon.pid) break; } catch {}
        await Bun.sleep(200);
      }
      expect(JSON.parse(readFileSync(join(k.state, "status.json"), "utf8")).agent.pid).toBe(daemon.pid);
      expect(readFileSync(`/proc/${daemon.pid}/environ`).includes(MARK)).toBe(false);
      expect((await env()).DB_URL).toContain(MARK);   // and the process still has them
    } finally {
      daemon.kill("SIGTERM");
      await daemon.exited;
    }
  });
});
