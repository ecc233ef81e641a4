// Signed commits on the compiled binary: a node with trust: runs only signed tips, keeps the last
// good release running when a tip is refused and says why in `agent status`, never moves back
// to an older signed tip, checks the pinned commit with tip+release, takes new signers from the
// repository only through a commit a trusted key signed, and refuses a typo in allowed_signers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HAVE_GPG, HAVE_SSH_KEYGEN, gpgKey, signWith, signerLine, sshKey, type SshKey } from "../fixtures/signing.ts";
import { alive, makeKit, type Kit } from "./kit.ts";

const t = HAVE_SSH_KEYGEN && HAVE_GPG ? test : test.skip;
let k: Kit, ops: SshKey, dev: SshKey, mallory: SshKey, signers: string;
const state = () => JSON.parse(readFileSync(join(k.state, "state.json"), "utf8"));
const web = () => k.status().processes.find((p: any) => p.name === "web");
const trustLine = (extra = "") => `trust: { allowedSigners: ${signers}${extra} }\n`;
const setConfig = (trust: string) => {
  const base = readFileSync(k.config, "utf8").replace(/^trust:.*\n/m, "");
  writeFileSync(k.config, base + trust);
};

beforeAll(async () => {
  if (!HAVE_SSH_KEYGEN || !HAVE_GPG) return;
  k = await makeKit("trust");
  [ops, dev, mallory] = await Promise.all([sshKey(k.dir, "ops"), sshKey(k.dir, "dev"), sshKey(k.dir, "mallory")]);
  signers = join(k.dir, "allowed_signers");
  writeFileSync(signers, signerLine(ops, "ops@example.com") + "\n");
  appendFileSync(k.config, trustLine());
}, 60_000);
afterAll(async () => { await k?.stop(); });

