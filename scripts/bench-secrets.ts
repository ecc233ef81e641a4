// Benchmark of secrets against the local SSM and Secrets Manager stand-ins, with the real SDK
// clients: resolution at process start (fetch + the variables of one process) for 1 and 50
// parameters, cold (SDK loaded and clients made) and warm; the calls one refresh makes and so per
// node per hour at the default refresh; the memory the SDK clients add once loaded.
// Run: bun scripts/bench-secrets.ts [rounds]
import { createSecretsClient } from "../agent/cloud/secrets.ts";
import { Role } from "../agent/manifest/schema.ts";
import { fetchAll } from "../agent/secrets/fetch.ts";
import { DEFAULT_REFRESH_MS, callsPerRefresh, materialize, secretNeeds } from "../agent/secrets/plan.ts";
import { startSsm } from "../test/servers/ssm.ts";
import { startSecretsManager } from "../test/servers/secretsmanager.ts";

const rounds = Number(process.argv[2] ?? 20);
const ssm = await startSsm(), sm = await startSecretsManager();
const credentials = { accessKeyId: "AKIDBENCH", secretAccessKey: "x" };
const opts = { sleep: (ms: number) => Bun.sleep(ms), random: Math.random };
const stats = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return `median ${s[Math.floor(s.length / 2)]!.toFixed(1)} ms, min ${s[0]!.toFixed(1)}, max ${s.at(-1)!.toFixed(1)}`; };

const roleWith = (n: number) => {
  const env: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) { env[`P${i}`] = { ssm: `/bench/p${i}` }; ssm.put(`/bench/p${i}`, `value-${i}-${"x".repeat(40)}`, "SecureString"); }
  return Role.parse({ processes: { web: { run: "x", env } } });
};
for (let i = 0; i < 50; i++) ssm.put(`/bench-path/k${i}`, `v${i}`);
const { arn } = sm.put("bench", { token: "t" });

async function resolve(role: Role, cold: boolean, client?: Awaited<ReturnType<typeof createSecretsClient>>) {
  const t0 = performance.now();
  const c = cold || !client ? await createSecretsClient({ region: "us-east-1", endpoints: { ssm: ssm.url, secretsmanager: sm.url }, credentials }) : client;
  const needs = secretNeeds(role, undefined, "bench");
  const before = ssm.calls.length + sm.calls.length;
  const { resolution } = await fetchAll(c, needs.fetches, opts);
  const m = materialize(needs.processes.web!, resolution);
  if (!m.ok || m.value.pending) throw new Error("not resolved");
  return { ms: performance.now() - t0, calls: ssm.calls.length + sm.calls.length - before, client: c };
}

try {
  const rssBefore = process.memoryUsage().rss;
  const first = await resolve(roleWith(1), true);
  await resolve(Role.parse({ processes: { web: { run: "x", env: { T: { secret: arn, key: "token" } } } } }), false, first.client);
  Bun.gc(true);
  const rssAfter = process.memoryUsage().rss;
  console.log(`first resolution in this process (SSM + Secrets Manager SDK loaded, clients made, 1 parameter): ${first.ms.toFixed(1)} ms; RSS +${((rssAfter - rssBefore) / 1e6).toFixed(1)} MB once both clients are loaded`);
  console.log();
  console.log("| parameters | calls at start | cold (new clients) | warm (clients made) |");
  console.log("|---|---|---|---|");
  for (const n of [1, 50]) {
    const role = roleWith(n);
    const cold: number[] = [], warm: number[] = [];
    let calls = 0;
    const { client } = await resolve(role, true);
    for (let i = 0; i < rounds; i++) {
      const a = await resolve(role, true); cold.push(a.ms); calls = a.calls;
      const b = await resolve(role, false, client); warm.push(b.ms);
    }
    console.log(`| ${n} | ${calls} GetParameters | ${stats(cold)} | ${stats(warm)} |`);
  }
  const path = Role.parse({ processes: { web: { run: "x", secrets: { ssmPath: "/bench-path/" } } } });
  const p: number[] = [];
  let pathCalls = 0;
  for (let i = 0; i < rounds; i++) { const r = await resolve(path, false, first.client); p.push(r.ms); pathCalls = r.calls; }
  console.log(`| 50 under an ssmPath | ${pathCalls} GetParametersByPath pages | | ${stats(p)} |`);
  console.log();
  const perHour = 3_600_000 / DEFAULT_REFRESH_MS;
  console.log(`calls per node per hour at the default refresh (${DEFAULT_REFRESH_MS / 60_000}m, ${perHour} refreshes an hour):`);
  for (const [what, fetches, perPath] of [
    ["1 parameter", ["ssm:/a"], 0],
    ["50 parameters", Array.from({ length: 50 }, (_, i) => `ssm:/p${i}`), 0],
    ["an ssmPath with 50 parameters", ["path:/x/"], 50],
    ["10 parameters + 2 Secrets Manager secrets", [...Array.from({ length: 10 }, (_, i) => `ssm:/p${i}`), "secret:a", "secret:b"], 0],
  ] as const) {
    const c = callsPerRefresh(fetches as any, () => perPath as number);
    console.log(`  ${what}: ${c.ssm} SSM + ${c.secretsmanager} Secrets Manager calls per refresh = ${c.ssm * perHour} SSM + ${c.secretsmanager * perHour} Secrets Manager per hour (${(c.ssm / (DEFAULT_REFRESH_MS / 1000)).toFixed(4)} SSM requests/s per node)`);
  }
} finally {
  await ssm.stop(); await sm.stop();
}
