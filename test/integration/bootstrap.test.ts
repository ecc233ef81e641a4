// scripts/bootstrap under a --root prefix: the files it writes, that the config parses, and that a
// second run changes nothing. No download and no systemctl happen here.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../agent/manifest/parse.ts";

const SCRIPT = join(import.meta.dir, "../../scripts/bootstrap");
const dir = mkdtempSync(join(tmpdir(), "agent-bootstrap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fakeBinary = join(dir, "agent-bin");
writeFileSync(fakeBinary, "#!/bin/sh\necho agent 0.0.0\n");

function bootstrap(args: string[]) {
  const p = Bun.spawnSync(["bash", SCRIPT, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("scripts/bootstrap", () => {
  const root = join(dir, "root");
  const args = ["--root", root, "--repo", "https://git.example.com/acme/ops's.git", "--branch", "release",
    "--binary", fakeBinary, "--token-file", "/etc/agent/git-token", "--metrics", "127.0.0.1:9500"];

  test("writes the binary, the config, the state dir and the unit under the prefix", () => {
    const r = bootstrap(args);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const bin = join(root, "usr/local/bin/agent");
    expect(readFileSync(bin, "utf8")).toBe(readFileSync(fakeBinary, "utf8"));
    expect(statSync(bin).mode & 0o777).toBe(0o755);
    expect(statSync(join(root, "var/lib/agent")).isDirectory()).toBe(true);
    const unit = readFileSync(join(root, "etc/systemd/system/agent.service"), "utf8");
    expect(unit).toContain("ExecStart=/usr/local/bin/agent run");
    expect(unit).toContain("WantedBy=multi-user.target");
    expect(r.out).toContain(`wrote ${join(root, "etc/agent/agent.yaml")}`);
    expect(r.out).toContain("not starting the service");

    const parsed = parseConfig(readFileSync(join(root, "etc/agent/agent.yaml"), "utf8"), "agent.yaml");
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    expect(parsed.value).toMatchObject({
      repo: "https://git.example.com/acme/ops's.git", branch: "release", stateDir: "/var/lib/agent", identity: "imds",
      auth: { tokenFile: "/etc/agent/git-token" }, control: { metrics: "127.0.0.1:9500" },
    });
  });

  test("a second run changes nothing and says so", () => {
    const before = statSync(join(root, "etc/agent/agent.yaml")).mtimeMs;
    const r = bootstrap(args);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain("wrote");
    expect(r.out.match(/unchanged/g)?.length).toBe(3);
    expect(statSync(join(root, "etc/agent/agent.yaml")).mtimeMs).toBe(before);
    expect(existsSync(join(root, "etc/agent/agent.yaml.bak"))).toBe(false);
  });

  test("changed settings are rewritten and the old ones kept; --dry-run writes nothing", () => {
    const cfg = join(root, "etc/agent/agent.yaml");
    const old = readFileSync(cfg, "utf8");
    const dry = bootstrap([...args.slice(0, -2), "--metrics", "off", "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain(`would write ${cfg}`);
    expect(readFileSync(cfg, "utf8")).toBe(old);

    const r = bootstrap([...args.slice(0, -2), "--metrics", "off"]);
    expect(r.code).toBe(0);
    expect(readFileSync(`${cfg}.bak`, "utf8")).toBe(old);
    const parsed = parseConfig(readFileSync(cfg, "utf8"), cfg);
    expect(parsed.ok && parsed.value.control.metrics).toBeNull();
  });

  test("a static identity for nodes off EC2", () => {
    const root2 = join(dir, "static");
    const r = bootstrap(["--root", root2, "--repo", "http://127.0.0.1:1/ops.git", "--binary", fakeBinary,
      "--role", "web", "--environment", "staging", "--instance-id", "dev-1", "--state-dir", "/srv/agent"]);
    expect(r.code).toBe(0);
    const parsed = parseConfig(readFileSync(join(root2, "etc/agent/agent.yaml"), "utf8"), "agent.yaml");
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    expect(parsed.value.identity).toEqual({ role: "web", environment: "staging", instanceId: "dev-1", region: "local", zone: "local-1a" });
    expect(statSync(join(root2, "srv/agent")).isDirectory()).toBe(true);
  });

  test("mistakes are refused with what to do", () => {
    const cases: [string[], RegExp][] = [
      [["--root", join(dir, "x")], /--repo URL is required/],
      [["--root", join(dir, "x"), "--repo", "git@host:ops.git"], /must be an http:\/\/ or https:\/\/ URL/],
      [["--root", join(dir, "x"), "--repo", "https://h/o.git"], /no agent binary: pass --binary/],
      [["--root", join(dir, "x"), "--repo", "https://h/o.git", "--binary", fakeBinary, "--role", "web"], /needs all of --role/],
      [["--bogus"], /unknown option '--bogus'/],
    ];
    for (const [a, re] of cases) {
      const r = bootstrap(a);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(re);
    }
    expect(existsSync(join(dir, "x", "etc"))).toBe(false);
    const help = bootstrap(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("Usage: bootstrap --repo URL");
  });
});

test("bootstrap writes the trusted keys and trust: (file or text), and the agent loads them", async () => {
  const root3 = join(dir, "root-trust");
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ1Gv1EZ8PCpI0mHbYQ/ezc0z8nzYq2kOQ5VZ3pG+P4";
  const revoked = join(dir, "revoked");
  writeFileSync(revoked, `SHA256:${"A".repeat(43)}\n`);
  const r = bootstrap(["--root", root3, "--repo", "https://git.example.com/acme/ops.git", "--binary", fakeBinary,
    "--allowed-signers", `ops@example.com namespaces="git" ${key}`, "--revoked-keys", revoked, "--trust-require", "tip+release"]);
  expect(r.err).toBe("");
  expect(r.code).toBe(0);
  expect(readFileSync(join(root3, "etc/agent/allowed_signers"), "utf8")).toBe(`ops@example.com namespaces="git" ${key}\n`);
  expect(readFileSync(join(root3, "etc/agent/revoked_keys"), "utf8")).toBe(readFileSync(revoked, "utf8"));
  const parsed = parseConfig(readFileSync(join(root3, "etc/agent/agent.yaml"), "utf8"), "agent.yaml");
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  expect(parsed.value.trust).toEqual({ allowedSigners: "/etc/agent/allowed_signers", openpgpKeys: [], revokedKeys: "/etc/agent/revoked_keys", require: "tip+release" });
  const { Trust } = await import("../../agent/trust/trust.ts");
  await Trust.load({ ...parsed.value.trust!, allowedSigners: join(root3, "etc/agent/allowed_signers"), revokedKeys: join(root3, "etc/agent/revoked_keys") });
  expect(bootstrap(["--root", root3, "--repo", "https://x/ops.git", "--binary", fakeBinary, "--trust-require", "all"]).err).toContain("--trust-require must be tip or tip+release");
});
