// Signatures made by the real tools: `ssh-keygen -Y sign`, `git commit -S` with gpg.format=ssh
// (ed25519, ecdsa, rsa) and with gpg, checked by agent/trust; and every bad input of the issue:
// a tampered message under a valid signature, a key outside its validity window, GPG when only
// SSH keys are trusted, broken armor, a 1 MB signature header, a typo in allowed_signers.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { HAVE_GPG, HAVE_SSH_KEYGEN, gpgKey, rawCommit, signWith, signerLine, sshKey, sshSign, type GpgKey, type SshKey } from "../fixtures/signing.ts";
import { parseSshSignature, verifySshSignature } from "../../agent/trust/sshsig.ts";
import { Trust } from "../../agent/trust/trust.ts";
import { AgentError } from "../../agent/core/errors.ts";

const t = HAVE_SSH_KEYGEN && HAVE_GPG ? test : test.skip;
let dir: string, repo: TestRepo, ed: SshKey, ec: SshKey, ec384: SshKey, rsa: SshKey, outsider: SshKey, gpg: GpgKey;
let signers: string;

const ymd = (offsetDays: number) => new Date(Date.now() + offsetDays * 86400_000).toISOString().slice(0, 10).replace(/-/g, "") + "Z";

beforeAll(async () => {
  if (!HAVE_SSH_KEYGEN || !HAVE_GPG) return;
  dir = mkdtempSync(join(tmpdir(), "agent-trust-"));
  repo = await makeRepo(join(dir, "git"), "ops", { "README": "ops\n" });
  [ed, ec, ec384, rsa, outsider] = await Promise.all([
    sshKey(dir, "ed", "ed25519"), sshKey(dir, "ec", "ecdsa"), sshKey(dir, "ec384", "ecdsa384"), sshKey(dir, "rsa", "rsa"), sshKey(dir, "outsider"),
  ]);
  gpg = await gpgKey(dir, "pgp");
  signers = join(dir, "allowed_signers");
  writeFileSync(signers, [
    "# the ops team", signerLine(ed, "ed@example.com"), signerLine(ec, "ec@example.com", 'namespaces="git"'),
    signerLine(ec384, "ec384@example.com"), signerLine(rsa, "rsa@example.com"),
  ].join("\n") + "\n");
}, 60_000);
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const sshOnly = () => Trust.load({ allowedSigners: signers, openpgpKeys: [], require: "tip" });
async function commitBy(key: SshKey | GpgKey | null, files: Record<string, string> = { "n": String(Math.random()) }): Promise<string> {
  await signWith(repo, key);
  return repo.commit(files, `change by ${key?.kind ?? "nobody"}`);
}

