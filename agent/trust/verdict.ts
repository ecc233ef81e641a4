// The trust verdict: given the facts of a commit, what its signature check found, the trusted
// signers and the revoked keys, accept or refuse with one sentence that says which commit, who
// signed it (or that nobody did) and which file lists the trusted keys. Pure: no I/O, no clock.
import type { AllowedSigner, RevokedKey } from "./signers.ts";

export type SignatureCheck =
  | { kind: "none" }
  | { kind: "unreadable"; format: "ssh" | "openpgp" | "unknown"; why: string }
  | { kind: "ssh"; fingerprint: string; keyType: string; valid: boolean; why?: string; certificate?: CertificateFacts }
  | { kind: "openpgp"; keyId: string; fingerprint: string | null; userIds: string[]; valid: boolean; expired: boolean; revoked: boolean; why?: string };

/** An OpenSSH certificate the signature carries (the signing key is the certified key). */
export interface CertificateFacts {
  keyId: string;
  serial: string;
  /** 1: user, 2: host. */
  type: number;
  principals: string[];
  /** Seconds since the epoch; validBefore is exclusive. */
  validAfter: number;
  validBefore: number;
  criticalOptions: string[];
  caFingerprint: string;
  caKeyType: string;
  /** Whether the CA's signature over the certificate verifies. */
  caValid: boolean;
  caWhy?: string;
}

/** Critical options that do not concern signatures (they restrict logins); any other refuses. */
export const SIGNATURE_NEUTRAL_CRITICAL_OPTIONS = ["force-command", "source-address"];

/** OpenSSH's match_pattern: `*` and `?` wildcards, the whole string. */
export function matchPattern(s: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
  return re.test(s);
}

/** OpenSSH's match_pattern_list: a negated pattern (`!x`) that matches refuses, else any match. */
export function matchPatternList(s: string, patterns: string[]): boolean {
  let ok = false;
  for (const p of patterns) {
    if (p.startsWith("!")) { if (matchPattern(s, p.slice(1))) return false; } else if (matchPattern(s, p)) ok = true;
  }
  return ok;
}

export interface TrustPolicy {
  /** The node's own allowed_signers file (the root of trust). */
  allowedSignersFile: string | null;
  openpgpKeyFiles: string[];
  /** The node's signers plus, when present, the repository's trust/allowed_signers at the floor. */
  signers: AllowedSigner[];
  revoked: RevokedKey[];
  /** "trust/allowed_signers at 1a2b3c4d5e6f" when the repository's file counts. */
  repositorySigners: string | null;
}

export type VerdictReason = "Signed" | "Unsigned" | "UnknownSigner" | "KeyNotValidYet" | "KeyExpired" | "KeyRevoked"
  | "BadSignature" | "SignatureUnreadable" | "WrongNamespace" | "FormatNotTrusted" | "CertificateRefused";

export interface Verdict {
  accepted: boolean;
  reason: VerdictReason;
  /** Principals (SSH) or user ids (OpenPGP) of the signing key, when known. */
  signer: string | null;
  /** SHA256:… (SSH) or the OpenPGP fingerprint (or key id when the key is unknown). */
  key: string | null;
  format: "ssh" | "openpgp" | null;
  /** Where the accepting key is listed ("/etc/agent/allowed_signers:3"). */
  listedIn: string | null;
  message: string;
}

export interface CommitRef { oid: string; subject: string; committerTime: number }

const day = (t: number) => new Date(t * 1000).toISOString().replace(".000Z", "Z");

