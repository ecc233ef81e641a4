// Secrets, the pure part, as tables: references in manifests and role files (and the bad ones),
// which references each process needs, batching, the variables a fetch gives, fingerprints that
// cover name and version but never the value, what changed, backoff and refresh jitter, and the
// endpoint each AWS client uses.
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { analyze, formatProblem } from "../../agent/manifest/parse.ts";
import { Config, Manifest, Role } from "../../agent/manifest/schema.ts";
import {
  batches, callsPerRefresh, changedSecrets, fingerprint, materialize, nextRefreshAt, pickNamed, plainEnv,
  secretNeeds, throttleDelay, varName, versionsOnly, type Resolution,
} from "../../agent/secrets/plan.ts";
import { endpointFor } from "../../agent/cloud/endpoints.ts";
import { specHash } from "../../agent/supervisor/supervisor.ts";
import type { ProcessSpec } from "../../agent/supervisor/types.ts";

const C = "9fceb02d0ae598e95dc970b74767f19372d61af8";
const problems = (kind: "manifest" | "role", text: string) => {
  const r = analyze(kind, text, kind === "role" ? "roles/web.yaml" : "manifests/production.yaml").result;
  return r.ok ? [] : r.problems.map(formatProblem);
};

describe("secret references in the files", () => {
  test("both forms are accepted in a manifest binding and a role file", () => {
    expect(problems("manifest", `commit: ${C}\nroles:\n  web:\n    env: { DATABASE_URL: { ssm: /prod/db/url }, API_KEY: { secret: "arn:aws:secretsmanager:us-east-1:1:secret:api", key: token }, PLAIN: x }\n    secrets: { ssmPath: /prod/web/, refresh: 10m }\n`)).toEqual([]);
    expect(problems("role", `processes:\n  web:\n    run: bun app.ts\n    env: { DATABASE_URL: { ssm: "/\${environment}/db/url" } }\n    secrets: { ssmPath: "/\${environment}/web/" }\nsetup:\n  - run: bun run build\n    secrets: [DATABASE_URL]\nhooks:\n  before_cutover: [bun run db:migrate]\n  secrets: [DATABASE_URL]\n`)).toEqual([]);
  });

  test("a reference with both ssm and secret is refused, naming the field and the fix", () => {
    const p = problems("manifest", `commit: ${C}\nroles:\n  web:\n    env:\n      DATABASE_URL: { ssm: /prod/db/url, secret: api }\n`);
    expect(p.length).toBe(1);
    expect(p[0]).toMatch(/^manifests\/production\.yaml:5:\d+: roles\.web\.env\.DATABASE_URL: .*either ssm: .* or secret: .*not both/);
  });

  test("an SSM name or path without a leading / is refused", () => {
    const p = problems("role", `processes:\n  web:\n    run: x\n    env: { A: { ssm: prod/db/url } }\n    secrets: { ssmPath: prod/web/ }\n`);
    expect(p.length).toBe(2);
    expect(p[0]).toMatch(/processes\.web\.env\.A\.ssm: must be an SSM parameter name with a leading \//);
    expect(p[1]).toMatch(/processes\.web\.secrets\.ssmPath: must be an SSM parameter name with a leading \//);
  });

  test("a value over 32 KB in the file is refused; key: on an ssm: reference too; an empty reference says what it needs", () => {
    const big = "x".repeat(32 * 1024 + 1);
    expect(problems("role", `processes:\n  web:\n    run: x\n    env: { BIG: "${big}" }\n`)[0]).toMatch(/processes\.web\.env\.BIG: is over 32 KB/);
    expect(problems("role", `processes:\n  web:\n    run: x\n    env: { OK: "${"x".repeat(32 * 1024)}" }\n`)).toEqual([]);
    expect(problems("role", `processes:\n  web:\n    run: x\n    env: { A: { ssm: /a, key: k } }\n`)[0]).toMatch(/key: picks a field of a Secrets Manager JSON secret/);
    expect(problems("role", `processes:\n  web:\n    run: x\n    env: { A: {} }\n`)[0]).toMatch(/needs ssm: \/path\/name or secret:/);
  });
});

const role = (procs: Record<string, unknown>, extra: Record<string, unknown> = {}) => Role.parse({ processes: procs, ...extra });
const binding = (b: unknown) => Manifest.parse({ commit: C, roles: { web: b } }).roles.web;

describe("secretNeeds: which references each process needs", () => {
  const r = role({
    web: { run: "x", env: { DB: { ssm: "/${environment}/db" }, LEVEL: "info" }, secrets: { ssmPath: "/${environment}/web" } },
    worker: { run: "y", env: { API: { secret: "api", key: "token" } } },
    plain: { run: "z", env: { SHARED: "mine" } },
  });
  const b = binding({ env: { SHARED: { ssm: "/prod/shared" } }, secrets: { ssmPath: "/prod/all/" } });
  const n = secretNeeds(r, b, "prod");

  test.each([
    ["web", ["path:/prod/all/", "ssm:/prod/shared", "path:/prod/web/", "ssm:/prod/db"]],
    ["worker", ["path:/prod/all/", "ssm:/prod/shared", "secret:api"]],
    ["plain", ["path:/prod/all/", "ssm:/prod/shared"]],
  ])("%s needs %j", (name, fetches) => {
    expect(n.processes[name]!.fetches as string[]).toEqual(fetches as string[]);
  });

  test("the role-wide set is every distinct fetch; ${environment} is expanded; refresh defaults to 5m", () => {
    expect(n.fetches.sort()).toEqual(["path:/prod/all/", "path:/prod/web/", "secret:api", "ssm:/prod/db", "ssm:/prod/shared"]);
    expect(n.refreshMs).toBe(5 * 60_000);
    expect(secretNeeds(r, binding({ secrets: { refresh: "10m" } }), "prod").refreshMs).toBe(600_000);
  });

  test("a role without references needs nothing", () => {
    expect(secretNeeds(role({ web: { run: "x", env: { A: "1" } } }), binding({ env: { B: "2" } }), "prod").fetches).toEqual([]);
  });

  test("plainEnv keeps only plain values", () => {
    expect(plainEnv({ A: "1", B: { ssm: "/b" } })).toEqual({ A: "1" });
  });
});

describe("materialize: the variables a fetch gives one process", () => {
  const r = role({
    web: { run: "x", env: { DB: { ssm: "/prod/db" }, SHARED: "plain-wins", API: { secret: "api", key: "token" } }, secrets: { ssmPath: "/prod/web/" } },
  });
  const n = secretNeeds(r, binding({ env: { SHARED: { ssm: "/prod/shared" }, OVER: { ssm: "/prod/over" } } }), "prod");
  const res: Resolution = {
    "ssm:/prod/db": { kind: "value", version: "3", value: "postgres://db" },
    "ssm:/prod/shared": { kind: "value", version: "1", value: "from-ssm" },
    "ssm:/prod/over": { kind: "value", version: "1", value: "binding" },
    "secret:api": { kind: "value", version: "v-uuid", value: JSON.stringify({ token: "tok", other: 1 }) },
    "path:/prod/web/": { kind: "path", params: [{ name: "/prod/web/over", version: "7", value: "process-path" }, { name: "/prod/web/api-key", version: "2", value: "k" }] },
  };

  test("precedence: binding path < binding env < process path < process env; plain values of higher precedence win", () => {
    const m = materialize(n.processes.web!, res);
    if (!m.ok) throw new Error(m.problem.message);
    expect(m.value.env).toEqual({ DB: "postgres://db", API: "tok", OVER: "process-path", API_KEY: "k" });
    expect(m.value.names).toEqual(["API", "API_KEY", "DB", "OVER"]);   // SHARED is plain: not a secret
    expect(m.value.pending).toBe(false);
    expect(m.value.entries.find((e) => e.name === "API")).toEqual({ name: "API", source: "secret:api#token", version: "v-uuid" });
  });

  test("the fingerprint covers name, source and version, never the value", () => {
    const a = materialize(n.processes.web!, res);
    const sameVersionOtherValue = { ...res, "ssm:/prod/db": { kind: "value" as const, version: "3", value: "changed" } };
    const newVersion = { ...res, "ssm:/prod/db": { kind: "value" as const, version: "4", value: "postgres://db" } };
    const b = materialize(n.processes.web!, sameVersionOtherValue), c = materialize(n.processes.web!, newVersion);
    expect(a.ok && b.ok && a.value.fingerprint === b.value.fingerprint).toBe(true);
    expect(a.ok && c.ok && a.value.fingerprint !== c.value.fingerprint).toBe(true);
    expect(a.ok && a.value.fingerprint).not.toContain("postgres");
  });

  test("remembered versions without values give the same fingerprint, pending", () => {
    const a = materialize(n.processes.web!, res), v = materialize(n.processes.web!, versionsOnly(res));
    expect(v.ok && v.value.pending).toBe(true);
    expect(v.ok && v.value.env).toEqual({});
    expect(a.ok && v.ok && a.value.fingerprint === v.value.fingerprint).toBe(true);
    expect(JSON.stringify(versionsOnly(res))).not.toContain("postgres");
  });

  test("a fetched value over 32 KB is refused, naming the secret", () => {
    const big = { ...res, "ssm:/prod/db": { kind: "value" as const, version: "9", value: "x".repeat(32 * 1024 + 1) } };
    const m = materialize(n.processes.web!, big);
    expect(m.ok).toBe(false);
    expect(!m.ok && m.problem.message).toMatch(/^ssm:\/prod\/db \(for DB\) is 33 KB, over the 32 KB/);
  });

  test("a path parameter that makes no variable name is refused", () => {
    const bad = { ...res, "path:/prod/web/": { kind: "path" as const, params: [{ name: "/prod/web/1st", version: "1", value: "v" }] } };
    const m = materialize(n.processes.web!, bad);
    expect(!m.ok && m.problem.message).toContain("'1ST', which is not one");
  });

  test("pickNamed: a step gets only what it names; an unknown name is a problem", () => {
    const all = materialize(n.role, res);
    if (!all.ok) throw new Error();
    expect(pickNamed(all.value, ["DB"], "setup step 1")).toEqual({ ok: true, env: { DB: "postgres://db" } });
    const bad = pickNamed(all.value, ["NOPE"], "setup step 1 \"x\"");
    expect(!bad.ok && bad.problem.message).toContain("setup step 1 \"x\" names the secret NOPE, but no secret reference");
  });
});

describe("small decisions", () => {
  test.each([
    [0, []], [1, [1]], [10, [10]], [11, [10, 1]], [25, [10, 10, 5]], [50, [10, 10, 10, 10, 10]],
  ])("%i names -> GetParameters calls of %j", (count, sizes) => {
    expect(batches(Array.from({ length: count as number }, (_, i) => i)).map((b) => b.length)).toEqual(sizes as number[]);
  });

  test.each([
    ["/prod/web/", "/prod/web/api-key", "API_KEY"],
    ["/prod/web/", "/prod/web/db.url", "DB_URL"],
    ["/prod/web/", "/prod/web/Token", "TOKEN"],
  ])("under %s, %s is %s", (path, name, v) => expect(varName(path, name)).toBe(v));

  test("changedSecrets lists new, gone and re-versioned variables", () => {
    expect(changedSecrets(
      [{ name: "A", source: "ssm:/a", version: "1" }, { name: "B", source: "ssm:/b", version: "1" }, { name: "C", source: "ssm:/c", version: "1" }],
      [{ name: "A", source: "ssm:/a", version: "2" }, { name: "B", source: "ssm:/b", version: "1" }, { name: "D", source: "ssm:/d", version: "1" }],
    )).toEqual([
      { name: "A", source: "ssm:/a", from: "1", to: "2" },
      { name: "C", source: "ssm:/c", from: "1", to: null },
      { name: "D", source: "ssm:/d", from: null, to: "1" },
    ]);
  });

  test("fingerprint is stable and value-free", () => {
    expect(fingerprint([{ name: "A", source: "ssm:/a", version: "1" }])).toBe("A=ssm:/a@1");
  });

  test("refresh is jittered within ±10%, throttling backoff grows and is capped", () => {
    expect(nextRefreshAt(1000, 300_000, 0)).toBe(1000 + 270_000);
    expect(nextRefreshAt(1000, 300_000, 0.999999)).toBeLessThanOrEqual(1000 + 330_000);
    expect([0, 1, 2, 3, 10].map((a) => throttleDelay(a, 1))).toEqual([200, 400, 800, 1600, 10_000]);
    expect(throttleDelay(3, 0)).toBe(0);
  });

  test("calls per refresh: 10 names a call, a page per 10 path parameters, a call per secret", () => {
    expect(callsPerRefresh(["ssm:/a"])).toEqual({ ssm: 1, secretsmanager: 0 });
    const fifty = Array.from({ length: 50 }, (_, i) => `ssm:/p${i}` as const);
    expect(callsPerRefresh(fifty)).toEqual({ ssm: 5, secretsmanager: 0 });
    expect(callsPerRefresh(["path:/web/", "secret:x", "secret:y"], () => 23)).toEqual({ ssm: 3, secretsmanager: 2 });
  });

  test("specHash: a secret counts by its version, not its value; specs without secrets hash as before", () => {
    const spec = (env: Record<string, string>, secrets?: ProcessSpec["secrets"]): ProcessSpec => ({
      name: "web", process: "web", instance: 0, commit: C, releaseDir: "/r", argv: ["x"], cwd: "/r", env, restart: "always",
      stop: { signal: "SIGTERM", timeoutMs: 1 }, minUptimeMs: 1, logFile: "/l", ...(secrets ? { secrets } : {}),
    });
    const s = (value: string, version: string) => spec({ A: "1", DB: value }, { names: ["DB"], fingerprint: `DB=ssm:/db@${version}`, pending: false });
    expect(specHash(s("one", "1"))).toBe(specHash(s("two", "1")));
    expect(specHash(s("one", "1"))).not.toBe(specHash(s("one", "2")));
    expect(specHash({ ...s("", "1"), env: { A: "1" }, secrets: { names: ["DB"], fingerprint: "DB=ssm:/db@1", pending: true } })).toBe(specHash(s("one", "1")));
    // the hash of a spec without secrets is what it was before secrets existed (no restart on upgrade)
    const old = spec({ A: "1" });
    const before = createHash("sha256").update(JSON.stringify([old.argv, old.cwd, Object.entries(old.env).sort(), undefined, undefined, old.commit, old.releaseDir, old.port])).digest("hex").slice(0, 16);
    expect(specHash(old)).toBe(before);
  });
});

describe("endpoints", () => {
  const aws = (over: Record<string, unknown> = {}) => Config.parse({ repo: "https://x", aws: over }).aws;
  test.each([
    ["endpoints.<service> wins over everything", aws({ endpoint: "http://all", endpoints: { ssm: "http://ssm" } }), { AWS_ENDPOINT_URL_SSM: "http://env" }, "http://ssm"],
    ["AWS_ENDPOINT_URL_<SERVICE> wins over aws.endpoint", aws({ endpoint: "http://all" }), { AWS_ENDPOINT_URL_SSM: "http://env" }, "http://env"],
    ["aws.endpoint is the default for every service", aws({ endpoint: "http://all" }), {}, "http://all"],
    ["nothing set: the SDK decides", aws(), {}, null],
  ])("%s", (_, a, env, want) => {
    expect(endpointFor(a, "ssm", env as Record<string, string>)).toBe(want as string | null);
  });
  test("Secrets Manager's variable is AWS_ENDPOINT_URL_SECRETS_MANAGER", () => {
    expect(endpointFor(aws({ endpoint: "http://all" }), "secretsmanager", { AWS_ENDPOINT_URL_SECRETS_MANAGER: "http://sm" })).toBe("http://sm");
    expect(endpointFor(aws({ endpoint: "http://all", endpoints: { ec2: "http://ec2" } }), "ec2", {})).toBe("http://ec2");
  });
});