describe("commits signed by git commit -S", () => {
  for (const name of ["ed", "ec", "ec384", "rsa"] as const) {
    t(`${name}: accepted, naming the principal and the allowed_signers line`, async () => {
      const key = { ed, ec, ec384, rsa }[name];
      const oid = await commitBy(key);
      const r = await (await sshOnly()).verify(oid, await rawCommit(repo, oid), "tip", null);
      expect(r.verdict).toMatchObject({ accepted: true, reason: "Signed", format: "ssh", key: key.fingerprint, signer: `${name}@example.com` });
      expect(r.verdict.listedIn).toStartWith(`${signers}:`);
    });
  }

  t("OpenPGP (gpg): accepted with the key in trust.openpgpKeys", async () => {
    const oid = await commitBy(gpg);
    const trust = await Trust.load({ allowedSigners: signers, openpgpKeys: [gpg.path], require: "tip" });
    const r = await trust.verify(oid, await rawCommit(repo, oid), "tip", null);
    expect(r.verdict).toMatchObject({ accepted: true, format: "openpgp", key: gpg.fingerprint, signer: "pgp <pgp@example.com>" });
  });

  t("a GPG-signed commit when only SSH keys are trusted: refused, saying so", async () => {
    const oid = await commitBy(gpg);
    const r = await (await sshOnly()).verify(oid, await rawCommit(repo, oid), "tip", null);
    expect(r.verdict.reason).toBe("FormatNotTrusted");
    expect(r.verdict.message).toContain(`refusing tip ${oid.slice(0, 12)}`);
    expect(r.verdict.message).toContain(`signed with OpenPGP key ${gpg.fingerprint.slice(-16)}`);
    expect(r.verdict.message).toContain(`trusts only SSH keys (${signers})`);
  });

  t("an unsigned commit: refused, saying nobody signed it and where the trusted keys are", async () => {
    const oid = await commitBy(null);
    const r = await (await sshOnly()).verify(oid, await rawCommit(repo, oid), "tip", null);
    expect(r.verdict.reason).toBe("Unsigned");
    expect(r.verdict.message).toMatch(new RegExp(`^refusing tip ${oid.slice(0, 12)} \\("change by nobody"\\): nobody signed it.*${signers}`));
  });

  t("a key not in allowed_signers: refused with its fingerprint", async () => {
    const oid = await commitBy(outsider);
    const r = await (await sshOnly()).verify(oid, await rawCommit(repo, oid), "tip", null);
    expect(r.verdict.reason).toBe("UnknownSigner");
    expect(r.verdict.message).toContain(`signed by key ssh-ed25519 ${outsider.fingerprint}, which is not in ${signers}`);
  });

  t("a tampered commit message under a valid signature: refused as a bad signature", async () => {
    const oid = await commitBy(ed);
    const raw = Buffer.from(await rawCommit(repo, oid)).toString("latin1").replace("change by ssh", "change by mallory");
    const r = await (await sshOnly()).verify(oid, new Uint8Array(Buffer.from(raw, "latin1")), "tip", null);
    expect(r.verdict.reason).toBe("BadSignature");
    expect(r.verdict.message).toContain(`the signature by ed@example.com (ssh-ed25519 ${ed.fingerprint})`);
    expect(r.verdict.message).toContain("does not match");
  });

  t("a tampered OpenPGP-signed commit: refused as a bad signature", async () => {
    const oid = await commitBy(gpg);
    const raw = Buffer.from(await rawCommit(repo, oid)).toString("latin1").replace("change by gpg", "change by mallory");
    const trust = await Trust.load({ openpgpKeys: [gpg.path], require: "tip" });
    const r = await trust.verify(oid, new Uint8Array(Buffer.from(raw, "latin1")), "tip", null);
    expect(r.verdict.reason).toBe("BadSignature");
  });

  t("a key outside valid-after / valid-before (checked at the committer time): refused", async () => {
    const oid = await commitBy(ed);
    const raw = await rawCommit(repo, oid);
    for (const [opt, reason, text] of [[`valid-before="${ymd(-1)}"`, "KeyExpired", "valid only before"], [`valid-after="${ymd(2)}"`, "KeyNotValidYet", "valid only after"]] as const) {
      const file = join(dir, `window-${reason}`);
      writeFileSync(file, signerLine(ed, "ed@example.com", opt) + "\n");
      const r = await (await Trust.load({ allowedSigners: file, openpgpKeys: [], require: "tip" })).verify(oid, raw, "tip", null);
      expect(r.verdict.reason).toBe(reason);
      expect(r.verdict.message).toContain(`whose entry ${file}:1 is ${text}`);
    }
    const inside = join(dir, "window-ok");
    writeFileSync(inside, signerLine(ed, "ed@example.com", `valid-after="${ymd(-2)}",valid-before="${ymd(2)}"`) + "\n");
    expect((await (await Trust.load({ allowedSigners: inside, openpgpKeys: [], require: "tip" })).verify(oid, raw, "tip", null)).verdict.accepted).toBe(true);
  });

  t("a revoked key: refused, naming the revocation line", async () => {
    const oid = await commitBy(ed);
    const revoked = join(dir, "revoked_keys");
    writeFileSync(revoked, `# gone\n${ed.pub}\n`);
    const r = await (await Trust.load({ allowedSigners: signers, openpgpKeys: [], revokedKeys: revoked, require: "tip" })).verify(oid, await rawCommit(repo, oid), "tip", null);
    expect(r.verdict.reason).toBe("KeyRevoked");
    expect(r.verdict.message).toContain(`revoked in ${revoked}:2`);
  });

  t("malformed armor (SSH and OpenPGP): refused as unreadable, never thrown", async () => {
    const trust = await Trust.load({ allowedSigners: signers, openpgpKeys: [gpg.path], require: "tip" });
    for (const key of [ed, gpg]) {
      const oid = await commitBy(key);
      const text = Buffer.from(await rawCommit(repo, oid)).toString("latin1");
      // drop a line from the middle of the armor, and break the end marker
      const lines = text.split("\n");
      const at = lines.findIndex((l) => l.startsWith(" ") && !l.includes("-----")) + 1;
      const broken = [...lines.slice(0, at), ...lines.slice(at + 1)].join("\n").replace(/ -----END (SSH|PGP) SIGNATURE-----/, " -----END $1 SIGNATUR-----");
      const r = await trust.verify(oid, new Uint8Array(Buffer.from(broken, "latin1")), "tip", null);
      expect(r.verdict.reason).toBe("SignatureUnreadable");
      expect(r.verdict.message).toMatch(/its signature cannot be read \(.*armor/);
    }
  });

  t("a 1 MB signature header: refused as unreadable without being parsed", async () => {
    const oid = await commitBy(ed);
    const text = Buffer.from(await rawCommit(repo, oid)).toString("latin1");
    const huge = text.replace("-----END SSH SIGNATURE-----", " QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\n".repeat(14_000) + " -----END SSH SIGNATURE-----");
    expect(huge.length).toBeGreaterThan(1_000_000);
    const r = await (await sshOnly()).verify(oid, new Uint8Array(Buffer.from(huge, "latin1")), "tip", null);
    expect(r.verdict.reason).toBe("SignatureUnreadable");
    expect(r.verdict.message).toMatch(/signature header is \d{7} bytes/);
  });

  t("the repository's trust/allowed_signers counts only as read at a trusted commit", async () => {
    const oid = await commitBy(outsider);
    const raw = await rawCommit(repo, oid);
    const trust = await sshOnly();
    const repoFile = { text: signerLine(outsider, "new@example.com") + "\n", commit: "9".repeat(40) };
    expect((await trust.verify(oid, raw, "tip", null)).verdict.reason).toBe("UnknownSigner");
    const r = await trust.verify(oid, raw, "tip", repoFile);
    expect(r.verdict).toMatchObject({ accepted: true, signer: "new@example.com", listedIn: `trust/allowed_signers at 999999999999:1` });
  });
});

describe("ssh-keygen -Y sign", () => {
  t("a signature over data verifies in its namespace and not in another", async () => {
    for (const key of [ed, ec, rsa]) {
      const sig = parseSshSignature(await sshSign(key, "hello\n", "git"));
      expect(sig.publicKey.fingerprint).toBe(key.fingerprint);
      expect(verifySshSignature(sig, new TextEncoder().encode("hello\n"), "git")).toEqual({ ok: true });
      expect(verifySshSignature(sig, new TextEncoder().encode("hello!\n"), "git").ok).toBe(false);
      expect(verifySshSignature(sig, new TextEncoder().encode("hello\n"), "file")).toEqual({ ok: false, why: 'it was made for namespace "git", not "file"' });
    }
  });
  t("a signature for namespace file is refused for a commit", async () => {
    const sig = parseSshSignature(await sshSign(ed, "x", "file"));
    expect(sig.namespace).toBe("file");
    expect(verifySshSignature(sig, new TextEncoder().encode("x"), "git").ok).toBe(false);
  });
});

describe("loading the node's trust", () => {
  t("an allowed_signers line with a typo refuses the start with file:line", async () => {
    const file = join(dir, "typo_signers");
    writeFileSync(file, `${signerLine(ed, "ed@example.com")}\n${signerLine(ec, "ec@example.com", 'namespace="git"')}\n`);
    const err = await Trust.load({ allowedSigners: file, openpgpKeys: [], require: "tip" }).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err.reason).toBe("TrustConfigInvalid");
    expect(err.message).toContain(`${file}:2: unknown option "namespace" (did you mean namespaces?)`);
  });
  t("a missing file names the setting", async () => {
    const err = await Trust.load({ allowedSigners: join(dir, "nope"), openpgpKeys: [], require: "tip" }).catch((e) => e);
    expect(err.message).toContain("(trust.allowedSigners)");
  });
  t("an OpenPGP key file that is not a key", async () => {
    const file = join(dir, "bad.asc");
    writeFileSync(file, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n-----END PGP PUBLIC KEY BLOCK-----\n");
    const err = await Trust.load({ openpgpKeys: [file], require: "tip" }).catch((e) => e);
    expect(err.message).toContain(`${file}: not an armored OpenPGP public key`);
  });
});