describe("a node with trust:", () => {
  let v1: string, v1tip: string, v3: string, v3tip: string;

  t("converges on a tip signed by a listed key", async () => {
    await signWith(k.repo, ops);
    v1 = await k.release({ VERSION: "v1\n" }, "v1");
    v1tip = k.repo.head;
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);
    expect(k.status().current.commit).toBe(v1);
    expect(state().trusted).toEqual({ tip: v1tip, signersFrom: null });
    expect(state().lastTip).toBe(v1tip);
  });

  t("refuses an unsigned tip: the release keeps running, status says which commit and why, the floor stays", async () => {
    const pid = web().pid;
    await signWith(k.repo, null);
    await k.release({ VERSION: "v2\n" }, "v2 unsigned");
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    const s = k.status();
    expect(s.lastTick.reason).toBe("CommitUntrusted");
    expect(s.lastTick.error).toBe(`refusing tip ${k.repo.head.slice(0, 12)} ("deploy ${(await k.repo.git("rev-parse", "HEAD~1")).slice(0, 7)}"): nobody signed it; sign commits with git commit -S (the trusted keys are in ${signers})`);
    expect(s.current.commit).toBe(v1);
    expect(web().pid).toBe(pid);
    expect(alive(pid)).toBe(true);
    expect(state().lastTip).toBe(v1tip);
    const text = await k.agent(["status"]);
    expect(text.stdout).toContain("nobody signed it");
  });

  t("refuses a signed tip whose message was changed after signing", async () => {
    await signWith(k.repo, ops);
    await k.repo.git("commit", "--quiet", "--allow-empty", "-m", "harmless");
    const raw = await k.repo.git("cat-file", "commit", "HEAD");
    const tampered = raw.replace("harmless", "evil") + "\n";
    const p = Bun.spawn(["git", "hash-object", "-t", "commit", "-w", "--stdin"], { cwd: k.repo.work, stdin: new Blob([tampered]), stdout: "pipe" });
    const oid = (await new Response(p.stdout).text()).trim();
    await k.repo.git("push", "--quiet", "origin", `${oid}:refs/heads/main`);
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    expect(k.status().lastTick.error).toContain(`refusing tip ${oid.slice(0, 12)} ("evil"): the signature by ops@example.com (ssh-ed25519 ${ops.fingerprint})`);
    expect(k.status().current.commit).toBe(v1);
    await k.repo.git("reset", "--quiet", "--hard", oid);
  });

  t("a signed tip on top moves on (only the tip is checked)", async () => {
    v3 = await k.release({ VERSION: "v3\n" }, "v3");
    v3tip = k.repo.head;
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(k.status().current.commit).toBe(v3);
    expect(state().trusted.tip).toBe(v3tip);
  });

  t("never moves back to an older signed tip (a replayed branch)", async () => {
    await k.repo.forcePush(v1tip);
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    expect(k.status().lastTick.reason).toBe("ForcePushRefused");
    expect(k.status().lastTick.error).toContain(`does not descend from ${v3tip.slice(0, 12)}, the last tip this node accepted`);
    expect(k.status().current.commit).toBe(v3);
    expect(state().lastTip).toBe(v3tip);
    await k.repo.forcePush(v3tip);
    expect((await k.agent(["once"])).code).toBe(0);
  });

  t("a node whose store lost the last tip still refuses a rewritten branch (no \"this once\")", async () => {
    rmSync(join(k.state, "repo"), { recursive: true, force: true });
    await k.repo.git("checkout", "--quiet", "--orphan", "rewritten");
    await k.repo.git("commit", "--quiet", "-m", "rewritten history");   // signed by ops: only the floor can refuse it
    await k.repo.git("push", "--quiet", "--force", "origin", "HEAD:refs/heads/main");
    const r = await k.agent(["once"]);
    await k.repo.git("checkout", "--quiet", "main");
    expect(r.code).not.toBe(0);
    // (the pinned release, gone from the server with the old history, cannot be fetched either: that is the error)
    expect(k.status().notices.join("\n")).toContain(`ForcePushRefused: the tip of main moved to`);
    expect(k.status().current.commit).toBe(v3);
    expect(state().lastTip).toBe(v3tip);
    await k.repo.forcePush(v3tip);
    expect((await k.agent(["once"])).code).toBe(0);
    expect(state().lastTip).toBe(v3tip);
  });

  t("agent verify on the node says who signed the tip and that it would be accepted", async () => {
    const r = await k.agent(["verify", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ commit: v3tip, accepted: true, format: "ssh", signer: "ops@example.com", key: ops.fingerprint, listedIn: `${signers}:1` });
    const text = await k.agent(["verify", v1tip]);
    expect(text.stdout).toContain(`signed by ops@example.com (ssh ${ops.fingerprint}), listed in ${signers}:1`);
  });

  t("agent verify --repo with --allowed-signers, as in the ops repository's CI", async () => {
    await signWith(k.repo, mallory);
    await k.repo.git("commit", "--quiet", "--allow-empty", "-m", "by mallory");
    const r = await k.agent(["verify", "HEAD", "--repo", k.repo.work, "--allowed-signers", signers]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`refused: refusing tip`);
    expect(r.stdout).toContain(`signed by key ssh-ed25519 ${mallory.fingerprint}, which is not in ${signers}`);
    const ok = await k.agent(["verify", "HEAD~1", "--repo", k.repo.work, "--allowed-signers", signers]);
    expect(ok.code).toBe(0);
    await k.repo.git("reset", "--quiet", "--hard", "HEAD~1");
  });

  t("agent verify checks OpenPGP signatures in the compiled binary (openpgp is bundled)", async () => {
    const pgp = await gpgKey(k.dir, "pgp");
    await signWith(k.repo, pgp);
    await k.repo.git("commit", "--quiet", "--allow-empty", "-m", "by gpg");
    const r = await k.agent(["verify", "HEAD", "--repo", k.repo.work, "--openpgp-key", pgp.path, "--json"]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: true, format: "openpgp", key: pgp.fingerprint, signer: "pgp <pgp@example.com>" });
    const ssh = await k.agent(["verify", "HEAD", "--repo", k.repo.work, "--allowed-signers", signers]);
    expect(ssh.code).toBe(1);
    expect(ssh.stdout).toContain("this node trusts only SSH keys");
    await k.repo.git("reset", "--quiet", "--hard", "HEAD~1");
  });

  t("keys rotate through the repository's trust/allowed_signers, only in a commit a trusted key signed", async () => {
    // a stolen push: mallory adds herself and signs with her own key
    await signWith(k.repo, mallory);
    await k.repo.commit({ "trust/allowed_signers": signerLine(mallory, "mallory@example.com") + "\n" }, "add mallory");
    let r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    expect(k.status().lastTick.error).toContain(`signed by key ssh-ed25519 ${mallory.fingerprint}, which is not in ${signers}`);
    // ops signs the change that adds dev (and drops mallory); then dev's commits count
    await signWith(k.repo, ops);
    await k.repo.commit({ "trust/allowed_signers": signerLine(dev, "dev@example.com") + "\n" }, "add dev");
    expect((await k.agent(["once"])).code).toBe(0);
    await signWith(k.repo, dev);
    const v4 = await k.release({ VERSION: "v4\n" }, "v4 by dev");
    r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(k.status().current.commit).toBe(v4);
    expect(JSON.parse((await k.agent(["verify", "--json"])).stdout).listedIn).toMatch(/^trust\/allowed_signers at [0-9a-f]{12}:1$/);
  });

  t("with require: tip+release, an unsigned pinned commit is refused and the release keeps running", async () => {
    setConfig(trustLine(", require: tip+release"));
    const running = k.status().current.commit;
    await signWith(k.repo, null);
    const app = await k.repo.commit({ VERSION: "v5\n" }, "v5 unsigned app");
    await signWith(k.repo, ops);
    await k.repo.commit({ "manifests/staging.yaml": `commit: ${app}\npoll: 1s\n` }, "deploy v5");
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    expect(k.status().lastTick.error).toContain(`refusing release ${app.slice(0, 12)} ("v5 unsigned app"): nobody signed it`);
    expect(k.status().current.commit).toBe(running);
    expect(alive(web().pid)).toBe(true);
    setConfig(trustLine());
    expect((await k.agent(["once"])).code).toBe(0);
    expect(k.status().current.commit).toBe(app);
  });

  t("an allowed_signers line with a typo refuses the start with file:line", async () => {
    writeFileSync(signers, `${signerLine(ops, "ops@example.com")}\n${signerLine(dev, "dev@example.com", 'valid-befor="20300101"')}\n`);
    const r = await k.agent(["once"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${signers}:2: unknown option "valid-befor" (did you mean valid-before?)`);
    writeFileSync(signers, signerLine(ops, "ops@example.com") + "\n");
  });

  t("allowForcePush: true is rejected with trust:", async () => {
    const bad = join(k.dir, "force.yaml");
    writeFileSync(bad, readFileSync(k.config, "utf8") + "allowForcePush: true\n");
    const r = await k.agent(["once", "--config", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/force\.yaml:\d+:\d+: allowForcePush: cannot be true with trust:/);
  });
});
