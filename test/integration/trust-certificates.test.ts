// Commits signed with OpenSSH certificates (ssh-keygen -s CA), checked by agent/trust against
// cert-authority lines in allowed_signers, and each verdict compared with what git itself
// (git verify-commit, which runs ssh-keygen -Y verify) says about the same commit.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeRepo, type TestRepo } from "../fixtures/repo.ts";
import { HAVE_SSH_KEYGEN, gitVerify, rawCommit, signWith, signerLine, sshCert, sshKey, type SshKey } from "../fixtures/signing.ts";
import { Trust } from "../../agent/trust/trust.ts";
import { commitFacts } from "../../agent/trust/commit.ts";

const t = HAVE_SSH_KEYGEN ? test : test.skip;
let dir: string, repo: TestRepo, ca: SshKey, otherCa: SshKey;
let n = 0;

beforeAll(async () => {
  if (!HAVE_SSH_KEYGEN) return;
  dir = mkdtempSync(join(tmpdir(), "agent-certs-"));
  repo = await makeRepo(join(dir, "git"), "ops", { "README": "ops\n" });
  [ca, otherCa] = await Promise.all([sshKey(dir, "ca"), sshKey(dir, "other-ca")]);
}, 60_000);
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** An allowed_signers file with these lines. */
function signersFile(...lines: string[]): string {
  const file = join(dir, `allowed_signers-${++n}`);
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}
async function commitWith(key: SshKey): Promise<string> {
  await signWith(repo, key);
  return repo.commit({ n: String(Math.random()) }, `change ${++n}`);
}
async function judge(oid: string, signers: string, revokedKeys?: string, raw?: Uint8Array) {
  const trust = await Trust.load({ allowedSigners: signers, openpgpKeys: [], require: "tip", ...(revokedKeys ? { revokedKeys } : {}) });
  return (await trust.verify(oid, raw ?? await rawCommit(repo, oid), "tip", null)).verdict;
}

