// The SSM and Secrets Manager stand-ins against the real @aws-sdk/client-ssm and
// @aws-sdk/client-secrets-manager, and the agent's client and fetch over them: batching,
// pagination, SecureString decryption, versions, throttling with backoff, missing and denied.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GetParameterCommand, GetParametersByPathCommand, SSMClient } from "@aws-sdk/client-ssm";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { startSsm, type SsmServer } from "../servers/ssm.ts";
import { startSecretsManager, type SecretsManagerServer } from "../servers/secretsmanager.ts";
import { createSecretsClient, type SecretsClient } from "../../agent/cloud/secrets.ts";
import { fetchAll } from "../../agent/secrets/fetch.ts";
import { materialize, secretNeeds } from "../../agent/secrets/plan.ts";
import { Role } from "../../agent/manifest/schema.ts";
import { AgentError } from "../../agent/core/errors.ts";

const credentials = { accessKeyId: "AKIDSECRETS", secretAccessKey: "x" };
let ssm: SsmServer, sm: SecretsManagerServer, client: SecretsClient;
const opts = { sleep: async () => {}, random: () => 0.5, baseDelayMs: 1 };

beforeAll(async () => {
  ssm = await startSsm();
  sm = await startSecretsManager();
  client = await createSecretsClient({ region: "us-east-1", endpoints: { ssm: ssm.url, secretsmanager: sm.url }, credentials });
});
afterAll(async () => { await ssm.stop(); await sm.stop(); });

async function failure(p: Promise<unknown>): Promise<AgentError> {
  try { await p; } catch (e) { return e as AgentError; }
  throw new Error("expected a failure");
}

describe("SSM stand-in with the real SDK", () => {
  test("GetParameter: a String, a SecureString encrypted without WithDecryption and decrypted with it, ParameterNotFound", async () => {
    ssm.put("/t/plain", "hello");
    ssm.put("/t/secure", "s3cr3t", "SecureString");
    ssm.put("/t/secure", "s3cr3t-2", "SecureString");
    const c = new SSMClient({ region: "us-east-1", endpoint: ssm.url, credentials, maxAttempts: 1 });
    expect((await c.send(new GetParameterCommand({ Name: "/t/plain" }))).Parameter).toMatchObject({ Name: "/t/plain", Value: "hello", Version: 1, Type: "String" });
    const enc = (await c.send(new GetParameterCommand({ Name: "/t/secure" }))).Parameter!;
    expect(enc.Value).not.toContain("s3cr3t");
    expect((await c.send(new GetParameterCommand({ Name: "/t/secure", WithDecryption: true }))).Parameter).toMatchObject({ Value: "s3cr3t-2", Version: 2, Type: "SecureString" });
    const e = await failure(c.send(new GetParameterCommand({ Name: "/t/none" })));
    expect(e.name).toBe("ParameterNotFound");
    expect(ssm.calls.at(-1)).toMatchObject({ action: "GetParameter", status: 400, accessKeyId: "AKIDSECRETS" });
  });

  test("GetParametersByPath pages by 10 and is not recursive unless asked", async () => {
    for (let i = 0; i < 23; i++) ssm.put(`/page/p${String(i).padStart(2, "0")}`, `v${i}`);
    ssm.put("/page/deeper/x", "nested");
    const c = new SSMClient({ region: "us-east-1", endpoint: ssm.url, credentials, maxAttempts: 1 });
    const seen: string[] = [];
    let next: string | undefined, pages = 0;
    do {
      const out = await c.send(new GetParametersByPathCommand({ Path: "/page/", NextToken: next, MaxResults: 10 }));
      seen.push(...(out.Parameters ?? []).map((p) => p.Name!));
      next = out.NextToken; pages++;
    } while (next);
    expect(pages).toBe(3);
    expect(seen.length).toBe(23);
    expect(seen).not.toContain("/page/deeper/x");
    const deep = await c.send(new GetParametersByPathCommand({ Path: "/page", Recursive: true, MaxResults: 10 }));
    expect(deep.NextToken).toBeTruthy();
  });

  test("an unsigned request is refused", async () => {
    const r = await fetch(ssm.url, { method: "POST", headers: { "x-amz-target": "AmazonSSM.GetParameter", "content-type": "application/x-amz-json-1.1" }, body: "{}" });
    expect(r.status).toBe(400);
    expect(r.headers.get("x-amzn-errortype")).toBe("MissingAuthenticationTokenException");
  });
});

