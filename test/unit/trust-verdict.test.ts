// The trust verdict as a table: commit facts + what the signature check found + signers +
// revoked keys -> accept or refuse, with one sentence naming the commit, the signer, the file.
import { describe, expect, test } from "bun:test";
import { judge, matchPatternList, type CertificateFacts, type SignatureCheck, type TrustPolicy } from "../../agent/trust/verdict.ts";
import { newestTip } from "../../agent/trust/floor.ts";
import type { AllowedSigner } from "../../agent/trust/signers.ts";

const FP = "SHA256:" + "A".repeat(43), OTHER = "SHA256:" + "B".repeat(43), PGP = "E98DFFD488C470869EA5156AEA8DCD1A4C04F9EE";
const T = 1_780_000_000;
const commit = { oid: "1a2b3c4d5e6f".padEnd(40, "0"), subject: "deploy v2", committerTime: T };
const signer = (over: Partial<AllowedSigner> = {}): AllowedSigner => ({
  principals: ["ops@example.com"], fingerprint: FP, keyType: "ssh-ed25519", certAuthority: false, namespaces: null,
  validAfter: null, validBefore: null, source: "/etc/agent/allowed_signers:3", ...over,
});
const policy = (over: Partial<TrustPolicy> = {}): TrustPolicy => ({
  allowedSignersFile: "/etc/agent/allowed_signers", openpgpKeyFiles: [], signers: [signer()], revoked: [], repositorySigners: null, ...over,
});
const ssh = (over: Partial<Extract<SignatureCheck, { kind: "ssh" }>> = {}): SignatureCheck => ({ kind: "ssh", fingerprint: FP, keyType: "ssh-ed25519", valid: true, ...over });
const pgp = (over: Partial<Extract<SignatureCheck, { kind: "openpgp" }>> = {}): SignatureCheck =>
  ({ kind: "openpgp", keyId: PGP.slice(-16), fingerprint: PGP, userIds: ["ops <ops@example.com>"], valid: true, expired: false, revoked: false, ...over });

const CA = "SHA256:" + "C".repeat(43);
const cert = (over: Partial<CertificateFacts> = {}): CertificateFacts => ({
  keyId: "alice-laptop", serial: "7", type: 1, principals: ["alice@example.com"], validAfter: T - 3600, validBefore: T + 3600,
  criticalOptions: [], caFingerprint: CA, caKeyType: "ssh-ed25519", caValid: true, ...over,
});
const caLine = (over: Partial<AllowedSigner> = {}) => signer({ fingerprint: CA, principals: ["*@example.com"], certAuthority: true, source: "/etc/agent/allowed_signers:5", ...over });
const certSig = (over: Partial<CertificateFacts> = {}, sig: Partial<Extract<SignatureCheck, { kind: "ssh" }>> = {}) => ssh({ certificate: cert(over), ...sig });

