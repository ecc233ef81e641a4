// The two tick stages of secrets against an in-memory SSM (a SecretsClient at the port level) and
// processes that remember what they run with: a release held back by a missing parameter, a
// rotation that restarts only the process using the secret, a rotation rolled back and not tried
// again, a refresh that fails without restarting anything, and a refresh that is not due.
import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../../agent/core/clock.ts";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { Manifest, Role } from "../../agent/manifest/schema.ts";
import type { SecretsClient } from "../../agent/cloud/secrets.ts";
import type { Ports, ProcessesPort } from "../../agent/loop/ports.ts";
import { Secrets } from "../../agent/secrets/keeper.ts";
import { bindSecrets, refreshSecrets, secretsForRelease } from "../../agent/secrets/stage.ts";
import { StateStore } from "../../agent/state/store.ts";

const C = "9fceb02d0ae598e95dc970b74767f19372d61af8";
const role = Role.parse({ processes: { web: { run: "x", env: { DB: { ssm: "/prod/db" } } }, worker: { run: "y" } } });
const binding = Manifest.parse({ commit: C, roles: { web: {} } }).roles.web;

function world() {
  const params = new Map<string, string[]>();        // name -> values by version
  let down = false, calls = 0;
  const client: SecretsClient = {
    async getParameters(names) {
      calls++;
      if (down) throw new AgentError("SecretsUnavailable", "ssm:GetParameters failed (connection refused)");
      return { found: names.filter((n) => params.has(n)).map((n) => ({ name: n, value: params.get(n)!.at(-1)!, version: String(params.get(n)!.length) })), missing: names.filter((n) => !params.has(n)) };
    },
    async getParametersByPath() { calls++; return { found: [] }; },
    async getSecretValue() { calls++; throw new Error("none"); },
  };
  const clock = new ManualClock(1_000_000);
  const store = new StateStore(join(mkdtempSync(join(tmpdir(), "secrets-stage-")), "state.json"));
  const secrets = new Secrets({ store, clock, log: memoryLogger(), client: async () => client });
  /** What each process runs with now: its secret variables, and how often it was (re)started. */
  const running = new Map<string, { env: Record<string, string>; starts: number }>();
  let healthy = (_env: Record<string, string>) => true;
  const start = (names: string[]) => {
    for (const n of names) {
      const s = secrets.forProcess(C, role, n);
      running.set(n, { env: s?.env ?? {}, starts: (running.get(n)?.starts ?? 0) + 1 });
    }
  };
  const processes = {
    async ensure() {
      for (const n of Object.keys(role.processes)) {
        const want = secrets.forProcess(C, role, n)?.env ?? {};
        if (JSON.stringify(running.get(n)?.env) !== JSON.stringify(want)) start([n]);
      }
    },
    async replace(_c: string, _r: Role, _e: Record<string, string>, only?: string[]) {
      const names = only ?? Object.keys(role.processes);
      if (!names.every((n) => healthy(secrets.forProcess(C, role, n)?.env ?? {}))) return { ok: false as const, reason: "ProcessNotHealthy", message: "web did not become healthy" };
      start(names);
      return { ok: true as const };
    },
  } as unknown as ProcessesPort;
  const p = { secrets, processes, log: memoryLogger(), clock, store } as unknown as Ports;
  bindSecrets(p, binding, "prod", "us-east-1");
  return {
    p, clock, running, store, put: (n: string, v: string) => { params.set(n, [...(params.get(n) ?? []), v]); },
    setDown: (d: boolean) => { down = d; }, calls: () => calls, setHealthy: (f: (env: Record<string, string>) => boolean) => { healthy = f; },
  };
}

const side = { commit: C, role, env: {} };
const deploy = [{ kind: "release.cutover", ref: "release", description: "" }];

