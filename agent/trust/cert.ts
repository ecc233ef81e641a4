// OpenSSH certificates (PROTOCOL.certkeys): what `ssh-keygen -s CA` writes and what a signature
// made with `ssh-keygen -Y sign -f key-cert.pub` (or git with that signing key) carries as its
// public key. Parses the certificate and checks the CA's signature over it; whether the CA is
// trusted, the principals, the type and the validity window are judged in verdict.ts.
import { Reader, TrustInputError, concat, parsePublicKey, sshString, type SshPublicKey } from "./wire.ts";
import { verifyRawSignature } from "./sshsig.ts";

/** Certificate key types and the plain key type each one certifies. */
export const CERT_TYPES: Record<string, string> = {
  "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
  "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
};

export interface SshCertificate {
  /** The certificate type string (ssh-ed25519-cert-v01@openssh.com, …). */
  certType: string;
  /** The certified key (its blob is the plain key's, so its fingerprint is what ssh-keygen prints). */
  key: SshPublicKey;
  serial: bigint;
  /** 1: user certificate, 2: host certificate (SSH2_CERT_TYPE_USER / _HOST). */
  type: number;
  keyId: string;
  principals: string[];
  /** Seconds since the epoch; validBefore is exclusive, as OpenSSH checks it. */
  validAfter: number;
  validBefore: number;
  /** Names only; verdict.ts refuses any it does not understand (PROTOCOL.certkeys' rule). */
  criticalOptions: string[];
  extensions: string[];
  /** The CA key that signed the certificate. */
  ca: SshPublicKey;
  /** Does the CA's signature over the certificate body verify? */
  caSignature: { ok: true } | { ok: false; why: string };
}

export const isCertType = (type: string) => Object.hasOwn(CERT_TYPES, type);

/** A uint64 as seconds, clamped so "forever" (2^64-1) stays a finite number. */
function uint64(r: Reader): bigint {
  const hi = BigInt(r.uint32()), lo = BigInt(r.uint32());
  return (hi << 32n) | lo;
}
const seconds = (v: bigint) => v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);

/** The names in a critical options / extensions field (string name, string data, sorted pairs). */
function optionNames(buf: Uint8Array): string[] {
  const r = new Reader(buf), out: string[] = [];
  while (!r.done) { out.push(r.text()); r.string(); }
  return out;
}

/** Parse a certificate blob. Throws TrustInputError when it is not a well-formed certificate. */
export function parseCertificate(blob: Uint8Array): SshCertificate {
  const r = new Reader(blob);
  const certType = r.text();
  const plain = isCertType(certType) ? CERT_TYPES[certType] : undefined;
  if (!plain) throw new TrustInputError(`unsupported certificate type ${certType}`);
  r.string(); // nonce
  // The certified key's fields, in the plain key's order: rebuild the plain key blob from them.
  // ed25519: pk; ecdsa: curve, Q; rsa: e, n (mpints kept as they are, so the fingerprint matches).
  const keyFields = plain === "ssh-ed25519" ? [r.string()] : [r.string(), r.string()];
  const key = parsePublicKey(concat(sshString(plain), ...keyFields.map((f) => sshString(f))));
  const serial = uint64(r);
  const type = r.uint32();
  const keyId = r.text();
  const pr = new Reader(r.string()), principals: string[] = [];
  while (!pr.done) principals.push(pr.text());
  const validAfter = seconds(uint64(r)), validBefore = seconds(uint64(r));
  const criticalOptions = optionNames(r.string());
  const extensions = optionNames(r.string());
  r.string(); // reserved
  const caBlob = r.string();
  const bodyEnd = r.offset; // the CA signs everything up to its signature
  const sig = new Reader(r.string());
  if (!r.done) throw new TrustInputError("trailing bytes after the certificate");
  const caType = new TextDecoder().decode(new Reader(caBlob).string());
  if (isCertType(caType)) throw new TrustInputError("the certificate is signed by another certificate, not by a CA key");
  const ca = parsePublicKey(caBlob);
  const algorithm = sig.text(), signature = sig.string();
  if (!sig.done) throw new TrustInputError("trailing bytes inside the certificate's signature");
  const checked = verifyRawSignature(ca, algorithm, signature, blob.subarray(0, bodyEnd));
  const caSignature = checked.ok ? checked
    : { ok: false as const, why: checked.why === "the signature does not match the commit's content" ? "the CA's signature does not match the certificate" : checked.why };
  return { certType, key, serial, type, keyId, principals, validAfter, validBefore, criticalOptions, extensions, ca, caSignature };
}