describe("commits signed with an SSH certificate", () => {
  for (const type of ["ed25519", "ecdsa", "rsa"] as const) {
    t(`${type} CA and key: accepted with a cert-authority line, as git accepts it`, async () => {
      const typedCa = type === "ed25519" ? ca : await sshKey(dir, `ca-${type}`, type);
      const cert = await sshCert(typedCa, dir, `alice-${type}`, { id: `alice-${type}-laptop`, principals: ["alice@example.com"], type });
      const oid = await commitWith(cert);
      const file = signersFile(signerLine(typedCa, "alice@example.com", "cert-authority"));
      const v = await judge(oid, file);
      expect(v).toMatchObject({ accepted: true, reason: "Signed", format: "ssh", key: cert.fingerprint, signer: "alice@example.com", listedIn: `${file}:1` });
      expect(v.message).toContain(`certificate "alice-${type}-laptop"`);
      expect(v.message).toContain(`from CA ${typedCa.type} ${typedCa.fingerprint}, a cert-authority listed in ${file}:1`);
      expect((await gitVerify(repo, oid, file)).ok).toBe(true);
    });
  }

  t("a principals pattern (*@example.com) matches the certificate's principal", async () => {
    const cert = await sshCert(ca, dir, "bob", { principals: ["deploy", "bob@example.com"] });
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "*@example.com", 'cert-authority,namespaces="git"'));
    expect(await judge(oid, file)).toMatchObject({ accepted: true, signer: "bob@example.com" });
    expect((await gitVerify(repo, oid, file)).ok).toBe(true);
  });

  t("the CA listed without cert-authority: refused, saying to add it (git refuses too)", async () => {
    const cert = await sshCert(ca, dir, "carol");
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "carol@example.com"));
    const v = await judge(oid, file);
    expect(v.reason).toBe("UnknownSigner");
    expect(v.message).toContain(`${file}:1 lists that CA key without cert-authority`);
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("a certificate from a CA nobody listed: refused as unknown", async () => {
    const cert = await sshCert(otherCa, dir, "dave");
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "dave@example.com", "cert-authority"));
    const v = await judge(oid, file);
    expect(v.reason).toBe("UnknownSigner");
    expect(v.message).toContain(`from CA ssh-ed25519 ${otherCa.fingerprint}, which is not a cert-authority in ${file}`);
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("a principal the line does not allow: refused, naming both (git refuses too)", async () => {
    const cert = await sshCert(ca, dir, "erin", { principals: ["erin@elsewhere.org"] });
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "*@example.com", "cert-authority"));
    const v = await judge(oid, file);
    expect(v.reason).toBe("CertificateRefused");
    expect(v.message).toContain(`for principals erin@elsewhere.org, none of which ${file}:1 allows (*@example.com)`);
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("an expired certificate (-V 20200101:20200102): refused (git refuses too)", async () => {
    const cert = await sshCert(ca, dir, "frank", { validity: "20200101:20200102" });
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "frank@example.com", "cert-authority"));
    const v = await judge(oid, file);
    expect(v.reason).toBe("KeyExpired");
    expect(v.message).toMatch(/a certificate valid only before 2020-01-0\dT.*and the commit was made/);
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("a certificate not valid yet: refused", async () => {
    const cert = await sshCert(ca, dir, "gina", { validity: "+1d:+2d" });
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "gina@example.com", "cert-authority"));
    expect((await judge(oid, file)).reason).toBe("KeyNotValidYet");
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("the cert-authority line's own valid-before applies too", async () => {
    const cert = await sshCert(ca, dir, "hank");
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "hank@example.com", 'cert-authority,valid-before="20200101Z"'));
    const v = await judge(oid, file);
    expect(v.reason).toBe("KeyExpired");
    expect(v.message).toContain(`whose CA entry ${file}:1 is valid only before 2020-01-01T00:00:00Z`);
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("a host certificate (-h): refused (git refuses too)", async () => {
    const cert = await sshCert(ca, dir, "host1", { host: true });
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "host1@example.com", "cert-authority"));
    const v = await judge(oid, file);
    expect(v.reason).toBe("CertificateRefused");
    expect(v.message).toContain("a host certificate; only user certificates");
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("a certificate without principals: refused (git refuses too)", async () => {
    const cert = await sshCert(ca, dir, "ivan", { principals: [] });
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "*", "cert-authority"));
    const v = await judge(oid, file);
    expect(v.reason).toBe("CertificateRefused");
    expect(v.message).toContain("names no principals");
    expect((await gitVerify(repo, oid, file)).ok).toBe(false);
  });

  t("a tampered certificate (a principal changed inside the signature): refused as a bad CA signature", async () => {
    const cert = await sshCert(ca, dir, "judy", { principals: ["judy@example.org"] });
    const oid = await commitWith(cert);
    const text = Buffer.from(await rawCommit(repo, oid)).toString("latin1");
    const armor = /-----BEGIN SSH SIGNATURE-----\n([\s\S]*?) -----END SSH SIGNATURE-----/.exec(text)!;
    const blob = Buffer.from(armor[1]!.replace(/\s+/g, ""), "base64");
    const at = blob.indexOf("judy@example.org");
    expect(at).toBeGreaterThan(0);
    blob.write("judy@example.com", at, "latin1"); // now it would match the line below
    const lines = blob.toString("base64").match(/.{1,70}/g)!.map((l) => ` ${l}`).join("\n");
    const tampered = text.replace(armor[1]!, lines + "\n");
    const file = signersFile(signerLine(ca, "judy@example.com", "cert-authority"));
    const v = await judge(oid, file, undefined, new Uint8Array(Buffer.from(tampered, "latin1")));
    expect(v.reason).toBe("BadSignature");
    expect(v.message).toContain("the certificate is not validly signed by that CA (the CA's signature does not match the certificate)");
    // ssh-keygen refuses the same signature
    const sigFile = join(dir, "tampered.sig"), dataFile = join(dir, "tampered.data");
    writeFileSync(sigFile, `-----BEGIN SSH SIGNATURE-----\n${blob.toString("base64").match(/.{1,70}/g)!.join("\n")}\n-----END SSH SIGNATURE-----\n`);
    writeFileSync(dataFile, commitFacts(oid, await rawCommit(repo, oid)).payload);
    const p = Bun.spawn(["ssh-keygen", "-Y", "verify", "-f", file, "-I", "judy@example.com", "-n", "git", "-s", sigFile], { stdin: Bun.file(dataFile), stdout: "pipe", stderr: "pipe" });
    expect(await p.exited).not.toBe(0);
    expect(await new Response(p.stderr).text()).toContain("incorrect signature");
  });

  t("a tampered commit under a valid certificate: refused as a bad signature", async () => {
    const cert = await sshCert(ca, dir, "kim");
    const oid = await commitWith(cert);
    const raw = Buffer.from(await rawCommit(repo, oid)).toString("latin1").replace(/change \d+/, "change by mallory");
    const file = signersFile(signerLine(ca, "kim@example.com", "cert-authority"));
    const v = await judge(oid, file, undefined, new Uint8Array(Buffer.from(raw, "latin1")));
    expect(v.reason).toBe("BadSignature");
    expect(v.message).toContain("does not match the commit");
  });

  t("a revoked CA, and a revoked certified key: refused (git refuses too)", async () => {
    const cert = await sshCert(ca, dir, "leo");
    const oid = await commitWith(cert);
    const file = signersFile(signerLine(ca, "leo@example.com", "cert-authority"));
    const revokedCa = join(dir, "revoked-ca");
    writeFileSync(revokedCa, `# the CA's key leaked\n${ca.pub}\n`);
    const v = await judge(oid, file, revokedCa);
    expect(v.reason).toBe("KeyRevoked");
    expect(v.message).toContain(`a CA key revoked in ${revokedCa}:2`);
    expect((await gitVerify(repo, oid, file, revokedCa)).ok).toBe(false);
    const revokedKey = join(dir, "revoked-key");
    writeFileSync(revokedKey, `${cert.fingerprint}\n`);
    const w = await judge(oid, file, revokedKey);
    expect(w.reason).toBe("KeyRevoked");
    expect(w.message).toContain(`whose key is revoked in ${revokedKey}:1`);
    const revokedCert = join(dir, "revoked-cert");
    writeFileSync(revokedCert, `${readFileSync(cert.path, "utf8")}`);
    expect((await judge(oid, file, revokedCert)).message).toContain(`whose key is revoked in ${revokedCert}:1`);
    expect((await gitVerify(repo, oid, file, revokedCert)).ok).toBe(false);
    expect((await judge(oid, file)).accepted).toBe(true);
  });

  t("critical options: force-command is accepted; an unknown one is refused (stricter than ssh-keygen -Y verify)", async () => {
    const file = signersFile(signerLine(ca, "*@example.com", "cert-authority"));
    const forced = await commitWith(await sshCert(ca, dir, "mia", { options: ["force-command=/bin/true", "source-address=10.0.0.0/8"] }));
    expect((await judge(forced, file)).accepted).toBe(true);
    expect((await gitVerify(repo, forced, file)).ok).toBe(true);
    const odd = await commitWith(await sshCert(ca, dir, "ned", { options: ["critical:frobnicate@example.com=1"] }));
    const v = await judge(odd, file);
    expect(v.reason).toBe("CertificateRefused");
    expect(v.message).toContain("whose critical option frobnicate@example.com is not understood here");
    // ssh-keygen -Y verify ignores critical options: git accepts this one; the agent does not.
    expect((await gitVerify(repo, odd, file)).ok).toBe(true);
  });
});