/** Decide. `what` names the commit's part: "tip" (whose manifest is read) or "release" (pinned). */
export function judge(commit: CommitRef, check: SignatureCheck, policy: TrustPolicy, what: "tip" | "release"): Verdict {
  const head = `refusing ${what} ${commit.oid.slice(0, 12)} ("${commit.subject.slice(0, 60)}")`;
  const sshFiles = [policy.allowedSignersFile, policy.repositorySigners].filter(Boolean).join(" or ");
  const trustedIn = () => {
    const all = [policy.allowedSignersFile, policy.repositorySigners, ...policy.openpgpKeyFiles].filter(Boolean);
    return all.length ? `the trusted keys are in ${all.join(", ")}` : "no keys are trusted (trust.allowedSigners and trust.openpgpKeys are empty)";
  };
  const refuse = (reason: VerdictReason, text: string, extra: Partial<Verdict> = {}): Verdict =>
    ({ accepted: false, reason, signer: null, key: null, format: null, listedIn: null, ...extra, message: `${head}: ${text}` });

  if (check.kind === "none") return refuse("Unsigned", `nobody signed it; sign commits with git commit -S (${trustedIn()})`);
  if (check.kind === "unreadable") {
    return refuse("SignatureUnreadable", `its signature cannot be read (${check.why}); ${trustedIn()}`, { format: check.format === "unknown" ? null : check.format });
  }
  const revokedEntry = (fp: string | null) => fp ? policy.revoked.find((r) => r.fingerprint === fp || r.fingerprint === fp.slice(-16)) : undefined;

  if (check.kind === "openpgp") {
    const base = { format: "openpgp" as const, key: check.fingerprint ?? check.keyId, signer: check.userIds.join(", ") || null };
    const who = `${base.signer ?? "OpenPGP key"} (${base.key})`;
    if (policy.openpgpKeyFiles.length === 0) {
      return refuse("FormatNotTrusted", `it is signed with OpenPGP key ${check.keyId}, but this node trusts only SSH keys (${sshFiles || "none"}); sign with an SSH key listed there, or add the key to trust.openpgpKeys`, base);
    }
    if (!check.fingerprint) return refuse("UnknownSigner", `it is signed by OpenPGP key ${check.keyId}, which is not in ${policy.openpgpKeyFiles.join(", ")}`, base);
    const rev = revokedEntry(check.fingerprint);
    if (rev || check.revoked) return refuse("KeyRevoked", `it is signed by ${who}, a key revoked ${rev ? `in ${rev.source}` : "by its owner (revocation in the key file)"}`, base);
    if (check.expired) return refuse("KeyExpired", `it is signed by ${who}, a key that had expired when it signed; extend the key or sign with another (${trustedIn()})`, base);
    if (!check.valid) return refuse("BadSignature", `the signature by ${who} does not match the commit (${check.why ?? "it was changed after signing"})`, base);
    return { accepted: true, reason: "Signed", ...base, listedIn: policy.openpgpKeyFiles.join(", "), message: `${what} ${commit.oid.slice(0, 12)} is signed by ${who}` };
  }

  if (check.certificate) return judgeCertificate(commit, check, check.certificate, policy, what, refuse, revokedEntry, sshFiles);

  // SSH: find the key among the signers (one key may be listed on several lines).
  const lines = policy.signers.filter((s) => s.fingerprint === check.fingerprint && !s.certAuthority);
  const base = { format: "ssh" as const, key: check.fingerprint, signer: lines.length ? [...new Set(lines.flatMap((l) => l.principals))].join(", ") : null };
  const who = `${base.signer ?? "an unknown key"} (${check.keyType} ${check.fingerprint})`;
  const rev = revokedEntry(check.fingerprint);
  if (rev) return refuse("KeyRevoked", `it is signed by ${who}, a key revoked in ${rev.source}`, base);
  if (lines.length === 0) {
    return refuse("UnknownSigner", `it is signed by key ${check.keyType} ${check.fingerprint}, which is not in ${sshFiles || "any allowed_signers file (trust.allowedSigners is not set)"}`, base);
  }
  if (!check.valid) {
    const text = check.why?.startsWith("it was made for namespace") ? check.why : `the signature does not match the commit (${check.why ?? "it was changed after signing"})`;
    return refuse(check.why?.startsWith("it was made for namespace") ? "WrongNamespace" : "BadSignature", `the signature by ${who}: ${text}`, base);
  }
  const inNamespace = lines.filter((l) => !l.namespaces || l.namespaces.includes("git"));
  if (inNamespace.length === 0) {
    return refuse("WrongNamespace", `it is signed by ${who}, but ${lines.map((l) => l.source).join(", ")} allows that key only for namespaces ${lines[0]!.namespaces!.join(",")}, not git`, base);
  }
  const t = commit.committerTime;
  const inTime = inNamespace.find((l) => (l.validAfter === null || t >= l.validAfter) && (l.validBefore === null || t <= l.validBefore));
  if (!inTime) {
    const l = inNamespace[0]!;
    const tooEarly = l.validAfter !== null && t < l.validAfter;
    return refuse(tooEarly ? "KeyNotValidYet" : "KeyExpired",
      `it is signed by ${who}, whose entry ${l.source} is valid ${tooEarly ? `only after ${day(l.validAfter!)}` : `only before ${day(l.validBefore!)}`}, and the commit was made ${day(t)}`, base);
  }
  return { accepted: true, reason: "Signed", ...base, listedIn: inTime.source, message: `${what} ${commit.oid.slice(0, 12)} is signed by ${who}, listed in ${inTime.source}` };
}


/**
 * A signature made with an OpenSSH certificate, judged as `ssh-keygen -Y verify` does with a
 * `cert-authority` line: the CA listed as cert-authority, its signature over the certificate, a
 * user certificate, a principal of the certificate matching the line's principals, the commit
 * time inside the certificate's window and the line's, and the signature by the certified key.
 */