const certCases: [string, SignatureCheck, Partial<TrustPolicy>, string, RegExp][] = [
  ["a user certificate from a listed CA", certSig(), { signers: [caLine()] }, "Signed", /signed by alice@example.com with certificate "alice-laptop" \(serial 7.*a cert-authority listed in \/etc\/agent\/allowed_signers:5/],
  ["the CA listed without cert-authority", certSig(), { signers: [caLine({ certAuthority: false })] }, "UnknownSigner", /lists that CA key without cert-authority/],
  ["a CA nobody listed", certSig({ caFingerprint: OTHER }), { signers: [caLine()] }, "UnknownSigner", /not a cert-authority in \/etc\/agent\/allowed_signers/],
  ["the CA key signing directly (not a certificate)", ssh({ fingerprint: CA }), { signers: [caLine()] }, "UnknownSigner", /which is not in/],
  ["a CA signature that does not verify", certSig({ caValid: false, caWhy: "the CA's signature does not match the certificate" }), { signers: [caLine()] }, "BadSignature", /not validly signed by that CA/],
  ["a signature by the certified key that does not match", certSig({}, { valid: false, why: "x" }), { signers: [caLine()] }, "BadSignature", /does not match the commit/],
  ["a host certificate", certSig({ type: 2 }), { signers: [caLine()] }, "CertificateRefused", /a host certificate; only user certificates/],
  ["an unknown critical option", certSig({ criticalOptions: ["verify-required"] }), { signers: [caLine()] }, "CertificateRefused", /critical option verify-required is not understood/],
  ["force-command and source-address", certSig({ criticalOptions: ["force-command", "source-address"] }), { signers: [caLine()] }, "Signed", /signed by/],
  ["no principals in the certificate", certSig({ principals: [] }), { signers: [caLine()] }, "CertificateRefused", /names no principals/],
  ["a principal the line does not allow", certSig({ principals: ["alice@evil.org"] }), { signers: [caLine()] }, "CertificateRefused", /principals alice@evil.org, none of which \/etc\/agent\/allowed_signers:5 allows \(\*@example.com\)/],
  ["a negated principal pattern", certSig({ principals: ["root@example.com"] }), { signers: [caLine({ principals: ["!root@example.com", "*@example.com"] })] }, "CertificateRefused", /none of which/],
  ["a certificate before its valid_after", certSig({ validAfter: T + 1 }), { signers: [caLine()] }, "KeyNotValidYet", /a certificate valid only from/],
  ["a certificate at its valid_before (exclusive, as OpenSSH)", certSig({ validBefore: T }), { signers: [caLine()] }, "KeyExpired", /a certificate valid only before/],
  ["the CA line's valid-before", certSig(), { signers: [caLine({ validBefore: T - 1 })] }, "KeyExpired", /whose CA entry \/etc\/agent\/allowed_signers:5 is valid only before/],
  ["the CA line for other namespaces", certSig(), { signers: [caLine({ namespaces: ["file"] })] }, "WrongNamespace", /allows that CA only for namespaces file/],
  ["a revoked CA", certSig(), { signers: [caLine()], revoked: [{ fingerprint: CA, source: "/r:1" }] }, "KeyRevoked", /a CA key revoked in \/r:1/],
  ["a revoked certified key", certSig(), { signers: [caLine()], revoked: [{ fingerprint: FP, source: "/r:2" }] }, "KeyRevoked", /whose key is revoked in \/r:2/],
  ["a certificate for a key listed only as a plain key (the plain line does not count, as in ssh-keygen)", certSig({ caFingerprint: OTHER }), {}, "UnknownSigner", /not a cert-authority/],
];

const cases: [string, SignatureCheck, Partial<TrustPolicy>, string, RegExp][] = [
  ["a good signature by a listed key", ssh(), {}, "Signed", /signed by ops@example.com .*listed in \/etc\/agent\/allowed_signers:3/],
  ["nobody signed it", { kind: "none" }, {}, "Unsigned", /^refusing tip 1a2b3c4d5e6f \("deploy v2"\): nobody signed it.*\/etc\/agent\/allowed_signers/],
  ["an unknown key", ssh({ fingerprint: OTHER }), {}, "UnknownSigner", new RegExp(`signed by key ssh-ed25519 ${OTHER}, which is not in /etc/agent/allowed_signers`)],
  ["a revoked key", ssh(), { revoked: [{ fingerprint: FP, source: "/etc/agent/revoked_keys:2" }] }, "KeyRevoked", /ops@example.com .*revoked in \/etc\/agent\/revoked_keys:2/],
  ["a key past valid-before", ssh(), { signers: [signer({ validBefore: T - 86400 })] }, "KeyExpired", /allowed_signers:3 is valid only before .*and the commit was made/],
  ["a key before valid-after", ssh(), { signers: [signer({ validAfter: T + 86400 })] }, "KeyNotValidYet", /valid only after/],
  ["a key valid in the window", ssh(), { signers: [signer({ validAfter: T - 10, validBefore: T + 10 })] }, "Signed", /signed by/],
  ["a key for other namespaces", ssh(), { signers: [signer({ namespaces: ["file"] })] }, "WrongNamespace", /only for namespaces file, not git/],
  ["a signature that does not match", ssh({ valid: false, why: "the signature does not match the commit's content" }), {}, "BadSignature", /the signature by ops@example.com .* does not match/],
  ["a signature made for another namespace", ssh({ valid: false, why: 'it was made for namespace "file", not "git"' }), {}, "WrongNamespace", /namespace "file"/],
  ["an unreadable signature", { kind: "unreadable", format: "ssh", why: "the SSH signature armor is broken" }, {}, "SignatureUnreadable", /cannot be read \(the SSH signature armor is broken\)/],
  ["OpenPGP when only SSH keys are trusted", pgp({ fingerprint: null, userIds: [] }), {}, "FormatNotTrusted", /signed with OpenPGP key .*this node trusts only SSH keys \(\/etc\/agent\/allowed_signers\)/],
  ["OpenPGP by a trusted key", pgp(), { openpgpKeyFiles: ["/etc/agent/keys/ops.asc"] }, "Signed", /signed by ops <ops@example.com> \(E98D/],
  ["OpenPGP by an unknown key", pgp({ fingerprint: null, userIds: [] }), { openpgpKeyFiles: ["/etc/agent/keys/ops.asc"] }, "UnknownSigner", /not in \/etc\/agent\/keys\/ops.asc/],
  ["OpenPGP by an expired key", pgp({ expired: true }), { openpgpKeyFiles: ["/k.asc"] }, "KeyExpired", /had expired when it signed/],
  ["OpenPGP revoked on the node", pgp(), { openpgpKeyFiles: ["/k.asc"], revoked: [{ fingerprint: PGP, source: "/r:1" }] }, "KeyRevoked", /revoked in \/r:1/],
  ["OpenPGP bad signature", pgp({ valid: false }), { openpgpKeyFiles: ["/k.asc"] }, "BadSignature", /does not match/],
  ["a key only the repository lists", ssh({ fingerprint: OTHER }),
    { signers: [signer(), signer({ fingerprint: OTHER, principals: ["dev@example.com"], source: "trust/allowed_signers at 9f9f9f9f9f9f:1" })], repositorySigners: "trust/allowed_signers at 9f9f9f9f9f9f" },
    "Signed", /dev@example.com .*trust\/allowed_signers at 9f9f9f9f9f9f:1/],
];

describe("judge", () => {
  for (const [name, check, over, reason, message] of [...cases, ...certCases.map(([n, ...rest]) => [`certificate: ${n}`, ...rest] as typeof cases[number])]) {
    test(name, () => {
      const v = judge(commit, check, policy(over), "tip");
      expect(v.reason).toBe(reason as any);
      expect(v.accepted).toBe(reason === "Signed");
      expect(v.message).toMatch(message);
      expect(v.message.split("\n")).toHaveLength(1);
    });
  }
  test("a refusal for a release says release", () => {
    expect(judge(commit, { kind: "none" }, policy(), "release").message).toStartWith("refusing release 1a2b3c4d5e6f");
  });
});

describe("matchPatternList (OpenSSH's principals patterns)", () => {
  test.each([
    ["alice@example.com", ["*@example.com"], true], ["alice@example.com", ["alice@example.co?"], true], ["alice@example.com", ["bob@example.com"], false],
    ["alice@example.com", ["!alice@example.com", "*"], false], ["a.b", ["a?b"], true], ["axb", ["a.b"], false], ["x", ["(x)"], false],
  ] as [string, string[], boolean][])("%p in %p -> %p", (s, patterns, want) => expect(matchPatternList(s, patterns)).toBe(want));
});

describe("newestTip", () => {
  // a <- b <- c on one line; x elsewhere
  const anc: Record<string, string[]> = { c: ["b", "a"], b: ["a"], a: [], x: [] };
  const descends = (p: string, q: string) => anc[p]!.includes(q);
  test.each([
    [["a"], "a"], [["a", "c", "b"], "c"], [["b", "a", "b"], "b"], [["c", "x"], null], [["a", "x", "c"], null],
  ] as [string[], string | null][])("%p -> %p", (tips, want) => {
    expect(newestTip(tips, descends)).toBe(want);
  });
});