describe("the agent's fetch over the stand-ins", () => {
  test("25 names are fetched in 3 GetParameters calls, SecureStrings decrypted, with versions", async () => {
    const names = Array.from({ length: 25 }, (_, i) => `/batch/n${i}`);
    for (const [i, n] of names.entries()) ssm.put(n, `value-${i}`, i % 2 ? "SecureString" : "String");
    ssm.put("/batch/n3", "value-3b", "SecureString");
    const before = ssm.calls.length;
    const { resolution, stats } = await fetchAll(client, names.map((n) => `ssm:${n}` as const), opts);
    const made = ssm.calls.slice(before);
    expect(made.map((c) => c.action)).toEqual(["GetParameters", "GetParameters", "GetParameters"]);
    expect(made.map((c) => c.body.Names.length)).toEqual([10, 10, 5]);
    expect(made.every((c) => c.body.WithDecryption === true)).toBe(true);
    expect(stats.calls).toBe(3);
    expect(resolution["ssm:/batch/n1"]).toEqual({ kind: "value", version: "1", value: "value-1" });
    expect(resolution["ssm:/batch/n3"]).toEqual({ kind: "value", version: "2", value: "value-3b" });
  });

  test("a path import reads every page and names variables like chamber", async () => {
    for (let i = 0; i < 12; i++) ssm.put(`/web/api-key-${i}`, `k${i}`);
    ssm.put("/web/db.url", "postgres://x");
    const role = Role.parse({ processes: { web: { run: "x", secrets: { ssmPath: "/web/" } } } });
    const needs = secretNeeds(role, undefined, "staging");
    const before = ssm.calls.length;
    const { resolution } = await fetchAll(client, needs.fetches, opts);
    expect(ssm.calls.slice(before).map((c) => c.action)).toEqual(["GetParametersByPath", "GetParametersByPath"]);
    const m = materialize(needs.processes.web!, resolution);
    expect(m.ok && m.value.env.API_KEY_11).toBe("k11");
    expect(m.ok && m.value.env.DB_URL).toBe("postgres://x");
    expect(m.ok && m.value.entries.find((e) => e.name === "DB_URL")).toEqual({ name: "DB_URL", source: "ssm:/web/db.url", version: "1" });
  });

  test("ThrottlingException is retried with backoff until it passes", async () => {
    ssm.put("/throttle/a", "a");
    ssm.faults.throttle = 3;
    const slept: number[] = [];
    const { resolution, stats } = await fetchAll(client, ["ssm:/throttle/a"], { ...opts, sleep: async (ms) => { slept.push(ms); } });
    expect(resolution["ssm:/throttle/a"]).toMatchObject({ value: "a" });
    expect(stats).toEqual({ calls: 4, throttled: 3 });
    expect(slept.length).toBe(3);
    expect(slept[2]).toBeGreaterThan(slept[0]!);
  });

  test("throttled past the last try: SecretsThrottled, retried after a delay", async () => {
    ssm.faults.throttle = 100;
    const e = await failure(fetchAll(client, ["ssm:/throttle/a"], { ...opts, attempts: 3 }));
    ssm.faults.throttle = 0;
    expect(e.reason).toBe("SecretsThrottled");
    expect(e.retry.kind).toBe("after");
  });

  test("a missing parameter fails the whole fetch, naming it and the call", async () => {
    ssm.put("/miss/there", "x");
    const e = await failure(fetchAll(client, ["ssm:/miss/there", "ssm:/miss/gone"], opts));
    expect(e.reason).toBe("SecretNotFound");
    expect(e.message).toContain("/miss/gone");
    expect(e.message).not.toContain("/miss/there");
    expect(e.message).toContain("ssm:GetParameters");
  });

  test("a denied call names the IAM action to grant", async () => {
    ssm.put("/deny/x", "x");
    ssm.faults.deny.add("/deny/");
    try {
      const e = await failure(fetchAll(client, ["ssm:/deny/x"], opts));
      expect(e.reason).toBe("SecretAccessDenied");
      expect(e.message).toContain("ssm:GetParameters");
      expect(e.message).toContain("/deny/x");
      const p = await failure(fetchAll(client, ["path:/deny/"], opts));
      expect(p.message).toContain("ssm:GetParametersByPath");
    } finally {
      ssm.faults.deny.clear();
    }
  });

  test("SSM down: SecretsUnavailable, nothing else", async () => {
    ssm.faults.down = true;
    try {
      const e = await failure(fetchAll(client, ["ssm:/t/plain"], opts));
      expect(e.reason).toBe("SecretsUnavailable");
    } finally {
      ssm.faults.down = false;
    }
  });
});

describe("Secrets Manager stand-in", () => {
  test("GetSecretValue with the real SDK: by name and ARN, JSON string, VersionId per put", async () => {
    const a = sm.put("api", { token: "t-1", user: "u" });
    const b = sm.put("api", { token: "t-2", user: "u" });
    const c = new SecretsManagerClient({ region: "us-east-1", endpoint: sm.url, credentials, maxAttempts: 1 });
    const out = await c.send(new GetSecretValueCommand({ SecretId: a.arn }));
    expect(out.VersionId).toBe(b.version);
    expect(JSON.parse(out.SecretString!)).toEqual({ token: "t-2", user: "u" });
    expect((await c.send(new GetSecretValueCommand({ SecretId: "api", VersionId: a.version }))).SecretString).toContain("t-1");
    const e = await failure(c.send(new GetSecretValueCommand({ SecretId: "nope" })));
    expect(e.name).toBe("ResourceNotFoundException");
  });

  test("the agent picks key: from the JSON secret; a missing key and a denied call are precise", async () => {
    const { arn, version } = sm.put("db", { password: "pw", host: "h" });
    const role = Role.parse({ processes: { web: { run: "x", env: { PASS: { secret: arn, key: "password" }, BAD: { secret: arn, key: "nope" } } } } });
    const needs = secretNeeds(role, undefined, "staging");
    const { resolution } = await fetchAll(client, needs.fetches, opts);
    expect(resolution[`secret:${arn}`]).toMatchObject({ version, value: JSON.stringify({ password: "pw", host: "h" }) });
    const m = materialize(needs.processes.web!, resolution);
    expect(m.ok).toBe(false);
    expect(!m.ok && m.problem.message).toContain("has no key 'nope' (it has: host, password)");
    sm.faults.deny.add("db");
    try {
      const e = await failure(fetchAll(client, [`secret:${arn}`], opts));
      expect(e.reason).toBe("SecretAccessDenied");
      expect(e.message).toContain("secretsmanager:GetSecretValue");
    } finally {
      sm.faults.deny.clear();
    }
    const gone = await failure(fetchAll(client, ["secret:arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-abcdef"], opts));
    expect(gone.reason).toBe("SecretNotFound");
  });
});