function judgeCertificate(
  commit: CommitRef, check: Extract<SignatureCheck, { kind: "ssh" }>, cert: CertificateFacts, policy: TrustPolicy, what: "tip" | "release",
  refuse: (reason: VerdictReason, text: string, extra?: Partial<Verdict>) => Verdict,
  revokedEntry: (fp: string | null) => RevokedKey | undefined, sshFiles: string,
): Verdict {
  const lines = policy.signers.filter((s) => s.fingerprint === cert.caFingerprint && s.certAuthority);
  const certName = `certificate "${cert.keyId}" (serial ${cert.serial}, ${check.keyType} ${check.fingerprint})`;
  const by = `CA ${cert.caKeyType} ${cert.caFingerprint}`;
  const base = { format: "ssh" as const, key: check.fingerprint, signer: cert.principals.join(", ") || null };
  const who = `${certName} from ${by}`;
  const t = commit.committerTime;
  const revKey = revokedEntry(check.fingerprint), revCa = revokedEntry(cert.caFingerprint);
  if (revKey) return refuse("KeyRevoked", `it is signed with ${who}, whose key is revoked in ${revKey.source}`, base);
  if (revCa) return refuse("KeyRevoked", `it is signed with ${who}, a CA key revoked in ${revCa.source}`, base);
  if (!cert.caValid) return refuse("BadSignature", `it is signed with ${who}, but the certificate is not validly signed by that CA (${cert.caWhy ?? "it was changed after signing"})`, base);
  if (lines.length === 0) {
    const plain = policy.signers.find((s) => s.fingerprint === cert.caFingerprint);
    return refuse("UnknownSigner", plain
      ? `it is signed with ${who}, but ${plain.source} lists that CA key without cert-authority; add cert-authority to trust the certificates it signs`
      : `it is signed with ${who}, which is not a cert-authority in ${sshFiles || "any allowed_signers file (trust.allowedSigners is not set)"}`, base);
  }
  if (!check.valid) {
    const ns = check.why?.startsWith("it was made for namespace");
    return refuse(ns ? "WrongNamespace" : "BadSignature", `the signature with ${who}: ${ns ? check.why : `the signature does not match the commit (${check.why ?? "it was changed after signing"})`}`, base);
  }
  if (cert.type !== 1) return refuse("CertificateRefused", `it is signed with ${who}, a ${cert.type === 2 ? "host" : `type ${cert.type}`} certificate; only user certificates (ssh-keygen -s without -h) sign commits`, base);
  const unknown = cert.criticalOptions.filter((o) => !SIGNATURE_NEUTRAL_CRITICAL_OPTIONS.includes(o));
  if (unknown.length) return refuse("CertificateRefused", `it is signed with ${who}, whose critical option ${unknown.join(", ")} is not understood here (only ${SIGNATURE_NEUTRAL_CRITICAL_OPTIONS.join(", ")} are)`, base);
  if (cert.principals.length === 0) return refuse("CertificateRefused", `it is signed with ${who}, which names no principals (sign it with ssh-keygen -n)`, base);
  const inNamespace = lines.filter((l) => !l.namespaces || l.namespaces.includes("git"));
  if (inNamespace.length === 0) {
    return refuse("WrongNamespace", `it is signed with ${who}, but ${lines.map((l) => l.source).join(", ")} allows that CA only for namespaces ${lines[0]!.namespaces!.join(",")}, not git`, base);
  }
  const matching = inNamespace.map((l) => ({ l, principals: cert.principals.filter((p) => matchPatternList(p, l.principals)) })).filter((m) => m.principals.length);
  if (matching.length === 0) {
    return refuse("CertificateRefused", `it is signed with ${who} for principals ${cert.principals.join(", ")}, none of which ${inNamespace.map((l) => l.source).join(", ")} allows (${inNamespace[0]!.principals.join(",")})`, base);
  }
  if (t < cert.validAfter || t >= cert.validBefore) {
    const early = t < cert.validAfter;
    return refuse(early ? "KeyNotValidYet" : "KeyExpired",
      `it is signed with ${who}, a certificate valid ${early ? `only from ${day(cert.validAfter)}` : `only before ${day(cert.validBefore)}`}, and the commit was made ${day(t)}`, base);
  }
  const inTime = matching.find(({ l }) => (l.validAfter === null || t >= l.validAfter) && (l.validBefore === null || t <= l.validBefore));
  if (!inTime) {
    const l = matching[0]!.l;
    const tooEarly = l.validAfter !== null && t < l.validAfter;
    return refuse(tooEarly ? "KeyNotValidYet" : "KeyExpired",
      `it is signed with ${who}, whose CA entry ${l.source} is valid ${tooEarly ? `only after ${day(l.validAfter!)}` : `only before ${day(l.validBefore!)}`}, and the commit was made ${day(t)}`, base);
  }
  const signer = inTime.principals.join(", ");
  return { accepted: true, reason: "Signed", ...base, signer, listedIn: inTime.l.source,
    message: `${what} ${commit.oid.slice(0, 12)} is signed by ${signer} with ${who}, a cert-authority listed in ${inTime.l.source}` };
}
