// The supervisor with secrets: a spec whose secret values are not known yet (only their versions,
// after an agent restart while SSM was down) is never started without them, and starts as soon
// as a spec with the values arrives; the values reach the child's environment.
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { childSpec, sandbox, supervisor, until, type Sandbox } from "../fixtures/supervisor-kit.ts";

let sb: Sandbox, sup: ReturnType<typeof supervisor> | null = null;
afterEach(async () => { await sup?.stopAll(); sup = null; sb?.cleanup(); });

test("pending secrets: not started (SecretsUnavailable, in backoff); started with the values once they are known", async () => {
  sb = sandbox();
  sup = supervisor(sb);
  const secrets = { names: ["DB"], fingerprint: "DB=ssm:/db@1", pending: true };
  const script = `require("node:fs").writeFileSync("seen", String(process.env.DB)); setInterval(() => {}, 1000)`;
  const spec = childSpec(sb, "web", [], { argv: [process.execPath, "-e", script], secrets });
  sup.ensure([spec]);
  const st = await until(() => sup!.status().find((p) => p.reason === "SecretsUnavailable"), "the start refused");
  expect(st.pid).toBeNull();
  expect(st.message).toContain("DB");
  // the same fingerprint with the values: the unit keeps its place and its next start has them
  sup.ensure([{ ...spec, env: { ...spec.env, DB: "postgres://x" }, secrets: { ...secrets, pending: false } }]);
  await until(() => { try { return readFileSync(`${sb.dir}/seen`, "utf8") === "postgres://x"; } catch { return false; } }, "the child saw DB");
  expect(sup.status().find((p) => p.name === "web")!.pid).not.toBeNull();
});