describe("secrets stages", () => {
  test("a missing parameter holds the release back, naming it; nothing is installed", async () => {
    const w = world();
    const err = await secretsForRelease(w.p, side, deploy);
    expect(err?.reason).toBe("SecretNotFound");
    expect(err?.message).toContain("/prod/db");
    expect(err?.message).toContain("is not switched");
    expect(w.p.secrets!.current(C)).toBeNull();
    expect(await secretsForRelease(w.p, side, [{ kind: "release.confirm", ref: "release", description: "" }])).toBeNull();   // nothing to prepare or switch: no call
  });

  test("rotation restarts only the process using the secret, and only when due", async () => {
    const w = world();
    w.put("/prod/db", "one");
    expect(await secretsForRelease(w.p, side, deploy)).toBeNull();
    await w.p.processes.ensure(C, role, {});
    expect(w.running.get("web")).toEqual({ env: { DB: "one" }, starts: 1 });
    w.put("/prod/db", "two");
    const before = w.calls();
    expect(await refreshSecrets(w.p, side, [])).toBeNull();       // not due yet: no call
    expect(w.calls()).toBe(before);
    w.clock.advance(6 * 60_000);
    expect(await refreshSecrets(w.p, side, [])).toBeNull();
    expect(w.running.get("web")).toEqual({ env: { DB: "two" }, starts: 2 });
    expect(w.running.get("worker")!.starts).toBe(1);
    expect(JSON.stringify(w.store.get().secrets)).not.toContain("two");
    expect(w.store.get().secrets?.[C]?.["ssm:/prod/db"]).toEqual({ kind: "value", version: "2" });
  });

  test("a rotation that fails its health gate is rolled back and not tried again; a newer version is", async () => {
    const w = world();
    w.put("/prod/db", "one");
    await secretsForRelease(w.p, side, deploy);
    await w.p.processes.ensure(C, role, {});
    w.setHealthy((env) => env.DB !== "bad");
    w.put("/prod/db", "bad");
    w.clock.advance(6 * 60_000);
    const err = await refreshSecrets(w.p, side, []);
    expect(err?.reason).toBe("SecretRotationFailed");
    expect(err?.message).toContain("DB (ssm:/prod/db) 1 -> 2");
    expect(w.running.get("web")).toEqual({ env: { DB: "one" }, starts: 1 });
    expect(w.p.secrets!.forProcess(C, role, "web")?.env).toEqual({ DB: "one" });
    w.clock.advance(6 * 60_000);
    const notices: string[] = [];
    expect(await refreshSecrets(w.p, side, notices)).toBeNull();
    expect(notices.join()).toContain("failed their health gate before");
    expect(w.running.get("web")!.starts).toBe(1);
    w.put("/prod/db", "three");
    w.clock.advance(6 * 60_000);
    expect(await refreshSecrets(w.p, side, [])).toBeNull();
    expect(w.running.get("web")).toEqual({ env: { DB: "three" }, starts: 2 });
  });

  test("SSM down: the refresh fails, nothing restarts, status notes it", async () => {
    const w = world();
    w.put("/prod/db", "one");
    await secretsForRelease(w.p, side, deploy);
    await w.p.processes.ensure(C, role, {});
    w.setDown(true);
    w.clock.advance(6 * 60_000);
    const notices: string[] = [];
    expect(await refreshSecrets(w.p, side, notices)).toBeNull();
    expect(notices.join()).toContain("secrets could not be refreshed");
    expect(w.running.get("web")).toEqual({ env: { DB: "one" }, starts: 1 });
  });

  test("after an agent restart only versions are known: the fingerprint matches, the values are pending until fetched", async () => {
    const w = world();
    w.put("/prod/db", "one");
    await secretsForRelease(w.p, side, deploy);
    const before = w.p.secrets!.forProcess(C, role, "web")!;
    const again = new Secrets({ store: w.store, clock: w.clock, log: memoryLogger(), client: async () => { throw new Error("never asked"); } });
    again.bind(binding, "prod", "us-east-1");
    const after = again.forProcess(C, role, "web")!;
    expect(after.fingerprint).toBe(before.fingerprint);
    expect(after.pending).toBe(true);
    expect(after.env).toEqual({});
    expect(again.forProcess(C, role, "worker")).toBeNull();
  });
});
